"""Evaluate a build on a test set: accuracy per gender, the confusion matrix, distances, breakdowns,
and classifier baselines (logistic regression, k-nearest neighbours) on the same embeddings.

Images of the test set with no face, several faces or an unreadable file are kept and counted
as "unknown" (never silently dropped); accuracies are given over the decided faces and, for
comparison, with every unknown counted as wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from anfe.faces.batch import analyse_paths
from .builds import load_items, params_from_build, parse_where, single_embeddings, summary
from anfe.faces.checks import OUT_OF_RANGE, one_face_reason
from anfe.faces.cache import AnalysisCache
from anfe.core.config import AnalysisParams
from anfe.core.dataset import LabelledImage
from anfe.core.errors import NoTestSplitError
from .fairness import (
    DEFAULT_MIN_GROUP, MIN_PEOPLE, WILSON, Judged, Resampler, mean_samples, percentile_interval, wilson, worst_group,
)
from anfe.core.people import person_from_labels
from .prediction import UNKNOWN, CentroidModel
from .splits import DEFAULT_LEAK_DISTANCE, leak_count

log = logging.getLogger(__name__)

#: Age bands for the breakdown when the test set carries an ``age`` column.
AGE_BANDS = ((0, 16, "0-16"), (17, 29, "17-29"), (30, 44, "30-44"), (45, 59, "45-59"), (60, 200, "60+"))
#: A label with more distinct values than this (names, ids) gets no breakdown.
MAX_BREAKDOWN_VALUES = 12
DEFAULT_KNN_K = 15


def age_band(age: str) -> str | None:
    """'23' -> '17-29'; None when the value is not a number."""
    try:
        years = float(age)
    except (TypeError, ValueError):
        return None
    return next((name for low, high, name in AGE_BANDS if low <= years <= high + 0.999), None)


@dataclass(frozen=True)
class Outcome:
    """One test image: its true gender, the prediction (a gender or ``unknown``) and why,
    its distance to each gender's nearest centroid, and its other labels."""

    path: str
    content_hash: str
    gender: str
    predicted: str
    reason: str | None
    distances: dict[str, float] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)

    @property
    def decided(self) -> bool:
        return self.predicted != UNKNOWN

    @property
    def right(self) -> bool:
        return self.predicted == self.gender

    @property
    def own(self) -> float | None:
        return self.distances.get(self.gender)

    @property
    def other(self) -> float | None:
        rest = [d for g, d in self.distances.items() if g != self.gender]
        return min(rest) if rest else None

    @property
    def person(self) -> str | None:
        """Who the photo shows, when the test set names people (identity/person labels)."""
        return person_from_labels(self.labels)


def _rate(right: int, total: int) -> float | None:
    return right / total if total else None


@dataclass
class EvaluationResult:
    """Everything an evaluation found; ``to_dict()`` is the JSON report."""

    build: dict
    genders: list[str]
    outcomes: list[Outcome]
    excluded: dict[str, int] = field(default_factory=dict)
    baselines: dict[str, dict] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    test_source: str = ""
    #: The leak check: test faces within ``radius`` of a training face (None when not run).
    leak: dict[str, Any] | None = None
    #: Groups with fewer decided faces are left out of the worst-group figures.
    min_group: int = DEFAULT_MIN_GROUP

    @cached_property
    def _decided(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.decided]

    @cached_property
    def resampler(self) -> Resampler:
        """Bootstrap weights over the decided faces (over people when the test set names them)."""
        decided = self._decided
        return Resampler([o.gender for o in decided], [o.right for o in decided], self.genders,
                         [o.person for o in decided])

    @property
    def interval_method(self) -> str:
        """How shares get their interval: Wilson over photos, or the bootstrap over people."""
        return self.resampler.method if self.resampler.by_people else WILSON

    def _share_interval(self, mask: np.ndarray) -> tuple[float, float] | None:
        """95% interval of the accuracy over the decided faces in ``mask``."""
        if self.resampler.by_people:
            return self.resampler.share(mask)
        right = np.array([o.right for o in self._decided], bool)
        return wilson(int((right & mask).sum()), int(mask.sum()))

    def _mask(self, keep) -> np.ndarray:
        return np.array([bool(keep(o)) for o in self._decided], dtype=bool)

    def group_gap_interval(self, column: str, value: str) -> tuple[float, float] | None:
        """95% interval of (balanced accuracy of the faces whose ``column`` label is ``value``)
        minus (the overall balanced accuracy), from the same bootstrap replicates."""
        return self.resampler.gap(self._mask(lambda o: o.labels.get(column) == value))

    def too_few_people_note(self) -> str | None:
        """What to say when the test set holds too few people for a bootstrap interval (else None)."""
        if not self._decided or not self.resampler.too_few_people():
            return None
        people = ", ".join(f"{n} {g}" for g, n in self.resampler.people_per_gender().items())
        return (f"too few test people for a 95% interval ({people}; a bootstrap over people needs "
                f"{MIN_PEOPLE}+ per gender): the intervals read n/a, and the figures are anecdotes")

    @property
    def build_id(self) -> str:
        """The id of the evaluated build."""
        return self.build["id"]

    def confusion(self) -> dict[str, dict[str, int]]:
        """Rows: true gender; columns: each predicted gender and ``unknown``."""
        table = {g: {p: 0 for p in [*self.genders, UNKNOWN]} for g in self.genders}
        for o in self.outcomes:
            if o.gender in table:
                table[o.gender][o.predicted] = table[o.gender].get(o.predicted, 0) + 1
        return table

    def per_gender(self) -> dict[str, dict[str, Any]]:
        """Per true gender: images, decided faces, right, accuracy (over decided), coverage,
        accuracy with unknowns counted wrong, and unknowns by reason."""
        out = {}
        for g in self.genders:
            mine = [o for o in self.outcomes if o.gender == g]
            decided = [o for o in mine if o.decided]
            right = sum(o.right for o in decided)
            unknown: dict[str, int] = {}
            for o in mine:
                if not o.decided:
                    unknown[o.reason or UNKNOWN] = unknown.get(o.reason or UNKNOWN, 0) + 1
            out[g] = {
                "images": len(mine), "decided": len(decided), "right": right,
                "accuracy": _rate(right, len(decided)),
                "interval": self._share_interval(self._mask(lambda o, g=g: o.gender == g)),
                "coverage": _rate(len(decided), len(mine)),
                "accuracy_unknown_as_wrong": _rate(right, len(mine)), "unknown": unknown,
            }
        return out

    def balanced_accuracy(self) -> float | None:
        """Mean of the per-gender accuracies over decided faces (None if a gender has none)."""
        rates = [v["accuracy"] for v in self.per_gender().values()]
        return float(np.mean(rates)) if rates and None not in rates else None

    def balanced_interval(self) -> tuple[float, float] | None:
        """95% interval of the balanced accuracy (bootstrap over photos, or people)."""
        return self.resampler.balanced() if self._decided else None

    def accuracy_interval(self) -> tuple[float, float] | None:
        """95% interval of the accuracy over every decided face."""
        return self._share_interval(self._mask(lambda o: True)) if self._decided else None

    def accuracy(self) -> float | None:
        """Share of decided faces predicted right, all genders together."""
        decided = [o for o in self.outcomes if o.decided]
        return _rate(sum(o.right for o in decided), len(decided))

    def per_person(self) -> dict[str, Any] | None:
        """Accuracy per person as well as per photo, when the test set names people: per gender
        (the person's most common true label) the test people, the mean of each person's
        accuracy over their decided faces, and the share of people with every face right.
        None when no test image names its person."""
        people: dict[str, list[Outcome]] = {}
        for o in self.outcomes:
            if o.person is not None:
                people.setdefault(o.person, []).append(o)
        if not people:
            return None
        table: dict[str, dict[str, Any]] = {}
        samples: dict[str, np.ndarray] = {}
        for g in [*self.genders, "all"]:
            rates, all_right, count = [], 0, 0
            for mine in people.values():
                label = max(self.genders, key=lambda x: sum(o.gender == x for o in mine))
                if g != "all" and label != g:
                    continue
                count += 1
                decided = [o for o in mine if o.decided]
                if decided:
                    rates.append(sum(o.right for o in decided) / len(decided))
                    all_right += all(o.right for o in decided)
            samples[g] = mean_samples(rates)
            table[g] = {"people": count, "judged": len(rates),
                        "accuracy": float(np.mean(rates)) if rates else None,
                        "interval": percentile_interval(samples[g]),
                        "all_right": _rate(all_right, len(rates)),
                        "all_right_interval": wilson(all_right, len(rates))}
        rates = [table[g]["accuracy"] for g in self.genders]
        whole = rates and None not in rates
        return {"test_people": len(people), "per_gender": table,
                "balanced_accuracy": float(np.mean(rates)) if whole else None,
                "balanced_interval": percentile_interval(np.mean([samples[g] for g in self.genders], axis=0))
                if whole else None}

    def distance_stats(self) -> dict[str, dict[str, Any]]:
        """Distances to the own and to the other gender's centroid, for right and wrong predictions
        (the paper's Figure 7)."""
        out = {}
        for name, wanted in (("right", True), ("wrong", False)):
            group = [o for o in self.outcomes if o.decided and o.right == wanted and o.own is not None]
            own = [o.own for o in group]
            other = [o.other for o in group if o.other is not None]
            out[name] = {
                "n": len(group),
                "own_mean": float(np.mean(own)) if own else None,
                "own_median": float(np.median(own)) if own else None,
                "other_mean": float(np.mean(other)) if other else None,
                "other_median": float(np.median(other)) if other else None,
            }
        return out

    def _columns(self) -> list[tuple[str, Any, list[str]]]:
        """The label columns that get a breakdown: (name, value of an outcome, sorted values);
        ``age`` becomes ``age_band``; a column with more than MAX_BREAKDOWN_VALUES values is left out."""
        out = []
        for column in sorted({k for o in self.outcomes for k in o.labels}):
            name = "age_band" if column == "age" else column
            value_of = (lambda o: age_band(o.labels.get("age"))) if column == "age" else (lambda o, c=column: o.labels.get(c) or None)
            values = sorted({v for o in self.outcomes if (v := value_of(o)) is not None})
            if values and len(values) <= MAX_BREAKDOWN_VALUES:
                out.append((name, value_of, values))
        return out

    def breakdowns(self) -> dict[str, dict[str, dict[str, Any]]]:
        """Accuracy by every other label of the test set (``age`` becomes ``age_band``):
        label -> value -> {gender: {decided, right, accuracy, interval}, all: {...},
        balanced, balanced_interval}."""
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for name, value_of, values in self._columns():
            table: dict[str, dict[str, Any]] = {}
            for value in values:
                group = self._mask(lambda o, v=value: value_of(o) == v)
                row: dict[str, Any] = {}
                for g in [*self.genders, "all"]:
                    part = group & self._mask(lambda o, g=g: g == "all" or o.gender == g)
                    right = sum(o.right for o, m in zip(self._decided, part) if m)
                    row[g] = {"decided": int(part.sum()), "right": right, "accuracy": _rate(right, int(part.sum())),
                              "interval": self._share_interval(part)}
                rates = [row[g]["accuracy"] for g in self.genders]
                row["balanced"] = float(np.mean(rates)) if rates and None not in rates else None
                row["balanced_interval"] = self.resampler.balanced(group) if row["balanced"] is not None else None
                table[value] = row
            out[name] = table
        return out

    def worst_groups(self, breakdowns: dict | None = None) -> dict[str, dict[str, Any]]:
        """Per breakdown column, the group with the lowest balanced accuracy among those with at
        least ``min_group`` decided faces, its gap to the overall balanced accuracy, the intervals
        of both and of the gap, and the groups left out as too small to judge (value -> faces)."""
        breakdowns = self.breakdowns() if breakdowns is None else breakdowns
        overall, overall_interval = self.balanced_accuracy(), self.balanced_interval()
        columns = {name: value_of for name, value_of, _ in self._columns()}
        out: dict[str, dict[str, Any]] = {}
        for name, table in breakdowns.items():
            if len(table) < 2:  # one value (every photo from one site): that group is everyone, no gap
                continue
            groups = [Judged(v, row["all"]["decided"], row["balanced"], row["balanced_interval"]) for v, row in table.items()]
            worst, left_out = worst_group(groups, self.min_group)
            entry: dict[str, Any] = {"group": None, "min_group": self.min_group, "left_out": left_out,
                                     "judged": len(groups) - len(left_out), "overall": overall,
                                     "overall_interval": overall_interval}
            if worst is not None:
                value_of = columns[name]
                mask = self._mask(lambda o, v=worst.value: value_of(o) == v)
                gap = None if overall is None else worst.balanced - overall
                entry.update({"group": worst.value, "decided": worst.decided, "balanced_accuracy": worst.balanced,
                              "interval": worst.interval, "gap": gap, "gap_interval": self.resampler.gap(mask)})
            out[name] = entry
        return out

    def misclassified(self) -> list[Outcome]:
        """Decided but wrong, the most confidently wrong first (largest margin)."""
        wrong = [o for o in self.outcomes if o.decided and not o.right]
        return sorted(wrong, key=lambda o: (o.own or 0) - (o.other or 0), reverse=True)

    def to_dict(self, with_outcomes: bool = True) -> dict:
        """The JSON report: every figure above, plus one row per test image unless asked not to."""
        breakdowns = self.breakdowns()
        data = {
            "build": self.build,
            "test_source": self.test_source,
            "genders": self.genders,
            "images": len(self.outcomes),
            "excluded": self.excluded,
            "accuracy": self.accuracy(),
            "accuracy_interval": self.accuracy_interval(),
            "balanced_accuracy": self.balanced_accuracy(),
            "balanced_interval": self.balanced_interval(),
            "interval_method": {"shares": self.interval_method, "balanced": self.resampler.method,
                                "level": 0.95},
            "per_gender": self.per_gender(),
            "confusion": self.confusion(),
            "distances": self.distance_stats(),
            "breakdowns": breakdowns,
            "worst_groups": self.worst_groups(breakdowns),
            "people": self.per_person(),
            "leak": self.leak,
            "baselines": self.baselines,
            "notes": self.notes,
        }
        if with_outcomes:
            data["outcomes"] = [asdict(o) for o in self.outcomes]
        return data


def _scores(truth: Sequence[str], predicted: Sequence[str], genders: Sequence[str]) -> dict[str, Any]:
    per = {}
    for g in genders:
        idx = [i for i, t in enumerate(truth) if t == g]
        per[g] = _rate(sum(predicted[i] == g for i in idx), len(idx))
    rates = [v for v in per.values() if v is not None]
    return {"accuracy": per, "balanced_accuracy": float(np.mean(rates)) if rates else None}


def baseline_scores(
    train_x: np.ndarray, train_y: Sequence[str], test_x: np.ndarray, test_y: Sequence[str],
    genders: Sequence[str], knn_k: int = DEFAULT_KNN_K, seed: int = 0,
) -> dict[str, dict]:
    """Logistic regression and k-nearest neighbours trained on the build's own member embeddings,
    scored on the same decided test faces as the centroids. kNN is left out when ``knn_k`` is not
    below the number of members (every neighbour would vote, giving every face the same answer)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    models = {"logistic_regression": (LogisticRegression(max_iter=2000, random_state=seed), {"C": 1.0})}
    if knn_k < len(train_y):  # with k >= the members every face gets the same majority vote: no baseline
        models["knn"] = (KNeighborsClassifier(n_neighbors=knn_k), {"k": knn_k})
    out = {}
    for name, (model, settings) in models.items():
        model.fit(train_x, list(train_y))
        out[name] = {**_scores(test_y, list(model.predict(test_x)), genders), "params": settings}
    return out


def training_set(build: dict, cache: AnalysisCache) -> tuple[np.ndarray, list[str]] | None:
    """The build's members' embeddings from the cache (None if any is missing there)."""
    members = build.get("members") or {}
    table = single_embeddings(cache, [h for hs in members.values() for h in hs])
    xs, ys = [], []
    for gender, hashes in members.items():
        for h in hashes:
            vector = table.get(h)
            if vector is None:
                return None
            xs.append(vector)
            ys.append(gender)
    return (np.stack(xs), ys) if xs else None


def evaluate_build(
    build: dict,
    test_items: Sequence[LabelledImage],
    params: AnalysisParams | None = None,
    cache: AnalysisCache | None = None,
    workers: int = 1,
    *,
    use_split: bool = False,
    baselines: bool = True,
    knn_k: int = DEFAULT_KNN_K,
    max_distance: float | None = None,
    test_source: str = "",
    progress: bool = True,
    leak_distance: float = DEFAULT_LEAK_DISTANCE,
    min_group: int = DEFAULT_MIN_GROUP,
) -> EvaluationResult:
    """Analyse the test images (cached, with the build's parameters) and score the build on them.

    The build's own members are always excluded (counted in ``excluded['in-training']``); with
    ``use_split`` only the build's recorded held-out images are kept. ``max_distance`` turns
    faces farther than it from every centroid into "unknown" (off by default). The leak check
    counts the test faces within ``leak_distance`` of a training face (see :mod:`anfe.models.splits`).
    Groups of a label column with fewer than ``min_group`` decided faces are left out of the
    worst-group figures (see :mod:`anfe.models.fairness`).
    """
    params = params or params_from_build(build)
    model = CentroidModel(build)
    analyses, _ = analyse_paths([i.path for i in test_items], params, cache, workers, progress)
    members = {h for hs in (build.get("members") or {}).values() for h in hs}
    test_part = {h for hs in ((build.get("split") or {}).get("test") or {}).values() for h in hs}
    if use_split and not test_part:
        raise_no_split(build)
    excluded: dict[str, int] = {}
    kept: list[tuple[LabelledImage, Any]] = []
    scored: set[tuple[str, str]] = set()
    for item in test_items:
        analysis = analyses[str(item.path)]
        digest = analysis.content_hash
        if digest and digest in members:
            excluded["in-training"] = excluded.get("in-training", 0) + 1
        elif use_split and digest not in test_part:
            excluded["not-in-test-split"] = excluded.get("not-in-test-split", 0) + 1
        elif use_split and (digest, item.gender) in scored:
            # the split holds distinct photos: a second copy of the same bytes is not scored again,
            # so the held-out counts `build` prints are the images scored here
            excluded["same-photo-again"] = excluded.get("same-photo-again", 0) + 1
        elif item.gender not in model.genders:
            excluded["gender-not-in-build"] = excluded.get("gender-not-in-build", 0) + 1
        else:
            kept.append((item, analysis))
            scored.add((digest, item.gender))
    faces = [a.single_embedding for _, a in kept if one_face_reason(a) is None]
    table = iter(model.distances(np.stack(faces)) if faces else [])
    outcomes, test_x, test_y = [], [], []
    for item, analysis in kept:
        reason = one_face_reason(analysis)
        if reason:
            outcomes.append(Outcome(str(item.path), analysis.content_hash, item.gender, UNKNOWN, reason, {}, dict(item.labels)))
            continue
        row = next(table)
        nearest = int(np.argmin(row))
        predicted, why = model.genders[nearest], None
        if max_distance is not None and row[nearest] > max_distance:
            predicted, why = UNKNOWN, OUT_OF_RANGE.name
        dist = {g: float(d) for g, d in zip(model.genders, row)}
        outcomes.append(Outcome(str(item.path), analysis.content_hash, item.gender, predicted, why, dist, dict(item.labels)))
        if predicted != UNKNOWN:
            test_x.append(analysis.single_embedding)
            test_y.append(item.gender)
    result = EvaluationResult(summary(build), model.genders, outcomes, excluded, test_source=test_source,
                              min_group=min_group)
    if not outcomes:
        result.notes.append("the test set is empty after excluding the build's members")
    elif (note := result.too_few_people_note()) is not None:
        result.notes.append(note)
    faces_x = [a.single_embedding for _, a in kept if one_face_reason(a) is None]
    if faces_x:
        _add_leak(result, build, cache, np.stack(faces_x), leak_distance)
    if baselines and test_x:
        _add_baselines(result, build, cache, np.stack(test_x), test_y, knn_k)
    return result


def _add_leak(result: EvaluationResult, build: dict, cache: AnalysisCache | None, test_x: np.ndarray,
              radius: float) -> None:
    """Count the test faces within ``radius`` of one of the build's training faces: a person
    (or a photo) seen in training makes accuracy look better than it is on new people."""
    train = training_set(build, cache) if cache is not None else None
    if train is None:
        result.notes.append("leak check skipped: the build's members are not all in this analysis cache")
        return
    count = leak_count(test_x, train[0], radius)
    result.leak = {"radius": radius, "count": count, "faces": int(len(test_x)),
                   "share": count / len(test_x), "split_by": (build.get("split") or {}).get("by")}


def _add_baselines(result: EvaluationResult, build: dict, cache: AnalysisCache | None, test_x, test_y, knn_k: int) -> None:
    train = training_set(build, cache) if cache is not None else None
    if train is None:
        result.notes.append("baselines skipped: the build's members are not all in this analysis cache")
        return
    centroid = _scores(test_y, [o.predicted for o in result.outcomes if o.decided], result.genders)
    result.baselines = {"centroids": {**centroid, "params": {"variant": build.get("variant"), "k": build.get("k")}},
                        **baseline_scores(train[0], train[1], test_x, test_y, result.genders, knn_k, build.get("seed", 0))}
    if "knn" not in result.baselines:
        result.notes.append(f"kNN baseline skipped: k={knn_k} is not below the build's {len(train[1])} members "
                            f"(every member would vote); use --knn-k below {len(train[1])}")


def raise_no_split(build: dict) -> None:
    """A build made without a test fraction cannot be evaluated on "its" test split."""
    raise NoTestSplitError(f"build {build['id']} has no recorded test split")


@dataclass(frozen=True)
class TestSet:
    """The images a build is scored on, whether only its recorded held-out split counts, and a
    description for the report."""

    __test__ = False  # not a pytest class

    items: list[LabelledImage]
    use_split: bool
    source: str


def test_set_for(build: dict, loaded: dict[tuple, list[LabelledImage]] | None = None) -> TestSet:
    """The test set a build records: its held-out split of the dataset it was made from, or (with
    no split) the images of that dataset not in the build. ``loaded`` caches datasets read for
    earlier builds of a sweep. Raises :class:`DatasetError` when the build records no dataset."""
    ds = build.get("dataset") or {}
    if not ds.get("source"):
        raise NoTestSplitError(f"build {build['id']} records no dataset to take a test set from")
    key = (ds["source"], ds.get("labels"), tuple(ds.get("filters") or []))
    loaded = {} if loaded is None else loaded
    if key not in loaded:
        loaded[key] = load_items(Path(ds["source"]), Path(ds["labels"]) if ds.get("labels") else None,
                                 [parse_where(f) for f in ds.get("filters") or []])
    if build.get("split"):
        return TestSet(loaded[key], True, f"held-out split of {ds['source']}")
    return TestSet(loaded[key], False, f"images of {ds['source']} not in the build")


test_set_for.__test__ = False  # type: ignore[attr-defined]  # not a pytest test


def sweep_table(results: Sequence[EvaluationResult]) -> list[dict[str, Any]]:
    """One row per build for the accuracy-against-training-size plot (paper, Figure 5)."""
    rows = []
    for r in results:
        counts = r.build.get("counts") or {}
        rows.append({
            "build": r.build_id,
            "variant": r.build.get("variant"),
            "k": r.build.get("k"),
            "per_gender_size": int(np.mean(list(counts.values()))) if counts else 0,
            "balanced_accuracy": r.balanced_accuracy(),
            "balanced_interval": r.balanced_interval(),
            "accuracy": {g: v["accuracy"] for g, v in r.per_gender().items()},
            "interval": {g: v["interval"] for g, v in r.per_gender().items()},
            "worst_groups": {c: {k: w.get(k) for k in ("group", "decided", "balanced_accuracy", "interval", "gap",
                                                        "gap_interval", "left_out")}
                             for c, w in r.worst_groups().items()},
            "baselines": {n: b.get("balanced_accuracy") for n, b in r.baselines.items()},
        })
    return sorted(rows, key=lambda row: (row["variant"] or "", row["k"] or 0, row["per_gender_size"]))


__all__ = [
    "AGE_BANDS", "EvaluationResult", "Outcome", "age_band", "baseline_scores", "evaluate_build",
    "sweep_table", "test_set_for", "TestSet", "training_set",
]
