"""The demo site's gallery that exists only after JavaScript runs.

Two lists (actresses, actors) lead to plain HTML person pages; each person's gallery page holds
no photo list, only encoded data and a script (``/render/gallery.js``) that builds
``ul.gallery__photos-list`` in the browser. The person pages load ``/render/person.js``: a
crawl that renders only the gallery step fetches ``gallery.js`` once per gallery and never
``person.js``.
"""

from __future__ import annotations

import base64
import json

from .pages import SiteWriter, render
from .people import Person, Picker
from .traps import Expect

PREFIX = "/render"
GALLERY_SCRIPT = f"{PREFIX}/gallery.js"
PERSON_SCRIPT = f"{PREFIX}/person.js"


def build_render(site: SiteWriter, people: list[Person], picker: Picker) -> Expect:
    """One list per gender, plain person pages, galleries built by JavaScript."""
    expect = Expect()
    site.write(GALLERY_SCRIPT, render("gallery.js"))
    site.write(PERSON_SCRIPT, render("person.js"))
    lists: dict[str, list[str]] = {"actresses": [], "actors": []}
    for person in people:
        person.page = f"{PREFIX}/{person.slug}"
        gallery = f"{person.page}/photos"
        expect.people[person.gender].append(person.name)
        urls = []
        for photo in person.photos:
            path = f"{PREFIX}/images/{site.new_id()}.jpg"
            site.copy(path, photo)
            urls.append(path)
            expect.keep(person.gender, picker.hashes[photo])
        encoded = base64.b64encode(json.dumps(urls).encode()).decode()
        site.page(gallery, "render_gallery.html", title=f"{person.name} pictures", name=person.name,
                  photos=encoded, gallery_script=GALLERY_SCRIPT)
        site.page(person.page, "render_person.html", title=person.name, name=person.name, gallery=gallery,
                  person_script=PERSON_SCRIPT)
        lists["actresses" if person.gender == "female" else "actors"].append(person.page)
    for name, pages in lists.items():
        site.page(f"{PREFIX}/list/{name}", "listal_list.html", title=f"List: {name}", name=name, pages=pages,
                  next_url=None, listid=None, announced=None)
    expect.extra.update({"rendered_pages": len(people), "scripts": {"gallery": GALLERY_SCRIPT,
                                                                    "person": PERSON_SCRIPT}})
    return expect
