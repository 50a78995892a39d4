"""Try a profile on one page (``anfe profile check``): what each selector of a step extracts, and a
warning for every required one that matches nothing. Scrapy users know this as ``scrapy parse``.

The page is fetched once (:func:`fetch_page`) or read from a saved file (:func:`read_saved_page`);
:func:`check_profile_page` reads it with the same selectors, in the same languages, as the crawl.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

from scrapy.http import HtmlResponse

from anfe.core.errors import AnfeError

from .profiles import SiteProfile
from .select import JsonDoc, first_number, select_all, select_first
from .spiders.profiled import origin

__all__ = ["KINDS", "Page", "PageFetchError", "check_profile_page", "fetch_page", "read_saved_page"]

#: The steps a page can be checked as.
KINDS = ("list", "person", "gallery", "view")
#: Values shown per selector (the count is always exact).
SHOWN = 8


class PageFetchError(AnfeError):
    """The page to check could not be fetched or read."""


@dataclass(frozen=True)
class Page:
    """One page to check: its URL (links are resolved against it) and its text."""

    url: str
    text: str


def fetch_page(url: str, timeout: float = 30.0, user_agent: str = "anfe-faces/0.1 (profile check)") -> Page:
    """GET ``url`` once; PageFetchError in one line when it fails."""
    if not re.match(r"^https?://", url):
        raise PageFetchError(f"--url must be an http(s) URL, not {url!r}")
    request = urllib.request.Request(url, headers={"User-Agent": user_agent})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 (http(s) checked above)
            charset = answer.headers.get_content_charset() or "utf-8"
            return Page(answer.geturl(), answer.read(16 * 1024 * 1024).decode(charset, "replace"))
    except urllib.error.HTTPError as exc:
        raise PageFetchError(f"{url} answered HTTP {exc.code}: check the URL") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise PageFetchError(f"cannot fetch {url}: {reason}") from None


def read_saved_page(path: Path, url: str | None = None) -> Page:
    """A saved HTML or JSON page; its links resolve against ``url`` (else the file itself)."""
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except OSError as exc:
        raise PageFetchError(f"cannot read {path}: {exc.strerror}") from None
    return Page(url or path.resolve().as_uri(), text)


def _document(profile: SiteProfile, kind: str, page: Page) -> tuple[Any, str | None]:
    """(what the step's selectors read, or None; a warning when the page cannot be read so)."""
    if profile.step(kind).format == "json":
        try:
            return JsonDoc.from_text(page.text), None
        except ValueError:
            return None, f"{kind} is a JSON step but the page is not JSON"
    return HtmlResponse(page.url, body=page.text.encode("utf-8"), encoding="utf-8"), None


class _Report:
    """Lines of what each selector gave, and warnings for the required ones that gave nothing."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.lines: list[str] = []
        self.warnings: list[str] = []

    def values(self, key: str, queries: tuple[str, ...], values: list[str], required: bool = False,
               absolute: bool = False) -> list[str]:
        if not queries:
            self.lines.append(f"  {key}: not in the profile")
            if required:
                self.warnings.append(f"{key} is not in the profile: this step finds nothing")
            return values
        shown = [urljoin(self.page.url, v) if absolute else v for v in values]
        self.lines.append(f"  {key}: {len(values)} value{'' if len(values) == 1 else 's'}"
                          + ("" if values else (" (required: nothing matched)" if required else " (nothing)")))
        self.lines += [f"    {v}" for v in shown[:SHOWN]]
        if len(shown) > SHOWN:
            self.lines.append(f"    ... and {len(shown) - SHOWN} more")
        if required and not values:
            self.warnings.append(f"{key} matched nothing on {self.page.url}")
        return shown


def _more(report: _Report, profile: SiteProfile, kind: str, doc: Any, items: int) -> None:
    more = profile.step(kind).more
    if more is None:
        return
    variables: dict[str, Any] = {}
    for name, queries in more.values.items():
        value = select_first(doc, queries)
        if value is None:
            report.lines.append(f"  {kind}.more: no request ({kind}.more.values.{name} matched nothing)")
            report.warnings.append(f"{kind}.more.values.{name} matched nothing: no load-more request")
            return
        variables[name] = value
    variables.update(offset=items if more.offset_start is None else more.offset_start, page=more.page_start,
                     url=report.page.url, origin=origin(report.page.url))
    url, form, body = more.fill(variables)
    payload = f" form {form}" if form is not None else (f" json {body}" if body is not None else "")
    report.lines.append(f"  {kind}.more: {more.method} {urljoin(report.page.url, url)}{payload}")


def person_id_of(profile: SiteProfile, url: str) -> str:
    """A person's id from the page's URL: read back through ``person.url_template`` when the URL was
    made from it (a JSON API's person answer), else as the crawl reads it (``person.id_pattern``)."""
    if profile.person_url_template:
        pattern = re.escape(profile.person_url_template)
        for name, part in (("person_id", "(?P<person_id>[^/?#]+)"), ("origin", "[a-z]+://[^/]+"), ("person_url", ".+")):
            pattern = pattern.replace(re.escape("{" + name + "}"), part)
        match = re.fullmatch(pattern, url)
        if match and "person_id" in match.groupdict():
            return match.group("person_id")
    return profile.person_id(url)


def check_profile_page(profile: SiteProfile, kind: str, page: Page) -> tuple[list[str], list[str]]:
    """(lines saying what each selector of step ``kind`` extracts from ``page``, warnings)."""
    report = _Report(page)
    report.lines.append(f"profile {profile.name}, {kind} step ({profile.step(kind).format}), {page.url}")
    if profile.step(kind).render:
        report.lines.append(f"  note: the crawl renders {kind} pages in Chromium; this check reads the page as served")
    doc, problem = _document(profile, kind, page)
    if doc is None:
        report.warnings.append(problem or f"cannot read {page.url}")
        return report.lines, report.warnings
    if kind == "list":
        gender, rule = profile.list_gender(page.url)
        report.lines.append(f"  list gender: {gender} (genders pattern {rule})" if gender else
                            "  list gender: none from this URL")
        needs = not profile.list_person_ids
        links = report.values("list.person_links", profile.list_person_links,
                              select_all(doc, profile.list_person_links), required=needs, absolute=True)
        if profile.list_person_pattern and links:
            people = [u for u in links if re.search(profile.list_person_pattern, u)]
            report.lines.append(f"  list.person_pattern: {len(people)} of {len(links)} links are people")
            if not people:
                report.warnings.append(f"list.person_pattern matched none of the {len(links)} links")
        ids = select_all(doc, profile.list_person_ids)
        if profile.list_person_ids:
            report.values("list.person_ids", profile.list_person_ids, ids, required=not profile.list_person_links)
        report.values("list.next", profile.list_next, select_all(doc, profile.list_next)[:1], absolute=True)
        announced = select_first(doc, profile.list_announced)
        if profile.list_announced:
            report.lines.append(f"  list.announced: {first_number(announced)} ({announced!r})")
        _more(report, profile, kind, doc, len(links) + len(ids))
    elif kind == "person":
        report.values("person.name", profile.person_name, select_all(doc, profile.person_name)[:1], required=True)
        person_id = person_id_of(profile, page.url)
        report.lines.append(f"  person id (from the URL): {person_id}")
        needs_words = "page" in profile.gender_from and bool(profile.person_gender_fields)
        words = report.values("person.gender_fields", profile.person_gender_fields,
                               select_all(doc, profile.person_gender_fields), required=needs_words)
        if words:
            report.lines.append(f"  gender from the words: {profile.gender_from_text(' '.join(words))}")
        report.values("person.images", profile.person_images,
                      [profile.image_url(v) for v in select_all(doc, profile.person_images)], absolute=True)
        link = select_all(doc, profile.gallery_links)[:1]
        report.values("gallery.links", profile.gallery_links, link, absolute=True)
        if not link and profile.gallery_url_template:
            gallery = profile.gallery_url_template.format(person_url=page.url.rstrip("/"), origin=origin(page.url),
                                                          person_id=person_id)
            report.lines.append(f"  gallery.url_template: {gallery}")
    elif kind == "gallery":
        entries = report.values("gallery.entries", profile.gallery_entries,
                                [v if profile.gallery_entry_kind == "view" else profile.image_url(v)
                                 for v in select_all(doc, profile.gallery_entries)], required=True, absolute=True)
        report.lines.append(f"  entries are {'view pages' if profile.gallery_entry_kind == 'view' else 'images'}")
        report.values("gallery.next", profile.gallery_next, select_all(doc, profile.gallery_next)[:1], absolute=True)
        _more(report, profile, kind, doc, len(entries))
    else:
        report.values("view.image", profile.view_image,
                      [profile.image_url(v) for v in select_all(doc, profile.view_image)[:1]], required=True,
                      absolute=True)
    return report.lines, report.warnings
