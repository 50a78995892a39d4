"""How suspicious each image's label is: its distance to its own label's centroid against the others'.

Leave-one-out: an image's own centroid is recomputed without it, ``(sum - x) / (n - 1)``, so a
mislabelled photo does not pull its own centroid towards itself. The score is
``own distance - distance to the nearest other centroid``: the larger, the likelier a label error.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SuspicionScores:
    """Per-image arrays (NaN where an image cannot be judged: no other image with its label,
    or no other label at all)."""

    score: np.ndarray
    own_distance: np.ndarray
    other_distance: np.ndarray
    nearest_other: list[str | None]


def suspicion_scores(vectors: np.ndarray, labels: Sequence[str]) -> SuspicionScores:
    """Leave-one-out centroid scores for ``vectors`` (n x d) labelled by ``labels`` (n)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    labels = list(labels)
    n = len(labels)
    if vectors.shape[0] != n:
        raise ValueError(f"{vectors.shape[0]} vectors but {n} labels")
    own = np.full(n, np.nan)
    other = np.full(n, np.nan)
    nearest: list[str | None] = [None] * n
    if n == 0:
        return SuspicionScores(own.copy(), own, other, nearest)
    label_array = np.array(labels, dtype=object)
    classes = sorted(set(labels))
    members = {g: np.flatnonzero(label_array == g) for g in classes}
    sums = {g: vectors[idx].sum(axis=0) for g, idx in members.items()}
    means = {g: sums[g] / len(idx) for g, idx in members.items()}
    for g, idx in members.items():
        others = [h for h in classes if h != g]
        if len(idx) < 2 or not others:
            continue
        x = vectors[idx]
        loo = (sums[g][None, :] - x) / (len(idx) - 1)
        own[idx] = np.linalg.norm(x - loo, axis=1)
        distances = np.stack([np.linalg.norm(x - means[h][None, :], axis=1) for h in others], axis=1)
        best = distances.argmin(axis=1)
        other[idx] = distances[np.arange(len(idx)), best]
        for position, i in enumerate(idx):
            nearest[i] = others[best[position]]
    return SuspicionScores(own - other, own, other, nearest)


def suspicion_by_key(
    embeddings: Mapping[Hashable, np.ndarray | None], labels: Mapping[Hashable, str]
) -> dict[Hashable, float | None]:
    """Score per key; keys without an embedding (no face, several faces) or not judgeable get None."""
    keys = [k for k, v in embeddings.items() if v is not None and k in labels]
    result: dict[Hashable, float | None] = {k: None for k in labels}
    if not keys:
        return result
    scores = suspicion_scores(np.stack([embeddings[k] for k in keys]), [labels[k] for k in keys])
    for key, value in zip(keys, scores.score):
        result[key] = None if np.isnan(value) else float(value)
    return result


def most_suspicious_first(scores: Sequence[float | None]) -> list[int]:
    """Indices ordered by score, highest first; unscored (None/NaN) last, in their given order."""

    def key(i: int) -> tuple[int, float, int]:
        s = scores[i]
        if s is None or s != s:  # NaN
            return (1, 0.0, i)
        return (0, -float(s), i)

    return sorted(range(len(scores)), key=key)
