"""Precise exceptions raised by the library; the CLI turns each into a one-line fix-it message."""

from __future__ import annotations


class AnfeError(Exception):
    """Base of every error this project raises on purpose."""


class ImageError(AnfeError):
    """An image could not be used. ``reason`` is a short machine-readable code."""

    reason = "unreadable"

    def __init__(self, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        if reason is not None:
            self.reason = reason


class EmptyFileError(ImageError):
    reason = "empty-file"


class NotAnImageError(ImageError):
    reason = "not-an-image"


class TruncatedImageError(ImageError):
    reason = "truncated"


class ImageTooLargeError(ImageError):
    """More pixels than allowed: a decompression bomb is refused before it is decoded."""

    reason = "too-many-pixels"


class ModelsMissingError(AnfeError):
    """dlib's model files are not installed."""


class StoreError(AnfeError):
    """The store could not be opened or used."""


class StoreUnreachableError(StoreError):
    """The store's server did not answer in time."""


class StoreVersionError(StoreError):
    """The store was written by a newer version of this project."""


class UnknownBuildError(AnfeError):
    """No build with that id exists in the store."""


class DatasetError(AnfeError):
    """A dataset folder or labels file is missing, empty or malformed."""


class SizeTooLargeError(DatasetError):
    """A build size asks for more images per gender than the usable ones."""


class NoTestSplitError(DatasetError):
    """A build recorded no held-out split, and no test set was given."""


class MissingGroupError(DatasetError):
    """A fairness variant was asked for without the group column it averages over."""


class NotADatasetError(DatasetError):
    """The folder given is not a dataset root (no ``images/<gender>/`` folders)."""


class CacheError(AnfeError):
    """The analysis cache cannot be opened, read or written: not a cache file, or its MongoDB failed."""


class CacheUnreachableError(CacheError):
    """The analysis cache's MongoDB did not answer within the timeout (not reached, or gone midway)."""
