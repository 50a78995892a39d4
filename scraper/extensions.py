"""A progress line and an end-of-crawl summary (log + JSON report in the dataset root), and the exit code.

The summary says what a crawl produced: pages, images stored per gender, drops by reason, page
errors (with the URLs of callback errors), how many image downloads were made (0 on a re-run of a
finished crawl), and per list how many people it announced (where the site says so) against how
many were followed. A list that ends before its announced count is a warning naming its URL
(``short_lists`` in the report); so is a chain stopped for bringing nothing new, and a budget
(pages, depth) that stopped the crawl. It ends with the worst steps: the required selectors that
matched nothing most often, and the steps whose pages raised.

Pages and image downloads are counted once per request: retries are shown apart, so the summary
and the failure line (``all 3 requests failed``) count the same things.

Exit codes (:func:`crawl_outcome`): 0 complete; 1 nothing was got (or the store failed); 3 finished,
but with page errors of the crawl's own (a callback that raised, an answer that could not be read),
required selectors that matched nothing, or a chain or budget that cut the crawl short. A page the
site answered with an HTTP error (404...) is reported, not an exit code.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.exceptions import NotConfigured
from scrapy.utils.asyncio import create_looping_call

from anfe.core.layout import write_atomically

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


def _lists_of(stats: dict[str, Any], prefix: str) -> dict[str, list[str]]:
    return {k[len(prefix):]: list(v) for k, v in sorted(stats.items()) if k.startswith(prefix) and isinstance(v, list)}


#: Page errors that are the crawl's own fault (the profile or the code), not the site's answer.
OWN_PAGE_ERRORS = ("exception", "not-json", "not-html")
#: How many steps the summary's last lines name.
WORST_STEPS = 5


def worst_steps(stats: dict[str, Any], n: int = WORST_STEPS) -> list[dict[str, Any]]:
    """The ``n`` steps with the most pages on which a required selector matched nothing or the
    callback raised: step, what went wrong, how many pages, of how many read, and example URLs."""
    pages = _prefixed(stats, "anfe/step_pages/")
    urls = _lists_of(stats, "anfe/empty_step_urls/")
    rows = [{"step": key, "problem": "matched nothing", "pages": count, "of": pages.get(key.split(".")[0]),
             "urls": urls.get(key, [])} for key, count in _prefixed(stats, "anfe/empty_steps/").items()]
    errors = _lists_of(stats, "anfe/page_error_urls/").get("exception", [])
    rows += [{"step": step, "problem": "raised", "pages": count, "of": pages.get(step), "urls": errors}
             for step, count in _prefixed(stats, "anfe/step_errors/").items()]
    return sorted(rows, key=lambda row: (-row["pages"], row["step"]))[:n]


def crawl_summary(stats: dict[str, Any]) -> dict[str, Any]:
    """The figures a person wants after a crawl, from the crawler's stats."""
    images = _prefixed(stats, "anfe/images/")
    lists = list_counts(stats)
    page_retries = int(stats.get("anfe/page_retries", 0))
    image_retries = int(stats.get("anfe/image_retries", 0))
    return {
        "pages": int(stats.get("anfe/page_requests", 0)) - page_retries,
        "page_retries": page_retries,
        "responses": int(stats.get("response_received_count", 0)),
        "image_requests": int(stats.get("anfe/image_requests", 0)) - image_retries,
        "image_retries": image_retries,
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
        "page_error_urls": _lists_of(stats, "anfe/page_error_urls/"),
        "empty_steps": _prefixed(stats, "anfe/empty_steps/"),
        "stalled": _prefixed(stats, "anfe/stalled/"),
        "budget": {"max_pages": stats.get("anfe/budget/max_pages"),
                   "depth_limit_ignored": int(stats.get("depth/request_ignored_count", 0))},
        "worst_steps": worst_steps(stats),
        "log_warnings": int(stats.get("log_count/WARNING", 0)),
        "log_errors": int(stats.get("log_count/ERROR", 0)),
        "finish_reason": stats.get("finish_reason"),
    }


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def summary_lines(spider: str, reason: str, summary: dict[str, Any], depth_limit: int = 0) -> list[str]:
    """The summary a person reads, line by line: figures, lists, bounds, then the worst steps.

    Sections are separate blocks of this function so other facts (the frontier's) slot in before
    the worst steps, which always come last.
    """
    retries = summary["page_retries"] + summary["image_retries"]
    lines = [
        f"crawl summary ({spider}, {reason}): {_count(summary['pages'], 'page')}, "
        f"{summary['image_requests']} image downloads, {summary['images_stored']} images stored"
        + (f" ({retries} {'retry' if retries == 1 else 'retries'} not counted)" if retries else ""),
        "  per gender: " + (", ".join(f"{g}: {n}" for g, n in summary["images_by_gender"].items()) or "none"),
        "  dropped: " + (", ".join(f"{r}: {n}" for r, n in summary["dropped"].items()) or "none"),
    ]
    errors = []
    for kind, n in summary["page_errors"].items():
        example = summary["page_error_urls"].get(kind)
        errors.append(f"{kind}: {n}" + (f" (first: {example[0]})" if example else ""))
    lines.append("  page errors: " + (", ".join(errors) or "none"))
    for url, counts in summary["lists"].items():
        announced = "not announced" if counts["announced"] is None else f"{counts['announced']} announced"
        lines.append(f"  list {url}: {announced}, {counts['followed']} followed")
    # -- bounds: what cut the crawl short
    for url in summary["short_lists"]:
        lines.append(f"  warning: {short_list_warning(url, summary['lists'][url])}")
    for url, run in summary["stalled"].items():
        lines.append(f"  stopped: {url}: its next pages brought nothing new for {run} pages in a row")
    if summary["budget"]["max_pages"]:
        lines.append(f"  stopped by the page budget: {summary['budget']['max_pages']} pages (raise it with --max-pages)")
    if summary["budget"]["depth_limit_ignored"]:
        lines.append(f"  stopped by the depth limit{f' of {depth_limit}' if depth_limit else ''}: "
                     f"{_count(summary['budget']['depth_limit_ignored'], 'link')} not followed (DEPTH_LIMIT)")
    if summary["log_warnings"] or summary["log_errors"]:
        lines.append(f"  log: {_count(summary['log_warnings'], 'warning')}, {_count(summary['log_errors'], 'error')}")
    # -- last: the worst steps
    worst = summary["worst_steps"]
    if not worst:
        lines.append("  steps: every required selector matched on every page")
    else:
        lines.append(f"  worst steps ({len(worst)}):")
        for row in worst:
            of = f" of {row['of']}" if row["of"] else ""
            first = f"; first: {row['urls'][0]}" if row["urls"] else ""
            lines.append(f"    {row['step']} {row['problem']} on {row['pages']}{of} pages{first}")
    return lines


def closing_summary(spider: str, reason: str, stats: dict[str, Any], depth_limit: int = 0
                    ) -> tuple[dict[str, Any], list[str]]:
    """The summary and its lines at the close of a crawl (or of several, their stats merged)."""
    not_done = int(stats.get("anfe/frontier/not_done", 0))
    if reason == "finished" and not_done:  # never "finished" while requests were lost
        reason = f"incomplete ({not_done} requests not done: run the same command again)"
    summary = crawl_summary({**stats, "finish_reason": reason})
    lines = summary_lines(spider, reason, summary, depth_limit)
    recovered = int(stats.get("anfe/frontier/recovered", 0))
    if recovered:
        lines.append(f"  resumed: {recovered} requests recovered from the frontier")
    for what, count in _prefixed(stats, "anfe/inconsistent/").items():  # shown in the summary, never only logged
        lines.append(f"  warning: inconsistency found: {what.replace('_', ' ')}: {count}")
    return summary, lines


def short_list_warning(url: str, counts: dict[str, Any]) -> str:
    """The warning of a list that ended before its announced count."""
    return f"list {url} ended early: it announced {counts['announced']} people, {counts['followed']} were followed"


def crawl_outcome(stats: dict[str, Any]) -> tuple[int, str | None]:
    """(exit code, why) of a finished crawl: 0 complete, 1 nothing got, 3 finished with problems
    (see the module's docstring)."""
    failure = crawl_failure(stats)
    if failure:
        return 1, failure
    summary = crawl_summary(stats)
    problems = []
    own = sum(n for kind, n in summary["page_errors"].items() if kind in OWN_PAGE_ERRORS)
    if own:
        problems.append(_count(own, "page error"))
    empty = sum(summary["empty_steps"].values())
    if empty:
        problems.append(f"{_count(empty, 'page')} where a required selector matched nothing")
    if summary["stalled"]:
        problems.append(f"{_count(len(summary['stalled']), 'chain')} stopped for bringing nothing new")
    if summary["budget"]["max_pages"]:
        problems.append(f"the page budget of {summary['budget']['max_pages']} pages spent")
    if summary["budget"]["depth_limit_ignored"]:
        problems.append("links past the depth limit not followed")
    if problems:
        return 3, "the crawl finished with " + ", ".join(problems) + " (see the summary)"
    return 0, None


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
        #: `anfe crawl` without -v: Scrapy's log goes to a file; the progress line and the summary to stderr.
        self.console = crawler.settings.getbool("CONSOLE_SUMMARY", False)
        self.stream: Any = sys.stderr
        self.started = time.monotonic()
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
        crawler.signals.connect(ext.request_reached, signal=signals.request_reached_downloader)
        return ext

    def request_reached(self, request: Any, spider: Any = None) -> None:
        """Count retries apart, so pages and image downloads are counted once per request."""
        if request.meta.get("retry_times") and not request.url.endswith("/robots.txt"):
            self.crawler.stats.inc_value("anfe/image_retries" if request.meta.get("anfe_image") else "anfe/page_retries")

    def spider_opened(self, spider: Any) -> None:
        self.started = time.monotonic()
        if self.interval > 0:
            self.task = create_looping_call(self.log_progress)
            self.task.start(self.interval, now=False)

    def progress_line(self) -> str:
        """Pages, photos stored, drops, errors and the rate so far, in one line."""
        s = crawl_summary(self.crawler.stats.get_stats())
        errors = sum(s["page_errors"].values()) + sum(s["empty_steps"].values())
        rate = s["pages"] / max(time.monotonic() - self.started, 1e-6)
        return (f"progress: {_count(s['pages'], 'page')}, {_count(s['images_stored'], 'photo')}, "
                f"{_count(sum(s['dropped'].values()), 'drop')}, {_count(errors, 'error')}, {rate:.1f} pages/s")

    def log_progress(self) -> None:
        """One line: pages, image downloads, stored per gender, drops so far (on the console, the
        line is rewritten in place on a terminal and not repeated elsewhere)."""
        if self.console:
            if self.stream.isatty():
                self.stream.write("\r" + self.progress_line())
                self.stream.flush()
            return
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
        summary, lines = closing_summary(spider.name, reason, stats, self.crawler.settings.getint("DEPTH_LIMIT", 0))
        for url in summary["short_lists"]:
            logger.warning(short_list_warning(url, summary["lists"][url]))
        logger.info("\n".join(lines))
        if self.console:
            self.stream.write(("\r" if self.stream.isatty() else "") + self.progress_line() + "\n")
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
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
