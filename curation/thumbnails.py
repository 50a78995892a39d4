"""Thumbnails made once per photo and kept on disk by content hash (``<root>/.thumbnails/``), so a
page rerun reads a few small files instead of decoding every photo it shows again.

A thumbnail is derived data: a missing, torn or unreadable one is simply made again; a photo that
cannot be decoded gives None (the page shows a line instead), never an error.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

from anfe.core.config import DEFAULT_MAX_PIXELS
from anfe.core.crashpoints import crash_point
from anfe.core.errors import ImageError
from anfe.core.layout import write_atomically
from anfe.faces.imaging import thumbnail_jpeg

#: The folder inside a dataset root that holds the thumbnails (one subfolder per size).
FOLDER = ".thumbnails"
#: A content hash as the files are named (hex); anything else is never used as a file name here.
_HASH = re.compile(r"^[0-9a-f]{16,128}$")
_JPEG_START, _JPEG_END = b"\xff\xd8", b"\xff\xd9"


def thumbnail_path(root: Path, content_hash: str, side: int) -> Path | None:
    """Where the thumbnail of that photo is kept, or None for a hash that is not plain hex."""
    if not _HASH.match(content_hash):
        return None
    return Path(root) / FOLDER / str(int(side)) / content_hash[:2] / f"{content_hash}.jpg"


def _whole(data: bytes) -> bool:
    """A complete JPEG (a write cut short by a crash is made again)."""
    return data.startswith(_JPEG_START) and data.rstrip(b"\0").endswith(_JPEG_END)


def _keep(path: Path, data: bytes) -> None:
    """Write through a temporary file and a rename (no fsync: a lost thumbnail is made again); a
    read-only or full disk costs the kept copy only (no temporary file is left behind)."""
    try:
        write_atomically(path, data, sync=False)
    except OSError:
        return
    crash_point("review.thumbnail")


def thumbnail(root: Path, photo: Path, content_hash: str, side: int = 256,
              max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes | None:
    """The JPEG thumbnail of ``photo`` (content ``content_hash``): read from the cache, or made
    once and kept there. None when the photo cannot be read."""
    kept = thumbnail_path(root, content_hash, side) if Path(photo).stem == content_hash else None
    if kept is not None:
        try:
            data = kept.read_bytes()
        except OSError:
            data = b""
        if _whole(data):
            return data
    try:
        data = thumbnail_jpeg(photo, side, max_pixels)
    except (OSError, ImageError):
        return None
    if kept is not None:
        _keep(kept, data)
    return data


def data_url(jpeg: bytes) -> str:
    """A JPEG as a ``data:`` URL (the page carries its pictures itself; no URL serves them)."""
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii")


__all__ = ["FOLDER", "data_url", "thumbnail", "thumbnail_path"]
