"""Site profiles: the structure of one site (start URLs, selectors, pagination, gender words) as data.

A new site of a known style (list -> person -> paginated gallery -> optional view page) is a new
JSON file, not new code. Shipped profiles live in ``scraper/profiles/<name>.json``; a path to any
other JSON file works too (``scrapy crawl listal -a profile=./mysite.json``). A profile may
``"extends"`` another one and give only what differs (objects are merged, other values replaced).

Each step (``list``, ``person``, ``gallery``, ``view``) may also say:

- ``"format": "json"``: the step's answers are JSON and its fields are JSONPath (see
  :mod:`scraper.select`);
- ``"render": true``: the step's pages go through a real browser (scrapy-playwright driving
  Debian's Chromium); ``"wait_for"``: a CSS selector to wait for before the page is read;
- ``"more"``: a follow-up request ("load more") repeated with a running offset or page number
  until the answer is empty, says it is the last (``stop.finished``), the count the site announced
  is reached, or a maximum (see :class:`LoadMore`).

The format is declared once, as a JSON Schema (:mod:`scraper.profile_schema`): every document is
validated against it when it loads, unknown keys are refused and every selector is compiled.
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlparse

from anfe.core.errors import DatasetError
from anfe.core.layout import safe_label

from .errors import ProfileError
from .profile_schema import validate_document
from .select import compile_jsonpath

#: Where a person's gender may come from, in the order a profile lists them.
GENDER_SOURCES = ("argument", "page", "list")
#: The steps of a crawl, in order.
STEPS = ("list", "person", "gallery", "view")
#: Placeholders every load-more URL and body may use besides the profile's own ``values``.
MORE_PLACEHOLDERS = ("offset", "page", "url", "origin")
_WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class LoadMore:
    """A step's follow-up request ("load more"), all as data.

    ``url`` (relative to the page), ``form`` or ``json`` (the body; strings in either, and the
    URL, may hold ``{offset}``, ``{page}``, ``{url}`` (the step's first page), ``{origin}``
    (scheme://host) and ``{name}`` for each of ``values``: selectors read on the first page,
    such as a list id). The offset starts at ``offset_start`` (None: the number of items on the
    first page) and grows by ``offset_step`` (None: the number of items in each answer); the page
    number starts at ``page_start`` and grows by 1. ``fragment``: JSONPaths of the HTML fragment
    in a JSON answer (the step's own selectors then read it); without it, a JSON step reads the
    answer with its JSONPaths and an HTML step reads the answer as HTML.

    Stops: an answer with no items (``stop_empty``), an answer with no item not seen before
    (always), an answer where a ``stop_finished`` JSONPath is true, the count the list announced
    reached (``stop_at_announced``), ``max_requests``.
    """

    url: str
    method: str = "POST"
    form: dict[str, str] | None = None
    json_body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    values: dict[str, tuple[str, ...]] = field(default_factory=dict)
    offset_start: int | None = None
    offset_step: int | None = None
    page_start: int = 2
    fragment: tuple[str, ...] = ()
    stop_empty: bool = True
    stop_at_announced: bool = True
    max_requests: int = 100
    stop_finished: tuple[str, ...] = ()

    def fill(self, variables: dict[str, Any]) -> tuple[str, str | None, Any]:
        """(URL, form body or None, JSON body or None) with the placeholders filled in."""
        url = _format(self.url, variables)
        form = None
        if self.form is not None:
            from urllib.parse import urlencode

            form = urlencode({k: _format(v, variables) for k, v in self.form.items()})
        body = _fill_json(self.json_body, variables) if self.json_body is not None else None
        return url, form, body


@dataclass(frozen=True)
class Step:
    """How one step's pages are fetched and read (see the module's docstring)."""

    format: str = "html"
    render: bool = False
    wait_for: str | None = None
    more: LoadMore | None = None


def _format(template: str, variables: dict[str, Any]) -> str:
    return template.format_map({k: "" if v is None else v for k, v in variables.items()})


def _fill_json(value: Any, variables: dict[str, Any]) -> Any:
    """A JSON body template filled in; ``"{offset}"`` alone becomes the number itself."""
    if isinstance(value, str):
        match = re.fullmatch(r"\{(\w+)\}", value)
        if match and isinstance(variables.get(match.group(1)), int):
            return variables[match.group(1)]
        return _format(value, variables)
    if isinstance(value, list):
        return [_fill_json(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _fill_json(v, variables) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Limits:
    """A profile's own bounds of a crawl (None: the settings' defaults; the command line wins)."""

    max_pages: int | None = None
    max_depth: int | None = None
    stall_pages: int | None = None


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
    list_person_ids: tuple[str, ...] = ()
    list_announced: tuple[str, ...] = ()
    person_url_template: str | None = None
    person_images: tuple[str, ...] = ()
    steps: dict[str, Step] = field(default_factory=dict)
    limits: Limits = field(default_factory=Limits)

    def step(self, name: str) -> Step:
        """How the step ``name`` (list, person, gallery, view) is fetched and read."""
        return self.steps.get(name) or Step()

    @property
    def needs_browser(self) -> bool:
        """True when a step renders its pages in a browser."""
        return any(step.render for step in self.steps.values())

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


def _int(value: Any, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ProfileError(f"{where} must be a whole number >= {minimum}, not {value!r}")
    return value


def _placeholders(value: Any) -> set[str]:
    if isinstance(value, str):
        try:
            return {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise ProfileError(f"bad placeholder in {value!r}: {exc}") from exc
    if isinstance(value, list):
        return set().union(*(_placeholders(v) for v in value)) if value else set()
    if isinstance(value, dict):
        return set().union(*(_placeholders(v) for v in value.values())) if value else set()
    return set()


def _load_more(data: Any, where: str) -> LoadMore | None:
    """Validate a step's ``more`` object."""
    if data is None:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("url"), str):
        raise ProfileError(f"{where}.more must be an object with at least a \"url\"")
    known = {"url", "method", "form", "json", "headers", "values", "offset", "page", "fragment", "stop"}
    unknown = set(data) - known
    if unknown:
        raise ProfileError(f"{where}.more has unknown fields {', '.join(sorted(unknown))} (known: {', '.join(sorted(known))})")
    method = str(data.get("method", "POST" if ("form" in data or "json" in data) else "GET")).upper()
    if method not in ("GET", "POST"):
        raise ProfileError(f"{where}.more.method must be GET or POST, not {method!r}")
    if "form" in data and "json" in data:
        raise ProfileError(f"{where}.more has both a form and a json body: choose one")
    form = data.get("form")
    if form is not None and not (isinstance(form, dict) and all(isinstance(v, str) for v in form.values())):
        raise ProfileError(f"{where}.more.form must map names to strings")
    values = {str(k): _tuple(data.get("values", {}), k) for k in data.get("values", {})}
    allowed = set(MORE_PLACEHOLDERS) | set(values)
    missing = _placeholders([data["url"], form or {}, data.get("json")]) - allowed
    if missing:
        raise ProfileError(f"{where}.more uses {', '.join(sorted(missing))}: name them in \"values\" "
                           f"or use {', '.join(MORE_PLACEHOLDERS)}")
    offset, page, stop = data.get("offset", {}), data.get("page", {}), data.get("stop", {})
    if not all(isinstance(x, dict) for x in (offset, page, stop)):
        raise ProfileError(f"{where}.more: offset, page and stop must be objects")

    def count_or_items(value: Any, name: str) -> int | None:
        return None if value in (None, "items") else _int(value, f"{where}.more.offset.{name}")

    fragment = _tuple(data, "fragment")
    for path in fragment:
        compile_jsonpath(path)
    return LoadMore(
        url=data["url"], method=method, form=form, json_body=data.get("json"),
        headers={str(k): str(v) for k, v in (data.get("headers") or {}).items()},
        values=values,
        offset_start=count_or_items(offset.get("start"), "start"),
        offset_step=count_or_items(offset.get("step"), "step"),
        page_start=_int(page.get("start", 2), f"{where}.more.page.start"),
        fragment=fragment,
        stop_empty=bool(stop.get("empty", True)),
        stop_at_announced=bool(stop.get("announced", True)),
        max_requests=_int(stop.get("max_requests", 100), f"{where}.more.stop.max_requests", 1),
        stop_finished=_tuple(stop, "finished"),
    )


def _steps(data: dict, sections: dict[str, dict]) -> dict[str, Step]:
    """Each step's format, rendering and load-more request, validated."""
    steps = {}
    for name in STEPS:
        section = sections[name]
        fmt = section.get("format", "html")
        if fmt not in ("html", "json"):
            raise ProfileError(f"{name}.format must be 'html' or 'json', not {fmt!r}")
        render = section.get("render", data.get("render", False))
        if not isinstance(render, bool):
            raise ProfileError(f"{name}.render must be true or false")
        if render and fmt == "json":
            raise ProfileError(f"{name}: a JSON step cannot be rendered in a browser (drop \"render\")")
        steps[name] = Step(fmt, render, section.get("wait_for"), _load_more(section.get("more"), name))
        if fmt == "json":
            for key, value in section.items():
                if key in ("person_links", "person_ids", "next", "announced", "name", "gender_fields",
                           "images", "links", "entries", "image"):
                    for path in _tuple(section, key):
                        compile_jsonpath(path)
    if steps["view"].more is not None or steps["person"].more is not None:
        raise ProfileError("only the list and gallery steps may have a \"more\" request")
    return steps


def profile_from_dict(data: dict, source: str = "") -> SiteProfile:
    """Build and validate a profile from its JSON document (checked against the schema first)."""
    validate_document(data, source)
    missing = [key for key in ("name", "style", "start_urls") if key not in data]
    if missing:
        raise ProfileError(f"profile {source or data.get('name', '?')} lacks {', '.join(missing)}")
    if data["style"] not in ("listal", "filmweb"):
        raise ProfileError(f"profile style must be 'listal' or 'filmweb', not {data['style']!r}")
    sections = {k: data.get(k, {}) for k in STEPS}
    if not all(isinstance(v, dict) for v in sections.values()):
        raise ProfileError(f"profile sections {', '.join(STEPS)} must be objects")
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
    ] + [q[6:] for sec in sections.values() for v in sec.values() if isinstance(v, (list, str))
         for q in ([v] if isinstance(v, str) else v) if isinstance(q, str) and q.startswith("regex:")]:
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
        list_person_ids=_tuple(sections["list"], "person_ids"),
        list_announced=_tuple(sections["list"], "announced"),
        person_url_template=sections["person"].get("url_template"),
        person_images=_tuple(sections["person"], "images"),
        steps=_steps(data, sections),
        limits=Limits(**(data.get("limits") or {})),
    )


def shipped_profiles() -> list[str]:
    """Names of the profiles shipped with the package."""
    folder = resources.files("scraper") / "profiles"
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".json"))


def _merge(base: Any, override: Any) -> Any:
    """``override`` laid over ``base``: objects merged key by key, anything else replaced."""
    if isinstance(base, dict) and isinstance(override, dict):
        merged = dict(base)
        for key, value in override.items():
            merged[key] = _merge(base.get(key), value) if key in base else value
        return merged
    return override


def load_document(name_or_path: str, _seen: tuple[str, ...] = ()) -> tuple[dict, str]:
    """A profile's JSON document with its ``extends`` chain merged in, and where it came from."""
    data, source = _read_document(name_or_path)
    parent = data.pop("extends", None)
    if parent is None:
        return data, source
    if not isinstance(parent, str):
        raise ProfileError(f"profile {source}: extends must name a profile")
    if parent in _seen or len(_seen) > 8:
        raise ProfileError(f"profile {source} extends itself ({' -> '.join(_seen + (parent,))})")
    if parent.endswith(".json") and not Path(parent).is_absolute() and not source.startswith("shipped:"):
        parent = str(Path(source).parent / parent)
    base, _ = load_document(parent, _seen + (name_or_path,))
    return _merge(base, data), source


def load_profile(name_or_path: str) -> SiteProfile:
    """A shipped profile by name (``listal``, ``filmweb``, ``demo-listal``...) or a JSON file path."""
    data, source = load_document(name_or_path)
    return profile_from_dict(data, source)


def _read_document(name_or_path: str) -> tuple[dict, str]:
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
    return data, source


__all__ = ["GENDER_SOURCES", "STEPS", "Limits", "ListGender", "LoadMore", "SiteProfile", "Step", "load_document", "load_profile",
           "profile_from_dict", "shipped_profiles"]
