"""Centroid builds on real UTKFace photos: ids, provenance, seeded draws, the split, k-means, bad input."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest

from anfe.faces.batch import analyse_paths
from anfe.models.builds import BuildOptions, apply_filters, build_id, build_sort_key, builds_from_analyses, fingerprint, make_builds, parse_sizes, parse_where, pool_from_analyses, pool_from_cache, summary
from anfe.models.splits import split_test
from anfe.faces.cache import AnalysisCache
from anfe.core.config import AnalysisParams
from anfe.core.dataset import LabelledImage
from anfe.core.errors import DatasetError
from anfe.core.store import open_store

PARAMS = AnalysisParams()
PER_GENDER = 20


@pytest.fixture(scope="module")
def items(utkface_adult_items) -> list[LabelledImage]:
    """A few dozen adult UTKFace photos per gender, spread over the file list (ages, races)."""
    return utkface_adult_items


@pytest.fixture(scope="module")
def analysed(items, session_cache_path):
    with AnalysisCache(session_cache_path, PARAMS.cache_key) as cache:
        analyses, _ = analyse_paths([i.path for i in items], PARAMS, cache, workers=2, progress=False)
    return analyses


def _builds(items, analysed, **options):
    return builds_from_analyses(items, analysed, BuildOptions(**options), PARAMS, {"source": "utkface-sample"})


def test_ids_and_provenance(items, analysed):
    made = _builds(items, analysed, sizes=(8, "all"), seed=3)
    assert [b["id"] for b in made] == ["g_8", "g_all"]
    small, whole = made
    assert small["counts"] == {"female": 8, "male": 8} and small["seed"] == 3 and small["variant"] == "mean"
    assert {g: len(m) for g, m in small["members"].items()} == small["counts"]
    every = [h for hs in small["members"].values() for h in hs]
    assert small["fingerprint"] == hashlib.sha256("\n".join(sorted(every)).encode()).hexdigest()
    assert small["embedding_model"] == json.loads(json.dumps(PARAMS.embedding_model))
    assert small["dataset"]["source"] == "utkface-sample" and small["dataset"]["images"] == len(items)
    assert small["created"] and small["split"] is None
    usable = whole["dataset"]["usable"]
    assert whole["counts"] == usable and sum(usable.values()) + sum(whole["dataset"]["skipped"].values()) == len(items)
    # Plain documents: json round-trips exactly, no numpy type anywhere.
    assert json.loads(json.dumps(small)) == small
    assert type(small["centroids"]["male"][0][0]) is float
    assert set(small["members"]["male"]) <= set(whole["members"]["male"])  # nested draws
    assert "members" not in summary(small) and summary(small)["centroids_per_gender"] == {"female": 1, "male": 1}


def test_centroid_is_the_mean_of_the_members(items, analysed):
    (made,) = _builds(items, analysed, sizes=(10,), seed=1)
    by_hash = {a.content_hash: a.single_embedding for a in analysed.values()}
    for gender, hashes in made["members"].items():
        expected = np.mean([by_hash[h] for h in hashes], axis=0)
        assert np.allclose(made["centroids"][gender][0], expected, atol=1e-12)


def test_seed_decides_the_members(items, analysed):
    first = _builds(items, analysed, sizes=(10,), seed=1)[0]
    again = _builds(items, analysed, sizes=(10,), seed=1)[0]
    other = _builds(items, analysed, sizes=(10,), seed=2)[0]
    assert first["members"] == again["members"] and first["fingerprint"] == again["fingerprint"]
    assert first["members"] != other["members"] and first["fingerprint"] != other["fingerprint"]


def test_held_out_split_is_recorded_and_reproducible(items, analysed):
    made = _builds(items, analysed, sizes=("all",), test_fraction=0.3, split_seed=7)[0]
    again = _builds(items, analysed, sizes=("all",), test_fraction=0.3, split_seed=7)[0]
    split = made["split"]
    assert split == again["split"] and split["seed"] == 7 and split["test_fraction"] == 0.3
    assert split["test_counts"] == {"female": round(0.3 * PER_GENDER), "male": round(0.3 * PER_GENDER)}
    held = {h for hs in split["test"].values() for h in hs}
    assert split["fingerprint"] == fingerprint(held)
    assert not held & {h for hs in made["members"].values() for h in hs}
    # Independent of the order of the images.
    assert split_test({"a": ["3", "1", "2"]}, 0.34, 1) == split_test({"a": ["2", "3", "1"]}, 0.34, 1)


def test_kmeans_variant_has_k_centroids_per_gender(items, analysed):
    (made,) = _builds(items, analysed, sizes=(12,), variant="kmeans", k=3, seed=0)
    assert made["id"] == "g_12_k3" == build_id(12, "kmeans", 3) and made["k"] == 3
    assert {g: len(c) for g, c in made["centroids"].items()} == {"female": 3, "male": 3}
    assert all(len(v) == 128 for c in made["centroids"].values() for v in c)
    with pytest.raises(DatasetError, match="needs at least 30 images per gender"):
        _builds(items, analysed, sizes=(12,), variant="kmeans", k=30)


def test_size_larger_than_available_fails_or_clamps(items, analysed, caplog):
    with pytest.raises(DatasetError, match=r"size 500 is more than the usable single-face images \(female \d+, male \d+\)$"):
        _builds(items, analysed, sizes=(500,))
    with pytest.raises(DatasetError, match=r"^size 500 is more than the usable single-face images left for training "
                                           r"after holding out female \d+, male \d+ for testing \(female \d+, male \d+\)$"):
        _builds(items, analysed, sizes=(500,), test_fraction=0.3)
    with caplog.at_level(logging.WARNING):
        made = _builds(items, analysed, sizes=(500, 400, 5), clamp=True)
    smallest = min(made[0]["dataset"]["usable"].values())
    # the id says what the build holds: the smaller gender's count, for every gender; 400 clamps to the same build
    assert [b["id"] for b in made] == [f"g_{smallest}", "g_5"]
    assert made[0]["counts"] == {"female": smallest, "male": smallest} and made[0]["size"] == smallest
    assert f"size 500 clamped to {smallest} per gender" in caplog.text and "appears twice" in caplog.text


def test_build_ids_sort_as_numbers():
    ids = ["g_15", "g_all", "g_5", "g_10_k4", "g_10", "g_100"]
    assert sorted(ids, key=build_sort_key) == ["g_5", "g_10", "g_10_k4", "g_15", "g_100", "g_all"]


def test_saved_in_the_store_and_read_back(items, analysed, store_backend_uri):
    made = _builds(items, analysed, sizes=(5, 6), seed=4, test_fraction=0.3)
    with open_store(store_backend_uri) as store:  # each backend: plain BSON/JSON, no numpy
        for doc in made:
            store.save_build(doc)
        assert store.get_build("g_6") == made[1]
        assert [b["id"] for b in store.list_builds()] == ["g_5", "g_6"]


def test_make_builds_analyses_through_the_cache(items, session_cache_path):
    with AnalysisCache(session_cache_path, PARAMS.cache_key) as cache:
        made = make_builds(items, BuildOptions(sizes=(6,), seed=9), PARAMS, cache, 1, progress=False).builds
        assert made[0]["id"] == "g_6"
        labels = {h: g for g, hs in made[0]["members"].items() for h in hs}
        pool = pool_from_cache({**labels, "0" * 64: "male"}, cache)
    assert pool.counts() == {"female": 6, "male": 6}
    assert [s.reason for s in pool.skipped] == ["not-cached"]


def test_unreadable_files_are_recorded_and_kept(items, analysed, tmp_path):
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    fake = tmp_path / "page.jpg"
    fake.write_bytes(b"<html>login</html>")
    truncated = tmp_path / "half.jpg"
    data = items[0].path.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    bad = [LabelledImage(p, "male") for p in (empty, fake, truncated)]
    more, _ = analyse_paths([p.path for p in bad], PARAMS, None, workers=1, progress=False)
    pool = pool_from_analyses(items + bad, {**analysed, **more})
    reasons = {Path(s.path).name: s.reason for s in pool.skipped}
    assert reasons["empty.jpg"] == "empty-file" and reasons["page.jpg"] == "not-an-image"
    assert reasons["half.jpg"] == "truncated"
    assert empty.exists() and fake.exists() and truncated.exists()  # nothing deleted


def test_no_usable_face_for_a_gender_is_a_clear_error(items, analysed):
    males = [i for i in items if i.gender == "male"]
    with pytest.raises(DatasetError, match="at least two genders"):
        _builds(males, analysed, sizes=(5,))


def test_sizes_and_filters():
    assert parse_sizes("1000, 2K,all,1000") == [1000, 2000, "all"]
    with pytest.raises(DatasetError, match="cannot read the size 'lots'"):
        parse_sizes("lots")
    rows = [LabelledImage(Path(f"{a}.jpg"), "male", {"age": str(a), "race": r})
            for a, r in ((5, "Asian"), (17, "White"), (40, "asian"))]
    assert [i.labels["age"] for i in apply_filters(rows, [parse_where("age>=17")])] == ["17", "40"]
    assert [i.labels["age"] for i in apply_filters(rows, [parse_where("race=Asian")])] == ["5", "40"]
    with pytest.raises(DatasetError, match="no image has a 'height' label"):
        apply_filters(rows, [parse_where("height>2")])
    with pytest.raises(DatasetError, match="cannot read the filter 'age'"):
        parse_where("age")
