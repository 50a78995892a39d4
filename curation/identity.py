"""Label noise about people: photos of the wrong person in a gallery, and whole people under the
wrong label. Plain functions over embeddings (n x 128) and per-photo person keys and genders.

- **Wrong person** (as Ng and Winkler 2014 cleaned FaceScrub): each photo of a person with at
  least :data:`MIN_PERSON_PHOTOS` single-face photos is measured against a robust centre of that
  person's *other* photos (leave-one-out, so a photo never pulls its own centre; a coordinate-wise
  median by default, so the other wrong photos do not pull it either). Far photos are suspects.
- **Same face under two people**: a photo (or a copy of it) filed under two people.
- **Mislabelled person**: each person's photos are classified by gender centroids built without
  that person; when most of them disagree with the label, the whole person is suspect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from anfe.people import group_by_person

#: Distance to the centre of a person's other photos beyond which a photo is a wrong-person
#: suspect: dlib's same-person tolerance. Measured on LFW by bench/bench_identity.py (see the
#: README): photos planted from other people of the same gender lie beyond it far more often
#: than a person's own photos.
DEFAULT_WRONG_PERSON_DISTANCE = 0.6
#: A person needs this many single-face photos before their photos are judged against the rest.
MIN_PERSON_PHOTOS = 3
#: Two photos under different people whose faces lie this close are one face (the same photo,
#: recompressed or recropped). Measured on LFW: copies of a photo re-encoded at JPEG quality 50,
#: resized to 60% or 150% or cropped by 20 px lie 0.03-0.08 from it; none of the 38,369 pairs of
#: distinct photos of one person is within 0.15 (the closest 0.162); no two people within 0.3.
DEFAULT_SAME_FACE_DISTANCE = 0.15
#: Robust leave-one-out centres (``mean`` is the non-robust baseline the bench compares with).
CENTRES = ("median", "medoid", "mean")


def _loo_median(x: np.ndarray) -> np.ndarray:
    """Row i: the coordinate-wise median of every row but i (n >= 2), in O(n d log n)."""
    n = len(x)
    order = np.argsort(x, axis=0, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(n)[:, None].repeat(x.shape[1], axis=1), axis=0)
    s = np.take_along_axis(x, order, axis=0)
    m = n - 1  # values left

    def kth(k: int) -> np.ndarray:  # the k-th smallest of the remaining values, per row and column
        index = np.where(ranks > k, k, k + 1)
        return np.take_along_axis(s, index, axis=0)

    if m % 2:
        return kth(m // 2)
    return 0.5 * (kth(m // 2 - 1) + kth(m // 2))


def _pairwise(x: np.ndarray) -> np.ndarray:
    sq = np.einsum("ij,ij->i", x, x)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0))


def _loo_distances(x: np.ndarray, centre: str) -> np.ndarray:
    """Each row's distance to the centre of the other rows."""
    n = len(x)
    if centre == "mean":
        loo = (x.sum(axis=0)[None, :] - x) / (n - 1)
        return np.linalg.norm(x - loo, axis=1)
    if centre == "median":
        return np.linalg.norm(x - _loo_median(x), axis=1)
    if centre == "medoid":
        d = _pairwise(x)
        cost = d.sum(axis=1)[None, :] - d  # cost[i, j]: j's distance sum to the others without i
        np.fill_diagonal(cost, np.inf)
        return d[np.arange(n), cost.argmin(axis=1)]
    raise ValueError(f"unknown centre {centre!r}: use one of {', '.join(CENTRES)}")


def person_outlier_distances(
    vectors: np.ndarray, persons: Sequence[str | None], centre: str = "median",
    min_photos: int = MIN_PERSON_PHOTOS,
) -> np.ndarray:
    """Per photo, its distance to the leave-one-out ``centre`` of its person's other photos;
    NaN for photos with no person or whose person has fewer than ``min_photos`` photos."""
    vectors = np.asarray(vectors, dtype=np.float64)
    if len(vectors) != len(persons):
        raise ValueError(f"{len(vectors)} vectors but {len(persons)} persons")
    if centre not in CENTRES:
        raise ValueError(f"unknown centre {centre!r}: use one of {', '.join(CENTRES)}")
    out = np.full(len(persons), np.nan)
    for members in group_by_person(persons).values():
        if len(members) >= max(2, min_photos):
            idx = np.asarray(members)
            out[idx] = _loo_distances(vectors[idx], centre)
    return out


def suspicious_first(scores: np.ndarray) -> list[int]:
    """Indices of the judged photos (not NaN), the largest score first (ties by index): the
    wrong-person review queue."""
    scores = np.asarray(scores, dtype=np.float64)
    judged = np.flatnonzero(~np.isnan(scores))
    return [int(i) for i in judged[np.lexsort((judged, -scores[judged]))]]


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
    ``max_distance``; compared block by block (float32 products), so memory stays bounded."""
    x = np.asarray(vectors, dtype=np.float32)
    named = np.array([p is not None for p in persons], dtype=bool)
    codes = {p: i for i, p in enumerate(sorted({p for p in persons if p is not None}))}
    who = np.array([codes.get(p, -1) for p in persons], dtype=np.int64)
    sq = np.einsum("ij,ij->i", x, x)
    limit = max_distance * max_distance
    found: list[SameFace] = []
    for start in range(0, len(x), block):
        stop = min(start + block, len(x))
        d2 = sq[start:stop, None] + sq[None, :] - 2.0 * (x[start:stop] @ x.T)
        rows, cols = np.nonzero(d2 <= limit + 1e-6)
        rows = rows + start
        keep = (cols > rows) & named[rows] & named[cols] & (who[rows] != who[cols])
        for i, j in zip(rows[keep], cols[keep]):
            found.append(SameFace(int(i), int(j), float(np.sqrt(max(d2[i - start, j], 0.0)))))
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
    def share(self) -> float:
        """Share of the person's photos nearer another gender's centroid than their label's."""
        return self.disagree / self.photos if self.photos else 0.0

    @property
    def flagged(self) -> bool:
        """True when most of the person's photos disagree with the label."""
        return self.disagree * 2 > self.photos


def check_people_labels(
    vectors: np.ndarray, genders: Sequence[str], persons: Sequence[str | None],
    min_photos: int = MIN_PERSON_PHOTOS,
) -> list[PersonLabelCheck]:
    """Per person with at least ``min_photos`` photos: classify each photo by the nearest gender
    centroid, centroids built from every photo *except that person's* (so a whole mislabelled
    person does not pull their label's centroid towards themselves). The person's label is the
    most common label of their photos. Flagged people first (most disagreement, then largest
    margin), then the rest by person key."""
    x = np.asarray(vectors, dtype=np.float64)
    genders = list(genders)
    if len(x) != len(genders) or len(x) != len(persons):
        raise ValueError(f"{len(x)} vectors, {len(genders)} genders and {len(persons)} persons")
    classes = sorted(set(genders))
    if len(classes) < 2:
        return []
    label_array = np.array(genders, dtype=object)
    sums = {g: x[label_array == g].sum(axis=0) for g in classes}
    counts = {g: int((label_array == g).sum()) for g in classes}
    results = []
    for person, members in group_by_person(persons).items():
        if len(members) < max(1, min_photos):
            continue
        idx = np.asarray(members)
        own_labels = label_array[idx]
        label = max(classes, key=lambda g: (int((own_labels == g).sum()), g == classes[0]))
        centroids, names = [], []
        for g in classes:
            mine = own_labels == g
            n = counts[g] - int(mine.sum())
            if n < 1:
                continue
            centroids.append((sums[g] - x[idx][mine].sum(axis=0)) / n)
            names.append(g)
        if label not in names or len(names) < 2:
            continue
        c = np.stack(centroids)
        dist = np.sqrt(np.maximum(
            np.einsum("ij,ij->i", x[idx], x[idx])[:, None] + np.einsum("ij,ij->i", c, c)[None, :]
            - 2.0 * x[idx] @ c.T, 0.0))
        nearest = [names[k] for k in dist.argmin(axis=1)]
        own_col = names.index(label)
        others = np.delete(dist, own_col, axis=1).min(axis=1)
        disagree = sum(1 for n_, g in zip(nearest, own_labels) if n_ != g)
        votes = {g: nearest.count(g) for g in names}
        predicted = max(names, key=lambda g: (votes[g], g == label))
        results.append(PersonLabelCheck(person, label, len(idx), disagree, predicted,
                                        float(np.mean(dist[:, own_col] - others)), tuple(int(i) for i in idx)))
    return sorted(results, key=lambda r: (not r.flagged, -r.share, -r.margin, r.person))


__all__ = [
    "CENTRES", "DEFAULT_SAME_FACE_DISTANCE", "DEFAULT_WRONG_PERSON_DISTANCE", "MIN_PERSON_PHOTOS",
    "PersonLabelCheck", "SameFace", "check_people_labels", "person_outlier_distances", "same_face_pairs",
    "suspicious_first",
]
