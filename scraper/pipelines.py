"""Item pipelines: check each photo, optionally gate it on its faces, then store it once by content hash.

Order (ITEM_PIPELINES): :class:`ImageCheckPipeline` (bytes are a whole image of allowed size,
sha256 as promised, optional crop) -> :class:`CurationGatePipeline` (only with CURATION_GATE) ->
:class:`DatasetWriterPipeline` (``images/<gender>/<sha256>.<ext>`` plus one store record).
Every drop raises ``DropItem`` and is counted under ``anfe/dropped/<reason>``; final outcomes go
to the fetch ledger so that a re-run never downloads the same URL again. A store that fails (after
its own retries) stops the crawl with its one-line error (``anfe/store_error``); the photos it
could not record are not in the ledger and their pages stay in the frontier (``NotSettled``), so
the same command again fetches and records them.

Each pipeline builds what it uses in ``from_crawler``: its own connection to the fetch ledger
(:func:`scraper.ledger.open_ledger`) and, for the writer, the store. The writer is the step that
puts the photo's bytes on disk; the item leaves it without them.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from PIL import Image
from scrapy.exceptions import DropItem

import anfe
from anfe.faces.analysis import ImageAnalysis
from anfe.faces.checks import EXACT_DUPLICATE, LABEL_CONFLICT, MANY_FACES, NO_FACE, SMALL_FACE, TOO_SMALL, UNREADABLE
from anfe.core.crashpoints import crash_point
from anfe.core.config import DEFAULT_MAX_PIXELS, AnalysisParams
from anfe.core.errors import DatasetError, ImageError, StoreError
from anfe.core.hashing import content_hash
from anfe.faces.imaging import open_image, to_rgb_array
from anfe.core.layout import DatasetLayout, content_file_name, safe_label, write_atomically
from anfe.core.store import Store, now_iso, open_store

from .crops import same_face
from .items import NotSettled, PhotoItem
from .ledger import open_ledger
from .spiders.base import count_drop

logger = logging.getLogger(__name__)
#: Stats key holding the store's error once it failed (the crawl then stops; see scraper.cli).
STORE_ERROR_STAT = "anfe/store_error"

#: Pillow formats kept, and the suffix their files get.
FORMAT_SUFFIX = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp",
                 "BMP": ".bmp", "TIFF": ".tif"}


class _PipelineBase:
    """Holds the crawler; ``drop`` counts a reason, records it in the ledger and raises DropItem."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.settings = crawler.settings
        self.stats = crawler.stats
        self.ledger = open_ledger(self.settings)

    def close_spider(self) -> None:
        self.ledger.close()

    @classmethod
    def from_crawler(cls, crawler: Any) -> "_PipelineBase":
        return cls(crawler)

    def drop(self, item: PhotoItem, reason: str, detail: str) -> None:
        """Count ``reason``, remember the URL's outcome (unless transient), raise DropItem."""
        count_drop(self.stats, reason)
        self.ledger.record(item.url, reason, item.content_hash)
        raise DropItem(f"{reason}: {detail} ({item.url})", log_level="INFO")

    def store_failed(self, item: PhotoItem, exc: StoreError | None) -> NoReturn:
        """Stop the crawl (once) with the store's message; the photo is left out of the ledger."""
        if exc is not None and not self.stats.get_value(STORE_ERROR_STAT):
            self.stats.set_value(STORE_ERROR_STAT, str(exc))
            logger.error("stopping the crawl: %s", exc)
            engine = self.crawler.engine
            if engine is not None:
                from scrapy.utils.defer import deferred_from_coro

                deferred_from_coro(engine.close_spider_async(reason="store-error"))
        raise NotSettled(f"not recorded, the store failed ({item.url})", log_level="DEBUG")

    def store_down(self) -> bool:
        """True once the store has failed in this crawl (later photos are not even tried)."""
        return bool(self.stats.get_value(STORE_ERROR_STAT))

    def with_store(self, item: PhotoItem, step: Callable[[PhotoItem], PhotoItem]) -> PhotoItem:
        """``step(item)``, unless the store has failed in this crawl; a store failure stops the crawl."""
        if self.store_down():
            self.store_failed(item, None)
        try:
            return step(item)
        except StoreError as exc:
            self.store_failed(item, exc)


class ImageCheckPipeline(_PipelineBase):
    """Refuse what is not a whole, usable image: empty, HTML, truncated, a bomb, too small, wrong sha256.

    The pixel count is read from the header first, so a decompression bomb is never decoded.
    """

    def __init__(self, crawler: Any) -> None:
        super().__init__(crawler)
        self.min_width = self.settings.getint("MIN_IMAGE_WIDTH", TOO_SMALL.threshold[0])
        self.min_height = self.settings.getint("MIN_IMAGE_HEIGHT", TOO_SMALL.threshold[1])
        self.max_pixels = self.settings.getint("MAX_IMAGE_PIXELS", DEFAULT_MAX_PIXELS)

    def process_item(self, item: PhotoItem) -> PhotoItem:
        if not isinstance(item, PhotoItem):
            return item
        body = item.body
        if not body:
            self.drop(item, "empty-file", "0 bytes")
        if item.expected_sha256 and content_hash(body) != item.expected_sha256:
            self.drop(item, "hash-mismatch", f"sha256 is not the listed {item.expected_sha256[:12]}...")
        try:
            image = open_image(body, self.max_pixels)
            image_format = image.format or ""
            to_rgb_array(image)  # a full decode: catches truncated files
        except ImageError as exc:
            self.drop(item, exc.reason, str(exc))
        if image_format not in FORMAT_SUFFIX:
            self.drop(item, "unsupported-format", f"{image_format or 'unknown'} images are not kept")
        item.image_format = image_format
        item.width, item.height = image.size
        if item.crop and item.bbox:
            self._crop(item, image)
        small = TOO_SMALL.failed(ImageAnalysis("", item.width, item.height), (self.min_width, self.min_height))
        if small:
            self.drop(item, TOO_SMALL.name, small)
        return item

    def _crop(self, item: PhotoItem, image: Image.Image) -> None:
        """Replace the bytes by the crop to ``bbox`` (a derived file; the original's hash is kept)."""
        x1, y1, x2, y2 = item.bbox
        x1, y1 = max(0, x1), max(0, y1)
        x2, y2 = min(image.width, x2), min(image.height, y2)
        if x2 - x1 < 1 or y2 - y1 < 1:
            self.drop(item, "bad-bbox", f"box {item.bbox} lies outside the {image.width}x{image.height} image")
        image = open_image(item.body, self.max_pixels)
        cropped = image.crop((x1, y1, x2, y2))
        out = io.BytesIO()
        if item.image_format in ("JPEG", "MPO"):
            cropped.convert("RGB").save(out, "JPEG", quality=95)
            item.image_format = "JPEG"
        else:
            cropped.save(out, "PNG")
            item.image_format = "PNG"
        item.original_hash = content_hash(item.body)
        item.original_bytes = len(item.body)
        item.body = out.getvalue()
        item.width, item.height = cropped.size


class CurationGatePipeline(_PipelineBase):
    """With CURATION_GATE on: drop photos that fail no-face, many-faces or small-face (the checks
    of :mod:`anfe.faces.checks`, as ``anfe clean`` applies them), or are already stored.

    Self-contained over ``anfe`` (analysis cached by content hash in the analysis cache), so a
    crawl can keep only usable photos without the curation package.
    """

    def __init__(self, crawler: Any) -> None:
        super().__init__(crawler)
        self.enabled = self.settings.getbool("CURATION_GATE")
        self.store: Store | None = None
        if not self.enabled:  # a pass-through (NotConfigured would log a warning on every crawl)
            return
        from anfe.faces.cache import AnalysisCache
        from anfe.core.paths import cache_location  # dlib is loaded only when the gate is on

        self.params = AnalysisParams(max_pixels=self.settings.getint("MAX_IMAGE_PIXELS", DEFAULT_MAX_PIXELS))
        self.small_face = (self.settings.getfloat("MIN_EYE_DISTANCE", SMALL_FACE.threshold[0]),
                           self.settings.getint("MIN_FACE_SIDE", SMALL_FACE.threshold[1]))
        self.cache = AnalysisCache(cache_location(self.settings.get("ANALYSIS_CACHE")), self.params.cache_key)

    def open_spider(self) -> None:
        if self.enabled:
            self.store = open_store(self.settings.get("STORE_URI") or None, self.settings.get("DATASET_ROOT"))

    def close_spider(self) -> None:
        super().close_spider()
        if self.enabled:
            if self.store is not None:
                self.store.close()
            self.cache.close()

    def process_item(self, item: PhotoItem) -> PhotoItem:
        if not self.enabled or not isinstance(item, PhotoItem):
            return item
        return self.with_store(item, self._gate)

    def _gate(self, item: PhotoItem) -> PhotoItem:
        digest = content_hash(item.body)
        item.content_hash = digest
        if self.store is not None and self.store.get_image(digest) is not None:
            return item  # the writer records the duplicate (or the label conflict)
        analysis = self.cache.get(digest)
        if analysis is None:
            analysis = anfe.analyse(item.body, self.params)
            self.cache.put_many([analysis])
            self.stats.inc_value("anfe/gate/analysed")
        if not analysis.ok:
            self.drop(item, analysis.error or UNREADABLE.name, analysis.error_detail or "")
        for check, threshold in ((NO_FACE, None), (MANY_FACES, None), (SMALL_FACE, self.small_face)):
            detail = check.failed(analysis, threshold)
            if detail:
                self.drop(item, check.name, detail)
        side = analysis.faces[0].box_side
        item.analysis = {"faces": 1, "face_side": float(side), "phash": analysis.phash,
                         "params": self.params.cache_key}
        return item


class DatasetWriterPipeline(_PipelineBase):
    """Write the original bytes to ``images/<gender>/<sha256>.<ext>`` (once) and one store record.

    The same bytes found again are an ``exact-duplicate`` (its URL is added to ``other_urls``); found
    with another gender they are a ``label-conflict``: recorded for review, never written twice.
    """

    def __init__(self, crawler: Any) -> None:
        super().__init__(crawler)
        self.layout = DatasetLayout(Path(self.settings.get("DATASET_ROOT", "./data")))
        self.store: Store | None = None
        self.claims: Any = None  # with REDIS_URL: one writer per content hash among the processes
        self.recorded: list[Path] = []  # files this crawl recorded: each must exist at the close

    def open_spider(self) -> None:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        self.store = open_store(self.settings.get("STORE_URI") or None, self.layout.root)
        if self.settings.get("REDIS_URL"):
            from .redisfrontier import ContentClaims

            self.claims = ContentClaims(self.settings.get("REDIS_URL"), self.settings.get("REDIS_KEY_PREFIX") or "anfe")

    def close_spider(self) -> None:
        super().close_spider()
        missing = sum(1 for path in self.recorded if not path.is_file())
        if missing:  # e.g. a file deleted by hand during the crawl
            self.stats.set_value("anfe/inconsistent/catalog_row_without_file", missing)
        if self.store is not None:
            self.store.close()
        if self.claims is not None:
            self.claims.close()

    def process_item(self, item: PhotoItem) -> PhotoItem:
        if not isinstance(item, PhotoItem):
            return item
        return self.with_store(item, self._write)

    def _write(self, item: PhotoItem) -> PhotoItem:
        assert self.store is not None
        digest = item.content_hash = content_hash(item.body)
        try:
            gender = safe_label(item.gender)
        except DatasetError as exc:
            self.drop(item, "bad-label", str(exc))
        existing = self.store.get_image(digest)
        if existing is None and self.claims is not None and not self.claims.claim(digest, item.url):
            existing = self.claims.wait_for_record(self.store, digest)  # another process writes these bytes
        if existing is not None:
            self._seen_again(item, existing, gender)
        if item.original_hash:
            self._crop_seen_again(item, gender)
        path = self.layout.gender_dir(gender) / content_file_name(digest, FORMAT_SUFFIX[item.image_format or "JPEG"])
        if not self.layout.inside(path):  # cannot happen with hashed names; guards every write
            self.drop(item, "unsafe-path", f"{path} is outside {self.layout.root}")
        if not path.exists():
            write_atomically(path, item.body)
            crash_point("crawl.file")
        record = {
            "content_hash": digest, "path": path.relative_to(self.layout.root).as_posix(),
            "gender": gender, "site": item.site, "url": item.url, "final_url": item.final_url,
            "page_url": item.page_url, "person_name": item.person_name, "person_id": item.person_id,
            "site_label": item.site_label, "http_status": item.http_status, "bytes": len(item.body),
            "width": item.width, "height": item.height, "format": item.image_format,
            "fetched_at": now_iso(), "source": "crawl", "spider": self.crawler.spider.name,
        }
        if item.original_hash:
            record.update(derived="crop", original_hash=item.original_hash, original_bytes=item.original_bytes,
                          bbox=list(item.bbox or ()))
        if item.extra:
            record.update({k: v for k, v in item.extra.items() if k not in record})
        if item.analysis:
            record["gate"] = item.analysis
        self.store.upsert_image(record)
        crash_point("crawl.record")
        self.recorded.append(path)
        self.ledger.record(item.url, "stored", digest)
        self.stats.inc_value(f"anfe/images/{gender}")
        self.stats.inc_value("anfe/images/stored")
        item.body = b""  # the bytes are on disk; keep items small for feeds and logs
        return item

    def _crop_seen_again(self, item: PhotoItem, gender: str) -> None:
        """A crop of a source photo stored already, whole or as a crop of the same face (see
        :mod:`scraper.crops`), is that file seen again: note the URL, or the conflict, then drop."""
        assert self.store is not None
        whole = self.store.get_image(item.original_hash)
        if whole is not None and not whole.get("original_hash"):
            self._seen_again(item, whole, gender, "a crop of the photo stored whole as")
        for crop in self.store.find_images(original_hash=item.original_hash):
            if same_face(crop.get("bbox"), item.bbox):
                self._seen_again(item, crop, gender, "the same face of the same photo as")

    def _seen_again(self, item: PhotoItem, existing: dict, gender: str, same: str = "same bytes as") -> None:
        """The bytes are stored already: note the new URL, or the conflicting label, then drop.

        The same URL with the same label is this photo fetched again after a crash that came
        between its record and its ledger line: the ledger is completed, nothing is dropped."""
        if item.url == existing.get("url") and existing.get("gender") == gender:
            self.ledger.record(item.url, "stored", existing["content_hash"])
            self.stats.inc_value("anfe/images/settled_again")
            raise DropItem(f"stored before a crash, now settled ({item.url})", log_level="DEBUG")
        urls = list(existing.get("other_urls") or [])
        if item.url != existing.get("url") and item.url not in urls:
            urls.append(item.url)
        self._other_person(item, existing)
        if existing.get("gender") != gender:
            genders = sorted(set(existing.get("conflicting_genders") or [existing.get("gender")]) | {gender})
            self.store.upsert_image({
                "content_hash": existing["content_hash"], "other_urls": urls, "label_conflict": True,
                "conflicting_genders": genders,
                "conflicts": list(existing.get("conflicts") or []) + [
                    {"gender": gender, "url": item.url, "page_url": item.page_url,
                     "person_name": item.person_name, "site": item.site, "at": now_iso()}],
            })
            self.drop(item, LABEL_CONFLICT.name, f"stored as {existing.get('gender')}, now found as {gender}")
        self.store.upsert_image({"content_hash": existing["content_hash"], "other_urls": urls})
        self.drop(item, EXACT_DUPLICATE.name, f"{same} {existing.get('path')}")

    def _other_person(self, item: PhotoItem, existing: dict) -> None:
        """The same photo in another person's gallery: record that person (``other_people``), so
        that ``anfe clean`` sends the photo to review as ``wrong-person``."""
        mine = (item.site, item.person_id or item.person_name)
        if not mine[1] or mine == (existing.get("site"), existing.get("person_id") or existing.get("person_name")):
            return
        people = list(existing.get("other_people") or [])
        if any((p.get("site"), p.get("person_id") or p.get("person_name")) == mine for p in people):
            return
        people.append({"site": item.site, "person_id": item.person_id, "person_name": item.person_name,
                       "url": item.url, "page_url": item.page_url})
        self.store.upsert_image({"content_hash": existing["content_hash"], "other_people": people})
