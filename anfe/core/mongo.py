"""The one MongoDB connector: the store (:mod:`anfe.core.store.mongo`) and the analysis cache
(:mod:`anfe.faces.cache`) both connect, time out, retry, word their errors and redact their URI
here, so a MongoDB server fails the same way behind either.

- Connecting: one client per URI with the timeouts below; pymongo connects lazily, so the server
  is pinged at once and an absent one fails here, within ``timeout_ms``.
- Durability: writes are acknowledged only once in the server's journal (``journal=True``) unless
  the URI sets its own write concern (``w=``, ``journal=``); a server killed after acknowledging a
  write still has it (tested against a server that syncs its journal on every commit, as mongod
  does for ``j: true`` writes).
- Retrying: :meth:`MongoConnection.retrying` sends an idempotent operation again after a
  transient failure (a closed connection, "not primary") until the timeout. pymongo's own
  retryable writes do not cover a standalone server, hence this.
- Errors: every failure is one line naming the (redacted) URI and the way out:
  ``unreachable`` when the server cannot be reached within the timeout, ``failed`` otherwise.

The only modules that import pymongo are this one and the two that use it.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import pymongo
from pymongo import errors as mongo_errors

from .errors import AnfeError, StoreError, StoreUnreachableError

#: Database used when the URI names none (``mongodb://host:27017``).
DEFAULT_DATABASE = "anfe"
#: How long to wait for a server by default (connect, select, retry), in milliseconds.
DEFAULT_TIMEOUT_MS = 5000
#: Server error codes after which the same (idempotent) operation may simply be sent again:
#: not primary / node recovering / shutting down / network errors reported by the server.
RETRYABLE_CODES = frozenset({6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436})
_USERINFO = re.compile(r"^(mongodb(?:\+srv)?://)([^@/]*)@")
_T = TypeVar("_T")


def redact(uri: str) -> str:
    """``uri`` with the password replaced by ``***`` (safe to print in messages and logs)."""
    match = _USERINFO.match(uri)
    if not match or ":" not in match.group(2):
        return uri
    user = match.group(2).split(":", 1)[0]
    return f"{match.group(1)}{user}:***@{uri[match.end():]}"


def first_line(exc: BaseException) -> str:
    """The gist of an exception's message (pymongo's carry timeouts and a topology dump after it)."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    for tail in (" (configured timeouts", ", Timeout:", ", full error:"):
        text = text.split(tail, 1)[0]
    return text[:300]


class MongoConnection:
    """A client, its default database and the error and retry policy, for one URI.

    ``noun`` names the server in messages ("MongoDB", "the MongoDB cache"); ``unreachable`` and
    ``failed`` are the exception classes raised (the store's by default). Raises ``failed`` for a
    bad URI and ``unreachable`` when no server answers within ``timeout_ms``.
    """

    def __init__(self, uri: str, timeout_ms: int = DEFAULT_TIMEOUT_MS, *, noun: str = "MongoDB",
                 unreachable: type[AnfeError] = StoreUnreachableError, failed: type[AnfeError] = StoreError) -> None:
        self.uri = redact(uri)
        self.timeout_ms = int(timeout_ms)
        self.noun = noun
        self.unreachable = unreachable
        self.failed = failed
        try:
            self.client: pymongo.MongoClient = pymongo.MongoClient(
                uri,
                serverSelectionTimeoutMS=self.timeout_ms,
                connectTimeoutMS=self.timeout_ms,
                # A server that accepts a connection but stops answering must not hang us either;
                # one operation (a large build document) gets generously more than the handshake.
                socketTimeoutMS=max(6 * self.timeout_ms, 30_000),
                appname="anfe",
                # Polling (not streaming) heartbeats: after a "not primary" answer pymongo checks
                # the server again at once instead of at the end of a 10 s streaming wait.
                **({} if "servermonitoringmode" in uri.lower() else {"serverMonitoringMode": "poll"}),
                # Acknowledged means on disk (the journal): a crawl's ledger, a reviewer's decision,
                # a clean's journal and a cached analysis trust what the server acknowledged, even
                # across a server crash. A URI that sets its own write concern keeps it.
                **({} if re.search(r"[?&](w|journal)=", uri, re.IGNORECASE) else {"journal": True}),
            )
        except (mongo_errors.ConfigurationError, ValueError, TypeError) as exc:  # InvalidURI is a ValueError
            raise failed(f"bad MongoDB URI {self.uri}: {exc}; use mongodb://host:27017/database") from exc
        self.database = self.client.get_default_database(DEFAULT_DATABASE)
        try:
            with self.errors("connect to"):
                self.client.admin.command("ping")
        except BaseException:
            self.close()  # stop pymongo's monitor threads
            raise

    def close(self) -> None:
        self.client.close()

    @contextlib.contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Turn pymongo's exceptions into one line naming the URI and the way out."""
        try:
            yield
        except (mongo_errors.ServerSelectionTimeoutError, mongo_errors.ConnectionFailure) as exc:
            raise self.unreachable(
                f"cannot {action} {self.noun} at {self.uri} within {self.timeout_ms / 1000:g} s "
                f"({first_line(exc)}): start mongod there, or check the URI"
            ) from exc
        except mongo_errors.OperationFailure as exc:
            if exc.code in (13, 18):  # Unauthorized, AuthenticationFailed
                raise self.failed(
                    f"{self.noun} at {self.uri} refused access ({first_line(exc)}): check the user "
                    "and password in the URI, and the user's roles on the database"
                ) from exc
            raise self.failed(f"{self.noun} at {self.uri} failed to {action}: {first_line(exc)}") from exc
        except mongo_errors.PyMongoError as exc:
            raise self.failed(f"{self.noun} at {self.uri} failed to {action}: {first_line(exc)}") from exc

    def retrying(self, action: str, operation: Callable[[], _T]) -> _T:
        """``operation()`` (idempotent), sent again after a transient failure until the timeout."""
        deadline = time.monotonic() + self.timeout_ms / 1000
        delay = 0.05
        with self.errors(action):
            while True:
                last_try = time.monotonic() + delay > deadline
                try:
                    return operation()
                except mongo_errors.ServerSelectionTimeoutError:
                    raise  # pymongo has already waited the whole timeout for a server
                except mongo_errors.AutoReconnect:  # connection closed, network timeout, not primary
                    if last_try:
                        raise
                except mongo_errors.OperationFailure as exc:
                    retryable = exc.code in RETRYABLE_CODES or exc.has_error_label("RetryableWriteError")
                    if last_try or not retryable:
                        raise
                time.sleep(delay)
                delay = min(2 * delay, 1.0)
