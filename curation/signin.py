"""Sign-in for the review page, free of Streamlit: the policy, failed-attempt limits per client
and per name (logged to ``curation.signin``), one answer for a wrong password and an unknown name,
and sessions that end when idle or when the reviewer's entry changes."""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import reviewers as reviewer_file
from .durations import in_words

log = logging.getLogger("curation.signin")

#: The one answer for a wrong password and for an unknown name.
WRONG = "Wrong name or password."


@dataclass(frozen=True)
class SignInPolicy:
    """How long a session may stay idle (30 min), and how many failed sign-ins per name (5) and per
    client address (20) are allowed within the sliding window (15 min)."""

    idle_seconds: float = 30 * 60
    failures_per_name: int = 5
    failures_per_client: int = 20
    window_seconds: float = 15 * 60

    def __post_init__(self) -> None:
        if min(self.idle_seconds, self.window_seconds, self.failures_per_name, self.failures_per_client) <= 0:
            raise ValueError(f"sign-in limits must be positive: {self}")


def is_loopback(address: str | None) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost). None, which
    Streamlit binds to every interface, is not."""
    if address and address.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address((address or "").strip("[]")).is_loopback
    except ValueError:
        return False  # a host name (it may resolve to anything), or None


class FailureLimiter:
    """Failed sign-ins per client and per name over a sliding window; safe across threads
    (one limiter serves every session of a server)."""

    def __init__(self, policy: SignInPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._by_client: dict[str, deque[float]] = defaultdict(deque)
        self._by_name: dict[str, deque[float]] = defaultdict(deque)

    def _recent(self, table: dict[str, deque[float]], key: str, now: float) -> deque[float]:
        times = table[key]
        while times and now - times[0] >= self.policy.window_seconds:
            times.popleft()
        return times

    def wait_seconds(self, client: str, name: str) -> float:
        """0 when an attempt may be checked, else the seconds until the client and name may try again."""
        now = self._clock()
        waits = []
        with self._lock:
            for table, key, limit in ((self._by_client, client, self.policy.failures_per_client),
                                      (self._by_name, _name_key(name), self.policy.failures_per_name)):
                times = self._recent(table, key, now)
                if len(times) >= limit:
                    waits.append(times[len(times) - limit] + self.policy.window_seconds - now)
        return max(waits, default=0.0)

    def failed(self, client: str, name: str) -> tuple[int, int]:
        """Count one failure; returns the failures now in the window (for the client, for the name)."""
        now = self._clock()
        with self._lock:
            by_client = self._recent(self._by_client, client, now)
            by_name = self._recent(self._by_name, _name_key(name), now)
            by_client.append(now)
            by_name.append(now)
            return len(by_client), len(by_name)

    def succeeded(self, name: str) -> None:
        """A correct sign-in clears that name's failures (not the client's)."""
        with self._lock:
            self._by_name.pop(_name_key(name), None)


def _name_key(name: str) -> str:
    return name.strip().lower()[:100]


@dataclass(frozen=True)
class Attempt:
    """The answer to one sign-in attempt: the reviewer on success, else the message to show."""

    reviewer: reviewer_file.Reviewer | None
    message: str = ""


def sign_in(path: Path, limiter: FailureLimiter, client: str, name: str, password: str) -> Attempt:
    """Check one attempt from ``client`` against the reviewers file at ``path``: refused while
    the client or the name is over its limit, else the password is checked (same work and the
    same answer for unknown names)."""
    shown = name.strip()[:64]
    wait = limiter.wait_seconds(client, name)
    if wait > 0:
        log.warning("sign-in refused (too many failures) for name %r from client %s", shown, client)
        return Attempt(None, f"Too many failed sign-ins: try again in {in_words(wait)}.")
    reviewer = reviewer_file.authenticate(reviewer_file.load(path), name, password)
    if reviewer is None:
        by_client, by_name = limiter.failed(client, name)
        log.warning("failed sign-in for name %r from client %s (%d for this name, %d from this client "
                    "in the last %d min)", shown, client, by_name, by_client,
                    round(limiter.policy.window_seconds / 60))
        return Attempt(None, WRONG)
    limiter.succeeded(name)
    log.info("%s signed in from client %s", reviewer.name, client)
    return Attempt(reviewer)


@dataclass
class Session:
    """A signed-in reviewer in one browser session (kept in that session's state on the server)."""

    name: str
    fingerprint: str
    last_seen: float = field(default_factory=time.monotonic)

    def check(self, path: Path, policy: SignInPolicy, now: float | None = None) -> str | None:
        """None when the session still stands (and marks it seen now), else why it ended."""
        now = time.monotonic() if now is None else now
        if now - self.last_seen > policy.idle_seconds:
            return f"Signed out after {in_words(policy.idle_seconds)} without activity: sign in again."
        current = reviewer_file.load(path).get(self.name)
        if current is None or current.fingerprint != self.fingerprint:
            return "Signed out: your reviewer entry or password changed; sign in again."
        self.last_seen = now
        return None


__all__ = ["Attempt", "FailureLimiter", "Session", "SignInPolicy", "WRONG", "is_loopback", "sign_in"]
