"""The MongoDB store: the same :class:`~anfe.store.base.Store` contract as the embedded one, via pymongo.

The only module that imports pymongo. Documents pass through :func:`~anfe.store.base.plain` on
the way in (so no numpy value reaches the BSON encoder) and lose Mongo's ``_id`` on the way out.
"""

from __future__ import annotations

import contextlib
import re
from typing import Any, Iterator

import pymongo
from pymongo import errors as mongo_errors

from ..errors import StoreError, StoreUnreachableError, UnknownBuildError
from .base import Store, plain

#: Database used when the URI names none (``mongodb://host:27017``).
DEFAULT_DATABASE = "anfe"
#: Top-level field names that mean the same in a Mongo filter/``$set`` as in the embedded store.
_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_USERINFO = re.compile(r"^(mongodb(?:\+srv)?://)([^@/]*)@")
#: Attempts at appending one decision before giving up (each failure means another writer won).
_APPEND_ATTEMPTS = 1000
_NO_ID = {"_id": 0}


def redact(uri: str) -> str:
    """``uri`` with the password replaced by ``***`` (safe to print in messages and logs)."""
    match = _USERINFO.match(uri)
    if not match or ":" not in match.group(2):
        return uri
    user = match.group(2).split(":", 1)[0]
    return f"{match.group(1)}{user}:***@{uri[match.end():]}"


class MongoStore(Store):
    """A :class:`Store` in a MongoDB database (named by the URI path, ``anfe`` by default).

    Collections: ``images`` (unique ``content_hash``), ``decisions`` (unique ``seq``), ``builds``
    (unique ``id``) and ``meta`` (``_id`` = key). An unreachable server raises
    :class:`~anfe.errors.StoreUnreachableError` within about ``timeout_ms``.
    """

    def __init__(self, uri: str, timeout_ms: int = 5000) -> None:
        self.uri = redact(uri)
        self.timeout_ms = int(timeout_ms)
        try:
            self._client: pymongo.MongoClient = pymongo.MongoClient(
                uri,
                serverSelectionTimeoutMS=self.timeout_ms,
                connectTimeoutMS=self.timeout_ms,
                # A server that accepts a connection but stops answering must not hang us either;
                # one operation (a large build document) gets generously more than the handshake.
                socketTimeoutMS=max(6 * self.timeout_ms, 30_000),
                appname="anfe",
            )
        except mongo_errors.ConfigurationError as exc:
            raise StoreError(
                f"bad MongoDB URI {self.uri}: {exc}; use mongodb://host:27017/database"
            ) from exc
        except (ValueError, TypeError) as exc:  # pymongo raises InvalidURI (a ValueError) for some
            raise StoreError(
                f"bad MongoDB URI {self.uri}: {exc}; use mongodb://host:27017/database"
            ) from exc
        try:
            self._db = self._client.get_default_database(DEFAULT_DATABASE)
            with self._errors("connect to"):
                # pymongo connects lazily: ask now so an absent server fails here, within the timeout.
                self._client.admin.command("ping")
                self._db.images.create_index("content_hash", unique=True, name="content_hash_unique")
                self._db.decisions.create_index("seq", unique=True, name="seq_unique")
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
        self._client.close()

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn pymongo's exceptions into the project's, naming the URI and the way out."""
        try:
            yield
        except (mongo_errors.ServerSelectionTimeoutError, mongo_errors.ConnectionFailure) as exc:
            raise StoreUnreachableError(
                f"cannot {action} MongoDB at {self.uri} within {self.timeout_ms / 1000:g} s "
                f"({_first_line(exc)}): start mongod there, or check the URI (--db / ANFE_DB)"
            ) from exc
        except mongo_errors.OperationFailure as exc:
            if exc.code in (13, 18):  # Unauthorized, AuthenticationFailed
                raise StoreError(
                    f"MongoDB at {self.uri} refused access ({_first_line(exc)}): check the user "
                    "and password in the URI, and the user's roles on the database"
                ) from exc
            raise StoreError(f"MongoDB at {self.uri} failed to {action}: {_first_line(exc)}") from exc
        except mongo_errors.PyMongoError as exc:
            raise StoreError(f"MongoDB at {self.uri} failed to {action}: {_first_line(exc)}") from exc

    # -- images ---------------------------------------------------------------------------
    def upsert_image(self, record: dict) -> None:
        doc = plain(record)
        for field in doc:
            # $set would read "a.b" as a path into a sub-document, "$x" as an operator, and
            # "_id" is Mongo's own; any other name is stored as given, as in the embedded store.
            if not field or "." in field or field.startswith("$") or field == "_id":
                raise ValueError(f"bad field name {field!r} in an image record")
        with self._errors("write to"):
            self._db.images.update_one(
                {"content_hash": doc["content_hash"]}, {"$set": doc}, upsert=True
            )

    def get_image(self, content_hash: str) -> dict | None:
        with self._errors("read from"):
            return self._db.images.find_one({"content_hash": content_hash}, _NO_ID)

    def find_images(self, **equals: Any) -> list[dict]:
        query = _equality_filter(equals)
        with self._errors("read from"):
            return list(self._db.images.find(query, _NO_ID).sort("content_hash", 1))

    def count_images(self, **equals: Any) -> int:
        query = _equality_filter(equals)
        with self._errors("read from"):
            return int(self._db.images.count_documents(query))

    # -- decisions ------------------------------------------------------------------------
    def append_decision(self, decision: dict) -> int:
        """Insert with ``seq`` = last + 1 under the unique index; a lost race just retries.

        Unlike a separate counter document, a number is taken only by the insert that stores
        it, so a reader never sees decision n+1 while n is still missing (no gaps, ever).
        """
        doc = plain({k: v for k, v in decision.items() if k not in ("seq", "_id")})
        with self._errors("append a decision to"):
            for _ in range(_APPEND_ATTEMPTS):
                last = self._db.decisions.find_one({}, {"seq": 1}, sort=[("seq", -1)])
                seq = int(last["seq"]) + 1 if last else 1
                try:
                    # A copy: insert_one adds an ``_id`` to the dict it is given.
                    self._db.decisions.insert_one({**doc, "seq": seq})
                except mongo_errors.DuplicateKeyError:
                    continue  # another writer took this number first
                return seq
        raise StoreError(
            f"could not append a decision to {self.uri} after {_APPEND_ATTEMPTS} attempts "
            "(too many concurrent writers): try again"
        )

    def decisions(self, after: int = 0) -> list[dict]:
        with self._errors("read from"):
            return list(self._db.decisions.find({"seq": {"$gt": int(after)}}, _NO_ID).sort("seq", 1))

    # -- builds ---------------------------------------------------------------------------
    def save_build(self, build: dict) -> None:
        doc = plain({k: v for k, v in build.items() if k != "_id"})
        with self._errors("save a build to"):
            self._db.builds.replace_one({"id": doc["id"]}, doc, upsert=True)

    def get_build(self, build_id: str) -> dict:
        with self._errors("read from"):
            found = self._db.builds.find_one({"id": build_id}, _NO_ID)
        if found is None:
            raise self._unknown_build(build_id)
        return found

    def list_builds(self) -> list[dict]:
        with self._errors("read from"):
            return list(self._db.builds.find({}, _NO_ID).sort("id", 1))

    def delete_build(self, build_id: str) -> None:
        with self._errors("delete a build from"):
            deleted = self._db.builds.delete_one({"id": build_id}).deleted_count
        if not deleted:
            raise self._unknown_build(build_id)

    def _unknown_build(self, build_id: str) -> UnknownBuildError:
        with self._errors("read from"):
            known = [doc["id"] for doc in self._db.builds.find({}, {"id": 1, "_id": 0}).sort("id", 1)]
        return UnknownBuildError(
            f"no build {build_id!r} in {self.uri}; known builds: {', '.join(known) or 'none'}"
        )

    # -- metadata -------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        with self._errors("read from"):
            found = self._db.meta.find_one({"_id": key})
        return None if found is None else found.get("value")

    def set_meta(self, key: str, value: Any) -> None:
        with self._errors("write to"):
            self._db.meta.replace_one({"_id": key}, {"_id": key, "value": plain(value)}, upsert=True)


def _equality_filter(equals: dict[str, Any]) -> dict[str, Any]:
    """A Mongo filter for top-level equality (None matches a missing field, as in SQLite)."""
    query: dict[str, Any] = {}
    for field, value in equals.items():
        if not _FIELD.match(field):
            raise ValueError(f"bad field name {field!r}")
        query[field] = plain(value)
    return query


def _first_line(exc: BaseException) -> str:
    """The gist of an exception's message (pymongo's carry timeouts and a topology dump after it)."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    for tail in (" (configured timeouts", ", Timeout:", ", full error:"):
        text = text.split(tail, 1)[0]
    return text[:300]
