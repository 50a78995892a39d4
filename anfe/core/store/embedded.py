"""The embedded store: one SQLite file (WAL mode) inside the dataset root, no server needed."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from ..errors import StoreError, UnknownBuildError
from .base import Store, field_names, plain

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (content_hash TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (seq INTEGER PRIMARY KEY AUTOINCREMENT, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS builds (id TEXT PRIMARY KEY, doc TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS images_by_status_gender
    ON images (json_extract(doc, '$.status'), json_extract(doc, '$.gender'));
CREATE INDEX IF NOT EXISTS images_by_original_hash ON images (json_extract(doc, '$.original_hash'));
CREATE UNIQUE INDEX IF NOT EXISTS decisions_by_id ON decisions (json_extract(doc, '$.id'))
    WHERE json_type(doc, '$.id') = 'text';
"""
_FIELD = __import__("re").compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Records written per transaction by upsert_images (other writers wait at most one chunk).
_CHUNK = 2000


class EmbeddedStore(Store):
    """A :class:`Store` in a SQLite file; safe for several processes writing at once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.uri = f"sqlite:///{self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"cannot open the store {self.path}: {exc}") from exc
        self.check_schema()

    def close(self) -> None:
        self._db.close()

    def _write(self, sql: str, args: tuple) -> sqlite3.Cursor:
        try:
            return self._db.execute(sql, args)
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot write to the store {self.path}: {exc}") from exc

    # images
    def upsert_image(self, record: dict) -> None:
        self.upsert_images([record])  # one record: one transaction, the same merge

    def upsert_images(self, records: Iterable[dict]) -> int:
        count = 0
        iterator = iter(records)
        while chunk := [plain(r) for r in islice(iterator, _CHUNK)]:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for doc in chunk:
                    key = doc["content_hash"]
                    row = self._db.execute("SELECT doc FROM images WHERE content_hash=?", (key,)).fetchone()
                    merged = {**json.loads(row[0]), **doc} if row else doc
                    self._write("INSERT OR REPLACE INTO images VALUES (?, ?)", (key, json.dumps(merged)))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            count += len(chunk)
        return count

    def get_image(self, content_hash: str) -> dict | None:
        row = self._db.execute(
            "SELECT doc FROM images WHERE content_hash=?", (content_hash,)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def find_images(self, fields: Sequence[str] | None = None, **equals: Any) -> list[dict]:
        clauses, args = [], []
        for field, value in equals.items():
            if not _FIELD.match(field):
                raise ValueError(f"bad field name {field!r}")
            if value is None:
                clauses.append(f"json_extract(doc, '$.{field}') IS NULL")
            else:
                clauses.append(f"json_extract(doc, '$.{field}') = ?")
                args.append(plain(value))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        if fields is None:
            rows = self._db.execute(f"SELECT doc FROM images {where} ORDER BY content_hash", args)
            return [json.loads(doc) for (doc,) in rows]
        return self._projected(field_names(fields), where, args)

    def _projected(self, fields: list[str], where: str, args: list) -> list[dict]:
        """Only ``fields`` of each record: SQLite extracts them as one JSON array (json_extract
        with several paths; a lone path is given twice, as one would come back bare), so Python
        decodes a few values per record instead of the whole document (about half the time)."""
        paths = ", ".join(f"'$.{f}'" for f in (fields * 2 if len(fields) == 1 else fields))
        sql = f"SELECT json_extract(doc, {paths}) FROM images {where} ORDER BY content_hash"
        loads = json.loads
        return [{f: v for f, v in zip(fields, loads(values)) if v is not None}
                for (values,) in self._db.execute(sql, args)]

    # decisions
    def append_decision(self, decision: dict) -> int:
        doc = plain({k: v for k, v in decision.items() if k != "seq"})
        decision_id = doc.get("id") if isinstance(doc.get("id"), str) else None
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if decision_id is not None:  # a decision sent again is logged once (as on MongoDB)
                row = self._db.execute(
                    "SELECT seq FROM decisions WHERE json_type(doc, '$.id') = 'text' AND json_extract(doc, '$.id') = ?",
                    (decision_id,),
                ).fetchone()
                if row:
                    self._db.execute("COMMIT")
                    return int(row[0])
            cursor = self._write("INSERT INTO decisions (doc) VALUES (?)", (json.dumps(doc),))
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        return int(cursor.lastrowid)

    def decisions(self, after: int = 0) -> list[dict]:
        rows = self._db.execute(
            "SELECT seq, doc FROM decisions WHERE seq > ? ORDER BY seq", (after,)
        )
        return [{**json.loads(doc), "seq": seq} for seq, doc in rows]

    # builds
    def save_build(self, build: dict) -> None:
        doc = plain(build)
        self._write("INSERT OR REPLACE INTO builds VALUES (?, ?)", (doc["id"], json.dumps(doc)))

    def get_build(self, build_id: str) -> dict:
        row = self._db.execute("SELECT doc FROM builds WHERE id=?", (build_id,)).fetchone()
        if row is None:
            known = [b["id"] for b in self.list_builds()]
            raise UnknownBuildError(
                f"no build {build_id!r} in {self.uri}; known builds: {', '.join(known) or 'none'}"
            )
        return json.loads(row[0])

    def list_builds(self) -> list[dict]:
        return [json.loads(doc) for (doc,) in self._db.execute("SELECT doc FROM builds ORDER BY id")]

    def delete_build(self, build_id: str) -> None:
        self.get_build(build_id)
        self._write("DELETE FROM builds WHERE id=?", (build_id,))

    # meta
    def get_meta(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO meta VALUES (?, ?)", (key, json.dumps(plain(value))))
