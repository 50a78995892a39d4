"""The fetch ledger: every image URL whose outcome is final (stored, duplicate, dropped for good).

Kept beside the catalog (``<dataset root>/crawl_ledger.sqlite``), or in Redis (``<prefix>:ledger``)
when the crawl's frontier is there, so that re-running a finished crawl, with or without its
JOBDIR, schedules no image download again. Transient failures (5xx, 403/429, timeouts) are not
recorded, so a later run retries them. Each component that needs it opens its own with
:func:`open_ledger` (SQLite in WAL mode and Redis both serve several connections).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from anfe.core.crashpoints import crash_point
from anfe.core.store import now_iso

#: Outcomes worth retrying on a later run: never written to the ledger.
TRANSIENT_REASONS = frozenset({
    "network-error", "timeout", "incomplete-download", "http-403", "http-408", "http-429", "ignored",
})

LEDGER_NAME = "crawl_ledger.sqlite"
DEFAULT_PREFIX = "anfe"


def is_transient(reason: str) -> bool:
    """True for failures a later run should retry (server errors, throttling, network trouble)."""
    return reason in TRANSIENT_REASONS or reason.startswith("http-5")


class Ledger(Protocol):
    """What the spiders, pipelines and middlewares use of a ledger."""

    def seen(self, url: str) -> bool: ...
    def outcome(self, url: str) -> str | None: ...
    def record(self, url: str, outcome: str, content_hash: str | None = None) -> None: ...
    def record_many(self, lines: Iterable[tuple[str, str, str | None]]) -> None: ...
    def close(self) -> None: ...


def redis_client(url: str) -> Any:
    """A client for ``redis://HOST:PORT/DB`` (bytes in, bytes out)."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=10)


def open_ledger(settings: Any) -> "UrlLedger | RedisLedger":
    """The crawl's ledger from its settings: in Redis with REDIS_URL, else in DATASET_ROOT."""
    if settings.get("REDIS_URL"):
        return RedisLedger(settings.get("REDIS_URL"), settings.get("REDIS_KEY_PREFIX") or DEFAULT_PREFIX)
    return UrlLedger(Path(settings.get("DATASET_ROOT") or "./data") / LEDGER_NAME)


class UrlLedger:
    """A SQLite table ``url -> (outcome, content_hash, at)``; safe for several processes.

    ``synchronous=NORMAL``: in WAL mode a commit survives a killed process but not a power cut. A
    ledger line lost that way only makes the next run fetch that URL again, and the writer then
    settles it from its store record ("settled again"), so no sync to disk per line is needed.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS urls (url TEXT PRIMARY KEY, outcome TEXT NOT NULL,"
            " content_hash TEXT, at TEXT NOT NULL)"
        )

    def seen(self, url: str) -> bool:
        """True when ``url`` already has a final outcome."""
        return self._db.execute("SELECT 1 FROM urls WHERE url=?", (url,)).fetchone() is not None

    def outcome(self, url: str) -> str | None:
        """The recorded outcome of ``url`` (``stored``, ``exact-duplicate``, another drop reason), or None."""
        row = self._db.execute("SELECT outcome FROM urls WHERE url=?", (url,)).fetchone()
        return row[0] if row else None

    def record(self, url: str, outcome: str, content_hash: str | None = None) -> None:
        """Remember a final outcome (transient ones are ignored)."""
        if is_transient(outcome):
            return
        self.record_many([(url, outcome, content_hash)])

    def record_many(self, lines: Iterable[tuple[str, str, str | None]]) -> None:
        """Remember several final outcomes in one transaction (transient ones are ignored)."""
        at = now_iso()
        rows = [(url, outcome, digest, at) for url, outcome, digest in lines if not is_transient(outcome)]
        if not rows:
            return
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR REPLACE INTO urls VALUES (?, ?, ?, ?)", rows)
        crash_point("crawl.ledger")

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM urls").fetchone()[0]

    def close(self) -> None:
        self._db.close()


class RedisLedger:
    """The fetch ledger in Redis (``<prefix>:ledger``): the same interface as :class:`UrlLedger`,
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
        self.record_many([(url, outcome, content_hash)])

    def record_many(self, lines: Iterable[tuple[str, str, str | None]]) -> None:
        """Remember several final outcomes in one HSET (transient ones are ignored)."""
        at = now_iso()
        mapping = {url: json.dumps({"outcome": outcome, "content_hash": digest, "at": at})
                   for url, outcome, digest in lines if not is_transient(outcome)}
        if not mapping:
            return
        self.server.hset(self.key, mapping=mapping)
        crash_point("crawl.ledger")

    def __len__(self) -> int:
        return int(self.server.hlen(self.key))

    def close(self) -> None:
        self.server.close()
