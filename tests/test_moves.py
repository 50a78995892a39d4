"""The one mover and its journal: a process killed (SIGKILL) between the journal line and the
file move, for each of quarantine, restore and a review decision; the next start finishes it."""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Callable

import pytest

from anfe.core.layout import DatasetLayout
from anfe.core.store import open_store
from curation import decisions, moves, queue
from curation import quarantine as q
from testkit.review import items_of, make_review_dataset


@pytest.fixture
def dataset(utkface_rows, tmp_path) -> DatasetLayout:
    return make_review_dataset(utkface_rows, tmp_path / "data", per_gender=2)


def _killed_at_the_move(job: Callable[[], object]) -> None:
    """Run ``job`` in a forked child that is killed by SIGKILL the moment a file would move
    (after its journal line is fsynced); assert it died that way."""
    def child() -> None:
        moves._move_file = lambda src, dst: os.kill(os.getpid(), signal.SIGKILL)
        job()
        os._exit(0)  # not reached: the kill comes first

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    assert process.exitcode == -signal.SIGKILL


def test_kill_between_journal_and_quarantine_move(dataset):
    path = dataset.image_files("male")[0]
    _killed_at_the_move(lambda: q.quarantine_file(dataset, path, "no-face", "0 faces"))
    (line,) = moves.read(dataset)
    assert line.action == "quarantine" and path.is_file()  # journalled, not moved
    with open_store(None, dataset.root) as store:
        assert len(moves.replay(dataset, store)) == 1
        assert store.get_image(line.content_hash)["status"] == "quarantined"
    assert not path.exists() and (dataset.root / line.dst).is_file()
    assert moves.replay(dataset) == [] and [e.id for e in q.list_quarantined(dataset)] == [line.id]


def test_kill_between_journal_and_restore_move(dataset):
    path = dataset.image_files("female")[0]
    moved = q.quarantine_file(dataset, path, "too-small")
    _killed_at_the_move(lambda: q.restore_file(dataset, moved))
    assert [m.action for m in moves.read(dataset)] == ["quarantine", "restore"] and moved.is_file()
    with open_store(None, dataset.root) as store:
        assert len(moves.replay(dataset, store)) == 1
        assert store.get_image(moves.read(dataset)[-1].content_hash)["status"] == "active"
    assert path.is_file() and not moved.exists() and q.list_quarantined(dataset) == []


@pytest.mark.parametrize("action", ["relabel", "reject"])
def test_kill_between_journal_and_review_move(dataset, action):
    item = items_of(dataset, "male")[0]
    options = {"new_label": "female"} if action == "relabel" else {"reason": "wrong-person"}

    def decide() -> None:
        with open_store(None, dataset.root) as store:
            decisions.decide(dataset, store, [item], action, "ann", **options)

    _killed_at_the_move(decide)
    with open_store(None, dataset.root) as store:
        (doc,) = store.decisions()  # logged first ...
        (line,) = moves.read(dataset)  # ... then journalled, under the decision's move id ...
        assert line.id == doc["move"] and item.path.is_file()  # ... and the kill came before the move
        assert len(decisions.repair(dataset, store)) == 1
        assert decisions.repair(dataset, store) == []
        record = store.get_image(item.content_hash)
    assert not item.path.exists() and (dataset.root / line.dst).is_file()
    assert record["path"] == line.dst and record["status"] == ("active" if action == "relabel" else "quarantined")
    assert queue.flagged_items(dataset) == []
