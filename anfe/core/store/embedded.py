"""The embedded store: one SQLite file (WAL mode) inside the dataset root, no server needed."""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterable, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from ..errors import StoreError, UnknownBuildError
from .base import Store, check_page, field_names, plain, sort_spec

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
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Records written per transaction by upsert_images (other writers wait at most one chunk).
_CHUNK = 2000


def _column(field: str) -> str:
    """The SQL expression of a top-level field (the content hash is a column of its own)."""
    if not _FIELD.match(field):
        raise ValueError(f"bad field name {field!r}")
    return "content_hash" if field == "content_hash" else f"json_extract(doc, '$.{field}')"


def _where(equals: dict[str, Any], search: tuple[str, str] | None = None) -> tuple[str, list]:
    """The WHERE clause (and its arguments) of top-level equality, None matching a missing field,
    and of a case-blind substring ``search`` = (field, text)."""
    clauses, args = [], []
    for field, value in equals.items():
        if value is None:
            clauses.append(f"{_column(field)} IS NULL")
        else:
            clauses.append(f"{_column(field)} = ?")
            args.append(plain(value))
    if search is not None:
        field, text = search
        text = str(text)
        if text.isascii():  # SQLite's LIKE (in C) folds ASCII, which is all such a text can match
            clauses.append(f"typeof({_column(field)}) = 'text' AND {_column(field)} LIKE ? ESCAPE '\\'")
            args.append("%" + re.sub(r"([%_\\])", r"\\\1", text) + "%")
        else:
            clauses.append(f"anfe_contains({_column(field)}, ?)")
            args.append(text)
    return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), args


def _contains(value: Any, text: str) -> bool:
    """SQL function ``anfe_contains``: the string ``value`` holds ``text``, ignoring case (Unicode
    case folding, as MongoDB's case-blind regex; SQLite's own LIKE folds ASCII only)."""
    return isinstance(value, str) and text.casefold() in value.casefold()


class EmbeddedStore(Store):
    """A :class:`Store` in a SQLite file; safe for several processes writing at once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.uri = f"sqlite:///{self.path}"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.create_function("anfe_contains", 2, _contains, deterministic=True)
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
        where, args = _where(equals)
        return self._select(fields, where, args, "ORDER BY content_hash")

    def _select(self, fields: Sequence[str] | None, where: str, args: list, tail: str) -> list[dict]:
        """Whole records, or (``fields``) only those fields of each: SQLite extracts them as one
        JSON array (json_extract with several paths; a lone path is given twice, as one would come
        back bare), so Python decodes a few values per record instead of the whole document
        (about half the time)."""
        if fields is None:
            return [json.loads(doc) for (doc,) in self._db.execute(f"SELECT doc FROM images {where} {tail}", args)]
        names = field_names(fields)
        paths = ", ".join(f"'$.{f}'" for f in (names * 2 if len(names) == 1 else names))
        sql = f"SELECT json_extract(doc, {paths}) FROM images {where} {tail}"
        loads = json.loads
        return [{f: v for f, v in zip(names, loads(values)) if v is not None}
                for (values,) in self._db.execute(sql, args)]

    def count_images(self, *, search: tuple[str, str] | None = None, **equals: Any) -> int:
        where, args = _where(equals, search)
        return int(self._db.execute(f"SELECT COUNT(*) FROM images {where}", args).fetchone()[0])

    def query_images(self, fields: Sequence[str] | None = None, *, sort: Sequence[tuple[str, int]] = (),
                     skip: int = 0, limit: int | None = None, search: tuple[str, str] | None = None,
                     **equals: Any) -> list[dict]:
        check_page(skip, limit)
        where, args = _where(equals, search)
        # The same expressions as ensure_index's, so SQLite walks the index in order and stops
        # after skip + limit entries.
        order = ", ".join(f"{_column(f)} {'ASC' if d == 1 else 'DESC'}" for f, d in sort_spec(sort))
        tail = f"ORDER BY {order} LIMIT ? OFFSET ?"
        return self._select(fields, where, [*args, -1 if limit is None else int(limit), int(skip)], tail)

    def count_by(self, field: str, **equals: Any) -> dict[Any, int]:
        where, args = _where(equals)
        rows = self._db.execute(f"SELECT {_column(field)}, COUNT(*) FROM images {where} GROUP BY 1", args)
        return {value: int(n) for value, n in rows}

    def ensure_index(self, fields: Sequence[str]) -> None:
        names = field_names(fields)
        columns = ", ".join(_column(f) if f != "content_hash" else f for f in names)
        self._write(f"CREATE INDEX IF NOT EXISTS images_by_{'_'.join(names)} ON images ({columns}, content_hash)", ())

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
