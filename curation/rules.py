"""The cleaning rules: which images to take out of a dataset and why, as plain functions over
the cached analysis (:mod:`curation.clean` does the moving). Per-image rules look at one
:class:`Item`; the collection rules (duplicates, label conflicts) at the items that passed those;
the people rules (:mod:`curation.identity`) at what every other rule kept.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from anfe.faces import checks
from anfe.faces.checks import (
    EXACT_DUPLICATE, LABEL_CONFLICT, MISLABELLED_PERSON, NEAR_DUPLICATE, UNDER_AGE, UNREADABLE, WRONG_PERSON,
)
from anfe.faces.analysis import ImageAnalysis
from anfe.core.dataset import age_of
from anfe.core.errors import DatasetError
from anfe.core.hashing import content_hash
from anfe.core.people import Person

from . import identity
from .dedup import DEFAULT_NEAR_DISTANCE, exact_groups, near_duplicate_groups


@dataclass(frozen=True)
class Rule:
    """One switchable rule of ``anfe clean``: its check (name = reason = quarantine folder), the
    :class:`CleanRules` field that switches it, and the thresholds' flags for the help text."""

    check: checks.Check
    field: str
    flags: str = ""

    @property
    def reason(self) -> str:
        return self.check.name

    @property
    def help(self) -> str:
        return self.check.help + (f" ({self.flags})" if self.flags else "")


#: Every rule in the order it is applied; ``reason`` is also the quarantine folder and the
#: ``--no-<reason>`` switch of ``anfe clean``.
RULES: tuple[Rule, ...] = (
    Rule(checks.UNREADABLE, "unreadable"),
    Rule(checks.TOO_SMALL, "too_small", "--min-width, --min-height"),
    Rule(checks.NO_FACE, "no_face"),
    Rule(checks.MANY_FACES, "many_faces"),
    Rule(checks.SMALL_FACE, "small_face", "--min-eye-distance, --min-face-side"),
    Rule(checks.UNDER_AGE, "under_age", "--min-age; ages from a labels CSV or birth/photo year in the store"),
    Rule(checks.EXACT_DUPLICATE, "exact_duplicate"),
    Rule(checks.LABEL_CONFLICT, "label_conflict"),
    Rule(checks.NEAR_DUPLICATE, "near_duplicate", "--near-distance"),
    Rule(checks.WRONG_PERSON, "wrong_person",
         "--wrong-person-distance; --quarantine-wrong-person: quarantined"),
    Rule(checks.MISLABELLED_PERSON, "mislabelled_person"),
)
REASONS = tuple(rule.reason for rule in RULES)
#: Every reason a cleaning run can give, in report order (``not-a-file`` cannot be switched off:
#: a link or a pipe is never analysed, it is quarantined with its kind as the detail).
ALL_REASONS = (checks.NOT_A_FILE.name, *REASONS)


@dataclass(frozen=True)
class CleanRules:
    """Which rules run and their thresholds (the defaults are the checks' own)."""

    unreadable: bool = True
    too_small: bool = True
    no_face: bool = True
    many_faces: bool = True
    small_face: bool = True
    under_age: bool = True
    exact_duplicate: bool = True
    label_conflict: bool = True
    near_duplicate: bool = True
    wrong_person: bool = True
    mislabelled_person: bool = True
    min_width: int = checks.TOO_SMALL.threshold[0]
    min_height: int = checks.TOO_SMALL.threshold[1]
    min_eye_distance: float = checks.SMALL_FACE.threshold[0]
    min_face_side: int = checks.SMALL_FACE.threshold[1]
    near_distance: int = DEFAULT_NEAR_DISTANCE
    min_age: float = checks.UNDER_AGE.threshold
    wrong_person_distance: float = identity.DEFAULT_WRONG_PERSON_DISTANCE
    quarantine_wrong_person: bool = False

    def enabled(self, reason: str) -> bool:
        return bool(getattr(self, reason.replace("-", "_")))


@dataclass(frozen=True)
class Item:
    """One file of the dataset as the scan saw it."""

    path: Path
    gender: str
    analysis: ImageAnalysis
    age: float | None = None
    size_bytes: int = 0


@dataclass(frozen=True)
class Verdict:
    """Why an item is taken out: a reason (one of :data:`REASONS`) and a human-readable detail."""

    reason: str
    detail: str


def check_image(item: Item, rules: CleanRules) -> Verdict | None:
    """The first per-image rule that rejects ``item``, or None if it passes them all."""
    a = item.analysis
    if a.error:
        return Verdict(UNREADABLE.name, UNREADABLE.failed(a)) if rules.unreadable else None
    thresholds = {"too_small": (rules.min_width, rules.min_height),
                  "small_face": (rules.min_eye_distance, rules.min_face_side)}
    for rule in RULES[1:5]:  # too-small, no-face, many-faces, small-face
        detail = rule.check.failed(a, thresholds.get(rule.field)) if rules.enabled(rule.reason) else None
        if detail is not None:
            return Verdict(rule.reason, detail)
    if rules.under_age and item.age is not None and item.age < rules.min_age:
        return Verdict(UNDER_AGE.name, f"age {item.age:g} (< {rules.min_age:g})")
    return None


def _rel(item: Item, root: Path | None) -> str:
    """The item's path relative to the dataset root (as reports and details name it)."""
    inside = root is not None and item.path.is_relative_to(root)
    return item.path.relative_to(root).as_posix() if inside else str(item.path)


def check_collection(
    items: Sequence[Item], rules: CleanRules, root: Path | None = None
) -> dict[int, Verdict]:
    """Verdicts (by index into ``items``) of the duplicate and label-conflict rules. Exact copies
    under one gender keep the first by path, near duplicates (:func:`near_duplicate_groups`) the
    largest image; copies under another gender go to ``label-conflict``, with the copy kept."""
    verdicts: dict[int, Verdict] = {}
    rel = [_rel(item, root) for item in items]
    order = sorted(range(len(items)), key=lambda i: str(items[i].path))
    twins: dict[int, int] = {}  # exact duplicate -> the copy kept
    for group in exact_groups([items[i].analysis.content_hash or f"unknown-{i}" for i in order]):
        firsts: dict[str, int] = {}
        for index in (order[g] for g in group):
            kept = firsts.setdefault(items[index].gender, index)
            if kept != index and rules.exact_duplicate:
                twins[index] = kept
                verdicts[index] = Verdict(EXACT_DUPLICATE.name, f"same bytes as {rel[kept]} (kept)")
        if len(firsts) > 1 and rules.label_conflict:
            for gender, index in firsts.items():
                others = ", ".join(rel[i] for g, i in firsts.items() if g != gender)
                verdicts[index] = Verdict(LABEL_CONFLICT.name,
                                          f"the same bytes are also under another gender: {others}")
    near = rules.near_duplicate or rules.label_conflict
    left = [i for i in order if near and i not in verdicts and items[i].analysis.phash]
    quality = [items[i].analysis.width * items[i].analysis.height * 1e9 + items[i].size_bytes for i in left]
    for group in near_duplicate_groups([items[i].analysis.phash for i in left], quality, rules.near_distance):
        keep, conflicts = left[group.keep], []
        kept = items[keep]
        for index, bits in ((left[m], d) for m, d in group.others):
            same = items[index].gender == kept.gender
            if not same and rules.label_conflict:
                conflicts.append(rel[index])
                verdicts[index] = Verdict(LABEL_CONFLICT.name, f"{bits} bits from {rel[keep]} under "
                                                            f"{kept.gender}")
            elif same and rules.near_duplicate:
                size = f"{kept.analysis.width}x{kept.analysis.height}"
                verdicts[index] = Verdict(NEAR_DUPLICATE.name, f"{bits} bits from {rel[keep]} ({size}, kept)")
        if conflicts:
            verdicts[keep] = Verdict(LABEL_CONFLICT.name, "near duplicates under another gender: "
                                                       + ", ".join(conflicts))
    for index, twin in twins.items():  # the copy kept may itself have gone: say where
        if (gone := verdicts.get(twin)) is not None:
            verdicts[index] = Verdict(EXACT_DUPLICATE.name, f"same bytes as {rel[twin]}, itself taken out "
                                      f"({gone.reason}: {gone.detail})")
    return verdicts


def check_people(
    items: Sequence[Item], people: Mapping[str, Person], rules: CleanRules, root: Path | None = None,
) -> dict[int, Verdict]:
    """Verdicts (by index into ``items``) of the people rules, ``people`` mapping content hashes to
    persons (items without one face or a person are not judged): ``wrong-person``, a photo far from
    its person's other photos, one face filed under two people, or a photo the crawl found in two
    galleries (``other_people``); ``mislabelled-person``, most of a person's photos look like
    another gender."""
    verdicts: dict[int, Verdict] = {}
    judged = [i for i, item in enumerate(items)
              if item.analysis.single_embedding is not None and item.analysis.content_hash in people]
    if judged and (rules.wrong_person or rules.mislabelled_person):
        x = np.stack([items[i].analysis.single_embedding for i in judged])
        person_of = [people[items[i].analysis.content_hash] for i in judged]
        keys = [p.key for p in person_of]
        if rules.wrong_person:
            sizes, limit = Counter(keys), rules.wrong_person_distance
            for local, d in enumerate(identity.person_outlier_distances(x, keys)):
                if d > limit:  # NaN (not judged) is not
                    who = person_of[local]
                    verdicts[judged[local]] = Verdict(
                        WRONG_PERSON.name,
                        f"{d:.2f} from the median of {who}'s other {sizes[who.key] - 1} photos (> {limit:g})")
            for pair in identity.same_face_pairs(x, keys):
                for mine, other in ((pair.first, pair.second), (pair.second, pair.first)):
                    verdicts[judged[mine]] = Verdict(
                        WRONG_PERSON.name, f"the same face ({pair.distance:.2f}) is also filed under "
                        f"{person_of[other]}: {_rel(items[judged[other]], root)}")
        if rules.mislabelled_person:
            genders = [items[i].gender for i in judged]
            for check in (c for c in identity.check_people_labels(x, genders, keys) if c.flagged):
                who = person_of[check.members[0]]
                for local in check.members:
                    also = verdicts.get(judged[local])
                    verdicts[judged[local]] = Verdict(
                        MISLABELLED_PERSON.name, f"{check.disagree} of {check.photos} photos of {who} look "
                        f"{check.predicted}, not {check.label}: the whole person goes to review"
                        + (f" (also {also.reason}: {also.detail})" if also else ""))
    if rules.wrong_person:  # one photo the crawl found in two people's galleries
        for index, item in enumerate(items):
            person = people.get(item.analysis.content_hash)
            if person is not None and person.also:
                verdicts[index] = Verdict(
                    WRONG_PERSON.name,
                    f"the same photo is filed under {person} and also under {', '.join(person.also)}")
    return verdicts


# -- ages ----------------------------------------------------------------------------------------
def ages_from_csv(csv_path: str | Path) -> tuple[dict[str, float], dict[str, float]]:
    """Ages from a labels CSV (``path`` plus ``age``, or ``birth_year`` and ``photo_year``; paths
    relative to its folder), by the content hash of each listed file that exists and by file name
    (for files since renamed to their hash)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetError(f"labels file {csv_path} does not exist")
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or [])
        if "path" not in columns or not ({"age"} <= columns or {"birth_year", "photo_year"} <= columns):
            raise DatasetError(
                f"{csv_path} needs a 'path' column and an 'age' column (or 'birth_year' and "
                f"'photo_year'); it has {', '.join(sorted(columns)) or 'none'}"
            )
        rows = [(csv_path.parent / row["path"], age) for row in reader if (age := age_of(row)) is not None]
    by_hash: dict[str, float] = {}
    for path, age in rows:
        try:
            by_hash[content_hash(path.read_bytes())] = age
        except OSError:
            pass
    return by_hash, {path.name: age for path, age in rows}


#: The store record fields the ages are read from (by ``anfe.core.store.by_content_hash(records, age_of)``).
AGE_FIELDS = ("content_hash", "age", "birth_year", "photo_year")
