"""The centroids of a build, one variant each, all nearest-centroid (classifier-free, as in the
paper), and the choice of k on a validation split of the training members (never the test set).

Variants (centroids per gender):

- ``mean``: the plain average of the gender's members (the paper);
- ``kmeans``: k k-means centroids;
- ``group-mean``: the mean of the per-group averages (group = a label column such as race), so a
  small group is not drowned out by a large one; still one centroid per gender;
- ``group-centroids``: one average per group (per-group pooling): a face goes to the gender of
  its nearest group centroid;
- ``group-kmeans``: k k-means centroids within each group (fewer when a group has fewer members);
- ``group-adaptive``: k-means within each group with a k per group, grown where validation shows
  the group is served worst: starting from one centroid per group, the worst validation group's k
  steps up the candidate ladder while that raises the worst group's validation score.

With ``k='auto'`` (kmeans and group-kmeans) k is chosen among candidates on a seeded validation
part of the members: the k whose centroids, fitted on the rest, give the best validation score
(balanced accuracy, or the worst group's balanced accuracy when a group column is given, ties
to the higher balanced accuracy, then the smaller k); the build is then fitted on all members.
With ``folds`` > 1 the members are cut into that many seeded folds and every member is predicted
once by centroids fitted on the other folds (cross-validation): the scores then rest on every
training face, not a fifth of them, which matters for groups of a few dozen photos.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from anfe.core.errors import DatasetError, MissingGroupError
from .distance import distances

VARIANTS = ("mean", "kmeans", "group-mean", "group-centroids", "group-kmeans", "group-adaptive")
GROUP_VARIANTS = ("group-mean", "group-centroids", "group-kmeans", "group-adaptive")
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


def fit_gender(vectors: np.ndarray, groups: Sequence[str] | None, variant: str, k: int, seed: int,
               k_per_group: Mapping[str, int] | None = None) -> np.ndarray:
    """The centroids (shape (c, dims)) of one gender's member ``vectors`` for ``variant``;
    ``groups`` gives each member's group (group variants only); ``k_per_group`` the k of each
    group for group-adaptive (a group not named gets ``k``)."""
    if variant == "mean":
        return vectors.mean(axis=0, keepdims=True)
    if variant == "kmeans":
        if len(vectors) < k:
            raise DatasetError(f"k-means with k={k} needs at least {k} images per gender, not {len(vectors)}")
        return _kmeans(vectors, k, seed)
    if groups is None:
        raise MissingGroupError(f"the variant {variant} needs a group column (such as race)")
    labels = np.asarray(list(groups), dtype=object)
    parts = [vectors[labels == value] for value in sorted(set(labels.tolist()))]
    if variant == "group-mean":
        return np.mean([p.mean(axis=0) for p in parts], axis=0)[None, :]
    if variant == "group-centroids":
        return np.stack([p.mean(axis=0) for p in parts])
    if variant in ("group-kmeans", "group-adaptive"):
        values = sorted(set(labels.tolist()))
        ks = [k if variant == "group-kmeans" else int((k_per_group or {}).get(v, k)) for v in values]
        return np.concatenate([_kmeans(p, kv, seed) for p, kv in zip(parts, ks)])
    raise DatasetError(f"unknown variant {variant!r}: use one of {', '.join(VARIANTS)}")


def nearest_gender(vectors: np.ndarray, centroids: Mapping[str, np.ndarray]) -> list[str]:
    """The gender of each vector's nearest centroid."""
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
    out: dict[str, Any] = {"faces": len(truth_a), "balanced": balanced(every), "worst_group": None, "worst": None}
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


def _validation_masks(n: int, fraction: float, folds: int, seed: int, gender: str) -> list[np.ndarray]:
    """Seeded boolean masks of the members each validation round holds out: one part of
    ``fraction`` (at least one member, one kept), or ``folds`` disjoint folds covering all."""
    rng = np.random.default_rng([int(seed), zlib.crc32(("validation:" + gender).encode("utf-8"))])
    order = rng.permutation(n)
    if folds > 1:
        return [np.isin(np.arange(n), order[f::folds]) for f in range(folds)]
    count = min(max(1, int(round(fraction * n))), n - 1)
    mask = np.zeros(n, bool)
    mask[order[:count]] = True
    return [mask]


@dataclass(frozen=True)
class KChoice:
    """What the validation split said: the score of every candidate (a k, or a step of the
    per-group search) and the chosen k (and k per group for group-adaptive)."""

    chosen: int
    scores: dict[Any, dict[str, Any]]
    fraction: float
    by: str
    folds: int = 1
    per_group: dict[str, int] | None = None

    def to_doc(self) -> dict[str, Any]:
        doc = {"chosen": self.chosen, "fraction": self.fraction, "folds": self.folds, "by": self.by,
               # keys as text: store documents have string keys
               "candidates": {str(k): v for k, v in self.scores.items()}}
        if self.per_group is not None:
            doc["per_group"] = dict(self.per_group)
        return doc


class _Validation:
    """Scores centroid settings on held-out members: one validation part, or every member once
    across folds (each predicted by centroids fitted on the other folds)."""

    def __init__(self, vectors: Mapping[str, np.ndarray], groups: Mapping[str, Sequence[str]] | None,
                 fraction: float, folds: int, seed: int) -> None:
        self.vectors, self.groups = vectors, groups
        self.genders = list(vectors)
        self.masks = {g: _validation_masks(len(vectors[g]), fraction, folds, seed, g) for g in self.genders}
        self.rounds = len(next(iter(self.masks.values())))
        self.seed = seed
        self.smallest_fit = min(int((~m).sum()) for g in self.genders for m in self.masks[g])

    def _labels(self, gender: str, mask: np.ndarray) -> list[str] | None:
        return None if self.groups is None else [x for x, m in zip(self.groups[gender], mask) if m]

    def score(self, variant: str, k: int, k_per_group: Mapping[str, int] | None = None) -> dict[str, Any]:
        truth: list[str] = []
        predicted: list[str] = []
        groups: list[str] = []
        for r in range(self.rounds):
            fitted = {g: fit_gender(self.vectors[g][~self.masks[g][r]], self._labels(g, ~self.masks[g][r]),
                                    variant, k, self.seed, k_per_group) for g in self.genders}
            held = np.concatenate([self.vectors[g][self.masks[g][r]] for g in self.genders])
            truth += [g for g in self.genders for _ in range(int(self.masks[g][r].sum()))]
            predicted += nearest_gender(held, fitted)
            if self.groups is not None:
                groups += [x for g in self.genders for x in self._labels(g, self.masks[g][r])]
        return validation_score(truth, predicted, groups if self.groups is not None else None, self.genders)


def _by(scores: Mapping[Any, dict[str, Any]], groups: Any) -> str:
    return "worst-group" if groups is not None and any(s["worst"] is not None for s in scores.values()) else "balanced"


def _key(score: dict[str, Any], by: str) -> tuple[float, float]:
    main = score["worst"] if by == "worst-group" else score["balanced"]
    return (main if main is not None else -1.0, score["balanced"] or -1.0)


def choose_k(vectors: Mapping[str, np.ndarray], groups: Mapping[str, Sequence[str]] | None, variant: str,
             candidates: Sequence[int], fraction: float, seed: int, folds: int = 1) -> KChoice:
    """The k among ``candidates`` that scores best on held-out members (see the module
    docstring); ``vectors``/``groups`` per gender are the build's members."""
    check = _Validation(vectors, groups, fraction, folds, seed)
    scores: dict[int, dict[str, Any]] = {}
    for k in sorted(set(int(c) for c in candidates)):
        if variant == "kmeans" and k > check.smallest_fit:
            continue
        scores[k] = check.score(variant, k)
    if not scores:
        raise DatasetError(f"no candidate k fits the {check.smallest_fit} members per gender left after validation")
    by = _by(scores, groups)
    best = max(scores, key=lambda k: (*_key(scores[k], by), -k))
    return KChoice(best, scores, fraction, by, folds)


#: Steps of the per-group search at most (each fits every fold once).
MAX_ADAPTIVE_STEPS = 12


def choose_group_ks(vectors: Mapping[str, np.ndarray], groups: Mapping[str, Sequence[str]],
                    candidates: Sequence[int], fraction: float, seed: int, folds: int = 1) -> KChoice:
    """A k per group (group-adaptive): one centroid per group to start; then, while it helps,
    the group that validation shows is served worst moves to the next k of ``candidates``
    (kept when the worst group's validation score, then the balanced one, rises)."""
    check = _Validation(vectors, groups, fraction, folds, seed)
    ladder = sorted(set(int(c) for c in candidates) | {1})
    values = sorted({x for g in groups for x in groups[g]})
    current = {v: 1 for v in values}
    score = check.score("group-adaptive", 1, current)
    steps: dict[str, dict[str, Any]] = {"start": {**score, "k_per_group": dict(current)}}
    for step in range(MAX_ADAPTIVE_STEPS):
        worst = score["worst_group"]
        if worst is None or current[worst] >= ladder[-1]:
            break
        trial = {**current, worst: next(k for k in ladder if k > current[worst])}
        tried = check.score("group-adaptive", 1, trial)
        steps[f"step{step + 1}:{worst}={trial[worst]}"] = {**tried, "k_per_group": dict(trial)}
        if _key(tried, "worst-group") <= _key(score, "worst-group"):
            break
        current, score = trial, tried
    return KChoice(max(current.values()), steps, fraction, "worst-group", folds, current)


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
    "NO_GROUP", "VARIANTS", "choose_group_ks", "choose_k", "fit_gender", "nearest_gender", "parse_candidates", "parse_k",
    "validation_score",
]
