"""The store's paged queries, group counts and indexes: one contract for every backend (embedded
SQLite, and MongoDB through pymongo on the tests' secantusd-py)."""

from __future__ import annotations

import pytest

from anfe.core.store import open_store


@pytest.fixture
def store(store_backend_uri: str):
    with open_store(store_backend_uri) as opened:
        opened.ensure_index(["status", "gender", "suspicion"])
        opened.ensure_index(["status", "gender", "suspicion"])  # again: no error
        opened.upsert_images(RECORDS)
        yield opened


#: 30 records: three genders' worth of scores, some unscored, a few reviewed, names with accents.
RECORDS = [
    {"content_hash": f"h{i:02d}", "status": "review" if i % 10 == 9 else "active",
     "gender": "female" if i % 2 else "male", "name": ["Zoë Kravitz", "Kathleen Kennedy", "ÉMILE Zola"][i % 3],
     **({"suspicion": round((i * 7 % 30) / 10, 1)} if i % 5 else {}), **({"review_action": "keep"} if i % 4 == 0 else {})}
    for i in range(30)
]


def expected(sort_key, reverse: bool = False, **equals) -> list[str]:
    """The content hashes the contract promises, worked out in Python."""
    rows = [r for r in RECORDS if all(r.get(k) == v for k, v in equals.items())]
    # null (missing) first ascending, last descending; ties by hash in the sort's direction
    return [r["content_hash"] for r in sorted(rows, key=sort_key, reverse=reverse)]


def by_score(r: dict) -> tuple:
    return (r.get("suspicion") is not None, r.get("suspicion") or 0, r["content_hash"])


def test_pages_follow_the_sort_and_cover_every_record_once(store) -> None:
    want = expected(by_score, True, status="active", gender="female", review_action=None)
    pages = [store.query_images(["content_hash"], sort=[("suspicion", -1)], skip=skip, limit=4,
                                status="active", gender="female", review_action=None)
             for skip in range(0, len(want) + 4, 4)]
    assert [r["content_hash"] for page in pages for r in page] == want
    assert all(len(p) == 4 for p in pages[: len(want) // 4])


def test_ascending_sort_puts_missing_values_first(store) -> None:
    got = store.query_images(["content_hash", "suspicion"], sort=[("suspicion", 1)], gender="male")
    assert [r["content_hash"] for r in got] == expected(by_score, gender="male")
    assert "suspicion" not in got[0]  # a missing field stays missing in a projection


def test_no_sort_means_content_hash_order_and_whole_records(store) -> None:
    got = store.query_images(skip=28)
    assert got == [dict(r) for r in RECORDS[28:]]
    assert store.query_images(limit=0) == []


def test_search_ignores_case_and_accents_count(store) -> None:
    zoe = store.query_images(["content_hash"], search=("name", "zOË"), gender="male")
    assert [r["content_hash"] for r in zoe] == [r["content_hash"] for r in RECORDS
                                                if r["name"] == "Zoë Kravitz" and r["gender"] == "male"]
    assert len(store.query_images(search=("name", "émile"))) == 10
    assert store.query_images(search=("name", "a.b*(")) == []  # the text is text, never a pattern
    assert store.query_images(search=("no_field", "x")) == []
    assert store.query_images(search=("name", "%")) == store.query_images(search=("name", "_")) == []
    assert store.query_images(search=("status", "ACTIV"), limit=1)  # ASCII text: any case too
    assert store.query_images(search=("suspicion", "1")) == []  # numbers are not text


def test_counts_come_from_the_backend(store) -> None:
    assert store.count_images(status="active", gender="female") == sum(
        r["status"] == "active" and r["gender"] == "female" for r in RECORDS)
    by_gender = store.count_by("gender", status="active")
    assert by_gender == {"female": 12, "male": 15}
    assert store.count_by("review_action", gender="male") == {None: 7, "keep": 8}
    assert store.count_by("gender", status="gone") == {}
    assert store.count_images(search=("name", "KENNEDY"), gender="male") == 5


@pytest.mark.parametrize("bad", [{"sort": [("a.b", 1)]}, {"sort": [("x", 0)]}, {"skip": -1},
                                 {"limit": -2}, {"search": ("$where", "x")}, {"fields": "content_hash"}])
def test_odd_queries_are_refused(store, bad: dict) -> None:
    with pytest.raises(ValueError):
        store.query_images(**bad)


@pytest.mark.parametrize("field", ["a.b", "$x", "", "x y"])
def test_odd_group_and_index_fields_are_refused(store, field: str) -> None:
    with pytest.raises(ValueError):
        store.count_by(field)
    with pytest.raises(ValueError):
        store.ensure_index([field])


def test_the_embedded_page_query_walks_the_index(tmp_path) -> None:
    """SQLite's plan for a page of a gender's queue uses the index, with no sort of the whole set."""
    with open_store(str(tmp_path / "c.sqlite")) as store:
        store.ensure_index(["status", "gender", "suspicion"])
        sql = ("EXPLAIN QUERY PLAN SELECT doc FROM images WHERE json_extract(doc, '$.status') = 'active' AND "
               "json_extract(doc, '$.gender') = 'male' ORDER BY json_extract(doc, '$.suspicion') DESC, "
               "content_hash DESC LIMIT 12")
        plan = " ".join(str(row[-1]) for row in store._db.execute(sql))
    assert "images_by_status_gender_suspicion" in plan and "TEMP B-TREE" not in plan, plan
