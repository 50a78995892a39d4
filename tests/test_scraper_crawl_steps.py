"""End-to-end, by profiles alone: the demo site's load-more list (POST /listal/item-list/, 211 people,
50 in the HTML), its filmweb-style JSON API (with a 429 + Retry-After route, crawled with the
back-off on) and its JavaScript gallery (rendered in Debian's Chromium), each crawled to its manifest."""

from __future__ import annotations

from pathlib import Path

import pytest

from scraper.demosite import DemoServer, generate_site
from testkit.crawls import check_against_manifest, run_scrapy

CHROMIUM = Path("/usr/bin/chromium")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def site(lfw_labels: Path, tmp_path_factory):
    """The demo site at its default load-more size, and its running server."""
    folder = tmp_path_factory.mktemp("steps-site")
    manifest = generate_site(lfw_labels, folder, people=6, photos=3, per_page=2, seed=3)
    with DemoServer(folder) as server:
        yield manifest, server


def absolute(server: DemoServer, lists: dict) -> dict:
    return {server.base_url + url: counts for url, counts in lists.items()}


def crawl(part: str, manifest: dict, server: DemoServer, tmp_path: Path, *settings: str) -> dict:
    expect = manifest["spiders"][part]
    return run_scrapy(expect["spider"], tmp_path / "data", "-a", f"profile={expect['args']['profile']}",
                      "-a", f"base_url={server.base_url}", *settings, report=tmp_path / "report.json")


def test_load_more_list_is_crawled_whole_and_the_short_list_is_reported(site, tmp_path):
    manifest, server = site
    expect = manifest["spiders"]["listal-more"]
    (url, plan), = expect["load_more"].items()
    assert plan["first"] == 50 and expect["lists"][url]["announced"] >= 200
    before = len(server.events)
    report = crawl("listal-more", manifest, server, tmp_path, "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=16")
    summary = report["summary"]
    check_against_manifest(tmp_path / "data", expect, summary)
    assert summary["lists"] == absolute(server, expect["lists"])
    assert summary["short_lists"] == [server.base_url + u for u in expect["short_lists"]]
    # the big list's answers were asked for at exactly the right offsets: none past the end (the trap)
    offsets = [int(e.form["offset"]) for e in server.events[before:]
               if e.method == "POST" and e.path == plan["endpoint"] and e.form["listid"] == plan["listid"]]
    assert offsets == plan["offsets"]


def test_json_api_is_crawled_to_the_manifest_and_a_429_is_waited_out(site, tmp_path):
    """The throttled route answers 429 with Retry-After: 1, then 200: the back-off and the retry, for real."""
    manifest, server = site
    expect = manifest["spiders"]["filmweb-api"]
    before = len(server.events)
    report = crawl("filmweb-api", manifest, server, tmp_path, "-s", "BACKOFF_DELAY=60", "-s", "AUTOTHROTTLE_ENABLED=1",
                   "-s", "AUTOTHROTTLE_START_DELAY=0", "-s", "AUTOTHROTTLE_TARGET_CONCURRENCY=8")
    summary = report["summary"]
    check_against_manifest(tmp_path / "data", expect, summary)
    assert summary["lists"] == absolute(server, expect["lists"]) and summary["short_lists"] == []
    (throttled,) = expect["throttled"]
    answers = [e for e in server.events[before:] if e.path == throttled]
    assert [e.status for e in answers] == [429, 200]
    assert answers[1].time - answers[0].time >= 0.45  # Retry-After: 1 s, randomised by Scrapy between 0.5x and 1.5x
    assert report["stats"]["anfe/backoff"] == 1
    assert report["stats"]["retry/count"] == 1 and report["stats"]["downloader/response_status_count/429"] == 1


@pytest.mark.browser
def test_javascript_gallery_is_rendered_and_only_that_step(site, tmp_path):
    if not CHROMIUM.is_file():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    manifest, server = site
    expect = manifest["spiders"]["render"]
    before = len(server.events)
    report = crawl("render", manifest, server, tmp_path, "-s", f"CHROMIUM_PATH={CHROMIUM}")
    summary = report["summary"]
    check_against_manifest(tmp_path / "data", expect, summary)
    assert summary["rendered_pages"] == expect["rendered_pages"] == 2
    fetched = [e.path for e in server.events[before:]]
    assert fetched.count(expect["scripts"]["gallery"]) == 2  # each gallery ran its script in the browser
    assert expect["scripts"]["person"] not in fetched  # the person pages were not rendered
    assert not [p for p in fetched if p.startswith("/render/images/") and fetched.count(p) > 1]  # the browser loads no photos
    assert report["stats"].get("playwright/page_count", 0) >= 2
