"""Generate the local demo site (listal style, filmweb style, FaceScrub-style URL lists) from labelled photos.

The site holds the traps a real crawl meets (robots.txt, 404s, redirects, a login page where an
image was promised, empty/truncated/tiny/bomb images, duplicates, off-domain links, malformed
HTML, a person with no gender) and a ``manifest.json`` saying what a correct crawl must produce.
Photos are byte-for-byte copies of the source files; ``__HOST__`` in pages and lists is replaced
by the server with its ``127.0.0.1:port``.
"""

from __future__ import annotations

import html
import json
import posixpath
import random
import shutil
import struct
import zlib
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Any

from PIL import Image

from anfe.dataset import LabelledImage, from_labels_csv
from anfe.errors import AnfeError, ImageError
from anfe.hashing import content_hash
from anfe.imaging import decode_image, open_image

from ..errors import DemoSiteError

#: robots.txt forbids this path; photos under it must never be fetched.
DISALLOWED = "/private/"
HOST = "__HOST__"
MANIFEST = "manifest.json"
ROUTES = "routes.json"


@dataclass
class Person:
    """One person of the demo site: a name, a gender (None = not stated on the site), photos."""

    name: str
    gender: str
    photos: list[Path]
    stated: bool = True
    page: str = ""
    entries: list[str] = field(default_factory=list)


@dataclass
class _Expect:
    """What a correct crawl of one part of the site produces."""

    images: dict[str, list[str]] = field(default_factory=lambda: {"female": [], "male": []})
    dropped: dict[str, int] = field(default_factory=dict)
    page_errors: dict[str, int] = field(default_factory=dict)
    people: dict[str, list[str]] = field(default_factory=lambda: {"female": [], "male": []})
    robots_forbidden: int = 0

    def drop(self, reason: str, n: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + n

    def page_error(self, reason: str) -> None:
        self.page_errors[reason] = self.page_errors.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "images": {g: len(h) for g, h in self.images.items()},
            "hashes": {g: sorted(h) for g, h in self.images.items()},
            "dropped": dict(sorted(self.dropped.items())),
            "page_errors": dict(sorted(self.page_errors.items())),
            "people": {g: sorted(n) for g, n in self.people.items()},
            "robots_forbidden": self.robots_forbidden,
        }


class _Site:
    """Writes files under the output folder and keeps the special routes."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.redirects: dict[str, list] = {}
        self.html_images: list[str] = []
        self.next_id = 1001

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id

    def write(self, url_path: str, data: bytes | str) -> None:
        """Write the file served at ``url_path`` (pages become ``<path>/index.html``)."""
        target = self.out / url_path.lstrip("/")
        if not Path(url_path).suffix:
            target = target / "index.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)

    def copy(self, url_path: str, source: Path) -> None:
        target = self.out / url_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def _page(title: str, body: str, head: str = "") -> str:
    return (f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"{head}</head>\n<body>\n{body}\n</body></html>\n")


def relative_url(target: str, page: str) -> str:
    """``target`` written relative to the page at ``page`` (both absolute paths)."""
    base = page.rsplit("/", 1)[0] or "/"
    return posixpath.relpath(target, base)


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


# -- choosing people ---------------------------------------------------------------------------
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
            if gender in by_gender and identity and len(people[identity, gender]) >= photos:
                by_gender[gender].append((identity.replace("_", " "), people[identity, gender]))
    else:
        for gender in by_gender:
            pool = [item for item in items if item.gender == gender]
            rng.shuffle(pool)
            for n, start in enumerate(range(0, len(pool) - photos * 2, photos * 2), start=1):
                by_gender[gender].append((f"Synthetic {gender.title()} {n:02d}", pool[start:start + photos * 2]))
    return by_gender


class _Picker:
    """Hands out people (and spare photos) with distinct, usable photos."""

    def __init__(self, items: list[LabelledImage], photos: int, min_side: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.groups = _groups(items, photos, self.rng)
        self.photos = photos
        self.min_side = min_side
        self.seen: set[str] = set()
        self.hashes: dict[Path, str] = {}

    def person(self, gender: str) -> Person:
        while self.groups[gender]:
            name, members = self.groups[gender].pop(0)
            chosen = []
            for member in members:
                digest = _usable(member.path, self.min_side, self.seen)
                if digest:
                    chosen.append(member.path)
                    self.hashes[member.path] = digest
                if len(chosen) == self.photos:
                    return Person(name, gender, chosen)
        raise DemoSiteError(
            f"the source has too few usable {gender} people with {self.photos} photos of at least "
            f"{self.min_side} px: use fewer people (--people) or photos (--photos)"
        )

    def spare(self, gender: str) -> Path:
        """One usable photo not used by anybody (from the next person in line)."""
        return self.person(gender).photos[0]


# -- the two site styles ---------------------------------------------------------------------
_SPECIALS = ("duplicate", "login", "html", "empty", "truncated", "small", "bomb", "gone", "private", "offsite")


def _special_image(site: _Site, prefix: str, kind: str, person: Person, picker: _Picker,
                   expect: _Expect) -> str:
    """Create one trap image for ``person`` and return the URL the gallery shows for it."""
    pid = site.new_id()
    url = f"{prefix}/images/{pid}.jpg"
    if kind == "duplicate":
        site.copy(url, person.photos[0])
        expect.drop("duplicate")
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
        expect.drop("too-small")
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


def _photo_url(site: _Site, prefix: str, person: Person, index: int, serial: int, page: str,
               picker: _Picker, expect: _Expect) -> str:
    """Copy one regular photo; vary how its URL is written (absolute path, relative, //host, redirect)."""
    pid = site.new_id()
    path = f"{prefix}/images/{pid}.jpg"
    site.copy(path, person.photos[index])
    expect.images[person.gender].append(picker.hashes[person.photos[index]])
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


def _pages(items: list[Any], per_page: int) -> list[list[Any]]:
    return [items[i:i + per_page] for i in range(0, len(items), per_page)] or [[]]


def _listal_pager(next_url: str | None) -> str:
    if next_url:
        return f'<div class="pages"><a href="{html.escape(next_url)}">Next &raquo;</a></div>'
    return '<div class="pages"><span class="nextprev">Next &raquo;</span></div>'


def _build_listal(site: _Site, people: list[Person], picker: _Picker, per_page: int) -> _Expect:
    prefix, expect = "/listal", _Expect()
    gendered = [p for p in people if p.stated]
    for n, person in enumerate(people):
        slug = "-".join(person.name.lower().split()).replace("_", "-")
        slug = "".join(c for c in slug if c.isalnum() or c == "-")
        person.page = f"{prefix}/{slug}"
        if person.stated:
            expect.people[person.gender].append(person.name)
    # gallery entries: each entry is a view page id
    serial = 0
    for n, person in enumerate(gendered):
        views: list[tuple[str, str | None]] = []
        for index in range(len(person.photos)):
            view = f"{prefix}/viewimage/{site.new_id()}"
            views.append((view, _photo_url(site, prefix, person, index, serial, view, picker, expect)))
            serial += 1
        for kind in _SPECIALS[n::len(gendered)]:
            view = f"{prefix}/viewimage/{site.new_id()}"
            views.append((view, _special_image(site, prefix, kind, person, picker, expect)))
        if n == 0:  # a gallery entry whose view page is missing
            views.append((f"{prefix}/viewimage/{site.new_id()}", None))
            expect.page_error("http-404")
        for view, image in views:
            if image is None:
                continue
            absolute = image if image.startswith(("http:", "//")) else posixpath.normpath(
                posixpath.join(view.rsplit("/", 1)[0], image))
            og = absolute if absolute.startswith(("http:", "//")) else f"http://{HOST}{absolute}"
            site.write(view, _page(
                f"Picture of {person.name}",
                f'<div class="contentheader"><a href="{person.page}">{html.escape(person.name)}</a></div>\n'
                f'<img class="pure-img" src="{html.escape(image)}" alt="{html.escape(person.name)}">',
                head=f'<meta property="og:image" content="{html.escape(og)}">'))
        chunks = _pages([v for v, _ in views], per_page)
        for number, chunk in enumerate(chunks, start=1):
            url = f"{person.page}/pictures" + ("" if number == 1 else f"//{number}")
            next_url = f"{person.page}/pictures//{number + 1}" if number < len(chunks) else None
            grid = "\n".join(
                f'<div class="imagebox"><a href="{v}"><img src="{prefix}/thumbs/{v.rsplit("/", 1)[1]}.jpg"></a></div>'
                for v in chunk)
            site.write(url.replace("//", "/"), _page(
                f"{person.name} pictures",
                f'<h1>{html.escape(person.name)} pictures</h1>\n<div id="browseimagescontainer">\n{grid}\n</div>\n'
                + _listal_pager(next_url)))
    # person pages (one of them malformed)
    for n, person in enumerate(people):
        body = (f'<h1>{html.escape(person.name)}</h1>\n<div class="infos">Born somewhere.</div>\n'
                f'<a class="pictures" href="{person.page}/pictures">Pictures</a>')
        if n == 1:
            site.write(person.page, (f"<html><head><title>{html.escape(person.name)}</title><body><div><h1>{html.escape(person.name)}"
                                     f"</h1><p><b>Unclosed <i>tags</div></span><a class='pictures' "
                                     f"href={person.page}/pictures>Pictures</a><table><tr><td>oops"))
        else:
            site.write(person.page, _page(person.name, body))
    # lists
    lists = {
        "actresses": [p.page for p in gendered if p.gender == "female"],
        "actors": [p.page for p in gendered if p.gender == "male"],
        "favourites": [p.page for p in people if not p.stated]
        + [f"{prefix}/no-such-person", "http://offsite.example/listal/someone-else"],
    }
    expect.page_error("http-404")
    expect.drop("off-domain")
    expect.drop("no-gender", sum(1 for p in people if not p.stated))
    for name, pages in lists.items():
        chunks = _pages(pages, per_page)
        for number, chunk in enumerate(chunks, start=1):
            url = f"{prefix}/list/{name}" + ("" if number == 1 else f"/{number}")
            next_url = f"{prefix}/list/{name}/{number + 1}" if number < len(chunks) else None
            items = "\n".join(f'<div class="imagelistbox"><a href="{p}">{html.escape(p.rsplit("/", 1)[1])}</a></div>'
                              for p in chunk)
            site.write(url, _page(f"List: {name}", f"<h1>{name}</h1>\n{items}\n{_listal_pager(next_url)}"))
    return expect


_FEMALE_WORDS = ("aktorka", "Actress", "aktorka")
_MALE_WORDS = ("aktor", "Actor", "aktor lub aktorka")


def _build_filmweb(site: _Site, people: list[Person], picker: _Picker, per_page: int) -> _Expect:
    prefix, expect = "/filmweb", _Expect()
    gendered = [p for p in people if p.stated]
    for person in people:
        person.page = f"{prefix}/person/{'+'.join(person.name.split())}-{site.new_id()}"
        if person.stated:
            expect.people[person.gender].append(person.name)
    serial = 0
    for n, person in enumerate(gendered):
        entries: list[str] = []
        gallery = f"{person.page}/photos"
        chunks_needed = (len(person.photos) + len(_SPECIALS[n::len(gendered)]) + per_page - 1) // per_page
        page_of = [gallery if i == 0 else f"{gallery}/{i + 1}" for i in range(chunks_needed)]
        for index in range(len(person.photos)):
            page = page_of[len(entries) // per_page]
            entries.append(_photo_url(site, prefix, person, index, serial, page, picker, expect))
            serial += 1
        for kind in _SPECIALS[n::len(gendered)]:
            entries.append(_special_image(site, prefix, kind, person, picker, expect))
        chunks = _pages(entries, per_page)
        for number, chunk in enumerate(chunks):
            items = "\n".join(f'<li><a data-photo="{html.escape(e)}" href="#"><img src="{prefix}/thumbs/x.jpg"></a></li>'
                              for e in chunk)
            pager = (f'<a class="pagination__link pagination__link--next" href="{page_of[number + 1]}">nast\u0119pna</a>'
                     if number + 1 < len(chunks) else "")
            site.write(page_of[number], _page(f"{person.name} - zdj\u0119cia",
                                              f'<ul class="gallery__photos-list">\n{items}\n</ul>\n{pager}'))
    female_words, male_words = iter(_FEMALE_WORDS * 10), iter(_MALE_WORDS * 10)
    for n, person in enumerate(people):
        words = ("re\u017cyser" if not person.stated
                 else next(female_words) if person.gender == "female" else next(male_words))
        info = (f'<div class="personPosterSection__infoData"><span class="professions">{html.escape(words)}</span>'
                f'<span itemprop="birthDate">1970-01-01</span></div>')
        title = f'<h1 class="personCoverSection__title">{html.escape(person.name)}</h1>'
        if n == 2:
            site.write(person.page, f"<html><body><div class=x>{title}<p>{info}<div><div></span></b>")
        else:
            site.write(person.page, _page(person.name, f"{title}\n{info}"))
    # rankings: one actress is only in the "popular" ranking: her gender comes from "aktorka"
    women = [p for p in gendered if p.gender == "female"]
    popular = [women[-1].page] if women else []
    rankings = {
        "actors/female": [p.page for p in women[:-1]],
        "actors/male": [p.page for p in gendered if p.gender == "male"],
        "popular": popular + [p.page for p in people if not p.stated]
        + [f"{prefix}/person/Nobody+Here-999999", "http://offsite.example/person/Some+One-1"],
    }
    expect.page_error("http-404")
    expect.drop("off-domain")
    expect.drop("no-gender", sum(1 for p in people if not p.stated))
    for name, pages in rankings.items():
        items = "\n".join(f'<div class="rankingType"><a class="rankingType__title" href="{p}">{html.escape(p.rsplit("/", 1)[1])}</a></div>'
                          for p in pages)
        site.write(f"{prefix}/ranking/person/{name}", _page(f"Ranking {name}", items))
    return expect


def _build_urllist(site: _Site, actors: list[Person], actresses: list[Person], picker: _Picker) -> _Expect:
    prefix, expect = "/facescrub", _Expect()
    header = "name\timage_id\tface_id\turl\tbbox\tsha256\n"
    face = 0
    files = {"facescrub_actors.txt": [header], "facescrub_actresses.txt": []}
    for file_name, people in (("facescrub_actors.txt", actors), ("facescrub_actresses.txt", actresses)):
        for person in people:
            expect.people[person.gender].append(person.name)
            for index, photo in enumerate(person.photos):
                pid = site.new_id()
                url = f"{prefix}/images/{pid}.jpg"
                site.copy(url, photo)
                digest = picker.hashes[photo]
                expect.images[person.gender].append(digest)
                width, height = Image.open(photo).size
                bbox = f"{width * 3 // 10},{height // 4},{width * 7 // 10},{height * 3 // 4}"
                face += 1
                sha = "" if index == 1 else digest
                files[file_name].append(f"{person.name}\t{pid}\t{face}\thttp://{HOST}{url}\t{bbox}\t{sha}\n")
    lines = files["facescrub_actors.txt"]
    first = actors[0]
    # traps: wrong sha256, a 404, a bad line, a robots-forbidden URL, the same bytes under another URL
    spare = picker.spare("male")
    pid = site.new_id()
    site.copy(f"{prefix}/images/{pid}.jpg", spare)
    lines.append(f"{first.name}\t{pid}\t{face + 1}\thttp://{HOST}{prefix}/images/{pid}.jpg\t10,10,200,200\t{'0' * 64}\n")
    expect.drop("hash-mismatch")
    lines.append(f"{first.name}\t{pid + 1}\t{face + 2}\thttp://{HOST}{prefix}/images/{pid}-gone.jpg\t10,10,200,200\t\n")
    expect.drop("http-404")
    lines.append(f"{first.name}\tonly-two-columns\n")
    expect.drop("bad-row")
    private = f"{DISALLOWED}facescrub/{pid}.jpg"
    site.copy(private, picker.spare("male"))
    lines.append(f"{first.name}\t{pid + 2}\t{face + 3}\thttp://{HOST}{private}\t10,10,200,200\t\n")
    expect.drop("robots-txt")
    expect.robots_forbidden += 1
    copy = f"{prefix}/images/{pid}-copy.jpg"
    site.copy(copy, first.photos[0])
    lines.append(f"{first.name}\t{pid + 3}\t{face + 4}\thttp://{HOST}{copy}\t10,10,200,200\t\n")
    expect.drop("duplicate")
    for file_name, content in files.items():
        site.write(f"/{file_name}", "".join(content))
    return expect


def generate_site(labels_csv: str | Path, out: str | Path, *, people: int = 6, photos: int = 3,
                  per_page: int = 2, seed: int = 0, min_side: int = 100) -> dict[str, Any]:
    """Build the demo site in ``out`` (emptied first if it holds an earlier site) and return its manifest.

    people: gendered people per site style (half women, half men; at least 2), plus one person
    with no gender stated per style; the URL lists get 2 actors and 2 actresses.
    photos: photos per person (people with fewer usable photos are skipped).
    """
    if people < 2 or photos < 1 or per_page < 1:
        raise DemoSiteError("need --people >= 2, --photos >= 1 and --per-page >= 1")
    out = Path(out)
    if out.exists() and any(out.iterdir()):
        if not (out / MANIFEST).is_file():
            raise DemoSiteError(f"{out} is not empty and holds no demo site: choose an empty folder")
        shutil.rmtree(out)
    try:
        items = from_labels_csv(labels_csv)
    except AnfeError as exc:
        raise DemoSiteError(f"cannot read the labelled photos: {exc}") from exc
    picker = _Picker(items, photos, min_side, seed)
    out.mkdir(parents=True, exist_ok=True)
    site = _Site(out)

    def cast(n: int) -> list[Person]:
        women, men = (n + 1) // 2, n // 2
        chosen = [picker.person("female") for _ in range(women)] + [picker.person("male") for _ in range(men)]
        hidden = picker.person("female")
        hidden.stated = False
        return chosen + [hidden]

    listal = _build_listal(site, cast(people), picker, per_page)
    filmweb = _build_filmweb(site, cast(people), picker, per_page)
    urllist = _build_urllist(site, [picker.person("male") for _ in range(2)],
                             [picker.person("female") for _ in range(2)], picker)
    site.write("/robots.txt", f"User-agent: *\nDisallow: {DISALLOWED}\n")
    site.write("/login", _page("Log in", '<form action="/login" method="post"><input name="user"></form>'))
    site.write("/", _page("anfe demo site", "\n".join(
        f'<p><a href="{u}">{u}</a></p>' for u in
        ("/listal/list/actresses", "/listal/list/actors", "/listal/list/favourites",
         "/filmweb/ranking/person/actors/female", "/filmweb/ranking/person/actors/male",
         "/filmweb/ranking/person/popular", "/facescrub_actors.txt", "/facescrub_actresses.txt"))))
    (out / ROUTES).write_text(json.dumps({"redirects": site.redirects, "html_images": site.html_images}, indent=2))
    manifest = {
        "source": str(Path(labels_csv).resolve()),
        "seed": seed, "people_per_style": people, "photos_per_person": photos, "per_page": per_page,
        "min_side": min_side,
        "disallowed_path": DISALLOWED,
        "spiders": {
            "listal": {"args": {"profile": "demo-listal"}, **listal.as_dict()},
            "filmweb": {"args": {"profile": "demo-filmweb"}, **filmweb.as_dict()},
            "urllist": {"runs": [{"file": "facescrub_actors.txt", "gender": "male"},
                                 {"file": "facescrub_actresses.txt", "gender": "female"}],
                        **urllist.as_dict()},
        },
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest

