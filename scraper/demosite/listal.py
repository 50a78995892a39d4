"""The listal-style part of the demo site: lists -> person pages -> ``/pictures`` pages -> ``/viewimage`` pages."""

from __future__ import annotations

import posixpath

from .pages import HOST, SiteWriter
from .people import Person, Picker
from .traps import SPECIALS, Expect, pages_of, photo_url, special_image

PREFIX = "/listal"


def write_view_pages(site: SiteWriter, person: Person, views: list[tuple[str, str | None]]) -> None:
    """One ``/viewimage/<id>`` page per picture (none for a view whose image is None: a 404)."""
    for view, image in views:
        if image is None:
            continue
        absolute = image if image.startswith(("http:", "//")) else posixpath.normpath(
            posixpath.join(view.rsplit("/", 1)[0], image))
        og = absolute if absolute.startswith(("http:", "//")) else f"http://{HOST}{absolute}"
        site.page(view, "listal_view.html", title=f"Picture of {person.name}", name=person.name,
                  person_page=person.page, image=image, og_image=og)


def write_pictures(site: SiteWriter, person: Person, views: list[str], per_page: int) -> None:
    """The person's ``/pictures`` pages (later pages linked with listal's double slash)."""
    chunks = pages_of(views, per_page)
    for number, chunk in enumerate(chunks, start=1):
        url = f"{person.page}/pictures" + ("" if number == 1 else f"/{number}")
        next_url = f"{person.page}/pictures//{number + 1}" if number < len(chunks) else None
        site.page(url, "listal_pictures.html", title=f"{person.name} pictures", name=person.name,
                  views=chunk, prefix=PREFIX, next_url=next_url)


def build_listal(site: SiteWriter, people: list[Person], picker: Picker, per_page: int) -> Expect:
    """Lists of actresses, actors and favourites (a person with no gender, a 404, an off-site link)."""
    expect, gendered = Expect.placing(people, lambda p: f"{PREFIX}/{p.slug}")
    serial = 0
    for n, person in enumerate(gendered):
        views: list[tuple[str, str | None]] = []
        for index in range(len(person.photos)):
            view = f"{PREFIX}/viewimage/{site.new_id()}"
            views.append((view, photo_url(site, PREFIX, person, index, serial, view, picker, expect)))
            serial += 1
        for kind in SPECIALS[n::len(gendered)]:
            view = f"{PREFIX}/viewimage/{site.new_id()}"
            views.append((view, special_image(site, PREFIX, kind, person, picker, expect)))
        if n == 0:  # a gallery entry whose view page is missing
            views.append((f"{PREFIX}/viewimage/{site.new_id()}", None))
            expect.page_error("http-404")
        write_view_pages(site, person, views)
        write_pictures(site, person, [v for v, _ in views], per_page)
    for n, person in enumerate(people):  # person pages (one of them malformed)
        template = "listal_person_malformed.html" if n == 1 else "listal_person.html"
        site.page(person.page, template, title=person.name, name=person.name, page=person.page, role=None)
    lists = {
        "actresses": [p.page for p in gendered if p.gender == "female"],
        "actors": [p.page for p in gendered if p.gender == "male"],
        "favourites": [p.page for p in people if not p.stated]
        + [f"{PREFIX}/no-such-person", "http://offsite.example/listal/someone-else"],
    }
    expect.page_error("http-404")
    expect.drop("off-domain")
    expect.drop("no-gender", sum(1 for p in people if not p.stated))
    for name, pages in lists.items():
        chunks = pages_of(pages, per_page)
        for number, chunk in enumerate(chunks, start=1):
            url = f"{PREFIX}/list/{name}" + ("" if number == 1 else f"/{number}")
            next_url = f"{PREFIX}/list/{name}/{number + 1}" if number < len(chunks) else None
            site.page(url, "listal_list.html", title=f"List: {name}", name=name, pages=chunk,
                      next_url=next_url, listid=None, announced=None)
    return expect
