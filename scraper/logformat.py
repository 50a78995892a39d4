"""Log lines for dropped photos: one line with the reason and the URL, not the whole item."""

from __future__ import annotations

import logging
from typing import Any

from scrapy.logformatter import LogFormatter


class HarvestLogFormatter(LogFormatter):
    """As Scrapy's, but a dropped photo is logged as ``Dropped: <reason>: <detail> (<url>)`` only."""

    def dropped(self, item: Any, exception: BaseException, response: Any, spider: Any = None) -> dict:
        entry = dict(super().dropped(item, exception, response, spider))
        entry["msg"] = "Dropped: %(exception)s"
        return entry


class _NoTraceback(logging.Filter):
    """Keeps a record's message and drops its traceback (the message already names the error)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


def quiet_robots_errors() -> None:
    """A robots.txt that cannot be downloaded (DNS error, refused connection) is logged by Scrapy
    with a 60-line traceback; its message ("Error downloading <GET ...>: DNS lookup failed: ...")
    says it all, so keep the message only. Idempotent."""
    logger = logging.getLogger("scrapy.downloadermiddlewares.robotstxt")
    if not any(isinstance(f, _NoTraceback) for f in logger.filters):
        logger.addFilter(_NoTraceback())
