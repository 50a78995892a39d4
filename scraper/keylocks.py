"""Per-key locks on the event loop: one photo at a time per content hash within a crawl process.

The writer decides "new photo or seen again" from the store, then writes the file and waits for
its record to be committed. Two photos with the same bytes (or two crops of one source photo) in
flight at once would both find nothing and both count as new; holding their keys serialises them,
while photos with other keys go on in parallel. (Across processes, :mod:`scraper.claims` plays
this part.)
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable


class KeyLocks:
    """``await acquire(keys)`` ... ``release(keys)``; keys are taken in sorted order (no deadlock)."""

    def __init__(self) -> None:
        self._held: dict[str, list[asyncio.Future]] = {}

    async def acquire(self, keys: Iterable[str]) -> None:
        for key in sorted(set(keys)):
            while key in self._held:
                waiter = asyncio.get_running_loop().create_future()
                self._held[key].append(waiter)
                await waiter
            self._held[key] = []

    def release(self, keys: Iterable[str]) -> None:
        for key in set(keys):
            for waiter in self._held.pop(key, []):
                if not waiter.done():
                    waiter.set_result(None)

    def __len__(self) -> int:
        return len(self._held)
