"""The fetch ledger: every image URL whose outcome is final (stored, duplicate, dropped for good).

Kept beside the catalog (``<dataset root>/crawl_ledger.sqlite``) so that re-running a finished
crawl, with or without its JOBDIR, schedules no image download again. Transient failures
(5xx, 403/429, timeouts) are not recorded, so a later run retries them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from anfe.core.store import now_iso

#: Outcomes worth retrying on a later run: never written to the ledger.
TRANSIENT_REASONS = frozenset({
    "network-error", "timeout", "incomplete-download", "http-403", "http-408", "http-429", "ignored",
})

LEDGER_NAME = "crawl_ledger.sqlite"


def is_transient(reason: str) -> bool:
    """True for failures a later run should retry (server errors, throttling, network trouble)."""
    return reason in TRANSIENT_REASONS or reason.startswith("http-5")


class UrlLedger:
    """A SQLite table ``url -> (outcome, content_hash, at)``; safe for several processes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
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
        self._db.execute(
            "INSERT OR REPLACE INTO urls VALUES (?, ?, ?, ?)", (url, outcome, content_hash, now_iso())
        )

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM urls").fetchone()[0]

    def close(self) -> None:
        self._db.close()
