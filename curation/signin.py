"""Sign-in for the review page, free of Streamlit: the policy, attempts limited per name and
client (:mod:`curation.limiter`, logged to ``curation.signin``), one answer for a wrong password
and an unknown name, and sessions that end when idle or when the reviewer's entry changes."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import reviewers as reviewer_file
from .hosts import is_loopback_name as is_loopback
from .limiter import AttemptLimiter, BackoffPolicy
from .durations import in_words

log = logging.getLogger("curation.signin")

#: The one answer for a wrong password and for an unknown name.
WRONG = "Wrong name or password."


@dataclass(frozen=True)
class SignInPolicy:
    """How long a session may stay idle (30 min), and how failed sign-ins are slowed down
    (per name and client, :class:`~curation.limiter.BackoffPolicy`)."""

    idle_seconds: float = 30 * 60
    backoff: BackoffPolicy = BackoffPolicy()

    def __post_init__(self) -> None:
        if self.idle_seconds <= 0:
            raise ValueError(f"sign-in limits must be positive: {self}")


@dataclass(frozen=True)
class Attempt:
    """The answer to one sign-in attempt: the reviewer on success, else the message to show."""

    reviewer: reviewer_file.Reviewer | None
    message: str = ""


def sign_in(path: Path, limiter: AttemptLimiter, client: str, name: str, password: str) -> Attempt:
    """Check one attempt from ``client`` against the reviewers file at ``path``. The attempt is
    counted before its password is checked (so simultaneous attempts cannot outrun the count),
    and refused while that name from that client must wait; unknown names cost the same work
    and get the same answer as wrong passwords."""
    shown = name.strip()[:64]
    wait = limiter.reserve(name, client)
    if wait > 0:
        log.warning("sign-in refused (too many failures) for name %r from client %s", shown, client)
        return Attempt(None, f"Too many failed sign-ins: try again in {in_words(wait)}.")
    reviewer = reviewer_file.authenticate(reviewer_file.load(path), name, password)
    if reviewer is None:
        log.warning("failed sign-in for name %r from client %s (%d for this name from this client)",
                    shown, client, limiter.failures(name, client))
        return Attempt(None, WRONG)
    limiter.succeeded(name, client)
    log.info("%s signed in from client %s", reviewer.name, client)
    return Attempt(reviewer)


@dataclass(frozen=True)
class Ended:
    """Why a session ended: ``reason`` for the log (idle, removed, password-changed, manual), ``message`` for the page."""

    reason: str
    message: str


@dataclass
class Session:
    """A signed-in reviewer in one browser session (kept in that session's state on the server)."""

    name: str
    fingerprint: str
    last_seen: float = field(default_factory=time.monotonic)

    def idle(self, policy: SignInPolicy, now: float | None = None) -> bool:
        """True when the session has been idle too long (without marking it seen)."""
        return (time.monotonic() if now is None else now) - self.last_seen > policy.idle_seconds

    def check(self, path: Path, policy: SignInPolicy, now: float | None = None) -> Ended | None:
        """None when the session still stands (and marks it seen now), else why it ended."""
        now = time.monotonic() if now is None else now
        if self.idle(policy, now):
            return Ended("idle", f"Signed out after {in_words(policy.idle_seconds)} without activity: sign in again.")
        current = reviewer_file.load(path).get(self.name)
        if current is None:
            return Ended("removed", "Signed out: your reviewer entry or password changed; sign in again.")
        if current.fingerprint != self.fingerprint:
            return Ended("password-changed", "Signed out: your reviewer entry or password changed; sign in again.")
        self.last_seen = now
        return None


__all__ = ["Attempt", "AttemptLimiter", "BackoffPolicy", "Ended", "Session", "SignInPolicy", "WRONG",
           "is_loopback", "sign_in"]
