"""The MongoDB store: the same :class:`~anfe.core.store.base.Store` contract as the embedded one, via pymongo.

It connects through :mod:`anfe.core.mongo` (the connector the analysis cache uses too: timeouts,
retries, error wording, URI redaction). Documents pass through :func:`~anfe.core.store.base.plain` on
the way in (so no numpy value reaches the BSON encoder) and lose Mongo's ``_id`` on the way out.

Failures lose nothing: every write is idempotent (images upserted by content hash, builds
replaced by id, metadata by key, a decision inserted under an ``_id`` chosen once and, when it has
one, its own ``id``), so a write that failed in a way that may or may not have reached the server
(a closed connection, a "not primary" answer) is simply sent again until the store's timeout (the connector's retry); after
that the caller gets :class:`~anfe.core.errors.StoreUnreachableError`, and running the same command
again completes the work without duplicates.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from itertools import islice
from typing import Any

import pymongo
from bson import ObjectId
from pymongo import errors as mongo_errors

from ..errors import StoreError, UnknownBuildError
from ..mongo import MongoConnection
from .base import Store, check_page, field_names, plain, sort_spec

__all__ = ["MongoStore"]
#: Top-level field names that mean the same in a Mongo filter/``$set`` as in the embedded store.
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Attempts at appending one decision before giving up (each failure means another writer won).
_APPEND_ATTEMPTS = 1000
_NO_ID = {"_id": 0}
#: Records sent per bulk write by upsert_images.
_CHUNK = 1000


class MongoStore(Store):
    """A :class:`Store` in a MongoDB database (named by the URI path, ``anfe`` by default).

    Collections: ``images`` (unique ``content_hash``), ``decisions`` (unique ``seq``), ``builds``
    (unique ``id``) and ``meta`` (``_id`` = key). An unreachable server raises
    :class:`~anfe.core.errors.StoreUnreachableError` within about ``timeout_ms``.
    """

    def __init__(self, uri: str, timeout_ms: int = 5000) -> None:
        self._connection = MongoConnection(uri, timeout_ms)  # the connector's errors, retries and timeouts
        self.uri, self.timeout_ms = self._connection.uri, self._connection.timeout_ms
        self._client, self._db = self._connection.client, self._connection.database
        self._errors, self._retrying = self._connection.errors, self._connection.retrying
        self._known_seq = 0  # the highest decision seq this store has seen (a search hint)
        try:
            with self._errors("connect to"):
                self._db.images.create_index("content_hash", unique=True, name="content_hash_unique")
                self._db.images.create_index([("status", 1), ("gender", 1)], name="status_gender")
                self._db.images.create_index("original_hash", name="original_hash")
                self._db.decisions.create_index("seq", unique=True, name="seq_unique")
                # A decision's own id (when it has one) is logged once, however often it is sent.
                self._db.decisions.create_index(
                    "id", unique=True, name="id_unique", partialFilterExpression={"id": {"$type": "string"}}
                )
                self._db.builds.create_index("id", unique=True, name="id_unique")
            self.check_schema()
        except BaseException:
            self.close()  # stop pymongo's monitor threads
            raise

    @property
    def database_name(self) -> str:
        """The name of the database this store lives in."""
        return self._db.name

    def close(self) -> None:
        self._connection.close()

    # -- images ---------------------------------------------------------------------------
    def upsert_image(self, record: dict) -> None:
        doc = _image_doc(record)

        def upsert() -> None:
            try:
                self._db.images.update_one({"content_hash": doc["content_hash"]}, {"$set": doc}, upsert=True)
            except mongo_errors.DuplicateKeyError:
                # Two writers upserting the same new hash at once: the other one inserted it.
                self._db.images.update_one({"content_hash": doc["content_hash"]}, {"$set": doc})

        self._retrying("write to", upsert)

    def upsert_images(self, records: Iterable[dict]) -> int:
        """Insert the chunk in one ``insert_many``; records already there (duplicate content hash)
        are merged with ``$set`` instead. Sent again after a transient failure, the inserted ones
        are found as duplicates and merged with the same values: nothing doubles."""
        count = 0
        iterator = iter(records)
        while chunk := [_image_doc(r) for r in islice(iterator, _CHUNK)]:
            def write(chunk: list[dict] = chunk) -> None:
                try:
                    # Copies: insert_many adds an _id to the dicts it is given.
                    self._db.images.insert_many([dict(d) for d in chunk], ordered=False)
                except mongo_errors.BulkWriteError as exc:
                    errors = exc.details.get("writeErrors", [])
                    if any(e.get("code") != 11000 for e in errors):
                        raise
                    present = [chunk[e["index"]] for e in errors]
                    self._db.images.bulk_write(
                        [pymongo.UpdateOne({"content_hash": d["content_hash"]}, {"$set": d}) for d in present],
                        ordered=False,
                    )

            self._retrying("write to", write)
            count += len(chunk)
        return count

    def get_image(self, content_hash: str) -> dict | None:
        return self._retrying("read from", lambda: self._db.images.find_one({"content_hash": content_hash}, _NO_ID))

    def find_images(self, fields: Sequence[str] | None = None, **equals: Any) -> list[dict]:
        query = _equality_filter(equals)
        names = None if fields is None else field_names(fields)
        # content_hash always comes back, to sort by here: a server's sort of the whole catalog
        # costs more than Python's (a fifth of the read on secantusd-py at 100,000 records).
        projection = _NO_ID if names is None else {"content_hash": 1, **{f: 1 for f in names}, **_NO_ID}

        def read() -> list[dict]:
            # No batch_size: after the first 101 documents the server fills 16 MB replies, and
            # batches of 10,000 measured no faster (the server's own work dominates).
            docs = list(self._db.images.find(query, projection))
            docs.sort(key=_by_content_hash)
            if names is None:
                return docs
            keep = "content_hash" in names
            return [{f: v for f, v in doc.items() if v is not None and (keep or f != "content_hash")} for doc in docs]

        return self._retrying("read from", read)

    def count_images(self, *, search: tuple[str, str] | None = None, **equals: Any) -> int:
        query = _search_filter(equals, search)
        return self._retrying("read from", lambda: int(self._db.images.count_documents(query)))

    def query_images(self, fields: Sequence[str] | None = None, *, sort: Sequence[tuple[str, int]] = (),
                     skip: int = 0, limit: int | None = None, search: tuple[str, str] | None = None,
                     **equals: Any) -> list[dict]:
        check_page(skip, limit)
        query = _search_filter(equals, search)
        names = None if fields is None else field_names(fields)
        projection = _NO_ID if names is None else {**{f: 1 for f in names}, **_NO_ID}

        def read() -> list[dict]:
            cursor = self._db.images.find(query, projection, sort=sort_spec(sort), skip=int(skip),
                                          limit=0 if limit is None else int(limit))
            if limit == 0:
                return []
            return [{f: v for f, v in doc.items() if v is not None} if names else doc for doc in cursor]

        return self._retrying("read from", read)

    def count_by(self, field: str, **equals: Any) -> dict[Any, int]:
        _equality_filter({field: None})  # checks the name
        pipeline = [{"$match": _equality_filter(equals)}, {"$group": {"_id": f"${field}", "n": {"$sum": 1}}}]
        return self._retrying(
            "read from", lambda: {doc["_id"]: int(doc["n"]) for doc in self._db.images.aggregate(pipeline)})

    def ensure_index(self, fields: Sequence[str]) -> None:
        names = field_names(fields)
        keys = [(f, 1) for f in names] + ([] if "content_hash" in names else [("content_hash", 1)])
        self._retrying("index", lambda: self._db.images.create_index(keys, name="by_" + "_".join(names)))

    # -- decisions ------------------------------------------------------------------------
    def append_decision(self, decision: dict) -> int:
        """Insert with ``seq`` = last + 1 under the unique index; a lost race just retries.

        Unlike a separate counter document, a number is taken only by the insert that stores
        it, so a reader never sees decision n+1 while n is still missing (no gaps, unless a crashed
        server loses writes it had acknowledged: the numbers of those are skipped). The
        document's ``_id`` is chosen once, so an insert sent again after a lost connection is
        recognised (as is a decision whose ``id`` is in the log already): logged once, its
        ``seq`` returned.
        """
        doc = plain({k: v for k, v in decision.items() if k not in ("seq", "_id")})
        own_id = ObjectId()
        decision_id = doc.get("id") if isinstance(doc.get("id"), str) else None

        def logged_seq() -> int | None:
            """The seq of this very decision if it is in the log already."""
            found = self._db.decisions.find_one({"_id": own_id}, {"seq": 1})
            if found is None and decision_id is not None:
                # The $type condition lets the server use the partial unique index on id.
                found = self._db.decisions.find_one({"id": {"$eq": decision_id, "$type": "string"}}, {"seq": 1})
            return None if found is None else int(found["seq"])

        def attempt() -> int | None:
            seq = self._last_seq() + 1
            try:
                self._db.decisions.insert_one({**doc, "_id": own_id, "seq": seq})
            except mongo_errors.DuplicateKeyError as exc:
                if set((exc.details or {}).get("keyPattern") or {}) == {"seq"}:
                    return None  # another writer took this number first
                return logged_seq()  # sent before (its _id or id is there), or a race after all
            self._known_seq = seq
            return seq

        for _ in range(_APPEND_ATTEMPTS):
            seq = self._retrying("append a decision to", attempt)
            if seq is not None:
                return seq
        raise StoreError(
            f"could not append a decision to {self.uri} after {_APPEND_ATTEMPTS} attempts "
            "(too many concurrent writers): try again"
        )

    def _last_seq(self) -> int:
        """The highest ``seq`` in the log.

        Searched from the last one this store saw (if the server still has it); else seqs run
        1..N, so point lookups (galloping, then halving) find a lower bound, and a range query
        above it the exact answer. A sort over the whole index, the obvious query, is a full scan
        on some servers (secantusd: 0.2 s at 5,000 decisions).
        """
        def present(seq: int) -> bool:
            return self._db.decisions.find_one({"seq": seq}, {"_id": 1}) is not None

        low = self._known_seq
        if low and not present(low):
            low = 0  # the server lost it (killed before the write reached its journal): search again
        if low == 0:
            step, high = 1, 1
            while present(high):
                low, step = high, step * 2
                high = low + step
            while high - low > 1:
                middle = (low + high) // 2
                low, high = (middle, high) if present(middle) else (low, middle)
        top = self._db.decisions.find_one({"seq": {"$gt": low}}, {"seq": 1}, sort=[("seq", -1)])
        return int(top["seq"]) if top else low

    def decisions(self, after: int = 0) -> list[dict]:
        return self._retrying(
            "read from",
            lambda: list(self._db.decisions.find({"seq": {"$gt": int(after)}}, _NO_ID).sort("seq", 1)),
        )

    # -- builds ---------------------------------------------------------------------------
    def save_build(self, build: dict) -> None:
        """Replace the build by id: one document, written whole or not at all."""
        doc = plain({k: v for k, v in build.items() if k != "_id"})
        self._retrying("save a build to", lambda: self._db.builds.replace_one({"id": doc["id"]}, doc, upsert=True))

    def get_build(self, build_id: str) -> dict:
        found = self._retrying("read from", lambda: self._db.builds.find_one({"id": build_id}, _NO_ID))
        if found is None:
            raise self._unknown_build(build_id)
        return found

    def list_builds(self) -> list[dict]:
        return self._retrying("read from", lambda: list(self._db.builds.find({}, _NO_ID).sort("id", 1)))

    def delete_build(self, build_id: str) -> None:
        exists = self._retrying("read from", lambda: self._db.builds.count_documents({"id": build_id}, limit=1))
        if not exists:
            raise self._unknown_build(build_id)
        # Sent again after a lost answer, the delete finds nothing: that is success too.
        self._retrying("delete a build from", lambda: self._db.builds.delete_one({"id": build_id}))

    def _unknown_build(self, build_id: str) -> UnknownBuildError:
        known = self._retrying(
            "read from", lambda: [doc["id"] for doc in self._db.builds.find({}, {"id": 1, "_id": 0}).sort("id", 1)]
        )
        return UnknownBuildError(
            f"no build {build_id!r} in {self.uri}; known builds: {', '.join(known) or 'none'}"
        )

    # -- metadata -------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        found = self._retrying("read from", lambda: self._db.meta.find_one({"_id": key}))
        return None if found is None else found.get("value")

    def set_meta(self, key: str, value: Any) -> None:
        doc = {"_id": key, "value": plain(value)}
        self._retrying("write to", lambda: self._db.meta.replace_one({"_id": key}, doc, upsert=True))


def _image_doc(record: dict) -> dict:
    """``record`` as a document for ``$set``, refusing field names Mongo would misread."""
    doc = plain(record)
    for field in doc:
        # $set would read "a.b" as a path into a sub-document, "$x" as an operator, and
        # "_id" is Mongo's own; any other name is stored as given, as in the embedded store.
        if not field or "." in field or field.startswith("$") or field == "_id":
            raise ValueError(f"bad field name {field!r} in an image record")
    return doc


def _by_content_hash(doc: dict) -> str:
    """The sort key of image records (every record has a str content_hash; Python's order of
    str is MongoDB's binary order of their UTF-8 bytes)."""
    return str(doc.get("content_hash", ""))


def _equality_filter(equals: dict[str, Any]) -> dict[str, Any]:
    """A Mongo filter for top-level equality (None matches a missing field, as in SQLite)."""
    query: dict[str, Any] = {}
    for field, value in equals.items():
        if not _FIELD.match(field):
            raise ValueError(f"bad field name {field!r}")
        query[field] = plain(value)
    return query


def _search_filter(equals: dict[str, Any], search: tuple[str, str] | None) -> dict[str, Any]:
    """:func:`_equality_filter`, and a case-blind substring ``search`` = (field, text) as a regex
    of the escaped text (the text is never a pattern)."""
    query = _equality_filter(equals)
    if search is not None:
        name, text = search
        _equality_filter({name: None})  # checks the name
        query[name] = {"$regex": re.escape(str(text)), "$options": "i"}
    return query

