"""Euclidean distances between embeddings and centroids: the one measure the builds, the
centroids, prediction and curation's identity checks share (a leaf module, importing nothing of anfe)."""

from __future__ import annotations

import numpy as np


def distances(vectors: np.ndarray, centroids: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Euclidean distances, shape (len(vectors), len(centroids)), without an n x k x 128 temporary;
    ``dtype=np.float32`` halves the work where thresholds, not exact figures, are asked for."""
    vectors = np.atleast_2d(np.asarray(vectors, dtype=dtype))
    centroids = np.atleast_2d(np.asarray(centroids, dtype=dtype))
    squared = (
        np.einsum("ij,ij->i", vectors, vectors)[:, None]
        + np.einsum("ij,ij->i", centroids, centroids)[None, :]
        - 2.0 * vectors @ centroids.T
    )
    return np.sqrt(np.maximum(squared, 0.0))
