"""The store at 100,000 image records: the embedded SQLite file against MongoDB, in one run.

    python bench/bench_store.py [--n 100000] [--mongodb-uri mongodb://host:27017] [--reads-only]

Without ``--mongodb-uri`` the MongoDB side is a ``secantusd-py --standalone`` (PyPI's secantusdb,
WiredTiger, a test-only dependency) started on a free loopback port with a temporary storage
folder, as the tests do. The records are SYNTHETIC but shaped like the crawl's (made-up content
hashes, 16 fields, a 10% share of crops with an ``original_hash``, 2% waiting for review).

Timed, for each backend: inserts per second (one ``upsert_image`` per photo as a crawl writes, and
``upsert_images`` in bulk), the lookups the commands make (by content hash, by original hash, by
status and gender), reading every record in full and with the fields each command asks for
(clean, the review page and build read the catalog: ``find_images(fields=...)``), appending and reading review decisions, and saving and reading a build with 100,000 member hashes.
Then the store's share of each command against the 2-second target, the indexes each backend
created itself with the plan each query used, and the MongoDB/embedded ratio of every figure.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from anfe.core.people import PERSON_FIELDS
from anfe.core.store import Store, open_store
from curation.clean import CATALOG_FIELDS
from curation.queue import RECORD_FIELDS
from curation.rules import AGE_FIELDS

TARGET_S = 2.0
SINGLE = 2000  # records written one by one (the crawl's way), before the bulk load
LOOKUPS = 300
DECISIONS = 300


def record(i: int) -> dict[str, Any]:
    """A crawl-shaped image record (synthetic)."""
    gender = "man" if i % 2 else "woman"
    doc = {
        "content_hash": f"{i:064x}", "path": f"images/{gender}/{i:064x}.jpg", "gender": gender,
        "site": "demo", "url": f"http://127.0.0.1:8000/photos/{i}.jpg", "page_url": f"http://127.0.0.1:8000/p/{i // 7}",
        "person_name": f"Person {i // 7}", "person_id": str(i // 7), "http_status": 200, "bytes": 48_000 + i % 5000,
        "width": 640, "height": 480, "format": "JPEG", "fetched_at": "2026-11-29T12:00:00+00:00",
        "status": "review" if i % 100 in (3, 4) else "active",
        "gate": {"faces": 1, "face_side": 120.5, "phash": f"{i:016x}"},
    }
    if i % 10 == 5:
        doc.update(derived="crop", original_hash=f"{i - 1:064x}", bbox=[10, 10, 200, 200])
    return doc


def timed(function: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    started = time.perf_counter()
    for _ in range(repeat):
        result = function()
    return (time.perf_counter() - started) / repeat, result


#: The fields each command reads the whole catalog for (figure name -> projection).
PROJECTIONS = {
    "find_images: every record, clean's ages (s)": AGE_FIELDS,
    "find_images: every record, clean's people+conflicts (s)": CATALOG_FIELDS,
    "find_images: every record, build's people (s)": PERSON_FIELDS,
    "find_images: every record, review page's (s)": RECORD_FIELDS,
}


def measure_reads(store: Store, n: int) -> dict[str, float]:
    """Reading every record: in full, and with the fields each command asks for."""
    figures: dict[str, float] = {}
    seconds, everything = timed(lambda: store.find_images())
    assert len(everything) == n
    figures["find_images: every record, all fields (s)"] = seconds
    del everything
    for name, fields in PROJECTIONS.items():
        seconds, found = timed(lambda fields=fields: store.find_images(fields=fields))
        assert len(found) == n and all(set(doc) <= set(fields) for doc in found[:100])
        figures[name] = seconds
    return figures


def measure(store: Store, n: int, rng: random.Random, reads_only: bool = False) -> dict[str, float]:
    """Every figure for one backend (seconds unless the name says otherwise); only the writes
    the reads need and the whole-catalog reads with ``reads_only``."""
    figures: dict[str, float] = {}
    seconds, _ = timed(lambda: [store.upsert_image(record(i)) for i in range(SINGLE)])
    figures["upsert_image one by one (records/s)"] = SINGLE / seconds
    seconds, _ = timed(lambda: store.upsert_images(record(i) for i in range(SINGLE, n)))
    figures["upsert_images bulk (records/s)"] = (n - SINGLE) / seconds
    assert store.count_images() == n
    if reads_only:
        return {**figures, **measure_reads(store, n)}

    hashes = [f"{rng.randrange(n):064x}" for _ in range(LOOKUPS)]
    seconds, _ = timed(lambda: [store.get_image(h) for h in hashes])
    figures["get_image by content hash (ms)"] = seconds / LOOKUPS * 1000
    originals = [f"{rng.randrange(n // 10) * 10 + 4:064x}" for _ in range(LOOKUPS)]
    seconds, found = timed(lambda: [store.find_images(original_hash=h) for h in originals])
    assert all(len(f) == 1 for f in found)
    figures["find_images by original_hash (ms)"] = seconds / LOOKUPS * 1000
    seconds, found = timed(lambda: store.find_images(status="review", gender="woman"), 5)
    assert len(found) == n // 100
    figures["find_images status+gender, 1% (ms)"] = seconds * 1000
    seconds, count = timed(lambda: store.count_images(status="review"), 5)
    assert count == n // 50
    figures["count_images status=review, 2% (ms)"] = seconds * 1000
    figures.update(measure_reads(store, n))

    seconds, _ = timed(lambda: [store.append_decision({"id": uuid.uuid4().hex, "kind": "review", "action": "keep",
                                                       "content_hash": h}) for h in hashes[:DECISIONS]])
    figures["append_decision (ms)"] = seconds / DECISIONS * 1000
    seconds, _ = timed(lambda: store.decisions())
    figures["decisions: whole log (ms)"] = seconds * 1000

    members = [f"{i:064x}" for i in range(n)]
    build = {"id": "g_bench", "variant": "mean", "k": 1, "size": 35_000,
             "members": {"man": members[0:70_000:2], "woman": members[1:70_000:2]},
             "split": {"test": {"man": members[70_000::2], "woman": members[70_001::2]}, "test_fraction": 0.3},
             "centroids": {"man": [rng.random() for _ in range(128)], "woman": [rng.random() for _ in range(128)]}}
    figures["build size (MB JSON)"] = len(json.dumps(build)) / 1e6
    seconds, _ = timed(lambda: store.save_build(build))
    figures["save_build, 100,000 hashes (s)"] = seconds
    seconds, got = timed(lambda: store.get_build("g_bench"))
    assert got == build
    figures["get_build, 100,000 hashes (s)"] = seconds
    return figures


def command_shares(f: dict[str, float]) -> dict[str, float]:
    """The store's own seconds in each command, from the figures (per photo or per action where
    the command works one item at a time)."""
    ms = 1 / 1000
    one_by_one = 1 / f["upsert_image one by one (records/s)"]
    return {
        "crawl, per photo (get_image, original_hash lookup, upsert_image)":
            f["get_image by content hash (ms)"] * ms + f["find_images by original_hash (ms)"] * ms + one_by_one,
        "clean: read the catalog (ages; people and conflicts)":
            f["find_images: every record, clean's ages (s)"] + f["find_images: every record, clean's people+conflicts (s)"],
        "build: read the catalog (people)": f["find_images: every record, build's people (s)"],
        "review page: read the catalog and the decision log": f["find_images: every record, review page's (s)"]
            + f["decisions: whole log (ms)"] * ms,
        "review decision (append_decision, get_image, upsert_image)":
            f["append_decision (ms)"] * ms + f["get_image by content hash (ms)"] * ms + one_by_one,
        "build: save a 100,000-hash build": f["save_build, 100,000 hashes (s)"],
        "evaluate / predict: read that build": f["get_build, 100,000 hashes (s)"],
    }


def indexes_and_plans(store: Store, uri: str) -> list[str]:
    """The indexes the store created itself, and the plan each query uses."""
    lines = []
    if uri.startswith("mongodb"):
        import pymongo

        with pymongo.MongoClient(uri) as client:
            database = client.get_default_database()
            for name in ("images", "decisions", "builds"):
                found = [f"{ix['name']} {dict(ix['key'])}" + (" unique" if ix.get("unique") else "")
                         for ix in database[name].list_indexes()]
                lines.append(f"  {name}: " + "; ".join(found))
            queries = {
                "by content hash": {"content_hash": f"{7:064x}"},
                "by original_hash": {"original_hash": f"{4:064x}"},
                "by status+gender": {"status": "review", "gender": "woman"},
            }
            for label, query in queries.items():
                plan = database.command("explain", {"find": "images", "filter": query})["queryPlanner"]["winningPlan"]
                stages = []
                while plan:
                    stages.append(plan["stage"] + (f"({plan['indexName']})" if "indexName" in plan else ""))
                    plan = plan.get("inputStage")
                lines.append(f"  plan {label}: {' <- '.join(stages)}")
    else:
        path = uri[len("sqlite:///"):]
        with sqlite3.connect(path) as db:
            for table, name in db.execute(
                "SELECT tbl_name, name FROM sqlite_master WHERE type='index' ORDER BY tbl_name, name"
            ):
                lines.append(f"  {table}: {name}")
            queries = {
                "by content hash": ("SELECT doc FROM images WHERE content_hash=?", (f"{7:064x}",)),
                "by original_hash": ("SELECT doc FROM images WHERE json_extract(doc, '$.original_hash') = ?",
                                     (f"{4:064x}",)),
                "by status+gender": ("SELECT doc FROM images WHERE json_extract(doc, '$.status') = ? AND "
                                     "json_extract(doc, '$.gender') = ? ORDER BY content_hash", ("review", "woman")),
            }
            for label, (sql, args) in queries.items():
                plan = " ; ".join(row[-1] for row in db.execute(f"EXPLAIN QUERY PLAN {sql}", args))
                lines.append(f"  plan {label}: {plan}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="image records [default: 100000]")
    parser.add_argument("--mongodb-uri", default=None,
                        help="a MongoDB to use (a database anfe_bench_<random> is made and dropped) "
                             "[default: start secantusd-py]")
    parser.add_argument("--reads-only", action="store_true",
                        help="time only the writes and the whole-catalog reads (no decisions, builds or shares)")
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory(prefix="anfe-bench-store-") as folder:
        server = None
        base = args.mongodb_uri
        if base is None:
            from testkit.secantus_server import SecantusServer

            server = SecantusServer(Path(folder) / "secantus").start()
            base = server.uri()
            import pymongo

            with pymongo.MongoClient(base) as client:
                version = client.server_info()["version"]
            print(f"MongoDB: secantusd-py --standalone (server version {version}), storage in a temp folder")
        database = f"anfe_bench_{uuid.uuid4().hex[:8]}"
        mongo_uri = base.rstrip("/") + f"/{database}" if "?" not in base else base.replace("/?", f"/{database}?")
        backends = {"embedded": f"sqlite:///{Path(folder) / 'catalog.sqlite'}", "mongodb": mongo_uri}
        results: dict[str, dict[str, float]] = {}
        plans: dict[str, list[str]] = {}
        try:
            for name, uri in backends.items():
                print(f"[{name}] writing {args.n:,} records and timing the queries ...", flush=True)
                with open_store(uri, timeout_ms=30_000) as store:
                    results[name] = measure(store, args.n, rng, args.reads_only)
                    plans[name] = [] if args.reads_only else indexes_and_plans(store, uri)
        finally:
            if args.mongodb_uri:
                import pymongo

                with pymongo.MongoClient(base) as client:
                    client.drop_database(database)
            if server is not None:
                server.stop()

    embedded, mongo = results["embedded"], results["mongodb"]
    print(f"\n{args.n:,} image records, one run")
    print(f"{'figure':56} {'embedded':>11} {'mongodb':>11} {'mongodb/embedded':>17}")
    for key in embedded:
        print(f"{key:56} {embedded[key]:11.3f} {mongo[key]:11.3f} {mongo[key] / embedded[key]:16.2f}x")
    if args.reads_only:
        return
    print(f"\nthe store's share of each command (target < {TARGET_S:g} s)")
    shares = {name: command_shares(results[name]) for name in results}
    worst = 0.0
    for key in shares["embedded"]:
        e, m = shares["embedded"][key], shares["mongodb"][key]
        worst = max(worst, e, m)
        print(f"  {key:66} embedded {e:7.3f} s  mongodb {m:7.3f} s  "
              f"{'ok' if max(e, m) < TARGET_S else 'OVER'}")
    print(f"  slowest: {worst:.3f} s ({'under' if worst < TARGET_S else 'OVER'} the {TARGET_S:g} s target)")
    for name, lines in plans.items():
        print(f"\nindexes the {name} store created, and the plans:")
        print("\n".join(lines))


if __name__ == "__main__":
    main()
