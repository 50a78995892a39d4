"""The one analysis pass per image: decode, detect, landmarks, embedding, size and perceptual hash."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import AnalysisParams
from .errors import ImageError
from .faces import DetectedFace, analyse_faces
from .hashing import content_hash, perceptual_hash
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
    digest = digest or content_hash(data)
    timings: dict[str, float] = {}
    start = time.perf_counter()
    try:
        rgb = decode_image(data, params.max_pixels)
    except ImageError as exc:
        return ImageAnalysis(digest, error=exc.reason, error_detail=str(exc))
    timings["decode"] = time.perf_counter() - start
    start = time.perf_counter()
    phash = perceptual_hash(rgb)
    timings["phash"] = time.perf_counter() - start
    faces = analyse_faces(rgb, params, timings)
    height, width = rgb.shape[:2]
    return ImageAnalysis(digest, width, height, phash, tuple(faces), timings=timings)


def analyse_file(path: str | Path, params: AnalysisParams) -> ImageAnalysis:
    """Read and analyse one file (an unreadable path is reported as ``error='unreadable'``)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        return ImageAnalysis("", error="unreadable", error_detail=f"cannot read {path}: {exc}")
    return analyse_bytes(data, params)
