"""Write a dataset root as a Hugging Face ``imagefolder``: ``<split>/<gender>/<file>`` plus one
``metadata.jsonl`` (or ``metadata.csv``) per split with what the store knows of each photo, and a
dataset card (``README.md``, see :mod:`anfe.exchange.dataset_card`).

``datasets.load_dataset("imagefolder", data_dir=OUT)`` then gives the image, its ``label`` (the
folder) and the columns of :data:`COLUMNS`. Quarantined photos stay out unless asked for; a split by
person puts no person on both sides. Photos are copied (the root is only read).
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anfe.faces.cache import AnalysisCache
from anfe.core.errors import DatasetError
from anfe.core.layout import DatasetLayout, is_image_file, walk
from anfe.core.people import person_from_record
from anfe.models.splits import draw_split
from anfe.core.store import Store, by_content_hash

FORMATS = ("hf", "csv")
#: Every metadata row has these columns (None where unknown) after ``file_name``; ``label`` is the
#: gender (its folder: imagefolder infers no label of its own once a metadata file is present).
COLUMNS = ("label", "person", "site", "source_url", "page_url", "face_box", "age", "race", "content_hash",
           "status", "quarantine_reason")
#: Record fields that are bookkeeping, not labels a user of the dataset needs.
_NOT_GROUPS = {"file_name", "image", "content_hash", "path", "gender", "status", "site", "url", "final_url", "page_url", "person_name",
               "person_id", "other_people", "other_urls", "http_status", "bytes", "width", "height", "format",
               "fetched_at", "source", "spider", "gate", "derived", "original_hash", "original_bytes", "bbox",
               "imported_from", "imported_at", "quarantine_reason", "quarantine_detail", "quarantine_id",
               "quarantined_at", "quarantined_by", "review_action", "synthetic_person", "source_bbox", "age",
               "label_conflict", "label_source", "conflicting_genders", "prev_status", "reviewed_at", "reviewed_by"}


@dataclass
class ExportResult:
    """Where the export went and what it holds (rows per split, and the rows themselves)."""

    out: Path
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    group_columns: list[str] = field(default_factory=list)

    def count(self) -> int:
        return sum(len(r) for r in self.rows.values())


def _photos(layout: DatasetLayout, records: Mapping[str, dict], include_quarantine: bool) -> list[tuple[Path, dict]]:
    """(file, record) of every photo to export: the label folders, then quarantine if asked."""
    found = []
    for path in layout.image_files():
        record = records.get(path.stem) or {}
        found.append((path, {**record, "gender": path.parent.name if path.parent.parent == layout.images
                             else record.get("gender") or path.relative_to(layout.images).parts[0],
                             "status": "active"}))
    if include_quarantine and layout.quarantine.is_dir():
        for path in walk(layout.quarantine):
            record = records.get(path.stem)
            if is_image_file(path) and record and record.get("gender"):
                found.append((path, {**record, "status": record.get("status") or "quarantined"}))
    return found


def _face_box(cache: AnalysisCache | None, digest: str) -> list[int] | None:
    if cache is None:
        return None
    analysis = cache.get(digest)
    if analysis is None or analysis.face_count != 1:
        return None
    return [int(v) for v in analysis.faces[0].box]


def _row(path: Path, record: dict, group_columns: list[str], cache: AnalysisCache | None) -> dict[str, Any]:
    person = person_from_record(record)
    digest = record.get("content_hash") or path.stem
    row: dict[str, Any] = {
        "label": record["gender"], "person": person.name if person else None, "site": record.get("site"),
        "source_url": record.get("url"), "page_url": record.get("page_url"), "face_box": _face_box(cache, digest),
        "age": _number(record.get("age")), "race": None if record.get("race") in (None, "") else str(record["race"]), "content_hash": digest,
        "status": record["status"], "quarantine_reason": record.get("quarantine_reason"),
    }
    for column in group_columns:
        value = record.get(column)
        row[column] = None if value in (None, "") else str(value)
    return row


def _number(value: Any) -> float | None:
    try:
        return None if value in (None, "") else float(value)
    except (TypeError, ValueError):
        return None


def _group_columns(records: list[dict]) -> list[str]:
    """Other label fields some record carries as a short string (group labels such as ethnicity)."""
    names = {k for r in records for k, v in r.items()
             if k not in _NOT_GROUPS and k not in COLUMNS and isinstance(v, (str, int)) and k.isidentifier()}
    return sorted(names)


def export_root(root: Path, store: Store, out: Path, fmt: str = "hf", include_quarantine: bool = False,
                split_by: str | None = None, test_fraction: float = 0.2, seed: int = 0,
                cache: AnalysisCache | None = None) -> ExportResult:
    """Copy the root's photos into ``out`` as an imagefolder with metadata; returns the rows."""
    if fmt not in FORMATS:
        raise DatasetError(f"unknown export format {fmt!r}: use one of {', '.join(FORMATS)}")
    layout = DatasetLayout(Path(root))
    if not layout.is_dataset_root():
        raise DatasetError(f"{root} is not a dataset root (no images/ folder)")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        raise DatasetError(f"{out} is not empty: export into a new folder")
    records_list = store.find_images()
    records = by_content_hash(records_list, lambda r: r)
    photos = _photos(layout, records, include_quarantine)
    if not photos:
        raise DatasetError(f"{root} holds no photos to export")
    groups = _group_columns(records_list)
    split_of = _splits(photos, split_by, test_fraction, seed)
    result = ExportResult(out, group_columns=groups)
    for path, record in photos:
        split = split_of.get(record.get("content_hash") or path.stem, "train")
        target = out / split / record["gender"] / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            shutil.copyfile(path, target)
        row = {"file_name": f"{record['gender']}/{path.name}", **_row(path, record, groups, cache)}
        result.rows.setdefault(split, []).append(row)
    for split, rows in result.rows.items():
        _write_metadata(out / split, rows, fmt)
    return result


def _splits(photos: list[tuple[Path, dict]], split_by: str | None, fraction: float, seed: int) -> dict[str, str]:
    """content hash -> ``train`` or ``test`` (no person on both sides); all ``train`` without a split."""
    if not split_by:
        return {}
    hashes: dict[str, list[str]] = {}
    person_of: dict[str, str | None] = {}
    for path, record in photos:
        digest = record.get("content_hash") or path.stem
        hashes.setdefault(record["gender"], []).append(digest)
        person = person_from_record(record)
        person_of[digest] = person.key if person else None
    test, _ = draw_split(hashes, person_of, fraction, seed, split_by)
    return {h: "test" for part in test.values() for h in part}


def _write_metadata(folder: Path, rows: list[dict[str, Any]], fmt: str) -> Path:
    if fmt == "hf":
        path = folder / "metadata.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return path
    path = folder / "metadata.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({k: ("" if v is None else " ".join(map(str, v)) if isinstance(v, list) else v)
                             for k, v in r.items()})
    return path


__all__ = ["COLUMNS", "ExportResult", "FORMATS", "export_root"]
