"""The commands against a MongoDB that fails (fail points) or dies (SIGKILL) in the middle: a clean, a
review decision, a build and a crawl each finish or stop with one clear error, and the same command
again, once the server is back, completes with no duplicate or missing record. On a real
``secantusd-py --enable-test-commands`` the tests start."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from anfe.core.errors import StoreUnreachableError
from anfe.core.layout import DatasetLayout
from anfe.core.store import open_store
from curation import decisions, moves
from testkit.demo_site import served_demo
from testkit.cleaning import EXPECTED, run_clean
from testkit.review import items_of, make_review_dataset

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _files(root: Path) -> Counter:
    """Content of every photo under images/ and quarantine/ (what must never be lost)."""
    return Counter(p.read_bytes() for p in root.rglob("*")
                   if p.is_file() and p.parts[len(root.parts)] in ("images", "quarantine")
                   and not p.name.startswith(".") and p.name != "manifest.jsonl")


def records_match_the_journal(layout: DatasetLayout, uri: str) -> None:
    """Every file the journal says was moved has a record saying where it is and why; one record per
    content hash (the unique index), none left saying "active" for a quarantined file."""
    places: dict[str, set[tuple[str, str]]] = {}
    live = moves.live(layout)
    for move in live.values():
        if move.update_store and move.content_hash:
            places.setdefault(move.content_hash, set()).add((move.status, move.dst))
    with open_store(uri) as store:
        records = {r["content_hash"]: r for r in store.find_images()}
    for digest, where in places.items():  # copies of one photo share a record: it names one of them
        record = records.get(digest)
        assert record is not None, where
        assert (record["status"], record["path"]) in where, (record, where)
    quarantined = {h for h, r in records.items() if r.get("status") == moves.STATUS_QUARANTINED}
    assert quarantined == {h for h, w in places.items() if any(s == moves.STATUS_QUARANTINED for s, _ in w)}


# -- clean --------------------------------------------------------------------------------------
@pytest.mark.timeout(300)
def test_clean_with_the_store_failing_midway(server, uri, messy_root, session_cache_path) -> None:
    root, _ = messy_root
    layout = DatasetLayout(root)
    before = _files(root)
    # The third record update and every one after it fail (connection closed): the store gives up
    # after its timeout and the clean stops with the store's one-line error.
    server.fail_point({"skip": 2}, ("update",), closeConnection=True)
    with open_store(uri, timeout_ms=1500) as store:
        with pytest.raises(StoreUnreachableError, match=r"cannot write to MongoDB at mongodb://127.0.0.1:\d+/"):
            run_clean(root, session_cache_path, store=store)
    server.fail_point("off")
    assert _files(root) == before  # nothing lost, nothing doubled
    assert 0 < len(moves.live(layout)) < len(EXPECTED)
    with open_store(uri) as store:  # the same command again
        report = run_clean(root, session_cache_path, store=store)
    assert _files(root) == before
    quarantined = {m.original for m in moves.live(layout).values() if m.status == moves.STATUS_QUARANTINED}
    assert len(quarantined) + len(report.rejections) >= len(EXPECTED) - 1  # label conflicts go to review
    records_match_the_journal(layout, uri)


# -- a review decision ---------------------------------------------------------------------------
@pytest.fixture
def review_root(utkface_rows, tmp_path) -> DatasetLayout:
    return make_review_dataset(utkface_rows, tmp_path / "data", per_gender=3)


def _decided_once(uri: str) -> Counter:
    with open_store(uri) as store:
        return Counter(d["content_hash"] for d in decisions.read_log(store).decisions)


@pytest.mark.timeout(120)
def test_review_decision_survives_a_lost_connection(server, uri, review_root) -> None:
    male = items_of(review_root, "male")
    with open_store(uri) as store:
        server.fail_point({"times": 1}, ("insert",), closeConnection=True)
        out = decisions.decide(review_root, store, male[:1], "reject", "ann", reason="wrong-person")
        server.fail_point({"times": 1}, ("update",), closeConnection=True)
        out2 = decisions.decide(review_root, store, male[1:2], "relabel", "ann", new_label="female")
    assert not out.problems and not out2.problems
    assert _decided_once(uri) == Counter({male[0].content_hash: 1, male[1].content_hash: 1})
    assert (review_root.quarantine_dir("wrong-person") / "male" / male[0].file_name).is_file()
    assert (review_root.gender_dir("female") / male[1].file_name).is_file()
    records_match_the_journal(review_root, uri)


@pytest.mark.timeout(120)
def test_review_decision_with_the_store_down_then_back(server, uri, review_root) -> None:
    male = items_of(review_root, "male")
    # 1. The log write fails for good: nothing is logged, nothing moves, one clear error.
    with open_store(uri, timeout_ms=1500) as store:
        server.fail_point("alwaysOn", ("insert",), errorCode=10107)
        with pytest.raises(StoreUnreachableError, match="cannot append a decision to MongoDB"):
            decisions.decide(review_root, store, male[:1], "relabel", "ann", new_label="female")
        server.fail_point("off")
    assert male[0].path.is_file() and _decided_once(uri) == Counter()
    # 2. The record update after the move fails for good: the decision is logged, the file moved
    #    (the journal says so), and the next start's repair writes the record.
    with open_store(uri, timeout_ms=1500) as store:
        server.fail_point("alwaysOn", ("update",), closeConnection=True)
        with pytest.raises(StoreUnreachableError, match="cannot write to MongoDB"):
            decisions.decide(review_root, store, male[:1], "relabel", "ann", new_label="female")
        server.fail_point("off")
    # 3. The server killed: the decision stops with the error; nothing half-written.
    server.kill()
    with pytest.raises(StoreUnreachableError, match="cannot connect to MongoDB"):
        open_store(uri, timeout_ms=1000)
    server.start()
    with open_store(uri) as store:  # the review page starting again: repair, then the same decision
        decisions.repair(review_root, store)
        decisions.decide(review_root, store, male[:1], "relabel", "ann", new_label="female")
        decisions.decide(review_root, store, male[1:2], "reject", "ann", reason="no-face")
    assert (review_root.gender_dir("female") / male[0].file_name).is_file() and not male[0].path.exists()
    counts = _decided_once(uri)
    assert counts[male[1].content_hash] == 1
    assert counts[male[0].content_hash] in (1, 2)  # the second try finds it done: "moved meanwhile"
    records_match_the_journal(review_root, uri)
    with open_store(uri) as store:
        record = store.get_image(male[0].content_hash)
    assert record["gender"] == "female" and record["path"] == f"images/female/{male[0].file_name}"


# -- a build ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def build_labels(utkface_adult_items, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("build") / "labels.csv"
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "gender"])
        for item in utkface_adult_items[:12] + utkface_adult_items[20:32]:
            writer.writerow([str(item.path), item.gender])
    return path


def anfe(*args: str, cache: Path, cwd: Path, timeout: int = 180) -> subprocess.CompletedProcess:
    env = {**os.environ, "ANFE_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "anfe", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=timeout)


def _builds(uri: str) -> list[dict]:
    with open_store(uri) as store:
        return store.list_builds()


@pytest.mark.timeout(400)
def test_build_with_failures_then_again(server, uri, build_labels, session_cache_path, tmp_path) -> None:
    build = ["build", str(build_labels), "--sizes", "5,10", "--db", uri]
    # A lost connection on the save: sent again, saved once.
    server.fail_point({"times": 1}, ("update",), closeConnection=True)
    done = anfe(*build, cache=session_cache_path, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    first = _builds(uri)
    assert [b["id"] for b in first] == ["g_10", "g_5"]
    # The save refused for good: one clear line, exit 1, no traceback.
    server.fail_point("alwaysOn", ("update",), errorCode=10107)
    done = anfe(*build, "--seed", "1", cache=session_cache_path, cwd=tmp_path)
    server.fail_point("off")
    assert done.returncode == 1
    assert done.stderr.startswith("Error: cannot save a build to MongoDB at mongodb://127.0.0.1:")
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    # The server killed: the same.
    server.kill()
    done = anfe(*build, "--seed", "1", cache=session_cache_path, cwd=tmp_path)
    assert done.returncode == 1 and done.stderr.startswith("Error: cannot connect to MongoDB at"), done.stderr
    server.start()
    done = anfe(*build, "--seed", "1", cache=session_cache_path, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    again = _builds(uri)
    assert [b["id"] for b in again] == ["g_10", "g_5"]  # replaced whole, never doubled
    for doc in again:
        assert doc["seed"] == 1 and sum(len(m) for m in doc["members"].values()) == 2 * doc["size"]
        assert set(doc) == set(first[0])  # every field there: never half-written


# -- a crawl ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_demo(lfw_labels: Path, tmp_path_factory):
    with served_demo(lfw_labels, tmp_path_factory.mktemp("mongo-crawl-site"), people=6) as served:
        yield served


@pytest.mark.timeout(400)
def test_crawl_with_the_server_killed_then_again(server, uri, small_demo, tmp_path) -> None:
    from testkit.crawls import crawl_command, start, stored

    expect, demo_server = small_demo
    root = tmp_path / "data"
    command = crawl_command(root, demo_server, "--db", uri)
    total = sum(expect["images"].values())
    process = start(command, tmp_path / "first.log")
    deadline = time.monotonic() + 120
    while stored(root) < total // 3:
        assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()[-2000:]
        time.sleep(0.02)
    server.kill()
    started = time.monotonic()
    assert process.wait(timeout=120) == 1
    assert time.monotonic() - started < 60
    log = (tmp_path / "first.log").read_text()
    assert "Error: the crawl stopped: cannot" in log and f"MongoDB at {uri}" in log, log[-3000:]
    assert "run the same command again" in log
    assert stored(root) < total
    server.start()
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    with open_store(uri) as store:
        records = store.find_images()
    hashes = [r["content_hash"] for r in records]
    assert sorted(hashes) == sorted(h for hs in expect["hashes"].values() for h in hs)  # each once
    for record in records:
        assert (root / record["path"]).is_file() and record["source"] == "crawl"
    on_disk = {p.stem for p in (root / "images").rglob("*") if p.is_file() and not p.name.startswith(".")}
    assert on_disk == set(hashes)
