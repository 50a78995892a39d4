"""The one item the spiders yield: a downloaded photo with where it came from and its label."""

from __future__ import annotations

from dataclasses import dataclass, field

from scrapy.exceptions import DropItem


class NotSettled(DropItem):
    """An item the pipelines could not settle (the store failed): its page stays in the frontier."""


@dataclass
class PhotoItem:
    """A photo's bytes plus provenance. The pipelines fill the ``width``/``height``/``content_hash``
    fields and may replace ``body`` with a crop (keeping ``original_hash``)."""

    url: str
    body: bytes = field(repr=False)
    site: str
    gender: str
    page_url: str | None = None
    final_url: str | None = None
    person_name: str | None = None
    person_id: str | None = None
    site_label: str | None = None
    http_status: int = 200
    content_type: str | None = None
    expected_sha256: str | None = None
    bbox: tuple[int, int, int, int] | None = None
    crop: bool = False
    width: int = 0
    height: int = 0
    image_format: str | None = None
    content_hash: str | None = None
    original_hash: str | None = None
    original_bytes: int | None = None
    analysis: dict | None = None
    extra: dict | None = None
