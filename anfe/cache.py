"""Analysis results cached on disk by content hash plus the parameters that change them.

A SQLite file (WAL mode, safe for several processes); embeddings are stored as raw float64
bytes so that loading 100,000 of them takes well under a second. Moving or renaming an image
never invalidates its entry: the key is what the bytes are, not where they are. Each face
records which encoder computed its embedding ("onnx" or "dlib"; entries older than that
field are dlib's); the key does not include it, since both give the same numbers.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .analysis import ImageAnalysis
from .faces import DetectedFace

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


def default_cache_path() -> Path:
    """``$ANFE_CACHE`` if set, else ``$XDG_CACHE_HOME/anfe/analysis.sqlite`` (~/.cache/...)."""
    if os.environ.get("ANFE_CACHE"):
        return Path(os.environ["ANFE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "anfe" / "analysis.sqlite"


class AnalysisCache:
    """Get and put :class:`ImageAnalysis` results for one parameter key."""

    def __init__(self, path: str | Path, params_key: str) -> None:
        self.path = Path(path)
        self.params_key = params_key
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> "AnalysisCache":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def put_many(self, analyses: Iterable[ImageAnalysis]) -> None:
        """Store results (one transaction); entries with no content hash are skipped."""
        rows = [self._row(a) for a in analyses if a.content_hash]
        with self._db:
            self._db.executemany(
                "INSERT OR REPLACE INTO analyses VALUES (?,?,?,?,?,?,?,?,?)", rows
            )

    def get(self, digest: str) -> ImageAnalysis | None:
        return self.get_many([digest]).get(digest)

    def get_many(self, digests: Iterable[str]) -> dict[str, ImageAnalysis]:
        """Cached results for those hashes that have one (others are simply absent)."""
        found: dict[str, ImageAnalysis] = {}
        for chunk in _chunks(list(dict.fromkeys(digests)), _CHUNK):
            marks = ",".join("?" * len(chunk))
            cursor = self._db.execute(
                f"SELECT * FROM analyses WHERE params=? AND content_hash IN ({marks})",
                [self.params_key, *chunk],
            )
            for row in cursor:
                analysis = self._from_row(row)
                found[analysis.content_hash] = analysis
        return found

    def __len__(self) -> int:
        (count,) = self._db.execute(
            "SELECT COUNT(*) FROM analyses WHERE params=?", [self.params_key]
        ).fetchone()
        return count

    def merge_from(self, other: str | Path) -> int:
        """Copy every entry of another cache file that this one lacks (all parameter keys);
        returns how many were added. How shards analysed on several machines come together."""
        other = Path(other)
        if not other.is_file():
            raise FileNotFoundError(f"no cache file at {other}")
        before = self._db.total_changes
        self._db.execute("ATTACH DATABASE ? AS other", (f"file:{other}?mode=ro",))
        try:
            with self._db:
                self._db.execute("INSERT OR IGNORE INTO analyses SELECT * FROM other.analyses")
        finally:
            self._db.execute("DETACH DATABASE other")
        return self._db.total_changes - before

    def _row(self, a: ImageAnalysis) -> tuple:
        faces = [
            {"box": list(f.box), "landmarks": [list(p) for p in f.landmarks], "confidence": f.confidence,
             "encoder": f.encoder}
            for f in a.faces
        ]
        blob = (
            np.stack([f.embedding for f in a.faces]).astype(np.float64).tobytes()
            if a.faces
            else None
        )
        return (
            a.content_hash, self.params_key, a.width, a.height, a.phash,
            a.error, a.error_detail, json.dumps(faces), blob,
        )

    @staticmethod
    def _from_row(row: tuple) -> ImageAnalysis:
        digest, _params, width, height, phash, error, detail, faces_json, blob = row
        meta = json.loads(faces_json)
        vectors = (
            np.frombuffer(blob, dtype=np.float64).reshape(len(meta), DIMENSIONS)
            if blob
            else np.empty((0, DIMENSIONS))
        )
        faces = tuple(
            DetectedFace(
                tuple(m["box"]), tuple(tuple(p) for p in m["landmarks"]), vectors[i], m["confidence"],
                m.get("encoder", "dlib"),  # entries written before the ONNX encoder: dlib's
            )
            for i, m in enumerate(meta)
        )
        return ImageAnalysis(digest, width or 0, height or 0, phash, faces, error, detail)


def _chunks(items: list, size: int) -> Iterator[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def single_face_blobs(cache_path: str | Path, params_key: str, digests: Iterable[str]) -> dict[str, bytes | None]:
    """Raw embedding bytes (one face's float64 x 128) per cached hash; None when not one face.

    Reads only that column, read-only and memory-mapped: the fast path for builds over 100,000
    cached images (about 50x faster than building full ImageAnalysis objects).
    """
    wanted = sorted(set(digests))
    found: dict[str, bytes | None] = {}
    width = DIMENSIONS * 8
    db = sqlite3.connect(f"file:{Path(cache_path)}?mode=ro", uri=True, timeout=60)
    try:
        db.execute("PRAGMA mmap_size=4294967296")
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        select = "SELECT content_hash, error, embeddings FROM analyses WHERE params=?"
        if wanted and pages < 4 * len(wanted):  # each entry fills about a page: one scan is cheaper
            keep = set(wanted)
            batches = [db.execute(select, [params_key])]
        else:
            keep = None
            batches = (  # sorted hashes: neighbouring B-tree pages
                db.execute(f"{select} AND content_hash IN ({','.join('?' * len(chunk))})", [params_key, *chunk])
                for chunk in (wanted[i : i + 900] for i in range(0, len(wanted), 900))
            )
        for rows in batches:
            for digest, error, blob in rows:
                if keep is None or digest in keep:
                    found[digest] = blob if not error and blob is not None and len(blob) == width else None
    finally:
        db.close()
    return found
