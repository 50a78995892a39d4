"""A callback that raises is a page error: counted, shown with its URL, and never a traceback flood.

Scrapy logs an exception in a spider callback as a traceback and goes on, so a profile mistake
that breaks every page once gave thousands of log lines and a summary saying "page errors: none".
Here the exception is counted under ``anfe/page_errors/exception``, its first URLs and messages
are kept (``anfe/page_error_urls/exception``) and it is logged in one line.
"""

from __future__ import annotations

import logging
from typing import Any

from .spiders.base import PAGE_ERRORS, note_url

#: The list stat of the first page errors' "URL (Type: message)", and the errors per step.
PAGE_ERROR_URLS = "anfe/page_error_urls/"
STEP_ERRORS = "anfe/step_errors/"

logger = logging.getLogger(__name__)


class PageErrorMiddleware:
    """A spider middleware: turns a callback's exception into a counted page error (one log line)."""

    def __init__(self, stats: Any) -> None:
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler: Any) -> "PageErrorMiddleware":
        return cls(crawler.stats)

    def process_spider_exception(self, response: Any, exception: Exception, spider: Any = None) -> list:
        """Count the error, keep its URL and message, and let the crawl go on with the next page."""
        message = " ".join(str(exception).split())[:200] or type(exception).__name__
        self.stats.inc_value(PAGE_ERRORS + "exception")
        self.stats.inc_value(STEP_ERRORS + str(response.meta.get("step") or "page"))
        note_url(self.stats, PAGE_ERROR_URLS + "exception", f"{response.url} ({type(exception).__name__}: {message})")
        logger.error("page error on %s: %s: %s", response.url, type(exception).__name__, message)
        return []
