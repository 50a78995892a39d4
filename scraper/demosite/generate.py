"""Generate the local demo site from labelled photos: a listal-style part, a load-more list, a
filmweb-style part, a filmweb-style JSON API, a gallery built by JavaScript, FaceScrub-style URL lists.

The site holds the traps a real crawl meets (robots.txt, 404s, redirects, a login page where an
image was promised, empty/truncated/tiny/bomb images, duplicates, off-domain links, malformed
HTML, a person with no gender) and a ``manifest.json`` saying what a correct crawl of each part
must produce. Photos are byte-for-byte copies of the source files; pages come from the Jinja2
templates in ``templates/``; ``__HOST__`` in pages and lists is replaced by the server with its
``127.0.0.1:port``.

Each part of the site is one function ``build_<part>(site, people, picker, ...) -> Expect`` in its
own module; :func:`generate_site` casts the people, calls the parts and writes the manifest. The
site is built in a temporary folder beside ``out`` and renamed into place at the end, so a failed
or killed run leaves nothing that blocks the next one.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from anfe.core.dataset import from_labels_csv
from anfe.core.errors import AnfeError

from ..errors import DemoSiteError
from anfe.core.processes import process_alive
from .api import build_api
from .board import build_board
from .filmweb import build_filmweb
from .listal import build_listal
from .more import build_more
from .pages import HOST, SiteWriter
from .render import build_render
from .people import Person, Picker
from .plant import plant
from .traps import DISALLOWED, bomb_png
from .urllist import LIST_FILES, LISTS_DIR, build_urllist

MANIFEST = "manifest.json"
ROUTES = "routes.json"
#: The most people per site style ``anfe site generate --people`` accepts.
MAX_PEOPLE = 200
#: The most people of the load-more list (``--list-people``).
MAX_LIST_PEOPLE = 1000

__all__ = ["DISALLOWED", "HOST", "MANIFEST", "MAX_PEOPLE", "ROUTES", "SiteSpec", "bomb_png", "generate_site"]


@dataclass(frozen=True)
class SiteSpec:
    """How large the demo site is and which people it shows.

    people: gendered people per site style (half women, half men; at least 2), plus one person
    with no gender stated per style; the URL lists get 2 actors and 2 actresses.
    photos: photos per person (people with fewer usable photos are passed over).
    per_page: entries per list/gallery page.
    list_people, list_photos: people (half women) and photos per person of the load-more list,
    plus one person who states no gender; list_first: people its HTML shows; list_chunk: people
    per load-more answer.
    """

    people: int = 6
    photos: int = 3
    per_page: int = 2
    seed: int = 0
    min_side: int = 100
    list_people: int = 210
    list_photos: int = 1
    list_first: int = 50
    list_chunk: int = 40
    #: Label noise planted in the listal-style part, listed in the manifest (see :mod:`.plant`):
    #: galleries given one photo of another person, and people listed under the other gender.
    wrong_person: int = 0
    flip_people: int = 0

    def check(self) -> None:
        """Refuse sizes the generator cannot build."""
        if not 2 <= self.people <= MAX_PEOPLE or self.photos < 1 or self.per_page < 1:
            raise DemoSiteError(f"need 2 <= people <= {MAX_PEOPLE}, photos >= 1 and per_page >= 1")
        if not 2 <= self.list_people <= MAX_LIST_PEOPLE or min(self.list_photos, self.list_first, self.list_chunk) < 1:
            raise DemoSiteError(f"need 2 <= list_people <= {MAX_LIST_PEOPLE}, and list_photos, list_first, "
                                f"list_chunk >= 1")


def _cast(picker: Picker, n: int, photos: int) -> list[Person]:
    """``n`` gendered people (half women) and one woman whose gender the site does not state."""
    women, men = (n + 1) // 2, n // 2
    chosen = [picker.person("female", photos) for _ in range(women)] + [picker.person("male", photos) for _ in range(men)]
    hidden = picker.person("female", photos)
    hidden.stated = False
    return chosen + [hidden]


def build_site(site: SiteWriter, picker: Picker, spec: SiteSpec) -> dict[str, Any]:
    """Write every part of the site into ``site``; return the manifest's ``spiders`` entry."""
    listal_people = _cast(picker, spec.people, spec.photos)
    planted = plant(listal_people, picker, spec.wrong_person, spec.flip_people)
    listal = build_listal(site, listal_people, picker, spec.per_page)
    filmweb = build_filmweb(site, _cast(picker, spec.people, spec.photos), picker, spec.per_page)
    urllist = build_urllist(site, [picker.person("male", spec.photos) for _ in range(2)],
                            [picker.person("female", spec.photos) for _ in range(2)], picker)
    more = build_more(site, _cast(picker, spec.list_people, spec.list_photos), picker, spec.per_page,
                      spec.list_first, spec.list_chunk)
    api = build_api(site, _cast(picker, spec.people, spec.photos), picker, spec.per_page)
    rendered = build_render(site, [picker.person("female", spec.photos), picker.person("male", spec.photos)], picker)
    board = build_board(site, _cast(picker, spec.people, spec.photos), picker, first=max(1, spec.people // 2),
                        chunk=2)
    site.write("/robots.txt", f"User-agent: *\nDisallow: {DISALLOWED}\n")
    site.page("/login", "login.html", title="Log in")
    links = ["/listal/list/actresses", "/listal/list/actors", "/listal/list/favourites",
             "/listal/list/popular-people", "/listal/list/short-list",
             "/filmweb/ranking/person/actors/female", "/filmweb/ranking/person/actors/male",
             "/filmweb/ranking/person/popular", "/filmweb/api/v1/ranking/person/actors/female",
             "/render/list/actresses", "/render/list/actors", "/board/list/everyone", "/trap/endless/1",
             "/trap/deep/1", *(f"/{LISTS_DIR}/{name}" for name in LIST_FILES)]
    site.page("/", "index.html", title="anfe demo site", links=links)
    return {
        "listal": {"args": {"profile": "demo-listal"}, **listal.as_dict(), "planted": planted},
        "listal-more": {"spider": "listal", "args": {"profile": "demo-listal-more"}, **more.as_dict()},
        "filmweb": {"args": {"profile": "demo-filmweb"}, **filmweb.as_dict()},
        "filmweb-api": {"spider": "filmweb", "args": {"profile": "demo-filmweb-api"}, **api.as_dict()},
        "render": {"spider": "filmweb", "args": {"profile": "demo-render"}, **rendered.as_dict()},
        "board": {"spider": "listal", "args": {"profile": "demo-board"}, **board.as_dict()},
        "urllist": urllist.as_dict(),
    }


def _prepare(out: Path) -> None:
    """Refuse a folder that holds something other than a demo site; clear stale partial builds."""
    if out.exists() and not out.is_dir():
        raise DemoSiteError(f"{out} is a file: choose a folder for the site")
    if out.is_dir() and any(out.iterdir()) and not (out / MANIFEST).is_file():
        raise DemoSiteError(f"{out} is not empty and holds no demo site: choose an empty folder")
    if out.parent.is_dir():
        for stale in out.parent.glob(f".{out.name}.partial-*"):
            pid = stale.name.rsplit("-", 2)[-2] if stale.name.count("-") >= 2 else ""
            if pid.isdigit() and not process_alive(int(pid)):
                shutil.rmtree(stale, ignore_errors=True)


def _swap_into_place(built: Path, out: Path) -> None:
    """Rename the finished site to ``out``; an earlier site there is moved aside, then removed."""
    old = None
    if out.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-{os.getpid()}-", dir=out.parent))
        os.rename(out, old / "site")
    os.rename(built, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def generate_site(labels_csv: str | Path, out: str | Path, *, spec: SiteSpec | None = None,
                  **sizes: int) -> dict[str, Any]:
    """Build the demo site in ``out`` (replacing an earlier generated site) and return its manifest.

    Give the sizes as a :class:`SiteSpec` or as its fields (``people=6, photos=3``...). The site
    is built in ``.<out>.partial-<pid>-*`` beside ``out`` and renamed at the end.
    """
    spec = spec or SiteSpec(**sizes)
    spec.check()
    out = Path(out)
    _prepare(out)
    try:
        items = from_labels_csv(labels_csv)
    except AnfeError as exc:
        raise DemoSiteError(f"cannot read the labelled photos: {exc}") from exc
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-{os.getpid()}-", dir=out.parent))
    try:
        site = SiteWriter(work)
        picker = Picker(items, max(spec.photos, spec.list_photos), spec.min_side, spec.seed)
        spiders = build_site(site, picker, spec)
        (work / ROUTES).write_text(json.dumps(site.routes(), indent=2))
        manifest = {
            "source": str(Path(labels_csv).resolve()),
            "seed": spec.seed, "people_per_style": spec.people, "photos_per_person": spec.photos,
            "per_page": spec.per_page, "min_side": spec.min_side, "spec": asdict(spec),
            "disallowed_path": DISALLOWED,
            "spiders": spiders,
        }
        (work / MANIFEST).write_text(json.dumps(manifest, indent=2))
        _swap_into_place(work, out)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return manifest


