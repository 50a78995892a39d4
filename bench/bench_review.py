"""The review page at 5,000 and 50,000 photos, driven in headless Chromium through `anfe review`.

Builds a dataset root of N distinct photos derived from UTKFace adults in ../shared (each a source
photo with one pixel changed, re-encoded as JPEG: a new content hash per photo). Instead of running
dlib on every derived photo, the sources are analysed once (the analysis cache) and each derived
photo gets its source's analysis under its own hash (one pixel does not move a face); the page's
own once-per-session sync (curation.catalog.sync) then scores them as usual, here in the set-up.
About 1% are sent to review (wrong-person and label-conflict, alternately); every photo has a
person (20 photos each) and one of two sites.

Prints per size, in seconds: the full catalog sync (paid by the first session after photos were
added or moved outside the page; later sessions find the folders unchanged), server up, first grid (12 tiles shown), tick-then-key (tick a tile,
press K, until the page says it was kept), undo (U), next page (Right), by-person view, the
sent-to-review view, and its reason filter; with the machine's load, and the distance to the
targets at 50,000 (first grid <= 2 s, every action <= 0.3 s).

    python bench/bench_review.py [--sizes 500 5000 50000] [--work /tmp/bench_review] [--sources 300] [--reuse]
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import io
import multiprocessing
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from anfe.faces.batch import analyse_paths
from anfe.faces.cache import AnalysisCache
from anfe.core.paths import default_cache_path
from anfe.core.config import AnalysisParams
from anfe.core.layout import DatasetLayout
from anfe.core.store import open_store
from curation import catalog, moves, quarantine

UTKFACE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "faces" / "utkface"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
TARGET_FIRST_GRID, TARGET_ACTION = 2.0, 0.3
PER_PERSON = 20


def sources(count: int) -> list[tuple[Path, str]]:
    """``count`` UTKFace adults, half per gender."""
    with (UTKFACE / "labels.csv").open(newline="", encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if 20 <= int(r["age"]) <= 60]
    picked = []
    for gender in ("female", "male"):
        picked += [(UTKFACE / r["path"], gender) for r in rows if r["gender"] == gender][: count // 2]
    return picked


def _derive(job: tuple[int, str, str, str]) -> tuple[int, str]:
    """Photo ``index``: the source with pixel ``index`` (row-major, wrapping) changed, as a JPEG."""
    index, source, gender, root = job
    image = np.asarray(Image.open(source).convert("RGB")).copy()
    h, w, _ = image.shape
    # a different pixel per derived photo of the same source, changed enough to survive JPEG
    y, x = (index // w) % h, index % w
    image[y, x] = (image[y, x].astype(int) + 128 + index // (w * h)) % 256
    out = io.BytesIO()
    Image.fromarray(image).save(out, "JPEG", quality=90)
    data = out.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    path = Path(root) / "images" / gender / f"{digest}.jpg"
    path.write_bytes(data)
    return index, digest


def build_root(root: Path, size: int, picked: list[tuple[Path, str]], params: AnalysisParams, cache_path: Path
               ) -> None:
    """The dataset root of ``size`` derived photos, its records, cached analyses and scores."""
    if root.exists():
        shutil.rmtree(root)
    for gender in ("female", "male"):
        (root / "images" / gender).mkdir(parents=True)
    jobs = [(i, str(picked[i % len(picked)][0]), picked[i % len(picked)][1], str(root)) for i in range(size)]
    with multiprocessing.Pool(os.cpu_count() or 2) as pool:
        digests = dict(pool.imap_unordered(_derive, jobs, chunksize=200))
    if len(set(digests.values())) != size:
        raise SystemExit(f"only {len(set(digests.values()))} distinct photos of {size}: change more pixels")
    with AnalysisCache(default_cache_path(), params.cache_key) as shared:
        source_analyses, _ = analyse_paths([p for p, _ in picked], params, shared, workers=os.cpu_count() or 2,
                                           progress=False)
    with AnalysisCache(cache_path, params.cache_key) as cache:
        cache.put_many(dataclasses.replace(source_analyses[str(picked[i % len(picked)][0])], content_hash=d)
                       for i, d in digests.items())
    layout = DatasetLayout(root)
    with open_store(None, root) as store:
        store.upsert_images(
            {"content_hash": d, "status": "active", "gender": picked[i % len(picked)][1],
             "path": f"images/{picked[i % len(picked)][1]}/{d}.jpg", "person_id": str(i // PER_PERSON),
             "person_name": f"Person {i // PER_PERSON:05d} of a long double-barrelled name",
             "site": ("filmweb.test", "listal.test")[(i // PER_PERSON) % 2]}
            for i, d in digests.items())
        for n, i in enumerate(range(7, size, 100)):  # about 1% sent to review
            gender = picked[i % len(picked)][1]
            quarantine.quarantine_file(layout, root / "images" / gender / f"{digests[i]}.jpg",
                                       ("wrong-person", "label-conflict")[n % 2], "bench", store,
                                       status=moves.STATUS_REVIEW, content_hash=digests[i])
        with AnalysisCache(cache_path, params.cache_key) as cache:
            catalog.sync(layout, store, params, cache)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"anfe review exited: {server.stdout.read() if server.stdout else ''}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"anfe review did not answer within {timeout} s")


def _page_url(server: subprocess.Popen, url: str) -> str:
    """The page's address with the token `anfe review` prints (a page asked for without it is
    refused), read from the server's first lines."""
    for line in server.stdout or ():
        if (found := re.search(rf"{re.escape(url)}/\?token=\S+", line)):
            return found.group(0)
    raise SystemExit("anfe review printed no page address")


def _idle(page) -> None:
    page.wait_for_function("() => document.querySelector('[data-test-script-state]')"
                           "?.getAttribute('data-test-script-state') === 'notRunning'", timeout=120_000)


def _timed(page, act, text: str | re.Pattern) -> float:
    """Seconds from ``act()`` until ``text`` shows and the script run has ended."""
    start = time.perf_counter()
    act()
    page.get_by_text(text).first.wait_for(timeout=120_000)
    _idle(page)
    return time.perf_counter() - start


def drive(root: Path, cache_path: Path, size: int) -> dict[str, float]:
    """Serve ``root`` with `anfe review` and time each step in headless Chromium."""
    from playwright.sync_api import sync_playwright

    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    start = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "-m", "anfe", "review", str(root), "--port", str(port), "--cache", str(cache_path),
         "--workers", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "USER": "bench", "BROWSER": "true"})
    times: dict[str, float] = {}
    try:
        _wait_healthy(url, server)
        times["server up"] = time.perf_counter() - start
        address = _page_url(server, url)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            start = time.perf_counter()
            page.goto(address)
            page.wait_for_function("() => document.querySelectorAll('[data-testid=\"stImage\"] img').length >= 12",
                                   timeout=300_000)
            _idle(page)
            times["first grid"] = time.perf_counter() - start

            def tick_then_key() -> None:
                page.locator('[class*="st-key-sel-"]').first.click()
                page.keyboard.press("k")

            times["tick, then K"] = _timed(page, tick_then_key, re.compile(r"Kept: 1 keep"))
            times["undo (U)"] = _timed(page, lambda: page.keyboard.press("u"), re.compile(r"Undid the last decision"))
            times["next page (Right)"] = _timed(page, lambda: page.keyboard.press("ArrowRight"),
                                                re.compile(r"page 2 of"))
            times["by-person view"] = _timed(page, lambda: page.get_by_text("by person", exact=True).click(),
                                             re.compile(r"\d+ photos, \d+ marked"))
            page.get_by_text("by gender", exact=True).click()
            page.get_by_text(re.compile(r"left to review of")).first.wait_for(timeout=120_000)
            _idle(page)
            times["sent-to-review view"] = _timed(
                page, lambda: page.get_by_text(re.compile(r"sent to review by the cleaning")).click(),
                re.compile(r"Sent to review by the automatic cleaning"))
            wrong = len(range(7, size, 100)) // 2 + len(range(7, size, 100)) % 2

            def reason_filter() -> None:
                page.locator(".st-key-filter_reason").click()
                page.get_by_role("option", name="wrong-person").click()

            times["reason filter"] = _timed(page, reason_filter, re.compile(rf"· {wrong} in this view"))
            browser.close()
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 5000, 50000],
                        help="500: the reference, the page's fixed costs measured in the same run")
    parser.add_argument("--work", type=Path, default=Path("/tmp/bench_review"))
    parser.add_argument("--sources", type=int, default=300)
    parser.add_argument("--reuse", action="store_true", help="serve roots built by an earlier run again "
                        "(their decisions were undone; only the per-page reads differ)")
    parser.add_argument("--build-only", action="store_true", help="build the roots, serve nothing")
    args = parser.parse_args()
    params = AnalysisParams()
    picked = sources(args.sources)
    for size in args.sizes:
        root, cache_path = args.work / f"root-{size}", args.work / f"cache-{size}.sqlite"
        started = time.perf_counter()
        if not (args.reuse and (root / ".bench-built").exists()):
            cache_path.unlink(missing_ok=True)
            build_root(root, size, picked, params, cache_path)
            (root / ".bench-built").touch()
        if args.build_only:
            continue
        print(f"\n{size:,} photos (root ready in {time.perf_counter() - started:.0f} s; "
              f"load before {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores)")
        with open_store(None, root) as store, AnalysisCache(cache_path, params.cache_key) as cache:
            store.set_meta(catalog.SYNC_META, None)  # as after photos were added or moved by hand
            start = time.perf_counter()
            catalog.sync(DatasetLayout(root), store, params, cache)
            full = time.perf_counter() - start
        times = drive(root, cache_path, size)
        print(f"  {'full sync':<22} {full:6.2f} s   (once, by the first session after the folders changed;"
              " not in the first grid below)")
        for step, seconds in times.items():
            target = TARGET_FIRST_GRID if step == "first grid" else None if step == "server up" else TARGET_ACTION
            gap = "" if target is None or seconds <= target else f"   ({seconds - target:+.2f} s over {target:g} s)"
            print(f"  {step:<22} {seconds:6.2f} s{gap}")
        print(f"  load after: {' '.join(f'{x:.2f}' for x in os.getloadavg())} (1, 5, 15 min)")


if __name__ == "__main__":
    main()
