"""Choosing the demo site's people: distinct, decodable photos of real identities (or synthetic people)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path

from anfe.core.dataset import LabelledImage
from anfe.core.hashing import content_hash
from anfe.faces.imaging import decode_image, open_image
from anfe.core.errors import ImageError

from ..errors import DemoSiteError


@dataclass
class Person:
    """One person of the demo site: a name, a gender (stated=False: not stated on the site), photos."""

    name: str
    gender: str
    photos: list[Path]
    stated: bool = True
    page: str = ""
    entries: list[str] = field(default_factory=list)

    @property
    def slug(self) -> str:
        """The person's listal-style slug (``jane-doe``)."""
        slug = "-".join(self.name.lower().split()).replace("_", "-")
        return "".join(c for c in slug if c.isalnum() or c == "-")


def _usable(path: Path, min_side: int, seen: set[str]) -> str | None:
    """The photo's hash when it decodes, is at least min_side square and is new; else None."""
    try:
        data = path.read_bytes()
        width, height = open_image(data, 80_000_000).size
        if min(width, height) < min_side:
            return None
        decode_image(data, 80_000_000)
    except (OSError, ImageError):
        return None
    digest = content_hash(data)
    if digest in seen:
        return None
    seen.add(digest)
    return digest


def _groups(items: list[LabelledImage], photos: int, rng: random.Random) -> dict[str, list[tuple[str, list[LabelledImage]]]]:
    """People per gender: real identities when the labels have them, else synthetic people."""
    by_gender: dict[str, list[tuple[str, list[LabelledImage]]]] = {"female": [], "male": []}
    if any("identity" in item.labels for item in items):
        people: dict[tuple[str, str], list[LabelledImage]] = {}
        for item in items:
            people.setdefault((item.labels.get("identity", ""), item.gender), []).append(item)
        keys = sorted(people)
        rng.shuffle(keys)
        for identity, gender in keys:
            if gender in by_gender and identity:
                by_gender[gender].append((identity.replace("_", " "), people[identity, gender]))
    else:
        for gender in by_gender:
            pool = [item for item in items if item.gender == gender]
            rng.shuffle(pool)
            size = max(photos, 1) * 2
            for n, start in enumerate(range(0, len(pool) - size + 1, size), start=1):
                by_gender[gender].append((f"Synthetic {gender.title()} {n:02d}", pool[start:start + size]))
    return by_gender


class Picker:
    """Hands out people (and spare photos) with distinct, usable photos; never the same photo twice."""

    def __init__(self, items: list[LabelledImage], photos: int, min_side: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.groups = _groups(items, photos, self.rng)
        self.min_side = min_side
        self.seen: set[str] = set()
        self.hashes: dict[Path, str] = {}

    def person(self, gender: str, photos: int) -> Person:
        """The next person of ``gender`` with ``photos`` usable photos (people with fewer are passed over)."""
        while self.groups[gender]:
            name, members = self.groups[gender][0]
            if len(members) < photos:
                self.groups[gender].pop(0)
                continue
            self.groups[gender].pop(0)
            chosen = []
            for member in members:
                digest = _usable(member.path, self.min_side, self.seen)
                if digest:
                    chosen.append(member.path)
                    self.hashes[member.path] = digest
                if len(chosen) == photos:
                    return Person(name, gender, chosen)
        raise DemoSiteError(
            f"the source has too few usable {gender} people with {photos} photos of at least "
            f"{self.min_side} px for this site: use fewer people (--people, --list-people) or photos "
            f"(--photos), or a larger source"
        )

    def spare(self, gender: str) -> Path:
        """One usable photo not used by anybody (from the next person in line)."""
        return self.person(gender, 1).photos[0]
