"""Detection settings against face counts: may a default --max-side (or another --upsample) be used?

    python bench/bench_detection.py [--facecount DIR] [--folder DIR ...] [--settings full:1,1600:1,...]

With the encoder fast, HOG detection is the cost on full-size photos. This measures, for each
setting ``MAX_SIDE:UPSAMPLE`` (``full`` = no --max-side), on every facecount photo and on every
image under each ``--folder`` (e.g. the images an ``anfe demo`` crawl downloaded):
  - the detection time (median per image, and the total against the default ``full:1``);
  - how many images' face counts change against the default, and how many *decisions* change:
    the one-face rule's outcome (no face / one face / several faces) that cleaning and builds
    use, clean's small-face rule (< 20 px between the eyes) and the crawl gate's 40 px box;
  - for one-face images, how far the box, the landmarks and the embedding move (landmarks and
    embeddings always use the full-size image, but from the box found on the smaller one);
  - on facecount, how many counts match the manifest's ``expected_faces``.
A setting can become the documented default only if it changes no count and no decision.
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import time
from pathlib import Path

from anfe.faces import detection as faces
from anfe.core.config import AnalysisParams
from anfe.faces.imaging import decode_image

FACECOUNT = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "faces" / "facecount"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp"}


MIN_EYE_DISTANCE, GATE_MIN_FACE_SIDE = 20.0, 40  # curation/rules.py and scraper/settings.py defaults


def decision(found: list) -> tuple:
    """What the rules decide from the detection: the count class, and for one face its size checks."""
    if len(found) != 1:
        return ("no-face" if not found else "many-faces",)
    face = found[0]
    return ("one-face", face["eyes"] < MIN_EYE_DISTANCE, face["side"] < GATE_MIN_FACE_SIDE)


def _describe(rgb, boxes) -> list[dict]:
    """Box, landmarks, eye distance, box side and embedding of each face (full-size image)."""
    import numpy as np

    m = faces.models()
    net = m.facenet("cpu", 0)
    out = []
    for box, _confidence in boxes:
        shape = m.shape(rgb, m.rectangle(box))
        points = np.array([(p.x, p.y) for p in shape.parts()], dtype=float)
        top, right, bottom, left = box
        out.append({
            "box": np.array(box, dtype=float), "points": points,
            "eyes": float(np.linalg.norm(points[0:2].mean(axis=0) - points[2:4].mean(axis=0))),
            "side": min(bottom - top, right - left),
            "embedding": net(m.chip(rgb, shape)[None])[0],
        })
    return out


def parse_settings(text: str) -> list[tuple[int | None, int]]:
    out = []
    for part in text.split(","):
        side, upsample = part.split(":")
        out.append((None if side == "full" else int(side), int(upsample)))
    return out


def measure(images: dict[str, Path], settings, repeat: int) -> dict:
    """{setting: (faces by name, seconds per image)}; each image decoded once, settings alternating."""
    counts = {s: {} for s in settings}
    seconds = {s: {} for s in settings}
    for index, (name, path) in enumerate(images.items()):
        rgb = decode_image(path.read_bytes(), 10**9)
        order = settings if index % 2 == 0 else settings[::-1]
        for setting in order:
            params = AnalysisParams(max_side=setting[0], upsample=setting[1])
            took = []
            for _ in range(repeat):
                start = time.perf_counter()
                found = faces.detect(rgb, params)
                took.append(time.perf_counter() - start)
            counts[setting][name] = _describe(rgb, found)
            seconds[setting][name] = statistics.median(took)
    return {s: (counts[s], seconds[s]) for s in settings}


def report(title: str, results: dict, expected: dict[str, int] | None) -> None:
    import numpy as np

    base = results[(None, 1)][0]
    print(f"{title}: {len(base)} images")
    for (side, upsample), (found, seconds) in results.items():
        changed = [n for n in found if len(found[n]) != len(base[n])]
        decisions = [n for n in found if decision(found[n]) != decision(base[n])]
        both_one = [n for n in found if len(found[n]) == len(base[n]) == 1]
        moves = [(np.max(np.abs(found[n][0]["box"] - base[n][0]["box"])),
                  np.max(np.abs(found[n][0]["points"] - base[n][0]["points"])),
                  np.linalg.norm(found[n][0]["embedding"] - base[n][0]["embedding"])) for n in both_one]
        box, points, embedding = (max(m[i] for m in moves) if moves else 0.0 for i in range(3))
        total, base_total = sum(seconds.values()), sum(results[(None, 1)][1].values())
        line = (f"  max-side {side or 'full':>4}, upsample {upsample}: median {1000 * statistics.median(seconds.values()):.0f} ms/image, "
                f"total {total:.1f} s ({base_total / total:.2f}x vs full:1); counts changed {len(changed)}, "
                f"decisions changed {len(decisions)}; one-face images: box moved <= {box:.0f} px, "
                f"landmarks <= {points:.0f} px, embedding distance <= {embedding:.3f}")
        if expected is not None:
            right = sum(1 for n in found if str(len(found[n])) == str(expected[n]))
            line += f"; {right}/{len(found)} counts as the manifest says"
        print(line)
        for name in sorted(set(changed) | set(decisions))[:8]:
            print(f"      {name}: {decision(base[name])} {len(base[name])} -> {decision(found[name])} {len(found[name])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facecount", type=Path, default=FACECOUNT)
    parser.add_argument("--folder", type=Path, action="append", default=[], help="more images (all files under it)")
    parser.add_argument("--settings", default="full:1,full:0,1600:1,1200:1,1024:1,800:1,640:1,800:2")
    parser.add_argument("--repeat", type=int, default=1, help="timings per image and setting (median)")
    args = parser.parse_args()
    settings = parse_settings(args.settings)
    if (None, 1) not in settings:
        settings.insert(0, (None, 1))
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; HOG detector")
    with (args.facecount / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    images = {r["path"]: args.facecount / r["path"] for r in rows}
    expected = {r["path"]: r["expected_faces"] for r in rows}
    report("facecount photos", measure(images, settings, args.repeat), expected)
    for folder in args.folder:
        found = {str(p.relative_to(folder)): p for p in sorted(folder.rglob("*"))
                 if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
        report(str(folder), measure(found, settings, args.repeat), None)
    print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
