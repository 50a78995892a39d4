"""The label-review page: ``streamlit run curation/review_app.py -- DATASET_ROOT`` (or ``anfe review``).

Thin on purpose: it reads widgets and calls :mod:`curation.queue` (what to show) and
:mod:`curation.decisions` (what to do), where the logic lives and is tested without a browser.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TypeVar

import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from anfe.core.errors import AnfeError
from anfe.core.layout import DatasetLayout, open_dataset
from anfe.core.store import Store, open_store
from curation import catalog, decisions, moves, queue, review_gate, review_values, review_widgets
from curation.review_cli import ReviewConfig, parse_args
from curation.safe_text import md, plain

T = TypeVar("T")

#: Keyboard shortcuts by button key (Streamlit reserves C and R).
KEYS = {"act-keep": "K", "act-keep-rest": "Shift+K", "act-relabel": "M", "act-reject": "X", "undo": "U",
        "undo-batch": "Shift+U", "select-all": "A", "select-none": "N", "prev": "Left", "next": "Right", "view-large": "V"}
PAGE_SIZES = (6, 12, 24, 48, 96)
#: The "gender" choice that shows the files the automatic cleaning sent to review.
FLAGGED = "sent-to-review"
#: The two views: a queue per gender, or one person's photos at a time.
VIEWS = ("by gender", "by person")
#: The keep and move buttons' words, and those of their reports: in a gender's queue, and (True)
#: for the files sent to review, which are put back.
WORDS = {False: {"keep": "Keep", "kept": "Kept", "move": "Move to", "moved": "Moved to"},
         True: {"keep": "Put back", "kept": "Put back", "move": "Put back as", "moved": "Put back as"}}


def _flash(kind: str, *texts: str) -> None:
    """Queue messages for the next run to show (markdown: escape crawled text with :func:`md`)."""
    st.session_state.setdefault("flash", []).extend((kind, text) for text in texts)


def _show_flash() -> None:
    for kind, text in st.session_state.pop("flash", []):
        getattr(st, kind)(text)


def _selected() -> list[queue.QueueItem]:
    items: dict[str, queue.QueueItem] = st.session_state.get("page_items", {})
    return [item for key, item in items.items() if st.session_state.get(f"sel-{key}")]


def _set_selection(value: bool, keys: Sequence[str] | None = None) -> None:
    for key in keys if keys is not None else st.session_state.get("page_items", {}):
        st.session_state[f"sel-{key}"] = value


def _apply(config: ReviewConfig, verb: str, act: Callable[[DatasetLayout, Store, str], decisions.Outcome],
           chosen: list[queue.QueueItem] | None = None) -> None:
    """Button callbacks: ``act(layout, store, reviewer)`` as the acting reviewer (on ``chosen``,
    which it unticks after), then report the outcome or the error."""
    try:
        who = review_gate.acting_reviewer(config)  # (an unusable reviewers file: act for no one)
        if who is None:  # not signed in (any more)
            return
        if chosen is not None and not chosen:
            _flash("info", "select images first (click their boxes, or A for the whole page)")
            return
        with open_store(config.db, config.root) as store:
            outcome = act(open_dataset(config.root), store, who)
    except AnfeError as exc:
        _flash("error", f"Error: {md(exc)}")
        return
    if outcome.problems:  # the folders changed under the page: read them again
        review_widgets.resync()
    _set_selection(False, [i.key for i in chosen or []])
    _flash("success" if outcome.logged else "info", f"{verb}: {md(outcome.summary())}")
    _flash("info", *map(md, outcome.notes))
    _flash("warning", *map(md, outcome.problems))


def _act(config: ReviewConfig, action: str, rest_of_page: bool = False) -> None:
    """One decision batch on the selection (or on the unselected rest of the page)."""
    chosen = _selected()
    if rest_of_page:
        picked = {i.key for i in chosen}
        chosen = [i for k, i in st.session_state.get("page_items", {}).items() if k not in picked]
    options: dict[str, str] = {}
    try:  # only what the page offered: a made-up label or reason never names a folder
        if action == "relabel":
            options = {"new_label": review_values.offered(st.session_state, "target", "label")}
        elif action == "reject":
            options = {"reason": review_values.offered(st.session_state, "reason", "reject reason"),
                       "detail": plain(st.session_state.get("detail") or "")}
    except review_values.RefusedValue as exc:
        _flash("error", md(exc))
        return
    words = WORDS[any(i.entry_id for i in chosen)]
    verb = {"keep": words["kept"], "relabel": f"{words['moved']} {md(options.get('new_label'))}",
            "reject": f"Rejected ({md(options.get('reason'))})"}[action]
    _apply(config, verb, chosen=chosen,
           act=lambda layout, store, who: decisions.decide(layout, store, chosen, action, who, **options))


def _undo(config: ReviewConfig, whole_batch: bool) -> None:
    _apply(config, "Undid the last batch" if whole_batch else "Undid the last decision",
           partial(decisions.undo, whole_batch=whole_batch))


def _person_act(config: ReviewConfig, view: queue.PersonView, action: str) -> None:
    """One decision batch of the by-person view: on the whole person, or on their marked photos."""
    if action == "move":
        try:
            target = review_values.offered(st.session_state, "person_target", "label")
        except review_values.RefusedValue as exc:
            _flash("error", md(exc))
            return
        _apply(config, f"Moved {md(view.name)} to {md(target)}",
               lambda layout, store, who: decisions.move_person(layout, store, view, target, who))
    elif action == "keep":
        _apply(config, f"Kept {md(view.name)} as {md(view.gender)}",
               lambda layout, store, who: decisions.keep_person(layout, store, view, who))
    else:
        _apply(config, f"Rejected the marked photos of {md(view.name)} (wrong-person)",
               lambda layout, store, who: decisions.reject_marked(layout, store, view, who))


def _turn(step: int | None = None) -> None:
    """Turn ``step`` pages on, or (None) back to the first page."""
    st.session_state["page"] = 0 if step is None else max(0, st.session_state.get("page", 0) + step)


#: Tick-then-key: with the focus on a tile's box just ticked, Streamlit's shortcuts do not fire, so
#: a key pressed there presses its button here (at once, in the key event itself), and any tick
#: hands the focus back to the page.
_TICK_THEN_KEY = """<script>
if (!window.anfeTickThenKey) {
  window.anfeTickThenKey = true;
  const buttons = %s;
  const inBox = (target) => target.closest && target.closest('[class*="st-key-sel-"]');
  document.addEventListener("keydown", (event) => {
    if (!inBox(event.target) || event.ctrlKey || event.altKey || event.metaKey) return;
    const button = buttons[(event.shiftKey ? "Shift+" : "") + event.key.toUpperCase()];
    if (!button) return;
    event.preventDefault();
    event.stopPropagation();
    event.target.blur();
    document.querySelector(".st-key-" + button + " button")?.click();
  }, true);
  document.addEventListener("click", (event) => {
    // a tick by mouse (not by Space on a box reached with the arrow keys)
    if (inBox(event.target) && event.detail !== 0) setTimeout(() => document.activeElement.blur(), 0);
  }, true);
}
</script>""" % json.dumps({shortcut: key for key, shortcut in KEYS.items() if key not in ("prev", "next")})


def render(argv: Sequence[str]) -> None:
    """Draw the page for the dataset named in ``argv`` (the arguments after ``--``)."""
    st.set_page_config(page_title="ANFE label review", layout="wide")
    st.html(_TICK_THEN_KEY, unsafe_allow_javascript=True)
    review_widgets.page_extras()
    try:
        config = parse_args(argv)
        signed_in = review_gate.gate(config)  # the sign-in form only, until signed in
        layout = open_dataset(config.root)
        moves.check_writable(layout)
        with open_store(config.db, config.root) as store:
            _render(config, signed_in, layout, store)
    except AnfeError as exc:
        st.error(f"Error: {exc}")
        st.stop()


def _render(config: ReviewConfig, signed_in: str | None, layout: DatasetLayout, store: Store) -> None:
    if "repaired" not in st.session_state:  # a crash between a logged decision and its move
        st.session_state["repaired"] = decisions.repair(layout, store)
        for message in st.session_state["repaired"]:
            _flash("info", f"Repaired after an interrupted session: {message}")
    report = review_widgets.start_session(config, layout, store)  # once per session: records, scores
    progress = catalog.progress(store)
    counts = {g: (progress.left.get(g, 0), progress.total.get(g, 0)) for g in layout.genders()}
    flagged = sum(progress.flagged.values())  # (a photo held twice, once per label, counts once here)
    genders = layout.genders()
    if flagged or st.session_state.get("gender") == FLAGGED:
        genders.append(FLAGGED)
        counts[FLAGGED] = (flagged, flagged)

    with st.sidebar:
        st.title("Label review")
        st.caption(f"Dataset {md(layout.root)}")
        if signed_in is None:  # no sign-in: one local user, who may type a name
            st.text_input("Reviewer", value=decisions.default_reviewer(), key="reviewer",
                          help="Recorded with every decision.")
        has_people = report.people
        view_mode = _offered_or_first(st.radio(
            "View", VIEWS, key="view", horizontal=True, disabled=not has_people,
            help="By person: one person's photos in a row, outliers marked "
                 "(needs records naming each photo's person, as a crawl writes)."), VIEWS, "view")
    if has_people and view_mode == "by person":
        _render_people(config, layout, store)
        return
    with st.sidebar:
        gender = _offered_or_first(st.radio(
            "Gender", genders, key="gender", on_change=_turn, format_func=lambda g: (
                f"sent to review by the cleaning ({counts[g][0]})" if g == FLAGGED
                else f"{md(g)} ({counts[g][0]} left of {counts[g][1]})") if g in counts else md(g)),
            genders, "gender")
        is_flagged = gender == FLAGGED
        words = WORDS[is_flagged]
        order = _offered_or_first(st.selectbox(
            "Order", queue.ORDERS, key="order", on_change=_turn, disabled=is_flagged,
            format_func=lambda o: {"suspicion": "suspected label error first", "filename": "file name",
                                   "rule": "cleaning rule", "source": "source site"}.get(o, plain(o))),
            queue.ORDERS, "order")
        per_page = _offered_or_first(st.selectbox("Per page", PAGE_SIZES, index=1, key="per_page",
                                                  on_change=_turn), PAGE_SIZES, "page size")
        show_reviewed = st.toggle("Show reviewed images too", key="show_reviewed", on_change=_turn,
                                  disabled=is_flagged)
        targets = layout.genders() if is_flagged else queue.other_labels(layout, gender)
        review_values.offer(st.session_state, "target", targets)
        review_values.offer(st.session_state, "reason", decisions.REJECT_REASONS)
        target = _offered_or_first(st.selectbox(words["move"], targets, key="target", disabled=len(targets) == 1,
                                                format_func=plain), targets, "label")
        reason = _offered_or_first(st.selectbox("Reject reason", decisions.REJECT_REASONS, key="reason"),
                                   decisions.REJECT_REASONS, "reject reason")
        st.text_input("Reject detail (optional)", key="detail")
        filters = review_widgets.filters(store, is_flagged, _turn)
        _keys_caption()

    shown = (catalog.flagged_page(layout, store, st.session_state.get("page", 0), per_page, filters) if is_flagged
             else catalog.gender_page(layout, store, gender, order, st.session_state.get("page", 0), per_page,
                                      show_reviewed, filters))
    items, page, pages = shown.items, shown.page, shown.pages
    st.session_state["page"] = page
    st.session_state["page_items"] = {i.key: i for i in items}

    left, total = (shown.total, shown.total) if is_flagged else counts[gender]
    if is_flagged:
        st.subheader(f"Sent to review by the automatic cleaning: {left} left")
        st.caption("Held in quarantine until you decide: the same photo under two genders (label-conflict), "
                   "photos unlike the rest of their person (wrong-person), people whose photos look like the "
                   "other gender (mislabelled-person; the by-person view acts on the whole person). Put each "
                   "back under the right gender, or reject it.")
    else:
        st.subheader(f"{md(gender)}: {left} left to review of {total}")
    st.progress((total - left) / total if total else 1.0)
    review_widgets.progress_lines(progress)
    _show_flash()

    selected = len(_selected())
    # The act buttons stay enabled with nothing selected (their callback then says "select images
    # first"): a tick and a key pressed at once reach the button before the rerun that counts the
    # tick, and a disabled button would swallow the key.
    bar = st.container(horizontal=True)
    _button(bar, "act-keep", f"{words['keep']} ({selected})", _act, config, "keep",
            type="primary" if selected else "secondary")  # no primary action with nothing selected
    _button(bar, "act-keep-rest", f"{words['keep']} the rest of the page", _act, config, "keep", True,
            disabled=not items)
    _button(bar, "act-relabel", f"{words['move']} {md(target)} ({selected})", _act, config, "relabel")
    _button(bar, "act-reject", f"Reject: {md(reason)} ({selected})", _act, config, "reject")
    _button(bar, "select-all", "Select page", _set_selection, True)
    _button(bar, "select-none", "Select none", _set_selection, False)
    _button(bar, "undo", "Undo last", _undo, config, False)
    _button(bar, "undo-batch", "Undo batch", _undo, config, True)
    _button(bar, "view-large", "View large", review_widgets.open_selected, [i.key for i in items])
    review_widgets.large(config, layout, store, st.session_state["page_items"])

    if not items:
        st.success("No images." if show_reviewed and not is_flagged else
                   f"Nothing left to review in {'this view' if is_flagged else md(gender)}.")
    _grid(items, _tile)
    nav = st.container(horizontal=True)
    _button(nav, "prev", "◀ Previous", _turn, -1, disabled=page == 0)
    nav.markdown(f"page {page + 1} of {pages} · {shown.total} in this view")
    _button(nav, "next", "Next ▶", _turn, 1, disabled=page >= pages - 1)


def _button(bar: DeltaGenerator, key: str, label: str, on_click: Callable[..., None], *args: object,
            **options: object) -> None:
    """One of the page's buttons with a keyboard shortcut (:data:`KEYS`)."""
    bar.button(label, key=key, on_click=on_click, args=args, shortcut=KEYS[key], **options)


def _keys_caption(*keys: str) -> None:
    st.caption("Keys: " + " · ".join(f"{key.removeprefix('act-').replace('-', ' ')} **{KEYS[key]}**"
                                      for key in keys or KEYS))


def _grid(items: Sequence[queue.QueueItem], tile: Callable[[queue.QueueItem], None]) -> None:
    columns = 6
    for start in range(0, len(items), columns):
        for column, item in zip(st.columns(columns), items[start : start + columns]):
            with column:
                tile(item)


def _facts(item: queue.QueueItem, view: queue.PersonView | None) -> list[str | None]:
    """What a tile says about its image: in a person's row, whether it is marked and where it is."""
    if view is not None:
        marked = view.marked.get(item.key)
        return [f"**marked**: {md(marked)}" if marked else None,
                f"sent to review ({md(item.rule)})" if item.entry_id else md(item.gender)]
    if item.entry_id:  # sent to review: where it was and why
        return [f"was {md(item.gender)}", _md_or_none(item.rule), _md_or_none(item.detail)]
    if item.score is not None:
        return [f"score {item.score:+.3f}", _md_or_none(item.rule)]
    faces = "no face" if item.faces == 0 else f"{item.faces} faces" if item.faces else None
    return [faces or _md_or_none(item.error) or "not scored", _md_or_none(item.rule)]


def _md_or_none(text: str | None) -> str | None:
    return md(text) if text else None


def _offered_or_first(value: T, options: Sequence[T], what: str) -> T:
    """``value`` when the widget offered it, else its first option (and a message saying so):
    a browser may send any value, and Streamlit passes it on."""
    value, ok = review_values.or_first(value, list(options))
    if not ok:
        _flash("error", f"Refused a {what} this page did not offer; showing {md(value)} instead.")
    return value


def _tile(item: queue.QueueItem, view: queue.PersonView | None = None) -> None:
    """The thumbnail (or a one-line warning when the file is gone or unreadable), a tick box to
    select it (not in a person's row, ``view``), and a caption of what is known of the image."""
    try:
        data = _thumbnail(str(item.path), item.path.stat().st_mtime_ns)
    except OSError:
        data = None
    if data is None:
        st.warning(f"{md(item.file_name[:12])}… is gone or unreadable")
    else:
        st.image(data, width="stretch")
    if view is None:
        st.checkbox(md(item.person or item.content_hash[:10]), key=f"sel-{item.key}", help=md(item.path))
    review_widgets.view_button(item)
    facts = [*_facts(item, view), _md_or_none(item.source), "reviewed" if item.reviewed else None]
    st.caption(" · ".join(f for f in facts if f), help=None if view is None else md(item.path))


def _render_people(config: ReviewConfig, layout: DatasetLayout, store: Store) -> None:
    """The by-person view: pick a person (suspect ones first), see their photos in a row with the
    outliers marked, and act on the whole person or on the marked photos."""
    with st.sidebar:
        listed = {s.key: s for s in review_widgets.people(store).people}
        chosen = _offered_or_first(st.selectbox(
            "Person", list(listed), key="person", format_func=lambda k: plain(listed[k].title if k in listed else k),
            help="Suspect people first, then those with the most marked photos."), list(listed), "person")
        _keys_caption("undo", "undo-batch")
    _show_flash()
    view = None if chosen is None else catalog.person_view(layout, store, chosen)
    if view is None:
        st.success("No people: no record names the person a photo shows.")
        return
    site = f" ({md(view.site)})" if view.site else ""
    st.subheader(f"{md(view.name)}{site}: {md(view.gender)}, {len(view.items)} photos, {len(view.marked)} marked")
    if view.suspect:
        st.warning(f"Label suspect: {md(view.suspect)}")
    targets = review_values.offer(st.session_state, "person_target", queue.other_labels(layout, view.gender))
    bar = st.container(horizontal=True)
    target = _offered_or_first(bar.selectbox("Move the whole person to", targets, key="person_target",
                                             label_visibility="collapsed", format_func=plain), targets, "label")
    labels = review_widgets.person_buttons(view, target)
    bar.button(labels.reject, key="person-reject", on_click=_person_act, args=(config, view, "reject"),
               disabled=not view.marked, type="primary" if labels.primary == "reject" else "secondary")
    bar.button(labels.move, key="person-move", on_click=_person_act, args=(config, view, "move"),
               type="primary" if labels.primary == "move" else "secondary")
    bar.button(labels.keep, key="person-keep", on_click=_person_act, args=(config, view, "keep"))
    _button(bar, "undo-batch", "Undo batch", _undo, config, True)
    review_widgets.large(config, layout, store, {i.key: i for i in view.items})
    _grid(view.items, partial(_tile, view=view))


@st.cache_data(max_entries=4000, show_spinner=False)
def _thumbnail(path: str, mtime_ns: int) -> str | None:
    """The thumbnail as a data: URL, so its bytes travel only in the (signed-in) session's own
    messages: Streamlit's /media/ HTTP endpoint, which answers anyone with the URL, never holds it."""
    return review_widgets.thumbnail_url(Path(path))


if __name__ == "__main__":
    render(sys.argv[1:])
