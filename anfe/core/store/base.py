"""The one store interface: the image catalog, the reviewers' decision log and the centroid builds.

Documents are plain dicts of str/int/float/bool/None/list/dict (valid BSON and JSON); the
:func:`plain` helper converts numpy values at the boundary so none leak into a backend.
"""

from __future__ import annotations

import datetime as _dt
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from ..errors import StoreVersionError

#: Version of the documents this code writes; a store written by a newer one is refused.
SCHEMA_VERSION = 1
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def plain(value: Any) -> Any:
    """``value`` with numpy scalars/arrays, tuples and paths turned into plain JSON/BSON types."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return plain(value.tolist())
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if hasattr(value, "__fspath__"):
        return str(value)
    raise TypeError(f"cannot store a {type(value).__name__} in a document: {value!r}")


T = TypeVar("T")


def by_content_hash(records: Iterable[Mapping[str, Any]], read: Callable[[Mapping[str, Any]], T | None]
                    ) -> dict[str, T]:
    """``read(record)`` by content hash, for the store records that have a hash and a value
    (e.g. :func:`anfe.core.dataset.age_of`, :func:`anfe.core.people.person_from_record`)."""
    return {str(r["content_hash"]): v
            for r in records if r.get("content_hash") and (v := read(r)) is not None}


def now_iso() -> str:
    """The current UTC time as an ISO-8601 string (how every document records time)."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class Store(ABC):
    """Images keyed by ``content_hash``; decisions in an append-only numbered log; builds by ``id``.

    Every backend indexes what the commands look images up by: ``content_hash`` (unique),
    ``status`` with ``gender``, and ``original_hash`` (the crops of a photo)."""

    uri: str

    # -- images ---------------------------------------------------------------------------
    @abstractmethod
    def upsert_image(self, record: dict) -> None:
        """Insert or merge (top-level fields) the record whose key is ``record['content_hash']``."""

    def upsert_images(self, records: Iterable[dict]) -> int:
        """:meth:`upsert_image` for many records at once (in few round trips); returns how many.

        Not one transaction: an interrupted call has written some of them, and the same call
        again writes the rest (each upsert is idempotent)."""
        count = 0
        for record in records:
            self.upsert_image(record)
            count += 1
        return count

    @abstractmethod
    def get_image(self, content_hash: str) -> dict | None:
        """The record for that hash, or None."""

    @abstractmethod
    def find_images(self, fields: Sequence[str] | None = None, **equals: Any) -> list[dict]:
        """Records whose top-level fields equal the given values (all records with no filter),
        sorted by content hash.

        With ``fields`` (top-level field names), each record holds only those of them it has
        with a value other than null (read projected records with ``.get``). Clean, review and
        build read the whole catalog this way, for a few fields: that takes about half the time
        of reading every record in full (``python bench/bench_store.py``).
        """

    def count_images(self, *, search: tuple[str, str] | None = None, **equals: Any) -> int:
        """How many records match ``equals`` (and ``search``, as in :meth:`query_images`): a count
        query on the backend, never a read of the records."""
        return len(self.query_images(["content_hash"], search=search, **equals))

    # -- paged queries (what a page shows, at a cost independent of the catalog's size) ---------
    @abstractmethod
    def query_images(self, fields: Sequence[str] | None = None, *, sort: Sequence[tuple[str, int]] = (),
                     skip: int = 0, limit: int | None = None, search: tuple[str, str] | None = None,
                     **equals: Any) -> list[dict]:
        """One page of the records whose top-level fields equal ``equals`` (None: missing or null):
        ordered by ``sort`` (``(field, 1)`` ascending, ``(field, -1)`` descending; records lacking
        a field sort as null: first ascending, last descending), ties by content hash in the
        direction of the last sort key; ``skip``
        records left out, at most ``limit`` returned. ``search`` = (field, text): only records whose
        string field holds ``text``, ignoring case. ``fields`` projects as :meth:`find_images`.

        With an index on the equality fields followed by the sort fields (:meth:`ensure_index`),
        the cost grows with ``skip + limit``, not with the catalog."""

    @abstractmethod
    def count_by(self, field: str, **equals: Any) -> dict[Any, int]:
        """Among the records matching ``equals``: how many per value of ``field`` (None: missing),
        counted by the backend (a group-by), never by reading the records."""

    @abstractmethod
    def ensure_index(self, fields: Sequence[str]) -> None:
        """Create (once; later calls are free) an index on these top-level fields, in order."""

    # -- decisions ------------------------------------------------------------------------
    @abstractmethod
    def append_decision(self, decision: dict) -> int:
        """Append to the log atomically (safe with several writers); returns its sequence number."""

    @abstractmethod
    def decisions(self, after: int = 0) -> list[dict]:
        """Logged decisions with ``seq > after``, oldest first, each with its ``seq``."""

    # -- builds ---------------------------------------------------------------------------
    @abstractmethod
    def save_build(self, build: dict) -> None:
        """Save (replace) the build whose key is ``build['id']``."""

    @abstractmethod
    def get_build(self, build_id: str) -> dict:
        """The build; raises :class:`~anfe.core.errors.UnknownBuildError` naming the known ids."""

    @abstractmethod
    def list_builds(self) -> list[dict]:
        """Every build, sorted by id."""

    @abstractmethod
    def delete_build(self, build_id: str) -> None:
        """Remove a build (unknown ids raise UnknownBuildError)."""

    # -- metadata -------------------------------------------------------------------------
    @abstractmethod
    def get_meta(self, key: str) -> Any:
        """A small metadata value, or None."""

    @abstractmethod
    def set_meta(self, key: str, value: Any) -> None:
        """Set a small metadata value."""

    def close(self) -> None:
        """Release connections (the store cannot be used afterwards)."""

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check_schema(self) -> None:
        """Refuse a store written by a newer version; stamp a new one with ours."""
        found = self.get_meta("schema_version")
        if found is None:
            self.set_meta("schema_version", SCHEMA_VERSION)
        elif int(found) > SCHEMA_VERSION:
            raise StoreVersionError(
                f"{self.uri} was written by a newer version (schema {found}, this one reads "
                f"{SCHEMA_VERSION}): upgrade with `pip install -U anfe-faces`"
            )


def sort_spec(sort: Sequence[tuple[str, int]]) -> list[tuple[str, int]]:
    """``sort`` checked: plain field names, each with 1 or -1; content hash added last in the last
    key's direction (a total order an index can serve in one scan, forwards or backwards)."""
    spec = []
    for name, direction in sort:
        if not isinstance(name, str) or not _FIELD_NAME.match(name) or direction not in (1, -1):
            raise ValueError(f"bad sort key {(name, direction)!r}: use (field_name, 1) or (field_name, -1)")
        spec.append((name, int(direction)))
    if not any(name == "content_hash" for name, _ in spec):
        spec.append(("content_hash", spec[-1][1] if spec else 1))
    return spec


def check_page(skip: int, limit: int | None) -> None:
    """Refuse a negative skip or limit (a slip that would otherwise read everything)."""
    if int(skip) < 0 or (limit is not None and int(limit) < 0):
        raise ValueError(f"skip and limit must not be negative (got {skip}, {limit})")


def field_names(fields: Sequence[str]) -> list[str]:
    """The distinct top-level field names of a ``find_images`` projection, in order.

    Raises ValueError for a bare string (a common slip for a one-field tuple), an empty
    projection, or a name that is not a plain identifier."""
    if isinstance(fields, str):
        raise ValueError(f"fields must be a sequence of field names, not the string {fields!r}")
    names = list(dict.fromkeys(fields))
    if not names:
        raise ValueError("fields names no field: pass None to read whole records")
    for name in names:
        if not isinstance(name, str) or not _FIELD_NAME.match(name):
            raise ValueError(f"bad field name {name!r}")
    return names
