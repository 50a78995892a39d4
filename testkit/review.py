"""A small dataset root of real photos under review, and its queue items, for the review tests."""

from __future__ import annotations

from pathlib import Path

from anfe.core.hashing import content_hash
from anfe.core.layout import DatasetLayout, content_file_name
from curation.views import QueueItem


def make_review_dataset(utkface_rows: list[dict], root: Path, per_gender: int = 6) -> DatasetLayout:
    """A dataset root holding ``per_gender`` real UTKFace adults per gender, named by content hash."""
    picked: dict[str, list[dict]] = {"female": [], "male": []}
    for row in utkface_rows[::23]:
        if 25 <= int(row["age"]) <= 50 and len(picked[row["gender"]]) < per_gender:
            picked[row["gender"]].append(row)
    for gender, rows in picked.items():
        folder = root / "images" / gender
        folder.mkdir(parents=True, exist_ok=True)
        for row in rows:
            data = Path(row["path"]).read_bytes()
            (folder / content_file_name(content_hash(data), ".jpg")).write_bytes(data)
    return DatasetLayout(root)


def items_of(layout: DatasetLayout, gender: str) -> list[QueueItem]:
    """Queue items without analysis (the decision logic needs only names and hashes)."""
    return [QueueItem(p, gender, p.stem) for p in layout.image_files(gender)]
