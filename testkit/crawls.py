"""Crawls run as subprocesses for the tests: the command lines, starting one, and checking what
it stored against the demo site's manifest."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from anfe.core.layout import DatasetLayout
from anfe.core.store import open_store
from scraper.demosite import DemoServer

ROOT = Path(__file__).resolve().parent.parent  # the checkout: scrapy.cfg is there
#: Scrapy settings of a quick crawl of the demo site (no politeness delays).
FAST = ["-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=0", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=8",
        "-s", "PROGRESS_INTERVAL=0", "-s", "LOG_LEVEL=INFO", "-s", "BACKOFF_DELAY=0"]
#: Slow enough to be killed mid-crawl: 2 requests at once, 50 ms apart.
PACE = ["-s", "DOWNLOAD_DELAY=0.05", "-s", "RANDOMIZE_DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=0",
        "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2", "-s", "PROGRESS_INTERVAL=0", "-s", "BACKOFF_DELAY=0"]


def crawl_command(root: Path, server: DemoServer, *extra: str) -> list[str]:
    return [sys.executable, "-m", "anfe", "crawl", "listal", "--root", str(root), "-a", "profile=demo-listal",
            "-a", f"base_url={server.base_url}", *PACE, *extra]


def start(command: list[str], log: Path) -> subprocess.Popen:
    """The crawl in a process group of its own (what kill -9 of "the crawl" hits)."""
    return subprocess.Popen(command, cwd=log.parent, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def stored(root: Path) -> int:
    folder = root / "images"
    return sum(1 for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else 0


def run_scrapy(spider: str, root: Path, *args: str, report: Path, env_cache: Path | None = None,
               timeout: int = 120) -> dict:
    """``python -m scrapy crawl`` in the project folder; returns the crawl report (summary + stats)."""
    command = [sys.executable, "-m", "scrapy", "crawl", spider, "-s", f"DATASET_ROOT={root}",
               "-s", f"CRAWL_REPORT={report}", *FAST, *args]
    env = {**os.environ}
    if env_cache:
        env["ANFE_CACHE"] = str(env_cache)
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-3000:]}"
    assert report.is_file(), done.stderr[-3000:]
    return json.loads(report.read_text())


def check_against_manifest(root: Path, expect: dict, summary: dict) -> None:
    """Folders, records and drops exactly as the manifest says."""
    assert files_by_gender(root) == {g: set(h) for g, h in expect["hashes"].items()}
    assert summary["images_by_gender"] == expect["images"]
    assert summary["dropped"] == expect["dropped"]
    assert summary["page_errors"] == expect["page_errors"]
    assert summary["robots_forbidden"] == expect["robots_forbidden"]
    with open_store(None, root) as store:
        records = store.find_images()
        assert {r["content_hash"] for r in records} == {h for hs in expect["hashes"].values() for h in hs}
        for record in records:
            assert record["gender"] in expect["people"]
            assert record["person_name"] in expect["people"][record["gender"]]
            assert (root / record["path"]).is_file()
            assert record["source"] == "crawl" and record["http_status"] == 200
            assert record["width"] >= 100 and record["height"] >= 100 and record["bytes"] > 0
            assert record["url"].startswith("http://127.0.0.1:")
            assert record["fetched_at"] and record["site_label"]
    # nothing but images/, the catalog, the ledger and the reports was written
    assert {p.name for p in root.iterdir()} <= {"images", "catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm",
                                                 "crawl_ledger.sqlite", "crawl_ledger.sqlite-wal",
                                                 "crawl_ledger.sqlite-shm", "crawl_reports"}


def files_by_gender(root: Path) -> dict[str, set[str]]:
    layout = DatasetLayout(root)
    return {g: {p.stem for p in layout.image_files(g)} for g in layout.genders()}


#: Slow enough to be killed mid-crawl: 2 requests at once, 50 ms apart.
