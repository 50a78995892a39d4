"""Group commit of the crawl's store records and ledger lines: one transaction each per batch.

A transaction per photo (a store record, then a ledger line, each synced to disk) cost more than
the photo itself at local-network speed. The writer hands its writes here and waits. While one
batch commits on the commit thread, the next one gathers; it starts as soon as the first is done.
So a lone photo is committed at once (no timer to wait for) and batches grow with the load.

Crash safety is unchanged: a photo's writer returns only once its batch is committed, so the
frontier (see :mod:`scraper.frontier`) marks its page done only after the record is durable. In
each batch the store's records come first (one transaction, crash point ``crawl.record``), then
the ledger's lines (one transaction, ``crawl.ledger``), the order one photo at a time had: a kill
between the two leaves records without ledger lines, and the next run settles those photos again.

The store and ledger connections live on the one commit thread (SQLite connections belong to the
thread that opened them). Several writes for one content hash in a batch are merged in order into
one record, so both stores see one write per record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from anfe.core.crashpoints import crash_point
from anfe.core.store import Store

#: A ledger line: (URL, outcome, content hash or None).
LedgerLine = tuple[str, str, "str | None"]


@dataclass
class _Batch:
    """The writes gathered while the previous batch committed, and who waits for them."""

    records: dict[str, dict] = field(default_factory=dict)
    lines: list[LedgerLine] = field(default_factory=list)
    waiters: list[asyncio.Future] = field(default_factory=list)

    def add(self, records: Iterable[dict], lines: Iterable[LedgerLine]) -> None:
        for record in records:
            key = record["content_hash"]
            self.records[key] = {**self.records.get(key, {}), **record}
        self.lines.extend(lines)


class GroupCommitter:
    """Commits records and ledger lines in batches on one thread; :meth:`write` returns once durable."""

    def __init__(self, open_store: Callable[[], Store], open_ledger: Callable[[], Any]) -> None:
        self._open_store = open_store
        self._open_ledger = open_ledger
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="anfe-commit")
        self._store: Store | None = None
        self._ledger: Any = None
        self._next = _Batch()
        self._running = False
        #: Batches committed and their sizes (reported in the crawl's stats).
        self.batches = 0
        self.largest = 0

    async def write(self, records: Iterable[dict] = (), lines: Iterable[LedgerLine] = ()) -> None:
        """Add ``records`` (merged into the store) and ``lines`` (to the ledger) to the next batch and
        wait until that batch is committed (a store error is raised here, for each of its writers)."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._next.add(records, lines)
        self._next.waiters.append(waiter)
        if not self._running:
            self._start(loop)
        await waiter

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        batch, self._next = self._next, _Batch()
        self._running = True
        self.batches += 1
        self.largest = max(self.largest, len(batch.waiters))
        done = loop.run_in_executor(self._thread, self._commit, batch)
        done.add_done_callback(lambda result: self._finished(loop, batch, result))

    def _finished(self, loop: asyncio.AbstractEventLoop, batch: _Batch, result: asyncio.Future) -> None:
        self._running = False
        error = result.exception()
        for waiter in batch.waiters:
            if waiter.done():  # its writer was cancelled meanwhile
                continue
            if error is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(error)
        if self._next.waiters:
            self._start(loop)

    def _commit(self, batch: _Batch) -> None:
        """On the commit thread: the records in one store transaction, then the ledger lines in one."""
        if self._store is None:
            self._store = self._open_store()
            self._ledger = self._open_ledger()
        if batch.records:
            self._store.upsert_images(list(batch.records.values()))
            crash_point("crawl.record")
        if batch.lines:
            self._ledger.record_many(batch.lines)

    def close(self) -> None:
        """Close the connections on their thread, then the thread (after the last batch)."""

        def close_connections() -> None:
            if self._store is not None:
                self._store.close()
                self._ledger.close()
                self._store = self._ledger = None

        self._thread.submit(close_connections).result()
        self._thread.shutdown(wait=True)
