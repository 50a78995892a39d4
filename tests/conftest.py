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


def _rows_with_absolute_paths(base: Path, csv_name: str) -> list[dict[str, str]]:
    """The rows of ``base/csv_name`` (or skip when the set is absent), each ``path`` made absolute."""
    rows = read_csv(_need(base) / csv_name)
    for row in rows:
        row["path"] = str(base / row["path"])
    return rows


@pytest.fixture(scope="session")
def utkface_rows(shared_faces: Path) -> list[dict[str, str]]:
    """UTKFace labels with absolute paths, in file order."""
    return _rows_with_absolute_paths(shared_faces / "utkface", "labels.csv")


@pytest.fixture(scope="session")
def utkface_adult_items(utkface_rows):
    """20 adult (age >= 17) UTKFace photos per gender, spread over the file list (ages, races)."""
    from anfe.core.dataset import LabelledImage

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
    """The face-count set's manifest (photos with 0, 1 or several faces), absolute paths."""
    return _rows_with_absolute_paths(shared_faces / "facecount", "manifest.csv")


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


# -- stores: the embedded file, and MongoDB (a real wire-protocol server the tests start) ----------
import os as _os  # noqa: E402  (kept with the store fixtures that need it)

STORE_BACKENDS = ("embedded", "mongodb")
#: A MongoDB of one's own for the MongoDB tests (instead of the secantusd-py the tests start).
REAL_MONGODB_ENV = "ANFE_TEST_MONGODB_URI"


@pytest.fixture(scope="session")
def secantus_server(tmp_path_factory):
    """A ``secantusd-py --standalone`` on a free loopback port with a temporary WiredTiger storage,
    for the whole session (stopped at the end). See testkit/secantus_server.py."""
    from testkit.secantus_server import SecantusServer

    with SecantusServer(tmp_path_factory.mktemp("secantus") / "data") as server:
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A secantusd-py of the module's own, with fail points (``test_commands``) and a sync on every
    commit, for the failure suites (which kill and restart it)."""
    from testkit.secantus_server import SecantusServer

    with SecantusServer(tmp_path_factory.mktemp("failures") / "data", test_commands=True,
                         sync_on_commit=True) as running:
        yield running


@pytest.fixture
def uri(server):
    """A scratch database on :func:`server`, dropped afterwards."""
    with server.scratch_database("anfe_fail") as scratch:
        yield scratch


@pytest.fixture
def messy_root(tmp_path: Path, utkface_rows, shared_faces) -> tuple[Path, Path]:
    """A dataset root with one case for every rule, and a labels CSV with ages."""
    from testkit.cleaning import make_messy_root

    return make_messy_root(tmp_path, utkface_rows, shared_faces)


@pytest.fixture(scope="session")
def mongodb_uri(request) -> str:
    """The base URI (no database) of the MongoDB server the tests use: ``$ANFE_TEST_MONGODB_URI``
    when set, else the session's secantusd-py. Tests add a unique database with
    :func:`with_database` and drop it afterwards."""
    given = _os.environ.get(REAL_MONGODB_ENV)
    if given:
        return given
    return request.getfixturevalue("secantus_server").uri()


def with_database(uri: str, database: str) -> str:
    """``uri`` pointing at ``database`` (options and credentials kept)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(uri)
    query = parts.query
    if "@" in parts.netloc and "authsource=" not in query.lower():
        # Credentials authenticate against the URI's database: keep the one they were given for.
        query = "&".join(filter(None, [query, f"authSource={parts.path.strip('/') or 'admin'}"]))
    return urlunsplit((parts.scheme, parts.netloc, f"/{database}", query, parts.fragment))


@pytest.fixture
def mongodb_database_uri(mongodb_uri: str):
    """The URI of a fresh, uniquely named database on the tests' MongoDB, dropped afterwards."""
    import uuid

    import pymongo

    database = f"anfe_test_{uuid.uuid4().hex[:12]}"
    yield with_database(mongodb_uri, database)
    with pymongo.MongoClient(mongodb_uri, serverSelectionTimeoutMS=5000) as client:
        client.drop_database(database)


@pytest.fixture(params=STORE_BACKENDS)
def store_backend_uri(request, tmp_path: Path):
    """The URI of a fresh, empty store, once per backend: a temp SQLite file, or a unique MongoDB
    database (on the tests' secantusd-py, or on $ANFE_TEST_MONGODB_URI) dropped afterwards."""
    if request.param == "embedded":
        yield f"sqlite:///{tmp_path / 'catalog.sqlite'}"
        return
    yield request.getfixturevalue("mongodb_database_uri")


@pytest.fixture(autouse=True)
def _streamlit_pages_served_on_loopback():
    """AppTest runs a page without a server: say it is on 127.0.0.1 (where `anfe review` serves by
    default). Left unset, the address means every interface to Streamlit, and the review page
    then asks for sign-in (tests/test_review_signin.py sets other addresses itself)."""
    from streamlit import config

    config.set_option("server.address", "127.0.0.1")
    yield
    config.set_option("server.address", None)


@pytest.fixture(scope="module")
def redis_server():
    """A real redis-server on a free loopback port, or skip saying how to install it."""
    from testkit.redis_server import RedisServer

    try:
        server = RedisServer()
    except FileNotFoundError as exc:
        pytest.skip(f"{exc}: the --redis crawl tests need it")
    with server:
        yield server
