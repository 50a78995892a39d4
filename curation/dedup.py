"""Exact duplicates (same content hash) and near duplicates (64-bit perceptual hashes within a
Hamming radius) without comparing all pairs: multi-index hashing (Norouzi, Punjani, Fleet, CVPR
2012). Two hashes split into ``m`` chunks and within ``r`` bits agree to within ``r // m`` bits on
at least one chunk, so only items sharing a (nearly) equal chunk are ever compared.
"""

from __future__ import annotations

import itertools
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_NEAR_DISTANCE", "NearGroup", "exact_groups", "hashes_to_array", "near_duplicate_groups",
           "near_pairs"]

#: Default Hamming radius for near duplicates. Measured on UTKFace: resized/recompressed
#: copies stay within 2 bits; distinct aligned face crops come as close as 4 bits.
DEFAULT_NEAR_DISTANCE = 3
_BLOCK = 2_000_000  # candidate pairs handled at once (bounds memory)


def hashes_to_array(hex_hashes: Iterable[str]) -> np.ndarray:
    """Hex perceptual hashes (as :func:`anfe.core.hashing.perceptual_hash` writes them) to uint64."""
    return np.array([int(h, 16) for h in hex_hashes], dtype=np.uint64)


def near_pairs(
    hashes: np.ndarray, radius: int, chunks: int = 4
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All pairs of 64-bit ``hashes`` within ``radius`` bits as arrays ``(i, j, distance)``, ``i < j``,
    sorted: each hash is split into ``chunks`` chunks (default 4 of 16 bits), and every value within
    ``radius // chunks`` bits of its chunk is looked up among the others' sorted chunks."""
    if 64 % chunks:
        raise ValueError("chunks must divide 64 (1, 2, 4, 8, 16, 32 or 64)")
    hashes = np.asarray(hashes, dtype=np.uint64)
    bits = 64 // chunks
    flips = range(min(radius // chunks, bits) + 1)
    masks = [sum(1 << b for b in on) for f in flips for on in itertools.combinations(range(bits), f)]
    keys: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    for k in range(chunks):
        values = ((hashes >> np.uint64(k * bits)) & np.uint64((1 << bits) - 1)).astype(np.int64)
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        if bits <= 20:  # bucket boundaries from a direct table (no search)
            starts = np.concatenate(([0], np.cumsum(np.bincount(values, minlength=1 << bits))))
        for probe in (values ^ mask for mask in masks):
            if bits <= 20:
                lo, hi = starts[probe], starts[probe + 1]
            else:
                lo, hi = np.searchsorted(ordered, probe, "left"), np.searchsorted(ordered, probe, "right")
            keys += _join(hashes, lo, hi, order, radius)
    unique = np.unique(np.concatenate(keys))
    i, j = unique // len(hashes), unique % len(hashes)
    return i, j, np.bitwise_count(hashes[i] ^ hashes[j])


def _join(
    hashes: np.ndarray, lo: np.ndarray, hi: np.ndarray, order: np.ndarray, radius: int
) -> list[np.ndarray]:
    """Expand each hash's matching range ``order[lo:hi]`` into candidate pairs, block by block, and
    keep those within ``radius`` (encoded as ``i * n + j``)."""
    n = len(hashes)
    counts = hi - lo
    out = []
    ends = np.cumsum(counts)
    start = 0
    while start < n:
        # as many queries as fit in one block of candidates (at least one)
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + _BLOCK, side="right")), start + 1)
        c = counts[start:stop]
        total = int(c.sum())
        if total:
            queries = np.repeat(np.arange(start, stop), c)
            offsets = np.arange(total) - np.repeat(np.cumsum(c) - c, c)
            others = order[np.repeat(lo[start:stop], c) + offsets]
            keep = queries < others
            queries, others = queries[keep], others[keep]
            close = np.bitwise_count(hashes[queries] ^ hashes[others]) <= radius
            out.append(queries[close] * n + others[close])
        start = stop
    return out


@dataclass(frozen=True)
class NearGroup:
    """Near duplicates around one kept item: ``keep`` and ``(index, distance)`` of the others."""

    keep: int
    others: tuple[tuple[int, int], ...]


def exact_groups(keys: Sequence[Hashable]) -> list[list[int]]:
    """Indices sharing a key (a content hash), for keys seen more than once, in first-seen order."""
    groups: dict[Hashable, list[int]] = {}
    for index, key in enumerate(keys):
        groups.setdefault(key, []).append(index)
    return [members for members in groups.values() if len(members) > 1]


def near_duplicate_groups(
    phashes: Sequence[str], quality: Sequence[float], radius: int = DEFAULT_NEAR_DISTANCE
) -> list[NearGroup]:
    """Greedy groups of near duplicates: the best item (highest ``quality``, e.g. pixel count) is
    kept and takes every not-yet-grouped item within ``radius`` of it; then the next best. Not
    connected components: a chain of small steps never joins two clearly different photos."""
    if len(phashes) != len(quality):
        raise ValueError("phashes and quality must have the same length")
    if not phashes:
        return []
    values = hashes_to_array(phashes)
    distinct, inverse = np.unique(values, return_inverse=True)
    holders: list[list[int]] = [[] for _ in range(len(distinct))]
    for index, slot in enumerate(inverse.tolist()):
        holders[slot].append(index)
    neighbours: list[list[int]] = [[] for _ in range(len(distinct))]
    i, j, _ = near_pairs(distinct, radius)
    for a, b in zip(i.tolist(), j.tolist()):
        neighbours[a].append(b)
        neighbours[b].append(a)
    taken = np.zeros(len(phashes), dtype=bool)
    groups = []
    for best in sorted(range(len(phashes)), key=lambda x: (-quality[x], x)):
        if taken[best]:
            continue
        taken[best] = True
        slot = int(inverse[best])
        others = []
        for other_slot in [slot, *neighbours[slot]]:
            distance = int(np.bitwise_count(distinct[other_slot] ^ distinct[slot]))
            for other in holders[other_slot]:
                if not taken[other]:
                    taken[other] = True
                    others.append((other, distance))
        if others:
            groups.append(NearGroup(best, tuple(sorted(others))))
    return groups
