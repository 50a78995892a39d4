"""The build, builds, evaluate and predict commands through click's CliRunner: output, files, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from anfe.cli.commands import build, builds, evaluate, predict

PER_GENDER = 20


@pytest.fixture(scope="module")
def dataset(utkface_rows, tmp_path_factory) -> Path:
    """Label folders of links to real UTKFace adults (the sample of test_builds; nothing copied)."""
    root = tmp_path_factory.mktemp("folders")
    for gender in ("male", "female"):
        adults = [r for r in utkface_rows if r["gender"] == gender and int(r["age"]) >= 17]
        step = max(1, len(adults) // PER_GENDER)
        (root / gender).mkdir()
        for r in adults[::step][:PER_GENDER]:
            (root / gender / Path(r["path"]).name).symlink_to(r["path"])
    return root


@pytest.fixture(scope="module")
def store(dataset, session_cache_path, tmp_path_factory) -> dict:
    """A store holding g_8 and g_all (30% held out), made through the CLI."""
    db = f"sqlite:///{tmp_path_factory.mktemp('store') / 'catalog.sqlite'}"
    common = ["--db", db, "--cache", str(session_cache_path), "--workers", "1"]
    result = CliRunner().invoke(build, [str(dataset), "--sizes", "8,all", "--test-fraction", "0.3", "--seed", "5", *common])
    assert result.exit_code == 0, result.output
    return {"db": db, "common": common, "output": result.output}


def _run(command, args):
    return CliRunner().invoke(command, [str(a) for a in args])


def test_build_prints_each_build_and_the_split(store):
    out = store["output"]
    assert "held out for testing (by photo): 6 female, 6 male" in out  # no identities: by photo
    assert "g_8: 8 female + 8 male, seed 5, fingerprint" in out and "g_all: " in out


def test_builds_list_show_delete(store):
    listed = _run(builds, ["list", "--db", store["db"]])
    assert listed.exit_code == 0 and [line.split("\t")[0] for line in listed.output.splitlines()
                                      if "shipped with anfe" not in line] == ["g_8", "g_all"]
    shown = json.loads(_run(builds, ["show", "g_8", "--db", store["db"]]).output)
    assert shown["counts"] == {"female": 8, "male": 8} and "members" not in shown and shown["seed"] == 5
    full = json.loads(_run(builds, ["show", "g_8", "--full", "--db", store["db"]]).output)
    assert len(full["members"]["male"]) == 8
    extra = _run(build, [store_dataset(store), "--sizes", "4", "--prefix", "tmp", *store["common"]])
    assert extra.exit_code == 0, extra.output
    deleted = _run(builds, ["delete", "tmp_4", "--db", store["db"]])
    assert deleted.exit_code == 0 and deleted.output == "deleted build tmp_4\n"


def store_dataset(store) -> str:
    return json.loads(_run(builds, ["show", "g_8", "--db", store["db"]]).output)["dataset"]["source"]


def test_unknown_build_id_names_the_known_ones(store):
    for command, args in ((builds, ["show", "g_9"]), (builds, ["delete", "g_9"]),
                          (predict, ["--build", "g_9", store_dataset(store)]), (evaluate, ["g_9"])):
        result = _run(command, [*args, "--db", store["db"]])
        assert result.exit_code == 1
        assert result.output.splitlines()[-1] == (
            f"Error: no build 'g_9' in {store['db']}; known builds: g_8, g_all")
    result = _run(evaluate, ["x_*", "--db", store["db"]])
    assert result.output == "Error: no build matches 'x_*'; known builds: g_8, g_all\n"


def test_evaluate_writes_json_and_html(store, tmp_path):
    out = tmp_path / "report"
    result = _run(evaluate, ["g_all", "--out", out, "--knn-k", "3", *store["common"]])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("g_all: balanced ") and "logistic regression" in result.output
    data = json.loads((out / "result.json").read_text())
    assert data["excluded"]["not-in-test-split"] > 0 and data["images"] == 12
    assert (out / "index.html").is_file() and (out / "confusion.png").is_file()
    sweep = _run(evaluate, ["g_*", "--out", tmp_path / "sweep", "--no-baselines", "--json", *store["common"]])
    assert sweep.exit_code == 0, sweep.output
    assert [r["build"]["id"] for r in json.loads(sweep.stdout)] == ["g_8", "g_all"]
    assert (tmp_path / "sweep" / "sweep.png").is_file()


def test_predict_text_and_json(store, dataset, facecount_rows):
    face = sorted((dataset / "female").iterdir())[0]
    group = next(r["path"] for r in facecount_rows if r["path"].endswith("two_people.jpg"))
    result = _run(predict, [face, group, "--build", "g_all", *store["common"]])
    assert result.exit_code == 0, result.output
    first, second = [line for line in result.output.splitlines() if not line.startswith("warning: g_all holds only")]
    assert first.startswith(f"{face}: ") and "margin" in first
    assert second.startswith(f"{group}: unknown (several faces: 2: box [")
    as_json = _run(predict, [face, "--build", "g_all", "--json", "--max-distance", "0.01", *store["common"]])
    row = json.loads(as_json.stdout)  # the small-build warning goes to stderr
    assert (row["verdict"], row["reason"], row["max_distance"]) == ("unknown", "out-of-range", 0.01)


def test_empty_gender_folder_is_a_clear_error(tmp_path, store):
    (tmp_path / "male").mkdir()
    (tmp_path / "female").mkdir()
    (tmp_path / "male" / "x.jpg").write_bytes(b"")
    result = _run(build, [tmp_path, "--sizes", "1", "--db", f"sqlite:///{tmp_path / 'c.sqlite'}"])
    assert result.exit_code == 1
    assert result.output == f"Error: the label folder {tmp_path / 'female'} holds no images\n"


def test_unreadable_files_are_recorded_skipped_and_kept(dataset, store, tmp_path):
    root = tmp_path / "mixed"
    for gender in ("male", "female"):
        (root / gender).mkdir(parents=True)
        for link in sorted((dataset / gender).iterdir())[:5]:
            (root / gender / link.name).symlink_to(link.resolve())
    (root / "male" / "empty.jpg").write_bytes(b"")
    (root / "female" / "login.jpg").write_bytes(b"<html>please log in</html>")
    result = _run(build, [root, "--sizes", "3", *store["common"][2:], "--db", f"sqlite:///{tmp_path / 'c.sqlite'}"])
    assert result.exit_code == 0, result.output
    summary = result.stdout.splitlines()[0]
    assert summary.startswith("12 images (") and "; not usable: " in summary
    assert "empty-file 1" in summary and "not-an-image 1" in summary
    assert (root / "male" / "empty.jpg").exists() and (root / "female" / "login.jpg").exists()


def test_bad_options_and_missing_store(store, tmp_path, dataset):
    too_big = _run(build, [dataset, "--sizes", "999", *store["common"]])
    assert too_big.exit_code == 1 and too_big.output.startswith("Error: size 999 is more than the usable")
    assert too_big.output.rstrip().endswith("use a smaller --sizes, --sizes all, or --clamp to take every image "
                                            "of a smaller gender")  # the CLI names the flags, the library does not
    bad_filter = _run(build, [dataset, "--where", "age", *store["common"]])
    assert bad_filter.exit_code == 2 and bad_filter.output.splitlines()[-1] == (
        "Error: Invalid value for --where: cannot read the filter 'age': write COLUMN OP VALUE, "
        "e.g. age>=17 or race=Asian")
    no_labels = _run(build, [dataset, "--min-age", "17", *store["common"]])
    assert no_labels.output.startswith("Error: no image has a 'age' label to filter on")
    missing = _run(builds, ["list", "--root", tmp_path])
    assert missing.exit_code == 1
    assert missing.output == (f"Error: no store at {tmp_path / 'catalog.sqlite'}: pass --db URI (or set ANFE_DB) "
                              "or --root DATASET_DIR\n")


@pytest.mark.parametrize("command", [build, builds, evaluate, predict])
def test_every_command_has_help(command):
    result = CliRunner().invoke(command, ["--help"])
    assert result.exit_code == 0 and len(result.output) > 200
    for sub in getattr(command, "commands", {}).values():
        assert sub.help and CliRunner().invoke(sub, ["--help"]).exit_code == 0


# -- small builds: statistics that say what they are (issue 13, item 8) -----------------------------
def test_small_builds_list_in_numeric_order_and_knn_is_skipped_when_k_covers_every_member(dataset, session_cache_path,
                                                                                           tmp_path):
    db = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    common = ["--db", db, "--cache", str(session_cache_path), "--workers", "1"]
    made = _run(build, [dataset, "--sizes", "10,2", "--test-fraction", "0.3", *common])
    assert made.exit_code == 0, made.output
    listed = _run(builds, ["list", "--db", db])
    assert [line.split("\t")[0] for line in listed.output.splitlines()
            if "shipped with anfe" not in line] == ["g_2", "g_10"]  # not g_10, g_2
    result = _run(evaluate, ["g_2", "--out", tmp_path / "r", *common])
    assert result.exit_code == 0, result.output
    assert "knn" not in result.output.splitlines()[0] and "logistic regression" in result.output
    assert result.output.splitlines()[1] == ("  note: kNN baseline skipped: k=15 is not below the build's 4 members "
                                             "(every member would vote); use --knn-k below 4")
    assert "knn" not in json.loads((tmp_path / "r" / "result.json").read_text())["baselines"]


def test_held_out_counts_of_build_are_the_images_evaluate_scores(utkface_rows, facecount_rows, session_cache_path,
                                                                 tmp_path):
    """Each held-out photo is scored once, even when the dataset holds its bytes twice; photos
    without exactly one face are held out too, and scored as unknown."""
    folders = tmp_path / "folders"
    adults = [r for r in utkface_rows if 25 <= int(r["age"]) <= 40]
    for gender in ("female", "male"):
        (folders / gender).mkdir(parents=True)
        for r in [r for r in adults if r["gender"] == gender][:6]:
            (folders / gender / Path(r["path"]).name).symlink_to(r["path"])
            if gender == "female":  # the same bytes twice
                (folders / gender / f"copy-{Path(r['path']).name}").symlink_to(r["path"])
    no_face = next(r["path"] for r in facecount_rows if r["expected_faces"] == "0")
    (folders / "male" / "no-face.jpg").symlink_to(no_face)
    db = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    common = ["--db", db, "--cache", str(session_cache_path), "--workers", "1"]
    made = _run(build, [folders, "--sizes", "2", "--test-fraction", "0.5", *common])
    assert made.exit_code == 0, made.output
    line = next(x for x in made.output.splitlines() if x.startswith("held out for testing"))
    assert line == ("held out for testing (by photo): 3 female, 4 male distinct photos, those without exactly one "
                    "face included (evaluate scores them as unknown)")
    result = _run(evaluate, ["g_2", "--out", tmp_path / "r", "--no-baselines", *common])
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "r" / "result.json").read_text())
    assert {g: v["images"] for g, v in data["per_gender"].items()} == {"female": 3, "male": 4}
    assert data["excluded"]["same-photo-again"] == 3
