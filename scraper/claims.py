"""One writer per content hash among the local processes of a crawl, in a SQLite file.

``anfe crawl urllist --processes N`` runs N crawls into one dataset root. Two of them that download
the same bytes under two URLs at once would both find no store record and both count the photo as
new. The first to claim the hash writes it; the other waits for its record and treats the photo as
the duplicate (or label conflict) it is. A claim of a process that is gone (killed before it
wrote the record) is taken over. :class:`scraper.redisfrontier.ContentClaims` is the same for
processes on several machines, in Redis.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

from .processes import process_alive

CLAIMS_FILE = "crawl_claims.sqlite"


def wait_for_record(store: Any, digest: str, timeout_s: float = 30.0) -> dict | None:
    """The other writer's store record, once written (None if it never comes: write it then)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record = store.get_image(digest)
        if record is not None:
            return record
        time.sleep(0.05)
    return None


class LocalContentClaims:
    """``claim(digest, url)`` and ``wait_for_record(store, digest)``, as the Redis claims."""

    def __init__(self, path: str | Path) -> None:
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._db = sqlite3.connect(path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=OFF")  # coordination only: a lost claim is claimed again
        self._db.execute("CREATE TABLE IF NOT EXISTS claims (digest TEXT PRIMARY KEY, owner TEXT NOT NULL)")

    def claim(self, digest: str, url: str) -> bool:
        """True when this process is the one to write ``digest`` (also when the claimer is gone)."""
        if self._db.execute("INSERT OR IGNORE INTO claims VALUES (?, ?)", (digest, self.owner)).rowcount:
            return True
        row = self._db.execute("SELECT owner FROM claims WHERE digest=?", (digest,)).fetchone()
        theirs = row[0] if row else ""
        if theirs == self.owner:
            return True
        host, _, pid = theirs.partition(":")
        if host == socket.gethostname() and pid.isdigit() and not process_alive(int(pid)):
            return bool(self._db.execute("UPDATE claims SET owner=? WHERE digest=? AND owner=?",
                                         (self.owner, digest, theirs)).rowcount)
        return False

    def wait_for_record(self, store: Any, digest: str, timeout_s: float = 30.0) -> dict | None:
        return wait_for_record(store, digest, timeout_s)

    def close(self) -> None:
        self._db.close()
