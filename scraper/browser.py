"""Pages that need a browser: scrapy-playwright driving Debian's Chromium, for the steps that say ``"render": true``.

Nothing is downloaded at run time: Playwright launches the Chromium at ``CHROMIUM_PATH``
(``apt-get install chromium``; its ``executable_path``). The browser's download handler is
switched on only for a crawl whose profile renders a step, and only requests marked
``playwright`` go through the browser; scrapy-playwright sends every other request through
Scrapy's own HTTP handler, so the rest of the crawl stays fast. A rendered page is a normal Scrapy
request: robots.txt, the download delay, AutoThrottle, the concurrency limits and the back-off
on 429/503 apply to it as to any page. The browser loads the page's scripts and data itself; it
does not load images, media or fonts (the harvester downloads photos through Scrapy, counted and
checked like any other).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .errors import ProfileError

#: scrapy-playwright's download handler, installed only when a step renders.
HANDLER = "scrapy_playwright.handler.ScrapyPlaywrightDownloadHandler"
#: Chromium switches for a headless crawl on a server (no sandbox as root, no background traffic).
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
#: Resource types the browser does not fetch.
SKIPPED_RESOURCES = frozenset({"image", "media", "font"})


def check_chromium(path: str) -> Path:
    """The Chromium executable, or a ProfileError saying how to get it."""
    executable = Path(path)
    if not executable.is_file():
        raise ProfileError(f"this profile renders pages in a browser, but there is no Chromium at {executable}: "
                           f"apt-get install chromium, or -s CHROMIUM_PATH=/path/to/chromium")
    return executable


def enable_browser(settings: Any) -> None:
    """Switch scrapy-playwright on in (not yet frozen) crawler ``settings``."""
    executable = check_chromium(settings.get("CHROMIUM_PATH") or "/usr/bin/chromium")
    settings.set("DOWNLOAD_HANDLERS", {"http": HANDLER, "https": HANDLER}, priority="spider")
    settings.set("PLAYWRIGHT_BROWSER_TYPE", "chromium", priority="spider")
    settings.set("PLAYWRIGHT_LAUNCH_OPTIONS", {"executable_path": str(executable), "headless": True,
                                               "args": CHROMIUM_ARGS}, priority="spider")
    settings.set("PLAYWRIGHT_ABORT_REQUEST", "scraper.browser.skip_resource", priority="spider")
    settings.set("PLAYWRIGHT_MAX_CONTEXTS", 1, priority="spider")
    settings.set("PLAYWRIGHT_MAX_PAGES_PER_CONTEXT",
                 max(1, settings.getint("CONCURRENT_REQUESTS_PER_DOMAIN", 2)), priority="spider")
    settings.set("PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT", settings.getint("DOWNLOAD_TIMEOUT", 60) * 1000,
                 priority="spider")


def skip_resource(request: Any) -> bool:
    """True for what the browser need not fetch (images, media, fonts) while it renders a page."""
    return request.resource_type in SKIPPED_RESOURCES


def render_meta(wait_for: str | None, timeout_s: float) -> dict[str, Any]:
    """The request meta that sends a request through the browser (waiting for ``wait_for``)."""
    meta: dict[str, Any] = {"playwright": True}
    if wait_for:
        from scrapy_playwright.page import PageMethod

        meta["playwright_page_methods"] = [PageMethod("wait_for_selector", wait_for, timeout=timeout_s * 1000)]
    return meta
