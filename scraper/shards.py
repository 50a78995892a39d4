"""Shards of a URL list: ``-a shard=K/N`` keeps the rows whose key falls in shard K of N (a leaf).

The key is the row's sha256 when the list gives one (the same bytes under two URLs then land in
the same process, which records the second as a duplicate of the first), else its URL. The split
is a hash, stable across runs, so a re-run of a killed shard takes the same rows.
"""

from __future__ import annotations

import hashlib

from .errors import SpiderArgumentError

__all__ = ["parse_shard", "shard_of"]


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"K/N"`` -> ``(K, N)`` with 0 <= K < N; None when not given."""
    if text in (None, ""):
        return None
    try:
        k, n = (int(part) for part in str(text).split("/"))
    except ValueError:
        k = n = -1
    if not 0 <= k < n:
        raise SpiderArgumentError(f"-a shard={text!r}: give K/N with 0 <= K < N, e.g. shard=0/2")
    return k, n


def shard_of(key: str, shards: int) -> int:
    """The shard (0..shards-1) of a row's key."""
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % shards
