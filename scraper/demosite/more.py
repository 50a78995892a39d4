"""The demo site's load-more lists (listal style): the first people in the HTML, the rest through
``POST /listal/item-list/`` (form fields ``listid`` and ``offset``), answered as JSON holding an
HTML fragment, as listal does.

Traps: past the end, the endpoint does not answer empty but repeats the last item (a crawler that
waits for an empty answer never stops; one that counts answers is one off), and a second list
announces more people than it holds (a crawl must report it as ending early, with its URL).
The people state their gender by a word on their page ("Actress", "Actor"); one states none.
"""

from __future__ import annotations

from .listal import PREFIX, write_pictures, write_view_pages
from .pages import SiteWriter, render
from .people import Person, Picker
from .traps import Expect, photo_url

LIST = f"{PREFIX}/list/popular-people"
SHORT_LIST = f"{PREFIX}/list/short-list"
ENDPOINT = f"{PREFIX}/item-list/"
ROLES = {"female": "Actress", "male": "Actor"}


def build_more(site: SiteWriter, people: list[Person], picker: Picker, per_page: int, first: int,
               chunk: int) -> Expect:
    """A list of all ``people`` (``first`` in the HTML, then answers of ``chunk``) and a short list
    that announces three more people than it holds."""
    expect = Expect()
    serial = 0
    for person in people:
        person.page = f"{PREFIX}/{person.slug}"
        if person.stated:
            expect.people[person.gender].append(person.name)
            views = []
            for index in range(len(person.photos)):
                view = f"{PREFIX}/viewimage/{site.new_id()}"
                views.append((view, photo_url(site, PREFIX, person, index, serial, view, picker, expect)))
                serial += 1
            write_view_pages(site, person, views)
            write_pictures(site, person, [v for v, _ in views], per_page)
        else:
            expect.drop("no-gender")
        site.page(person.page, "listal_person.html", title=person.name, name=person.name, page=person.page,
                  role=ROLES[person.gender] if person.stated else "Director")
    pages = [p.page for p in people]
    short = pages[:min(len(pages), first + max(1, chunk // 2))]
    lists = {}
    for number, (url, items, announced, trap) in enumerate(
            ((LIST, pages, len(pages), True), (SHORT_LIST, short, len(short) + 3, False)), start=1):
        listid = str(4200 + number)
        site.page(url, "listal_list.html", title=f"List: {url.rsplit('/', 1)[1]}", name=url.rsplit("/", 1)[1],
                  pages=items[:first], next_url=None, listid=listid, announced=announced)
        site.item_lists[listid] = {"endpoint": ENDPOINT, "chunk": chunk, "repeat_last": trap,
                                   "items": [render("listal_list_items.html", pages=[p]).strip() for p in items]}
        lists[url] = {"announced": announced, "followed": len(items)}
    expect.extra.update({
        "lists": lists,
        "short_lists": [SHORT_LIST],
        "load_more": {LIST: {"first": first, "chunk": chunk, "endpoint": ENDPOINT, "listid": "4201",
                             "offsets": list(range(first, len(pages), chunk))}},
    })
    return expect
