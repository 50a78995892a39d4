"""The exhaustive crash test: kill -9 at a named crash point (``ANFE_CRASH_AT``, see
:mod:`anfe.core.crashpoints`), then run the same command without it, and check that it ends where an
uninterrupted run ends.

- The crawl, with ``--jobdir``, ``--redis`` and neither, of a tiny demo site (real LFW photos, one
  person per gender, 2 photos each, with every trap): afterwards exactly the manifest's photos,
  once, no temporary file, no catalog row without its file, and a summary saying "finished".
- ``anfe clean``'s moves (journal line, file moved, analysis cache batch) and the review
  decisions (decision logged, journal line, file moved): afterwards the same files where an
  uninterrupted run put them, with the same catalog statuses.

A first run of each command with ``ANFE_CRASH_LOG`` counts the passages of every point. By
default a stride of them is tried (the middle passage of every point, more for the frontier's
"done"); ``ANFE_CRASH_FULL=1`` tries every passage of every point (the long form, ``slow``), or
every k-th and the last with ``ANFE_CRASH_STRIDE=k``. Each test prints how many crash points it
tried and how many passed.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from collections import Counter
from pathlib import Path

import pytest

from anfe.core.layout import DatasetLayout
from anfe.core.store import open_store
from scraper.demosite import DemoServer, generate_site
from testkit.crashes import REVIEW_BATCH, passages, report, run, walk

FULL = os.environ.get("ANFE_CRASH_FULL") == "1"
#: With ANFE_CRASH_FULL=1: try every k-th passage of the crawls' points (1 = all of them; the
#: curation commands have few passages: all of them are tried).
FULL_STRIDE = max(1, int(os.environ.get("ANFE_CRASH_STRIDE", "1")))
CRAWL_POINTS = ("frontier.add", "frontier.commit", "frontier.done", "crawl.file", "crawl.record", "crawl.ledger")
FAST = ["-s", "PROGRESS_INTERVAL=0", "-s", "REDIS_WORKER_TTL=1", "-s", "LOG_LEVEL=INFO"]


def picks(counts: Counter, points: tuple[str, ...], extra: dict[str, int] | None = None,
          stride: int = 1) -> list[tuple[str, int]]:
    """Every ``stride``-th passage of every point and its last (ANFE_CRASH_FULL=1), or a stride: the
    middle passage of each point, plus ``extra[point]`` more spread over that point's passages."""
    cases = []
    for point in points:
        total = counts.get(point, 0)
        if FULL:
            chosen = set(range(1, total + 1, stride)) | ({total} if total else set())
        elif total:
            more = (extra or {}).get(point, 0)
            chosen = {(total + 1) // 2} | {1 + (total - 1) * i // max(more, 1) for i in range(more + 1) if more}
        else:
            chosen = set()
        cases += [(point, n) for n in sorted(chosen)]
    return cases


# -- the crawl ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_site(lfw_labels: Path, tmp_path_factory):
    """A demo site of one person per gender (2 photos each, 2 per page), on a free loopback port."""
    folder = tmp_path_factory.mktemp("crash-site") / "site"
    manifest = generate_site(lfw_labels, folder, people=2, photos=2, per_page=2, seed=0, list_people=2,
                             list_photos=1)
    with DemoServer(folder) as server:
        yield manifest["spiders"]["listal"], server


def crawl_command(root: Path, server: DemoServer, mode: str, redis_url: str = "") -> list[str]:
    extra = {"jobdir": ["--jobdir", str(root.parent / "job")], "redis": ["--redis", redis_url], "neither": []}[mode]
    return [sys.executable, "-m", "anfe", "crawl", "listal", "--root", str(root), "--fast", "-a",
            "profile=demo-listal", "-a", f"base_url={server.base_url}", *FAST, *extra]


def crawl_problems(root: Path, expect: dict) -> list[str]:
    """What is wrong with a dataset root against the manifest (empty when nothing)."""
    problems = []
    layout = DatasetLayout(root)
    files = [p for g in layout.genders() for p in layout.image_files(g)]
    found = {g: sorted(p.stem for p in layout.image_files(g)) for g in layout.genders()}
    if found != {g: sorted(h) for g, h in expect["hashes"].items()}:
        problems.append(f"photos {found} are not the manifest's")
    if len(files) != len({p.stem for p in files}):
        problems.append("a photo is stored twice")
    temp = [str(p) for p in root.rglob(".part-*")]
    if temp:
        problems.append(f"temporary files left: {temp}")
    with open_store(None, root) as store:
        records = store.find_images()
    missing = [r["path"] for r in records if not (root / r["path"]).is_file()]
    if missing:
        problems.append(f"{len(missing)} catalog rows without a file: {missing}")
    if {r["content_hash"] for r in records} != {h for hs in expect["hashes"].values() for h in hs}:
        problems.append("the catalog's photos are not the manifest's")
    return problems


def summary(root: Path) -> dict:
    reports = sorted((root / "crawl_reports").glob("listal-*.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(reports[-1].read_text())["summary"] if reports else {}


def crash_case(tmp: Path, server: DemoServer, expect: dict, mode: str, point: str, n: int,
               fresh_redis: "callable | None") -> tuple[str | None, bool]:
    """(what went wrong or None, whether the kill came) for one crash point and passage."""
    root = tmp / f"{mode}-{point}-{n}" / "data"
    root.parent.mkdir(parents=True)
    redis_url = fresh_redis() if fresh_redis else ""
    command = crawl_command(root, server, mode, redis_url)
    first = run(command, root.parent, ANFE_CRASH_AT=f"{point}:{n}")
    killed = first.returncode == -signal.SIGKILL
    if not killed and first.returncode != 0:
        return f"{point}:{n}: the crash run failed (rc {first.returncode}): {first.stderr[-500:]}", killed
    again = run(command, root.parent)
    if again.returncode != 0:
        return f"{point}:{n}: the re-run failed (rc {again.returncode}): {again.stderr[-800:]}", killed
    problems = crawl_problems(root, expect)
    if "crawl summary (listal, finished)" not in again.stderr:
        problems.append("the re-run's summary does not say finished")
    if summary(root).get("finish_reason") != "finished":
        problems.append(f"the re-run's report says {summary(root).get('finish_reason')}")
    return (f"{point}:{n}: " + "; ".join(problems)) if problems else None, killed


#: Passages tried beyond the middle one, per point, in the default run.
STRIDE = {"jobdir": {"frontier.done": 1}, "redis": {}, "neither": {}}


@pytest.mark.slow
@pytest.mark.timeout(7200 if FULL else 600)  # the long form: ~145 crash runs per mode
@pytest.mark.parametrize("mode", ["jobdir", "redis", "neither"])
def test_a_crawl_killed_at_a_crash_point_ends_with_every_photo_when_run_again(tiny_site, tmp_path, mode, request):
    expect, server = tiny_site
    fresh_redis = None
    if mode == "redis":
        redis = request.getfixturevalue("redis_server")

        def fresh_redis() -> str:
            redis.flush()
            return redis.url

    baseline = tmp_path / "baseline" / "data"
    baseline.parent.mkdir()
    counts = passages(crawl_command(baseline, server, mode, fresh_redis() if fresh_redis else ""),
                      baseline.parent, tmp_path / "passages.log")
    assert not crawl_problems(baseline, expect)
    points = tuple(p for p in CRAWL_POINTS if counts.get(p)
                   # an in-memory frontier dies whole: a kill inside its transaction is one at its end
                   and not (mode == "neither" and p == "frontier.commit" and not FULL))
    assert {"frontier.add", "frontier.done", "crawl.file", "crawl.record", "crawl.ledger"} <= set(points), counts
    cases = picks(counts, points, STRIDE[mode], FULL_STRIDE)
    failures, unreached = [], 0
    for point, n in cases:
        problem, killed = crash_case(tmp_path, server, expect, mode, point, n, fresh_redis)
        unreached += not killed
        if problem:
            failures.append(problem)
    report(request, f"crawl --{mode}" if mode != "neither" else "crawl", len(cases), failures, unreached)
    assert unreached <= len(cases) // 4  # the passages counted are (nearly always) reached again


# -- clean's moves and the review decisions ------------------------------------------------------
def make_dataset(utkface_rows: list[dict], root: Path) -> None:
    """Two adults per gender, a too-small copy of one, a byte-for-byte duplicate, an unreadable file."""
    from io import BytesIO

    from PIL import Image

    from anfe.core.hashing import content_hash
    from anfe.core.layout import content_file_name

    picked: dict[str, list[bytes]] = {"female": [], "male": []}
    for row in utkface_rows[::23]:
        if 25 <= int(row["age"]) <= 50 and len(picked[row["gender"]]) < 2:
            picked[row["gender"]].append(Path(row["path"]).read_bytes())
    for gender, photos in picked.items():
        folder = root / "images" / gender
        folder.mkdir(parents=True, exist_ok=True)
        for data in photos:
            (folder / content_file_name(content_hash(data), ".jpg")).write_bytes(data)
    small = BytesIO()
    Image.open(BytesIO(picked["male"][0])).resize((40, 40)).save(small, "JPEG")
    (root / "images" / "male" / content_file_name(content_hash(small.getvalue()), ".jpg")).write_bytes(small.getvalue())
    (root / "images" / "female" / "copy.jpg").write_bytes(picked["female"][0])
    (root / "images" / "female" / "broken.jpg").write_bytes(picked["female"][1][:300])


def dataset_state(root: Path) -> dict:
    """Where every file is (relative path -> bytes' length), every catalog record's status and path,
    and the decision log."""
    files = {p.relative_to(root).as_posix(): p.stat().st_size for p in (root / "images").rglob("*") if p.is_file()}
    quarantine = root / "quarantine"
    if quarantine.is_dir():
        files |= {p.relative_to(root).as_posix(): p.stat().st_size for p in quarantine.rglob("*")
                  if p.is_file() and not p.name.startswith(".") and p.name != "manifest.jsonl"}
    with open_store(None, root) as store:
        records = {r["content_hash"]: (r.get("status"), r.get("path"), r.get("gender")) for r in store.find_images()}
        decisions = [(d.get("action"), d.get("file_name")) for d in store.decisions()]
    return {"files": files, "records": records, "decisions": decisions}


CLEAN = [sys.executable, "-m", "anfe", "clean", "data", "--quiet", "--workers", "1", "--cache", "cache.sqlite",
         "--no-near-duplicate"]


def walk_curation(tmp_path: Path, template: Path, command: list[str], points: tuple[str, ...],
                  extra: dict[str, int], request, what: str, cached: bool = False) -> Counter:
    """:func:`testkit.crashes.walk` of ``command`` over a copy of ``template`` (whose ``data`` is
    the root), comparing :func:`dataset_state`. With ``cached``, every crash run but the cache's own
    starts from the uninterrupted run's analysis cache (no face detector needed)."""
    def prepare(case: Path, truth: Path, point: str) -> None:
        if cached and point != "cache.batch":
            shutil.copy(truth / "cache.sqlite", case / "cache.sqlite")

    return walk(tmp_path, template, command, points, lambda case: dataset_state(case / "data"), request, what,
                choose=lambda counts, chosen: picks(counts, chosen, extra), prepare=prepare)


@pytest.mark.slow
def test_clean_killed_at_a_crash_point_ends_where_an_uninterrupted_clean_ends(utkface_rows, tmp_path, request):
    template = tmp_path / "template"
    make_dataset(utkface_rows, template / "data")
    counts = walk_curation(tmp_path, template, CLEAN, ("moves.journal", "moves.file", "cache.batch"),
                           {"moves.file": 1}, request, "clean", cached=True)
    assert counts["moves.file"] >= 3, counts  # too small, unreadable, the duplicate


@pytest.mark.slow
def test_review_decisions_killed_at_a_crash_point_end_where_uninterrupted_ones_end(utkface_rows, tmp_path, request):
    template = tmp_path / "template"
    make_dataset(utkface_rows, template / "data")
    for broken in ("copy.jpg", "broken.jpg"):  # only photos named by their hash go to review
        (template / "data" / "images" / "female" / broken).unlink()
    layout = DatasetLayout(template / "data")
    names = [sorted(layout.image_files("male"))[0].name, sorted(layout.image_files("female"))[-1].name]
    command = [*REVIEW_BATCH, "data", *names]
    counts = walk_curation(tmp_path, template, command, ("review.decision", "moves.journal", "moves.file"),
                           {"review.decision": 1}, request, "review decisions")
    assert counts["review.decision"] == 2, counts
