"""What is in ``quarantine/<reason>/<gender>/``, and the two moves in and out of it: quarantine a
file (the cleaner, or a reviewer's reject) and restore it. Both are :class:`curation.moves.Move`
lines in the one journal, so a crash between the line and the move is finished by
:func:`repair` like any other move. Nothing is ever deleted.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from anfe.hashing import content_hash as hash_bytes
from anfe.layout import DatasetLayout, safe_label
from anfe.store import Store, now_iso

from . import moves
from .moves import (
    STATUS_ACTIVE, STATUS_QUARANTINED, STATUS_REVIEW, ManifestVersionError, Move, QuarantineError,
    ReadOnlyDatasetError, RestoreConflictError, VanishedFileError, check_writable,
)

_HASH = re.compile(r"^[0-9a-f]{8,64}$")
#: A quarantined file as the listing shows it: the journal line that put it there.
QuarantineEntry = Move
repair = moves.replay
manifest_path = moves.journal_path
read_manifest = moves.read

__all__ = [
    "ManifestVersionError", "NotQuarantinedError", "QuarantineEntry", "QuarantineError",
    "ReadOnlyDatasetError", "RestoreConflictError", "STATUS_ACTIVE", "STATUS_QUARANTINED",
    "STATUS_REVIEW", "VanishedFileError", "check_writable", "list_quarantined", "manifest_path",
    "quarantine_file", "read_manifest", "reasons", "repair", "resolve_entry", "restore_file",
]


class NotQuarantinedError(QuarantineError):
    """The path, hash or record names no file currently in quarantine."""


def _absolute(layout: DatasetLayout, path: str | Path) -> Path:
    """An absolute ``path``: a relative one is taken relative to the dataset root when a file is
    there (``images/male/x.jpg``), else relative to the current folder (``data/images/male/x.jpg``
    as a shell completes it)."""
    path = Path(os.path.expanduser(os.fspath(path)))
    if path.is_absolute():
        return path
    under_root = layout.root / path
    if under_root.exists() or under_root.is_symlink() or not path.exists():
        return under_root
    return Path(os.path.abspath(path))


def _live(layout: DatasetLayout) -> dict[str, Move]:
    """Files now in quarantine by journal line id, oldest first."""
    return {m.id: m for m in moves.live(layout).values() if m.in_quarantine}


def list_quarantined(layout: DatasetLayout, reason: str | None = None) -> list[Move]:
    """Files now in quarantine (optionally for one reason), oldest first."""
    return [e for e in _live(layout).values() if reason is None or e.reason == safe_label(reason)]


def reasons(layout: DatasetLayout) -> dict[str, int]:
    """How many files are in quarantine for each reason."""
    counts: dict[str, int] = {}
    for entry in list_quarantined(layout):
        counts[entry.reason] = counts.get(entry.reason, 0) + 1
    return dict(sorted(counts.items()))


def quarantine_file(
    layout: DatasetLayout,
    path: str | Path,
    reason: str,
    detail: str = "",
    store: Store | None = None,
    actor: str = "clean",
    *,
    gender: str | None = None,
    content_hash: str | None = None,
    status: str = STATUS_QUARANTINED,
    update_store: bool = True,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Move ``path`` (inside ``<root>/images/``) to ``quarantine/<reason>/<gender>/`` and return
    its new path. The journal line is written first; the store record (key: content hash) gets
    ``status``, ``quarantine_reason``, ``quarantine_detail`` and the new ``path``.

    ``gender`` defaults to the label folder the file sits in; ``content_hash`` to the hash of its
    bytes. ``update_store=False`` leaves the record alone (an exact duplicate whose twin is kept).
    Raises :class:`VanishedFileError` if the file is gone, :class:`ReadOnlyDatasetError` if it
    cannot be moved; in both cases nothing is lost.
    """
    layout = DatasetLayout(Path(layout.root))
    source = _absolute(layout, path)
    reason = safe_label(reason)
    try:
        original = moves.relative(layout, source)
    except ValueError:
        original = ""
    if not original.startswith("images/"):
        raise QuarantineError(f"{source} is not an image of the dataset {layout.root} (expected under images/)")
    if not (source.exists() or source.is_symlink()):
        raise VanishedFileError(f"{source} is gone (moved or deleted since the scan): nothing to quarantine")
    if gender is None and source.parent.parent == layout.images:
        gender = source.parent.name
    if content_hash is None:
        try:
            content_hash = hash_bytes(source.read_bytes())
        except OSError:  # unreadable bytes (or a dangling link): key the record by the path instead
            content_hash = "path-" + hash_bytes(original.encode())
    folder = layout.quarantine_dir(reason) / safe_label(gender) if gender else layout.quarantine_dir(reason)
    move = Move(
        id=moves.new_id(), action="quarantine", src=original, dst=moves.relative(layout, folder / source.name),
        original=original, reason=reason, detail=detail, gender=gender, content_hash=content_hash,
        status=status, actor=actor, time=now_iso(), update_store=update_store, extra=extra or {},
    )
    return layout.root / moves.apply(layout, move, store, unique=True).dst


def resolve_entry(layout: DatasetLayout, target: Any) -> Move:
    """The live quarantine line for ``target``: a :class:`Move`, a record dict (with
    ``quarantine_id``, ``id`` or ``quarantined``), a quarantined path (absolute or relative to
    the root), or a content hash / unique hash prefix of at least 8 hex digits."""
    live = _live(layout)
    if isinstance(target, Move):
        if target.id not in live:
            raise NotQuarantinedError(f"{target.dst} is not in quarantine any more")
        return live[target.id]
    if isinstance(target, dict):
        key = target.get("quarantine_id") or (target.get("id") if target.get("action") else None)
        if key and key in live:
            return live[key]
        target = target.get("quarantined") or target.get("path") or target.get("content_hash") or ""
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
    layout: DatasetLayout, quarantined: Any, store: Store | None = None, actor: str = "restore"
) -> Path:
    """Put a quarantined file back where it came from and return that path.

    ``quarantined`` is anything :func:`resolve_entry` accepts. Refuses (with
    :class:`RestoreConflictError`) to overwrite a file at the original place."""
    layout = DatasetLayout(Path(layout.root))
    entry = resolve_entry(layout, quarantined)
    source, target = entry.quarantined_path(layout), entry.original_path(layout)
    if not (source.exists() or source.is_symlink()):
        raise VanishedFileError(f"{source} is gone from quarantine: nothing to restore")
    if target.exists() or target.is_symlink():
        raise RestoreConflictError(
            f"{target} already exists: not overwritten; move it away first, then restore {entry.dst}"
        )
    move = Move(
        id=moves.new_id(), action="restore", src=entry.dst, dst=entry.original, original=entry.original,
        reason="", detail=entry.detail, gender=entry.gender, content_hash=entry.content_hash,
        status=STATUS_ACTIVE, actor=actor, time=now_iso(), extra={"restored_at": now_iso()},
    )
    moves.apply(layout, move, store)
    return target
