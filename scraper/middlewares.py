"""Downloader middlewares: count real image downloads, and back off a domain that says "slow down"."""

from __future__ import annotations

from typing import Any

from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware as ScrapyRobotsTxtMiddleware
from scrapy.http import Request, Response
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.defer import Deferred


class ImageRequestStatsMiddleware:
    """Counts image requests that actually reach the downloader (``anfe/image_requests``), the
    page requests (``anfe/page_requests``) and their 2xx answers (``anfe/responses_ok``).

    Placed after robots.txt and the offsite filter, so refused requests are not counted: a
    re-run of a finished crawl must show none. A crawl with requests but no 2xx answer is a
    failed crawl (see :func:`scraper.extensions.crawl_failure`).
    """

    def __init__(self, stats: Any) -> None:
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler: Any) -> "ImageRequestStatsMiddleware":
        return cls(crawler.stats)

    def process_request(self, request: Request) -> None:
        if request.meta.get("anfe_image"):
            self.stats.inc_value("anfe/image_requests")
        elif not request.url.endswith("/robots.txt"):
            self.stats.inc_value("anfe/page_requests")
            if request.meta.get("playwright"):
                self.stats.inc_value("anfe/rendered_pages")
        return None

    def process_response(self, request: Request, response: Response) -> Response:
        if 200 <= response.status < 300 and not request.url.endswith("/robots.txt"):
            self.stats.inc_value("anfe/responses_ok")
        return response


class BackoffMiddleware:
    """On 429/503 (and 403 with BACKOFF_ON_403) raise that domain's download delay to BACKOFF_DELAY.

    Sites behind anti-bot services answer this way when a crawler is too fast; scrapers of
    listal wait about 60 s. ``Retry-After`` is honoured up to BACKOFF_MAX_DELAY; AutoThrottle
    then lowers the delay again as successful responses come back. The retry itself is left
    to Scrapy's RetryMiddleware (429 and 503 are in RETRY_HTTP_CODES).
    """

    def __init__(self, crawler: Any) -> None:
        settings = crawler.settings
        self.crawler = crawler
        self.delay = settings.getfloat("BACKOFF_DELAY", 60.0)
        self.max_delay = settings.getfloat("BACKOFF_MAX_DELAY", 300.0)
        self.codes = {429, 503} | ({403} if settings.getbool("BACKOFF_ON_403") else set())

    @classmethod
    def from_crawler(cls, crawler: Any) -> "BackoffMiddleware":
        return cls(crawler)

    def process_response(self, request: Request, response: Response) -> Response:
        if response.status in self.codes and self.delay > 0:
            delay = self.delay
            retry_after = (response.headers.get(b"Retry-After") or b"").decode("latin-1").strip()
            if retry_after.isdigit():
                delay = min(float(retry_after), self.max_delay)
            downloader = self.crawler.engine.downloader
            key = request.meta.get("download_slot") or downloader.get_slot_key(request)
            slot = downloader.slots.get(key)
            if slot is not None and slot.delay < delay:
                slot.delay = delay
                self.crawler.stats.inc_value("anfe/backoff")
                self.crawler.spider.logger.warning(
                    "%s answered %d: waiting %.0f s between its requests", key, response.status, delay
                )
        return response


class RobotsTxtMiddleware(ScrapyRobotsTxtMiddleware):
    """Scrapy's robots.txt middleware, with every request that waits for a robots.txt being fetched
    given the parsed rules.

    Scrapy 2.13+ lets each waiting request ``await`` the one Deferred of that site; the first
    waiter's callback returns None, so the second and later waiters got None ("no robots.txt")
    and were fetched even when forbidden (scrapy/scrapy#6802 moved to this code). A crawl that
    starts many requests at once (a URL list with ``--fast``) then fetched disallowed URLs now
    and then. Here each waiter gets a Deferred of its own, fired with the parser.
    """

    async def robot_parser(self, request: Request) -> Any:
        pending = self._parsers.get(urlparse_cached(request).netloc)
        if isinstance(pending, Deferred):
            mine: Deferred = Deferred()

            def relay(result: Any) -> Any:
                mine.callback(result)
                return result  # the next waiter gets the parser too

            pending.addCallback(relay)
            return await maybe_deferred_to_future(mine)
        return await super().robot_parser(request)
