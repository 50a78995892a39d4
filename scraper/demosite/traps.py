"""What a correct crawl of one part of the demo site yields (:class:`Expect`), and the trap images.

A trap is a gallery entry a careful harvester must drop, each with the reason the crawl counts:
a duplicate, a login page where an image was promised, HTML, an empty or truncated file, a tiny
photo, a decompression bomb, a 404, a robots.txt-forbidden path, an off-domain host.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

from PIL import Image

from anfe.faces.checks import EXACT_DUPLICATE, TOO_SMALL

from .pages import HOST, SiteWriter, relative_url
from .people import Person, Picker

#: robots.txt forbids this path; photos under it must never be fetched.
DISALLOWED = "/private/"
#: The trap kinds, handed out in turn to the people of a site style.
SPECIALS = ("duplicate", "login", "html", "empty", "truncated", "small", "bomb", "gone", "private", "offsite")


@dataclass
class Expect:
    """What a correct crawl of one part of the site produces (one entry of the manifest)."""

    images: dict[str, list[str]] = field(default_factory=lambda: {"female": [], "male": []})
    dropped: dict[str, int] = field(default_factory=dict)
    page_errors: dict[str, int] = field(default_factory=dict)
    people: dict[str, list[str]] = field(default_factory=lambda: {"female": [], "male": []})
    robots_forbidden: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def placing(cls, people: list[Person], page_of: Callable[[Person], str]) -> tuple["Expect", list[Person]]:
        """Give every person their page (``page_of``), expect those whose gender the site states,
        and return them (in order) with this expectation: the first step of every site part."""
        expect = cls()
        for person in people:
            person.page = page_of(person)
            if person.stated:
                expect.people[person.gender].append(person.name)
        return expect, [p for p in people if p.stated]

    def drop(self, reason: str, n: int = 1) -> None:
        """One more image (or person, for ``no-gender``) a correct crawl drops for ``reason``."""
        self.dropped[reason] = self.dropped.get(reason, 0) + n

    def page_error(self, reason: str, n: int = 1) -> None:
        """One more page that fails with ``reason`` (``http-404``...)."""
        self.page_errors[reason] = self.page_errors.get(reason, 0) + n

    def keep(self, gender: str, digest: str) -> None:
        """One more photo a correct crawl stores under ``gender``."""
        self.images[gender].append(digest)

    def as_dict(self) -> dict[str, Any]:
        """The manifest entry."""
        return {
            "images": {g: len(h) for g, h in self.images.items()},
            "hashes": {g: sorted(h) for g, h in self.images.items()},
            "dropped": dict(sorted(self.dropped.items())),
            "page_errors": dict(sorted(self.page_errors.items())),
            "people": {g: sorted(n) for g, n in self.people.items()},
            "robots_forbidden": self.robots_forbidden,
            **self.extra,
        }


def bomb_png(width: int = 20000, height: int = 20000) -> bytes:
    """A tiny PNG whose header claims width x height pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def tiny_copy(source: Path, side: int = 40) -> bytes:
    """A ``side`` x ``side`` JPEG of a real photo (too small to keep)."""
    image = Image.open(source).convert("RGB").resize((side, side))
    out = BytesIO()
    image.save(out, "JPEG", quality=90)
    return out.getvalue()


def special_image(site: SiteWriter, prefix: str, kind: str, person: Person, picker: Picker,
                  expect: Expect) -> str:
    """Create one trap image for ``person`` and return the URL the gallery shows for it."""
    pid = site.new_id()
    url = f"{prefix}/images/{pid}.jpg"
    if kind == "duplicate":
        site.copy(url, person.photos[0])
        expect.drop(EXACT_DUPLICATE.name)
    elif kind == "login":
        url = f"{prefix}/members/{pid}.jpg"
        site.redirects[url] = [302, f"/login?next={url}"]
        expect.drop("not-an-image")
    elif kind == "html":
        site.html_images.append(url)
        expect.drop("not-an-image")
    elif kind == "empty":
        site.write(url, b"")
        expect.drop("empty-file")
    elif kind == "truncated":
        data = picker.spare(person.gender).read_bytes()
        site.write(url, data[: len(data) * 3 // 5])
        expect.drop("truncated")
    elif kind == "small":
        site.write(url, tiny_copy(picker.spare(person.gender)))
        expect.drop(TOO_SMALL.name)
    elif kind == "bomb":
        url = f"{prefix}/images/{pid}.png"
        site.write(url, bomb_png())
        expect.drop("too-many-pixels")
    elif kind == "gone":
        url = f"{prefix}/images/{pid}-gone.jpg"
        expect.drop("http-404")
    elif kind == "private":
        url = f"{DISALLOWED}{prefix.strip('/')}/{pid}.jpg"
        site.copy(url, picker.spare(person.gender))
        expect.drop("robots-txt")
        expect.robots_forbidden += 1
    elif kind == "offsite":
        url = f"http://img.offsite.example{prefix}/{pid}.jpg"
        expect.drop("off-domain")
    return url


def photo_url(site: SiteWriter, prefix: str, person: Person, index: int, serial: int, page: str,
              picker: Picker, expect: Expect) -> str:
    """Copy one regular photo; vary how its URL is written (absolute path, relative, //host, redirect)."""
    pid = site.new_id()
    path = f"{prefix}/images/{pid}.jpg"
    site.copy(path, person.photos[index])
    expect.keep(person.gender, picker.hashes[person.photos[index]])
    variant = serial % 6
    if variant == 1:
        return relative_url(path, page)
    if variant == 2:
        return f"//{HOST}{path}"
    if variant == 3:
        moved = f"{prefix}/moved/{pid}.jpg"
        site.redirects[moved] = [301, path]
        return moved
    if variant == 4:
        return f"http://{HOST}{path}"
    return path


def pages_of(items: list[Any], per_page: int) -> list[list[Any]]:
    """``items`` in pages of ``per_page`` (one empty page when there are none)."""
    return [items[i:i + per_page] for i in range(0, len(items), per_page)] or [[]]
