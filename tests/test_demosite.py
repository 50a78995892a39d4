"""The demo site generator and its loopback server (real photos copied into a temporary folder)."""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from testkit.processes import stop

from scraper.cli import site as site_cli
from scraper.demosite import DISALLOWED, DemoServer, check_loopback, generate_site
from scraper.errors import DemoSiteError


@pytest.fixture(scope="module")
def small_site(lfw_labels: Path, tmp_path_factory):
    labels = lfw_labels
    out = tmp_path_factory.mktemp("site")
    return out, generate_site(labels, out, people=2, photos=2, per_page=2, seed=1, list_people=6, list_first=3,
                              list_chunk=2)


def get(server: DemoServer, path: str) -> tuple[int, dict, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, dict(response.getheaders()), body


def test_manifest_describes_every_spider(small_site, shared_faces):
    out, manifest = small_site
    assert manifest["disallowed_path"] == DISALLOWED
    assert json.loads((out / "manifest.json").read_text()) == manifest
    for name in ("listal", "filmweb", "urllist"):
        expect = manifest["spiders"][name]
        assert expect["images"] == {g: len(h) for g, h in expect["hashes"].items()}
        assert expect["robots_forbidden"] == 1
    listal = manifest["spiders"]["listal"]
    assert listal["images"] == {"female": 2, "male": 2}
    assert listal["dropped"]["no-gender"] == 1 and listal["dropped"]["not-an-image"] == 2
    # the photos on the site are byte-for-byte copies of the shared ones
    served = {hashlib.sha256(p.read_bytes()).hexdigest() for p in (out / "listal" / "images").iterdir()}
    assert set(listal["hashes"]["female"]) <= served
    assert (out / "robots.txt").read_text() == f"User-agent: *\nDisallow: {DISALLOWED}\n"
    assert any((out / DISALLOWED.strip("/")).rglob("*.jpg"))


def test_synthetic_people_from_labels_without_identities(shared_faces, tmp_path):
    labels = shared_faces / "utkface" / "labels.csv"
    if not labels.is_file():
        pytest.skip("UTKFace labels not found")
    manifest = generate_site(labels, tmp_path / "s", people=2, photos=2, list_people=4)
    assert all(n.startswith("Synthetic ") for ns in manifest["spiders"]["filmweb"]["people"].values() for n in ns)
    generate_site(labels, tmp_path / "s", people=2, photos=1, list_people=4)  # an earlier site is replaced
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(DemoSiteError, match="not empty"):
        generate_site(labels, tmp_path / "busy", people=2, photos=1)


def test_server_binds_to_loopback_only(small_site):
    out, _ = small_site
    for host in ("0.0.0.0", "10.1.2.3", "example.org", "::"):
        with pytest.raises(DemoSiteError, match="loopback"):
            DemoServer(out, host=host)
    assert check_loopback("localhost") == "127.0.0.1"
    with pytest.raises(DemoSiteError, match="no generated demo site"):
        DemoServer(out / "listal")


def test_server_routes(small_site):
    out, manifest = small_site
    routes = json.loads((out / "routes.json").read_text())
    with DemoServer(out) as server:
        assert server.base_url.startswith("http://127.0.0.1:") and server.port > 0
        status, headers, body = get(server, "/robots.txt")
        assert status == 200 and b"Disallow: /private/" in body
        status, headers, body = get(server, "/listal/list/actresses")
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        # pages written with //__HOST__ URLs get the real address
        views = [p for p in (out / "listal" / "viewimage").rglob("index.html") if b"__HOST__" in p.read_bytes()]
        path = "/" + views[0].parent.relative_to(out).as_posix()
        assert f"127.0.0.1:{server.port}".encode() in get(server, path)[2]
        assert get(server, "/listal/no-such-person")[0] == 404
        for bad in ("/../manifest.json", "/manifest.json", "/routes.json", "/listal/../../etc/passwd"):
            assert get(server, bad)[0] == 404, bad
        moved, (code, target) = next(iter(routes["redirects"].items()))
        status, headers, _ = get(server, moved)
        assert status == code and headers["Location"] == target
        status, headers, body = get(server, routes["html_images"][0])
        assert status == 200 and headers["Content-Type"].startswith("text/html") and b"<html>" in body
        person = next((out / "listal").glob("*/pictures/2"))
        slug = person.parent.parent.name
        assert get(server, f"/listal/{slug}/pictures//2")[0] == 200  # listal's double slash
        assert "/listal/no-such-person" in server.requests


def test_site_cli(shared_faces, tmp_path):
    labels = shared_faces / "lfw" / "labels.csv"
    if not labels.is_file():
        pytest.skip("LFW labels not found")
    result = CliRunner().invoke(site_cli, ["generate", "--from", str(labels), "--out", str(tmp_path / "s"),
                                           "--people", "2", "--photos", "1"])
    assert result.exit_code == 0, result.output
    assert "listal: expect female 1, male 1" in result.output
    result = CliRunner().invoke(site_cli, ["serve", str(tmp_path / "s"), "--host", "0.0.0.0"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("Error: the demo site binds to the loopback address only")
    for command in (["--help"], ["generate", "--help"], ["serve", "--help"]):
        assert CliRunner().invoke(site_cli, command).exit_code == 0


def test_pages_come_from_templates_and_the_index_names_the_url_lists(small_site):
    out, _ = small_site
    index = (out / "index.html").read_text()
    assert '<a href="/lists/facescrub_actors.txt">' in index
    person = next(p for p in (out / "listal").iterdir() if (p / "pictures").is_dir())
    page = (person / "index.html").read_text()
    assert page.startswith("<!DOCTYPE html>") or "Unclosed <i>tags" in page  # one person page is malformed on purpose
    assert not list(out.glob("facescrub_*.txt")), "the top folder gets the working lists only from `site serve`"
    assert "__HOST__" in (out / "lists" / "facescrub_actors.txt").read_text()


@pytest.mark.slow
def test_generate_up_to_the_maximum_people(shared_faces, tmp_path):
    """Issue 13 item 6: --people 200 (the option's maximum) works from a source with enough photos."""
    labels = shared_faces / "utkface" / "labels.csv"
    if not labels.is_file():
        pytest.skip("UTKFace labels not found")
    result = CliRunner().invoke(site_cli, ["generate", "--from", str(labels), "--out", str(tmp_path / "s"),
                                           "--people", "200", "--photos", "1", "--per-page", "100"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    for style in ("listal", "filmweb"):
        people = manifest["spiders"][style]["people"]
        assert (len(people["female"]), len(people["male"])) == (100, 100)
    result = CliRunner().invoke(site_cli, ["generate", "--from", str(labels), "--out", str(tmp_path / "s"),
                                           "--people", "201"])
    assert result.exit_code == 2 and "2<=x<=200" in result.output


def test_a_failed_generation_leaves_nothing_and_the_retry_works(lfw_labels, tmp_path):
    """Issue 13 item 6: the site is built beside OUT and renamed at the end."""
    out = tmp_path / "site"
    result = CliRunner().invoke(site_cli, ["generate", "--from", str(lfw_labels), "--out", str(out),
                                           "--people", "200", "--photos", "3"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines()[-1].startswith("Error: the source has too few usable female people")
    assert sorted(p.name for p in tmp_path.iterdir()) == [], "a failed run left files behind"
    # a run killed with -9 leaves its partial folder: the next run removes it (its process is gone)
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".site.partial-{done.stdout.strip()}-abc123"
    (stale / "listal").mkdir(parents=True)
    result = CliRunner().invoke(site_cli, ["generate", "--from", str(lfw_labels), "--out", str(out),
                                           "--people", "2", "--photos", "1"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]
    assert (out / "manifest.json").is_file()


def test_site_serve_prints_the_readme_commands_and_working_lists(small_site, tmp_path):
    """Issue 13 item 5: the lists a user finds first work, and the commands say --root ./data."""
    out, manifest = small_site
    process = subprocess.Popen([sys.executable, "-m", "anfe", "site", "serve", str(out)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    try:
        while not lines or "anfe crawl urllist" not in lines[-1]:
            lines.append(process.stdout.readline())
            assert lines[-1], "".join(lines)
    finally:
        stop(process)
    text = "".join(lines)
    base = re.search(r"at (http://127\.0\.0\.1:\d+)", text).group(1)
    assert f"anfe crawl listal --root ./data --fast -a profile=demo-listal -a base_url={base}" in text
    assert f"anfe crawl urllist --root ./data --fast -a file={out / 'facescrub_actors.txt'}" in text
    listed = (out / "facescrub_actors.txt").read_text()
    assert "__HOST__" not in listed and f"{base}/facescrub/images/" in listed
    # the template in lists/ is refused with a one-line error naming the right file
    done = subprocess.run([sys.executable, "-m", "anfe", "crawl", "urllist", "--root", str(tmp_path / "d"),
                           "-a", f"file={out / 'lists' / 'facescrub_actors.txt'}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert "use the copy that `anfe site serve` writes" in done.stderr.strip().splitlines()[-1]
