"""Benchmark: scaling past one process, as ratios measured in one run.

Run from the project root:  python bench/bench_scale.py [--images 96] [--people 30] [--repeats 1]

1. Analysis of real UTKFace photos (empty cache each time) on a Dask LocalCluster with 2 worker
   processes vs 1 (target >= 1.8x); the clusters are started and their workers have loaded the
   models before the clock starts (the in-process pool forks from a process that has too).
2. Dask with 2 workers vs the in-process pool with 2 processes (target: overhead <= 10%).
3. Crawl throughput of two ``anfe crawl --redis`` processes at concurrency C each vs one process at
   the same C (``--concurrency``, default 2), against the demo site (real LFW photos) served with a
   fixed 50 ms delay per request (target >= 1.7x, each process doing >= 1/4 of the pages). Requests
   per second are counted by the server, from the first request of the crawl to the last; each
   process's share of the pages comes from its own crawl report. With ``--fast`` the crawls run
   with ``anfe crawl --fast`` and then C per process.

Each configuration runs ``--repeats`` times, alternating; the medians are compared. A ratio
above the machine's core count is not possible for the analysis and is flagged if it appears.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SHARED = ROOT.parent / "shared" / "data" / "faces"
DELAY_S = 0.05


def analysis_seconds(paths: list[Path], executor) -> float:
    from anfe.faces.batch import analyse_paths
    from anfe.core.config import AnalysisParams

    start = time.perf_counter()
    results, stats = analyse_paths(paths, AnalysisParams(), None, executor, progress=False)
    assert stats.analysed == len(set(a.content_hash for a in results.values()))
    return time.perf_counter() - start


def bench_analysis(images: int, repeats: int) -> dict[str, float]:
    from anfe.faces.executor import DaskExecutor, PoolExecutor

    base = SHARED / "utkface"
    with (base / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    step = max(1, len(rows) // images)
    paths = [base / r["path"] for r in rows[::step][:images]]
    times: dict[str, list[float]] = {"dask-1": [], "dask-2": [], "pool-2": []}
    with DaskExecutor("local", 1) as one, DaskExecutor("local", 2) as two:
        # Warm, all three: the models loaded in every Dask worker, and in this process, whose
        # dlib models the pool's forked processes inherit (each still opens its ONNX session).
        analysis_seconds(paths[:4], one)
        analysis_seconds(paths[:8], two)
        analysis_seconds(paths[:4], PoolExecutor(1))
        pool = PoolExecutor(2)
        for _ in range(repeats):
            times["dask-1"].append(analysis_seconds(paths, one))
            times["dask-2"].append(analysis_seconds(paths, two))
            times["pool-2"].append(analysis_seconds(paths, pool))
    print(f"analysis of {len(paths)} UTKFace photos (empty cache), {repeats} run(s) each, medians:")
    medians = {k: statistics.median(v) for k, v in times.items()}
    for name, label in (("dask-1", "Dask LocalCluster, 1 worker"), ("dask-2", "Dask LocalCluster, 2 workers"),
                        ("pool-2", "in-process pool, 2 processes")):
        print(f"  {label:32s} {medians[name]:7.2f} s  {len(paths) / medians[name]:6.2f} images/s")
    return medians


class _Timed:
    """Wraps the demo server's handler: a fixed delay per request, and the time of each request."""

    def __init__(self, server) -> None:
        base = server._server.RequestHandlerClass
        stamps: list[float] = []
        lock = threading.Lock()

        class Handler(base):  # type: ignore[misc, valid-type]
            def _serve(self, head: bool) -> None:
                time.sleep(DELAY_S)
                with lock:
                    stamps.append(time.monotonic())
                super()._serve(head)

        server._server.RequestHandlerClass = Handler
        self.stamps = stamps

    def rate_since(self, start: int) -> tuple[int, float]:
        """(requests, requests per second) from request ``start`` on."""
        window = self.stamps[start:]
        span = window[-1] - window[0] if len(window) > 1 else float("nan")
        return len(window), (len(window) - 1) / span


def bench_crawl(people: int, repeats: int, concurrency: int = 2, fast: bool = False) -> dict[str, float]:
    from testkit.redis_server import RedisServer

    from scraper.demosite import DemoServer, generate_site

    rates: dict[str, list[float]] = {"one": [], "two": [], "share": []}
    with tempfile.TemporaryDirectory() as temp, RedisServer() as redis:
        site = Path(temp) / "site"
        generate_site(SHARED / "lfw" / "labels.csv", site, people=people, photos=3, per_page=2, seed=0)
        with DemoServer(site) as server:
            timed = _Timed(server)
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            for run in range(repeats):
                for mode, processes in (("one", 1), ("two", 2)):
                    redis.flush()
                    root = Path(temp) / f"data-{mode}-{run}"
                    command = [sys.executable, "-m", "anfe", "crawl", "listal", "--root", str(root),
                               "--redis", redis.url, "-a", "profile=demo-listal", "-a", f"base_url={server.base_url}",
                               *(["--fast"] if fast else []),
                               "-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=0",
                               "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={concurrency}",
                               "-s", f"CONCURRENT_REQUESTS={concurrency}",
                               "-s", "BACKOFF_DELAY=0", "-s", "PROGRESS_INTERVAL=0", "-s", "LOG_LEVEL=WARNING"]
                    start = len(timed.stamps)
                    reports = [root / f"report-{i}.json" for i in range(processes)]
                    crawls = [subprocess.Popen([*command, "-s", f"CRAWL_REPORT={reports[i]}"], cwd=temp, env=env,
                                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                              for i in range(processes)]
                    for crawl in crawls:
                        _, err = crawl.communicate(timeout=600)
                        if crawl.returncode != 0:
                            raise SystemExit(f"crawl failed: {err[-2000:]}")
                    count, rate = timed.rate_since(start)
                    rates[mode].append(rate)
                    stored = sum(1 for p in (root / "images").rglob("*") if p.is_file())
                    pages = [json.loads(r.read_text())["summary"]["pages"] for r in reports]
                    if processes > 1:
                        rates["share"].append(min(pages) / max(sum(pages), 1))
                    print(f"  crawl run {run + 1}, {processes} process(es): {count} requests, {stored} photos stored, "
                          f"{rate:.1f} requests/s, pages per process {pages}")
    medians = {k: statistics.median(v) for k, v in rates.items()}
    medians["share"] = min(rates["share"])
    print(f"crawl of the demo site ({people} people per gender per style, {DELAY_S * 1000:.0f} ms per request, "
          f"{concurrency} requests at once per process{', --fast' if fast else ''}), medians: one process {medians['one']:.1f} requests/s, "
          f"two processes {medians['two']:.1f} requests/s")
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=96, help="UTKFace photos analysed per run.")
    parser.add_argument("--people", type=int, default=30, help="People per gender of the demo site.")
    parser.add_argument("--repeats", type=int, default=1, help="Runs of each configuration (alternating).")
    parser.add_argument("--skip-analysis", action="store_true")
    parser.add_argument("--skip-crawl", action="store_true")
    parser.add_argument("--concurrency", type=int, default=2, help="Requests at once per crawl process (C).")
    parser.add_argument("--fast", action="store_true", help="Run the crawls with anfe crawl --fast.")
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{cores} cores; load average {os.getloadavg()[0]:.1f} at the start")
    lines = []
    if not args.skip_analysis:
        t = bench_analysis(args.images, args.repeats)
        scale = t["dask-1"] / t["dask-2"]
        overhead = t["dask-2"] / t["pool-2"] - 1
        flag = " (above the core count: not trustworthy)" if scale > (cores or 1) else ""
        lines.append(f"analysis, LocalCluster 2 workers vs 1 worker: {scale:.2f}x (target >= 1.8x){flag}")
        lines.append(f"analysis, Dask 2 workers vs in-process pool 2 processes: overhead {overhead * 100:+.1f}% "
                     f"(target <= 10%)")
    if not args.skip_crawl:
        r = bench_crawl(args.people, args.repeats, args.concurrency, args.fast)
        lines.append(f"crawl, two `anfe crawl --redis` at C={args.concurrency} each vs one at C={args.concurrency}: "
                     f"{r['two'] / r['one']:.2f}x requests/s (target >= 1.7x); the smaller process did "
                     f"{r['share'] * 100:.0f}% of the pages at least (target >= 25%)")
    lines.append(f"load average {os.getloadavg()[0]:.1f} at the end")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
