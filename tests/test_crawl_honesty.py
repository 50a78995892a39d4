"""A crawl is quiet, bounded and honest (issue 23, items 2-4 and 6; issue 26, item 5): real crawls of
the demo site in processes of their own (Scrapy's reactor runs once per process).

- a default `anfe crawl` prints a progress line and the summary (at most 15 lines), Scrapy's log
  goes to a file whose path is printed; `-v` shows Scrapy's log;
- the board's embedded-JSON selectors and `stop.finished` read it exactly, with no extra request;
- a JSONPath that matches nothing, and a callback that raises, are named in the summary with their
  URLs, and the crawl exits 3;
- the traps end by themselves (nothing new) or at the page budget and the depth limit, each named;
- against an unreachable site, the summary and the failure line count the same requests.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scraper.demosite import DemoServer, generate_site
from scraper.demosite.endless import DEEP, ENDLESS
from testkit.commands import CHECKOUT, closed_port, run

pytestmark = pytest.mark.slow

#: Injects a failure (the only mock here): every view page's callback raises.
RAISING_VIEWS = ("import sys; from scraper.spiders.profiled import ProfiledSpider\n"
                 "def parse_view(self, response):\n"
                 "    raise RuntimeError('injected failure')\n"
                 "    yield\n"
                 "ProfiledSpider.parse_view = parse_view\n"
                 "from anfe.cli.app import main; sys.argv = ['anfe', *sys.argv[1:]]; main()")


@pytest.fixture(scope="module")
def site(lfw_labels: Path, tmp_path_factory):
    """A small demo site (2 people per style, 1 photo; a load-more list of 4) and its server."""
    folder = tmp_path_factory.mktemp("site")
    manifest = generate_site(lfw_labels, folder, people=2, photos=1, per_page=2, seed=3, list_people=4,
                             list_first=2, list_chunk=2)
    with DemoServer(folder) as server:
        yield manifest, server


def crawl(server: DemoServer, root: Path, spider: str, *args: str) -> tuple[int, list[str]]:
    """`anfe crawl` into ``root``: (exit code, every line it printed: stderr, then stdout's result line)."""
    done = run("anfe", "crawl", spider, "--root", str(root), "--fast", "-a", f"base_url={server.base_url}", *args,
               cwd=root.parent)
    return done.returncode, done.stderr.splitlines() + done.stdout.splitlines()


def profile_file(folder: Path, name: str, document: dict) -> str:
    path = folder / f"{name}.json"
    path.write_text(json.dumps({"name": name, **document}))
    return f"profile={path}"


def requests_to(server: DemoServer, prefix: str, since: int) -> list:
    return [e for e in server.events[since:] if e.path.startswith(prefix)]


def test_a_default_crawl_prints_a_progress_line_and_the_summary(site, tmp_path):
    manifest, server = site
    code, lines = crawl(server, tmp_path / "data", "listal", "-a", "profile=demo-listal")
    assert code == 0, lines
    assert len(lines) <= 15, lines
    log = Path(lines[0].removeprefix("Scrapy's log: "))
    assert lines[0].startswith("Scrapy's log: ") and log.parent == tmp_path / "data" / "crawl_reports"
    assert "Scrapy" in log.read_text() and "Spider closed (finished)" in log.read_text()
    assert log.with_suffix(".json").is_file()
    assert lines[1].startswith("progress: ") and " pages/s" in lines[1]
    assert lines[2].startswith("crawl summary (listal, finished): ")
    assert "  page errors: http-404: 2" in lines  # the site's own 404s: shown, not an exit code
    assert lines[-2] == "  steps: every required selector matched on every page"
    images = sum(manifest["spiders"]["listal"]["images"].values())
    assert lines[-1] == f"listal: {images} new images in {tmp_path / 'data' / 'images'} (see the summary above)"


def test_the_board_is_read_from_embedded_json_and_stops_when_the_answer_says_finished(site, tmp_path):
    manifest, server = site
    expect = manifest["spiders"]["board"]
    before = len(server.events)
    code, lines = crawl(server, tmp_path / "data", "listal", "-a", "profile=demo-board")
    assert code == 0, lines
    summary = json.loads(next((tmp_path / "data" / "crawl_reports").glob("*.json")).read_text())["summary"]
    assert summary["images_by_gender"] == expect["images"]
    assert summary["people_by_gender"] == {g: len(n) for g, n in expect["people"].items()}
    assert summary["dropped"] == expect["dropped"] == {"no-gender": 1}
    posts = requests_to(server, "/board/item-list/", before)
    assert [int(e.form["offset"]) for e in posts] == expect["load_more"]["/board/list/everyone"]["offsets"]

    # without stop.finished, one more request: the endpoint repeats its last card past the end
    without = profile_file(tmp_path, "board-unfinished", {"extends": "demo-board",
                                                          "list": {"more": {"stop": {"finished": []}}}})
    before = len(server.events)
    code, lines = crawl(server, tmp_path / "again", "listal", "-a", without)
    assert code == 0, lines
    assert len(requests_to(server, "/board/item-list/", before)) == len(posts) + 1


def test_a_fragment_path_that_matches_nothing_is_named_and_exits_3(site, tmp_path):
    manifest, server = site
    typo = profile_file(tmp_path, "more-typo", {"extends": "demo-listal-more",
                                                "list": {"more": {"fragment": ["$.fragmnt"]}}})
    code, lines = crawl(server, tmp_path / "data", "listal", "-a", typo)
    assert code == 3, lines
    list_url = f"{server.base_url}/listal/list/popular-people"
    assert f"  list {list_url}: 5 announced, 2 followed" in lines  # only the HTML's first people
    assert f"    list.more.fragment matched nothing on 2 of 4 pages; first: {server.base_url}/listal/item-list/" in lines
    assert ("Warning: the crawl finished with 2 pages where a required selector matched nothing "
            "(see the summary); exit 3") in lines


def test_a_callback_that_raises_is_a_page_error_with_its_url(site, tmp_path):
    manifest, server = site
    root = tmp_path / "data"
    script = tmp_path / "raising_views.py"  # a file: Scrapy reads a callback's source
    script.write_text(RAISING_VIEWS)
    done = subprocess.run([sys.executable, str(script), "crawl", "listal", "--root", str(root), "--fast",
                           "-a", "profile=demo-listal", "-a", f"base_url={server.base_url}"],
                          cwd=CHECKOUT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr[-3000:]
    lines = done.stderr.strip().splitlines()
    errors = next(line for line in lines if line.startswith("  page errors: "))
    assert errors.startswith("  page errors: exception: ")
    assert f"(first: {server.base_url}/listal/viewimage/" in errors and "(RuntimeError: injected failure))" in errors
    assert "page errors: none" not in done.stderr and "Traceback" not in done.stderr
    raised = [line for line in lines if line.startswith("    view raised on ")]
    assert len(raised) == 1 and raised[0].startswith("    view raised on ")
    log = next((root / "crawl_reports").glob("*.log")).read_text()
    assert "Traceback" not in log and "page error on " in log


def test_endless_next_pages_end_by_themselves_with_a_warning(site, tmp_path):
    """Under `scrapy crawl`, with Scrapy's own output and the same exit code."""
    manifest, server = site
    before = len(server.events)
    done = run("scrapy", "crawl", "listal", "-a", "profile=demo-trap", "-a", f"base_url={server.base_url}",
               "-s", f"DATASET_ROOT={tmp_path / 'data'}", "-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=0")
    assert done.returncode == 3, done.stderr[-3000:]
    assert "[scrapy.core.engine] INFO: Spider opened" in done.stderr  # Scrapy's usual output
    list_url = f"{server.base_url}{ENDLESS}"
    assert (f"  stopped: {list_url}: its next pages brought nothing new for 5 pages in a row") in done.stderr
    assert f"WARNING: {list_url}: its next pages brought nothing new for 5 pages in a row" in done.stderr
    assert len(requests_to(server, "/trap/endless/", before)) == 6
    assert done.stderr.strip().splitlines()[-1].startswith("Warning: the crawl finished with ")


def test_a_deep_trap_ends_at_the_page_budget_or_the_depth_limit(site, tmp_path):
    manifest, server = site
    deep = f"start_url={server.base_url}{DEEP}"
    before = len(server.events)
    code, lines = crawl(server, tmp_path / "data", "listal", "-a", "profile=demo-trap", "-a", deep,
                        "--max-pages", "30")
    assert code == 3, lines
    assert "  stopped by the page budget: 30 pages (raise it with --max-pages)" in lines
    assert len([e for e in server.events[before:] if e.path != "/robots.txt"]) == 30

    shallow = profile_file(tmp_path, "trap-shallow", {"extends": "demo-trap", "limits": {"max_depth": 6}})
    code, lines = crawl(server, tmp_path / "again", "listal", "-a", shallow, "-a", deep, "-v")
    assert code == 3
    assert any(line.endswith("INFO: Spider opened") for line in lines)  # -v: Scrapy's log, as before
    summary = next(i for i, line in enumerate(lines) if "crawl summary (listal, finished)" in line)
    assert any(line.startswith("  stopped by the depth limit of 6: ") for line in lines[summary:])


def test_an_unreachable_site_counts_the_same_requests_in_the_summary_and_the_error(tmp_path):
    code, lines = crawl_unreachable(tmp_path)
    assert code == 1
    head = next(line for line in lines if line.startswith("crawl summary"))
    assert head.startswith("crawl summary (listal, finished): 3 pages, 0 image downloads, 0 images stored "
                           "(9 retries not counted)"), head
    assert lines[-1].startswith("Error: the crawl got nothing: all 3 requests failed: 3 network-error")


def crawl_unreachable(tmp_path: Path) -> tuple[int, list[str]]:
    done = run("anfe", "crawl", "listal", "--root", str(tmp_path / "data"), "--fast", "-a", "profile=demo-listal",
               "-a", f"base_url=http://127.0.0.1:{closed_port()}", cwd=tmp_path)
    return done.returncode, done.stdout.splitlines() + done.stderr.splitlines()
