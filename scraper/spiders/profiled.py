"""The site spiders: lists/rankings -> person pages -> paginated galleries -> (view pages) -> images.

All structure comes from a :class:`~scraper.profiles.SiteProfile`; ``listal`` and ``filmweb`` differ
only in the profile they load by default. Arguments: ``-a profile=NAME|path.json``,
``-a start_url=URL[,URL...]`` (replaces the profile's), ``-a base_url=http://127.0.0.1:PORT`` (for
profiles with relative start URLs, such as the demo site's), ``-a allowed_domains=a,b``,
``-a gender=female`` (everything found is of that gender).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urlparse

import scrapy
from parsel import Selector, SelectorList

from ..profiles import SiteProfile, load_profile
from .base import HarvestSpider, count_drop


def _select(sel: Selector | scrapy.http.Response, query: str) -> SelectorList:
    return sel.xpath(query[6:]) if query.startswith("xpath:") else sel.css(query)


def select_all(sel: Any, queries: tuple[str, ...]) -> list[str]:
    """Every value any of the selectors gives, stripped, in order, without repeats."""
    values: list[str] = []
    for query in queries:
        for value in _select(sel, query).getall():
            value = value.strip()
            if value and value not in values:
                values.append(value)
    return values


def select_first(sel: Any, queries: tuple[str, ...]) -> str | None:
    """The first value of the first selector that matches."""
    for query in queries:
        for value in _select(sel, query).getall():
            if value.strip():
                return value.strip()
    return None


class ProfiledSpider(HarvestSpider):
    """A spider driven by a site profile (see :mod:`scraper.profiles`)."""

    default_profile = ""

    def __init__(self, *args: Any, profile: str | None = None, start_url: str | None = None,
                 base_url: str | None = None, allowed_domains: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.profile: SiteProfile = load_profile(profile or self.default_profile)
        self.site = self.profile.name
        if start_url:
            self.start_urls = [u.strip() for u in start_url.split(",") if u.strip()]
        else:
            self.start_urls = self.profile.resolve_start_urls(base_url)
        if allowed_domains:
            self.allowed_domains = [d.strip() for d in allowed_domains.split(",") if d.strip()]
        elif self.profile.allowed_domains:
            self.allowed_domains = list(self.profile.allowed_domains)
        else:
            self.allowed_domains = sorted({urlparse(u).hostname or "" for u in self.start_urls} - {""})

    async def start(self) -> AsyncIterator[Any]:
        """Request each start list/ranking, with the gender the profile gives its URL."""
        if "NOT run against the live" in self.profile.notes:
            self.logger.warning("profile %s: %s", self.profile.name, self.profile.notes)
        for url in self.start_urls:
            gender, rule = self.profile.list_gender(url)
            request = self.page_request(url, self.parse_list, list_gender=gender,
                                        list_rule=rule, list_url=url)
            if request is not None:
                yield request

    def join(self, response: scrapy.http.Response, href: str) -> str:
        """``href`` made absolute; a malformed one becomes ``invalid:`` (then counted as ``bad-url``)."""
        try:
            return response.urljoin(href)
        except ValueError:
            return f"invalid:{href}"

    # -- lists and rankings ----------------------------------------------------------------
    def parse_list(self, response: scrapy.http.Response) -> Iterator[scrapy.Request]:
        """A list or ranking: follow every person on it, and the next page."""
        meta = {k: response.meta.get(k) for k in ("list_gender", "list_rule", "list_url")}
        for href in select_all(response, self.profile.list_person_links):
            url = self.join(response, href)
            if self.profile.list_person_pattern and not _matches(self.profile.list_person_pattern, url):
                continue
            request = self.page_request(url, self.parse_person, **meta)
            if request is not None:
                yield request
        next_href = select_first(response, self.profile.list_next)
        if next_href:
            request = self.page_request(self.join(response, next_href), self.parse_list, **meta)
            if request is not None:
                yield request

    # -- person pages ----------------------------------------------------------------------
    def person_gender(self, response: scrapy.http.Response) -> tuple[str | None, str | None]:
        """(gender, the words or source that said so), trying the profile's ``gender_from`` order."""
        for source in self.profile.gender_from:
            if source == "argument" and self.gender_arg:
                return self.gender_arg, "argument"
            if source == "page":
                words = select_all(response, self.profile.person_gender_fields)
                if words:
                    gender = self.profile.gender_from_text(" ".join(words))
                    if gender:
                        return gender, " ".join(words)
            if source == "list" and response.meta.get("list_gender"):
                return response.meta["list_gender"], f"list {response.meta.get('list_url')}"
        return None, None

    def parse_person(self, response: scrapy.http.Response) -> Iterator[scrapy.Request]:
        """A person page: name, id and gender; then the first page of the person's gallery."""
        name = select_first(response, self.profile.person_name) or ""
        person_id = self.profile.person_id(response.url)
        gender, label = self.person_gender(response)
        if gender is None:
            count_drop(self.stats, "no-gender")
            self.logger.info("no gender stated for %s (%s): skipped", name or person_id, response.url)
            return
        self.stats.inc_value(f"anfe/people/{gender}")
        person = {"person_name": " ".join(name.split()) or None, "person_id": person_id,
                  "gender": gender, "site_label": label, "site": self.site}
        gallery = self.gallery_url(response)
        if gallery:
            request = self.page_request(gallery, self.parse_gallery, person=person)
            if request is not None:
                yield request

    def gallery_url(self, response: scrapy.http.Response) -> str | None:
        """The first gallery page: a link on the person page, else the profile's URL template."""
        href = select_first(response, self.profile.gallery_links)
        if href:
            return self.join(response, href)
        if self.profile.gallery_url_template:
            person_url = response.url.split("?")[0].split("#")[0].rstrip("/")
            return self.profile.gallery_url_template.format(person_url=person_url)
        return None

    # -- galleries and view pages ----------------------------------------------------------
    def parse_gallery(self, response: scrapy.http.Response) -> Iterator[scrapy.Request]:
        """One gallery page: each entry is an image URL or a link to a view page; then the next page."""
        person = response.meta["person"]
        key = person["person_id"]
        for href in select_all(response, self.profile.gallery_entries):
            if self.person_full(key):
                self.stats.inc_value("anfe/skipped/person-cap")
                return
            url = self.join(response, href)
            photo = {**person, "page_url": response.url}
            if self.profile.gallery_entry_kind == "view":
                if self.allowed(url) and self.reserve(key):
                    yield scrapy.Request(url, callback=self.parse_view, errback=self.page_failed,
                                         meta={"person": person})
            else:
                request = self.image_request(self.profile.image_url(url), person_key=key, photo=photo)
                if request is not None:
                    yield request
        next_href = select_first(response, self.profile.gallery_next)
        if next_href and not self.person_full(key):
            request = self.page_request(self.join(response, next_href), self.parse_gallery, person=person)
            if request is not None:
                yield request

    def parse_view(self, response: scrapy.http.Response) -> Iterator[scrapy.Request]:
        """A page showing one picture: request its full-size image (already counted for the cap)."""
        person = response.meta["person"]
        src = select_first(response, self.profile.view_image)
        if not src:
            count_drop(self.stats, "no-image-on-page")
            return
        photo = {**person, "page_url": response.url}
        request = self.image_request(self.profile.image_url(self.join(response, src)), person_key=person["person_id"],
                                     photo=photo, count_for_cap=False)
        if request is not None:
            yield request


def _matches(pattern: str, url: str) -> bool:
    return re.search(pattern, url) is not None


class ListalSpider(ProfiledSpider):
    """listal-style sites: lists of people -> person -> ``/pictures`` pages -> ``/viewimage`` pages.

    The shipped ``listal`` profile was NOT run against the live site (see its ``notes``).
    """

    name = "listal"
    default_profile = "listal"


class FilmwebSpider(ProfiledSpider):
    """filmweb-style sites: gender-split rankings -> person (profession words) -> ``/photos`` pages.

    The shipped ``filmweb`` profile was NOT run against the live site (see its ``notes``).
    """

    name = "filmweb"
    default_profile = "filmweb"
