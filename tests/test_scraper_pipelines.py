"""The pipelines on real photos: what is dropped and why, what is written where, and the ledger."""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image
from scrapy.exceptions import DropItem
from scrapy.http import Request, Response
from scrapy.utils.test import get_crawler

from anfe.core.hashing import content_hash
from anfe.core.store import open_store
from scraper.demosite import bomb_png
from scraper.extensions import crawl_summary
from scraper.items import PhotoItem
from scraper.ledger import UrlLedger, is_transient
from scraper.middlewares import BackoffMiddleware
from scraper.pipelines import CurationGatePipeline, DatasetWriterPipeline, ImageCheckPipeline
from scraper.spiders import UrlListSpider

SETTINGS = {"MIN_IMAGE_WIDTH": 100, "MIN_IMAGE_HEIGHT": 100, "MAX_IMAGE_PIXELS": 80_000_000}


@pytest.fixture(scope="module")
def photos(shared_faces: Path) -> list[bytes]:
    folder = shared_faces / "lfw" / "images" / "Aaron_Peirsol"
    files = sorted(folder.glob("*.jpg"))
    if len(files) < 3:
        pytest.skip(f"LFW photos not found in {folder}")
    return [f.read_bytes() for f in files[:3]]


@pytest.fixture
def crawler(tmp_path):
    listed = tmp_path / "facescrub_actors.txt"
    listed.write_text("")
    crawler = get_crawler(UrlListSpider, {**SETTINGS, "DATASET_ROOT": str(tmp_path / "data")})
    crawler.spider = UrlListSpider.from_crawler(crawler, file=str(listed))
    return crawler


def item(body: bytes, gender: str = "male", url: str = "http://site/a.jpg", **fields) -> PhotoItem:
    return PhotoItem(url=url, body=body, site="test", gender=gender, person_name="Aaron Peirsol", **fields)


def processed(pipeline, it: PhotoItem) -> PhotoItem:
    """The pipeline's coroutine run to its end (on a loop of its own, as the crawl's loop would)."""
    return asyncio.run(pipeline.process_item(it))


def dropped(pipeline, it: PhotoItem) -> str:
    with pytest.raises(DropItem) as caught:
        processed(pipeline, it)
    return str(caught.value).split(":")[0]


def test_check_drops_bad_bytes_with_their_reason(crawler, photos):
    check = ImageCheckPipeline(crawler)
    small = io.BytesIO()
    Image.open(io.BytesIO(photos[0])).resize((60, 60)).save(small, "JPEG")
    cases = {
        "empty-file": b"",
        "not-an-image": b"<!DOCTYPE html><html><body>Please log in</body></html>",
        "truncated": photos[0][: len(photos[0]) // 2],
        "too-small": small.getvalue(),
        "too-many-pixels": bomb_png(),
    }
    for reason, body in cases.items():
        assert dropped(check, item(body)) == reason
        assert crawler.stats.get_value(f"anfe/dropped/{reason}") == 1
    assert dropped(check, item(photos[0], expected_sha256="0" * 64)) == "hash-mismatch"
    ok = processed(check, item(photos[0], expected_sha256=content_hash(photos[0])))
    assert (ok.width, ok.height, ok.image_format) == (250, 250, "JPEG")


def test_a_bomb_is_refused_from_its_header(crawler):
    check = ImageCheckPipeline(crawler)
    start = time.perf_counter()
    assert dropped(check, item(bomb_png(30000, 30000))) == "too-many-pixels"
    assert time.perf_counter() - start < 1.0  # 900 million pixels were never decoded


def test_crop_is_a_derived_file_that_keeps_the_original_hash(crawler, photos):
    out = processed(ImageCheckPipeline(crawler), item(photos[0], bbox=(50, 40, 200, 210), crop=True))
    assert (out.width, out.height) == (150, 170)
    assert out.original_hash == content_hash(photos[0]) and out.body != photos[0]
    assert Image.open(io.BytesIO(out.body)).size == (150, 170)
    assert dropped(ImageCheckPipeline(crawler), item(photos[0], bbox=(300, 300, 400, 400), crop=True)) == "bad-bbox"


def test_one_face_of_one_photo_is_stored_once_as_a_crop(crawler, photos, tmp_path):
    """A crop is identified by its source photo and box: the same face again (another URL, an
    overlapping box) is a duplicate, another face of the photo is another crop, a crop of a photo
    stored whole is a duplicate of it, and the same face under another gender is a conflict."""
    check, writer = ImageCheckPipeline(crawler), DatasetWriterPipeline(crawler)
    writer.open_spider()
    try:
        def crop(body, box, url, gender="male"):
            return processed(check, item(body, gender=gender, url=url, bbox=box, crop=True))

        first = processed(writer, crop(photos[0], (75, 62, 175, 187), "http://site/1.jpg"))
        assert first.original_hash == content_hash(photos[0])
        assert dropped(writer, crop(photos[0], (10, 10, 200, 200), "http://site/1-copy.jpg")) == "exact-duplicate"
        processed(writer, crop(photos[0], (0, 0, 110, 110), "http://site/1.jpg#corner"))  # mostly elsewhere
        assert dropped(writer, crop(photos[0], (70, 60, 180, 190), "http://site/1-f.jpg", "female")) == "label-conflict"
        processed(writer, processed(check, item(photos[1], url="http://site/2.jpg")))  # stored whole
        assert dropped(writer, crop(photos[1], (75, 62, 175, 187), "http://site/2-crop.jpg")) == "exact-duplicate"
        records = writer.store.find_images(original_hash=content_hash(photos[0]))
        assert len(records) == 2 and all(r["derived"] == "crop" for r in records)
        face = next(r for r in records if r["bbox"] == [75, 62, 175, 187])
        assert face["other_urls"] == ["http://site/1-copy.jpg", "http://site/1-f.jpg"]
        assert face["label_conflict"] and face["conflicting_genders"] == ["female", "male"]
        assert writer.store.get_image(content_hash(photos[1]))["other_urls"] == ["http://site/2-crop.jpg"]
    finally:
        writer.close_spider()


def test_writer_stores_original_bytes_once_and_records_them(crawler, photos, tmp_path):
    check, writer = ImageCheckPipeline(crawler), DatasetWriterPipeline(crawler)
    writer.open_spider()
    root = tmp_path / "data"
    try:
        stored = processed(writer, processed(check, 
            item(photos[0], url="http://site/../../../etc/passwd.jpg", page_url="http://site/p", http_status=200)))
        path = root / "images" / "male" / f"{content_hash(photos[0])}.jpg"
        assert path.read_bytes() == photos[0]  # no re-encoding
        assert stored.body == b""
        # the same bytes under another URL: a duplicate, recorded, not written twice
        assert dropped(writer, processed(check, item(photos[0], url="http://mirror/b.jpg"))) == "exact-duplicate"
        # ... and found as another gender: a label conflict for review, never a second folder
        assert dropped(writer, processed(check, item(photos[0], gender="female", url="http://c/c.jpg"))) == "label-conflict"
        assert not (root / "images" / "female").exists()
        assert dropped(writer, processed(check, item(photos[1], gender="../../etc"))) == "bad-label"
    finally:
        writer.close_spider()
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert all(f.startswith(("images/male/", "catalog.sqlite", "crawl_ledger.sqlite")) for f in files), files
    with open_store(None, root) as store:
        (record,) = store.find_images()
    assert record["path"] == f"images/male/{content_hash(photos[0])}.jpg"
    assert record["url"] == "http://site/../../../etc/passwd.jpg" and record["page_url"] == "http://site/p"
    assert (record["width"], record["height"], record["bytes"]) == (250, 250, len(photos[0]))
    assert record["person_name"] == "Aaron Peirsol" and record["source"] == "crawl" and record["fetched_at"]
    assert record["other_urls"] == ["http://mirror/b.jpg", "http://c/c.jpg"]
    assert record["label_conflict"] is True and record["conflicting_genders"] == ["female", "male"]
    assert record["conflicts"][0]["url"] == "http://c/c.jpg"
    ledger = crawler.spider.ledger
    assert ledger.outcome("http://site/../../../etc/passwd.jpg") == "stored"
    assert ledger.outcome("http://mirror/b.jpg") == "exact-duplicate"


def test_ledger_forgets_transient_failures(tmp_path):
    ledger = UrlLedger(tmp_path / "l.sqlite")
    ledger.record("http://a/1.jpg", "http-404")
    ledger.record("http://a/2.jpg", "http-503")
    ledger.record("http://a/3.jpg", "network-error")
    assert ledger.seen("http://a/1.jpg") and not ledger.seen("http://a/2.jpg") and not ledger.seen("http://a/3.jpg")
    assert is_transient("http-429") and not is_transient("too-small")
    ledger.close()


def test_gate_is_off_unless_asked(crawler, photos):
    gate = CurationGatePipeline(crawler)
    gate.open_spider()
    it = item(photos[0])
    assert processed(gate, it) is it and it.analysis is None
    gate.close_spider()


def test_backoff_slows_a_domain_that_answers_429():
    slot = SimpleNamespace(delay=1.0)
    downloader = SimpleNamespace(slots={"site": slot}, get_slot_key=lambda request: "site")
    crawler = get_crawler(settings_dict={"BACKOFF_DELAY": 60})
    crawler.engine = SimpleNamespace(downloader=downloader)
    crawler.spider = SimpleNamespace(logger=SimpleNamespace(warning=lambda *a: None))
    middleware = BackoffMiddleware(crawler)
    request = Request("http://site/x")
    middleware.process_response(request, Response("http://site/x", status=200))
    assert slot.delay == 1.0
    middleware.process_response(request, Response("http://site/x", status=429, headers={"Retry-After": "5"}))
    assert slot.delay == 5.0
    middleware.process_response(request, Response("http://site/x", status=503))
    assert slot.delay == 60.0


def test_summary_groups_the_stats():
    summary = crawl_summary({"anfe/images/female": 2, "anfe/images/stored": 2, "anfe/dropped/too-small": 1,
                             "anfe/page_requests": 5, "robotstxt/forbidden": 1})
    assert summary["images_by_gender"] == {"female": 2} and summary["images_stored"] == 2
    assert summary["dropped"] == {"too-small": 1} and summary["pages"] == 5 and summary["robots_forbidden"] == 1
