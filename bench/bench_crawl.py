"""Benchmark: pages and images per second crawling the local demo site, politeness off vs the defaults.

Run from the project root:  python bench/bench_crawl.py [--spider filmweb] [--people 4] [--photos 3]

    python bench/bench_crawl.py --urllist 12000 [--i2d-processes 2 --i2d-threads 32]

instead downloads one FaceScrub-style list (name, image_id, face_id, url, bbox, sha256, gender)
of that many distinct real photos (LFW, then UTKFace, then webcrops, from ../shared/data/faces),
served by one threaded static server on 127.0.0.1, twice in the same run: with img2dataset (the
tool people use for URL lists; the ``bench`` extra: ``pip install img2dataset``; sha256 verified,
original bytes kept: ``resize_mode=no``, ``skip_reencode``) and with ``anfe crawl urllist --fast``
(its checks on: hash, decode, atomic write, store record, ledger). It prints photos/s of each,
counting the process start, and the ratio anfe / img2dataset (the issue's target: >= 1.0x).
Both crawls run in the same session against the same freshly generated site (real LFW photos
copied to a temporary folder, served on 127.0.0.1), each into its own empty dataset root. The
times are Scrapy's own ``elapsed_time_seconds`` (process start-up excluded).
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
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


def crawl(spider: str, base_url: str, root: Path, extra: list[str]) -> dict:
    """One crawl in a subprocess; returns its JSON report."""
    report = root.parent / f"{root.name}-report.json"
    command = [sys.executable, "-m", "scrapy", "crawl", spider, "-a", f"profile=demo-{spider}",
               "-a", f"base_url={base_url}", "-s", f"DATASET_ROOT={root}", "-s", f"CRAWL_REPORT={report}",
               "-s", "LOG_LEVEL=WARNING", "-s", "PROGRESS_INTERVAL=0", *extra]
    subprocess.run(command, cwd=ROOT, check=True, timeout=1800)
    return json.loads(report.read_text())


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


def timed_run(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, timeout=3600, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        sys.exit(f"{command[:4]} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def urllist_versus_img2dataset(count: int, processes: int, threads: int) -> None:
    """Serve ``count`` photos, download them with img2dataset and with ``anfe crawl urllist --fast``."""
    import functools
    import threading

    with tempfile.TemporaryDirectory(prefix="anfe-bench-list-") as temp:
        serve_dir = Path(temp) / "www"
        serve_dir.mkdir()
        template, rows = url_list(count, serve_dir)
        handler = functools.partial(_QuietHandler, directory=str(serve_dir))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            listing = Path(temp) / "facescrub_list.tsv"
            listing.write_text(template.read_text().replace("__HOST__", f"127.0.0.1:{server.server_port}"))
            before = os.getloadavg()
            i2d = timed_run([sys.executable, "-c", _I2D.format(listing=str(listing), out=str(Path(temp) / "i2d"),
                                                                processes=processes, threads=threads)], ROOT)
            got_i2d = sum(1 for p in (Path(temp) / "i2d").rglob("*.jpg"))
            anfe = timed_run([sys.executable, "-m", "anfe", "crawl", "urllist", "--root", str(Path(temp) / "data"),
                              "--fast", "-a", f"file={listing}", "-s", "LOG_LEVEL=WARNING"], ROOT)
            got_anfe = sum(1 for p in (Path(temp) / "data" / "images").rglob("*") if p.is_file())
            after = os.getloadavg()
        finally:
            server.shutdown()
    print(f"URL list of {rows} photos on one local threaded server; load average before "
          f"{before[0]:.2f}, after {after[0]:.2f}; {os.cpu_count()} CPUs")
    print(f"  img2dataset ({processes} processes x {threads} threads, sha256 verified, original bytes): "
          f"{i2d:.1f} s, {got_i2d} photos, {got_i2d / i2d:.0f} photos/s")
    print(f"  anfe crawl urllist --fast (hash, decode, atomic write, store, ledger): {anfe:.1f} s, "
          f"{got_anfe} photos, {got_anfe / anfe:.0f} photos/s")
    print(f"  ratio anfe / img2dataset: {(got_anfe / anfe) / (got_i2d / i2d):.2f}x (target >= 1.0x)")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """A static file handler that does not log every request."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


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
    parser.add_argument("--urllist", type=int, default=0, help="compare with img2dataset on a list of N photos")
    parser.add_argument("--i2d-processes", type=int, default=2)
    parser.add_argument("--i2d-threads", type=int, default=32)
    args = parser.parse_args()
    if args.urllist:
        urllist_versus_img2dataset(args.urllist, args.i2d_processes, args.i2d_threads)
        return
    if not Path(args.labels).is_file():
        sys.exit(f"labels CSV not found: {args.labels} (the shared data folder must sit beside the checkout)")
    with tempfile.TemporaryDirectory(prefix="anfe-bench-") as temp:
        site = Path(temp) / "site"
        generate_site(args.labels, site, people=args.people, photos=args.photos, per_page=2)
        rows = {}
        with DemoServer(site) as server:
            for n, (mode, extra) in enumerate(MODES.items()):
                stats = crawl(args.spider, server.base_url, Path(temp) / f"data{n}", extra)["stats"]
                seconds = float(stats["elapsed_time_seconds"])
                rows[mode] = (seconds, int(stats.get("anfe/page_requests", 0)),
                              int(stats.get("anfe/image_requests", 0)), int(stats.get("anfe/images/stored", 0)))
    print(f"crawl of the demo site ({args.spider} style, {args.people} people x {args.photos} photos + traps)")
    print(f"{'mode':<20} {'seconds':>8} {'pages':>6} {'images':>7} {'stored':>7} {'pages/s':>8} {'images/s':>9}")
    for mode, (seconds, pages, images, stored) in rows.items():
        print(f"{mode:<20} {seconds:8.2f} {pages:6d} {images:7d} {stored:7d} "
              f"{pages / seconds:8.2f} {images / seconds:9.2f}")
    (fast_s, fast_p, fast_i, _), (slow_s, slow_p, slow_i, _) = rows.values()
    print(f"ratio off/defaults: pages/s x{(fast_p / fast_s) / (slow_p / slow_s):.1f}, "
          f"images/s x{(fast_i / fast_s) / (slow_i / slow_s):.1f} (the price of politeness)")


if __name__ == "__main__":
    main()
