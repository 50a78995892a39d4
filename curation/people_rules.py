"""The people rules of ``anfe clean``: which photos to send to review because of who they show.

Runs on the images that passed every other rule and hold one face, with each photo's person from
its store record (datasets without people skip these rules); see :mod:`curation.identity`:
``wrong-person`` (far from the median of the person's other photos, the same face filed under
two people, or one photo the crawl found in two people's galleries: ``other_people``) and
``mislabelled-person`` (every photo of a person most of whose photos look like another gender).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from anfe.people import Person

from .identity import person_suspects, same_face_pairs
from .rules import CleanRules, Item, Verdict, _rel


def check_people(
    items: Sequence[Item], people: Mapping[str, Person], rules: CleanRules, root: Path | None = None,
) -> dict[int, Verdict]:
    """Verdicts (by index into ``items``) of the people rules; ``people`` maps content hashes to
    persons. Items without one face or without a person are never judged."""
    verdicts: dict[int, Verdict] = {}
    judged = [i for i, item in enumerate(items)
              if item.analysis.single_embedding is not None and item.analysis.content_hash in people]
    if judged and (rules.wrong_person or rules.mislabelled_person):
        x = np.stack([items[i].analysis.single_embedding for i in judged])
        person_of = [people[items[i].analysis.content_hash] for i in judged]
        keys = [p.key for p in person_of]
        far, flagged = person_suspects(x, keys, [items[i].gender for i in judged], rules.wrong_person_distance)
        if rules.wrong_person:
            sizes = Counter(keys)
            for local, d in far.items():
                who = person_of[local]
                verdicts[judged[local]] = Verdict(
                    "wrong-person", f"{d:.2f} from the median of {who}'s other {sizes[who.key] - 1} photos "
                    f"(> {rules.wrong_person_distance:g})")
            for pair in same_face_pairs(x, keys):
                for mine, other in ((pair.first, pair.second), (pair.second, pair.first)):
                    there = _rel(items[judged[other]], root)
                    verdicts[judged[mine]] = Verdict(
                        "wrong-person", f"the same face ({pair.distance:.2f}) is also filed under "
                        f"{person_of[other]}: {there}", (there,))
        for check in flagged if rules.mislabelled_person else []:
            who = person_of[check.members[0]]
            for local in check.members:
                also = verdicts.get(judged[local])
                verdicts[judged[local]] = Verdict(
                    "mislabelled-person", f"{check.disagree} of {check.photos} photos of {who} look "
                    f"{check.predicted}, not {check.label}: the whole person goes to review"
                    + (f" (also {also.reason}: {also.detail})" if also else ""))
    if rules.wrong_person:  # one photo the crawl found in two people's galleries
        for index, item in enumerate(items):
            person = people.get(item.analysis.content_hash)
            if person is not None and person.also:
                verdicts[index] = Verdict(
                    "wrong-person", f"the same photo is filed under {person} and also under {', '.join(person.also)}")
    return verdicts


__all__ = ["check_people"]
