"""``anfe crawl urllist --processes N``: N crawls of one URL list into one dataset root, run at once.

One Scrapy process keeps one core busy routing requests, so a URL list is split over several: each
child is an ordinary ``anfe crawl urllist`` of shard K of N (``-a shard=K/N``, see
:mod:`scraper.shards`) with its own frontier (``JOBDIR/shard-K-of-N``), its own log and report,
and the dataset root's store and ledger in common (SQLite in WAL mode serves several writers;
``LOCAL_CLAIMS`` keeps one writer per content hash, see :mod:`scraper.claims`). Each child is
crash-safe on its own, so a killed run is resumed by the same command, as a single crawl is.
The parent shows one progress line and one summary: the children's stats added up.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .errors import ShardFailedError
from .ledger import LEDGER_NAME

#: Stats that are not added up over the children: their largest value is the merged one.
LARGEST = frozenset({"elapsed_time_seconds", "anfe/budget/max_pages", "anfe/commit/largest_batch"})


@dataclass(frozen=True)
class Shard:
    """One child crawl: its command, and where its log, report and console output go."""

    command: list[str]
    log: Path
    report: Path
    output: Path


def shard_plan(base: list[str], processes: int, reports: Path, stamp: str, jobdir: Path | None) -> list[Shard]:
    """The children's commands: ``base`` (an ``anfe crawl urllist`` without --jobdir) plus each one's
    shard, frontier, log and report."""
    plan = []
    for k in range(processes):
        name = f"urllist-{stamp}-shard-{k}-of-{processes}"
        log, report, output = (reports / f"{name}{suffix}" for suffix in (".log", ".json", ".out"))
        command = [*base, "-a", f"shard={k}/{processes}", "-s", "LOCAL_CLAIMS=1", "-s", f"LOG_FILE={log}",
                   "-s", f"CRAWL_REPORT={report}", "-s", "CONSOLE_SUMMARY=0", "-s", "PROGRESS_INTERVAL=0"]
        if jobdir is not None:
            command += ["--jobdir", str(jobdir / f"shard-{k}-of-{processes}")]
        plan.append(Shard(command, log, report, output))
    return plan


def settled_urls(root: Path) -> int:
    """URLs with a final outcome in the dataset root's ledger (the progress of the children)."""
    path = root / LEDGER_NAME
    if not path.is_file():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return int(db.execute("SELECT COUNT(*) FROM urls").fetchone()[0])
    except sqlite3.Error:
        return 0


def run_shards(plan: list[Shard], root: Path, echo: Callable[[str], None], stream: TextIO = sys.stderr,
               interval: float = 1.0) -> list[int]:
    """Start every child, show how many URLs are settled while they run, return their exit codes.
    Ctrl-C stops them all (each leaves its frontier and ledger consistent)."""
    for shard in plan:
        shard.output.parent.mkdir(parents=True, exist_ok=True)
    before = settled_urls(root)
    children = [subprocess.Popen(s.command, stdout=s.output.open("wb"), stderr=subprocess.STDOUT) for s in plan]
    echo(f"{len(plan)} processes, one shard of the list each; their logs: {plan[0].log.parent}/")
    try:
        while any(child.poll() is None for child in children):
            if stream.isatty():
                stream.write(f"\rprogress: {settled_urls(root) - before} URLs settled, "
                             f"{sum(c.poll() is None for c in children)} of {len(children)} processes running")
                stream.flush()
            time.sleep(interval)
    except KeyboardInterrupt:
        for child in children:
            child.terminate()
        for child in children:
            child.wait()
        raise
    if stream.isatty():
        stream.write("\n")
    return [child.returncode for child in children]


def merge_stats(all_stats: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The children's stats as one crawl's: counts added up, :data:`LARGEST` ones their maximum,
    a finish reason other than "finished" kept, anything else the first child's value."""
    merged: dict[str, Any] = {}
    for stats in all_stats:
        for key, value in stats.items():
            if key not in merged:
                merged[key] = value
            elif key == "finish_reason":
                merged[key] = merged[key] if merged[key] != "finished" else value
            elif isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(merged[key], (int, float)):
                merged[key] = max(merged[key], value) if key in LARGEST else merged[key] + value
    return merged


def read_reports(plan: list[Shard]) -> list[dict[str, Any]]:
    """The children's stats from their JSON reports (a child that wrote none says so in its output)."""
    found = []
    for shard in plan:
        try:
            found.append(json.loads(shard.report.read_text())["stats"])
        except (OSError, ValueError, KeyError):
            tail = shard.output.read_text(errors="replace").strip().splitlines()[-1:] if shard.output.is_file() else []
            raise ShardFailedError(f"a shard wrote no report: {' '.join(tail) or 'no output'} (its log: {shard.log})")
    return found

