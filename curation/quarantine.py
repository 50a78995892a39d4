"""Move rejected images to ``quarantine/<reason>/<gender>/`` and back, crash-safely, never deleting.

Every move is first appended (and fsynced) to ``quarantine/manifest.jsonl``, then done inside
the dataset root; :func:`repair` replays a line whose move did not happen. The automatic
cleaner and the review app's "reject with a reason" both call :func:`quarantine_file`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from anfe.errors import DatasetError
from anfe.hashing import content_hash as hash_bytes
from anfe.layout import DatasetLayout, relative_to_root, safe_label
from anfe.store import Store, now_iso

log = logging.getLogger(__name__)

#: Version of the manifest lines this code writes; a manifest written by a newer one is refused.
MANIFEST_VERSION = 1
MANIFEST_NAME = "manifest.jsonl"
_LOCK_NAME = ".lock"
_HASH = re.compile(r"^[0-9a-f]{8,64}$")

#: Store ``status`` values written here (the review app may add its own).
STATUS_QUARANTINED = "quarantined"
STATUS_REVIEW = "review"
STATUS_ACTIVE = "active"

__all__ = [
    "MANIFEST_NAME", "MANIFEST_VERSION", "ManifestVersionError", "NotQuarantinedError",
    "QuarantineEntry", "QuarantineError", "ReadOnlyDatasetError", "RestoreConflictError",
    "VanishedFileError", "check_writable", "list_quarantined", "manifest_path", "quarantine_file",
    "read_manifest", "reasons", "repair", "resolve_entry", "restore_file", "sync_store",
]


class QuarantineError(DatasetError):
    """A quarantine or restore could not be done; nothing was lost."""


class VanishedFileError(QuarantineError):
    """The file is no longer where the scan (or the manifest) saw it."""


class RestoreConflictError(QuarantineError):
    """A file already sits where a quarantined file would be restored; it is never overwritten."""


class ReadOnlyDatasetError(QuarantineError):
    """The dataset root (or its quarantine folder) cannot be written."""


class ManifestVersionError(QuarantineError):
    """The manifest was written by a newer version of this project."""


class NotQuarantinedError(QuarantineError):
    """The path, hash or record names no file currently in quarantine."""


@dataclass(frozen=True)
class QuarantineEntry:
    """One manifest line. ``action`` is ``quarantine``, ``restore`` or ``cancel`` (a move that
    failed after its line was written); restore/cancel lines point at their quarantine line
    through ``ref``. Paths are relative to the dataset root, with forward slashes."""

    id: str
    action: str
    original: str
    quarantined: str
    reason: str
    detail: str = ""
    gender: str | None = None
    content_hash: str = ""
    actor: str = ""
    time: str = ""
    ref: str | None = None
    status: str = STATUS_QUARANTINED
    update_store: bool = True
    v: int = MANIFEST_VERSION
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def original_path(self, layout: DatasetLayout) -> Path:
        return layout.root / self.original

    def quarantined_path(self, layout: DatasetLayout) -> Path:
        return layout.root / self.quarantined

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, doc: dict) -> "QuarantineEntry":
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in doc.items() if k in known})


def manifest_path(layout: DatasetLayout) -> Path:
    """``<root>/quarantine/manifest.jsonl``: the append-only record of every move."""
    return layout.quarantine / MANIFEST_NAME


def _relative(layout: DatasetLayout, path: Path) -> str:
    """``path`` relative to the root, with forward slashes; ValueError when it lies outside."""
    return relative_to_root(layout.root, path).as_posix()


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


# -- checks --------------------------------------------------------------------------------------
def check_writable(layout: DatasetLayout, folders: Iterable[Path] = ()) -> None:
    """Raise :class:`ReadOnlyDatasetError` unless the root, ``images/``, ``quarantine/`` (where
    present) and ``folders`` can be written. Root bypasses permission bits, so a move can still
    fail later; those failures raise the same error and lose nothing."""
    candidates = [layout.root, layout.images, layout.quarantine, *folders]
    for folder in candidates:
        if folder.exists() and not os.access(folder, os.W_OK | os.X_OK):
            raise ReadOnlyDatasetError(
                f"the dataset {layout.root} is read-only ({folder} cannot be written): nothing was "
                f"moved; make it writable (chmod -R u+w {layout.root}) or use --dry-run"
            )


# -- the manifest --------------------------------------------------------------------------------
@contextmanager
def _locked(layout: DatasetLayout) -> Iterator[None]:
    """An exclusive lock on the quarantine folder, so concurrent writers pick distinct names."""
    layout.quarantine.mkdir(parents=True, exist_ok=True)
    with open(layout.quarantine / _LOCK_NAME, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _append(layout: DatasetLayout, entry: QuarantineEntry) -> None:
    """Append one line and fsync it before anything moves."""
    layout.quarantine.mkdir(parents=True, exist_ok=True)
    with open(manifest_path(layout), "a", encoding="utf-8") as out:
        out.write(entry.to_json() + "\n")
        out.flush()
        os.fsync(out.fileno())


def read_manifest(layout: DatasetLayout) -> list[QuarantineEntry]:
    """Every manifest line, oldest first. A half-written last line (a crash mid-write) is
    skipped with a warning; a line from a newer version raises :class:`ManifestVersionError`."""
    path = manifest_path(layout)
    if not path.is_file():
        return []
    entries: list[QuarantineEntry] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            doc = json.loads(line)
        except json.JSONDecodeError:
            log.warning("%s line %d is not valid JSON (a crash mid-write?): skipped", path, number)
            continue
        if int(doc.get("v", 1)) > MANIFEST_VERSION:
            raise ManifestVersionError(
                f"{path} line {number} was written by a newer version (manifest v{doc.get('v')}, "
                f"this one reads v{MANIFEST_VERSION}): upgrade with `pip install -U anfe-faces`"
            )
        entries.append(QuarantineEntry.from_dict(doc))
    return entries


def _states(entries: list[QuarantineEntry]) -> dict[str, tuple[QuarantineEntry, bool]]:
    """For every quarantine line id: (that line, restored?) after replaying restores and
    cancels in order. A cancelled quarantine is dropped; a cancelled restore leaves the file
    in quarantine."""
    by_id = {e.id: e for e in entries}
    states: dict[str, tuple[QuarantineEntry, bool]] = {}
    for entry in entries:
        if entry.action == "quarantine":
            states[entry.id] = (entry, False)
        elif entry.action == "restore" and entry.ref in states:
            states[entry.ref] = (states[entry.ref][0], True)
        elif entry.action == "cancel" and entry.ref:
            cancelled = by_id.get(entry.ref)
            if cancelled is None or cancelled.action == "quarantine":
                states.pop(entry.ref, None)
            elif cancelled.ref in states:
                states[cancelled.ref] = (states[cancelled.ref][0], False)
    return states


def _current(entries: list[QuarantineEntry]) -> dict[str, QuarantineEntry]:
    """Quarantine lines not restored (or cancelled), by id, in manifest order."""
    return {key: entry for key, (entry, restored) in _states(entries).items() if not restored}


def list_quarantined(layout: DatasetLayout, reason: str | None = None) -> list[QuarantineEntry]:
    """Files now in quarantine (optionally for one reason), oldest first."""
    entries = list(_current(read_manifest(layout)).values())
    return [e for e in entries if reason is None or e.reason == safe_label(reason)]


def reasons(layout: DatasetLayout) -> dict[str, int]:
    """How many files are in quarantine for each reason."""
    counts: dict[str, int] = {}
    for entry in list_quarantined(layout):
        counts[entry.reason] = counts.get(entry.reason, 0) + 1
    return dict(sorted(counts.items()))


# -- moving --------------------------------------------------------------------------------------
def _unique(path: Path) -> Path:
    if not path.exists():
        return path
    for n in range(1, 1_000_000):
        candidate = path.with_name(f"{path.stem}~{n}{path.suffix}")
        if not candidate.exists():
            return candidate
    raise QuarantineError(f"no free name for {path}")  # pragma: no cover


def _move_no_clobber(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst`` (same file system), refusing to replace anything at ``dst``.

    A hard link then an unlink: a crash between the two leaves both names on one file, which
    :func:`repair` finishes. Where links are not supported, check then ``os.replace``."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst, follow_symlinks=False)  # a symbolic link moves as itself
    except (FileExistsError, FileNotFoundError):
        raise
    except OSError:  # no hard links here (or another file system): check, then rename
        if dst.exists():
            raise FileExistsError(dst) from None
        os.replace(src, dst)
        return
    os.unlink(src)


def _record_for(entry: QuarantineEntry, restored: bool) -> dict:
    if restored:
        return {
            "content_hash": entry.content_hash, "status": STATUS_ACTIVE, "path": entry.original,
            "gender": entry.gender, "quarantine_reason": None, "quarantine_detail": None,
            "quarantine_id": None, "restored_at": now_iso(),
        }
    return {
        "content_hash": entry.content_hash, "status": entry.status, "path": entry.quarantined,
        "gender": entry.gender, "quarantine_reason": entry.reason, "quarantine_detail": entry.detail,
        "quarantine_id": entry.id, "quarantined_at": entry.time, "quarantined_by": entry.actor,
        **entry.extra,
    }


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
    its new path. The manifest line is written first; the store record (key: content hash) gets
    ``status``, ``quarantine_reason``, ``quarantine_detail`` and the new ``path``.

    ``gender`` defaults to the label folder the file sits in; ``content_hash`` to the hash of its
    bytes. ``update_store=False`` leaves the record alone (an exact duplicate whose twin is kept).
    Raises :class:`VanishedFileError` if the file is gone, :class:`ReadOnlyDatasetError` if it
    cannot be moved; in both cases nothing is lost and the manifest says the move was cancelled.
    """
    layout = DatasetLayout(Path(layout.root))
    source = _absolute(layout, path)
    reason = safe_label(reason)
    if not layout.inside(source) or not _relative(layout, source).startswith("images/"):
        raise QuarantineError(f"{source} is not an image of the dataset {layout.root} (expected under images/)")
    if not source.is_file():
        raise VanishedFileError(f"{source} is gone (moved or deleted since the scan): nothing to quarantine")
    if gender is None and source.parent.parent == layout.images:
        gender = source.parent.name
    if content_hash is None:
        try:
            content_hash = hash_bytes(source.read_bytes())
        except OSError:  # unreadable bytes: key the record by the path instead
            content_hash = "path-" + hash_bytes(_relative(layout, source).encode())
    folder = layout.quarantine_dir(reason) / safe_label(gender) if gender else layout.quarantine_dir(reason)
    check_writable(layout, [source.parent])
    with _locked(layout):
        target = _unique(folder / source.name)
        entry = QuarantineEntry(
            id=uuid.uuid4().hex, action="quarantine", original=_relative(layout, source),
            quarantined=_relative(layout, target), reason=reason, detail=detail, gender=gender,
            content_hash=content_hash, actor=actor, time=now_iso(), status=status,
            update_store=update_store, extra=extra or {},
        )
        _append(layout, entry)
        try:
            _move_no_clobber(source, target)
        except FileNotFoundError as exc:
            _cancel(layout, entry, actor, f"vanished: {exc}")
            raise VanishedFileError(f"{source} vanished before it could be moved: nothing to quarantine") from exc
        except OSError as exc:
            _cancel(layout, entry, actor, str(exc))
            raise ReadOnlyDatasetError(
                f"cannot move {source} into {folder}: {exc.strerror or exc}; nothing was moved; "
                f"make the dataset writable (chmod -R u+w {layout.root})"
            ) from exc
    if store is not None and update_store:
        store.upsert_image(_record_for(entry, restored=False))
    return target


def _cancel(layout: DatasetLayout, entry: QuarantineEntry, actor: str, why: str) -> None:
    try:
        _append(layout, QuarantineEntry(
            id=uuid.uuid4().hex, action="cancel", original=entry.original, quarantined=entry.quarantined,
            reason=entry.reason, detail=why, gender=entry.gender, content_hash=entry.content_hash,
            actor=actor, time=now_iso(), ref=entry.id,
        ))
    except OSError:  # cannot even append: repair() sees the file still at its original place
        log.warning("could not record the cancelled move of %s", entry.original)


def resolve_entry(layout: DatasetLayout, target: Any) -> QuarantineEntry:
    """The live quarantine line for ``target``: a :class:`QuarantineEntry`, a record dict (with
    ``quarantine_id``, ``id`` or ``quarantined``), a quarantined path (absolute or relative to
    the root), or a content hash / unique hash prefix of at least 8 hex digits."""
    live = _current(read_manifest(layout))
    if isinstance(target, QuarantineEntry):
        found = live.get(target.id)
        if found is None:
            raise NotQuarantinedError(f"{target.quarantined} is not in quarantine any more")
        return found
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
                + ", ".join(e.quarantined for e in matches[:5]) + "; give the path instead"
            )
        raise NotQuarantinedError(f"no quarantined file has the content hash {text}")
    try:
        relative = _relative(layout, _absolute(layout, text))
    except ValueError:
        raise NotQuarantinedError(f"{text} is not inside the dataset {layout.root}") from None
    for entry in live.values():
        if entry.quarantined == relative:
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
    if not source.is_file():
        raise VanishedFileError(f"{source} is gone from quarantine: nothing to restore")
    if target.exists():
        raise RestoreConflictError(
            f"{target} already exists: not overwritten; move it away first, then restore {entry.quarantined}"
        )
    check_writable(layout, [source.parent, target.parent])
    with _locked(layout):
        line = QuarantineEntry(
            id=uuid.uuid4().hex, action="restore", original=entry.original, quarantined=entry.quarantined,
            reason=entry.reason, detail=entry.detail, gender=entry.gender,
            content_hash=entry.content_hash, actor=actor, time=now_iso(), ref=entry.id, status=STATUS_ACTIVE,
        )
        _append(layout, line)
        try:
            _move_no_clobber(source, target)
        except FileExistsError as exc:
            _cancel(layout, line, actor, "target appeared")
            raise RestoreConflictError(f"{target} appeared meanwhile: not overwritten") from exc
        except OSError as exc:
            _cancel(layout, line, actor, str(exc))
            raise ReadOnlyDatasetError(
                f"cannot move {source} back to {target}: {exc.strerror or exc}; nothing was moved"
            ) from exc
    if store is not None:
        store.upsert_image(_record_for(entry, restored=True))
    return target


# -- crash repair --------------------------------------------------------------------------------
def _finish(src: Path, dst: Path) -> str | None:
    """Complete one interrupted move; returns what was done (None when nothing was needed)."""
    src_there, dst_there = src.exists(), dst.exists()
    if src_there and dst_there:
        if os.path.samefile(src, dst):  # link made, unlink not: drop the extra name only
            os.unlink(src)
            return f"finished moving {src.name}"
        return None  # two different files: leave both, report nothing (never overwrite)
    if src_there:
        _move_no_clobber(src, dst)
        return f"moved {src} -> {dst}"
    return None


def repair(layout: DatasetLayout, store: Store | None = None) -> list[str]:
    """Replay the manifest: finish every move whose line was written but whose file did not
    move (a crash between the two). Returns one message per repaired file; also updates the
    store records of those files when a store is given."""
    layout = DatasetLayout(Path(layout.root))
    entries = read_manifest(layout)
    if not entries:
        return []
    messages: list[str] = []
    with _locked(layout):
        for entry, restored in _states(entries).values():
            src, dst = (
                (entry.quarantined_path(layout), entry.original_path(layout)) if restored
                else (entry.original_path(layout), entry.quarantined_path(layout))
            )
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
                if store is not None and entry.update_store:
                    store.upsert_image(_record_for(entry, restored=restored))
    return messages


def sync_store(layout: DatasetLayout, store: Store) -> int:
    """Rewrite the store's quarantine fields from the manifest (the manifest is authoritative);
    returns the number of records written. Use after a crash between a move and its store update."""
    written = 0
    for entry in list_quarantined(layout):
        if entry.update_store:
            store.upsert_image(_record_for(entry, restored=False))
            written += 1
    return written
