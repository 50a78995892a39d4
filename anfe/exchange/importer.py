"""Bring an existing labelled set into a dataset root: a labels CSV, a folder of label folders, or
a FaceScrub list whose photos are already on disk.

Each photo is copied (never moved) to ``images/<gender>/<content hash>.<ext>`` with a store record
that keeps what the source knew: person, source URL, age, race and any other column. Running the
same import again adds nothing; a photo that cannot be imported (missing, unreadable, a label that
cannot be a folder name) is reported in one line and the run goes on, so nothing is lost: the
source is untouched and every skipped file is named.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError

from anfe.core.crashpoints import crash_point
from anfe.core.dataset import normalise_gender
from anfe.core.errors import DatasetError
from anfe.core.hashing import content_hash
from anfe.core.layout import (
    IMAGE_SUFFIXES,
    DatasetLayout,
    content_file_name,
    is_image_file,
    safe_label,
    sweep_partial_files,
    walk,
    write_atomically,
)
from anfe.core.store import Store, now_iso

#: Columns of a labels CSV that become record fields of their own (the rest are kept as labels).
URL_COLUMNS = ("source_url", "url")
PERSON_COLUMNS = ("person", "identity", "person_name", "name")
#: FaceScrub's list columns (facescrub_actors.txt / facescrub_actresses.txt, tab-separated).
FACESCRUB_COLUMNS = ("name", "image_id", "face_id", "url", "bbox", "sha256")
KINDS = ("auto", "csv", "folders", "facescrub")
_PIL_FORMAT_SUFFIX = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}


@dataclass(frozen=True)
class Candidate:
    """One photo a source offers: its file, gender label and what else the source says about it."""

    path: Path
    gender: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class ImportReport:
    """What an import did: photos added, already there, and the ones skipped (one line each)."""

    added: dict[str, int] = field(default_factory=dict)
    already: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def total_added(self) -> int:
        return sum(self.added.values())


def detect_kind(source: Path) -> str:
    """``csv`` for a .csv file, ``facescrub`` for a .txt/.tsv list, ``folders`` for a folder."""
    if source.is_dir():
        return "csv" if (source / "labels.csv").is_file() and not any(
            p.is_dir() and p.name != "images" for p in source.iterdir()) else "folders"
    suffix = source.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".txt", ".tsv"):
        return "facescrub"
    raise DatasetError(f"cannot tell what {source} is: give a labels CSV, a folder of label folders or a "
                       "FaceScrub list (.txt)")


def _first(row: dict[str, str], columns: tuple[str, ...]) -> str | None:
    return next((row[c].strip() for c in columns if (row.get(c) or "").strip()), None)


def from_csv(path: Path, problems: list[str]) -> Iterator[Candidate]:
    """Rows of a labels CSV (path relative to the CSV's folder, gender, optional person, source
    URL, age, race, any other column)."""
    if path.is_dir():
        path = path / "labels.csv"
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", "gender"} - set(reader.fieldnames or [])
        if missing:
            raise DatasetError(f"{path} lacks the column(s) {', '.join(sorted(missing))}: it needs path and gender")
        for line, row in enumerate(reader, start=2):
            if not (row.get("path") or "").strip():
                problems.append(f"{path}:{line}: no path: skipped")
                continue
            fields: dict[str, Any] = {"labels": {k: v for k, v in row.items()
                                                 if k and k not in ("path", "gender") and v not in (None, "")}}
            person = _first(row, PERSON_COLUMNS)
            if person:
                fields["person_name"] = person
            url = _first(row, URL_COLUMNS)
            if url:
                fields["url"] = url
            yield Candidate(path.parent / row["path"].strip(), row.get("gender") or "", fields)


def from_folders(root: Path, problems: list[str]) -> Iterator[Candidate]:
    """``<root>/<gender>/...``; a photo one folder deeper (``<root>/<gender>/<person>/x.jpg``)
    belongs to that person."""
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for path in walk(folder):
            if not is_image_file(path):
                problems.append(f"{path}: not an image file: skipped")
                continue
            parts = path.relative_to(folder).parts
            fields = {"person_name": parts[0]} if len(parts) > 1 else {}
            yield Candidate(path, folder.name, fields)


def from_facescrub(path: Path, files: Path | None, problems: list[str]) -> Iterator[Candidate]:
    """A FaceScrub list (name, image_id, face_id, url, bbox, sha256; tab-separated) whose photos
    were downloaded under ``files`` (default: the list's folder), each named by its face_id or
    image_id (any folder, any image suffix). The gender is a ``gender`` column, else the list's
    name (``..._actors`` male, ``..._actresses`` female)."""
    files = files or path.parent
    by_stem: dict[str, Path] = {}
    for found in walk(files):
        if found.suffix.lower() in IMAGE_SUFFIXES:
            by_stem.setdefault(found.stem, found)
    name = path.stem.lower()
    default_gender = "female" if "actress" in name else "male" if "actor" in name else ""
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, delimiter="\t")
        if not {"name", "url"} <= set(reader.fieldnames or []):
            raise DatasetError(f"{path} is not a FaceScrub list: it needs the tab-separated columns "
                               f"{', '.join(FACESCRUB_COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            keys = [row.get("face_id"), row.get("image_id")]
            local = next((by_stem[k] for k in keys if k and k in by_stem), None)
            if local is None:
                problems.append(f"{path}:{line}: no local file for face_id {row.get('face_id')} "
                                f"({row.get('name')}): skipped")
                continue
            fields: dict[str, Any] = {"person_name": (row.get("name") or "").strip() or None,
                                      "url": (row.get("url") or "").strip() or None,
                                      "labels": {"facescrub_face_id": row.get("face_id") or ""}}
            if row.get("bbox"):
                try:
                    fields["source_bbox"] = [int(float(v)) for v in row["bbox"].split(",") if v.strip()]
                except ValueError:
                    problems.append(f"{path}:{line}: unreadable bbox {row['bbox']!r}: photo kept without it")
            yield Candidate(local, row.get("gender") or default_gender, fields)


def _image_suffix(data: bytes) -> str:
    """The file suffix of these image bytes; raises DatasetError when they are not an image."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
            kind = image.format
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"not a readable image ({exc.__class__.__name__})") from None
    if kind not in _PIL_FORMAT_SUFFIX:
        raise DatasetError(f"an image format anfe does not store ({kind})")
    return _PIL_FORMAT_SUFFIX[kind]


def import_photos(source: Path, root: Path, store: Store, kind: str = "auto", files: Path | None = None,
                  site: str | None = None) -> ImportReport:
    """Copy every photo ``source`` offers into ``root`` by content hash and record it in ``store``."""
    source = Path(source)
    kind = detect_kind(source) if kind == "auto" else kind
    report = ImportReport()
    layout = DatasetLayout(Path(root))
    layout.images.mkdir(parents=True, exist_ok=True)
    sweep_partial_files(layout.images)  # copies cut short by a kill: their photos are copied again
    full = source.resolve()
    named = full.parent.name if full.is_file() and full.stem == "labels" else full.stem if full.is_file() else full.name
    site = site or f"import:{named}"
    readers = {"csv": lambda: from_csv(source, report.problems),
               "folders": lambda: from_folders(source, report.problems),
               "facescrub": lambda: from_facescrub(source, files, report.problems)}
    try:
        for candidate in readers[kind]():
            try:
                _import_one(candidate, layout, store, report, site, source)
            except DatasetError as exc:
                report.problems.append(f"{candidate.path}: {exc}: skipped")
            except OSError as exc:
                report.problems.append(f"{candidate.path}: cannot read ({exc.strerror or exc}): skipped")
    except (UnicodeDecodeError, csv.Error) as exc:  # the list itself is unreadable: what came before stays
        raise DatasetError(f"cannot read {source} as a {kind} list ({exc.__class__.__name__}: {exc}); "
                           f"{report.total_added} photos imported before it") from None
    return report


def _import_one(candidate: Candidate, layout: DatasetLayout, store: Store, report: ImportReport, site: str,
                source: Path) -> None:
    gender = safe_label(normalise_gender(candidate.gender)) if candidate.gender.strip() else ""
    if not gender:
        raise DatasetError("no gender label")
    data = candidate.path.read_bytes()
    digest = content_hash(data)
    existing = store.get_image(digest)
    if existing is not None:
        report.already += 1
        return
    target = layout.gender_dir(gender) / content_file_name(digest, _image_suffix(data))
    if not target.exists():  # a run killed after the copy, before the record, finds it here
        write_atomically(target, data)
        crash_point("import.file")
    fields = dict(candidate.fields)
    labels = {k: v for k, v in (fields.pop("labels", None) or {}).items() if k.isidentifier()}
    record = {
        **{k: v for k, v in labels.items() if k not in ("content_hash", "path", "gender", "status")},
        **{k: v for k, v in fields.items() if v is not None},
        "content_hash": digest, "path": target.relative_to(layout.root).as_posix(), "gender": gender,
        "site": site, "bytes": len(data), "source": "import", "imported_from": str(candidate.path),
        "imported_at": now_iso(),
    }
    if record.get("person_name"):
        record["person_id"] = record["person_name"]
    store.upsert_image(record)
    crash_point("import.record")
    report.added[gender] = report.added.get(gender, 0) + 1


__all__ = ["Candidate", "ImportReport", "KINDS", "detect_kind", "from_csv", "from_facescrub", "from_folders",
           "import_photos"]
