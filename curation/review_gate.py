"""The review page's sign-in gate (Streamlit widgets; the rules live in :mod:`curation.signin`).

When the page needs sign-in (reviewers are configured, or it is served beyond loopback), a
session sees only the sign-in form until a reviewer signs in: nothing of the dataset is read or
sent before. The signed-in name is then the reviewer recorded with every decision. The action
callbacks ask :func:`acting_reviewer` again, because Streamlit runs a button's callback before
the page script, so an expired session can still click a button drawn before it expired.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from . import reviewers as reviewer_file
from . import signin
from .signin import AccessConfig, FailureLimiter, Session, SignInPolicy

SESSION_KEY = "_signed_in"
#: Shown for the client when the page is reached from this machine (Streamlit gives no address then).
LOCAL_CLIENT = "loopback"


@dataclass(frozen=True)
class Identity:
    """Who is using the page: ``name`` when signed in; None when the page needs no sign-in (one
    local user, who may type a name)."""

    name: str | None


@st.cache_resource(show_spinner=False)
def _limiter(policy: SignInPolicy) -> FailureLimiter:
    """One failed-attempt counter per server process, shared by all its sessions."""
    return FailureLimiter(policy)


@st.cache_resource(show_spinner=False)
def _audit_log() -> logging.Logger:
    """``curation.signin`` writes to the server's standard error (Streamlit configures only its own loggers)."""
    logger = logging.getLogger("curation.signin")
    if not any(getattr(h, "_anfe_signin", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._anfe_signin = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def _client() -> str:
    ip = st.context.ip_address
    return ip if isinstance(ip, str) and ip else LOCAL_CLIENT


def _server_is_shared() -> bool:
    return not signin.is_loopback(st.get_option("server.address"))


def needs_sign_in(access: AccessConfig, path: Path) -> bool:
    """True when reviewers are configured, sign-in was asked for, or the server listens beyond loopback."""
    return access.require_sign_in or _server_is_shared() or bool(reviewer_file.load(path))


def sign_out(message: str = "Signed out.") -> None:
    """End this session's sign-in (button callback and expiry)."""
    session: Session | None = st.session_state.pop(SESSION_KEY, None)
    if session is not None:
        _audit_log().info("%s signed out from client %s", session.name, _client())
    st.session_state["signin_message"] = message


def acting_reviewer(access: AccessConfig, root: Path) -> Identity | None:
    """For an action: the identity allowed to act now, or None (not signed in, or the session
    just ended) when the page needs sign-in."""
    path = access.reviewers_file(root)
    if not needs_sign_in(access, path):
        return Identity(None)
    session: Session | None = st.session_state.get(SESSION_KEY)
    if session is None:
        return None
    ended = session.check(path, access.policy)
    if ended:
        sign_out(ended)
        return None
    return Identity(session.name)


def gate(access: AccessConfig, root: Path) -> Identity:
    """The identity using the page; when sign-in is needed and missing, draws the sign-in form
    and stops the script (so nothing below it runs)."""
    path = access.reviewers_file(root)
    logger = _audit_log()
    try:
        identity = acting_reviewer(access, root)
    except reviewer_file.ReviewersError as exc:  # the details are for the operator, not for visitors
        logger.error("review page closed: %s", exc)
        st.error("The page cannot check sign-ins now: its reviewers file is unusable (the server's log says why).")
        st.stop()
        raise AssertionError("unreachable") from exc
    if identity is not None and identity.name and not st.get_option("server.enableXsrfProtection"):
        st.error("Sign-in needs Streamlit's XSRF protection: serve the page with `anfe review`, or "
                 "`streamlit run` with --server.enableXsrfProtection true.")
        st.stop()
    if identity is not None:
        if identity.name:
            with st.sidebar:
                st.caption(f"Signed in as **{identity.name}**")
                st.button("Sign out", key="sign-out", on_click=sign_out)
        return identity
    _form(access, path)
    st.stop()
    raise AssertionError("unreachable: st.stop() ends the script run")


def _form(access: AccessConfig, path: Path) -> None:
    st.title("Label review: sign in")
    message = st.session_state.pop("signin_message", None)
    if not reviewer_file.load(path):
        st.error("This page is shared beyond this machine but has no reviewers: stop it and add one with "
                 "`anfe review reviewers add NAME --root DATASET_ROOT`.")
        return
    with st.form("signin", clear_on_submit=True):
        name = st.text_input("Name", key="signin-name", autocomplete="username")
        password = st.text_input("Password", type="password", key="signin-password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted:  # (a reviewers file made unusable meanwhile fails at the next run, above)
        attempt = signin.sign_in(path, _limiter(access.policy), _client(), name, password)
        if attempt.reviewer is not None:
            st.session_state[SESSION_KEY] = Session(attempt.reviewer.name, attempt.reviewer.fingerprint)
            st.rerun()
        message = attempt.message
    if message:
        st.warning(message)


__all__ = ["Identity", "acting_reviewer", "gate", "needs_sign_in", "sign_out"]
