"""The label-review page: ``streamlit run curation/review_app.py -- DATASET_ROOT`` (or ``anfe review``).

Thin on purpose: it reads widgets and calls :mod:`curation.queue` (what to show) and
:mod:`curation.decisions` (what to do), where the logic lives and is
tested without a browser. Keyboard shortcuts use ``st.button(shortcut=...)`` (Streamlit >= 1.5x).
"""

from __future__ import annotations

import base64
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import streamlit as st

from anfe.cache import AnalysisCache, default_cache_path
from anfe.config import DEFAULT_MAX_PIXELS
from anfe.errors import AnfeError, ImageError
from anfe.imaging import thumbnail_jpeg
from anfe.layout import DatasetLayout, open_dataset
from anfe.store import Store, open_store
from curation import decisions, moves, people_queue, queue, review_gate, signin
from curation.review_gate import Identity
from curation.signin import AccessConfig
from curation.review_cli import ReviewConfig, parse_args

#: Keyboard shortcuts (Streamlit reserves C and R).
KEYS = {"keep": "K", "keep_rest": "Shift+K", "relabel": "M", "reject": "X", "undo": "U",
        "undo_batch": "Shift+U", "select_all": "A", "select_none": "N", "prev": "Left", "next": "Right"}
PAGE_SIZES = (6, 12, 24, 48, 96)
#: The "gender" choice that shows the files the automatic cleaning sent to review.
FLAGGED = "sent-to-review"
#: The two views: a queue per gender, or one person's photos at a time.
VIEWS = ("by gender", "by person")


def _fail(exc: Exception) -> None:
    st.error(f"Error: {exc}")
    st.stop()


def _flash(kind: str, text: str) -> None:
    st.session_state.setdefault("flash", []).append((kind, text))


def _report(outcome: decisions.Outcome, verb: str) -> None:
    _flash("success" if outcome.logged else "info", f"{verb}: {outcome.summary()}")
    for note in outcome.notes:
        _flash("info", note)
    for problem in outcome.problems:
        _flash("warning", problem)


def _selected() -> list[queue.QueueItem]:
    items: dict[str, queue.QueueItem] = st.session_state.get("page_items", {})
    return [item for key, item in items.items() if st.session_state.get(f"sel-{key}")]


def _set_selection(value: bool, keys: Sequence[str] | None = None) -> None:
    for key in keys if keys is not None else st.session_state.get("page_items", {}):
        st.session_state[f"sel-{key}"] = value


def _who(access: AccessConfig, root: Path) -> str | None:
    """The reviewer an action is recorded as: the signed-in one, or (no sign-in needed) the name
    typed in the sidebar; None when the session must sign in (again) first."""
    try:
        identity = review_gate.acting_reviewer(access, root)
    except AnfeError as exc:  # the reviewers file became unusable: act for no one
        _flash("error", f"Error: {exc}")
        return None
    if identity is None:
        return None
    return identity.name or st.session_state.get("reviewer") or decisions.default_reviewer()


def _act(config: ReviewConfig, access: AccessConfig, action: str, rest_of_page: bool = False) -> None:
    """Button callback: one decision batch on the selection (or on the unselected rest)."""
    who = _who(access, config.root)
    if who is None:
        return
    chosen = _selected()
    if rest_of_page:
        picked = {i.key for i in chosen}
        chosen = [i for k, i in st.session_state.get("page_items", {}).items() if k not in picked]
    if not chosen:
        _flash("info", "select images first (click their boxes, or A for the whole page)")
        return
    try:
        layout = open_dataset(config.root)
        with open_store(config.db, config.root) as store:
            if action == "relabel":
                outcome = decisions.decide(layout, store, chosen, "relabel", who, new_label=st.session_state["target"])
            elif action == "reject":
                outcome = decisions.decide(layout, store, chosen, "reject", who, reason=st.session_state["reason"],
                                        detail=st.session_state.get("detail", ""))
            else:
                outcome = decisions.decide(layout, store, chosen, "keep", who)
    except AnfeError as exc:
        _flash("error", f"Error: {exc}")
        return
    _set_selection(False, [i.key for i in chosen])
    flagged = any(i.entry_id for i in chosen)
    _report(outcome, {"keep": "Put back" if flagged else "Kept",
                      "relabel": f"{'Put back as' if flagged else 'Moved to'} {st.session_state.get('target')}",
                      "reject": f"Rejected ({st.session_state.get('reason')})"}[action])


def _undo(config: ReviewConfig, access: AccessConfig, whole_batch: bool) -> None:
    who = _who(access, config.root)
    if who is None:
        return
    try:
        layout = open_dataset(config.root)
        with open_store(config.db, config.root) as store:
            outcome = decisions.undo(layout, store, who, whole_batch=whole_batch)
    except AnfeError as exc:
        _flash("error", f"Error: {exc}")
        return
    _report(outcome, "Undid the last batch" if whole_batch else "Undid the last decision")


def _person_act(config: ReviewConfig, access: AccessConfig, view: people_queue.PersonView, action: str) -> None:
    """Button callback of the by-person view: one decision batch on the whole person or their marked photos."""
    who = _who(access, config.root)
    if who is None:
        return
    try:
        layout = open_dataset(config.root)
        with open_store(config.db, config.root) as store:
            if action == "move":
                target = st.session_state["person_target"]
                outcome = people_queue.move_person(layout, store, view, target, who)
                verb = f"Moved {view.name} to {target}"
            elif action == "keep":
                outcome = people_queue.keep_person(layout, store, view, who)
                verb = f"Kept {view.name} as {view.gender}"
            else:
                outcome = people_queue.reject_marked(layout, store, view, who)
                verb = f"Rejected the marked photos of {view.name} (wrong-person)"
    except AnfeError as exc:
        _flash("error", f"Error: {exc}")
        return
    _report(outcome, verb)


def _turn(step: int) -> None:
    st.session_state["page"] = max(0, st.session_state.get("page", 0) + step)


def _first_page() -> None:
    st.session_state["page"] = 0


#: The button each letter shortcut presses (the page's button keys).
_BUTTONS = {"keep": "act-keep", "keep_rest": "act-keep-rest", "relabel": "act-relabel", "reject": "act-reject",
            "undo": "undo", "undo_batch": "undo-batch", "select_all": "select-all", "select_none": "select-none"}
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
    if (inBox(event.target)) setTimeout(() => document.activeElement.blur(), 0);
  }, true);
}
</script>""" % json.dumps({KEYS[name]: key for name, key in _BUTTONS.items()})


def render(argv: Sequence[str]) -> None:
    """Draw the page for the dataset named in ``argv`` (the arguments after ``--``)."""
    st.set_page_config(page_title="ANFE label review", layout="wide")
    st.html(_TICK_THEN_KEY, unsafe_allow_javascript=True)
    try:
        access, rest = signin.split_access_args(argv)
        config = parse_args(rest)
    except AnfeError as exc:
        _fail(exc)
        return
    identity = review_gate.gate(access, config.root)  # the sign-in form only, until signed in
    try:
        layout = open_dataset(config.root)
        moves.check_writable(layout)
        store = open_store(config.db, config.root)
    except AnfeError as exc:
        _fail(exc)
        return
    try:
        _render(config, access, identity, layout, store)
    except AnfeError as exc:
        _fail(exc)
    finally:
        store.close()


def _render(config: ReviewConfig, access: AccessConfig, identity: Identity, layout: DatasetLayout,
            store: Store) -> None:
    if "repaired" not in st.session_state:  # a crash between a logged decision and its move
        st.session_state["repaired"] = decisions.repair(layout, store)
        for message in st.session_state["repaired"]:
            _flash("info", f"Repaired after an interrupted session: {message}")
    review_log = decisions.read_log(store)
    with st.spinner("Reading face embeddings (analysing new images once; cached afterwards)..."):
        with AnalysisCache(config.cache_path or default_cache_path(), config.params.cache_key) as cache:
            records = {r["content_hash"]: r for r in store.find_images(fields=queue.RECORD_FIELDS)}
            flagged = queue.flagged_items(layout, records)
            analyses = queue.load_analyses(layout.image_files() + [i.path for i in flagged], config.params, cache,
                                            st.session_state.get("analyses"), config.workers)
    st.session_state["analyses"] = analyses
    counts = queue.counts(layout, review_log, analyses)
    genders = layout.genders()
    if flagged or st.session_state.get("gender") == FLAGGED:
        genders.append(FLAGGED)
        counts[FLAGGED] = (len(flagged), len(flagged))

    with st.sidebar:
        st.title("Label review")
        st.caption(f"Dataset `{layout.root}`")
        if identity.name is None:  # no sign-in: one local user, who may type a name
            st.text_input("Reviewer", value=decisions.default_reviewer(), key="reviewer",
                          help="Recorded with every decision.")
        has_people = any(queue.record_person(r) for r in records.values())
        view_mode = st.radio("View", VIEWS, key="view", horizontal=True, disabled=not has_people,
                             help="By person: one person's photos in a row, outliers marked "
                                  "(needs records naming each photo's person, as a crawl writes).")
    if has_people and view_mode == "by person":
        _render_people(config, access, layout, review_log, records, analyses)
        return
    with st.sidebar:
        gender = st.radio("Gender", genders, key="gender", on_change=_first_page, format_func=lambda g: (
            f"sent to review by the cleaning ({counts[g][0]})" if g == FLAGGED
            else f"{g} ({counts[g][0]} left of {counts[g][1]})"))
        is_flagged = gender == FLAGGED
        order = st.selectbox("Order", queue.ORDERS, key="order", on_change=_first_page, disabled=is_flagged,
                             format_func={"suspicion": "suspected label error first", "filename": "file name",
                                          "rule": "cleaning rule", "source": "source site"}.get)
        per_page = st.selectbox("Per page", PAGE_SIZES, index=1, key="per_page", on_change=_first_page)
        show_reviewed = st.toggle("Show reviewed images too", key="show_reviewed", on_change=_first_page,
                                  disabled=is_flagged)
        targets = layout.genders() if is_flagged else queue.other_labels(layout, gender)
        st.selectbox("Put back as" if is_flagged else "Move to", targets, key="target", disabled=len(targets) == 1)
        st.selectbox("Reject reason", decisions.REJECT_REASONS, key="reason")
        st.text_input("Reject detail (optional)", key="detail")
        st.caption("Keys: " + " · ".join(f"{k.replace('_', ' ')} **{v}**" for k, v in KEYS.items()))

    if is_flagged:
        shown = flagged
    else:
        shown = queue.build_queue(layout, analyses, review_log, records, gender, order, show_reviewed)
    items, page, pages = queue.page_of(shown, st.session_state.get("page", 0), per_page)
    st.session_state["page"] = page
    st.session_state["page_items"] = {i.key: i for i in items}

    left, total = counts[gender]
    if is_flagged:
        st.subheader(f"Sent to review by the automatic cleaning: {left} left")
        st.caption("Held in quarantine until you decide: the same photo under two genders (label-conflict), "
                   "photos unlike the rest of their person (wrong-person), people whose photos look like the "
                   "other gender (mislabelled-person; the by-person view acts on the whole person). Put each "
                   "back under the right gender, or reject it.")
    else:
        st.subheader(f"{gender}: {left} left to review of {total}")
    st.progress((total - left) / total if total else 1.0)
    for kind, text in st.session_state.pop("flash", []):
        getattr(st, kind)(text)

    selected = len(_selected())
    # The act buttons stay enabled with nothing selected (their callback then says "select images
    # first"): a tick and a key pressed at once reach the button before the rerun that counts the
    # tick, and a disabled button would swallow the key.
    bar = st.container(horizontal=True)
    bar.button(f"{'Put back' if is_flagged else 'Keep'} ({selected})", key="act-keep", on_click=_act, args=(config, access, "keep"),
               shortcut=KEYS["keep"], type="primary")
    bar.button("Put back the rest of the page" if is_flagged else "Keep the rest of the page", key="act-keep-rest", on_click=_act, args=(config, access, "keep", True),
               shortcut=KEYS["keep_rest"], disabled=not items)
    bar.button(f"{'Put back as' if is_flagged else 'Move to'} {st.session_state['target']} ({selected})",
               key="act-relabel", on_click=_act,
               args=(config, access, "relabel"), shortcut=KEYS["relabel"])
    bar.button(f"Reject: {st.session_state['reason']} ({selected})", key="act-reject", on_click=_act,
               args=(config, access, "reject"), shortcut=KEYS["reject"])
    bar.button("Select page", key="select-all", on_click=_set_selection, args=(True,), shortcut=KEYS["select_all"])
    bar.button("Select none", key="select-none", on_click=_set_selection, args=(False,),
               shortcut=KEYS["select_none"])
    bar.button("Undo last", key="undo", on_click=_undo, args=(config, access, False), shortcut=KEYS["undo"])
    bar.button("Undo batch", key="undo-batch", on_click=_undo, args=(config, access, True), shortcut=KEYS["undo_batch"])

    if not items:
        st.success("No images." if show_reviewed and not is_flagged else
                   f"Nothing left to review in {'this view' if is_flagged else gender}.")
    columns = 6
    for start in range(0, len(items), columns):
        for column, item in zip(st.columns(columns), items[start : start + columns]):
            with column:
                _tile(item)

    nav = st.container(horizontal=True)
    nav.button("◀ Previous", key="prev", on_click=_turn, args=(-1,), shortcut=KEYS["prev"], disabled=page == 0)
    nav.markdown(f"page {page + 1} of {pages} · {len(shown)} in this view")
    nav.button("Next ▶", key="next", on_click=_turn, args=(1,), shortcut=KEYS["next"], disabled=page >= pages - 1)


def _picture(item: queue.QueueItem) -> None:
    """The item's thumbnail, or a one-line warning when the file is gone or unreadable."""
    try:
        data = _thumbnail(str(item.path), item.path.stat().st_mtime_ns)
    except OSError:
        data = None
    if data is None:
        st.warning(f"{item.file_name[:12]}… is gone or unreadable")
    else:
        st.image(data, width="stretch")


def _tile(item: queue.QueueItem) -> None:
    _picture(item)
    if item.entry_id:  # sent to review: where it was and why
        facts = [f"was {item.gender}", item.rule, item.detail]
    elif item.score is not None:
        facts = [f"score {item.score:+.3f}", item.rule]
    else:
        facts = ["no face" if item.faces == 0 else f"{item.faces} faces" if item.faces else item.error or "not scored",
                 item.rule]
    facts += [item.source, "reviewed" if item.reviewed else None]
    st.checkbox(item.person or item.content_hash[:10], key=f"sel-{item.key}", help=str(item.path))
    st.caption(" · ".join(f for f in facts if f))


def _render_people(config: ReviewConfig, access: AccessConfig, layout: DatasetLayout, review_log: decisions.ReviewLog,
                   records: dict, analyses: dict) -> None:
    """The by-person view: pick a person (suspect ones first), see their photos in a row with the
    outliers marked, and act on the whole person or on the marked photos."""
    views = people_queue.people_views(layout, analyses, review_log, records)
    by_key = {v.key: v for v in views}
    with st.sidebar:
        chosen = st.selectbox("Person", list(by_key), key="person", format_func=lambda k: by_key[k].title,
                              help="Suspect people first, then those with the most marked photos.")
        st.caption("Keys: " + " · ".join(f"{k.replace('_', ' ')} **{v}**" for k, v in KEYS.items()
                                         if k in ("undo", "undo_batch")))
    for kind, text in st.session_state.pop("flash", []):
        getattr(st, kind)(text)
    if chosen is None:
        st.success("No people: no record names the person a photo shows.")
        return
    view = by_key[chosen]
    site = f" ({view.site})" if view.site else ""
    st.subheader(f"{view.name}{site}: {view.gender}, {len(view.items)} photos, {len(view.marked)} marked")
    if view.suspect:
        st.warning(f"Label suspect: {view.suspect}")
    targets = queue.other_labels(layout, view.gender)
    bar = st.container(horizontal=True)
    bar.selectbox("Move the whole person to", targets, key="person_target", label_visibility="collapsed")
    bar.button(f"Move {view.name} to {st.session_state.get('person_target') or targets[0]}", key="person-move",
               on_click=_person_act, args=(config, access, view, "move"), type="primary" if view.suspect else "secondary")
    bar.button(f"Keep {view.name} as {view.gender}", key="person-keep", on_click=_person_act,
               args=(config, access, view, "keep"))
    bar.button(f"Reject the {len(view.marked)} marked as wrong-person", key="person-reject",
               on_click=_person_act, args=(config, access, view, "reject"), disabled=not view.marked)
    bar.button("Undo batch", key="undo-batch", on_click=_undo, args=(config, access, True), shortcut=KEYS["undo_batch"])
    columns = 6
    for start in range(0, len(view.items), columns):
        for column, item in zip(st.columns(columns), view.items[start : start + columns]):
            with column:
                _person_tile(item, view.marked.get(item.key))


def _person_tile(item: queue.QueueItem, marked: str | None) -> None:
    _picture(item)
    where = f"sent to review ({item.rule})" if item.entry_id else item.gender
    facts = [f"**marked**: {marked}" if marked else None, where, item.source,
             "reviewed" if item.reviewed else None]
    st.caption(" · ".join(f for f in facts if f), help=str(item.path))


@st.cache_data(max_entries=4000, show_spinner=False)
def _thumbnail(path: str, mtime_ns: int) -> str | None:
    """The thumbnail as a data: URL, so its bytes travel only in the (signed-in) session's own
    messages: Streamlit's /media/ HTTP endpoint, which answers anyone with the URL, never holds it."""
    try:
        data = thumbnail_jpeg(Path(path), 256, DEFAULT_MAX_PIXELS)
    except (OSError, ImageError):
        return None
    return "data:image/jpeg;base64," + base64.b64encode(data).decode("ascii")


if __name__ == "__main__":
    render(sys.argv[1:])
