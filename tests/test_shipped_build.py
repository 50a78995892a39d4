"""The builds shipped inside the package: `anfe predict` answers before any crawl, says which build
answered, and a build too small to mean much is called a toy in build, evaluate and predict."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from anfe.models.builds import MIN_MEANINGFUL_PER_GENDER, small_build_warning
from anfe.cli.app import cli
from anfe.models.shipped import DEFAULT_SHIPPED, SHIPPED_IDS, load_shipped, shipped_builds
from anfe.core.store import open_store


def test_the_shipped_builds_record_how_they_were_made():
    for build in shipped_builds():
        made = build["shipped"]
        assert "LFW" in made["source"] and "python -m anfe.models.shipped" in made["command"]
        assert len(made["commit"]) == 40
        assert made["holdout"]["test_people"] > 100 and made["holdout"]["balanced"].endswith("%")
        assert min(build["counts"].values()) >= MIN_MEANINGFUL_PER_GENDER
        assert build["seed"] == 0 and build["split"]["by"] == "person"
        assert build["embedding_model"]["encoder"]
        assert "members" not in build  # slim: the fingerprint stands for them
    assert [b["id"] for b in shipped_builds()] == list(SHIPPED_IDS)
    assert len(load_shipped("lfw_all_k16")["centroids"]["female"]) == 16


def test_builds_list_shows_the_shipped_builds_without_a_store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["builds", "list"])
    assert result.exit_code == 0, result.output
    assert "no builds of your own yet" in result.output
    assert all(f"{i}\t" in result.output and "shipped with anfe" in result.output for i in SHIPPED_IDS)
    shown = CliRunner().invoke(cli, ["builds", "show", DEFAULT_SHIPPED])
    assert shown.exit_code == 0 and json.loads(shown.output)["shipped"]["holdout"]


def test_small_build_warning_names_the_threshold():
    assert small_build_warning({"id": "g_3", "counts": {"female": 3, "male": 3}}).startswith(
        f"warning: g_3 holds only 3 female photos (under {MIN_MEANINGFUL_PER_GENDER} per gender)")
    assert small_build_warning({"id": "g_100", "counts": {"female": 100, "male": 400}}) is None


@pytest.mark.slow
def test_predict_in_a_fresh_home_uses_the_shipped_build(shared_faces, tmp_path, monkeypatch):
    """Done when: a fresh home, nothing crawled, `anfe predict obama.jpg` says male."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ANFE_CACHE", raising=False)
    monkeypatch.chdir(tmp_path)
    obama = shared_faces / "facecount" / "face_recognition" / "examples" / "obama.jpg"
    result = CliRunner().invoke(cli, ["predict", str(obama), "--workers", "1"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith(f"using the shipped build {DEFAULT_SHIPPED} (LFW, ")
    assert lines[-1].startswith(f"{obama}: male (")
    assert (tmp_path / "home" / ".cache" / "anfe" / "analysis.sqlite").is_file()  # its cache, not the repo's
    # a toy build of one's own is called one
    toy = {**load_shipped(DEFAULT_SHIPPED), "id": "g_3", "counts": {"female": 3, "male": 3}}
    with open_store(None, tmp_path / "root") as store:
        store.save_build(toy)
    result = CliRunner().invoke(cli, ["predict", str(obama), "--build", "g_3", "--root", str(tmp_path / "root"),
                                      "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "warning: g_3 holds only 3 female photos" in result.output
    assert "using the shipped build" not in result.output
    refused = CliRunner().invoke(cli, ["predict", str(obama), "--root", str(tmp_path / "root")])
    assert refused.exit_code == 2 and "name the build with --build ID" in refused.output
