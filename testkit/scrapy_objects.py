"""Scrapy spiders and responses built without a network, for the spider tests."""

from __future__ import annotations

from scrapy.http import HtmlResponse, Request
from scrapy.utils.test import get_crawler


def make_spider(cls, tmp_path, **kwargs):
    """A spider of ``cls`` made by a test crawler, storing under ``tmp_path/data``."""
    crawler = get_crawler(cls, {"DATASET_ROOT": str(tmp_path / "data")})
    spider = cls.from_crawler(crawler, **kwargs)
    crawler.spider = spider
    return spider


def html_response(url: str, body: str, **meta) -> HtmlResponse:
    """An HTML response for ``url`` with ``body``, its request carrying ``meta``."""
    return HtmlResponse(url, body=body.encode("utf-8"), encoding="utf-8", request=Request(url, meta=meta))
