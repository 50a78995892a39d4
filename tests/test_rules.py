"""The cleaning rules as plain functions over analysis values (no dlib, no file moves)."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from anfe.faces.analysis import ImageAnalysis
from anfe.core.dataset import age_of
from anfe.core.errors import DatasetError
from anfe.faces.detection import DetectedFace
from anfe.core.store import by_content_hash
from curation.rules import (
    REASONS,
    RULES,
    CleanRules,
    Item,
    ages_from_csv,
    check_collection,
    check_image,
)


def _face(eye_distance: float = 40.0, side: int = 100) -> DetectedFace:
    half = eye_distance / 2  # points 0-1 and 2-3 are the two eyes; their centres are eye_distance apart
    landmarks = ((50 + half + 5, 50), (50 + half - 5, 50), (50 - half - 5, 50), (50 - half + 5, 50), (50, 80))
    return DetectedFace((0, side, side, 0), landmarks, np.zeros(128), None)


def _item(name: str, gender: str = "male", faces: int = 1, size=(200, 200), phash="0f0f0f0f0f0f0f0f",
          digest: str | None = None, error: str | None = None, age: float | None = None, **face) -> Item:
    analysis = ImageAnalysis(digest or name, size[0], size[1], phash, tuple(_face(**face) for _ in range(faces)),
                             error=error, error_detail="bad bytes" if error else None)
    return Item(Path(f"/d/images/{gender}/{name}.jpg"), gender, analysis, age)


def test_rule_table_matches_the_switches():
    rules = CleanRules()
    assert REASONS == ("unreadable", "too-small", "no-face", "many-faces", "small-face", "under-age",
                       "exact-duplicate", "label-conflict", "near-duplicate", "wrong-person", "mislabelled-person")
    assert all(rules.enabled(r.reason) for r in RULES)
    assert not CleanRules(no_face=False).enabled("no-face")


@pytest.mark.parametrize("item, reason", [
    (_item("a", error="truncated"), "unreadable"),
    (_item("b", size=(50, 300)), "too-small"),
    (_item("c", faces=0), "no-face"),
    (_item("d", faces=3), "many-faces"),
    (_item("e", eye_distance=12), "small-face"),
    (_item("f", age=9), "under-age"),
    (_item("g", age=17), None),
    (_item("h"), None),
])
def test_each_per_image_rule(item, reason):
    verdict = check_image(item, CleanRules())
    assert (verdict.reason if verdict else None) == reason


def test_rules_can_be_switched_off_and_thresholds_moved():
    rules = CleanRules(no_face=False, many_faces=False, unreadable=False, under_age=False)
    for item in (_item("c", faces=0), _item("d", faces=3), _item("a", error="not-an-image"), _item("f", age=3)):
        assert check_image(item, rules) is None
    assert check_image(_item("b", size=(50, 300)), CleanRules(min_width=40)) is None
    assert check_image(_item("e", eye_distance=30), CleanRules(min_eye_distance=35)).reason == "small-face"
    verdict = check_image(_item("e", side=60), CleanRules(min_face_side=80))
    assert verdict.reason == "small-face" and "box side 60" in verdict.detail
    assert check_image(_item("f", age=15), CleanRules(min_age=14)) is None


def test_exact_duplicates_keep_one_and_cross_gender_copies_go_to_review():
    items = [
        _item("x1", digest="same", phash="0000000000000000"),
        _item("x2", digest="same", phash="0000000000000000"),
        _item("y1", digest="twin", gender="female", phash="ffffffffffffffff"),
        _item("y2", digest="twin", gender="male", phash="ffffffffffffffff"),
        _item("z", phash="00ff00ff00ff00ff"),
    ]
    verdicts = check_collection(items, CleanRules(), Path("/d"))
    assert {i: v.reason for i, v in verdicts.items()} == {1: "exact-duplicate", 2: "label-conflict", 3: "label-conflict"}
    assert "images/male/x1.jpg" in verdicts[1].detail
    # without the label-conflict rule the copies under both genders are left alone (no guess)
    verdicts = check_collection(items, CleanRules(label_conflict=False), Path("/d"))
    assert {i: v.reason for i, v in verdicts.items()} == {1: "exact-duplicate"}
    assert check_collection(items, CleanRules(exact_duplicate=False, label_conflict=False, near_duplicate=False)) == {}


def test_near_duplicates_keep_the_largest_and_flag_other_genders():
    items = [
        _item("small", size=(100, 100), phash="0f0f0f0f0f0f0f0f"),
        _item("large", size=(800, 800), phash="0f0f0f0f0f0f0f0e"),
        _item("other", size=(300, 300), phash="f0f0f0f0f0f0f0f0"),
        _item("theirs", gender="female", size=(300, 300), phash="f0f0f0f0f0f0f0f1"),
    ]
    verdicts = check_collection(items, CleanRules(), Path("/d"))
    assert verdicts[0].reason == "near-duplicate" and "large.jpg" in verdicts[0].detail
    assert 1 not in verdicts
    assert verdicts[2].reason == verdicts[3].reason == "label-conflict"
    assert check_collection(items, CleanRules(near_distance=0)) == {}


def test_ages_from_a_utkface_style_csv(tmp_path, utkface_rows):
    rows = [r for r in utkface_rows if r["age"] in ("5", "40")][:2]
    folder = tmp_path / "labels"
    folder.mkdir()
    with (folder / "labels.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, ["path", "gender", "age"])
        writer.writeheader()
        for row in rows:
            shutil.copyfile(row["path"], folder / Path(row["path"]).name)
            writer.writerow({"path": Path(row["path"]).name, "gender": row["gender"], "age": row["age"]})
        writer.writerow({"path": "gone.jpg", "gender": "male", "age": "30"})
    by_hash, by_name = ages_from_csv(folder / "labels.csv")
    assert sorted(by_hash.values()) == sorted(float(r["age"]) for r in rows)
    assert by_name["gone.jpg"] == 30.0


def test_ages_from_records_and_bad_csv(tmp_path):
    records = [{"content_hash": "a", "age": 12}, {"content_hash": "b", "birth_year": 1980, "photo_year": 2010},
               {"content_hash": "c", "birth_year": 1980}, {"content_hash": "d", "age": "n/a"}]
    assert by_content_hash(records, age_of) == {"a": 12.0, "b": 30.0}
    bad = tmp_path / "bad.csv"
    bad.write_text("path,gender\nx.jpg,male\n")
    with pytest.raises(DatasetError, match="'age' column"):
        ages_from_csv(bad)
    with pytest.raises(DatasetError, match="does not exist"):
        ages_from_csv(tmp_path / "missing.csv")
