"""The small public API, in the style of face_recognition's ``api.py``: analyse an image, embed
its faces, load a build, predict a gender. Plain values in and out (paths or bytes; numpy arrays,
tuples and dataclasses back); the dlib models load on the first call that needs them, once per
process. Everything else (batches, caches, executors, sweeps) is in the rooms below.

    >>> import anfe
    >>> build = anfe.load_build("b-20k-k1-s0", root="dataset/")      # doctest: +SKIP
    >>> anfe.predict("photo.jpg", build).describe()                  # doctest: +SKIP
    'photo.jpg: female (female 0.412, male 0.583; margin 0.171)'
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from anfe.core.config import AnalysisParams
from anfe.core.errors import ImageError
from anfe.core.store import open_store
from anfe.faces.analysis import ImageAnalysis, analyse_bytes, analyse_file
from anfe.models.builds import params_from_build
from anfe.models.prediction import CentroidModel, ImagePrediction, default_max_distance, predict_analysis

#: An image: a file path or the file's bytes (JPEG, PNG, WebP...).
Image = str | os.PathLike | bytes

__all__ = ["Image", "analyse", "embed", "load_build", "predict"]


def analyse(image: Image, params: AnalysisParams | None = None) -> ImageAnalysis:
    """Every face in ``image``: boxes as ``(top, right, bottom, left)``, landmarks, 128-D
    embeddings, plus the content and perceptual hashes. A bad image is returned with ``error``
    set (a reason code such as ``not-an-image``), never raised."""
    params = params or AnalysisParams()
    if isinstance(image, bytes):
        return analyse_bytes(image, params)
    return analyse_file(Path(image), params)


def embed(image: Image, params: AnalysisParams | None = None) -> list[np.ndarray]:
    """The 128-D embedding of each face in ``image`` (empty when there is none). Two photos of
    one person are usually within 0.6 of each other (dlib's same-person tolerance), two copies of
    one photo within 0.4. Raises :class:`~anfe.core.errors.ImageError` for an unusable image."""
    analysis = analyse(image, params)
    if analysis.error:
        raise ImageError(analysis.error_detail or analysis.error, analysis.error)
    return [face.embedding for face in analysis.faces]


def load_build(build_id: str, db: str | None = None, root: str | os.PathLike | None = None) -> dict:
    """The build ``build_id`` from the store at ``db`` (a URI) or the dataset ``root``'s own
    store. Raises :class:`~anfe.core.errors.UnknownBuildError` naming the known ids."""
    with open_store(db, root) as store:
        return store.get_build(build_id)


def predict(image: Image, build: dict, max_distance: float | None = None) -> ImagePrediction:
    """The gender of the one face in ``image`` by its nearest centroid of ``build``, or
    ``unknown`` with the reason (no face, several faces, a face beyond the build's working range,
    which is the largest member distance seen in training unless ``max_distance`` is given). The
    image is analysed with the build's own parameters, as its members were."""
    analysis = analyse(image, params_from_build(build))
    limit = default_max_distance(build) if max_distance is None else max_distance
    name = "<bytes>" if isinstance(image, bytes) else str(image)
    return predict_analysis(CentroidModel(build), name, analysis, limit)
