"""Quarantine moves: manifest first, never a deletion, restore without overwriting, crash repair."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from anfe.core.layout import DatasetLayout
from anfe.core.store import open_store
from curation import moves
from curation import quarantine as q


def _dataset(tmp_path: Path, utkface_rows: list[dict], count: int = 4) -> tuple[DatasetLayout, list[Path]]:
    """A dataset root holding copies of ``count`` real UTKFace photos, split by their gender."""
    layout = DatasetLayout(tmp_path / "data")
    files = []
    for row in utkface_rows[:: max(1, len(utkface_rows) // count)][:count]:
        folder = layout.gender_dir(row["gender"])
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / Path(row["path"]).name
        shutil.copyfile(row["path"], target)
        files.append(target)
    return layout, files


def _lines(layout: DatasetLayout) -> list[dict]:
    return [json.loads(line) for line in moves.journal_path(layout).read_text().splitlines()]


def test_quarantine_then_restore_round_trip(tmp_path, utkface_rows):
    layout, files = _dataset(tmp_path, utkface_rows)
    original = files[0]
    data = original.read_bytes()
    with open_store(None, layout.root) as store:
        moved = q.quarantine_file(layout, original, "no-face", "0 faces found", store=store, actor="tester")
        assert not original.exists() and moved.read_bytes() == data
        assert moved.parent.parent == layout.quarantine_dir("no-face")
        line = _lines(layout)[0]
        assert line["action"] == "quarantine" and line["original"] == original.relative_to(layout.root).as_posix()
        assert line["reason"] == "no-face" and line["actor"] == "tester" and line["gender"] == original.parent.name
        record = store.find_images(status="quarantined")[0]
        assert record["quarantine_reason"] == "no-face" and record["path"] == line["dst"]
        assert [e.dst for e in q.list_quarantined(layout)] == [line["dst"]]
        assert q.reasons(layout) == {"no-face": 1}

        back = q.restore_file(layout, moved, store=store)
        assert back == original and original.read_bytes() == data and not moved.exists()
        assert q.list_quarantined(layout) == []
        assert store.get_image(line["content_hash"])["status"] == "active"
    assert [line["action"] for line in _lines(layout)] == ["quarantine", "restore"]


def test_restore_by_hash_prefix_and_record(tmp_path, utkface_rows):
    layout, files = _dataset(tmp_path, utkface_rows)
    q.quarantine_file(layout, files[0], "too-small")
    entry = q.quarantine_file(layout, files[1], "too-small") and q.list_quarantined(layout)[1]
    assert q.restore_file(layout, entry.content_hash[:12]) == files[1]
    record = {"quarantine_id": q.list_quarantined(layout)[0].id}
    assert q.restore_file(layout, record) == files[0]
    with pytest.raises(q.NotQuarantinedError):
        q.restore_file(layout, entry.content_hash)


def test_restore_refuses_to_overwrite(tmp_path, utkface_rows):
    layout, files = _dataset(tmp_path, utkface_rows)
    moved = q.quarantine_file(layout, files[0], "rejected", "by a reviewer", actor="alice")
    files[0].write_bytes(b"a new file under the old name")
    with pytest.raises(moves.RestoreConflictError, match="already exists"):
        q.restore_file(layout, moved)
    assert moved.is_file() and files[0].read_bytes() == b"a new file under the old name"
    assert len(q.list_quarantined(layout)) == 1


def test_same_name_twice_gets_distinct_places(tmp_path, utkface_rows):
    layout, files = _dataset(tmp_path, utkface_rows)
    first = q.quarantine_file(layout, files[0], "label-conflict")
    shutil.copyfile(first, files[0])  # the same bytes come back under the same name
    second = q.quarantine_file(layout, files[0], "label-conflict")
    assert first != second and first.read_bytes() == second.read_bytes()


def test_vanished_file_is_reported_and_nothing_recorded(tmp_path, utkface_rows, monkeypatch):
    layout, files = _dataset(tmp_path, utkface_rows)
    files[0].unlink()
    with pytest.raises(moves.VanishedFileError, match="gone"):
        q.quarantine_file(layout, files[0], "no-face")
    # vanishes after the manifest line was written: the line is cancelled
    real_link = os.link

    def vanish_then_link(src, dst, **kwargs):
        os.unlink(src)
        return real_link(src, dst, **kwargs)

    monkeypatch.setattr(q.os, "link", vanish_then_link)
    with pytest.raises(moves.VanishedFileError):
        q.quarantine_file(layout, files[1], "no-face")
    assert [line["action"] for line in _lines(layout)] == ["quarantine", "cancel"]
    assert q.list_quarantined(layout) == [] and moves.replay(layout) == []


def test_failed_move_loses_nothing(tmp_path, utkface_rows, monkeypatch):
    layout, files = _dataset(tmp_path, utkface_rows)

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(q.os, "link", refuse)
    monkeypatch.setattr(q.os, "replace", refuse)
    with pytest.raises(moves.ReadOnlyDatasetError, match="nothing was moved"):
        q.quarantine_file(layout, files[0], "no-face")
    assert files[0].is_file() and q.list_quarantined(layout) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits; covered by test_failed_move_loses_nothing")
def test_read_only_dataset_is_refused(tmp_path, utkface_rows):
    layout, files = _dataset(tmp_path, utkface_rows)
    folder = files[0].parent
    folder.chmod(0o555)
    try:
        with pytest.raises(moves.ReadOnlyDatasetError, match="read-only"):
            q.quarantine_file(layout, files[0], "no-face")
    finally:
        folder.chmod(0o755)
    assert files[0].is_file()


def test_crash_between_manifest_and_move_is_replayed(tmp_path, utkface_rows, monkeypatch):
    layout, files = _dataset(tmp_path, utkface_rows)

    def crash(src, dst):
        raise KeyboardInterrupt  # the process dies after the line, before the move

    monkeypatch.setattr(moves, "_move_file", crash)
    with pytest.raises(KeyboardInterrupt):
        q.quarantine_file(layout, files[0], "no-face")
    monkeypatch.undo()
    assert files[0].is_file()
    with open_store(None, layout.root) as store:
        messages = moves.replay(layout, store)
        assert len(messages) == 1 and not files[0].exists()
        entry = q.list_quarantined(layout)[0]
        assert (layout.root / entry.dst).is_file()
        assert store.get_image(entry.content_hash)["status"] == "quarantined"
    assert moves.replay(layout) == []  # idempotent


def test_crash_between_link_and_unlink_is_finished(tmp_path, utkface_rows, monkeypatch):
    layout, files = _dataset(tmp_path, utkface_rows)
    moved = q.quarantine_file(layout, files[0], "no-face")
    os.link(moved, files[0])  # as if a restore linked the file back and died before the unlink
    entry = q.list_quarantined(layout)[0]
    moves.append(layout, moves.Move(
        id="x" * 32, action="restore", src=entry.dst, dst=entry.original, original=entry.original,
        reason=entry.reason))
    assert moves.replay(layout) == [f"finished moving {moved.name}"]
    assert files[0].is_file() and not moved.exists() and q.list_quarantined(layout) == []


def test_a_symbolic_link_moves_as_itself(tmp_path, utkface_rows):
    layout, files = _dataset(tmp_path, utkface_rows)
    link = files[0].parent / "linked.jpg"
    link.symlink_to(files[1])
    moved = q.quarantine_file(layout, link, "near-duplicate")
    assert moved.is_symlink() and moved.resolve() == files[1] and files[1].is_file()
    assert q.restore_file(layout, moved).is_symlink()


def test_newer_manifest_and_torn_line(tmp_path, utkface_rows):
    layout, files = _dataset(tmp_path, utkface_rows)
    q.quarantine_file(layout, files[0], "no-face")
    with moves.journal_path(layout).open("a") as out:
        out.write('{"id": "half-writ')  # torn last line: skipped with a warning
    assert len(q.list_quarantined(layout)) == 1
    with moves.journal_path(layout).open("a") as out:
        out.write('\n{"v": 99, "id": "new", "action": "quarantine"}\n')
    with pytest.raises(moves.ManifestVersionError, match="newer version"):
        q.list_quarantined(layout)


def test_only_dataset_images_can_be_quarantined(tmp_path, utkface_rows):
    layout, files = _dataset(tmp_path, utkface_rows)
    outside = tmp_path / "elsewhere.jpg"
    shutil.copyfile(files[0], outside)
    with pytest.raises(moves.QuarantineError, match="not an image of the dataset"):
        q.quarantine_file(layout, outside, "no-face")
    with pytest.raises(Exception, match="folder name"):
        q.quarantine_file(layout, files[0], "../escape")
    assert outside.is_file() and files[0].is_file()


def test_concurrent_writers_pick_distinct_names_and_lose_no_line(tmp_path, utkface_rows):
    from concurrent.futures import ThreadPoolExecutor

    layout, files = _dataset(tmp_path, utkface_rows, count=2)
    sources = []
    for n in range(16):  # sixteen files that all want the same quarantine name
        folder = layout.gender_dir("male") / f"batch{n}"
        folder.mkdir()
        shutil.copyfile(files[0], folder / "same.jpg")
        sources.append(folder / "same.jpg")
    with ThreadPoolExecutor(4) as pool:
        moved = list(pool.map(lambda p: q.quarantine_file(layout, p, "rejected", gender="male"), sources))
    assert len(set(moved)) == 16 and all(p.is_file() for p in moved)
    assert len(_lines(layout)) == 16 and len(q.list_quarantined(layout, "rejected")) == 16


def sync_store(layout: DatasetLayout, store) -> int:
    """Rewrite the store's quarantine fields from the journal (which is authoritative); returns
    the number of records written. A test helper: the product updates the store with each move."""
    written = 0
    for entry in q.list_quarantined(layout):
        if entry.update_store:
            store.upsert_image(moves.record_of(entry))
            written += 1
    return written


def test_sync_store_rewrites_records_from_the_manifest(tmp_path, utkface_rows):
    layout, files = _dataset(tmp_path, utkface_rows)
    q.quarantine_file(layout, files[0], "no-face", "0 faces")  # no store given: record missing
    q.quarantine_file(layout, files[1], "exact-duplicate", update_store=False)
    with open_store(None, layout.root) as store:
        assert sync_store(layout, store) == 1
        (record,) = store.find_images(status="quarantined")
        assert record["quarantine_reason"] == "no-face" and record["quarantine_detail"] == "0 faces"
