"""Analysis results cached by content hash plus the parameters that change them.

One interface, :class:`AnalysisCache`, with two backends chosen by location: a SQLite file
(:class:`SQLiteCache`, WAL mode, safe for several processes on one machine) or a MongoDB
database (:class:`MongoCache`, ``mongodb://host:27017/anfe``: several machines, clients and
the review page share one cache). ``AnalysisCache(location, params_key)`` opens the right one.
Embeddings are stored as raw float64 bytes so that loading 100,000 of them takes well under a
second. Nothing outside this module reads or writes the cache except through these methods. Moving or renaming an image
never invalidates its entry: the key is what the bytes are, not where they are. Each face
records which encoder computed its embedding ("onnx" or "dlib"; entries older than that
field are dlib's); the key does not include it, since both give the same numbers.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from .analysis import ImageAnalysis
from anfe.core.crashpoints import crash_point
from anfe.core.errors import CacheError, CacheUnreachableError
from anfe.core.paths import is_cache_uri
from .detection import DetectedFace

_SCHEMA = """
CREATE TABLE IF NOT EXISTS analyses (
    content_hash TEXT NOT NULL,
    params TEXT NOT NULL,
    width INTEGER, height INTEGER, phash TEXT,
    error TEXT, error_detail TEXT,
    faces TEXT NOT NULL,
    embeddings BLOB,
    PRIMARY KEY (content_hash, params)
) WITHOUT ROWID;
"""
_CHUNK = 500
DIMENSIONS = 128


class AnalysisCache:
    """Get and put :class:`ImageAnalysis` results for one parameter key (the interface).

    ``AnalysisCache(location, params_key)`` returns a :class:`MongoCache` for a ``mongodb://``
    URI and a :class:`SQLiteCache` for a file path. Every backend passes the same contract
    tests (tests/test_cache_contract.py).
    """

    params_key: str
    location: str | Path

    def __new__(cls, location: str | Path = "", params_key: str = "", **kwargs: Any) -> "AnalysisCache":
        if cls is AnalysisCache:
            cls = MongoCache if is_cache_uri(location) else SQLiteCache
        return super().__new__(cls)

    # -- reading ----------------------------------------------------------------------------
    def get(self, digest: str) -> ImageAnalysis | None:
        return self.get_many([digest]).get(digest)

    def get_many(self, digests: Iterable[str]) -> dict[str, ImageAnalysis]:
        """Cached results for those hashes that have one (others are simply absent)."""
        raise NotImplementedError

    def single_face_blobs(self, digests: Iterable[str]) -> dict[str, bytes | None]:
        """Raw embedding bytes (one face's float64 x 128) per cached hash; None when not one face.

        Reads only what a build needs: the fast path over 100,000 cached images (about 50x
        faster than building full ImageAnalysis objects).
        """
        raise NotImplementedError

    def __len__(self) -> int:
        """Entries for this parameter key."""
        raise NotImplementedError

    def counts(self) -> dict[str, int]:
        """Entries per parameter key (every key, not only this one's)."""
        raise NotImplementedError

    def phashes(self) -> list[str]:
        """Every distinct perceptual hash in the cache (all parameter keys)."""
        raise NotImplementedError

    def entries(self) -> Iterator[tuple[str, ImageAnalysis]]:
        """Every entry as (parameter key, analysis), all keys: what a merge copies."""
        raise NotImplementedError

    # -- writing ----------------------------------------------------------------------------
    def put_many(self, analyses: Iterable[ImageAnalysis]) -> None:
        """Store results (replacing older ones); entries with no content hash are skipped."""
        raise NotImplementedError

    def add_missing(self, entries: Iterable[tuple[str, ImageAnalysis]]) -> int:
        """Store (parameter key, analysis) entries this cache lacks; returns how many were added."""
        raise NotImplementedError

    def merge_from(self, other: "str | Path | AnalysisCache") -> int:
        """Copy every entry of another cache (a file, a URI or an open cache) that this one lacks
        (all parameter keys); returns how many were added."""
        if isinstance(other, AnalysisCache):
            return self.add_missing(other.entries())
        if not is_cache_uri(other) and not Path(other).is_file():
            raise CacheError(f"no cache file at {other}")
        with AnalysisCache(other, "") as source:
            return self.add_missing(source.entries())

    def close(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> "AnalysisCache":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _faces_json(a: ImageAnalysis) -> list[dict]:
    return [{"box": list(f.box), "landmarks": [list(p) for p in f.landmarks], "confidence": f.confidence,
             "encoder": f.encoder} for f in a.faces]


def _embedding_bytes(a: ImageAnalysis) -> bytes | None:
    return np.stack([f.embedding for f in a.faces]).astype(np.float64).tobytes() if a.faces else None


def _analysis(digest: str, width: int | None, height: int | None, phash: str | None, error: str | None,
              detail: str | None, meta: list[dict], blob: bytes | None) -> ImageAnalysis:
    vectors = (np.frombuffer(blob, dtype=np.float64).reshape(len(meta), DIMENSIONS) if blob
               else np.empty((0, DIMENSIONS)))
    faces = tuple(
        DetectedFace(
            tuple(m["box"]), tuple(tuple(p) for p in m["landmarks"]), vectors[i], m["confidence"],
            m.get("encoder", "dlib"),  # entries written before the ONNX encoder: dlib's
        )
        for i, m in enumerate(meta)
    )
    return ImageAnalysis(digest, width or 0, height or 0, phash, faces, error, detail)


def _one_face(error: str | None, blob: bytes | None) -> bytes | None:
    return blob if not error and blob is not None and len(blob) == DIMENSIONS * 8 else None


class SQLiteCache(AnalysisCache):
    """The cache in a SQLite file (the default, ``~/.cache/anfe/analysis.sqlite``)."""

    def __init__(self, location: str | Path, params_key: str) -> None:
        self.location = self.path = Path(location)
        self.params_key = params_key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(self.path, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise CacheError(f"{self.path} is not an analysis cache ({exc})") from None

    def close(self) -> None:
        self._db.close()

    def put_many(self, analyses: Iterable[ImageAnalysis]) -> None:
        rows = [self._row(self.params_key, a) for a in analyses if a.content_hash]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO analyses VALUES (?,?,?,?,?,?,?,?,?)", rows)
        crash_point("cache.batch")

    def add_missing(self, entries: Iterable[tuple[str, ImageAnalysis]]) -> int:
        before = self._db.total_changes
        with self._db:
            for chunk in _chunks(list(entries), _CHUNK):
                self._db.executemany("INSERT OR IGNORE INTO analyses VALUES (?,?,?,?,?,?,?,?,?)",
                                     [self._row(key, a) for key, a in chunk])
        return self._db.total_changes - before

    def merge_from(self, other: "str | Path | AnalysisCache") -> int:
        if isinstance(other, (str, Path)) and not is_cache_uri(other):  # file to file: one SQL statement
            other = Path(other)
            if not other.is_file():
                raise CacheError(f"no cache file at {other}")
            before = self._db.total_changes
            try:
                self._db.execute("ATTACH DATABASE ? AS other", (f"file:{other}?mode=ro",))
            except sqlite3.DatabaseError as exc:
                raise CacheError(f"{other} is not an analysis cache ({exc})") from None
            try:
                with self._db:
                    self._db.execute("INSERT OR IGNORE INTO analyses SELECT * FROM other.analyses")
            except sqlite3.DatabaseError as exc:
                raise CacheError(f"{other} is not an analysis cache ({exc})") from None
            finally:
                self._db.execute("DETACH DATABASE other")
            return self._db.total_changes - before
        return super().merge_from(other)

    def get_many(self, digests: Iterable[str]) -> dict[str, ImageAnalysis]:
        found: dict[str, ImageAnalysis] = {}
        for chunk in _chunks(list(dict.fromkeys(digests)), _CHUNK):
            marks = ",".join("?" * len(chunk))
            cursor = self._db.execute(
                f"SELECT * FROM analyses WHERE params=? AND content_hash IN ({marks})", [self.params_key, *chunk])
            for row in cursor:
                analysis = self._from_row(row)
                found[analysis.content_hash] = analysis
        return found

    def __len__(self) -> int:
        (count,) = self._db.execute("SELECT COUNT(*) FROM analyses WHERE params=?", [self.params_key]).fetchone()
        return count

    def counts(self) -> dict[str, int]:
        return dict(self._db.execute("SELECT params, COUNT(*) FROM analyses GROUP BY params ORDER BY params"))

    def phashes(self) -> list[str]:
        return [p for (p,) in self._db.execute("SELECT DISTINCT phash FROM analyses WHERE phash IS NOT NULL")]

    def entries(self) -> Iterator[tuple[str, ImageAnalysis]]:
        for row in self._db.execute("SELECT * FROM analyses ORDER BY params, content_hash"):
            yield row[1], self._from_row(row)

    def single_face_blobs(self, digests: Iterable[str]) -> dict[str, bytes | None]:
        """Reads only that column, read-only and memory-mapped, scanning the table once when the
        hashes asked for are a large part of it."""
        self._db.commit()
        wanted = sorted(set(digests))
        found: dict[str, bytes | None] = {}
        db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=60)
        try:
            db.execute("PRAGMA mmap_size=4294967296")
            (pages,) = db.execute("PRAGMA page_count").fetchone()
            select = "SELECT content_hash, error, embeddings FROM analyses WHERE params=?"
            if wanted and pages < 4 * len(wanted):  # each entry fills about a page: one scan is cheaper
                keep = set(wanted)
                batches = [db.execute(select, [self.params_key])]
            else:
                keep = None
                batches = (  # sorted hashes: neighbouring B-tree pages
                    db.execute(f"{select} AND content_hash IN ({','.join('?' * len(chunk))})",
                               [self.params_key, *chunk])
                    for chunk in (wanted[i : i + 900] for i in range(0, len(wanted), 900))
                )
            for rows in batches:
                for digest, error, blob in rows:
                    if keep is None or digest in keep:
                        found[digest] = _one_face(error, blob)
        finally:
            db.close()
        return found

    @staticmethod
    def _row(params_key: str, a: ImageAnalysis) -> tuple:
        return (a.content_hash, params_key, a.width, a.height, a.phash, a.error, a.error_detail,
                json.dumps(_faces_json(a)), _embedding_bytes(a))

    @staticmethod
    def _from_row(row: tuple) -> ImageAnalysis:
        digest, _params, width, height, phash, error, detail, faces_json, blob = row
        return _analysis(digest, width, height, phash, error, detail, json.loads(faces_json), blob)


class MongoCache(AnalysisCache):
    """The cache in MongoDB: collection ``analyses`` of the URI's database (``anfe`` when none),
    one document per (parameter key, content hash). Several machines, clients and the review
    page share it; writes are idempotent upserts, so two clients analysing the same image agree."""

    COLLECTION = "analyses"

    def __init__(self, location: str, params_key: str, timeout_ms: int = 5000) -> None:
        from anfe.core.mongo import MongoConnection  # pymongo only for those who ask for MongoDB

        self.location = location
        self.params_key = params_key
        self._connection = MongoConnection(location, timeout_ms, noun="the MongoDB cache",
                                           unreachable=CacheUnreachableError, failed=CacheError)
        self._retrying = self._connection.retrying
        self._collection = self._connection.database[self.COLLECTION]
        try:
            self._retrying("connect to", lambda: self._collection.create_index(
                [("params", 1), ("content_hash", 1)], name="params_hash"))
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        self._connection.close()

    @staticmethod
    def _id(params_key: str, digest: str) -> str:
        return f"{params_key}|{digest}"

    def _document(self, params_key: str, a: ImageAnalysis) -> dict:
        from bson import Binary

        blob = _embedding_bytes(a)
        return {"_id": self._id(params_key, a.content_hash), "content_hash": a.content_hash, "params": params_key,
                "width": a.width, "height": a.height, "phash": a.phash, "error": a.error,
                "error_detail": a.error_detail, "faces": _faces_json(a),
                "embeddings": Binary(blob) if blob is not None else None}

    @staticmethod
    def _from_document(doc: dict) -> ImageAnalysis:
        blob = doc.get("embeddings")
        return _analysis(doc["content_hash"], doc.get("width"), doc.get("height"), doc.get("phash"),
                         doc.get("error"), doc.get("error_detail"), doc.get("faces") or [],
                         bytes(blob) if blob is not None else None)

    def put_many(self, analyses: Iterable[ImageAnalysis]) -> None:
        from pymongo import ReplaceOne

        ops = [ReplaceOne({"_id": self._id(self.params_key, a.content_hash)}, self._document(self.params_key, a),
                          upsert=True) for a in analyses if a.content_hash]
        for chunk in _chunks(ops, _CHUNK):  # upserts by _id: sent again after a failure, they land once
            self._retrying("write to", lambda chunk=chunk: self._collection.bulk_write(chunk, ordered=False))
        crash_point("cache.batch")

    def add_missing(self, entries: Iterable[tuple[str, ImageAnalysis]]) -> int:
        from pymongo import UpdateOne

        added = 0
        ops = [UpdateOne({"_id": self._id(key, a.content_hash)}, {"$setOnInsert": self._document(key, a)},
                         upsert=True) for key, a in entries if a.content_hash]
        for chunk in _chunks(ops, _CHUNK):
            added += self._retrying("write to", lambda chunk=chunk: self._collection.bulk_write(
                chunk, ordered=False)).upserted_count
        return added

    def get_many(self, digests: Iterable[str]) -> dict[str, ImageAnalysis]:
        found: dict[str, ImageAnalysis] = {}
        for chunk in _chunks(list(dict.fromkeys(digests)), _CHUNK):
            ids = [self._id(self.params_key, d) for d in chunk]
            for doc in self._retrying("read from", lambda ids=ids: list(self._collection.find({"_id": {"$in": ids}}))):
                analysis = self._from_document(doc)
                found[analysis.content_hash] = analysis
        return found

    def single_face_blobs(self, digests: Iterable[str]) -> dict[str, bytes | None]:
        found: dict[str, bytes | None] = {}
        for chunk in _chunks(sorted(set(digests)), _CHUNK):
            ids = [self._id(self.params_key, d) for d in chunk]
            for doc in self._retrying("read from", lambda ids=ids: list(self._collection.find(
                    {"_id": {"$in": ids}}, {"content_hash": 1, "error": 1, "embeddings": 1}))):
                blob = doc.get("embeddings")
                found[doc["content_hash"]] = _one_face(doc.get("error"), bytes(blob) if blob is not None else None)
        return found

    def __len__(self) -> int:
        return int(self._retrying("read from", lambda: self._collection.count_documents({"params": self.params_key})))

    def counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for doc in self._retrying("read from", lambda: list(self._collection.find({}, {"params": 1}))):
            totals[doc["params"]] = totals.get(doc["params"], 0) + 1
        return dict(sorted(totals.items()))

    def phashes(self) -> list[str]:
        found = self._retrying("read from", lambda: list(self._collection.find({"phash": {"$ne": None}}, {"phash": 1})))
        return sorted({doc["phash"] for doc in found if doc.get("phash")})

    def entries(self) -> Iterator[tuple[str, ImageAnalysis]]:
        after = None  # pages in _id order: a page that fails is asked for again, the stream goes on
        while True:
            query = {} if after is None else {"_id": {"$gt": after}}
            page = self._retrying("read from", lambda query=query: list(
                self._collection.find(query).sort("_id", 1).limit(_CHUNK)))
            if not page:
                return
            for doc in page:
                yield doc["params"], self._from_document(doc)
            after = page[-1]["_id"]


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
