"""Detection at the resolution the decision needs: dlib's own HOG boxes, without its smallest scales.

dlib's frontal face detector (``get_frontal_face_detector()(image, upsample)``) doubles the image
``upsample`` times (``pyramid_up``), then scans an image pyramid whose every level is the one
before scaled by 5/6 (``pyramid_down<6>``: ``floor(5 * size / 6)`` pixels, dlib's bilinear
``resize_image``). A face is found at the level where it fills the 80x80 detection window, so the
first levels, the largest images, cost most of the time (about 30%, 21%, 15%, ... of it) and only
find faces of 36, 43, 52, ... pixels (at upsample 1).

A policy says how small a face may be and still count: ``min_face`` pixels on the original
photo, or ``min_face_share`` of its shorter side, whichever is larger (a 40 px face in a
4,000 px photo is background). The pyramid levels whose faces are all smaller than that are
skipped: the level images are made exactly as dlib makes them (the same resize calls, chained),
and the detector runs on the first level kept, with no upsampling. Its pyramid from there on is
bit for bit dlib's, so it finds the same faces with the same scores; their boxes are mapped back
with dlib's own coordinate formulas (``pyramid_down<N>::point_up``/``point_down``, rounded with
``lround`` where dlib rounds). So every face at or above the policy's size gets exactly the box
``--detect exact`` gives it, and then the same landmarks and the same embedding.

This module is the geometry only (plain numbers); :mod:`anfe.faces.detection` makes the images with dlib.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

#: The box side, in original pixels, of a face found on pyramid level 0 at upsample 1 (dlib's
#: 80x80 window less its padding, halved by the upsampling): 36, 43, 52, 62, 75, 90, ... per level.
LEVEL0_BOX_SIDE = 36
PYRAMID_RATE = 6  # pyramid_down<6>: each level is 5/6 of the one before
#: dlib's detector stops making levels below this size (scan_fhog_pyramid's default)
MIN_LEVEL_SIDE = 64

Rect = tuple[int, int, int, int]  # (left, top, right, bottom), dlib's order, inclusive


@dataclass(frozen=True)
class DetectionPolicy:
    """The smallest face that counts: ``min_face`` pixels, or ``min_face_share`` of the photo's
    shorter side, whichever is larger."""

    min_face: int = 40
    min_face_share: float = 0.0

    def __post_init__(self) -> None:
        if self.min_face < 1 or not 0.0 <= self.min_face_share < 1.0:
            raise ValueError("min_face must be >= 1 pixel and min_face_share in [0, 1)")

    def smallest_face(self, height: int, width: int) -> float:
        """Pixels: the smallest face side this photo's decision needs."""
        return max(float(self.min_face), self.min_face_share * min(height, width))

    def skipped_levels(self, height: int, width: int, upsample: int) -> int:
        """How many of dlib's pyramid levels find only faces below :meth:`smallest_face` (and
        leave at least one level to scan)."""
        level0 = LEVEL0_BOX_SIDE * 2.0 ** (1 - upsample)
        ratio = self.smallest_face(height, width) / level0
        wanted = math.floor(math.log(ratio) / math.log(PYRAMID_RATE / (PYRAMID_RATE - 1))) if ratio > 1 else 0
        rows, cols = upsampled_size(height, width, upsample)
        possible = 0
        while possible < wanted:
            rows, cols = level_size(rows, cols)
            if rows < MIN_LEVEL_SIDE or cols < MIN_LEVEL_SIDE:
                break
            possible += 1
        return possible


def _lround(value: float) -> int:
    """C's ``std::lround``: halves away from zero (Python's ``round`` goes to even)."""
    return int(math.floor(value + 0.5)) if value >= 0 else -int(math.floor(-value + 0.5))


def upsampled_size(height: int, width: int, times: int) -> tuple[int, int]:
    """The size of ``pyramid_up`` (pyramid_down<2>) applied ``times`` times: dlib rounds its
    ``rect_up`` of the image rectangle, so a doubling gives 2h+1 rows and 2w+2 columns."""
    for _ in range(times):
        height = _lround((height - 1 + 0.75) * 2) + 1
        width = _lround((width - 1 + 1.25) * 2) + 1
    return height, width


def level_size(height: int, width: int) -> tuple[int, int]:
    """The next level's size: ``lround(((N-1) * size) / N)`` with integer division, as dlib."""
    return ((PYRAMID_RATE - 1) * height) // PYRAMID_RATE, ((PYRAMID_RATE - 1) * width) // PYRAMID_RATE


def _up6(value: float, levels: int) -> float:
    ratio = PYRAMID_RATE / (PYRAMID_RATE - 1.0)
    for _ in range(levels):
        value = value * ratio + 0.3
    return value


def _down6(value: float, levels: int) -> float:
    ratio = (PYRAMID_RATE - 1.0) / PYRAMID_RATE
    for _ in range(levels):
        value = (value - 0.3) * ratio
    return value


def _down2(x: float, y: float, levels: int) -> tuple[float, float]:
    for _ in range(levels):
        x, y = x / 2.0 - 1.25, y / 2.0 - 0.75
    return x, y


class UnmappableBoxError(ValueError):
    """A box from a skipped-level scan that no pyramid level of dlib's could have produced."""


def exact_rect(rect: Rect, skipped: int, upsample: int) -> Rect:
    """The rectangle ``detector(image, upsample)`` gives for a face that ``detector(level, 0)``
    found at ``rect`` on pyramid level ``skipped`` of the upsampled image.

    dlib reports a face found on level ``l`` as ``lround(rect_up(window, l))``: the window's
    integer rectangle on that level, mapped up ``l`` levels and rounded once. The scan of level
    ``skipped`` rounded after ``l - skipped`` levels; the window is recovered from that (the
    rounding error shrinks on the way down, so it is exact), checked, and mapped up the whole way.
    """
    if skipped == 0:
        window, level = rect, 0
    else:
        window, level = _window(rect)
    full = tuple(_up6(v, skipped + level) for v in window)
    left, top = _down2(full[0], full[1], upsample)
    right, bottom = _down2(full[2], full[3], upsample)
    return _lround(left), _lround(top), _lround(right), _lround(bottom)


def _window(rect: Rect) -> tuple[Rect, int]:
    """(the integer window rectangle, its level) that rounds to ``rect`` after being mapped up."""
    width = rect[2] - rect[0]
    for level in range(0, 64):
        window = tuple(_lround(_down6(v, level)) for v in rect)
        if window[2] - window[0] < MIN_LEVEL_SIDE / 2:
            break
        if tuple(_lround(_up6(v, level)) for v in window) == rect and _plausible(window, width):
            return window, level  # type: ignore[return-value]
    raise UnmappableBoxError(f"no pyramid level maps to the box {rect}")


def _plausible(window: Rect, width: int) -> bool:
    """A detection window is dlib's 80 px window less padding: about 2 x LEVEL0_BOX_SIDE wide."""
    return abs((window[2] - window[0]) - 2 * LEVEL0_BOX_SIDE) <= 8 and width >= window[2] - window[0]
