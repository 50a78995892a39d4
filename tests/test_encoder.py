"""The ONNX encoder: dlib's file read exactly, the same numbers as dlib's encoder, the fallbacks."""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from anfe.faces import detection as faces, onnxnet
from anfe.faces.batch import analyse_paths
from anfe.faces.cache import AnalysisCache
from anfe.cli.app import cli
from anfe.core.config import AnalysisParams
from anfe.faces.dlibnet import PARAMETER_COUNT, DlibFormatError, parse_network, read_network

ONNX = AnalysisParams(encoder="onnx", device="cpu")
DLIB = AnalysisParams(encoder="dlib")
TOLERANCE = 1e-5  # per component; measured differences are about 3e-7


@pytest.fixture(scope="module")
def dat_path() -> Path:
    models = pytest.importorskip("face_recognition_models")
    return Path(models.face_recognition_model_location())


@pytest.fixture(scope="module")
def dat_bytes(dat_path) -> bytes:
    return dat_path.read_bytes()


@pytest.fixture(scope="module")
def twenty_faces(utkface_adult_items) -> list[np.ndarray]:
    """About 20 real adult faces (both genders, ages and races) as decoded images."""
    from anfe.faces.imaging import decode_image

    chosen = utkface_adult_items[:13] + utkface_adult_items[20:33]
    return [decode_image(item.path.read_bytes(), 10**8) for item in chosen]


def _encode(images, params, per_batch: int) -> tuple[np.ndarray, set[str]]:
    vectors, names = [], set()
    for start in range(0, len(images), per_batch):
        batch = faces.FaceBatch(params)
        for rgb in images[start : start + per_batch]:
            batch.add(rgb)
        for found in batch.finish():
            vectors += [f.embedding for f in found]
            names |= {f.encoder for f in found}
    return np.stack(vectors), names


def test_reads_the_whole_known_network(dat_path):
    network = read_network(dat_path)
    assert network.parameter_count == PARAMETER_COUNT
    assert [round(m, 3) for m in network.means] == [122.782, 117.001, 104.298]
    assert (round(network.margin, 6), round(network.threshold, 6)) == (0.04, 0.6)
    kinds = [layer.kind for layer in network.layers]
    assert kinds.count("con") == 29 and kinds.count("add_prev") == 14 and kinds.count("avg_pool") == 4
    assert network.layers[-1].weights["W"].shape == (32, 3, 7, 7)  # the innermost layer
    assert network.layers[0].weights["W"].shape == (256, 128)  # the fc layer, no bias


@pytest.mark.slow
def test_onnx_gives_dlibs_numbers_at_batch_1_and_n(twenty_faces):
    reference, names = _encode(twenty_faces, DLIB, per_batch=len(twenty_faces))
    assert names == {"dlib"} and len(reference) >= 20
    batched, names = _encode(twenty_faces, ONNX, per_batch=len(twenty_faces))
    assert names == {"onnx"}
    single, _ = _encode(twenty_faces, ONNX, per_batch=1)
    assert np.max(np.abs(batched - reference)) <= TOLERANCE
    assert np.max(np.abs(single - reference)) <= TOLERANCE
    assert np.max(np.abs(single - batched)) <= 1e-6  # the batch size changes nothing that matters
    assert batched.dtype == np.float64 and batched.shape[1] == 128
    assert not np.allclose(np.linalg.norm(batched, axis=1), 1.0)  # dlib does not normalise


@pytest.mark.parametrize("damage", ["truncated", "version", "appended"])
def test_damaged_model_file_is_refused_precisely(dat_bytes, damage):
    data = {
        "truncated": dat_bytes[: len(dat_bytes) // 2],
        "version": dat_bytes.replace(b"con_4", b"con_9", 1),
        "appended": dat_bytes + b"\x01\x00",
    }[damage]
    expected = {"truncated": "truncated", "version": "con_9", "appended": "2 bytes left over"}[damage]
    with pytest.raises(DlibFormatError, match=expected):
        parse_network(data, "damaged.dat")


def test_damaged_model_falls_back_to_dlib_with_a_message(dat_bytes, twenty_faces, tmp_path, caplog):
    bad = tmp_path / "dlib_face_recognition_resnet_model_v1.dat"
    bad.write_bytes(dat_bytes[:-1000])
    with caplog.at_level(logging.WARNING, logger="anfe.faces.detection"):
        batch = faces.FaceBatch(ONNX, dat_path=bad)
    assert batch.encoder.name == "dlib"
    assert "ONNX encoder unavailable, using dlib's" in caplog.text and "truncated" in caplog.text
    batch.add(twenty_faces[0])
    (found,) = batch.finish()
    assert found[0].encoder == "dlib"


def test_jitters_keep_dlibs_encoder(caplog):
    with caplog.at_level(logging.INFO, logger="anfe.faces.detection"):
        assert faces.FaceBatch(replace(ONNX, jitters=2)).encoder.name == "dlib"
    assert faces.encoder_name(ONNX) == "onnx" and faces.encoder_name(DLIB) == "dlib"


def test_conversion_is_cached_by_the_files_hash(dat_path, tmp_path):
    first = onnxnet.converted_model(dat_path, tmp_path)
    stamp = first.stat().st_mtime_ns
    assert onnxnet.sha256_of(dat_path)[:32] in first.name
    again = onnxnet.converted_model(dat_path, tmp_path)
    assert again == first and again.stat().st_mtime_ns == stamp  # not converted twice
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no partial files left
    first.write_bytes(b"not a model")  # a damaged cached file is converted again
    net = onnxnet.load_facenet(dat_path, tmp_path, "cpu", 1)
    assert net.running_on == "CPUExecutionProvider"
    assert net(np.zeros((2, 150, 150, 3), np.uint8)).shape == (2, 128)


def test_cache_records_the_encoder_and_keeps_one_key(utkface_adult_items, tmp_cache_path):
    assert ONNX.cache_key == DLIB.cache_key  # equal numbers: no new cache key
    paths = [item.path for item in utkface_adult_items[:3]]
    with AnalysisCache(tmp_cache_path, ONNX.cache_key) as cache:
        fresh, stats = analyse_paths(paths, ONNX, cache, workers=1, progress=False)
    assert stats.analysed == 3
    with AnalysisCache(tmp_cache_path, DLIB.cache_key) as cache:
        again, stats = analyse_paths(paths, DLIB, cache, workers=1, progress=False)
    assert stats.analysed == 0 and stats.cached == 3  # dlib's runs reuse ONNX results
    for key in fresh:
        assert [f.encoder for f in again[key].faces] == ["onnx"] * fresh[key].face_count
        assert np.array_equal(fresh[key].faces[0].embedding, again[key].faces[0].embedding)


def test_cli_device_choice(utkface_adult_items, tmp_cache_path):
    image = str(utkface_adult_items[0].path)
    runner = CliRunner()
    result = runner.invoke(cli, ["analyze", image, "--device", "cpu", "--cache", str(tmp_cache_path)])
    assert result.exit_code == 0, result.output
    assert "embeddings by encoder: onnx 1" in result.output
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this machine has CUDA: --device cuda is valid here")
    result = runner.invoke(cli, ["analyze", image, "--device", "cuda", "--cache", str(tmp_cache_path)])
    assert result.exit_code == 1
    assert "no CUDA execution provider" in result.output and "--device cpu" in result.output
