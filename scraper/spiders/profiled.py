"""The site spiders: lists/rankings -> person pages -> paginated galleries -> (view pages) -> images.

All structure comes from a :class:`~scraper.profiles.SiteProfile`; ``listal`` and ``filmweb`` differ
only in the profile they load by default. Arguments: ``-a profile=NAME|path.json``,
``-a start_url=URL[,URL...]`` (replaces the profile's), ``-a base_url=http://127.0.0.1:PORT`` (for
profiles with relative start URLs, such as the demo site's), ``-a allowed_domains=a,b``,
``-a gender=female`` (everything found is of that gender).

A step may read JSON (JSONPath fields), be rendered in a browser, and repeat a "load more"
request (see :mod:`scraper.profiles`). Every list counts the people it announced (where the site
says so) and the people followed (``anfe/lists/announced/<url>``, ``anfe/lists/followed/<url>``);
the crawl summary compares them.

Honest about what it cannot read: a required selector that matches nothing on a page (no person
links on a list page, no name, no gender words, no gallery entries, no view image, no fragment in a
load-more answer) is counted per ``step.key`` with its URLs (see :meth:`HarvestSpider.note_empty`).
Bounded: a ``next`` chain that brings nothing new for STALL_PAGES pages in a row stops with a
warning naming the list; no page request is made past MAX_PAGES (both also a profile's ``limits``;
the depth limit is Scrapy's DEPTH_LIMIT).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any
from urllib.parse import urljoin, urlparse

import scrapy
from scrapy.settings import SETTINGS_PRIORITIES

from ..browser import enable_browser, render_meta
from ..profiles import Limits, SiteProfile, load_profile
from ..select import JsonDoc, first_number, html_fragment, json_has, select_all, select_first
from .base import STEP_PAGES, HarvestSpider, count_drop

#: Stats keys of the crawl's bounds: a chain stopped for bringing nothing new (per list or gallery
#: URL: the pages in a row), and the page budget when it was reached.
STALLED = "anfe/stalled/"
BUDGET_PAGES = "anfe/budget/max_pages"

#: Stats keys of the per-list counts (the summary extension reads them).
LIST_ANNOUNCED = "anfe/lists/announced/"
LIST_FOLLOWED = "anfe/lists/followed/"

__all__ = ["FilmwebSpider", "LIST_ANNOUNCED", "LIST_FOLLOWED", "ListalSpider", "ProfiledSpider", "select_all",
           "select_first"]


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``."""
    parts = urlparse(url)
    return f"{parts.scheme}://{parts.netloc}"


def crawl_bounds(settings: Any, limits: Limits) -> tuple[int, int, int]:
    """(MAX_PAGES, STALL_PAGES, DEPTH_LIMIT): the profile's ``limits`` unless the command line (or
    ``-s``) gave a value, else the settings' (0 = no bound)."""

    def bound(name: str, value: int | None) -> int:
        if value is not None and (settings.getpriority(name) or 0) <= SETTINGS_PRIORITIES["project"]:
            return value
        return settings.getint(name, 0)

    return bound("MAX_PAGES", limits.max_pages), bound("STALL_PAGES", limits.stall_pages), \
        bound("DEPTH_LIMIT", limits.max_depth)


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
        self._local_seen: dict[str, set[str]] = {}
        self.max_pages = 0
        self.stall_pages = 0
        self._pages_made = 0

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> "ProfiledSpider":
        """Switch the browser on only when the profile renders a step (settings are not frozen yet)."""
        spider = super().from_crawler(crawler, *args, **kwargs)
        if spider.profile.needs_browser:
            enable_browser(crawler.settings)
        settings = crawler.settings
        spider.max_pages, spider.stall_pages, depth = crawl_bounds(settings, spider.profile.limits)
        if depth != settings.getint("DEPTH_LIMIT", 0) and not settings.frozen:  # Scrapy's depth middleware reads it
            settings.set("DEPTH_LIMIT", depth, priority="spider")
        return spider

    async def start(self) -> AsyncIterator[Any]:
        """Request each start list/ranking, with the gender the profile gives its URL."""
        if "NOT run against the live" in self.profile.notes:
            self.logger.warning("profile %s: %s", self.profile.name, self.profile.notes)
        for url in self.start_urls:
            gender, rule = self.profile.list_gender(url)
            request = self.step_request("list", url, self.parse_list, list_gender=gender,
                                        list_rule=rule, list_url=url)
            if request is not None:
                yield request

    # -- requests and answers --------------------------------------------------------------
    def step_request(self, step: str, url: str, callback: Any, *, method: str = "GET", body: Any = None,
                     headers: dict[str, str] | None = None, **meta: Any) -> scrapy.Request | None:
        """A request for a page of ``step`` (rendered in the browser when the step says so), or None
        when the URL is off the allowed domains."""
        if not self.allowed(url):
            return None
        if self.max_pages and self._pages_made >= self.max_pages:
            if self.stats.get_value(BUDGET_PAGES) is None:
                self.stats.set_value(BUDGET_PAGES, self.max_pages)
                self.logger.warning("the page budget of %d pages is spent: no more pages are requested "
                                    "(raise it with --max-pages)", self.max_pages)
            return None
        self._pages_made += 1
        options = self.profile.step(step)
        headers = dict(headers or {})
        if options.format == "json":
            headers.setdefault("Accept", "application/json")
        meta = {**meta, "step": step}
        if options.render:
            timeout = self.crawler.settings.getfloat("RENDER_WAIT_TIMEOUT", 15.0) if getattr(self, "crawler", None) else 15.0
            meta.update(render_meta(options.wait_for, timeout))
        return scrapy.Request(url, method=method, body=body, headers=headers or None, callback=callback,
                              errback=self.page_failed, meta=meta)

    def read(self, response: scrapy.http.Response, step: str) -> Any:
        """The page (HTML) or parsed answer (JSON) a step's fields read; None (counted) when unreadable.

        A load-more answer is read through the step's ``fragment`` paths when it has them.
        """
        options = self.profile.step(step)
        more = options.more if response.meta.get("more") else None
        self.stats.inc_value(STEP_PAGES + step)
        try:
            if more is not None and more.fragment:
                answer = JsonDoc.from_text(response.text)
                fragment = select_first(answer, more.fragment) or ""
                if not json_has(answer, more.fragment):
                    self.note_empty(f"{step}.more.fragment", response.url)
                return html_fragment(fragment) if options.format == "html" else JsonDoc.from_text(fragment or "null")
            if options.format == "json":
                return JsonDoc.from_text(response.text)
            return response if more is None else html_fragment(response.text)
        except (ValueError, AttributeError):
            self.stats.inc_value("anfe/page_errors/not-json" if options.format == "json" or more else
                                 "anfe/page_errors/not-html")
            self.logger.warning("%s step: cannot read %s as %s", step, response.url,
                                "JSON" if options.format == "json" or more else "HTML")
            return None

    def join(self, response: scrapy.http.Response, href: str) -> str:
        """``href`` made absolute; a malformed one becomes ``invalid:`` (then counted as ``bad-url``)."""
        try:
            return response.urljoin(href)
        except ValueError:
            return f"invalid:{href}"

    def _seen(self, key: str) -> set[str]:
        """Items already taken from one list or gallery (kept in JOBDIR's state when there is one)."""
        state = getattr(self, "state", None)
        store = state.setdefault("list_items", {}) if isinstance(state, dict) else self._local_seen
        return store.setdefault(key, set())

    def stalled(self, response: scrapy.http.Response, chain_url: str, new: int) -> tuple[bool, int]:
        """(stop?, pages in a row with nothing new) for a page of a ``next`` chain; a stop is a warning
        naming the chain's first URL, counted under ``anfe/stalled/<url>``."""
        run = 0 if new else response.meta.get("stall", 0) + 1
        if self.stall_pages and run >= self.stall_pages:
            self.stats.set_value(STALLED + chain_url, run)
            self.logger.warning("%s: its next pages brought nothing new for %d pages in a row: stopped at %s",
                                chain_url, run, response.url)
            return True, run
        return False, run

    def answer_finished(self, response: scrapy.http.Response, step: str) -> bool:
        """True when the load-more answer says it is the last (a ``stop.finished`` JSONPath is true)."""
        more = self.profile.step(step).more
        if more is None or not more.stop_finished:
            return False
        try:
            flag = select_first(JsonDoc.from_text(response.text), more.stop_finished)
        except ValueError:
            return False
        return flag in ("true", "1")

    # -- load more ---------------------------------------------------------------------------
    def more_request(self, response: scrapy.http.Response, doc: Any, step: str, callback: Any,
                     items: int, meta: dict[str, Any]) -> scrapy.Request | None:
        """The first "load more" request of a step's page (None when the page offers none)."""
        more = self.profile.step(step).more
        if more is None or response.meta.get("more"):
            return None
        values = {}
        for name, queries in more.values.items():
            value = select_first(doc, queries)
            if value is None:
                self.logger.debug("%s: no %s for a load-more request: the page offers none", response.url, name)
                return None
            values[name] = value
        announced = self.stats.get_value(LIST_ANNOUNCED + (meta.get("list_url") or response.url)) if step == "list" else None
        state = {"n": 1, "offset": items if more.offset_start is None else more.offset_start,
                 "page": more.page_start, "values": values, "url": response.url, "announced": announced}
        return self._more(step, state, callback, meta)

    def next_more(self, response: scrapy.http.Response, step: str, callback: Any, items: int, new: int,
                  announced: int | None, followed: int, meta: dict[str, Any]) -> scrapy.Request | None:
        """The next "load more" request after an answer with ``items`` items (``new`` not seen
        before), or None when one of the stop conditions holds. The announced count is reached
        when the people followed, or the answer's offset plus its items (in a resumed crawl), reach it."""
        more = self.profile.step(step).more
        state = response.meta["more"]
        why = None
        if self.answer_finished(response, step):
            why = "an answer that says it is the last"
        elif items == 0 and more.stop_empty:
            why = "an empty answer"
        elif new == 0:
            why = "an answer with nothing new"
        elif more.stop_at_announced and announced is not None and max(followed, state["offset"] + items) >= announced:
            why = f"the {announced} items announced"
        elif state["n"] >= more.max_requests:
            why = f"the maximum of {more.max_requests} requests"
            self.logger.warning("%s: load-more stopped at its maximum of %d requests", state["url"], more.max_requests)
        if why:
            self.logger.debug("%s: load-more ends after %d requests (%s)", state["url"], state["n"], why)
            return None
        step_size = more.offset_step if more.offset_step is not None else items
        state = {**state, "n": state["n"] + 1, "offset": state["offset"] + step_size, "page": state["page"] + 1}
        return self._more(step, state, callback, meta)

    def _more(self, step: str, state: dict[str, Any], callback: Any, meta: dict[str, Any]) -> scrapy.Request | None:
        more = self.profile.step(step).more
        variables = {**state["values"], "offset": state["offset"], "page": state["page"], "url": state["url"],
                     "origin": origin(state["url"])}
        url, form, body = more.fill(variables)
        headers = dict(more.headers)
        payload: bytes | None = None
        if form is not None:
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
            payload = form.encode("utf-8")
        elif body is not None:
            headers.setdefault("Content-Type", "application/json")
            payload = json.dumps(body).encode("utf-8")
        return self.step_request(step, urljoin(state["url"], url), callback, method=more.method, body=payload,
                                 headers=headers, more=state, **meta)

    # -- lists and rankings ----------------------------------------------------------------
    def parse_list(self, response: scrapy.http.Response) -> Iterator[scrapy.Request]:
        """A list or ranking (or one of its load-more answers): follow every person on it, then
        the next page or the next load-more request."""
        meta = {k: response.meta.get(k) for k in ("list_gender", "list_rule", "list_url")}
        list_url = meta["list_url"] or response.url
        doc = self.read(response, "list")
        if doc is None:
            return
        if not response.meta.get("more"):
            announced = first_number(select_first(doc, self.profile.list_announced))
            if announced is not None and self.stats.get_value(LIST_ANNOUNCED + list_url) is None:
                self.stats.set_value(LIST_ANNOUNCED + list_url, announced)
        self.stats.set_value(LIST_FOLLOWED + list_url, self.stats.get_value(LIST_FOLLOWED + list_url, 0))
        seen = self._seen(list_url)
        found, new = 0, 0
        for key, person_url, person_id in self.list_people(response, doc):
            found += 1
            if key in seen:
                continue
            seen.add(key)
            new += 1
            self.stats.inc_value(LIST_FOLLOWED + list_url)
            request = self.person_request(person_url, person_id, meta)
            if request is not None:
                yield request
        announced = self.stats.get_value(LIST_ANNOUNCED + list_url)
        if announced is None and response.meta.get("more"):  # a crawl resumed at a load-more answer
            announced = response.meta["more"].get("announced")
            if announced is not None:
                self.stats.set_value(LIST_ANNOUNCED + list_url, announced)
        followed = self.stats.get_value(LIST_FOLLOWED + list_url, 0)
        if not response.meta.get("more") and not found and (self.profile.list_person_links or self.profile.list_person_ids):
            self.note_empty("list.person_ids" if not self.profile.list_person_links else "list.person_links",
                            response.url)
        if response.meta.get("more"):
            request = self.next_more(response, "list", self.parse_list, found, new, announced, followed, meta)
        else:
            next_href = select_first(doc, self.profile.list_next)
            stop, run = self.stalled(response, list_url, new)
            request = (self.step_request("list", self.join(response, next_href), self.parse_list, stall=run, **meta)
                       if next_href and not stop else None)
            if request is None and not (announced is not None and followed >= announced):
                request = self.more_request(response, doc, "list", self.parse_list, found, meta)
        if request is not None:
            yield request

    def list_people(self, response: scrapy.http.Response, doc: Any) -> Iterator[tuple[str, str | None, str | None]]:
        """(key, person page URL or None, person id or None) for each person on a list page."""
        for href in select_all(doc, self.profile.list_person_links):
            url = self.join(response, href)
            if self.profile.list_person_pattern and not _matches(self.profile.list_person_pattern, url):
                continue
            yield url, url, None
        for person_id in select_all(doc, self.profile.list_person_ids):
            yield f"id:{person_id}", None, person_id

    def person_request(self, person_url: str | None, person_id: str | None,
                       meta: dict[str, Any]) -> scrapy.Request | None:
        """The request for one person: the page itself, or the profile's ``person.url_template``."""
        if person_id is None and person_url is not None:
            person_id = self.profile.person_id(person_url)
        url = person_url
        if self.profile.person_url_template:
            base = person_url or (meta.get("list_url") or "")
            url = self.profile.person_url_template.format(
                person_id=person_id, person_url=(person_url or "").rstrip("/"), origin=origin(base))
        if not url:
            return None
        return self.step_request("person", url, self.parse_person, person_id=person_id, person_page=person_url,
                                 **meta)

    # -- person pages ----------------------------------------------------------------------
    def person_gender(self, response: scrapy.http.Response, doc: Any = None) -> tuple[str | None, str | None]:
        """(gender, the words or source that said so), trying the profile's ``gender_from`` order."""
        doc = response if doc is None else doc
        for source in self.profile.gender_from:
            if source == "argument" and self.gender_arg:
                return self.gender_arg, "argument"
            if source == "page":
                words = select_all(doc, self.profile.person_gender_fields)
                if not words and self.profile.person_gender_fields:
                    self.note_empty("person.gender_fields", response.url)
                if words:
                    gender = self.profile.gender_from_text(" ".join(words))
                    if gender:
                        return gender, " ".join(words)
            if source == "list" and response.meta.get("list_gender"):
                return response.meta["list_gender"], f"list {response.meta.get('list_url')}"
        return None, None

    def parse_person(self, response: scrapy.http.Response) -> Iterator[scrapy.Request]:
        """A person page (or JSON answer): name, id and gender; the photos it shows; then the gallery."""
        doc = self.read(response, "person")
        if doc is None:
            return
        name = select_first(doc, self.profile.person_name) or ""
        if not name and self.profile.person_name:
            self.note_empty("person.name", response.url)
        person_id = response.meta.get("person_id") or self.profile.person_id(response.url)
        gender, label = self.person_gender(response, doc)
        if gender is None:
            count_drop(self.stats, "no-gender")
            self.logger.info("no gender stated for %s (%s): skipped", name or person_id, response.url)
            return
        self.stats.inc_value(f"anfe/people/{gender}")
        person = {"person_name": " ".join(name.split()) or None, "person_id": person_id,
                  "gender": gender, "site_label": label, "site": self.site}
        for href in select_all(doc, self.profile.person_images):
            request = self.image_request(self.join(response, self.profile.image_url(href)), person_key=person_id,
                                         photo={**person, "page_url": response.url})
            if request is not None:
                yield request
        gallery = self.gallery_url(response, doc, person_id)
        if gallery:
            request = self.step_request("gallery", gallery, self.parse_gallery, person=person)
            if request is not None:
                yield request

    def gallery_url(self, response: scrapy.http.Response, doc: Any = None, person_id: str | None = None) -> str | None:
        """The first gallery page: a link on the person page, else the profile's URL template
        (``{person_url}``: the person's page, ``{person_id}``, ``{origin}``)."""
        doc = response if doc is None else doc
        href = select_first(doc, self.profile.gallery_links)
        if href:
            return self.join(response, href)
        if self.profile.gallery_url_template:
            page = response.meta.get("person_page") or response.url
            person_url = page.split("?")[0].split("#")[0].rstrip("/")
            return self.profile.gallery_url_template.format(
                person_url=person_url, person_id=person_id or self.profile.person_id(page), origin=origin(page))
        return None

    # -- galleries and view pages ----------------------------------------------------------
    def parse_gallery(self, response: scrapy.http.Response) -> Iterator[scrapy.Request]:
        """One gallery page (or load-more answer): each entry is an image URL or a link to a view
        page; then the next page or load-more request."""
        person = response.meta["person"]
        key = person["person_id"]
        doc = self.read(response, "gallery")
        if doc is None:
            return
        entries = select_all(doc, self.profile.gallery_entries)
        if not entries and not response.meta.get("more"):
            self.note_empty("gallery.entries", response.url)
        seen = self._seen(f"gallery:{key}")
        new = sum(1 for href in entries if href not in seen)
        for href in entries:
            if href in seen:
                continue
            seen.add(href)
            if self.person_full(key):
                self.stats.inc_value("anfe/skipped/person-cap")
                return
            photo = {**person, "page_url": response.url}
            if self.profile.gallery_entry_kind == "view":
                url = self.join(response, href)
                if self.allowed(url) and self.reserve(key):
                    request = self.step_request("view", url, self.parse_view, person=person, **self.cap_meta(key))
                    if request is not None:
                        yield request
            else:
                request = self.image_request(self.join(response, self.profile.image_url(href)), person_key=key,
                                             photo=photo)
                if request is not None:
                    yield request
        if self.person_full(key):
            return
        meta = {"person": person}
        if response.meta.get("more"):
            request = self.next_more(response, "gallery", self.parse_gallery, len(entries), new, None, 0, meta)
        else:
            next_href = select_first(doc, self.profile.gallery_next)
            meta["gallery_url"] = response.meta.get("gallery_url") or response.url
            if next_href:
                stop, run = self.stalled(response, meta["gallery_url"], new)
                request = None if stop else self.step_request("gallery", self.join(response, next_href),
                                                              self.parse_gallery, stall=run, **meta)
            else:
                request = self.more_request(response, doc, "gallery", self.parse_gallery, len(entries), meta)
        if request is not None:
            yield request

    def parse_view(self, response: scrapy.http.Response) -> Iterator[scrapy.Request]:
        """A page showing one picture: request its full-size image (already counted for the cap)."""
        person = response.meta["person"]
        doc = self.read(response, "view")
        if doc is None:
            return
        src = select_first(doc, self.profile.view_image)
        if not src:
            self.note_empty("view.image", response.url)
            count_drop(self.stats, "no-image-on-page")
            return
        photo = {**person, "page_url": response.url}
        request = self.image_request(self.join(response, self.profile.image_url(src)), person_key=person["person_id"],
                                     photo=photo, count_for_cap=False)
        if request is not None:
            yield request


def _matches(pattern: str, url: str) -> bool:
    return re.search(pattern, url) is not None


class ListalSpider(ProfiledSpider):
    """listal-style sites: lists of people (more of them through ``POST /item-list/``) -> person
    -> ``/pictures`` pages -> ``/viewimage`` pages.

    The shipped ``listal`` profile was NOT run against the live site (see its ``notes``).
    """

    name = "listal"
    default_profile = "listal"


class FilmwebSpider(ProfiledSpider):
    """filmweb-style sites: gender-split rankings -> person (profession words) -> ``/photos`` pages;
    the ``filmweb-api`` profile reads the person from the JSON API instead.

    The shipped ``filmweb`` and ``filmweb-api`` profiles were NOT run against the live site (see their ``notes``).
    """

    name = "filmweb"
    default_profile = "filmweb"
