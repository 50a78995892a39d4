"""Experiments and baselines that only the benches and the tests run, kept out of the product
modules: the label-flip trial of the suspicion order, and the all-pairs near-duplicate search
that the multi-index hash (:func:`curation.dedup.near_pairs`) is checked and timed against.

The bench scripts import this as ``trials`` (their folder is on the path when run as
``python bench/<script>.py``); the tests add ``bench/`` to the path in ``tests/conftest.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from curation.dedup import near_pairs
from curation.suspicion import most_suspicious_first, suspicion_scores


def brute_force_pairs(hashes: np.ndarray, radius: int) -> set[tuple[int, int]]:
    """Every pair ``(i, j)``, ``i < j``, within ``radius``, by comparing all pairs (the baseline)."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    found: set[tuple[int, int]] = set()
    for i in range(len(hashes) - 1):
        distances = np.bitwise_count(hashes[i + 1 :] ^ hashes[i])
        for j in np.nonzero(distances <= radius)[0]:
            found.add((i, i + 1 + int(j)))
    return found


def query(hashes: np.ndarray, value: int, radius: int) -> list[tuple[int, int]]:
    """``(index, distance)`` of every hash within ``radius`` of ``value``, by index: the pairs of the
    hashes with ``value`` appended (the product only ever asks for all pairs)."""
    n = len(hashes)
    i, j, d = near_pairs(np.append(np.asarray(hashes, dtype=np.uint64), np.uint64(value)), radius)
    return list(zip(i[j == n].tolist(), d[j == n].tolist()))



@dataclass(frozen=True)
class FlipTrial:
    """One label-flip experiment: how many flipped labels the queue put in its first part."""

    flipped: int
    found: int
    queue_sizes: dict[str, int]

    @property
    def recall(self) -> float:
        """Share of the flipped images found in the first part of their queue."""
        return self.found / self.flipped if self.flipped else float("nan")


def flip_trial(
    vectors: np.ndarray,
    labels: Sequence[str],
    flip_fraction: float = 0.05,
    top_fraction: float = 0.10,
    seed: int = 0,
    leave_one_out: bool = True,
) -> FlipTrial:
    """Flip the labels of ``flip_fraction`` of two-label data, rank each label's review queue by
    suspicion, and count flipped images within the first ``top_fraction`` of their queue.

    ``leave_one_out=False`` scores against plain centroids (the baseline the benchmark prints).
    """
    labels = list(labels)
    classes = sorted(set(labels))
    if len(classes) != 2:
        raise ValueError(f"a flip trial needs exactly two labels, got {classes}")
    rng = np.random.default_rng(seed)
    n = len(labels)
    chosen = rng.choice(n, size=max(1, round(flip_fraction * n)), replace=False)
    noisy = list(labels)
    for i in chosen:
        noisy[i] = classes[1] if labels[i] == classes[0] else classes[0]
    if leave_one_out:
        score = suspicion_scores(vectors, noisy).score
    else:
        score = _plain_centroid_scores(np.asarray(vectors, dtype=np.float64), noisy, classes)
    flipped = set(int(i) for i in chosen)
    found = 0
    sizes: dict[str, int] = {}
    for g in classes:
        queue = [i for i in range(n) if noisy[i] == g]
        order = [queue[j] for j in most_suspicious_first([score[i] for i in queue])]
        sizes[g] = len(queue)
        cut = int(np.ceil(top_fraction * len(queue)))
        found += sum(1 for i in order[:cut] if i in flipped)
    return FlipTrial(len(flipped), found, sizes)


def _plain_centroid_scores(vectors: np.ndarray, labels: list[str], classes: list[str]) -> np.ndarray:
    label_array = np.array(labels, dtype=object)
    means = {g: vectors[label_array == g].mean(axis=0) for g in classes}
    own = np.array([np.linalg.norm(v - means[g]) for v, g in zip(vectors, labels)])
    other = np.array([min(np.linalg.norm(v - means[h]) for h in classes if h != g) for v, g in zip(vectors, labels)])
    return own - other
