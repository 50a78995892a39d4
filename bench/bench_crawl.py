"""Benchmark: pages and images per second crawling the local demo site, politeness off vs the defaults.

Run from the project root:  python bench/bench_crawl.py [--spider filmweb] [--people 4] [--photos 3]
Both crawls run in the same session against the same freshly generated site (real LFW photos
copied to a temporary folder, served on 127.0.0.1), each into its own empty dataset root. The
times are Scrapy's own ``elapsed_time_seconds`` (process start-up excluded).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
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


def main() -> None:
    """Generate and serve the site, crawl it in both modes, print the table and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", default=str(ROOT.parent / "shared/data/faces/lfw/labels.csv"))
    parser.add_argument("--spider", choices=["listal", "filmweb"], default="filmweb")
    parser.add_argument("--people", type=int, default=4)
    parser.add_argument("--photos", type=int, default=3)
    args = parser.parse_args()
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
