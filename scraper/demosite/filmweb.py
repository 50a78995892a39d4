"""The filmweb-style part of the demo site: gender-split rankings -> person pages (profession words) -> ``/photos``."""

from __future__ import annotations

import itertools

from .pages import SiteWriter
from .people import Person, Picker
from .traps import SPECIALS, Expect, pages_of, photo_url, special_image

PREFIX = "/filmweb"
#: Profession words the person pages use, in turn ("aktor lub aktorka" states no gender: a trap).
FEMALE_WORDS = ("aktorka", "Actress", "aktorka")
MALE_WORDS = ("aktor", "Actor", "aktor lub aktorka")


def build_filmweb(site: SiteWriter, people: list[Person], picker: Picker, per_page: int) -> Expect:
    """Rankings of actresses, actors and a "popular" one (an actress known only by her words, a director)."""
    def page_of(person: Person) -> str:
        return f"{PREFIX}/person/{'+'.join(person.name.split())}-{site.new_id()}"

    expect, gendered = Expect.placing(people, page_of)
    serial = 0
    for n, person in enumerate(gendered):
        entries: list[str] = []
        gallery = f"{person.page}/photos"
        specials = SPECIALS[n::len(gendered)]
        chunks_needed = (len(person.photos) + len(specials) + per_page - 1) // per_page
        page_of = [gallery if i == 0 else f"{gallery}/{i + 1}" for i in range(chunks_needed)]
        for index in range(len(person.photos)):
            page = page_of[len(entries) // per_page]
            entries.append(photo_url(site, PREFIX, person, index, serial, page, picker, expect))
            serial += 1
        for kind in specials:
            entries.append(special_image(site, PREFIX, kind, person, picker, expect))
        chunks = pages_of(entries, per_page)
        for number, chunk in enumerate(chunks):
            next_url = page_of[number + 1] if number + 1 < len(chunks) else None
            site.page(page_of[number], "filmweb_gallery.html", title=f"{person.name} - zdjęcia",
                      entries=chunk, prefix=PREFIX, next_url=next_url)
    female_words, male_words = itertools.cycle(FEMALE_WORDS), itertools.cycle(MALE_WORDS)
    for n, person in enumerate(people):
        words = ("reżyser" if not person.stated
                 else next(female_words) if person.gender == "female" else next(male_words))
        template = "filmweb_person_malformed.html" if n == 2 else "filmweb_person.html"
        site.page(person.page, template, title=person.name, name=person.name, words=words)
    # rankings: one actress is only in the "popular" ranking: her gender comes from "aktorka"
    women = [p for p in gendered if p.gender == "female"]
    popular = [women[-1].page] if women else []
    rankings = {
        "actors/female": [p.page for p in women[:-1]],
        "actors/male": [p.page for p in gendered if p.gender == "male"],
        "popular": popular + [p.page for p in people if not p.stated]
        + [f"{PREFIX}/person/Nobody+Here-999999", "http://offsite.example/person/Some+One-1"],
    }
    expect.page_error("http-404")
    expect.drop("off-domain")
    expect.drop("no-gender", sum(1 for p in people if not p.stated))
    for name, pages in rankings.items():
        site.page(f"{PREFIX}/ranking/person/{name}", "filmweb_ranking.html", title=f"Ranking {name}", pages=pages)
    return expect
