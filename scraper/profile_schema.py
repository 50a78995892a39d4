"""The site profile format, declared once as a JSON Schema: validation, unknown keys, selector syntax.

:data:`SCHEMA` is what ``anfe profile schema`` prints (editors check profiles with it), what
docs/crawl.md's table of keys is generated from (:func:`key_table`), and what every profile is
checked against when it loads, under ``anfe crawl`` and ``scrapy crawl`` alike
(:func:`validate_document`): an unknown key anywhere is refused with "did you mean", a value of
the wrong type is refused naming its key, and every selector is compiled (CSS, XPath, regex,
JSONPath, embedded JSON) so a broken one is one line before any request.
"""

from __future__ import annotations

import re
import string
from typing import Any

import jsonschema
from lxml import etree
from parsel.csstranslator import HTMLTranslator

from .errors import ProfileError
from .select import EMBEDDED, compile_jsonpath, split_embedded
from .spiderargs import did_you_mean

__all__ = ["SCHEMA", "check_selector", "key_table", "validate_document"]

_SELECTORS = {"$ref": "#/$defs/selectors"}
_JSONPATHS = {"$ref": "#/$defs/jsonpaths"}
_REGEX = {"$ref": "#/$defs/regex"}
_STEP_COMMON = {
    "format": {"enum": ["html", "json"], "default": "html",
               "description": "`json`: the step's answers are JSON and its selectors are JSONPath."},
    "render": {"type": "boolean", "default": False,
               "description": "Render the step's pages in Chromium (scrapy-playwright) before reading them."},
    "wait_for": {"type": "string", "description": "With `render`: a CSS selector to wait for before the page is read."},
}


def _step(description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "description": description, "additionalProperties": False,
            "properties": {**_STEP_COMMON, **properties}}


def _template(description: str, names: tuple[str, ...]) -> dict[str, Any]:
    return {"type": "string", "description": description, "x-placeholders": list(names)}


_MORE = {
    "type": "object", "additionalProperties": False, "required": ["url"],
    "description": "A follow-up request (\"load more\") repeated with a running offset or page number.",
    "properties": {
        "url": {"type": "string", "description": "URL relative to the page; may hold `{offset}`, `{page}`, `{url}`, "
                                                  "`{origin}` and a `{name}` of `values`."},
        "method": {"enum": ["GET", "POST", "get", "post"],
                   "description": "GET or POST (default: POST when a body is given, else GET)."},
        "form": {"type": "object", "additionalProperties": {"type": "string"},
                 "description": "A form body: field -> value template."},
        "json": {"description": "A JSON body; `\"{offset}\"` alone becomes the number."},
        "headers": {"type": "object", "additionalProperties": {"type": "string"},
                    "description": "Extra request headers."},
        "values": {"type": "object", "additionalProperties": _SELECTORS,
                   "description": "Placeholders read on the first page: name -> selectors (e.g. a list id)."},
        "offset": {"type": "object", "additionalProperties": False, "description": "The running offset.",
                   "properties": {
                       "start": {"anyOf": [{"type": "integer", "minimum": 0}, {"const": "items"}],
                                 "description": "First offset; `items`: the number of items on the first page."},
                       "step": {"anyOf": [{"type": "integer", "minimum": 0}, {"const": "items"}],
                                "description": "Growth per answer; `items`: the items in each answer."}}},
        "page": {"type": "object", "additionalProperties": False, "description": "The running page number.",
                 "properties": {"start": {"type": "integer", "minimum": 0, "default": 2,
                                          "description": "The first load-more request's `{page}`."}}},
        "fragment": {**_JSONPATHS, "description": "JSONPaths of the HTML fragment inside a JSON answer."},
        "stop": {"type": "object", "additionalProperties": False, "description": "When the requests stop.",
                 "properties": {
                     "empty": {"type": "boolean", "default": True, "description": "Stop at an answer with no items."},
                     "announced": {"type": "boolean", "default": True,
                                   "description": "Stop when the count the list announced is reached."},
                     "max_requests": {"type": "integer", "minimum": 1, "default": 100,
                                      "description": "Stop after this many requests (a warning)."},
                     "finished": {**_JSONPATHS, "description": "JSONPaths into each JSON answer: stop when one "
                                                               "is true (e.g. `$.finished`)."}}},
    },
}

#: The profile format (JSON Schema, draft 2020-12).
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "anfe site profile",
    "description": "One site's structure (start URLs, selectors, pagination, gender words) as data.",
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "style", "start_urls"],
    "$defs": {
        "selectors": {
            "description": "One selector or a list: CSS (default), `xpath:...`, `regex:...` (group 1 of each match "
                           "in the page source), `embedded:$.path` (JSONPath over the JSON in the page's scripts); "
                           "JSONPath in a `json` step.",
            "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "jsonpaths": {"description": "One JSONPath or a list.",
                      "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "regex": {"type": "string", "description": "A Python regular expression."},
    },
    "properties": {
        "$schema": {"type": "string", "description": "This schema's URL or path, for editors."},
        "extends": {"type": "string", "description": "A profile (shipped name or path) this one changes: objects "
                                                     "are merged, other values replaced."},
        "name": {"type": "string", "minLength": 1, "description": "The profile's name (the `site` of every photo)."},
        "style": {"enum": ["listal", "filmweb"], "description": "Which style of site: `listal` or `filmweb`."},
        "notes": {"type": "string", "description": "Free text: where the selectors come from, what is a guess."},
        "start_urls": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                       "description": "Lists or rankings to start from; relative ones need `-a base_url=`."},
        "allowed_domains": {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}],
                            "description": "Hosts the crawl may visit (and their subdomains); empty: the start "
                                           "URLs' hosts."},
        "gender_from": {"type": "array", "items": {"enum": ["argument", "page", "list"]},
                        "description": "Where a person's gender comes from, in order: `argument`, `page`, `list`."},
        "gender_words": {"type": "object", "additionalProperties": {"type": ["string", "null"]},
                         "description": "Words on a person page -> gender (null: says nothing); longest first."},
        "image_rewrites": {"type": "array", "description": "Regex rewrites of image URLs (e.g. the largest size).",
                           "items": {"type": "object", "additionalProperties": False, "required": ["pattern", "replace"],
                                     "properties": {"pattern": {**_REGEX, "description": "What to replace in an image URL."},
                                                "replace": {"type": "string",
                                                            "description": "The replacement (`\\1`: group 1)."}}}},
        "render": {"type": "boolean", "description": "Default of every step's `render`."},
        "limits": {"type": "object", "additionalProperties": False,
                   "description": "Bounds of a crawl with this profile (the command line wins).",
                   "properties": {
                       "max_pages": {"type": "integer", "minimum": 1,
                                     "description": "Page budget: no page request past it (`--max-pages`)."},
                       "max_depth": {"type": "integer", "minimum": 1,
                                     "description": "Depth limit: links deeper than this are not followed."},
                       "stall_pages": {"type": "integer", "minimum": 1,
                                       "description": "Stop a `next` chain after this many pages in a row with "
                                                      "nothing new (a `more` chain stops at the first)."}}},
        "list": _step("Lists and rankings: the people on them and the next page.", {
            "person_links": {**_SELECTORS, "description": "Links to person pages (required: these or `person_ids`)."},
            "person_ids": {**_SELECTORS, "description": "Person ids (with `person.url_template`)."},
            "person_pattern": {**_REGEX, "description": "Only links matching this regex are people."},
            "next": {**_SELECTORS, "description": "The next list page's link."},
            "announced": {**_SELECTORS, "description": "The number of people the list says it holds."},
            "genders": {"type": "array", "description": "List URL regex -> the gender of everyone on it.",
                        "items": {"type": "object", "additionalProperties": False, "required": ["pattern", "gender"],
                                  "properties": {"pattern": {**_REGEX, "description": "A regex searched in the list's URL."},
                                                 "gender": {"type": "string",
                                                            "description": "The gender of its people."}}}},
            "more": _MORE,
        }),
        "person": _step("Person pages: name, id, gender, photos.", {
            "name": {**_SELECTORS, "description": "The person's name (required)."},
            "id_pattern": {**_REGEX, "description": "Group 1 of this regex on the URL path is the person id."},
            "gender_fields": {**_SELECTORS, "description": "Text read with `gender_words` (required when "
                                                           "`gender_from` has `page`)."},
            "images": {**_SELECTORS, "description": "Photos shown on the person page itself."},
            "url_template": _template("The person request built from a list's id: `{person_id}`, `{person_url}`, "
                                      "`{origin}`.", ("person_id", "person_url", "origin")),
        }),
        "gallery": _step("Gallery pages: entries (images or view pages) and the next page.", {
            "links": {**_SELECTORS, "description": "The gallery link on the person page."},
            "url_template": _template("The gallery URL when no link is found: `{person_url}`, `{person_id}`, "
                                      "`{origin}`.", ("person_url", "person_id", "origin")),
            "entry_kind": {"enum": ["image", "view"], "default": "image",
                           "description": "`image`: entries are image URLs; `view`: pages showing one image."},
            "entries": {**_SELECTORS, "description": "The gallery's entries (required)."},
            "next": {**_SELECTORS, "description": "The next gallery page's link."},
            "more": _MORE,
        }),
        "view": _step("View pages (one picture each).", {
            "image": {**_SELECTORS, "description": "The full-size image (required with `entry_kind: view`)."},
        }),
    },
}

#: Steps whose selectors are JSONPath when the step's format is json.
_STEP_KEYS = ("list", "person", "gallery", "view")
_CSS = HTMLTranslator()


def check_selector(query: str, fmt: str, where: str) -> None:
    """Compile one selector in the language its step and prefix say; a ProfileError naming ``where``."""
    try:
        if fmt == "json":
            compile_jsonpath(query)
        elif query.startswith("xpath:"):
            etree.XPath(query[6:])
        elif query.startswith("regex:"):
            re.compile(query[6:])
        elif query.startswith(EMBEDDED):
            source, path = split_embedded(query)
            if source and not source.startswith("window."):
                etree.XPath(_CSS.css_to_xpath(source))
            compile_jsonpath(path)
        else:
            etree.XPath(_CSS.css_to_xpath(query))
    except ProfileError as exc:
        raise ProfileError(f"{where}: {exc}") from None
    except Exception as exc:  # cssselect, lxml and re each raise their own syntax errors
        hint = ("; a JSONPath in an HTML step: set the step's \"format\": \"json\", or write embedded:" + query
                if query.startswith("$") and fmt != "json" else "")
        raise ProfileError(f"{where}: bad selector {query!r}: {type(exc).__name__}: {exc}{hint}") from None


def _resolve(schema: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    ref = schema.get("$ref")
    if ref is None:
        return None, schema
    name = ref.rsplit("/", 1)[1]
    return name, {**SCHEMA["$defs"][name], **{k: v for k, v in schema.items() if k != "$ref"}}


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _walk(value: Any, schema: dict[str, Any], where: str, fmt: str) -> None:
    """Check unknown keys, selectors, regexes and templates of ``value`` against ``schema``."""
    kind, schema = _resolve(schema)
    if kind == "selectors":
        for query in _strings(value):
            check_selector(query, fmt, where)
    elif kind == "jsonpaths":
        for query in _strings(value):
            check_selector(query, "json", where)
    elif kind == "regex" and isinstance(value, str):
        try:
            re.compile(value)
        except re.error as exc:
            raise ProfileError(f"{where}: bad regular expression {value!r}: {exc}") from None
    elif "x-placeholders" in schema and isinstance(value, str):
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as exc:
            raise ProfileError(f"{where}: bad template {value!r}: {exc}") from None
        unknown = sorted(names - set(schema["x-placeholders"]))
        if unknown:
            raise ProfileError(f"{where}: unknown placeholder {{{unknown[0]}}}{did_you_mean(unknown[0], schema['x-placeholders'])}; "
                               f"it may use {', '.join('{' + n + '}' for n in schema['x-placeholders'])}")
    elif isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            if key in properties:
                inner = properties[key]
            elif isinstance(extra, dict):
                inner = extra
            elif extra is False:
                place = f"{where}.{key}" if where else key
                raise ProfileError(f"{place}: unknown key{did_you_mean(key, properties)}; "
                                   f"{'it' if not where else where} takes {', '.join(sorted(properties))}")
            else:
                continue
            step_fmt = fmt
            if not where and key in _STEP_KEYS and isinstance(item, dict):
                step_fmt = item.get("format", "html")
            _walk(item, inner, f"{where}.{key}" if where else key, step_fmt)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for n, item in enumerate(value):
            _walk(item, schema["items"], f"{where}[{n}]", fmt)


def _path(error: jsonschema.ValidationError) -> str:
    parts = []
    for part in error.absolute_path:
        parts.append(f"[{part}]" if isinstance(part, int) else (f".{part}" if parts else str(part)))
    return "".join(parts) or "the profile"


def validate_document(data: Any, source: str = "") -> None:
    """Refuse a profile document (extends already merged) that breaks the schema, in one line:
    unknown keys (with "did you mean"), wrong types, then every selector compiled."""
    name = source or (data.get("name") if isinstance(data, dict) else None) or "?"
    if not isinstance(data, dict):
        raise ProfileError(f"profile {name} must hold a JSON object")
    try:
        _walk(data, SCHEMA, "", "html")
    except ProfileError as exc:
        raise ProfileError(f"profile {name}: {exc}") from None
    validator = jsonschema.Draft202012Validator(SCHEMA)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        message = _message(error)
        raise ProfileError(f"profile {name}{' ' if message.startswith('lacks') else ': '}{message}")


def _message(error: jsonschema.ValidationError) -> str:
    """One line for a schema violation, naming the key."""
    where, value = _path(error), repr(error.instance)[:80]
    if error.validator == "required":
        missing = [key for key in error.validator_value if key not in error.instance]
        return f"{'' if where == 'the profile' else where + ' '}lacks {', '.join(missing)}"
    if error.validator == "enum":
        return f"{where} must be one of {', '.join(map(str, error.validator_value))}, not {value}"
    if error.validator == "anyOf" and all(s.get("type") in ("string", "array") for s in error.validator_value):
        return f"{where} must be a string or a list of strings, not {value}"
    if error.validator == "type":
        return f"{where} must be of type {error.validator_value}, not {value}"
    return f"{where}: {error.message[:200]}"


def _type_of(schema: dict[str, Any]) -> str:
    kind, schema = _resolve(schema)
    if kind:
        return {"selectors": "selectors", "jsonpaths": "JSONPaths", "regex": "regex"}[kind]
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in dict.fromkeys(str(v).lower() for v in schema["enum"]))
    if "anyOf" in schema:
        return "string or list" if all(s.get("type") in ("string", "array") for s in schema["anyOf"]) else "number or `items`"
    if "x-placeholders" in schema:
        return "template"
    kind_name = schema.get("type", "any")
    return " or ".join(kind_name) if isinstance(kind_name, list) else kind_name


def key_table() -> str:
    """The Markdown table of every profile key, generated from :data:`SCHEMA` (docs/crawl.md holds it)."""
    rows = ["| key | type | meaning |", "|---|---|---|"]

    def add(schema: dict[str, Any], prefix: str) -> None:
        _, schema = _resolve(schema)
        for key, inner in schema.get("properties", {}).items():
            name = f"{prefix}.{key}" if prefix else key
            _, resolved = _resolve(inner)
            required = " (required)" if key in schema.get("required", []) else ""
            default = f" Default: `{resolved['default']}`." if "default" in resolved else ""
            description = (resolved.get("description", "") + required + default).replace("|", "\\|")
            rows.append(f"| `{name}` | {_type_of(inner)} | {description} |")
            if resolved.get("type") == "object" and "properties" in resolved:
                add(resolved, name)
            items = resolved.get("items")
            if isinstance(items, dict) and "properties" in items:
                add(items, f"{name}[]")

    add(SCHEMA, "")
    return "\n".join(rows) + "\n"
