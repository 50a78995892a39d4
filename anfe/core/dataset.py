"""Labelled images for builds and evaluation: per-label folders, a dataset root, or a labels CSV."""

from __future__ import annotations

import csv
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import DatasetError
from .layout import IMAGE_SUFFIXES, DatasetLayout, is_image_file, walk
from .people import person_from_labels

_GENDER_WORDS = {
    "m": "male", "man": "male", "men": "male", "male": "male", "0": "male",
    "f": "female", "woman": "female", "women": "female", "female": "female", "1": "female",
}


def normalise_gender(word: str) -> str:
    """'M', 'man', 'male' -> 'male'; 'F', 'woman', 'female' -> 'female'; others as given, lower-case."""
    cleaned = word.strip().lower()
    return _GENDER_WORDS.get(cleaned, cleaned)


@dataclass(frozen=True)
class LabelledImage:
    """One image file, its label, and any other labels (age, race, identity...) as strings."""

    path: Path
    gender: str
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def person(self) -> str | None:
        """Who the photo shows: an ``identity``/``person`` label (see :mod:`anfe.core.people`), or None."""
        return person_from_labels(self.labels)


def from_labels_csv(csv_path: str | Path, gender_column: str = "gender") -> list[LabelledImage]:
    """Read a CSV with a ``path`` column (relative to the CSV's folder) and a label column."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetError(f"labels file {csv_path} does not exist")
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"path", gender_column} - set(reader.fieldnames or [])
        if missing:
            raise DatasetError(
                f"{csv_path} lacks the column(s) {', '.join(sorted(missing))}; it needs "
                f"'path' and '{gender_column}'"
            )
        items = []
        for row in reader:
            extra = {k: v for k, v in row.items() if k not in ("path", gender_column) and v is not None}
            items.append(
                LabelledImage(csv_path.parent / row["path"], normalise_gender(row[gender_column]), extra)
            )
    if not items:
        raise DatasetError(f"{csv_path} lists no images")
    return items


def from_folders(root: str | Path) -> list[LabelledImage]:
    """Images under ``<root>/images/<label>/`` (a dataset root) or ``<root>/<label>/``."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root} is not a folder: give a dataset root or a folder of label folders")
    layout = DatasetLayout(root)
    base = layout.images if layout.is_dataset_root() else root
    folders = sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    folders = [p for p in folders if p.name not in ("quarantine",)]
    if not folders:
        raise DatasetError(f"{base} has no label folders (expected e.g. {base}/male and {base}/female)")
    items = []
    for folder in folders:
        files = [p for p in walk(folder) if is_image_file(p)]
        if not files:
            raise DatasetError(f"the label folder {folder} holds no images")
        items.extend(LabelledImage(p, normalise_gender(folder.name)) for p in files)
    return items


def load_labelled(source: str | Path, labels_csv: str | Path | None = None) -> list[LabelledImage]:
    """Images from a labels CSV if given (or if ``source`` is a CSV), else from label folders."""
    if labels_csv:
        return from_labels_csv(labels_csv)
    source = Path(source)
    if source.suffix.lower() == ".csv":
        return from_labels_csv(source)
    if source.is_dir() and (source / "labels.csv").is_file() and not DatasetLayout(source).genders():
        return from_labels_csv(source / "labels.csv")
    return from_folders(source)


def age_of(labels: Mapping[str, object]) -> float | None:
    """A person's age from labels or a store record: ``age``, else ``photo_year`` minus
    ``birth_year``; None when unknown or unreadable. The one age reader (clean, builds, demo)."""
    def number(key: str) -> float | None:
        try:
            return float(str(labels.get(key)).strip())
        except (TypeError, ValueError):
            return None

    age = number("age")
    if age is not None:
        return age
    born, taken = number("birth_year"), number("photo_year")
    return taken - born if born is not None and taken is not None else None


def by_gender(items: list[LabelledImage]) -> dict[str, list[LabelledImage]]:
    """Items grouped by label, labels sorted."""
    groups: dict[str, list[LabelledImage]] = {}
    for item in items:
        groups.setdefault(item.gender, []).append(item)
    return dict(sorted(groups.items()))


__all__ = ["IMAGE_SUFFIXES", "LabelledImage", "age_of", "by_gender", "from_folders", "from_labels_csv", "load_labelled", "normalise_gender"]
