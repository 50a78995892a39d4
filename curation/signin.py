"""Sign-in for the review page, free of Streamlit: the policy, failed-attempt limits, idle expiry.

A sign-in attempt is checked against the reviewers file (:mod:`curation.reviewers`). Failed
attempts are counted per client (its IP address) and per name typed, known or not, over a
sliding window; once either count reaches its limit, attempts from that client or for that
name are refused without checking the password until the oldest failure leaves the window.
A wrong password and an unknown name get the same answer, and every failure and refusal is
logged (logger ``curation.signin``, on the server's standard error). A signed-in session ends
after :attr:`SignInPolicy.idle_seconds` without any action, when the reviewer is removed from
the file, or when their password changes.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from anfe.errors import DatasetError

from . import reviewers as reviewer_file

log = logging.getLogger("curation.signin")

#: The one answer for a wrong password and for an unknown name.
WRONG = "Wrong name or password."


@dataclass(frozen=True)
class SignInPolicy:
    """How long a session may stay idle and how many failed sign-ins are allowed."""

    #: A signed-in session with no action for this long is signed out (30 minutes).
    idle_seconds: float = 30 * 60
    #: Failed sign-ins allowed per name within ``window_seconds``.
    failures_per_name: int = 5
    #: Failed sign-ins allowed per client address within ``window_seconds``.
    failures_per_client: int = 20
    #: The sliding window over which failures are counted (15 minutes).
    window_seconds: float = 15 * 60

    def __post_init__(self) -> None:
        if self.idle_seconds <= 0 or self.window_seconds <= 0 or self.failures_per_name < 1 \
                or self.failures_per_client < 1:
            raise ValueError(f"sign-in limits must be positive: {self}")


def is_loopback(address: str | None) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost). None, which
    Streamlit binds to every interface, is not."""
    if not address:
        return False
    if address.strip().lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


@dataclass(frozen=True)
class AccessConfig:
    """Who may use the page: the reviewers file (None: ROOT/reviewers.json), whether sign-in is
    required even when that file is empty (a shared page), and the sign-in policy."""

    reviewers: Path | None = None
    require_sign_in: bool = False
    policy: SignInPolicy = SignInPolicy()

    def to_args(self) -> list[str]:
        """The page's command-line arguments for this (after the dataset's own)."""
        args = ["--idle-minutes", f"{self.policy.idle_seconds / 60:g}"]
        if self.reviewers:
            args += ["--reviewers", str(self.reviewers)]
        if self.require_sign_in:
            args.append("--require-sign-in")
        return args

    def reviewers_file(self, root: Path) -> Path:
        """The reviewers file that applies to the dataset ``root``."""
        return reviewer_file.reviewers_path(root, self.reviewers)


def split_access_args(argv: Sequence[str]) -> tuple[AccessConfig, list[str]]:
    """(the access options in ``argv``, the other arguments): the inverse of :meth:`AccessConfig.to_args`."""
    parser = argparse.ArgumentParser(add_help=False, exit_on_error=False, allow_abbrev=False)
    parser.add_argument("--reviewers", default=None)
    parser.add_argument("--require-sign-in", action="store_true")
    parser.add_argument("--idle-minutes", type=float, default=SignInPolicy().idle_seconds / 60)
    try:
        ns, rest = parser.parse_known_args(list(argv))
        policy = SignInPolicy(idle_seconds=ns.idle_minutes * 60)
    except (argparse.ArgumentError, ValueError, SystemExit) as exc:
        raise DatasetError(f"bad sign-in arguments in {list(argv)}: {exc}") from None
    return AccessConfig(Path(ns.reviewers) if ns.reviewers else None, ns.require_sign_in, policy), rest


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
        return Attempt(None, f"Too many failed sign-ins: try again in {max(1, round(wait / 60))} min.")
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
            return f"Signed out after {round(policy.idle_seconds / 60)} min without activity: sign in again."
        current = reviewer_file.load(path).get(self.name)
        if current is None or current.fingerprint != self.fingerprint:
            return "Signed out: your reviewer entry or password changed; sign in again."
        self.last_seen = now
        return None


__all__ = ["AccessConfig", "Attempt", "FailureLimiter", "Session", "SignInPolicy", "WRONG", "is_loopback", "sign_in", "split_access_args"]
