"""The one mover and its journal: every file move of a dataset root (quarantine, restore, a review
decision, an undo) is one :class:`Move`, fsynced to ``quarantine/manifest.jsonl`` *before* the file
moves (a hard link, then an unlink: nothing is replaced); :func:`replay` finishes at the next start
a move a kill -9 cut short. Where each file is now, and its status, is the fold of the journal.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from anfe.core.crashpoints import crash_point
from anfe.core.errors import DatasetError
from anfe.core.layout import DatasetLayout, relative_to_root
from anfe.core.store import Store, now_iso

log = logging.getLogger(__name__)

#: Version of the journal lines written here; a journal holding newer lines is refused.
JOURNAL_VERSION = 2
JOURNAL_NAME = "manifest.jsonl"
_LOCK_NAME = ".lock"
#: Store updates begun ("+id") and finished ("-id"), beside the journal: one begun and never
#: finished (the store failed, or the process died, after the file moved) is redone by replay().
_PENDING_NAME = ".store-pending"

#: What a file is after a move (also its store record's ``status``).
STATUS_ACTIVE = "active"
STATUS_QUARANTINED = "quarantined"
STATUS_REVIEW = "review"  # sent to review: held in quarantine until a person decides


class QuarantineError(DatasetError):
    """A move could not be done; nothing was lost."""


class VanishedFileError(QuarantineError):
    """The file is no longer where the scan (or the journal) saw it."""


class RestoreConflictError(QuarantineError):
    """A file already sits where a file would be moved to; it is never overwritten."""


class ReadOnlyDatasetError(QuarantineError):
    """The dataset root (or its quarantine folder) cannot be written."""


class ManifestVersionError(QuarantineError):
    """The journal was written by a newer version of this project."""


@dataclass(frozen=True)
class Move:
    """One journal line: move ``src`` to ``dst`` (relative to the root; equal for a new status or
    reason only), after which the file has ``status``. ``original``: where a quarantined file goes
    back to; ``ref``: the move a ``cancel`` line cancels; ``extra``: more fields for the store."""

    id: str
    action: str
    src: str
    dst: str
    original: str = ""
    reason: str = ""
    detail: str = ""
    gender: str | None = None
    content_hash: str = ""
    status: str = STATUS_ACTIVE
    actor: str = ""
    time: str = ""
    ref: str | None = None
    update_store: bool = True
    v: int = JOURNAL_VERSION
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def in_quarantine(self) -> bool:
        return self.dst.startswith("quarantine/")

    @classmethod
    def from_dict(cls, doc: dict) -> "Move":
        if int(doc.get("v", 1)) < 2:  # version 1 lines: quarantine/restore between two named places
            there, back = doc.get("original", ""), doc.get("quarantined", "")
            doc = {**doc, "src": back if doc.get("action") == "restore" else there,
                   "dst": there if doc.get("action") == "restore" else back}
        return cls(**{k: v for k, v in doc.items() if k in cls.__dataclass_fields__})


def new_id() -> str:
    return uuid.uuid4().hex


def journal_path(layout: DatasetLayout) -> Path:
    """``<root>/quarantine/manifest.jsonl``: the append-only record of every move."""
    return layout.quarantine / JOURNAL_NAME


def relative(layout: DatasetLayout, path: str | Path) -> str:
    """``path`` relative to the root, with forward slashes; ValueError when it lies outside."""
    return relative_to_root(layout.root, path).as_posix()


def check_writable(layout: DatasetLayout, folders: Iterable[Path] = ()) -> None:
    """Raise :class:`ReadOnlyDatasetError` unless the root, ``images/``, ``quarantine/`` (where
    present) and ``folders`` can be written (root ignores permission bits: a move can still fail)."""
    for folder in [layout.root, layout.images, layout.quarantine, *folders]:
        if folder.exists() and not os.access(folder, os.W_OK | os.X_OK):
            raise ReadOnlyDatasetError(
                f"the dataset {layout.root} is read-only ({folder} cannot be written): nothing was "
                f"moved; make it writable (chmod -R u+w {layout.root})"
            )


# -- the journal ---------------------------------------------------------------------------------
@contextmanager
def locked(layout: DatasetLayout) -> Iterator[None]:
    """An exclusive lock on the journal, so concurrent writers pick distinct names."""
    layout.quarantine.mkdir(parents=True, exist_ok=True)
    with open(layout.quarantine / _LOCK_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def append(layout: DatasetLayout, move: Move) -> None:
    """Append one line and fsync it before anything moves."""
    layout.quarantine.mkdir(parents=True, exist_ok=True)
    with open(journal_path(layout), "a", encoding="utf-8") as out:
        out.write(json.dumps(asdict(move), sort_keys=True) + "\n")
        out.flush()
        os.fsync(out.fileno())
    crash_point("moves.journal")


def read(layout: DatasetLayout) -> list[Move]:
    """Every journal line, oldest first. A half-written last line (a crash mid-write) is skipped
    with a warning; a line from a newer version raises :class:`ManifestVersionError`."""
    path = journal_path(layout)
    moves: list[Move] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines() if path.is_file() else [], 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s line %d is not valid JSON (a crash mid-write?): skipped", path, number)
            continue
        if int(doc.get("v", 1)) > JOURNAL_VERSION:
            raise ManifestVersionError(
                f"{path} line {number} was written by a newer version (journal v{doc.get('v')}, "
                f"this one reads v{JOURNAL_VERSION}): upgrade with `pip install -U anfe-faces`"
            )
        moves.append(Move.from_dict(doc))
    return moves


def applied_ids(moves: Iterable[Move]) -> set[str]:
    """Ids of the journalled moves that were not cancelled."""
    moves = list(moves)
    cancelled = {m.ref for m in moves if m.action == "cancel"}
    return {m.id for m in moves if m.action != "cancel" and m.id not in cancelled}


def fold(moves: Iterable[Move]) -> dict[str, Move]:
    """Where every journalled file is now: its path -> the last move that put it there."""
    moves = list(moves)
    applied = applied_ids(moves)
    where: dict[str, Move] = {}
    for move in moves:
        if move.id in applied:
            where.pop(move.src, None)
            where[move.dst] = move
    return where


def live(layout: DatasetLayout) -> dict[str, Move]:
    """:func:`fold` of the journal of ``layout``."""
    return fold(read(layout))


# -- moving --------------------------------------------------------------------------------------
def _unique(path: Path) -> Path:
    for n in range(1_000_000):
        candidate = path if n == 0 else path.with_name(f"{path.stem}~{n}{path.suffix}")
        if not os.path.lexists(candidate):
            return candidate
    raise QuarantineError(f"no free name for {path}")  # pragma: no cover


def _move_file(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst`` (same file system), refusing to replace anything at ``dst``: a hard
    link then an unlink (a crash between leaves two names, which :func:`replay` finishes); where
    links are not supported, check then ``os.replace``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst, follow_symlinks=False)  # a symbolic link moves as itself
    except (FileExistsError, FileNotFoundError, PermissionError):
        raise
    except OSError:  # no hard links here (or another file system): check, then rename
        if dst.exists():
            raise FileExistsError(dst) from None
        os.replace(src, dst)
        return
    os.unlink(src)


def record_of(move: Move) -> dict[str, Any]:
    """The store fields a move sets on the image's record (key: the content hash)."""
    here = move.in_quarantine
    return {
        "content_hash": move.content_hash, "status": move.status, "path": move.dst, "gender": move.gender,
        "quarantine_reason": move.reason if here else None,
        "quarantine_detail": move.detail if here else None, "quarantine_id": move.id if here else None,
        **({"quarantined_at": move.time, "quarantined_by": move.actor} if here else {}),
        **move.extra,
    }


def apply(layout: DatasetLayout, move: Move, store: Store | None = None, *, unique: bool = False) -> Move:
    """Journal ``move``, do it, then update its store record; returns the move as done (``dst`` a
    free ``<stem>~N<suffix>`` when ``unique``). A file already at ``dst`` and gone from ``src`` was
    moved by another process. Raises :class:`VanishedFileError`, :class:`RestoreConflictError` (never
    replaces a file) or :class:`ReadOnlyDatasetError`, losing nothing (a failed move gets a ``cancel``)."""
    src, dst = layout.root / move.src, layout.root / move.dst
    check_writable(layout, [src.parent, dst.parent])
    with locked(layout):
        moving, there = src != dst, os.path.lexists(src)
        if moving and not there and (unique or not dst.exists()):
            raise VanishedFileError(f"{src} is gone (moved or deleted since it was seen): nothing moved")
        if moving and unique:
            dst = _unique(dst)
            move = replace(move, dst=relative(layout, dst))
        append(layout, move)
        if store is not None and move.update_store:
            _note_pending(layout, f"+{move.id}")
        if moving and there:
            try:
                _move_file(src, dst)
                crash_point("moves.file")
            except FileNotFoundError as exc:
                _cancel(layout, move, f"vanished: {exc}")
                raise VanishedFileError(f"{src} vanished before it could be moved: nothing moved") from exc
            except FileExistsError as exc:
                _cancel(layout, move, "target exists")
                raise RestoreConflictError(f"{dst} already exists: not overwritten") from exc
            except OSError as exc:
                _cancel(layout, move, str(exc))
                raise ReadOnlyDatasetError(
                    f"cannot move {src} into {dst.parent}: {exc.strerror or exc}; nothing was moved; "
                    f"make the dataset writable (chmod -R u+w {layout.root})"
                ) from exc
    if store is not None and move.update_store:
        store.upsert_image(record_of(move))
        with locked(layout):
            _note_pending(layout, f"-{move.id}")
    return move


def _cancel(layout: DatasetLayout, move: Move, why: str) -> None:
    try:
        append(layout, replace(move, id=new_id(), action="cancel", detail=why, ref=move.id, extra={},
                               time=now_iso()))
    except OSError:  # cannot even append: replay() sees the file still at its first place
        log.warning("could not record the cancelled move of %s", move.src)


def _note_pending(layout: DatasetLayout, line: str) -> None:
    """Append ``+id`` (store update begun) or ``-id`` (finished), under the journal lock; the file
    goes once nothing is unfinished. No fsync: it guards against a failing store or a kill."""
    path = layout.quarantine / _PENDING_NAME
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")
    if line[0] == "-" and not _pending(path):
        path.unlink()


def _pending(path: Path) -> set[str]:
    """Ids of the moves whose store update began and never finished."""
    begun: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines() if path.is_file() else []:
        if line[:1] == "+":
            begun.add(line[1:])
        else:
            begun.discard(line[1:])
    return begun


def _finish(src: Path, dst: Path) -> str | None:
    """Complete one interrupted move; returns what was done (None when nothing was needed)."""
    if not os.path.lexists(src):
        return None
    if not os.path.lexists(dst):
        _move_file(src, dst)
        return f"moved {src} -> {dst}"
    if os.path.samefile(src, dst):  # link made, unlink not: drop the extra name only
        os.unlink(src)
        return f"finished moving {src.name}"
    return None  # two different files: leave both (never overwrite)


def replay(layout: DatasetLayout, store: Store | None = None) -> list[str]:
    """Finish every journalled move whose file did not (fully) move, and, given a store, write the
    records of those and of the moves whose store update never finished. Returns one message per
    repair; idempotent."""
    moves = read(layout)
    if not moves:
        return []
    messages: list[str] = []
    redo: list[dict[str, Any]] = []
    with locked(layout):
        pending = layout.quarantine / _PENDING_NAME
        begun = _pending(pending) if store is not None else set()
        for move in fold(moves).values():  # a file's latest move: an older one's record is out of date
            src, dst = layout.root / move.src, layout.root / move.dst
            try:
                done = _finish(src, dst) if src != dst else None
            except OSError as exc:
                raise ReadOnlyDatasetError(
                    f"cannot finish the interrupted move {src} -> {dst}: {exc.strerror or exc}; "
                    f"make the dataset writable and run again"
                ) from exc
            if done:
                messages.append(done)
                log.warning("repaired an interrupted move: %s", done)
            if store is None or not move.update_store:
                continue
            if done:
                store.upsert_image(record_of(move))
            elif move.id in begun and (src == dst or (os.path.lexists(dst) and not os.path.lexists(src))):
                redo.append(record_of(move))  # the file did move; its record may not say so
        if store is not None:
            if redo:
                store.upsert_images(redo)
                messages.insert(0, f"wrote {len(redo)} store record(s) that an interrupted run missed")
                log.warning(messages[0])
            pending.unlink(missing_ok=True)
    return messages


__all__ = [
    "JOURNAL_NAME", "JOURNAL_VERSION", "ManifestVersionError", "Move", "QuarantineError",
    "ReadOnlyDatasetError", "RestoreConflictError", "STATUS_ACTIVE", "STATUS_QUARANTINED",
    "STATUS_REVIEW", "VanishedFileError", "append", "applied_ids", "apply", "check_writable", "fold",
    "journal_path", "live", "new_id", "read", "record_of", "relative", "replay",
]
