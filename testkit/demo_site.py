"""A generated demo site served on a free loopback port, for the crawl tests that share one."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scraper.demosite import DemoServer, generate_site


@contextmanager
def served_demo(lfw_labels: Path, folder: Path, people: int) -> Iterator[tuple[dict, DemoServer]]:
    """(the listal part's expectations, the running server) of a site of ``people`` per gender,
    3 photos each, 2 per page."""
    manifest = generate_site(lfw_labels, folder, people=people, photos=3, per_page=2, seed=0)
    with DemoServer(folder) as server:
        yield manifest["spiders"]["listal"], server
