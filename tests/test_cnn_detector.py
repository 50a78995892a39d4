"""dlib's CNN face detector converted to ONNX: dlib's boxes, a refused damaged file, the fallback."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import pytest

from anfe.faces import detection as faces
from anfe.faces.cnndetector import overlaps, tile_rects
from anfe.core.config import AnalysisParams
from anfe.faces.dlibnet import DlibFormatError
from anfe.faces.imaging import decode_image
from anfe.faces.mmodnet import PARAMETER_COUNT, parse_mmod

ONNX_CNN = AnalysisParams(detector="cnn", device="cpu", upsample=0)
DLIB_CNN = replace(ONNX_CNN, detector="cnn-dlib")


def _photo(facecount_rows, name: str):
    row = next(r for r in facecount_rows if r["path"].endswith(name))
    return decode_image(Path(row["path"]).read_bytes(), 10**9)


@pytest.fixture(scope="module")
def dat_bytes() -> bytes:
    models = pytest.importorskip("face_recognition_models")
    return Path(models.cnn_face_detector_model_location()).read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("name, upsample", [("2008_001322.jpg", 0), ("giraffe.jpg", 0), ("obama_small.jpg", 1)])
def test_boxes_match_dlibs_cnn(facecount_rows, name, upsample):
    """Three faces, none (a giraffe), and one after dlib's doubling: the same boxes within 1 px."""
    rgb = _photo(facecount_rows, name)
    theirs = sorted(faces.detect(rgb, replace(DLIB_CNN, upsample=upsample)))
    ours = sorted(faces.detect(rgb, replace(ONNX_CNN, upsample=upsample)))
    assert len(ours) == len(theirs)
    for (box, confidence), (their_box, their_confidence) in zip(ours, theirs):
        assert max(abs(a - b) for a, b in zip(box, their_box)) <= 1
        assert confidence == pytest.approx(their_confidence, abs=1e-3)
    assert faces.models().cnn_onnx("cpu", 0).running_on == "CPUExecutionProvider"


def test_the_known_file_is_read_whole(dat_bytes):
    network = parse_mmod(dat_bytes, "mmod")
    assert network.parameter_count == PARAMETER_COUNT
    assert network.window == (80, 80) and network.stride_and_offset == (8, 14)
    assert (network.padding, network.outer_padding) == (10, 11)


@pytest.mark.parametrize("damage", ["truncated", "version", "trailing", "empty"])
def test_a_damaged_file_is_refused(dat_bytes, damage):
    data = {
        "truncated": dat_bytes[: len(dat_bytes) // 2],
        "version": dat_bytes.replace(b"loss_mmod_", b"loss_mmox_", 1),
        "trailing": dat_bytes + b"\x01\x01",
        "empty": b"",
    }[damage]
    with pytest.raises(DlibFormatError):
        parse_mmod(data, "damaged")


def test_without_onnx_runtime_dlibs_cnn_is_used(facecount_rows, monkeypatch, caplog):
    """Failure injection: the converted detector cannot load; dlib's own CNN answers instead."""
    from anfe.faces.onnxnet import EncoderUnavailableError

    m = faces.models()
    monkeypatch.setattr(type(m), "cnn_onnx", lambda self, device, threads: EncoderUnavailableError("no runtime"))
    rgb = _photo(facecount_rows, "obama_small.jpg")
    with caplog.at_level(logging.WARNING):
        found = faces.detect(rgb, ONNX_CNN)
    assert len(found) == 1 and found[0][1] is not None
    assert ("cnn", "no runtime") in faces._WARNED  # warned (once per process), not silent


def test_tiling_and_overlap_rules():
    rects, height, width = tile_rects(240, 320, 10, 11)
    assert rects[0] == (11, 11, 330, 250) and width == 320 + 22
    sizes = [(r[3] - r[1] + 1, r[2] - r[0] + 1) for r in rects]
    assert sizes[1] == (200, 266)  # floor(5/6 * size), as pyramid_down<6>
    assert all(r[3] < height and r[2] < width for r in rects)
    assert overlaps((0, 0, 9, 9), (0, 0, 9, 9), 0.5, 1.0)
    assert not overlaps((0, 0, 9, 9), (20, 20, 29, 29), 0.5, 1.0)
    assert overlaps((0, 0, 9, 9), (2, 2, 5, 5), 0.9, 0.99) is True  # fully covered
