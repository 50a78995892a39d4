"""Scrapy alone, for the crawl bench: the URL list's photos downloaded and thrown away, nothing of anfe
(no frontier, checks, files, store or ledger), at ``--fast``'s concurrency. The floor of any
Scrapy-based crawl on this machine: ``scrapy runspider bench/scrapy_floor.py -a file=LIST``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import scrapy


class ScrapyFloor(scrapy.Spider):
    """One request per row of a FaceScrub-style list (URL in the fourth column); counts the answers."""

    name = "scrapy-floor"
    custom_settings = {"ROBOTSTXT_OBEY": False, "CONCURRENT_REQUESTS": 32, "CONCURRENT_REQUESTS_PER_DOMAIN": 16,
                       "DOWNLOAD_DELAY": 0, "LOG_LEVEL": "WARNING", "TELNETCONSOLE_ENABLED": False}

    def __init__(self, file: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.file = file

    async def start(self) -> AsyncIterator[scrapy.Request]:
        with open(self.file, encoding="utf-8") as rows:
            next(rows)  # the header
            for row in rows:
                yield scrapy.Request(row.split("\t")[3], callback=self.parse)

    def parse(self, response: scrapy.http.Response) -> None:
        self.crawler.stats.inc_value("photos")
