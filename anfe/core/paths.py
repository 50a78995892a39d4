"""Where things live by default: the analysis cache (a file or a ``mongodb://`` URI, from
``--cache`` or ``$ANFE_CACHE``) and the converted ONNX models. A leaf module: the cache, the
encoders and the command line all ask here, so none of them imports another for a path."""

from __future__ import annotations

import os
from pathlib import Path


def is_cache_uri(location: str | Path) -> bool:
    """True for a MongoDB cache URI (``mongodb://`` or ``mongodb+srv://``)."""
    return isinstance(location, str) and location.startswith(("mongodb://", "mongodb+srv://"))


def cache_location(value: str | Path | None) -> str | Path:
    """What the user gave (``--cache``, ``$ANFE_CACHE``) as a location: a URI stays a string, a
    file becomes a Path; None means :func:`default_cache_path`."""
    if value is None or value == "":
        return default_cache_path()
    return value if is_cache_uri(str(value)) else Path(value)


def default_cache_path() -> str | Path:
    """``$ANFE_CACHE`` if set (a file or a mongodb:// URI), else ``$XDG_CACHE_HOME/anfe/analysis.sqlite``."""
    if os.environ.get("ANFE_CACHE"):
        value = os.environ["ANFE_CACHE"]
        return value if is_cache_uri(value) else Path(value)
    return _cache_home() / "anfe" / "analysis.sqlite"


def default_model_dir() -> Path:
    """``models/`` beside a file cache (``$ANFE_CACHE``'s folder), else ``$XDG_CACHE_HOME/anfe/models``
    (also when the cache is a MongoDB URI, which has no folder)."""
    cache = default_cache_path()
    if isinstance(cache, Path):
        return cache.parent / "models"
    return _cache_home() / "anfe" / "models"


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
