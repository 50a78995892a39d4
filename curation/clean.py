"""The cleaning scan: analyse every file of a dataset root once (cached), apply the rules and
move each rejected file to quarantine (or, in a dry run, only say what would move).
"""

from __future__ import annotations

import logging
import os
import stat
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from anfe.faces import checks
from anfe.faces.analysis import ImageAnalysis
from anfe.faces.batch import BatchStats, analyse_paths
from anfe.faces.cache import AnalysisCache
from anfe.core.config import AnalysisParams
from anfe.core.hashing import content_hash
from anfe.core.layout import DatasetLayout, open_dataset
from anfe.core.people import PERSON_FIELDS, person_from_record
from anfe.core.store import Store, by_content_hash

from . import moves
from . import quarantine as q
from .rules import (
    ALL_REASONS, CleanRules, Item, Verdict, check_collection, check_image, check_people,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rejection:
    """One file a rule took out: where it was, why, and where it went (None in a dry run or
    when it could not be moved; ``problem`` then says why)."""

    path: Path
    gender: str
    reason: str
    detail: str
    content_hash: str
    moved_to: Path | None = None
    problem: str | None = None


@dataclass
class CleanReport:
    """What a cleaning run found and did."""

    root: Path
    dry_run: bool
    rules: CleanRules
    scanned: int = 0
    kept: dict[str, int] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    stats: BatchStats | None = None

    @property
    def genders(self) -> list[str]:
        return sorted(set(self.kept) | {r.gender for r in self.rejections})

    def counts(self) -> dict[str, dict[str, int]]:
        """Rejections by reason then gender (reasons in rule order, only those that occurred)."""
        table: dict[str, dict[str, int]] = {}
        for r in sorted(self.rejections, key=lambda r: ALL_REASONS.index(r.reason)):
            row = table.setdefault(r.reason, {})
            row[r.gender] = row.get(r.gender, 0) + 1
        return table

    @property
    def moved(self) -> list[Rejection]:
        return [r for r in self.rejections if r.moved_to is not None]

    @property
    def skipped(self) -> list[Rejection]:
        return [r for r in self.rejections if r.problem is not None]


def scan(layout: DatasetLayout) -> list[tuple[Path, str]]:
    """Every entry under ``images/<gender>/`` (any depth, any kind: a non-image file, a link or
    a pipe is something to clean too), as :meth:`DatasetLayout.entries` lists them, with its gender."""
    return [(path, gender) for gender in layout.genders() for path in layout.entries(gender)]


def not_a_file(path: Path) -> str | None:
    """What ``path`` is when it is not a plain file (a link, a pipe...), else None."""
    if path.is_symlink():
        return f"a symbolic link to {os.readlink(path)}"
    mode = path.lstat().st_mode
    kinds = {stat.S_ISREG: None, stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a named pipe",
             stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device"}
    return next((kind for test, kind in kinds.items() if test(mode)), "not a plain file")


#: The store record fields :func:`clean` reads: the people's and the crawl's label conflicts'.
CATALOG_FIELDS = (*PERSON_FIELDS, "label_conflict", "label_source", "conflicting_genders")


def plan(items: Sequence[Item], rules: CleanRules, root: Path, records: Sequence[Mapping[str, Any]] = ()
         ) -> dict[int, Verdict]:
    """The verdict of every rejected item, by index: the per-image rules and the label conflicts
    the crawl recorded (in the store ``records``; not those a reviewer settled since), then the
    collection rules on what those kept, then the people rules (persons from the records) on
    what every other rule kept."""
    conflicts = {str(r["content_hash"]): r.get("conflicting_genders") or ["two genders"]
                 for r in records if r.get("label_conflict") and r.get("label_source") != "review"}
    people = by_content_hash(records, person_from_record)
    verdicts: dict[int, Verdict] = {}
    for index, item in enumerate(items):
        verdict = check_image(item, rules)
        genders = conflicts.get(item.analysis.content_hash)
        if verdict is None and rules.label_conflict and genders:
            verdict = Verdict(checks.LABEL_CONFLICT.name, f"found under {' and '.join(genders)} when crawled")
        if verdict is not None:
            verdicts[index] = verdict
    survivors = [i for i in range(len(items)) if i not in verdicts and items[i].analysis.ok]
    for local, verdict in check_collection([items[i] for i in survivors], rules, root).items():
        verdicts[survivors[local]] = verdict
    survivors = [i for i in survivors if i not in verdicts]
    for local, verdict in check_people([items[i] for i in survivors], people, rules, root).items():
        verdicts[survivors[local]] = verdict
    return verdicts


def clean(
    root: str | Path, rules: CleanRules, params: AnalysisParams, cache: AnalysisCache | None,
    workers: int = 1, store: Store | None = None, ages: Mapping[str, float] | None = None,
    ages_by_name: Mapping[str, float] | None = None, dry_run: bool = False, progress: bool = True,
) -> CleanReport:
    """Scan ``root``, analyse once (through ``cache``), apply ``rules`` and quarantine rejects. First
    a write check (a read-only dataset is refused, nothing moved) and a replay of any interrupted
    move; a file gone since the scan is skipped. A dry run writes nothing but the analysis cache."""
    layout = open_dataset(root)
    ages, ages_by_name = ages or {}, ages_by_name or {}
    report = CleanReport(layout.root, dry_run, rules)
    if not dry_run:
        moves.check_writable(layout, layout.label_folders())
        report.repaired = moves.replay(layout, store)
    entries = scan(layout)
    report.scanned = len(entries)
    odd = {path: (gender, kind) for path, gender in entries if (kind := not_a_file(path))}
    files = [(path, gender) for path, gender in entries if path not in odd]
    analyses, report.stats = analyse_paths([p for p, _ in files], params, cache, workers, progress)
    items = []
    for path, gender in files:
        a = analyses[str(path)]
        try:
            size = path.stat().st_size
        except OSError:
            size = 0
        items.append(Item(path, gender, a, ages.get(a.content_hash, ages_by_name.get(path.name)), size))
    # One read of the catalog, of the fields the people rules and the crawl's conflicts need.
    records = store.find_images(fields=CATALOG_FIELDS) if store is not None else []
    verdicts = plan(items, rules, layout.root, records)
    for path, (gender, kind) in odd.items():  # links and pipes are never read: quarantined as what they are
        verdicts[len(items)] = Verdict(checks.NOT_A_FILE.name, kind)
        items.append(Item(path, gender, ImageAnalysis("path-" + content_hash(str(path).encode()))))
    report.kept = dict(Counter(item.gender for index, item in enumerate(items) if index not in verdicts))
    for index in sorted(verdicts, key=lambda i: (ALL_REASONS.index(verdicts[i].reason), str(items[i].path))):
        report.rejections.append(_apply(layout, items[index], verdicts[index], store, dry_run, rules))
    return report


def _apply(layout: DatasetLayout, item: Item, verdict: Verdict, store: Store | None, dry_run: bool,
           rules: CleanRules) -> Rejection:
    a = item.analysis
    rejection = Rejection(item.path, item.gender, verdict.reason, verdict.detail, a.content_hash)
    if dry_run:
        return rejection
    to_review = verdict.reason in (checks.LABEL_CONFLICT.name, checks.MISLABELLED_PERSON.name) or (
        verdict.reason == checks.WRONG_PERSON.name and not rules.quarantine_wrong_person)
    status = moves.STATUS_REVIEW if to_review else moves.STATUS_QUARANTINED
    try:
        moved = q.quarantine_file(
            layout, item.path, verdict.reason, verdict.detail, store, actor="clean",
            gender=item.gender, content_hash=a.content_hash or None, status=status,
            # the twin of an exact duplicate is kept: its record (same hash) stays as it is
            update_store=verdict.reason not in (checks.EXACT_DUPLICATE.name, checks.NOT_A_FILE.name),
            extra={"width": a.width, "height": a.height, "faces": a.face_count, "phash": a.phash},
        )
    except moves.ReadOnlyDatasetError:
        raise
    except moves.QuarantineError as exc:  # vanished since the scan, or a name taken: a file never stops a run
        log.warning("skipped: %s", exc)
        return replace(rejection, problem=str(exc))
    return replace(rejection, moved_to=moved)
