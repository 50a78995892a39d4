"""The by-person view's figures, worked out once when the catalog sync scores the photos and kept
on the image records, so that the view reads one page of people and one person's photos through
indexed store queries instead of every record and analysis on each rerun.

Every record of a photo that names a person gets ``person_key`` and ``person_marks`` (its marked
copies: :func:`mark_key` -> why, as :func:`curation.queue.people_views` marks them); one record
per person (its smallest content hash), the lead, also gets ``person_lead`` = 1, ``person_rank``
(the person's place in the list: suspect people first, then most marked, then by name) and
``person_summary`` (name, site, label, photos, marked, why the label is suspect).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from anfe.core.people import Person
from anfe.faces import checks

from .identity import DEFAULT_WRONG_PERSON_DISTANCE, check_people_labels, person_outlier_distances
from .views import person_title

KEY, MARKS, LEAD, RANK, SUMMARY = "person_key", "person_marks", "person_lead", "person_rank", "person_summary"
#: The by-person view's queries: the people list in order, one person's photos (by status).
INDEXES = ((LEAD, RANK), ("status", KEY))
#: The person fields a sync writes on every record it scores (None where they do not apply).
FIELDS = (KEY, MARKS, LEAD, RANK, SUMMARY)


@dataclass(frozen=True)
class Photo:
    """One photo as the sync sees it: a file under a label, or a file sent to review (its journal
    line's id, reason and detail)."""

    key: str
    content_hash: str
    gender: str
    vector: np.ndarray | None = None
    entry_id: str | None = None
    reason: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Summary:
    """One person as the people list shows them (from the lead record's ``person_summary``)."""

    key: str
    name: str
    site: str | None
    gender: str
    photos: int
    marked: int
    suspect: str | None

    @property
    def title(self) -> str:
        """Name, site, label, photo count and what is suspect, for a picker (plain text)."""
        return person_title(self.name, self.site, self.gender, self.photos, self.marked, self.suspect)


def mark_key(entry_id: str | None, gender: str) -> str:
    """Where a record's ``person_marks`` keeps a photo's mark: "" for the file under a label, and
    ``held:<label>`` for a copy sent to review from that label (journal line ids are not kept:
    they change when a file is sent again)."""
    return f"held:{gender}" if entry_id else ""


def summary_of(record: Mapping[str, Any]) -> Summary:
    """The :class:`Summary` a lead record keeps."""
    s = record.get(SUMMARY) or {}
    return Summary(str(record.get(KEY)), str(s.get("name") or record.get(KEY)), s.get("site"),
                   str(s.get("gender") or "unknown"), int(s.get("photos") or 0), int(s.get("marked") or 0),
                   s.get("suspect"))


def _label(genders: Sequence[str]) -> str:
    """The person's label: the most common label of their photos (as :class:`PersonView`)."""
    return max(sorted(set(genders)), key=list(genders).count) if genders else "unknown"


def person_fields(photos: Sequence[Photo], persons: Mapping[str, Person],
                  threshold: float = DEFAULT_WRONG_PERSON_DISTANCE) -> dict[str, dict[str, Any]]:
    """Per content hash, the person fields its record gets (all None for a photo of nobody): the
    same checks, marks and order as :func:`curation.queue.people_views`."""
    grouped: dict[str, list[Photo]] = {}
    for photo in photos:
        if (person := persons.get(photo.content_hash)) is not None:
            grouped.setdefault(person.key, []).append(photo)
    faced = [(key, p) for key, group in grouped.items() for p in group if p.vector is not None]
    far: dict[str, float] = {}
    label_checks = {}
    if faced:
        keys, shown = zip(*faced)
        x = np.stack([p.vector for p in shown])
        far = {p.key: d for p, d in zip(shown, person_outlier_distances(x, keys)) if d > threshold}
        label_checks = {c.person: c for c in check_people_labels(x, [p.gender for p in shown], keys) if c.flagged}
    beyond = f"from the median of the other photos (> {threshold:g})"
    fields: dict[str, dict[str, Any]] = {p.content_hash: dict.fromkeys(FIELDS) for p in photos}
    people = []
    for key, group in grouped.items():
        marks: dict[str, dict[str, str]] = {}
        for p in group:
            if p.reason == checks.WRONG_PERSON.name and p.entry_id:
                marks.setdefault(p.content_hash, {})[mark_key(p.entry_id, p.gender)] = \
                    p.detail or "sent to review as wrong-person"
            elif p.key in far:
                marks.setdefault(p.content_hash, {})[mark_key(p.entry_id, p.gender)] = f"{far[p.key]:.2f} {beyond}"
        sent = [p.detail for p in group if p.reason == checks.MISLABELLED_PERSON.name and p.entry_id]
        suspect = sent[0] if sent else None
        if suspect is None and key in label_checks:
            c = label_checks[key]
            suspect = f"{c.disagree} of {c.photos} photos look {c.predicted}, not {c.label}"
        marked = sum(len(m) for m in marks.values())
        person = persons[group[0].content_hash]
        for p in group:
            fields[p.content_hash].update({KEY: key, MARKS: marks.get(p.content_hash)})
        lead = min(p.content_hash for p in group)
        fields[lead][SUMMARY] = {"name": person.name, "site": person.site,
                                 "gender": _label([p.gender for p in group]), "photos": len(group),
                                 "marked": marked, "suspect": suspect}
        people.append(((suspect is None, -marked, person.name.lower(), key), lead))
    for rank, (_order, lead) in enumerate(sorted(people)):
        fields[lead].update({LEAD: 1, RANK: rank})
    return fields


__all__ = ["FIELDS", "INDEXES", "KEY", "LEAD", "MARKS", "Photo", "RANK", "SUMMARY", "Summary", "mark_key", "person_fields",
           "summary_of"]
