"""The review page's newer widgets and the session's catalog (kept out of the page module so the
page stays a list of calls): the once-per-session sync, the filters, the progress lines, the
by-person data and the cached thumbnails. Crawled text (names, sites, reasons) is shown as plain
text only (``st.text``, ``format_func``), never as markdown.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import streamlit as st

from anfe.cache import AnalysisCache, default_cache_path
from anfe.layout import DatasetLayout
from anfe.store import Store

from . import catalog, decisions, queue, thumbnails
from .catalog import Filters, Progress, SyncReport
from .items import PersonView
from .review_cli import ReviewConfig

#: The choice of the reason and site filters that filters nothing.
ANY = ""


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
                              format_func=lambda r: r or "any reason") or None
    sites = st.session_state.get("catalog_sites") or []
    site = st.selectbox("Site", [ANY, *sites], key="filter_site", on_change=on_change,
                        format_func=lambda s: s or "any site", disabled=not sites) or None
    person = st.text_input("Person (search)", key="filter_person", on_change=on_change,
                           help="Only photos whose person's name holds this text (any case).")
    return Filters(reason, site, person or "")


def progress_lines(progress: Progress) -> None:
    """Reviewed and left per gender and reason, and standing decisions per reviewer (plain text)."""
    st.text(progress.line())
    st.text(f"Decisions per reviewer: {progress.reviewers_line()}")


def people(config: ReviewConfig, layout: DatasetLayout, store: Store) -> list[PersonView]:
    """Every person with their marked photos (reads every record and analysis: the one view whose
    cost still grows with the dataset)."""
    records = {r["content_hash"]: r for r in store.find_images(fields=queue.RECORD_FIELDS)}
    flagged = queue.flagged_items(layout, records)
    with AnalysisCache(config.cache_path or default_cache_path(), config.params.cache_key) as cache:
        analyses = queue.load_analyses(layout.image_files() + [i.path for i in flagged], config.params, cache,
                                       st.session_state.get("analyses"), config.workers)
    st.session_state["analyses"] = analyses
    return queue.people_views(layout, analyses, decisions.read_log(store), records)


def thumbnail_url(path: Path) -> str | None:
    """The photo's thumbnail as a ``data:`` URL, from the dataset's thumbnail folder (made once)."""
    root = Path(st.session_state.get("catalog_root") or path.parent)
    data = thumbnails.thumbnail(root, path, path.stem)
    return None if data is None else thumbnails.data_url(data)


__all__ = ["ANY", "filters", "people", "progress_lines", "resync", "start_session", "thumbnail_url"]
