"""People: identities in the data model, wrong-person photos, mislabelled people, person splits.

The checks run on real LFW embeddings (a small sample of people with known identities, analysed
once through the session's shared cache); a few properties of the maths on plain arrays.
"""

from __future__ import annotations

import asyncio

import html
from pathlib import Path

import numpy as np
import pytest

from anfe.core.dataset import LabelledImage, from_labels_csv
from anfe.core.people import Person, attach_people, person_from_labels, person_from_record
from anfe.models.splits import leak_count, people_on_both_sides, split_by_person
from curation.identity import _loo_median, check_people_labels, person_outlier_distances, same_face_pairs
from testkit.identity_trials import flipped_people_trial, suspicious_first, wrong_person_trial


# -- identity in the data model ------------------------------------------------------------------
def test_person_from_labels_and_records() -> None:
    assert person_from_labels({"identity": "Ann_Lee", "gender": "female"}) == "Ann_Lee"
    assert person_from_labels({"person": " 17 "}) == "17"
    assert person_from_labels({"age": "30"}) is None
    assert person_from_record({"person_id": "42", "person_name": "Ann Lee", "site": "listal"}) == \
        Person("listal:42", "Ann Lee", "listal")
    assert person_from_record({"person_name": "Ann Lee"}) == Person("Ann Lee", "Ann Lee", None)
    assert person_from_record({"content_hash": "ab"}) is None


def test_labels_csv_identity_column(lfw_labels: Path) -> None:
    items = from_labels_csv(lfw_labels)
    assert items[0].person == "AJ_Lamas"
    assert LabelledImage(Path("x.jpg"), "male").person is None  # no identity: as before


def test_attach_people_from_store_records(tmp_path: Path) -> None:
    items = [LabelledImage(tmp_path / "images" / "male" / f"{h}.jpg", "male") for h in ("aa11", "bb22")]
    records = [{"content_hash": "aa11", "person_id": "7", "person_name": "Bo Ek", "site": "filmweb"}]
    out = attach_people(items, records)
    assert out[0].person == "filmweb:7" and out[0].labels["person_name"] == "Bo Ek"
    assert out[0].labels["site"] == "filmweb"
    assert out[1].person is None and out[1] == items[1]


# -- the maths on plain arrays -------------------------------------------------------------------
@pytest.mark.parametrize("n", [2, 3, 4, 7])
def test_leave_one_out_median_matches_brute_force(n: int) -> None:
    x = np.random.default_rng(n).normal(size=(n, 5))
    expected = np.stack([np.median(np.delete(x, i, axis=0), axis=0) for i in range(n)])
    assert np.allclose(_loo_median(x), expected)


def test_outlier_distance_ignores_small_galleries_and_unnamed() -> None:
    x = np.zeros((7, 3))
    x[3] = [1.0, 0, 0]  # the odd one out does not pull the median of the others
    d = person_outlier_distances(x, ["a", "a", "a", "a", "b", "b", None])
    assert d[3] == pytest.approx(1.0) and d[0] == pytest.approx(0.0)
    assert np.isnan(d[4:]).all()
    assert suspicious_first(d) == [3, 0, 1, 2]


# -- on real faces (LFW) -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lfw_sample(lfw_labels: Path, session_cache_path: Path):
    """About 200 LFW photos: 10 men and 10 women with 4-6 photos each (the galleries), and
    single photos of 40 men and 40 women (donors for planting); embeddings of one-face photos."""
    from anfe.faces.batch import analyse_paths
    from anfe.faces.cache import AnalysisCache
    from anfe.core.config import AnalysisParams

    items = from_labels_csv(lfw_labels)
    people: dict[str, list[LabelledImage]] = {}
    for item in items:
        people.setdefault(item.person, []).append(item)
    chosen: list[LabelledImage] = []
    for gender in ("male", "female"):
        mine = [p for p, photos in sorted(people.items()) if photos[0].gender == gender]
        galleries = [p for p in mine if 4 <= len(people[p]) <= 8][::3][:10]
        singles = [p for p in mine if len(people[p]) == 1][::7][:40]
        chosen += [i for p in galleries for i in people[p][:6]] + [people[p][0] for p in singles]
    params = AnalysisParams()
    with AnalysisCache(session_cache_path, params.cache_key) as cache:
        found, _ = analyse_paths([i.path for i in chosen], params, cache, 2, progress=False)
    rows = [(found[str(i.path)].single_embedding, i) for i in chosen]
    rows = [(v, i) for v, i in rows if v is not None]
    return (np.stack([v for v, _ in rows]), [i.person for _, i in rows], [i.gender for _, i in rows],
            [found[str(i.path)].content_hash for _, i in rows], [i for _, i in rows])


@pytest.mark.slow
def test_planted_wrong_person_photos_lead_the_queue(lfw_sample) -> None:
    x, persons, genders, _, _ = lfw_sample
    runs = [wrong_person_trial(x, persons, genders, 0.1, 0.2, seed=s) for s in range(5)]
    recall = sum(r.found for r in runs) / sum(r.planted for r in runs)
    assert sum(r.planted for r in runs) >= 20
    assert recall >= 0.7, [r for r in runs]
    # the default threshold: most planted photos are beyond it, few of a person's own photos are
    assert np.mean([r.planted_beyond_share for r in runs]) >= 0.6
    assert np.mean([r.genuine_beyond_share for r in runs]) <= 0.1


@pytest.mark.slow
def test_flipped_people_are_flagged(lfw_sample) -> None:
    x, persons, genders, _, _ = lfw_sample
    runs = [flipped_people_trial(x, persons, genders, 0.1, seed=s) for s in range(5)]
    flipped, found = sum(r.flipped for r in runs), sum(r.found for r in runs)
    assert flipped >= 10 and found >= 0.8 * flipped
    assert sum(r.false_flags for r in runs) <= 0.1 * sum(r.correct for r in runs)


@pytest.mark.slow
def test_correct_people_pass_the_label_check(lfw_sample) -> None:
    x, persons, genders, _, _ = lfw_sample
    checks = check_people_labels(x, genders, persons)
    assert len(checks) >= 15  # people with 3 or more one-face photos
    assert sum(c.flagged for c in checks) <= 1


@pytest.mark.slow
def test_same_face_under_two_people(lfw_sample) -> None:
    x, persons, _, _, _ = lfw_sample
    assert same_face_pairs(x, persons) == []  # different people: never one face
    copied = np.vstack([x, x[:1] + 1e-3])
    pairs = same_face_pairs(copied, [*persons, "someone else"])
    assert [(p.first, p.second) for p in pairs] == [(0, len(x))]


@pytest.mark.slow
def test_person_split_keeps_people_on_one_side_and_removes_the_leak(lfw_sample) -> None:
    x, persons, genders, hashes, rows = lfw_sample
    person_of = dict(zip(hashes, persons))
    by_gender: dict[str, list[str]] = {}
    for h, g in zip(hashes, genders):
        by_gender.setdefault(g, []).append(h)
    test = split_by_person(by_gender, person_of, 0.3, seed=1)
    held = {h for part in test.values() for h in part}
    train = [h for h in hashes if h not in held]
    assert people_on_both_sides(held, train, person_of) == set()
    for gender, part in test.items():
        assert abs(len(part) - 0.3 * len(set(by_gender[gender]))) <= 6  # whole people, about 30%
    assert split_by_person(by_gender, person_of, 0.3, seed=1) == test  # reproducible
    index = {h: i for i, h in enumerate(hashes)}
    te, tr = [index[h] for h in held], [index[h] for h in train]
    from anfe.models.splits import split_test

    photo = {h for part in split_test(by_gender, 0.3, 1).values() for h in part}
    pte, ptr = [index[h] for h in photo], [index[h] for h in hashes if h not in photo]
    assert leak_count(x[te], x[tr]) < leak_count(x[pte], x[ptr])


# -- person-disjoint builds and honest evaluation through the CLI ---------------------------------
@pytest.mark.slow
def test_build_splits_by_person_and_evaluate_reports_people_and_leak(lfw_sample, session_cache_path,
                                                                     tmp_path: Path) -> None:
    import csv
    import json

    from click.testing import CliRunner

    from anfe.cli.commands import build, evaluate
    from anfe.core.store import open_store

    x, persons, genders, hashes, rows = lfw_sample
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(["path", "gender", "identity"])
        out.writerows([str(i.path), i.gender, i.person] for i in rows)
    db = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    common = ["--cache", str(session_cache_path), "--workers", "1", "--db", db]
    for by, prefix in (("person", "p"), ("photo", "f")):
        result = CliRunner().invoke(build, [str(labels), "--sizes", "all", "--test-fraction", "0.3", "--split-by", by,
                                            "--prefix", prefix, *common])
        assert result.exit_code == 0, result.output
        assert f"held out for testing (by {by})" in result.output
    with open_store(db) as store:
        by_person, by_photo = store.get_build("p_all"), store.get_build("f_all")
    person_of = dict(zip(hashes, persons))
    for doc, mixed in ((by_person, False), (by_photo, True)):
        test = [h for part in doc["split"]["test"].values() for h in part]
        members = [h for part in doc["members"].values() for h in part]
        assert bool(people_on_both_sides(test, members, person_of)) is mixed
    assert by_person["split"]["by"] == "person" and sum(by_person["split"]["test_people"].values()) >= 10
    reports = {}
    for build_id in ("p_all", "f_all"):
        result = CliRunner().invoke(evaluate, [build_id, "--json", "--no-baselines", "--out", str(tmp_path / build_id),
                                               "--db", db, "--cache", str(session_cache_path), "--workers", "1"])
        assert result.exit_code == 0, result.output
        assert "test people, per person balanced" in result.stderr and "leak " in result.stderr
        reports[build_id] = json.loads(result.stdout)[0]
    person, photo = reports["p_all"], reports["f_all"]
    assert person["people"]["test_people"] == sum(by_person["split"]["test_people"].values())
    assert person["leak"]["count"] < photo["leak"]["count"]
    assert "Per person" in (tmp_path / "p_all" / "index.html").read_text(encoding="utf-8")


# -- anfe clean: the people rules on a crawled-style dataset root -------------------------------
@pytest.fixture(scope="module")
def cleaned_root(lfw_sample, session_cache_path, tmp_path_factory):
    """A root as a crawl leaves it (files named by hash, records with person_id/person_name/site):
    two galleries get photos of other women/men, one man is filed under female; then cleaned."""
    import shutil

    from anfe.faces.cache import AnalysisCache
    from anfe.core.config import AnalysisParams
    from anfe.core.layout import content_file_name
    from anfe.core.store import open_store
    from curation.clean import clean
    from curation.rules import CleanRules

    x, persons, genders, hashes, rows = lfw_sample
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(persons):
        groups.setdefault(p, []).append(i)
    galleries = {g: [p for p, idx in groups.items() if len(idx) >= 4 and genders[idx[0]] == g] for g in ("male", "female")}
    singles = {g: [idx[0] for p, idx in groups.items() if len(idx) == 1 and genders[idx[0]] == g] for g in ("male", "female")}
    flipped = galleries["male"][0]
    planted = {singles["female"][0]: galleries["female"][0], singles["male"][0]: galleries["male"][1],
               singles["male"][1]: galleries["male"][2]}
    root = tmp_path_factory.mktemp("people") / "data"
    records = []
    for i, item in enumerate(rows):
        person = planted.get(i, persons[i])
        gender = "female" if person == flipped else genders[i]
        target = root / "images" / gender / content_file_name(hashes[i], ".jpg")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(item.path, target)
        records.append({"content_hash": hashes[i], "path": target.relative_to(root).as_posix(), "gender": gender,
                        "site": "demo", "person_id": person.lower(), "person_name": person.replace("_", " ")})
    params = AnalysisParams()
    with open_store(None, root) as store:
        for record in records:
            store.upsert_image(record)
        with AnalysisCache(session_cache_path, params.cache_key) as cache:
            report = clean(root, CleanRules(), params, cache, workers=1, store=store, progress=False)
    return {"root": root, "report": report, "flipped": flipped, "people": set(persons), "flipped_hashes": {hashes[i] for i in groups[flipped]},
            "planted": {hashes[i] for i in planted}, "planted_into": {hashes[i]: p for i, p in planted.items()}}


@pytest.mark.slow
def test_clean_sends_wrong_person_photos_and_flipped_people_to_review(cleaned_root) -> None:
    from anfe.core.layout import DatasetLayout
    from anfe.core.store import open_store
    from curation import moves, quarantine as q

    report, root = cleaned_root["report"], cleaned_root["root"]
    found = {r.content_hash: r for r in report.rejections}
    wrong = {h for h, r in found.items() if r.reason == "wrong-person"}
    mislabelled = {h for h, r in found.items() if r.reason == "mislabelled-person"}
    assert mislabelled == cleaned_root["flipped_hashes"]
    assert len(wrong & cleaned_root["planted"]) >= 2
    assert len(wrong - cleaned_root["planted"]) <= 3  # a few odd photos of the right person
    reviewing = {e.content_hash for e in q.list_quarantined(DatasetLayout(root)) if e.status == moves.STATUS_REVIEW}
    assert wrong | mislabelled <= reviewing  # sent to review, not quarantined outright
    sample = next(r for r in report.rejections if r.reason == "mislabelled-person")
    assert sample.moved_to is not None and sample.moved_to.parent.parent.name == "mislabelled-person"
    assert "look male, not female" in sample.detail
    with open_store(None, root) as store:
        assert store.get_image(sample.content_hash)["status"] == moves.STATUS_REVIEW


# -- review by person ----------------------------------------------------------------------------
def _review_state(root: Path, cache_path: Path):
    from anfe.faces.cache import AnalysisCache
    from anfe.core.config import AnalysisParams
    from anfe.core.layout import DatasetLayout
    from anfe.core.store import open_store
    from curation import decisions, queue
    from curation.queue import people_views

    layout = DatasetLayout(root)
    params = AnalysisParams()
    with open_store(None, root) as store, AnalysisCache(cache_path, params.cache_key) as cache:
        review_log = decisions.read_log(store)
        records = {r["content_hash"]: r for r in store.find_images()}
        paths = layout.image_files() + [i.path for i in queue.flagged_items(layout, records)]
        analyses = queue.load_analyses(paths, params, cache)
        views = people_views(layout, analyses, review_log, records)
        _same_as_the_catalog(layout, store, params, cache, views)
        return layout, views


def _same_as_the_catalog(layout, store, params, cache, views) -> None:
    """The by-person view the page reads (worked out once in the catalog sync, read through the
    store's indexes) holds the same people, order, photos, marks and suspicions as the live check."""
    from curation import catalog

    catalog.sync(layout, store, params, cache)
    listed = catalog.people_page(store, 0, 10_000).people
    assert [s.key for s in listed] == [v.key for v in views]
    assert [(s.photos, s.marked, s.suspect, s.gender) for s in listed] == \
        [(len(v.items), len(v.marked), v.suspect, v.gender) for v in views]
    for view in views:
        stored = catalog.person_view(layout, store, view.key)
        assert stored is not None and (stored.name, stored.site, stored.suspect) == (view.name, view.site, view.suspect)
        assert [(i.key, i.gender, i.path) for i in stored.items] == [(i.key, i.gender, i.path) for i in view.items]
        assert stored.marked == view.marked


@pytest.mark.slow
def test_review_by_person_marks_outliers_and_moves_a_whole_person_undoably(cleaned_root, session_cache_path,
                                                                             tmp_path: Path) -> None:
    import shutil

    from anfe.core.store import open_store
    from curation import decisions
    from curation.decisions import move_person, reject_marked

    root = tmp_path / "data"
    shutil.copytree(cleaned_root["root"], root)
    layout, views = _review_state(root, session_cache_path)
    flipped_name = cleaned_root["flipped"].replace("_", " ")
    first = views[0]
    assert first.name == flipped_name and first.suspect and first.gender == "female"
    assert {i.content_hash for i in first.items} == cleaned_root["flipped_hashes"]
    assert all(i.person == flipped_name and i.source == "demo" for i in first.items)  # tiles: name and site
    marked_hashes = {i.content_hash for v in views for i in v.items if i.key in v.marked}
    assert len(marked_hashes & cleaned_root["planted"]) >= 2
    with open_store(None, root) as store:
        moved = move_person(layout, store, first, "male", "tester")
        assert len(moved.logged) == len(first.items) and not moved.problems
        assert {p.stem for p in layout.image_files("male")} >= cleaned_root["flipped_hashes"]
        target = next(v for v in views if v.marked and not v.suspect)
        rejected = reject_marked(layout, store, target, "tester")
        assert len(rejected.logged) == len(target.marked)
        assert all(d["reason"] == "wrong-person" for d in rejected.logged)
        # both are logged decisions, undone a batch at a time
        decisions.undo(layout, store, "tester", whole_batch=True)
        decisions.undo(layout, store, "tester", whole_batch=True)
    _, again = _review_state(root, session_cache_path)
    assert again[0].name == flipped_name and {i.gender for i in again[0].items} == {"female"}
    assert {i.content_hash for i in again[0].items} == cleaned_root["flipped_hashes"]


def _page(argv):
    from curation.review_app import render

    render(argv)


@pytest.mark.slow
def test_review_page_by_person(cleaned_root, session_cache_path, tmp_path: Path) -> None:
    import shutil

    from streamlit.testing.v1 import AppTest

    root = tmp_path / "data"
    shutil.copytree(cleaned_root["root"], root)
    at = AppTest.from_function(_page, args=([str(root), "--cache", str(session_cache_path)],), default_timeout=120)
    at.run()
    assert not at.exception and not at.error
    names = {c.label for c in at.checkbox if str(c.key or "").startswith("sel-")}
    people = {p.replace("_", " ") for p in cleaned_root["people"]}
    assert names and names <= people  # tiles are labelled with the person's name, not the hash
    at.radio(key="view").set_value("by person").run()
    assert not at.exception
    flipped = cleaned_root["flipped"].replace("_", " ")
    assert at.subheader[0].value.startswith(f"{flipped} (demo): female")
    assert "look male, not female" in html.unescape(at.warning[0].value)  # markdown source: escaped
    at.button(key="person-move").click().run()
    assert not at.exception
    assert at.success[0].value.startswith(f"Moved {flipped} to male")
    male = {p.stem for p in (root / "images" / "male").iterdir()}
    assert cleaned_root["flipped_hashes"] <= male
    at.button(key="undo-batch").click().run()
    assert at.success[0].value.startswith("Undid the last batch")
    assert not cleaned_root["flipped_hashes"] & {p.stem for p in (root / "images" / "male").iterdir()}
    _, views = _review_state(root, session_cache_path)
    target = next(v for v in views if v.marked and not v.suspect)
    at.selectbox(key="person").set_value(target.key).run()
    assert at.subheader[0].value.startswith(f"{target.name} (demo)")
    assert sum("**marked**" in c.value for c in at.caption) == len(target.marked)
    at.button(key="person-reject").click().run()
    assert at.success[0].value.startswith(f"Rejected the marked photos of {target.name} (wrong-person)")
    from anfe.core.layout import DatasetLayout
    from curation import moves, quarantine as q

    rejected = {e.content_hash for e in q.list_quarantined(DatasetLayout(root), "wrong-person")
                if e.status == moves.STATUS_QUARANTINED}
    assert {i.content_hash for i in target.items if i.key in target.marked} <= rejected


# -- the demo site with planted label noise, crawled, cleaned and reviewed ------------------------
@pytest.mark.slow
def test_demo_site_planted_noise_is_found_by_clean_and_the_review_page(lfw_labels, session_cache_path,
                                                                        tmp_path: Path) -> None:
    """Generate the site with wrong-person photos and a flipped person, crawl it for real, clean:
    every planted photo leaves images/ (the wrong-person check catches those with one face; a
    planted photo with two faces goes as many-faces first), the flipped person goes to review as a
    whole, and the by-person view puts them first."""
    import os
    import subprocess
    import sys

    from anfe.faces.cache import AnalysisCache
    from anfe.core.config import AnalysisParams
    from anfe.core.store import open_store
    from curation.clean import clean
    from curation.rules import CleanRules
    from scraper.demosite import DemoServer, generate_site

    manifest = generate_site(lfw_labels, tmp_path / "site", people=8, photos=4, wrong_person=2, flip_people=1)
    planted = manifest["spiders"]["listal"]["planted"]
    assert len(planted["wrong_person"]) == 2 and len(planted["flipped_people"]) == 1
    flipped = planted["flipped_people"][0]
    assert flipped["person"] in manifest["spiders"]["listal"]["people"][flipped["listed_as"]]
    root = tmp_path / "data"
    with DemoServer(tmp_path / "site") as server:
        done = subprocess.run(
            [sys.executable, "-m", "anfe", "crawl", "listal", "--root", str(root), "--fast",
             "-a", "profile=demo-listal", "-a", f"base_url={server.base_url}"],
            capture_output=True, text=True, timeout=300, env={**os.environ, "ANFE_CACHE": str(session_cache_path)})
    assert done.returncode == 0, done.stderr[-2000:]
    params = AnalysisParams()
    with open_store(None, root) as store, AnalysisCache(session_cache_path, params.cache_key) as cache:
        report = clean(root, CleanRules(), params, cache, workers=2, store=store, progress=False)
        by_hash = {r.content_hash: r for r in report.rejections}
        for entry in planted["wrong_person"]:
            rejection = by_hash[entry["sha256"]]
            assert rejection.reason in ("wrong-person", "many-faces", "no-face"), rejection
            if rejection.reason == "wrong-person":
                assert store.get_image(entry["sha256"])["status"] == "review"
        assert any(by_hash[e["sha256"]].reason == "wrong-person" for e in planted["wrong_person"])
        stored = [h for h in flipped["sha256"] if store.get_image(h)]
        assert stored and all(by_hash[h].reason in ("mislabelled-person", "many-faces", "no-face") for h in stored)
        assert sum(by_hash[h].reason == "mislabelled-person" for h in stored) >= 3
        wrong = {h for h, r in by_hash.items() if r.reason in ("wrong-person", "mislabelled-person")}
        assert wrong <= {e["sha256"] for e in planted["wrong_person"]} | set(flipped["sha256"])  # no false alarm
    _, views = _review_state(root, session_cache_path)
    assert views[0].name == flipped["person"] and views[0].suspect


def test_site_generate_plants_and_says_what(lfw_labels, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from anfe.cli.app import cli

    result = CliRunner().invoke(cli, ["site", "generate", "--from", str(lfw_labels), "--out", str(tmp_path / "s"),
                                      "--people", "4", "--plant-wrong-person", "1", "--flip-people", "1"])
    assert result.exit_code == 0, result.output
    assert "planted: a photo of " in result.output and " listed as " in result.output
    result = CliRunner().invoke(cli, ["site", "generate", "--from", str(lfw_labels), "--out", str(tmp_path / "t"),
                                      "--people", "2", "--plant-wrong-person", "2", "--flip-people", "1"])
    assert result.exit_code == 1
    assert "cannot plant 2 wrong-person photos and flip 1 people among 2 people: use more --people" in result.output


@pytest.mark.slow
def test_one_photo_in_two_galleries_is_recorded_by_the_crawl_and_sent_to_review(lfw_sample, session_cache_path,
                                                                                 tmp_path: Path) -> None:
    """The crawl stores the photo once, records the second person it was found under; clean sends it
    to review as wrong-person, naming both."""
    from scrapy.exceptions import DropItem
    from scrapy.utils.test import get_crawler

    from anfe.faces.cache import AnalysisCache
    from anfe.core.config import AnalysisParams
    from anfe.core.store import open_store
    from curation.clean import clean
    from curation.rules import CleanRules
    from scraper.items import PhotoItem
    from scraper.pipelines import DatasetWriterPipeline
    from scraper.spiders import UrlListSpider

    _, _, _, hashes, rows = lfw_sample
    listed = tmp_path / "list.txt"
    listed.write_text("")
    crawler = get_crawler(UrlListSpider, {"DATASET_ROOT": str(tmp_path / "data")})
    crawler.spider = UrlListSpider.from_crawler(crawler, file=str(listed))
    writer = DatasetWriterPipeline(crawler)
    writer.open_spider()
    body = rows[0].path.read_bytes()
    try:
        for n, (pid, name) in enumerate([("ann", "Ann Lee"), ("bo", "Bo Ek"), ("bo", "Bo Ek")]):
            photo = PhotoItem(url=f"http://site/{n}.jpg", body=body, site="demo", gender=rows[0].gender,
                              person_id=pid, person_name=name, page_url=f"http://site/{pid}")
            try:
                asyncio.run(writer.process_item(photo))
            except DropItem as exc:
                assert str(exc).startswith("exact-duplicate")
    finally:
        writer.close_spider()
    root = tmp_path / "data"
    params = AnalysisParams()
    with open_store(None, root) as store, AnalysisCache(session_cache_path, params.cache_key) as cache:
        (record,) = store.find_images()
        assert [p["person_name"] for p in record["other_people"]] == ["Bo Ek"]  # once, not the first person
        report = clean(root, CleanRules(), params, cache, workers=1, store=store, progress=False)
    (rejection,) = report.rejections
    assert rejection.reason == "wrong-person" and rejection.content_hash == hashes[0]
    assert rejection.detail == "the same photo is filed under Ann Lee (demo) and also under Bo Ek (demo)"
