"""The demo site's filmweb-style JSON API: rankings, person info and photos under ``/filmweb/api/v1``.

- ``ranking/person/actors/{female,male}``, ``ranking/person/popular``: ``{"total", "people": [{"id",
  "name"}], "next"}``, paged with ``?page=N`` (``next`` is null on the last page);
- ``person/<id>/info``: ``{"id", "name", "professions", "poster"}``; the poster path is relative
  to ``/filmweb/ppo`` and its ``$`` stands for the size (only size 3 exists), as on filmweb;
- ``person/<id>/photos?page=N``: ``{"page", "photos": [{"id", "url"}]}``, empty past the end;
  photo URLs carry the same ``$``.

Traps: an id in a ranking whose info is a 404, a photo that is a 404, an off-domain photo, a
director (no gender), and the first person's info answers 429 with ``Retry-After: 1`` every
other time (a polite crawler waits, then gets it).
"""

from __future__ import annotations

import itertools

from .filmweb import FEMALE_WORDS, MALE_WORDS
from .pages import SiteWriter
from .people import Person, Picker
from .traps import Expect, pages_of

PREFIX = "/filmweb"
API = f"{PREFIX}/api/v1"


def build_api(site: SiteWriter, people: list[Person], picker: Picker, per_page: int) -> Expect:
    """Rankings, info and photo answers for ``people`` (the last, unstated one, is a director)."""
    expect = Expect()
    gendered = [p for p in people if p.stated]
    ids = {p.name: site.new_id() for p in people}
    female_words, male_words = itertools.cycle(FEMALE_WORDS), itertools.cycle(MALE_WORDS)
    for n, person in enumerate(people):
        pid = ids[person.name]
        person.page = f"{API}/person/{pid}/info"
        words = ("reżyser" if not person.stated
                 else next(female_words) if person.gender == "female" else next(male_words))
        poster_id = site.new_id()
        site.copy(f"{PREFIX}/ppo/{pid}/{poster_id}.3.jpg", person.photos[0])
        site.json(person.page, {"id": pid, "name": person.name, "professions": [words],
                                "poster": f"/{pid}/{poster_id}.$.jpg", "birthDate": "1970-01-01"})
        if not person.stated:
            expect.drop("no-gender")
            continue
        expect.people[person.gender].append(person.name)
        expect.keep(person.gender, picker.hashes[person.photos[0]])
        photos = []
        for photo in person.photos[1:]:
            photo_id = site.new_id()
            site.copy(f"{PREFIX}/fph/{photo_id}.3.jpg", photo)
            photos.append({"id": photo_id, "url": f"{PREFIX}/fph/{photo_id}.$.jpg"})
            expect.keep(person.gender, picker.hashes[photo])
        if n == 0:
            photos.append({"id": site.new_id(), "url": f"{PREFIX}/fph/gone-{pid}.$.jpg"})
            expect.drop("http-404")
            site.throttled[person.page] = 1
        if n == 1:
            photos.append({"id": site.new_id(), "url": f"http://img.offsite.example/fph/{pid}.$.jpg"})
            expect.drop("off-domain")
        chunks = pages_of(photos, per_page)
        for number, chunk in enumerate(chunks, start=1):
            site.json(f"{API}/person/{pid}/photos", {"page": number, "photos": chunk},
                      query="" if number == 1 else f"page={number}")
        site.json(f"{API}/person/{pid}/photos", {"page": len(chunks) + 1, "photos": []},
                  query=f"page={len(chunks) + 1}")
    women = [p for p in gendered if p.gender == "female"]
    rankings = {
        "actors/female": [{"id": ids[p.name], "name": p.name} for p in women[:-1]],
        "actors/male": [{"id": ids[p.name], "name": p.name} for p in gendered if p.gender == "male"],
        "popular": [{"id": ids[p.name], "name": p.name} for p in women[-1:] + [q for q in people if not q.stated]]
        + [{"id": 999999, "name": "Nobody Here"}],
    }
    expect.page_error("http-404")
    lists = {}
    for name, entries in rankings.items():
        url = f"{API}/ranking/person/{name}"
        chunks = pages_of(entries, per_page)
        for number, chunk in enumerate(chunks, start=1):
            following = f"{url}?page={number + 1}" if number < len(chunks) else None
            site.json(url, {"total": len(entries), "page": number, "people": chunk, "next": following},
                      query="" if number == 1 else f"page={number}")
        lists[url] = {"announced": len(entries), "followed": len(entries)}
    expect.extra.update({"lists": lists, "short_lists": [], "throttled": sorted(site.throttled)})
    return expect
