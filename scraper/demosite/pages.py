"""Writing the demo site's files: pages rendered from the Jinja2 templates in ``templates/``, JSON, copies.

Every HTML page of the demo site comes from a template (autoescaped); ``__HOST__`` in a page or
a list stands for the server's ``127.0.0.1:port`` and is filled in when served.
"""

from __future__ import annotations

import json
import posixpath
import shutil
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

HOST = "__HOST__"
_ENV = Environment(loader=PackageLoader("scraper.demosite", "templates"),
                   autoescape=select_autoescape(["html"]), undefined=StrictUndefined)


def render(template: str, **context: Any) -> str:
    """The page ``template`` (a file of ``templates/``) rendered with ``context``."""
    return _ENV.get_template(template).render(**context)


def relative_url(target: str, page: str) -> str:
    """``target`` written relative to the page at ``page`` (both absolute paths)."""
    base = page.rsplit("/", 1)[0] or "/"
    return posixpath.relpath(target, base)


class SiteWriter:
    """Writes files under the output folder and keeps the special routes (``routes.json``).

    Routes: ``redirects`` (path -> [status, target]), ``html_images`` (an HTML page where an image
    was promised), ``item_lists`` (the data behind ``POST .../item-list/``), ``throttled`` (paths
    answered 429 with Retry-After every other time).
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.redirects: dict[str, list] = {}
        self.html_images: list[str] = []
        self.item_lists: dict[str, dict[str, Any]] = {}
        self.throttled: dict[str, int] = {}
        self.next_id = 1001

    def new_id(self) -> int:
        """A fresh number for a page or an image."""
        self.next_id += 1
        return self.next_id

    def write(self, url_path: str, data: bytes | str) -> None:
        """Write the file served at ``url_path`` (pages become ``<path>/index.html``)."""
        target = self.out / url_path.lstrip("/")
        if not Path(url_path).suffix:
            target = target / "index.html"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)

    def page(self, url_path: str, template: str, **context: Any) -> None:
        """Render ``template`` and write it as the page at ``url_path``."""
        self.write(url_path, render(template, **context))

    def json(self, url_path: str, document: Any, query: str = "") -> None:
        """Write a JSON answer served at ``url_path`` (``?query`` answers live in ``<path>/@<query>``)."""
        where = url_path.rstrip("/") + (f"/@{query}" if query else "")
        target = self.out / where.lstrip("/") / "index.json"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(document, indent=1, ensure_ascii=False), encoding="utf-8")

    def copy(self, url_path: str, source: Path) -> None:
        """Copy a photo byte for byte to ``url_path``."""
        target = self.out / url_path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)

    def routes(self) -> dict[str, Any]:
        """What the server needs beyond the files (written to ``routes.json``)."""
        return {"redirects": self.redirects, "html_images": self.html_images,
                "item_lists": self.item_lists, "throttled": self.throttled}
