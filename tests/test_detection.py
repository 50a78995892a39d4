"""The size policy (``--detect sized``): dlib's own boxes for every face above the policy's size."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from anfe.faces import detection as faces
from anfe.models.builds import params_from_build
from anfe.core.config import AnalysisParams
from anfe.core.pyramid import (
    LEVEL0_BOX_SIDE,
    DetectionPolicy,
    UnmappableBoxError,
    exact_rect,
    upsampled_size,
)
from anfe.faces.imaging import decode_image

EXACT = AnalysisParams(detect="exact", device="cpu")
SIZED = replace(EXACT, detect="sized", min_face=40, min_face_share=0.1)
#: Large photos where the policy skips levels: one face, two faces, and a collage of 24.
PHOTOS = ("obama-1080p.jpg", "two_people.jpg", "biden.jpg", "bald_guys.jpg")


def _photo(facecount_rows, name: str) -> np.ndarray:
    row = next(r for r in facecount_rows if r["path"].endswith(name))
    return decode_image(Path(row["path"]).read_bytes(), 10**9)


@pytest.mark.slow
@pytest.mark.parametrize("name", PHOTOS)
def test_sized_keeps_exact_boxes_and_counts(facecount_rows, name):
    rgb = _photo(facecount_rows, name)
    skipped = SIZED.policy.skipped_levels(*rgb.shape[:2], SIZED.upsample)
    assert skipped >= 2  # the photo really is scanned from a smaller level
    exact = [box for box, _ in faces.detect(rgb, EXACT)]
    sized = [box for box, _ in faces.detect(rgb, SIZED)]
    assert len(sized) == len(exact)
    cut = LEVEL0_BOX_SIDE * 1.2**skipped - 1  # faces dlib finds on the levels that are scanned
    big = [box for box in exact if box[1] - box[3] >= cut]
    assert big and set(big) <= set(sized)


@pytest.mark.slow
def test_sized_embedding_is_exacts(facecount_rows):
    rgb = _photo(facecount_rows, "obama-1080p.jpg")
    exact, sized = faces.analyse_faces(rgb, EXACT), faces.analyse_faces(rgb, SIZED)
    assert [f.box for f in sized] == [f.box for f in exact]
    assert np.array_equal(sized[0].embedding, exact[0].embedding)
    assert sized[0].landmarks == exact[0].landmarks


def test_small_photos_take_the_exact_path(utkface_rows):
    rgb = decode_image(Path(utkface_rows[0]["path"]).read_bytes(), 10**8)
    assert SIZED.policy.skipped_levels(*rgb.shape[:2], 1) == 0  # 200 px: nothing to skip
    assert faces.detect(rgb, SIZED) == faces.detect(rgb, EXACT)


@pytest.mark.parametrize("shape", [(1, 1), (2, 900), (900, 70), (3000, 64), (1500, 1500)])
def test_odd_shapes_never_break_detection(shape):
    """Tiny, thin and large blank images: no face, no error, whichever levels the policy skips."""
    rgb = np.full((*shape, 3), 127, dtype=np.uint8)
    assert faces.detect(rgb, SIZED) == []
    assert faces.detect(rgb[:, ::-1], SIZED) == []  # a non-contiguous view too


def test_pyramid_level_sizes_are_dlibs(facecount_rows):
    rgb = _photo(facecount_rows, "obama_small.jpg")
    m = faces.models()
    assert m.pyramid_level(rgb, 1, 0).shape[:2] == upsampled_size(*rgb.shape[:2], 1)
    assert m.pyramid_level(rgb, 1, 2).shape[:2] == (((2 * 240 + 1) * 5 // 6) * 5 // 6, ((2 * 320 + 2) * 5 // 6) * 5 // 6)


def test_policy_levels():
    policy = DetectionPolicy(40, 0.1)
    assert policy.smallest_face(200, 300) == 40  # the share is smaller: pixels win
    assert policy.smallest_face(2000, 3000) == 200
    assert policy.skipped_levels(200, 300, 1) == 0
    assert policy.skipped_levels(2000, 3000, 1) == 9  # 36 * 1.2**9 = 186 <= 200 < 223
    assert policy.skipped_levels(2000, 3000, 0) == 5  # level 0 finds 72 px faces without the doubling
    assert DetectionPolicy(10_000, 0).skipped_levels(300, 300, 1) == 12  # dlib's last level (65 px)
    with pytest.raises(ValueError):
        DetectionPolicy(40, 1.5)
    with pytest.raises(ValueError):
        AnalysisParams(detect="fast")


def test_box_mapping_refuses_what_dlib_cannot_produce():
    assert exact_rect((10, 20, 81, 91), 0, 0) == (10, 20, 81, 91)
    with pytest.raises(UnmappableBoxError):
        exact_rect((0, 0, 3, 3), 4, 1)  # too small to be any level's window
    with pytest.raises(UnmappableBoxError):
        exact_rect((5, 7, 5000, 9), 4, 1)  # not square-ish


def test_policy_in_cache_key_and_builds():
    assert EXACT.cache_key == "v1-hog-u1-s0-j1-p80000000"  # exact's key is what it always was
    assert SIZED.cache_key != EXACT.cache_key
    assert replace(SIZED, min_face_share=0.08).cache_key != SIZED.cache_key
    assert replace(SIZED, max_side=800).policy is None  # --max-side scales instead: exact
    assert replace(SIZED, detector="cnn").policy is None
    assert SIZED.embedding_model["detect"] == "sized" and SIZED.embedding_model["min_face_share"] == 0.1
    assert params_from_build({"embedding_model": SIZED.embedding_model}) == replace(SIZED, device="auto")
    old = {k: v for k, v in EXACT.embedding_model.items() if k not in ("detect", "min_face", "min_face_share")}
    assert params_from_build({"embedding_model": old}).detect == "exact"  # builds made before the policy
