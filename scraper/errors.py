"""Precise errors of the harvester; subclasses of :class:`anfe.core.errors.AnfeError` so the CLI prints them in one line."""

from __future__ import annotations

from anfe.core.errors import AnfeError


class ProfileError(AnfeError):
    """A site profile is missing, is not valid JSON, or lacks a required field."""


class DemoSiteError(AnfeError):
    """The demo site cannot be generated or served (bad source, non-loopback host, busy port)."""


class UrlListError(AnfeError):
    """A FaceScrub-style URL list cannot be read."""


class SpiderArgumentError(AnfeError):
    """A ``-a NAME=VALUE`` spider argument that the spider does not take (e.g. a misspelling)."""


class CrawlFailedError(AnfeError):
    """A crawl ended with nothing: every request failed, or none could be made."""


class ShardFailedError(AnfeError):
    """A child of ``anfe crawl urllist --processes N`` ended without its report (see its log)."""
