"""Speed of the analysis pass on real photos, each figure against a baseline measured in the same run.

    python bench/bench_analysis.py [--limit N] [--workers 2] [--max-side 800] [--repeat 1]
                                   [--steps 1,2,3,4,5] [--facecount DIR]

On the single-face photos of ../shared/data/faces/facecount (manifest expected_faces == "1"):
  1. the single pass (``analyse_file``: decode, detect once, landmarks, encode) against the naive
     face_recognition use (``face_locations`` then ``face_encodings``, which detects again),
     image by image, alternating, one process, no cache (target: >= 1.7x);
  2. the cost of each stage (decode, phash, detect, landmarks, encode) from the timings;
  3. ``analyse_paths`` with 1 process against N processes (target: >= 1.8x images/s for 2);
  4. a cached re-run against the first run (target: >= 50x);
  5. ``--max-side``: its speed-up on those photos, and how many face counts it changes on all
     the facecount photos.
The machine is shared: the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from anfe.analysis import analyse_file
from anfe.batch import analyse_paths
from anfe.cache import AnalysisCache
from anfe.config import AnalysisParams

FACECOUNT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "faces" / "facecount"
STAGES = ("decode", "phash", "detect", "landmarks", "encode")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def verdict(value: float, target: float) -> str:
    return f"{value:.2f}x (target >= {target:g}x: {'PASS' if value >= target else 'FAIL'})"


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def naive_vs_single(paths: list[Path], params: AnalysisParams) -> list:
    import face_recognition

    face_recognition.face_encodings(face_recognition.load_image_file(paths[0]))  # load models
    analyse_file(paths[0], params)
    naive_s = single_s = 0.0
    analyses, worst = [], 0.0
    for path in paths:  # alternate, so a change in the machine's load hits both alike
        start = time.perf_counter()
        image = face_recognition.load_image_file(path)
        boxes = face_recognition.face_locations(image, params.upsample, params.detector)
        encodings = face_recognition.face_encodings(image, None, params.jitters, "small")  # detects again
        naive_s += time.perf_counter() - start
        analysis, seconds = timed(analyse_file, path, params)
        single_s += seconds
        analyses.append(analysis)
        if len(encodings) == analysis.face_count == len(boxes):
            for ours, theirs in zip(analysis.faces, encodings):
                worst = max(worst, float(np.max(np.abs(ours.embedding - theirs))))
    n = len(paths)
    print(f"1. naive face_recognition: {naive_s:.2f} s ({1000 * naive_s / n:.0f} ms/image); "
          f"single pass: {single_s:.2f} s ({1000 * single_s / n:.0f} ms/image)")
    print(f"   single pass vs naive: {verdict(naive_s / single_s, 1.7)}; largest embedding difference {worst:.1e}")
    return analyses


def stage_costs(analyses: list) -> None:
    totals = {s: sum(a.timings.get(s, 0.0) for a in analyses) for s in STAGES}
    whole = sum(totals.values()) or 1.0
    faces = sum(a.face_count for a in analyses) or 1
    parts = ", ".join(f"{s} {1000 * t / len(analyses):.0f} ms ({100 * t / whole:.0f}%)" for s, t in totals.items())
    print(f"2. per image: {parts}; encode per face {1000 * totals['encode'] / faces:.0f} ms")
    print(f"   bottleneck: {max(totals, key=totals.get)}")


def scaling_and_cache(paths: list[Path], params: AnalysisParams, workers: int, repeat: int, temp: Path) -> float:
    one = many = float("inf")
    for attempt in range(repeat):
        with AnalysisCache(temp / f"one-{attempt}.sqlite", params.cache_key) as cache:
            _, seconds = timed(analyse_paths, paths, params, cache, 1, False)
            one = min(one, seconds)
        with AnalysisCache(temp / f"many-{attempt}.sqlite", params.cache_key) as cache:
            _, seconds = timed(analyse_paths, paths, params, cache, workers, False)
            many = min(many, seconds)
    n = len(paths)
    print(f"3. 1 process: {n / one:.2f} images/s; {workers} processes: {n / many:.2f} images/s -> "
          f"{verdict(one / many, 1.8) if workers == 2 else f'{one / many:.2f}x (ideal {workers}x)'}")
    with AnalysisCache(temp / "one-0.sqlite", params.cache_key) as cache:
        (_, stats), cached = timed(analyse_paths, paths, params, cache, 1, False)
    print(f"4. cached re-run: {1000 * cached:.1f} ms ({stats.cached}/{stats.total} from the cache, "
          f"{stats.analysed} analysed) vs first run {one:.2f} s -> {verdict(one / cached, 50)}")
    return one


def max_side(singles: list[Path], every: list[Path], params: AnalysisParams, side: int, one: float,
             workers: int, temp: Path, base: Path = FACECOUNT) -> None:
    scaled = AnalysisParams(params.detector, params.upsample, side, params.jitters, params.max_pixels)
    with AnalysisCache(temp / "scaled.sqlite", scaled.cache_key) as cache:
        _, seconds = timed(analyse_paths, singles, scaled, cache, 1, False)
        scaled_all, _ = analyse_paths(every, scaled, cache, workers, False)
    with AnalysisCache(temp / "one-0.sqlite", params.cache_key) as cache:
        full_all, _ = analyse_paths(every, params, cache, workers, False)
    changed = [(p, full_all[str(p)].face_count, scaled_all[str(p)].face_count) for p in every
               if full_all[str(p)].face_count != scaled_all[str(p)].face_count]
    big = sum(1 for p in singles if max(full_all[str(p)].width, full_all[str(p)].height) > side)
    print(f"5. --max-side {side}: single-face photos in {seconds:.2f} s vs {one:.2f} s -> "
          f"{one / seconds:.2f}x faster ({big} of {len(singles)} photos are larger than {side} px)")
    print(f"   face counts changed on {len(changed)} of {len(every)} facecount photos"
          + "".join(f"\n     {p.relative_to(base)}: {a} -> {b}" for p, a, b in changed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N single-face photos")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-side", type=int, default=800)
    parser.add_argument("--repeat", type=int, default=1, help="runs of step 3 (the best is kept)")
    parser.add_argument("--steps", default="1,2,3,4,5", help="which measurements to run (1-2 need face_recognition)")
    parser.add_argument("--facecount", type=Path, default=FACECOUNT, help="the facecount folder (with manifest.csv)")
    args = parser.parse_args()
    steps = {int(s) for s in args.steps.split(",")}
    with (args.facecount / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    every = [args.facecount / r["path"] for r in rows]
    singles = [args.facecount / r["path"] for r in rows if r["expected_faces"] == "1"][: args.limit]
    params = AnalysisParams()
    print(f"{len(singles)} single-face facecount photos ({len(every)} photos in all); {params.cache_key}; "
          f"{os.cpu_count()} CPUs, load average {load()}")
    if steps & {1, 2}:
        analyses = naive_vs_single(singles, params)
        stage_costs(analyses)
    with tempfile.TemporaryDirectory() as temp:
        if steps & {3, 4, 5}:
            one = scaling_and_cache(singles, params, args.workers, args.repeat, Path(temp))
        if 5 in steps:
            max_side(singles, every, params, args.max_side, one, args.workers, Path(temp), args.facecount)
    print(f"load average at the end: {load()}")


if __name__ == "__main__":
    main()
