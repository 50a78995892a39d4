"""Do the ONNX and the dlib encoder give the same numbers, builds and decisions on real faces?

    python bench/eval_encoder.py [--labels ../shared/data/faces/utkface/labels.csv] [--min-age 17]
                                 [--limit N] [--workers 2] [--keep DIR]

The UTKFace adult split (age >= 17) is analysed twice through the product path
(``analyse_paths``), once per encoder, each into its own cache file (the two share one cache
key, so one file would answer the second run from the first). Then:
  1. every face's embedding, ONNX against dlib: max |difference| per component (target <= 1e-5),
     and how many images were left out because their face counts differ (expected: none;
     detection does not depend on the encoder);
  2. ``g_1000`` and ``g_all`` built from each (70/30 split, seed 0): the same members, and the
     centroids' max |difference| (target <= 1e-6);
  3. each build evaluated on its held-out split: the confusion matrices must be identical.
``--keep DIR`` keeps both cache files there, so a second run reads them instead of re-analysing.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from anfe.faces.batch import analyse_paths
from anfe.models.builds import BuildOptions, builds_from_analyses
from anfe.faces.cache import AnalysisCache
from anfe.core.config import AnalysisParams
from anfe.core.dataset import load_labelled
from anfe.models.evaluation import evaluate_build

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "faces"
ENCODERS = ("dlib", "onnx")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=SHARED / "utkface" / "labels.csv")
    parser.add_argument("--min-age", type=int, default=17)
    parser.add_argument("--limit", type=int, default=None, help="only the first N adult photos")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="keep the two cache files in this folder")
    args = parser.parse_args()
    items = [i for i in load_labelled(args.labels) if int(i.labels.get("age", 0)) >= args.min_age][: args.limit]
    print(f"{len(items)} photos of {args.labels} with age >= {args.min_age}; load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as temp:
        folder = args.keep or Path(temp)
        folder.mkdir(parents=True, exist_ok=True)
        params = {e: AnalysisParams(encoder=e, device="cpu") for e in ENCODERS}
        analyses, caches = {}, {}
        for encoder in ENCODERS:
            caches[encoder] = AnalysisCache(folder / f"{encoder}.sqlite", params[encoder].cache_key)
            start = time.perf_counter()
            analyses[encoder], stats = analyse_paths([i.path for i in items], params[encoder], caches[encoder],
                                                     args.workers, progress=True)
            print(f"   {encoder}: {stats.analysed} analysed, {stats.cached} from its cache in "
                  f"{time.perf_counter() - start:.0f} s")
        compare_embeddings(items, analyses)
        options = BuildOptions(sizes=(1000, "all"), seed=0, test_fraction=0.3, split_seed=0,
                               clamp=args.limit is not None)  # a --limit sample may have < 1000
        builds = {e: builds_from_analyses(items, analyses[e], options, params[e]) for e in ENCODERS}
        compare_builds(items, builds, params, caches, args.workers)
        for cache in caches.values():
            cache.close()


def compare_embeddings(items, analyses) -> None:
    worst, faces, left_out = 0.0, 0, 0
    encoders_seen: dict[str, set[str]] = {e: set() for e in ENCODERS}
    for item in items:
        ref, new = analyses["dlib"][str(item.path)], analyses["onnx"][str(item.path)]
        for encoder, analysis in (("dlib", ref), ("onnx", new)):
            encoders_seen[encoder] |= {f.encoder for f in analysis.faces}
        if ref.face_count != new.face_count:
            left_out += 1
            continue
        for a, b in zip(ref.faces, new.faces):
            assert a.box == b.box and a.landmarks == b.landmarks
            worst = max(worst, float(np.max(np.abs(a.embedding - b.embedding))))
            faces += 1
    verdict = "PASS" if worst <= 1e-5 and faces >= 200 else "FAIL"
    print(f"1. embeddings: {faces} faces compared, max |onnx - dlib| = {worst:.2e} per component "
          f"(target <= 1e-5 on >= 200 faces: {verdict}); {left_out} images left out (face counts differ); "
          f"encoders recorded: dlib run {sorted(encoders_seen['dlib'])}, onnx run {sorted(encoders_seen['onnx'])}")


def compare_builds(items, builds, params, caches, workers) -> None:
    for ref, new in zip(builds["dlib"], builds["onnx"]):
        same_members = ref["members"] == new["members"] and ref["split"] == new["split"]
        worst = max(
            float(np.max(np.abs(np.asarray(ref["centroids"][g]) - np.asarray(new["centroids"][g]))))
            for g in ref["centroids"]
        )
        verdict = "PASS" if same_members and worst <= 1e-6 else "FAIL"
        print(f"2. {ref['id']}: {sum(ref['counts'].values())} members, same members and split: {same_members}; "
              f"centroids max |difference| {worst:.2e} (target <= 1e-6: {verdict})")
        results = {
            e: evaluate_build(b, items, params[e], caches[e], workers, use_split=True, baselines=False, progress=False)
            for e, b in (("dlib", ref), ("onnx", new))
        }
        same = results["dlib"].confusion() == results["onnx"].confusion()
        flips = sum(
            1 for a, b in zip(results["dlib"].outcomes, results["onnx"].outcomes) if a.predicted != b.predicted
        )
        print(f"3. {ref['id']} on its held-out split: confusion matrices identical: {same} "
              f"({'PASS' if same else 'FAIL'}); dlib {results['dlib'].confusion()}; "
              f"onnx {results['onnx'].confusion()}; {flips} predictions differ; balanced accuracy "
              f"dlib {results['dlib'].balanced_accuracy():.4f}, onnx {results['onnx'].balanced_accuracy():.4f}")


if __name__ == "__main__":
    main()
