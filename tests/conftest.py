"""Shared fixtures: the real photos in ../shared/data, fresh caches and stores."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_FACES = ROOT.parent / "shared" / "data" / "faces"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real images not found at {path} (the shared data folder must sit beside the checkout)")
    return path


@pytest.fixture(scope="session")
def shared_faces() -> Path:
    """../shared/data/faces, or skip with the reason."""
    return _need(SHARED_FACES)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="session")
def utkface_rows(shared_faces: Path) -> list[dict[str, str]]:
    """UTKFace labels with absolute paths, in file order."""
    base = _need(shared_faces / "utkface")
    rows = read_csv(base / "labels.csv")
    for row in rows:
        row["path"] = str(base / row["path"])
    return rows


@pytest.fixture(scope="session")
def utkface_adult_items(utkface_rows):
    """20 adult (age >= 17) UTKFace photos per gender, spread over the file list (ages, races)."""
    from anfe.dataset import LabelledImage

    chosen = []
    for gender in ("male", "female"):
        adults = [r for r in utkface_rows if r["gender"] == gender and int(r["age"]) >= 17]
        step = max(1, len(adults) // 20)
        chosen += [LabelledImage(Path(r["path"]), gender, {"age": r["age"], "race": r["race"]})
                   for r in adults[::step][:20]]
    return chosen


@pytest.fixture(scope="session")
def lfw_labels(shared_faces: Path) -> Path:
    """The LFW labels CSV (people with identities: what the demo site needs), or skip."""
    return _need(shared_faces / "lfw" / "labels.csv")


@pytest.fixture(scope="session")
def facecount_rows(shared_faces: Path) -> list[dict[str, str]]:
    base = _need(shared_faces / "facecount")
    rows = read_csv(base / "manifest.csv")
    for row in rows:
        row["path"] = str(base / row["path"])
    return rows


@pytest.fixture(scope="session")
def session_cache_path(tmp_path_factory) -> Path:
    """One analysis cache for the whole test session, so real dlib work is done once per image."""
    return tmp_path_factory.mktemp("cache") / "analysis.sqlite"


@pytest.fixture
def tmp_cache_path(tmp_path: Path) -> Path:
    """A cache of one's own (tests that count dlib calls need an empty one)."""
    return tmp_path / "analysis.sqlite"


@pytest.fixture(autouse=True)
def _no_user_cache(monkeypatch, tmp_path_factory):
    """Tests never read or write the user's ~/.cache/anfe."""
    monkeypatch.setenv("ANFE_CACHE", str(tmp_path_factory.getbasetemp() / "default-cache.sqlite"))
    monkeypatch.delenv("ANFE_DB", raising=False)


# -- stores: the embedded file, the MongoDB stand-in, and a real MongoDB when one is given --------
import os as _os  # noqa: E402  (kept with the store fixtures that need it)

STORE_BACKENDS = ("embedded", "mongo-standin", "mongo-real")
REAL_MONGODB_ENV = "ANFE_TEST_MONGODB_URI"
_NO_REAL_MONGODB = pytest.mark.skipif(
    not _os.environ.get(REAL_MONGODB_ENV),
    reason=f"set {REAL_MONGODB_ENV}=mongodb://host:27017 to run the store tests on a real MongoDB",
)


@pytest.fixture(scope="session")
def mongo_standin():
    """A MongoDB wire-protocol server on a free loopback port (mongomock behind it); see tests/mongo_standin.py."""
    from mongo_standin import MongoStandIn

    with MongoStandIn() as server:
        yield server


def _with_database(uri: str, database: str) -> str:
    """``uri`` pointing at ``database`` (options and credentials kept)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    query = parts.query
    if "@" in parts.netloc and "authsource=" not in query.lower():
        # Credentials authenticate against the URI's database: keep the one they were given for.
        query = "&".join(filter(None, [query, f"authSource={parts.path.strip('/') or 'admin'}"]))
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", query, parts.fragment))


@pytest.fixture(
    params=[
        pytest.param(name, marks=[_NO_REAL_MONGODB] if name == "mongo-real" else [])
        for name in STORE_BACKENDS
    ]
)
def store_backend_uri(request, tmp_path: Path):
    """The URI of a fresh, empty store, once per backend: a temp SQLite file, or a unique MongoDB
    database (on the stand-in, or on $ANFE_TEST_MONGODB_URI) dropped afterwards."""
    import uuid

    if request.param == "embedded":
        yield f"sqlite:///{tmp_path / 'catalog.sqlite'}"
        return
    import pymongo

    base = (
        request.getfixturevalue("mongo_standin").uri()
        if request.param == "mongo-standin"
        else _os.environ[REAL_MONGODB_ENV]
    )
    database = f"anfe_test_{uuid.uuid4().hex[:12]}"
    yield _with_database(base, database)
    with pymongo.MongoClient(base, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(database)
