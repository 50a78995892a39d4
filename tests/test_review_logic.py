"""The review app's decision logic without a browser: queue, decisions, undo, crash repair, bad input."""

from __future__ import annotations

import multiprocessing
import os
import shutil
from pathlib import Path

import pytest

from anfe.faces.cache import AnalysisCache
from anfe.core.config import AnalysisParams
from anfe.core.layout import DatasetLayout
from anfe.core.store import open_store
from anfe.core.errors import DatasetError, NotADatasetError
from anfe.core.layout import open_dataset
from curation import decisions, moves, queue, quarantine
from curation.queue import QueueItem
from curation.review_cli import ReviewConfig, parse_args
from testkit.review import items_of, make_review_dataset


@pytest.fixture
def dataset(utkface_rows, tmp_path) -> DatasetLayout:
    return make_review_dataset(utkface_rows, tmp_path / "data")


@pytest.fixture
def store(dataset):
    with open_store(None, dataset.root) as s:
        yield s


def test_not_a_dataset_root(tmp_path):
    (tmp_path / "photos").mkdir()
    with pytest.raises(NotADatasetError, match=r"not a dataset root: expected .*images/<gender>/"):
        open_dataset(tmp_path / "photos")
    with pytest.raises(NotADatasetError, match="not a folder"):
        open_dataset(tmp_path / "missing")


def test_queue_orders_and_counts(dataset, store, session_cache_path):
    params = AnalysisParams()
    with AnalysisCache(session_cache_path, params.cache_key) as cache:
        analyses = queue.load_analyses(dataset.image_files(), params, cache)
    first = dataset.image_files("male")[0]
    store.upsert_image({"content_hash": first.stem, "status": "review", "rule": "label-conflict",
                        "source_url": "http://filmweb.test/p/1.jpg"})
    records = {r["content_hash"]: r for r in store.find_images()}
    log = decisions.read_log(store)
    shown = queue.build_queue(dataset, analyses, log, records, "male", "suspicion")
    assert len(shown) == 6 and {i.gender for i in shown} == {"male"}
    scores = [i.score for i in shown if i.score is not None]
    assert len(scores) >= 5 and scores == sorted(scores, reverse=True)
    assert [i.file_name for i in queue.build_queue(dataset, analyses, log, records, "male", "filename")] == sorted(
        i.file_name for i in shown)
    by_rule = queue.build_queue(dataset, analyses, log, records, "male", "rule")
    assert by_rule[0].path == first and by_rule[0].rule == "label-conflict"
    by_source = queue.build_queue(dataset, analyses, log, records, "male", "source")
    assert by_source[0].source == "filmweb.test"
    page, number, pages = queue.page_of(shown, 5, 4)
    assert (len(page), number, pages) == (2, 1, 2)
    decisions.decide(dataset, store, shown[:2], "keep", "ann")
    log = decisions.read_log(store)
    assert queue.counts(dataset, log, analyses)["male"] == (4, 6)
    assert len(queue.build_queue(dataset, analyses, log, records, "male")) == 4
    assert len(queue.build_queue(dataset, analyses, log, records, "male", include_reviewed=True)) == 6


def test_relabel_reject_keep_are_logged_then_applied(dataset, store):
    male = items_of(dataset, "male")
    out = decisions.decide(dataset, store, male[:2], "relabel", "ann", new_label="female")
    assert not out.problems and len(out.logged) == 2
    for item in male[:2]:
        assert not item.path.exists() and (dataset.gender_dir("female") / item.file_name).is_file()
        record = store.get_image(item.content_hash)
        assert record["gender"] == "female" and record["path"] == f"images/female/{item.file_name}"
    doc = store.decisions()[0]
    assert {k: doc[k] for k in ("kind", "schema_version", "who", "action", "old_label", "new_label")} == {
        "kind": "review", "schema_version": 1, "who": "ann", "action": "relabel", "old_label": "male",
        "new_label": "female"}
    assert doc["content_hash"] == male[0].content_hash and doc["batch"] == out.batch and doc["when"]

    out = decisions.decide(dataset, store, male[2:3], "reject", "ann", reason="wrong-person", detail="a child")
    moved = dataset.quarantine_dir("wrong-person") / "male" / male[2].file_name
    assert moved.is_file() and not male[2].path.exists()
    assert store.get_image(male[2].content_hash)["status"] == "quarantined"
    assert quarantine.list_quarantined(dataset)[0].actor == "review:ann"

    decisions.decide(dataset, store, male[3:4], "keep", "ann")
    assert male[3].path.is_file()
    log = decisions.read_log(store)
    assert all(log.reviewed(i.content_hash) for i in male[:4]) and not log.reviewed(male[4].content_hash)


class Crash(Exception):
    pass


def test_crash_between_log_and_move_is_repaired_at_next_start(dataset, store, monkeypatch):
    male = items_of(dataset, "male")
    with monkeypatch.context() as patch:
        patch.setattr(decisions, "_apply", lambda *a, **k: (_ for _ in ()).throw(Crash()))
        with pytest.raises(Crash):
            decisions.decide(dataset, store, male[:1], "relabel", "ann", new_label="female")
        with pytest.raises(Crash):
            decisions.decide(dataset, store, male[1:2], "reject", "ann", reason="no-face")
    assert len(store.decisions()) == 2  # logged first ...
    assert male[0].path.is_file() and male[1].path.is_file()  # ... the files did not move
    with open_store(None, dataset.root) as restarted:
        messages = decisions.repair(dataset, restarted)
    assert len(messages) == 2 and "finished decision" in messages[0]
    assert (dataset.gender_dir("female") / male[0].file_name).is_file() and not male[0].path.exists()
    assert (dataset.quarantine_dir("no-face") / "male" / male[1].file_name).is_file()
    assert decisions.repair(dataset, store) == []  # idempotent


def test_half_done_move_is_finished(dataset, store):
    """A crash after the hard link but before the unlink leaves two names; repair drops one."""
    item = items_of(dataset, "male")[0]
    decisions.decide(dataset, store, [item], "relabel", "ann", new_label="female")
    target = dataset.gender_dir("female") / item.file_name
    os.link(target, item.path)
    # the log says relabel; the old name is still there: repair drops the extra name, not the photo
    assert decisions.repair(dataset, store)
    assert target.is_file() and not item.path.exists()


def test_undo_last_and_undo_batch(dataset, store):
    male = items_of(dataset, "male")
    batch = decisions.decide(dataset, store, male[:3], "relabel", "ann", new_label="female")
    decisions.decide(dataset, store, male[3:4], "reject", "ann", reason="duplicate")
    decisions.decide(dataset, store, male[4:5], "keep", "bob")  # someone else's: never undone by ann

    out = decisions.undo(dataset, store, "ann")  # the reject
    assert [d["undone_action"] for d in out.logged] == ["reject"] and male[3].path.is_file()
    assert store.get_image(male[3].content_hash)["status"] == "active"
    out = decisions.undo(dataset, store, "ann")  # the last relabel of the batch only
    assert len(out.logged) == 1 and male[2].path.is_file() and not male[1].path.exists()
    out = decisions.undo(dataset, store, "ann", whole_batch=True)  # the rest of that batch
    assert len(out.logged) == 2 and all(i.path.is_file() for i in male[:3])
    assert store.get_image(male[0].content_hash)["gender"] == "male"
    assert {d["batch"] for d in store.decisions() if d["action"] == "relabel"} == {batch.batch}
    log = decisions.read_log(store)
    assert not any(log.reviewed(i.content_hash) for i in male[:4]) and log.reviewed(male[4].content_hash)
    assert decisions.undo(dataset, store, "ann").notes == ["nothing to undo for ann"]
    assert decisions.repair(dataset, store) == []  # replaying the log does not redo undone moves


def test_undo_leaves_an_image_changed_by_someone_else(dataset, store):
    item = items_of(dataset, "male")[0]
    decisions.decide(dataset, store, [item], "relabel", "ann", new_label="female")
    moved = QueueItem(dataset.gender_dir("female") / item.file_name, "female", item.content_hash)
    decisions.decide(dataset, store, [moved], "reject", "bob", reason="other")
    out = decisions.undo(dataset, store, "ann")
    assert out.notes == ["nothing to undo for ann"]  # bob's later decision stands
    assert quarantine.list_quarantined(dataset)[0].content_hash == item.content_hash


def test_two_reviewers_with_stale_pages_lose_no_decision(dataset):
    male = items_of(dataset, "male")  # both loaded the same page
    with open_store(None, dataset.root) as ann, open_store(None, dataset.root) as bob:
        decisions.decide(dataset, ann, male[:2], "relabel", "ann", new_label="female")
        out = decisions.decide(dataset, bob, male[:2], "relabel", "bob", new_label="female")  # same, late
        assert not out.problems and len(out.logged) == 2
        out = decisions.decide(dataset, bob, male[:1], "reject", "bob", reason="other")
        assert out.notes and "moved to female meanwhile" in out.notes[0].replace("had been ", "")
        assert len(ann.decisions()) == 5
    assert (dataset.quarantine_dir("other") / "female" / male[0].file_name).is_file()
    assert (dataset.gender_dir("female") / male[1].file_name).is_file()


def _decide_in_process(root: str, names: list[str], who: str) -> None:
    layout = DatasetLayout(Path(root))
    with open_store(None, root) as s:
        for name in names:  # one decision at a time, interleaving with the other process
            decisions.decide(layout, s, [QueueItem(layout.gender_dir("male") / name, "male", Path(name).stem)],
                          "relabel", who, new_label="female")


def test_two_processes_at_once(dataset):
    names = [p.name for p in dataset.image_files("male")]
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_decide_in_process, args=(str(dataset.root), names, who))
               for who in ("ann", "bob")]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    assert [w.exitcode for w in workers] == [0, 0]
    with open_store(None, dataset.root) as s:
        docs = s.decisions()
    assert len(docs) == 12 and {d["who"] for d in docs} == {"ann", "bob"}
    assert dataset.image_files("male") == [] and len(dataset.image_files("female")) == 12


def test_vanished_image_is_reported_not_fatal(dataset, store, tmp_path):
    male = items_of(dataset, "male")
    shutil.move(male[0].path, tmp_path / "elsewhere.jpg")
    out = decisions.decide(dataset, store, male[:2], "relabel", "ann", new_label="female")
    assert len(out.logged) == 1
    assert "is gone from male (moved or deleted since the page was loaded): nothing recorded" in out.problems[0]


def test_log_from_a_newer_version_is_refused(dataset, store):
    item = items_of(dataset, "male")[0]
    store.append_decision({"kind": "review", "schema_version": 99, "content_hash": "x", "action": "keep"})
    with pytest.raises(decisions.DecisionLogVersionError, match=r"newer version \(review schema 99.*upgrade"):
        decisions.read_log(store)
    with pytest.raises(decisions.DecisionLogVersionError):
        decisions.decide(dataset, store, [item], "relabel", "ann", new_label="female")
    assert item.path.is_file() and len(store.decisions()) == 1


def test_read_only_dataset(dataset, store, monkeypatch):
    item = items_of(dataset, "male")[0]
    with monkeypatch.context() as patch:  # as root, permission bits do not stop writes: inject
        patch.setattr(os, "access", lambda *a, **k: False)
        with pytest.raises(moves.ReadOnlyDatasetError, match="is read-only"):
            decisions.decide(dataset, store, [item], "relabel", "ann", new_label="female")
    assert store.decisions() == []

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    with monkeypatch.context() as patch:  # the folder turns read-only between the check and the move
        patch.setattr(os, "link", refuse)
        out = decisions.decide(dataset, store, [item], "relabel", "ann", new_label="female")
    assert "Permission denied" in out.problems[0] and "finished at the next start" in out.problems[0]
    assert item.path.is_file()
    assert decisions.repair(dataset, store)  # writable again: the logged decision is applied
    assert (dataset.gender_dir("female") / item.file_name).is_file()


def test_restored_reject_is_not_quarantined_again(dataset, store):
    item = items_of(dataset, "male")[0]
    decisions.decide(dataset, store, [item], "reject", "ann", reason="other")
    quarantine.restore_file(dataset, item.content_hash, store, actor="someone")
    assert item.path.is_file()
    assert decisions.repair(dataset, store) == [] and item.path.is_file()


def _conflict(dataset: DatasetLayout) -> str:
    """The same photo under both genders, sent to review by the cleaner (as `anfe clean` does)."""
    source = dataset.image_files("male")[0]
    twin = dataset.gender_dir("female") / source.name
    twin.write_bytes(source.read_bytes())
    for path in (source, twin):
        quarantine.quarantine_file(dataset, path, "label-conflict", "same bytes under both genders",
                                   status=moves.STATUS_REVIEW, content_hash=source.stem)
    return source.stem


def test_files_sent_to_review_are_decided_from_quarantine(dataset, store):
    digest = _conflict(dataset)
    flagged = queue.flagged_items(dataset)
    assert [(i.gender, i.content_hash, i.rule) for i in flagged] == [
        ("female", digest, "label-conflict"), ("male", digest, "label-conflict")]
    assert len({i.key for i in flagged}) == 2

    out = decisions.decide(dataset, store, flagged[:1], "keep", "ann")  # the female copy: put back
    assert not out.problems and (dataset.gender_dir("female") / f"{digest}.jpg").is_file()
    out = decisions.decide(dataset, store, flagged[1:], "relabel", "ann", new_label="female")  # its twin
    assert "already in images/female; this copy stays in quarantine" in out.notes[0]
    assert queue.flagged_items(dataset) == []
    assert store.get_image(digest)["gender"] == "female"

    decisions.undo(dataset, store, "ann")  # the twin: back in the review queue, nothing moved
    assert len(queue.flagged_items(dataset)) == 1
    decisions.undo(dataset, store, "ann")  # the put-back copy returns to quarantine for review
    assert len(queue.flagged_items(dataset)) == 2
    assert not (dataset.gender_dir("female") / f"{digest}.jpg").exists()

    flagged = queue.flagged_items(dataset)
    out = decisions.decide(dataset, store, flagged, "reject", "ann", reason="wrong-person")
    assert len(out.logged) == 2 and queue.flagged_items(dataset) == []
    assert store.get_image(digest)["status"] == "quarantined"
    assert store.get_image(digest)["quarantine_reason"] == "wrong-person"


def test_crash_while_putting_back_a_file_sent_to_review(dataset, store, monkeypatch):
    digest = _conflict(dataset)
    male = [i for i in queue.flagged_items(dataset) if i.gender == "male"]
    with monkeypatch.context() as patch:
        patch.setattr(decisions, "_apply", lambda *a, **k: (_ for _ in ()).throw(Crash()))
        with pytest.raises(Crash):
            decisions.decide(dataset, store, male, "relabel", "ann", new_label="female")
    assert not (dataset.gender_dir("female") / f"{digest}.jpg").exists()
    messages = decisions.repair(dataset, store)
    assert len(messages) == 1 and (dataset.gender_dir("female") / f"{digest}.jpg").is_file()
    assert decisions.repair(dataset, store) == []


def test_page_arguments_round_trip_and_bad_ones():
    config = ReviewConfig(Path("/data/set"), "sqlite:////x/catalog.sqlite", Path("/c.sqlite"),
                                 AnalysisParams(upsample=0, max_side=800), workers=2)
    assert parse_args(config.to_args()) == config
    with pytest.raises(DatasetError, match="usage: streamlit run curation/review_app.py -- DATASET_ROOT"):
        parse_args([])
    with pytest.raises(DatasetError, match="unknown arguments"):
        parse_args(["/data/set", "--colour", "red"])
