"""Open the store named by a URI: the embedded SQLite file by default, or ``mongodb://``.

Like Scrapy's ``STORE_SCHEMES``: the scheme picks the backend, and pymongo is imported only
by those who ask for MongoDB.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import StoreError
from .base import SCHEMA_VERSION, Store, by_content_hash, now_iso, plain

#: File name of the embedded store inside a dataset root.
CATALOG_NAME = "catalog.sqlite"

__all__ = [
    "CATALOG_NAME", "SCHEMA_VERSION", "STORE_SCHEMES", "Store", "by_content_hash", "default_store_uri", "now_iso",
    "open_store", "plain",
]


def default_store_uri(dataset_root: str | Path) -> str:
    """The embedded store of a dataset: ``sqlite:///<root>/catalog.sqlite``."""
    return f"sqlite:///{Path(dataset_root).resolve() / CATALOG_NAME}"


def _sqlite(uri: str, timeout_ms: int) -> Store:
    from .embedded import EmbeddedStore

    # As SQLAlchemy: sqlite:///relative/path, sqlite:////absolute/path; a plain path is a file too.
    if "://" in uri and not uri.startswith("sqlite:///"):
        raise StoreError(f"cannot read the store URI {uri!r}: write sqlite:///path/to/catalog.sqlite")
    return EmbeddedStore(uri.removeprefix("sqlite:///"))


def _mongodb(uri: str, timeout_ms: int) -> Store:
    from .mongo import MongoStore  # pymongo only for those who ask for MongoDB

    return MongoStore(uri, timeout_ms=timeout_ms)


#: URI scheme -> the function that opens a store of that kind (a new backend is one more row).
STORE_SCHEMES = {"sqlite": _sqlite, "": _sqlite, "mongodb": _mongodb, "mongodb+srv": _mongodb}  # "": a file path


def open_store(uri: str | None, dataset_root: str | Path | None = None, timeout_ms: int = 5000) -> Store:
    """The store at ``uri`` (``sqlite:///path``, a plain file path, or ``mongodb://...``), opened by
    the :data:`STORE_SCHEMES` row of its scheme.

    With no URI, the embedded store of ``dataset_root``. An unreachable MongoDB raises
    :class:`~anfe.core.errors.StoreUnreachableError` within ``timeout_ms``.
    """
    if not uri:
        if dataset_root is None:
            raise StoreError("no store given: pass a store URI or a dataset root")
        uri = default_store_uri(dataset_root)
    scheme = uri.partition("://")[0] if "://" in uri else ""
    if scheme not in STORE_SCHEMES:
        raise StoreError(
            f"unknown store URI {uri!r}: use sqlite:///path/to/catalog.sqlite or mongodb://host/db"
        )
    return STORE_SCHEMES[scheme](uri, timeout_ms)
