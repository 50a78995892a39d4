"""A crawl frontier that is correct by construction: a ``kill -9`` at any moment loses nothing.

The invariant (the same for the SQLite frontier here and the Redis one in :mod:`scraper.redisfrontier`):

    A request leaves the frontier only in the same atomic step (one SQLite transaction, one Redis
    Lua script) that durably adds every request its callback produced (or notes that the
    dupefilter or the per-person cap refused them), and only after every item it produced was
    stored or dropped with a reason.

So at every instant each request the crawl will ever make is either in the frontier, or done
with all its children in the frontier, or not made yet because an ancestor is still in the
frontier (and will make it again when fetched again). After a crash, whatever is in the frontier
is fetched again; nothing else is needed.

Scrapy 2.x drains a callback's output asynchronously, so the order in which it calls the
scheduler and the spider middlewares proves nothing. Here :class:`FrontierMiddleware` holds back
the requests a callback yields, waits for the callback's items to leave the pipelines, and hands
parent and children to the scheduler's ``commit`` in one call; only the children it added then go
on to the engine (whose ``enqueue_request`` merely queues them in memory).

Pieces (all wired in :mod:`scraper.settings`):

- :class:`DurableScheduler`: the scheduler; a SQLite file ``<JOBDIR>/frontier.sqlite`` (or an
  in-memory database without a JOBDIR): the unfinished requests, the fingerprints seen, the ids of
  requests done, and the photos scheduled per person (the per-person cap, kept across a kill).
- :class:`FrontierMiddleware`: the spider middleware that commits a response's children and its
  "done" together; errbacks call :func:`report_done`.
- :class:`AlreadyFetchedMiddleware`: a downloader middleware that skips an image request whose URL
  the fetch ledger already settled (a request fetched again after a crash whose photo was stored).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import pickle
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

from scrapy import Request, signals
from scrapy.exceptions import IgnoreRequest
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.request import request_from_dict
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from anfe.core.crashpoints import crash_point

from .items import NotSettled
from .ledger import open_ledger

logger = logging.getLogger(__name__)

#: Sent with ``parent=``, ``children=``, ``done=``: the scheduler adds the children and, when
#: ``done``, removes the parent, in one atomic step; it returns the children it added.
frontier_commit = object()
#: The request meta key holding the frontier id (kept by retries and redirects, which copy the meta).
FRONTIER_ID = "anfe_frontier_id"
#: The request meta keys of the per-person cap: the person's key and the cap (enforced by the frontier).
CAP_PERSON, CAP_LIMIT = "anfe_cap_person", "anfe_cap"
#: The request meta key naming the run (``spider.run_token``) that looked the image up in the ledger
#: when it made the request; requests recovered from the frontier by a later run are looked up again.
LEDGER_CHECKED = "anfe_ledger_checked"
#: Stats keys: requests still in the frontier at the close (0 after a complete crawl), requests
#: recovered from the frontier at the start (a resumed crawl), and inconsistencies found.
NOT_DONE_STAT = "anfe/frontier/not_done"
RECOVERED_STAT = "anfe/frontier/recovered"
UNKNOWN_PARENT_STAT = "anfe/inconsistent/frontier_unknown_parent"
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


def commit(crawler: Any, parent: Request | None, children: list[Request], done: bool) -> list[Request]:
    """Ask the frontier to add ``children`` and (when ``done``) remove ``parent`` in one step; returns
    the children it added (all of them when no durable frontier listens, e.g. a bare test crawler)."""
    for _, result in crawler.signals.send_catch_log(frontier_commit, parent=parent, children=children, done=done):
        if isinstance(result, Failure):
            result.raiseException()
        if result is not None:
            return result
    return children


def report_done(crawler: Any, request: Request) -> None:
    """Tell the frontier that ``request`` needs no fetching again and produced nothing (errbacks)."""
    commit(crawler, request, [], True)


class DurableScheduler:
    """Priority-ordered (then last-in first-out, as Scrapy's default), duplicate-filtered, and durable.

    Tables: ``requests`` (every request not done yet, with its parent's id), ``seen`` (the
    fingerprints of every request ever added), ``done`` (the ids of requests done), ``person_images``
    (photos scheduled per person, for the cap).
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
        self._committed: set[str] = set()  # added by commit(), on their way through the engine
        self._memory: dict[str, Request] = {}  # without a JOBDIR, and requests that cannot be encoded
        self._warned = False
        self.spider: Any = None
        crawler.signals.connect(self.commit, signal=frontier_commit)

    @classmethod
    def from_crawler(cls, crawler: Any) -> "DurableScheduler":
        return cls(crawler)

    # -- scheduler interface -------------------------------------------------------------
    def open(self, spider: Any) -> None:
        self.spider = spider
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        db = self._db = sqlite3.connect(self.path or ":memory:", timeout=60, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS seen (fp TEXT PRIMARY KEY)")
        db.execute("CREATE TABLE IF NOT EXISTS requests (seq INTEGER PRIMARY KEY AUTOINCREMENT,"
                   " id TEXT NOT NULL UNIQUE, priority INTEGER NOT NULL, data BLOB NOT NULL, parent TEXT)")
        db.execute("CREATE TABLE IF NOT EXISTS done (id TEXT PRIMARY KEY)")
        db.execute("CREATE TABLE IF NOT EXISTS person_images (person TEXT PRIMARY KEY, n INTEGER NOT NULL)")
        columns = {row[1] for row in db.execute("PRAGMA table_info(requests)")}
        if "parent" not in columns:  # a frontier of an earlier version
            db.execute("ALTER TABLE requests ADD COLUMN parent TEXT")
        lost = db.execute("DELETE FROM requests WHERE length(data) = 0").rowcount
        if lost:
            logger.warning("%d requests of the last run could not be saved in the frontier and are not resumed", lost)
        rows = db.execute("SELECT id, priority FROM requests ORDER BY seq").fetchall()
        for rid, priority in rows:
            self._push_memory(rid, priority)
        if rows:
            logger.info("resuming the crawl: %d requests recovered from the frontier (queued or in flight when "
                        "it stopped)", len(rows))
            self.stats.set_value(RECOVERED_STAT, len(rows))
        orphans = db.execute("SELECT COUNT(*) FROM requests r WHERE r.parent IS NOT NULL AND r.parent NOT IN"
                             " (SELECT id FROM done) AND r.parent NOT IN (SELECT id FROM requests)").fetchone()[0]
        if orphans:
            logger.warning("%d requests in the frontier have a parent it does not know (a frontier edited or "
                           "written by another program?)", orphans)
            self.stats.set_value(UNKNOWN_PARENT_STAT, orphans)

    def close(self, reason: str) -> None:
        if self._db is None:
            return
        left = self._db.execute("SELECT COUNT(*) FROM requests").fetchone()[0]  # kept in memory or not
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
        """A request from the engine: a child :meth:`commit` added (only queued here), or a start
        request, a retry or a redirect (written to the frontier here, seen and queued in one step)."""
        assert self._db is not None
        rid = request.meta.get(FRONTIER_ID)
        if rid is not None and rid in self._committed:
            self._committed.discard(rid)
            self._push_memory(rid, request.priority)
            return True
        fp = self.fingerprinter.fingerprint(request).hex()
        if not request.dont_filter and self._db.execute("SELECT 1 FROM seen WHERE fp=?", (fp,)).fetchone():
            if rid is not None:  # e.g. a redirect to a page seen before: the original request is done
                self.commit(request, [], True)
            self.stats.inc_value("dupefilter/filtered")
            return False
        rid = frontier_id(request)
        with self._db:  # one transaction: seen and queued together
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (fp,))
            self._write(request, rid, None)
        crash_point("frontier.add")
        self._push_memory(rid, request.priority)
        self.stats.inc_value("scheduler/enqueued")
        return True

    def next_request(self) -> Request | None:
        assert self._db is not None
        while self._heap:
            _, _, rid = heapq.heappop(self._heap)
            self._queued.discard(rid)
            if rid in self._memory:
                self.stats.inc_value("scheduler/dequeued")
                return self._memory[rid]
            row = self._db.execute("SELECT data FROM requests WHERE id=?", (rid,)).fetchone()
            if row is None:  # done meanwhile
                continue
            self.stats.inc_value("scheduler/dequeued")
            return decode_request(row[0], self.spider)
        return None

    # -- the atomic step -------------------------------------------------------------------
    def commit(self, parent: Request | None, children: list[Request], done: bool) -> list[Request]:
        """Add ``children`` (refusing seen ones and those over their person's cap) and, when ``done``,
        remove ``parent``: one transaction. Returns the children added."""
        if self._db is None:
            return []
        added: list[Request] = []
        parent_id = parent.meta.get(FRONTIER_ID) if parent is not None else None
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            for child in children:
                fp = self.fingerprinter.fingerprint(child).hex()
                if not child.dont_filter and self._db.execute("SELECT 1 FROM seen WHERE fp=?", (fp,)).fetchone():
                    self.stats.inc_value("dupefilter/filtered")
                    continue
                if not self._take_cap(child):
                    continue
                self._db.execute("INSERT OR IGNORE INTO seen VALUES (?)", (fp,))
                self._write(child, frontier_id(child), parent_id)
                added.append(child)
            if done and parent_id is not None:
                self._db.execute("DELETE FROM requests WHERE id=?", (parent_id,))
                self._db.execute("INSERT OR IGNORE INTO done VALUES (?)", (parent_id,))
            crash_point("frontier.commit")
        if added:
            crash_point("frontier.add")
        if done and parent_id is not None:
            self._memory.pop(parent_id, None)
            crash_point("frontier.done")
        for child in added:
            self._committed.add(child.meta[FRONTIER_ID])
            self.stats.inc_value("scheduler/enqueued")
        return added

    def _take_cap(self, request: Request) -> bool:
        """Count one more photo for the request's person (in the open transaction); False at the cap."""
        person, cap = request.meta.get(CAP_PERSON), request.meta.get(CAP_LIMIT)
        if person is None or not cap:
            return True
        assert self._db is not None
        row = self._db.execute("SELECT n FROM person_images WHERE person=?", (str(person),)).fetchone()
        if row is not None and row[0] >= int(cap):
            self.stats.inc_value("anfe/skipped/person-cap")
            return False
        self._db.execute("INSERT INTO person_images VALUES (?, 1) ON CONFLICT(person) DO UPDATE SET n=n+1",
                         (str(person),))
        return True

    def _write(self, request: Request, rid: str, parent_id: str | None) -> None:
        """Insert or update the request's row (in the open transaction). Without a JOBDIR the
        frontier dies with the process, so the request itself is kept in memory, not encoded."""
        assert self._db is not None
        data = b""
        if self.path is None:
            self._memory[rid] = request
        else:
            try:
                data = encode_request(request, self.spider)
            except Exception as exc:  # e.g. a callback that is not a spider method: kept in memory only
                if not self._warned:
                    logger.warning("a request cannot be saved in the frontier (%s): such requests are kept in "
                                   "memory and are not resumed after a crash: %s", exc, request)
                    self._warned = True
                self._memory[rid] = request
        self._db.execute(
            "INSERT INTO requests (id, priority, data, parent) VALUES (?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET"
            " priority=excluded.priority, data=excluded.data", (rid, request.priority, data, parent_id))

    def _push_memory(self, rid: str, priority: int) -> None:
        if rid in self._queued:
            return
        self._queued.add(rid)
        # highest priority first; among equals the newest first (depth-first, as Scrapy's LIFO default)
        heapq.heappush(self._heap, (-priority, -next(self._order), rid))


class _Open:
    """A response being handled: items still in the pipelines, and whether one was not settled."""

    __slots__ = ("items", "unsettled", "waiter")

    def __init__(self) -> None:
        self.items = 0
        self.unsettled = False
        self.waiter: Deferred | None = None


class FrontierMiddleware:
    """Holds back a callback's requests until its items have left the pipelines, then commits the
    requests and the response's "done" in one step (see the module's invariant).

    An item the pipelines could not settle (the store failed: :class:`scraper.items.NotSettled`, or
    a pipeline raised) keeps the response in the frontier, so the same command fetches it again.
    """

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self._open: dict[str, _Open] = {}
        crawler.signals.connect(self._item_finished, signal=signals.item_scraped)
        crawler.signals.connect(self._item_finished, signal=signals.item_dropped)
        crawler.signals.connect(self._item_failed, signal=signals.item_error)

    @classmethod
    def from_crawler(cls, crawler: Any) -> "FrontierMiddleware":
        return cls(crawler)

    async def process_spider_output_async(self, response: Any, result: AsyncIterator[Any],
                                          spider: Any = None) -> AsyncIterator[Any]:
        request = getattr(response, "request", None)
        rid = request.meta.get(FRONTIER_ID) if request is not None else None
        if rid is None:
            async for output in result:
                yield output
            return
        entry = self._open[rid] = _Open()
        children: list[Request] = []
        error: BaseException | None = None
        try:
            async for output in result:
                if isinstance(output, Request):
                    children.append(output)
                else:
                    entry.items += 1
                    yield output
        except Exception as exc:  # a callback that raised is done (fetching again would raise again)
            error = exc
        if entry.items > 0:
            entry.waiter = Deferred()
            await maybe_deferred_to_future(entry.waiter)
        del self._open[rid]
        for child in commit(self.crawler, request, children, not entry.unsettled):
            yield child
        if error is not None:
            raise error

    def process_spider_output(self, response: Any, result: Iterable[Any], spider: Any = None) -> Iterable[Any]:
        """Only the async form commits; Scrapy always uses it when it is defined."""
        raise NotImplementedError("FrontierMiddleware needs Scrapy's asynchronous spider output")

    def process_spider_exception(self, response: Any, exception: Exception, spider: Any = None) -> None:
        """A callback that raised before yielding anything is done (fetching again would raise again)."""
        request = response.request
        if request is not None and request.meta.get(FRONTIER_ID) not in self._open:
            report_done(self.crawler, request)

    def _settle(self, response: Any, unsettled: bool) -> None:
        request = getattr(response, "request", None)
        entry = self._open.get(request.meta.get(FRONTIER_ID)) if request is not None else None
        if entry is None:
            return
        entry.items -= 1
        entry.unsettled |= unsettled
        if entry.items <= 0 and entry.waiter is not None:
            waiter, entry.waiter = entry.waiter, None
            waiter.callback(None)

    def _item_finished(self, item: Any = None, response: Any = None, exception: Any = None, **kwargs: Any) -> None:
        self._settle(response, isinstance(exception, NotSettled))

    def _item_failed(self, item: Any = None, response: Any = None, **kwargs: Any) -> None:
        self._settle(response, True)


class AlreadyFetchedMiddleware:
    """Skips (IgnoreRequest "already-fetched") an image whose URL has a final outcome in the ledger.

    Image requests are checked against the ledger when they are made; this catches the ones
    made before a crash (by another run) and fetched again from the frontier after it, so a resumed crawl neither
    downloads a stored photo again nor counts it as a duplicate. Its ledger is its own (built
    from the crawler's settings).
    """

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.ledger = open_ledger(crawler.settings)
        crawler.signals.connect(self.ledger.close, signal=signals.engine_stopped)

    @classmethod
    def from_crawler(cls, crawler: Any) -> "AlreadyFetchedMiddleware":
        return cls(crawler)

    def process_request(self, request: Request, spider: Any = None) -> None:
        if not request.meta.get("anfe_image"):
            return None
        token = request.meta.get(LEDGER_CHECKED)
        if token is not None and token == getattr(self.crawler.spider, "run_token", None):
            return None  # made by this very run, after a look at the ledger (a frontier never holds it twice)
        url = (request.meta.get("redirect_urls") or [request.url])[0]
        if self.ledger.seen(url):
            raise IgnoreRequest("already-fetched")
        return None
