"""One crawl frontier for several ``anfe crawl`` processes: scrapy-redis's queue and dupefilter in Redis,
plus what they lack for a ``kill -9``: a request popped by a process is held in that process's
*in-flight* hash until it is done, and a process whose heartbeat has lapsed has its held requests
put back in the queue by whichever process notices first.

Keys (``<prefix>`` is REDIS_KEY_PREFIX, ``anfe`` by default; use one Redis database, or one prefix,
per crawl):

- ``<prefix>:<spider>:requests``: the queue (scrapy-redis's priority queue, a sorted set);
- ``<prefix>:<spider>:dupefilter``: fingerprints of every request scheduled (scrapy-redis's);
- ``<prefix>:<spider>:inflight:<worker>``: requests a process is working on (encoded -> queue score);
- ``<prefix>:<spider>:alive:<worker>``: a process's heartbeat (expires after REDIS_WORKER_TTL s);
- ``<prefix>:ledger``: the fetch ledger (image URL -> final outcome), shared by every process.

The frontier persists (SCHEDULER_PERSIST): a re-run of a finished crawl fetches nothing; delete
the ``<prefix>:<spider>:*`` keys (or use another database) to crawl the site again, and the
ledger still keeps every stored photo from being downloaded twice.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from scrapy import Request, signals
from scrapy.exceptions import DontCloseSpider
from scrapy.utils.asyncio import create_looping_call
from scrapy_redis.dupefilter import RFPDupeFilter
from scrapy_redis.queue import PriorityQueue
from scrapy_redis.scheduler import Scheduler as _RedisScheduler

from anfe.core.store import now_iso

from .frontier import FRONTIER_ID, NOT_DONE_STAT, decode_request, encode_request, frontier_id, request_done
from .ledger import is_transient

logger = logging.getLogger(__name__)

DEFAULT_PREFIX = "anfe"

# Seen and queued in one step, so a kill between the two cannot lose a request; a request coming
# back (a retry, a redirect) leaves the in-flight hash in the same step.
_ENQUEUE = """
local fresh = redis.call('sadd', KEYS[1], ARGV[1])
if ARGV[4] == '1' and fresh == 0 then
  if ARGV[5] ~= '' then redis.call('hdel', KEYS[3], ARGV[5]) end
  return 0
end
redis.call('zadd', KEYS[2], ARGV[2], ARGV[3])
if ARGV[5] ~= '' then redis.call('hdel', KEYS[3], ARGV[5]) end
return 1
"""
# Pop the best request and hold it as in flight, in one step.
_POP = """
local r = redis.call('zrange', KEYS[1], 0, 0, 'WITHSCORES')
if #r == 0 then return false end
redis.call('zremrangebyrank', KEYS[1], 0, 0)
redis.call('hset', KEYS[2], r[1], r[2])
return r[1]
"""
# Put every request a (dead) process held back in the queue, and forget the hash.
_REQUEUE = """
local all = redis.call('hgetall', KEYS[1])
for i = 1, #all, 2 do redis.call('zadd', KEYS[2], all[i + 1], all[i]) end
redis.call('del', KEYS[1])
return #all / 2
"""


def redis_client(url: str) -> Any:
    """A client for ``redis://HOST:PORT/DB`` (bytes in, bytes out)."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=10)


class RedisScheduler(_RedisScheduler):
    """scrapy-redis's scheduler (its priority queue and RFPDupeFilter) with in-flight tracking.

    Settings: REDIS_URL, REDIS_KEY_PREFIX, REDIS_WORKER_TTL (seconds without a heartbeat after
    which a process counts as dead; default 15).
    """

    @classmethod
    def from_crawler(cls, crawler: Any) -> "RedisScheduler":
        settings = crawler.settings
        prefix = settings.get("REDIS_KEY_PREFIX") or DEFAULT_PREFIX
        server = redis_client(settings.get("REDIS_URL"))
        server.ping()
        instance = cls(server=server, persist=True, queue_key=f"{prefix}:%(spider)s:requests",
                       queue_cls="scrapy_redis.queue.PriorityQueue",
                       dupefilter_key=f"{prefix}:%(spider)s:dupefilter",
                       dupefilter_cls="scrapy_redis.dupefilter.RFPDupeFilter")
        instance.stats = crawler.stats
        instance.crawler = crawler
        instance.prefix = prefix
        instance.ttl = settings.getfloat("REDIS_WORKER_TTL", 15.0)
        instance.worker = uuid.uuid4().hex[:12]
        instance._held: dict[str, bytes] = {}
        instance._beat: Any = None
        crawler.signals.connect(instance._on_done, signal=request_done)
        crawler.signals.connect(instance._on_idle, signal=signals.spider_idle)
        return instance

    # -- keys -----------------------------------------------------------------------------
    def _key(self, what: str) -> str:
        return f"{self.prefix}:{self.spider.name}:{what}"

    @property
    def _inflight(self) -> str:
        return self._key(f"inflight:{self.worker}")

    @property
    def _alive(self) -> str:
        return self._key(f"alive:{self.worker}")

    # -- scheduler interface -------------------------------------------------------------
    def open(self, spider: Any) -> None:
        self.queue = PriorityQueue(server=self.server, spider=spider, key=self.queue_key % {"spider": spider.name})
        self.df = RFPDupeFilter(self.server, key=self.dupefilter_key % {"spider": spider.name})
        self.spider = spider
        self._enqueue = self.server.register_script(_ENQUEUE)
        self._pop = self.server.register_script(_POP)
        self._requeue = self.server.register_script(_REQUEUE)
        self._heartbeat()
        self._beat = create_looping_call(self._heartbeat)
        self._beat.start(max(self.ttl / 3, 0.2), now=False)
        back = self.reclaim()
        queued = len(self.queue)
        if queued:
            logger.info("joining the crawl in Redis as worker %s: %d requests queued (%d taken back from "
                        "stopped workers)", self.worker, queued, back)

    def close(self, reason: str) -> None:
        if self._beat is not None and self._beat.running:
            self._beat.stop()
        held = int(self._requeue(keys=[self._inflight, self.queue.key]))  # an early stop: back in the queue
        self.server.delete(self._alive)
        self.stats.set_value(NOT_DONE_STAT, held if reason == "finished" else 0)
        if held and reason == "finished":
            logger.error("%d requests were not done although the crawl ran out of work", held)

    def enqueue_request(self, request: Request) -> bool:
        rid = request.meta.get(FRONTIER_ID)
        old = self._held.pop(rid, b"") if rid is not None else b""
        frontier_id(request)
        data = encode_request(request, self.spider)
        added = self._enqueue(
            keys=[self.df.key, self.queue.key, self._inflight],
            args=[self.df.request_fingerprint(request), -request.priority, data,
                  "0" if request.dont_filter else "1", old])
        if not added:
            self.stats.inc_value("dupefilter/filtered")
            return False
        self.stats.inc_value("scheduler/enqueued/redis")
        return True

    def next_request(self) -> Request | None:
        data = self._pop(keys=[self.queue.key, self._inflight])
        if not data:
            return None
        request = decode_request(data, self.spider)
        self._held[request.meta[FRONTIER_ID]] = data
        self.stats.inc_value("scheduler/dequeued/redis")
        return request

    def has_pending_requests(self) -> bool:
        return len(self.queue) > 0

    # -- in flight, heartbeats, dead workers ---------------------------------------------
    def _on_done(self, request: Request) -> None:
        data = self._held.pop(request.meta.get(FRONTIER_ID), None)
        if data is not None:
            self.server.hdel(self._inflight, data)

    def _heartbeat(self) -> None:
        self.server.set(self._alive, now_iso(), px=int(self.ttl * 1000))

    def _workers(self) -> list[tuple[str, bool]]:
        """(in-flight key, its worker alive) for every other worker holding requests."""
        pattern = self._key("inflight:*")
        found = []
        for key in self.server.scan_iter(match=pattern):
            key = key.decode() if isinstance(key, bytes) else key
            worker = key.rsplit(":", 1)[1]
            if worker != self.worker:
                found.append((key, bool(self.server.exists(self._key(f"alive:{worker}")))))
        return found

    def reclaim(self) -> int:
        """Put back in the queue what stopped workers held; returns how many requests."""
        back = 0
        for key, alive in self._workers():
            if not alive:
                n = int(self._requeue(keys=[key, self.queue.key]))
                if n:
                    logger.info("took back %d requests from a stopped worker (%s)", n, key.rsplit(":", 1)[1])
                    self.stats.inc_value("anfe/frontier/taken_back", n)
                back += n
        return back

    def _on_idle(self, spider: Any) -> None:
        """Stay open while another live worker may still add requests, or a dead one's can be taken back."""
        if self.reclaim() or len(self.queue):
            raise DontCloseSpider
        if any(alive and self.server.hlen(key) for key, alive in self._workers()):
            raise DontCloseSpider


class ContentClaims:
    """One writer per content hash among the processes of a crawl (``<prefix>:claim:<sha256>``).

    Two processes that download the same bytes under two URLs at once would both find no store
    record and both count the photo as new. The first to claim the hash writes it; the other
    waits for its record and treats the photo as the duplicate (or label conflict) it is. A claim
    expires, so a writer killed before its record never blocks the photo for good.
    """

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX, ttl_s: int = 120) -> None:
        self.server = redis_client(url)
        self.prefix = prefix
        self.ttl_s = ttl_s

    def claim(self, digest: str, url: str) -> bool:
        """True when this process is the one to write ``digest``."""
        return bool(self.server.set(f"{self.prefix}:claim:{digest}", url, nx=True, ex=self.ttl_s))

    def wait_for_record(self, store: Any, digest: str, timeout_s: float = 30.0) -> dict | None:
        """The other writer's store record, once written (None if it never comes: write it then)."""
        import time

        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            record = store.get_image(digest)
            if record is not None:
                return record
            time.sleep(0.05)
        return None

    def close(self) -> None:
        self.server.close()


class RedisLedger:
    """The fetch ledger in Redis (``<prefix>:ledger``): the same interface as :class:`scraper.ledger.UrlLedger`,
    shared by every process and machine of the crawl."""

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX) -> None:
        self.server = redis_client(url)
        self.key = f"{prefix}:ledger"

    def seen(self, url: str) -> bool:
        return bool(self.server.hexists(self.key, url))

    def outcome(self, url: str) -> str | None:
        value = self.server.hget(self.key, url)
        return json.loads(value)["outcome"] if value else None

    def record(self, url: str, outcome: str, content_hash: str | None = None) -> None:
        if is_transient(outcome):
            return
        self.server.hset(self.key, url, json.dumps({"outcome": outcome, "content_hash": content_hash,
                                                    "at": now_iso()}))

    def __len__(self) -> int:
        return int(self.server.hlen(self.key))

    def close(self) -> None:
        self.server.close()
