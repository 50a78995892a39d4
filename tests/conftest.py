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
