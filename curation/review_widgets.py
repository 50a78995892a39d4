"""The review page's newer widgets and the session's catalog (kept out of the page module so the
page stays a list of calls): the once-per-session sync, the filters, the progress lines, the
by-person data and the cached thumbnails. Crawled text (names, sites, reasons) is shown as plain
text only (``st.text``, ``format_func``), never as markdown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from anfe.faces.cache import AnalysisCache
from anfe.core.paths import default_cache_path
from anfe.core.layout import DatasetLayout
from anfe.core.store import Store

from . import catalog, decisions, large_view, thumbnails
from .catalog import Filters, Progress, SyncReport
from .views import PersonView, QueueItem
from .review_cli import ReviewConfig
from .safe_text import md, plain

#: The choice of the reason and site filters that filters nothing.
ANY = ""


#: Long names wrap instead of being cut; the focused tile is outlined.
_STYLE = """<style>
[class*="st-key-sel-"] label, [class*="st-key-sel-"] label *, [data-testid="stCaptionContainer"] {
  white-space: normal !important; overflow: visible !important; text-overflow: clip !important;
  overflow-wrap: anywhere; }
[class*="st-key-sel-"]:focus-within { outline: 2px solid #ff4b4b; outline-offset: 2px; }
</style>"""
#: Keyboard movement between tiles: G puts the focus on the first tile's box, the arrow keys move
#: it between tiles (up and down by a row), Space ticks it, and the action keys act at once.
_TILE_KEYS = """<script>
if (!window.anfeTileKeys) {
  window.anfeTileKeys = true;
  const boxes = () => [...document.querySelectorAll('[class*="st-key-sel-"] input')];
  const columns = () => {
    const all = boxes();
    if (all.length < 2) return 1;
    const top = all[0].getBoundingClientRect().top;
    const row = all.findIndex((b) => Math.abs(b.getBoundingClientRect().top - top) > 5);
    return row < 0 ? all.length : row;
  };
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.altKey || event.metaKey) return;
    const all = boxes();
    const at = all.indexOf(document.activeElement);
    const typing = ["INPUT", "TEXTAREA"].includes(document.activeElement?.tagName) && at < 0;
    if (typing) return;
    if (at < 0 && (event.key === "g" || event.key === "G")) {
      if (!all.length) return;
      event.preventDefault(); event.stopPropagation();
      all[0].focus();
      return;
    }
    if (at < 0) return;
    const step = {ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns()}[event.key];
    if (step === undefined) return;
    event.preventDefault(); event.stopPropagation();
    all[Math.min(all.length - 1, Math.max(0, at + step))].focus();
  }, true);
}
</script>"""


def page_extras() -> None:
    """The page's style (names wrap) and its tile keys (G to the grid, arrows between tiles)."""
    st.html(_STYLE)
    st.html(_TILE_KEYS, unsafe_allow_javascript=True)


def start_session(config: ReviewConfig, layout: DatasetLayout, store: Store) -> SyncReport:
    """Once per browser session (and again after a decision found the folders changed under it):
    refuse a decision log of a newer version, bring the records in line with the folders, and
    score the photos if their set or labels changed."""
    if (report := st.session_state.get("catalog")) is not None:
        return report
    decisions.read_log(store)
    with st.spinner("Reading the catalog (analysing new images once; cached afterwards)..."):
        with AnalysisCache(config.cache_path or default_cache_path(), config.params.cache_key) as cache:
            report = catalog.sync(layout, store, config.params, cache, config.workers)
    st.session_state["catalog"] = report
    st.session_state["catalog_root"] = str(layout.root)
    st.session_state["catalog_sites"] = catalog.sites(store)
    return report


def resync() -> None:
    """Sync again at the next run (a decision found a file gone or moved by hand)."""
    st.session_state.pop("catalog", None)


def filters(store: Store, flagged: bool, on_change: Callable[[], None]) -> Filters:
    """The reason (files sent to review only), site and person-name filters of a queue."""
    reason = None
    if flagged:
        reason = st.selectbox("Reason", [ANY, *catalog.reasons(store)], key="filter_reason", on_change=on_change,
                              format_func=lambda r: plain(r) if r else "any reason") or None
    sites = st.session_state.get("catalog_sites") or []
    site = st.selectbox("Site", [ANY, *sites], key="filter_site", on_change=on_change,
                        format_func=lambda s: plain(s) if s else "any site", disabled=not sites) or None
    person = st.text_input("Person (search)", key="filter_person", on_change=on_change,
                           help="Only photos whose person's name holds this text (any case).")
    st.caption("Tiles: G goes to the first, the arrow keys between them, Space ticks; V the large view.")
    return Filters(reason, site, person or "")


def progress_lines(progress: Progress) -> None:
    """Reviewed and left per gender and reason, and standing decisions per reviewer (plain text)."""
    st.text(plain(progress.line()))
    st.text(plain(f"Decisions per reviewer: {progress.reviewers_line()}"))


#: People per page of the by-person view's list.
PEOPLE_PER_PAGE = 100


def _people_turn(step: int) -> None:
    """Turn the people list's page by ``step`` (0: back to its first page, after a new search)."""
    st.session_state["people_page"] = max(0, st.session_state.get("people_page", 0) + step) if step else 0


def people(store: Store) -> catalog.PeoplePage:
    """A name search and one page of the people list (suspect people first), with buttons to the
    page before and after: read from the lead records the catalog sync keeps, one per person."""
    search = st.text_input("Person (search)", key="people_search", on_change=_people_turn, args=(0,),
                           help="Only people whose name holds this text (any case).")
    shown = catalog.people_page(store, st.session_state.get("people_page", 0), PEOPLE_PER_PAGE, search or "")
    st.session_state["people_page"] = shown.page
    if shown.pages > 1:
        nav = st.container(horizontal=True)
        nav.button("◀", key="people-prev", on_click=_people_turn, args=(-1,), disabled=shown.page == 0)
        nav.text(f"people page {shown.page + 1} of {shown.pages} ({shown.total:,})")
        nav.button("▶", key="people-next", on_click=_people_turn, args=(1,), disabled=shown.page >= shown.pages - 1)
    return shown


@dataclass(frozen=True)
class PersonButtons:
    """The by-person view's button labels, and which action is the primary one (or None)."""

    reject: str
    move: str
    keep: str
    primary: str | None


def person_buttons(view: PersonView, target: str) -> PersonButtons:
    """With marked photos, rejecting them is the primary action and moving the whole person says
    how many photos it moves; with none marked, a suspect person's move is primary."""
    moving = sum(1 for i in view.items if i.entry_id or i.gender != target)
    primary = "reject" if view.marked else "move" if view.suspect else None
    return PersonButtons(
        reject=f"Reject the {len(view.marked)} marked as wrong-person",
        move=f"Move all {len(view.items)} photos of {md(view.name)} to {md(target)} ({moving} change)",
        keep=f"Keep {md(view.name)} as {md(view.gender)}", primary=primary)


def open_large(key: str | None) -> None:
    """Show the large view of the tile ``key`` (None: close it)."""
    st.session_state["large"] = key


def open_selected(keys: list[str]) -> None:
    """The V key: the large view of the first selected tile, else of the first tile; again: close."""
    if st.session_state.get("large"):
        open_large(None)
        return
    chosen = [k for k in keys if st.session_state.get(f"sel-{k}")] or keys[:1]
    open_large(chosen[0] if chosen else None)


def view_button(item: QueueItem) -> None:
    """The tile's button that opens its large view."""
    st.button("View", key=f"view-{item.key}", on_click=open_large, args=(item.key,), type="tertiary",
              help="The photo large, with its face boxes, what its scores mean, and the person's typical photos.")


def large(config: ReviewConfig, layout: DatasetLayout, store: Store, items: dict[str, QueueItem]) -> None:
    """The large view of the opened tile, above the grid (nothing when none is open or it left the page)."""
    item = items.get(st.session_state.get("large") or "")
    if item is None:
        return
    with AnalysisCache(config.cache_path or default_cache_path(), config.params.cache_key) as cache:
        analysis = cache.get(item.content_hash)
        refs = large_view.references(layout, store, cache, store.get_image(item.content_hash), item.content_hash)
    box = st.container(border=True, key="large-view")
    left, right = box.columns([3, 2])
    picture = large_view.boxed_jpeg(item.path, analysis)
    if picture is None:
        left.warning("The photo is gone or unreadable.")
    else:
        left.image(picture, width="stretch")
    right.text(plain(item.person or item.file_name))  # crawled text: no bidi or control characters
    for line in large_view.explain(item, analysis, layout.genders()):
        right.text(plain(line))
    right.button("Close (V)", key="large-close", on_click=open_large, args=(None,))
    if refs:
        right.text(f"Typical photos of {plain(item.person or 'this person')} (nearest the median of their photos):")
        for column, ref in zip(right.columns(len(refs)), refs):
            url = thumbnail_url(ref.path)
            if url:
                column.image(url, width="stretch")
            column.caption(f"distance {ref.distance:.2f}")


def thumbnail_url(path: Path) -> str | None:
    """The photo's thumbnail as a ``data:`` URL, from the dataset's thumbnail folder (made once)."""
    root = Path(st.session_state.get("catalog_root") or path.parent)
    data = thumbnails.thumbnail(root, path, path.stem)
    return None if data is None else thumbnails.data_url(data)


__all__ = ["ANY", "PEOPLE_PER_PAGE", "PersonButtons", "filters", "large", "open_large", "open_selected",
           "page_extras", "people", "person_buttons", "progress_lines", "resync", "start_session", "thumbnail_url",
           "view_button"]
