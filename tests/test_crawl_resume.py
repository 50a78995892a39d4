"""kill -9 at any moment, then the same command again: the crawl ends with every photo the demo site
offers (its manifest), with ``--jobdir``, with ``--redis`` and with neither. Also: two ``anfe crawl
--redis`` processes share one frontier and one dataset root, and fetch each photo once.

Each crawl is a real ``anfe crawl`` subprocess in its own process group against the demo site
(real LFW photos) on a free loopback port; ``--redis`` runs against a real ``redis-server``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from anfe.core.layout import DatasetLayout
from anfe.core.store import open_store
from testkit.demo_site import served_demo
from testkit.crawls import crawl_command, start, stored

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_url(redis_server) -> str:
    """The server's URL, emptied for each test."""
    redis_server.flush()
    return redis_server.url


@pytest.fixture(scope="module")
def demo(lfw_labels: Path, tmp_path_factory):
    """A demo site of 20 people per gender, 3 photos each, served on a free loopback port."""
    with served_demo(lfw_labels, tmp_path_factory.mktemp("resume-site"), people=20) as served:
        yield served


def kill_when(process: subprocess.Popen, root: Path, images: int, timeout: float = 90) -> int:
    """kill -9 the crawl's whole process group once ``images`` photos are on disk; returns how many were."""
    deadline = time.monotonic() + timeout
    while stored(root) < images:
        assert process.poll() is None, "the crawl ended before it could be killed"
        assert time.monotonic() < deadline, "the crawl stored too few photos in time"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    return stored(root)


def finish(command: list[str], cwd: Path, timeout: int = 180) -> str:
    done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def files_by_gender(root: Path) -> dict[str, set[str]]:
    layout = DatasetLayout(root)
    return {g: {p.stem for p in layout.image_files(g)} for g in layout.genders()}


def check_complete(root: Path, expect: dict, store_uri: str | None = None) -> None:
    """Every photo of the manifest, once, on disk and in the store; nothing else."""
    assert files_by_gender(root) == {g: set(h) for g, h in expect["hashes"].items()}
    with open_store(store_uri, root) as store:
        assert {r["content_hash"] for r in store.find_images()} == {h for hs in expect["hashes"].values() for h in hs}


def scrapy_log(output: str) -> str:
    """The Scrapy log a quiet crawl names on its first line ("Scrapy's log: PATH")."""
    first = output.splitlines()[0]
    assert first.startswith("Scrapy's log: "), first
    return Path(first.removeprefix("Scrapy's log: ").strip()).read_text(encoding="utf-8")


def last_summary(root: Path) -> dict:
    reports = sorted((root / "crawl_reports").glob("listal-*.json"))
    return json.loads(reports[-1].read_text())["summary"]


@pytest.mark.parametrize("mode", ["jobdir", "redis", "neither"])
def test_kill_9_then_the_same_command_ends_with_every_photo(demo, tmp_path, mode, request):
    expect, server = demo
    root = tmp_path / "data"
    extra = {"jobdir": ["--jobdir", str(tmp_path / "job")], "neither": [],
             "redis": ["--redis", request.getfixturevalue("redis_url") if mode == "redis" else "",
                       "-s", "REDIS_WORKER_TTL=2"]}[mode]
    command = crawl_command(root, server, *extra)
    total = sum(expect["images"].values())
    before = len(server.requests)
    killed_at = kill_when(start(command, tmp_path / "first.log"), root, images=total * 3 // 4)
    assert killed_at < total
    first, middle = set(server.requests[before:]), len(server.requests)
    log = finish(command, tmp_path)
    second = [p for p in server.requests[middle:] if p != "/robots.txt"]
    assert "crawl summary (listal, finished)" in log
    if mode == "jobdir":  # resumed from its frontier, not from the start: only what was in flight again
        assert "resuming the crawl" in scrapy_log(log) and "requests recovered from the frontier" in log
        again = [p for p in second if p in first]
        assert len(again) <= 4, again
        assert "/listal/list/actresses" in first and "/listal/list/actresses" not in second
    if mode == "redis":
        assert "took back" in scrapy_log(log)  # what the killed process held in flight
    check_complete(root, expect)
    summary = last_summary(root)
    assert summary["finish_reason"] == "finished"
    # nothing the killed run stored was downloaded again
    assert summary["images_stored"] == total - killed_at


def test_a_summary_never_says_finished_while_requests_are_not_done(tmp_path):
    """The frontier counts what is left at the close; the summary then says "incomplete", not "finished"."""
    from scrapy import Request, Spider
    from scrapy.utils.test import get_crawler

    from scraper.extensions import HarvestProgress
    from scraper.frontier import DurableScheduler, report_done

    class Probe(Spider):
        name = "probe"

    crawler = get_crawler(Probe, {"JOBDIR": str(tmp_path / "job"), "DATASET_ROOT": str(tmp_path / "data")})
    crawler.spider = Probe()
    crawler.stats.open_spider()
    scheduler = DurableScheduler.from_crawler(crawler)
    scheduler.open(crawler.spider)
    assert scheduler.enqueue_request(Request("http://127.0.0.1:9/a"))
    assert scheduler.enqueue_request(Request("http://127.0.0.1:9/b"))
    assert not scheduler.enqueue_request(Request("http://127.0.0.1:9/a"))  # a duplicate
    taken = scheduler.next_request()
    assert taken is not None and scheduler.next_request() is not None and scheduler.next_request() is None
    report_done(crawler, taken)
    scheduler.close("finished")  # one request was handed out but never done
    assert crawler.stats.get_value("anfe/frontier/not_done") == 1
    progress = HarvestProgress(crawler)
    progress.spider_closed(crawler.spider, "finished")
    summary = json.loads(next((tmp_path / "data" / "crawl_reports").glob("probe-*.json")).read_text())["summary"]
    assert summary["finish_reason"].startswith("incomplete (1 requests not done")
    again = DurableScheduler.from_crawler(crawler)  # and the next run fetches it
    again.open(crawler.spider)
    left = again.next_request()
    assert left is not None and left.url != taken.url and again.next_request() is None
    again.close("finished")


def test_two_redis_crawls_share_one_frontier_and_one_dataset_root(demo, tmp_path, redis_url, mongodb_database_uri):
    """Two processes on one Redis write one dataset root and one MongoDB store: every photo of the
    manifest once, no page or photo fetched twice, both summaries "finished"; a crawl into another
    root after the frontier is reset downloads nothing again (the ledger is in Redis)."""
    import redis

    expect, server = demo
    root = tmp_path / "data"
    command = crawl_command(root, server, "--redis", redis_url, "--db", mongodb_database_uri)
    before = len(server.requests)
    workers = [start(command, tmp_path / f"w{i}.log") for i in range(2)]
    for worker in workers:
        assert worker.wait(timeout=180) == 0, (tmp_path / "w0.log").read_text()[-3000:]
    logs = [(tmp_path / f"w{i}.log").read_text() for i in range(2)]
    assert all("crawl summary (listal, finished)" in log for log in logs)
    check_complete(root, expect, mongodb_database_uri)
    fetched = [p for p in server.requests[before:] if p != "/robots.txt"]
    assert len(fetched) == len(set(fetched)), sorted(p for p in fetched if fetched.count(p) > 1)
    reports = [json.loads(p.read_text())["summary"] for p in (root / "crawl_reports").glob("listal-*.json")]
    assert len(reports) == 2 and all(r["image_requests"] > 0 for r in reports)  # both did part of the work
    assert sum(r["images_stored"] for r in reports) == sum(expect["images"].values())

    client = redis.Redis.from_url(redis_url)
    client.delete(*client.keys("anfe:listal:*"))  # a new crawl of the site, the ledger kept
    other = tmp_path / "elsewhere"
    finish(crawl_command(other, server, "--redis", redis_url), tmp_path)
    again = last_summary(other)
    assert again["image_requests"] == 0 and again["images_stored"] == 0
    assert again["skipped"]["already-fetched"] >= sum(expect["images"].values())


def test_one_writer_per_content_hash_among_redis_crawls(redis_url, tmp_path):
    """The same bytes downloaded by two processes at once: the first takes the hash's lock and writes;
    the other waits until it is released, then finds the record (a duplicate, not a second photo).
    A lock whose holder died on this machine is taken over."""
    from scraper.redisfrontier import RedisContentLocks

    digest = "ab" * 32
    first, second = RedisContentLocks(redis_url), RedisContentLocks(redis_url)
    second.owner = f"{first.owner.split(':')[0]}:1"  # another live process (init) of this machine
    assert first.try_lock(digest) and first.try_lock(digest)
    assert not second.try_lock(digest)
    second.unlock(digest)  # not its lock: nothing happens
    assert not second.try_lock(digest)
    first.unlock(digest)
    assert second.try_lock(digest)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    second.owner = f"{first.owner.split(':')[0]}:{dead.stdout.strip()}"
    assert second.try_lock("cd" * 32)
    assert first.try_lock("cd" * 32)  # its holder is gone: taken over
    first.close()
    second.close()


def _scheduler(tmp_path: Path, cls_name: str = "DurableScheduler", **settings):
    """An opened frontier (SQLite in tmp_path/job, or Redis) of a bare spider, and its crawler."""
    from scrapy import Spider
    from scrapy.utils.test import get_crawler

    from scraper import frontier, redisfrontier

    class Probe(Spider):
        name = "probe"

    crawler = get_crawler(Probe, {"JOBDIR": str(tmp_path / "job"), "DATASET_ROOT": str(tmp_path / "data"), **settings})
    crawler.spider = Probe()
    crawler.stats.open_spider()
    cls = getattr(frontier, cls_name, None) or getattr(redisfrontier, cls_name)
    scheduler = cls.from_crawler(crawler)
    scheduler.open(crawler.spider)
    return scheduler, crawler


def _urls(scheduler) -> set[str]:
    out = set()
    while (request := scheduler.next_request()) is not None:
        out.add(request.url)
    return out


def test_a_request_leaves_the_frontier_only_in_the_step_that_adds_its_children(tmp_path):
    """The invariant of scraper/frontier.py: parent done and children added are one transaction;
    a kill inside it (crash point frontier.commit) leaves the parent and none of the children."""
    import multiprocessing

    from scrapy import Request

    from scraper.frontier import commit

    scheduler, crawler = _scheduler(tmp_path)
    assert scheduler.enqueue_request(Request("http://127.0.0.1:9/list"))
    parent = scheduler.next_request()
    children = [Request("http://127.0.0.1:9/a"), Request("http://127.0.0.1:9/b"), Request("http://127.0.0.1:9/list")]

    def killed_inside_the_transaction() -> None:
        os.environ["ANFE_CRASH_AT"] = "frontier.commit:1"
        commit(crawler, parent, children, True)
        os._exit(0)  # not reached

    child = multiprocessing.get_context("fork").Process(target=killed_inside_the_transaction)
    child.start()
    child.join(60)
    assert child.exitcode == -signal.SIGKILL
    scheduler.close("shutdown")
    again, crawler = _scheduler(tmp_path)  # what the next run finds: the parent, not done, no child
    assert _urls(again) == {"http://127.0.0.1:9/list"}
    assert crawler.stats.get_value("anfe/frontier/recovered") == 1
    added = commit(crawler, parent, children, True)  # now for real: the seen page is refused
    assert [r.url for r in added] == ["http://127.0.0.1:9/a", "http://127.0.0.1:9/b"]
    again.close("shutdown")
    third, crawler = _scheduler(tmp_path)
    assert _urls(third) == {"http://127.0.0.1:9/a", "http://127.0.0.1:9/b"}
    assert not crawler.stats.get_value("anfe/inconsistent/frontier_unknown_parent")
    third.close("finished")
    assert crawler.stats.get_value("anfe/frontier/not_done") == 2  # handed out, never done: not finished


def test_the_per_person_cap_is_kept_in_the_frontier_across_a_restart(tmp_path):
    from scrapy import Request

    from scraper.frontier import CAP_LIMIT, CAP_PERSON, commit

    def photo(i: int, person: str = "p1") -> Request:
        return Request(f"http://127.0.0.1:9/{person}/{i}.jpg", meta={CAP_PERSON: person, CAP_LIMIT: 2})

    scheduler, crawler = _scheduler(tmp_path)
    assert len(commit(crawler, None, [photo(1), photo(2), photo(3), photo(1, "p2")], False)) == 3
    scheduler.close("shutdown")
    again, crawler = _scheduler(tmp_path)
    assert commit(crawler, None, [photo(4)], False) == []
    assert crawler.stats.get_value("anfe/skipped/person-cap") == 1
    again.close("shutdown")


def test_redis_frontier_commits_atomically_and_claims_bounded_batches(tmp_path, redis_url):
    """Redis: children in and parent out of the in-flight hash in one script; a process claims at
    most REDIS_CLAIM_BATCH requests, so a second process finds the rest; the cap holds across both."""
    import asyncio

    async def inside_an_event_loop() -> None:  # the heartbeat and the poll are looping calls
        import redis
        from scrapy import Request

        from scraper.frontier import CAP_LIMIT, CAP_PERSON

        settings = {"REDIS_URL": redis_url, "REDIS_CLAIM_BATCH": 2, "REDIS_WORKER_TTL": 5}
        one, _ = _scheduler(tmp_path, "RedisScheduler", **settings)
        two, _ = _scheduler(tmp_path, "RedisScheduler", **settings)
        client = redis.Redis.from_url(redis_url)
        assert one.enqueue_request(Request("http://127.0.0.1:9/list"))
        parent = one.next_request()
        assert client.hlen(one._inflight) == 1
        children = [Request(f"http://127.0.0.1:9/p/{i}.jpg", meta={CAP_PERSON: "p", CAP_LIMIT: 6}) for i in range(8)]
        added = one.commit(parent, children, True)
        assert len(added) == 6 and client.hlen(one._inflight) == 0 and len(one.queue) == 6
        assert two.commit(None, [Request("http://127.0.0.1:9/p/9.jpg", meta={CAP_PERSON: "p", CAP_LIMIT: 6})], False) == []
        first = one.next_request()
        assert first is not None and len(one._local) == 1 and len(one.queue) == 4  # a batch of 2, not the queue
        assert two.next_request() is not None and len(two.queue) == 2
        one.close("shutdown")
        two.close("shutdown")
        assert len(one.queue) == 6  # what both held went back to the queue

    asyncio.run(inside_an_event_loop())
