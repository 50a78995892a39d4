"""Decode any image Pillow reads into 8-bit RGB in its upright orientation, refusing bad input early."""

from __future__ import annotations

import base64
import io
import threading
import warnings
from pathlib import Path

import numpy as np
from contextlib import contextmanager

from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from anfe.core.errors import (
    EmptyFileError,
    ImageError,
    ImageTooLargeError,
    NotAnImageError,
    TruncatedImageError,
)


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Open ``data`` lazily (header only) and refuse empty, non-image or oversized input."""
    if not data:
        raise EmptyFileError("the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"decompression bomb refused: {exc}") from exc
    except UnidentifiedImageError as exc:
        raise NotAnImageError("not an image Pillow can read") from exc
    except OSError as exc:  # e.g. a JPEG cut inside its header ("Truncated File Read")
        raise TruncatedImageError(f"truncated image: {exc}") from exc
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLargeError(
            f"{width}x{height} = {width * height:,} pixels is over the limit of {max_pixels:,}"
        )
    return image


def to_rgb_array(image: Image.Image) -> np.ndarray:
    """Load ``image`` and return an upright HxWx3 uint8 RGB array (alpha composited on white)."""
    with _decode_errors():
        with _STRICT:
            image.load()
        image = ImageOps.exif_transpose(image)
    return _normalise_mode(image)


def check_decodes(image: Image.Image) -> None:
    """Decode every byte of ``image`` (opened by :func:`open_image`) or raise the ImageError of a
    truncated or broken file. A JPEG is decoded in draft mode: all its entropy-coded data is read
    (a cut or broken file fails as in a full decode) but pixels are rebuilt at 1/8 scale, which
    costs about half as much. The image's ``size`` changes: read it before."""
    with _decode_errors():
        if image.format in ("JPEG", "MPO"):
            image.draft("RGB", (1, 1))
        with _STRICT:
            image.load()


@contextmanager
def _decode_errors():
    """Pillow's decoding errors as ImageErrors (truncated, or another decoding failure)."""
    try:
        yield
    except OSError as exc:
        message = str(exc)
        if "truncated" in message or "broken data stream" in message:
            raise TruncatedImageError(f"truncated image: {message}") from exc
        raise ImageError(f"cannot decode image: {message}") from exc
    except (ValueError, SyntaxError) as exc:
        raise ImageError(f"cannot decode image: {exc}") from exc


class _StrictLoading:
    """Refuse truncated files even if another library (face_recognition does) switched Pillow's
    global LOAD_TRUNCATED_IMAGES on. Decoding threads share that global: the first to enter saves
    and clears it, the last to leave restores it, so none ever sees it on mid-decode."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._inside = 0
        self._saved = False

    def __enter__(self) -> None:
        with self._lock:
            if self._inside == 0:
                self._saved = ImageFile.LOAD_TRUNCATED_IMAGES
                ImageFile.LOAD_TRUNCATED_IMAGES = False
            self._inside += 1

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._inside -= 1
            if self._inside == 0:
                ImageFile.LOAD_TRUNCATED_IMAGES = self._saved


_STRICT = _StrictLoading()


def _normalise_mode(image: Image.Image) -> np.ndarray:
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        top = values.max() if values.size else 0.0
        scale = 255.0 / top if top > 255 else 1.0
        grey = np.clip(values * scale, 0, 255).astype(np.uint8)
        return np.repeat(grey[:, :, None], 3, axis=2)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode != "RGB":
        image = image.convert("RGB")
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8))


def decode_image(data: bytes, max_pixels: int) -> np.ndarray:
    """Bytes to an upright 8-bit RGB array; raises an :class:`ImageError` subclass on bad input."""
    return to_rgb_array(open_image(data, max_pixels))


def thumbnail_jpeg(path: str | Path, side: int, max_pixels: int, quality: int = 85) -> bytes:
    """A JPEG of the image at ``path`` (upright, longer side at most ``side``) for reports and pages.

    Decodes through :func:`decode_image`, so bombs and broken files raise :class:`ImageError`
    (and a missing file ``OSError``) instead of reaching Pillow unguarded.
    """
    small = Image.fromarray(decode_image(Path(path).read_bytes(), max_pixels))
    small.thumbnail((side, side))
    out = io.BytesIO()
    small.save(out, "JPEG", quality=quality)
    return out.getvalue()


def thumbnail_data_url(path: str | Path, side: int, max_pixels: int, quality: int = 85) -> str | None:
    """:func:`thumbnail_jpeg` as a ``data:`` URL, so a page carries its pictures itself (it stays
    whole when files move, and no separate URL serves them); None when the file cannot be read."""
    try:
        data = thumbnail_jpeg(path, side, max_pixels, quality)
    except (OSError, ImageError):  # a thumbnail is decoration: a bad file must not stop a page
        return None
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")
