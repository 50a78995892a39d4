"""Label noise about people, as plain functions over embeddings (n x 128) and per-photo person keys:
a photo far from the median of its person's *other* photos (wrong person, as Ng and Winkler 2014
cleaned FaceScrub), one face filed under two people, and a person most of whose photos lie nearer
another gender's centroid, the centroids built without them (mislabelled person).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from anfe.models.distance import distances
from anfe.core.people import group_by_person

#: Distance to the median of a person's other photos beyond which a photo is a wrong-person
#: suspect: dlib's same-person tolerance (measured on LFW by bench/bench_identity.py).
DEFAULT_WRONG_PERSON_DISTANCE = 0.6
#: A person needs this many single-face photos before their photos are judged against the rest.
MIN_PERSON_PHOTOS = 3
#: Two photos under different people whose faces lie this close are one face. Measured on LFW:
#: re-encoded, resized or cropped copies lie 0.03-0.08 apart; no two distinct photos of one
#: person within 0.15 (the closest 0.162); no two people within 0.3.
DEFAULT_SAME_FACE_DISTANCE = 0.15


def _loo_median(x: np.ndarray) -> np.ndarray:
    """Row i: the coordinate-wise median of every row but i (n >= 2), in O(n d log n)."""
    order = np.argsort(x, axis=0, kind="stable")
    ranks, s = np.argsort(order, axis=0), np.take_along_axis(x, order, axis=0)

    def kth(k: int) -> np.ndarray:  # the k-th smallest value left once row i's is taken out
        return np.where(ranks > k, s[k], s[k + 1])

    m = len(x) - 1  # values left
    return kth(m // 2) if m % 2 else 0.5 * (kth(m // 2 - 1) + kth(m // 2))


def person_outlier_distances(
    vectors: np.ndarray, persons: Sequence[str | None], min_photos: int = MIN_PERSON_PHOTOS,
    loo_centres: Callable[[np.ndarray], np.ndarray] = _loo_median,
) -> np.ndarray:
    """Per photo, its distance to the centre of its person's other photos (``loo_centres`` maps a
    person's rows to those centres); NaN without a person or with fewer than ``min_photos``."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if len(vectors) != len(persons):
        raise ValueError(f"{len(vectors)} vectors but {len(persons)} persons")
    out = np.full(len(persons), np.nan)
    for members in group_by_person(persons).values():
        if len(members) >= max(2, min_photos):
            x = vectors[members]
            out[members] = np.linalg.norm(x - loo_centres(x), axis=1)
    return out


@dataclass(frozen=True)
class SameFace:
    """Two photos of one face filed under different people, and how close their faces are."""

    first: int
    second: int
    distance: float


def same_face_pairs(
    vectors: np.ndarray, persons: Sequence[str | None], max_distance: float = DEFAULT_SAME_FACE_DISTANCE,
    block: int = 512,
) -> list[SameFace]:
    """Pairs (first < second) under two different named people whose faces lie within
    ``max_distance``, closest first; compared block by block (in float32, as fast as the
    comparison of every pair allows), so memory stays bounded."""
    x = np.asarray(vectors, dtype=np.float32)
    codes = {p: i for i, p in enumerate(set(persons) - {None})}
    who = np.array([codes.get(p, -1) for p in persons], dtype=np.int64)  # -1: no person
    found: list[SameFace] = []
    for start in range(0, len(x), block):
        d = distances(x[start : start + block], x, np.float32)
        rows, cols = np.nonzero(d <= max_distance + 1e-6)
        rows = rows + start
        keep = (cols > rows) & (who[rows] >= 0) & (who[cols] >= 0) & (who[rows] != who[cols])
        found += [SameFace(int(i), int(j), float(d[i - start, j])) for i, j in zip(rows[keep], cols[keep])]
    return sorted(found, key=lambda p: (p.distance, p.first, p.second))


@dataclass(frozen=True)
class PersonLabelCheck:
    """One person's gender label against centroids built without them."""

    person: str
    label: str
    photos: int
    disagree: int
    predicted: str
    margin: float
    members: tuple[int, ...]

    @property
    def flagged(self) -> bool:
        """True when most of the person's photos lie nearer another gender's centroid."""
        return self.disagree * 2 > self.photos


def check_people_labels(
    vectors: np.ndarray, genders: Sequence[str], persons: Sequence[str | None],
    min_photos: int = MIN_PERSON_PHOTOS,
) -> list[PersonLabelCheck]:
    """Per person with ``min_photos`` or more photos, their photos classified by the nearest gender
    centroid built *without that person* (so a mislabelled person does not pull their label's
    centroid); the label is their photos' most common one. Flagged people first (most
    disagreement, then largest margin), then the rest by person key."""
    x = np.asarray(vectors, dtype=np.float64)
    genders = np.array(genders, dtype=object)
    if len(x) != len(genders) or len(x) != len(persons):
        raise ValueError(f"{len(x)} vectors, {len(genders)} genders and {len(persons)} persons")
    classes = sorted(set(genders))
    if len(classes) < 2:
        return []
    sums = {g: x[genders == g].sum(axis=0) for g in classes}
    counts = {g: int((genders == g).sum()) for g in classes}
    results = []
    for person, members in group_by_person(persons).items():
        if len(members) < max(1, min_photos):
            continue
        own = genders[members]
        label = max(classes, key=lambda g: (int((own == g).sum()), g == classes[0]))
        names = [g for g in classes if counts[g] > (own == g).sum()]  # a centroid left without them
        if label not in names or len(names) < 2:
            continue
        left = [(sums[g] - x[members][own == g].sum(axis=0)) / (counts[g] - (own == g).sum()) for g in names]
        dist = distances(x[members], np.stack(left))
        nearest = [names[k] for k in dist.argmin(axis=1)]
        own_col = names.index(label)
        others = np.delete(dist, own_col, axis=1).min(axis=1)
        predicted = max(names, key=lambda g: (nearest.count(g), g == label))
        results.append(PersonLabelCheck(
            person, label, len(members), sum(n != g for n, g in zip(nearest, own)), predicted,
            float(np.mean(dist[:, own_col] - others)), tuple(members)))
    return sorted(results, key=lambda r: (not r.flagged, -r.disagree / r.photos, -r.margin, r.person))


__all__ = [
    "DEFAULT_SAME_FACE_DISTANCE", "DEFAULT_WRONG_PERSON_DISTANCE", "MIN_PERSON_PHOTOS", "PersonLabelCheck",
    "SameFace", "check_people_labels", "person_outlier_distances", "same_face_pairs",
]
