"""How suspicious each image's label is: its distance to its own label's centroid, recomputed
without it (``(sum - x) / (n - 1)``, so a mislabelled photo does not pull it towards itself), minus
its distance to the nearest other label's centroid. The larger, the likelier a label error.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from anfe.models.distance import distances


@dataclass(frozen=True)
class SuspicionScores:
    """Per-image arrays (NaN where an image cannot be judged: no other image with its label,
    or no other label at all)."""

    score: np.ndarray
    own_distance: np.ndarray
    nearest_other: list[str | None]


def suspicion_scores(vectors: np.ndarray, labels: Sequence[str]) -> SuspicionScores:
    """Leave-one-out centroid scores for ``vectors`` (n x d) labelled by ``labels`` (n)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    labels = np.array(labels, dtype=object)
    n = len(labels)
    if vectors.shape[0] != n:
        raise ValueError(f"{vectors.shape[0]} vectors but {n} labels")
    own, other = np.full(n, np.nan), np.full(n, np.nan)
    nearest: list[str | None] = [None] * n
    classes = sorted(set(labels))
    members = [np.flatnonzero(labels == g) for g in classes]
    means = [vectors[idx].mean(axis=0) for idx in members]
    for k, idx in enumerate(members):
        if len(idx) < 2 or len(classes) < 2:
            continue
        x = vectors[idx]
        own[idx] = np.linalg.norm(x - (x.sum(axis=0)[None, :] - x) / (len(idx) - 1), axis=1)
        d = distances(x, np.stack(means))
        d[:, k] = np.inf  # the nearest *other* label
        best = d.argmin(axis=1)
        other[idx] = d[np.arange(len(idx)), best]
        for i, b in zip(idx, best):
            nearest[i] = classes[b]
    return SuspicionScores(own - other, own, nearest)


def suspicion_by_key(
    embeddings: Mapping[Hashable, np.ndarray | None], labels: Mapping[Hashable, str]
) -> dict[Hashable, float | None]:
    """Score per key; keys without an embedding (no face, several faces) or not judgeable get None."""
    keys = [k for k, v in embeddings.items() if v is not None and k in labels]
    result: dict[Hashable, float | None] = {k: None for k in labels}
    if keys:
        scores = suspicion_scores(np.stack([embeddings[k] for k in keys]), [labels[k] for k in keys])
        result.update((k, None if np.isnan(v) else float(v)) for k, v in zip(keys, scores.score))
    return result


def most_suspicious_first(scores: Sequence[float | None]) -> list[int]:
    """Indices ordered by score, highest first; unscored (None/NaN) last, in their given order."""

    def key(i: int) -> tuple[int, float, int]:
        s = scores[i]
        return (1, 0.0, i) if s is None or s != s else (0, -float(s), i)

    return sorted(range(len(scores)), key=key)
