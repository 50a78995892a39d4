"""Acting on review items: decide (keep, relabel, reject), undo and crash repair.

Every decision is appended to the store's decision log *before* its file moves; the log is the
truth. Moves are idempotent (a file already where a decision puts it is not an error), so two
reviewers working at once lose nothing, and :func:`repair` finishes, at the next start, any
decision logged just before a crash. Rejects go through :mod:`curation.quarantine`.
"""

from __future__ import annotations

import getpass
import logging
import os
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from anfe.errors import DatasetError, StoreVersionError
from anfe.layout import DatasetLayout, safe_label
from anfe.store import Store, now_iso

from . import quarantine
from .quarantine import QuarantineEntry, ReadOnlyDatasetError, VanishedFileError

if TYPE_CHECKING:
    from .queue import QueueItem

log = logging.getLogger(__name__)

#: Version of the decision documents written here; a log holding newer ones is refused.
REVIEW_SCHEMA_VERSION = 1
#: ``kind`` of the decision documents written here (other writers may share the log).
DECISION_KIND = "review"
ACTIONS = ("keep", "relabel", "reject")
#: Reasons offered for "reject" (any safe folder name is accepted).
REJECT_REASONS = ("wrong-person", "no-face", "several-faces", "not-a-photo", "too-small", "minor", "duplicate", "other")


class DecisionLogVersionError(StoreVersionError):
    """The decision log holds decisions written by a newer version of this project."""



def default_reviewer() -> str:
    """The OS user name (who a decision is recorded as, unless the reviewer types a name)."""
    try:
        return getpass.getuser()
    except Exception:  # no user database entry (containers)
        return "reviewer"


# -- the decision log ----------------------------------------------------------------------------
@dataclass(frozen=True)
class ReviewLog:
    """The review decisions of a store, oldest first, folded per content hash."""

    decisions: list[dict]
    last_by_hash: dict[str, dict]
    undone: frozenset[str]

    def reviewed(self, content_hash: str) -> bool:
        """True when the image's latest review decision stands (not undone, not an undo)."""
        last = self.last_by_hash.get(content_hash)
        return last is not None and last["action"] != "undo"

    @property
    def decided_entries(self) -> set[str]:
        """Manifest ids of files sent to review on which a decision stands."""
        return {
            d["quarantine_id"] for d in self.decisions
            if d.get("flagged") and d["action"] != "undo" and d["id"] not in self.undone
        }

    def undoable(self, who: str) -> list[dict]:
        """``who``'s decisions that can still be undone, newest first."""
        return [
            d for d in reversed(self.decisions)
            if d["who"] == who and d["action"] != "undo" and d["id"] not in self.undone
            and (d.get("flagged") or self.last_by_hash.get(d["content_hash"], {}).get("id") == d["id"])
        ]


def read_log(store: Store) -> ReviewLog:
    """The review decisions in ``store``; raises :class:`DecisionLogVersionError` if any was
    written by a newer version (nothing is changed then)."""
    decisions = []
    for doc in store.decisions():
        if doc.get("kind") != DECISION_KIND:
            continue
        version = int(doc.get("schema_version", 1))
        if version > REVIEW_SCHEMA_VERSION:
            raise DecisionLogVersionError(
                f"the decision log in {store.uri} holds decision #{doc.get('seq')} written by a newer "
                f"version (review schema {version}, this one reads {REVIEW_SCHEMA_VERSION}): nothing was "
                f"changed; upgrade with `pip install -U anfe-faces`"
            )
        decisions.append(doc)
    last = {d["content_hash"]: d for d in decisions}
    undone = frozenset(d["undoes"] for d in decisions if d["action"] == "undo" and d.get("undoes"))
    return ReviewLog(decisions, last, undone)


# -- where a file is -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Place:
    """Where an image file is now: ``images/<label>/`` or ``quarantine/<label>/`` (label = reason)."""

    area: str
    label: str
    path: Path
    entry: QuarantineEntry | None = None


def _quarantine_index(layout: DatasetLayout) -> dict[str, QuarantineEntry]:
    return {e.content_hash: e for e in quarantine.list_quarantined(layout) if e.content_hash}


def locate(layout: DatasetLayout, file_name: str, content_hash: str,
           quarantined: Mapping[str, QuarantineEntry] | None = None) -> Place | None:
    """The place of the image now, or None when it is nowhere in the dataset (vanished)."""
    for label in layout.genders():
        path = layout.images / label / file_name
        if path.is_file():
            return Place("images", label, path)
    entries = quarantined if quarantined is not None else _quarantine_index(layout)
    entry = entries.get(content_hash)
    if entry is not None and entry.quarantined_path(layout).is_file():
        return Place("quarantine", entry.reason, entry.quarantined_path(layout), entry)
    return None


def _relative(layout: DatasetLayout, path: Path) -> str:
    return Path(os.path.abspath(path)).relative_to(Path(os.path.abspath(layout.root))).as_posix()


def _move(src: Path, dst: Path) -> bool:
    """Move ``src`` to ``dst`` without ever replacing a file; True if it moved now, False if it
    was already done (by another reviewer, or before a crash). Raises :class:`VanishedFileError`
    when the file is at neither place."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except FileExistsError:
        if not src.exists():
            return False
        if os.path.samefile(src, dst):  # a link made before a crash: drop the extra name
            os.unlink(src)
            return True
        raise DatasetError(
            f"{dst.name} exists under both {src.parent} and {dst.parent}: left both untouched; "
            f"`anfe clean` reports such label conflicts"
        ) from None
    except FileNotFoundError:
        if dst.exists():
            return False
        raise VanishedFileError(f"{src} is gone (moved or deleted meanwhile): nothing moved") from None
    except PermissionError as exc:
        raise ReadOnlyDatasetError(
            f"cannot move {src.name} into {dst.parent}: {exc.strerror}; make the dataset writable"
        ) from exc
    except OSError:  # no hard links here: check, then rename
        if dst.exists():
            raise DatasetError(f"{dst} already exists: {src} left untouched") from None
        os.replace(src, dst)
        return True
    try:
        os.unlink(src)
    except FileNotFoundError:  # another reviewer finished the same move meanwhile
        pass
    return True


# -- decisions -----------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What an action did: the batch id, decisions logged, and anything that needs a person."""

    batch: str
    logged: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for the page: counts per action, and whether something needs a look."""
        actions: dict[str, int] = {}
        for d in self.logged:
            actions[d["action"]] = actions.get(d["action"], 0) + 1
        done = ", ".join(f"{n} {a}" for a, n in sorted(actions.items())) or "nothing done"
        return done + ("" if not self.problems else f"; {len(self.problems)} problem(s)")


def _decision(action: str, who: str, batch: str, digest: str, name: str, old: str | None,
              new: str | None, src: str, dst: str, reason: str | None = None, detail: str = "",
              undoes: str | None = None, undone_action: str | None = None) -> dict:
    return {
        "kind": DECISION_KIND, "schema_version": REVIEW_SCHEMA_VERSION, "id": uuid.uuid4().hex,
        "batch": batch, "who": who, "when": now_iso(), "content_hash": digest, "file_name": name,
        "action": action, "old_label": old, "new_label": new, "from": src, "to": dst,
        "reason": reason, "detail": detail, "undoes": undoes, "undone_action": undone_action,
    }


def decide(
    layout: DatasetLayout,
    store: Store,
    items: Iterable[QueueItem],
    action: str,
    who: str,
    *,
    new_label: str | None = None,
    reason: str | None = None,
    detail: str = "",
) -> Outcome:
    """Apply ``action`` (keep, relabel to ``new_label``, reject for ``reason``) to ``items`` as one
    batch: per image, log the decision, then move the file.

    An image that vanished is reported and nothing is logged for it; one that another reviewer
    moved meanwhile is decided from where it is now; one in quarantine is left alone.
    """
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}: use one of {', '.join(ACTIONS)}")
    if action == "relabel":
        if not new_label:
            raise ValueError("relabel needs the new label")
        new_label = safe_label(new_label)
    if action == "reject":
        reason = safe_label(reason or "")
    who = who.strip() or default_reviewer()
    quarantine.check_writable(layout)
    read_log(store)  # refuses a log from a newer version before anything is written
    outcome = Outcome(uuid.uuid4().hex[:12])
    quarantined = _quarantine_index(layout)
    live = {e.id: e for e in quarantine.list_quarantined(layout)}
    for item in items:
        if item.entry_id:
            _decide_flagged(layout, store, item, action, who, new_label, reason, detail, live.get(item.entry_id), outcome)
            continue
        place = locate(layout, item.file_name, item.content_hash, quarantined)
        if place is None:
            outcome.problems.append(
                f"{item.file_name} is gone from {item.gender} (moved or deleted since the page was loaded): "
                f"nothing recorded"
            )
            continue
        if place.area == "quarantine":
            outcome.problems.append(
                f"{item.file_name} is in quarantine/{place.label} now (rejected meanwhile): not changed"
            )
            continue
        old = place.label
        if old != item.gender:
            outcome.notes.append(f"{item.file_name} had been moved to {old} meanwhile; decided from there")
        src = _relative(layout, place.path)
        if action == "keep":
            doc = _decision("keep", who, outcome.batch, item.content_hash, item.file_name, old, old, src, src)
        elif action == "relabel":
            dst = _relative(layout, layout.gender_dir(new_label) / item.file_name)
            doc = _decision("relabel", who, outcome.batch, item.content_hash, item.file_name, old, new_label, src, dst)
        else:
            dst = _relative(layout, layout.quarantine_dir(reason) / safe_label(old))
            doc = _decision("reject", who, outcome.batch, item.content_hash, item.file_name, old, None, src, dst,
                            reason=reason, detail=detail)
        doc["seq"] = store.append_decision(doc)
        outcome.logged.append(doc)
        _apply_safely(layout, store, doc, outcome)
    return outcome


def _decide_flagged(layout: DatasetLayout, store: Store, item: QueueItem, action: str, who: str,
                    new_label: str | None, reason: str | None, detail: str, entry: QuarantineEntry | None,
                    outcome: Outcome) -> None:
    """A file sent to review: keep (put back under its label), relabel (put back under
    ``new_label``) or reject (it stays in quarantine, now with the reviewer's reason)."""
    if entry is None or not entry.quarantined_path(layout).is_file():
        outcome.problems.append(f"{item.file_name} is no longer in quarantine (decided meanwhile?): nothing recorded")
        return
    old = entry.gender or item.gender
    src = entry.quarantined
    if action == "reject":
        doc = _decision("reject", who, outcome.batch, entry.content_hash, item.file_name, old, None, src, src,
                        reason=reason, detail=detail)
    else:
        label = old if action == "keep" else new_label
        dst = _relative(layout, layout.gender_dir(label) / item.file_name)
        doc = _decision(action, who, outcome.batch, entry.content_hash, item.file_name, old, label, src, dst)
    doc.update(flagged=True, quarantine_id=entry.id, flag_reason=entry.reason)
    doc["seq"] = store.append_decision(doc)
    outcome.logged.append(doc)
    _apply_safely(layout, store, doc, outcome)


def _apply_flagged(layout: DatasetLayout, store: Store, doc: dict) -> str | None:
    """Files and store for a decision on a file sent to review (idempotent)."""
    live = {e.id: e for e in quarantine.list_quarantined(layout)}
    digest, name = doc["content_hash"], doc["file_name"]
    undo = doc["action"] == "undo"
    action = doc["undone_action"] if undo else doc["action"]
    if action == "reject":  # the file stays in quarantine either way; only the record changes
        in_images = any((layout.images / g / name).is_file() for g in layout.genders())
        if not in_images:
            store.upsert_image({
                "content_hash": digest, **_review_fields(doc),
                "status": quarantine.STATUS_REVIEW if undo else quarantine.STATUS_QUARANTINED,
                "quarantine_reason": doc["flag_reason"] if undo else doc["reason"],
            })
        return None
    entry = live.get(doc["quarantine_id"])
    if undo:  # back to quarantine, for review again
        src = layout.root / doc["from"]
        if entry is not None or not src.is_file():
            return None  # the restore had not moved anything (a twin was there), or it is gone
        quarantine.quarantine_file(layout, src, doc["flag_reason"], doc.get("detail") or "", store,
                                   actor=f"review:{doc['who']}", gender=doc["new_label"], content_hash=digest,
                                   status=quarantine.STATUS_REVIEW)
        return None
    target = layout.root / doc["to"]
    if entry is not None:
        if target.exists():
            return f"{name}: the same photo is already in images/{doc['new_label']}; this copy stays in quarantine"
        restored = quarantine.restore_file(layout, entry, store, actor=f"review:{doc['who']}")
    else:
        restored = layout.gender_dir(doc["old_label"]) / name
    if restored != target and restored.exists():
        _move(restored, target)
    store.upsert_image({"content_hash": digest, **_review_fields(doc), "gender": doc["new_label"],
                        "path": doc["to"], "status": quarantine.STATUS_ACTIVE, "label_source": "review"})
    return None


def _apply_safely(layout: DatasetLayout, store: Store, doc: dict, outcome: Outcome) -> None:
    try:
        note = _apply_flagged(layout, store, doc) if doc.get("flagged") else _apply(layout, store, doc)
        if note:
            outcome.notes.append(note)
    except VanishedFileError as exc:
        outcome.problems.append(f"{doc['file_name']}: {exc} (the decision is in the log)")
    except ReadOnlyDatasetError as exc:
        outcome.problems.append(
            f"{doc['file_name']}: {exc}; the decision is in the log and the move is finished at the next start"
        )
    except DatasetError as exc:
        outcome.problems.append(f"{doc['file_name']}: {exc}")


def _review_fields(doc: dict) -> dict:
    return {"review_decision": doc["id"], "reviewed_by": doc["who"], "reviewed_at": doc["when"],
            "review_action": doc["action"] if doc["action"] != "undo" else None}


def _apply(layout: DatasetLayout, store: Store, doc: dict) -> None:
    """Make the files and the store match one logged decision (idempotent)."""
    action = doc["undone_action"] if doc["action"] == "undo" else doc["action"]
    undo = doc["action"] == "undo"
    digest, name = doc["content_hash"], doc["file_name"]
    record: dict[str, Any] = {"content_hash": digest, **_review_fields(doc)}
    if action == "keep":
        current = store.get_image(digest) or {}
        if not undo and current.get("status") == quarantine.STATUS_REVIEW:
            record["status"] = quarantine.STATUS_ACTIVE  # a flagged image, now checked by a person
    elif action == "relabel":
        src, dst = layout.root / doc["from"], layout.root / doc["to"]
        if src != dst:
            _move(src, dst)
        record.update(gender=doc["new_label"], path=doc["to"], status=quarantine.STATUS_ACTIVE,
                      label_source="review")
    elif not undo:  # reject
        if digest in _quarantine_index(layout):
            return
        quarantine.quarantine_file(
            layout, layout.root / doc["from"], doc["reason"], doc.get("detail") or "", store,
            actor=f"review:{doc['who']}", gender=doc["old_label"], content_hash=digest,
            extra={"review_decision": doc["id"], "reviewed_by": doc["who"], "reviewed_at": doc["when"]},
        )
        return
    else:  # undo of a reject: restore the file
        entry = _quarantine_index(layout).get(digest)
        if entry is None:
            if (layout.root / doc["to"]).is_file():
                return
            raise VanishedFileError(f"{name} is no longer in quarantine: nothing to restore")
        quarantine.restore_file(layout, entry, store, actor=f"review:{doc['who']}")
        record.update(gender=doc["new_label"], path=doc["to"], status=quarantine.STATUS_ACTIVE)
    store.upsert_image(record)


# -- undo ----------------------------------------------------------------------------------------
def undo(layout: DatasetLayout, store: Store, who: str, whole_batch: bool = False) -> Outcome:
    """Undo ``who``'s last decision (or all of their last batch): log an ``undo`` decision per
    image, then move the file back. An image changed since by someone else is left alone."""
    who = who.strip() or default_reviewer()
    quarantine.check_writable(layout)
    review_log = read_log(store)
    candidates = review_log.undoable(who)
    outcome = Outcome(uuid.uuid4().hex[:12])
    if not candidates:
        outcome.notes.append(f"nothing to undo for {who}")
        return outcome
    targets = [d for d in candidates if d["batch"] == candidates[0]["batch"]] if whole_batch else candidates[:1]
    quarantined = _quarantine_index(layout)
    live = {e.id for e in quarantine.list_quarantined(layout)}
    for d in targets:
        if d.get("flagged"):
            moved_away = d["action"] != "reject" and d["quarantine_id"] not in live and not (layout.root / d["to"]).is_file()
            if moved_away:
                outcome.problems.append(f"{d['file_name']} is no longer in {d['to']}: not undone")
                continue
            doc = _decision("undo", who, outcome.batch, d["content_hash"], d["file_name"], d["new_label"],
                            d["old_label"], d["to"], d["from"], reason=d.get("reason"), undoes=d["id"],
                            undone_action=d["action"])
            doc.update(flagged=True, quarantine_id=d["quarantine_id"], flag_reason=d["flag_reason"])
            doc["seq"] = store.append_decision(doc)
            outcome.logged.append(doc)
            _apply_safely(layout, store, doc, outcome)
            continue
        place = locate(layout, d["file_name"], d["content_hash"], quarantined)
        expected_area = "quarantine" if d["action"] == "reject" else "images"
        expected_label = d["reason"] if d["action"] == "reject" else d["new_label"]
        if place is None or (place.area, place.label) != (expected_area, expected_label):
            where = "nowhere" if place is None else f"{place.area}/{place.label}"
            outcome.problems.append(f"{d['file_name']} is {where} now, not where the decision put it: not undone")
            continue
        if d["action"] == "reject":
            src, dst = _relative(layout, place.path), d["from"]
            old, new = None, d["old_label"]
        else:
            src, dst = d["to"], d["from"]
            old, new = d["new_label"], d["old_label"]
        doc = _decision("undo", who, outcome.batch, d["content_hash"], d["file_name"], old, new, src, dst,
                        reason=d.get("reason"), undoes=d["id"], undone_action=d["action"])
        if place.entry is not None:
            doc["quarantine_id"] = place.entry.id
        doc["seq"] = store.append_decision(doc)
        outcome.logged.append(doc)
        _apply_safely(layout, store, doc, outcome)
    return outcome


# -- crash repair --------------------------------------------------------------------------------
def repair(layout: DatasetLayout, store: Store) -> list[str]:
    """Finish every decision that was logged but whose file did not move (a crash between the
    two): for each image, its latest decision is applied when the file is still at the old place.
    Also finishes interrupted quarantine moves. Returns one message per repair."""
    messages = [f"quarantine: {m}" for m in quarantine.repair(layout, store)]
    review_log = read_log(store)
    if not review_log.last_by_hash:
        return messages
    quarantined = _quarantine_index(layout)
    applied_rejects = _applied_rejects(layout)
    records = {r["content_hash"]: r for r in store.find_images()}
    for digest, doc in review_log.last_by_hash.items():
        if doc.get("flagged"):
            if _flagged_pending(layout, doc):
                try:
                    _apply_flagged(layout, store, doc)
                except (DatasetError, OSError) as exc:
                    messages.append(f"could not finish decision #{doc.get('seq')} on {doc['file_name']}: {exc}")
                    continue
                messages.append(f"finished decision #{doc.get('seq')} ({doc['action']} {doc['file_name']} "
                                f"by {doc['who']}): {doc['from']} -> {doc['to']}")
            continue
        action = doc["undone_action"] if doc["action"] == "undo" else doc["action"]
        src, dst = layout.root / doc["from"], layout.root / doc["to"]
        pending = False
        if action == "relabel":
            pending = src != dst and src.exists()
        elif action == "reject" and doc["action"] == "reject":
            # not if it was quarantined once and restored since (by `anfe restore`)
            pending = src.is_file() and digest not in quarantined and doc["id"] not in applied_rejects
        elif action == "reject":  # undo of a reject: only the quarantine it undid, not a later one
            entry = quarantined.get(digest)
            pending = entry is not None and entry.id == doc.get("quarantine_id") and not dst.exists()
        elif action == "keep":
            pending = (records.get(digest) or {}).get("review_decision") != doc["id"]
        if not pending:
            continue
        try:
            _apply(layout, store, doc)
        except (DatasetError, OSError) as exc:
            messages.append(f"could not finish decision #{doc.get('seq')} on {doc['file_name']}: {exc}")
            continue
        if action != "keep":
            messages.append(f"finished decision #{doc.get('seq')} ({doc['action']} {doc['file_name']} "
                            f"by {doc['who']}): {doc['from']} -> {doc['to']}")
    for message in messages:
        log.warning("review repair: %s", message)
    return messages


def _flagged_pending(layout: DatasetLayout, doc: dict) -> bool:
    """True when a logged decision on a file sent to review did not (fully) move its file."""
    action = doc["undone_action"] if doc["action"] == "undo" else doc["action"]
    if action == "reject":
        return False  # no move involved
    live = {e.id for e in quarantine.list_quarantined(layout)}
    if doc["action"] == "undo":
        return doc["quarantine_id"] not in live and (layout.root / doc["from"]).is_file() and not any(
            e.content_hash == doc["content_hash"] and e.status == quarantine.STATUS_REVIEW
            for e in quarantine.list_quarantined(layout))
    target = layout.root / doc["to"]
    if target.exists():
        return False
    return doc["quarantine_id"] in live or (layout.gender_dir(doc["old_label"]) / doc["file_name"]).is_file()


def _applied_rejects(layout: DatasetLayout) -> set[str]:
    """Ids of review rejects whose quarantine move happened (not cancelled), restored or not."""
    entries = quarantine.read_manifest(layout)
    cancelled = {e.ref for e in entries if e.action == "cancel"}
    return {
        str(e.extra.get("review_decision")) for e in entries
        if e.action == "quarantine" and e.id not in cancelled and e.extra.get("review_decision")
    }


__all__ = [
    "ACTIONS", "DecisionLogVersionError", "Outcome", "REJECT_REASONS", "REVIEW_SCHEMA_VERSION",
    "ReviewLog", "decide", "default_reviewer", "locate", "read_log", "repair", "undo",
]
