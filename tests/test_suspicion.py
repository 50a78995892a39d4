"""The suspicion order: leave-one-out centroid distances, and that it finds flipped labels in real faces."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from anfe.faces.batch import analyse_paths
from anfe.faces.cache import AnalysisCache
from anfe.core.config import AnalysisParams
from curation.suspicion import most_suspicious_first, suspicion_by_key, suspicion_scores
from testkit.trials import flip_trial


def test_leave_one_out_matches_brute_force():
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(9, 4))
    labels = ["a"] * 5 + ["b"] * 4
    scores = suspicion_scores(vectors, labels)
    for i, label in enumerate(labels):
        own = [j for j, g in enumerate(labels) if g == label and j != i]
        other = [j for j, g in enumerate(labels) if g != label]
        d_own = np.linalg.norm(vectors[i] - vectors[own].mean(axis=0))
        d_other = np.linalg.norm(vectors[i] - vectors[other].mean(axis=0))
        assert scores.own_distance[i] == pytest.approx(d_own)
        assert scores.score[i] == pytest.approx(d_own - d_other)
        assert scores.nearest_other[i] == ("b" if label == "a" else "a")


def test_a_mislabelled_point_is_the_most_suspicious():
    rng = np.random.default_rng(0)
    a = rng.normal(0, 0.3, size=(20, 3))
    b = rng.normal(0, 0.3, size=(20, 3)) + [3, 0, 0]
    vectors = np.vstack([a, b, [[3.1, 0, 0]]])  # sits among the b's ...
    labels = ["a"] * 20 + ["b"] * 20 + ["a"]  # ... but is labelled a
    order = most_suspicious_first(list(suspicion_scores(vectors, labels).score))
    assert order[0] == 40


def test_images_that_cannot_be_judged_come_last():
    scores = suspicion_by_key(
        {"x": np.zeros(2), "y": np.ones(2), "z": None, "w": np.array([5.0, 5.0])},
        {"x": "a", "y": "a", "z": "a", "w": "b"},
    )
    assert scores["z"] is None and scores["w"] is None  # no face; alone in its label
    assert scores["x"] is not None
    assert most_suspicious_first([None, 0.5, float("nan"), 2.0]) == [3, 1, 0, 2]


@pytest.mark.slow
def test_flipped_utkface_labels_land_first(utkface_rows, session_cache_path):
    """150 random UTKFace adults, 5% of labels flipped (20 draws): the flipped photos fall in the
    first 10% of their gender's queue. The 2,000-image figure is bench/bench_suspicion.py's."""
    adults = [r for r in utkface_rows if int(r["age"]) >= 17]
    rng = np.random.default_rng(0)
    sample = [adults[i] for i in rng.choice(len(adults), 150, replace=False)]
    params = AnalysisParams()
    with AnalysisCache(session_cache_path, params.cache_key) as cache:
        results, _ = analyse_paths([r["path"] for r in sample], params, cache, workers=2, progress=False)
    usable = [(results[r["path"]].single_embedding, r["gender"]) for r in sample]
    usable = [(v, g) for v, g in usable if v is not None]
    assert len(usable) >= 135
    vectors, labels = np.stack([v for v, _ in usable]), [g for _, g in usable]
    recalls = [flip_trial(vectors, labels, 0.05, 0.10, seed=s).recall for s in range(20)]
    assert statistics.mean(recalls) >= 0.85, recalls  # a random order would find ~10%
