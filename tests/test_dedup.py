"""Near-duplicate search: multi-index hashing equals brute force; real copies stay close."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from anfe.core.hashing import perceptual_hash
from curation.dedup import (
    DEFAULT_NEAR_DISTANCE, exact_groups, hashes_to_array, near_duplicate_groups, near_pairs,
)
from testkit.trials import brute_force_pairs, query


def hamming(a: str, b: str) -> int:
    """Bits that differ between two hex perceptual hashes of the same length."""
    return bin(int(a, 16) ^ int(b, 16)).count("1")


def _random_hashes(n: int, planted: int, seed: int = 7) -> np.ndarray:
    """``n`` random 64-bit hashes; the last ``planted`` are copies of the first ones with 0-10 bits flipped."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    for k in range(planted):
        value = int(hashes[k])
        for bit in rng.choice(64, size=int(rng.integers(0, 11)), replace=False):
            value ^= 1 << int(bit)
        hashes[n - planted + k] = value
    return hashes


@pytest.mark.parametrize("radius", [0, 2, 3, 5, 8, 10])
def test_pairs_equal_brute_force(radius):
    hashes = _random_hashes(3000, 150)
    i, j, d = near_pairs(hashes, radius)
    assert set(zip(i.tolist(), j.tolist())) == brute_force_pairs(hashes, radius)
    assert (d <= radius).all() and (i < j).all()


def test_pairs_with_other_chunkings_and_repeated_values():
    hashes = _random_hashes(1000, 80)
    hashes[500:520] = hashes[0]  # twenty identical values
    for chunks, radius in ((2, 3), (8, 6)):
        i, j, _ = near_pairs(hashes, radius, chunks=chunks)
        assert set(zip(i.tolist(), j.tolist())) == brute_force_pairs(hashes, radius)


def test_query_finds_the_planted_copy_and_nothing_else():
    hashes = _random_hashes(2000, 0)
    near = int(hashes[10]) ^ 0b1010_0000_0001  # 3 bits away
    assert query(hashes, near, 3) == [(10, 3)]
    assert query(hashes, near, 2) == []
    assert query(hashes, int(hashes[11]), 0) == [(11, 0)]


def test_near_groups_keep_the_best_and_do_not_chain():
    base = 0x0F0F_0F0F_0F0F_0F0F
    one, two = base ^ 0b11, base ^ 0b1111  # 2 and 4 bits from base, 2 bits from each other
    hexes = [f"{v:016x}" for v in (base, one, two, 0xFFFF_0000_FFFF_0000)]
    groups = near_duplicate_groups(hexes, quality=[10, 50, 1, 5], radius=2)
    # `one` is best and takes base and two (both within 2 of it); the distinct hash is alone
    assert len(groups) == 1 and groups[0].keep == 1 and groups[0].others == ((0, 2), (2, 2))
    groups = near_duplicate_groups(hexes, quality=[50, 10, 1, 5], radius=2)
    # base is best: takes `one`; `two` is 4 bits from base, so it is not pulled in through `one`
    assert [(g.keep, g.others) for g in groups] == [(0, ((1, 2),))]


def test_exact_groups():
    assert exact_groups(["a", "b", "a", "c", "b", "a"]) == [[0, 2, 5], [1, 4]]
    assert exact_groups(["a", "b"]) == []


def _phash(image: Image.Image) -> str:
    return perceptual_hash(np.asarray(image.convert("RGB")))


def _recompress(image: Image.Image, size: tuple[int, int], quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").resize(size, Image.LANCZOS).save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue()))


def test_resized_recompressed_photo_stays_within_the_threshold(shared_faces: Path):
    examples = shared_faces / "facecount" / "face_recognition" / "examples"
    obama = Image.open(examples / "obama.jpg")
    small = _recompress(obama, (obama.width // 3, obama.height // 3), 60)
    assert hamming(_phash(obama), _phash(small)) <= DEFAULT_NEAR_DISTANCE
    biden = Image.open(examples / "biden.jpg")
    assert hamming(_phash(obama), _phash(biden)) > DEFAULT_NEAR_DISTANCE


def test_real_faces_copies_pair_and_different_people_do_not(utkface_rows):
    rows = utkface_rows[:: len(utkface_rows) // 40][:40]
    originals = [Image.open(r["path"]) for r in rows]
    copies = [_recompress(im, (150, 150), 70) for im in originals]
    hexes = [_phash(im) for im in originals + copies]
    values = hashes_to_array(hexes)
    i, j, _ = near_pairs(values, DEFAULT_NEAR_DISTANCE)
    pairs = set(zip(i.tolist(), j.tolist()))
    n = len(originals)
    assert all((k, k + n) in pairs for k in range(n)), "a resized copy was not found"
    assert all(b == a + n for a, b in pairs), f"distinct photos paired: {sorted(pairs)}"
