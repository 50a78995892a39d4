"""The people rules of ``anfe clean``: which photos to send to review because of who they show.

Runs on the images that passed every other rule and hold one face, with each photo's person from
its store record (a crawl records ``person_id``/``person_name``; datasets without people skip
these rules). Three findings, see :mod:`curation.identity`:

- ``wrong-person``: a photo far from the centre of its person's other photos, or the same face
  filed under two different people (both copies, each naming the other), or one photo the crawl
  found in the galleries of two people (its record's ``other_people``);
- ``mislabelled-person``: every photo of a person most of whose photos look like another gender.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from anfe.people import Person

from .identity import MIN_PERSON_PHOTOS, check_people_labels, person_outlier_distances, same_face_pairs
from .rules import CleanRules, Item, Verdict, _rel


def check_people(
    items: Sequence[Item], people: Mapping[str, Person], rules: CleanRules, root: Path | None = None,
) -> dict[int, Verdict]:
    """Verdicts (by index into ``items``) of the people rules; ``people`` maps content hashes to
    persons. Items without one face or without a person are never judged."""
    if not (rules.wrong_person or rules.mislabelled_person):
        return {}
    listed_twice = {}
    if rules.wrong_person:
        for index, item in enumerate(items):
            person = people.get(item.analysis.content_hash)
            if person is not None and person.also:
                listed_twice[index] = Verdict(
                    "wrong-person", f"the same photo is filed under {person} and also under {', '.join(person.also)}")
    judged = [i for i, item in enumerate(items)
              if item.analysis.single_embedding is not None and item.analysis.content_hash in people]
    if not judged:
        return listed_twice
    x = np.stack([items[i].analysis.single_embedding for i in judged])
    person_of = [people[items[i].analysis.content_hash] for i in judged]
    keys = [p.key for p in person_of]
    verdicts: dict[int, Verdict] = {}
    if rules.wrong_person:
        distance = person_outlier_distances(x, keys)
        sizes = {k: keys.count(k) for k in set(keys)}
        for local, d in enumerate(distance):
            if d == d and d > rules.wrong_person_distance:
                who = person_of[local]
                verdicts[judged[local]] = Verdict(
                    "wrong-person", f"{d:.2f} from the median of {who}'s other {sizes[who.key] - 1} photos "
                    f"(> {rules.wrong_person_distance:g})")
        for pair in same_face_pairs(x, keys):
            for mine, other in ((pair.first, pair.second), (pair.second, pair.first)):
                there = items[judged[other]]
                verdicts[judged[mine]] = Verdict(
                    "wrong-person", f"the same face ({pair.distance:.2f}) is also filed under {person_of[other]}: "
                    f"{_rel(there, root)}", (_rel(there, root),))
    if rules.mislabelled_person:
        genders = [items[i].gender for i in judged]
        for check in check_people_labels(x, genders, keys, MIN_PERSON_PHOTOS):
            if not check.flagged:
                continue
            who = person_of[check.members[0]]
            for local in check.members:
                also = verdicts.get(judged[local])
                verdicts[judged[local]] = Verdict(
                    "mislabelled-person", f"{check.disagree} of {check.photos} photos of {who} look {check.predicted}, "
                    f"not {check.label}: the whole person goes to review"
                    + (f" (also {also.reason}: {also.detail})" if also else ""))
    return {**verdicts, **listed_twice}


__all__ = ["check_people"]
