"""Reading values from a page: CSS (default), ``xpath:``, ``regex:``, ``embedded:`` on HTML; JSONPath on JSON answers.

A profile field holds one or several queries; :func:`select_all` gives every value of all of them
(stripped, in order, without repeats) and :func:`select_first` the first value of the first one
that matches. Which language a query is in follows from the step's format: an HTML step's queries
are CSS, or XPath with ``xpath:``, or a regular expression over the page source with ``regex:``
(group 1, or the whole match); a JSON step's queries are JSONPath, read with the ``jsonpath-ng``
library (its extended parser: filters such as ``$.people[?(@.id > 3)]`` work).

``embedded:$.path`` reads JSON embedded in an HTML page: every ``<script type="application/json">``
and ``<script type="application/ld+json">`` block and every ``window.NAME = {...}`` (or ``var``/``let``
/``const``) assignment in a script is parsed, and the JSONPath is applied to each in page order.
``embedded(SOURCE):$.path`` narrows the sources: ``window.__DATA__`` (that assignment) or a CSS
selector of script elements (``embedded(script#__NEXT_DATA__):$.props``). A block that is not JSON is
skipped.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from jsonpath_ng.exceptions import JsonPathLexerError, JsonPathParserError
from jsonpath_ng.ext import parse as jsonpath_parse
from parsel import Selector

from .errors import ProfileError


#: The prefix of a selector reading JSON embedded in an HTML page.
EMBEDDED = "embedded"
_EMBEDDED = re.compile(r"^embedded(?:\((?P<source>[^)]*)\))?:(?P<path>.+)$", re.DOTALL)
_JSON_SCRIPTS = 'script[type="application/json"], script[type="application/ld+json"]'
_ASSIGNMENT = re.compile(r"(?:\b(?:window|self|globalThis)\.|\b(?:var|let|const)\s+)([A-Za-z_$][\w$]*)\s*=\s*(?=[{\[])")


def split_embedded(query: str) -> tuple[str, str]:
    """(source, JSONPath) of an ``embedded[(source)]:path`` selector; ProfileError when malformed."""
    match = _EMBEDDED.match(query)
    if match is None:
        raise ProfileError(f"bad embedded selector {query!r}: write embedded:$.path or embedded(SOURCE):$.path")
    return (match.group("source") or "").strip(), match.group("path").strip()


def embedded_json(doc: Any, source: str = "") -> list[Any]:
    """The JSON documents embedded in an HTML page (see the module's docstring), in page order."""
    found: list[Any] = []
    decoder = json.JSONDecoder()
    if not source.startswith("window."):
        for text in (script.xpath("string()").get() for script in doc.css(source or _JSON_SCRIPTS)):
            try:
                found.append(json.loads(text))
            except (ValueError, RecursionError):  # not JSON, or nested too deep to parse
                continue
    if not source or source.startswith("window."):
        wanted = source[len("window."):] if source else None
        for script in doc.css("script:not([src])::text").getall():
            for match in _ASSIGNMENT.finditer(script):
                if wanted is not None and match.group(1) != wanted:
                    continue
                try:
                    found.append(decoder.raw_decode(script, match.end())[0])
                except (ValueError, RecursionError):
                    continue
    return found


class JsonDoc:
    """A parsed JSON answer (what a JSON step's queries read)."""

    def __init__(self, data: Any) -> None:
        self.data = data

    @classmethod
    def from_text(cls, text: str) -> "JsonDoc":
        """Parse ``text``; ValueError when it is not JSON."""
        return cls(json.loads(text))


@lru_cache(maxsize=512)
def compile_jsonpath(query: str) -> Any:
    """The compiled JSONPath ``query``; a ProfileError saying what is wrong when it does not parse."""
    try:
        return jsonpath_parse(query)
    except (JsonPathLexerError, JsonPathParserError, Exception) as exc:  # the parser raises bare Exceptions too
        raise ProfileError(f"bad JSONPath {query!r} in the profile: {exc}") from exc


def _scalar(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _values(doc: Any, query: str) -> list[str]:
    if isinstance(doc, JsonDoc):
        try:
            matches = compile_jsonpath(query).find(doc.data)
        except (TypeError, ValueError, AttributeError, KeyError, IndexError):
            return []  # a filter meeting odd data (a null where a number was expected): no match
        found = [_scalar(match.value) for match in matches]
        return [v for v in found if v is not None]
    if query.startswith(EMBEDDED):
        source, path = split_embedded(query)
        values: list[str] = []
        for data in embedded_json(doc, source):
            values += _values(JsonDoc(data), path)
        return values
    if query.startswith("regex:"):
        text = doc.text if hasattr(doc, "text") else doc.get()
        return [m.group(1) if m.groups() else m.group(0) for m in re.finditer(query[6:], text)]
    if query.startswith("xpath:"):
        return doc.xpath(query[6:]).getall()
    return doc.css(query).getall()


def json_has(doc: JsonDoc, queries: tuple[str, ...]) -> bool:
    """True when one of the JSONPaths finds anything in ``doc``, even an empty string or null."""
    for query in queries:
        try:
            if compile_jsonpath(query).find(doc.data):
                return True
        except (TypeError, ValueError, AttributeError, KeyError, IndexError):
            continue
    return False


def select_all(doc: Any, queries: tuple[str, ...]) -> list[str]:
    """Every value any of the queries gives, stripped, in order, without repeats."""
    values: list[str] = []
    for query in queries:
        for value in _values(doc, query):
            value = value.strip()
            if value and value not in values:
                values.append(value)
    return values


def select_first(doc: Any, queries: tuple[str, ...]) -> str | None:
    """The first value of the first query that matches."""
    for query in queries:
        for value in _values(doc, query):
            if value.strip():
                return value.strip()
    return None


def html_fragment(text: str) -> Selector:
    """An HTML fragment (from a JSON answer) as a selector the step's CSS/XPath queries read."""
    return Selector(text=text or "<html></html>")


def first_number(text: str | None) -> int | None:
    """The first whole number in ``text`` ("1,234 items" -> 1234), or None."""
    if not text:
        return None
    match = re.search(r"\d[\d,. \u00a0]*", text)
    if not match:
        return None
    digits = re.sub(r"\D", "", match.group(0))
    return int(digits) if digits else None


__all__ = ["EMBEDDED", "JsonDoc", "compile_jsonpath", "embedded_json", "split_embedded", "first_number", "html_fragment", "json_has", "select_all", "select_first"]
