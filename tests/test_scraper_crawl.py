"""End-to-end: generate the demo site from real LFW photos, serve it on a free loopback port, crawl it
with each spider (Scrapy in a subprocess, as a user runs it) and compare with the site's manifest."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from anfe.faces.cache import AnalysisCache
from anfe.faces.checks import MANY_FACES, NO_FACE, SMALL_FACE
from anfe.core.config import AnalysisParams
from anfe.core.store import open_store
from scraper.demosite import DISALLOWED, DemoServer, generate_site, url_list_for
from testkit.crawls import FAST, check_against_manifest, files_by_gender, run_scrapy

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(lfw_labels: Path, tmp_path_factory):
    """The generated site (manifest) and its running server."""
    labels = lfw_labels
    site = tmp_path_factory.mktemp("demo-site")
    manifest = generate_site(labels, site, people=6, photos=3, per_page=2, seed=0)
    with DemoServer(site) as server:
        yield site, manifest, server


def site_args(base_url: str, name: str) -> list[str]:
    return ["-a", f"profile=demo-{name}", "-a", f"base_url={base_url}"]


@pytest.mark.parametrize("style", ["listal", "filmweb"])
def test_site_spiders_match_the_manifest_and_rerun_downloads_nothing(demo, tmp_path, style):
    site, manifest, server = demo
    root = tmp_path / "data"
    first = run_scrapy(style, root, *site_args(server.base_url, style), report=tmp_path / "r1.json")
    check_against_manifest(root, manifest["spiders"][style], first["summary"])
    assert first["summary"]["people_by_gender"] == {g: len(n) for g, n in manifest["spiders"][style]["people"].items()}
    assert not [p for p in server.requests if p.startswith(DISALLOWED)], "robots.txt was not obeyed"

    second = run_scrapy(style, root, *site_args(server.base_url, style), report=tmp_path / "r2.json")
    assert second["summary"]["image_requests"] == 0
    assert second["stats"].get("anfe/images/stored") is None
    assert second["stats"]["anfe/skipped/already-fetched"] >= sum(manifest["spiders"][style]["images"].values())
    assert files_by_gender(root) == {g: set(h) for g, h in manifest["spiders"][style]["hashes"].items()}


def test_urllist_spider_matches_the_manifest(demo, tmp_path):
    site, manifest, server = demo
    root = tmp_path / "data"
    expect = manifest["spiders"]["urllist"]
    dropped: dict[str, int] = {}
    by_gender: dict[str, int] = {}
    for n, run in enumerate(expect["runs"]):
        listed = url_list_for(site, run["file"], server.base_url, tmp_path / run["file"])
        # the actors' file says its gender by flag, the actresses' by its file name
        flag = ["-a", f"gender={run['gender']}"] if n == 0 else []
        report = run_scrapy("urllist", root, "-a", f"file={listed}", *flag, report=tmp_path / f"r{n}.json")
        for reason, count in report["summary"]["dropped"].items():
            dropped[reason] = dropped.get(reason, 0) + count
        by_gender.update(report["summary"]["images_by_gender"])
    assert dropped == expect["dropped"]
    assert by_gender == expect["images"]
    assert files_by_gender(root) == {g: set(h) for g, h in expect["hashes"].items()}
    with open_store(None, root) as store:
        record = store.find_images(gender="female")[0]
        assert record["face_id"] and record["list_file"] == "facescrub_actresses.txt"
    assert not [p for p in server.requests if p.startswith(DISALLOWED)]


def test_urllist_crop_stores_derived_files_and_agrees_with_the_manifest(demo, tmp_path):
    """With crop=1 the counts and drops are the manifest's (one face of one photo is stored once,
    whatever its box: the actors' list names a photo again under another URL and box); the files
    are crops whose records keep the manifest's (original) hashes."""
    site, manifest, server = demo
    root = tmp_path / "data"
    expect = manifest["spiders"]["urllist"]
    dropped: dict[str, int] = {}
    for n, run in enumerate(expect["runs"]):
        listed = url_list_for(site, run["file"], server.base_url, tmp_path / run["file"])
        report = run_scrapy("urllist", root, "-a", f"file={listed}", "-a", "crop=1", report=tmp_path / f"r{n}.json")
        for reason, count in report["summary"]["dropped"].items():
            dropped[reason] = dropped.get(reason, 0) + count
    assert dropped == expect["dropped"]
    assert {g: len(files) for g, files in files_by_gender(root).items()} == expect["images"]
    with open_store(None, root) as store:
        records = store.find_images()
    for gender, originals in expect["hashes"].items():
        mine = [r for r in records if r["gender"] == gender]
        assert sorted(r["original_hash"] for r in mine) == sorted(originals)
    for record in records:
        assert record["derived"] == "crop" and record["content_hash"] not in record["original_hash"]
        x1, y1, x2, y2 = record["bbox"]
        assert (record["width"], record["height"]) == (x2 - x1, y2 - y1)
    copy = next(r for r in records if r.get("other_urls"))  # the trap row: the same face, another URL and box
    # Requests run concurrently, so either URL may arrive first: the pair is what is recorded.
    urls = [copy["url"], *copy["other_urls"]]
    assert len(urls) == 2 and sum(u.endswith("-copy.jpg") for u in urls) == 1


def test_jobdir_pause_and_resume_finishes_the_crawl_exactly(demo, tmp_path):
    site, manifest, server = demo
    root, jobdir = tmp_path / "data", tmp_path / "job"
    args = [*site_args(server.base_url, "listal"), "-s", f"JOBDIR={jobdir}"]
    before = len(server.requests)
    first = run_scrapy("listal", root, *args, "-s", "CLOSESPIDER_PAGECOUNT=12", report=tmp_path / "r1.json")
    assert first["summary"]["finish_reason"] == "closespider_pagecount"
    assert sum(first["summary"]["images_by_gender"].values()) < 18
    second = run_scrapy("listal", root, *args, report=tmp_path / "r2.json")
    assert second["summary"]["finish_reason"] == "finished"
    expect = manifest["spiders"]["listal"]
    assert files_by_gender(root) == {g: set(h) for g, h in expect["hashes"].items()}
    dropped = dict(first["summary"]["dropped"])
    for reason, count in second["summary"]["dropped"].items():
        dropped[reason] = dropped.get(reason, 0) + count
    assert dropped == expect["dropped"]
    # the resumed run fetched only what the first had not: no image or page twice
    fetched = [p for p in server.requests[before:] if p != "/robots.txt"]
    assert len(fetched) == len(set(fetched)), sorted(p for p in fetched if fetched.count(p) > 1)


def test_cap_on_images_per_person(demo, tmp_path):
    site, manifest, server = demo
    root = tmp_path / "data"
    run_scrapy("filmweb", root, *site_args(server.base_url, "filmweb"), "-a", "max_images_per_person=1",
               "-s", "HTTPCACHE_ENABLED=1", report=tmp_path / "r.json")
    with open_store(None, root) as store:
        people = [r["person_name"] for r in store.find_images()]
    assert people and all(people.count(p) == 1 for p in people)
    assert (root / "httpcache").is_dir()  # the HTTP cache option keeps its files in the dataset root
    again = run_scrapy("filmweb", root, *site_args(server.base_url, "filmweb"), "-a", "max_images_per_person=1",
                       report=tmp_path / "r2.json")
    assert again["summary"]["image_requests"] == 0  # a re-run does not take the next photo of each person
    with open_store(None, root) as store:
        assert len(store.find_images()) == len(people)
    assert not (ROOT / ".scrapy").exists()


def test_anfe_crawl_command_runs_a_spider(demo, tmp_path):
    site, manifest, server = demo
    root = tmp_path / "data"
    done = subprocess.run(
        [sys.executable, "-m", "anfe", "crawl", "filmweb", "--root", str(root), "--fast",
         "--db", f"sqlite:///{tmp_path / 'elsewhere.sqlite'}", "--contact", "tester@example.org",
         "-a", "profile=demo-filmweb", "-a", f"base_url={server.base_url}", "-s", "PROGRESS_INTERVAL=0.2"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "18 new images" in done.stdout
    assert "progress:" in done.stderr and "crawl summary (filmweb, finished)" in done.stderr
    log = Path(done.stderr.splitlines()[0].removeprefix("Scrapy's log: "))  # quiet: Scrapy's log is in a file
    assert "anfe-faces/0.1 (+tester@example.org)" in log.read_text()
    with open_store(f"sqlite:///{tmp_path / 'elsewhere.sqlite'}") as store:
        assert store.count_images() == 18
    assert not (root / "catalog.sqlite").exists()
    reports = list((root / "crawl_reports").glob("filmweb-*.json"))
    assert len(reports) == 1
    summary = json.loads(reports[0].read_text())["summary"]
    assert summary["dropped"] == manifest["spiders"]["filmweb"]["dropped"]


def test_anfe_crawl_reports_a_bad_profile_in_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "anfe", "crawl", "listal", "-a", "profile=nope"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("Error: no shipped profile 'nope'")


def test_curation_gate_drops_photos_without_exactly_one_face(demo, shared_faces, tmp_path):
    """Real dlib on five photos: a giraffe (no face), a pair, a close-up and two LFW faces."""
    site, manifest, server = demo
    facecount = shared_faces / "facecount"
    photos = {
        "giraffe": facecount / "dlib/dlib/test/ffmpeg_data/giraffe.jpg",
        "pair": facecount / "dlib/examples/faces/2008_001009.jpg",
        "closeup": facecount / "dlib/examples/faces/Tom_Cruise_avp_2014_4.jpg",
    }
    if not all(p.is_file() for p in photos.values()):
        pytest.skip("facecount photos not found")
    gate_dir = site / "gate"
    gate_dir.mkdir(exist_ok=True)
    lines = []
    for n, (name, path) in enumerate(photos.items()):
        shutil.copyfile(path, gate_dir / f"{name}.jpg")
        lines.append(f"{name}\t{n}\t{n}\t{server.base_url}/gate/{name}.jpg\t\t")
    for n, digest in enumerate(manifest["spiders"]["urllist"]["hashes"]["male"][:2]):
        record_source = next(p for p in (site / "facescrub" / "images").iterdir()
                             if hashlib.sha256(p.read_bytes()).hexdigest() == digest)
        lines.append(f"lfw{n}\t{n + 10}\t{n + 10}\t{server.base_url}/facescrub/images/{record_source.name}\t\t{digest}")
    listed = tmp_path / "gate_actors.txt"
    listed.write_text("\n".join(lines) + "\n")
    cache = tmp_path / "analysis.sqlite"
    root = tmp_path / "data"
    report = run_scrapy("urllist", root, "-a", f"file={listed}", "-s", "CURATION_GATE=1",
                        "-s", f"ANALYSIS_CACHE={cache}", report=tmp_path / "r.json", timeout=300)
    summary = report["summary"]
    assert report["stats"]["anfe/gate/analysed"] == 5
    assert summary["dropped"].get("no-face") == 1  # the giraffe
    # every decision agrees with the cached analysis of the same bytes
    with AnalysisCache(cache, AnalysisParams().cache_key) as analyses:
        kept = files_by_gender(root).get("male", set())
        for digest, analysis in analyses.get_many(
            [hashlib.sha256(p.read_bytes()).hexdigest() for p in gate_dir.iterdir()]
            + manifest["spiders"]["urllist"]["hashes"]["male"][:2]
        ).items():
            single = all(check.failed(analysis) is None for check in (NO_FACE, MANY_FACES, SMALL_FACE))
            assert (digest in kept) == single, (digest, analysis.face_count)
    assert len(kept) == 5 - sum(summary["dropped"].values())


def test_ctrl_c_pauses_and_the_same_command_resumes(demo, tmp_path):
    """A real SIGINT in the middle of a (slowed-down) crawl, then the same command again."""
    import signal
    import time

    site, manifest, server = demo
    root, jobdir = tmp_path / "data", tmp_path / "job"
    command = [sys.executable, "-m", "scrapy", "crawl", "filmweb", *site_args(server.base_url, "filmweb"),
               "-s", f"DATASET_ROOT={root}", "-s", f"JOBDIR={jobdir}", *FAST, "-s", "DOWNLOAD_DELAY=0.1",
               "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=1"]
    before = len(server.requests)
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while len(server.requests) - before < 20 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert "shutdown" in stderr, stderr[-2000:]
    paused = files_by_gender(root)
    assert sum(len(h) for h in paused.values()) < 18
    report = run_scrapy("filmweb", root, *site_args(server.base_url, "filmweb"), "-s", f"JOBDIR={jobdir}",
                        report=tmp_path / "r.json")
    assert report["summary"]["finish_reason"] == "finished"
    expect = manifest["spiders"]["filmweb"]
    assert files_by_gender(root) == {g: set(h) for g, h in expect["hashes"].items()}
    fetched = [p for p in server.requests[before:] if p != "/robots.txt"]
    assert len(fetched) == len(set(fetched)), sorted(p for p in fetched if fetched.count(p) > 1)
