"""Sign-in attempts limited per (name, client), counted before the password is checked.

An attempt takes a place under one lock before its (slow, ~0.1 s) password check, so a burst of
simultaneous attempts cannot slip past the count while the checks run. The first few attempts of
a (name, client) pair are free; after them each one waits twice as long as the one before (up to
a ceiling), instead of a hard lockout: a client that guesses slows only itself, and a reviewer
on another client signs in as usual.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class BackoffPolicy:
    """``free`` failures per (name, client), and ``free_per_client`` over all names from one
    client, cost nothing; the next attempt then waits
    ``first_wait`` seconds, doubling with each further failure up to ``max_wait``; a pair that
    does not try for ``forget_after`` seconds starts afresh."""

    free: int = 5
    free_per_client: int = 20
    first_wait: float = 30.0
    max_wait: float = 15 * 60
    forget_after: float = 60 * 60

    def __post_init__(self) -> None:
        if self.free < 1 or min(self.first_wait, self.max_wait, self.forget_after) <= 0:
            raise ValueError(f"sign-in limits must be positive: {self}")

    def wait_after(self, failures: int, free: int) -> float:
        """Seconds to wait after ``failures`` failures (or attempts under way) of which ``free``
        cost nothing, before the next attempt."""
        if failures < free:
            return 0.0
        return min(self.max_wait, self.first_wait * 2.0 ** min(failures - free, 64))


@dataclass
class _Pair:
    failures: int = 0  # failures so far plus attempts under way
    last: float = 0.0


class AttemptLimiter:
    """The attempt counts of one server (every session shares it); safe across threads."""

    def __init__(self, policy: BackoffPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self._lock = threading.Lock()
        self._pairs: dict[tuple[str, str], _Pair] = {}

    def reserve(self, name: str, client: str) -> float:
        """Take a place for one attempt: 0 when it may be checked now (it is counted as a failure
        until :meth:`succeeded` says otherwise), else the seconds to wait (nothing counted)."""
        now = self._clock()
        with self._lock:
            pairs = [(self._pair((_name_key(name), client), now), self.policy.free),
                     (self._pair(("", client), now), self.policy.free_per_client)]
            wait = max(p.last + self.policy.wait_after(p.failures, free) - now for p, free in pairs)
            if wait > 0:
                return wait
            for pair, _free in pairs:
                pair.failures += 1
                pair.last = now
            self._forget_old(now)
            return 0.0

    def _pair(self, key: tuple[str, str], now: float) -> _Pair:
        pair = self._pairs.get(key)
        if pair is None or now - pair.last >= self.policy.forget_after:
            pair = self._pairs[key] = _Pair()
        return pair

    def failures(self, name: str, client: str) -> int:
        """The failures (and attempts under way) counted for ``name`` from ``client``."""
        with self._lock:
            pair = self._pairs.get((_name_key(name), client))
            return pair.failures if pair else 0

    def succeeded(self, name: str, client: str) -> None:
        """A correct password: that pair starts afresh, and the client's own count loses the
        attempt (other clients' counts stay)."""
        with self._lock:
            self._pairs.pop((_name_key(name), client), None)
            everyone = self._pairs.get(("", client))
            if everyone is not None and everyone.failures:
                everyone.failures -= 1

    def _forget_old(self, now: float) -> None:
        if len(self._pairs) > 10_000:  # (keeps memory bounded under a flood of made-up names)
            for key in [k for k, p in self._pairs.items() if now - p.last >= self.policy.forget_after]:
                del self._pairs[key]


def _name_key(name: str) -> str:
    return name.strip().lower()[:100]


__all__ = ["AttemptLimiter", "BackoffPolicy"]
