"""How sure a figure is, and who is served worst: 95% intervals for every accuracy an evaluation
reports, and per label column (race, age band...) the group with the lowest balanced accuracy.

Why: a test set holds only a few photos of some groups (95 Asian men in 2,000 UTKFace adults), so
a per-group accuracy without an interval cannot be compared with the overall one, and a summary
line that shows only the overall figure hides the group the model fails.

Intervals (95%):

- a share of photos (accuracy of one gender, of one gender within a group) gets the Wilson score
  interval, which stays inside [0, 1] and behaves for small groups and shares near 100%;
- a balanced accuracy (the mean of the per-gender accuracies) gets a percentile bootstrap that
  resamples photos within each true gender;
- when the test set names people, photos of one person are not independent: every interval is
  then a bootstrap that resamples whole people within their gender (a person's photos move
  together), shares included.

The bootstrap is seeded: the same outcomes always give the same intervals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

#: The two-sided 95% normal quantile.
Z95 = 1.959963984540054
#: Bootstrap replicates (percentile intervals are stable to about 0.1 point at this count).
REPLICATES = 2000
#: The weight matrix (replicates x decided faces, float32) stays under this many cells (200 MB):
#: a test set of more than 25,000 faces gets fewer replicates (at least 400).
MAX_WEIGHT_CELLS = 50_000_000
#: Groups with fewer decided faces than this are left out of the worst-group figure.
DEFAULT_MIN_GROUP = 30
#: A bootstrap over people needs at least this many people of each gender in a figure: with fewer
#: it resamples the same one or two people and returns a near-zero-width interval (one person per
#: gender: exactly zero width), which claims a certainty the data does not hold. Such figures get
#: no interval (None), and the evaluation says why.
MIN_PEOPLE = 5
WILSON, BOOT_PHOTOS, BOOT_PEOPLE = "wilson", "bootstrap over photos", "bootstrap over people"

Interval = tuple[float, float]


def wilson(right: int, total: int, z: float = Z95) -> Interval | None:
    """The Wilson score interval of ``right / total`` (None when ``total`` is 0).

    >>> [round(x, 4) for x in wilson(5, 10)]
    [0.2366, 0.7634]
    """
    if total <= 0:
        return None
    p = right / total
    z2 = z * z
    denominator = 1.0 + z2 / total
    centre = (p + z2 / (2 * total)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / total + z2 / (4.0 * total * total)) / denominator
    # exact ends at 0 and 1 (the formula gives them up to rounding)
    return (0.0 if right == 0 else max(0.0, centre - half)), (1.0 if right == total else min(1.0, centre + half))


def _percentiles(samples: np.ndarray) -> Interval | None:
    finite = samples[np.isfinite(samples)]
    if len(finite) < len(samples) * 0.5:  # the figure is undefined in most replicates
        return None
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def percentile_interval(samples: np.ndarray | None) -> Interval | None:
    """The 2.5th and 97.5th percentiles of bootstrap ``samples`` (None when there are none)."""
    return None if samples is None or not len(samples) else _percentiles(np.asarray(samples, dtype=np.float64))


def mean_samples(values: Sequence[float], replicates: int = REPLICATES, seed: int = 0) -> np.ndarray:
    """Bootstrap replicates of the mean of ``values`` (one per person: the per-person accuracy),
    resampling the values with replacement; empty when there are fewer than :data:`MIN_PEOPLE`."""
    data = np.asarray(list(values), dtype=np.float64)
    if len(data) < MIN_PEOPLE:  # too few people for a bootstrap to mean anything
        return np.empty(0)
    replicates = min(replicates, max(400, MAX_WEIGHT_CELLS // len(data)))
    rng = np.random.default_rng(seed)
    return data[rng.integers(0, len(data), size=(replicates, len(data)))].mean(axis=1)


class Resampler:
    """Bootstrap weights over the decided test faces: ``weights[b, i]`` is how many times photo
    ``i`` is drawn in replicate ``b``. Units (people when ``persons`` names them, else photos) are
    resampled with replacement within their true gender, so every replicate keeps each gender's
    count of units; a person's photos share their person's weight."""

    def __init__(self, truth: Sequence[str], right: Sequence[bool], genders: Sequence[str],
                 persons: Sequence[str | None] | None = None, replicates: int = REPLICATES, seed: int = 0) -> None:
        self.truth = np.asarray(list(truth), dtype=object)
        replicates = min(replicates, max(400, MAX_WEIGHT_CELLS // max(1, len(self.truth))))
        self.replicates = replicates
        self.right = np.asarray(list(right), dtype=np.float64)
        self.genders = list(genders)
        persons = list(persons) if persons is not None else [None] * len(self.truth)
        self.by_people = any(p is not None for p in persons)
        keys = [p if p is not None else f"\0photo:{i}" for i, p in enumerate(persons)]
        unit_index: dict[str, int] = {}
        unit_of_photo = np.array([unit_index.setdefault(k, len(unit_index)) for k in keys], dtype=np.int64)
        # a unit's gender is its photos' most common true gender
        votes: dict[int, dict[str, int]] = {}
        for u, g in zip(unit_of_photo.tolist(), self.truth.tolist()):
            votes.setdefault(u, {}).setdefault(g, 0)
            votes[u][g] += 1
        unit_gender = {u: max(v, key=v.get) for u, v in votes.items()}
        counts = np.zeros((replicates, len(unit_index)), dtype=np.float32)
        rng = np.random.default_rng(seed)
        for gender in sorted(set(unit_gender.values())):
            units = np.array([u for u, g in unit_gender.items() if g == gender], dtype=np.int64)
            drawn = rng.multinomial(len(units), np.full(len(units), 1.0 / len(units)), size=replicates)
            counts[:, units] = drawn
        self.weights = counts[:, unit_of_photo] if len(unit_of_photo) else np.zeros((replicates, 0), np.float32)
        self._unit_of_photo = unit_of_photo

    def people_per_gender(self, mask: np.ndarray | None = None) -> dict[str, int]:
        """Distinct people (bootstrap units) per true gender among the photos in ``mask``."""
        mask = np.ones(len(self.truth), bool) if mask is None else np.asarray(mask, bool)
        return {g: len(set(self._unit_of_photo[mask & (self.truth == g)].tolist())) for g in self.genders}

    def too_few_people(self, mask: np.ndarray | None = None, every_gender: bool = True) -> bool:
        """True when a bootstrap over people would rest on under :data:`MIN_PEOPLE` people of a
        gender (every gender, or those present in ``mask``)."""
        if not self.by_people:
            return False
        counts = self.people_per_gender(mask)
        return any(n < MIN_PEOPLE for n in counts.values() if every_gender or n)

    @property
    def method(self) -> str:
        return BOOT_PEOPLE if self.by_people else BOOT_PHOTOS

    def _shares(self, mask: np.ndarray) -> np.ndarray:
        mask = mask.astype(np.float32)
        total = self.weights @ mask
        right = self.weights @ (mask * self.right.astype(np.float32))
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(total > 0, right / np.where(total > 0, total, 1), np.nan)

    def _balanced(self, mask: np.ndarray) -> np.ndarray:
        parts = [self._shares(mask & (self.truth == g)) for g in self.genders]
        return np.mean(parts, axis=0) if parts else np.full(len(self.weights), np.nan)

    def share(self, mask: np.ndarray) -> Interval | None:
        """Interval of the accuracy over the photos in ``mask`` (None with too few people)."""
        if self.too_few_people(mask, every_gender=False):
            return None
        return _percentiles(self._shares(np.asarray(mask, bool)))

    def balanced(self, mask: np.ndarray | None = None) -> Interval | None:
        """Interval of the balanced accuracy over the photos in ``mask`` (all when None)."""
        mask = np.ones(len(self.truth), bool) if mask is None else np.asarray(mask, bool)
        if self.too_few_people(mask):
            return None
        return _percentiles(self._balanced(mask))

    def gap(self, mask: np.ndarray) -> Interval | None:
        """Interval of (balanced accuracy within ``mask``) minus (balanced accuracy overall), both
        from the same replicates."""
        every = np.ones(len(self.truth), bool)
        if self.too_few_people(np.asarray(mask, bool)) or self.too_few_people(every):
            return None
        return _percentiles(self._balanced(np.asarray(mask, bool)) - self._balanced(every))


@dataclass(frozen=True)
class Judged:
    """One group of a label column: its decided faces and balanced accuracy with interval."""

    value: str
    decided: int
    balanced: float | None
    interval: Interval | None


def worst_group(groups: Sequence[Judged], min_group: int) -> tuple[Judged | None, dict[str, int]]:
    """The judged group with the lowest balanced accuracy, and the groups left out (value ->
    decided faces): those under ``min_group`` decided faces, or with no balanced accuracy (a
    gender absent from the group). Ties go to the smaller group (its figure is less sure)."""
    judged = [g for g in groups if g.decided >= min_group and g.balanced is not None]
    left_out = {g.value: g.decided for g in groups if g not in judged}
    worst = min(judged, key=lambda g: (g.balanced, g.decided, g.value)) if judged else None
    return worst, left_out


def pct(value: float | None) -> str:
    """0.9694 -> '96.9%'; None -> 'n/a'."""
    return "n/a" if value is None else f"{100 * value:.1f}%"


def pct_interval(interval: Interval | Sequence[float] | None) -> str:
    """(0.95, 0.98) -> '[95.0, 98.0]'; None -> '[n/a]'."""
    return "[n/a]" if not interval else f"[{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


def points(value: float | None) -> str:
    """A gap in points with its sign: -0.0123 -> '-1.2 pt'."""
    return "n/a" if value is None else f"{100 * value:+.1f} pt"


def points_interval(interval: Interval | Sequence[float] | None) -> str:
    return "[n/a]" if not interval else f"[{100 * interval[0]:+.1f}, {100 * interval[1]:+.1f}]"


__all__ = [
    "BOOT_PEOPLE", "BOOT_PHOTOS", "DEFAULT_MIN_GROUP", "Interval", "Judged", "MIN_PEOPLE", "REPLICATES", "Resampler", "WILSON", "Z95",
    "mean_samples", "pct", "pct_interval", "percentile_interval", "points", "points_interval", "wilson", "worst_group",
]
