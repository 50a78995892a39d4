"""What a reviewer sees next: the queue of images (order, paging), or one person's photos at a
time (the marked ones: sent to review as ``wrong-person``, or far from the person's other photos;
and whether the whole person's label is suspect), read from the folders, the analysis cache, the
store records and the decision log. No file is touched here; acting on an item is
:mod:`curation.decisions`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from anfe.faces import checks
from anfe.faces.analysis import ImageAnalysis
from anfe.faces.batch import analyse_paths
from anfe.faces.cache import AnalysisCache
from anfe.core.config import AnalysisParams
from anfe.faces.executor import Executor
from anfe.core.layout import DatasetLayout
from anfe.core.people import PERSON_FIELDS, person_from_record

from . import quarantine
from .decisions import ReviewLog
from .moves import STATUS_ACTIVE, STATUS_REVIEW
from .identity import DEFAULT_WRONG_PERSON_DISTANCE, check_people_labels, person_outlier_distances
from .suspicion import most_suspicious_first, suspicion_by_key
from .views import PersonView, QueueItem

ORDERS = ("suspicion", "filename", "rule", "source")
_RULE_FIELDS = ("rule", "review_rule", "review_reason", "quarantine_reason", "flag")
_SOURCE_FIELDS, _URL_FIELDS = ("site", "source"), ("source_url", "page_url", "url", "image_url")
#: The store record fields the queue reads: the review page asks the store for only these.
RECORD_FIELDS = tuple(dict.fromkeys((
    "content_hash", *_RULE_FIELDS, "label_conflict", "status", *_SOURCE_FIELDS, *_URL_FIELDS, *PERSON_FIELDS,
)))
#: Store records by content hash, and analyses by file name.
Records = Mapping[str, Mapping[str, Any]]
Analyses = Mapping[str, ImageAnalysis]


def load_analyses(
    paths: Sequence[Path], params: AnalysisParams, cache: AnalysisCache | None,
    known: Analyses | None = None, workers: int | Executor = 1, progress: bool = False,
) -> dict[str, ImageAnalysis]:
    """Analysis per file name (content-addressed, so a move keeps it): ``known`` ones, then the
    cache, analysing only new images."""
    known = dict(known or {})
    todo = [p for p in paths if p.name not in known]
    if todo:
        results, _stats = analyse_paths(todo, params, cache, workers=workers, progress=progress)
        known.update((p.name, results[str(p)]) for p in todo)
    return known


def record_rule(record: Mapping[str, Any] | None) -> str | None:
    """The rule or status the automatic cleaning left on an image record, if any."""
    record = record or {}
    for key in _RULE_FIELDS:
        if record.get(key):
            return str(record[key])
    if record.get("label_conflict"):  # the crawler found the same bytes under two genders
        return checks.LABEL_CONFLICT.name
    status = record.get("status")
    return str(status) if status and status != STATUS_ACTIVE else None


def record_source(record: Mapping[str, Any] | None) -> str | None:
    """The site an image came from (``site``/``source`` field, or the host of its URL)."""
    record = record or {}
    for key in _SOURCE_FIELDS + _URL_FIELDS:
        if record.get(key):
            return str(record[key]) if key in _SOURCE_FIELDS else urlparse(str(record[key])).netloc or None
    return None


def record_person(record: Mapping[str, Any] | None) -> str | None:
    """The name of the person an image record says the photo shows, if any."""
    person = person_from_record(record)
    return person.name if person else None


def _digest(path: Path, analyses: Analyses) -> str:
    """The content hash of an image (its file name's stem until analysed)."""
    analysis = analyses.get(path.name)
    return analysis.content_hash if analysis and analysis.content_hash else path.stem


def build_queue(
    layout: DatasetLayout, analyses: Analyses, review_log: ReviewLog, records: Records | None = None,
    gender: str | None = None, order: str = "suspicion", include_reviewed: bool = False,
    files: Sequence[Path] | None = None,
) -> list[QueueItem]:
    """The images of ``gender`` (all when None) in review order; reviewed ones only if asked.
    Suspicion is computed over every single-face image of every gender as the folders are now,
    so a relabel re-scores the rest (not for the file-name order, which does not use it).
    ``files``: the folders' images when the caller has listed them already."""
    if order not in ORDERS:
        raise ValueError(f"unknown order {order!r}: use one of {', '.join(ORDERS)}")
    records = records or {}
    files = layout.image_files() if files is None else files
    scores: dict = {}
    if order != "filename":
        vectors = {p.name: getattr(analyses.get(p.name), "single_embedding", None) for p in files}
        scores = suspicion_by_key(vectors, {p.name: p.parent.name for p in files})
    items = []
    for path in (p for p in files if gender in (None, p.parent.name)):
        analysis, digest = analyses.get(path.name), _digest(path, analyses)
        record = records.get(digest)
        item = QueueItem(
            path, path.parent.name, digest, scores.get(path.name), record_rule(record), record_source(record),
            review_log.reviewed(digest), analysis.face_count if analysis else None,
            analysis.error if analysis else None, person=record_person(record),
        )
        if include_reviewed or not item.reviewed:
            items.append(item)
    return sort_queue(items, order)


def sort_queue(items: Sequence[QueueItem], order: str) -> list[QueueItem]:
    """``items`` in one of :data:`ORDERS`; ties and unscored images fall back to the file name."""
    by_name = sorted(items, key=lambda i: i.file_name)
    suspicion = [by_name[i] for i in most_suspicious_first([i.score for i in by_name])]
    if order == "filename":
        return by_name
    if order in ("rule", "source"):
        return sorted(suspicion, key=lambda i: (getattr(i, order) is None, getattr(i, order) or ""))
    return suspicion


def page_of(items: Sequence[QueueItem], page: int, per_page: int) -> tuple[list[QueueItem], int, int]:
    """(items on ``page`` (0-based, clamped), the clamped page, the number of pages)."""
    pages = max(1, -(-len(items) // max(1, per_page)))
    page = min(max(0, page), pages - 1)
    return list(items[page * per_page : (page + 1) * per_page]), page, pages


def flagged_items(layout: DatasetLayout, records: Records | None = None) -> list[QueueItem]:
    """Files sent to review (held in ``quarantine/`` until a person decides), by file name."""
    records = records or {}
    items = [
        QueueItem(layout.root / e.dst, e.gender or "unknown", e.content_hash, rule=e.reason,
                  source=record_source(records.get(e.content_hash)), entry_id=e.id, detail=e.detail,
                  person=record_person(records.get(e.content_hash)))
        for e in quarantine.list_quarantined(layout)
        if e.status == STATUS_REVIEW and (layout.root / e.dst).is_file()
    ]
    return sorted(items, key=lambda i: (i.file_name, i.gender))


def counts(layout: DatasetLayout, review_log: ReviewLog, analyses: Analyses) -> dict[str, tuple[int, int]]:
    """Per gender: (images left to review, images in total)."""
    files = {label: layout.image_files(label) for label in layout.genders()}
    return {label: (sum(not review_log.reviewed(_digest(p, analyses)) for p in paths), len(paths))
            for label, paths in files.items()}


def other_labels(layout: DatasetLayout, gender: str) -> list[str]:
    """The labels an image of ``gender`` can be moved to (the other gender when there are two)."""
    return [g for g in layout.genders() if g != gender] or [g for g in ("female", "male") if g != gender]


def people_views(
    layout: DatasetLayout, analyses: Analyses, review_log: ReviewLog, records: Records,
    threshold: float = DEFAULT_WRONG_PERSON_DISTANCE, files: Sequence[Path] | None = None,
) -> list[PersonView]:
    """Every person named by the records: suspect people first, then those with the most marked
    photos, then by name. ``analyses`` is keyed by file name (:func:`load_analyses`); ``files`` as
    in :func:`build_queue`."""
    items = build_queue(layout, analyses, review_log, records, order="filename", include_reviewed=True, files=files)
    grouped: dict[str, list[QueueItem]] = {}
    persons = {}
    for item in items + flagged_items(layout, records):
        if (person := person_from_record(records.get(item.content_hash))) is not None:
            persons[person.key] = person
            grouped.setdefault(person.key, []).append(item)
    # live checks over every photo with one face
    faced = [(key, item, vector) for key, group in grouped.items() for item in group
             if (vector := getattr(analyses.get(item.file_name), "single_embedding", None)) is not None]
    far: dict[str, float] = {}
    label_checks = {}
    if faced:
        keys, photos, vectors = zip(*faced)
        x = np.stack(vectors)
        far = {i.key: d for i, d in zip(photos, person_outlier_distances(x, keys)) if d > threshold}
        labels = check_people_labels(x, [i.gender for i in photos], keys)
        label_checks = {c.person: c for c in labels if c.flagged}
    views, beyond = [], f"from the median of the other photos (> {threshold:g})"
    for key, group in grouped.items():
        marked = {}
        for item in group:
            if item.rule == checks.WRONG_PERSON.name and item.entry_id:
                marked[item.key] = item.detail or "sent to review as wrong-person"
            elif item.key in far:
                marked[item.key] = f"{far[item.key]:.2f} {beyond}"
        sent = [i.detail for i in group if i.rule == checks.MISLABELLED_PERSON.name and i.entry_id]
        suspect = sent[0] if sent else None
        if suspect is None and key in label_checks:
            c = label_checks[key]
            suspect = f"{c.disagree} of {c.photos} photos look {c.predicted}, not {c.label}"
        group.sort(key=lambda i: i.file_name)
        views.append(PersonView(key, persons[key].name, persons[key].site, group, marked, suspect))
    return sorted(views, key=lambda v: (v.suspect is None, -len(v.marked), v.name.lower(), v.key))


__all__ = [
    "ORDERS", "PersonView", "QueueItem", "RECORD_FIELDS", "build_queue", "counts", "flagged_items",
    "load_analyses", "other_labels", "page_of", "people_views", "record_person", "record_rule",
    "record_source", "sort_queue",
]
