"""The demo site's board: people whose name, sex and pictures are only in JSON inside the page.

``/board/list/everyone`` shows the first people as cards and keeps the board's id and size in a
``window.__DATA__ = {...}`` assignment; the rest come from ``POST /board/item-list/`` (``listid``,
``offset``) as JSON holding an HTML fragment and ``"finished": true`` on the last answer (past the
end the endpoint repeats the last card, so only ``stop.finished`` saves the extra request). A
person page has no HTML content: the name is in ``<script type="application/ld+json">``, the sex
(``F``/``M``) and the pictures in ``<script type="application/json">``. One person's sex is
``unknown``. Crawled with the ``demo-board`` profile (embedded-JSON selectors).
"""

from __future__ import annotations

from .pages import SiteWriter, render
from .people import Person, Picker
from .traps import Expect, photo_url

PREFIX = "/board"
LIST = f"{PREFIX}/list/everyone"
ENDPOINT = f"{PREFIX}/item-list/"
LISTID = "77"
SEX = {"female": "F", "male": "M"}


def build_board(site: SiteWriter, people: list[Person], picker: Picker, first: int, chunk: int) -> Expect:
    """The board of ``people`` (``first`` in the HTML, then answers of ``chunk``)."""
    expect, gendered = Expect.placing(people, lambda p: f"{PREFIX}/p/{p.slug}")
    serial = 0
    for person in people:
        pictures = []
        if person.stated:
            for index in range(len(person.photos)):
                pictures.append(photo_url(site, PREFIX, person, index, serial, person.page, picker, expect))
                serial += 1
        else:
            expect.drop("no-gender")
        site.page(person.page, "board_person.html", title=person.name,
                  about={"@context": "https://schema.org", "@type": "Person", "name": person.name},
                  person={"sex": SEX[person.gender] if person.stated else "unknown", "pictures": pictures})
    pages = [p.page for p in people]
    site.page(LIST, "board_list.html", title="Board: everyone", name="Everyone", pages=pages[:first],
              data={"board": {"id": LISTID, "total": len(pages)}})
    site.item_lists[LISTID] = {"endpoint": ENDPOINT, "chunk": chunk, "repeat_last": True, "says_finished": True,
                               "items": [render("board_cards.html", pages=[p]).strip() for p in pages]}
    expect.extra.update({
        "lists": {LIST: {"announced": len(pages), "followed": len(pages)}},
        "load_more": {LIST: {"first": first, "chunk": chunk, "endpoint": ENDPOINT, "listid": LISTID,
                             "offsets": list(range(first, len(pages), chunk))}},
    })
    return expect
