"""Speed of the analysis pass on real photos, each figure against a baseline measured in the same run.

    python bench/bench_analysis.py [--limit N] [--workers 2] [--max-side 800] [--repeat 3]
                                   [--steps 1,2,3,4,5,6,7] [--facecount DIR] [--crops 500]

On the single-face photos of ../shared/data/faces/facecount (manifest expected_faces == "1"),
image by image, the pipelines alternating, one process, no cache:
  1. four ways to get the embeddings:
     - the two-step face_recognition pipeline: ``face_locations`` (for the one-face filter), then
       ``face_encodings`` WITHOUT the boxes, which detects a second time;
     - the fair face_recognition baseline: ``face_locations``, then ``face_encodings`` WITH those
       boxes (detects once, like ours);
     - our single pass (``analyse_file``) with dlib's encoder, and with the ONNX encoder.
     Ratios: ours (dlib) vs two-step (target >= 1.7x), ours (dlib) vs fair (about 1x: the gain
     over two-step is only the second detection), ONNX vs dlib encoder on these full-size photos.
     The embeddings are compared with face_recognition's; images whose face counts differ are
     counted and printed (they cannot be compared face by face);
  2. the cost of each stage (decode, phash, detect, landmarks, chip, encode) from the timings;
  3. ``analyse_paths`` with 1 process against N processes, alternating, median of --repeat runs
     (target: >= 1.8x images/s for 2; a ratio is never quoted above the machine's core count);
  4. a cached re-run against the first run (target: >= 50x);
  5. ``--max-side``: its speed-up on those photos, and how many face counts it changes on all
     the facecount photos.
On real UTKFace faces (../shared/data/faces/utkface):
  6. milliseconds per face, dlib's ``compute_face_descriptor`` vs the ONNX encoder (chip cut
     included) at batch 1 and batch 32, with 1 and with all ONNX Runtime threads (target >= 20x);
  7. the whole pass (``analyse_paths``, no cache) on --crops UTKFace crops with all cores: dlib's
     encoder vs the ONNX encoder (target >= 5x), and how the ONNX pass splits the cores
     (processes x threads) and batches the faces (images per task).
On full photos (every facecount photo, plus every image under each --folder):
  8. the paper-scale projection: the whole pass (``analyse_paths``, no cache, --workers processes)
     with ``--detect exact`` and with the default policy, alternating: photos/s per machine, the
     speed-up, and the hours for --paper-photos (190,000) photos on 1 and on 8 such machines
     (target: under 1 hour on 8 two-core machines, i.e. >= 6.6 photos/s per machine).
Every figure is a median over --repeat alternating runs. The machine may be shared (the load
average is printed before and after): the medians damp that noise, they do not remove it.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from anfe.faces import batch as batch_module
from anfe.faces.analysis import analyse_file
from anfe.faces.batch import analyse_paths, default_workers
from anfe.faces.cache import AnalysisCache
from anfe.core.config import AnalysisParams

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "faces"
FACECOUNT = SHARED / "facecount"
UTKFACE = SHARED / "utkface"
STAGES = ("decode", "phash", "detect", "landmarks", "chip", "encode")
ONNX = AnalysisParams(encoder="onnx", device="cpu")
DLIB = AnalysisParams(encoder="dlib")


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def verdict(value: float, target: float) -> str:
    return f"{value:.2f}x (target >= {target:g}x: {'PASS' if value >= target else 'FAIL'})"


def capped(ratio: float, cores: int) -> str:
    """A scaling ratio, never quoted above the core count (more than that is noise)."""
    if ratio <= cores:
        return f"{ratio:.2f}x"
    return f"{cores:.2f}x (capped at the {cores} cores; the median measured {ratio:.2f}x, which only load noise can give)"


def timed(function, *args, **kwargs):
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start


def median(values) -> float:
    return statistics.median(values)


def cpu_seconds() -> float:
    """CPU time of this process and of its finished children (worker processes), in seconds.

    On a shared machine wall-clock time depends on what else runs; CPU time is the work done,
    so each figure below is given both ways."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def timed_both(function, *args, **kwargs):
    """(result, wall seconds, CPU seconds)."""
    cpu, start = cpu_seconds(), time.perf_counter()
    result = function(*args, **kwargs)
    return result, time.perf_counter() - start, cpu_seconds() - cpu


# -- 1 and 2: the facecount single-face photos, four pipelines alternating ------------------------


def pipelines(paths: list[Path], params: AnalysisParams, repeat: int) -> list:
    import face_recognition

    def two_step(path):
        image = face_recognition.load_image_file(path)
        face_recognition.face_locations(image, params.upsample, params.detector)  # the count
        return face_recognition.face_encodings(image, None, params.jitters, "small")  # detects again

    def fair(path):
        image = face_recognition.load_image_file(path)
        boxes = face_recognition.face_locations(image, params.upsample, params.detector)
        return face_recognition.face_encodings(image, boxes, params.jitters, "small")

    runs = {
        "two-step": two_step, "fair": fair,
        "ours-dlib": lambda p: analyse_file(p, replace(params, encoder="dlib")),
        "ours-onnx": lambda p: analyse_file(p, replace(params, encoder="onnx")),
    }
    for run in runs.values():  # load every model before timing
        run(paths[0])
    totals = {name: [] for name in runs}
    cpus = {name: [] for name in runs}
    results: dict[str, dict[Path, object]] = {name: {} for name in runs}
    for round_ in range(repeat):
        seconds, cpu = dict.fromkeys(runs, 0.0), dict.fromkeys(runs, 0.0)
        for path in paths:  # alternate, so a change in the machine's load hits all alike
            order = list(runs) if round_ % 2 == 0 else list(runs)[::-1]
            for name in order:
                results[name][path], took, used = timed_both(runs[name], path)
                seconds[name] += took
                cpu[name] += used
        for name in runs:
            totals[name].append(seconds[name])
            cpus[name].append(cpu[name])
    n = len(paths)
    ms = {name: 1000 * median(t) / n for name, t in totals.items()}
    cpu_ms = {name: 1000 * median(t) / n for name, t in cpus.items()}

    def ratio(a: str, b: str) -> str:
        wall = median([x / y for x, y in zip(totals[a], totals[b])])
        cpu = median([x / y for x, y in zip(cpus[a], cpus[b])])
        return f"{wall:.2f}x wall-clock, {cpu:.2f}x CPU time"

    print(f"1. ms/image (median of {repeat}; wall-clock / CPU): two-step face_recognition (detect, then "
          f"face_encodings without boxes, which detects again) {ms['two-step']:.0f} / {cpu_ms['two-step']:.0f}; "
          f"fair face_recognition (face_encodings with the boxes) {ms['fair']:.0f} / {cpu_ms['fair']:.0f}; "
          f"ours with dlib's encoder {ms['ours-dlib']:.0f} / {cpu_ms['ours-dlib']:.0f}; "
          f"ours with ONNX {ms['ours-onnx']:.0f} / {cpu_ms['ours-onnx']:.0f}")
    two_step = median([x / y for x, y in zip(totals["two-step"], totals["ours-dlib"])])
    print(f"   ours (dlib encoder) vs two-step: {verdict(two_step, 1.7)} ({ratio('two-step', 'ours-dlib')}); "
          f"vs fair: {ratio('fair', 'ours-dlib')} (the gain over two-step is the second detection only)")
    print(f"   facecount single-face photos, whole pass, ONNX vs dlib encoder: {ratio('ours-dlib', 'ours-onnx')}; "
          f"ours (ONNX) vs fair face_recognition: {ratio('fair', 'ours-onnx')}")
    for name in ("ours-dlib", "ours-onnx"):
        worst, compared, left_out = 0.0, 0, 0
        for path in paths:
            theirs, ours = results["fair"][path], results[name][path]
            if len(theirs) != ours.face_count:
                left_out += 1
                continue
            for face, other in zip(ours.faces, theirs):
                worst = max(worst, float(np.max(np.abs(face.embedding - other))))
                compared += 1
        print(f"   {name} vs face_recognition: {compared} faces compared, max |difference| {worst:.1e}; "
              f"{left_out} of {n} images left out (face counts differ)")
    return [results["ours-dlib"][p] for p in paths], [results["ours-onnx"][p] for p in paths]


def stage_costs(label: str, analyses: list) -> None:
    totals = {s: sum(a.timings.get(s, 0.0) for a in analyses) for s in STAGES}
    whole = sum(totals.values()) or 1.0
    faces = sum(a.face_count for a in analyses) or 1
    parts = ", ".join(f"{s} {1000 * t / len(analyses):.0f} ms ({100 * t / whole:.0f}%)" for s, t in totals.items())
    print(f"2. {label}, per image: {parts}; encode per face {1000 * totals['encode'] / faces:.1f} ms; "
          f"bottleneck: {max(totals, key=totals.get)}")


# -- 3, 4, 5: processes, the cache, --max-side ----------------------------------------------------


def scaling_and_cache(paths: list[Path], params: AnalysisParams, workers: int, repeat: int, temp: Path) -> float:
    one, many = [], []
    for attempt in range(repeat):  # alternate which goes first
        order = (1, workers) if attempt % 2 == 0 else (workers, 1)
        for count in order:
            with AnalysisCache(temp / f"w{count}-{attempt}.sqlite", params.cache_key) as cache:
                _, seconds = timed(analyse_paths, paths, params, cache, count, False)
            (one if count == 1 else many).append(seconds)
    n, cores = len(paths), default_workers()
    ratio = median([a / b for a, b in zip(one, many)])
    shown = capped(ratio, min(cores, workers))
    target = f" (target >= 1.8x: {'PASS' if ratio >= 1.8 else 'FAIL'})" if workers == 2 else ""
    print(f"3. 1 process: {n / median(one):.2f} images/s; {workers} processes: {n / median(many):.2f} images/s "
          f"(medians of {repeat}, alternating; {cores} cores) -> {shown}{target}")
    first = median(one)
    with AnalysisCache(temp / "w1-0.sqlite", params.cache_key) as cache:
        (_, stats), cached = timed(analyse_paths, paths, params, cache, 1, False)
    print(f"4. cached re-run: {1000 * cached:.1f} ms ({stats.cached}/{stats.total} from the cache, "
          f"{stats.analysed} analysed) vs first run {first:.2f} s -> {verdict(first / cached, 50)}")
    return first


def max_side(singles: list[Path], every: list[Path], params: AnalysisParams, side: int, one: float,
             workers: int, temp: Path, base: Path = FACECOUNT) -> None:
    scaled = replace(params, max_side=side)
    with AnalysisCache(temp / "scaled.sqlite", scaled.cache_key) as cache:
        _, seconds = timed(analyse_paths, singles, scaled, cache, 1, False)
        scaled_all, _ = analyse_paths(every, scaled, cache, workers, False)
    with AnalysisCache(temp / "w1-0.sqlite", params.cache_key) as cache:
        full_all, _ = analyse_paths(every, params, cache, workers, False)
    changed = [(p, full_all[str(p)].face_count, scaled_all[str(p)].face_count) for p in every
               if full_all[str(p)].face_count != scaled_all[str(p)].face_count]
    big = sum(1 for p in singles if max(full_all[str(p)].width, full_all[str(p)].height) > side)
    print(f"5. --max-side {side}: single-face photos in {seconds:.2f} s vs {one:.2f} s -> "
          f"{one / seconds:.2f}x faster ({big} of {len(singles)} photos are larger than {side} px)")
    print(f"   face counts changed on {len(changed)} of {len(every)} facecount photos"
          + "".join(f"\n     {p.relative_to(base)}: {a} -> {b}" for p, a, b in changed))


# -- 6 and 7: the encoder on UTKFace faces ----------------------------------------------------------


def utkface_paths(count: int, offset: int = 0) -> list[Path]:
    with (UTKFACE / "labels.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    step = max(1, len(rows) // count)
    return [UTKFACE / r["path"] for r in rows[offset::step][:count]]


def encoder_ms_per_face(repeat: int, faces_wanted: int = 32) -> None:
    from anfe.faces import detection as faces
    from anfe.faces.imaging import decode_image

    m = faces.models()
    found = []  # (rgb, shape) of real faces
    for path in utkface_paths(3 * faces_wanted, offset=1):
        rgb = decode_image(path.read_bytes(), 10**8)
        boxes = faces.detect(rgb, DLIB)
        if len(boxes) == 1:
            found.append((rgb, m.shape(rgb, m.rectangle(boxes[0][0]))))
        if len(found) == faces_wanted:
            break
    cores = default_workers()
    threads = sorted({1, cores})
    nets = {t: m.facenet("cpu", t) for t in threads}

    def dlib_run():
        for rgb, shape in found:
            m.encoder.compute_face_descriptor(rgb, shape, 1)

    def onnx_run(net, size):
        def run():
            for start in range(0, len(found), size):
                chips = np.stack([m.chip(rgb, shape) for rgb, shape in found[start : start + size]])
                net(chips)
        return run

    runs = {"dlib": dlib_run}
    for t in threads:
        runs[f"onnx b1 t{t}"] = onnx_run(nets[t], 1)
        runs[f"onnx b32 t{t}"] = onnx_run(nets[t], 32)
    for run in runs.values():
        run()  # warm up
    times = {name: [] for name in runs}
    cpus = {name: [] for name in runs}
    for round_ in range(repeat):
        for name in (list(runs) if round_ % 2 == 0 else list(runs)[::-1]):
            _, wall, cpu = timed_both(runs[name])
            times[name].append(wall * 1000 / len(found))
            cpus[name].append(cpu * 1000 / len(found))
    ms = {name: median(t) for name, t in times.items()}
    cpu_ms = {name: median(t) for name, t in cpus.items()}
    print(f"6. ms per face on {len(found)} UTKFace faces (median of {repeat}, alternating; wall-clock / CPU): "
          f"dlib compute_face_descriptor {ms['dlib']:.1f} / {cpu_ms['dlib']:.1f}; ONNX (chip cut included): "
          + ", ".join(f"{name[5:]} {ms[name]:.2f} / {cpu_ms[name]:.2f}" for name in ms if name != "dlib"))
    for size in ("b1", "b32"):
        best = min((n for n in ms if n.startswith(f"onnx {size} ")), key=ms.get)
        print(f"   batch {size[1:]}: dlib vs ONNX ({best.split()[-1].replace('t', '')} thread(s)): wall-clock "
              f"{verdict(ms['dlib'] / ms[best], 20)}; CPU time {cpu_ms['dlib'] / cpu_ms[best]:.2f}x")


def whole_pass(count: int, workers: int, repeat: int) -> None:
    paths = utkface_paths(count)
    cores = default_workers()
    configs = {  # name: (params, processes, images per task)
        "dlib encoder": (DLIB, workers, batch_module.IMAGES_PER_TASK),
        f"ONNX, {workers} proc x auto threads, {batch_module.IMAGES_PER_TASK}/task (default)":
            (ONNX, workers, batch_module.IMAGES_PER_TASK),
        f"ONNX, 1 proc x {cores} threads": (replace(ONNX, threads=cores), 1, batch_module.IMAGES_PER_TASK),
        f"ONNX, {workers} proc, 1 image/task (no batching)": (ONNX, workers, 1),
    }
    default_size = batch_module.IMAGES_PER_TASK
    analyse_paths(paths[:4], ONNX, None, 1, False)  # convert/load before timing
    times = {name: [] for name in configs}
    cpus = {name: [] for name in configs}
    faces = {}
    try:
        for round_ in range(repeat):
            for name in (list(configs) if round_ % 2 == 0 else list(configs)[::-1]):
                params, processes, per_task = configs[name]
                batch_module.IMAGES_PER_TASK = per_task
                (results, _), seconds, cpu = timed_both(analyse_paths, paths, params, None, processes, False)
                times[name].append(seconds)
                cpus[name].append(cpu)
                faces[name] = sum(a.face_count for a in results.values())
    finally:
        batch_module.IMAGES_PER_TASK = default_size
    rate = {name: len(paths) / median(t) for name, t in times.items()}
    cpu_ms = {name: 1000 * median(t) / len(paths) for name, t in cpus.items()}
    print(f"7. whole pass on {len(paths)} UTKFace crops, no cache, {cores} cores (median of {repeat}, "
          f"alternating; images/s wall-clock, CPU ms/image): "
          + "; ".join(f"{n}: {rate[n]:.1f} images/s, {cpu_ms[n]:.0f} CPU ms" for n in rate))
    default = list(configs)[1]
    ratio = median([a / b for a, b in zip(times["dlib encoder"], times[default])])
    cpu_ratio = median([a / b for a, b in zip(cpus["dlib encoder"], cpus[default])])
    print(f"   ONNX vs dlib encoder (defaults): wall-clock {verdict(ratio, 5)}; CPU time {cpu_ratio:.2f}x; "
          f"faces found per run: " + ", ".join(f"{v}" for v in faces.values()))


# -- 8: full photos, exact against the default policy, projected to the paper's scale ---------------


def projection(photos: list[Path], workers: int, repeat: int, paper_photos: int) -> None:
    default = AnalysisParams(device="cpu")
    configs = {"exact": replace(default, detect="exact"), f"default ({default.detect})": default}
    if default.detect == "exact":
        configs["sized (40 px, 0.1 share)"] = replace(default, detect="sized", min_face=40, min_face_share=0.1)
    analyse_paths(photos[:2], default, None, 1, False)  # load and convert the models first
    times: dict[str, list[float]] = {name: [] for name in configs}
    cpus: dict[str, list[float]] = {name: [] for name in configs}
    loads = [os.getloadavg()[0]]
    for round_ in range(repeat):
        for name in (list(configs) if round_ % 2 == 0 else list(configs)[::-1]):
            _, seconds, cpu = timed_both(analyse_paths, photos, configs[name], None, workers, False)
            times[name].append(seconds)
            cpus[name].append(cpu)
            loads.append(os.getloadavg()[0])
    cores = default_workers()
    target = paper_photos / 8 / 3600
    print(f"8. whole pass on {len(photos)} full photos, no cache, {workers} processes on {cores} cores "
          f"(median of {repeat}, alternating; 1-minute load average during the runs "
          f"{min(loads):.2f}-{max(loads):.2f}):")
    exact = list(configs)[0]
    for name in configs:
        rate = len(photos) / median(times[name])
        speedup = median([a / b for a, b in zip(times[exact], times[name])])
        cpu_speedup = median([a / b for a, b in zip(cpus[exact], cpus[name])])
        hours = paper_photos / rate / 3600
        idle_rate = cores * len(photos) / median(cpus[name])  # every core busy, nothing else running
        idle_hours = paper_photos / idle_rate / 3600
        print(f"   {name}: measured {rate:.2f} photos/s per machine, {speedup:.2f}x exact "
              f"({1000 * median(cpus[name]) / len(photos):.0f} CPU ms/photo, {cpu_speedup:.2f}x exact in CPU time); "
              f"{paper_photos:,} photos: {hours:.1f} h on 1 machine, {hours / 8:.2f} h on 8 "
              f"(target >= {target:.1f} photos/s per machine: {'PASS' if rate >= target else 'FAIL'})")
        print(f"      estimate for an idle {cores}-core machine from the CPU time: {idle_rate:.2f} photos/s, "
              f"{idle_hours:.1f} h on 1 machine, {idle_hours / 8:.2f} h on 8 "
              f"({'PASS' if idle_rate >= target else 'FAIL'}; an estimate: it assumes the cores scale perfectly)")


def full_photos(facecount: Path, folders: list[Path]) -> list[Path]:
    """Every facecount photo and every image under the folders."""
    with (facecount / "manifest.csv").open(newline="") as handle:
        photos = [facecount / r["path"] for r in csv.DictReader(handle)]
    for folder in folders:
        photos += sorted(p for p in folder.rglob("*") if p.is_file()
                         and p.suffix.lower() in {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"})
    return photos


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=None, help="use only the first N single-face photos")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--max-side", type=int, default=800)
    parser.add_argument("--repeat", type=int, default=3, help="alternating runs per figure (the median is kept)")
    parser.add_argument("--steps", default="1,2,3,4,5,6,7,8", help="which measurements to run (1-2 need face_recognition)")
    parser.add_argument("--facecount", type=Path, default=FACECOUNT, help="the facecount folder (with manifest.csv)")
    parser.add_argument("--crops", type=int, default=500, help="UTKFace crops for step 7")
    parser.add_argument("--folder", type=Path, action="append", default=[], help="more full photos for step 8")
    parser.add_argument("--paper-photos", type=int, default=190_000, help="the photos step 8 projects to")
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
        with_dlib, with_onnx = pipelines(singles, params, args.repeat)
        stage_costs("dlib encoder", with_dlib)
        stage_costs("ONNX encoder", with_onnx)
    with tempfile.TemporaryDirectory() as temp:
        if steps & {3, 4, 5}:
            one = scaling_and_cache(singles, params, args.workers, args.repeat, Path(temp))
        if 5 in steps:
            max_side(singles, every, params, args.max_side, one, args.workers, Path(temp), args.facecount)
    if 6 in steps:
        encoder_ms_per_face(args.repeat)
    if 7 in steps:
        whole_pass(args.crops, args.workers, args.repeat)
    if 8 in steps:
        projection(full_photos(args.facecount, args.folder), args.workers, args.repeat, args.paper_photos)
    print(f"load average at the end: {load()}")


if __name__ == "__main__":
    main()
