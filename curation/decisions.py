"""Acting on review items: decide (keep, relabel, reject; or a whole person), undo and crash repair.

A decision is appended to the store's decision log first (the audit, and what undo reads), then
carried out as the one :class:`curation.moves.Move` it names, so :func:`repair` can finish it after
a crash. Files in ``images/`` and files sent to review (in quarantine) go through the same code.
"""

from __future__ import annotations

import getpass
import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from anfe.core.crashpoints import crash_point
from anfe.faces import checks
from anfe.core.errors import DatasetError, StoreVersionError
from anfe.core.layout import DatasetLayout, safe_label
from anfe.core.store import Store, now_iso

from . import moves
from .moves import STATUS_ACTIVE, STATUS_QUARANTINED, Move, ReadOnlyDatasetError, VanishedFileError
from .views import PersonView, QueueItem

log = logging.getLogger(__name__)

#: Version of the decision documents written here; a log holding newer ones is refused.
REVIEW_SCHEMA_VERSION = 1
#: ``kind`` of the decision documents written here (other writers may share the log).
DECISION_KIND = "review"
ACTIONS = ("keep", "relabel", "reject")
#: Reasons offered for "reject" (any safe folder name is accepted): the checks' own names, so a
#: reviewer's reason means what the cleaning's does, and two only a person can judge.
REJECT_REASONS = (*(c.name for c in (checks.WRONG_PERSON, checks.NO_FACE, checks.MANY_FACES, checks.TOO_SMALL,
                                     checks.UNDER_AGE, checks.NEAR_DUPLICATE)), "not-a-photo", "other")


class DecisionLogVersionError(StoreVersionError):
    """The decision log holds decisions written by a newer version of this project."""


def default_reviewer() -> str:
    """The OS user name (who a decision is recorded as, unless the reviewer types a name)."""
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return "reviewer"


# -- the decision log ----------------------------------------------------------------------------
def _key(doc: dict) -> str:
    """The item a decision is about (a file sent to review has its own; else the content hash)."""
    return doc.get("key") or doc.get("quarantine_id") or doc["content_hash"]


@dataclass(frozen=True)
class ReviewLog:
    """The review decisions of a store, oldest first, folded per content hash and per item."""

    decisions: list[dict]
    last_by_hash: dict[str, dict]
    last_by_key: dict[str, dict]
    undone: frozenset[str]

    def reviewed(self, content_hash: str) -> bool:
        """True when the image's latest review decision stands (not undone, not an undo)."""
        last = self.last_by_hash.get(content_hash)
        return last is not None and last["action"] != "undo"

    def undoable(self, who: str) -> list[dict]:
        """``who``'s decisions that can still be undone (nobody decided on the item since), newest first."""
        return [
            d for d in reversed(self.decisions)
            if d["who"] == who and d["action"] != "undo" and d["id"] not in self.undone
            and self.last_by_key[_key(d)]["id"] == d["id"]
        ]


def read_log(store: Store) -> ReviewLog:
    """The review decisions in ``store``; raises :class:`DecisionLogVersionError` if any was
    written by a newer version (nothing is changed then)."""
    decisions = [doc for doc in store.decisions() if doc.get("kind") == DECISION_KIND]
    for doc in decisions:
        if (version := int(doc.get("schema_version", 1))) > REVIEW_SCHEMA_VERSION:
            raise DecisionLogVersionError(
                f"the decision log in {store.uri} holds decision #{doc.get('seq')} written by a newer "
                f"version (review schema {version}, this one reads {REVIEW_SCHEMA_VERSION}): nothing was "
                f"changed; upgrade with `pip install -U anfe-faces`"
            )
    undone = frozenset(d["undoes"] for d in decisions if d["action"] == "undo" and d.get("undoes"))
    by_hash, by_key = {d["content_hash"]: d for d in decisions}, {_key(d): d for d in decisions}
    return ReviewLog(decisions, by_hash, by_key, undone)


# -- where a file is -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Place:
    """Where an image file is now (relative to the root), its label, and for a file in
    quarantine the journal line that put it there."""

    path: str
    label: str
    entry: Move | None = None


def locate(layout: DatasetLayout, item: QueueItem, live: dict[str, Move]) -> Place | str:
    """The place of ``item`` now, or why it cannot be decided (a one-line problem)."""
    if item.entry_id:
        entry = next((m for m in live.values() if m.id == item.entry_id), None)
        if entry is None or not (layout.root / entry.dst).is_file():
            return f"{item.file_name} is no longer in quarantine (decided meanwhile?): nothing recorded"
        return Place(entry.dst, entry.gender or item.gender, entry)
    for label in layout.genders():
        if (layout.images / label / item.file_name).is_file():
            return Place(f"images/{label}/{item.file_name}", label)
    for entry in (m for m in live.values() if m.in_quarantine and m.content_hash == item.content_hash):
        if (layout.root / entry.dst).is_file():
            return f"{item.file_name} is in quarantine/{entry.reason} now (rejected meanwhile): not changed"
    return (f"{item.file_name} is gone from {item.gender} (moved or deleted since the page was loaded): "
            f"nothing recorded")


# -- decisions -----------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What an action did: the batch id, decisions logged, and anything that needs a person."""

    batch: str = field(default_factory=lambda: moves.new_id()[:12])
    logged: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the page: counts per action, and whether something needs a look."""
        actions = Counter(d["action"] for d in self.logged)
        done = ", ".join(f"{n} {a}" for a, n in sorted(actions.items())) or "nothing done"
        return done + (f"; {len(self.problems)} problem(s)" if self.problems else "")


def _decision(who: str, batch: str, before: Move | None, src: str, dst: str, **fields: Any) -> dict:
    """A decision document: the move it makes (``from``/``to``, ``fields``: ``status``, ``reason``...)
    and what the file was before (``prev_*`` from ``before``: what an undo restores)."""
    return {
        "kind": DECISION_KIND, "schema_version": REVIEW_SCHEMA_VERSION, "id": moves.new_id(),
        "move": moves.new_id(), "batch": batch, "who": who, "when": now_iso(), "from": src, "to": dst,
        "original": before.original if before else "", "prev_detail": before.detail if before else "",
        "prev_status": before.status if before else STATUS_ACTIVE,
        "prev_reason": before.reason if before else None,
        "undoes": None, "undone_action": None, **fields,
    }


def _plan(layout: DatasetLayout, item: QueueItem, place: Place, action: str, who: str, outcome: Outcome,
          new_label: str | None, reason: str | None, detail: str) -> dict | None:
    """The decision document for one item, or None (with a problem noted) when it cannot be done."""
    old, entry, name = place.label, place.entry, item.file_name
    new = None if action == "reject" else old if action == "keep" else new_label
    extra: dict[str, Any] = {}
    if action == "reject":
        dst = place.path if entry else f"quarantine/{reason}/{safe_label(old)}/{name}"
        status, why, text = STATUS_QUARANTINED, reason, detail
    else:
        dst, status, why, text = f"images/{new}/{name}", STATUS_ACTIVE, None, ""
        if dst != place.path and (layout.root / dst).exists():
            if entry is None:
                outcome.problems.append(f"{name} exists under both {Path(place.path).parent} and "
                                        f"images/{new}: left both untouched; `anfe clean` reports such "
                                        "label conflicts")
                return None
            outcome.notes.append(f"{name}: the same photo is already in images/{new}; "
                                 "this copy stays in quarantine")
            dst, status, why, text = place.path, STATUS_QUARANTINED, entry.reason, entry.detail
            extra["update_store"] = False  # the record is the kept twin's (same content hash)
    return _decision(who, outcome.batch, entry, place.path, dst, key=item.key, content_hash=item.content_hash,
                     file_name=name, action=action, old_label=old, new_label=new, status=status, reason=why,
                     detail=text, **extra)


def _apply(layout: DatasetLayout, store: Store, doc: dict) -> None:
    """Carry out one logged decision as one journalled move (and its store record)."""
    src, dst = doc["from"], doc["to"]
    in_images = dst.startswith("images/")
    review = {"review_decision": doc["id"], "reviewed_by": doc["who"], "reviewed_at": doc["when"],
              "review_action": None if doc["action"] == "undo" else doc["action"]}
    if in_images and src != dst:
        review["label_source"] = "review"
    # an undo's new label is where the file was before the decision, in quarantine too
    new_label = in_images or (doc["action"] == "undo" and doc["new_label"])
    moves.apply(layout, Move(
        id=doc["move"], action=doc["action"], src=src, dst=dst, content_hash=doc["content_hash"],
        gender=doc["new_label"] if new_label else doc["old_label"],
        original=doc.get("original") or (src if not in_images and src.startswith("images/") else dst),
        reason=doc.get("reason") or "", detail=doc.get("detail") or "", status=doc["status"],
        actor=f"review:{doc['who']}", time=doc["when"], update_store=doc.get("update_store", True),
        extra=review,
    ), store, unique=not in_images and src != dst)


def _log_and_apply(layout: DatasetLayout, store: Store, doc: dict, outcome: Outcome) -> None:
    """The decision goes into the log, then its move is made; a failed move is a problem, not an error."""
    doc["seq"] = store.append_decision(doc)
    crash_point("review.decision")
    outcome.logged.append(doc)
    try:
        _apply(layout, store, doc)
    except DatasetError as exc:
        why = (" (the decision is in the log)" if isinstance(exc, VanishedFileError)
               else "; the decision is in the log and the move is finished at the next start"
               if isinstance(exc, ReadOnlyDatasetError) else "")
        outcome.problems.append(f"{doc['file_name']}: {exc}{why}")


def _reviewer(layout: DatasetLayout, who: str) -> str:
    """``who``, or the OS user when blank; refuses a read-only dataset before anything is logged."""
    moves.check_writable(layout)
    return who.strip() or default_reviewer()


def decide(
    layout: DatasetLayout, store: Store, items: Iterable[QueueItem], action: str, who: str, *,
    new_label: str | None = None, reason: str | None = None, detail: str = "",
) -> Outcome:
    """Apply ``action`` (keep, relabel to ``new_label``, reject for ``reason``) to ``items`` as one
    batch: per image, log the decision, then move the file. A vanished image is reported and not
    logged; one moved by another reviewer meanwhile is decided from where it is now; one rejected
    meanwhile is left alone. A file sent to review is put back under a label or stays in quarantine."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    if action == "relabel":
        if not new_label:
            raise ValueError("relabel needs the new label")
        new_label = safe_label(new_label)
    reason = safe_label(reason or "") if action == "reject" else reason
    who = _reviewer(layout, who)
    read_log(store)  # refuses a log from a newer version before anything is written
    outcome = Outcome()
    live = moves.live(layout)
    for item in items:
        place = locate(layout, item, live)
        if isinstance(place, str):
            outcome.problems.append(place)
            continue
        if place.entry is None and place.label != item.gender:
            outcome.notes.append(f"{item.file_name} had been moved to {place.label} meanwhile; "
                                 "decided from there")
        doc = _plan(layout, item, place, action, who, outcome, new_label, reason, detail)
        if doc is not None:
            _log_and_apply(layout, store, doc, outcome)
    return outcome


# -- by person: one batch on a whole person (undone together) -----------------------------------
def move_person(layout: DatasetLayout, store: Store, view: PersonView, new_label: str, who: str) -> Outcome:
    """Every photo of the person to ``new_label`` (photos sent to review are put back there): one batch."""
    chosen = [i for i in view.items if i.entry_id or i.gender != new_label]
    return decide(layout, store, chosen, "relabel", who, new_label=new_label)


def keep_person(layout: DatasetLayout, store: Store, view: PersonView, who: str) -> Outcome:
    """Every photo of the person stays under their label (those sent to review are put back): one batch."""
    return decide(layout, store, view.items, "keep", who)


def reject_marked(layout: DatasetLayout, store: Store, view: PersonView, who: str) -> Outcome:
    """The marked photos out as ``wrong-person``: one batch."""
    return decide(layout, store, [i for i in view.items if i.key in view.marked], "reject", who,
                  reason=checks.WRONG_PERSON.name, detail=f"not {view.name}")


# -- undo ----------------------------------------------------------------------------------------
def undo(layout: DatasetLayout, store: Store, who: str, whole_batch: bool = False) -> Outcome:
    """Undo ``who``'s last decision (or all of their last batch): log an ``undo`` decision per
    image (the inverse move), then move the file back. An image changed since is left alone."""
    who = _reviewer(layout, who)
    candidates = read_log(store).undoable(who)
    outcome = Outcome()
    if not candidates:
        outcome.notes.append(f"nothing to undo for {who}")
        return outcome
    batch = candidates[0]["batch"]
    live = {m.id: m for m in moves.live(layout).values()}  # the moves whose file is still where they put it
    for d in [d for d in candidates if d["batch"] == batch] if whole_batch else candidates[:1]:
        done = live.get(d.get("move") or "")
        if done is None:
            outcome.problems.append(f"{d['file_name']} is no longer where the decision put it ({d['to']}): "
                                    "not undone")
            continue
        doc = _decision(
            who, outcome.batch, done, done.dst, d["from"], key=_key(d), content_hash=d["content_hash"],
            file_name=d["file_name"], action="undo", old_label=d["new_label"] or d["old_label"],
            new_label=d["old_label"], status=d["prev_status"], reason=d["prev_reason"],
            detail=d.get("prev_detail") or "", original=d.get("original") or done.original,
            prev_status=d["status"], prev_reason=d["reason"], undoes=d["id"], undone_action=d["action"],
            update_store=d.get("update_store", True))
        _log_and_apply(layout, store, doc, outcome)
    return outcome


# -- crash repair --------------------------------------------------------------------------------
def repair(layout: DatasetLayout, store: Store) -> list[str]:
    """Finish what a crash interrupted: every journalled move (:func:`curation.moves.replay`), then
    every item's latest decision whose move never reached the journal. One message per repair."""
    messages = [f"quarantine: {m}" for m in moves.replay(layout, store)]
    applied = moves.applied_ids(moves.read(layout))
    for doc in read_log(store).last_by_key.values():
        if not doc.get("move") or doc["move"] in applied:
            continue
        try:
            _apply(layout, store, doc)
        except (DatasetError, OSError) as exc:
            messages.append(f"could not finish decision #{doc.get('seq')} on {doc['file_name']}: {exc}")
            continue
        messages.append(f"finished decision #{doc.get('seq')} ({doc['action']} {doc['file_name']} "
                        f"by {doc['who']}): {doc['from']} -> {doc['to']}")
    for message in messages:
        log.warning("review repair: %s", message)
    return messages


__all__ = [
    "ACTIONS", "DecisionLogVersionError", "Outcome", "REJECT_REASONS", "REVIEW_SCHEMA_VERSION",
    "ReviewLog", "decide", "default_reviewer", "keep_person", "locate", "move_person", "read_log",
    "reject_marked", "repair", "undo",
]
