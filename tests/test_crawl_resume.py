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

from anfe.layout import DatasetLayout
from anfe.store import open_store
from scraper.demosite import DemoServer, generate_site

ROOT = Path(__file__).resolve().parent.parent
#: Slow enough to be killed mid-crawl: 2 requests at once, 50 ms apart.
PACE = ["-s", "DOWNLOAD_DELAY=0.05", "-s", "RANDOMIZE_DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=0",
        "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=2", "-s", "PROGRESS_INTERVAL=0", "-s", "BACKOFF_DELAY=0"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(lfw_labels: Path, tmp_path_factory):
    """A demo site of 20 people per gender, 3 photos each, served on a free loopback port."""
    site = tmp_path_factory.mktemp("resume-site")
    manifest = generate_site(lfw_labels, site, people=20, photos=3, per_page=2, seed=0)
    with DemoServer(site) as server:
        yield manifest["spiders"]["listal"], server


def crawl_command(root: Path, server: DemoServer, *extra: str) -> list[str]:
    return [sys.executable, "-m", "anfe", "crawl", "listal", "--root", str(root), "-a", "profile=demo-listal",
            "-a", f"base_url={server.base_url}", *PACE, *extra]


def start(command: list[str], log: Path) -> subprocess.Popen:
    """The crawl in a process group of its own (what kill -9 of "the crawl" hits)."""
    return subprocess.Popen(command, cwd=log.parent, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)})


def stored(root: Path) -> int:
    folder = root / "images"
    return sum(1 for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else 0


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


def check_complete(root: Path, expect: dict) -> None:
    """Every photo of the manifest, once, on disk and in the store; nothing else."""
    assert files_by_gender(root) == {g: set(h) for g, h in expect["hashes"].items()}
    with open_store(None, root) as store:
        assert {r["content_hash"] for r in store.find_images()} == {h for hs in expect["hashes"].values() for h in hs}


def last_summary(root: Path) -> dict:
    reports = sorted((root / "crawl_reports").glob("listal-*.json"))
    return json.loads(reports[-1].read_text())["summary"]


@pytest.mark.parametrize("mode", ["jobdir", "neither"])
def test_kill_9_then_the_same_command_ends_with_every_photo(demo, tmp_path, mode):
    expect, server = demo
    root = tmp_path / "data"
    extra = ["--jobdir", str(tmp_path / "job")] if mode == "jobdir" else []
    command = crawl_command(root, server, *extra)
    total = sum(expect["images"].values())
    killed_at = kill_when(start(command, tmp_path / "first.log"), root, images=total * 3 // 4)
    assert killed_at < total
    log = finish(command, tmp_path)
    assert "crawl summary (listal, finished)" in log
    if mode == "jobdir":
        assert "resuming the crawl" in log
    check_complete(root, expect)
    summary = last_summary(root)
    assert summary["finish_reason"] == "finished"
    # nothing the killed run stored was downloaded again
    assert summary["images_stored"] == total - killed_at


def test_a_killed_jobdir_crawl_resumes_from_its_frontier_not_from_scratch(demo, tmp_path):
    """Requests that were queued or in flight at the kill are fetched; pages already done are not."""
    expect, server = demo
    root = tmp_path / "data"
    command = crawl_command(root, server, "--jobdir", str(tmp_path / "job"))
    total = sum(expect["images"].values())
    before = len(server.requests)
    kill_when(start(command, tmp_path / "first.log"), root, images=total // 2)
    first = set(server.requests[before:])
    middle = len(server.requests)
    finish(command, tmp_path)
    second = [p for p in server.requests[middle:] if p != "/robots.txt"]
    check_complete(root, expect)
    # only what was in flight at the kill (2 requests at once) is fetched twice; the lists are not
    again = [p for p in second if p in first]
    assert len(again) <= 4, again
    assert "/listal/list/actresses" in first and "/listal/list/actresses" not in second


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
