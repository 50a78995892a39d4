"""The centroids of a build, one variant each, all nearest-centroid (classifier-free, as in the
paper), and the choice of k on a validation split of the training members (never the test set).

Variants (centroids per gender):

- ``mean``: the plain average of the gender's members (the paper);
- ``kmeans``: k k-means centroids;
- ``group-mean``: the mean of the per-group averages (group = a label column such as race), so a
  small group is not drowned out by a large one; still one centroid per gender;
- ``group-centroids``: one average per group (per-group pooling): a face goes to the gender of
  its nearest group centroid;
- ``group-kmeans``: k k-means centroids within each group (fewer when a group has fewer members).

With ``k='auto'`` (kmeans and group-kmeans) k is chosen among candidates on a seeded validation
part of the members: the k whose centroids, fitted on the rest, give the best validation score
(balanced accuracy, or the worst group's balanced accuracy when a group column is given, ties
to the higher balanced accuracy, then the smaller k); the build is then fitted on all members.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import DatasetError

VARIANTS = ("mean", "kmeans", "group-mean", "group-centroids", "group-kmeans")
GROUP_VARIANTS = ("group-mean", "group-centroids", "group-kmeans")
K_VARIANTS = ("kmeans", "group-kmeans")
AUTO = "auto"
DEFAULT_K_CANDIDATES = (1, 2, 4, 8, 16, 32)
DEFAULT_VALIDATION_FRACTION = 0.2
#: A validation group needs this many faces to count in the worst-group score.
VALIDATION_MIN_GROUP = 10
#: Members without the group label form this group.
NO_GROUP = "(none)"


def _kmeans(vectors: np.ndarray, k: int, seed: int) -> np.ndarray:
    if k <= 1 or len(vectors) <= 1:
        return vectors.mean(axis=0, keepdims=True)
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=min(k, len(vectors)), random_state=seed, n_init=4)
    model.fit(vectors)
    return model.cluster_centers_


def fit_gender(vectors: np.ndarray, groups: Sequence[str] | None, variant: str, k: int, seed: int) -> np.ndarray:
    """The centroids (shape (c, dims)) of one gender's member ``vectors`` for ``variant``;
    ``groups`` gives each member's group (group variants only)."""
    if variant == "mean":
        return vectors.mean(axis=0, keepdims=True)
    if variant == "kmeans":
        if len(vectors) < k:
            raise DatasetError(f"k-means with k={k} needs at least {k} images per gender, not {len(vectors)}")
        return _kmeans(vectors, k, seed)
    if groups is None:
        raise DatasetError(f"the variant {variant} needs a group column (--group-by race)")
    labels = np.asarray(list(groups), dtype=object)
    parts = [vectors[labels == value] for value in sorted(set(labels.tolist()))]
    if variant == "group-mean":
        return np.mean([p.mean(axis=0) for p in parts], axis=0)[None, :]
    if variant == "group-centroids":
        return np.stack([p.mean(axis=0) for p in parts])
    if variant == "group-kmeans":
        return np.concatenate([_kmeans(p, k, seed) for p in parts])
    raise DatasetError(f"unknown variant {variant!r}: use one of {', '.join(VARIANTS)}")


def nearest_gender(vectors: np.ndarray, centroids: Mapping[str, np.ndarray]) -> list[str]:
    """The gender of each vector's nearest centroid."""
    from .builds import distances

    genders = list(centroids)
    table = np.stack([distances(vectors, centroids[g]).min(axis=1) for g in genders], axis=1)
    return [genders[i] for i in table.argmin(axis=1)]


def validation_score(truth: Sequence[str], predicted: Sequence[str], groups: Sequence[str] | None,
                     genders: Sequence[str]) -> dict[str, Any]:
    """Balanced accuracy, and per group (when given) the worst group's balanced accuracy among
    groups with at least :data:`VALIDATION_MIN_GROUP` faces and every gender present."""
    truth_a, pred_a = np.asarray(truth, dtype=object), np.asarray(predicted, dtype=object)

    def balanced(mask: np.ndarray) -> float | None:
        rates = []
        for g in genders:
            mine = mask & (truth_a == g)
            if not mine.any():
                return None
            rates.append(float((pred_a[mine] == g).mean()))
        return float(np.mean(rates))

    every = np.ones(len(truth_a), bool)
    out: dict[str, Any] = {"balanced": balanced(every), "worst_group": None, "worst": None}
    if groups is not None:
        labels = np.asarray(list(groups), dtype=object)
        scored = {}
        for value in sorted(set(labels.tolist())):
            mask = labels == value
            if mask.sum() >= VALIDATION_MIN_GROUP and (b := balanced(mask)) is not None:
                scored[value] = b
        if scored:
            out["worst_group"] = min(scored, key=scored.get)
            out["worst"] = scored[out["worst_group"]]
    return out


def _validation_part(n: int, fraction: float, seed: int, gender: str) -> np.ndarray:
    """A seeded boolean mask of the members held out for validation (at least one, one kept)."""
    rng = np.random.default_rng([int(seed), zlib.crc32(("validation:" + gender).encode("utf-8"))])
    count = min(max(1, int(round(fraction * n))), n - 1)
    mask = np.zeros(n, bool)
    mask[rng.permutation(n)[:count]] = True
    return mask


@dataclass(frozen=True)
class KChoice:
    """What the validation split said: the score of every candidate k and the chosen one."""

    chosen: int
    scores: dict[int, dict[str, Any]]
    fraction: float
    by: str

    def to_doc(self) -> dict[str, Any]:
        return {"chosen": self.chosen, "fraction": self.fraction, "by": self.by,
                # keys as text: store documents have string keys
                "candidates": {str(k): v for k, v in self.scores.items()}}


def choose_k(vectors: Mapping[str, np.ndarray], groups: Mapping[str, Sequence[str]] | None, variant: str,
             candidates: Sequence[int], fraction: float, seed: int) -> KChoice:
    """The k among ``candidates`` that scores best on a validation part of the members (see the
    module docstring); ``vectors``/``groups`` per gender are the build's members."""
    genders = list(vectors)
    masks = {g: _validation_part(len(vectors[g]), fraction, seed, g) for g in genders}
    val_x = np.concatenate([vectors[g][masks[g]] for g in genders])
    truth = [g for g in genders for _ in range(int(masks[g].sum()))]
    val_groups = None
    if groups is not None:
        val_groups = [x for g in genders for x, m in zip(groups[g], masks[g]) if m]
    scores: dict[int, dict[str, Any]] = {}
    smallest = min(int((~masks[g]).sum()) for g in genders)
    for k in sorted(set(int(c) for c in candidates)):
        if variant == "kmeans" and k > smallest:
            continue
        fitted = {
            g: fit_gender(vectors[g][~masks[g]],
                          None if groups is None else [x for x, m in zip(groups[g], masks[g]) if not m],
                          variant, k, seed)
            for g in genders
        }
        scores[k] = validation_score(truth, nearest_gender(val_x, fitted), val_groups, genders)
    if not scores:
        raise DatasetError(f"no candidate k fits the {smallest} members per gender left after validation")
    by = "worst-group" if groups is not None and any(s["worst"] is not None for s in scores.values()) else "balanced"

    def key(k: int) -> tuple:
        s = scores[k]
        main = s["worst"] if by == "worst-group" else s["balanced"]
        return (main if main is not None else -1.0, s["balanced"] or -1.0, -k)

    return KChoice(max(scores, key=key), scores, fraction, by)


def parse_k(text: str | int) -> int | str:
    """``'16'`` -> 16; ``'auto'`` -> 'auto'; anything else is an error."""
    if isinstance(text, int) or str(text).strip().lower() != AUTO:
        try:
            value = int(text)
        except ValueError:
            raise DatasetError(f"cannot read k={text!r}: give a number of centroids or 'auto'") from None
        if value < 1:
            raise DatasetError(f"k (centroids per gender) must be at least 1, not {value}")
        return value
    return AUTO


def parse_candidates(text: str) -> tuple[int, ...]:
    """``'1,2,4,8'`` -> (1, 2, 4, 8)."""
    try:
        values = tuple(int(p) for p in text.split(",") if p.strip())
    except ValueError:
        raise DatasetError(f"cannot read the k candidates {text!r}: e.g. 1,2,4,8,16,32") from None
    if not values or min(values) < 1:
        raise DatasetError(f"the k candidates must be numbers of at least 1, not {text!r}")
    return values


__all__ = [
    "AUTO", "DEFAULT_K_CANDIDATES", "DEFAULT_VALIDATION_FRACTION", "GROUP_VARIANTS", "KChoice", "K_VARIANTS",
    "NO_GROUP", "VARIANTS", "choose_k", "fit_gender", "nearest_gender", "parse_candidates", "parse_k",
    "validation_score",
]
