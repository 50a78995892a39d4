"""The one analysis pass per image: decode, detect, landmarks, embedding, size and perceptual hash.

:func:`analyse_many` analyses several images together so that the encoder sees all their faces
in one batch; :func:`analyse_bytes` is the one-image case.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from anfe.core.config import AnalysisParams
from anfe.core.errors import ImageError
from .detection import DetectedFace, FaceBatch
from anfe.core.hashing import content_hash, perceptual_hash
from .imaging import decode_image


@dataclass(frozen=True)
class ImageAnalysis:
    """What one image holds. ``error`` is a reason code when the image could not be used."""

    content_hash: str
    width: int = 0
    height: int = 0
    phash: str | None = None
    faces: tuple[DetectedFace, ...] = ()
    error: str | None = None
    error_detail: str | None = None
    timings: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def face_count(self) -> int:
        return len(self.faces)

    @property
    def single_embedding(self) -> np.ndarray | None:
        """The embedding when the image holds exactly one face, else None."""
        return self.faces[0].embedding if len(self.faces) == 1 else None


def analyse_bytes(data: bytes, params: AnalysisParams, digest: str | None = None) -> ImageAnalysis:
    """Analyse one image's bytes; a bad image becomes an analysis with ``error`` set, never a raise."""
    return analyse_many([(data, digest)], params)[0]


def analyse_many(
    blobs: Sequence[tuple[bytes, str | None]], params: AnalysisParams
) -> list[ImageAnalysis]:
    """Analyse several images' bytes (each with its content hash, or None to compute it), their
    faces encoded in one batch; results in the same order. A bad image is an analysis with
    ``error`` set; it never stops the others."""
    batch = FaceBatch(params)
    staged: list[ImageAnalysis | tuple] = []
    for data, digest in blobs:
        digest = digest or content_hash(data)
        timings: dict[str, float] = {}
        start = time.perf_counter()
        try:
            rgb = decode_image(data, params.max_pixels)
        except ImageError as exc:
            staged.append(ImageAnalysis(digest, error=exc.reason, error_detail=str(exc)))
            continue
        timings["decode"] = time.perf_counter() - start
        start = time.perf_counter()
        phash = perceptual_hash(rgb)
        timings["phash"] = time.perf_counter() - start
        index = batch.add(rgb, timings)
        height, width = rgb.shape[:2]
        staged.append((digest, width, height, phash, index, timings))
        del rgb  # only the chips stay until the batch is encoded
    faces = batch.finish()
    return [
        item if isinstance(item, ImageAnalysis)
        else ImageAnalysis(item[0], item[1], item[2], item[3], tuple(faces[item[4]]), timings=item[5])
        for item in staged
    ]


def analyse_file(path: str | Path, params: AnalysisParams) -> ImageAnalysis:
    """Read and analyse one file (an unreadable path is reported as ``error='unreadable'``)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return ImageAnalysis("", error="unreadable", error_detail=f"cannot read {path}: {exc}")
    return analyse_bytes(data, params)
