"""The review page's catalog side without a browser: the once-per-session sync, one page per query,
filters, progress from group counts, cached thumbnails, the large view's words, boxes and reference
photos, and the safe defaults' labels. Real photos, real store, real analysis cache."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from anfe.faces.cache import AnalysisCache
from anfe.core.config import AnalysisParams
from anfe.core.store import open_store
from curation import catalog, decisions, large_view, moves, quarantine, thumbnails
from curation.durations import in_words
from curation.views import PersonView, QueueItem
from testkit.review import make_review_dataset

PARAMS = AnalysisParams()


@pytest.fixture
def synced(utkface_rows, tmp_path, session_cache_path):
    """A dataset of 7 photos per gender, every photo said to show one of two people of two sites."""
    yield from _synced(utkface_rows, tmp_path, session_cache_path, None)


@pytest.fixture
def synced_any(utkface_rows, tmp_path, session_cache_path, store_backend_uri):
    """:func:`synced` with the catalog on each backend (embedded, MongoDB)."""
    yield from _synced(utkface_rows, tmp_path, session_cache_path, store_backend_uri)


def _synced(utkface_rows, tmp_path, session_cache_path, uri):
    layout = make_review_dataset(utkface_rows, tmp_path / "data", per_gender=7)
    with open_store(uri, layout.root) as store, AnalysisCache(session_cache_path, PARAMS.cache_key) as cache:
        for n, path in enumerate(sorted(layout.image_files())):
            store.upsert_image({"content_hash": path.stem, "person_id": str(n % 2), "site": ("a.test", "b.test")[n % 2],
                                "person_name": ("Zoë Kravitz-Longname", "Kathleen Kennedy Townsend")[n % 2]})
        report = catalog.sync(layout, store, PARAMS, cache)
        yield layout, store, cache, report


def test_sync_records_every_photo_and_scores_once(synced_any) -> None:
    layout, store, cache, report = synced_any
    assert report.photos == 14 and report.updated == 14 and report.scored == 14 and report.people
    for path in layout.image_files():
        record = store.get_image(path.stem)
        assert (record["status"], record["gender"], record["path"]) == (
            "active", path.parent.name, f"images/{path.parent.name}/{path.name}")
        assert isinstance(record["faces"], int)
        assert (record["faces"] == 1) == isinstance(record.get("suspicion"), float)  # one face: scored
    again = catalog.sync(layout, store, PARAMS, cache)
    assert (again.updated, again.scored) == (0, 0)  # nothing changed: no write, no scoring
    gone = layout.image_files("female")[0]
    gone.rename(layout.root / "elsewhere.jpg")  # by hand: the folders win
    assert catalog.sync(layout, store, PARAMS, cache).scored == 13
    assert store.get_image(gone.stem)["status"] == catalog.STATUS_MISSING


def test_a_page_is_one_sorted_query_and_filters_narrow_it(synced_any) -> None:
    layout, store, _, _ = synced_any
    first = catalog.gender_page(layout, store, "female", "suspicion", 0, 4)
    rest = catalog.gender_page(layout, store, "female", "suspicion", 1, 4)
    assert (first.total, first.pages, len(first.items), len(rest.items)) == (7, 2, 4, 3)
    scores = [i.score for i in first.items + rest.items]
    assert scores == sorted(scores, reverse=True)
    assert catalog.gender_page(layout, store, "female", "suspicion", 99, 4).page == 1  # clamped
    names = [i.content_hash for i in catalog.gender_page(layout, store, "male", "filename", 0, 10).items]
    assert names == sorted(names)
    kathleen = catalog.gender_page(layout, store, "female", "suspicion", 0, 10, filters=catalog.Filters(person="kENNEDY"))
    assert kathleen.total and {i.person for i in kathleen.items} == {"Kathleen Kennedy Townsend"}
    site = catalog.gender_page(layout, store, "female", "suspicion", 0, 10, filters=catalog.Filters(site="a.test"))
    assert {i.source for i in site.items} == {"a.test"} and site.total + kathleen.total == 7
    none = catalog.gender_page(layout, store, "female", "suspicion", 0, 10, filters=catalog.Filters(person="(.*"))
    assert none.total == 0 and none.items == []  # the search is text, never a pattern


def test_progress_follows_decisions_and_undo(synced_any) -> None:
    layout, store, _, _ = synced_any
    assert catalog.progress(store).left == {"female": 7, "male": 7}
    page = catalog.gender_page(layout, store, "female", "suspicion", 0, 3)
    decisions.decide(layout, store, page.items[:2], "keep", "alice")
    decisions.decide(layout, store, page.items[2:3], "reject", "bob", reason="not-a-photo")
    progress = catalog.progress(store)
    assert progress.left == {"female": 4, "male": 7} and progress.reviewed == {"female": 3}
    assert progress.total == {"female": 6, "male": 7} and progress.reviewers == {"alice": 2, "bob": 1}
    assert progress.line() == "female: 3 reviewed, 4 left · male: 0 reviewed, 7 left"
    assert progress.reviewers_line() == "alice 2, bob 1"
    assert catalog.gender_page(layout, store, "female", "suspicion", 0, 10).total == 4
    assert catalog.gender_page(layout, store, "female", "suspicion", 0, 10, show_reviewed=True).total == 6
    decisions.undo(layout, store, "bob")
    assert catalog.progress(store).reviewers == {"alice": 2}


def test_sent_to_review_pages_filter_by_reason(synced_any) -> None:
    layout, store, cache, _ = synced_any
    for n, path in enumerate(layout.image_files("male")[:3]):
        quarantine.quarantine_file(layout, path, ("wrong-person", "label-conflict")[n % 2], "planted", store,
                                   status=moves.STATUS_REVIEW)
    catalog.sync(layout, store, PARAMS, cache)
    assert catalog.flagged_page(layout, store, 0, 10).total == 3
    wrong = catalog.flagged_page(layout, store, 0, 10, catalog.Filters(reason="wrong-person"))
    assert wrong.total == 2 and {i.rule for i in wrong.items} == {"wrong-person"} and all(i.entry_id for i in wrong.items)
    assert catalog.reasons(store) == ["label-conflict", "wrong-person"]
    assert catalog.progress(store).flagged == {"label-conflict": 1, "wrong-person": 2}


def test_thumbnails_are_made_once_and_kept_by_content_hash(synced, monkeypatch) -> None:
    layout, _, _, _ = synced
    photo = layout.image_files("female")[0]
    first = thumbnails.thumbnail(layout.root, photo, photo.stem)
    kept = thumbnails.thumbnail_path(layout.root, photo.stem, 256)
    assert first and kept.read_bytes() == first and Image.open(io.BytesIO(first)).size[0] <= 256
    monkeypatch.setattr(thumbnails, "thumbnail_jpeg", lambda *a, **k: pytest.fail("decoded again"))
    assert thumbnails.thumbnail(layout.root, photo, photo.stem) == first
    monkeypatch.undo()
    kept.write_bytes(first[:100])  # torn by a crash: made again
    assert thumbnails.thumbnail(layout.root, photo, photo.stem) == first
    assert thumbnails.thumbnail_path(layout.root, "../../etc/passwd", 256) is None
    odd = layout.root / "images" / "female" / "not-a-hash.jpg"
    odd.write_bytes(photo.read_bytes())
    assert thumbnails.thumbnail(layout.root, odd, "../../x") and not (layout.root / "x.jpg").exists()
    broken = layout.root / "images" / "female" / ("ab" * 32 + ".jpg")
    broken.write_bytes(b"not an image")
    assert thumbnails.thumbnail(layout.root, broken, broken.stem) is None


def test_large_view_draws_the_box_and_says_what_the_score_means(synced) -> None:
    layout, store, cache, _ = synced
    item = catalog.gender_page(layout, store, "female", "suspicion", 0, 1).items[0]
    analysis = cache.get(item.content_hash)
    picture = Image.open(io.BytesIO(large_view.boxed_jpeg(item.path, analysis)))
    plain = Image.open(item.path).convert("RGB")
    top, right, bottom, left = analysis.faces[0].box
    scale = picture.width / plain.width
    r, g, b = picture.getpixel((round((left + right) / 2 * scale), max(0, round(top * scale))))
    assert r > 180 and g < 120 and b < 120  # the box's red line on the face's top edge
    words = large_view.explain(item, analysis, ["female", "male"])
    assert words[0].startswith(f"Suspicion {item.score:+.3f}: the distance of this face to the average female face")
    assert "One face was found (box drawn)." in words and any("Said to show" in w for w in words)
    assert large_view.boxed_jpeg(layout.root / "missing.jpg", None) is None


def test_reference_photos_are_the_persons_nearest_their_median(synced) -> None:
    layout, store, cache, _ = synced
    item = catalog.gender_page(layout, store, "female", "suspicion", 0, 1).items[0]
    record = store.get_image(item.content_hash)
    refs = large_view.references(layout, store, cache, record, item.content_hash)
    same = [r for r in store.find_images(person_id=record["person_id"], site=record["site"], status="active")
            if r["content_hash"] != item.content_hash]
    assert len(refs) == min(4, len(same)) and item.content_hash not in {r.content_hash for r in refs}
    assert [r.distance for r in refs] == sorted(r.distance for r in refs)
    assert {r.content_hash for r in refs} <= {r["content_hash"] for r in same}
    assert large_view.references(layout, store, cache, {"content_hash": "x"}, "x") == []


def test_person_buttons_make_rejecting_the_marked_primary() -> None:
    from curation.review_widgets import person_buttons

    items = [QueueItem(Path(f"images/male/{n}.jpg"), "male", str(n)) for n in range(5)]
    marked = PersonView("s:1", "Kathleen Kennedy Townsend", "s", items, marked={"1": "far", "2": "far", "3": "far"},
                        suspect="2 of 3 photos look female, not male")
    labels = person_buttons(marked, "female")
    assert labels.primary == "reject" and labels.reject == "Reject the 3 marked as wrong-person"
    assert labels.move == "Move all 5 photos of Kathleen Kennedy Townsend to female (5 change)"
    assert person_buttons(PersonView("s:1", "K", "s", items, suspect="x"), "female").primary == "move"
    assert person_buttons(PersonView("s:1", "K", "s", items), "female").primary is None


@pytest.mark.parametrize(("seconds", "words"), [(3, "3 s"), (30, "30 s"), (0.2, "1 s"), (59.4, "59 s"),
                                                 (60, "1 min"), (1800, "30 min")])
def test_durations_under_a_minute_are_in_seconds(seconds: float, words: str) -> None:
    assert in_words(seconds) == words


def _index_names(store) -> set[str]:
    """The image indexes the backend holds (SQLite's schema, or MongoDB's index list)."""
    from anfe.core.store.embedded import EmbeddedStore

    if isinstance(store, EmbeddedStore):
        return {name for (name,) in store._db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    return {f"images_{name}" for name in store._db.images.index_information()}


def test_people_come_from_the_sync_through_indexes(synced_any) -> None:
    """The by-person view's list and a person's photos: worked out by the sync, kept on the
    records, read as one page and one person through the backend's indexes."""
    layout, store, _, _ = synced_any
    assert {"images_by_person_lead_person_rank", "images_by_status_person_key"} <= _index_names(store)
    listed = catalog.people_page(store, 0, 10)
    assert (listed.total, listed.pages) == (2, 1)
    assert {(p.key, p.name, p.site, p.photos) for p in listed.people} == {
        ("a.test:0", "Zoë Kravitz-Longname", "a.test", 7), ("b.test:1", "Kathleen Kennedy Townsend", "b.test", 7)}
    ranks = [store.query_images(("person_rank",), person_key=p.key, person_lead=1)[0]["person_rank"]
             for p in listed.people]
    assert ranks == [0, 1]  # in the stored order: suspect people first, then most marked, then name
    assert [p.key for p in catalog.people_page(store, 1, 1).people] == [listed.people[1].key]
    assert [p.name for p in catalog.people_page(store, 0, 10, "kENNEDY").people] == ["Kathleen Kennedy Townsend"]
    assert catalog.people_page(store, 0, 10, "(.*").total == 0  # text, never a pattern
    view = catalog.person_view(layout, store, "a.test:0")
    assert view is not None and len(view.items) == 7 and {i.person for i in view.items} == {"Zoë Kravitz-Longname"}
    assert set(view.marked) <= {i.key for i in view.items}
    assert catalog.person_view(layout, store, "x:y/../zzz") is None  # a made-up person: nothing


def test_the_embedded_people_list_walks_the_index(synced) -> None:
    """SQLite's plan for a page of the people list uses the lead records' index, with no sort."""
    _, store, _, _ = synced
    sql = ("EXPLAIN QUERY PLAN SELECT doc FROM images WHERE json_extract(doc, '$.person_lead') = 1 "
           "ORDER BY json_extract(doc, '$.person_rank') ASC, content_hash ASC LIMIT 100")
    plan = " ".join(str(row[-1]) for row in store._db.execute(sql))
    assert "images_by_person_lead_person_rank" in plan and "TEMP B-TREE" not in plan, plan
    sql = ("EXPLAIN QUERY PLAN SELECT doc FROM images WHERE json_extract(doc, '$.status') = 'active' AND "
           "json_extract(doc, '$.person_key') = 'a.test:0' ORDER BY content_hash ASC")
    plan = " ".join(str(row[-1]) for row in store._db.execute(sql))
    assert "images_by_status_person_key" in plan and "TEMP B-TREE" not in plan, plan
