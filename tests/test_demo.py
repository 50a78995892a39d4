"""`anfe demo` on a small sample of real photos: the site, the crawl, the builds and the report."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from anfe.faces.cache import AnalysisCache
from anfe.cli.app import cli
from anfe.core.config import AnalysisParams
from anfe.core.dataset import load_labelled
from anfe.models.evaluation import evaluate_build
from anfe.core.store import open_store

PARAMS = AnalysisParams()


@pytest.mark.slow
def test_demo_runs_the_whole_flow(shared_faces, tmp_path, session_cache_path):
    out = tmp_path / "demo"
    result = CliRunner().invoke(cli, [
        "demo", "--source", str(shared_faces / "utkface"), "--out", str(out), "--people", "6",
        "--photos", "3", "--test-per-gender", "12", "--sizes", "3,6", "--k", "2", "--quiet",
        "--cache", str(session_cache_path), "--workers", "2",
    ])
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "demo.json").read_text())
    assert summary["builds"] == ["g_3", "g_6", "g_6_k2"]
    assert (out / "report" / "index.html").is_file() and (out / "report" / "sweep.png").is_file()
    assert (out / "cleaning.html").is_file()
    with open_store(None, out / "data") as store:
        build = store.get_build("g_6")
        assert build["counts"] == {"female": 6, "male": 6}
        assert len(store.get_build("g_6_k2")["centroids"]["female"]) == 2
        assert store.count_images() >= 12
    # The printed figures are what an evaluation of the saved builds on the held-back photos gives,
    # recomputed here (a wrong test set, a build scored on its own photos or a stale figure fails).
    test_items = load_labelled(out / "labels" / "test.csv")
    with open_store(None, out / "data") as store, AnalysisCache(session_cache_path, PARAMS.cache_key) as cache:
        for build_id, figures in summary["figures"].items():
            per = figures["per_gender"]
            assert per["female"]["images"] == 12 and per["male"]["images"] == 12
            again = evaluate_build(store.get_build(build_id), test_items, PARAMS, cache, 1, baselines=False,
                                   progress=False)
            assert again.excluded.get("in-training", 0) == 0  # the held-back photos were never on the site
            assert figures["balanced_accuracy"] == again.balanced_accuracy(), build_id
            assert {g: v["accuracy"] for g, v in per.items()} == {
                g: v["accuracy"] for g, v in again.per_gender().items()}
    assert "evaluation report:" in result.output
    assert "{'" not in result.output  # no Python dict in what people read (promises, timings)
    # the site's people are synthetic: marked so, the identity rules of a later clean skip them
    with open_store(None, out / "data") as store:
        assert all(r.get("synthetic_person") for r in store.find_images(fields=("content_hash", "synthetic_person")))
    again = CliRunner().invoke(cli, ["clean", str(out / "data"), "--dry-run", "--cache", str(session_cache_path),
                                     "--workers", "2"])
    assert again.exit_code == 0 and "wrong-person" not in again.output, again.output
    # the crawled and cleaned root, exported, loads in `datasets` with its columns and a card
    datasets = pytest.importorskip("datasets")
    exported = CliRunner().invoke(cli, ["export", str(out / "data"), "--out", str(tmp_path / "hf"),
                                        "--cache", str(session_cache_path)])
    assert exported.exit_code == 0, exported.output
    loaded = datasets.load_dataset("imagefolder", data_dir=str(tmp_path / "hf"))["train"]
    assert {"label", "person", "site", "source_url", "face_box", "age", "content_hash"} <= set(loaded.column_names)
    assert set(loaded["label"]) == {"female", "male"} and all(loaded["source_url"]) and all(loaded["site"])
    card = (tmp_path / "hf" / "README.md").read_text()
    assert card.startswith("---\n") and "## Collection" in card and "listal" in card


def test_demo_refuses_a_missing_source(tmp_path):
    result = CliRunner().invoke(cli, ["demo", "--source", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "does not exist: give labelled photos with --source" in result.output
