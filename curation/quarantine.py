"""What is in ``quarantine/<reason>/<gender>/``, and the two moves in and out of it: quarantine a
file (the cleaner, or a reviewer's reject) and restore it, each one :class:`curation.moves.Move`
of the one journal. Nothing is ever deleted.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

from anfe.core.hashing import content_hash as hash_bytes
from anfe.core.layout import DatasetLayout, safe_label
from anfe.core.store import Store, now_iso

from . import moves
from .moves import (
    STATUS_ACTIVE, STATUS_QUARANTINED, Move, QuarantineError, RestoreConflictError, VanishedFileError,
)

_HASH = re.compile(r"^[0-9a-f]{8,64}$")


class NotQuarantinedError(QuarantineError):
    """The path, hash or record names no file currently in quarantine."""


def _absolute(layout: DatasetLayout, path: str | Path) -> Path:
    """An absolute ``path``: a relative one is taken relative to the dataset root when a file is
    there (``images/male/x.jpg``), else relative to the current folder (as a shell completes it)."""
    path = Path(os.path.expanduser(os.fspath(path)))
    if path.is_absolute():
        return path
    under_root = layout.root / path
    return under_root if os.path.lexists(under_root) or not path.exists() else Path(os.path.abspath(path))


def list_quarantined(layout: DatasetLayout, reason: str | None = None) -> list[Move]:
    """The journal lines of the files now in quarantine (optionally for one reason), oldest first."""
    wanted = None if reason is None else safe_label(reason)
    return [m for m in moves.live(layout).values() if m.in_quarantine and wanted in (None, m.reason)]


def reasons(layout: DatasetLayout) -> dict[str, int]:
    """How many files are in quarantine for each reason."""
    return dict(sorted(Counter(e.reason for e in list_quarantined(layout)).items()))


def quarantine_file(
    layout: DatasetLayout, path: str | Path, reason: str, detail: str = "", store: Store | None = None,
    actor: str = "clean", *, gender: str | None = None, content_hash: str | None = None,
    status: str = STATUS_QUARANTINED, update_store: bool = True, extra: dict[str, Any] | None = None,
) -> Path:
    """Move ``path`` (under ``<root>/images/``) to ``quarantine/<reason>/<gender>/`` with ``status``
    and return its new path; journal line first, then the move, then the store record (unless
    ``update_store`` is False: an exact duplicate whose twin is kept). ``gender`` defaults to the
    label folder of the file, ``content_hash`` to the hash of its bytes. Raises
    :class:`VanishedFileError` or :class:`ReadOnlyDatasetError` having lost nothing."""
    source = _absolute(layout, path)
    reason = safe_label(reason)
    try:
        original = moves.relative(layout, source)
    except ValueError:
        original = ""
    if not original.startswith("images/"):
        raise QuarantineError(
            f"{source} is not an image of the dataset {layout.root} (expected under images/)")
    if not os.path.lexists(source):
        raise VanishedFileError(f"{source} is gone (moved or deleted since the scan): nothing to quarantine")
    if gender is None and source.parent.parent == layout.images:
        gender = source.parent.name
    if content_hash is None:
        try:
            content_hash = hash_bytes(source.read_bytes())
        except OSError:  # unreadable bytes (or a dangling link): key the record by the path instead
            content_hash = "path-" + hash_bytes(original.encode())
    folder = layout.quarantine_dir(reason) / safe_label(gender) if gender else layout.quarantine_dir(reason)
    dst = moves.relative(layout, folder / source.name)
    move = Move(
        id=moves.new_id(), action="quarantine", src=original, dst=dst, original=original, reason=reason,
        detail=detail, gender=gender, content_hash=content_hash,
        status=status, actor=actor, time=now_iso(), update_store=update_store, extra=extra or {},
    )
    return layout.root / moves.apply(layout, move, store, unique=True).dst


def resolve_entry(layout: DatasetLayout, target: Move | dict | str | Path) -> Move:
    """The live quarantine line for ``target``: a :class:`Move`, a store record (its
    ``quarantine_id``), a quarantined path (absolute or relative to the root), or a content hash
    or unique hash prefix of at least 8 hex digits."""
    live = {e.id: e for e in list_quarantined(layout)}
    if isinstance(target, (Move, dict)):
        key, where = (target.id, target.dst) if isinstance(target, Move) else (
            target.get("quarantine_id"), target.get("path") or target.get("content_hash"))
        if key not in live:
            raise NotQuarantinedError(f"{where} is not in quarantine any more")
        return live[key]
    text = str(target)
    if _HASH.match(text.lower()) and not Path(text).exists():
        matches = [e for e in live.values() if e.content_hash.startswith(text.lower())]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise NotQuarantinedError(
                f"{text} matches {len(matches)} quarantined files: "
                + ", ".join(e.dst for e in matches[:5]) + "; give the path instead"
            )
        raise NotQuarantinedError(f"no quarantined file has the content hash {text}")
    try:
        relative = moves.relative(layout, _absolute(layout, text))
    except ValueError:
        raise NotQuarantinedError(f"{text} is not inside the dataset {layout.root}") from None
    for entry in live.values():
        if entry.dst == relative:
            return entry
    raise NotQuarantinedError(
        f"{text} is not a quarantined file of {layout.root}: see `anfe quarantine list {layout.root}`"
    )


def restore_file(
    layout: DatasetLayout, quarantined: Move | dict | str | Path, store: Store | None = None,
    actor: str = "restore",
) -> Path:
    """Put a quarantined file (anything :func:`resolve_entry` accepts) back where it came from and
    return that path; refuses (:class:`RestoreConflictError`) to overwrite a file there."""
    entry = resolve_entry(layout, quarantined)
    source, target = layout.root / entry.dst, layout.root / entry.original
    if not os.path.lexists(source):
        raise VanishedFileError(f"{source} is gone from quarantine: nothing to restore")
    if os.path.lexists(target):
        raise RestoreConflictError(
            f"{target} already exists: not overwritten; move it away first, then restore {entry.dst}"
        )
    move = Move(
        id=moves.new_id(), action="restore", src=entry.dst, dst=entry.original, original=entry.original,
        detail=entry.detail, gender=entry.gender, content_hash=entry.content_hash,
        status=STATUS_ACTIVE, actor=actor, time=now_iso(), extra={"restored_at": now_iso()},
    )
    moves.apply(layout, move, store)
    return target


__all__ = [
    "NotQuarantinedError", "list_quarantined", "quarantine_file", "reasons", "resolve_entry", "restore_file",
]
