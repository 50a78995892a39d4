"""Planted-noise experiments for the people checks of :mod:`curation.identity`: the bench and the
tests run them on real embeddings with known identities (LFW). Not product code: imported as
``identity_trials`` (like ``trials``; ``tests/conftest.py`` puts ``bench/`` on the path).

- :func:`wrong_person_trial`: move photos of other people of the same gender into the galleries
  of people with several photos; how many land near the top of the wrong-person queue?
- :func:`flipped_people_trial`: flip the gender label of some people (all their photos); how many
  does the mislabelled-person check flag, and how many correctly labelled people with them?
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anfe.models.distance import distances
from anfe.core.people import group_by_person

from curation.identity import (
    DEFAULT_WRONG_PERSON_DISTANCE, MIN_PERSON_PHOTOS, _loo_median, check_people_labels,
    person_outlier_distances,
)
from curation.suspicion import most_suspicious_first


def _loo_mean(x: np.ndarray) -> np.ndarray:
    """Row i: the mean of every row but i (the non-robust baseline)."""
    return (x.sum(axis=0)[None, :] - x) / (len(x) - 1)


def _loo_medoid(x: np.ndarray) -> np.ndarray:
    """Row i: the medoid of every row but i (the row with the least distance sum to the others)."""
    d = distances(x, x)
    cost = d.sum(axis=1)[None, :] - d  # cost[i, j]: j's distance sum to the others without i
    np.fill_diagonal(cost, np.inf)
    return x[cost.argmin(axis=1)]


#: The leave-one-out centres the bench compares: the product's median, the medoid and the mean.
CENTRES = {"median": _loo_median, "medoid": _loo_medoid, "mean": _loo_mean}


def suspicious_first(scores: np.ndarray) -> list[int]:
    """Indices of the judged photos (not NaN), the largest score first (ties by index): the
    wrong-person review queue."""
    return [i for i in most_suspicious_first(list(scores)) if scores[i] == scores[i]]


@dataclass(frozen=True)
class WrongPersonTrial:
    """Planted photos, how many the first part of the queue holds, and the threshold's figures."""

    planted: int
    found: int
    queue: int
    cut: int
    planted_beyond: int
    genuine_beyond: int
    genuine: int

    @property
    def recall(self) -> float:
        """Share of the planted photos within the first part of the queue."""
        return self.found / self.planted if self.planted else float("nan")

    @property
    def planted_beyond_share(self) -> float:
        """Share of the planted photos beyond the distance threshold (what the threshold catches)."""
        return self.planted_beyond / self.planted if self.planted else float("nan")

    @property
    def genuine_beyond_share(self) -> float:
        """Share of a person's own (judged) photos beyond the threshold (false alarms)."""
        return self.genuine_beyond / self.genuine if self.genuine else float("nan")


def wrong_person_trial(
    vectors: np.ndarray, persons: Sequence[str], genders: Sequence[str], plant_fraction: float = 0.05,
    top_fraction: float = 0.10, seed: int = 0, min_gallery: int = 4, centre: str = "median",
    threshold: float = DEFAULT_WRONG_PERSON_DISTANCE, min_photos: int = MIN_PERSON_PHOTOS,
) -> WrongPersonTrial:
    """Plant ``plant_fraction`` of the gallery photos (people with ``min_gallery`` or more photos)
    from people outside the galleries, of the same gender, each moved into a gallery drawn in
    proportion to its size; then rank every judged photo by its distance to its person's centre.

    The planted photos are moved, not copied (no same-face shortcut). Counts the planted photos
    within the first ``top_fraction`` of the queue, and each side of ``threshold``.
    """
    rng = np.random.default_rng(seed)
    persons = list(persons)
    genders = list(genders)
    groups = group_by_person(persons)
    galleries = [p for p, idx in groups.items() if len(idx) >= min_gallery]
    gallery_set = set(galleries)
    sizes = np.array([len(groups[p]) for p in galleries], dtype=np.float64)
    total = int(sizes.sum())
    wanted = max(1, round(plant_fraction * total))
    donors = {g: [i for i, p in enumerate(persons) if p not in gallery_set and genders[i] == g] for g in set(genders)}
    for g in donors:
        rng.shuffle(donors[g])
    noisy = list(persons)
    planted: list[int] = []
    attempts = 0
    while len(planted) < wanted and attempts < 50 * wanted:
        attempts += 1
        gallery = galleries[int(rng.choice(len(galleries), p=sizes / total))]
        gender = genders[groups[gallery][0]]
        if not donors.get(gender):
            continue
        donor = donors[gender].pop()
        noisy[donor] = gallery
        planted.append(donor)
    distance = person_outlier_distances(vectors, noisy, min_photos, CENTRES[centre])
    queue = suspicious_first(distance)
    cut = int(np.ceil(top_fraction * len(queue)))
    planted_set = set(planted)
    found = sum(1 for i in queue[:cut] if i in planted_set)
    judged = ~np.isnan(distance)
    beyond = judged & (distance > threshold)
    is_planted = np.zeros(len(persons), dtype=bool)
    is_planted[planted] = True
    return WrongPersonTrial(
        len(planted), found, len(queue), cut, int((beyond & is_planted).sum()),
        int((beyond & ~is_planted).sum()), int((judged & ~is_planted).sum()),
    )


@dataclass(frozen=True)
class FlippedPeopleTrial:
    """Flipped people, how many were flagged, and how many correctly labelled people were."""

    flipped: int
    found: int
    correct: int
    false_flags: int

    @property
    def recall(self) -> float:
        return self.found / self.flipped if self.flipped else float("nan")

    @property
    def false_flag_rate(self) -> float:
        return self.false_flags / self.correct if self.correct else float("nan")


def flipped_people_trial(
    vectors: np.ndarray, persons: Sequence[str], genders: Sequence[str], flip_fraction: float = 0.05,
    seed: int = 0, min_photos: int = MIN_PERSON_PHOTOS,
) -> FlippedPeopleTrial:
    """Flip the label of every photo of ``flip_fraction`` of the people with ``min_photos`` or
    more photos (two genders), run :func:`~curation.identity.check_people_labels` and count."""
    classes = sorted(set(genders))
    if len(classes) != 2:
        raise ValueError(f"a flip trial needs exactly two genders, got {classes}")
    rng = np.random.default_rng(seed)
    groups = group_by_person(list(persons))
    judged = [p for p, idx in groups.items() if len(idx) >= min_photos]
    chosen = {judged[int(k)] for k in rng.choice(len(judged), size=max(1, round(flip_fraction * len(judged))), replace=False)}
    noisy = list(genders)
    for person in chosen:
        for i in groups[person]:
            noisy[i] = classes[1] if genders[i] == classes[0] else classes[0]
    checks = check_people_labels(vectors, noisy, persons, min_photos)
    flagged = {c.person for c in checks if c.flagged}
    return FlippedPeopleTrial(len(chosen), len(flagged & chosen), len(checks) - len(chosen), len(flagged - chosen))


__all__ = [
    "CENTRES", "FlippedPeopleTrial", "WrongPersonTrial", "flipped_people_trial", "suspicious_first",
    "wrong_person_trial",
]
