"""Frozen parameter sets that change analysis results; built by the CLI and passed down explicitly."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .pyramid import DetectionPolicy

#: Bumped when the analysis code changes its output for the same parameters (invalidates caches).
ANALYSIS_VERSION = 1

#: Pillow-decoded images above this many pixels are refused unopened (decompression bombs).
DEFAULT_MAX_PIXELS = 80_000_000

ENCODERS = ("onnx", "dlib")
#: "exact": dlib's detector on the whole pyramid (the reference); "sized": the pyramid levels that
#: only find faces below the size policy are skipped (anfe.core.pyramid; the same boxes otherwise).
DETECT_MODES = ("exact", "sized")
DEVICES = ("auto", "cpu", "cuda")
DETECTORS = ("hog", "cnn", "cnn-dlib")


@dataclass(frozen=True)
class AnalysisParams:
    """Everything that changes what the analysis pass returns for the same image bytes.

    detector: "hog" (fast, CPU), "cnn" (dlib's MMOD detector, more poses, converted to ONNX and run
        on ONNX Runtime, CUDA when present; the same boxes as dlib's) or "cnn-dlib" (dlib's own
        CNN code: the reference, and the fallback when ONNX Runtime is missing).
    upsample: times the image is doubled before detection (finds smaller faces, costs ~4x each).
    max_side: if set, images whose longer side exceeds it are scaled down for detection only;
        boxes are mapped back and landmarks/embeddings use the full-resolution image.
    jitters: dlib re-samples each face this many times and averages (1 = as face_recognition).
    encoder: "onnx" (dlib's network on ONNX Runtime, batched) or "dlib" (the reference).
    device: "auto", "cpu" or "cuda": where the ONNX encoder runs.
    threads: ONNX Runtime threads per process (0: its default, every core).
    detect: "exact" (HOG on every pyramid level, the reference) or "sized" (the levels that only
        find faces smaller than ``min_face`` px or ``min_face_share`` of the shorter side are
        skipped; every larger face keeps exactly its ``exact`` box, see :mod:`anfe.core.pyramid`).
        HOG only; with ``max_side`` (which scales the photo instead) or the CNN it is exact.

    ``encoder``, ``device`` and ``threads`` are not part of :attr:`cache_key`: the two encoders
    give the same embeddings (tested to 1e-5 per component), so either one's cached results
    are valid for both; each cached face records which encoder computed it.
    """

    detector: str = "hog"
    upsample: int = 1
    max_side: int | None = None
    jitters: int = 1
    max_pixels: int = DEFAULT_MAX_PIXELS
    encoder: str = "onnx"
    device: str = "auto"
    threads: int = 0
    detect: str = "sized"  # measured: no face count or decision changed (bench/bench_detection.py)
    min_face: int = 40
    min_face_share: float = 0.1

    def __post_init__(self) -> None:
        if self.detector not in DETECTORS:
            raise ValueError(f"detector must be one of {DETECTORS}, not {self.detector!r}")
        if self.encoder not in ENCODERS or self.device not in DEVICES or self.threads < 0:
            raise ValueError(f"encoder must be one of {ENCODERS}, device one of {DEVICES}, threads >= 0")
        if self.upsample < 0 or self.jitters < 1:
            raise ValueError("upsample must be >= 0 and jitters >= 1")
        if self.max_side is not None and self.max_side < 64:
            raise ValueError("max_side must be at least 64 pixels")
        if self.detect not in DETECT_MODES:
            raise ValueError(f"detect must be one of {DETECT_MODES}, not {self.detect!r}")
        DetectionPolicy(self.min_face, self.min_face_share)  # validates them

    @property
    def policy(self) -> DetectionPolicy | None:
        """The size policy when it applies (``sized``, HOG, no ``max_side``), else None (exact)."""
        if self.detect != "sized" or self.detector != "hog" or self.max_side is not None:
            return None
        return DetectionPolicy(self.min_face, self.min_face_share)

    @property
    def cache_key(self) -> str:
        """A short stable string naming these parameters, used as part of the cache key."""
        side = self.max_side or 0
        key = (
            f"v{ANALYSIS_VERSION}-{self.detector}-u{self.upsample}-s{side}-j{self.jitters}"
            f"-p{self.max_pixels}"
        )
        if self.policy is not None:  # exact keeps the key it always had: old caches stay valid
            key += f"-dsized{self.min_face}x{self.min_face_share:g}"
        return key

    @property
    def embedding_model(self) -> dict:
        """The provenance recorded with builds: which model and parameters made the embeddings."""
        result = {
            "encoder": "dlib_face_recognition_resnet_model_v1",
            "landmarks": "shape_predictor_5_face_landmarks",
            **asdict(self),
            "analysis_version": ANALYSIS_VERSION,
        }
        # How the numbers were computed, not which numbers: the encoders agree (see above), and
        # a build's embeddings may come from the cache, computed by either (the cache says which).
        for name in ("encoder", "device", "threads"):
            del result[name]
        result["encoder"] = "dlib_face_recognition_resnet_model_v1"
        return result
