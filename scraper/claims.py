"""Locks per content hash among the processes of one crawl: one process at a time looks a photo's
bytes up in the store, writes them and records them (or notes the duplicate's URL).

Two processes that download the same bytes under two URLs at once would otherwise both find no
store record and both count the photo as new, or both read its record and both append a URL to
``other_urls``, the second write losing the first URL. Within a process
:class:`scraper.keylocks.KeyLocks` serialise such photos; among processes, these locks do:
:class:`LocalContentLocks` in a SQLite file for the processes of ``anfe crawl urllist --processes
N``, :class:`scraper.redisfrontier.RedisContentLocks` in Redis for ``--redis`` crawls on several
machines. A lock of a process that is gone (killed mid-photo) is taken over, so none blocks a photo
for good.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
from pathlib import Path
from typing import Protocol

from anfe.core.processes import process_alive

CLAIMS_FILE = "crawl_claims.sqlite"
#: Seconds between tries of a lock another process holds.
POLL_S = 0.02


class ContentLocks(Protocol):
    """What the writer uses of a cross-process lock table."""

    def try_lock(self, digest: str) -> bool: ...
    def unlock(self, digest: str) -> None: ...
    def close(self) -> None: ...


async def hold(locks: ContentLocks, digest: str) -> None:
    """Wait (without blocking the event loop) until this process holds ``digest``'s lock."""
    while not locks.try_lock(digest):
        await asyncio.sleep(POLL_S)


def this_process() -> str:
    """``host:pid``, the name a lock is held under."""
    return f"{socket.gethostname()}:{os.getpid()}"


def holder_gone(holder: str) -> bool:
    """True when ``host:pid`` names a process of this machine that no longer runs."""
    host, _, pid = holder.partition(":")
    return host == socket.gethostname() and pid.isdigit() and not process_alive(int(pid))


class LocalContentLocks:
    """The locks in a SQLite table ``digest -> holder`` (a row is a held lock)."""

    def __init__(self, path: str | Path) -> None:
        self.owner = this_process()
        self._db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")  # coordination only: after a crash its holders are gone
        self._db.execute("CREATE TABLE IF NOT EXISTS claims (digest TEXT PRIMARY KEY, owner TEXT NOT NULL)")

    def try_lock(self, digest: str) -> bool:
        """True when this process now holds ``digest`` (free, or its holder is gone)."""
        if self._db.execute("INSERT OR IGNORE INTO claims VALUES (?, ?)", (digest, self.owner)).rowcount:
            return True
        row = self._db.execute("SELECT owner FROM claims WHERE digest=?", (digest,)).fetchone()
        if row is None:  # unlocked meanwhile
            return bool(self._db.execute("INSERT OR IGNORE INTO claims VALUES (?, ?)", (digest, self.owner)).rowcount)
        if row[0] == self.owner:
            return True
        return holder_gone(row[0]) and bool(self._db.execute(
            "UPDATE claims SET owner=? WHERE digest=? AND owner=?", (self.owner, digest, row[0])).rowcount)

    def unlock(self, digest: str) -> None:
        self._db.execute("DELETE FROM claims WHERE digest=? AND owner=?", (digest, self.owner))

    def close(self) -> None:
        self._db.close()
