"""Held-out test splits that keep each person on one side, and the leak check that tests them.

Splitting photos at random puts the same person on both sides, so an evaluation measures how
well a model recognises people it has already seen. :func:`split_by_person` holds back whole
people; :func:`leak_count` counts the test faces that lie within dlib's *same face* distance of
a training face (0.4: tighter than its 0.6 same-person tolerance), which a person-disjoint split
should all but remove.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping

import numpy as np

from anfe.core.errors import DatasetError

#: Split modes of ``anfe build --split-by``.
SPLIT_MODES = ("person", "photo")
#: A test face this close to a training face counts as a leak.
DEFAULT_LEAK_DISTANCE = 0.4


def gender_rng(seed: int, gender: str) -> np.random.Generator:
    """A generator per (seed, gender): a gender's draw never depends on the other genders."""
    return np.random.default_rng([int(seed), zlib.crc32(gender.encode("utf-8"))])


def split_test(hashes_by_gender: Mapping[str, Iterable[str]], test_fraction: float, seed: int) -> dict[str, list[str]]:
    """The held-out content hashes per gender: ``round(fraction * n)`` drawn with ``seed``.

    Reproducible from the same images whatever their paths or order (hashes are sorted first).
    """
    check_fraction(test_fraction)
    test: dict[str, list[str]] = {}
    for gender, hashes in sorted(hashes_by_gender.items()):
        unique = sorted(set(hashes))
        count = int(round(test_fraction * len(unique)))
        order = gender_rng(seed, gender).permutation(len(unique))[:count]
        test[gender] = sorted(unique[i] for i in order)
    return test


def check_fraction(test_fraction: float) -> None:
    if not 0.0 <= test_fraction < 1.0:
        raise DatasetError(f"the test fraction must be in [0, 1), not {test_fraction}")


def split_by_person(
    hashes_by_gender: Mapping[str, Iterable[str]], person_of: Mapping[str, str | None],
    test_fraction: float, seed: int,
) -> dict[str, list[str]]:
    """The held-out content hashes per gender, whole people at a time.

    Per gender (sorted), the people are drawn in a seeded order and held out until about
    ``round(fraction * photos)`` of that gender's photos are (the last person may pass it by
    their own photos). A photo with no person is a person of its own. A person already held out
    (or kept) under one gender stays on that side under every other gender too, so no person is
    ever on both sides. Reproducible whatever the paths or order.
    """
    check_fraction(test_fraction)
    side: dict[str, bool] = {}  # person -> held out?
    test: dict[str, list[str]] = {}
    for gender, hashes in sorted(hashes_by_gender.items()):
        unique = sorted(set(hashes))
        target = int(round(test_fraction * len(unique)))
        groups: dict[str, list[str]] = {}
        for digest in unique:
            groups.setdefault(person_of.get(digest) or f"photo:{digest}", []).append(digest)
        people = sorted(groups)
        held: list[str] = []
        decided = [p for p in people if p in side]
        for person in decided:
            if side[person]:
                held.extend(groups[person])
        for k in gender_rng(seed, gender).permutation(len(people)):
            person = people[int(k)]
            if person in side:
                continue
            side[person] = len(held) < target
            if side[person]:
                held.extend(groups[person])
        test[gender] = sorted(held)
    return test


def draw_split(
    hashes_by_gender: Mapping[str, Iterable[str]], person_of: Mapping[str, str | None],
    test_fraction: float, seed: int, by: str = "person",
) -> tuple[dict[str, list[str]], str]:
    """The held-out hashes per gender and how they were drawn: by person when ``by`` is
    ``person`` and some photo names its person, else by photo (today's draw, which datasets
    without identities keep)."""
    if by not in SPLIT_MODES:
        raise DatasetError(f"unknown split {by!r}: use one of {', '.join(SPLIT_MODES)}")
    if by == "person" and any(person_of.get(h) for hs in hashes_by_gender.values() for h in hs):
        return split_by_person(hashes_by_gender, person_of, test_fraction, seed), "person"
    return split_test({g: list(h) for g, h in hashes_by_gender.items()}, test_fraction, seed), "photo"


def count_people(hashes: Iterable[str], person_of: Mapping[str, str | None]) -> int:
    """Distinct named people among ``hashes``."""
    return len({person_of.get(h) for h in hashes} - {None})


def people_on_both_sides(test: Iterable[str], train: Iterable[str], person_of: Mapping[str, str | None]) -> set[str]:
    """People with photos in both the test and the training hashes (empty for a person split)."""
    held = {person_of.get(h) for h in test} - {None}
    kept = {person_of.get(h) for h in train} - {None}
    return held & kept


def nearest_distances(test_x: np.ndarray, train_x: np.ndarray, block: int = 1024) -> np.ndarray:
    """For each test vector, the distance to its nearest training vector (block by block)."""
    test_x = np.atleast_2d(np.asarray(test_x, dtype=np.float64))
    train_x = np.atleast_2d(np.asarray(train_x, dtype=np.float64))
    if not len(test_x):
        return np.empty(0)
    if not len(train_x) or train_x.shape[1] == 0:
        return np.full(len(test_x), np.inf)
    tr_sq = np.einsum("ij,ij->i", train_x, train_x)
    out = np.empty(len(test_x))
    for start in range(0, len(test_x), block):
        part = test_x[start : start + block]
        d2 = np.einsum("ij,ij->i", part, part)[:, None] + tr_sq[None, :] - 2.0 * part @ train_x.T
        out[start : start + len(part)] = np.sqrt(np.maximum(d2.min(axis=1), 0.0))
    return out


def leak_count(test_x: np.ndarray, train_x: np.ndarray, radius: float = DEFAULT_LEAK_DISTANCE) -> int:
    """How many test faces lie within ``radius`` of some training face."""
    return int((nearest_distances(test_x, train_x) <= radius).sum())


__all__ = [
    "DEFAULT_LEAK_DISTANCE", "SPLIT_MODES", "check_fraction", "count_people", "draw_split", "leak_count",
    "nearest_distances",
    "people_on_both_sides", "split_by_person",
]
