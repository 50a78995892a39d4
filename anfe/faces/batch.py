"""Analyse many files, reading cached results first and caching new ones as they come.

The main process hashes each file and asks the cache; only misses go to an executor
(:mod:`anfe.faces.executor`: this machine's processes, or a Dask cluster). Each task is a group of
images whose faces are encoded in one batch; ONNX Runtime gets the cores divided among the
processes. Results are committed in small batches as they arrive, so a run that is killed
resumes where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from .analysis import ImageAnalysis
from .cache import AnalysisCache
from anfe.core.config import AnalysisParams
from .executor import Executor, Job, analyse_jobs, as_executor, default_workers, read_file
from anfe.core.hashing import content_hash

__all__ = ["BatchStats", "IMAGES_PER_TASK", "Job", "analyse_jobs", "analyse_paths", "default_workers"]

log = logging.getLogger(__name__)
_COMMIT_EVERY = 25


@dataclass(frozen=True)
class BatchStats:
    """How a batch went: how many came from the cache and how many were analysed now."""

    total: int
    cached: int
    analysed: int
    unreadable: int


#: Images per worker task: their faces are encoded in one batch. 16 UTKFace crops are 16 faces;
#: larger groups gain little speed (see bench/bench_analysis.py) and make progress coarser.
IMAGES_PER_TASK = 16


def analyse_paths(
    paths: Sequence[str | Path],
    params: AnalysisParams,
    cache: AnalysisCache | None = None,
    workers: "int | Executor" = 1,
    progress: bool = True,
    analyse: Callable[[Sequence[Job]], list[ImageAnalysis]] = analyse_jobs,
) -> tuple[dict[str, ImageAnalysis], BatchStats]:
    """Analysis of every path (keyed by ``str(path)``) and counts of cached/new/unreadable work.

    ``workers`` is a number of processes on this machine or an :class:`~anfe.faces.executor.Executor`
    (a Dask cluster). Identical files (same bytes) are analysed once. ``analyse`` (a group of jobs
    to their analyses, like :func:`analyse_jobs`) is replaceable for failure injection in tests
    on the local pool; it must be a picklable top-level function when ``workers > 1``.
    """
    executor = as_executor(workers)
    keys = [str(p) for p in paths]
    digests: dict[str, str] = {}
    results: dict[str, ImageAnalysis] = {}
    for key in tqdm(keys, desc="hashing", unit="img", disable=not progress or len(keys) < 200):
        data, problem = read_file(Path(key))
        if data is None:
            results[key] = ImageAnalysis("", error="unreadable", error_detail=problem)
        else:
            digests[key] = content_hash(data)
    cached = cache.get_many(digests.values()) if cache else {}
    todo: dict[str, str] = {}  # digest -> a path holding those bytes
    for key, digest in digests.items():
        if digest not in cached:
            todo.setdefault(digest, key)
    fresh: dict[str, ImageAnalysis] = {}
    if params.threads == 0 and todo:  # ONNX Runtime: the cores shared out among the processes
        if isinstance(workers, Executor):
            params = replace(params, threads=executor.threads_per_process())
        else:
            processes = max(1, min(executor.processes, len(todo)))
            params = replace(params, threads=max(1, default_workers() // processes))
    jobs = [(path, digest, params) for digest, path in todo.items()]
    if jobs:
        fresh = _run_jobs(jobs, cache, executor, progress, analyse)
    by_digest = {**cached, **fresh}
    for key, digest in digests.items():
        results[key] = by_digest[digest]
    unreadable = sum(1 for a in results.values() if a.error)
    stats = BatchStats(len(keys), len(digests) - sum(1 for d in digests.values() if d in fresh), len(fresh), unreadable)
    log.info("analysis: %d images, %d from cache, %d analysed now", stats.total, stats.cached, stats.analysed)
    return results, stats


def _groups(jobs: list[Job], processes: int) -> list[list[Job]]:
    """Tasks of up to IMAGES_PER_TASK images, small enough that every process gets some."""
    size = max(1, min(IMAGES_PER_TASK, -(-len(jobs) // processes)))
    return [jobs[i : i + size] for i in range(0, len(jobs), size)]


def _run_jobs(jobs: list[Job], cache: AnalysisCache | None, executor: Executor, progress: bool,
              analyse: Callable[[Sequence[Job]], list[ImageAnalysis]]) -> dict[str, ImageAnalysis]:
    fresh: dict[str, ImageAnalysis] = {}
    pending: list[ImageAnalysis] = []
    bar = tqdm(total=len(jobs), desc="analysing", unit="img", disable=not progress)

    def take(results: list[ImageAnalysis]) -> None:
        for result in results:
            fresh[result.content_hash] = result
            pending.append(result)
        bar.update(len(results))
        if cache is not None and len(pending) >= _COMMIT_EVERY:
            cache.put_many(pending)
            pending.clear()

    try:
        for results in executor.run(_groups(jobs, max(1, min(executor.processes, len(jobs)))), analyse):
            take(results)
    finally:
        if cache is not None and pending:
            cache.put_many(pending)
        bar.close()
    return fresh
