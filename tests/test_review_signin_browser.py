"""A shared review page for real: `anfe review` with reviewers and TLS (a CA made here) serving on
127.0.0.1, driven over Streamlit's own protocol (no browser) and in headless Chromium that
trusts the CA through its NSS database (certutil, Debian's libnss3-tools).

One server serves every test here (each test uses its own browser context: its own session).
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from anfe.core.store import open_store
from curation import reviewers
from testkit.processes import stop
from testkit.browser import CHROMIUM, CHROMIUM_ARGS, wait_for
from testkit.review import make_review_dataset, start_review
from testkit.tls_certs import make_ca_and_server_cert

pytestmark = [pytest.mark.slow, pytest.mark.browser]

PASSWORDS = {"alice": "alice's long password", "bob": "bob's long password"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The running `anfe review` (became `streamlit run`): its URL, dataset, CA and log."""

    def __init__(self, url: str, layout, ca: Path, log: Path) -> None:
        self.url, self.layout, self.ca, self.log = url, layout, ca, log

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca))

    def log_lines(self, pattern: str) -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines() if re.search(pattern, line)]


@pytest.fixture(scope="module")
def server(utkface_rows, tmp_path_factory, session_cache_path):
    folder = tmp_path_factory.mktemp("shared-review")
    layout = make_review_dataset(utkface_rows, folder / "data")
    for name, password in PASSWORDS.items():
        reviewers.add(layout.root / "reviewers.json", name, password)
    cert, key, ca = make_ca_and_server_cert(folder)
    port = _free_port()
    served = Server(f"https://127.0.0.1:{port}", layout, ca, folder / "server.log")
    process = start_review(layout.root, port, served.log, "--tls-cert", str(cert), "--tls-key", str(key),
                           "--cache", str(session_cache_path), ssl_context=served.ssl_context())
    try:
        yield served
    finally:
        stop(process)


@pytest.fixture(scope="module")
def browser(server, tmp_path_factory):
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    certutil = shutil.which("certutil")
    if certutil is None:
        pytest.skip("no certutil to make Chromium trust the test CA (apt-get install libnss3-tools)")
    home = tmp_path_factory.mktemp("browser-home")
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True)
    subprocess.run([certutil, "-d", f"sql:{nssdb}", "-N", "--empty-password"], check=True)
    subprocess.run([certutil, "-d", f"sql:{nssdb}", "-A", "-t", "C,,", "-n", "anfe test CA", "-i", str(server.ca)],
                   check=True)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                              env={**os.environ, "HOME": str(home)})
        yield chromium
        chromium.close()


_WATCH_RUNS = """() => {
  const state = document.querySelector('[data-test-script-state]');
  window.anfeRunsSeen = 0;
  if (window.anfeRunWatcher) window.anfeRunWatcher.disconnect();
  window.anfeRunWatcher = new MutationObserver(() => {
    if (state.getAttribute('data-test-script-state') === 'running') window.anfeRunsSeen += 1;
  });
  window.anfeRunWatcher.observe(state, {attributes: true, attributeFilter: ['data-test-script-state']});
}"""
_RAN = """() => window.anfeRunsSeen > 0 &&
  document.querySelector('[data-test-script-state]').getAttribute('data-test-script-state') === 'notRunning'"""
_NOT_RUNNING = """() => document.querySelector('[data-test-script-state]')
  ?.getAttribute('data-test-script-state') === 'notRunning'"""


def _settle(page) -> None:
    """Wait until no script run is going on (call it once the page shows what the last
    interaction led to, so its run has begun)."""
    page.wait_for_function(_NOT_RUNNING, timeout=60_000)


def _and_wait(page, action) -> None:
    """Do ``action`` and wait for the script run it starts to finish: a watcher on the page's
    script state, set up before the action, sees the run begin however quickly it ends."""
    page.evaluate(_WATCH_RUNS)
    action()
    page.wait_for_function(_RAN, timeout=60_000)


def _dataset_names(layout) -> list[str]:
    """What must not reach anyone before sign-in: the root's path, the image file names, the genders."""
    return [str(layout.root), *(p.stem for p in layout.image_files()), "female"]


def _sign_in(page, name: str, password: str) -> None:
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


# -- the tests -----------------------------------------------------------------------------------
def test_nothing_of_the_dataset_over_http_before_sign_in(server):
    """A client without a browser gets the sign-in form only, over every route and Streamlit's
    own WebSocket protocol; the same client signed in does get the thumbnails (so this would see them)."""
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from streamlit.proto.WidgetStates_pb2 import WidgetState
    from websockets.sync.client import connect

    secret = _dataset_names(server.layout)
    thumbnail = server.layout.image_files("female")[0]
    for route in ("/", "/_stcore/health", "/_stcore/host-config", "/_stcore/agent/openapi.json",
                  f"/media/{thumbnail.stem}.jpg", f"/app/static/{thumbnail.name}"):
        try:
            with urllib.request.urlopen(server.url + route, timeout=10, context=server.ssl_context()) as response:
                body = response.read()
        except urllib.error.HTTPError as error:
            body = error.read()
        assert b"\xff\xd8\xff" not in body, route  # no JPEG
        assert not any(name.encode() in body for name in secret), route

    def script_run(ws, widgets=()) -> list:
        msg = BackMsg()
        msg.rerun_script.query_string = ""
        msg.rerun_script.widget_states.widgets.extend(widgets)
        ws.send(msg.SerializeToString())
        received = []
        while True:
            forward = ForwardMsg.FromString(ws.recv(timeout=120))
            received.append(forward)
            if forward.WhichOneof("type") == "script_finished" and \
                    forward.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                return received

    def widget_ids(messages) -> dict[str, str]:
        ids = {}
        for m in messages:
            if m.WhichOneof("type") == "delta" and m.delta.WhichOneof("type") == "new_element":
                element = getattr(m.delta.new_element, m.delta.new_element.WhichOneof("type"))
                if hasattr(element, "id") and hasattr(element, "label"):
                    ids[element.label] = element.id
        return ids

    url = server.url.replace("https://", "wss://") + "/_stcore/stream"
    claimed = {"X-Forwarded-For": "203.0.113.9"}  # not believed: no --trusted-proxy
    with connect(url, subprotocols=["streamlit"], ssl=server.ssl_context(), additional_headers=claimed) as ws:
        before = script_run(ws)
        raw = b"".join(m.SerializeToString() for m in before)
        assert b"Label review: sign in" in raw
        assert b"data:image" not in raw and b"\xff\xd8\xff" not in raw
        assert not any(name.encode() in raw for name in secret)
        ids = widget_ids(before)
        assert set(ids) == {"Name", "Password", "Sign in"}  # no tile, no action to trigger
        wrong = script_run(ws, [WidgetState(id=ids["Name"], string_value="alice"),
                                WidgetState(id=ids["Password"], string_value="guess"),
                                WidgetState(id=ids["Sign in"], trigger_value=True)])
        raw = b"".join(m.SerializeToString() for m in wrong)
        assert b"Wrong name or password." in raw and b"data:image" not in raw
        right = script_run(ws, [WidgetState(id=ids["Name"], string_value="alice"),
                                WidgetState(id=ids["Password"], string_value=PASSWORDS["alice"]),
                                WidgetState(id=ids["Sign in"], trigger_value=True)])
        raw = b"".join(m.SerializeToString() for m in right)
        jpeg = base64.b64encode(b"\xff\xd8\xff")
        assert raw.count(b"data:image/jpeg;base64," + jpeg) == 6  # the signed-in page: 6 thumbnails
    assert len(server.log_lines(r"failed sign-in for name 'alice' from client localhost")) >= 1
    assert not server.log_lines(r"203\.0\.113\.9")


def test_sign_in_then_a_decision_carries_the_signed_in_name(server, browser, tmp_path):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(server.url)
    page.get_by_text("Label review: sign in").wait_for(timeout=60_000)
    _settle(page)
    assert page.locator('[data-testid="stImage"]').count() == 0
    # no action before sign-in: the only buttons are the form's (and the password field's eye)
    buttons = set(page.get_by_role("button").all_inner_texts())
    assert "Sign in" in buttons and buttons <= {"Sign in", "visibility"}, buttons
    html = page.content()
    assert not any(name in html for name in _dataset_names(server.layout))

    _and_wait(page, lambda: _sign_in(page, "alice", "not her password"))
    page.get_by_text("Wrong name or password.").wait_for(timeout=30_000)
    _and_wait(page, lambda: _sign_in(page, "nobody", PASSWORDS["alice"]))
    assert page.locator('[data-testid="stAlert"]').all_inner_texts() == ["Wrong name or password."]
    assert page.locator('[data-testid="stImage"]').count() == 0

    _sign_in(page, "alice", PASSWORDS["alice"])
    page.get_by_text(re.compile(r"female: \d left to review of \d")).wait_for(timeout=90_000)
    page.locator('[data-testid="stImage"] img').first.wait_for(timeout=30_000)
    assert page.locator('[data-testid="stImage"] img').first.get_attribute("src").startswith("data:image/jpeg")
    page.get_by_text("Signed in as alice").wait_for(timeout=10_000)
    assert page.get_by_label("Reviewer", exact=True).count() == 0  # the name comes from the sign-in
    page.screenshot(path=str(tmp_path / "signed-in.png"), full_page=True)
    checkbox = page.locator('[class*="st-key-sel-"]').first
    digest = re.search(r"st-key-sel-([0-9a-f]{64})", checkbox.get_attribute("class") or "").group(1)
    checkbox.click()
    page.get_by_role("button", name=re.compile(r"Move to male \(1\)")).click()
    wait_for(lambda: any(p.name.startswith(digest) for p in server.layout.image_files("male")),
              what=f"{digest} to move to images/male")
    _settle(page)
    with open_store(None, server.layout.root) as store:
        moved = [d for d in store.decisions() if d["content_hash"] == digest]
    assert [(d["action"], d["who"]) for d in moved] == [("relabel", "alice")]

    page.get_by_role("button", name="Sign out").click()
    page.get_by_text("Label review: sign in").wait_for(timeout=30_000)
    _settle(page)
    assert page.locator('[data-testid="stImage"]').count() == 0
    assert server.log_lines(r"alice signed out from client localhost \(manual\)")
    context.close()


def test_failed_sign_ins_are_rate_limited_and_logged(server, browser):
    page = browser.new_context().new_page()
    page.goto(server.url)
    page.get_by_text("Label review: sign in").wait_for(timeout=60_000)
    _settle(page)
    for attempt in range(1, 6):  # the limit: 5 free failures per name and client, then a wait
        _and_wait(page, lambda: _sign_in(page, "bob", f"wrong guess {attempt}"))
        wait_for(lambda: len(server.log_lines(r"failed sign-in for name 'bob'")) == attempt, timeout=30,
                  what=f"failure {attempt} in the server log")
    _sign_in(page, "bob", PASSWORDS["bob"])  # right, but too soon
    page.get_by_text(re.compile(r"Too many failed sign-ins: try again in \d+ s\.")).wait_for(timeout=30_000)
    _settle(page)
    assert page.locator('[data-testid="stImage"]').count() == 0
    assert server.log_lines(r"sign-in refused \(too many failures\) for name 'bob' from client localhost")
    assert server.log_lines(r"failed sign-in for name 'bob' from client localhost \(5 for this name")


def test_tls_with_the_self_made_ca_and_plain_http_refused(server, browser):
    page = browser.new_context().new_page()
    response = page.goto(server.url)  # no certificate error: Chromium trusts the CA, not any certificate
    assert response.ok and response.url.startswith("https://127.0.0.1:")
    page.get_by_text("Label review: sign in").wait_for(timeout=60_000)
    plain = server.url.replace("https://", "http://")
    with pytest.raises(Exception, match=r"net::ERR_"):  # the TLS port answers no plain http
        page.goto(plain, timeout=15_000)
    with pytest.raises(OSError):
        urllib.request.urlopen(plain + "/_stcore/health", timeout=10).read()
    with pytest.raises(urllib.error.URLError) as unknown_ca:  # an https client without the CA refuses it
        urllib.request.urlopen(server.url + "/_stcore/health", timeout=10,
                               context=ssl.create_default_context()).read()
    assert isinstance(unknown_ca.value.reason, ssl.SSLCertVerificationError)
