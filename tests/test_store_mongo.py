"""The MongoDB backend's own behaviour: URI handling, failing fast when no server answers,
indexes, and the commands it really sends (pymongo over TCP to the tests' secantusd-py or to
$ANFE_TEST_MONGODB_URI)."""

from __future__ import annotations

import socket
import time
from collections import Counter

import numpy as np
import pymongo
import pytest
from bson.errors import InvalidDocument

from anfe.core.errors import StoreError, StoreUnreachableError
from anfe.core.store import open_store
from anfe.core.mongo import redact
from anfe.core.store.mongo import MongoStore
from testkit.secantus_server import SecantusServer, free_port


@pytest.fixture
def db_uri(mongodb_database_uri: str) -> str:
    return mongodb_database_uri


# -- failing fast -----------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(60)
def test_unreachable_server_fails_within_seconds_naming_the_uri() -> None:
    uri = f"mongodb://reviewer:hunter2@127.0.0.1:{free_port()}/faces"
    started = time.monotonic()
    with pytest.raises(StoreUnreachableError) as caught:
        open_store(uri)  # the default timeout, as a user gets it
    elapsed = time.monotonic() - started
    assert elapsed < 10
    message = str(caught.value)
    assert uri.replace("hunter2", "***") in message
    assert "hunter2" not in message
    assert "start mongod" in message and "check the URI" in message
    assert "Topology Description" not in message  # pymongo's dump is cut off


@pytest.mark.timeout(60)
def test_server_that_never_answers_does_not_hang() -> None:
    with socket.socket() as silent:  # accepts connections (the kernel does) but never replies
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        uri = f"mongodb://127.0.0.1:{silent.getsockname()[1]}/faces"
        started = time.monotonic()
        with pytest.raises(StoreUnreachableError, match="127.0.0.1"):
            open_store(uri, timeout_ms=1000)
        assert time.monotonic() - started < 10


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_server_going_away_later_is_reported_not_hung(tmp_path) -> None:
    server = SecantusServer(tmp_path / "data").start()
    store = open_store(server.uri("gone"), timeout_ms=1000)
    store.upsert_image({"content_hash": "h1"})
    server.stop()
    started = time.monotonic()
    with pytest.raises(StoreUnreachableError, match=r"mongodb://127.0.0.1:\d+/gone.*start mongod"):
        store.get_image("h1")
    assert time.monotonic() - started < 10
    store.close()


# -- URIs -------------------------------------------------------------------------------------
def test_open_store_picks_mongo_and_the_database_from_the_path(tmp_path) -> None:
    with SecantusServer(tmp_path / "data") as server:  # its own server: it uses the default "anfe"
        with open_store(server.uri("catalog_x")) as store:
            assert isinstance(store, MongoStore)
            assert store.database_name == "catalog_x"
        with open_store(server.uri()) as store:
            assert store.database_name == "anfe"
        with pymongo.MongoClient(server.uri()) as client:
            for name in ("catalog_x", "anfe"):
                assert "images" in client[name].list_collection_names()


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("mongodb://", r"bad MongoDB URI mongodb://: .*hostname.*use mongodb://host:27017/database"),
        ("mongodb://127.0.0.1:notaport/x", r"bad MongoDB URI .*[Pp]ort"),
        ("mongodb://127.0.0.1:27017/bad db", r"bad MongoDB URI .*database name"),
        ("mongodb://u:hunter2@127.0.0.1:port/x", r"mongodb://u:\*\*\*@127.0.0.1:port/x"),
        ("mongodb+srv://u:hunter2@db.example.org:27017/x", r"bad MongoDB URI mongodb\+srv://u:\*\*\*@.*port"),
        ("postgres://localhost/x", r"unknown store URI .*use sqlite:///.* or mongodb://"),
    ],
)
def test_bad_uris_are_explained(uri: str, expected: str) -> None:
    started = time.monotonic()
    with pytest.raises(StoreError, match=expected) as caught:
        open_store(uri)
    assert "hunter2" not in str(caught.value)
    assert not isinstance(caught.value, StoreUnreachableError)
    assert time.monotonic() - started < 2  # refused before any connection attempt


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("mongodb://u:p%40ss@h:1/db?authSource=admin", "mongodb://u:***@h:1/db?authSource=admin"),
        ("mongodb+srv://u:pw@cluster.example.org/db", "mongodb+srv://u:***@cluster.example.org/db"),
        ("mongodb://onlyuser@h/db", "mongodb://onlyuser@h/db"),
        ("mongodb://h1:1,h2:2/db", "mongodb://h1:1,h2:2/db"),
    ],
)
def test_passwords_are_redacted(uri: str, shown: str) -> None:
    assert redact(uri) == shown


# -- what the backend sets up and sends -------------------------------------------------------
def test_unique_indexes_guard_the_keys(db_uri: str) -> None:
    with open_store(db_uri) as store:
        store.upsert_image({"content_hash": "h1"})
    with pymongo.MongoClient(db_uri) as client:
        database = client.get_default_database()
        for collection, field in (("images", "content_hash"), ("decisions", "seq"), ("builds", "id")):
            indexes = {tuple(ix["key"].items()): ix for ix in database[collection].list_indexes()}
            assert indexes[((field, 1),)].get("unique") is True, collection
        with pytest.raises(pymongo.errors.DuplicateKeyError):
            database.images.insert_one({"content_hash": "h1"})


def test_image_fields_that_mongo_would_misread_are_refused(db_uri: str) -> None:
    with open_store(db_uri) as store:
        for field in ("faces.count", "$set", "_id"):
            with pytest.raises(ValueError, match="bad field name"):
                store.upsert_image({"content_hash": "h1", field: 1})
        assert store.get_image("h1") is None
        store.upsert_image({"content_hash": "h1", "face-count": 1, "Größe": 2})
        assert store.get_image("h1") == {"content_hash": "h1", "face-count": 1, "Größe": 2}


class _CommandCounter(pymongo.monitoring.CommandListener):
    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()

    def started(self, event) -> None:
        self.sent[event.command_name] += 1

    def succeeded(self, event) -> None:
        pass

    def failed(self, event) -> None:
        pass


def test_the_store_sends_real_commands_over_the_wire(db_uri: str) -> None:
    counter = _CommandCounter()
    pymongo.monitoring.register(counter)  # applies to clients created from now on
    with open_store(db_uri) as store:
        for i in range(110):
            store.upsert_image({"content_hash": f"{i:064x}", "gender": "man"})
        assert len(store.find_images(gender="man")) == 110  # more than one batch: getMore
        store.append_decision({"action": "keep"})
    for command in ("ping", "createIndexes", "update", "insert", "find", "getMore", "endSessions"):
        assert counter.sent[command] > 0, command
    with pymongo.MongoClient(db_uri) as client:
        version = client.server_info()["version"]
    assert int(version.split(".")[0]) >= 4, version


def test_a_leaking_numpy_value_fails_in_pymongos_encoder(db_uri: str) -> None:
    # Why plain() matters: BSON has no numpy types, and pymongo refuses them before sending,
    # exactly as it would against a real mongod.
    with pymongo.MongoClient(db_uri) as client:
        with pytest.raises(InvalidDocument, match="cannot encode object"):
            client.get_default_database().images.insert_one({"score": np.float32(0.5)})
