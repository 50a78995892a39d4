"""``scrapy crawl SPIDER``, as Scrapy's own, plus the checks of ``anfe crawl``.

Before: unknown ``-a`` arguments, a profile or URL list that does not load, or an unreachable
``STORE_URI`` stop the command with one line (``scrapy crawl: error: ...``, exit 2) before any
request. After: a crawl in which every request failed exits 1 with one line saying how many
failed and why; one that finished with page errors, required selectors that matched nothing or a
budget that stopped it exits 3 (see :func:`scraper.extensions.crawl_outcome`).
"""

from __future__ import annotations

import argparse
import sys

from scrapy.commands.crawl import Command as ScrapyCrawlCommand
from scrapy.exceptions import UsageError

from anfe.core.errors import AnfeError

from ..extensions import crawl_outcome
from ..preflight import check_before_crawl


class Command(ScrapyCrawlCommand):
    """Scrapy's ``crawl`` with the project's checks."""

    def run(self, args: list[str], opts: argparse.Namespace) -> None:
        if len(args) != 1:
            super().run(args, opts)  # Scrapy's own usage errors
            return
        assert self.crawler_process is not None and self.settings is not None
        try:
            spidercls = self.crawler_process.spider_loader.load(args[0])
        except KeyError:
            raise UsageError(f"no spider named {args[0]!r}: see `scrapy list`", print_help=False) from None
        try:
            check_before_crawl(spidercls, opts.spargs, self.settings)
        except AnfeError as exc:
            raise UsageError(str(exc), print_help=False) from None
        crawler = self._create_crawler(spidercls)
        self.crawler_process.crawl(crawler, **opts.spargs)
        self.crawler_process.start()
        if self.crawler_process.bootstrap_failed:
            self.exitcode = 1
            return
        code, problem = crawl_outcome(crawler.stats.get_stats()) if crawler.stats else (0, None)
        if problem:
            print(f"{'Error' if code == 1 else 'Warning'}: {problem}", file=sys.stderr)
            self.exitcode = code
