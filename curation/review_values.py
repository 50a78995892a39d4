"""Server-side checks of the review page's widget values (free of Streamlit).

A browser sends widget values over the WebSocket as it likes: Streamlit hands a select box or
radio value it never offered straight to the page. So the page records what it offered each
widget (in the session's own state) and accepts only those values: a made-up gender never
becomes a folder, a made-up reason never names one, a file id never reaches a move unless this
session was shown it.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping, Sequence
from typing import Any

from anfe.core.errors import AnfeError

from .safe_text import plain

#: Where the offers are kept in a session's state.
OFFERS = "_offered"


class RefusedValue(AnfeError):
    """A widget value the page did not offer this session."""


def offer(state: MutableMapping[str, Any], key: str, options: Iterable[Any]) -> list[Any]:
    """Record ``options`` as what widget ``key`` offers this session; returns them as a list."""
    options = list(options)
    state.setdefault(OFFERS, {})[key] = options
    return options


def is_offered(value: Any, options: Sequence[Any]) -> bool:
    """True when ``value`` is one of ``options``, of the same type (``1 == True`` does not count)."""
    return any(type(value) is type(option) and value == option for option in options)


def check(value: Any, options: Sequence[Any], what: str) -> Any:
    """``value`` when it is one of ``options``, else :class:`RefusedValue` naming it as text."""
    if not is_offered(value, options):
        raise RefusedValue(f"Refused: {plain(repr(value))[:80]} is not a {what} this page offered.")
    return value


def offered(state: MutableMapping[str, Any], key: str, what: str) -> Any:
    """The value of widget ``key`` in ``state`` when the page offered it (:func:`offer`), else
    :class:`RefusedValue` (also when the page never offered that widget)."""
    return check(state.get(key), state.get(OFFERS, {}).get(key, ()), what)


def or_first(value: Any, options: Sequence[Any]) -> tuple[Any, bool]:
    """(``value``, True) when it is one of ``options``, else (the first option or None, False):
    what a view falls back to when a request names something it never offered."""
    if is_offered(value, options):
        return value, True
    return (options[0] if options else None), False


__all__ = ["OFFERS", "RefusedValue", "check", "is_offered", "offer", "offered", "or_first"]
