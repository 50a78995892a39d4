"""Where the face analysis runs: one interface, an in-process pool or a Dask cluster behind it.

:class:`Executor` takes groups of jobs (path, content hash, parameters) and yields each group's
analyses as soon as they are done, in any order; :func:`anfe.faces.batch.analyse_paths` writes them
to the cache as they arrive, so a killed client resumes from its cache.

- :class:`PoolExecutor`: this machine's processes (``--workers N``; one = in this process).
- :class:`DaskExecutor`: a ``distributed`` cluster (``--scheduler tcp://HOST:8786``, or
  ``--scheduler local`` for a :class:`distributed.LocalCluster` of ``--workers`` processes). The
  client reads the images and sends their bytes in batches, so workers need no shared
  filesystem; each worker process loads the models once (they are process-wide); a task whose
  worker dies is run again elsewhere by Dask. Results are the same whichever executor runs.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .analysis import ImageAnalysis, analyse_many
from anfe.core.config import AnalysisParams
from anfe.core.errors import AnfeError

log = logging.getLogger(__name__)

Job = tuple[str, str, AnalysisParams]  # (path, content hash, parameters)
#: What a Dask task gets: (content hash, the image's bytes or None, why it could not be read).
Blob = tuple[str, "bytes | None", "str | None"]


class SchedulerError(AnfeError):
    """The Dask scheduler could not be reached or started."""


def read_file(path: str | Path) -> tuple[bytes | None, str | None]:
    """The file's bytes, or None and why not (one unreadable file never stops a run)."""
    try:
        return Path(path).read_bytes(), None
    except OSError as exc:
        return None, f"cannot read {path}: {exc}"


def analyse_blobs(blobs: Sequence[Blob], params: AnalysisParams) -> list[ImageAnalysis]:
    """Analyse a group of images given as bytes (same parameters), their faces encoded in one batch.

    The unit of work on a Dask worker: a top-level function of plain data, no file access.
    """
    out: dict[int, ImageAnalysis] = {}
    readable: list[tuple[int, bytes, str]] = []
    for index, (digest, data, problem) in enumerate(blobs):
        if data is None:
            out[index] = ImageAnalysis(digest, error="unreadable", error_detail=problem)
        else:
            readable.append((index, data, digest))
    analysed = analyse_many([(data, digest) for _, data, digest in readable], params) if readable else []
    out.update({index: result for (index, _, _), result in zip(readable, analysed)})
    return [out[i] for i in range(len(blobs))]


def analyse_jobs(jobs: Sequence[Job]) -> list[ImageAnalysis]:
    """Read and analyse a group of files (same parameters): the unit of work of the local pool."""
    if not jobs:
        return []
    return analyse_blobs([(digest, *read_file(path)) for path, digest, _ in jobs], jobs[0][2])


class Executor:
    """Runs groups of analysis jobs somewhere; yields each group's analyses when done (any order)."""

    #: How many groups run at once (to size groups and share out the cores among processes).
    processes: int = 1

    def threads_per_process(self) -> int:
        """ONNX Runtime threads for each process, so the processes do not fight over cores."""
        return 1

    def run(self, groups: Sequence[Sequence[Job]],
            analyse: Callable[[Sequence[Job]], list[ImageAnalysis]] = analyse_jobs) -> Iterator[list[ImageAnalysis]]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the executor started (pool processes, a local cluster)."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def default_workers() -> int:
    """The cores this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


class PoolExecutor(Executor):
    """This machine's processes: one runs in this process, more are a fork pool (dlib holds the GIL)."""

    def __init__(self, processes: int = 1) -> None:
        self.processes = max(1, int(processes))

    def threads_per_process(self) -> int:
        return max(1, default_workers() // self.processes)

    def run(self, groups: Sequence[Sequence[Job]],
            analyse: Callable[[Sequence[Job]], list[ImageAnalysis]] = analyse_jobs) -> Iterator[list[ImageAnalysis]]:
        processes = min(self.processes, len(groups))
        if processes <= 1:
            for group in groups:
                yield analyse(group)
            return
        context = multiprocessing.get_context("fork")
        with context.Pool(processes) as pool:
            yield from pool.imap_unordered(analyse, groups)


class DaskExecutor(Executor):
    """A Dask ``distributed`` cluster: ``"tcp://HOST:8786"``, or ``"local"`` for a LocalCluster of
    ``workers`` processes on this machine (one thread each: dlib holds the GIL).

    At most ``2 x processes`` groups are in flight at once, so the client never holds every
    image's bytes in memory; results stream back as they finish.
    """

    #: A group lost with its worker this many times is an error (Dask's KilledWorker) rather than a loop.
    RETRIES = 3

    def __init__(self, scheduler: str, workers: int = 1, timeout_s: float = 10.0) -> None:
        from distributed import Client, LocalCluster

        self.scheduler = scheduler
        self._cluster = None
        try:
            if scheduler == "local":
                self._cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                                             host="127.0.0.1", dashboard_address=None,
                                             # its health/metrics routes: a free loopback port
                                             scheduler_kwargs={"dashboard_address": "127.0.0.1:0"})
                self.client = Client(self._cluster, timeout=timeout_s)
            else:
                self.client = Client(scheduler, timeout=timeout_s)
        except (OSError, TimeoutError) as exc:
            if self._cluster is not None:
                self._cluster.close()
            raise SchedulerError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        info = self.client.scheduler_info(n_workers=-1)["workers"]
        if not info:
            self.client.wait_for_workers(1, timeout=timeout_s)
            info = self.client.scheduler_info(n_workers=-1)["workers"]
        self.processes = max(1, sum(w.get("nthreads", 1) for w in info.values()))
        per_host: dict[str, int] = {}
        for worker in info.values():
            per_host[worker.get("host", "")] = per_host.get(worker.get("host", ""), 0) + worker.get("nthreads", 1)
        cores = self.client.run(os.cpu_count)
        hosts = {info[address].get("host", ""): count for address, count in cores.items() if address in info}
        self._threads = max(1, min((hosts.get(h, 1) or 1) // n for h, n in per_host.items()))
        log.info("Dask: %d worker processes at %s", self.processes, self.client.scheduler.address)

    def threads_per_process(self) -> int:
        return self._threads

    def run(self, groups: Sequence[Sequence[Job]],
            analyse: Callable[[Sequence[Job]], list[ImageAnalysis]] = analyse_jobs) -> Iterator[list[ImageAnalysis]]:
        from distributed import as_completed

        todo = iter(groups)  # ``analyse`` (failure injection for the local pool) does not apply here
        window = as_completed()

        def submit_next() -> bool:
            group = next(todo, None)
            if group is None:
                return False
            blobs = [(digest, *read_file(path)) for path, digest, _ in group]
            window.add(self.client.submit(analyse_blobs, blobs, group[0][2], pure=False, retries=self.RETRIES))
            return True

        for _ in range(2 * self.processes):
            if not submit_next():
                break
        for future in window:
            result = future.result()
            future.release()
            yield result
            submit_next()

    def close(self) -> None:
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()


def make_executor(workers: int, scheduler: str | None = None) -> Executor:
    """The executor a command asked for: Dask when ``scheduler`` is given ("local" or an address),
    else ``workers`` processes here."""
    if scheduler:
        return DaskExecutor(scheduler, workers)
    return PoolExecutor(workers)


def as_executor(workers: "int | Executor") -> Executor:
    """An executor for an int (processes here) or the executor itself."""
    return workers if isinstance(workers, Executor) else PoolExecutor(workers)
