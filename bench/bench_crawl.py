"""Benchmark: pages and images per second crawling the local demo site, politeness off vs the defaults.

Run from the project root:  python bench/bench_crawl.py [--spider filmweb] [--people 4] [--photos 3]

prints, for each mode, pages/s, images/s and the share of one CPU the crawl process used
(``--fast-only``: politeness off only, e.g. ``--spider listal --profile demo-listal-more --list-people 1000``).

    python bench/bench_crawl.py --urllist 12000 [--i2d-processes 2 --i2d-threads 32] [--concurrency 16,8,32]
                                                [--keep-alive] [--redis-processes 2]

instead downloads one FaceScrub-style list (name, image_id, face_id, url, bbox, sha256, gender)
of that many distinct real photos (LFW, then UTKFace, then webcrops, from ../shared/data/faces),
served by one threaded static server on 127.0.0.1, in the same run: with img2dataset (the tool
people use for URL lists; the ``bench`` extra; sha256 verified, original bytes kept:
``resize_mode=no``, ``skip_reencode``), then with ``anfe crawl urllist --fast`` (its checks on:
hash, decode, atomic write, store record, ledger) in one process and in as many processes as
img2dataset's, at each concurrency given, and Scrapy alone (``bench/scrapy_floor.py``: the same
downloads, nothing kept: the floor of a Scrapy crawl here) (and, with ``--redis-processes``, as that many
``anfe crawl urllist --redis`` processes sharing one frontier). Each run goes into its own empty folder and is timed
from its process start to its end; the table gives photos/s, the CPU seconds used and the ratio
to img2dataset (>= 1.0x: as fast).
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
from scraper.demosite import DemoServer, generate_site

MODES = {
    "politeness off": ["-s", "DOWNLOAD_DELAY=0", "-s", "AUTOTHROTTLE_ENABLED=0",
                       "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=16", "-s", "CONCURRENT_REQUESTS=32",
                       "-s", "BACKOFF_DELAY=0"],
    "defaults (polite)": [],
}


def crawl(spider: str, profile: str, base_url: str, root: Path, extra: list[str]) -> tuple[dict, float]:
    """One crawl in a subprocess; returns its JSON report and the share of one CPU it used (its CPU
    seconds over its wall-clock seconds, both from its process start to its end)."""
    report = root.parent / f"{root.name}-report.json"
    command = [sys.executable, "-m", "scrapy", "crawl", spider, "-a", f"profile={profile}",
               "-a", f"base_url={base_url}", "-s", f"DATASET_ROOT={root}", "-s", f"CRAWL_REPORT={report}",
               "-s", "LOG_LEVEL=WARNING", "-s", "PROGRESS_INTERVAL=0", *extra]
    cpu, start = _children_cpu(), time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, timeout=1800)
    return json.loads(report.read_text()), (_children_cpu() - cpu) / (time.perf_counter() - start)


def url_list(count: int, serve_dir: Path) -> tuple[Path, int]:
    """Copy ``count`` distinct labelled photos into ``serve_dir`` and write the FaceScrub-style list
    (``__HOST__`` in place of the server's address); returns the list and its rows."""
    import csv
    import hashlib
    import shutil

    shared = ROOT.parent / "shared" / "data" / "faces"
    rows, seen = [], set()
    for name in ("lfw", "utkface", "webcrops"):
        with (shared / name / "labels.csv").open(newline="") as handle:
            for row in csv.DictReader(handle):
                if len(rows) == count:
                    break
                data = (shared / name / row["path"]).read_bytes()
                digest = hashlib.sha256(data).hexdigest()
                if digest in seen or row.get("gender") not in ("male", "female"):
                    continue
                seen.add(digest)
                target = serve_dir / f"{len(rows)}.jpg"
                shutil.copyfile(shared / name / row["path"], target)
                rows.append(f"person {len(rows) % 500}\t{len(rows)}\t{len(rows)}\thttp://__HOST__/{target.name}"
                            f"\t0,0,10,10\t{digest}\t{row['gender']}\n")
    listing = serve_dir.parent / "list.tsv"
    listing.write_text("name\timage_id\tface_id\turl\tbbox\tsha256\tgender\n" + "".join(rows))
    return listing, len(rows)


def timed_run(command: list[str], cwd: Path) -> tuple[float, float]:
    """Run ``command``; return its wall-clock seconds and the CPU seconds it (and its children) used."""
    cpu_before = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, timeout=3600, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(f"{command[:4]} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start, _children_cpu() - cpu_before


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _files(folder: Path, pattern: str = "*") -> int:
    return sum(1 for p in folder.rglob(pattern) if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else 0


def urllist_versus_img2dataset(count: int, processes: int, threads: int, concurrency: list[int],
                               keep_alive: bool, redis_processes: int) -> None:
    """Serve ``count`` photos, download them with img2dataset and with ``anfe crawl urllist --fast``:
    in one process, and in as many processes as img2dataset (``--processes``), at each of the
    ``concurrency`` values (CONCURRENT_REQUESTS_PER_DOMAIN; the first is ``--fast``'s default)."""
    import functools
    import threading

    rows_out = []
    with tempfile.TemporaryDirectory(prefix="anfe-bench-list-") as temp:
        serve_dir = Path(temp) / "www"
        serve_dir.mkdir()
        template, rows = url_list(count, serve_dir)
        handler = functools.partial(_KeepAliveHandler if keep_alive else _QuietHandler, directory=str(serve_dir))
        server = _Server(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            listing = Path(temp) / "facescrub_list.tsv"
            listing.write_text(template.read_text().replace("__HOST__", f"127.0.0.1:{server.server_port}"))
            before = os.getloadavg()
            out = Path(temp) / "i2d"
            i2d, i2d_cpu = timed_run([sys.executable, "-c", _I2D.format(listing=str(listing), out=str(out),
                                                                        processes=processes, threads=threads)], ROOT)
            got_i2d = _files(out, "*.jpg")
            rows_out.append((f"img2dataset, {processes} processes x {threads} threads", i2d, i2d_cpu, got_i2d))
            seconds, cpu = timed_run([sys.executable, "-m", "scrapy", "runspider", str(ROOT / "bench" / "scrapy_floor.py"),
                                      "-a", f"file={listing}"], Path(temp))
            rows_out.append(("Scrapy alone, 1 process (no checks, nothing stored)", seconds, cpu, rows))
            runs = [(1, concurrency[0])] + [(processes, c) for c in concurrency]
            for n, (procs, c) in enumerate(runs):
                root = Path(temp) / f"data{n}"
                seconds, cpu = timed_run([sys.executable, "-m", "anfe", "crawl", "urllist", "--root", str(root),
                                          "--fast", "--processes", str(procs), "-a", f"file={listing}",
                                          "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={c}",
                                          "-s", f"CONCURRENT_REQUESTS={2 * c}", "-s", "LOG_LEVEL=WARNING"], ROOT)
                rows_out.append((f"anfe crawl urllist --fast --processes {procs}, {c} per site", seconds, cpu,
                                 _files(root / "images")))
            if redis_processes:
                rows_out.append(redis_run(listing, Path(temp) / "redis-data", redis_processes, concurrency[0]))
            after = os.getloadavg()
        finally:
            server.shutdown()
    protocol = "HTTP/1.1, connections kept alive" if keep_alive else "HTTP/1.0, a connection per photo"
    print(f"URL list of {rows} photos on one local threaded server ({protocol}, backlog {_Server.request_queue_size}); "
          f"load average before {before[0]:.2f}, after {after[0]:.2f}; {os.cpu_count()} CPUs")
    print("Each run counts its process start; anfe keeps its checks (hash, decode, atomic write, store record, "
          "ledger); img2dataset verifies sha256 and keeps the original bytes.")
    print(f"{'run':<58} {'seconds':>8} {'photos':>7} {'photos/s':>9} {'CPU s':>7} {'ratio':>6}")
    i2d_rate = rows_out[0][3] / rows_out[0][1]
    for name, seconds, cpu, got in rows_out:
        print(f"{name:<58} {seconds:8.1f} {got:7d} {got / seconds:9.0f} {cpu:7.1f} {got / seconds / i2d_rate:5.2f}x")


def redis_run(listing: Path, root: Path, processes: int, concurrency: int) -> tuple[str, float, float, int]:
    """``processes`` x ``anfe crawl urllist --redis`` started together on one frontier in a fresh
    local redis-server: each reads the whole list, the shared dupefilter queues each row once."""
    from testkit.redis_server import RedisServer

    command = [sys.executable, "-m", "anfe", "crawl", "urllist", "--root", str(root), "--fast", "-a", f"file={listing}",
               "-s", f"CONCURRENT_REQUESTS_PER_DOMAIN={concurrency}", "-s", f"CONCURRENT_REQUESTS={2 * concurrency}",
               "-s", "LOG_LEVEL=WARNING"]
    with RedisServer() as redis:
        cpu, start = _children_cpu(), time.perf_counter()
        children = [subprocess.Popen([*command, "--redis", redis.url], cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL) for _ in range(processes)]
        codes = [child.wait(timeout=3600) for child in children]
        seconds = time.perf_counter() - start
    if any(codes):
        sys.exit(f"a --redis crawl failed: exit codes {codes}")
    return (f"anfe crawl urllist --fast --redis, {processes} processes, {concurrency} per site", seconds,
            _children_cpu() - cpu, _files(root / "images"))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """A static file handler that does not log every request."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


class _KeepAliveHandler(_QuietHandler):
    """HTTP/1.1 with persistent connections, as web servers and CDNs answer (Python's default
    handler speaks HTTP/1.0 and closes every connection)."""

    protocol_version = "HTTP/1.1"


class _Server(http.server.ThreadingHTTPServer):
    """The standard threaded server with a listen backlog a web server would have (Python's is 5:
    connection attempts beyond it wait for TCP's retransmission, which would time the server, not
    the client)."""

    request_queue_size = 256
    daemon_threads = True


_I2D = """
from img2dataset import download
download(url_list={listing!r}, input_format="tsv", url_col="url", output_format="files",
         output_folder={out!r}, processes_count={processes}, thread_count={threads}, resize_mode="no",
         skip_reencode=True, verify_hash=["sha256", "sha256"], number_sample_per_shard=1000,
         disable_all_reencoding=True, timeout=30, retries=0)
"""


def main() -> None:
    """Generate and serve the site, crawl it in both modes, print the table and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", default=str(ROOT.parent / "shared/data/faces/lfw/labels.csv"))
    parser.add_argument("--spider", choices=["listal", "filmweb"], default="filmweb")
    parser.add_argument("--people", type=int, default=4)
    parser.add_argument("--photos", type=int, default=3)
    parser.add_argument("--profile", default=None, help="the profile to crawl (default demo-SPIDER; e.g. demo-listal-more)")
    parser.add_argument("--list-people", type=int, default=210, help="people on the site's load-more list")
    parser.add_argument("--list-photos", type=int, default=1, help="photos per person of the load-more list")
    parser.add_argument("--fast-only", action="store_true",
                        help="only the politeness-off crawl (a large site at the polite pace takes hours)")
    parser.add_argument("--urllist", type=int, default=0, help="compare with img2dataset on a list of N photos")
    parser.add_argument("--i2d-processes", type=int, default=2)
    parser.add_argument("--i2d-threads", type=int, default=32)
    parser.add_argument("--keep-alive", action="store_true",
                        help="serve HTTP/1.1 with persistent connections (default: Python's HTTP/1.0, one per photo)")
    parser.add_argument("--redis-processes", type=int, default=0,
                        help="also run N `anfe crawl urllist --redis` processes on one local redis-server")
    parser.add_argument("--concurrency", default="16",
                        help="comma-separated CONCURRENT_REQUESTS_PER_DOMAIN values to try (the first: --fast's)")
    args = parser.parse_args()
    if args.urllist:
        urllist_versus_img2dataset(args.urllist, args.i2d_processes, args.i2d_threads,
                                   [int(c) for c in args.concurrency.split(",")], args.keep_alive,
                                   args.redis_processes)
        return
    if not Path(args.labels).is_file():
        sys.exit(f"labels CSV not found: {args.labels} (the shared data folder must sit beside the checkout)")
    with tempfile.TemporaryDirectory(prefix="anfe-bench-") as temp:
        site = Path(temp) / "site"
        generate_site(args.labels, site, people=args.people, photos=args.photos, per_page=2,
                      list_people=args.list_people, list_photos=args.list_photos)
        rows = {}
        with DemoServer(site) as server:
            for n, (mode, extra) in enumerate(list(MODES.items())[:1 if args.fast_only else None]):
                report, share = crawl(args.spider, args.profile or f"demo-{args.spider}", server.base_url,
                                      Path(temp) / f"data{n}", extra)
                stats = report["stats"]
                seconds = float(stats["elapsed_time_seconds"])
                rows[mode] = (seconds, int(stats.get("anfe/page_requests", 0)),
                              int(stats.get("anfe/image_requests", 0)), int(stats.get("anfe/images/stored", 0)), share)
    print(f"crawl of the demo site ({args.profile or args.spider}, {args.people} people x {args.photos} photos, "
          f"a load-more list of {args.list_people} x {args.list_photos}, + traps); "
          f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs")
    print(f"{'mode':<20} {'seconds':>8} {'pages':>6} {'images':>7} {'stored':>7} {'pages/s':>8} {'images/s':>9} "
          f"{'CPU share':>9}")
    for mode, (seconds, pages, images, stored, share) in rows.items():
        print(f"{mode:<20} {seconds:8.2f} {pages:6d} {images:7d} {stored:7d} "
              f"{pages / seconds:8.2f} {images / seconds:9.2f} {share:9.0%}")
    if args.fast_only:
        return
    (fast_s, fast_p, fast_i, _, _), (slow_s, slow_p, slow_i, _, _) = rows.values()
    print(f"ratio off/defaults: pages/s x{(fast_p / fast_s) / (slow_p / slow_s):.1f}, "
          f"images/s x{(fast_i / fast_s) / (slow_i / slow_s):.1f} (the price of politeness)")


if __name__ == "__main__":
    main()
