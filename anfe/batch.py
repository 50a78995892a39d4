"""Analyse many files on all cores, reading cached results first and caching new ones as they come.

The main process hashes each file and asks the cache; only misses go to worker processes (dlib
holds the GIL, so processes, not threads). Results are committed in small batches, so a run
that is killed resumes where it stopped.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .analysis import ImageAnalysis, analyse_bytes
from .cache import AnalysisCache
from .config import AnalysisParams
from .hashing import content_hash

log = logging.getLogger(__name__)
_COMMIT_EVERY = 25


@dataclass(frozen=True)
class BatchStats:
    """How a batch went: how many came from the cache and how many were analysed now."""

    total: int
    cached: int
    analysed: int
    unreadable: int


def _read(path: Path) -> tuple[bytes | None, str | None]:
    try:
        return path.read_bytes(), None
    except OSError as exc:
        return None, f"cannot read {path}: {exc}"


def _work(job: tuple[str, str, AnalysisParams]) -> ImageAnalysis:
    path, digest, params = job
    data, problem = _read(Path(path))
    if data is None:
        return ImageAnalysis(digest, error="unreadable", error_detail=problem)
    return analyse_bytes(data, params, digest)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def analyse_paths(
    paths: Sequence[str | Path],
    params: AnalysisParams,
    cache: AnalysisCache | None = None,
    workers: int = 1,
    progress: bool = True,
    analyse: Callable[[tuple[str, str, AnalysisParams]], ImageAnalysis] = _work,
) -> tuple[dict[str, ImageAnalysis], BatchStats]:
    """Analysis of every path (keyed by ``str(path)``) and counts of cached/new/unreadable work.

    Identical files (same bytes) are analysed once. ``analyse`` is replaceable for failure
    injection in tests; it must be a picklable top-level function when ``workers > 1``.
    """
    keys = [str(p) for p in paths]
    digests: dict[str, str] = {}
    results: dict[str, ImageAnalysis] = {}
    for key in tqdm(keys, desc="hashing", unit="img", disable=not progress or len(keys) < 200):
        data, problem = _read(Path(key))
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
    jobs = [(path, digest, params) for digest, path in todo.items()]
    if jobs:
        fresh = _run_jobs(jobs, cache, workers, progress, analyse)
    by_digest = {**cached, **fresh}
    for key, digest in digests.items():
        results[key] = by_digest[digest]
    unreadable = sum(1 for a in results.values() if a.error)
    stats = BatchStats(len(keys), len(digests) - sum(1 for d in digests.values() if d in fresh), len(fresh), unreadable)
    log.info("analysis: %d images, %d from cache, %d analysed now", stats.total, stats.cached, stats.analysed)
    return results, stats


def _run_jobs(jobs, cache, workers, progress, analyse) -> dict[str, ImageAnalysis]:
    fresh: dict[str, ImageAnalysis] = {}
    pending: list[ImageAnalysis] = []
    bar = tqdm(total=len(jobs), desc="analysing", unit="img", disable=not progress)

    def take(result: ImageAnalysis) -> None:
        fresh[result.content_hash] = result
        pending.append(result)
        bar.update()
        if cache is not None and len(pending) >= _COMMIT_EVERY:
            cache.put_many(pending)
            pending.clear()

    try:
        if workers <= 1 or len(jobs) == 1:
            for job in jobs:
                take(analyse(job))
        else:
            context = multiprocessing.get_context("fork")
            processes = min(workers, len(jobs))
            # Small chunks keep every process busy to the end; large batches amortise the IPC.
            chunksize = max(1, min(8, len(jobs) // (processes * 8)))
            with context.Pool(processes) as pool:
                for result in pool.imap_unordered(analyse, jobs, chunksize=chunksize):
                    take(result)
    finally:
        if cache is not None and pending:
            cache.put_many(pending)
        bar.close()
    return fresh
