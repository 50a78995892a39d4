"""Profile steps beyond GET-and-HTML: load-more requests, JSON steps (JSONPath), rendered steps,
``extends``; read from pages shaped like the real sites' (no network)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from scrapy.crawler import Crawler
from scrapy.http import Request, TextResponse
from scrapy.settings import Settings

from scraper.browser import HANDLER
from scraper.errors import ProfileError
from scraper.extensions import crawl_summary
from scraper.profiles import Limits, load_profile, profile_from_dict
from scraper.select import JsonDoc, first_number, select_all, select_first
from scraper.spiders import FilmwebSpider, ListalSpider
from scraper.spiders.profiled import LIST_ANNOUNCED, LIST_FOLLOWED, crawl_bounds
from testkit.scrapy_objects import html_response as _html, make_spider

ROOT = Path(__file__).resolve().parent.parent


def _json(url: str, data, **meta) -> TextResponse:
    return TextResponse(url, body=json.dumps(data).encode("utf-8"), encoding="utf-8",
                        headers={"Content-Type": "application/json"}, request=Request(url, meta=meta))


def _items(n: int, start: int = 0) -> str:
    return "".join(f'<div class="imagelistbox"><a href="https://www.listal.com/person-{i}">P{i}</a></div>'
                   for i in range(start, start + n))


LIST_URL = "https://www.listal.com/list/hundreds-of-actresses"
LIST_PAGE = f"""<html><body><h1>Hundreds of actresses</h1><span class="itemcount">7 items</span>
<div id="itemscontainer" data-listid="98765">{_items(3)}</div>
<a class="loadmore" href="#">Load more</a></body></html>"""


def test_shipped_listal_profile_follows_item_list_until_the_announced_count(tmp_path):
    spider = make_spider(ListalSpider, tmp_path)
    meta = {"list_gender": "female", "list_rule": "x", "list_url": LIST_URL}
    out = list(spider.parse_list(_html(LIST_URL, LIST_PAGE, **meta)))
    people, more = out[:-1], out[-1]
    assert [r.url for r in people] == [f"https://www.listal.com/person-{i}" for i in range(3)]
    assert more.method == "POST" and more.url == "https://www.listal.com/item-list/"
    assert parse_qs(more.body.decode()) == {"listid": ["98765"], "offset": ["3"]}
    assert more.headers[b"Content-Type"] == b"application/x-www-form-urlencoded"
    # the answer: JSON holding an HTML fragment; the next offset grows by the items received
    answer = _json(more.url, {"html": _items(3, 3)}, **more.meta)
    out = list(spider.parse_list(answer))
    assert [r.url for r in out[:-1]] == [f"https://www.listal.com/person-{i}" for i in range(3, 6)]
    assert parse_qs(out[-1].body.decode())["offset"] == ["6"]
    assert out[0].meta["list_gender"] == "female"
    assert out[-1].meta["more"]["announced"] == 7
    # the last person reaches the 7 announced: no request past the end (also in a crawl resumed there)
    resumed = make_spider(ListalSpider, tmp_path)
    assert [r.url for r in resumed.parse_list(_json(more.url, {"html": _items(1, 6)}, **out[-1].meta))] == [
        "https://www.listal.com/person-6"]
    out = list(spider.parse_list(_json(more.url, {"html": _items(1, 6)}, **out[-1].meta)))
    assert [r.url for r in out] == ["https://www.listal.com/person-6"]
    stats = spider.crawler.stats.get_stats()
    assert stats[LIST_ANNOUNCED + LIST_URL] == 7 and stats[LIST_FOLLOWED + LIST_URL] == 7
    assert crawl_summary(stats)["short_lists"] == []


def test_load_more_stops_on_a_repeat_and_on_an_empty_answer_and_reports_a_short_list(tmp_path):
    spider = make_spider(ListalSpider, tmp_path)
    meta = {"list_gender": "female", "list_rule": "x", "list_url": LIST_URL}
    more = list(spider.parse_list(_html(LIST_URL, LIST_PAGE.replace("7 items", "9 items"), **meta)))[-1]
    # the off-by-one trap: past the end a site repeats the last item instead of answering empty
    out = list(spider.parse_list(_json(more.url, {"html": _items(1, 2)}, **more.meta)))
    assert out == []
    again = list(spider.parse_list(_json(more.url, {"html": ""}, **more.meta)))
    assert again == []
    summary = crawl_summary(spider.crawler.stats.get_stats())
    assert summary["lists"] == {LIST_URL: {"announced": 9, "followed": 3}}
    assert summary["short_lists"] == [LIST_URL]


def test_a_list_without_a_load_more_id_makes_no_request(tmp_path):
    spider = make_spider(ListalSpider, tmp_path)
    body = f"<html><body>{_items(2)}</body></html>"
    out = list(spider.parse_list(_html(LIST_URL, body, list_url=LIST_URL)))
    assert [r.method for r in out] == ["GET", "GET"]
    assert crawl_summary(spider.crawler.stats.get_stats())["lists"] == {LIST_URL: {"announced": None, "followed": 2}}


INFO = {"id": 3916, "name": "Adam Sandler", "poster": "/39/16/3916/7544234.$.jpg"}


def test_filmweb_api_profile_reads_the_person_from_json(tmp_path):
    spider = make_spider(FilmwebSpider, tmp_path, profile="filmweb-api")
    ranking = _html("https://www.filmweb.pl/ranking/person/actors/male",
                    '<a class="rankingType__title" href="/person/Adam+Sandler-3916">Adam Sandler</a>',
                    list_gender="male", list_url="https://www.filmweb.pl/ranking/person/actors/male")
    (person,) = spider.parse_list(ranking)
    assert person.url == "https://www.filmweb.pl/api/v1/person/3916/info"
    assert person.headers[b"Accept"] == b"application/json"
    assert person.meta["person_page"] == "https://www.filmweb.pl/person/Adam+Sandler-3916"
    poster, gallery = spider.parse_person(_json(person.url, INFO, **person.meta))
    assert poster.url == "https://fwcdn.pl/ppo/39/16/3916/7544234.3.jpg"  # $ -> size 3, on fwcdn.pl/ppo
    assert poster.meta["photo"]["person_name"] == "Adam Sandler" and poster.meta["photo"]["gender"] == "male"
    assert gallery.url == "https://www.filmweb.pl/person/Adam+Sandler-3916/photos"
    assert "NOT run against the live" in spider.profile.notes
    # an answer that is not JSON is a counted page error, not a crash
    assert not list(spider.parse_person(_html(person.url, "<html>busy</html>", **person.meta)))
    assert spider.crawler.stats.get_value("anfe/page_errors/not-json") == 1


def test_json_steps_read_ids_words_next_pages_and_paged_galleries(tmp_path):
    spider = make_spider(FilmwebSpider, tmp_path, profile="demo-filmweb-api", base_url="http://127.0.0.1:9")
    url = "http://127.0.0.1:9/filmweb/api/v1/ranking/person/popular"
    page = {"total": 3, "people": [{"id": 11}, {"id": 12}], "next": url + "?page=2"}
    out = list(spider.parse_list(_json(url, page, list_url=url)))
    assert [r.url for r in out] == ["http://127.0.0.1:9/filmweb/api/v1/person/11/info",
                                    "http://127.0.0.1:9/filmweb/api/v1/person/12/info", url + "?page=2"]
    info = {"name": "Ola", "professions": ["aktorka", "scenarzystka"], "poster": "/11/5.$.jpg"}
    poster, gallery = spider.parse_person(_json(out[0].url, info, **out[0].meta))
    assert poster.url == "http://127.0.0.1:9/filmweb/ppo/11/5.3.jpg"
    assert gallery.meta["person"]["gender"] == "female" and gallery.meta["person"]["site_label"] == "aktorka scenarzystka"
    photos = {"page": 1, "photos": [{"url": "/filmweb/fph/7.$.jpg"}, {"url": "/filmweb/fph/8.$.jpg"}]}
    first = list(spider.parse_gallery(_json(gallery.url, photos, **gallery.meta)))
    assert [r.url for r in first] == ["http://127.0.0.1:9/filmweb/fph/7.3.jpg", "http://127.0.0.1:9/filmweb/fph/8.3.jpg",
                                      gallery.url + "?page=2"]
    assert first[-1].method == "GET"
    assert list(spider.parse_gallery(_json(first[-1].url, {"photos": []}, **first[-1].meta))) == []


def test_select_reads_jsonpath_regex_and_numbers(monkeypatch):
    doc = JsonDoc({"people": [{"id": 1, "ok": True}, {"id": 2.0}, {"id": None}], "total": "1,234 people"})
    assert select_all(doc, ("$.people[*].id",)) == ["1", "2"]
    assert select_all(JsonDoc({"people": [{"id": 1}, {"id": 2}]}), ("$.people[?(@.id > 1)].id",)) == ["2"]
    assert select_all(doc, ("$.people[?(@.id > 1)].id",)) == ["2"]  # a filter passes over the null
    # a filter that raises on odd data (as jsonpath-ng before 1.16 did on a null) is no match, not a crash
    from jsonpath_ng.jsonpath import Child

    def odd_data(*args, **kwargs):
        raise TypeError("int() argument must be a real number, not 'NoneType'")

    with monkeypatch.context() as patch:
        patch.setattr(Child, "find", odd_data)
        assert select_all(doc, ("$.people[?(@.id > 1)].id",)) == []
    assert select_first(doc, ("$.missing", "$.total")) == "1,234 people"
    assert first_number("1,234 people") == 1234 and first_number("none") is None
    page = _html("http://x/", "<script>var listid = '4242';</script>")
    assert select_first(page, ("regex:listid\\W+(\\d+)",)) == "4242"


@pytest.mark.parametrize("step, message", [
    ({"format": "json", "next": ["$.[bad"]}, r"list\.next: bad JSONPath"),
    ({"format": "xml"}, "list.format must be one of html, json, not 'xml'"),
    ({"format": "json", "render": True}, "cannot be rendered"),
    ({"more": {"url": "/x?o={ofset}"}}, "uses ofset"),
    ({"more": {"url": "/x", "form": {"a": "1"}, "json": {"a": 1}}}, "both a form and a json body"),
    ({"more": {"url": "/x", "method": "PUT"}}, "list.more.method must be one of GET, POST"),
    ({"more": {"url": "/x", "stop": {"max_requests": 0}}}, "max_requests"),
    ({"more": {"url": "/x", "retries": 3}}, r"list\.more\.retries: unknown key; list\.more takes form, fragment, "),
])
def test_bad_steps_are_refused_with_the_reason(step, message):
    with pytest.raises(ProfileError, match=message):
        profile_from_dict({"name": "x", "style": "listal", "start_urls": ["http://h/"], "list": step})


def test_profiles_extend_others(tmp_path):
    base = load_profile("demo-listal")
    more = load_profile("demo-listal-more")
    assert more.list_person_links == base.list_person_links and more.view_image == base.view_image
    assert more.step("list").more.fragment == ("$.html",) and not base.step("list").more
    child = tmp_path / "mine.json"
    child.write_text(json.dumps({"extends": "listal", "name": "mine", "gallery": {"render": True}}))
    mine = load_profile(str(child))
    assert mine.name == "mine" and mine.gallery_entries == load_profile("listal").gallery_entries
    assert mine.step("gallery").render and not mine.step("person").render and mine.needs_browser
    loop = tmp_path / "loop.json"
    loop.write_text(json.dumps({"extends": "loop.json", "name": "loop"}))
    with pytest.raises(ProfileError, match="extends itself"):
        load_profile(str(loop))


def test_only_a_rendering_profile_switches_the_browser_on(tmp_path):
    settings = Settings({"DATASET_ROOT": str(tmp_path / "data"), "CHROMIUM_PATH": sys.executable})
    crawler = Crawler(ListalSpider, settings)
    spider = ListalSpider.from_crawler(crawler, profile="demo-render", base_url="http://127.0.0.1:9")
    assert crawler.settings.getdict("DOWNLOAD_HANDLERS") == {"http": HANDLER, "https": HANDLER}
    assert crawler.settings.getdict("PLAYWRIGHT_LAUNCH_OPTIONS")["executable_path"] == sys.executable
    list_request = spider.step_request("list", "http://127.0.0.1:9/render/list/actors", spider.parse_list)
    gallery_request = spider.step_request("gallery", "http://127.0.0.1:9/render/x/photos", spider.parse_gallery)
    assert "playwright" not in list_request.meta and gallery_request.meta["playwright"] is True
    plain = Crawler(ListalSpider, Settings({"DATASET_ROOT": str(tmp_path / "data")}))
    ListalSpider.from_crawler(plain, profile="demo-listal-more", base_url="http://127.0.0.1:9")
    assert not plain.settings.getdict("DOWNLOAD_HANDLERS")
    missing = Crawler(ListalSpider, Settings({"DATASET_ROOT": str(tmp_path / "data"),
                                              "CHROMIUM_PATH": str(tmp_path / "no-chromium")}))
    with pytest.raises(ProfileError, match="apt-get install chromium"):
        ListalSpider.from_crawler(missing, profile="demo-render", base_url="http://127.0.0.1:9")


def test_a_crawl_without_render_steps_never_imports_playwright():
    code = ("import sys; from scrapy.utils.test import get_crawler; from scraper.spiders import ListalSpider; "
            "c = get_crawler(ListalSpider, {'DATASET_ROOT': '/nonexistent/x'}); "
            "s = ListalSpider.from_crawler(c, profile='demo-listal-more', base_url='http://127.0.0.1:9'); "
            "print(sorted(m for m in sys.modules if 'playwright' in m))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


# -- issue 23: bounds, stop.finished and empty steps, read from pages (no network) ---------------
def _limited(tmp_path, limits: dict):
    path = tmp_path / "limited.json"
    path.write_text(json.dumps({"extends": "demo-listal", "name": "limited", "limits": limits}))
    return make_spider(ListalSpider, tmp_path, profile=str(path), base_url="http://127.0.0.1:9")


def test_a_profiles_limits_apply_unless_the_command_line_gives_its_own(tmp_path):
    from scraper.settings import DEPTH_LIMIT, MAX_PAGES, STALL_PAGES

    limits = Limits(max_pages=7, max_depth=9, stall_pages=2)
    project = Settings()
    project.setmodule("scraper.settings", priority="project")
    assert crawl_bounds(project, Limits()) == (MAX_PAGES, STALL_PAGES, DEPTH_LIMIT)
    assert crawl_bounds(project, limits) == (7, 2, 9)
    project.setdict({"MAX_PAGES": 3, "DEPTH_LIMIT": 4}, priority="cmdline")  # --max-pages 3 -s DEPTH_LIMIT=4
    assert crawl_bounds(project, limits) == (3, 2, 4)
    unfrozen = Crawler(ListalSpider, Settings({"DATASET_ROOT": str(tmp_path / "data")}))  # as in a real crawl
    _limited(tmp_path, {"max_depth": 9})
    ListalSpider.from_crawler(unfrozen, profile=str(tmp_path / "limited.json"), base_url="http://127.0.0.1:9")
    assert unfrozen.settings.getint("DEPTH_LIMIT") == 9
    spider = _limited(tmp_path, {"max_pages": 3})
    made = [spider.step_request("list", f"http://127.0.0.1:9/l/{n}", spider.parse_list) for n in range(5)]
    assert sum(r is not None for r in made) == 3
    assert spider.crawler.stats.get_value("anfe/budget/max_pages") == 3


def test_a_next_chain_with_nothing_new_stops_with_the_lists_url(tmp_path):
    spider = _limited(tmp_path, {"stall_pages": 2})
    url, page = "http://127.0.0.1:9/listal/list/a", """<html><body>
<div class="imagelistbox"><a href="/listal/ann">Ann</a></div>
<div class="pages"><a href="/listal/list/a/{n}">Next &raquo;</a></div></body></html>"""
    first = list(spider.parse_list(_html(url, page.format(n=2), list_url=url)))
    assert [r.meta.get("stall") for r in first] == [None, 0]  # the person, then the next page
    second = list(spider.parse_list(_html(url + "/2", page.format(n=3), **first[-1].meta)))
    assert [r.meta["stall"] for r in second] == [1]  # Ann again: nothing new
    assert list(spider.parse_list(_html(url + "/3", page.format(n=4), **second[-1].meta))) == []
    assert spider.crawler.stats.get_value(f"anfe/stalled/{url}") == 2


def test_required_selectors_that_match_nothing_are_counted_with_their_urls(tmp_path):
    spider = make_spider(ListalSpider, tmp_path, profile="demo-listal", base_url="http://127.0.0.1:9")
    assert list(spider.parse_list(_html("http://127.0.0.1:9/listal/list/x", "<html><p>moved</p></html>"))) == []
    person = _html("http://127.0.0.1:9/listal/ann", "<html><p>no name</p></html>", list_gender="female")
    list(spider.parse_person(person))
    stats = spider.crawler.stats.get_stats()
    assert stats["anfe/empty_steps/list.person_links"] == 1 and stats["anfe/empty_steps/person.name"] == 1
    assert stats["anfe/empty_step_urls/list.person_links"] == ["http://127.0.0.1:9/listal/list/x"]
    worst = crawl_summary(stats)["worst_steps"]
    assert [(w["step"], w["pages"], w["of"]) for w in worst] == [("list.person_links", 1, 1), ("person.name", 1, 1)]


def test_load_more_stops_at_an_answer_that_says_finished(tmp_path):
    spider = make_spider(ListalSpider, tmp_path, profile="demo-board", base_url="http://127.0.0.1:9")
    url = "http://127.0.0.1:9/board/list/everyone"
    page = ('<html><head><script>window.__DATA__ = {"board": {"id": "5", "total": 9}};</script></head><body>'
            '<a class="card" href="/board/p/a">a</a></body></html>')
    *people, more = spider.parse_list(_html(url, page, list_url=url))
    assert parse_qs(more.body.decode()) == {"listid": ["5"], "offset": ["1"]}
    cards = '<a class="card" href="/board/p/b">b</a>'
    out = list(spider.parse_list(_json(more.url, {"html": cards, "finished": False}, **more.meta)))
    assert [r.url for r in out][-1] == more.url and len(out) == 2  # a person and the next request
    out = list(spider.parse_list(_json(more.url, {"html": cards.replace("p/b", "p/c"), "finished": True},
                                       **out[-1].meta)))
    assert [r.url for r in out] == ["http://127.0.0.1:9/board/p/c"]  # no request after the last answer
    # a fragment path missing from the answer is counted (an empty fragment is a legitimate end)
    list(spider.parse_list(_json(more.url, {"status": "ok"}, **more.meta)))
    list(spider.parse_list(_json(more.url, {"html": ""}, **more.meta)))
    assert spider.crawler.stats.get_value("anfe/empty_steps/list.more.fragment") == 1
