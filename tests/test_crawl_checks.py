"""A crawl says what is wrong in one line, under `anfe crawl` and `scrapy crawl` alike (issue 13):
a misspelled `-a` argument is refused before any request (item 2), a crawl in which every request
failed exits non-zero saying how many failed and why (item 3), and an unreachable MongoDB stops
`crawl` and `review` at once with the line `build` and `clean` give (item 4)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from anfe.cli.app import cli
from anfe.cli.common import COMMON_HINTS
from anfe.core.errors import StoreUnreachableError
from anfe.core.store import open_store
from scraper.demosite import DemoServer, generate_site
from scraper.errors import SpiderArgumentError
from scraper.extensions import crawl_failure
from scraper.preflight import check_spider_arguments, known_arguments
from scraper.spiders import SPIDERS, ListalSpider
from testkit.commands import CHECKOUT, closed_port, run

QUIET = ["-s", "PROGRESS_INTERVAL=0", "-s", "LOG_LEVEL=WARNING"]


def last_line(text: str) -> str:
    return text.strip().splitlines()[-1]


# -- item 2: unknown spider arguments ----------------------------------------------------------
def test_known_arguments_come_from_the_spiders_signatures():
    assert known_arguments(SPIDERS["listal"]) == [
        "allowed_domains", "base_url", "gender", "max_images_per_person", "profile", "start_url"]
    assert known_arguments(SPIDERS["filmweb"]) == known_arguments(SPIDERS["listal"])
    assert known_arguments(SPIDERS["urllist"]) == ["crop", "file", "gender", "max_images_per_person", "shard", "site"]
    check_spider_arguments(SPIDERS["urllist"], {"file": "x", "crop": "1", "_job": "scrapyd's"})
    with pytest.raises(SpiderArgumentError, match=r"'profle' \(did you mean 'profile'\?\) for listal; it takes "
                                                  r"-a allowed_domains=, base_url=, .*start_url="):
        check_spider_arguments(SPIDERS["listal"], {"profle": "demo-listal"})
    with pytest.raises(SpiderArgumentError):  # the library refuses it too, not only the commands
        ListalSpider(profile="demo-listal", base_url="http://127.0.0.1:1", profle="demo-listal")


@pytest.fixture(scope="module")
def demo_server(lfw_labels: Path, tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    generate_site(lfw_labels, site, people=2, photos=1, per_page=2, seed=5)
    with DemoServer(site) as server:
        yield server


@pytest.mark.slow
def test_misspelled_argument_is_refused_before_any_request(demo_server, tmp_path):
    base = f"base_url={demo_server.base_url}"
    result = CliRunner().invoke(cli, ["crawl", "listal", "--root", str(tmp_path / "data"), "--fast",
                                      "-a", "profle=demo-listal", "-a", base])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: unknown spider argument 'profle' (did you mean 'profile'?) for listal; it takes -a "
        "allowed_domains=, base_url=, gender=, max_images_per_person=, profile=, start_url="]

    done = run("scrapy", "crawl", "listal", "-a", "profle=demo-listal", "-a", base,
               "-s", f"DATASET_ROOT={tmp_path / 'data'}", *QUIET)
    assert done.returncode == 2
    assert last_line(done.stderr).endswith("error: unknown spider argument 'profle' (did you mean 'profile'?) "
                                           "for listal; it takes -a allowed_domains=, base_url=, gender=, "
                                           "max_images_per_person=, profile=, start_url=")
    assert demo_server.requests == [] and not (tmp_path / "data").exists()


# -- item 3: a crawl in which every request failed -------------------------------------------------
def test_crawl_failure_rules():
    refused = {"finish_reason": "finished", "anfe/page_requests": 4, "anfe/failed_requests/network-error": 1,
               "anfe/failure_example/network-error": "Connection was refused by other side: 111"}
    assert crawl_failure(refused) == (
        "the crawl got nothing: 1 request failed: 1 network-error (Connection was refused by other side: 111); "
        "check the URL, the network and that the site answers")
    mixed = {**refused, "anfe/failed_requests/http-404": 2}
    assert "all 3 requests failed: 2 http-404; 1 network-error (" in crawl_failure(mixed)
    assert crawl_failure({**refused, "anfe/responses_ok": 1}) is None  # something answered
    assert crawl_failure({**refused, "finish_reason": "shutdown"}) is None  # stopped by Ctrl-C
    off = {"finish_reason": "finished", "anfe/dropped/off-domain": 1}
    assert crawl_failure(off) == ("the crawl got nothing: no request was made (off-domain 1); check the start URLs "
                                  "against the allowed domains (-a allowed_domains=...)")
    assert crawl_failure({**off, "dupefilter/filtered": 1}) is None  # a finished --jobdir crawl run again
    assert crawl_failure({"finish_reason": "finished", "anfe/skipped/already-fetched": 9,
                          "anfe/page_requests": 3, "anfe/responses_ok": 3}) is None  # a re-run


@pytest.mark.slow
def test_crawl_where_every_request_failed_exits_non_zero_with_one_line(tmp_path):
    port = closed_port()
    listed = tmp_path / "facescrub_actors.txt"
    listed.write_text("name\timage_id\tface_id\turl\tbbox\tsha256\n"
                      f"A Person\t1\t1\thttp://127.0.0.1:{port}/1.jpg\t\t\n"
                      f"A Person\t2\t2\thttp://127.0.0.1:{port}/2.jpg\t\t\n")
    expected = ("the crawl got nothing: all 2 requests failed: 2 network-error (Connection was refused by other "
                "side: 111: Connection refused.); check the URL, the network and that the site answers")
    done = run("anfe", "crawl", "urllist", "--root", "data", "--fast", "-a", f"file={listed}", *QUIET, cwd=tmp_path)
    assert done.returncode == 1, done.stderr[-2000:]
    assert last_line(done.stderr) == f"Error: {expected}"
    assert "Traceback" not in done.stderr

    done = run("scrapy", "crawl", "urllist", "-a", f"file={listed}", "-s", f"DATASET_ROOT={tmp_path / 'data'}",
               "-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=0", *QUIET)
    assert done.returncode == 1, done.stderr[-2000:]
    assert last_line(done.stderr) == f"Error: {expected}"


# -- item 4: an unreachable MongoDB --------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.timeout(120)
def test_unreachable_mongodb_stops_crawl_and_review_with_the_line_of_build_and_clean(tmp_path, utkface_rows):
    uri = f"mongodb://127.0.0.1:{closed_port()}/anfe"
    with pytest.raises(StoreUnreachableError) as caught:
        open_store(uri)
    # the library says what is wrong; every command adds the same flag that names the store
    assert "--db" not in str(caught.value)
    line = f"Error: {caught.value}: {COMMON_HINTS[StoreUnreachableError]}"
    root = tmp_path / "data"
    (root / "images" / "male").mkdir(parents=True)
    (root / "images" / "male" / "a.jpg").write_bytes(Path(utkface_rows[0]["path"]).read_bytes())

    scrapy = subprocess.Popen(  # meanwhile, the same under `scrapy crawl`
        [sys.executable, "-m", "scrapy", "crawl", "listal", "-a", "profile=demo-listal",
         "-a", f"base_url=http://127.0.0.1:{closed_port()}", "-s", f"STORE_URI={uri}", "-s", f"DATASET_ROOT={root}"],
        cwd=CHECKOUT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(CHECKOUT), os.environ.get("PYTHONPATH", "")])},
    )
    runner = CliRunner()
    for command in (
        ["crawl", "listal", "--root", str(root), "--db", uri, "--fast", "-a", "profile=demo-listal",
         "-a", f"base_url=http://127.0.0.1:{closed_port()}"],
        ["review", str(root), "--db", uri, "--headless"],  # fails before the Streamlit server starts
        ["clean", str(root), "--db", uri, "--quiet", "--workers", "1"],
    ):
        result = runner.invoke(cli, command)
        assert result.exit_code == 1, (command, result.output)
        assert result.output.strip().splitlines() == [line], command
    _out, err = scrapy.communicate(timeout=60)
    assert scrapy.returncode == 2
    assert last_line(err).endswith(f"error: {caught.value}")
    assert "Traceback" not in err


# -- issue 23: the console's progress line ------------------------------------------------------
class _Console:
    """A stderr stand-in: a terminal or not, keeping what was written."""

    def __init__(self, tty: bool) -> None:
        self.tty, self.text = tty, ""

    def isatty(self) -> bool:
        return self.tty

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def test_the_progress_line_is_rewritten_on_a_terminal_and_printed_once_elsewhere(tmp_path):
    from scrapy.utils.test import get_crawler

    from scraper.extensions import HarvestProgress

    for tty in (True, False):
        crawler = get_crawler(ListalSpider, {"CONSOLE_SUMMARY": True, "DATASET_ROOT": str(tmp_path),
                                             "CRAWL_REPORT": str(tmp_path / "report.json")})
        progress = HarvestProgress(crawler)
        progress.stream = _Console(tty)
        crawler.stats.set_value("anfe/page_requests", 12)
        crawler.stats.set_value("anfe/page_retries", 9)
        crawler.stats.set_value("anfe/images/stored", 1)
        for _ in range(3):
            progress.log_progress()
        if tty:
            assert progress.stream.text.count("\r") == 3 and "\n" not in progress.stream.text
            assert progress.stream.text.rsplit("\r", 1)[1].startswith("progress: 3 pages, 1 photo, 0 drops, 0 errors, ")
        else:
            assert progress.stream.text == ""  # no line per update where nobody sees it rewritten
        progress.spider_closed(crawler._create_spider(profile="demo-listal", base_url="http://127.0.0.1:9"),
                               "finished")
        lines = progress.stream.text.rsplit("\r", 1)[-1].splitlines()
        assert lines[0].startswith("progress: 3 pages, 1 photo, ")
        assert lines[1] == "crawl summary (listal, finished): 3 pages, 0 image downloads, 1 images stored " \
                           "(9 retries not counted)"
        assert lines[-1] == "  steps: every required selector matched on every page"
