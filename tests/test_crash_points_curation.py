"""Crash tests of the review page's durable steps and of ``anfe import`` (see
:mod:`anfe.core.crashpoints` and tests/test_crash_points.py): on a small set of real LFW photos (two
people per gender, two photos each), every passage of every point is killed in turn, the same
command is run again, and what it left is compared with an uninterrupted run's.

- ``anfe review sync`` (the catalog sync the page runs at its start): the same records (status,
  label, path, scores, by-person fields), the same fingerprint, and a run after it that does no
  work (no crash point passed, nothing updated or scored).
- The review page's thumbnails: the same files with the same bytes, no temporary file.
- ``anfe import``: the same files and catalog records (but the time of the import), no temporary
  file, no catalog row without its file, and a run after it that adds nothing.

Each test prints how many crash points it tried and how many passed.
"""

from __future__ import annotations

import csv
import errno
import hashlib
import os
import re
import shutil
import sys
from pathlib import Path

import pytest

from anfe.core import crashpoints
from anfe.core.crashpoints import POINTS
from anfe.core.layout import DatasetLayout
from anfe.core.store import open_store
from anfe.exchange.importer import import_photos
from curation import catalog, moves, person_summary, quarantine, thumbnails
from testkit.crashes import THUMBNAILS, run, temporary_files, walk

ROOT = Path(__file__).resolve().parent.parent
IMPORT = [sys.executable, "-m", "anfe", "import", "src", "--root", "data"]
SYNC = [sys.executable, "-m", "anfe", "review", "sync", "data", "--cache", "cache.sqlite", "--workers", "1"]
SYNC_POINTS = ("review.sync.records", "review.sync.scores", "review.sync.fingerprint", "review.sync.stamp")


@pytest.fixture(scope="module")
def source(lfw_labels: Path, tmp_path_factory) -> Path:
    """``src/<gender>/<person>/<photo>``: the first two LFW people per gender with two photos each."""
    with lfw_labels.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    people: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        people.setdefault((row["gender"], row["identity"]), []).append(row)
    chosen = {"female": 0, "male": 0}
    folder = tmp_path_factory.mktemp("crash-import") / "src"
    for (gender, person), photos in sorted(people.items()):
        if gender in chosen and chosen[gender] < 2 and len(photos) >= 2:
            chosen[gender] += 1
            (folder / gender / person).mkdir(parents=True)
            for row in photos[:2]:
                shutil.copy(lfw_labels.parent / row["path"], folder / gender / person / Path(row["path"]).name)
    assert chosen == {"female": 2, "male": 2}
    return folder


def imported(source: Path, template: Path) -> DatasetLayout:
    """``template/data``: the photos of ``source`` imported (people named), one of them sent to review."""
    shutil.copytree(source, template / "src")
    layout = DatasetLayout(template / "data")
    with open_store(None, layout.root) as store:
        assert import_photos(template / "src", layout.root, store).total_added == 8
        held = sorted(layout.image_files("male"))[0]
        quarantine.quarantine_file(layout, held, "wrong-person", "planted", store, status=moves.STATUS_REVIEW)
    return layout


def _digests(root: Path, under: Path) -> dict[str, str]:
    """Every file under ``under`` (relative to ``root``) -> the SHA-256 of its bytes."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(under.rglob("*")) if p.is_file()}


def _idle(command: list[str], case: Path) -> tuple[list[str], str]:
    """The crash points a further run of ``command`` passes, and what it prints (a finished job: none)."""
    log = case / "idle.log"
    done = run(command, case, ANFE_CRASH_LOG=str(log))
    assert done.returncode == 0, done.stderr[-2000:]
    passed = log.read_text().split() if log.exists() else []
    log.unlink(missing_ok=True)
    return passed, done.stdout.strip()


# -- the catalog sync ------------------------------------------------------------------------------
def sync_state(case: Path) -> dict:
    """Every record in full, the scores' fingerprint, the last sync's people flag, and what a sync
    run after it does (nothing)."""
    with open_store(None, case / "data") as store:
        records = {r["content_hash"]: r for r in store.find_images()}
        last = store.get_meta(catalog.SYNC_META) or {}
        state = {"records": records, "fingerprint": store.get_meta(catalog.SCORES_META),
                 "people": last.get("people")}
    return {**state, "idle": _idle(SYNC, case)}


def _change_by_hand(layout: DatasetLayout) -> None:
    """What a person may do between two sessions: move a person's lead photo out of the folders
    and a photo from one label to the other."""
    with open_store(None, layout.root) as store:
        lead = sorted(r["path"] for r in store.find_images(fields=("path",), **{person_summary.LEAD: 1})
                      if r["path"].startswith("images/female/"))[0]
    (layout.root / lead).rename(layout.root / "elsewhere.jpg")
    moved = sorted(layout.image_files("male"))[0]
    moved.rename(layout.gender_dir("female") / moved.name)


@pytest.fixture(scope="module")
def synced_once(source: Path, tmp_path_factory) -> Path:
    """The imported dataset synced once, uninterrupted (its analysis cache: every sync below reads it)."""
    warm = tmp_path_factory.mktemp("crash-sync") / "warm"
    imported(source, warm)
    assert run(SYNC, warm).returncode == 0
    return warm


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["first", "after changes"])
def test_a_catalog_sync_killed_at_a_crash_point_ends_where_an_uninterrupted_one_ends(source, synced_once, tmp_path,
                                                                                      request, mode):
    template = tmp_path / "template"
    if mode == "first":
        imported(source, template)
        shutil.copy(synced_once / "cache.sqlite", template / "cache.sqlite")
    else:  # a synced dataset changed by hand: records to fix, a person's lead gone, scored again
        shutil.copytree(synced_once, template)
        _change_by_hand(DatasetLayout(template / "data"))
    counts = walk(tmp_path, template, SYNC, SYNC_POINTS, sync_state, request, f"review sync, {mode}")
    assert {p: counts[p] for p in SYNC_POINTS} == dict.fromkeys(SYNC_POINTS, 1), counts
    truth = sync_state(tmp_path / "truth")
    records = truth["records"].values()
    photos = 7 if mode == "first" else 6
    assert truth["idle"] == ([], f"{photos} images: 0 records updated, 0 scored now")
    assert sum(isinstance(r.get("suspicion"), float) for r in records) >= photos - 1  # scored (one face each)
    assert sum(r.get(person_summary.LEAD) == 1 for r in records) == 4 and truth["people"]
    assert {r["status"] for r in records} == {moves.STATUS_ACTIVE, moves.STATUS_REVIEW} | (
        set() if mode == "first" else {catalog.STATUS_MISSING})
    assert not [r for r in records if r["status"] == catalog.STATUS_MISSING and r.get(person_summary.LEAD)]


# -- the thumbnails ----------------------------------------------------------------------------------
def thumbnail_state(case: Path) -> dict:
    """The thumbnails (path -> digest of the bytes) and any temporary file under the root."""
    root = case / "data"
    return {"thumbnails": _digests(root, root / thumbnails.FOLDER), "temporary": temporary_files(root)}


@pytest.mark.slow
def test_thumbnails_killed_at_a_crash_point_end_as_uninterrupted_ones(source, tmp_path, request):
    template = tmp_path / "template"
    imported(source, template)
    command = [*THUMBNAILS, "data"]
    counts = walk(tmp_path, template, command, ("review.thumbnail",), thumbnail_state, request, "thumbnails")
    assert counts["review.thumbnail"] == 7, counts  # the photos under a label
    truth = thumbnail_state(tmp_path / "truth")
    assert len(truth["thumbnails"]) == 7 and not truth["temporary"]
    assert _idle(command, tmp_path / "truth")[0] == []  # all kept: none made again


def test_a_thumbnail_write_that_fails_leaves_no_temporary_file(source, tmp_path, monkeypatch):
    """A full disk (injected: the rename fails) costs the kept copy only: the photo is still shown."""
    layout = imported(source, tmp_path)
    photo = sorted(layout.image_files())[0]

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)  # the rename of every atomic write
    assert thumbnails.thumbnail(layout.root, photo, photo.stem)
    monkeypatch.undo()
    assert temporary_files(layout.root) == [] and not thumbnails.thumbnail_path(layout.root, photo.stem, 256).exists()


# -- anfe import ---------------------------------------------------------------------------------------
def import_state(case: Path) -> dict:
    """The files (path -> digest), the records but for the time of the import, temporary files,
    and rows without their file."""
    root = case / "data"
    with open_store(None, root) as store:
        records = {r["content_hash"]: {k: v for k, v in r.items() if k != "imported_at"} for r in store.find_images()}
    return {"files": _digests(root, root / "images"), "records": records, "temporary": temporary_files(root),
            "without file": sorted(r["path"] for r in records.values() if not (root / r["path"]).is_file())}


@pytest.mark.slow
def test_an_import_killed_at_a_crash_point_ends_where_an_uninterrupted_one_ends(source, tmp_path, request):
    template = tmp_path / "template"
    shutil.copytree(source, template / "src")
    counts = walk(tmp_path, template, IMPORT, ("import.file", "import.record"), import_state, request, "import")
    assert (counts["import.file"], counts["import.record"]) == (8, 8), counts
    truth = import_state(tmp_path / "truth")
    assert len(truth["files"]) == len(truth["records"]) == 8 and not truth["temporary"] and not truth["without file"]
    assert _idle(IMPORT, tmp_path / "truth") == ([], "imported 0 photos into data (none); 8 already there; 0 skipped")


def test_every_crash_point_in_the_code_is_listed_and_documented():
    """A new ``crash_point("...")`` call is in :data:`POINTS`, the module's docstring and docs/crawl.md."""
    called = {name for folder in ("anfe", "curation", "scraper") for path in (ROOT / folder).rglob("*.py")
              for name in re.findall(r"""crash_point\(["']([\w.]+)["']\)""", path.read_text(encoding="utf-8"))}
    docs = (ROOT / "docs" / "crawl.md").read_text(encoding="utf-8")
    assert called == set(POINTS), called ^ set(POINTS)
    assert [p for p in POINTS if f"``{p}``" not in crashpoints.__doc__ or f"| `{p}` |" not in docs] == []
