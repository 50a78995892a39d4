"""Site profiles: the structure of one site (start URLs, selectors, pagination, gender words) as data.

A new site of a known style (list -> person -> paginated gallery -> optional view page) is a new
JSON file, not new code. Shipped profiles live in ``scraper/profiles/<name>.json``; a path to any
other JSON file works too (``scrapy crawl listal -a profile=./mysite.json``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

from anfe.errors import DatasetError
from anfe.layout import safe_label

from .errors import ProfileError

#: Where a person's gender may come from, in the order a profile lists them.
GENDER_SOURCES = ("argument", "page", "list")
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class ListGender:
    """A start/list URL pattern and the gender of the people it lists (a ranking of actresses...)."""

    pattern: str
    gender: str


@dataclass(frozen=True)
class SiteProfile:
    """One site's structure. Selectors are CSS by default, XPath when prefixed with ``xpath:``;
    a field holding several selectors uses the first that matches (``first``) or all (``all``)."""

    name: str
    style: str
    notes: str
    start_urls: tuple[str, ...]
    allowed_domains: tuple[str, ...] = ()
    list_person_links: tuple[str, ...] = ()
    list_person_pattern: str | None = None
    list_next: tuple[str, ...] = ()
    list_genders: tuple[ListGender, ...] = ()
    person_name: tuple[str, ...] = ()
    person_id_pattern: str | None = None
    person_gender_fields: tuple[str, ...] = ()
    gallery_links: tuple[str, ...] = ()
    gallery_url_template: str | None = None
    gallery_entries: tuple[str, ...] = ()
    gallery_entry_kind: str = "image"
    gallery_next: tuple[str, ...] = ()
    view_image: tuple[str, ...] = ()
    image_rewrites: tuple[tuple[str, str], ...] = ()
    gender_words: dict[str, str | None] = field(default_factory=dict)
    gender_from: tuple[str, ...] = ("argument", "page", "list")
    source: str = ""

    def resolve_start_urls(self, base_url: str | None) -> list[str]:
        """Absolute start URLs; relative ones (demo profiles) need ``base_url``."""
        urls = []
        for url in self.start_urls:
            if urlparse(url).scheme in ("http", "https"):
                urls.append(url)
            elif base_url:
                urls.append(urljoin(base_url.rstrip("/") + "/", url.lstrip("/")))
            else:
                raise ProfileError(
                    f"profile {self.name!r} has the relative start URL {url!r}: pass "
                    f"-a base_url=http://127.0.0.1:PORT (the site's address)"
                )
        return urls

    def list_gender(self, url: str) -> tuple[str | None, str | None]:
        """(gender, the pattern that said so) for a list/ranking URL, or (None, None)."""
        for rule in self.list_genders:
            if re.search(rule.pattern, url):
                return rule.gender, rule.pattern
        return None, None

    def image_url(self, url: str) -> str:
        """The image URL after the profile's rewrites (e.g. asking a CDN for its largest size)."""
        for pattern, replacement in self.image_rewrites:
            url = re.sub(pattern, replacement, url)
        return url

    def person_id(self, url: str) -> str:
        """The site's id of a person, from the URL (the path when the pattern does not match)."""
        path = urlparse(url).path
        if self.person_id_pattern:
            match = re.search(self.person_id_pattern, path)
            if match:
                return match.group(1)
        return path.strip("/")

    def gender_from_text(self, text: str) -> str | None:
        """The gender the words in ``text`` state through :attr:`gender_words`, else None.

        Longest phrases first, whole words only, case-insensitive ("aktor lub aktorka" is read
        before "aktor"). A phrase mapped to null, or words of two genders, give None.
        """
        words = " ".join(_WORD.findall(text.lower()))
        found: set[str | None] = set()
        for phrase in sorted(self.gender_words, key=lambda p: -len(p)):
            pattern = rf"(?<!\w){re.escape(' '.join(_WORD.findall(phrase.lower())))}(?!\w)"
            if re.search(pattern, words):
                found.add(self.gender_words[phrase])
                words = re.sub(pattern, " ", words)
        if None in found:
            return None
        return found.pop() if len(found) == 1 else None


def _tuple(data: dict, key: str) -> tuple[str, ...]:
    value = data.get(key) or []
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProfileError(f"profile field {key!r} must be a string or a list of strings")
    return tuple(value)


def _gender(value: Any, where: str) -> str | None:
    if value is None:
        return None
    try:
        return safe_label(str(value))
    except DatasetError as exc:
        raise ProfileError(f"{where}: {exc}") from exc


def profile_from_dict(data: dict, source: str = "") -> SiteProfile:
    """Build and validate a profile from its JSON document."""
    missing = [key for key in ("name", "style", "start_urls") if key not in data]
    if missing:
        raise ProfileError(f"profile {source or data.get('name', '?')} lacks {', '.join(missing)}")
    if data["style"] not in ("listal", "filmweb"):
        raise ProfileError(f"profile style must be 'listal' or 'filmweb', not {data['style']!r}")
    sections = {k: data.get(k, {}) for k in ("list", "person", "gallery", "view")}
    gender_from = tuple(data.get("gender_from", ("argument", "page", "list")))
    unknown = set(gender_from) - set(GENDER_SOURCES)
    if unknown:
        raise ProfileError(f"gender_from may hold {', '.join(GENDER_SOURCES)}, not {', '.join(sorted(unknown))}")
    words = {str(k): _gender(v, f"gender word {k!r}") for k, v in data.get("gender_words", {}).items()}
    kind = sections["gallery"].get("entry_kind", "image")
    if kind not in ("image", "view"):
        raise ProfileError("gallery.entry_kind must be 'image' (entries are image URLs) or 'view' (pages)")
    rewrites = data.get("image_rewrites") or []
    if not all(isinstance(r, dict) and {"pattern", "replace"} <= set(r) for r in rewrites):
        raise ProfileError("image_rewrites must be a list of {\"pattern\": ..., \"replace\": ...}")
    for pattern in [r["pattern"] for r in rewrites] + [rule.get("pattern", "") for rule in sections["list"].get("genders", [])] + [
        sections["list"].get("person_pattern") or "", sections["person"].get("id_pattern") or ""
    ]:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ProfileError(f"bad regular expression {pattern!r} in the profile: {exc}") from exc
    return SiteProfile(
        name=str(data["name"]),
        style=data["style"],
        notes=str(data.get("notes", "")),
        start_urls=_tuple(data, "start_urls"),
        allowed_domains=_tuple(data, "allowed_domains"),
        list_person_links=_tuple(sections["list"], "person_links"),
        list_person_pattern=sections["list"].get("person_pattern"),
        list_next=_tuple(sections["list"], "next"),
        list_genders=tuple(
            ListGender(rule["pattern"], _gender(rule["gender"], "list gender"))
            for rule in sections["list"].get("genders", [])
        ),
        person_name=_tuple(sections["person"], "name"),
        person_id_pattern=sections["person"].get("id_pattern"),
        person_gender_fields=_tuple(sections["person"], "gender_fields"),
        gallery_links=_tuple(sections["gallery"], "links"),
        gallery_url_template=sections["gallery"].get("url_template"),
        gallery_entries=_tuple(sections["gallery"], "entries"),
        gallery_entry_kind=kind,
        gallery_next=_tuple(sections["gallery"], "next"),
        view_image=_tuple(sections["view"], "image"),
        image_rewrites=tuple((str(r["pattern"]), str(r["replace"])) for r in rewrites),
        gender_words=words,
        gender_from=gender_from,
        source=source,
    )


def shipped_profiles() -> list[str]:
    """Names of the profiles shipped with the package."""
    folder = resources.files("scraper") / "profiles"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def load_profile(name_or_path: str) -> SiteProfile:
    """A shipped profile by name (``listal``, ``filmweb``, ``demo-listal``...) or a JSON file path."""
    path = Path(name_or_path)
    if path.suffix == ".json" or path.is_file():
        if not path.is_file():
            raise ProfileError(f"profile file {path} does not exist")
        text, source = path.read_text(encoding="utf-8"), str(path)
    else:
        resource = resources.files("scraper") / "profiles" / f"{name_or_path}.json"
        if not resource.is_file():
            raise ProfileError(
                f"no shipped profile {name_or_path!r}: use one of {', '.join(shipped_profiles())} "
                f"or a path to a JSON file"
            )
        text, source = resource.read_text(encoding="utf-8"), f"shipped:{name_or_path}"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ProfileError(f"profile {source} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ProfileError(f"profile {source} must hold a JSON object")
    return profile_from_dict(data, source)


__all__ = ["GENDER_SOURCES", "ListGender", "SiteProfile", "load_profile", "profile_from_dict", "shipped_profiles"]
