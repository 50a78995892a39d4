"""Review by person: each person's photos (in ``images/`` or sent to review) together, the marked
ones (sent to review as ``wrong-person``, or far from the person's other photos) and whether the
whole person's label is suspect; and the one batch of decisions (undone together) that moves the
person to the other gender, keeps them, or rejects their marked photos as ``wrong-person``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from anfe.checks import MISLABELLED_PERSON, WRONG_PERSON
from anfe.layout import DatasetLayout
from anfe.people import person_from_record
from anfe.store import Store

from . import decisions
from .decisions import Outcome, ReviewLog
from .identity import DEFAULT_WRONG_PERSON_DISTANCE, check_people_labels, person_outlier_distances
from .queue import Analyses, QueueItem, Records, build_queue, flagged_items



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
        title = f"{self.name}{site}, {self.gender}, {len(self.items)} photos"
        return title + (f": {', '.join(flags)}" if flags else "")


def people_views(
    layout: DatasetLayout, analyses: Analyses, review_log: ReviewLog, records: Records,
    threshold: float = DEFAULT_WRONG_PERSON_DISTANCE,
) -> list[PersonView]:
    """Every person named by the records: suspect people first, then those with the most marked
    photos, then by name. ``analyses`` is keyed by file name (:func:`curation.queue.load_analyses`)."""
    items = build_queue(layout, analyses, review_log, records, order="filename", include_reviewed=True)
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
        checks = check_people_labels(x, [i.gender for i in photos], keys)
        label_checks = {c.person: c for c in checks if c.flagged}
    views, beyond = [], f"from the median of the other photos (> {threshold:g})"
    for key, group in grouped.items():
        marked = {}
        for item in group:
            if item.rule == WRONG_PERSON.name and item.entry_id:
                marked[item.key] = item.detail or "sent to review as wrong-person"
            elif item.key in far:
                marked[item.key] = f"{far[item.key]:.2f} {beyond}"
        suspect = next((i.detail for i in group if i.rule == MISLABELLED_PERSON.name and i.entry_id), None)
        if suspect is None and key in label_checks:
            c = label_checks[key]
            suspect = f"{c.disagree} of {c.photos} photos look {c.predicted}, not {c.label}"
        group.sort(key=lambda i: i.file_name)
        views.append(PersonView(key, persons[key].name, persons[key].site, group, marked, suspect))
    return sorted(views, key=lambda v: (v.suspect is None, -len(v.marked), v.name.lower(), v.key))


def move_person(layout: DatasetLayout, store: Store, view: PersonView, new_label: str, who: str) -> Outcome:
    """Every photo of the person to ``new_label`` (photos sent to review are put back there): one batch."""
    chosen = [i for i in view.items if i.entry_id or i.gender != new_label]
    return decisions.decide(layout, store, chosen, "relabel", who, new_label=new_label)


def keep_person(layout: DatasetLayout, store: Store, view: PersonView, who: str) -> Outcome:
    """Every photo of the person stays under their label (those sent to review are put back): one batch."""
    return decisions.decide(layout, store, view.items, "keep", who)


def reject_marked(layout: DatasetLayout, store: Store, view: PersonView, who: str) -> Outcome:
    """The marked photos out as ``wrong-person``: one batch."""
    return decisions.decide(layout, store, [i for i in view.items if i.key in view.marked], "reject", who,
                            reason=WRONG_PERSON.name, detail=f"not {view.name}")


__all__ = ["keep_person", "move_person", "people_views", "reject_marked"]
