"""One contract for every analysis-cache backend: the SQLite file and MongoDB (a real wire-protocol
server the tests start, or $ANFE_TEST_MONGODB_URI). The entries are real analyses of real photos."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from anfe.faces.analysis import ImageAnalysis
from anfe.faces.batch import analyse_paths
from anfe.faces.cache import AnalysisCache, MongoCache, SQLiteCache
from anfe.cli.app import cli
from anfe.core.config import AnalysisParams
from anfe.core.errors import CacheError

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_analyses(facecount_rows) -> list[ImageAnalysis]:
    """Real analyses: photos with no face, one face and several faces (dlib, once per module)."""
    picked: dict[str, str] = {}
    for row in facecount_rows:
        expected = row["expected_faces"]
        if not expected.isdigit():
            continue
        picked.setdefault(str(min(int(expected), 2)), row["path"])
        if len(picked) == 3:
            break
    results, _ = analyse_paths(sorted(picked.values()), AnalysisParams(), None, workers=1, progress=False)
    analyses = list(results.values())
    assert sorted(min(a.face_count, 2) for a in analyses) == [0, 1, 2]
    return analyses


@pytest.fixture(params=["sqlite", "mongodb"])
def location(request, tmp_path: Path) -> str | Path:
    """A fresh cache location per backend."""
    if request.param == "sqlite":
        return tmp_path / "analysis.sqlite"
    return request.getfixturevalue("mongodb_database_uri")


def same(a: ImageAnalysis, b: ImageAnalysis) -> None:
    assert (a.content_hash, a.width, a.height, a.phash, a.error, a.error_detail) == \
           (b.content_hash, b.width, b.height, b.phash, b.error, b.error_detail)
    assert len(a.faces) == len(b.faces)
    for x, y in zip(a.faces, b.faces):
        assert x.box == y.box and x.landmarks == y.landmarks and x.encoder == y.encoder
        assert x.confidence == y.confidence
        assert np.array_equal(x.embedding, y.embedding)  # bit for bit


def test_the_location_chooses_the_backend(location):
    with AnalysisCache(location, "k") as cache:
        assert isinstance(cache, MongoCache if str(location).startswith("mongodb://") else SQLiteCache)


def test_put_get_roundtrip_bit_for_bit(location, real_analyses):
    key = AnalysisParams().cache_key
    with AnalysisCache(location, key) as cache:
        assert len(cache) == 0 and cache.get_many([a.content_hash for a in real_analyses]) == {}
        failed = ImageAnalysis("f" * 64, error="truncated", error_detail="image file is truncated")
        cache.put_many([*real_analyses, failed, ImageAnalysis("", error="unreadable")])  # no hash: skipped
        assert len(cache) == len(real_analyses) + 1
        found = cache.get_many([a.content_hash for a in real_analyses] + ["0" * 64, failed.content_hash])
        assert set(found) == {a.content_hash for a in real_analyses} | {failed.content_hash}
        for a in real_analyses:
            same(found[a.content_hash], a)
        same(cache.get(failed.content_hash), failed)
        assert cache.get("0" * 64) is None
    with AnalysisCache(location, key) as reopened:  # persisted
        assert len(reopened) == len(real_analyses) + 1


def test_parameter_keys_are_separate_and_a_put_replaces(location, real_analyses):
    one = real_analyses[0]
    with AnalysisCache(location, "a") as a, AnalysisCache(location, "b") as b:
        a.put_many([one])
        assert b.get(one.content_hash) is None and len(b) == 0
        b.put_many([replace(one, width=1, height=2)])
        b.put_many([replace(one, width=3, height=4)])
        assert (b.get(one.content_hash).width, b.get(one.content_hash).height) == (3, 4)
        assert a.get(one.content_hash).width == one.width
        assert a.counts() == {"a": 1, "b": 1}


def test_single_face_blobs_and_phashes(location, real_analyses):
    with AnalysisCache(location, "k") as cache:
        cache.put_many(real_analyses)
        blobs = cache.single_face_blobs([a.content_hash for a in real_analyses] + ["0" * 64])
        assert set(blobs) == {a.content_hash for a in real_analyses}  # uncached hashes are absent
        for a in real_analyses:
            if a.face_count == 1:
                assert np.array_equal(np.frombuffer(blobs[a.content_hash], dtype=np.float64), a.faces[0].embedding)
            else:
                assert blobs[a.content_hash] is None
        assert sorted(cache.phashes()) == sorted({a.phash for a in real_analyses if a.phash})


def test_two_clients_share_one_cache(location, real_analyses):
    """What lets several machines (or the review page and a build) share results."""
    with AnalysisCache(location, "k") as writer, AnalysisCache(location, "k") as reader:
        writer.put_many(real_analyses[:1])
        same(reader.get(real_analyses[0].content_hash), real_analyses[0])
        reader.put_many(real_analyses[1:])
        assert len(writer) == len(real_analyses)


def test_merge_copies_what_is_missing_between_any_two_backends(location, real_analyses, tmp_path):
    other = tmp_path / "other.sqlite"
    with AnalysisCache(other, "k") as source, AnalysisCache(other, "k2") as source2:
        source.put_many(real_analyses)
        source2.put_many(real_analyses[:1])
    with AnalysisCache(location, "k") as target:
        target.put_many(real_analyses[:1])
        assert target.merge_from(other) == len(real_analyses)  # all of k2, the rest of k
        assert target.merge_from(other) == 0
        assert target.counts() == {"k": len(real_analyses), "k2": 1}
        for a in real_analyses:
            same(target.get(a.content_hash), a)
        back = tmp_path / "back.sqlite"
        with AnalysisCache(back, "k") as copy:
            assert copy.merge_from(target) == len(real_analyses) + 1
            assert copy.counts() == target.counts()


def test_cli_analyze_info_and_merge_on_either_backend(location, utkface_rows, tmp_path):
    """`anfe analyze --cache LOCATION` twice (the second reads everything back), then `cache info`."""
    photos = [r["path"] for r in utkface_rows[:3]]
    folder = tmp_path / "photos" / "male"
    folder.mkdir(parents=True)
    for path in photos:
        (folder / Path(path).name).write_bytes(Path(path).read_bytes())
    runner = CliRunner()
    first = runner.invoke(cli, ["analyze", str(tmp_path / "photos"), "--cache", str(location), "--workers", "1"])
    assert first.exit_code == 0, first.output
    assert "3 images: 0 from cache, 3 analysed now" in first.output
    again = runner.invoke(cli, ["analyze", str(tmp_path / "photos"), "--cache", str(location), "--workers", "1"])
    assert "3 images: 3 from cache, 0 analysed now" in again.output
    info = runner.invoke(cli, ["cache", "info", str(location)])
    assert info.exit_code == 0 and f"{AnalysisParams().cache_key}: 3 images" in info.output
    copy = tmp_path / "copy.sqlite"
    merged = runner.invoke(cli, ["cache", "merge", str(copy), str(location)])
    assert merged.exit_code == 0 and "3 analyses added" in merged.output


def test_unreachable_mongodb_and_junk_files_are_one_line_errors(tmp_path):
    from testkit.redis_server import free_port

    with pytest.raises(CacheError, match=r"^cannot connect to the MongoDB cache at mongodb://127\.0\.0\.1:\d+/anfe "
                                          r"within 0\.3 s \(.*\): start mongod there, or check the URI$"):
        AnalysisCache(f"mongodb://127.0.0.1:{free_port()}/anfe", "k", timeout_ms=300)
    junk = tmp_path / "junk.sqlite"
    junk.write_text("not a database")
    with pytest.raises(CacheError, match="is not an analysis cache"):
        AnalysisCache(junk, "k")
    result = CliRunner().invoke(cli, ["cache", "info", f"mongodb://user:secret@127.0.0.1:{free_port()}/x?serverSelectionTimeoutMS=300"])
    assert result.exit_code == 1 and "cannot connect to the MongoDB cache at mongodb://user:***@" in result.output
    assert "secret" not in result.output and "Topology" not in result.output
    assert result.output.count("\n") == 1 and result.output.rstrip().endswith("--cache (or ANFE_CACHE) names it")


def test_anfe_cache_env_and_the_cache_flag_name_a_mongodb_cache_the_same_way(
        mongodb_database_uri, utkface_rows, tmp_path, tmp_path_factory, monkeypatch):
    """``ANFE_CACHE=mongodb://…`` is ``--cache mongodb://…``: the same analyses land in the same
    database, and an unreachable one is the same one line. The converted ONNX model of a URI cache
    lives in $XDG_CACHE_HOME/anfe/models (a URI has no folder to put it beside)."""
    from testkit.redis_server import free_port

    folder = tmp_path / "photos" / "female"
    folder.mkdir(parents=True)
    for row in utkface_rows[:2]:
        (folder / Path(row["path"]).name).write_bytes(Path(row["path"]).read_bytes())
    models = tmp_path_factory.getbasetemp() / "models"  # the session's converted model, shared
    (tmp_path / "xdg" / "anfe").mkdir(parents=True)
    (tmp_path / "xdg" / "anfe" / "models").symlink_to(models, target_is_directory=True)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    runner = CliRunner()
    flag = runner.invoke(cli, ["analyze", str(tmp_path / "photos"), "--cache", mongodb_database_uri, "--workers", "1"])
    assert flag.exit_code == 0 and "2 images: 0 from cache, 2 analysed now" in flag.output, flag.output
    third = utkface_rows[2]["path"]  # something new to analyse: the encoder's model folder is asked for
    (folder / Path(third).name).write_bytes(Path(third).read_bytes())
    monkeypatch.setenv("ANFE_CACHE", mongodb_database_uri)
    env = runner.invoke(cli, ["analyze", str(tmp_path / "photos"), "--workers", "1"])
    assert env.exit_code == 0 and "3 images: 2 from cache, 1 analysed now" in env.output, env.output
    gone = f"mongodb://127.0.0.1:{free_port()}/anfe?serverSelectionTimeoutMS=300"
    by_flag = runner.invoke(cli, ["analyze", str(tmp_path / "photos"), "--cache", gone, "--workers", "1"])
    monkeypatch.setenv("ANFE_CACHE", gone)
    by_env = runner.invoke(cli, ["analyze", str(tmp_path / "photos"), "--workers", "1"])
    assert by_flag.exit_code == by_env.exit_code == 1
    assert by_flag.output == by_env.output and by_env.output.startswith("Error: cannot connect to the MongoDB cache")
    assert by_env.output.count("\n") == 1
