"""Prediction with a build on real photos: per-face distances and margin, and the "unknown" cases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from anfe.faces.batch import analyse_paths
from anfe.models.builds import BuildOptions, builds_from_analyses
from anfe.faces.cache import AnalysisCache
from anfe.core.config import AnalysisParams
from anfe.core.dataset import LabelledImage
from anfe.models.prediction import DEFAULT_MAX_DISTANCE, UNKNOWN, CentroidModel, default_max_distance, predict_paths

PARAMS = AnalysisParams()
PER_GENDER = 20


@pytest.fixture(scope="module")
def build_and_heldout(utkface_rows, session_cache_path):
    """A build from the same sample as test_builds (session cache), with its held-out images."""
    items = []
    for gender in ("male", "female"):
        adults = [r for r in utkface_rows if r["gender"] == gender and int(r["age"]) >= 17]
        step = max(1, len(adults) // PER_GENDER)
        items += [LabelledImage(Path(r["path"]), gender) for r in adults[::step][:PER_GENDER]]
    with AnalysisCache(session_cache_path, PARAMS.cache_key) as cache:
        analyses, _ = analyse_paths([i.path for i in items], PARAMS, cache, workers=2, progress=False)
    (build,) = builds_from_analyses(items, analyses, BuildOptions(sizes=("all",), test_fraction=0.3), PARAMS)
    held = {h for hs in build["split"]["test"].values() for h in hs}
    heldout = [i for i in items if analyses[str(i.path)].content_hash in held and analyses[str(i.path)].face_count == 1]
    return build, heldout


def _predict(paths, build, cache_path, **kw):
    with AnalysisCache(cache_path, PARAMS.cache_key) as cache:
        return predict_paths(paths, build, cache=cache, workers=1, **kw)


def test_a_face_gets_a_gender_both_distances_and_the_margin(build_and_heldout, session_cache_path):
    build, heldout = build_and_heldout
    found = _predict([i.path for i in heldout], build, session_cache_path)
    right = 0
    for item, p in zip(heldout, found):
        (face,) = p.faces
        assert p.verdict == face.gender and p.reason is None
        assert set(face.distances) == {"female", "male"}
        assert face.distance == min(face.distances.values())
        assert face.margin == pytest.approx(abs(face.distances["male"] - face.distances["female"]))
        assert face.gender in p.describe() and "margin" in p.describe()
        right += p.verdict == item.gender
    assert right >= 0.7 * len(heldout)  # a 14-image build is already well above chance


def test_no_face_group_photo_unreadable_and_far_faces_are_unknown(build_and_heldout, session_cache_path,
                                                                   facecount_rows, tmp_path):
    build, heldout = build_and_heldout
    rows = {Path(r["path"]).name: r for r in facecount_rows}
    giraffe, group = rows["giraffe.jpg"], rows["two_people.jpg"]
    assert giraffe["expected_faces"] == "0" and group["expected_faces"] == "2"
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    no_face, several, broken = _predict([giraffe["path"], group["path"], empty], build, session_cache_path)
    assert (no_face.verdict, no_face.reason, no_face.faces) == (UNKNOWN, "no-face", ())
    assert several.verdict == UNKNOWN and several.reason == "many-faces" and len(several.faces) == 2
    assert "several faces: 2" in several.describe() and "box" in several.describe()
    assert broken.verdict == UNKNOWN and broken.reason == "empty-file" and empty.exists()
    (far,) = _predict([heldout[0].path], build, session_cache_path, max_distance=0.05)
    assert far.verdict == UNKNOWN and far.reason == "out-of-range" and not far.faces[0].in_range
    assert far.to_dict()["faces"][0]["box"] == list(far.faces[0].box)


def test_working_range_and_k_centroids(build_and_heldout):
    build, _ = build_and_heldout
    assert default_max_distance(build) == max(build["member_distance"]["max"], DEFAULT_MAX_DISTANCE)
    assert default_max_distance({**build, "member_distance": {"max": 0.95}}) == 0.95
    two = {**build, "centroids": {g: c * 2 for g, c in build["centroids"].items()}}
    model = CentroidModel(two)
    probe = np.asarray(build["centroids"]["male"][0])[None, :]
    assert model.genders[int(model.distances(probe)[0].argmin())] == "male" and model.distances(probe)[0, 1] == pytest.approx(0)
