"""dlib's CNN face detector on ONNX Runtime: the same pyramid, the same scores, the same boxes.

``dlib.cnn_face_detection_model_v1(path)(image, upsample)`` doubles the image ``upsample`` times,
tiles an image pyramid into one tensor (``input_rgb_image_pyramid<pyramid_down<6>>``), runs the
network (:mod:`anfe.faces.mmodnet`) over it once, and turns every positive score into a box
(``loss_mmod_::to_label``). This module does the tiling, the box mapping and the non-max
suppression exactly as dlib's sources do (named in each function), with the network on ONNX
Runtime: on CUDA when ``onnxruntime-gpu`` and a device are present, else on the CPU, many times
faster than dlib's own CPU code (built without BLAS). The doubling itself is left to the caller
(dlib's ``pyramid_up``, which :mod:`anfe.faces.detection` calls), so this module never imports dlib.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anfe.core.pyramid import PYRAMID_RATE, _lround
from .mmodnet import INPUT, OUTPUT, MmodNetwork, build_graph, read_mmod, window_rect
from .ortutil import OnnxSession, cached_conversion, providers_for

Rect = tuple[int, int, int, int]  # (left, top, right, bottom), inclusive, like dlib.rectangle
MIN_LEVEL_ROWS = 5  # compute_tiled_image_pyramid_details: levels stop below 5 rows


def tile_rects(rows: int, cols: int, padding: int, outer_padding: int) -> tuple[list[Rect], int, int]:
    """Where each pyramid level sits in the tiled image, and its size (dlib's
    ``impl::compute_tiled_image_pyramid_details`` for pyramid_down<6>)."""
    if rows * cols == 0:
        return [], 0, 0
    sizes = [(rows, cols)]  # (nr, nc) of every level
    rate = (PYRAMID_RATE - 1.0) / PYRAMID_RATE
    nr, nc = rows, cols
    while True:
        nr, nc = math.floor(rate * nr), math.floor(rate * nc)  # find_pyramid_down_output_image_size
        if nr * nc == 0 or nr < MIN_LEVEL_ROWS:
            break
        sizes.append((nr, nc))
    total_height = sum(h + padding for h, _ in sizes) - 2 * padding
    height, prev_width = 0, 0
    for h, w in sizes:  # the first column: until the next level fits beside the one before
        if w <= cols - prev_width - padding and (height - rows) * 2 >= total_height - rows:
            break
        height += h + padding
        prev_width = w
    height -= padding
    rects: list[Rect] = []
    y, i = outer_padding, 0
    while y < height + outer_padding and i < len(sizes):
        h, w = sizes[i]
        rects.append((outer_padding, y, outer_padding + w - 1, y + h - 1))
        y += h + padding
        i += 1
    y -= padding
    first = rects[0]
    while i < len(sizes):  # the second column, upwards from the bottom right
        h, w = sizes[i]
        x1, y1 = outer_padding + cols - 1, y - 1
        rect = (x1 - (w - 1), y1 - (h - 1), x1, y1)
        if not (rect[2] < first[0] or rect[0] > first[2] or rect[3] < first[1] or rect[1] > first[3]):
            break  # dlib stops rather than overlap the original image
        rects.append(rect)
        y -= h + padding
        i += 1
    return rects, height + 2 * outer_padding, cols + 2 * outer_padding


def _resize_bilinear(src: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """dlib's ``resize_image`` (bilinear, corners on corners) of a C x H x W float image."""
    x_scale = (src.shape[2] - 1) / max(cols - 1, 1)
    y_scale = (src.shape[1] - 1) / max(rows - 1, 1)
    y = np.arange(rows) * y_scale
    x = np.arange(cols) * x_scale
    top = np.floor(y).astype(np.int64)
    left = np.floor(x).astype(np.int64)
    bottom = np.minimum(top + 1, src.shape[1] - 1)
    right = np.minimum(left + 1, src.shape[2] - 1)
    ty = (y - top)[None, :, None]
    lx = (x - left)[None, None, :]
    s = src.astype(np.float64)
    upper = (1 - lx) * s[:, top][:, :, left] + lx * s[:, top][:, :, right]
    lower = (1 - lx) * s[:, bottom][:, :, left] + lx * s[:, bottom][:, :, right]
    return ((1 - ty) * upper + ty * lower).astype(np.float32)


def tiled_pyramid(rgb: np.ndarray, network: MmodNetwork) -> tuple[np.ndarray, list[Rect]]:
    """The network's input tensor (1 x 3 x H x W) for an RGB image, and the level rectangles
    (``input_rgb_image_pyramid::to_tensor``: (pixel - mean) / 256, then each level resized from
    the one before; zeros elsewhere)."""
    rows, cols = rgb.shape[:2]
    rects, height, width = tile_rects(rows, cols, network.padding, network.outer_padding)
    tensor = np.zeros((1, 3, height, width), dtype=np.float32)
    if not rects:
        return tensor, rects
    means = np.array(network.means, dtype=np.float32).reshape(3, 1, 1)
    level = (np.transpose(rgb, (2, 0, 1)).astype(np.float32) - means) / np.float32(256)
    left, top, right, bottom = rects[0]
    tensor[0, :, top : bottom + 1, left : right + 1] = level
    for previous, rect in zip(rects, rects[1:]):
        pl, pt, pr, pb = previous
        left, top, right, bottom = rect
        source = tensor[0, :, pt : pb + 1, pl : pr + 1]
        tensor[0, :, top : bottom + 1, left : right + 1] = _resize_bilinear(source, bottom - top + 1, right - left + 1)
    return tensor, rects


def _nearest(rects: list[Rect], x: float, y: float) -> int:
    """dlib's ``nearest_rect``: the first rectangle at the least distance from the point."""
    best, best_distance = 0, math.inf
    for index, (left, top, right, bottom) in enumerate(rects):
        dx = max(left - x, 0.0, x - right)
        dy = max(top - y, 0.0, y - bottom)
        distance = math.hypot(dx, dy)
        if distance < best_distance:
            best, best_distance = index, distance
    return best


def _to_image(rects: list[Rect], box: tuple[float, float, float, float]) -> Rect:
    """``tiled_pyramid_to_image`` (rect_up from the nearest level), then dlib's lround."""
    left, top, right, bottom = box
    level = _nearest(rects, (left + right) / 2, (top + bottom) / 2)
    ox, oy = rects[level][0], rects[level][1]
    ratio = PYRAMID_RATE / (PYRAMID_RATE - 1.0)
    values = [left - ox, top - oy, right - ox, bottom - oy]
    for _ in range(level):
        values = [v * ratio + 0.3 for v in values]
    return tuple(_lround(v) for v in values)  # type: ignore[return-value]


def _area(r: Rect) -> int:
    return max(0, r[2] - r[0] + 1) * max(0, r[3] - r[1] + 1)


def overlaps(a: Rect, b: Rect, iou: float, covered: float) -> bool:
    """dlib's ``test_box_overlap``: intersection over the *bounding box of both* above ``iou``,
    or over either box's area above ``covered``."""
    inner = _area((max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])))
    if inner == 0:
        return False
    outer = _area((min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])))
    return inner / outer > iou or inner / _area(a) > covered or inner / _area(b) > covered


def boxes_from_scores(scores: np.ndarray, rects: list[Rect], network: MmodNetwork,
                      threshold: float = 0.0) -> list[tuple[Rect, float]]:
    """``loss_mmod_::to_label``: every score above ``threshold`` as its window mapped to the
    image, strongest first, dropping any that overlaps one already kept."""
    rows, cols = np.nonzero(scores > threshold)
    found = [(_to_image(rects, window_rect(network, int(r), int(c))), float(scores[r, c])) for r, c in zip(rows, cols)]
    found.sort(key=lambda item: item[1], reverse=True)  # std::sort(rbegin, rend): descending
    kept: list[tuple[Rect, float]] = []
    for rect, score in found:
        if not any(overlaps(other, rect, network.nms_iou, network.nms_covered) for other, _ in kept):
            kept.append((rect, score))
    return kept


def down2(rect: Rect, times: int) -> Rect:
    """pyramid_down<2>'s ``rect_down`` ``times`` levels, rounded: undoes dlib's ``pyramid_up``."""
    values = [float(v) for v in rect]
    for _ in range(times):
        values = [values[0] / 2 - 1.25, values[1] / 2 - 0.75, values[2] / 2 - 1.25, values[3] / 2 - 0.75]
    return tuple(_lround(v) for v in values)  # type: ignore[return-value]


@dataclass
class CnnDetector(OnnxSession):
    """The converted detector in an ONNX Runtime session (one per process)."""

    network: MmodNetwork | None = None

    def scores(self, tensor: np.ndarray) -> np.ndarray:
        return self.session.run([OUTPUT], {INPUT: tensor})[0][0, 0]

    def __call__(self, upsampled: np.ndarray, upsample: int) -> list[tuple[Rect, float]]:
        """Boxes (in the original image: ``upsampled`` is it after ``upsample`` pyramid_up's) and
        confidences, as ``cnn_face_detection_model_v1(original, upsample)`` gives them."""
        tensor, rects = tiled_pyramid(np.asarray(upsampled, dtype=np.uint8), self.network)
        if not rects:
            return []
        found = boxes_from_scores(self.scores(tensor), rects, self.network)
        return [(down2(rect, upsample), score) for rect, score in found]


def load_cnn_detector(dat_path: str | Path, cache_dir: str | Path, device: str = "auto", threads: int = 0) -> CnnDetector:
    """Read and convert (once, cached by the file's sha256) and open the detector."""
    providers_for(device)
    network = read_mmod(dat_path)
    path = cached_conversion(dat_path, cache_dir, "mmod_face_detector", 1, lambda: build_graph(network))
    return CnnDetector(path, device, threads, network=network)
