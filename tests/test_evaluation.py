"""Evaluation and reports on real UTKFace photos: consistent numbers, unknowns kept, baselines, HTML."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from anfe.faces.batch import analyse_paths
from anfe.models.builds import BuildOptions, builds_from_analyses
from anfe.faces.cache import AnalysisCache
from anfe.core.config import AnalysisParams
from anfe.core.dataset import LabelledImage
from anfe.core.errors import DatasetError
from anfe.models.evaluation import age_band, evaluate_build
from anfe.models.prediction import UNKNOWN
from anfe.models.report import write_report, write_sweep_report

PARAMS = AnalysisParams()


@pytest.fixture(scope="module")
def items(utkface_adult_items) -> list[LabelledImage]:
    """The same few dozen adult photos per gender as test_builds (read from the session cache)."""
    return utkface_adult_items


@pytest.fixture(scope="module")
def setup(items, session_cache_path, facecount_rows):
    """Builds with a 30% held-out split, plus a no-face photo added to the test set."""
    giraffe = next(r["path"] for r in facecount_rows if r["path"].endswith("giraffe.jpg"))
    test_items = items + [LabelledImage(Path(giraffe), "male", {"age": "30", "race": "Others"})]
    with AnalysisCache(session_cache_path, PARAMS.cache_key) as cache:
        analyses, _ = analyse_paths([i.path for i in test_items], PARAMS, cache, workers=2, progress=False)
    made = builds_from_analyses(items, analyses, BuildOptions(sizes=(6, "all"), test_fraction=0.3, split_seed=1), PARAMS)
    return made, test_items, Path(giraffe)


def _evaluate(build, test_items, session_cache_path, **kw):
    with AnalysisCache(session_cache_path, PARAMS.cache_key) as cache:
        return evaluate_build(build, test_items, PARAMS, cache, 1, progress=False, **kw)


def test_numbers_agree_with_the_confusion_matrix(setup, session_cache_path):
    made, test_items, giraffe = setup
    result = _evaluate(made[1], test_items, session_cache_path)
    confusion = result.confusion()
    per = result.per_gender()
    members = sum(made[1]["counts"].values())
    assert result.excluded["in-training"] == members
    assert len(result.outcomes) == len(test_items) - members
    for g in result.genders:
        row = confusion[g]
        assert per[g]["images"] == sum(row.values())
        assert per[g]["right"] == row[g]
        assert per[g]["decided"] == sum(v for p, v in row.items() if p != UNKNOWN)
        assert per[g]["accuracy"] == pytest.approx(row[g] / per[g]["decided"])
    assert result.balanced_accuracy() == pytest.approx(sum(per[g]["accuracy"] for g in result.genders) / 2)
    # The no-face photo is counted as unknown, not dropped.
    lost = next(o for o in result.outcomes if o.path == str(giraffe))
    assert lost.predicted == UNKNOWN and lost.reason == "no-face"
    assert confusion["male"][UNKNOWN] >= 1 and per["male"]["unknown"]["no-face"] >= 1
    assert per["male"]["accuracy_unknown_as_wrong"] < per["male"]["accuracy"]


def test_split_distances_breakdowns_and_baselines(setup, session_cache_path):
    made, test_items, _ = setup
    result = _evaluate(made[1], test_items, session_cache_path, use_split=True, knn_k=3)
    split = made[1]["split"]["test_counts"]
    assert result.excluded["not-in-test-split"] > 0
    assert sum(v["images"] for v in result.per_gender().values()) == sum(split.values())
    stats = result.distance_stats()
    assert stats["right"]["n"] + stats["wrong"]["n"] == sum(o.decided for o in result.outcomes)
    assert stats["right"]["own_mean"] < stats["right"]["other_mean"]
    # The distances are recomputed here from the cached embeddings and the build's centroids (numpy
    # only), so a wrong distance, a swapped gender or a wrong nearest centroid would fail.
    centroids = {g: np.asarray(c) for g, c in made[1]["centroids"].items()}
    with AnalysisCache(session_cache_path, PARAMS.cache_key) as cache:
        cached = cache.get_many([o.content_hash for o in result.outcomes if o.decided])
    decided = [o for o in result.outcomes if o.decided]
    assert decided and len(cached) == len({o.content_hash for o in decided})
    for o in decided:
        face = cached[o.content_hash].single_embedding
        expected = {g: float(np.linalg.norm(c - face, axis=1).min()) for g, c in centroids.items()}
        assert o.distances == pytest.approx(expected, abs=1e-9)
        assert o.predicted == min(expected, key=expected.get)
        assert o.right == (o.predicted == o.gender)
    breakdowns = result.breakdowns()
    assert set(breakdowns) == {"age_band", "race"}
    assert sum(v["all"]["decided"] for v in breakdowns["race"].values()) == sum(o.decided for o in result.outcomes)
    assert set(result.baselines) == {"centroids", "logistic_regression", "knn"}
    assert result.baselines["knn"]["params"] == {"k": 3}
    assert result.baselines["centroids"]["balanced_accuracy"] == pytest.approx(result.balanced_accuracy())
    data = json.loads(json.dumps(result.to_dict()))
    assert data["balanced_accuracy"] == result.balanced_accuracy()


def test_max_distance_makes_far_faces_unknown(setup, session_cache_path):
    made, test_items, _ = setup
    result = _evaluate(made[1], test_items, session_cache_path, max_distance=0.01, baselines=False)
    assert all(not o.decided for o in result.outcomes)
    assert {o.reason for o in result.outcomes} <= {"out-of-range", "no-face", "many-faces"}


def test_use_split_needs_a_recorded_split(setup, session_cache_path):
    made, test_items, _ = setup
    bare = {**made[0], "split": None}
    with pytest.raises(DatasetError, match="has no recorded test split$"):
        _evaluate(bare, test_items, session_cache_path, use_split=True)


def test_html_report_with_plots_and_gallery(setup, session_cache_path, tmp_path):
    made, test_items, _ = setup
    result = _evaluate(made[0], test_items, session_cache_path)
    page = write_report(result, tmp_path / "report")
    html = page.read_text()
    for name in re.findall(r'src="([^"]+)"', html):
        assert (page.parent / name).is_file(), name
    for png in ("confusion.png", "distances.png", "breakdown_race.png", "breakdown_age_band.png"):
        assert (page.parent / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(list((page.parent / "thumbs").glob("*.jpg"))) == min(120, len(result.misclassified()))
    assert json.loads((page.parent / "result.json").read_text())["build"]["id"] == "g_6"
    assert "Balanced accuracy" in html and "logistic regression" in html


def test_sweep_report(setup, session_cache_path, tmp_path):
    made, test_items, _ = setup
    results = [_evaluate(b, test_items, session_cache_path, baselines=False) for b in made]
    page = write_sweep_report(results, tmp_path / "sweep")
    assert (page.parent / "sweep.png").is_file() and (page.parent / "g_all" / "index.html").is_file()
    rows = json.loads((page.parent / "sweep.json").read_text())["sweep"]
    assert [r["build"] for r in rows] == ["g_6", "g_all"]


def test_age_bands():
    assert [age_band(a) for a in ("3", "17", "29", "30", "59", "61", "x")] == [
        "0-16", "17-29", "17-29", "30-44", "45-59", "60+", None]
