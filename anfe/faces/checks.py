"""The reason vocabulary: every check that keeps an image out of a dataset, a build or a
prediction is one :class:`Check` with a name (the reason code: a quarantine folder, a crawl drop
counter, a build's skip count, a prediction's "unknown" reason), a default threshold and a test.
The crawl gate (``scraper.pipelines``), ``anfe clean`` (``curation.rules``), builds and
predictions all use these, so a reason code means the same everywhere.

Checks that look at several images at once (duplicates, label conflicts) are named here and
decided in :mod:`curation.rules`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .analysis import ImageAnalysis


@dataclass(frozen=True)
class Check:
    """One rule: its ``name`` (the reason code), what it catches (``help``), its default
    ``threshold`` (None when it has none) and ``test(analysis, threshold)``, which returns why
    the image fails (a short detail) or None when it passes."""

    name: str
    help: str
    threshold: Any = None
    test: Callable[[ImageAnalysis, Any], str | None] = field(default=lambda a, t: None, repr=False, compare=False)

    def failed(self, analysis: ImageAnalysis, threshold: Any = None) -> str | None:
        """Why ``analysis`` fails this check (None when it passes), with ``threshold`` or the default."""
        return self.test(analysis, self.threshold if threshold is None else threshold)


def _too_small(a: ImageAnalysis, size: tuple[int, int]) -> str | None:
    width, height = size
    return f"{a.width}x{a.height} is under {width}x{height}" if a.width < width or a.height < height else None


def _small_face(a: ImageAnalysis, limits: tuple[float, int]) -> str | None:
    eyes, side = limits
    if a.face_count < 1:
        return None
    face = a.faces[0]
    if face.eye_distance < eyes:
        return f"{face.eye_distance:.0f} px between the eyes (< {eyes:g})"
    if face.box_side < side:
        return f"face box side {face.box_side} px (< {side})"
    return None


#: The files that cannot be read as an image at all (the detail names the error code).
UNREADABLE = Check("unreadable", "empty, truncated, non-image or unreadable files",
                   test=lambda a, t: f"{a.error}: {a.error_detail or ''}".strip() if a.error else None)
#: A symbolic link, a pipe or anything else that is not a plain file in a label folder.
NOT_A_FILE = Check("not-a-file", "symbolic links, pipes and other entries that are not plain files")
#: (minimum width, minimum height) in pixels: dlib needs faces of about 40 px and more.
TOO_SMALL = Check("too-small", "images narrower or lower than the minimum size", (64, 64), _too_small)
NO_FACE = Check("no-face", "images in which the detector finds no face",
                test=lambda a, t: f"no face found in {a.width}x{a.height}" if a.ok and a.face_count == 0 else None)
MANY_FACES = Check("many-faces", "images with more than one face (group photos)",
                   test=lambda a, t: f"{a.face_count} faces found" if a.face_count > 1 else None)
#: (minimum pixels between the eye centres, minimum face box side; 0 = off).
SMALL_FACE = Check("small-face", "a face too small for a good embedding (eye distance, box side)", (20.0, 0), _small_face)
UNDER_AGE = Check("under-age", "people younger than the minimum age, where an age is known", 17.0)
EXACT_DUPLICATE = Check("exact-duplicate", "the same bytes twice under one gender: one copy is kept")
LABEL_CONFLICT = Check("label-conflict", "the same photo (same bytes or a near duplicate) under two genders, "
                       "here or when crawled: every copy goes to review, no label is guessed")
NEAR_DUPLICATE = Check("near-duplicate", "perceptual hashes within a few bits: the largest is kept")
WRONG_PERSON = Check("wrong-person", "photos far from the median of their person's other photos, or one face "
                     "filed under two people: sent to review")
MISLABELLED_PERSON = Check("mislabelled-person", "people most of whose photos look like the other gender "
                           "(centroids built without them): the whole person goes to review")
#: A face farther from every centroid than a build's working range (predict and evaluate).
OUT_OF_RANGE = Check("out-of-range", "a face farther from every centroid than the working range")

#: What makes an image unusable as one labelled face, in the order they are checked.
ONE_FACE = (UNREADABLE, NO_FACE, MANY_FACES)


def one_face_reason(analysis: ImageAnalysis) -> str | None:
    """Why an analysed image cannot serve as one labelled face (its error code, ``no-face`` or
    ``many-faces``), or None when it can: what builds skip and predictions call unknown."""
    if analysis.error:
        return analysis.error
    for check in ONE_FACE[1:]:
        if check.failed(analysis) is not None:
            return check.name
    return None


__all__ = [
    "Check", "EXACT_DUPLICATE", "LABEL_CONFLICT", "MANY_FACES", "MISLABELLED_PERSON", "NEAR_DUPLICATE",
    "NOT_A_FILE", "NO_FACE", "WRONG_PERSON",
    "ONE_FACE", "OUT_OF_RANGE", "SMALL_FACE", "TOO_SMALL", "UNDER_AGE", "UNREADABLE", "one_face_reason",
]
