"""A URL list crawled fast: several processes (``--processes``), writes off the event loop, group commits.

Against the real demo site on 127.0.0.1 and real LFW photos: the split crawl ends exactly where one
process ends (the manifest); forty URLs of the same bytes at once, in one process or two, make one
photo whose record names every URL; a split crawl killed at each crash point is finished by the same
command; and the pieces (shards, merged stats, claims, the group committer, the per-key locks, the
decode check under threads) do what their docstrings say.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from PIL import Image, ImageFile

from anfe.core.errors import TruncatedImageError
from anfe.core.store import open_store
from anfe.faces.imaging import check_decodes, open_image
from scraper.claims import LocalContentLocks
from scraper.demosite import DemoServer, generate_site, url_list_for
from scraper.errors import SpiderArgumentError
from scraper.groupcommit import GroupCommitter
from scraper.keylocks import KeyLocks
from scraper.ledger import UrlLedger
from scraper.parallel import merge_stats
from scraper.shards import parse_shard, shard_of
from testkit.crawls import files_by_gender

ROOT = Path(__file__).resolve().parent.parent
QUIET = ["-s", "PROGRESS_INTERVAL=0", "-s", "LOG_LEVEL=INFO"]


@pytest.fixture(scope="module")
def site(lfw_labels: Path, tmp_path_factory):
    """A demo site (4 people a gender, 3 photos each) on a free loopback port, plus one photo
    served under forty URLs."""
    folder = tmp_path_factory.mktemp("processes-site") / "site"
    manifest = generate_site(lfw_labels, folder, people=4, photos=3, per_page=2, seed=1)
    photo = next((folder / "facescrub" / "images").glob("*.jpg"))
    (folder / "same").mkdir()
    for n in range(40):
        shutil.copyfile(photo, folder / "same" / f"{n}.jpg")
    with DemoServer(folder) as server:
        yield folder, manifest, server, photo


def anfe_crawl(root: Path, listed: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "anfe", "crawl", "urllist", "--root", str(root), "--fast",
               "-a", f"file={listed}", *QUIET, *extra]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None})


def merged_report(root: Path) -> dict:
    reports = [p for p in (root / "crawl_reports").glob("urllist-*.json") if "-shard-" not in p.name]
    return json.loads(max(reports, key=lambda p: p.stat().st_mtime).read_text())


def test_a_list_split_over_two_processes_ends_where_the_manifest_says(site, tmp_path):
    folder, manifest, server, _ = site
    expect = manifest["spiders"]["urllist"]
    root = tmp_path / "data"
    dropped: dict[str, int] = {}
    by_gender: dict[str, int] = {}
    for run in expect["runs"]:
        listed = url_list_for(folder, run["file"], server.base_url, tmp_path / run["file"])
        done = anfe_crawl(root, listed, "--processes", "2", "-a", f"gender={run['gender']}")
        assert done.returncode == 0, done.stderr[-2000:]
        assert "2 processes, one shard of the list each" in done.stderr
        assert "crawl summary (urllist, finished)" in done.stdout
        report = merged_report(root)
        assert len(report["shards"]) == 2 and all(Path(p).is_file() for p in report["shards"])
        for reason, count in report["summary"]["dropped"].items():
            dropped[reason] = dropped.get(reason, 0) + count
        by_gender.update(report["summary"]["images_by_gender"])
    assert dropped == expect["dropped"]  # the bad row once, not once per shard
    assert by_gender == expect["images"]
    assert files_by_gender(root) == {g: set(h) for g, h in expect["hashes"].items()}
    with open_store(None, root) as store:
        records = store.find_images()
    assert {r["content_hash"] for r in records} == {h for hs in expect["hashes"].values() for h in hs}
    assert all((root / r["path"]).is_file() for r in records)
    again = anfe_crawl(root, listed, "--processes", "2", "-a", "gender=female")
    assert again.returncode == 0 and merged_report(root)["summary"]["image_requests"] == 0  # nothing fetched twice


@pytest.mark.parametrize("processes", [1, 2])
def test_forty_urls_of_the_same_bytes_at_once_make_one_photo_that_names_every_url(site, tmp_path, processes):
    """No sha256 in the list, so in two processes the rows are shared out by URL: both fetch the
    bytes at once and only the content-hash claims keep them from recording it twice."""
    _, _, server, photo = site
    urls = [f"{server.base_url}/same/{n}.jpg" for n in range(40)]
    listed = tmp_path / "same_actors.txt"
    listed.write_text("".join(f"Same Person\t{n}\t{n}\t{url}\t\t\n" for n, url in enumerate(urls)))
    root = tmp_path / "data"
    done = anfe_crawl(root, listed, "--processes", str(processes), "-s", "CONCURRENT_REQUESTS_PER_DOMAIN=40")
    assert done.returncode == 0, done.stderr[-2000:]
    files = [p for p in (root / "images").rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].read_bytes() == photo.read_bytes()
    with open_store(None, root) as store:
        (record,) = store.find_images()
    assert sorted([record["url"], *record.get("other_urls", [])]) == sorted(urls)  # no URL lost
    ledger = UrlLedger(root / "crawl_ledger.sqlite")
    outcomes = sorted(ledger.outcome(url) for url in urls)
    ledger.close()
    assert outcomes == ["exact-duplicate"] * 39 + ["stored"]


#: Crash points tried in a split crawl; each child dies at its own passage, the same command resumes.
SPLIT_POINTS = ("frontier.add", "frontier.done", "crawl.file", "crawl.record", "crawl.ledger")


@pytest.mark.slow
@pytest.mark.parametrize("point", SPLIT_POINTS)
def test_a_split_crawl_killed_at_a_crash_point_is_finished_by_the_same_command(site, tmp_path, point):
    folder, manifest, server, _ = site
    expect = manifest["spiders"]["urllist"]
    run = expect["runs"][1]  # the actresses' list: no traps, every photo kept
    listed = url_list_for(folder, run["file"], server.base_url, tmp_path / run["file"])
    root = tmp_path / "data"
    command = ("--processes", "2", "--jobdir", str(tmp_path / "job"))
    killed = anfe_crawl(root, listed, *command, env={"ANFE_CRASH_AT": f"{point}:1"})
    assert killed.returncode != 0, f"{point}:1 was not reached"
    assert "a shard wrote no report" in killed.stderr, killed.stderr[-1500:]
    again = anfe_crawl(root, listed, *command, env={"ANFE_CRASH_AT": f"{point}:2"})  # killed again, if reached
    assert again.returncode == 0 or "a shard wrote no report" in again.stderr, again.stderr[-1500:]
    done = anfe_crawl(root, listed, *command)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "crawl summary (urllist, finished)" in done.stdout
    assert files_by_gender(root) == {run["gender"]: set(expect["hashes"][run["gender"]])}
    assert not list(root.rglob(".part-*"))
    with open_store(None, root) as store:
        records = store.find_images()
    assert {r["content_hash"] for r in records} == set(expect["hashes"][run["gender"]])
    assert all((root / r["path"]).is_file() for r in records)


# -- the pieces ------------------------------------------------------------------------------------
def test_shards_partition_the_rows_and_refuse_nonsense():
    keys = [f"http://site/{n}.jpg" for n in range(1000)]
    shards = [shard_of(key, 3) for key in keys]
    assert set(shards) == {0, 1, 2} and min(shards.count(k) for k in range(3)) > 250
    assert shards == [shard_of(key, 3) for key in keys]  # stable: a re-run takes the same rows
    assert parse_shard("1/2") == (1, 2) and parse_shard(None) is None
    for bad in ("2/2", "-1/2", "a/b", "1", "1/0"):
        with pytest.raises(SpiderArgumentError):
            parse_shard(bad)


def test_merged_stats_add_counts_and_keep_the_longest_time_and_a_bad_finish():
    merged = merge_stats([
        {"anfe/images/stored": 3, "elapsed_time_seconds": 2.0, "finish_reason": "finished", "anfe/store_error": "x"},
        {"anfe/images/stored": 4, "elapsed_time_seconds": 5.0, "finish_reason": "shutdown", "anfe/dropped/too-small": 1},
    ])
    assert merged == {"anfe/images/stored": 7, "elapsed_time_seconds": 5.0, "finish_reason": "shutdown",
                      "anfe/store_error": "x", "anfe/dropped/too-small": 1}


def test_a_lock_of_a_dead_process_is_taken_over_and_a_live_one_is_not(tmp_path):
    path = tmp_path / "claims.sqlite"
    mine, other = LocalContentLocks(path), LocalContentLocks(path)
    host = mine.owner.split(":")[0]
    other.owner = f"{host}:1"  # init: a live process of this machine
    assert mine.try_lock("a" * 64) and mine.try_lock("a" * 64) and not other.try_lock("a" * 64)
    other.unlock("a" * 64)  # not its lock: nothing happens
    assert not other.try_lock("a" * 64)
    mine.unlock("a" * 64)
    assert other.try_lock("a" * 64) and not mine.try_lock("a" * 64)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    other.owner = f"{host}:{dead.stdout.strip()}"  # a process that has exited
    assert other.try_lock("b" * 64)
    assert mine.try_lock("b" * 64)  # its holder is gone: taken over
    mine.close()
    other.close()


def test_group_commit_merges_a_batch_and_returns_only_once_durable(tmp_path):
    root = tmp_path / "data"
    committer = GroupCommitter(lambda: open_store(None, root), lambda: UrlLedger(root / "ledger.sqlite"))

    async def many() -> None:
        writes = [committer.write([{"content_hash": f"{n:064x}", "gender": "male", "n": n}],
                                  [(f"http://x/{n}.jpg", "stored", f"{n:064x}")]) for n in range(50)]
        writes.append(committer.write([{"content_hash": f"{0:064x}", "other_urls": ["http://y/0.jpg"]}],
                                      [("http://y/0.jpg", "exact-duplicate", f"{0:064x}")]))
        await asyncio.gather(*writes)
        with open_store(None, root) as store:  # another connection sees every write once they returned
            assert store.count_images() == 50
            assert store.get_image(f"{0:064x}") == {"content_hash": f"{0:064x}", "gender": "male", "n": 0,
                                                    "other_urls": ["http://y/0.jpg"]}

    asyncio.run(many())
    assert committer.batches < 51 and committer.largest > 1  # batched, not one transaction each
    committer.close()
    ledger = UrlLedger(root / "ledger.sqlite")
    assert len(ledger) == 51 and ledger.outcome("http://y/0.jpg") == "exact-duplicate"
    ledger.close()


def test_a_failed_batch_fails_every_writer_in_it(tmp_path):
    class Broken:
        def upsert_images(self, records):
            raise OSError("disk full")

        def close(self):
            pass

    committer = GroupCommitter(lambda: Broken(), lambda: UrlLedger(tmp_path / "ledger.sqlite"))

    async def many() -> list:
        return await asyncio.gather(*(committer.write([{"content_hash": str(n)}], [(str(n), "stored", None)])
                                      for n in range(5)), return_exceptions=True)

    results = asyncio.run(many())
    committer.close()
    assert all(isinstance(r, OSError) for r in results)
    ledger = UrlLedger(tmp_path / "ledger.sqlite")
    assert len(ledger) == 0  # no ledger line for a photo whose record was not written
    ledger.close()


def test_key_locks_let_one_holder_per_key_and_others_through():
    locks, order = KeyLocks(), []

    async def hold(name: str, keys: list[str]) -> None:
        await locks.acquire(keys)
        order.append(f"{name}+")
        await asyncio.sleep(0.01)
        order.append(f"{name}-")
        locks.release(keys)

    async def main() -> None:
        await asyncio.gather(hold("a", ["x"]), hold("b", ["x", "y"]), hold("c", ["z"]), hold("d", ["y", "x"]))

    asyncio.run(main())
    for name in "abd":  # holders of x never overlap
        start, end = order.index(f"{name}+"), order.index(f"{name}-")
        assert not any(o.endswith("+") and o[0] in "abd" for o in order[start + 1:end]), order
    assert order.index("c+") < order.index("b-")  # z's holder did not wait for x
    assert len(locks) == 0


def test_the_decode_check_refuses_cut_photos_while_threads_decode_and_another_library_is_lax(site):
    """face_recognition switches Pillow's LOAD_TRUNCATED_IMAGES on; the check must refuse cut files
    anyway, from many threads at once, and leave the switch as it found it."""
    _, _, _, photo = site
    whole = photo.read_bytes()
    cut = whole[: len(whole) * 2 // 3]
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    outcomes: list[str] = []

    def check(data: bytes) -> None:
        for _ in range(20):
            try:
                check_decodes(open_image(data, 10**8))
                outcomes.append("ok" if data is whole else "cut accepted")
            except TruncatedImageError:
                outcomes.append("refused" if data is cut else "whole refused")

    try:
        threads = [threading.Thread(target=check, args=(data,)) for data in (whole, cut) * 4]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous
    assert sorted(set(outcomes)) == ["ok", "refused"] and len(outcomes) == 160
    image = open_image(whole, 10**8)
    size = image.size
    check_decodes(image)
    assert size == Image.open(io.BytesIO(whole)).size


def test_partial_files_of_killed_writers_are_swept_and_live_ones_kept(tmp_path):
    from anfe.core.layout import PARTIAL_PREFIX, sweep_partial_files, write_atomically

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    folder = tmp_path / "images" / "male"
    folder.mkdir(parents=True)
    left = folder / f"{PARTIAL_PREFIX}{dead.stdout.strip()}-abc"
    left.write_bytes(b"half a photo")
    live = folder / f"{PARTIAL_PREFIX}1-abc"  # init's: a live process
    live.write_bytes(b"being written")
    old_style = folder / f"{PARTIAL_PREFIX}x1y2z3"  # no pid in the name: not ours to judge
    old_style.write_bytes(b"?")
    write_atomically(folder / "photo.jpg", b"a whole photo")
    assert sweep_partial_files(tmp_path / "images") == 1
    assert not left.exists() and live.exists() and old_style.exists()
    assert (folder / "photo.jpg").read_bytes() == b"a whole photo"
