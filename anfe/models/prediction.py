"""Predict a face's gender by its nearest centroid of a build, saying "unknown" when unsure.

An image is "unknown" when it holds no face, several faces (each is still reported, with its
box), cannot be read, or its face lies farther from every centroid than the working range
(a face unlike any training face: a drawing, an animal, a badly cropped face).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from anfe.faces.analysis import ImageAnalysis
from anfe.faces.checks import MANY_FACES, NO_FACE, OUT_OF_RANGE
from anfe.faces.batch import analyse_paths
from .distance import distances
from .builds import params_from_build
from anfe.faces.cache import AnalysisCache
from anfe.core.config import AnalysisParams

UNKNOWN = "unknown"
#: Working range when a build records none: dlib's own "same person" tolerance is 0.6, and a
#: face's distance to its gender's average is ~0.6 (paper, Figure 7); a face beyond 0.8 is unlike
#: nearly every training face.
DEFAULT_MAX_DISTANCE = 0.8


class CentroidModel:
    """A build's centroids as arrays: distance of a face to each gender = to its nearest centroid."""

    def __init__(self, build: dict) -> None:
        self.build_id = build["id"]
        self.genders = sorted(build["centroids"])
        parts = [np.asarray(build["centroids"][g], dtype=np.float64) for g in self.genders]
        self._matrix = np.vstack([p.reshape(-1, p.shape[-1]) for p in parts])
        self._owner = np.concatenate([np.full(len(p.reshape(-1, p.shape[-1])), i) for i, p in enumerate(parts)])

    def distances(self, vectors: np.ndarray) -> np.ndarray:
        """Shape (n, genders): each face's distance to the nearest centroid of each gender."""
        every = distances(vectors, self._matrix)
        return np.stack([every[:, self._owner == i].min(axis=1) for i in range(len(self.genders))], axis=1)


def default_max_distance(build: dict) -> float:
    """The build's working range: the largest member-to-centroid distance seen in training
    (recorded at build time), but never below :data:`DEFAULT_MAX_DISTANCE` (a small build has
    seen too few faces to know its range)."""
    recorded = (build.get("member_distance") or {}).get("max") or 0.0
    return max(float(recorded), DEFAULT_MAX_DISTANCE)


@dataclass(frozen=True)
class FacePrediction:
    """One face: its box, its nearest gender, its distance to each gender, and the margin."""

    box: tuple[int, int, int, int]
    gender: str
    distances: dict[str, float]
    distance: float
    margin: float
    in_range: bool


@dataclass(frozen=True)
class ImagePrediction:
    """One image's verdict (a gender or ``unknown``), why, and every face found in it."""

    path: str
    content_hash: str
    verdict: str
    reason: str | None = None
    faces: tuple[FacePrediction, ...] = ()
    detail: str = ""

    def to_dict(self) -> dict:
        out = asdict(self)
        out["faces"] = [{**asdict(f), "box": list(f.box)} for f in self.faces]
        return out

    def describe(self) -> str:
        """One line for people: ``path: male (male 0.512, female 0.611; margin 0.099)``."""
        if self.verdict != UNKNOWN:
            return f"{self.path}: {self.verdict} ({_face_text(self.faces[0])})"
        if self.reason == MANY_FACES.name:
            faces = "; ".join(f"box {list(f.box)} nearest {f.gender} ({_face_text(f)})" for f in self.faces)
            return f"{self.path}: unknown (several faces: {len(self.faces)}: {faces})"
        if self.reason == OUT_OF_RANGE.name:
            return f"{self.path}: unknown (face beyond the working range: {_face_text(self.faces[0])})"
        if self.reason == NO_FACE.name:
            return f"{self.path}: unknown (no face found)"
        return f"{self.path}: unknown ({self.reason}: {self.detail})"


def _face_text(face: FacePrediction) -> str:
    parts = ", ".join(f"{g} {d:.3f}" for g, d in face.distances.items())
    return f"{parts}; margin {face.margin:.3f}"


def predict_analysis(model: CentroidModel, path: str, analysis: ImageAnalysis, max_distance: float) -> ImagePrediction:
    """The verdict for one analysed image."""
    if analysis.error:
        return ImagePrediction(path, analysis.content_hash, UNKNOWN, analysis.error, detail=analysis.error_detail or "")
    if not analysis.faces:
        return ImagePrediction(path, analysis.content_hash, UNKNOWN, NO_FACE.name)
    table = model.distances(np.stack([f.embedding for f in analysis.faces]))
    faces = []
    for face, row in zip(analysis.faces, table):
        order = np.argsort(row)
        nearest = float(row[order[0]])
        margin = float(row[order[1]] - row[order[0]]) if len(row) > 1 else 0.0
        faces.append(FacePrediction(
            tuple(int(v) for v in face.box), model.genders[order[0]],
            {g: float(d) for g, d in zip(model.genders, row)}, nearest, margin, nearest <= max_distance,
        ))
    if len(faces) > 1:
        return ImagePrediction(path, analysis.content_hash, UNKNOWN, MANY_FACES.name, tuple(faces))
    if not faces[0].in_range:
        return ImagePrediction(path, analysis.content_hash, UNKNOWN, OUT_OF_RANGE.name, tuple(faces))
    return ImagePrediction(path, analysis.content_hash, faces[0].gender, None, tuple(faces))


def predict_paths(
    paths: Sequence[str | Path],
    build: dict,
    params: AnalysisParams | None = None,
    cache: AnalysisCache | None = None,
    workers: int = 1,
    max_distance: float | None = None,
    progress: bool = False,
) -> list[ImagePrediction]:
    """Analyse the images (cached; with the build's own analysis parameters unless given) and
    predict each one with the build."""
    params = params or params_from_build(build)
    model = CentroidModel(build)
    limit = default_max_distance(build) if max_distance is None else max_distance
    analyses, _ = analyse_paths(paths, params, cache, workers, progress)
    return [predict_analysis(model, str(p), analyses[str(p)], limit) for p in paths]


__all__ = [
    "CentroidModel", "DEFAULT_MAX_DISTANCE", "FacePrediction", "ImagePrediction", "UNKNOWN",
    "default_max_distance", "predict_analysis", "predict_paths",
]
