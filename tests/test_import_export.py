"""`anfe import` (labels CSV, label folders, FaceScrub list) and `anfe export` (Hugging Face
imagefolder with metadata and a dataset card), on real photos; the export is loaded with `datasets`."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from anfe.cli.app import cli
from anfe.core.layout import DatasetLayout
from anfe.core.store import open_store


PER_GENDER = 8


def _lfw_rows(shared_faces: Path) -> list[dict[str, str]]:
    """Eight photos per gender, two of each of four people (a person split has people to split)."""
    with (shared_faces / "lfw" / "labels.csv").open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_person: dict[str, list[dict[str, str]]] = {}
    for r in rows:
        by_person.setdefault(r["identity"], []).append(r)
    chosen: list[dict[str, str]] = []
    for gender in ("female", "male"):
        people = [p for p, found in by_person.items() if len(found) >= 2 and found[0]["gender"] == gender]
        chosen += [r for p in people[: PER_GENDER // 2] for r in by_person[p][:2]]
    return chosen


def _labels_csv(shared_faces: Path, rows: list[dict[str, str]], path: Path, person=None) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "gender", "person", "source_url", "age", "race"])
        for i, r in enumerate(rows):
            writer.writerow([str(shared_faces / "lfw" / r["path"]), r["gender"], person or r["identity"],
                             f"https://example.org/lfw/{r['path']}", str(30 + i), "White" if i % 2 else "Black"])
        writer.writerow(["missing.jpg", "male", "Nobody", "", "", ""])  # reported, not fatal
        writer.writerow([str(path), "female", "Not A Photo", "", "", ""])  # the CSV itself: not an image
        writer.writerow([str(shared_faces / "lfw" / rows[0]["path"]), "../../etc", "Bad Label", "", "", ""])
    return path


def _run(*args: str):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.fixture
def imported(shared_faces, tmp_path, session_cache_path):
    """A root imported from a labels CSV, then cleaned (no-face photos quarantined)."""
    rows = _lfw_rows(shared_faces)
    labels = _labels_csv(shared_faces, rows, tmp_path / "labels.csv")
    with labels.open("a", newline="") as handle:  # a photo with no face: clean quarantines it
        csv.writer(handle).writerow([str(shared_faces / "facecount" / "dlib" / "examples" / "faces" / "dogs.jpg"),
                                     "male", "Dogs", "", "", ""])
    root = tmp_path / "root"
    first = _run("import", labels, "--root", root)
    assert first.exit_code == 0, first.output
    return root, labels, rows, first


@pytest.mark.slow
def test_import_of_a_labels_csv_gives_a_root_that_clean_build_and_export_accept(imported, session_cache_path, tmp_path):
    root, labels, rows, first = imported
    assert f"imported {2 * PER_GENDER + 1} photos" in first.output and "3 skipped" in first.output
    assert "missing.jpg: cannot read (No such file or directory): skipped" in first.output
    assert "not a readable image" in first.output and "'../../etc' cannot be a folder name" in first.output
    again = _run("import", labels, "--root", root)  # idempotent
    assert "imported 0 photos" in again.output and f"{2 * PER_GENDER + 1} already there" in again.output
    layout = DatasetLayout(root)
    assert len(layout.image_files("female")) == PER_GENDER and len(layout.image_files("male")) == PER_GENDER + 1
    with open_store(None, root) as store:
        record = store.find_images(person_name=rows[0]["identity"])[0]
    assert record["url"].startswith("https://example.org/lfw/") and record["race"] in ("White", "Black")
    assert record["age"] and record["site"] == f"import:{labels.parent.name}" and record["source"] == "import"
    assert not list(Path(record["imported_from"]).parent.glob("*.sqlite"))  # the source folder is untouched

    cleaned = _run("clean", root, "--cache", session_cache_path, "--workers", "1")
    assert cleaned.exit_code == 0, cleaned.output
    assert len(layout.image_files("male")) == PER_GENDER  # the dogs went to quarantine
    built = _run("build", root, "--sizes", "3", "--cache", session_cache_path, "--workers", "1")
    assert built.exit_code == 0, built.output
    assert "g_3: 3 female + 3 male" in built.output and "warning: g_3 holds only 3" in built.output

    datasets = pytest.importorskip("datasets")
    out = tmp_path / "export"
    done = _run("export", root, "--out", out, "--split-by", "person", "--test-fraction", "0.5",
                "--cache", session_cache_path)
    assert done.exit_code == 0, done.output
    loaded = datasets.load_dataset("imagefolder", data_dir=str(out))
    assert set(loaded) == {"train", "test"}
    columns = set(loaded["train"].column_names)
    assert {"image", "label", "person", "site", "source_url", "face_box", "age", "race", "content_hash"} <= columns
    people = {s: set(loaded[s]["person"]) for s in loaded}
    assert people["train"] and people["test"] and not people["train"] & people["test"]
    assert sum(len(loaded[s]) for s in loaded) == 2 * PER_GENDER  # the quarantined dogs stay out
    row = loaded["train"][0]
    assert row["label"] in ("female", "male") and len(row["face_box"]) == 4 and len(row["content_hash"]) == 64
    card = (out / "README.md").read_text()
    header = card.split("---")[1]
    assert "license: other" in header and "task_categories:" in header and "size_categories:" in header
    for heading in ("## Counts", "## Collection", "## Filters and review", "## Known gaps", "## Consent and licensing"):
        assert heading in card
    assert "| no-face | 1 |" in card and "rights stay with their owners" in card

    everything = tmp_path / "with-quarantine"
    done = _run("export", root, "--out", everything, "--format", "csv", "--include-quarantine",
                "--cache", session_cache_path)
    assert done.exit_code == 0, done.output
    loaded = datasets.load_dataset("imagefolder", data_dir=str(everything))
    assert len(loaded["train"]) == 2 * PER_GENDER + 1
    assert "no-face" in loaded["train"]["quarantine_reason"]
    refused = _run("export", root, "--out", everything)
    assert refused.exit_code == 1 and "is not empty: export into a new folder" in refused.output


@pytest.mark.slow
def test_synthetic_people_are_skipped_by_the_identity_rules(shared_faces, tmp_path, session_cache_path):
    """Twelve different people under one name: wrong-person suspects, until the records say the
    person is synthetic (as `anfe demo` marks its site's people)."""
    from workflow.demo import mark_synthetic

    rows = _lfw_rows(shared_faces)
    labels = _labels_csv(shared_faces, [r for r in rows if r["gender"] == "male"], tmp_path / "labels.csv",
                         person="One Name")
    root = tmp_path / "root"
    assert _run("import", labels, "--root", root).exit_code == 0
    before = _run("clean", root, "--dry-run", "--cache", session_cache_path, "--workers", "1")
    assert before.exit_code == 0, before.output
    assert "wrong-person" in before.output
    with open_store(None, root) as store:
        assert mark_synthetic(store) == PER_GENDER
    after = _run("clean", root, "--dry-run", "--cache", session_cache_path, "--workers", "1")
    assert after.exit_code == 0, after.output
    assert "wrong-person" not in after.output and "would move 0 to" in after.output


def test_import_of_label_folders_and_a_facescrub_list(shared_faces, tmp_path):
    rows = _lfw_rows(shared_faces)[: PER_GENDER + 2]
    folders = tmp_path / "folders"
    for r in rows:
        target = folders / r["gender"] / r["identity"] / Path(r["path"]).name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shared_faces / "lfw" / r["path"], target)
    (folders / "female" / "notes.txt").write_text("not a photo")
    done = _run("import", folders, "--root", tmp_path / "a")
    assert done.exit_code == 0, done.output
    assert f"imported {len(rows)} photos" in done.output and "notes.txt: not an image file" in done.output
    with open_store(None, tmp_path / "a") as store:
        assert {r["person_name"] for r in store.find_images()} == {r["identity"] for r in rows}

    listing = tmp_path / "facescrub" / "facescrub_actors.txt"
    (listing.parent / "photos").mkdir(parents=True)
    lines = ["name\timage_id\tface_id\turl\tbbox\tsha256"]
    for i, r in enumerate(rows[:3]):
        shutil.copyfile(shared_faces / "lfw" / r["path"], listing.parent / "photos" / f"{100 + i}.jpg")
        lines.append(f"{r['identity']}\t{i}\t{100 + i}\thttp://example.org/{i}.jpg\t10,10,90,90\tabc")
    lines.append("Nobody Here\t9\t999\thttp://example.org/9.jpg\t1,1,2,2\tabc")
    listing.write_text("\n".join(lines) + "\n")
    done = _run("import", listing, "--root", tmp_path / "b")
    assert done.exit_code == 0, done.output
    assert "imported 3 photos into" in done.output and "(3 male)" in done.output
    assert "no local file for face_id 999 (Nobody Here)" in done.output
    with open_store(None, tmp_path / "b") as store:
        found = store.find_images()
    assert {r["url"] for r in found} == {f"http://example.org/{i}.jpg" for i in range(3)}
    assert all(r["source_bbox"] == [10, 10, 90, 90] for r in found)
    bad = _run("import", tmp_path / "facescrub" / "photos" / "100.jpg", "--root", tmp_path / "c")
    assert bad.exit_code == 1 and "cannot tell what" in bad.output


def test_import_survives_bad_lists(shared_faces, tmp_path):
    """Untrusted lists: a bad bbox keeps the photo, bytes that are not UTF-8 stop with one line."""
    rows = _lfw_rows(shared_faces)[:1]
    listing = tmp_path / "facescrub_actresses.txt"
    shutil.copyfile(shared_faces / "lfw" / rows[0]["path"], tmp_path / "7.jpg")
    listing.write_text("name\timage_id\tface_id\turl\tbbox\tsha256\nAda\t1\t7\thttp://x/7.jpg\tnot,a,box\tabc\n")
    done = _run("import", listing, "--root", tmp_path / "a")
    assert done.exit_code == 0 and "imported 1 photos" in done.output and "(1 female)" in done.output
    assert "unreadable bbox 'not,a,box': photo kept without it" in done.output
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b"path,gender\n\xff\xfe\x00bad,male\n")
    failed = _run("import", broken, "--root", tmp_path / "b")
    assert failed.exit_code == 1 and failed.output.startswith(f"Error: cannot read {broken} as a csv list")
    assert len(failed.output.strip().splitlines()) == 1
