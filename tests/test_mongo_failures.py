"""Failures lose nothing, behind the store and the analysis cache alike (both connect through
:mod:`anfe.core.mongo`): mongod's fail points (``configureFailPoint failCommand``, the way MongoDB's
own drivers are tested), a server killed mid-write and started again, and a server killed for
good, on a real ``secantusd-py`` started with ``--enable-test-commands`` and ``--sync-on-commit``
(so what it acknowledged is on disk, as mongod does for ``j: true`` writes)."""

from __future__ import annotations

import threading
import time

from dataclasses import dataclass
from typing import Any, Callable

import pymongo
import pytest

from anfe.core.errors import CacheUnreachableError, StoreError, StoreUnreachableError
from anfe.core.store import open_store
from anfe.faces.analysis import ImageAnalysis
from anfe.faces.cache import AnalysisCache
from testkit.secantus_server import SecantusServer


@dataclass(frozen=True)
class Backend:
    """One MongoDB client of the project, seen the same way by every failure test: open it, write
    record ``i`` (idempotent), read back every ``i`` it holds."""

    open: Callable[[str, int], Any]
    write: Callable[[Any, int], None]
    read: Callable[[Any], list[int]]
    unreachable: type[Exception]
    noun: str


def _store_write(store, i: int) -> None:
    store.upsert_image({"content_hash": f"{i:06d}", "gender": "man" if i % 2 else "woman", "i": i})
    store.append_decision({"id": f"dec-{i}", "content_hash": f"{i:06d}", "action": "keep"})


def _store_read(store) -> list[int]:
    """The records whose image and decision are both there (a kill between the two leaves half)."""
    logged = [int(d["id"].removeprefix("dec-")) for d in store.decisions()]
    assert len(logged) == len(set(logged))  # each decision once
    return sorted({r["i"] for r in store.find_images()} & set(logged))


BACKENDS = {
    "store": Backend(lambda uri, timeout: open_store(uri, timeout_ms=timeout), _store_write, _store_read,
                     StoreUnreachableError, "MongoDB"),
    "cache": Backend(lambda uri, timeout: AnalysisCache(uri, "k", timeout_ms=timeout),
                     lambda cache, i: cache.put_many([ImageAnalysis(f"{i:06d}", width=i + 1, height=1)]),
                     lambda cache: sorted(a.width - 1 for _key, a in cache.entries()),
                     CacheUnreachableError, "the MongoDB cache"),
}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request) -> Backend:
    return BACKENDS[request.param]


def raw(uri: str):
    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000).get_default_database()


# -- transient failures: the write is sent again and lands once ---------------------------------
WRITES = {
    "upsert_image": ("update", lambda s: s.upsert_image({"content_hash": "h1", "gender": "man"})),
    "append_decision": ("insert", lambda s: s.append_decision({"id": "dec-1", "action": "keep"})),
    "save_build": ("update", lambda s: s.save_build({"id": "g_1", "members": ["h1"]})),
    "set_meta": ("update", lambda s: s.set_meta("threshold", 0.5)),
}


@pytest.mark.parametrize("failure", ["closeConnection", "notWritablePrimary"])
@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_failed_write_is_sent_again_and_lands_once(server, uri, write: str, failure: str) -> None:
    command, operation = WRITES[write]
    with open_store(uri) as store:
        data = {"closeConnection": True} if failure == "closeConnection" else {"errorCode": 10107}
        server.fail_point({"times": 2}, (command,), **data)
        operation(store)
        server.fail_point("off")
        operation(store)  # and the same call again (a re-run) changes nothing
    database = raw(uri)
    assert database.images.count_documents({}) == (1 if write == "upsert_image" else 0)
    assert database.decisions.count_documents({}) == (1 if write == "append_decision" else 0)
    assert database.builds.count_documents({}) == (1 if write == "save_build" else 0)
    if write == "append_decision":
        assert [d["seq"] for d in database.decisions.find()] == [1]
    database.client.close()


@pytest.mark.parametrize("failure", [{"closeConnection": True}, {"errorCode": 10107}])
def test_a_failed_find_is_sent_again(server, uri, failure) -> None:
    with open_store(uri) as store:
        for i in range(150):  # more than one batch: find and getMore
            store.upsert_image({"content_hash": f"{i:04d}", "gender": "woman"})
        server.fail_point({"times": 2}, ("find", "getMore"), **failure)
        assert len(store.find_images(gender="woman")) == 150
        server.fail_point({"times": 1}, ("find",), **failure)
        assert store.get_image("0007") == {"content_hash": "0007", "gender": "woman"}
        server.fail_point({"times": 1}, ("aggregate",), **failure)  # count_documents
        assert store.count_images(gender="woman") == 150


@pytest.mark.timeout(60)
def test_a_failure_that_lasts_stops_with_one_clear_line_within_the_timeout(server, uri) -> None:
    with open_store(uri, timeout_ms=1500) as store:
        server.fail_point("alwaysOn", ("insert",), closeConnection=True)
        started = time.monotonic()
        with pytest.raises(StoreUnreachableError) as caught:
            store.append_decision({"id": "dec-1", "action": "keep"})
        assert time.monotonic() - started < 6
        message = str(caught.value)
        assert message.startswith(f"cannot append a decision to MongoDB at {uri} within 1.5 s (")
        assert "start mongod there, or check the URI" in message and "\n" not in message
        server.fail_point("off")
        # The same decision again, once the server works: logged exactly once.
        assert store.append_decision({"id": "dec-1", "action": "keep"}) == 1
        assert [d["id"] for d in store.decisions()] == ["dec-1"]


def test_a_refused_write_is_not_retried_and_says_why(server, uri) -> None:
    with open_store(uri) as store:
        server.fail_point({"times": 1}, ("update",), errorCode=2, errmsg="bad value")  # BadValue: not transient
        started = time.monotonic()
        with pytest.raises(StoreError, match=rf"^MongoDB at {uri} failed to save a build to: ") as caught:
            store.save_build({"id": "g_1"})
        assert time.monotonic() - started < 1
        assert not isinstance(caught.value, StoreUnreachableError)
        store.save_build({"id": "g_1"})
        assert [b["id"] for b in store.list_builds()] == ["g_1"]


@pytest.mark.slow
@pytest.mark.parametrize("failure", [{"closeConnection": True}, {"errorCode": 10107}])
def test_a_failed_write_or_read_is_sent_again_by_the_store_and_the_cache(server, uri, backend, failure) -> None:
    with backend.open(uri, 5000) as client:
        server.fail_point({"times": 2}, ("update",), **failure)
        backend.write(client, 7)
        backend.write(client, 7)  # and the same write again (a re-run) changes nothing
        for i in range(150):  # more than one batch: find and getMore
            backend.write(client, i)
        server.fail_point({"times": 2}, ("find", "getMore"), **failure)
        assert backend.read(client) == list(range(150))


@pytest.mark.timeout(60)
def test_a_lasting_failure_is_one_line_within_the_timeout_from_the_store_and_the_cache(server, uri, backend) -> None:
    with backend.open(uri, 1500) as client:
        server.fail_point("alwaysOn", ("update",), closeConnection=True)
        started = time.monotonic()
        with pytest.raises(backend.unreachable) as caught:
            backend.write(client, 1)
        assert time.monotonic() - started < 6
        message = str(caught.value)
        assert message.startswith(f"cannot write to {backend.noun} at {uri} within 1.5 s (")
        assert message.endswith("start mongod there, or check the URI") and "\n" not in message
        server.fail_point("off")
        backend.write(client, 1)
        assert backend.read(client) == [1]


# -- the server killed mid-run --------------------------------------------------------------------
def _write_records(backend: Backend, uri: str, count: int, errors: list[BaseException], timeout_ms: int,
                   acknowledged: list[int] | None = None) -> None:
    """Write records 0..count-1 in order; ``acknowledged`` gets each one the server acknowledged."""
    try:
        with backend.open(uri, timeout_ms) as client:
            for i in range(count):
                backend.write(client, i)
                if acknowledged is not None:
                    acknowledged.append(i)
    except BaseException as exc:  # noqa: BLE001 - the test looks at it
        errors.append(exc)


def _wait_for_records(uri: str, at_least: int) -> None:
    database = raw(uri)
    deadline = time.monotonic() + 60
    while max(database.images.estimated_document_count(), database.analyses.estimated_document_count()) < at_least:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    database.client.close()


def _check_complete(backend: Backend, uri: str, count: int) -> None:
    with backend.open(uri, 5000) as client:
        assert backend.read(client) == list(range(count))
    if backend is BACKENDS["store"]:
        with open_store(uri) as store:
            assert sorted(r["i"] for r in store.find_images()) == list(range(count))
            seqs = [d["seq"] for d in store.decisions()]
        # Numbered in order, each number once (the re-run logs what the killed run had not).
        assert seqs == sorted(set(seqs)) and len(seqs) == count


def _kill_while_writing(server: SecantusServer, backend: Backend, uri: str, timeout_ms: int,
                        acknowledged: list[int] | None = None) -> tuple[threading.Thread, list]:
    """Start writing 150 records from a thread (client timeout ``timeout_ms``), SIGKILL the server
    once 40 are in; returns the writer and the list its error lands in."""
    errors: list[BaseException] = []
    writer = threading.Thread(target=_write_records, args=(backend, uri, 150, errors, timeout_ms, acknowledged))
    writer.start()
    _wait_for_records(uri, 40)
    server.kill()
    return writer, errors


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_killed_and_back_within_the_timeout_the_writer_just_goes_on(server, uri, backend) -> None:
    writer, errors = _kill_while_writing(server, backend, uri, 20_000)
    server.start()  # WiredTiger recovers the storage
    writer.join(timeout=120)
    assert not writer.is_alive() and errors == []
    _check_complete(backend, uri, 150)  # nothing written again: every record is there once


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_killed_for_good_the_writer_stops_with_a_clear_error_and_a_rerun_completes(server, uri, backend) -> None:
    acknowledged: list[int] = []
    writer, errors = _kill_while_writing(server, backend, uri, 1500, acknowledged)
    started = time.monotonic()
    writer.join(timeout=60)
    assert time.monotonic() - started < 10
    assert len(errors) == 1 and isinstance(errors[0], backend.unreachable), errors
    assert "start mongod there" in str(errors[0]) and "\n" not in str(errors[0])
    server.start()
    # What the server acknowledged before the kill is there, read before anything is written again.
    # One write at a time: the 40th record's acknowledgement may still be in flight at the kill.
    with backend.open(uri, 5000) as client:
        assert set(acknowledged) <= set(backend.read(client)) and len(acknowledged) >= 39
    errors.clear()
    _write_records(backend, uri, 150, errors, 5000)  # the same run again
    assert errors == []
    _check_complete(backend, uri, 150)
