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

The crawl's event loop only routes: hashing, decoding, cropping, the face analysis and the file
writes run on a thread pool (``PIPELINE_THREADS``; hashlib, Pillow, dlib and file I/O release
the GIL), and the writer's store records and ledger lines are group-committed
(:mod:`scraper.groupcommit`). Within the process, photos with the same content hash (or crops of
the same source photo) are written one at a time (:class:`scraper.keylocks.KeyLocks`), and so are
photos with the same content hash among the processes of a crawl (:mod:`scraper.claims`).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from scrapy.exceptions import DropItem

import anfe
from anfe.faces.analysis import ImageAnalysis
from anfe.faces.checks import EXACT_DUPLICATE, LABEL_CONFLICT, MANY_FACES, NO_FACE, SMALL_FACE, TOO_SMALL, UNREADABLE
from anfe.core.crashpoints import crash_point
from anfe.core.config import DEFAULT_MAX_PIXELS, AnalysisParams
from anfe.core.errors import DatasetError, ImageError, StoreError
from anfe.core.hashing import content_hash
from anfe.faces.imaging import check_decodes, open_image
from anfe.core.layout import DatasetLayout, content_file_name, safe_label, sweep_partial_files, write_atomically
from anfe.core.store import Store, now_iso, open_store

from .claims import CLAIMS_FILE, ContentLocks, LocalContentLocks, hold
from .crops import same_face
from .groupcommit import GroupCommitter
from .items import NotSettled, PhotoItem
from .keylocks import KeyLocks
from .ledger import open_ledger
from .spiders.base import count_drop

logger = logging.getLogger(__name__)
#: Stats key holding the store's error once it failed (the crawl then stops; see scraper.cli).
STORE_ERROR_STAT = "anfe/store_error"

#: Pillow formats kept, and the suffix their files get.
FORMAT_SUFFIX = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "GIF": ".gif", "WEBP": ".webp",
                 "BMP": ".bmp", "TIFF": ".tif"}
T = TypeVar("T")


def pipeline_threads(settings: Any) -> int:
    """``PIPELINE_THREADS``, 0 meaning one per CPU."""
    return settings.getint("PIPELINE_THREADS", 0) or os.cpu_count() or 2


class _PipelineBase:
    """Holds the crawler; ``drop`` counts a reason, records it in the ledger and raises DropItem."""

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.settings = crawler.settings
        self.stats = crawler.stats
        self.ledger = open_ledger(self.settings)
        self.pool = ThreadPoolExecutor(pipeline_threads(self.settings), thread_name_prefix=type(self).__name__)

    def close_spider(self) -> None:
        self.ledger.close()
        self.pool.shutdown(wait=True)

    def in_thread(self, function: Callable[..., T], *args: Any) -> Awaitable[T]:
        """Run ``function(*args)`` on the pipeline's thread pool (off the event loop)."""
        return asyncio.get_running_loop().run_in_executor(self.pool, function, *args)

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

    async def with_store(self, item: PhotoItem, step: Callable[[PhotoItem], Awaitable[PhotoItem]]) -> PhotoItem:
        """``await step(item)``, unless the store has failed in this crawl; a store failure stops the crawl."""
        if self.store_down():
            self.store_failed(item, None)
        try:
            return await step(item)
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

    async def process_item(self, item: PhotoItem) -> PhotoItem:
        if not isinstance(item, PhotoItem):
            return item
        refused = await self.in_thread(self.inspect, item)
        if refused is not None:
            self.drop(item, *refused)
        return item

    def inspect(self, item: PhotoItem) -> tuple[str, str] | None:
        """Check the bytes (on a pool thread); fill the item's size, format and content hash, crop
        it when asked. Returns ``(reason, detail)`` when the photo is refused."""
        body = item.body
        if not body:
            return "empty-file", "0 bytes"
        digest = content_hash(body)
        if item.expected_sha256 and digest != item.expected_sha256:
            return "hash-mismatch", f"sha256 is not the listed {item.expected_sha256[:12]}..."
        try:
            image = open_image(body, self.max_pixels)
            image_format, size = image.format or "", image.size
            check_decodes(image)  # every byte decoded: catches truncated and broken files
        except ImageError as exc:
            return exc.reason, str(exc)
        if image_format not in FORMAT_SUFFIX:
            return "unsupported-format", f"{image_format or 'unknown'} images are not kept"
        item.image_format = image_format
        item.width, item.height = size
        item.content_hash = digest
        if item.crop and item.bbox:
            refused = self._crop(item, size)
            if refused is not None:
                return refused
        small = TOO_SMALL.failed(ImageAnalysis("", item.width, item.height), (self.min_width, self.min_height))
        return (TOO_SMALL.name, small) if small else None

    def _crop(self, item: PhotoItem, size: tuple[int, int]) -> tuple[str, str] | None:
        """Replace the bytes by the crop to ``bbox`` (a derived file; the original's hash is kept)."""
        x1, y1, x2, y2 = item.bbox
        x1, y1 = max(0, x1), max(0, y1)
        x2, y2 = min(size[0], x2), min(size[1], y2)
        if x2 - x1 < 1 or y2 - y1 < 1:
            return "bad-bbox", f"box {item.bbox} lies outside the {size[0]}x{size[1]} image"
        image = open_image(item.body, self.max_pixels)
        cropped = image.crop((x1, y1, x2, y2))
        out = io.BytesIO()
        if item.image_format in ("JPEG", "MPO"):
            cropped.convert("RGB").save(out, "JPEG", quality=95)
            item.image_format = "JPEG"
        else:
            cropped.save(out, "PNG")
            item.image_format = "PNG"
        item.original_hash = item.content_hash
        item.original_bytes = len(item.body)
        item.body = out.getvalue()
        item.content_hash = content_hash(item.body)
        item.width, item.height = cropped.size
        return None


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
        self.analyser = ThreadPoolExecutor(1, thread_name_prefix="anfe-gate")

    def open_spider(self) -> None:
        if self.enabled:
            self.store = open_store(self.settings.get("STORE_URI") or None, self.settings.get("DATASET_ROOT"))

    def close_spider(self) -> None:
        super().close_spider()
        if self.enabled:
            if self.store is not None:
                self.store.close()
            self.cache.close()
            self.analyser.shutdown(wait=True)

    async def process_item(self, item: PhotoItem) -> PhotoItem:
        if not self.enabled or not isinstance(item, PhotoItem):
            return item
        return await self.with_store(item, self._gate)

    async def _gate(self, item: PhotoItem) -> PhotoItem:
        digest = item.content_hash = item.content_hash or content_hash(item.body)
        if self.store is not None and self.store.get_image(digest) is not None:
            return item  # the writer records the duplicate (or the label conflict)
        analysis = self.cache.get(digest)
        if analysis is None:
            loop = asyncio.get_running_loop()  # one analysis at a time: dlib's models are not shared by threads
            analysis = await loop.run_in_executor(self.analyser, anfe.analyse, item.body, self.params)
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


@dataclass(frozen=True)
class _SeenAgain:
    """What the writer does with bytes stored already: the record updates, the ledger's outcome,
    the drop count (None: not a drop, the photo is settled again) and the DropItem message."""

    key: str
    updates: list[dict]
    outcome: str
    drop_reason: str | None
    message: str


class DatasetWriterPipeline(_PipelineBase):
    """Write the original bytes to ``images/<gender>/<sha256>.<ext>`` (once) and one store record.

    The same bytes found again are an ``exact-duplicate`` (its URL is added to ``other_urls``); found
    with another gender they are a ``label-conflict``: recorded for review, never written twice.
    The file is written and synced on a pool thread; the record and the ledger line are
    group-committed, and the item leaves the writer only once they are durable.
    """

    def __init__(self, crawler: Any) -> None:
        super().__init__(crawler)
        self.layout = DatasetLayout(Path(self.settings.get("DATASET_ROOT", "./data")))
        self.store: Store | None = None
        self.committer: GroupCommitter | None = None
        self.claims: ContentLocks | None = None  # one photo at a time per content hash among processes
        self.locks = KeyLocks()
        self.recorded: list[Path] = []  # files this crawl recorded: each must exist at the close
        self._gender_dirs: dict[str, Path] = {}

    def open_spider(self) -> None:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        removed = sweep_partial_files(self.layout.images)  # their URLs have no ledger line: fetched again
        if removed:
            self.stats.set_value("anfe/partial_files_removed", removed)
            logger.info("removed %d partial files left by a killed crawl (their photos are fetched again)", removed)
        uri = self.settings.get("STORE_URI") or None
        self.store = open_store(uri, self.layout.root)
        self.committer = GroupCommitter(lambda: open_store(uri, self.layout.root), lambda: open_ledger(self.settings))
        if self.settings.get("REDIS_URL"):
            from .redisfrontier import RedisContentLocks

            self.claims = RedisContentLocks(self.settings.get("REDIS_URL"), self.settings.get("REDIS_KEY_PREFIX") or "anfe")
        elif self.settings.getbool("LOCAL_CLAIMS"):
            self.claims = LocalContentLocks(self.layout.root / CLAIMS_FILE)

    def close_spider(self) -> None:
        super().close_spider()
        missing = sum(1 for path in self.recorded if not path.is_file())
        if missing:  # e.g. a file deleted by hand during the crawl
            self.stats.set_value("anfe/inconsistent/catalog_row_without_file", missing)
        if self.committer is not None:
            self.stats.set_value("anfe/commit/batches", self.committer.batches)
            self.stats.set_value("anfe/commit/largest_batch", self.committer.largest)
            self.committer.close()
        if self.store is not None:
            self.store.close()
        if self.claims is not None:
            self.claims.close()

    async def process_item(self, item: PhotoItem) -> PhotoItem:
        if not isinstance(item, PhotoItem):
            return item
        return await self.with_store(item, self._write)

    async def _write(self, item: PhotoItem) -> PhotoItem:
        assert self.store is not None and self.committer is not None
        digest = item.content_hash = item.content_hash or content_hash(item.body)
        try:
            gender = safe_label(item.gender)
        except DatasetError as exc:
            self.drop(item, "bad-label", str(exc))
        keys = sorted({digest, *([item.original_hash] if item.original_hash else [])})
        await self.locks.acquire(keys)
        held: list[str] = []
        try:
            for key in keys if self.claims is not None else ():
                await hold(self.claims, key)
                held.append(key)
            seen = self._seen_again(item, digest, gender)
            if seen is not None:
                await self.committer.write(seen.updates, [(item.url, seen.outcome, seen.key)])
                if seen.drop_reason is None:
                    self.stats.inc_value("anfe/images/settled_again")
                    raise DropItem(seen.message, log_level="DEBUG")
                count_drop(self.stats, seen.drop_reason)
                raise DropItem(seen.message, log_level="INFO")
            path = self._gender_dir(item, gender) / content_file_name(digest, FORMAT_SUFFIX[item.image_format or "JPEG"])
            await self.in_thread(_write_file, path, item.body)
            record = self._record(item, digest, gender, path)
            await self.committer.write([record], [(item.url, "stored", digest)])
        finally:
            for key in held:
                self.claims.unlock(key)
            self.locks.release(keys)
        self.recorded.append(path)
        self.stats.inc_value(f"anfe/images/{gender}")
        self.stats.inc_value("anfe/images/stored")
        item.body = b""  # the bytes are on disk; keep items small for feeds and logs
        return item

    def _gender_dir(self, item: PhotoItem, gender: str) -> Path:
        """The gender's folder, checked once to lie inside the root (file names are hex digests
        with a known suffix, so a file in it cannot leave it)."""
        folder = self._gender_dirs.get(gender)
        if folder is None:
            folder = self.layout.gender_dir(gender)
            if not self.layout.inside(folder / "x"):
                self.drop(item, "unsafe-path", f"{folder} is outside {self.layout.root}")
            self._gender_dirs[gender] = folder
        return folder

    def _record(self, item: PhotoItem, digest: str, gender: str, path: Path) -> dict:
        """The photo's store record."""
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
        return record

    def _seen_again(self, item: PhotoItem, digest: str, gender: str) -> _SeenAgain | None:
        """The stored photo these bytes are (the same bytes, or a crop of a photo stored whole or of
        the same face of it, see :mod:`scraper.crops`) and what to do, or None for a new photo."""
        assert self.store is not None
        existing = self.store.get_image(digest)
        if existing is not None:
            return self._seen_outcome(item, existing, gender, "same bytes as")
        if not item.original_hash:
            return None
        whole = self.store.get_image(item.original_hash)
        if whole is not None and not whole.get("original_hash"):
            return self._seen_outcome(item, whole, gender, "a crop of the photo stored whole as")
        for crop in self.store.find_images(original_hash=item.original_hash):
            if same_face(crop.get("bbox"), item.bbox):
                return self._seen_outcome(item, crop, gender, "the same face of the same photo as")
        return None

    def _seen_outcome(self, item: PhotoItem, existing: dict, gender: str, same: str) -> _SeenAgain:
        """Bytes stored already: note the new URL (and person), or the conflicting label.

        The same URL with the same label is this photo fetched again after a crash that came
        between its record and its ledger line: the ledger is completed, nothing is dropped."""
        key = existing["content_hash"]
        if item.url == existing.get("url") and existing.get("gender") == gender:
            return _SeenAgain(key, [], "stored", None, f"stored before a crash, now settled ({item.url})")
        urls = list(existing.get("other_urls") or [])
        if item.url != existing.get("url") and item.url not in urls:
            urls.append(item.url)
        update: dict[str, Any] = {"content_hash": key, "other_urls": urls, **self._other_person(item, existing)}
        if existing.get("gender") != gender:
            genders = sorted(set(existing.get("conflicting_genders") or [existing.get("gender")]) | {gender})
            update.update(label_conflict=True, conflicting_genders=genders, conflicts=[
                *(existing.get("conflicts") or []),
                {"gender": gender, "url": item.url, "page_url": item.page_url,
                 "person_name": item.person_name, "site": item.site, "at": now_iso()}])
            message = f"stored as {existing.get('gender')}, now found as {gender}"
            return _SeenAgain(key, [update], LABEL_CONFLICT.name, LABEL_CONFLICT.name,
                              f"{LABEL_CONFLICT.name}: {message} ({item.url})")
        return _SeenAgain(key, [update], EXACT_DUPLICATE.name, EXACT_DUPLICATE.name,
                          f"{EXACT_DUPLICATE.name}: {same} {existing.get('path')} ({item.url})")

    def _other_person(self, item: PhotoItem, existing: dict) -> dict[str, Any]:
        """The same photo in another person's gallery: the ``other_people`` update (so that ``anfe
        clean`` sends the photo to review as ``wrong-person``), or nothing."""
        mine = (item.site, item.person_id or item.person_name)
        if not mine[1] or mine == (existing.get("site"), existing.get("person_id") or existing.get("person_name")):
            return {}
        people = list(existing.get("other_people") or [])
        if any((p.get("site"), p.get("person_id") or p.get("person_name")) == mine for p in people):
            return {}
        people.append({"site": item.site, "person_id": item.person_id, "person_name": item.person_name,
                       "url": item.url, "page_url": item.page_url})
        return {"other_people": people}


def _write_file(path: Path, body: bytes) -> None:
    """Write the photo once (atomically, synced), on a pool thread; an existing file is the same bytes."""
    if not path.exists():
        write_atomically(path, body)
        crash_point("crawl.file")

