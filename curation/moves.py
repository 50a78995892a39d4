"""The one mover and its journal: every file move of a dataset root (quarantine, restore, a
reviewer's keep, relabel or reject, an undo) is one :class:`Move`, appended and fsynced to
``quarantine/manifest.jsonl`` *before* the file moves, then applied with a hard link and an
unlink that never replace a file. :func:`replay` finishes, at the next start, every move whose
line was written but whose file did not (fully) move: a kill -9 between the two loses nothing.

A move may leave its file where it is (``src == dst``): that records a new status or reason,
e.g. a file "sent to review" that a reviewer rejects stays in quarantine with the new reason.
Where a file is now, and what it is (``status``), is the fold of the journal (:func:`live`).
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

from anfe.errors import DatasetError
from anfe.layout import DatasetLayout, relative_to_root
from anfe.store import Store, now_iso

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
    """One journal line: move ``src`` to ``dst`` (paths relative to the root, forward slashes),
    after which the file has ``status`` (and, in quarantine, ``reason``). ``original`` is the
    place under ``images/`` a quarantined file goes back to; ``ref`` is the line a ``cancel``
    line cancels (a move that failed after its line was written). ``extra`` goes to the store."""

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

    @property
    def quarantined(self) -> str:
        """Where the file is after this move (named for the quarantine listing)."""
        return self.dst

    def quarantined_path(self, layout: DatasetLayout) -> Path:
        return layout.root / self.dst

    def original_path(self, layout: DatasetLayout) -> Path:
        return layout.root / self.original

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, doc: dict) -> "Move":
        if int(doc.get("v", 1)) < 2:  # version 1 lines: quarantine/restore between two named places
            there, back = doc.get("original", ""), doc.get("quarantined", "")
            doc = {**doc, "src": back if doc.get("action") == "restore" else there,
                   "dst": there if doc.get("action") == "restore" else back}
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in doc.items() if k in known})


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
    present) and ``folders`` can be written. Root bypasses permission bits, so a move can still
    fail later; those failures raise the same error and lose nothing."""
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
        out.write(move.to_json() + "\n")
        out.flush()
        os.fsync(out.fileno())


def read(layout: DatasetLayout) -> list[Move]:
    """Every journal line, oldest first. A half-written last line (a crash mid-write) is skipped
    with a warning; a line from a newer version raises :class:`ManifestVersionError`."""
    path = journal_path(layout)
    if not path.is_file():
        return []
    moves: list[Move] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
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
        if not candidate.exists() and not candidate.is_symlink():
            return candidate
    raise QuarantineError(f"no free name for {path}")  # pragma: no cover


def _move_file(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst`` (same file system), refusing to replace anything at ``dst``.

    A hard link then an unlink: a crash between the two leaves both names on one file, which
    :func:`replay` finishes. Where links are not supported, check then ``os.replace``."""
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
    quarantined = move.in_quarantine
    return {
        "content_hash": move.content_hash, "status": move.status, "path": move.dst, "gender": move.gender,
        "quarantine_reason": move.reason if quarantined else None,
        "quarantine_detail": move.detail if quarantined else None,
        "quarantine_id": move.id if quarantined else None,
        **({"quarantined_at": move.time, "quarantined_by": move.actor} if quarantined else {}),
        **move.extra,
    }


def apply(layout: DatasetLayout, move: Move, store: Store | None = None, *, unique: bool = False) -> Move:
    """Journal ``move``, then do it; returns the move as done (``dst`` may have been renamed to a
    free ``<stem>~N<suffix>`` when ``unique``). A file already at ``dst`` and gone from ``src``
    counts as moved (another process did it). Raises :class:`VanishedFileError` when the file is
    at neither place, :class:`RestoreConflictError` rather than replace a file and
    :class:`ReadOnlyDatasetError` when the move fails; then a ``cancel`` line follows the move's
    line and nothing is lost."""
    src, dst = layout.root / move.src, layout.root / move.dst
    check_writable(layout, [p for p in (src.parent, dst.parent) if p.exists()])
    with locked(layout):
        moving, there = src != dst, src.exists() or src.is_symlink()
        if moving and not there and (unique or not dst.exists()):
            raise VanishedFileError(f"{src} is gone (moved or deleted since it was seen): nothing moved")
        if moving and unique:
            dst = _unique(dst)
            move = replace(move, dst=relative(layout, dst))
        append(layout, move)
        if store is not None and move.update_store:
            _note_store_update(layout, f"+{move.id}")
        if moving and there:
            try:
                _move_file(src, dst)
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
            _note_store_update(layout, f"-{move.id}")
    return move


def _note_store_update(layout: DatasetLayout, line: str) -> None:
    """Append ``+id`` (begun) or ``-id`` (finished); the file goes once nothing is left unfinished.
    Under the journal lock. No fsync: it guards against a failing store or a killed process."""
    path = layout.quarantine / _PENDING_NAME
    with open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")
    if line[0] == "-" and not _unfinished(path):
        path.unlink()


def _unfinished(path: Path) -> set[str]:
    begun: set[str] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line[:1] == "+":
            begun.add(line[1:])
        elif line[:1] == "-":
            begun.discard(line[1:])
    return begun


def _redo_store_updates(layout: DatasetLayout, store: Store, moves: list[Move]) -> int:
    """Write the records of the moves whose store update began but never finished (the file is
    where the journal says; its record may not say so). Called under the journal lock."""
    path = layout.quarantine / _PENDING_NAME
    if not path.is_file():
        return 0
    begun = _unfinished(path)
    # Only a file's latest move (an older one's record would be out of date), and only where the
    # file did move: a move still to finish writes its record itself once the file is there.
    records = [record_of(m) for m in fold(moves).values()
               if m.id in begun and m.update_store and _moved(layout, m)]
    if records:
        store.upsert_images(records)
        log.warning("wrote %d store record(s) an interrupted run had not written", len(records))
    path.unlink()
    return len(records)


def _moved(layout: DatasetLayout, move: Move) -> bool:
    """Whether ``move``'s file stands at its destination and no longer at its source."""
    src, dst = layout.root / move.src, layout.root / move.dst
    return src == dst or ((dst.exists() or dst.is_symlink()) and not (src.exists() or src.is_symlink()))


def _cancel(layout: DatasetLayout, move: Move, why: str) -> None:
    try:
        append(layout, replace(move, id=new_id(), action="cancel", detail=why, ref=move.id, extra={},
                               time=now_iso()))
    except OSError:  # cannot even append: replay() sees the file still at its first place
        log.warning("could not record the cancelled move of %s", move.src)


def _finish(src: Path, dst: Path) -> str | None:
    """Complete one interrupted move; returns what was done (None when nothing was needed)."""
    src_there, dst_there = src.exists() or src.is_symlink(), dst.exists() or dst.is_symlink()
    if src_there and dst_there:
        if os.path.samefile(src, dst):  # link made, unlink not: drop the extra name only
            os.unlink(src)
            return f"finished moving {src.name}"
        return None  # two different files: leave both, report nothing (never overwrite)
    if src_there:
        _move_file(src, dst)
        return f"moved {src} -> {dst}"
    return None


def replay(layout: DatasetLayout, store: Store | None = None) -> list[str]:
    """Finish every journalled move whose file did not (fully) move (a crash between the line and
    the move). Returns one message per repaired file; updates their store records when a store
    is given. Idempotent."""
    moves = read(layout)
    if not moves:
        return []
    messages: list[str] = []
    with locked(layout):
        if store is not None:
            redone = _redo_store_updates(layout, store, moves)
            if redone:
                messages.append(f"wrote {redone} store record(s) that an interrupted run had not written")
        for move in fold(moves).values():
            src, dst = layout.root / move.src, layout.root / move.dst
            if src == dst:
                continue
            try:
                done = _finish(src, dst)
            except OSError as exc:
                raise ReadOnlyDatasetError(
                    f"cannot finish the interrupted move {src} -> {dst}: {exc.strerror or exc}; "
                    f"make the dataset writable and run again"
                ) from exc
            if done:
                messages.append(done)
                log.warning("repaired an interrupted move: %s", done)
                if store is not None and move.update_store:
                    store.upsert_image(record_of(move))
    return messages


__all__ = [
    "JOURNAL_NAME", "JOURNAL_VERSION", "ManifestVersionError", "Move", "QuarantineError",
    "ReadOnlyDatasetError", "RestoreConflictError", "STATUS_ACTIVE", "STATUS_QUARANTINED",
    "STATUS_REVIEW", "VanishedFileError", "append", "applied_ids", "apply", "check_writable", "fold",
    "journal_path", "live", "new_id", "read", "record_of", "relative", "replay",
]
