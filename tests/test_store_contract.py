"""The store contract: one set of tests run against every backend (embedded SQLite, and MongoDB
through pymongo: the tests' secantusd-py, or ``ANFE_TEST_MONGODB_URI`` when set)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter

import numpy as np
import pytest

from anfe.core.errors import StoreVersionError, UnknownBuildError
from anfe.core.store import SCHEMA_VERSION, open_store

#: The Python types BSON decodes to that a plain document may hold (ObjectId only as ``_id``).
PLAIN_TYPES = (dict, list, str, int, float, bool, type(None))


@pytest.fixture
def uri(store_backend_uri: str) -> str:
    return store_backend_uri


@pytest.fixture
def store(uri: str):
    with open_store(uri) as opened:
        yield opened


def no_mongo_ids(docs: list[dict]) -> bool:
    return all("_id" not in doc for doc in docs)


# -- a new store ----------------------------------------------------------------------------
def test_new_store_is_empty_and_stamped_with_the_schema(store) -> None:
    assert store.find_images() == []
    assert store.count_images() == 0
    assert store.decisions() == []
    assert store.list_builds() == []
    assert store.get_meta("schema_version") == SCHEMA_VERSION
    assert store.get_meta("no-such-key") is None


def test_data_survives_reopening(uri: str) -> None:
    with open_store(uri) as store:
        store.upsert_image({"content_hash": "h1", "gender": "man"})
        store.append_decision({"action": "keep"})
        store.save_build({"id": "g_10"})
    with open_store(uri) as again:
        assert again.get_image("h1") == {"content_hash": "h1", "gender": "man"}
        assert [d["seq"] for d in again.decisions()] == [1]
        assert again.get_build("g_10") == {"id": "g_10"}
        assert again.append_decision({"action": "drop"}) == 2


# -- images ---------------------------------------------------------------------------------
def test_upsert_merges_top_level_fields(store) -> None:
    store.upsert_image({"content_hash": "h1", "gender": "man", "faces": {"n": 1, "box": [1, 2, 3, 4]}})
    store.upsert_image({"content_hash": "h1", "faces": {"n": 2}, "status": "ok"})
    # Top-level fields merge; a sub-document given again is replaced as a whole.
    assert store.get_image("h1") == {"content_hash": "h1", "gender": "man", "faces": {"n": 2}, "status": "ok"}
    store.upsert_image({"content_hash": "h1", "status": None})
    assert store.get_image("h1")["status"] is None
    assert store.count_images() == 1
    assert store.get_image("missing") is None


def test_many_records_upserted_at_once(store) -> None:
    store.upsert_image({"content_hash": "0001", "gender": "man", "status": "review"})
    records = [{"content_hash": f"{i:04d}", "gender": "woman" if i % 2 else "man", "n": np.int64(i)}
               for i in range(2500)]  # more than one chunk on either backend
    assert store.upsert_images(iter(records)) == 2500
    assert store.upsert_images(records[:10]) == 10  # again: no duplicates
    assert store.count_images() == 2500
    assert store.get_image("0001") == {"content_hash": "0001", "gender": "woman", "status": "review", "n": 1}
    assert store.count_images(gender="woman", status=None) == 1249
    assert store.upsert_images([]) == 0
    with pytest.raises(TypeError, match="cannot store"):
        store.upsert_images([{"content_hash": "x", "bad": object()}])


def test_callers_dicts_are_not_changed(store) -> None:
    record, decision, build = {"content_hash": "h1"}, {"action": "keep"}, {"id": "g_1"}
    store.upsert_image(record)
    store.append_decision(decision)
    store.save_build(build)
    assert (record, decision, build) == ({"content_hash": "h1"}, {"action": "keep"}, {"id": "g_1"})


def test_find_images_by_equality(store) -> None:
    records = [
        {"content_hash": "c", "gender": "woman", "faces": 1, "reviewed": True},
        {"content_hash": "a", "gender": "man", "faces": 1, "reviewed": False, "reason": None},
        {"content_hash": "b", "gender": "man", "faces": 2, "reviewed": False, "reason": "many-faces"},
        {"content_hash": "d", "gender": "woman", "faces": 0},
    ]
    for record in records:
        store.upsert_image(record)

    def hashes(**equals) -> list[str]:
        found = store.find_images(**equals)
        assert store.count_images(**equals) == len(found)
        assert no_mongo_ids(found)
        return [doc["content_hash"] for doc in found]

    assert hashes() == ["a", "b", "c", "d"]  # sorted by content_hash
    assert hashes(gender="man") == ["a", "b"]
    assert hashes(gender="woman", faces=1) == ["c"]
    assert hashes(faces=np.int64(2)) == ["b"]
    assert hashes(reviewed=True) == ["c"]
    assert hashes(reviewed=False, gender="man") == ["a", "b"]
    # None matches an explicit null and a missing field alike.
    assert hashes(reason=None) == ["a", "c", "d"]
    assert hashes(gender="child") == []
    assert store.find_images(gender="man")[1] == records[2]


@pytest.mark.parametrize("field", ["a.b", "$where", "", "1st", "x y"])
def test_find_images_refuses_odd_field_names(store, field: str) -> None:
    with pytest.raises(ValueError, match="bad field name"):
        store.find_images(**{field: 1})


def test_many_images_come_back_complete_and_sorted(store) -> None:
    # More than one cursor batch on MongoDB (101 documents), so getMore is exercised.
    hashes = [f"{i:064x}" for i in range(120)]
    for digest in reversed(hashes):
        store.upsert_image({"content_hash": digest, "gender": "man", "embedding": [0.5] * 128})
    found = store.find_images(gender="man")
    assert [doc["content_hash"] for doc in found] == hashes
    assert store.count_images(gender="man") == 120


def test_find_images_with_fields_returns_only_those(store) -> None:
    records = [
        {"content_hash": "b", "gender": "man", "person_id": "7", "reason": None, "ok": False, "n": 0,
         "other_people": [{"person_id": "8", "person_name": "Bo"}], "gate": {"faces": 1}, "text": "[1]"},
        {"content_hash": "a", "gender": "woman", "age": 31.5, "ok": True},
        {"content_hash": "c", "gender": "man"},
    ]
    store.upsert_images(records)
    fields = ("content_hash", "person_id", "reason", "ok", "n", "other_people", "gate", "text", "age", "missing")
    found = store.find_images(fields=fields)
    assert no_mongo_ids(found)
    # Sorted as ever; each record keeps the asked fields it has, with their types (nested values,
    # booleans, zero, a string that looks like JSON); missing and null fields are left out.
    assert found == [
        {"content_hash": "a", "ok": True, "age": 31.5},
        {"content_hash": "b", "person_id": "7", "ok": False, "n": 0,
         "other_people": [{"person_id": "8", "person_name": "Bo"}], "gate": {"faces": 1}, "text": "[1]"},
        {"content_hash": "c"},
    ]
    # With a filter, one field (given twice), and a field no record has.
    assert store.find_images(fields=["gate", "gate"], gender="man") == [{"gate": {"faces": 1}}, {}]
    assert store.find_images(fields=("age",), gender="woman") == [{"age": 31.5}]
    assert store.find_images(fields=("missing",)) == [{}, {}, {}]
    assert store.find_images(fields=None, gender="woman") == [records[1]]


@pytest.mark.parametrize("fields", ["content_hash", (), ("a.b",), ("$where",), ("x y",), (1,)])
def test_find_images_refuses_odd_projections(store, fields) -> None:
    store.upsert_image({"content_hash": "h1"})
    with pytest.raises(ValueError):
        store.find_images(fields=fields)


# -- numpy and other non-plain values ---------------------------------------------------------
def test_numpy_values_are_stored_as_plain_types(store) -> None:
    embedding = np.random.default_rng(7).normal(size=128)
    store.upsert_image(
        {
            "content_hash": "h1",
            "width": np.int64(640),
            "score": np.float32(0.25),
            "single": np.bool_(True),
            "embedding": embedding,
            "box": (np.int32(1), np.int32(2), np.int32(3), np.int32(4)),
            "faces": [{"landmarks": np.arange(10, dtype=np.int16).reshape(5, 2)}],
        }
    )
    got = store.get_image("h1")
    assert got["width"] == 640 and type(got["width"]) is int
    assert got["score"] == 0.25 and type(got["score"]) is float
    assert got["single"] is True
    assert type(got["embedding"]) is list and all(type(v) is float for v in got["embedding"])
    assert np.array_equal(np.array(got["embedding"]), embedding)  # float64 round-trips exactly
    assert got["box"] == [1, 2, 3, 4]
    assert got["faces"][0]["landmarks"] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]

    store.save_build({"id": "g_2", "centroids": {"man": np.ones(3, dtype=np.float32)}, "n": np.int64(2)})
    assert store.get_build("g_2") == {"id": "g_2", "centroids": {"man": [1.0, 1.0, 1.0]}, "n": 2}
    seq = store.append_decision({"content_hash": "h1", "distance": np.float64(0.5)})
    assert store.decisions()[-1] == {"content_hash": "h1", "distance": 0.5, "seq": seq}
    store.set_meta("threshold", np.float32(0.5))
    assert store.get_meta("threshold") == 0.5


def test_unstorable_value_is_refused_and_nothing_is_written(store) -> None:
    with pytest.raises(TypeError, match="cannot store"):
        store.upsert_image({"content_hash": "h1", "image": object()})
    assert store.get_image("h1") is None


# -- decisions --------------------------------------------------------------------------------
def test_decisions_are_numbered_oldest_first(store) -> None:
    seqs = [store.append_decision({"content_hash": f"h{i}", "action": "keep", "seq": 99}) for i in range(3)]
    assert seqs == [1, 2, 3]
    logged = store.decisions()
    assert logged == [{"content_hash": f"h{i}", "action": "keep", "seq": i + 1} for i in range(3)]
    assert [d["seq"] for d in store.decisions(after=1)] == [2, 3]
    assert store.decisions(after=3) == []
    assert no_mongo_ids(logged)


def test_a_decision_sent_again_by_its_id_is_logged_once(store) -> None:
    # What makes a retried review decision safe: the decision's own id is its key in the log.
    first = store.append_decision({"id": "d-1", "action": "keep"})
    other = store.append_decision({"id": "d-2", "action": "drop"})
    assert store.append_decision({"id": "d-1", "action": "keep"}) == first
    assert store.append_decision({"action": "note"}) == 3  # no id: always appended
    assert store.append_decision({"action": "note"}) == 4
    assert store.append_decision({"id": None, "action": "note"}) == 5
    assert [(d["seq"], d.get("id")) for d in store.decisions()] == [
        (first, "d-1"), (other, "d-2"), (3, None), (4, None), (5, None)]


def _check_complete_log(store, writers: dict[str, int], returned: list[int]) -> None:
    """Every append got its own number, the log is 1..N without gaps, and each entry is there once."""
    total = sum(writers.values())
    logged = store.decisions()
    assert [d["seq"] for d in logged] == list(range(1, total + 1))
    if returned:
        assert sorted(returned) == sorted(set(returned))
    entries = Counter((d["writer"], d["i"]) for d in logged)
    assert entries == Counter({(w, i): 1 for w, n in writers.items() for i in range(n)})


@pytest.mark.timeout(120)
def test_concurrent_appends_from_threads(uri: str, store) -> None:
    writers = {f"thread-{k}": 20 for k in range(4)}
    returned: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(len(writers))

    def write(name: str, count: int) -> None:
        try:
            with open_store(uri) as own:  # one connection per thread, as separate programs would
                start.wait()
                for i in range(count):
                    returned.append(own.append_decision({"writer": name, "i": i}))
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=write, args=item) for item in writers.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert len(returned) == 80
    _check_complete_log(store, writers, returned)
    # Each writer saw its own numbers increase.
    for name in writers:
        mine = [d["seq"] for d in store.decisions() if d["writer"] == name]
        assert mine == sorted(mine)


_WRITER = """
import sys, time
from pathlib import Path
from anfe.core.store import open_store
uri, name, count, meeting = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
with open_store(uri) as store:
    (meeting / f"{name}.ready").touch()
    while not (meeting / "go").exists():  # start together, so the writes really interleave
        time.sleep(0.005)
    for i in range(count):
        store.append_decision({"writer": name, "i": i})
"""


@pytest.mark.timeout(120)
def test_concurrent_appends_from_processes(uri: str, store, tmp_path) -> None:
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    writers = {f"process-{k}": 20 for k in range(2)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, uri, name, str(count), str(meeting)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name, count in writers.items()
    ]
    try:
        deadline = time.monotonic() + 60
        while len(list(meeting.glob("*.ready"))) < len(procs):
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "writers did not start"
            time.sleep(0.01)
        (meeting / "go").touch()
        # The test process writes at the same time.
        writers["main"] = 20
        returned = [store.append_decision({"writer": "main", "i": i}) for i in range(20)]
        for proc in procs:
            _, err = proc.communicate(timeout=90)
            assert proc.returncode == 0, err
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    _check_complete_log(store, writers, returned)


# -- builds -----------------------------------------------------------------------------------
def test_builds_are_saved_replaced_listed_and_deleted(store) -> None:
    for build_id in ("g_2", "g_1000", "g_10"):
        store.save_build({"id": build_id, "per_gender": int(build_id[2:]), "seed": 1})
    assert [b["id"] for b in store.list_builds()] == ["g_10", "g_1000", "g_2"]  # sorted as text
    assert no_mongo_ids(store.list_builds())
    store.save_build({"id": "g_10", "per_gender": 10, "variant": "average"})  # replaces, no merge
    assert store.get_build("g_10") == {"id": "g_10", "per_gender": 10, "variant": "average"}
    assert len(store.list_builds()) == 3
    store.delete_build("g_1000")
    assert [b["id"] for b in store.list_builds()] == ["g_10", "g_2"]
    with pytest.raises(UnknownBuildError, match=r"'g_1000'.*known builds: g_10, g_2"):
        store.delete_build("g_1000")


def test_unknown_build_names_the_known_ids(store) -> None:
    with pytest.raises(UnknownBuildError, match=r"no build 'g_5' in .*known builds: none"):
        store.get_build("g_5")
    store.save_build({"id": "g_1000_k16"})
    store.save_build({"id": "g_1000"})
    with pytest.raises(UnknownBuildError, match=r"known builds: g_1000, g_1000_k16$"):
        store.get_build("g_5")


# -- metadata and schema version --------------------------------------------------------------
def test_meta_values(store) -> None:
    store.set_meta("sites", {"a": [1, 2], "b": None})
    store.set_meta("count", 3)
    store.set_meta("count", 4)
    assert store.get_meta("sites") == {"a": [1, 2], "b": None}
    assert store.get_meta("count") == 4


def test_store_of_a_newer_schema_is_refused(uri: str) -> None:
    with open_store(uri) as store:
        store.set_meta("schema_version", SCHEMA_VERSION + 1)
    with pytest.raises(StoreVersionError, match=r"newer version.*pip install -U"):
        open_store(uri)


# -- MongoDB only: what pymongo hands out and what the server holds --------------------------
def _non_plain(value, path: str = "") -> list[str]:
    """Paths of values that are not plain BSON-decoded types (Int64 counts as int)."""
    if isinstance(value, dict):
        return [p for key, item in value.items() for p in _non_plain(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [p for index, item in enumerate(value) for p in _non_plain(item, f"{path}[{index}]")]
    plain = type(value) in PLAIN_TYPES or (isinstance(value, int) and type(value).__name__ == "Int64")
    return [] if plain else [f"{path}: {type(value).__name__}"]


def test_mongo_documents_are_plain_bson_without_ids(mongodb_database_uri: str) -> None:
    import pymongo

    uri = mongodb_database_uri
    store = open_store(uri)
    from bson import ObjectId

    store.upsert_image({"content_hash": "h1", "embedding": np.linspace(0, 1, 128), "n": np.int64(2)})
    store.append_decision({"content_hash": "h1", "margin": np.float32(0.125)})
    store.save_build({"id": "g_1", "centroids": {"man": np.zeros(128)}, "members": ("h1",)})
    store.set_meta("params", {"upsample": np.int64(1)})

    read_back = [store.get_image("h1"), store.get_build("g_1"), *store.decisions()]
    read_back += store.find_images() + store.list_builds()
    assert no_mongo_ids(read_back)

    with pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000) as client:
        database = client.get_default_database()
        for name in ("images", "decisions", "builds", "meta"):
            raw = list(database[name].find())
            assert raw, name
            for doc in raw:
                identity = doc.pop("_id")
                assert name == "meta" or isinstance(identity, ObjectId)
                assert _non_plain(doc) == [], (name, doc)
        embedding = database.images.find_one()["embedding"]
        assert len(embedding) == 128 and all(type(v) is float for v in embedding)
    store.close()
