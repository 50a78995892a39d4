"""A periodic progress line and an end-of-crawl summary (log + JSON report in the dataset root).

The summary says what a crawl produced: pages, images stored per gender, drops by reason, page
errors, how many image downloads were made (0 on a re-run of a finished crawl), and per list how
many people it announced (where the site says so) against how many were followed. A list that
ends before its announced count is a warning naming its URL (``short_lists`` in the report).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.asyncio import create_looping_call

from anfe.layout import write_atomically

from .logformat import quiet_robots_errors

logger = logging.getLogger(__name__)


def _prefixed(stats: dict[str, Any], prefix: str) -> dict[str, int]:
    return {k[len(prefix):]: int(v) for k, v in sorted(stats.items()) if k.startswith(prefix)}


def list_counts(stats: dict[str, Any]) -> dict[str, dict[str, int | None]]:
    """Per list URL: the people it announced (None when the site does not say) and those followed."""
    announced = _prefixed(stats, "anfe/lists/announced/")
    followed = _prefixed(stats, "anfe/lists/followed/")
    return {url: {"announced": announced.get(url), "followed": followed.get(url, 0)}
            for url in sorted(set(announced) | set(followed))}


def crawl_summary(stats: dict[str, Any]) -> dict[str, Any]:
    """The figures a person wants after a crawl, from the crawler's stats."""
    images = _prefixed(stats, "anfe/images/")
    lists = list_counts(stats)
    return {
        "pages": int(stats.get("anfe/page_requests", 0)),
        "responses": int(stats.get("response_received_count", 0)),
        "image_requests": int(stats.get("anfe/image_requests", 0)),
        "images_stored": images.pop("stored", 0),
        "images_by_gender": images,
        "people_by_gender": _prefixed(stats, "anfe/people/"),
        "dropped": _prefixed(stats, "anfe/dropped/"),
        "page_errors": _prefixed(stats, "anfe/page_errors/"),
        "skipped": _prefixed(stats, "anfe/skipped/"),
        "robots_forbidden": int(stats.get("robotstxt/forbidden", 0)),
        "responses_ok": int(stats.get("anfe/responses_ok", 0)),
        "failed_requests": _prefixed(stats, "anfe/failed_requests/"),
        "rendered_pages": int(stats.get("anfe/rendered_pages", 0)),
        "lists": lists,
        "short_lists": [url for url, n in lists.items() if n["announced"] is not None and n["followed"] < n["announced"]],
        "finish_reason": stats.get("finish_reason"),
    }


def crawl_failure(stats: dict[str, Any]) -> str | None:
    """Why a finished crawl got nothing, in one line; None when it got something or was stopped.

    A crawl fails when no page or image request got a 2xx answer and no image was stored, and
    either some requests failed (DNS errors, refused connections, HTTP errors, robots.txt) or no
    request was made at all although nothing was skipped as fetched before (every start URL
    off the allowed domains). A re-run of a finished crawl gets its pages again, or finds its
    requests filtered as seen (``--jobdir``), and so does not fail.
    """
    if stats.get("finish_reason") not in (None, "finished"):
        return None  # stopped by the user or a limit: not a failure of the site
    summary = crawl_summary(stats)
    if summary["responses_ok"] or summary["images_stored"]:
        return None
    failed = summary["failed_requests"]
    if stats.get("anfe/frontier/recovered") and all(r == "robots-txt" or r.startswith("http-") for r in failed):
        return None  # a resumed crawl whose last requests got the site's answer (a refusal is one)
    if failed:
        reasons = []
        for reason, count in sorted(failed.items(), key=lambda kv: (-kv[1], kv[0])):
            example = stats.get(f"anfe/failure_example/{reason}")
            reasons.append(f"{count} {reason}" + (f" ({example})" if example and not reason.startswith("http-") else ""))
        total = sum(failed.values())
        return (f"the crawl got nothing: {'all ' if total > 1 else ''}{total} request{'s' if total > 1 else ''} "
                f"failed: {'; '.join(reasons)}; check the URL, the network and that the site answers")
    filtered = int(stats.get("dupefilter/filtered", 0))
    if summary["pages"] or summary["image_requests"] or filtered or summary["skipped"]:
        return None
    dropped = summary["dropped"]
    hints = [hint for reason, hint in _NOTHING_REQUESTED_HINTS.items() if reason in dropped]
    listed = ", ".join(f"{r} {n}" for r, n in dropped.items()) or "nothing to request"
    return f"the crawl got nothing: no request was made ({listed}); " + ("; ".join(hints) or _NOTHING_REQUESTED_HINT)


#: What to check when a drop reason took every start URL or list row before any request.
_NOTHING_REQUESTED_HINTS = {
    "off-domain": "check the start URLs against the allowed domains (-a allowed_domains=...)",
    "no-gender": "say the gender with -a gender=female|male",
    "bad-row": "fix the URL list's rows (see the warnings above)",
    "bad-url": "give http(s) start URLs",
}
_NOTHING_REQUESTED_HINT = "check the start URLs or the URL list"


class HarvestProgress:
    """Logs a progress line every PROGRESS_INTERVAL seconds and the summary when the spider closes.

    The summary is also written as JSON to CRAWL_REPORT, or by default to
    ``<DATASET_ROOT>/crawl_reports/<spider>-<UTC time>.json`` with the full stats.
    """

    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler
        self.interval = crawler.settings.getfloat("PROGRESS_INTERVAL", 30.0)
        self.report = crawler.settings.get("CRAWL_REPORT")
        self.root = Path(crawler.settings.get("DATASET_ROOT", "./data"))
        self.task: Any = None
        quiet_robots_errors()

    @classmethod
    def from_crawler(cls, crawler: Any) -> "HarvestProgress":
        if not crawler.settings.getbool("HARVEST_PROGRESS_ENABLED", True):
            raise NotConfigured
        ext = cls(crawler)
        crawler.signals.connect(ext.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def spider_opened(self, spider: Any) -> None:
        if self.interval > 0:
            self.task = create_looping_call(self.log_progress)
            self.task.start(self.interval, now=False)

    def log_progress(self) -> None:
        """One line: pages, image downloads, stored per gender, drops so far."""
        s = crawl_summary(self.crawler.stats.get_stats())
        genders = ", ".join(f"{g} {n}" for g, n in s["images_by_gender"].items()) or "none yet"
        logger.info(
            "progress: %d pages, %d image downloads, %d stored (%s), %d dropped",
            s["pages"], s["image_requests"], s["images_stored"], genders, sum(s["dropped"].values()),
        )

    def spider_closed(self, spider: Any, reason: str) -> None:
        """Log the summary and write the JSON report."""
        if self.task is not None and self.task.running:
            self.task.stop()
        stats = self.crawler.stats.get_stats()
        not_done = int(stats.get("anfe/frontier/not_done", 0))
        if reason == "finished" and not_done:  # never "finished" while requests were lost
            reason = f"incomplete ({not_done} requests not done: run the same command again)"
        summary = crawl_summary({**stats, "finish_reason": reason})
        lines = [
            f"crawl summary ({spider.name}, {reason}): {summary['pages']} pages, "
            f"{summary['image_requests']} image downloads, {summary['images_stored']} images stored",
            "  per gender: " + (", ".join(f"{g}: {n}" for g, n in summary["images_by_gender"].items()) or "none"),
            "  dropped: " + (", ".join(f"{r}: {n}" for r, n in summary["dropped"].items()) or "none"),
            "  page errors: " + (", ".join(f"{r}: {n}" for r, n in summary["page_errors"].items()) or "none"),
        ]
        for url, counts in summary["lists"].items():
            announced = "not announced" if counts["announced"] is None else f"{counts['announced']} announced"
            lines.append(f"  list {url}: {announced}, {counts['followed']} followed")
        recovered = int(stats.get("anfe/frontier/recovered", 0))
        if recovered:
            lines.append(f"  resumed: {recovered} requests recovered from the frontier")
        logger.info("\n".join(lines))
        for what, count in _prefixed(stats, "anfe/inconsistent/").items():
            logger.warning("inconsistency found: %s: %d", what.replace("_", " "), count)
        for url in summary["short_lists"]:
            counts = summary["lists"][url]
            logger.warning("list %s ended early: it announced %d people, %d were followed",
                           url, counts["announced"], counts["followed"])
        path = Path(self.report) if self.report else (
            self.root / "crawl_reports"
            / f"{spider.name}-{datetime.now(timezone.utc).strftime('%Y%m%dT%H%M%S%fZ')}.json"
        )
        document = {"spider": spider.name, "summary": summary,
                    "stats": {k: (v if isinstance(v, (int, float, str, bool)) or v is None else str(v))
                              for k, v in sorted(stats.items())}}
        try:
            write_atomically(path, json.dumps(document, indent=2).encode("utf-8"))
        except OSError as exc:
            logger.warning("could not write the crawl report %s: %s", path, exc)
