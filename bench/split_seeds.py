"""The README's UTKFace accuracy figures: the mean over held-out split seeds of

    anfe build LABELS --min-age 17 --test-fraction 0.3 --sizes all --split-seed S [--variant kmeans --k 16]
    anfe evaluate g_all            # (g_all_k16): scored on the build's own held-out split

for S = 0 .. seeds-1, through the same library calls those commands make (one analysis pass,
cached; then per seed one build and one evaluation without baselines).

    python bench/split_seeds.py [--labels ../shared/data/faces/utkface/labels.csv] [--seeds 10] [--cache PATH]

Prints, per seed and as the mean: accuracy per gender, the balanced accuracy and Asian men's
accuracy, for the plain average and for 16 centroids per gender.
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

from anfe.faces.batch import analyse_paths
from anfe.models.builds import BuildOptions, builds_from_analyses, load_items, parse_where
from anfe.faces.cache import AnalysisCache
from anfe.core.paths import default_cache_path
from anfe.core.config import AnalysisParams
from anfe.models.evaluation import evaluate_build

UTKFACE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "faces" / "utkface" / "labels.csv"


def figures(result) -> dict[str, float]:
    """Men's, women's and balanced accuracy, and Asian men's (from the race breakdown), in %."""
    per = result.per_gender()
    asian = result.breakdowns().get("race", {}).get("Asian", {}).get("male", {})
    return {"men": 100 * per["male"]["accuracy"], "women": 100 * per["female"]["accuracy"],
            "balanced": 100 * result.balanced_accuracy(), "asian_men": 100 * (asian.get("accuracy") or 0.0)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=Path, default=UTKFACE)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--cache", type=Path, default=None, help="analysis cache [default: the user's]")
    args = parser.parse_args()
    params = AnalysisParams()
    items = load_items(args.labels, None, [parse_where("age>=17")])
    dataset = {"source": str(args.labels.resolve()), "filters": ["age>=17"]}
    with AnalysisCache(args.cache or default_cache_path(), params.cache_key) as cache:
        analyses, stats = analyse_paths([i.path for i in items], params, cache, os.cpu_count() or 1)
        print(f"{len(items):,} UTKFace adults (age >= 17): {stats.cached:,} analyses cached, {stats.analysed:,} new")
        for variant, k in (("mean", 1), ("kmeans", 16)):
            rows = []
            for seed in range(args.seeds):
                options = BuildOptions(sizes=("all",), variant=variant, k=k, test_fraction=0.3, split_seed=seed)
                (build,) = builds_from_analyses(items, analyses, options, params, dataset)
                result = evaluate_build(build, items, params, cache, 1, use_split=True, baselines=False,
                                        progress=False)
                rows.append(figures(result))
                print(f"{build['id']} split seed {seed}: " + ", ".join(f"{n} {v:.1f}%" for n, v in rows[-1].items()))
            mean = {n: statistics.mean(r[n] for r in rows) for n in rows[0]}
            print(f"{variant} (k={k}), mean of {args.seeds} split seeds: "
                  + ", ".join(f"{n} {v:.1f}%" for n, v in mean.items()))


if __name__ == "__main__":
    main()
