"""The review page served by ``streamlit run`` and driven in headless Chromium (Debian's package)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from anfe.core.store import open_store
from testkit.processes import stop
from testkit.review import make_review_dataset
from testkit.browser import CHROMIUM, CHROMIUM_ARGS, wait_for

APP = Path(__file__).resolve().parent.parent / "curation" / "review_app.py"

pytestmark = [pytest.mark.slow, pytest.mark.browser]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_healthy(url: str, server: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"streamlit exited early: {server.stdout.read() if server.stdout else ''}")
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"streamlit did not answer at {url} within {timeout} s")


def _idle(page) -> None:
    """Wait until no script run is going on (call it once the page shows the last action's result,
    so that run has started): a tick made during a run can be lost when the run's end redraws it."""
    page.wait_for_function(
        "() => document.querySelector('[data-test-script-state]')?.getAttribute('data-test-script-state')"
        " === 'notRunning'", timeout=60_000)


@contextlib.contextmanager
def _served(root: Path, cache: Path) -> Iterator[str]:
    """The review page of ``root`` served by ``streamlit run`` on a free loopback port: its URL."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--", str(root), "--cache", str(cache)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "USER": "browser-test"},
    )
    try:
        _wait_healthy(url, server)
        yield url
    finally:
        stop(server)


def _grid_shown(playwright, url: str, heading: str):
    """A headless Chromium (and its page) showing the review page at ``url`` with ``heading`` and a thumbnail."""
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.goto(url)
    page.get_by_text(heading).wait_for(timeout=90_000)
    page.locator('[data-testid="stImage"]').first.wait_for(timeout=30_000)
    return browser, page


def test_click_move_in_a_real_browser(utkface_rows, tmp_path, session_cache_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    layout = make_review_dataset(utkface_rows, tmp_path / "data")
    with _served(layout.root, session_cache_path) as url, sync_api.sync_playwright() as playwright:
        browser, page = _grid_shown(playwright, url, "female: 6 left to review of 6")
        page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
        checkbox = page.locator('[class*="st-key-sel-"]').first  # the image tiles' boxes
        checkbox.locator("input").wait_for(state="attached", timeout=30_000)
        digest = re.search(r"st-key-sel-([0-9a-f]{64})", checkbox.get_attribute("class") or "")
        assert digest, checkbox.get_attribute("class")
        digest_prefix = digest.group(1)
        page.get_by_text(digest_prefix[:10], exact=True).wait_for(timeout=30_000)
        checkbox.click()
        move = page.get_by_role("button", name=re.compile(r"Move to male \(1\)"))
        move.wait_for(timeout=30_000)
        move.click()
        moved = lambda: any(p.name.startswith(digest_prefix) for p in layout.image_files("male"))  # noqa: E731
        wait_for(moved, what=f"{digest_prefix} to move to images/male")
        assert not any(p.name.startswith(digest_prefix) for p in layout.image_files("female"))
        page.get_by_text(re.compile(r"female: 5 left to review of 5")).wait_for(timeout=30_000)
        _idle(page)

        # tick, then a key at once (the focus still on the box just ticked): M moves it
        tile = page.locator('[class*="st-key-sel-"]').first
        second = re.search(r"st-key-sel-([0-9a-f]{64})", tile.get_attribute("class") or "").group(1)
        tile.click()
        page.keyboard.press("m")  # at once: no wait for the rerun that counts the tick
        wait_for(lambda: any(p.name.startswith(second) for p in layout.image_files("male")),
                  what=f"{second} to move to images/male after the M key")
        page.get_by_text(re.compile(r"female: 4 left to review of 4")).wait_for(timeout=30_000)
        _idle(page)

        # A selects the page, K keeps it (Streamlit's own button shortcuts)
        page.keyboard.press("a")
        page.get_by_role("button", name=re.compile(r"Keep \(4\)")).wait_for(timeout=30_000)
        # K sends the boxes' states as the browser holds them: wait until it shows all four ticked
        page.wait_for_function("() => { const boxes = [...document.querySelectorAll("
                               "'[class*=\"st-key-sel-\"] input')]; "
                               "return boxes.length === 4 && boxes.every((b) => b.checked); }", timeout=30_000)
        _idle(page)
        page.keyboard.press("k")
        page.screenshot(path=str(tmp_path / "after-keep.png"), full_page=True)
        page.get_by_text(re.compile(r"female: 0 left to review of 4")).wait_for(timeout=30_000)
        browser.close()
    with open_store(None, layout.root) as store:
        actions = [(d["action"], d["who"]) for d in store.decisions()]
    assert actions == [("relabel", "browser-test")] * 2 + [("keep", "browser-test")] * 4


def test_anfe_review_starts_without_a_prompt_and_sends_no_statistics(utkface_rows, tmp_path, session_cache_path):
    """`anfe review` as a new user runs it: a fresh home (no Streamlit credentials), a terminal that
    types nothing, a browser that opens nothing. The server must answer (no "enter your email"
    prompt blocking it), and Streamlit must not announce usage statistics being collected."""
    layout = make_review_dataset(utkface_rows, tmp_path / "data", per_gender=2)
    port = _free_port()
    home = tmp_path / "home"
    home.mkdir()
    server = subprocess.Popen(
        [sys.executable, "-m", "anfe", "review", str(layout.root), "--port", str(port), "--cache",
         str(session_cache_path), "--workers", "1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}, "HOME": str(home),
             "BROWSER": "true", "DISPLAY": ""},
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}", server, timeout=90)
    finally:
        server.terminate()
        try:
            output, _ = server.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            output, _ = server.communicate()
    assert "Email" not in output and "usage statistics" not in output.lower(), output
    assert not (home / ".streamlit" / "credentials.toml").exists()


def test_keys_between_tiles_large_view_and_wrapped_names(utkface_rows, tmp_path, session_cache_path):
    """G puts the focus on the first tile, the arrow keys move it, Space ticks, K keeps; V opens the
    large view, with the person's typical photos beside the photo; a long name wraps on its tile
    instead of being cut."""
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    layout = make_review_dataset(utkface_rows, tmp_path / "data", per_gender=4)
    long_name = "Kathleen Kennedy Townsend-Wolfgang Amadeus Mozart"
    with open_store(None, layout.root) as store:
        for path in layout.image_files():
            store.upsert_image({"content_hash": path.stem, "person_id": "1", "site": "a.test", "person_name": long_name})
    with _served(layout.root, session_cache_path) as url, sync_api.sync_playwright() as playwright:
        browser, page = _grid_shown(playwright, url, "female: 4 left to review of 4")
        _idle(page)
        label = page.locator('[class*="st-key-sel-"] label').first
        label.get_by_text(long_name).wait_for(timeout=30_000)
        fits = label.evaluate("(el) => [...el.querySelectorAll('*')].every("
                              "(e) => e.scrollWidth <= e.clientWidth + 1 || getComputedStyle(e).whiteSpace !== 'nowrap')"
                              " && getComputedStyle(el.querySelector('p') || el).textOverflow !== 'ellipsis'")
        assert fits, "the name is cut instead of wrapped"

        boxes = page.locator('[class*="st-key-sel-"]')
        keys = [re.search(r"st-key-sel-([0-9a-f]{64})", boxes.nth(i).get_attribute("class") or "").group(1)
                for i in range(boxes.count())]
        page.keyboard.press("g")
        focused = lambda: page.evaluate(  # noqa: E731
            "() => (document.activeElement.closest('[class*=\"st-key-sel-\"]')?.className.match("
            "/st-key-sel-([0-9a-f]{64})/) || [])[1] || null")
        assert focused() == keys[0]
        page.keyboard.press("ArrowRight")
        assert focused() == keys[1]
        page.keyboard.press("ArrowRight")
        page.keyboard.press("ArrowLeft")
        assert focused() == keys[1]
        page.keyboard.press("Space")  # ticks the focused tile, the focus stays for the next key
        page.keyboard.press("k")
        page.get_by_text(re.compile(r"Kept: 1 keep")).wait_for(timeout=30_000)
        _idle(page)
        with open_store(None, layout.root) as store:
            assert [d["content_hash"] for d in store.decisions()] == [keys[1]]

        page.keyboard.press("v")
        page.get_by_role("button", name="Close (V)").wait_for(timeout=30_000)
        page.locator('.st-key-large-view [data-testid="stImage"]').first.wait_for(timeout=30_000)
        # beside the most suspicious photo: the person's typical photos, each with its distance
        view = page.locator(".st-key-large-view")
        view.get_by_text(f"Typical photos of {long_name}").wait_for(timeout=30_000)
        _idle(page)
        pictures = view.locator('[data-testid="stImage"] img')
        assert 1 + 2 <= pictures.count() <= 1 + 4, pictures.count()  # the photo, then 2 to 4 references
        assert view.get_by_text(re.compile(r"^distance \d\.\d\d$")).count() == pictures.count() - 1
        photo = pictures.nth(0).bounding_box()
        refs = [pictures.nth(i).bounding_box() for i in range(1, pictures.count())]
        assert all(r["x"] >= photo["x"] + photo["width"] - 1 for r in refs), (photo, refs)  # beside it
        assert all(pictures.nth(i).evaluate("(img) => img.complete && img.naturalWidth > 0")
                   for i in range(pictures.count()))  # drawn, not broken
        page.screenshot(path=str(tmp_path / "large-view.png"), full_page=True)
        browser.close()
