"""Is the review queue's suspicion order useful? Flip 5% of UTKFace adults' labels and count how
many flipped photos land in the first 10% of their gender's queue.

Reads embeddings from the analysis cache (default ``~/.cache/anfe/analysis.sqlite``; missing ones
are analysed and cached). Prints the figure per seed, against two baselines measured in the same
run: plain (not leave-one-out) centroids, and a random order (expected: the top fraction itself).
With ~1,000 images per gender the two centroid scores almost coincide (leave-one-out scales the
own distance by n/(n-1)); leave-one-out matters for small folders, where an image pulls its own
centroid noticeably.

    python bench/bench_suspicion.py [--images 2000] [--seeds 5] [--cache PATH]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path

import numpy as np

from anfe.faces.batch import analyse_paths, default_workers
from anfe.faces.cache import AnalysisCache
from anfe.core.paths import default_cache_path
from anfe.core.config import AnalysisParams
from testkit.trials import flip_trial

UTKFACE = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "faces" / "utkface"


def adults(labels_csv: Path, min_age: int) -> list[tuple[Path, str]]:
    with labels_csv.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [(labels_csv.parent / r["path"], r["gender"]) for r in rows if int(r["age"]) >= min_age]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--flip", type=float, default=0.05)
    parser.add_argument("--top", type=float, default=0.10)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--min-age", type=int, default=17)
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=UTKFACE)
    args = parser.parse_args()

    candidates = adults(args.data / "labels.csv", args.min_age)
    params = AnalysisParams()
    cache_path = args.cache or default_cache_path()
    print(f"UTKFace adults (age >= {args.min_age}): {len(candidates)}; cache {cache_path}")
    figures: dict[str, list[float]] = {"leave-one-out": [], "plain centroids": [], "random order": []}
    with_face: list[float] = []
    with AnalysisCache(cache_path, params.cache_key) as cache:
        for seed in range(args.seeds):
            rng = np.random.default_rng(1000 + seed)
            sample = [candidates[i] for i in rng.choice(len(candidates), args.images, replace=False)]
            results, stats = analyse_paths([p for p, _ in sample], params, cache, default_workers(),
                                          progress=sys.stderr.isatty())
            usable = [(results[str(p)].single_embedding, g) for p, g in sample]
            usable = [(v, g) for v, g in usable if v is not None]
            vectors = np.stack([v for v, _ in usable])
            labels = [g for _, g in usable]
            loo = flip_trial(vectors, labels, args.flip, args.top, seed=seed)
            plain = flip_trial(vectors, labels, args.flip, args.top, seed=seed, leave_one_out=False)
            chance = _random_order(labels, args.flip, args.top, seed)
            figures["leave-one-out"].append(loo.recall)
            figures["plain centroids"].append(plain.recall)
            figures["random order"].append(chance)
            with_face.append(len(usable) / len(sample))
            print(
                f"seed {seed}: {len(sample)} sampled, {stats.analysed} analysed now, {len(usable)} with one face; "
                f"{loo.flipped} flipped; in the first {args.top:.0%} of their queue: "
                f"leave-one-out {loo.found} ({loo.recall:.1%}), plain centroids {plain.found} "
                f"({plain.recall:.1%}), random order {chance:.1%}"
            )
    print()
    for name, values in figures.items():
        print(f"{name:>16}: mean {statistics.mean(values):.1%}, min {min(values):.1%}, max {max(values):.1%}")
    mean_loo = statistics.mean(figures["leave-one-out"])
    print(f"flips are drawn among photos with exactly one face ({statistics.mean(with_face):.1%} of the sample); "
          f"counting flipped photos without one as misses would give about {mean_loo * statistics.mean(with_face):.1%}")
    print(f"leave-one-out vs random order: {mean_loo / statistics.mean(figures['random order']):.1f}x; "
          f"target >= 90% in the first 10%: {'met' if min(figures['leave-one-out']) >= 0.9 else 'NOT met'}")


def _random_order(labels: list[str], flip: float, top: float, seed: int) -> float:
    """Recall of the same flips under a random queue order (the baseline)."""
    rng = np.random.default_rng(seed)
    n = len(labels)
    flipped = set(int(i) for i in rng.choice(n, size=max(1, round(flip * n)), replace=False))
    order_rng = np.random.default_rng(seed + 12345)
    found = 0
    classes = sorted(set(labels))
    noisy = [(classes[1] if labels[i] == classes[0] else classes[0]) if i in flipped else labels[i] for i in range(n)]
    for g in classes:
        queue = [i for i in range(n) if noisy[i] == g]
        order_rng.shuffle(queue)
        found += sum(1 for i in queue[: int(np.ceil(top * len(queue)))] if i in flipped)
    return found / len(flipped)


if __name__ == "__main__":
    main()
