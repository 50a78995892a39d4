"""`anfe profile check` (issue 23, item 5): every shipped demo profile, walked step by step over the
served demo site (list -> person -> gallery -> view), shows what each selector extracts; a required
selector that matches nothing is a warning and exit 3; saved pages are read with --file."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from anfe.cli.app import cli
from scraper.demosite import DemoServer, generate_site
from scraper.profiles import load_profile, shipped_profiles

pytestmark = pytest.mark.slow

#: Steps whose page the check reads as served, not as the crawl gets it (so they warn), per profile.
WARNS = {"demo-render": "gallery", "demo-trap": "gallery"}


@pytest.fixture(scope="module")
def server(lfw_labels: Path, tmp_path_factory):
    folder = tmp_path_factory.mktemp("site")
    generate_site(lfw_labels, folder, people=4, photos=1, per_page=2, seed=1, list_people=4, list_first=2,
                  list_chunk=2)
    with DemoServer(folder) as served:
        yield served


def check(profile: str, url: str, kind: str, *more: str) -> tuple[int, list[str], list[str]]:
    """(exit code, what it printed on stdout, the warnings on stderr)."""
    result = CliRunner().invoke(cli, ["profile", "check", profile, "--url", url, "--kind", kind, *more])
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning: ")]
    return result.exit_code, result.stdout.splitlines(), warnings


def values(lines: list[str], key: str) -> list[str]:
    """The values printed under ``  key: N values``."""
    start = next((i for i, line in enumerate(lines) if line.startswith(f"  {key}: ")), None)
    if start is None:
        return []
    found = []
    for line in lines[start + 1:]:
        if not line.startswith("    ") or line.startswith("    ... and "):
            break
        found.append(line.strip())
    return found


@pytest.mark.parametrize("name", [p for p in shipped_profiles() if p.startswith("demo-")])
def test_check_walks_each_demo_profile_step_by_step(server, name):
    profile = load_profile(name)
    steps = []
    code, lines, warnings = check(name, profile.resolve_start_urls(server.base_url)[0], "list")
    assert code == 0 and not warnings, (lines, warnings)
    assert lines[0].startswith(f"profile {name}, list step")
    links = values(lines, "list.person_links")
    ids = values(lines, "list.person_ids")
    assert links or ids
    people = links[:1] or [profile.person_url_template.format(person_id=i, person_url="", origin=server.base_url)
                           for i in ids]
    for person in people * 2:  # the API's traps: an id whose info is a 404, a path answered 429 every other time
        code, lines, warnings = check(name, person, "person")
        if code != 1:
            break
    assert code == 0 and not warnings, (lines, warnings)
    assert values(lines, "person.name")
    steps.append("person")
    gallery = (values(lines, "gallery.links") or
               [line.split(": ", 1)[1] for line in lines if line.startswith("  gallery.url_template: ")])
    if gallery:
        code, lines, warnings = check(name, gallery[0], "gallery")
        if WARNS.get(name) == "gallery":  # rendered by JavaScript, or a trap's person without photos
            assert code == 3 and warnings == [f"Warning: gallery.entries matched nothing on {gallery[0]}"]
        else:
            assert code == 0 and not warnings, (lines, warnings)
            entries = values(lines, "gallery.entries")
            assert entries
            if profile.gallery_entry_kind == "view":
                code, lines, warnings = check(name, entries[0], "view")
                assert code == 0 and values(lines, "view.image"), lines
                steps.append("view")
        steps.append("gallery")
    assert steps, name


def test_check_shows_the_load_more_request_and_warns_on_a_wrong_kind(server):
    code, lines, _ = check("demo-board", f"{server.base_url}/board/list/everyone", "list")
    assert code == 0
    assert f"  list.more: POST {server.base_url}/board/item-list/ form listid=77&offset=2" in lines
    assert "  list.announced: 5 ('5')" in lines
    code, lines, warnings = check("demo-listal", f"{server.base_url}/listal/list/actresses", "view")
    assert code == 3
    assert warnings == [f"Warning: view.image matched nothing on {server.base_url}/listal/list/actresses"]
    assert "  view.image: 0 values (required: nothing matched)" in lines


def test_check_reads_saved_pages_and_says_what_is_wrong_in_one_line(server, tmp_path):
    import urllib.request

    url = f"{server.base_url}/filmweb/api/v1/ranking/person/actors/male"
    saved = tmp_path / "ranking.json"
    saved.write_bytes(urllib.request.urlopen(url).read())
    result = CliRunner().invoke(cli, ["profile", "check", "demo-filmweb-api", "--file", str(saved), "--url", url])
    assert result.exit_code == 0, result.output
    assert values(result.stdout.splitlines(), "list.person_ids")
    result = CliRunner().invoke(cli, ["profile", "check", "demo-filmweb-api", "--file", str(saved), "--kind", "person"])
    assert result.exit_code == 3 and "person.name matched nothing" in result.stderr
    html = tmp_path / "page.html"
    html.write_text("<html><body>no JSON</body></html>")
    result = CliRunner().invoke(cli, ["profile", "check", "demo-filmweb-api", "--file", str(html)])
    assert result.exit_code == 3
    assert result.stderr.strip() == "Warning: list is a JSON step but the page is not JSON"
    for args, line in (
        (["--url", f"{server.base_url}/nope"], f"Error: {server.base_url}/nope answered HTTP 404: check the URL"),
        (["--url", "file:///etc/passwd"], "Error: --url must be an http(s) URL, not 'file:///etc/passwd'"),
        ([], "Error: give --url URL (fetched) or --file PAGE (a saved page)"),
    ):
        result = CliRunner().invoke(cli, ["profile", "check", "demo-listal", *args])
        assert result.exit_code in (1, 2) and result.output.strip().splitlines()[-1] == line, result.output
