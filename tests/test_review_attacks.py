"""The review page attacked as an attacker would (issue 21): a real `anfe review` server, its own
WebSocket protocol (the `websockets` package) and headless Chromium.

Two servers serve every test here: one on loopback without sign-in (its secret is the token in
the URL it prints), and one as a shared page is served (reviewers, TLS, ``--allowed-host``,
``--trusted-proxy``); tests bind 127.0.0.1 only, so the shared one listens there too, with
sign-in required as on a shared address. Most tests run against both.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from anfe.core.store import open_store
from curation import reviewers
from curation.limiter import BackoffPolicy
from testkit.processes import stop
from testkit.browser import CHROMIUM, CHROMIUM_ARGS
from testkit.review import make_review_dataset, start_review
from testkit.tls_certs import make_ca_and_server_cert

pytestmark = [pytest.mark.slow]

PASSWORDS = {"alice": "alice's long password", "bob": "bob's long password", "carol": "carol's long password"}
TOKEN = "t0ken-for-the-attack-suite-only"
#: A crawled name carrying markdown (an image from another host, a link), raw HTML and a
#: right-to-left override; what the page must show instead (the same, without the override).
NAME = "![pixel](http://tracker.example/p.png) [win](http://evil.example/) <b>Ann</b> \u202eLee"
SHOWN_NAME = "![pixel](http://tracker.example/p.png) [win](http://evil.example/) <b>Ann</b> Lee"
SITE = "[site](http://evil.example/s):red[x]"
IDLE_MINUTES = 0.15  # the shared page's idle limit: 9 s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Served:
    """One running `anfe review`: where it is, its dataset and log, how to reach it."""

    kind: str
    port: int
    layout: object
    log: Path
    ca: Path | None = None
    token: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def scheme(self) -> str:
        return "https" if self.ca else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def ssl_context(self) -> ssl.SSLContext | None:
        return ssl.create_default_context(cafile=str(self.ca)) if self.ca else None

    def cookie(self) -> dict[str, str]:
        return {"Cookie": f"anfe_review_token={self.token}"} if self.token else {}

    def log_lines(self, pattern: str) -> list[str]:
        return [line for line in self.log.read_text(errors="replace").splitlines() if re.search(pattern, line)]

    def get(self, path: str, host: str | None = None, headers: dict | None = None) -> tuple[int, dict, bytes]:
        """One GET with the ``Host`` (and other headers) given: (status, headers, body)."""
        conn = (http.client.HTTPSConnection("127.0.0.1", self.port, context=self.ssl_context(), timeout=30)
                if self.ca else http.client.HTTPConnection("127.0.0.1", self.port, timeout=30))
        try:
            conn.request("GET", path, headers={"Host": host or f"127.0.0.1:{self.port}", **(headers or {})})
            response = conn.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            conn.close()


def _records(layout) -> list[dict]:
    """Crawl-style records naming the person each photo shows: the female ones the payload name."""
    records = []
    for gender in ("female", "male"):
        for path in layout.image_files(gender):
            person = ("p1", NAME) if gender == "female" else ("p2", "Bo Ek")
            records.append({"content_hash": path.stem, "path": path.relative_to(layout.root).as_posix(),
                            "gender": gender, "site": SITE, "person_id": person[0], "person_name": person[1]})
    return records


def _start(kind: str, folder: Path, utkface_rows, cache: Path, *options: str, env: dict | None = None,
           tls: bool = False) -> tuple[subprocess.Popen, Served]:
    layout = make_review_dataset(utkface_rows, folder / "data", per_gender=3)
    with open_store(None, layout.root) as store:
        for record in _records(layout):
            store.upsert_image(record)
    ca = None
    if tls:
        cert, key, ca = make_ca_and_server_cert(folder)
        options = (*options, "--tls-cert", str(cert), "--tls-key", str(key))
    served = Served(kind, _free_port(), layout, folder / "server.log", ca, (env or {}).get("ANFE_REVIEW_TOKEN"))
    process = start_review(layout.root, served.port, served.log, "--cache", str(cache), *options, env=env,
                           ssl_context=served.ssl_context())
    return process, served


@pytest.fixture(scope="module")
def loopback(utkface_rows, tmp_path_factory, session_cache_path):
    process, served = _start("loopback", tmp_path_factory.mktemp("loopback"), utkface_rows, session_cache_path,
                             env={"ANFE_REVIEW_TOKEN": TOKEN})
    try:
        yield served
    finally:
        stop(process)


@pytest.fixture(scope="module")
def shared(utkface_rows, tmp_path_factory, session_cache_path):
    folder = tmp_path_factory.mktemp("shared")
    for name, password in PASSWORDS.items():
        reviewers.add(folder / "reviewers.json", name, password)
    process, served = _start("shared", folder, utkface_rows, session_cache_path, "--reviewers",
                             str(folder / "reviewers.json"), "--allowed-host", "review.example",
                             "--trusted-proxy", "127.0.0.1", "--idle-minutes", str(IDLE_MINUTES), tls=True,
                             env={"ANFE_REVIEW_TOKEN": "ignored-when-there-are-reviewers"})
    served.extra["reviewers"] = folder / "reviewers.json"
    try:
        yield served
    finally:
        stop(process)


@pytest.fixture(params=["loopback", "shared"])
def server(request) -> Served:
    return request.getfixturevalue(request.param)


# -- the page's own protocol ---------------------------------------------------------------------
class Session:
    """One WebSocket session of the page, as a script (not a browser) drives it."""

    def __init__(self, served: Served, headers: dict | None = None, host: str | None = None,
                 origin: str | None = None, subprotocols: list[str] | None = None) -> None:
        from websockets.sync.client import connect

        sock = socket.create_connection(("127.0.0.1", served.port), timeout=30)
        host = host or f"127.0.0.1:{served.port}"
        self.ws = connect(f"{'wss' if served.ca else 'ws'}://{host}/_stcore/stream", sock=sock,
                          ssl=served.ssl_context(), server_hostname="127.0.0.1" if served.ca else None,
                          subprotocols=subprotocols or ["streamlit"], origin=origin,
                          additional_headers={**served.cookie(), **(headers or {})}, open_timeout=30)
        self.widgets: dict[str, str] = {}
        self.first: list = []

    def __enter__(self) -> "Session":
        return self

    def __exit__(self, *exc) -> None:
        self.ws.close()

    def run(self, widgets=()) -> list:
        """One script run with these widget states; every message until it has finished."""
        from streamlit.proto.BackMsg_pb2 import BackMsg
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        msg = BackMsg()
        msg.rerun_script.query_string = ""
        msg.rerun_script.widget_states.widgets.extend(widgets)
        self.ws.send(msg.SerializeToString())
        received = []
        while True:
            forward = ForwardMsg.FromString(self.ws.recv(timeout=90))
            received.append(forward)
            if forward.WhichOneof("type") == "script_finished" and forward.script_finished in (
                    ForwardMsg.FINISHED_SUCCESSFULLY, ForwardMsg.FINISHED_WITH_COMPILE_ERROR):
                break
        if not self.first:
            self.first = received
        for m in received:
            if m.WhichOneof("type") == "delta" and m.delta.WhichOneof("type") == "new_element":
                element = getattr(m.delta.new_element, m.delta.new_element.WhichOneof("type"))
                if getattr(element, "id", ""):
                    self.widgets[element.id] = element.id
        return received

    def widget(self, key: str, **value):
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        ids = [i for i in self.widgets if i == key or i.endswith(f"-{key}")]
        assert ids, f"no widget {key!r} on the page: {sorted(i.rsplit('-', 1)[-1] for i in self.widgets)}"
        return WidgetState(id=ids[0], **value)

    def sign_in(self, name: str, password: str) -> list:
        self.run()
        return self.run([self.widget("signin-name", string_value=name),
                         self.widget("signin-password", string_value=password),
                         self.widget("FormSubmitter:signin-Sign in", trigger_value=True)
                         if any("FormSubmitter:signin-Sign in" in i for i in self.widgets.values())
                         else self._submit()])

    def _submit(self):
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        ids = [i for i in self.widgets.values() if "Sign in" in i or "FormSubmitter" in i]
        assert ids, sorted(self.widgets.values())
        return WidgetState(id=ids[0], trigger_value=True)


def _raw(messages) -> bytes:
    return b"".join(m.SerializeToString() for m in messages)


def _open_session(served: Served, **options) -> Session:
    """A session showing the review page (signed in as alice on the shared page)."""
    session = Session(served, **options)
    if served.kind == "shared":
        signed = session.sign_in("alice", PASSWORDS["alice"])
        assert b"data:image/jpeg" in _raw(signed), _raw(signed)[:2000]
    else:
        assert b"data:image/jpeg" in _raw(session.run())
    return session


# -- 1. host checking and the loopback token -----------------------------------------------------
def test_foreign_host_or_origin_gets_403_on_the_page_and_the_websocket(server):
    """DNS rebinding: a foreign name in Host or Origin gets 403 from the page and the WebSocket."""
    from websockets.exceptions import InvalidStatus

    own = f"127.0.0.1:{server.port}"
    evil = f"evil.example:{server.port}"
    assert server.get("/", headers=server.cookie())[0] == 200
    assert server.get("/", host=evil, headers=server.cookie())[0] == 403
    assert server.get("/", headers={**server.cookie(), "Origin": f"http://{evil}"})[0] == 403
    assert server.get("/_stcore/host-config", host=evil, headers=server.cookie())[0] == 403
    for options in ({"host": evil}, {"origin": f"http://{evil}"}, {"host": evil, "origin": f"http://{evil}"}):
        with pytest.raises(InvalidStatus) as refused:
            Session(server, **options)
        assert refused.value.response.status_code == 403
    with Session(server, host=own, origin=f"{server.scheme}://{own}") as ok:  # its own name is served
        assert ok.run()
    if server.kind == "shared":  # --allowed-host adds a name
        assert server.get("/", host=f"review.example:{server.port}")[0] == 200
    assert server.log_lines(r"refused websocket /_stcore/stream: Host 'evil\.example")


def test_loopback_page_needs_its_token(loopback):
    """The loopback page has no sign-in: without the printed URL's token it serves nothing."""
    from websockets.exceptions import InvalidStatus

    assert loopback.get("/")[0] == 403
    assert loopback.get("/", headers={"Cookie": "anfe_review_token=guess"})[0] == 403
    assert loopback.get("/?token=guess")[0] == 403
    status, headers, _ = loopback.get(f"/?token={TOKEN}")
    assert status == 303 and headers["location"] == "/"  # the token leaves the address bar
    assert headers["set-cookie"] == f"anfe_review_token={TOKEN}; Path=/; HttpOnly; SameSite=Strict"
    assert loopback.get("/_stcore/health")[0] == 200  # says only "ok"
    with pytest.raises(InvalidStatus) as refused:
        Session(Served("loopback", loopback.port, loopback.layout, loopback.log))  # no cookie
    assert refused.value.response.status_code == 403
    printed = loopback.log_lines(r"review page on http://127\.0\.0\.1:\d+/\?token=")
    assert printed and TOKEN in printed[0]
    # and `ps` does not show it: it travels in the environment
    assert TOKEN not in " ".join(open(f"/proc/{pid}/cmdline").read() for pid in _pids_of(loopback.port))


def _pids_of(port: int) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = open(f"/proc/{entry}/cmdline").read()
            except OSError:
                continue
            if "review_server.py" in cmdline and f"\0{port}\0" in cmdline:
                found.append(entry)
    assert found, "the server process"
    return found


# -- 2. the sign-in limiter ----------------------------------------------------------------------
def test_fifty_simultaneous_attempts_check_at_most_the_limit_and_the_reviewer_still_signs_in(shared):
    """50 sign-ins for bob at once from one client (behind the trusted proxy): at most 5 reach
    the password check; bob on another client still signs in; a client's claimed address is
    believed only from the trusted proxy."""
    attacker = {"X-Forwarded-For": "203.0.113.7"}
    start = threading.Barrier(50)
    answers: list[bytes] = []
    failures: list[BaseException] = []

    def attempt(i: int) -> None:
        try:
            with Session(shared, headers=attacker) as session:
                session.run()  # the form, and its widget ids
                states = [session.widget("signin-name", string_value="bob"),
                          session.widget("signin-password", string_value=f"guess {i}"), session._submit()]
                start.wait(timeout=120)
                answers.append(_raw(session.run(states)))
        except BaseException as exc:  # (reported below)
            start.abort()
            failures.append(exc)

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(240)
    assert not failures, failures[:3]
    assert len(answers) == 50
    checked = shared.log_lines(r"failed sign-in for name 'bob' from client 203\.0\.113\.7 ")
    refused = shared.log_lines(r"sign-in refused \(too many failures\) for name 'bob' from client 203\.0\.113\.7")
    # 5 free attempts, then 30 s, 60 s, ... between attempts: a burst gets 5 checks (more only if
    # the burst itself lasted past the back-off, on a very slow machine)
    stamps = [time.mktime(time.strptime(line[:19], "%Y-%m-%d %H:%M:%S")) for line in checked + refused]
    took = max(stamps) - min(stamps) + 1
    policy = BackoffPolicy()
    allowed = policy.free + sum(1 for k in range(1, 20)
                                if sum(policy.first_wait * 2 ** i for i in range(k)) <= took)
    assert len(checked) <= allowed and len(checked) + len(refused) == 50, (len(checked), len(refused), took)
    assert took > policy.first_wait or len(checked) == 5
    assert sum(b"Too many failed sign-ins" in a for a in answers) == len(refused)
    with Session(shared, headers={"X-Forwarded-For": "198.51.100.2"}) as bob:  # bob, elsewhere
        assert b"data:image/jpeg" in _raw(bob.sign_in("bob", PASSWORDS["bob"]))
    assert shared.log_lines(r"bob signed in from client 198\.51\.100\.2")


# -- 3. crawled text as text ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def chromium():
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM),
                                             args=[*CHROMIUM_ARGS, "--ignore-certificate-errors"])
        yield browser
        browser.close()


def _idle(page) -> None:
    page.wait_for_function(
        "() => document.querySelector('[data-test-script-state]')?.getAttribute('data-test-script-state')"
        " === 'notRunning'", timeout=60_000)


def _browse(chromium, served: Served):
    """A page in Chromium showing the review page (signed in on the shared one), and the list of
    every URL the page asked for."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(served.url + (f"/?token={served.token}" if served.token else "/"))
    if served.kind == "shared":
        page.get_by_text("Label review: sign in").wait_for(timeout=60_000)
        page.get_by_label("Name", exact=True).fill("alice")
        page.get_by_label("Password", exact=True).fill(PASSWORDS["alice"])
        page.get_by_role("button", name="Sign in").click()
    page.locator('[data-testid="stImage"] img').first.wait_for(timeout=90_000)
    return context, page, requests


def _seen(text: str) -> str:
    """Text as a reader sees it (the invisible word joiners that keep bare URLs from becoming links dropped)."""
    return text.replace("\u2060", "")


@pytest.mark.browser
def test_crawled_names_and_sites_are_shown_as_text(server, chromium):
    """A person's name with a markdown image, a link, HTML and a right-to-left override, and a
    site with a link and a colour directive: shown as written, no request to another host, no link."""
    context, page, requests = _browse(chromium, server)
    try:
        _idle(page)
        boxes = page.locator('[class*="st-key-sel-"]')
        assert _seen(boxes.first.inner_text()).strip() == SHOWN_NAME  # the tick box's label
        captions = [_seen(t) for t in page.locator('[data-testid="stCaptionContainer"]').all_inner_texts()]
        assert any(SITE in t for t in captions), captions
        page.get_by_text("by person", exact=True).click()
        page.locator("button", has_text="as female").first.wait_for(timeout=60_000)
        _idle(page)
        heading = _seen(page.locator("h3").first.inner_text())
        assert heading.startswith(f"{SHOWN_NAME} ({SITE}): female, 3 photos"), heading
        buttons = [_seen(t) for t in page.get_by_role("button").all_inner_texts()]
        assert f"Keep {SHOWN_NAME} as female" in buttons, buttons
        assert any(b.startswith("Move all ") and f" photos of {SHOWN_NAME} to male (" in b for b in buttons), buttons
        html = page.content()
        rlo = html.find("\u202e")
        assert rlo < 0, html[rlo - 300 : rlo + 100]
        assert 'href="http://evil.example' not in html
        assert "tracker.example" not in "".join(page.locator("img").evaluate_all("els => els.map(e => e.src)"))
        assert page.locator("b", has_text="Ann").count() == 0  # the HTML is text too
    finally:
        context.close()
    foreign = [u for u in requests if not u.startswith(server.url) and not u.startswith("data:")]
    assert not foreign, foreign


def test_safe_text_escapes_every_markup_and_strips_bidi_controls():
    from curation.safe_text import md, plain

    assert plain("Ann \u202eLee\u2066\u200f\nx") == "Ann Lee x"
    assert md("![a](http://x.y/z)") == "&#33;&#91;a&#93;&#40;http&#58;\u2060&#47;&#47;x&#46;y&#47;z&#41;"
    assert md(":red[x] $y$ <b>z</b> *w* _v_ `u` & www.a.b a@b.c") == (
        "&#58;red&#91;x&#93; &#36;y&#36; &#60;b&#62;z&#60;&#47;b&#62; &#42;w&#42; &#95;v&#95; &#96;u&#96; &#38; "
        "www\u2060&#46;a&#46;b a&#64;\u2060b&#46;c")
    assert md("Ann Lee 2") == "Ann Lee 2"


# -- 4. widget values are checked on the server --------------------------------------------------
def test_forged_widget_values_are_refused_and_never_name_a_folder(server):
    """A made-up label, a made-up reason, a value of the wrong type and a made-up person: refused
    with a message, no folder created, nothing moved, no traceback or server path sent."""
    layout = server.layout
    female = layout.image_files("female")
    with _open_session(server) as session:
        tick = session.widget(f"sel-{female[0].stem}", bool_value=True)
        answers = [
            session.run([tick, session.widget("target", string_value="zzz"),
                         session.widget("act-relabel", trigger_value=True)]),
            session.run([tick, session.widget("reason", string_value="my-own-reason"),
                         session.widget("act-reject", trigger_value=True)]),
        ]
        # a tick box of a file this session was not shown (a male photo on the female page)
        male = layout.image_files("male")[0]
        shown_box = tick.id
        unshown = session.run([
            session.widget(f"sel-{female[0].stem}", bool_value=False),
            type(tick)(id=shown_box.replace(female[0].stem, male.stem), bool_value=True),
            session.widget("act-keep", trigger_value=True)])
        # values Streamlit itself drops (a radio or select box value it never offered, a number for
        # text): the page goes on with real ones, and nothing of the made-up value comes back
        dropped = [session.run([session.widget("gender", string_value="../../etc")])]
        session.run([session.widget("view", string_value="by person")])
        dropped.append(session.run([session.widget("view", string_value="by person"),
                                    session.widget("person", string_value="x:y/../zzz")]))
        dropped.append(session.run([session.widget("target", int_value=7), session.widget("detail", double_value=2.5)]))
    raw = [_raw(a) for a in answers]
    assert [b"Refused" in r for r in raw] == [True] * len(raw), [re.findall(rb"[ -~]{12,}", r)[-40:] for r in raw]
    for r in map(_raw, dropped):
        assert b"../../etc" not in r and b"x:y/../zzz" not in r
        assert b"Traceback" not in r and b'File "' not in r and b"Something went wrong" not in r
    for r in raw:
        assert b"Traceback" not in r and b'File "' not in r and str(Path(__file__).parent.parent).encode() not in r
    assert not (layout.root / "images" / "zzz").exists()
    assert not (layout.root / "quarantine" / "my-own-reason").exists()
    assert female[0].exists()  # not moved
    assert b"select images first" in _raw(unshown)
    with open_store(None, layout.root) as store:
        assert not [d for d in store.decisions() if d["content_hash"] in (female[0].stem, male.stem)]


def test_an_unexpected_error_shows_an_id_and_no_traceback(shared):
    """A value of a type no widget takes, before sign-in: the page shows an error id (or refuses),
    the server logs the traceback under that id, and the browser gets no traceback or path."""
    with Session(shared) as session:
        session.run()
        answer = _raw(session.run([session.widget("signin-name", int_value=5),
                                   session.widget("signin-password", double_value=1.5), session._submit()]))
    assert b"Traceback" not in answer and b'File "' not in answer and b"/curation/" not in answer
    found = re.search(rb"error ([0-9a-f]{8})", answer)
    if found:  # Streamlit raised: the id names the logged traceback
        assert shared.log_lines(f"error {found.group(1).decode()} in the review page")
    else:
        assert b"Wrong name or password." in answer


# -- 5. the smaller leaks ------------------------------------------------------------------------
def test_no_metrics_no_paths_no_versions_and_no_session_takeover(server):
    from streamlit import __version__

    assert server.get("/_stcore/metrics", headers=server.cookie())[0] == 404
    with _open_session(server) as first:
        hello = first.first[0] if first.first[0].WhichOneof("type") == "new_session" else \
            next(m for m in first.first if m.WhichOneof("type") == "new_session")
        info = hello.new_session.initialize.environment_info
        assert hello.new_session.main_script_path == "" and info.streamlit_version == "" and info.python_version == ""
        raw = _raw(first.first)
        assert b"review_app.py" not in raw and __version__.encode() not in raw and b"/curation" not in raw
        assert not any(m.WhichOneof("type") == "git_info_changed" for m in first.first)
        session_id = hello.new_session.initialize.session_id
        # another connection presenting that session's id gets a session of its own
        with Session(server, subprotocols=["streamlit", "xsrf", session_id]) as second:
            taken = _raw(second.run())
            ids = [m.new_session.initialize.session_id for m in second.first if m.WhichOneof("type") == "new_session"]
        assert ids and session_id not in ids
        if server.kind == "shared":
            assert b"Label review: sign in" in taken and b"data:image" not in taken


@pytest.mark.browser
def test_idle_expiry_clears_the_page_and_sign_outs_say_why(shared, chromium):
    context, page, _requests = _browse(chromium, shared)
    try:
        page.get_by_text("Label review: sign in").wait_for(timeout=60_000 + IDLE_MINUTES * 60_000)
        assert page.locator('[data-testid="stImage"]').count() == 0  # nothing left on screen
        page.get_by_text("without activity").wait_for(timeout=10_000)
    finally:
        context.close()
    assert shared.log_lines(r"alice signed out from client \S+ \(idle\)")
    with Session(shared) as carol:
        carol.sign_in("carol", PASSWORDS["carol"])
        reviewers.remove(shared.extra["reviewers"], "carol")
        assert b"Label review: sign in" in _raw(carol.run())
    assert shared.log_lines(r"carol signed out from client \S+ \(removed\)")


def test_report_error_logs_the_traceback_under_an_id_and_shows_only_the_id(caplog):
    """What ``anfe review`` does with an error the page did not expect (its ``on_script_error``)."""
    from streamlit.testing.v1 import AppTest

    def page():
        from curation.server_log import report_error

        try:
            raise RuntimeError("details for the operator only: /srv/secret/path")
        except RuntimeError as exc:
            report_error(exc)

    with caplog.at_level("ERROR", logger="curation.review_server"):
        at = AppTest.from_function(page).run()
    shown = at.error[0].value
    error_id = re.fullmatch(r"Something went wrong on the server \(error ([0-9a-f]{8})\); its log has the details\.",
                            shown).group(1)
    assert "/srv/secret" not in shown and not at.exception
    logged = [r for r in caplog.records if r.getMessage() == f"error {error_id} in the review page"]
    assert logged and "/srv/secret/path" in str(logged[0].exc_info[1])
