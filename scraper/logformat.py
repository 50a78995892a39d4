"""Log lines for dropped photos: one line with the reason and the URL, not the whole item."""

from __future__ import annotations

from typing import Any

from scrapy.logformatter import LogFormatter


class HarvestLogFormatter(LogFormatter):
    """As Scrapy's, but a dropped photo is logged as ``Dropped: <reason>: <detail> (<url>)`` only."""

    def dropped(self, item: Any, exception: BaseException, response: Any, spider: Any = None) -> dict:
        entry = dict(super().dropped(item, exception, response, spider))
        entry["msg"] = "Dropped: %(exception)s"
        return entry
