"""Reviewers, sign-in rules and the `anfe review` refusals (no browser; the page itself through AppTest).

The real-server tests (browser, HTTP, TLS) are in test_review_signin_browser.py.
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from streamlit.testing.v1 import AppTest

from anfe.cli.app import cli
from anfe.core.store import open_store
from curation import reviewers, signin
from curation.review_gate import SESSION_KEY
from curation.limiter import AttemptLimiter, BackoffPolicy
from curation.signin import Ended, Session, SignInPolicy, is_loopback
from testkit.review import make_review_dataset

PASSWORD = "correct horse battery"


@pytest.fixture
def dataset(utkface_rows, tmp_path):
    return make_review_dataset(utkface_rows, tmp_path / "data", per_gender=3)


@pytest.fixture
def bare_root(tmp_path) -> Path:
    """A dataset root with empty gender folders (enough for the commands that do not read images)."""
    for gender in ("female", "male"):
        (tmp_path / "ds" / "images" / gender).mkdir(parents=True)
    return tmp_path / "ds"


def run(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input)


# -- the reviewers file --------------------------------------------------------------------------
def test_reviewers_add_list_remove_store_salted_hashes_owner_only(bare_root):
    result = run("review", "reviewers", "add", "alice", "--root", str(bare_root), "--password-stdin", input=PASSWORD + "\n")
    assert result.exit_code == 0, result.output
    path = bare_root / "reviewers.json"
    assert result.output == f"added alice in {path.resolve()}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert PASSWORD not in path.read_text()
    run("review", "reviewers", "add", "bob", "--root", str(bare_root), "--password-stdin", input=PASSWORD + "\n")
    stored = reviewers.load(path)
    assert stored["alice"].password_hash.startswith("scrypt$")
    assert stored["alice"].password_hash != stored["bob"].password_hash  # same password, own salt
    assert reviewers.authenticate(stored, "alice", PASSWORD).name == "alice"
    assert reviewers.authenticate(stored, "alice", PASSWORD + "x") is None
    assert reviewers.authenticate(stored, "carol", PASSWORD) is None

    listed = run("review", "reviewers", "list", "--root", str(bare_root))
    assert [line.split("\t")[0] for line in listed.output.splitlines()] == ["alice", "bob"]
    assert "scrypt" not in listed.output
    # prompted twice when not from stdin; a changed password says so
    changed = run("review", "reviewers", "add", "bob", "--root", str(bare_root), input="another password\nanother password\n")
    assert changed.exit_code == 0 and "changed the password of bob" in changed.output
    assert reviewers.authenticate(reviewers.load(path), "bob", "another password").name == "bob"
    removed = run("review", "reviewers", "remove", "bob", "--root", str(bare_root))
    assert removed.exit_code == 0 and list(reviewers.load(path)) == ["alice"]
    again = run("review", "reviewers", "remove", "bob", "--root", str(bare_root))
    assert again.exit_code == 1 and again.output == f"Error: no reviewer 'bob' in {path.resolve()} (reviewers: alice)\n"


def test_reviewers_file_by_option_and_bad_input(tmp_path, bare_root):
    other = tmp_path / "elsewhere" / "who.json"
    result = run("review", "reviewers", "add", "carol", "--reviewers", str(other), "--password-stdin", input=PASSWORD)
    assert result.exit_code == 0 and stat.S_IMODE(other.stat().st_mode) == 0o600
    short = run("review", "reviewers", "add", "dan", "--reviewers", str(other), "--password-stdin", input="short\n")
    assert short.exit_code == 1 and short.output.startswith("Error: the password is too short")
    bad = run("review", "reviewers", "add", "a b", "--reviewers", str(other), "--password-stdin", input=PASSWORD)
    assert bad.exit_code == 1 and "is not a usable reviewer name" in bad.output
    other.chmod(0o644)
    public = run("review", "reviewers", "list", "--reviewers", str(other))
    assert public.exit_code == 1 and public.output.strip().endswith(f"run `chmod 600 {other}`")
    not_root = run("review", "reviewers", "list", "--root", str(tmp_path))
    assert not_root.exit_code == 1 and "is not a dataset root" in not_root.output


# -- serving: refusals and TLS -------------------------------------------------------------------
def test_refuses_to_share_without_reviewers(bare_root):
    result = run("review", str(bare_root), "--address", "0.0.0.0", "--print-command")
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and result.output.startswith("Error: refusing to serve")
    assert f"`anfe review reviewers add NAME --root {bare_root.resolve()}`" in result.output


def test_sharing_needs_tls_or_insecure_http_and_loopback_is_unchanged(bare_root, tls_files):
    local = run("review", str(bare_root), "--print-command")
    assert local.exit_code == 0 and "--server.address 127.0.0.1" in local.output
    assert "--reviewers" not in local.output and "--require-sign-in" not in local.output
    for flag in ("--server.enableXsrfProtection true", "--browser.gatherUsageStats false",
                 "--server.enableAgentApi false", "--client.showErrorDetails none",
                 "--server.allowedHosts 127.0.0.1 --server.allowedHosts localhost"):
        assert flag in local.output

    run("review", "reviewers", "add", "alice", "--root", str(bare_root), "--password-stdin", input=PASSWORD)
    clear = run("review", str(bare_root), "--address", "0.0.0.0", "--print-command")
    assert clear.exit_code == 1 and "give --tls-cert FILE --tls-key FILE" in clear.output
    insecure = run("review", str(bare_root), "--address", "0.0.0.0", "--insecure-http", "--print-command")
    assert insecure.exit_code == 0, insecure.output
    assert f"--reviewers {bare_root.resolve() / 'reviewers.json'} " in insecure.output
    assert insecure.output.rstrip().endswith("--require-sign-in")
    assert "--server.allowedHosts 0.0.0.0" not in insecure.output  # its names, not the wildcard
    cert, key, _ca = tls_files
    tls = run("review", str(bare_root), "--address", "0.0.0.0", "--tls-cert", str(cert), "--tls-key", str(key),
              "--print-command")
    assert tls.exit_code == 0, tls.output
    assert f"--server.sslCertFile {cert} --server.sslKeyFile {key}" in tls.output
    swapped = run("review", str(bare_root), "--tls-cert", str(key), "--tls-key", str(cert), "--print-command")
    assert swapped.exit_code == 1 and swapped.output.startswith(f"Error: cannot use --tls-cert {key}")
    half = run("review", str(bare_root), "--tls-cert", str(cert), "--print-command")
    assert half.exit_code == 1 and "give both --tls-cert FILE and --tls-key FILE" in half.output


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    from testkit.tls_certs import make_ca_and_server_cert

    return make_ca_and_server_cert(tmp_path_factory.mktemp("tls"))


def test_loopback_addresses():
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "::", "192.168.1.10", "example.org", "", None]))


# -- sign-in rules -------------------------------------------------------------------------------
def test_attempts_back_off_per_name_and_client_not_for_everyone():
    now = [0.0]
    limiter = AttemptLimiter(BackoffPolicy(free=3, free_per_client=5, first_wait=2, max_wait=8, forget_after=600),
                             clock=lambda: now[0])
    for _ in range(3):
        assert limiter.reserve("alice", "10.0.0.1") == 0  # counted before any password check
    assert limiter.reserve("alice", "10.0.0.1") == 2  # then it waits, doubling: not a lockout
    assert limiter.reserve("Alice ", "10.0.0.2") == 0  # another client: alice is not locked for it
    limiter.succeeded("alice", "10.0.0.2")
    assert limiter.failures("alice", "10.0.0.1") == 3 and limiter.failures("alice", "10.0.0.2") == 0
    now[0] = 2
    assert limiter.reserve("alice", "10.0.0.1") == 0
    assert limiter.reserve("alice", "10.0.0.1") == 4
    now[0] = 6
    assert limiter.reserve("alice", "10.0.0.1") == 0
    now[0] = 100
    assert limiter.reserve("alice", "10.0.0.1") == 0
    assert limiter.reserve("alice", "10.0.0.1") == 8  # the ceiling (not 16)
    # one client trying many names is slowed too (only itself)
    assert limiter.reserve("bob", "10.0.0.3") == 0 and limiter.reserve("carol", "10.0.0.3") == 0
    for name in ("dave", "erin", "frank"):
        limiter.reserve(name, "10.0.0.3")
    assert limiter.reserve("gina", "10.0.0.3") > 0 and limiter.reserve("gina", "10.0.0.4") == 0
    now[0] = 1000  # forgotten after a quiet while
    assert limiter.reserve("alice", "10.0.0.1") == 0 and limiter.failures("alice", "10.0.0.1") == 1


def test_simultaneous_attempts_are_counted_before_the_password_check(tmp_path):
    """50 threads at once for one name from one client: only the free attempts reach scrypt."""
    import threading

    path = tmp_path / "reviewers.json"
    reviewers.add(path, "alice", PASSWORD)
    limiter = AttemptLimiter(BackoffPolicy(free=5))
    checked = []
    real = reviewers.authenticate

    def counting(*args):
        checked.append(1)
        return real(*args)

    start = threading.Barrier(50)
    answers = []

    def attempt(i):
        start.wait()
        answers.append(signin.sign_in(path, limiter, "10.0.0.66", "alice", f"guess {i}"))

    from unittest import mock

    with mock.patch.object(reviewers, "authenticate", counting):
        threads = [threading.Thread(target=attempt, args=(i,)) for i in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert len(checked) == 5 and sum(a.message == signin.WRONG for a in answers) == 5
    assert signin.sign_in(path, limiter, "10.0.0.67", "alice", PASSWORD).reviewer.name == "alice"


def test_wrong_password_and_unknown_name_get_one_answer_and_are_logged(tmp_path):
    path = tmp_path / "reviewers.json"
    reviewers.add(path, "alice", PASSWORD)
    limiter = AttemptLimiter(BackoffPolicy(free=2, first_wait=900))
    records: list[logging.LogRecord] = []
    catcher = logging.Handler(logging.INFO)
    catcher.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("curation.signin")  # (the page's own handler stops propagation to the root)
    logger.addHandler(catcher)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        wrong = signin.sign_in(path, limiter, "10.0.0.9", "alice", "not the password")
        unknown = signin.sign_in(path, limiter, "10.0.0.9", "mallory", PASSWORD)
        assert wrong == unknown == signin.Attempt(None, "Wrong name or password.")
        signin.sign_in(path, limiter, "10.0.0.9", "alice", "still wrong")
        locked = signin.sign_in(path, limiter, "10.0.0.9", "alice", PASSWORD)
        assert locked.reviewer is None and locked.message == "Too many failed sign-ins: try again in 15 min."
        assert signin.sign_in(path, limiter, "10.0.0.8", "alice", PASSWORD).reviewer.name == "alice"
        strict = AttemptLimiter(BackoffPolicy(free=1, first_wait=900))
        for name in ("alice", "mallory"):
            assert signin.sign_in(path, strict, "10.0.0.7", name, "wrong") == signin.Attempt(None, signin.WRONG)
        assert signin.sign_in(path, strict, "10.0.0.7", "alice", PASSWORD) == \
            signin.sign_in(path, strict, "10.0.0.7", "mallory", PASSWORD)  # held back alike
    finally:
        logger.removeHandler(catcher)
        logger.setLevel(level)
    failures = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert failures[0] == "failed sign-in for name 'alice' from client 10.0.0.9 (1 for this name from this client)"
    assert failures[1].startswith("failed sign-in for name 'mallory' from client 10.0.0.9")
    assert "sign-in refused (too many failures) for name 'alice' from client 10.0.0.9" in failures
    ok = signin.sign_in(path, AttemptLimiter(BackoffPolicy()), "10.0.0.9", " alice ", PASSWORD)
    assert ok.reviewer.name == "alice"


def test_session_ends_when_idle_removed_or_password_changed(tmp_path):
    path = tmp_path / "reviewers.json"
    reviewers.add(path, "alice", PASSWORD)
    policy = SignInPolicy(idle_seconds=60)
    session = Session("alice", reviewers.load(path)["alice"].fingerprint, last_seen=1000.0)
    assert session.check(path, policy, now=1059.0) is None
    assert session.check(path, policy, now=1118.0) is None  # each action restarts the idle time
    assert session.check(path, policy, now=1179.0) == \
        Ended("idle", "Signed out after 1 min without activity: sign in again.")
    session.last_seen = 2000.0
    reviewers.add(path, "alice", "a new password!")
    assert session.check(path, policy, now=2001.0).reason == "password-changed"
    session = Session("alice", reviewers.load(path)["alice"].fingerprint, last_seen=2000.0)
    reviewers.remove(path, "alice")
    ended = session.check(path, policy, now=2001.0)
    assert ended.reason == "removed" and ended.message.startswith("Signed out: your reviewer entry")


# -- the page through AppTest --------------------------------------------------------------------
def _page(argv):
    from curation.review_app import render

    render(argv)


@pytest.fixture
def loopback_server():
    from streamlit import config

    config.set_option("server.address", "127.0.0.1")
    yield
    config.set_option("server.address", None)


def test_page_asks_to_sign_in_and_records_the_signed_in_name(dataset, session_cache_path, loopback_server):
    reviewers.add(dataset.root / "reviewers.json", "alice", PASSWORD)
    at = AppTest.from_function(_page, args=([str(dataset.root), "--cache", str(session_cache_path)],),
                               default_timeout=120).run()
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Name", "Password"]
    assert not at.checkbox and [b.label for b in at.button] == ["Sign in"]  # no tile, no action
    at.text_input(key="signin-name").set_value("alice")
    at.text_input(key="signin-password").set_value("wrong password")
    at.button[0].click().run()
    assert at.warning[0].value == "Wrong name or password." and not at.checkbox
    at.text_input(key="signin-name").set_value("alice")
    at.text_input(key="signin-password").set_value(PASSWORD)
    at.button[0].click().run()
    assert not at.exception
    assert "reviewer" not in [t.key for t in at.text_input]  # the name comes from the sign-in
    assert any("Signed in as **alice**" in c.value for c in at.caption)
    at.button(key="select-all").click().run()
    at.button(key="act-keep").click().run()
    with open_store(None, dataset.root) as store:
        assert [d["who"] for d in store.decisions()] == ["alice"] * 3
    at.radio(key="gender").set_value("male").run()
    assert len([c for c in at.checkbox if c.key.startswith("sel-")]) == 3

    # idle too long: the next click is refused before its callback acts, and the form comes back
    at.session_state[SESSION_KEY].last_seen -= 31 * 60
    at.button(key="act-keep-rest").click().run()
    assert [w.value for w in at.warning] == ["Signed out after 30 min without activity: sign in again."]
    assert not at.checkbox and [t.label for t in at.text_input] == ["Name", "Password"]
    with open_store(None, dataset.root) as store:
        assert len(store.decisions()) == 3


def test_page_shared_without_reviewers_shows_only_how_to_add_them(dataset, session_cache_path):
    from streamlit import config

    config.set_option("server.address", "0.0.0.0")
    try:
        at = AppTest.from_function(_page, args=([str(dataset.root), "--cache", str(session_cache_path)],),
                                   default_timeout=120).run()
    finally:
        config.set_option("server.address", None)
    assert "has no reviewers" in at.error[0].value and "anfe review reviewers add NAME" in at.error[0].value
    assert not at.checkbox and not at.button and not at.text_input


def test_page_with_sign_in_refuses_to_run_without_xsrf_protection(dataset, session_cache_path, loopback_server):
    from streamlit import config

    reviewers.add(dataset.root / "reviewers.json", "alice", PASSWORD)
    at = AppTest.from_function(_page, args=([str(dataset.root), "--cache", str(session_cache_path)],),
                               default_timeout=120).run()
    at.text_input(key="signin-name").set_value("alice")
    at.text_input(key="signin-password").set_value(PASSWORD)
    config.set_option("server.enableXsrfProtection", False)
    try:
        at.button[0].click().run()
    finally:
        config.set_option("server.enableXsrfProtection", True)
    assert "needs Streamlit's XSRF protection" in at.error[0].value
    assert not [c for c in at.checkbox if c.key.startswith("sel-")]
