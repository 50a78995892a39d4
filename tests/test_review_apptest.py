"""The review page through ``streamlit.testing.v1.AppTest`` (no browser), and the ``anfe review`` command."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from anfe.cli.app import cli
from anfe.core.store import open_store
from curation import moves, quarantine
from curation.safe_text import md
from testkit.review import make_review_dataset


def _page(argv):
    from curation.review_app import render

    render(argv)


@pytest.fixture
def dataset(utkface_rows, tmp_path):
    return make_review_dataset(utkface_rows, tmp_path / "data", per_gender=7)


def app_for(root: Path, cache: Path) -> AppTest:
    at = AppTest.from_function(_page, args=([str(root), "--cache", str(cache)],), default_timeout=120)
    return at.run()


def tiles(at: AppTest) -> list:
    return [c for c in at.checkbox if str(c.key or "").startswith("sel-")]


def test_grid_paging_orders_and_actions(dataset, session_cache_path):
    at = app_for(dataset.root, session_cache_path)
    assert not at.exception and not at.error
    assert at.subheader[0].value == "female: 7 left to review of 7"
    assert len(tiles(at)) == 7 and at.selectbox(key="order").value == "suspicion"

    at.selectbox(key="per_page").set_value(6).run()
    assert len(tiles(at)) == 6 and "page 1 of 2" in at.markdown[-1].value
    at.button(key="next").click().run()
    assert len(tiles(at)) == 1 and "page 2 of 2" in at.markdown[-1].value
    at.button(key="prev").click().run()

    at.selectbox(key="order").set_value("filename").run()
    names = [c.key[4:] for c in tiles(at)]
    assert names == sorted(names)

    first, second = tiles(at)[:2]
    moved = [first.key[4:], second.key[4:]]
    first.check()
    second.check()
    at.run()
    assert at.button(key="act-relabel").label.startswith("Move to male (2)")
    at.button(key="act-relabel").click().run()
    assert not at.exception
    assert at.success[0].value == "Moved to male: 2 relabel"
    assert at.subheader[0].value == "female: 5 left to review of 5"
    male = {p.stem for p in dataset.image_files("male")}
    assert set(moved) <= male

    at.button(key="undo-batch").click().run()
    assert at.success[0].value.startswith("Undid the last batch: 2 undo")
    assert set(moved) <= {p.stem for p in dataset.image_files("female")}

    target = tiles(at)[0].key[4:]
    at.selectbox(key="reason").set_value("not-a-photo")
    at.text_input(key="detail").input("a drawing")
    at.checkbox(key=f"sel-{target}").check()
    at.run()
    at.button(key="act-reject").click().run()
    entry = quarantine.list_quarantined(dataset)[0]
    assert entry.reason == "not-a-photo" and entry.detail == "a drawing" and entry.content_hash == target

    at.button(key="undo").click().run()
    assert (dataset.gender_dir("female") / f"{target}.jpg").is_file()

    at.radio(key="gender").set_value("male").run()
    assert at.subheader[0].value == "male: 7 left to review of 7"
    at.button(key="select-all").click().run()
    at.button(key="act-keep").click().run()  # six per page
    assert at.subheader[0].value == "male: 1 left to review of 7" and len(tiles(at)) == 1
    at.button(key="act-keep-rest").click().run()  # nothing selected: keeps the rest of the page
    assert at.subheader[0].value == "male: 0 left to review of 7"
    with open_store(None, dataset.root) as store:
        actions = [d["action"] for d in store.decisions()]
    assert actions == ["relabel"] * 2 + ["undo"] * 2 + ["reject", "undo"] + ["keep"] * 7


def test_vanished_image_shows_a_message(dataset, session_cache_path, tmp_path):
    at = app_for(dataset.root, session_cache_path)
    box = tiles(at)[0]
    box.check()
    at.run()
    path = dataset.gender_dir("female") / f"{box.key[4:]}.jpg"
    path.rename(tmp_path / "elsewhere.jpg")
    at.button(key="act-keep").click().run()
    assert not at.exception
    assert any("is gone from female" in w.value for w in at.warning)
    assert at.subheader[0].value == "female: 6 left to review of 6"


def test_not_a_dataset_root(tmp_path, session_cache_path):
    (tmp_path / "holiday-photos").mkdir()
    at = app_for(tmp_path / "holiday-photos", session_cache_path)
    assert not at.exception
    assert "is not a dataset root: expected" in at.error[0].value


def test_log_from_a_newer_version(dataset, session_cache_path):
    with open_store(None, dataset.root) as store:
        store.append_decision({"kind": "review", "schema_version": 7, "content_hash": "x", "action": "keep"})
    at = app_for(dataset.root, session_cache_path)
    assert not at.exception
    assert "written by a newer version" in at.error[0].value and "upgrade" in at.error[0].value


def test_read_only_dataset(dataset, session_cache_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda *a, **k: False)  # as root, chmod does not stop writes
    at = app_for(dataset.root, session_cache_path)
    assert not at.exception
    assert "is read-only" in at.error[0].value and "chmod" in at.error[0].value


def test_cli_serves_on_localhost_by_default(dataset):
    result = CliRunner().invoke(cli, ["review", str(dataset.root), "--print-command", "--port", "8600"])
    assert result.exit_code == 0, result.output
    assert "streamlit run" in result.output and "review_server.py" in result.output  # (review_app.py behind its guard)
    assert "--server.address 127.0.0.1 --server.port 8600" in result.output
    assert f"-- {dataset.root}" in result.output
    # sharing it (0.0.0.0) needs reviewers and TLS: tests/test_review_signin.py


def test_cli_refuses_a_folder_that_is_not_a_dataset(tmp_path):
    result = CliRunner().invoke(cli, ["review", str(tmp_path)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "is not a dataset root" in result.output


def test_files_sent_to_review_by_the_cleaning(dataset, session_cache_path):
    source = dataset.image_files("male")[0]
    twin = dataset.gender_dir("female") / source.name
    twin.write_bytes(source.read_bytes())
    for path in (source, twin):  # as `anfe clean` does with a label conflict
        quarantine.quarantine_file(dataset, path, "label-conflict", "same bytes under both genders",
                                   status=moves.STATUS_REVIEW, content_hash=source.stem)
    at = app_for(dataset.root, session_cache_path)
    at.radio(key="gender").set_value("sent-to-review").run()
    assert at.subheader[0].value == "Sent to review by the automatic cleaning: 2 left"
    assert len(tiles(at)) == 2
    at.selectbox(key="target").set_value("female")
    at.button(key="select-all").click().run()
    at.button(key="act-relabel").click().run()
    assert not at.exception
    assert any("this copy stays in quarantine" in i.value for i in at.info)
    assert at.subheader[0].value == "Sent to review by the automatic cleaning: 0 left"
    assert twin.is_file() and not source.exists()


def test_reviewer_tools_on_the_page(dataset, session_cache_path):
    """No primary action with nothing selected; the progress and per-reviewer lines; the site and
    person filters; the large view by its button and by V, with the scores in words; the by-person
    view's people list and its name search."""
    with open_store(None, dataset.root) as store:
        for n, path in enumerate(sorted(dataset.image_files())):
            store.upsert_image({"content_hash": path.stem, "person_id": str(n % 2), "site": ("a.test", "b.test")[n % 2],
                                "person_name": ("**Zoë** Kravitz", "Kathleen Kennedy Townsend")[n % 2]})
    at = app_for(dataset.root, session_cache_path)
    assert not at.exception and not at.error
    assert at.button(key="act-keep").proto.type == "secondary"  # Keep (0) is not the primary action
    tiles(at)[0].check()
    at.run()
    assert at.button(key="act-keep").proto.type == "primary"
    at.button(key="act-keep").click().run()
    texts = [t.value for t in at.text]
    assert "female: 1 reviewed, 6 left · male: 0 reviewed, 7 left" in texts
    assert any(t.startswith("Decisions per reviewer: ") and t.endswith(" 1") for t in texts)

    at.text_input(key="filter_person").input("zoë").run()
    assert {c.label for c in tiles(at)} == {md("**Zoë** Kravitz")}  # shown as text, not markdown
    at.text_input(key="filter_person").input("").run()
    at.selectbox(key="filter_site").set_value("b.test").run()
    assert {c.label for c in tiles(at)} == {md("Kathleen Kennedy Townsend")}

    first = tiles(at)[0].key[4:]
    at.button(key=f"view-{first}").click().run()
    assert not at.exception
    words = [t.value for t in at.text]
    assert any(w.startswith("Suspicion ") and "average female face" in w or w == "No face was found: it cannot be "
               "scored." or "faces were found" in w for w in words), words
    assert "Said to show Kathleen Kennedy Townsend, from b.test." in words
    assert at.button(key="large-close")
    at.button(key="large-close").click().run()
    assert not [b for b in at.button if b.key == "large-close"]
    at.button(key="view-large").click().run()  # the V key's button: the first tile, none selected
    assert [b for b in at.button if b.key == "large-close"]

    at.radio(key="view").set_value("by person").run()  # the people list, from the sync's lead records
    assert not at.exception and len(at.selectbox(key="person").options) == 2
    at.text_input(key="people_search").input("KENNEDY").run()
    assert not at.exception
    assert [o.startswith("Kathleen Kennedy Townsend (b.test), ") for o in at.selectbox(key="person").options] == [True]
    assert at.subheader[0].value.startswith(md("Kathleen Kennedy Townsend"))
