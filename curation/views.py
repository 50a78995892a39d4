"""What the review page shows: one image (:class:`QueueItem`) and one person (:class:`PersonView`).
Plain values in a leaf module: :mod:`curation.queue` makes them, :mod:`curation.decisions` acts on them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class QueueItem:
    """One image as the review page shows it."""

    path: Path
    gender: str
    content_hash: str
    score: float | None = None
    rule: str | None = None
    source: str | None = None
    reviewed: bool = False
    faces: int | None = None
    error: str | None = None
    #: Set for a file the cleaner sent to review (in ``quarantine/``): its journal line id.
    entry_id: str | None = None
    detail: str | None = None
    #: Who the photo is supposed to show (the store record's person name), when known.
    person: str | None = None

    @property
    def file_name(self) -> str:
        """The content-hash file name (the same in every folder the image moves to)."""
        return self.path.name

    @property
    def key(self) -> str:
        """Unique on a page (two copies of one photo under two genders share a content hash)."""
        return self.entry_id or self.content_hash


@dataclass(frozen=True)
class PersonView:
    """One person as the by-person view shows them."""

    key: str
    name: str
    site: str | None
    items: list[QueueItem]
    #: Keys (:attr:`QueueItem.key`) of the marked photos, with why each is marked.
    marked: dict[str, str] = field(default_factory=dict)
    #: Why the whole person's label is suspect (None when it is not).
    suspect: str | None = None

    @property
    def gender(self) -> str:
        """The person's label: the most common label of their photos."""
        labels = [i.gender for i in self.items]
        return max(sorted(set(labels)), key=labels.count) if labels else "unknown"

    @property
    def title(self) -> str:
        """Name, site, photo count and what is suspect, for a picker."""
        return person_title(self.name, self.site, self.gender, len(self.items), len(self.marked), self.suspect)


def person_title(name: str, site: str | None, gender: str, photos: int, marked: int, suspect: str | None) -> str:
    """A person's line in the people list: name, site, label, photo count and what is suspect."""
    flags = [f"{marked} marked"] if marked else []
    if suspect:
        flags.append("label suspect")
    site_part = f" ({site})" if site else ""
    return f"{name}{site_part}, {gender}, {photos} photos" + (f": {', '.join(flags)}" if flags else "")
