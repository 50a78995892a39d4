"""A crawl frontier that forgets a request only when it is done, so a ``kill -9`` loses nothing.

Scrapy's JOBDIR marks a request as seen when it is *scheduled* and keeps its queue on disk in a
form that is only consistent after a clean stop: requests in flight (or merely queued) at a
``kill -9`` are never fetched again. Here a request stays in the frontier from the moment it is
scheduled until its callback has run and every item it produced has left the pipelines (or its
errback ran); only then is it deleted. After a crash, whatever is still in the frontier is
fetched again.

Pieces (all wired in :mod:`scraper.settings`):

- :class:`DurableScheduler`: the scheduler; a SQLite file ``<JOBDIR>/frontier.sqlite`` (or an
  in-memory database without a JOBDIR) holding the seen fingerprints and the unfinished requests.
- :class:`DoneTrackerMiddleware`: a spider middleware that notices when a request is done and
  sends :data:`request_done`; the Redis scheduler (:mod:`scraper.redisfrontier`) listens too.
- :class:`AlreadyFetchedMiddleware`: a downloader middleware that skips an image request whose URL
  the fetch ledger already settled (a request re-fetched after a crash whose photo was stored).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import pickle
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator
from pathlib import Path
from typing import Any

from scrapy import Request, signals
from scrapy.exceptions import IgnoreRequest
from scrapy.utils.request import request_from_dict

logger = logging.getLogger(__name__)

#: Sent with ``request=`` when a request's work is finished (callback run, items through the pipelines).
request_done = object()
#: The request meta key holding the frontier id (kept by retries and redirects, which copy the meta).
FRONTIER_ID = "anfe_frontier_id"
#: Stats key: requests still in the frontier when the crawl closed (0 after a complete crawl).
NOT_DONE_STAT = "anfe/frontier/not_done"
FRONTIER_FILE = "frontier.sqlite"


def frontier_id(request: Request) -> str:
    """The request's frontier id, given on first sight."""
    rid = request.meta.get(FRONTIER_ID)
    if rid is None:
        rid = request.meta[FRONTIER_ID] = uuid.uuid4().hex
    return rid


def encode_request(request: Request, spider: Any) -> bytes:
    """A request as bytes (callbacks by name), as Scrapy's own disk queues store it."""
    return pickle.dumps(request.to_dict(spider=spider), protocol=4)


def decode_request(data: bytes, spider: Any) -> Request:
    return request_from_dict(pickle.loads(data), spider=spider)


class DurableScheduler:
    """Priority-ordered (then last-in first-out, as Scrapy's default), duplicate-filtered, and durable.

    Table ``requests`` holds every scheduled request that is not done yet; ``seen`` the
    fingerprints of every request ever scheduled. Both change in one transaction, so a crash at
    any moment leaves a request either unscheduled (its parent is not done either, so it is
    produced again) or in ``requests``.
    """

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.stats = crawler.stats
        self.fingerprinter = crawler.request_fingerprinter
        jobdir = crawler.settings.get("JOBDIR")
        self.path = Path(jobdir) / FRONTIER_FILE if jobdir else None
        self._db: sqlite3.Connection | None = None
        self._heap: list[tuple[int, int, str]] = []
        self._order = itertools.count()
        self._queued: set[str] = set()
        self._memory: dict[str, Request] = {}  # requests that cannot be encoded
        self._warned = False
        self.spider: Any = None
        crawler.signals.connect(self._on_done, signal=request_done)

    @classmethod
    def from_crawler(cls, crawler: Any) -> "DurableScheduler":
        return cls(crawler)

    # -- scheduler interface -------------------------------------------------------------
    def open(self, spider: Any) -> None:
        self.spider = spider
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path or ":memory:", timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS seen (fp TEXT PRIMARY KEY)")
        self._db.execute("CREATE TABLE IF NOT EXISTS requests (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                         " id TEXT NOT NULL UNIQUE, priority INTEGER NOT NULL, data BLOB NOT NULL)")
        rows = self._db.execute("SELECT id, priority FROM requests ORDER BY seq").fetchall()
        for rid, priority in rows:
            self._push_memory(rid, priority)
        if rows:
            logger.info("resuming the crawl: %d requests were not done (queued or in flight when it stopped)",
                        len(rows))
            self.stats.set_value("anfe/frontier/resumed", len(rows))

    def close(self, reason: str) -> None:
        if self._db is None:
            return
        left = self._db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]
        self.stats.set_value(NOT_DONE_STAT, left)
        if left and reason == "finished":
            logger.error("%d requests were not done although the crawl ran out of work", left)
        self._db.close()
        self._db = None

    def has_pending_requests(self) -> bool:
        return bool(self._heap)

    def __len__(self) -> int:
        return len(self._heap)

    def enqueue_request(self, request: Request) -> bool:
        assert self._db is not None
        rid = request.meta.get(FRONTIER_ID)
        fp = self.fingerprinter.fingerprint(request).hex()
        if not request.dont_filter and self._db.execute("SELECT 1 FROM seen WHERE fp=?", (fp,)).fetchone():
            if rid is not None:  # e.g. a redirect to a page seen before: the original request is done
                self._delete(rid)
            self.stats.inc_value("dupefilter/filtered")
            return False
        rid = frontier_id(request)
        try:
            data = encode_request(request, self.spider)
        except Exception as exc:  # e.g. a callback that is not a spider method: kept in memory only
            if not self._warned:
                logger.warning("a request cannot be saved in the frontier (%s): such requests are kept in "
                               "memory and are not resumed after a crash: %s", exc, request)
                self._warned = True
            self._db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (fp,))
            self._memory[rid] = request
            self._push_memory(rid, request.priority)
            self.stats.inc_value("scheduler/enqueued/memory")
            return True
        with self._db:  # one transaction: seen and queued together
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (fp,))
            self._db.execute(
                "INSERT INTO requests (id, priority, data) VALUES (?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
                " priority=excluded.priority, data=excluded.data", (rid, request.priority, data))
        self._push_memory(rid, request.priority)
        self.stats.inc_value("scheduler/enqueued")
        return True

    def next_request(self) -> Request | None:
        assert self._db is not None
        while self._heap:
            _, _, rid = heapq.heappop(self._heap)
            self._queued.discard(rid)
            if rid in self._memory:
                return self._memory.pop(rid)
            row = self._db.execute("SELECT data FROM requests WHERE id=?", (rid,)).fetchone()
            if row is None:  # done meanwhile
                continue
            self.stats.inc_value("scheduler/dequeued")
            return decode_request(row[0], self.spider)
        return None

    # -- bookkeeping ----------------------------------------------------------------------
    def _push_memory(self, rid: str, priority: int) -> None:
        if rid in self._queued:
            return
        self._queued.add(rid)
        # highest priority first; among equals the newest first (depth-first, as Scrapy's LIFO default)
        heapq.heappush(self._heap, (-priority, -next(self._order), rid))

    def _delete(self, rid: str) -> None:
        if self._db is not None:
            self._db.execute("DELETE FROM requests WHERE id=?", (rid,))

    def _on_done(self, request: Request) -> None:
        rid = request.meta.get(FRONTIER_ID)
        if rid is not None:
            self._delete(rid)


class DoneTrackerMiddleware:
    """Sends :data:`request_done` once a response's callback output is exhausted and every item it
    yielded has been stored, dropped or failed; errbacks report through :func:`report_done`."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self._open: dict[str, list] = {}  # frontier id -> [items in the pipelines, output exhausted, request]
        crawler.signals.connect(self._item_finished, signal=signals.item_scraped)
        crawler.signals.connect(self._item_finished, signal=signals.item_dropped)
        crawler.signals.connect(self._item_finished, signal=signals.item_error)

    @classmethod
    def from_crawler(cls, crawler: Any) -> "DoneTrackerMiddleware":
        return cls(crawler)

    async def process_spider_output_async(self, response: Any, result: AsyncIterator[Any],
                                          spider: Any = None) -> AsyncIterator[Any]:
        entry = self._entry(response)
        async for output in result:
            self._count(entry, output)
            yield output
        self._exhausted(entry)

    def process_spider_output(self, response: Any, result: Iterable[Any], spider: Any = None) -> Iterator[Any]:
        entry = self._entry(response)
        for output in result:
            self._count(entry, output)
            yield output
        self._exhausted(entry)

    def _entry(self, response: Any) -> list | None:
        request = getattr(response, "request", None)
        rid = request.meta.get(FRONTIER_ID) if request is not None else None
        return None if rid is None else self._open.setdefault(rid, [0, False, request])

    @staticmethod
    def _count(entry: list | None, output: Any) -> None:
        if entry is not None and not isinstance(output, Request):
            entry[0] += 1

    def _exhausted(self, entry: list | None) -> None:
        if entry is not None:
            entry[1] = True
            self._maybe_done(entry[2].meta[FRONTIER_ID])

    def process_spider_exception(self, response: Any, exception: Exception, spider: Any = None) -> None:
        """A callback that raised is done (fetching again would raise again)."""
        request = response.request
        if request is not None:
            self._open.pop(request.meta.get(FRONTIER_ID), None)
            report_done(self.crawler, request)

    def _item_finished(self, item: Any = None, response: Any = None, **kwargs: Any) -> None:
        request = getattr(response, "request", None)
        rid = request.meta.get(FRONTIER_ID) if request is not None else None
        entry = self._open.get(rid) if rid is not None else None
        if entry is not None:
            entry[0] -= 1
            self._maybe_done(rid)

    def _maybe_done(self, rid: str) -> None:
        entry = self._open.get(rid)
        if entry is not None and entry[1] and entry[0] <= 0:
            del self._open[rid]
            report_done(self.crawler, entry[2])


def report_done(crawler: Any, request: Request) -> None:
    """Tell the frontier that ``request`` needs no fetching again (errbacks call this)."""
    crawler.signals.send_catch_log(request_done, request=request)


class AlreadyFetchedMiddleware:
    """Skips (IgnoreRequest "already-fetched") an image whose URL has a final outcome in the ledger.

    Image requests are checked against the ledger when they are made; this catches the ones
    made before a crash and fetched again from the frontier after it, so a resumed crawl neither
    downloads a stored photo again nor counts it as a duplicate.
    """

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Any) -> "AlreadyFetchedMiddleware":
        return cls(crawler)

    def process_request(self, request: Request, spider: Any = None) -> None:
        if not request.meta.get("anfe_image"):
            return None
        ledger = getattr(self.crawler.spider, "ledger", None)
        url = (request.meta.get("redirect_urls") or [request.url])[0]
        if ledger is not None and ledger.seen(url):
            raise IgnoreRequest("already-fetched")
        return None
