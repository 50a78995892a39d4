"""Who each photo is supposed to show: the person, from a store record or a labels CSV column.

A crawled photo's store record carries the site's ``person_id`` and ``person_name``; a labelled
set may carry an ``identity`` (or ``person``) column. Datasets with neither have no people, and
everything that uses people (person-disjoint splits, the wrong-person and mislabelled-person
checks) then behaves as it did before people existed.

Person keys are unique across sites: the same id on two sites names two galleries, so a record's
key is ``<site>:<person_id>``. A CSV's identity column is its own key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .store import by_content_hash

#: Label columns that name a photo's person, first found wins.
PERSON_COLUMNS = ("identity", "person", "person_id")
#: The store record fields :func:`person_from_record` and :func:`attach_people` read (ask the
#: store for only these when reading the whole catalog for people).
PERSON_FIELDS = ("content_hash", "person_id", "person_name", "site", "other_people", "synthetic_person")
#: A record whose person is made up (the demo site's people: photos of strangers under one name)
#: carries this field true; it names nobody, so the people rules and person splits skip it.
SYNTHETIC_PERSON = "synthetic_person"
#: Label keys under which :func:`attach_people` records a store record's person.
PERSON_LABEL, PERSON_NAME_LABEL, SITE_LABEL = "person", "person_name", "site"


@dataclass(frozen=True)
class Person:
    """A person: the key that groups their photos, the name people read, and the site."""

    key: str
    name: str
    site: str | None = None
    #: Other people the same photo was also listed under (names, from a crawl's ``other_people``).
    also: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"{self.name} ({self.site})" if self.site else self.name


def person_from_labels(labels: Mapping[str, Any]) -> str | None:
    """The person key of a labels row (``identity``, ``person`` or ``person_id``), or None."""
    for column in PERSON_COLUMNS:
        value = labels.get(column)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def person_from_record(record: Mapping[str, Any] | None) -> Person | None:
    """The person of a store record: key ``<site>:<person_id>`` (or the name when there is no
    id), name ``person_name`` (or the id); None when the record names nobody."""
    if not record or record.get(SYNTHETIC_PERSON):
        return None
    pid = record.get("person_id")
    name = record.get("person_name")
    site = record.get("site") or None
    if pid in (None, "") and not name:
        return None
    ident = str(pid if pid not in (None, "") else name).strip()
    key = f"{site}:{ident}" if site else ident
    also = []
    for other in record.get("other_people") or []:
        person = person_from_record({k: v for k, v in other.items() if k != "other_people"})
        if person is not None and person.key != key and str(person) not in also:
            also.append(str(person))
    return Person(key, str(name or ident).strip(), str(site) if site else None, tuple(also))


def person_of_item(item: Any) -> str | None:
    """The person key of a :class:`~anfe.core.dataset.LabelledImage` (from its labels), or None."""
    return person_from_labels(getattr(item, "labels", None) or {})


def has_people(items: Iterable[Any]) -> bool:
    """True when at least one item names its person."""
    return any(person_of_item(i) is not None for i in items)


def attach_people(items: Sequence[Any], records: Iterable[Mapping[str, Any]]) -> list[Any]:
    """Items of a dataset root with the person of their store record added to their labels.

    Files are named by their content hash, so a file's record is found by its name's stem
    (no hashing). Items that already name a person, or have no record naming one, stay as they
    are. Returns new items (LabelledImage is frozen); the order is kept.
    """
    by_hash = by_content_hash(records, person_from_record)
    if not by_hash:
        return list(items)
    out = []
    for item in items:
        person = by_hash.get(Path(item.path).stem)
        if person is None or person_of_item(item) is not None:
            out.append(item)
            continue
        labels = {**item.labels, PERSON_LABEL: person.key, PERSON_NAME_LABEL: person.name}
        if person.site:
            labels.setdefault(SITE_LABEL, person.site)
        out.append(replace(item, labels=labels))
    return out


def group_by_person(persons: Sequence[str | None]) -> dict[str, list[int]]:
    """Indices per person key (unnamed entries are left out), keys sorted."""
    groups: dict[str, list[int]] = {}
    for index, person in enumerate(persons):
        if person is not None:
            groups.setdefault(person, []).append(index)
    return dict(sorted(groups.items()))


__all__ = [
    "PERSON_COLUMNS", "PERSON_FIELDS", "Person", "SYNTHETIC_PERSON", "attach_people", "group_by_person", "has_people", "person_from_labels",
    "person_from_record", "person_of_item",
]
