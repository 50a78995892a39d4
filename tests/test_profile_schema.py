"""Profiles are checked against one JSON Schema when they load (issue 23, item 1): every mistake of
the issue's table is one line naming the key before any request; the schema is exported and the
docs' table of keys is generated from it; the embedded-JSON selectors read what pages carry."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from parsel import Selector

from anfe.cli.app import cli
from scraper.errors import ProfileError
from scraper.profile_schema import SCHEMA, check_selector, key_table, validate_document
from scraper.profiles import load_document, load_profile, profile_from_dict, shipped_profiles
from scraper.select import embedded_json, select_all, select_first
from testkit.commands import closed_port, run

ROOT = Path(__file__).resolve().parent.parent


def _mutated(change) -> dict:
    data, _ = load_document("demo-listal")
    data = copy.deepcopy(data)
    change(data)
    return data


#: The issue's table: a mistake, and the start of the one line that refuses it.
MISTAKES = [
    (lambda d: d.__setitem__("gallary", {}),
     "gallary: unknown key (did you mean 'gallery'?)"),
    (lambda d: d["list"].__setitem__("person_link", ["a::attr(href)"]),
     "list.person_link: unknown key (did you mean 'person_links'?)"),
    (lambda d: d["list"].__setitem__("person_links", ["div..imagelistbox a::attr(href)"]),
     "list.person_links: bad selector 'div..imagelistbox a::attr(href)': SelectorSyntaxError"),
    (lambda d: d["person"].__setitem__("name", ["h1::text("]),
     "person.name: bad selector 'h1::text(': SelectorSyntaxError"),
    (lambda d: d["list"].__setitem__("next", ["xpath://div[@class='pages'"]),
     "list.next: bad selector \"xpath://div[@class='pages'\": XPathSyntaxError"),
    (lambda d: d["list"].__setitem__("more", {"url": "/x", "fragment": ["$.[frag"]}),
     "list.more.fragment: bad JSONPath '$.[frag'"),
    (lambda d: d["list"].__setitem__("more", {"url": "/x", "stop": {"finshed": "$.done"}}),
     "list.more.stop.finshed: unknown key (did you mean 'finished'?)"),
    (lambda d: d["list"].__setitem__("announced", ["regex:(\\d+ items"]),
     "list.announced: bad selector 'regex:(\\\\d+ items': error: missing ), unterminated subpattern"),
    (lambda d: d["person"].__setitem__("gender_fields", ["embedded(script[type=):$.sex"]),
     "person.gender_fields: bad selector 'embedded(script[type=):$.sex'"),
    (lambda d: d["gallery"].__setitem__("url_template", "{person_uri}/pictures"),
     "gallery.url_template: unknown placeholder {person_uri} (did you mean 'person_url'?)"),
    (lambda d: d["view"].__setitem__("image", 7),
     "view.image must be a string or a list of strings, not 7"),
    (lambda d: d["list"].__setitem__("next", ["$.next"]),
     "list.next: bad selector '$.next': SelectorSyntaxError: Expected selector, got <DELIM '$' at 0>; a JSONPath "
     "in an HTML step: set the step's \"format\": \"json\", or write embedded:$.next"),
    (lambda d: d.__setitem__("limits", {"max_pages": 0}),
     "limits.max_pages: 0 is less than the minimum of 1"),
    (lambda d: d["list"]["genders"][0].__setitem__("gendr", "female"),
     "list.genders[0].gendr: unknown key (did you mean 'gender'?)"),
]


@pytest.mark.parametrize("change, message", MISTAKES)
def test_each_mistake_is_one_line_naming_the_key(change, message):
    with pytest.raises(ProfileError) as caught:
        profile_from_dict(_mutated(change), "mine.json")
    line = str(caught.value)
    assert line.startswith(f"profile mine.json: {message}"), line
    assert "\n" not in line


@pytest.mark.slow
def test_the_commands_refuse_a_broken_profile_before_any_request(tmp_path):
    """`anfe crawl` (exit 1) and `scrapy crawl` (exit 2) alike: one line, no request, nothing written."""
    broken = tmp_path / "mine.json"
    broken.write_text(json.dumps(_mutated(lambda d: d["person"].__setitem__("name", ["h1::text("]))))
    base = f"base_url=http://127.0.0.1:{closed_port()}"
    result = CliRunner().invoke(cli, ["crawl", "listal", "--root", str(tmp_path / "data"), "--fast",
                                      "-a", f"profile={broken}", "-a", base])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"Error: profile {broken}: person.name: bad selector 'h1::text(': SelectorSyntaxError: "
        "Expected an argument, got <EOF at 9>"]
    assert not (tmp_path / "data").exists()
    done = run("scrapy", "crawl", "listal", "-a", f"profile={broken}", "-a", base,
               "-s", f"DATASET_ROOT={tmp_path / 'data'}", "-s", "LOG_LEVEL=WARNING")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith(f"error: profile {broken}: person.name: bad selector "
                                                         "'h1::text(': SelectorSyntaxError: Expected an argument, "
                                                         "got <EOF at 9>")
    assert "Traceback" not in done.stderr and not (tmp_path / "data").exists()


def test_every_shipped_profile_meets_the_exported_schema():
    result = CliRunner().invoke(cli, ["profile", "schema"])
    assert result.exit_code == 0
    exported = json.loads(result.output)
    assert exported == json.loads(json.dumps(SCHEMA))
    validator = jsonschema.Draft202012Validator(exported)
    for name in shipped_profiles():
        data, _ = load_document(name)
        assert not list(validator.iter_errors(data)), name
        load_profile(name)
    assert {"demo-board", "demo-trap"} <= set(shipped_profiles())


def test_the_docs_table_of_keys_is_generated_from_the_schema():
    doc = (ROOT / "docs" / "crawl.md").read_text(encoding="utf-8")
    table = re.search(r"<!-- profile-keys:start -->\n(.*?)<!-- profile-keys:end -->", doc, re.DOTALL)
    assert table, "docs/crawl.md lacks the generated table"
    assert table.group(1) == key_table(), "docs/crawl.md is stale: paste `anfe profile schema --markdown` in"
    for section in ("## Profiles", "## Exit codes", "## Debugging a profile"):
        assert section in doc
    keys = set(re.findall(r"^\| `([^`]+)` \|", table.group(1), re.MULTILINE))
    assert {"list.more.stop.finished", "person.gender_fields", "limits.max_pages", "gallery.entries"} <= keys
    result = CliRunner().invoke(cli, ["profile", "schema", "--markdown"])
    assert result.output == key_table()


def test_other_values_are_refused_too():
    with pytest.raises(ProfileError, match=r"^profile x lacks name, style$"):
        validate_document({"start_urls": []}, "x")
    with pytest.raises(ProfileError, match=r"must hold a JSON object"):
        validate_document([], "x")
    validate_document({"name": "x", "style": "listal", "start_urls": "http://h/", "$schema": "./s.json"})
    check_selector("$..name", "json", "list.person_ids")
    check_selector("embedded(window.__NEXT_DATA__):$.props", "html", "list.person_ids")
    with pytest.raises(ProfileError, match="write embedded:"):
        check_selector("embedded$.x", "html", "person.name")


PAGE = """<html><head>
<script type="application/ld+json">{"@type": "Person", "name": "Ann Example"}</script>
<script type="application/ld+json">{not json at all</script>
<script>var config = {"board": {"id": 77, "total": 12}}; window.__DATA__ = {"people": [{"url": "/p/1"}, {"url": "/p/2"}]};
window.title = "a string, not JSON"; window.broken = {"a": ;</script>
<script src="/app.js">window.__DATA__ = {"people": [{"url": "/never"}]}</script>
</head><body><script type="application/json" id="person">{"sex": "F", "pictures": ["/a.jpg", "/b.jpg"]}</script>
<script type="application/json" id="other">{"sex": "M"}</script></body></html>"""


def test_embedded_json_is_read_from_every_kind_of_script_and_bad_blocks_are_skipped():
    doc = Selector(text=PAGE)
    assert len(embedded_json(doc)) == 5  # 3 JSON scripts (the broken one skipped), 2 object assignments
    assert select_first(doc, ("embedded:$.name",)) == "Ann Example"
    assert select_all(doc, ("embedded:$.sex",)) == ["F", "M"]
    assert select_all(doc, ("embedded(script#person):$.sex",)) == ["F"]
    assert select_all(doc, ("embedded(script#person):$.pictures[*]",)) == ["/a.jpg", "/b.jpg"]
    assert select_all(doc, ("embedded(window.__DATA__):$.people[*].url",)) == ["/p/1", "/p/2"]
    assert select_first(doc, ("embedded(window.config):$.board.id",)) == "77"
    assert select_all(doc, ("embedded(window.missing):$..url",)) == []
    assert select_all(Selector(text="<html><script>window.x = {" + "[" * 5000 + "</script></html>"),
                      ("embedded:$.x",)) == []
    deep = "[" * 100_000 + "]" * 100_000  # valid JSON, nested past the parser's recursion limit
    hostile = (f'<html><script type="application/json">{deep}</script><script>window.d = {deep};</script>'
               '<script type="application/json">{"ok": 1}</script></html>')
    assert select_all(Selector(text=hostile), ("embedded:$.ok",)) == ["1"]
