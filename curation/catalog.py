"""The review page's catalog side: bring the store's image records in line with the folders once
per session (:func:`sync`), then read one page of a queue (:func:`gender_page`,
:func:`flagged_page`) and the progress figures (:func:`progress`) through indexed store queries,
so that a click costs the same at 50,000 photos as at 100.

After :func:`sync`, every photo in ``images/<gender>/`` has a record with ``status`` ``active``,
its ``gender`` and ``path``, and ``suspicion`` (the score of :mod:`curation.suspicion`), ``faces``
and ``analysis_error`` from the analysis cache. Decisions keep ``status``, ``gender`` and
``review_action`` up to date as they move files (:func:`curation.moves.record_of`); the scores
are worked out again at the next session's sync when the set of photos or labels has changed.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anfe.faces.cache import AnalysisCache
from anfe.core.config import AnalysisParams
from anfe.faces.executor import Executor
from anfe.core.crashpoints import crash_point
from anfe.core.hashing import content_hash
from anfe.core.layout import DatasetLayout
from anfe.core.store import Store

from anfe.core.people import PERSON_FIELDS, person_from_record

from . import moves, person_summary, quarantine
from .decisions import ACTIONS
from .views import PersonView, QueueItem
from .moves import STATUS_ACTIVE, STATUS_REVIEW, Move
from .queue import RECORD_FIELDS, load_analyses, record_person, record_rule, record_source
from .suspicion import suspicion_by_key

#: The store meta key holding the fingerprint of the photos and labels the scores were made for.
SCORES_META = "review_scores"
#: The store meta key holding what the last sync saw of the folders (:func:`folders_stamp`) and
#: whether the records name people.
SYNC_META = "review_sync"
#: Indexes the page's queries walk: a gender's queue (unreviewed or all) by suspicion or site, the
#: files sent to review by reason, and the progress counts.
INDEXES = (
    ("status", "gender", "review_action", "suspicion"), ("status", "gender", "suspicion"),
    ("status", "gender", "review_action", "site", "suspicion"), ("status", "quarantine_reason", "suspicion"),
    ("review_action", "reviewed_by"), ("review_action", "gender"), ("status", "gender"), ("site",),
    ("status", "review_action", "gender"),  # the left-per-gender count, from the index alone
    ("status", "person_id", "site"), ("status", "person_name", "site"),  # a person's photos
    *person_summary.INDEXES, (person_summary.KEY, person_summary.LEAD),  # the people list, one person
)
#: Bumped when the scores a sync keeps on the records gain a field (the next sync scores again).
SCORES_VERSION = "people-1"
#: How each order of :data:`curation.queue.ORDERS` sorts the store's records.
SORTS: dict[str, list[tuple[str, int]]] = {
    "suspicion": [("suspicion", -1)], "filename": [("content_hash", 1)],
    "rule": [("quarantine_reason", -1), ("suspicion", -1)], "source": [("site", 1), ("suspicion", -1)],
}
#: The record fields a tile shows.
PAGE_FIELDS = tuple(dict.fromkeys((
    *RECORD_FIELDS, "path", "gender", "suspicion", "faces", "analysis_error", "review_action",
    "quarantine_id", "quarantine_detail", "quarantine_reason",
)))
#: The status :func:`sync` gives a record whose photo is no longer in ``images/`` (moved or
#: deleted by hand): out of every queue until the file is back.
STATUS_MISSING = "missing"
_HEX = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Filters:
    """What the reviewer narrowed a view to: a reason (files sent to review), a site, and a text
    the person's name must hold (any case)."""

    reason: str | None = None
    site: str | None = None
    person: str = ""

    def equals(self) -> dict[str, Any]:
        """The equality conditions of these filters (the search is separate)."""
        return {k: v for k, v in (("site", self.site),) if v}

    def search(self) -> tuple[str, str] | None:
        """The (field, text) search of the person filter, if any."""
        text = self.person.strip()
        return ("person_name", text) if text else None


@dataclass(frozen=True)
class SyncReport:
    """What :func:`sync` found and changed."""

    photos: int
    updated: int
    scored: int
    #: Whether any record names the person its photo shows (the by-person view needs that).
    people: bool = False


def fingerprint(places: Iterable[tuple[str, str]], params_key: str) -> str:
    """The fingerprint of (content hash, label) pairs and the analysis parameters: the scores
    depend on nothing else."""
    digest = hashlib.sha256(params_key.encode())
    for pair in sorted(set(places)):
        digest.update(f"{pair[0]}:{pair[1]}\n".encode())
    return digest.hexdigest()


def _digest(path: Path) -> str:
    """A photo's content hash: its file name (files are named by it), else the hash of its bytes."""
    return path.stem if _HEX.match(path.stem) else content_hash(path.read_bytes())


def _review_entries(layout: DatasetLayout) -> list[Move]:
    """The journal lines of the files sent to review that are still there."""
    return [e for e in quarantine.list_quarantined(layout)
            if e.status == STATUS_REVIEW and (layout.root / e.dst).is_file()]


def folders_stamp(layout: DatasetLayout, params_key: str) -> str:
    """The modification times of ``images/`` and its label folders and the move journal's size
    and time: adding, removing or moving a photo (files are never changed in place: they are
    named by their content) changes one of them."""
    parts = [params_key]
    for folder in [layout.images, *(layout.gender_dir(g) for g in layout.genders())]:
        parts.append(f"{folder.name}:{folder.stat().st_mtime_ns}")
    try:
        journal = moves.journal_path(layout).stat()
        parts.append(f"journal:{journal.st_size}:{journal.st_mtime_ns}")
    except OSError:
        parts.append("journal:none")
    return "|".join(parts)


def sync(layout: DatasetLayout, store: Store, params: AnalysisParams, cache: AnalysisCache,
         workers: int | Executor = 1, progress: bool = False) -> SyncReport:
    """Make the records say where each photo is (the folders win), and score the photos when the
    set of photos or their labels changed since the scores were made. One pass over the folders
    and the records (skipped when no folder changed since the last sync: a few stat calls); the
    analyses are read (or made) only when scoring."""
    for index in INDEXES:
        store.ensure_index(index)
    stamp_before = folders_stamp(layout, params.cache_key)
    last = store.get_meta(SYNC_META)
    if isinstance(last, dict) and last.get("folders") == stamp_before:
        return SyncReport(store.count_images(status=STATUS_ACTIVE), 0, 0, bool(last.get("people")))
    report = _sync(layout, store, params, cache, workers, progress)
    store.set_meta(SYNC_META, {"folders": stamp_before, "people": report.people})  # last: a killed sync is redone
    crash_point("review.sync.stamp")
    return report


def _sync(layout: DatasetLayout, store: Store, params: AnalysisParams, cache: AnalysisCache,
          workers: int | Executor, progress: bool) -> SyncReport:
    """The full pass of :func:`sync`."""
    files = {}
    for path in layout.image_files():
        try:
            files[path] = _digest(path)
        except OSError:
            continue  # vanished meanwhile: one odd file never stops the page
    known = {r["content_hash"]: r for r in store.find_images(
        fields=tuple(dict.fromkeys(("content_hash", "status", "gender", "path", *PERSON_FIELDS))))}
    people = any(r.get("person_id") not in (None, "") or r.get("person_name") for r in known.values())
    root = layout.root
    fixes = []
    for path, digest in files.items():
        want = {"status": STATUS_ACTIVE, "gender": path.parent.name, "path": path.relative_to(root).as_posix()}
        have = known.get(digest, {})
        if any(have.get(k) != v for k, v in want.items()):
            fixes.append({"content_hash": digest, **want})
    present = set(files.values())
    fixes += [{"content_hash": h, "status": STATUS_MISSING} for h, r in known.items()
              if r.get("status") == STATUS_ACTIVE and h not in present and str(r.get("path", "")).startswith("images/")
              and not (root / str(r["path"])).is_file()]
    entries = _review_entries(layout)
    for entry in entries:  # held for review: the record says so (unless a copy is under a label)
        have = known.get(entry.content_hash, {})
        if entry.content_hash not in present and (have.get("status"), have.get("path")) != (STATUS_REVIEW, entry.dst):
            fixes.append({**moves.record_of(entry), "content_hash": entry.content_hash})
    persons = {h: p for h, r in known.items() if (p := person_from_record(r)) is not None}
    places = [(d, p.parent.name) for p, d in files.items()] + [(e.content_hash, e.gender or "") for e in entries]
    places += [(h, f"person:{p.key}:{p.name}") for h, p in persons.items()]  # a renamed person: scored again
    stamp = fingerprint(places, f"{params.cache_key}|{SCORES_VERSION}")
    if fixes:
        store.upsert_images(fixes)
        crash_point("review.sync.records")
    if store.get_meta(SCORES_META) == stamp:
        return SyncReport(len(files), len(fixes), 0, people)
    paths = list(files) + [root / e.dst for e in entries]
    analyses = load_analyses(paths, params, cache, workers=workers, progress=progress)
    labels = {p.name: p.parent.name for p in files}
    labels.update({(root / e.dst).name: e.gender or "" for e in entries if (root / e.dst).name not in labels})
    scores = suspicion_by_key({p.name: getattr(analyses.get(p.name), "single_embedding", None) for p in paths},
                              labels)
    by_hash = {}
    for path in paths:
        digest = files.get(path) or path.stem
        analysis = analyses.get(path.name)
        by_hash[digest] = {"content_hash": digest, "suspicion": scores.get(path.name),
                           "faces": analysis.face_count if analysis else None,
                           "analysis_error": analysis.error if analysis else None}
    _add_people(by_hash, files, entries, analyses, persons, root)
    stale = [{"content_hash": r["content_hash"], **dict.fromkeys(person_summary.FIELDS)}
             for r in store.find_images(fields=("content_hash",), **{person_summary.LEAD: 1})
             if r["content_hash"] not in by_hash]  # a lead whose photo left the folders
    store.upsert_images([*by_hash.values(), *stale])
    crash_point("review.sync.scores")
    store.set_meta(SCORES_META, stamp)  # after the scores: a sync killed before it scores again
    crash_point("review.sync.fingerprint")
    return SyncReport(len(files), len(fixes), len(by_hash), people)


def _add_people(by_hash: dict[str, dict[str, Any]], files: Mapping[Path, str], entries: list[Move],
                analyses: Mapping[str, Any], persons: Mapping[str, Any], root: Path) -> None:
    """Add the by-person view's fields (:mod:`curation.person_summary`) to the scored records."""
    def vector(path: Path) -> Any:
        return getattr(analyses.get(path.name), "single_embedding", None)

    photos = [person_summary.Photo(d, d, p.parent.name, vector(p))
              for p, d in sorted(files.items(), key=lambda f: f[0].name)]
    photos += [person_summary.Photo(e.id, e.content_hash, e.gender or "unknown", vector(root / e.dst), e.id,
                                    e.reason, e.detail)
               for e in sorted(entries, key=lambda e: (Path(e.dst).name, e.gender or ""))]
    for digest, fields in person_summary.person_fields(photos, persons).items():
        by_hash.setdefault(digest, {"content_hash": digest}).update(fields)


def item_of(layout: DatasetLayout, record: Mapping[str, Any], entry: Move | None = None) -> QueueItem:
    """The tile of a store record (and, for a file sent to review, its journal line)."""
    gender = (entry.gender if entry else None) or str(record.get("gender") or "unknown")
    path = layout.root / (entry.dst if entry else str(record.get("path") or f"images/{gender}/"
                                                      f"{record['content_hash']}.jpg"))
    return QueueItem(
        path, gender, str(record["content_hash"]), record.get("suspicion"),
        entry.reason if entry else record_rule({k: v for k, v in record.items() if k != "status"}),
        record_source(record), bool(record.get("review_action")) and entry is None, record.get("faces"),
        record.get("analysis_error"), entry_id=entry.id if entry else None,
        detail=entry.detail if entry else None, person=record_person(record),
    )


@dataclass(frozen=True)
class Page:
    """One page of a view: its tiles, the page shown (0-based, clamped), how many pages and items."""

    items: list[QueueItem]
    page: int
    pages: int
    total: int


def _clamp(page: int, per_page: int, total: int) -> tuple[int, int]:
    pages = max(1, -(-total // max(1, per_page)))
    return min(max(0, page), pages - 1), pages


def gender_page(layout: DatasetLayout, store: Store, gender: str, order: str, page: int, per_page: int,
                show_reviewed: bool = False, filters: Filters = Filters()) -> Page:
    """One page of a gender's queue: a count and one sorted, limited query (both on an index)."""
    equals: dict[str, Any] = {"status": STATUS_ACTIVE, "gender": gender, **filters.equals()}
    if not show_reviewed:
        equals["review_action"] = None
    total = store.count_images(search=filters.search(), **equals)
    page, pages = _clamp(page, per_page, total)
    records = store.query_images(PAGE_FIELDS, sort=SORTS.get(order, SORTS["suspicion"]), skip=page * per_page,
                                 limit=per_page, search=filters.search(), **equals)
    return Page([item_of(layout, r) for r in records], page, pages, total)


def flagged_page(layout: DatasetLayout, store: Store, page: int, per_page: int, filters: Filters = Filters()
                 ) -> Page:
    """One page of the files sent to review, most suspicious first (then by reason and name).

    Read from the quarantine journal (the same photo may be held twice, once per label, under one
    record), so this view costs in proportion to the files sent to review, not to the dataset."""
    entries = [e for e in _review_entries(layout) if filters.reason in (None, e.reason)]
    records = {r["content_hash"]: r for r in store.query_images(PAGE_FIELDS, status=STATUS_REVIEW,
                                                                search=filters.search(), **filters.equals())}
    if filters.site or filters.search():
        entries = [e for e in entries if e.content_hash in records]
    score = {h: r.get("suspicion") for h, r in records.items()}
    entries.sort(key=lambda e: (score.get(e.content_hash) is None, -(score.get(e.content_hash) or 0.0),
                                e.reason, Path(e.dst).name, e.gender or ""))
    page, pages = _clamp(page, per_page, len(entries))
    shown = entries[page * per_page : (page + 1) * per_page]
    return Page([item_of(layout, records.get(e.content_hash) or {"content_hash": e.content_hash}, e)
                 for e in shown], page, pages, len(entries))


@dataclass(frozen=True)
class PeoplePage:
    """One page of the people list (suspect people first), the page shown, how many pages and people."""

    people: list[person_summary.Summary]
    page: int
    pages: int
    total: int


def people_page(store: Store, page: int, per_page: int, search: str = "") -> PeoplePage:
    """One page of the people the last scoring found, in their order: a count and one query, both
    on the lead records' index (a name search scans the lead records only: one per person)."""
    text = search.strip()
    where = {"search": ("person_name", text) if text else None, person_summary.LEAD: 1}
    total = store.count_images(**where)
    page, pages = _clamp(page, per_page, total)
    records = store.query_images((person_summary.KEY, person_summary.SUMMARY), sort=[(person_summary.RANK, 1)],
                                 skip=page * per_page, limit=per_page, **where)
    return PeoplePage([person_summary.summary_of(r) for r in records], page, pages, total)


_PERSON_PAGE_FIELDS = (*PAGE_FIELDS, person_summary.KEY, person_summary.MARKS)


def person_view(layout: DatasetLayout, store: Store, key: str) -> PersonView | None:
    """One person's photos (under a label, and sent to review) with their marks, read through the
    (status, person) index; None when no lead record names ``key``. A label suspicion is shown
    only while the person's label is the one it was found for (a move answers it)."""
    lead = store.query_images((person_summary.KEY, person_summary.SUMMARY), limit=1,
                              **{person_summary.KEY: key, person_summary.LEAD: 1})
    if not lead:
        return None
    summary = person_summary.summary_of(lead[0])
    where = {person_summary.KEY: key}
    active = store.query_images(_PERSON_PAGE_FIELDS, sort=[("content_hash", 1)], status=STATUS_ACTIVE, **where)
    held = {r["content_hash"]: r for r in store.query_images(_PERSON_PAGE_FIELDS, status=STATUS_REVIEW, **where)}
    items = [item_of(layout, r) for r in active]
    if held:  # the journal only when the person has files sent to review
        items += [item_of(layout, held[e.content_hash], e) for e in _review_entries(layout) if e.content_hash in held]
    items.sort(key=lambda i: (i.file_name, i.gender))
    marks = {r["content_hash"]: r.get(person_summary.MARKS) or {} for r in [*active, *held.values()]}
    marked = {i.key: str(why) for i in items
              if (why := marks.get(i.content_hash, {}).get(person_summary.mark_key(i.entry_id, i.gender)))}
    view = PersonView(key, summary.name, summary.site, items, marked, None)
    if view.gender == summary.gender:
        view = PersonView(key, summary.name, summary.site, items, marked, summary.suspect)
    return view


@dataclass(frozen=True)
class Progress:
    """Reviewed and left per gender, left per reason among the files sent to review, and how many
    decisions stand per reviewer: all from group counts on indexes."""

    left: dict[str, int] = field(default_factory=dict)
    #: Photos under each label now (reviewed or not).
    total: dict[str, int] = field(default_factory=dict)
    reviewed: dict[str, int] = field(default_factory=dict)
    flagged: dict[str, int] = field(default_factory=dict)
    reviewers: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        """The progress line the page prints (plain text)."""
        parts = [f"{g}: {self.reviewed.get(g, 0):,} reviewed, {self.left.get(g, 0):,} left"
                 for g in sorted(set(self.left) | set(self.reviewed))]
        if self.flagged:
            parts.append("sent to review: " + ", ".join(f"{n:,} {r}" for r, n in sorted(self.flagged.items())))
        return " · ".join(parts)

    def reviewers_line(self) -> str:
        """Standing decisions per reviewer, most first."""
        ranked = sorted(self.reviewers.items(), key=lambda kv: (-kv[1], kv[0]))
        return ", ".join(f"{who} {n:,}" for who, n in ranked) or "no decisions yet"


def _add(into: dict[str, int], counts: Mapping[Any, int]) -> None:
    for key, n in counts.items():
        if key is not None:
            into[str(key)] = into.get(str(key), 0) + n


def progress(store: Store) -> Progress:
    """The progress figures, from the records' ``review_action`` (which the decisions keep: set by
    keep, relabel and reject, cleared by undo)."""
    left: dict[str, int] = {}
    _add(left, store.count_by("gender", status=STATUS_ACTIVE, review_action=None))
    total: dict[str, int] = {}
    _add(total, store.count_by("gender", status=STATUS_ACTIVE))
    reviewed: dict[str, int] = {}
    reviewers: dict[str, int] = {}
    for action in ACTIONS:
        _add(reviewed, store.count_by("gender", review_action=action))
        _add(reviewers, store.count_by("reviewed_by", review_action=action))
    flagged: dict[str, int] = {}
    _add(flagged, store.count_by("quarantine_reason", status=STATUS_REVIEW))
    return Progress(left, total, reviewed, flagged, reviewers)


def sites(store: Store) -> list[str]:
    """The sites the records name (for the site filter)."""
    return sorted(str(s) for s in store.count_by("site") if s)


def reasons(store: Store) -> list[str]:
    """The reasons files were sent to review for (for the reason filter)."""
    return sorted(str(r) for r in store.count_by("quarantine_reason", status=STATUS_REVIEW) if r)


__all__ = ["Filters", "INDEXES", "PeoplePage", "people_page", "person_view", "STATUS_MISSING", "PAGE_FIELDS", "Page", "Progress", "SORTS", "SyncReport", "flagged_page",
           "fingerprint", "folders_stamp", "gender_page", "item_of", "progress", "reasons", "sites", "sync"]
