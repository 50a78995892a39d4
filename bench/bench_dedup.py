"""Near-duplicate search at scale: multi-index hashing over 100,000 64-bit hashes against an
all-pairs (numpy, row by row) baseline timed on a subset in the same run.

    python bench/bench_dedup.py [--n 100000] [--subset 10000] [--radius 3 --radius 6] [--cache PATH]

Prints, per radius: the index time on all n hashes, the baseline time on the subset, the
baseline extrapolated to n (all-pairs work grows with n^2), the speed-up, and whether the
index found every planted near duplicate and exactly the baseline's pairs on the subset.
Real perceptual hashes are not uniform (face crops share many bits); when an analysis cache
with phashes is found (``--cache``, default the user's), the index is also timed on n hashes
made from the real ones (each real hash repeated with 8 random bits flipped).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from anfe.faces.cache import AnalysisCache
from anfe.core.paths import default_cache_path
from curation.dedup import hashes_to_array, near_pairs
from testkit.trials import brute_force_pairs


def synthetic(n: int, planted: int, max_flips: int, seed: int = 1) -> tuple[np.ndarray, list[tuple[int, int, int]]]:
    """``n`` uniform random hashes; ``planted`` of them are copies of others with 0..max_flips bits flipped."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    sources = rng.choice(n - planted, size=planted, replace=False)
    truth = []
    for k, source in enumerate(sources.tolist()):
        target = n - planted + k
        flips = int(rng.integers(0, max_flips + 1))
        value = int(hashes[source])
        for bit in rng.choice(64, size=flips, replace=False):
            value ^= 1 << int(bit)
        hashes[target] = value
        truth.append((source, target, flips))
    return hashes, truth


def real_like(cache: Path, n: int, seed: int = 3) -> np.ndarray | None:
    """``n`` hashes made from the cache's real phashes (repeated, 8 random bits flipped each)."""
    if not cache.is_file():
        return None
    with AnalysisCache(cache, "") as opened:
        real = hashes_to_array(opened.phashes())
    if len(real) < 500:
        return None
    rng = np.random.default_rng(seed)
    hashes = np.resize(real, n)
    for _ in range(8):
        hashes ^= np.uint64(1) << rng.integers(0, 64, size=n).astype(np.uint64)
    return hashes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--subset", type=int, default=10_000)
    parser.add_argument("--planted", type=int, default=2_000)
    parser.add_argument("--radius", type=int, action="append")
    parser.add_argument("--cache", type=Path, default=default_cache_path())
    args = parser.parse_args()
    radii = args.radius or [3, 6]
    hashes, truth = synthetic(args.n, args.planted, max(radii))
    print(f"{args.n:,} random 64-bit hashes with {args.planted:,} planted near duplicates "
          f"(0-{max(radii)} bits flipped); all-pairs baseline on {args.subset:,} like them")
    subset, _ = synthetic(args.subset, max(1, args.planted * args.subset // args.n), max(radii), seed=2)
    for radius in radii:
        start = time.perf_counter()
        i, j, _ = near_pairs(hashes, radius)
        index_time = time.perf_counter() - start
        found = set(zip(i.tolist(), j.tolist()))
        planted = [(min(a, b), max(a, b)) for a, b, flips in truth if flips <= radius]
        recall = sum(p in found for p in planted) / max(1, len(planted))

        start = time.perf_counter()
        expected = brute_force_pairs(subset, radius)
        brute_time = time.perf_counter() - start
        si, sj, _ = near_pairs(subset, radius)
        same = set(zip(si.tolist(), sj.tolist())) == expected
        extrapolated = brute_time * (args.n / args.subset) ** 2
        print(f"radius {radius}: index {index_time:.2f} s for {args.n:,} hashes ({len(found):,} pairs, "
              f"planted recall {recall:.3f}); all-pairs {brute_time:.2f} s for {args.subset:,} "
              f"-> ~{extrapolated:.0f} s for {args.n:,}; speed-up x{extrapolated / index_time:.0f}; "
              f"equal to all-pairs on the subset: {same}")

    real = real_like(args.cache, args.n)
    if real is not None:
        for radius in radii:
            start = time.perf_counter()
            i, _, _ = near_pairs(real, radius)
            print(f"radius {radius}, {args.n:,} hashes made from real phashes: index "
                  f"{time.perf_counter() - start:.2f} s ({len(i):,} pairs)")


if __name__ == "__main__":
    main()
