"""Checks made before a crawl starts, by ``anfe crawl`` and by ``scrapy crawl`` alike, so that a
mistake is one line before Scrapy starts rather than a traceback (or a silent fallback) inside it.

- Every ``-a`` argument must be one the spider takes: a misspelled ``profle=demo-listal`` would
  otherwise be ignored and the spider would fall back to its live-site profile.
- The profile (and its start URLs) or the URL list must load; a profile that renders a step
  needs Chromium at ``CHROMIUM_PATH``.
- A store named by ``STORE_URI`` (``--db``) must answer, within its timeout.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from anfe.core.store import open_store

from .browser import check_chromium
from .errors import UrlListError
from .profiles import load_profile
from .spiderargs import check_spider_arguments, known_arguments
from .spiders.urllist import refuse_placeholders

__all__ = ["check_before_crawl", "check_spider_arguments", "known_arguments"]


def _check_values(spider: str, args: Mapping[str, Any], settings: Any = None) -> None:
    """The profile, its start URLs and the URL list load, and a rendering profile finds Chromium
    (else a one-line error, not a traceback)."""
    if spider in ("listal", "filmweb"):
        profile = load_profile(args.get("profile") or spider)
        if not args.get("start_url"):
            profile.resolve_start_urls(args.get("base_url"))
        if profile.needs_browser:
            check_chromium((settings.get("CHROMIUM_PATH") if settings is not None else None) or "/usr/bin/chromium")
    if spider == "urllist":
        if not args.get("file"):
            raise UrlListError("the urllist spider needs -a file=PATH (a FaceScrub-style list)")
        if not Path(args["file"]).is_file():
            raise UrlListError(f"the URL list {args['file']} does not exist")
        refuse_placeholders(Path(args["file"]))


def check_store(uri: str | None) -> None:
    """Open and close the store at ``uri`` (when one is given): an unreachable MongoDB raises
    :class:`~anfe.core.errors.StoreUnreachableError` here, within seconds, with the same line as
    ``anfe build`` and ``anfe clean``. The embedded default needs no check."""
    if uri:
        open_store(uri).close()


def check_before_crawl(spidercls: type, args: Mapping[str, Any], settings: Any) -> None:
    """Everything above, in order: arguments, their values, the store."""
    check_spider_arguments(spidercls, args)
    _check_values(getattr(spidercls, "name", ""), args, settings)
    check_store(settings.get("STORE_URI") or None)
