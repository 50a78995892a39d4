"""The ``-a`` arguments a spider takes, read from its signatures, and the check that refuses an
unknown one (a misspelled ``profle=demo-listal`` would otherwise be ignored and the spider would
fall back to its live-site profile). Every spider runs the check in ``__init__``; the crawl's
preflight runs it before Scrapy starts."""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping
from typing import Any

from ..errors import SpiderArgumentError


def known_arguments(spidercls: type) -> list[str]:
    """The ``-a`` names a spider takes: the keyword parameters of ``__init__`` along its classes.

    Read from the signatures themselves, so the list cannot drift from what the code accepts.
    """
    names: set[str] = set()
    for klass in spidercls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass.__module__.startswith("scrapy"):
            continue
        for parameter in inspect.signature(init).parameters.values():
            if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD) and parameter.name != "self":
                names.add(parameter.name)
    return sorted(names)


def check_spider_arguments(spidercls: type, args: Mapping[str, Any]) -> None:
    """Raise :class:`SpiderArgumentError` naming the known arguments for any unknown one.

    Names starting with ``_`` (``_job``, which scrapyd adds) are left to Scrapy.
    """
    known = known_arguments(spidercls)
    unknown = [name for name in args if name not in known and not name.startswith("_")]
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise SpiderArgumentError(
        f"unknown spider argument{'s' if len(unknown) > 1 else ''} {', '.join(hints)} for "
        f"{getattr(spidercls, 'name', spidercls.__name__)}; it takes -a "
        + ", ".join(f"{name}=" for name in known)
    )
