"""Detection policies against ``--detect exact``: counts, decisions, embeddings, speed.

    python bench/bench_detection.py [--set facecount --set webcrops ...] [--folder DIR ...]
                                    [--settings exact,sized:40:0.08,side:1024] [--limit N]

For each setting (``exact``; ``sized:MIN_FACE:SHARE``, the size policy of ``--detect sized``;
``side:N``, the older ``--max-side N`` scaling) and each photo of every set (the facecount
manifest and the labelled sets under ../shared/data/faces, or all images under a ``--folder``,
e.g. an ``anfe demo`` crawl's), one decode, the settings alternating:
  - the HOG detection time (CPU seconds, the sum over the set, and the ratio to exact);
  - the photos whose face count changes, and whose *decision* changes: the one-face rule's
    outcome (no face / one face / several faces) that cleaning and builds use, clean's
    small-face rule (< 20 px between the eyes) and the crawl gate's 40 px box;
  - for each face exact finds, its box again (same box: the same landmarks and embedding, so
    movement 0), or the nearest box and how far its embedding moves: median, 95th percentile
    and max over all of exact's faces;
  - for ``sized``: how many photos skip pyramid levels at all (a photo that skips none is
    analysed by the very code of ``exact``, so its build inputs are identical).
On facecount it also counts how many faces match the manifest's ``expected_faces``.

    python bench/bench_detection.py --cnn [--cnn-upsample 0] [--limit N]

compares the CNN detector on ONNX Runtime (``--detector cnn``, CPU) with dlib's own
(``cnn_face_detection_model_v1``, ``--detector cnn-dlib``) on the facecount photos, alternating:
per photo the face counts and the largest box-corner difference in pixels (target: <= 1), and
the total time of each with the ratio.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from anfe.faces import detection as faces
from anfe.core.config import AnalysisParams
from anfe.faces.imaging import decode_image

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "faces"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}
MIN_EYE_DISTANCE, GATE_MIN_FACE_SIDE = 20.0, 40  # curation/rules.py and scraper/settings.py defaults
EXACT = AnalysisParams(device="cpu", detect="exact")  # the reference, whatever the default is


def params_for(setting: str) -> AnalysisParams:
    """``exact``, ``sized:MIN_FACE:SHARE`` or ``side:N`` as analysis parameters."""
    kind, *rest = setting.split(":")
    if kind == "exact":
        return EXACT
    if kind == "sized":
        return replace(EXACT, detect="sized", min_face=int(rest[0]), min_face_share=float(rest[1]))
    if kind == "side":
        return replace(EXACT, max_side=int(rest[0]))
    raise SystemExit(f"unknown setting {setting!r}: use exact, sized:PX:SHARE or side:N")


def decision(found: list[dict]) -> tuple:
    """What the rules decide from the detection: the count class, and for one face its size checks."""
    if len(found) != 1:
        return ("no-face" if not found else "many-faces",)
    face = found[0]
    return ("one-face", face["eyes"] < MIN_EYE_DISTANCE, face["side"] < GATE_MIN_FACE_SIDE)


def describe(rgb: np.ndarray, boxes: list, known: dict | None = None) -> list[dict]:
    """Box, eye distance, side and embedding of each face (full-size image); a box already in
    ``known`` (exact's faces by box) reuses that face: same box, same landmarks, same embedding."""
    m = faces.models()
    net = m.facenet("cpu", 0)
    out = []
    for box, _confidence in boxes:
        if known and box in known:
            out.append(known[box])
            continue
        shape = m.shape(rgb, m.rectangle(box))
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=float)
        top, right, bottom, left = box
        out.append({"box": box, "eyes": float(np.linalg.norm(points[0:2].mean(axis=0) - points[2:4].mean(axis=0))),
                    "side": min(bottom - top, right - left), "embedding": net(m.chip(rgb, shape)[None])[0]})
    return out


def set_images(name: str, limit: int | None) -> tuple[dict[str, Path], dict[str, str] | None]:
    """The photos of a shared set (facecount: with the expected counts) or of a folder."""
    folder = SHARED / name if (SHARED / name).is_dir() else Path(name)
    for listing in ("manifest.csv", "labels.csv"):
        if (folder / listing).is_file():
            with (folder / listing).open(newline="") as handle:
                rows = list(csv.DictReader(handle))
            step = max(1, len(rows) // limit) if limit else 1
            rows = rows[::step][:limit] if limit else rows
            expected = {r["path"]: r["expected_faces"] for r in rows} if "expected_faces" in rows[0] else None
            return {r["path"]: folder / r["path"] for r in rows}, expected
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    return {str(p.relative_to(folder)): p for p in found[:limit]}, None


def measure(images: dict[str, Path], settings: list[str]) -> dict:
    """{setting: (faces by name, detection seconds by name, skipped levels by name)}."""
    out = {s: ({}, {}, {}) for s in settings}
    for index, (name, path) in enumerate(images.items()):
        try:
            rgb = decode_image(path.read_bytes(), 10**9)
        except Exception as exc:  # one odd file never stops a bench
            print(f"   skipped {name}: {exc}")
            continue
        order = settings if index % 2 == 0 else settings[::-1]
        boxes = {}
        for setting in order:
            params = params_for(setting)
            start = time.process_time()  # CPU time: detection is one thread, and the machine is shared
            boxes[setting] = faces.detect(rgb, params)
            out[setting][1][name] = time.process_time() - start
            policy = params.policy
            out[setting][2][name] = policy.skipped_levels(*rgb.shape[:2], params.upsample) if policy else 0
        known = {f["box"]: f for f in describe(rgb, boxes["exact"])}
        for setting in settings:
            out[setting][0][name] = describe(rgb, boxes[setting], known)
    return out


def movements(base: list[dict], found: list[dict]) -> list[float]:
    """For each of exact's faces, how far its embedding moves (to the nearest box found; a face
    no longer found is left out: it is counted as a count change)."""
    moves = []
    for face in base:
        if not found:
            continue
        centre = np.array(face["box"], dtype=float)
        nearest = min(found, key=lambda f: float(np.abs(np.array(f["box"], dtype=float) - centre).sum()))
        overlap = _iou(face["box"], nearest["box"])
        if overlap >= 0.3:
            moves.append(float(np.linalg.norm(nearest["embedding"] - face["embedding"])))
    return moves


def _iou(a: tuple, b: tuple) -> float:
    top, right, bottom, left = max(a[0], b[0]), min(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    area = lambda r: max(0, r[1] - r[3]) * max(0, r[2] - r[0])  # noqa: E731
    return inter / float(area(a) + area(b) - inter or 1)


def report(title: str, results: dict, expected: dict[str, str] | None) -> None:
    base, base_seconds, _ = results["exact"]
    print(f"{title}: {len(base)} photos")
    for setting, (found, seconds, skipped) in results.items():
        changed = [n for n in found if len(found[n]) != len(base[n])]
        decisions = [n for n in found if decision(found[n]) != decision(base[n])]
        moves = [m for n in found for m in movements(base[n], found[n])]
        same = sum(1 for m in moves if m == 0.0)
        total, base_total = sum(seconds.values()), sum(base_seconds.values())
        share = 100 * len(decisions) / max(1, len(found))
        line = (f"  {setting:>16}: detection {total:.1f} CPU s ({base_total / total:.2f}x vs exact); "
                f"counts changed {len(changed)}, decisions changed {len(decisions)} ({share:.2f}%); "
                f"{same}/{len(moves)} faces with exact's box; embedding movement median "
                f"{statistics.median(moves) if moves else 0:.4f}, p95 {np.percentile(moves, 95) if moves else 0:.4f}, "
                f"max {max(moves) if moves else 0:.4f}")
        if setting.startswith("sized"):
            line += f"; {sum(1 for v in skipped.values() if v)} photos skip pyramid levels"
        if expected is not None:
            right = sum(1 for n in found if str(len(found[n])) == str(expected[n]))
            line += f"; {right}/{len(found)} counts as the manifest says"
        print(line)
        for name in sorted(set(changed) | set(decisions))[:6]:
            print(f"      {name}: {decision(base[name])} {len(base[name])} -> {decision(found[name])} {len(found[name])}")


def cnn_versus_dlib(limit: int | None, upsample: int) -> None:
    images, _ = set_images("facecount", limit)
    ours_params = replace(EXACT, detector="cnn", upsample=upsample)
    dlib_params = replace(ours_params, detector="cnn-dlib")
    faces.detect(np.zeros((100, 100, 3), np.uint8), ours_params)  # convert and load first
    seconds = {"onnx": 0.0, "dlib": 0.0}
    worst, same_counts, total_faces = 0, 0, 0
    for index, (name, path) in enumerate(images.items()):
        rgb = decode_image(path.read_bytes(), 10**9)
        found = {}
        for which in (("onnx", "dlib") if index % 2 == 0 else ("dlib", "onnx")):
            start = time.perf_counter()
            found[which] = sorted(faces.detect(rgb, ours_params if which == "onnx" else dlib_params))
            seconds[which] += time.perf_counter() - start
        same = len(found["onnx"]) == len(found["dlib"])
        same_counts += same
        total_faces += len(found["dlib"])
        gap = max([max(abs(a - b) for a, b in zip(x[0], y[0])) for x, y in zip(found["onnx"], found["dlib"])] or [0])
        worst = max(worst, gap if same else 10**6)
        print(f"   {name}: {rgb.shape[1]}x{rgb.shape[0]}, faces {len(found['dlib'])} (dlib) {len(found['onnx'])} (onnx), "
              f"largest box difference {gap} px; dlib {seconds['dlib']:.1f} s, onnx {seconds['onnx']:.1f} s so far", flush=True)
    print(f"CNN detector, upsample {upsample}, {len(images)} facecount photos, {total_faces} faces: counts equal on "
          f"{same_counts}/{len(images)}, largest box difference {worst} px (target <= 1: {'PASS' if worst <= 1 else 'FAIL'}); "
          f"dlib {seconds['dlib']:.1f} s, ONNX Runtime on the CPU {seconds['onnx']:.1f} s: "
          f"{seconds['dlib'] / max(seconds['onnx'], 1e-9):.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], help="a set under ../shared/data/faces (or a folder)")
    parser.add_argument("--folder", type=Path, action="append", default=[], help="more images (all files under it)")
    parser.add_argument("--settings", default="exact,sized:40:0.05,sized:40:0.08,sized:40:0.1,side:1024")
    parser.add_argument("--limit", type=int, default=None, help="at most N photos per set (spread evenly)")
    parser.add_argument("--cnn", action="store_true", help="compare the ONNX CNN detector with dlib's instead")
    parser.add_argument("--cnn-upsample", type=int, default=0, help="--cnn: upsample (dlib's CNN is slow on CPUs)")
    args = parser.parse_args()
    if args.cnn:
        print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
        cnn_versus_dlib(args.limit, args.cnn_upsample)
        print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return
    settings = args.settings.split(",")
    if "exact" not in settings:
        settings.insert(0, "exact")
    sets = args.set or ["facecount", "webcrops", "lfw", "utkface"]
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; HOG detector, upsample 1; "
          f"{os.cpu_count()} CPUs, one process")
    for name in [*sets, *map(str, args.folder)]:
        images, expected = set_images(name, args.limit)
        report(name, measure(images, settings), expected)
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
