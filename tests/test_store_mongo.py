"""The MongoDB backend's own behaviour: URI handling, failing fast when no server answers,
indexes, and what the wire stand-in proves (real pymongo over TCP)."""

from __future__ import annotations

import socket
import time
import uuid

import numpy as np
import pymongo
import pytest
from bson.errors import InvalidDocument

from anfe.errors import StoreError, StoreUnreachableError
from anfe.store import open_store
from anfe.store.mongo import MongoStore, redact
from mongo_standin import MongoStandIn


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def standin_uri(mongo_standin: MongoStandIn):
    database = f"anfe_test_{uuid.uuid4().hex[:12]}"
    yield mongo_standin.uri(database)
    with pymongo.MongoClient(mongo_standin.uri()) as client:
        client.drop_database(database)


# -- failing fast -----------------------------------------------------------------------------
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


@pytest.mark.timeout(60)
def test_server_going_away_later_is_reported_not_hung() -> None:
    server = MongoStandIn().start()
    store = open_store(server.uri("gone"), timeout_ms=1000)
    store.upsert_image({"content_hash": "h1"})
    server.stop()
    started = time.monotonic()
    with pytest.raises(StoreUnreachableError, match=r"mongodb://127.0.0.1:\d+/gone.*start mongod"):
        store.get_image("h1")
    assert time.monotonic() - started < 10
    store.close()


# -- URIs -------------------------------------------------------------------------------------
def test_open_store_picks_mongo_and_the_database_from_the_path(mongo_standin: MongoStandIn) -> None:
    with open_store(mongo_standin.uri("catalog_x")) as store:
        assert isinstance(store, MongoStore)
        assert store.database_name == "catalog_x"
    with open_store(mongo_standin.uri()) as store:
        assert store.database_name == "anfe"
    with pymongo.MongoClient(mongo_standin.uri()) as client:
        for name in ("catalog_x", "anfe"):
            assert "images" in client[name].list_collection_names()
            client.drop_database(name)


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
def test_unique_indexes_guard_the_keys(standin_uri: str) -> None:
    with open_store(standin_uri) as store:
        store.upsert_image({"content_hash": "h1"})
    with pymongo.MongoClient(standin_uri) as client:
        database = client.get_default_database()
        for collection, field in (("images", "content_hash"), ("decisions", "seq"), ("builds", "id")):
            indexes = {tuple(ix["key"].items()): ix for ix in database[collection].list_indexes()}
            assert indexes[((field, 1),)].get("unique") is True, collection
        with pytest.raises(pymongo.errors.DuplicateKeyError):
            database.images.insert_one({"content_hash": "h1"})


def test_image_fields_that_mongo_would_misread_are_refused(standin_uri: str) -> None:
    with open_store(standin_uri) as store:
        for field in ("faces.count", "$set", "_id"):
            with pytest.raises(ValueError, match="bad field name"):
                store.upsert_image({"content_hash": "h1", field: 1})
        assert store.get_image("h1") is None
        store.upsert_image({"content_hash": "h1", "face-count": 1, "Größe": 2})
        assert store.get_image("h1") == {"content_hash": "h1", "face-count": 1, "Größe": 2}


def test_the_standin_carries_real_pymongo_traffic(mongo_standin: MongoStandIn, standin_uri: str) -> None:
    before = mongo_standin.commands.copy()
    with open_store(standin_uri) as store:
        for i in range(110):
            store.upsert_image({"content_hash": f"{i:064x}", "gender": "man"})
        assert len(store.find_images(gender="man")) == 110
        store.append_decision({"action": "keep"})
    sent = mongo_standin.commands - before
    for command in ("ping", "createIndexes", "update", "insert", "find", "getMore", "endSessions"):
        assert sent[command] > 0, command


def test_a_leaking_numpy_value_fails_in_pymongos_encoder(standin_uri: str) -> None:
    # Why plain() matters: BSON has no numpy types, and pymongo refuses them before sending,
    # exactly as it would against a real mongod.
    with pymongo.MongoClient(standin_uri) as client:
        with pytest.raises(InvalidDocument, match="cannot encode object"):
            client.get_default_database().images.insert_one({"score": np.float32(0.5)})
