"""The dataset root on disk: ``images/<gender>/<content-hash>.<ext>``, ``quarantine/<reason>/``, the catalog.

The folders are the labels. Files are named by the hash of their bytes, written atomically
(temporary file, then rename), so a crash never leaves half a photo under a real name.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import DatasetError, NotADatasetError
from .processes import process_alive

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
_SAFE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


def safe_label(label: str) -> str:
    """A label or reason usable as one folder name (lower-case letters, digits, '-' and '_').

    Refuses anything else (``..``, slashes, empty), so no name can point outside the root.
    """
    cleaned = label.strip().lower().replace(" ", "-")
    if not _SAFE_NAME.match(cleaned):
        raise DatasetError(f"{label!r} cannot be a folder name: use letters, digits, '-' or '_'")
    return cleaned


def normalise_root(root: str | Path) -> Path:
    """``root`` as an absolute path with ``~`` expanded and symbolic links resolved (it need not exist)."""
    return Path(os.path.expanduser(os.fspath(root))).resolve()


def relative_to_root(root: Path, path: str | Path) -> Path:
    """``path`` (absolute, or relative to the current folder) relative to the normalised ``root``.

    The folder holding ``path`` is resolved, not ``path`` itself, so a symbolic link inside the
    dataset keeps its own name. Raises ValueError when ``path`` lies outside ``root``.
    """
    path = Path(os.path.expanduser(os.fspath(path)))
    absolute = Path(os.path.abspath(path))
    return (absolute.parent.resolve() / absolute.name).relative_to(normalise_root(root))


def walk(folder: Path) -> list[Path]:
    """Every entry below ``folder`` (any depth, any kind; a linked folder is one entry, not
    followed), skipping hidden names such as partial downloads (``.part-*``). The one lister of
    dataset files: :class:`DatasetLayout` and :func:`anfe.core.dataset.from_folders` use it."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [here / n for n in filenames if not n.startswith(".")]
        found += [here / d for d in dirnames if (here / d).is_symlink()]
    return sorted(found)


def is_image_file(path: Path) -> bool:
    """A file (or a link to one; not a pipe or a device) with an image suffix."""
    return path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


@dataclass(frozen=True)
class DatasetLayout:
    """Paths inside one dataset root.

    The root is made absolute and free of symbolic links once, here (``./data``, ``data``,
    ``../x/data``, ``~/data`` and a link to the folder all name the same root), so every path
    built from it, stored relative to it or compared with it agrees whatever folder the command
    was started from.
    """

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", normalise_root(self.root))

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def quarantine(self) -> Path:
        return self.root / "quarantine"

    def gender_dir(self, gender: str) -> Path:
        return self.images / safe_label(gender)

    def quarantine_dir(self, reason: str) -> Path:
        return self.quarantine / safe_label(reason)

    def genders(self) -> list[str]:
        """The label folders present under ``images/``, sorted."""
        if not self.images.is_dir():
            return []
        return sorted(p.name for p in self.images.iterdir() if p.is_dir() and not p.name.startswith("."))

    def label_folders(self, gender: str | None = None) -> list[Path]:
        return [self.gender_dir(gender)] if gender else [self.images / g for g in self.genders()]

    def entries(self, gender: str | None = None) -> list[Path]:
        """Everything under one label folder (or all of them): any depth, any kind (symbolic links,
        pipes and non-image files too), hidden names and partial downloads left out; sorted."""
        return sorted(p for folder in self.label_folders(gender) for p in walk(folder))

    def image_files(self, gender: str | None = None) -> list[Path]:
        """The images under one label folder (or all of them): files with an image suffix."""
        return [p for p in self.entries(gender) if is_image_file(p)]

    def is_dataset_root(self) -> bool:
        return self.images.is_dir()

    def inside(self, path: Path) -> bool:
        """True when ``path`` resolves to a place inside the root (guards every write)."""
        try:
            Path(path).resolve().relative_to(self.root.resolve())
            return True
        except ValueError:
            return False


def open_dataset(root: str | Path) -> DatasetLayout:
    """The layout of the dataset root ``root``; raises :class:`NotADatasetError` saying what a root
    looks like. Every command that takes a dataset root opens it here."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise NotADatasetError(f"{root} is not a folder: give a dataset root (a folder holding images/<gender>/)")
    layout = DatasetLayout(root.resolve())
    if not layout.is_dataset_root() or not layout.genders():
        raise NotADatasetError(
            f"{root} is not a dataset root: expected {root}/images/<gender>/ folders (e.g. images/female, "
            f"images/male) as `anfe crawl` creates them"
        )
    return layout


#: The name of a file being written by :func:`write_atomically` starts so (then the writer's pid and "-").
PARTIAL_PREFIX = ".part-"


def partial_writer(path: Path) -> int | None:
    """The pid of the process that was writing the partial file ``path``, if its name says it."""
    pid = path.name[len(PARTIAL_PREFIX):].split("-", 1)[0]
    return int(pid) if path.name.startswith(PARTIAL_PREFIX) and pid.isdigit() else None


def sweep_partial_files(folder: Path) -> int:
    """Remove the half-written temporary files that killed writers left in ``folder``'s
    subfolders (never a photo: a photo is renamed into place whole, so its writer's next run
    writes it again). Files of live writers are left alone. Returns how many were removed."""
    removed = 0
    for path in Path(folder).glob(f"*/{PARTIAL_PREFIX}*"):
        pid = partial_writer(path)
        if pid is not None and not process_alive(pid):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def content_file_name(digest: str, suffix: str) -> str:
    """``<hash><suffix>`` with a normalised, known image suffix (``.jpg`` when unknown)."""
    suffix = suffix.lower()
    suffix = ".jpg" if suffix == ".jpeg" else suffix
    return f"{digest}{suffix if suffix in IMAGE_SUFFIXES else '.jpg'}"


def write_atomically(path: Path, data: bytes, mode: int | None = None, sync: bool = True) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename;
    ``mode`` (e.g. 0o600 for secrets) is set on the temporary file before any byte is written.
    The temporary file is named :data:`PARTIAL_PREFIX` + the writer's pid, so a later run can tell
    one left by a killed process from one another process is writing. ``sync=False`` skips the
    fsync, for files that are made again when lost (thumbnails)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f"{PARTIAL_PREFIX}{os.getpid()}-")
    try:
        if mode is not None:
            os.fchmod(handle, mode)
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            if sync:
                out.flush()
                os.fsync(out.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
