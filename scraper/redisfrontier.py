"""One crawl frontier for several ``anfe crawl`` processes: scrapy-redis's queue and dupefilter in Redis,
plus what they lack for a ``kill -9`` and for sharing the work.

The invariant of :mod:`scraper.frontier` holds here too: a request a process took is held in that
process's *in-flight* hash until one Lua script adds every child it produced (refusing seen ones
and those over their person's cap) and removes it from the hash. A process whose heartbeat has
lapsed has its held requests put back in the queue by whichever process notices first.

Sharing: a process claims a bounded batch (REDIS_CLAIM_BATCH, default 2) only when it has a free
slot, never the whole queue, and a process with free slots polls the shared queue every
REDIS_POLL_INTERVAL seconds (default 0.05), so processes started together split the pages.

Keys (``<prefix>`` is REDIS_KEY_PREFIX, ``anfe`` by default; use one Redis database, or one prefix,
per crawl):

- ``<prefix>:<spider>:requests``: the queue (scrapy-redis's priority queue, a sorted set);
- ``<prefix>:<spider>:dupefilter``: fingerprints of every request scheduled (scrapy-redis's);
- ``<prefix>:<spider>:inflight:<worker>``: requests a process is working on (encoded -> queue score);
- ``<prefix>:<spider>:alive:<worker>``: a process's heartbeat (expires after REDIS_WORKER_TTL s);
- ``<prefix>:<spider>:person_images``: photos scheduled per person (the per-person cap);
- ``<prefix>:<spider>:done``: how many requests were done;
- ``<prefix>:ledger``: the fetch ledger (image URL -> final outcome), shared by every process.

The frontier persists (SCHEDULER_PERSIST): a re-run of a finished crawl fetches nothing; delete
the ``<prefix>:<spider>:*`` keys (or use another database) to crawl the site again, and the
ledger still keeps every stored photo from being downloaded twice.
"""

from __future__ import annotations

import logging
import uuid
from collections import deque
from typing import Any

from scrapy import Request, signals
from scrapy.exceptions import DontCloseSpider
from scrapy.utils.asyncio import create_looping_call
from scrapy_redis.dupefilter import RFPDupeFilter
from scrapy_redis.queue import PriorityQueue
from scrapy_redis.scheduler import Scheduler as _RedisScheduler

from anfe.core.crashpoints import crash_point
from anfe.core.store import now_iso

from .frontier import (
    CAP_LIMIT, CAP_PERSON, FRONTIER_ID, NOT_DONE_STAT, RECOVERED_STAT, decode_request, encode_request,
    frontier_commit, frontier_id,
)
from .claims import holder_gone, this_process
from .ledger import DEFAULT_PREFIX, RedisLedger, redis_client

__all__ = ["RedisContentLocks", "RedisLedger", "RedisScheduler", "redis_client"]

logger = logging.getLogger(__name__)

# A start request, a retry or a redirect: seen and queued in one step, so a kill between the two
# cannot lose a request; a request coming back leaves the in-flight hash in the same step.
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
# The atomic step: add the children (dupefilter, per-person cap) and drop the parent from the
# in-flight hash. KEYS: dupefilter, queue, in-flight, person counts, done counter. ARGV[1]: the
# parent's encoded form ('' = none), ARGV[2]: '1' when the parent is done; then per child 6
# values: fingerprint, score, data, '1' to filter, person ('' = none), cap. Returns one code per
# child: 1 added, 0 seen before, 2 over the cap.
_COMMIT = """
local codes = {}
local i = 3
while i <= #ARGV do
  local fp, score, data, filter, person, cap = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4], tonumber(ARGV[i+5])
  local code = 1
  if filter == '1' and redis.call('sismember', KEYS[1], fp) == 1 then code = 0 end
  if code == 1 and person ~= '' and cap > 0 and tonumber(redis.call('hget', KEYS[4], person) or '0') >= cap then
    code = 2
  end
  if code == 1 then
    redis.call('sadd', KEYS[1], fp)
    if person ~= '' and cap > 0 then redis.call('hincrby', KEYS[4], person, 1) end
    redis.call('zadd', KEYS[2], score, data)
  end
  codes[#codes + 1] = code
  i = i + 6
end
if ARGV[2] == '1' and ARGV[1] ~= '' then
  if redis.call('hdel', KEYS[3], ARGV[1]) == 1 then redis.call('incr', KEYS[5]) end
end
return codes
"""
# Claim up to ARGV[1] of the best requests and hold them as in flight, in one step.
_CLAIM = """
local r = redis.call('zrange', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
if #r == 0 then return {} end
redis.call('zremrangebyrank', KEYS[1], 0, #r / 2 - 1)
local out = {}
for i = 1, #r, 2 do
  redis.call('hset', KEYS[2], r[i], r[i + 1])
  out[#out + 1] = r[i]
end
return out
"""
# Put every request a (dead) process held back in the queue, and forget the hash.
_REQUEUE = """
local all = redis.call('hgetall', KEYS[1])
for i = 1, #all, 2 do redis.call('zadd', KEYS[2], all[i + 1], all[i]) end
redis.call('del', KEYS[1])
return #all / 2
"""


class RedisScheduler(_RedisScheduler):
    """scrapy-redis's scheduler (its priority queue and RFPDupeFilter) with in-flight tracking,
    atomic commits, bounded claims and polling.

    Settings: REDIS_URL, REDIS_KEY_PREFIX, REDIS_WORKER_TTL (seconds without a heartbeat after
    which a process counts as dead; default 15), REDIS_CLAIM_BATCH, REDIS_POLL_INTERVAL.
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
        instance.batch = max(1, settings.getint("REDIS_CLAIM_BATCH", 2))
        instance.poll_s = settings.getfloat("REDIS_POLL_INTERVAL", 0.05)
        instance.worker = uuid.uuid4().hex[:12]
        instance._held: dict[str, bytes] = {}
        instance._local: deque[Request] = deque()  # claimed (held in flight), not handed out yet
        instance._woken: set[str] = set()  # claimed by the poll, on their way through engine.crawl
        instance._committed: set[str] = set()  # added by commit(), on their way through the engine
        instance._beat: Any = None
        instance._poll: Any = None
        crawler.signals.connect(instance.commit, signal=frontier_commit)
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
        self._commit = self.server.register_script(_COMMIT)
        self._claim = self.server.register_script(_CLAIM)
        self._requeue = self.server.register_script(_REQUEUE)
        self._heartbeat()
        self._beat = create_looping_call(self._heartbeat)
        self._beat.start(max(self.ttl / 3, 0.2), now=False)
        self._poll = create_looping_call(self._take_work)
        self._poll.start(self.poll_s, now=False)
        back = self.reclaim()
        queued = len(self.queue)
        if queued:
            logger.info("joining the crawl in Redis as worker %s: %d requests queued (%d taken back from "
                        "stopped workers)", self.worker, queued, back)
            self.stats.set_value(RECOVERED_STAT, queued)

    def close(self, reason: str) -> None:
        for loop in (self._beat, self._poll):
            if loop is not None and loop.running:
                loop.stop()
        held = int(self._requeue(keys=[self._inflight, self.queue.key]))  # an early stop: back in the queue
        self.server.delete(self._alive)
        left = held + len(self.queue)
        self.stats.set_value(NOT_DONE_STAT, left if reason == "finished" else 0)
        if left and reason == "finished":
            logger.error("%d requests were not done although the crawl ran out of work", left)

    def enqueue_request(self, request: Request) -> bool:
        rid = request.meta.get(FRONTIER_ID)
        if rid is not None and rid in self._woken:  # claimed by the poll: hand it out here
            self._woken.discard(rid)
            self._local.append(request)
            return True
        if rid is not None and rid in self._committed:  # in the shared queue already
            self._committed.discard(rid)
            return True
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
        crash_point("frontier.add")
        self.stats.inc_value("scheduler/enqueued/redis")
        return True

    def next_request(self) -> Request | None:
        if not self._local:
            self._claim_batch()
        if not self._local:
            return None
        self.stats.inc_value("scheduler/dequeued/redis")
        return self._local.popleft()

    def has_pending_requests(self) -> bool:
        return bool(self._local) or len(self.queue) > 0

    # -- the atomic step, claims ----------------------------------------------------------
    def commit(self, parent: Request | None, children: list[Request], done: bool) -> list[Request]:
        """Add ``children`` and (when ``done``) drop ``parent`` from this process's in-flight hash:
        one Lua script. Returns the children added."""
        parent_id = parent.meta.get(FRONTIER_ID) if parent is not None else None
        parent_data = self._held.get(parent_id, b"") if parent_id is not None else b""
        args: list[Any] = [parent_data, "1" if done else "0"]
        for child in children:
            frontier_id(child)
            args += [self.df.request_fingerprint(child), -child.priority, encode_request(child, self.spider),
                     "0" if child.dont_filter else "1", str(child.meta.get(CAP_PERSON) or ""),
                     int(child.meta.get(CAP_LIMIT) or 0) if child.meta.get(CAP_PERSON) is not None else 0]
        codes = self._commit(keys=[self.df.key, self.queue.key, self._inflight, self._key("person_images"),
                                   self._key("done")], args=args)
        added = []
        for child, code in zip(children, codes):
            if code == 1:
                added.append(child)
                self._committed.add(child.meta[FRONTIER_ID])
                self.stats.inc_value("scheduler/enqueued/redis")
            else:
                self.stats.inc_value("dupefilter/filtered" if code == 0 else "anfe/skipped/person-cap")
        if added:
            crash_point("frontier.add")
        if done and parent_id is not None and self._held.pop(parent_id, None) is not None:
            crash_point("frontier.done")
        return added

    def _claim_batch(self) -> None:
        """Claim up to REDIS_CLAIM_BATCH requests of the shared queue into the local batch."""
        for data in self._claim(keys=[self.queue.key, self._inflight], args=[self.batch]):
            request = decode_request(data, self.spider)
            self._held[request.meta[FRONTIER_ID]] = data
            self._local.append(request)

    def _take_work(self) -> None:
        """The poll: with a free slot and nothing claimed, claim work and wake the engine."""
        engine = self.crawler.engine
        if engine is None or self._local or engine.needs_backout() or not len(self.queue):
            return
        self._claim_batch()
        if self._local:
            first = self._local.popleft()
            self._woken.add(first.meta[FRONTIER_ID])
            engine.crawl(first)  # wakes the engine; enqueue_request hands it back to the local batch

    # -- in flight, heartbeats, dead workers ---------------------------------------------
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
                    self.stats.inc_value(RECOVERED_STAT, n)
                back += n
        return back

    def _on_idle(self, spider: Any) -> None:
        """Stay open while another live worker may still add requests, or a dead one's can be taken back."""
        if self.reclaim() or len(self.queue) or self._local:
            raise DontCloseSpider
        if any(alive and self.server.hlen(key) for key, alive in self._workers()):
            raise DontCloseSpider


# Replace a claim only if it still holds the value read (a dead process's).
_TAKE_OVER = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  redis.call('set', KEYS[1], ARGV[2], 'EX', tonumber(ARGV[3]))
  return 1
end
return 0
"""
_UNLOCK = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class RedisContentLocks:
    """:mod:`scraper.claims`'s locks per content hash in Redis (``<prefix>:claim:<sha256>``), for
    the processes of a ``--redis`` crawl on any machine. A lock expires after ``ttl_s`` (a holder
    on another machine that died), and one of a dead process on this machine is taken over at once.
    """

    def __init__(self, url: str, prefix: str = DEFAULT_PREFIX, ttl_s: int = 120) -> None:
        self.server = redis_client(url)
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.owner = this_process()
        self._take_over = self.server.register_script(_TAKE_OVER)
        self._unlock = self.server.register_script(_UNLOCK)

    def try_lock(self, digest: str) -> bool:
        """True when this process now holds ``digest`` (free, expired, or its holder is gone)."""
        key, mine = f"{self.prefix}:claim:{digest}", self.owner.encode()
        if self.server.set(key, mine, nx=True, ex=self.ttl_s):
            return True
        theirs = self.server.get(key)
        if theirs is None:
            return bool(self.server.set(key, mine, nx=True, ex=self.ttl_s))
        if theirs == mine:
            return True
        return holder_gone(theirs.decode("utf-8", "replace")) and bool(
            self._take_over(keys=[key], args=[theirs, mine, self.ttl_s]))

    def unlock(self, digest: str) -> None:
        self._unlock(keys=[f"{self.prefix}:claim:{digest}"], args=[self.owner])

    def close(self) -> None:
        self.server.close()
