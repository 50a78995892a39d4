"""Race x gender accuracy of every centroid build variant on one fixed UTKFace adult split, with
95% intervals: the source of the README's fairness figures.

    python bench/bench_fairness.py [--cache FILE] [--test-fraction 0.4] [--split-seed 0] [--min-group 30]

The UTKFace adults (age >= 17) are split once (train/test fixed by --split-seed; each k=auto
variant then holds out a validation part of the training images, seeded by the build seed, to
choose k): every variant is built from the same training images and scored on the same test
photos, so the figures differ only by the variant. Per variant it prints the race x gender table
(accuracy over decided faces with Wilson intervals, n), the overall balanced accuracy and the
worst race group's balanced accuracy with bootstrap intervals, and the gap between them; then a
side-by-side summary and whether the target holds (worst race within 1 point of overall, overall
not below the k=16 k-means build). The analysis cache (--cache or $ANFE_CACHE) makes reruns cheap.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from anfe.faces.batch import analyse_paths
from anfe.models.builds import BuildOptions, builds_from_analyses, load_items, parse_where
from anfe.faces.cache import AnalysisCache
from anfe.core.paths import cache_location
from anfe.core.config import AnalysisParams
from anfe.models.evaluation import EvaluationResult, evaluate_build
from anfe.models.fairness import pct, pct_interval, points, points_interval

UTKFACE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "faces" / "utkface" / "labels.csv"
RACES = ("Asian", "Black", "Indian", "White", "Others")
#: UTKFace's named races; "Others" gathers everyone else (Hispanic, Latino, Middle Eastern...).
NAMED = RACES[:4]
#: (label, variant, k, group_by[, validation folds]): what is compared. k=auto is chosen on validation, never on test.
VARIANTS = (
    ("plain average", "mean", 16, None),
    ("k-means k=16 (today)", "kmeans", 16, None),
    ("k-means, k on validation", "kmeans", "auto", None),
    ("k-means, k on validation (worst race)", "kmeans", "auto", "race"),
    ("group-balanced average", "group-mean", 16, "race"),
    ("per-race centroids", "group-centroids", 16, "race"),
    ("per-race k-means k=4", "group-kmeans", 4, "race"),
    ("per-race k-means, k on validation", "group-kmeans", "auto", "race"),
    ("per-race k-means, k on 5-fold validation", "group-kmeans", "auto", "race", 5),
    ("k per race grown where served worst (5-fold)", "group-adaptive", 1, "race", 5),
)


def race_table(result: EvaluationResult) -> list[str]:
    """The race x gender rows: accuracy [Wilson 95%] n, and the race's balanced accuracy."""
    table = result.breakdowns().get("race", {})
    lines = [f"    {'race':<8}" + "".join(f"{g:<28}" for g in result.genders) + "balanced [95%]"]
    for race in [r for r in RACES if r in table] + [r for r in table if r not in RACES]:
        row = table[race]
        cells = "".join(f"{pct(row[g]['accuracy']):>6} {pct_interval(row[g]['interval']):<14} n={row[g]['decided']:<4}"
                        for g in result.genders)
        lines.append(f"    {race:<8}{cells}{pct(row['balanced'])} {pct_interval(row['balanced_interval'])}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default=None, help="analysis cache [default: $ANFE_CACHE or the user's]")
    parser.add_argument("--labels", type=Path, default=UTKFACE)
    parser.add_argument("--test-fraction", type=float, default=0.4)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-group", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    params = AnalysisParams()
    items = load_items(args.labels, None, [parse_where("age>=17")])
    started = time.perf_counter()
    with AnalysisCache(cache_location(args.cache), params.cache_key) as cache:
        analyses, stats = analyse_paths([i.path for i in items], params, cache, args.workers, True)
        print(f"UTKFace adults: {len(items)} photos ({stats.cached} from cache, {stats.analysed} analysed now); "
              f"test split {args.test_fraction:g} by photo, split seed {args.split_seed}, build seed {args.seed}, "
              f"min group {args.min_group}")
        results: list[tuple[str, dict, EvaluationResult]] = []
        for label, variant, k, group_by, *folds in VARIANTS:
            options = BuildOptions(("all",), args.seed, variant, k, args.test_fraction, args.split_seed,
                                   group_by=group_by, split_by="photo", validation_folds=(folds or [1])[0])
            t0 = time.perf_counter()
            (build,) = builds_from_analyses(items, analyses, options, params,
                                            {"source": str(args.labels), "filters": ["age>=17"]})
            built_s = time.perf_counter() - t0
            result = evaluate_build(build, items, params, cache, 1, use_split=True, baselines=False,
                                    progress=False, min_group=args.min_group)
            results.append((label, build, result))
            worst = result.worst_groups().get("race", {})
            chosen = build.get("k_choice")
            print(f"\n{label}: build {build['id']} ({sum(len(c) for c in build['centroids'].values())} centroids"
                  + (f", k per race {build['k_per_group']} chosen on {chosen['folds']}-fold validation"
                     if build.get("k_per_group") else
                     f", k={chosen['chosen']} of {','.join(chosen['candidates'])} chosen on "
                     f"{'%d-fold ' % chosen['folds'] if chosen['folds'] > 1 else ''}validation by {chosen['by']}"
                     if chosen else "") + f", built in {built_s:.1f} s)")
            print(f"  balanced {pct(result.balanced_accuracy())} {pct_interval(result.balanced_interval())}; "
                  + "; ".join(f"{g} {pct(v['accuracy'])} {pct_interval(v['interval'])} n={v['decided']}"
                              for g, v in result.per_gender().items()))
            if worst.get("group") is not None:
                print(f"  worst race {worst['group']} {pct(worst['balanced_accuracy'])} {pct_interval(worst['interval'])}, "
                      f"gap {points(worst['gap'])} {points_interval(worst['gap_interval'])}"
                      + (f"; left out (<{args.min_group}): {worst['left_out']}" if worst.get("left_out") else ""))
            print("\n".join(race_table(result)))
    reference = next(r.balanced_accuracy() for label, b, r in results if b["variant"] == "kmeans" and b["k"] == 16
                     and "k_choice" not in b)
    print("\nside by side (balanced accuracy [95%]; worst race; gap to overall [95%]; target: gap >= -1.0 pt "
          f"and overall >= k=16's {pct(reference)}):")
    for label, build, result in results:
        worst = result.worst_groups().get("race", {})
        overall = result.balanced_accuracy() or 0.0
        gap = worst.get("gap")
        met = gap is not None and gap >= -0.01 and overall >= reference - 1e-12
        print(f"  {label:<44} {build['id']:<10} {pct(overall):>6} {pct_interval(result.balanced_interval()):<14} "
              f"{str(worst.get('group')):<7} {pct(worst.get('balanced_accuracy')):>6} {pct_interval(worst.get('interval')):<14} "
              f"{points(gap):>8} {points_interval(worst.get('gap_interval')):<16} {'TARGET MET' if met else 'not met'}")
    print(f"\nthe same over UTKFace's four named races only ({', '.join(NAMED)}; 'Others' left out):")
    for label, build, result in results:
        table = result.breakdowns().get("race", {})
        named = {v: table[v] for v in NAMED if v in table and table[v]["balanced"] is not None
                 and table[v]["all"]["decided"] >= args.min_group}
        race = min(named, key=lambda v: named[v]["balanced"])
        overall = result.balanced_accuracy() or 0.0
        gap = named[race]["balanced"] - overall
        met = gap >= -0.01 and overall >= reference - 1e-12
        print(f"  {label:<44} {build['id']:<10} {pct(overall):>6} {race:<7} {pct(named[race]['balanced']):>6} "
              f"{pct_interval(named[race]['balanced_interval']):<14} {points(gap):>8} "
              f"{points_interval(result.group_gap_interval('race', race)):<16} {'met' if met else 'not met'}")
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
