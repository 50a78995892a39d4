"""What every harvesting spider shares: image requests, the fetch ledger, the per-person cap, drop counts."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import scrapy
from scrapy import signals
from scrapy.exceptions import (
    DownloadCancelledError,
    DownloadTimeoutError,
    IgnoreRequest,
    ResponseDataLossError,
)
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.python.failure import Failure

from anfe.core.dataset import normalise_gender
from anfe.core.errors import DatasetError
from anfe.core.layout import safe_label

from ..frontier import CAP_LIMIT, CAP_PERSON, LEDGER_CHECKED, report_done
from ..items import PhotoItem
from ..ledger import open_ledger
from ..spiderargs import check_spider_arguments

#: Stats keys (also read by the summary extension and the tests).
DROPPED = "anfe/dropped/"
PAGE_ERRORS = "anfe/page_errors/"
SKIPPED = "anfe/skipped/"
#: Page and image requests that got no usable response, by reason, and one message per reason.
FAILED = "anfe/failed_requests/"
FAILURE_EXAMPLE = "anfe/failure_example/"
#: Pages read per step; required selectors that matched nothing, per ``step.key``, with their first URLs.
STEP_PAGES = "anfe/step_pages/"
EMPTY_STEPS = "anfe/empty_steps/"
EMPTY_STEP_URLS = "anfe/empty_step_urls/"
#: The warning of a crawl whose user agent names no contact.
NO_CONTACT = ("no contact in the user agent: run with -s CONTACT=you@example.org (or anfe crawl --contact) "
              "so site owners can reach you")
#: How many URLs are kept per empty step or page error (the count is exact).
URLS_KEPT = 5


def gender_argument(value: str | None) -> str | None:
    """``-a gender=F`` / ``female`` / ``woman`` -> ``female``; refuses names unusable as a folder."""
    if value in (None, ""):
        return None
    try:
        return safe_label(normalise_gender(str(value)))
    except DatasetError as exc:
        raise ValueError(f"-a gender={value!r}: {exc}") from exc


def host_allowed(url: str, domains: list[str]) -> bool:
    """True when the URL's host (port ignored) is one of ``domains`` or a subdomain of one."""
    host = (urlparse(url).hostname or "").lower().rstrip(".")
    return any(host == d.lower() or host.endswith("." + d.lower()) for d in domains)


def count_drop(stats: Any, reason: str, n: int = 1) -> None:
    """Count one dropped image (or person, for ``no-gender``) under ``anfe/dropped/<reason>``."""
    stats.inc_value(DROPPED + reason, n)


def note_url(stats: Any, key: str, url: str) -> None:
    """Keep ``url`` in the list stat ``key`` (the first :data:`URLS_KEPT` only)."""
    urls = list(stats.get_value(key) or [])
    if len(urls) < URLS_KEPT and url not in urls:
        stats.set_value(key, [*urls, url])


def failure_reason(failure: Failure) -> str:
    """A short reason code for a failed request: ``http-404``, ``robots-txt``, ``network-error``..."""
    if failure.check(HttpError):
        return f"http-{failure.value.response.status}"
    if failure.check(IgnoreRequest):
        message = str(failure.value).lower()
        if "already-fetched" in message:
            return "already-fetched"
        if "robots" in message:
            return "robots-txt"
        if "offsite" in message:  # e.g. an image redirected to another host
            return "off-domain"
        return "too-many-redirects" if "redirections" in message else "ignored"
    if failure.check(DownloadCancelledError):
        return "too-large-file"  # over DOWNLOAD_MAXSIZE
    if failure.check(ResponseDataLossError):
        return "incomplete-download"
    if failure.check(DownloadTimeoutError):
        return "timeout"
    return "network-error"


def count_failure(stats: Any, failure: Failure) -> str:
    """Count a failed page or image request under ``anfe/failed_requests/<reason>`` (keeping the
    first message of each reason, e.g. the DNS error) and return the reason."""
    reason = failure_reason(failure)
    stats.inc_value(FAILED + reason)
    if stats.get_value(FAILURE_EXAMPLE + reason) is None:
        message = " ".join(str(failure.value).split()) or type(failure.value).__name__
        stats.set_value(FAILURE_EXAMPLE + reason, message[:200])
    return reason


class HarvestSpider(scrapy.Spider):
    """Base of the harvesting spiders: they find photos, this class turns them into image requests.

    Arguments every spider takes: ``-a gender=female`` (the label of everything this run finds,
    when known), ``-a max_images_per_person=N`` (else the MAX_IMAGES_PER_PERSON setting).
    """

    site = "unknown"

    def __init__(self, *args: Any, gender: str | None = None,
                 max_images_per_person: str | int | None = None, **kwargs: Any) -> None:
        # Every argument a subclass takes was consumed by its own __init__: what is left is unknown
        # (a misspelling must not fall back to a default, e.g. the live site's profile).
        check_spider_arguments(type(self), {k: v for k, v in kwargs.items() if k != "name"})
        super().__init__(*args, **kwargs)
        self.gender_arg = gender_argument(gender)
        self._cap_arg = int(max_images_per_person) if max_images_per_person else None
        self._offsite_seen: set[str] = set()
        self._local_counts: dict[str, int] = {}
        self.ledger: Any = None  # UrlLedger, or RedisLedger with REDIS_URL
        #: This run's name on the image requests it looked up in the ledger (see AlreadyFetchedMiddleware).
        self.run_token = uuid.uuid4().hex

    @classmethod
    def update_settings(cls, settings: Any) -> None:
        """Put CONTACT into the user agent unless the user set USER_AGENT themselves."""
        super().update_settings(settings)
        if settings.getpriority("HTTPCACHE_DIR") == 0:  # keep the HTTP cache in the dataset root, not the repo
            root = Path(settings.get("DATASET_ROOT") or "./data")
            settings.set("HTTPCACHE_DIR", str(root.resolve() / "httpcache"), priority="spider")
        if settings.get("REDIS_URL"):  # one frontier in Redis for every process of the crawl
            settings.set("SCHEDULER", "scraper.redisfrontier.RedisScheduler", priority="spider")
        contact = settings.get("CONTACT")
        if contact and settings.getpriority("USER_AGENT") < settings.getpriority("CONTACT"):
            settings.set("USER_AGENT", f"anfe-faces/0.1 (+{contact})",
                         priority=settings.getpriority("CONTACT"))

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> "HarvestSpider":
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider.ledger = open_ledger(crawler.settings)
        spider.max_per_person = spider._cap_arg or crawler.settings.getint("MAX_IMAGES_PER_PERSON", 0)
        crawler.signals.connect(spider._close_ledger, signal=signals.spider_closed)
        if "set CONTACT" in crawler.settings.get("USER_AGENT", ""):
            spider.logger.warning(NO_CONTACT)
        return spider

    def _close_ledger(self, spider: scrapy.Spider) -> None:
        if self.ledger is not None:
            self.ledger.close()
            self.ledger = None

    # -- helpers ---------------------------------------------------------------------------
    @property
    def stats(self) -> Any:
        return self.crawler.stats

    def _person_counts(self) -> dict[str, int]:
        """Images scheduled per person; kept in ``self.state`` (saved in JOBDIR) when there is one."""
        state = getattr(self, "state", None)
        if isinstance(state, dict):
            return state.setdefault("person_images", {})
        return self._local_counts

    def person_full(self, person_key: str) -> bool:
        """True when the person has reached the cap of images (0 = no cap)."""
        return bool(self.max_per_person) and self._person_counts().get(person_key, 0) >= self.max_per_person

    def allowed(self, url: str) -> bool:
        """True for http(s) URLs on the allowed domains; counts each off-domain URL once."""
        domains = list(getattr(self, "allowed_domains", None) or [])
        if urlparse(url).scheme not in ("http", "https"):
            count_drop(self.stats, "bad-url")
            return False
        if not domains or host_allowed(url, domains):
            return True
        if url not in self._offsite_seen:
            self._offsite_seen.add(url)
            count_drop(self.stats, "off-domain")
            self.logger.debug("off the allowed domains %s: %s", domains, url)
        return False

    def page_request(self, url: str, callback: Any, **meta: Any) -> scrapy.Request | None:
        """A request for an HTML page, or None when the URL is off the allowed domains."""
        if not self.allowed(url):
            return None
        return scrapy.Request(url, callback=callback, errback=self.page_failed, meta=meta)

    def image_request(self, url: str, *, person_key: str, photo: dict[str, Any],
                      count_for_cap: bool = True) -> scrapy.Request | None:
        """A request for one image, or None when it is off-domain, already fetched, or over the cap.

        ``photo`` holds the :class:`PhotoItem` fields known before the download (gender, person...).
        """
        if not self.allowed(url):
            return None
        if count_for_cap and not self.reserve(person_key):  # photos fetched by earlier runs count too
            return None
        checked = {}
        if self.ledger is not None:
            if self.ledger.seen(url):
                self.stats.inc_value(SKIPPED + "already-fetched")
                return None
            checked = {LEDGER_CHECKED: self.run_token}
        return scrapy.Request(
            url, callback=self.parse_image, errback=self.image_failed, priority=10,
            meta={"anfe_image": True, "photo": photo, **checked,
                  **(self.cap_meta(person_key) if count_for_cap else {})},
        )

    def cap_meta(self, person_key: str) -> dict[str, Any]:
        """The meta that makes the frontier count a request against its person's cap (kept across
        processes and kills; see scraper/frontier.py)."""
        return {CAP_PERSON: person_key, CAP_LIMIT: self.max_per_person} if self.max_per_person else {}

    def reserve(self, person_key: str) -> bool:
        """Count one more image for a person; False (and counted) when the cap is reached."""
        counts = self._person_counts()
        if self.max_per_person and counts.get(person_key, 0) >= self.max_per_person:
            self.stats.inc_value(SKIPPED + "person-cap")
            return False
        counts[person_key] = counts.get(person_key, 0) + 1
        return True

    def note_empty(self, key: str, url: str) -> None:
        """A required selector (``step.key``) matched nothing on ``url``: counted per step, URL kept."""
        self.stats.inc_value(EMPTY_STEPS + key)
        note_url(self.stats, EMPTY_STEP_URLS + key, url)
        self.logger.warning("%s matched nothing on %s", key, url)

    # -- callbacks -------------------------------------------------------------------------
    def parse_image(self, response: scrapy.http.Response) -> Iterator[PhotoItem]:
        """Wrap the downloaded bytes in a :class:`PhotoItem`; the pipelines judge them."""
        photo = dict(response.meta["photo"])
        redirects = response.meta.get("redirect_urls") or [response.url]
        yield PhotoItem(
            url=redirects[0],
            final_url=response.url,
            body=bytes(response.body),
            http_status=response.status,
            content_type=(response.headers.get(b"Content-Type") or b"").decode("latin-1") or None,
            **photo,
        )

    def image_failed(self, failure: Failure) -> None:
        """A failed image request: counted by reason, and remembered unless worth a retry."""
        reason = failure_reason(failure)
        if reason == "already-fetched":  # fetched again after a crash, but its outcome is settled
            self.stats.inc_value(SKIPPED + reason)
            report_done(self.crawler, failure.request)
            return
        count_failure(self.stats, failure)
        count_drop(self.stats, reason)
        url = failure.request.meta.get("redirect_urls", [failure.request.url])[0]
        if self.ledger is not None and reason != "robots-txt":
            self.ledger.record(url, reason)
        self.logger.info("image dropped (%s): %s", reason, failure.request.url)
        report_done(self.crawler, failure.request)

    def page_failed(self, failure: Failure) -> None:
        """A failed page request, counted under ``anfe/page_errors/<reason>``."""
        reason = count_failure(self.stats, failure)
        self.stats.inc_value(PAGE_ERRORS + reason)
        self.logger.info("page failed (%s): %s", reason, failure.request.url)
        report_done(self.crawler, failure.request)
