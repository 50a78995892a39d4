"""robots.txt holds for every request, also for the many that wait for it together at the start of a
crawl (Scrapy 2.13+'s middleware gave the second and later waiters no rules; see
scraper.middlewares.RobotsTxtMiddleware)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scraper.demosite import DISALLOWED, DemoServer, generate_site

pytestmark = pytest.mark.slow
CHECKOUT = Path(__file__).resolve().parent.parent


def test_requests_waiting_for_robots_txt_all_obey_it(lfw_labels: Path, tmp_path: Path):
    site = tmp_path / "site"
    generate_site(lfw_labels, site, people=2, photos=1, per_page=2, seed=7)
    private = sorted((site / DISALLOWED.strip("/")).rglob("*.jpg"))[0].relative_to(site).as_posix()
    with DemoServer(site) as server:
        rows = [f"Someone\t{n}\t{n}\t{server.base_url}/{private}?copy={n}\t\t" for n in range(12)]
        listed = tmp_path / "facescrub_actors.txt"
        listed.write_text("name\timage_id\tface_id\turl\tbbox\tsha256\n" + "\n".join(rows) + "\n")
        report = tmp_path / "report.json"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CHECKOUT), os.environ.get("PYTHONPATH", "")])}
        done = subprocess.run(
            [sys.executable, "-m", "scrapy", "crawl", "urllist", "-a", f"file={listed}",
             "-s", f"DATASET_ROOT={tmp_path / 'data'}", "-s", f"CRAWL_REPORT={report}", "-s", "DOWNLOAD_DELAY=0",
             "-s", "AUTOTHROTTLE_ENABLED=0", "-s", "CONCURRENT_REQUESTS=32", "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=16",
             "-s", "PROGRESS_INTERVAL=0"],
            cwd=CHECKOUT, env=env, capture_output=True, text=True, timeout=120,
        )
        assert report.is_file(), done.stderr[-3000:]
        assert not [p for p in server.requests if p.startswith(DISALLOWED)], "a robots-disallowed URL was fetched"
    summary = json.loads(report.read_text())["summary"]
    assert summary["robots_forbidden"] == 12 and summary["images_stored"] == 0
    assert done.returncode == 1 and done.stderr.strip().splitlines()[-1].startswith(
        "Error: the crawl got nothing: all 12 requests failed: 12 robots-txt (Forbidden by robots.txt)")
