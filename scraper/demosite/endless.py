"""Spider traps of the demo site: list pages that always link to a next page, made on request.

``/trap/endless/<n>`` shows the same person on every page (a chain that brings nothing new);
``/trap/deep/<n>`` shows a new person on every page, each without photos (only a page budget or a
depth limit ends it). People are ``/trap/people/<slug>`` ("Actress"), with an empty
``/pictures`` page. Nothing is written to disk: :func:`trap_page` renders each page.
"""

from __future__ import annotations

import re

from .pages import render

PREFIX = "/trap"
ENDLESS = f"{PREFIX}/endless/1"
DEEP = f"{PREFIX}/deep/1"
_LIST = re.compile(r"^/trap/(endless|deep)/(\d{1,9})/?$")
_PERSON = re.compile(r"^/trap/people/([a-z0-9-]{1,40})(/pictures)?/?$")


def trap_page(path: str) -> str | None:
    """The HTML of a trap page at ``path``, or None when ``path`` is no trap page."""
    match = _LIST.match(path)
    if match:
        kind, number = match.group(1), int(match.group(2))
        person = f"{PREFIX}/people/{'someone' if kind == 'endless' else f'p{number}'}"
        return render("listal_list.html", title=f"Trap {kind} {number}", name=f"{kind} {number}", pages=[person],
                      next_url=f"{PREFIX}/{kind}/{number + 1}", listid=None, announced=None)
    match = _PERSON.match(path)
    if match:
        slug, pictures = match.group(1), match.group(2)
        page = f"{PREFIX}/people/{slug}"
        if pictures:
            return render("listal_pictures.html", title=f"{slug} pictures", name=slug, views=[], prefix=PREFIX,
                          next_url=None)
        return render("listal_person.html", title=slug, name=slug, page=page, role="Actress")
    return None
