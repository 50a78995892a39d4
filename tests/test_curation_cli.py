"""`anfe clean`, `anfe quarantine` and `anfe restore` through the real CLI (click's runner)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from anfe.cli.app import cli
from curation import moves
from curation import quarantine as q
from curation.rules import RULES

GROUP = "dlib/examples/faces/2008_001009.jpg"


@pytest.fixture
def root(tmp_path: Path, utkface_rows, shared_faces) -> Path:
    """Three adults, one child (aged 8 in ages.csv), one group photo and one empty file."""
    root = tmp_path / "data"
    male = root / "images" / "male"
    female = root / "images" / "female"
    male.mkdir(parents=True)
    female.mkdir(parents=True)
    adults = [r for r in utkface_rows if 25 <= int(r["age"]) <= 40]
    men = [r for r in adults if r["gender"] == "male"][:2]
    woman = next(r for r in adults if r["gender"] == "female")
    child = next(r for r in utkface_rows if r["age"] == "8" and r["gender"] == "male")
    for row in [*men, child]:
        shutil.copyfile(row["path"], male / Path(row["path"]).name)
    shutil.copyfile(woman["path"], female / Path(woman["path"]).name)
    shutil.copyfile(shared_faces / "facecount" / GROUP, male / "group.jpg")
    (female / "empty.jpg").write_bytes(b"")
    with (root / "ages.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "age"])
        writer.writerow([f"images/male/{Path(child['path']).name}", "8"])
    return root


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.output


def _clean(root: Path, cache: Path, *extra: str) -> tuple[int, str]:
    return _invoke("clean", root, "--cache", cache, "--workers", "1", "--quiet", *extra)


def test_dry_run_prints_and_moves_nothing(root, session_cache_path):
    listing = sorted(root.rglob("*"))
    code, out = _clean(root, session_cache_path, "--dry-run", "--labels", root / "ages.csv")
    assert code == 0, out
    assert "would move images/male/group.jpg -> quarantine/many-faces/" in out
    assert "would move images/female/empty.jpg -> quarantine/unreadable/" in out
    assert "under-age" in out and "would move 3 to" in out
    assert sorted(p for p in root.rglob("*") if "reports" not in p.parts) == listing
    assert not (root / "catalog.sqlite").exists()


def test_clean_list_and_restore(root, session_cache_path):
    code, out = _clean(root, session_cache_path, "--no-under-age")
    assert code == 0, out
    assert "moved 2 to" in out and (root / "reports" / "cleaning.html").is_file()
    lines = out.splitlines()
    kept = next(line for line in lines if line.startswith("kept")).split()
    assert kept == ["kept", "1", "3", "4"]

    code, out = _invoke("quarantine", "list", root)
    assert code == 0 and "2 file(s) in quarantine (many-faces: 1, unreadable: 1)" in out
    code, out = _invoke("quarantine", "list", root, "--json", "--reason", "many-faces")
    entry = json.loads(out.strip())
    assert entry["original"] == "images/male/group.jpg" and entry["reason"] == "many-faces"

    code, out = _invoke("restore", root, entry["content_hash"][:10])
    assert code == 0 and "restored images/male/group.jpg" in out
    assert (root / "images" / "male" / "group.jpg").is_file()

    (root / "images" / "female" / "empty.jpg").write_bytes(b"someone put a new file here")
    code, out = _invoke("restore", root, "--all")
    assert code == 1 and "refused:" in out and "already exists" in out and "0 restored, 1 refused" in out
    assert (root / "images" / "female" / "empty.jpg").read_bytes() == b"someone put a new file here"


def test_rule_switches_and_ages(root, session_cache_path):
    code, out = _clean(root, session_cache_path, "--no-many-faces", "--no-unreadable", "--labels", root / "ages.csv")
    assert code == 0, out
    assert (root / "images" / "male" / "group.jpg").is_file()
    assert [e.reason for e in q.list_quarantined(q.DatasetLayout(root))] == ["under-age"]


def test_clear_errors(root, tmp_path, session_cache_path, monkeypatch):
    code, out = _clean(tmp_path, session_cache_path)
    assert code == 1 and out.strip().startswith("Error:") and "not a dataset root" in out
    assert len(out.strip().splitlines()) == 1
    code, out = _invoke("restore", root)
    assert code == 2 and "name what to restore" in out
    code, out = _invoke("restore", root, "deadbeefdeadbeef")
    assert code == 1 and "no quarantined file has the content hash" in out
    code, out = _invoke("restore", root, "--reason", "no-face")
    assert code == 1 and "nothing in " in out and "matches" in out
    code, out = _invoke("restore", root, "--all")  # nothing left to restore: done, so the command can be rerun
    assert code == 0 and out.strip() == f"nothing to restore: {root / 'quarantine'} holds no quarantined file"
    code, out = _clean(root, session_cache_path, "--labels", tmp_path / "none.csv")
    assert code == 1 and "does not exist" in out
    monkeypatch.setattr(q.os, "access", lambda path, mode: not mode & os.W_OK)
    code, out = _clean(root, session_cache_path)
    assert code == 1 and "read-only" in out and "--dry-run" in out
    assert (root / "images" / "male" / "group.jpg").is_file()


def test_quarantine_repair_command(root):
    layout = q.DatasetLayout(root)
    moves.append(layout, moves.Move(
        id="a" * 32, action="quarantine", src="images/male/group.jpg", original="images/male/group.jpg",
        dst="quarantine/rejected/male/group.jpg", reason="rejected", gender="male", content_hash="abc"))
    code, out = _invoke("quarantine", "repair", root)
    assert code == 0 and "1 interrupted move(s) finished" in out
    assert (root / "quarantine" / "rejected" / "male" / "group.jpg").is_file()


def test_help_names_every_rule():
    code, out = _invoke("clean", "--help")
    assert code == 0
    for rule in RULES:
        assert f"--no-{rule.reason}" in out
