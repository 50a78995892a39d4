"""Site profiles, gender words, URL lists, and the spiders' parsing of pages shaped like the real sites."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scraper.errors import ProfileError
from scraper.profiles import load_profile, profile_from_dict, shipped_profiles
from scraper.spiders import FilmwebSpider, ListalSpider
from scraper.spiders.base import host_allowed
from scraper.spiders.urllist import UrlRow, gender_from_file_name, parse_bbox, read_url_list
from testkit.scrapy_objects import html_response, make_spider


def test_shipped_profiles_load_and_say_they_were_not_run_live():
    assert {"listal", "filmweb", "demo-listal", "demo-filmweb"} <= set(shipped_profiles())
    for name in ("listal", "filmweb"):
        profile = load_profile(name)
        assert "NOT run against the live" in profile.notes
        assert profile.start_urls and profile.allowed_domains


@pytest.mark.parametrize("text, gender", [
    ("aktorka", "female"), ("Aktor", "male"), ("aktor lub aktorka", None), ("Actress", "female"),
    ("re\u017cyser", None), ("aktor, scenarzysta", "male"), ("aktorka, re\u017cyserka", "female"),
    ("actor and actress", None), ("aktorkami", None), ("", None),
])
def test_filmweb_gender_words(text, gender):
    assert load_profile("filmweb").gender_from_text(text) == gender


def test_profile_urls_ids_and_list_genders():
    filmweb, listal = load_profile("filmweb"), load_profile("listal")
    assert filmweb.person_id("https://www.filmweb.pl/person/Adam+Sandler-3916") == "3916"
    assert filmweb.list_gender("https://www.filmweb.pl/ranking/person/actors/female")[0] == "female"
    assert filmweb.list_gender("https://www.filmweb.pl/ranking/person/actors/male")[0] == "male"
    assert listal.person_id("https://www.listal.com/marilyn-monroe") == "marilyn-monroe"
    import re
    pattern = re.compile(listal.list_person_pattern)
    assert pattern.search("https://www.listal.com/marilyn-monroe")
    for other in ("https://www.listal.com/list/best-actresses", "https://www.listal.com/viewimage/123",
                  "https://www.listal.com/movie/batman", "https://www.listal.com/actors"):
        assert not pattern.search(other), other
    for url, gender in (("https://www.listal.com/list/hottest-actresses-2020", "female"),
                        ("https://www.listal.com/list/best-actors", "male"),
                        ("https://www.listal.com/list/best-actors-and-actresses", None),
                        ("https://www.listal.com/list/favourite-people", None)):
        assert listal.list_gender(url)[0] == gender, url
    demo = load_profile("demo-listal")
    with pytest.raises(ProfileError, match="base_url"):
        demo.resolve_start_urls(None)
    assert demo.resolve_start_urls("http://127.0.0.1:8000")[0] == "http://127.0.0.1:8000/listal/list/actresses"


@pytest.mark.parametrize("document, message", [
    ({"style": "listal", "start_urls": []}, "lacks name"),
    ({"name": "x", "style": "imdb", "start_urls": []}, "style must be"),
    ({"name": "x", "style": "listal", "start_urls": [], "gender_words": {"a": "../etc"}}, "folder name"),
    ({"name": "x", "style": "listal", "start_urls": [], "list": {"person_pattern": "(["}}, "regular expression"),
    ({"name": "x", "style": "listal", "start_urls": [], "gender_from": ["astrology"]}, "gender_from"),
    ({"name": "x", "style": "listal", "start_urls": 5}, "list of strings"),
])
def test_bad_profiles_are_refused_with_the_reason(document, message):
    with pytest.raises(ProfileError, match=message):
        profile_from_dict(document)


def test_profile_files(tmp_path):
    with pytest.raises(ProfileError, match="does not exist"):
        load_profile(str(tmp_path / "missing.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    with pytest.raises(ProfileError, match="not valid JSON"):
        load_profile(str(bad))
    mine = tmp_path / "mysite.json"
    data = json.loads((Path(__file__).parent.parent / "scraper/profiles/filmweb.json").read_text())
    mine.write_text(json.dumps({**data, "name": "mysite", "start_urls": ["https://example.org/r/female"]}))
    assert load_profile(str(mine)).name == "mysite"


def test_host_allowed_ignores_ports_and_needs_a_real_subdomain():
    assert host_allowed("http://127.0.0.1:8123/x", ["127.0.0.1"])
    assert host_allowed("https://ilarge.lisimg.com/image/1/2000full.jpg", ["listal.com", "lisimg.com"])
    assert not host_allowed("https://evil-lisimg.com/x.jpg", ["lisimg.com"])
    assert not host_allowed("http://offsite.example/x", ["127.0.0.1"])


def test_url_list_reading(tmp_path):
    listed = tmp_path / "facescrub_actresses.txt"
    sha = "a" * 64
    listed.write_text(
        "Jane Doe\t1\t10\thttp://h/1.jpg\t1,2,30,40\t" + sha + "\n"
        "Jane Doe\t2\t11\tftp://h/2.jpg\t\t\n"
        "Jane Doe\t3\n"
        "Jane Doe\t4\t12\thttp://h/4.jpg\t5,5,1,1\t\n"
        "Jane Doe\t5\t13\thttp://h/5.jpg\t\tnot-a-hash\n"
        "\n"
        "Jane Doe\t6\t14\thttp://h/6.jpg\t\t\n"
    )
    rows = list(read_url_list(listed))
    good = [r for r in rows if isinstance(r, UrlRow)]
    assert [r.url for r in good] == ["http://h/1.jpg", "http://h/6.jpg"]
    assert good[0].bbox == (1, 2, 30, 40) and good[0].sha256 == sha and good[1].bbox is None
    assert len(rows) - len(good) == 4
    with_header = tmp_path / "list.tsv"
    with_header.write_text("name\timage_id\tface_id\turl\tbbox\tsha256\tgender\nA\t1\t1\thttp://h/a.jpg\t\t\tF\n")
    (row,) = read_url_list(with_header)
    assert row.gender == "F"
    assert gender_from_file_name(Path("facescrub_actors.txt")) == "male"
    assert gender_from_file_name(listed) == "female"
    assert gender_from_file_name(Path("urls.txt")) is None
    assert parse_bbox("") is None
    with pytest.raises(ValueError):
        parse_bbox("1,2,3")


LISTAL_PICTURES = """<html><body><div id="browseimagescontainer">
<div class="imagebox"><a href="/viewimage/25123077"><img src="https://lthumb.lisimg.com/123/25123077.jpg"></a></div>
<div class="imagebox"><a href="https://www.listal.com/viewimage/25123078"><img src="x.jpg"></a></div>
</div><div class="pages"><a href="/marilyn-monroe/pictures//1">1</a> <a href="/marilyn-monroe/pictures//2">Next &#187;</a></div>
</body></html>"""

LISTAL_LAST = """<html><body><div id="browseimagescontainer"></div>
<div class="pages"><span class="nextprev">Next &#187;</span></div></body></html>"""

LISTAL_VIEW = """<html><head><meta property="og:image" content="https://ilarge.lisimg.com/image/25123077/740full-marilyn-monroe.jpg">
<title>Picture of Marilyn Monroe</title></head><body><div class="contentheader"><a href="/marilyn-monroe">Marilyn Monroe</a></div>
<img class="pure-img" src="https://ilarge.lisimg.com/image/25123077/740full-marilyn-monroe.jpg"></body></html>"""


def test_listal_spider_reads_pictures_pages_and_view_pages(tmp_path):
    spider = make_spider(ListalSpider, tmp_path, gender="female")
    person = {"person_name": "Marilyn Monroe", "person_id": "marilyn-monroe", "gender": "female",
              "site_label": "argument", "site": "listal"}
    out = list(spider.parse_gallery(html_response("https://www.listal.com/marilyn-monroe/pictures", LISTAL_PICTURES,
                                              person=person)))
    urls = [r.url for r in out]
    assert urls == ["https://www.listal.com/viewimage/25123077", "https://www.listal.com/viewimage/25123078",
                    "https://www.listal.com/marilyn-monroe/pictures//2"]
    assert not list(spider.parse_gallery(html_response("https://www.listal.com/marilyn-monroe/pictures//2",
                                                   LISTAL_LAST, person=person)))
    (image,) = spider.parse_view(html_response("https://www.listal.com/viewimage/25123077", LISTAL_VIEW, person=person))
    # the profile asks for the largest stored version
    assert image.url == "https://ilarge.lisimg.com/image/25123077/10000full-marilyn-monroe.jpg"
    assert image.meta["anfe_image"] and image.meta["photo"]["gender"] == "female"
    assert image.meta["photo"]["page_url"] == "https://www.listal.com/viewimage/25123077"


FILMWEB_PERSON = """<html><body><h1 class="personCoverSection__title">Joanna Kulig</h1>
<div class="personPosterSection__infoData"><span class="professions">aktorka</span>
<span itemprop="birthDate">1982-06-24</span></div></body></html>"""

FILMWEB_PHOTOS = """<html><body><ul class="gallery__photos-list">
<li><a data-photo="https://fwcdn.pl/ppo/12/34/123456/7890.2.jpg" href="#"><img></a></li>
<li><a data-photo="//fwcdn.pl/ppo/12/34/123456/7891.3.jpg" href="#"><img></a></li>
<li><a data-photo="https://tracker.example.com/x.jpg" href="#"><img></a></li>
</ul></body></html>"""


def test_filmweb_spider_takes_the_gender_from_polish_profession_words(tmp_path):
    spider = make_spider(FilmwebSpider, tmp_path)
    url = "https://www.filmweb.pl/person/Joanna+Kulig-123456"
    (gallery,) = spider.parse_person(html_response(url, FILMWEB_PERSON, list_gender="male"))
    assert gallery.url == url + "/photos"
    person = gallery.meta["person"]
    assert person["gender"] == "female" and person["site_label"] == "aktorka"  # the page beats the ranking
    assert person["person_id"] == "123456" and person["person_name"] == "Joanna Kulig"
    images = list(spider.parse_gallery(html_response(gallery.url, FILMWEB_PHOTOS, person=person)))
    assert [r.url for r in images] == ["https://fwcdn.pl/ppo/12/34/123456/7890.3.jpg",
                                       "https://fwcdn.pl/ppo/12/34/123456/7891.3.jpg"]
    assert load_profile("filmweb").image_url("https://fwcdn.pl/ppo/1/2/3/4.1.jpg") == "https://fwcdn.pl/ppo/1/2/3/4.3.jpg"
    assert spider.crawler.stats.get_value("anfe/dropped/off-domain") == 1


def test_a_person_without_gender_is_counted_and_skipped(tmp_path):
    spider = make_spider(FilmwebSpider, tmp_path)
    body = FILMWEB_PERSON.replace("aktorka", "re\u017cyser")
    assert not list(spider.parse_person(html_response("https://www.filmweb.pl/person/X+Y-1", body)))
    assert spider.crawler.stats.get_value("anfe/dropped/no-gender") == 1


def test_the_cap_stops_a_gallery(tmp_path):
    spider = make_spider(FilmwebSpider, tmp_path, max_images_per_person="1")
    person = {"person_name": "A", "person_id": "1", "gender": "female", "site_label": "x", "site": "filmweb"}
    body = FILMWEB_PHOTOS + '<a class="pagination__link--next" href="/person/A-1/photos/2">next</a>'
    out = list(spider.parse_gallery(html_response("https://www.filmweb.pl/person/A-1/photos", body, person=person)))
    assert [r.url for r in out] == ["https://fwcdn.pl/ppo/12/34/123456/7890.3.jpg"]


def test_contact_goes_into_the_user_agent():
    from scrapy.settings import Settings

    settings = Settings()
    settings.setmodule("scraper.settings", priority="project")
    settings.set("CONTACT", "me@example.org", priority="cmdline")
    ListalSpider.update_settings(settings)
    assert settings["USER_AGENT"] == "anfe-faces/0.1 (+me@example.org)"
    mine = Settings()
    mine.setmodule("scraper.settings", priority="project")
    mine.set("CONTACT", "me@example.org", priority="cmdline")
    mine.set("USER_AGENT", "mine", priority="cmdline")
    ListalSpider.update_settings(mine)
    assert mine["USER_AGENT"] == "mine"


def test_failure_reasons():
    from scrapy.exceptions import DownloadCancelledError, DownloadTimeoutError, IgnoreRequest
    from scrapy.http import Response
    from scrapy.spidermiddlewares.httperror import HttpError
    from twisted.python.failure import Failure

    from scraper.spiders.base import failure_reason

    assert failure_reason(Failure(HttpError(Response("http://a", status=410), "x"))) == "http-410"
    assert failure_reason(Failure(IgnoreRequest("Forbidden by robots.txt"))) == "robots-txt"
    assert failure_reason(Failure(DownloadCancelledError("over maxsize"))) == "too-large-file"
    assert failure_reason(Failure(DownloadTimeoutError("slow"))) == "timeout"
    assert failure_reason(Failure(IgnoreRequest("Filtered offsite request to 'x.example'"))) == "off-domain"
    assert failure_reason(Failure(ConnectionRefusedError())) == "network-error"


LISTAL_LIST = """<html><body><div id="itemscontainer">
<div class="imagelistbox"><a href="https://www.listal.com/viewimage/1"><img></a><a href="/marilyn-monroe">Marilyn Monroe</a></div>
<div class="imagelistbox"><a href="https://www.listal.com/movie/niagara">Niagara</a></div>
<div class="imagelistbox"><a href="https://www.listal.com/grace-kelly">Grace Kelly</a></div>
</div><div class="pages"><a href="/list/actresses-i-like/2">Next &#187;</a></div></body></html>"""


def test_listal_list_pages_give_people_and_the_next_page_with_the_list_gender(tmp_path):
    spider = make_spider(ListalSpider, tmp_path)
    url = "https://www.listal.com/list/actresses-i-like"
    gender, rule = spider.profile.list_gender(url)
    assert gender == "female"
    out = list(spider.parse_list(html_response(url, LISTAL_LIST, list_gender=gender, list_rule=rule, list_url=url)))
    assert [r.url for r in out] == ["https://www.listal.com/marilyn-monroe", "https://www.listal.com/grace-kelly",
                                    "https://www.listal.com/list/actresses-i-like/2"]
    assert all(r.meta["list_gender"] == "female" for r in out)
    (gallery,) = spider.parse_person(html_response(out[0].url, "<h1>Marilyn Monroe</h1>", **out[0].meta))
    assert gallery.url == "https://www.listal.com/marilyn-monroe/pictures"
    assert gallery.meta["person"]["gender"] == "female"


def test_http_cache_lives_in_the_dataset_root(tmp_path):
    from scrapy.settings import Settings

    settings = Settings()
    settings.setmodule("scraper.settings", priority="project")
    settings.set("DATASET_ROOT", str(tmp_path / "data"), priority="cmdline")
    ListalSpider.update_settings(settings)
    assert settings["HTTPCACHE_DIR"] == str((tmp_path / "data" / "httpcache").resolve())


def test_malformed_urls_are_counted_not_fatal(tmp_path):
    spider = make_spider(FilmwebSpider, tmp_path)
    person = {"person_name": "A", "person_id": "1", "gender": "female", "site_label": "x", "site": "filmweb"}
    body = ('<ul class="gallery__photos-list"><li><a data-photo="http://[::1">x</a></li>'
            '<li><a data-photo="javascript:void(0)">y</a></li>'
            '<li><a data-photo="https://fwcdn.pl/ppo/1/2/3/4.3.jpg">z</a></li></ul>')
    out = list(spider.parse_gallery(html_response("https://www.filmweb.pl/person/A-1/photos", body, person=person)))
    assert [r.url for r in out] == ["https://fwcdn.pl/ppo/1/2/3/4.3.jpg"]
    assert spider.crawler.stats.get_value("anfe/dropped/bad-url") == 2
