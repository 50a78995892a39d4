"""The cleaning scan on real photos: facecount figures, every rule, dry run, bad input."""

from __future__ import annotations

import os
import shutil
from collections import Counter
from pathlib import Path

import pytest

from anfe.faces.batch import default_workers
from anfe.faces.cache import AnalysisCache
from anfe.core.errors import DatasetError
from anfe.core.layout import DatasetLayout
from anfe.core.store import open_store
from curation import clean as clean_module
from curation import moves
from curation import quarantine as q
from curation.clean import clean, scan
from curation.cleaning_report import summary_table, write_html
from curation.rules import CleanRules, ages_from_csv
from testkit.cleaning import EXPECTED, PARAMS, run_clean


def _files(root: Path) -> Counter:
    """Content of every file under images/ and quarantine/ (what must never be lost)."""
    return Counter(p.read_bytes() for p in root.rglob("*")
                   if p.is_file() and p.parts[len(root.parts)] in ("images", "quarantine")
                   and p.name not in (".lock", "manifest.jsonl"))


def _found(report, root: Path) -> dict[str, str]:
    return {r.path.relative_to(root / "images").as_posix(): r.reason for r in report.rejections}


def test_every_rule_on_a_messy_dataset(messy_root, session_cache_path):
    root, ages_csv = messy_root
    before = _files(root)
    ages, by_name = ages_from_csv(ages_csv)
    with open_store(None, root) as store:
        report = run_clean(root, session_cache_path, store=store, ages=ages, ages_by_name=by_name)
        found = _found(report, root)
        for name, reason in EXPECTED.items():
            assert found.pop(name) == reason, name
        conflict = [k for k, v in found.items() if v == "label-conflict"]
        assert len(conflict) == 1 and conflict[0].startswith("female/")  # its twin under female
        assert sorted(found.values()) == ["label-conflict", "near-duplicate", "under-age"]
        near = next(r for r in report.rejections if r.reason == "near-duplicate")
        assert "bigger-copy.jpg" in near.detail  # the largest copy is the one kept
        assert (root / "images" / "male" / "bigger-copy.jpg").is_file()
        assert _files(root) == before, "a file was lost"
        assert not any(p.name == ".part-123" for p in (root / "quarantine").rglob("*"))
        assert report.kept == {"male": 3, "female": 1}
        records = {r["quarantine_id"]: r for r in store.find_images() if r.get("quarantine_id")}
        review = [r for r in records.values() if r["status"] == "review"]
        assert len(review) == 1 and review[0]["quarantine_reason"] == "label-conflict"  # one hash, two copies
    entries = q.list_quarantined(DatasetLayout(root))
    assert len(entries) == len(report.rejections) == len(report.moved)
    assert all((DatasetLayout(root).root / e.dst).is_file() for e in entries)
    table = summary_table(report)
    assert "unreadable" in table and table.splitlines()[-1].split() == ["kept", "1", "3", "4"]
    page = write_html(report).read_text()
    assert page.count("data:image/jpeg;base64,") >= 8 and "label-conflict" in page

    again = run_clean(root, session_cache_path, ages=ages, ages_by_name=by_name)
    assert again.rejections == [] and again.stats.analysed == 0  # idempotent, all from the cache


def test_dry_run_moves_nothing(messy_root, session_cache_path):
    root, _ = messy_root
    listing = sorted(p.relative_to(root) for p in root.rglob("*"))
    report = run_clean(root, session_cache_path, dry_run=True)
    assert report.dry_run and len(report.rejections) >= len(EXPECTED) - 1
    assert all(r.moved_to is None for r in report.rejections)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == listing


def test_vanished_between_scan_and_move(messy_root, session_cache_path, monkeypatch):
    root, _ = messy_root
    real = clean_module.analyse_paths
    gone = root / "images" / "male" / "group.jpg"
    kept_aside = gone.read_bytes()

    def analyse_then_vanish(*args, **kwargs):
        result = real(*args, **kwargs)
        gone.unlink()  # another process takes the file away after the scan
        return result

    monkeypatch.setattr(clean_module, "analyse_paths", analyse_then_vanish)
    report = run_clean(root, session_cache_path)
    skipped = report.skipped
    assert [r.path for r in skipped] == [gone] and "gone" in skipped[0].problem
    assert len(report.moved) == len(report.rejections) - 1
    assert all(kept_aside != p.read_bytes() for p in (root / "quarantine").rglob("*.jpg"))


def test_read_only_dataset_is_refused_before_anything_moves(messy_root, session_cache_path, monkeypatch):
    root, _ = messy_root
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    monkeypatch.setattr(q.os, "access", lambda path, mode: not mode & os.W_OK)  # what a read-only mount reports
    with pytest.raises(moves.ReadOnlyDatasetError, match="read-only.*nothing was moved"):
        run_clean(root, session_cache_path)
    assert sorted(p.relative_to(root) for p in root.rglob("*")) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits (covered with os.access above)")
def test_read_only_dataset_with_chmod(messy_root, session_cache_path):
    root, _ = messy_root
    folders = [root, *(p for p in root.rglob("*") if p.is_dir())]
    for folder in folders:
        folder.chmod(0o555)
    try:
        with pytest.raises(moves.ReadOnlyDatasetError):
            run_clean(root, session_cache_path)
    finally:
        for folder in folders:
            folder.chmod(0o755)


def test_interrupted_move_is_repaired_on_the_next_clean(messy_root, session_cache_path, monkeypatch):
    root, _ = messy_root
    layout = DatasetLayout(root)
    target = root / "images" / "male" / "group.jpg"

    def crash(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(moves, "_move_file", crash)
    with pytest.raises(KeyboardInterrupt):
        q.quarantine_file(layout, target, "rejected", "by a reviewer", actor="alice")
    monkeypatch.undo()
    report = run_clean(root, session_cache_path)
    assert len(report.repaired) == 1 and not target.exists()
    assert (root / "quarantine" / "rejected" / "male" / "group.jpg").is_file()
    assert "male/group.jpg" not in _found(report, root)  # repaired first, so not scanned again


def test_not_a_dataset_root(tmp_path, session_cache_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(DatasetError, match="not a dataset root.*images/<gender>"):
        run_clean(tmp_path / "photos", session_cache_path)
    with pytest.raises(DatasetError, match="not a folder"):
        run_clean(tmp_path / "nowhere", session_cache_path)


def test_scan_sees_every_file_but_hidden_ones(messy_root):
    root, _ = messy_root
    names = {p.name for p, _ in scan(DatasetLayout(root))}
    assert "notes.txt" in names and ".part-123" not in names


# -- the facecount photos: the figures in docs/clean.md ------------------------------------------
def _kept_copy(detail: str) -> str:
    """The kept file a duplicate's detail names last ("... from <kept> (WxH, kept)")."""
    tail = detail.rsplit(" from ", 1)[-1] if " from " in detail else detail.rsplit(" as ", 1)[-1]
    return tail.split(" (")[0].rstrip(",")


GROUP_LABELS = {"2", ">=2", "3", "6", "7", "many (>20)"}


@pytest.mark.slow
def test_facecount_groups_and_non_faces_rejected_single_faces_kept(tmp_path, facecount_rows, session_cache_path):
    """HOG upsample 1: every group photo and every photo without a human face is rejected; every
    single-face photo is kept, or taken out only as a copy of a kept single-face photo."""
    root = tmp_path / "facecount"
    folder = root / "images" / "unknown"
    folder.mkdir(parents=True)
    expected = {}
    for row in facecount_rows:
        name = row["path"].split("facecount/", 1)[-1].replace("/", "__")
        shutil.copyfile(row["path"], folder / name)
        expected[name] = row["expected_faces"]
    with AnalysisCache(session_cache_path, PARAMS.cache_key) as cache:
        report = clean(root, CleanRules(), PARAMS, cache, workers=default_workers(), progress=False)
    rejected = {r.path.name: r for r in report.rejections}
    for name, faces in expected.items():
        if faces in GROUP_LABELS:
            assert rejected[name].reason == "many-faces", name
        elif faces == "0":
            assert rejected[name].reason == "no-face", name
        elif faces == "1" and name in rejected:
            assert rejected[name].reason in ("exact-duplicate", "near-duplicate"), name
            kept = root / _kept_copy(rejected[name].detail)
            assert kept.is_file() and expected[kept.name] == "1", rejected[name].detail
    singles = [n for n, f in expected.items() if f == "1"]
    kept_singles = [n for n in singles if n not in rejected]
    # 25 single-face photos: 3 are byte copies and 4 resized/re-encoded copies of the other 18
    assert (len(singles), len(kept_singles)) == (25, 18)


def test_links_and_pipes_are_quarantined_unread_and_the_run_finishes(messy_root, session_cache_path, utkface_rows,
                                                                      tmp_path):
    """A symbolic link (in or out of the dataset, or dangling) or a named pipe in images/ does not
    stop the run: each goes to quarantine/not-a-file/ as what it is, never read or followed."""
    root, _ = messy_root
    male, female = root / "images" / "male", root / "images" / "female"
    outside = tmp_path / "outside.jpg"
    shutil.copyfile(utkface_rows[500]["path"], outside)
    inside = male / "bigger-copy.jpg"
    (male / "link-out.jpg").symlink_to(outside)
    (male / "link-in.jpg").symlink_to(inside)
    (male / "dangling.jpg").symlink_to(tmp_path / "nowhere.jpg")
    os.mkfifo(female / "pipe.jpg")  # reading it would block forever
    with open_store(None, root) as store:
        report = run_clean(root, session_cache_path, store=store)
    odd = {r.path.name: r for r in report.rejections if r.reason == "not-a-file"}
    assert set(odd) == {"link-out.jpg", "link-in.jpg", "dangling.jpg", "pipe.jpg"}
    assert all(r.moved_to is not None and r.problem is None for r in odd.values())
    assert odd["link-out.jpg"].detail == f"a symbolic link to {outside}" and odd["pipe.jpg"].detail == "a named pipe"
    held = root / "quarantine" / "not-a-file"
    assert (held / "male" / "link-out.jpg").is_symlink() and (held / "female" / "pipe.jpg").exists()
    assert outside.is_file() and inside.is_file()  # the targets are untouched
    found = _found(report, root)
    for name, reason in EXPECTED.items():  # every other rule still ran
        assert found[name] == reason, name
    assert summary_table(report).splitlines()[2].split()[0] == "not-a-file"


def test_label_conflicts_found_when_crawling_go_to_review(utkface_rows, tmp_path, session_cache_path):
    """The crawler records the same bytes found under two genders on the store record only; clean
    sends that file to review, and a reviewer's decision settles it for the next clean."""
    from curation import decisions, queue
    from testkit.review import make_review_dataset

    layout = make_review_dataset(utkface_rows, tmp_path / "data", per_gender=2)
    photo = layout.image_files("male")[0]
    with open_store(None, layout.root) as store:
        store.upsert_image({"content_hash": photo.stem, "gender": "male", "label_conflict": True,
                            "conflicting_genders": ["female", "male"]})
        report = run_clean(layout.root, session_cache_path, store=store)
        assert [(r.path, r.reason, r.detail) for r in report.rejections] == [
            (photo, "label-conflict", "found under female and male when crawled")]
        (item,) = queue.flagged_items(layout)
        assert item.content_hash == photo.stem and store.get_image(photo.stem)["status"] == "review"
        decisions.decide(layout, store, [item], "keep", "ann")
        assert photo.is_file() and run_clean(layout.root, session_cache_path, store=store).rejections == []
