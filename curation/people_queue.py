"""Review by person: each person's photos together, their outliers marked, and the decisions that
act on a whole person (move them to the other gender, keep them) or on their marked photos
(reject as ``wrong-person``). Each is one batch of ordinary decisions (:mod:`curation.decisions`):
logged, and undone together by "undo batch".

A person's photos are those in ``images/`` whose store record names them, plus those the cleaning
sent to review (held in quarantine). A photo is marked when the cleaning sent it to review as
``wrong-person``, or when it now lies beyond the threshold from the median of the person's
other photos. A person is suspect when the cleaning sent them to review as ``mislabelled-person``
or when most of their photos look like another gender now (centroids built without them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from anfe.analysis import ImageAnalysis
from anfe.layout import DatasetLayout
from anfe.people import person_from_record
from anfe.store import Store

from . import decisions
from .decisions import Outcome, ReviewLog
from .identity import DEFAULT_WRONG_PERSON_DISTANCE, check_people_labels, person_outlier_distances
from .queue import QueueItem, build_queue, flagged_items

#: Reason given to photos rejected from a person's gallery.
WRONG_PERSON = "wrong-person"


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
        flags = [f"{len(self.marked)} marked"] if self.marked else []
        if self.suspect:
            flags.append("label suspect")
        site = f" ({self.site})" if self.site else ""
        return f"{self.name}{site}, {self.gender}, {len(self.items)} photos" + (f": {', '.join(flags)}" if flags else "")


def _embedding(analyses: Mapping[str, ImageAnalysis], item: QueueItem) -> np.ndarray | None:
    analysis = analyses.get(item.file_name)
    return analysis.single_embedding if analysis is not None else None


def people_views(
    layout: DatasetLayout, analyses: Mapping[str, ImageAnalysis], review_log: ReviewLog,
    records: Mapping[str, Mapping[str, Any]], threshold: float = DEFAULT_WRONG_PERSON_DISTANCE,
) -> list[PersonView]:
    """Every person named by the records, suspect people first, then those with the most marked
    photos, then by name. ``analyses`` is keyed by file name (see :func:`curation.queue.load_analyses`)."""
    items = build_queue(layout, analyses, review_log, records, order="filename", include_reviewed=True)
    items += [i for i in flagged_items(layout, records)]
    grouped: dict[str, list[QueueItem]] = {}
    persons = {}
    for item in items:
        person = person_from_record(records.get(item.content_hash))
        if person is None:
            continue
        persons[person.key] = person
        grouped.setdefault(person.key, []).append(item)
    # live checks over every photo with one face
    faced = [(k, i, v) for k, group in grouped.items() for i in group if (v := _embedding(analyses, i)) is not None]
    distance = np.full(len(faced), np.nan)
    label_checks = {}
    if faced:
        x = np.stack([v for _, _, v in faced])
        keys = [k for k, _, _ in faced]
        distance = person_outlier_distances(x, keys)
        label_checks = {c.person: c for c in check_people_labels(x, [i.gender for _, i, _ in faced], keys) if c.flagged}
    far = {i.key: d for (_, i, _), d in zip(faced, distance) if d == d and d > threshold}
    views = []
    for key, group in grouped.items():
        marked = {}
        for item in group:
            if item.rule == WRONG_PERSON and item.entry_id:
                marked[item.key] = item.detail or "sent to review as wrong-person"
            elif item.key in far:
                marked[item.key] = f"{far[item.key]:.2f} from the median of the other photos (> {threshold:g})"
        suspect = next((i.detail for i in group if i.rule == "mislabelled-person" and i.entry_id), None)
        if suspect is None and key in label_checks:
            c = label_checks[key]
            suspect = f"{c.disagree} of {c.photos} photos look {c.predicted}, not {c.label}"
        person = persons[key]
        views.append(PersonView(key, person.name, person.site, sorted(group, key=lambda i: i.file_name), marked, suspect))
    return sorted(views, key=lambda v: (v.suspect is None, -len(v.marked), v.name.lower(), v.key))


def move_person(layout: DatasetLayout, store: Store, view: PersonView, new_label: str, who: str) -> Outcome:
    """Every photo of the person to ``new_label`` (photos sent to review are put back there): one batch."""
    chosen = [i for i in view.items if i.entry_id or i.gender != new_label]
    return decisions.decide(layout, store, chosen, "relabel", who, new_label=new_label)


def keep_person(layout: DatasetLayout, store: Store, view: PersonView, who: str) -> Outcome:
    """Every photo of the person stays under their label (those sent to review are put back): one batch."""
    return decisions.decide(layout, store, view.items, "keep", who)


def reject_marked(layout: DatasetLayout, store: Store, view: PersonView, who: str,
                  keys: Sequence[str] | None = None) -> Outcome:
    """The marked photos (or those of ``keys``) out as ``wrong-person``: one batch."""
    chosen = set(view.marked if keys is None else keys)
    return decisions.decide(layout, store, [i for i in view.items if i.key in chosen], "reject", who,
                            reason=WRONG_PERSON, detail=f"not {view.name}")


__all__ = ["PersonView", "WRONG_PERSON", "keep_person", "move_person", "people_views", "reject_marked"]
