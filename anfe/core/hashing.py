"""Content hashes (the file's identity) and perceptual hashes (its look), stored as hex strings."""

from __future__ import annotations

import hashlib

import imagehash
import numpy as np
from PIL import Image


def content_hash(data: bytes) -> str:
    """SHA-256 of the bytes as 64 hex digits: names files and keys every cache."""
    return hashlib.sha256(data).hexdigest()


def perceptual_hash(rgb: np.ndarray) -> str:
    """64-bit DCT perceptual hash (imagehash.phash) as 16 hex digits; round-trips via hex_to_hash."""
    return str(imagehash.phash(Image.fromarray(rgb)))
