"""The review page's sign-in gate (Streamlit widgets; the rules live in :mod:`curation.signin`).

When the page needs sign-in, a session sees only the sign-in form until a reviewer signs in:
nothing of the dataset is read or sent before.
"""

from __future__ import annotations

import logging

import streamlit as st

from . import decisions, server_log, signin
from . import reviewers as reviewer_file
from .limiter import AttemptLimiter, BackoffPolicy
from .review_cli import ReviewConfig
from .safe_text import md
from .signin import Ended, Session

SESSION_KEY = "_signed_in"


@st.cache_resource(show_spinner=False)
def _limiter(policy: BackoffPolicy) -> AttemptLimiter:
    """One attempt counter per server process, shared by all its sessions."""
    return AttemptLimiter(policy)


@st.cache_resource(show_spinner=False)
def _audit_log() -> logging.Logger:
    """``curation.signin``, on the server's standard error."""
    return server_log.to_stderr(signin.log, propagate=False)


def _client() -> str:
    """The address the session's connection came from (behind ``--trusted-proxy``, the one the
    proxy saw: ``anfe review``'s guard puts it there); Streamlit gives none for 127.0.0.1 and ::1."""
    ip = st.context.ip_address
    return ip if isinstance(ip, str) and ip else "localhost"


def needs_sign_in(config: ReviewConfig) -> bool:
    """True when reviewers are configured, sign-in was asked for, or the server listens beyond loopback."""
    return (config.require_sign_in or not signin.is_loopback(st.get_option("server.address"))
            or bool(reviewer_file.load(config.reviewers_file)))


MANUAL = Ended("manual", "Signed out.")


def sign_out(ended: Ended = MANUAL) -> None:
    """End this session's sign-in (button callback and expiry), logging why."""
    session: Session | None = st.session_state.pop(SESSION_KEY, None)
    if session is not None:
        _audit_log().info("%s signed out from client %s (%s)", session.name, _client(), ended.reason)
    st.session_state["signin_message"] = ended.message


def _signed_in(config: ReviewConfig) -> str | None:
    """The signed-in reviewer, or None (not signed in, or the session just ended)."""
    session: Session | None = st.session_state.get(SESSION_KEY)
    ended = session.check(config.reviewers_file, config.policy) if session else None
    if ended:
        sign_out(ended)
    return None if session is None or ended else session.name


def _watch_idle(config: ReviewConfig) -> None:
    """Fragment body, run every few seconds: at idle expiry, sign out and redraw the whole page
    (the form only), so no thumbnail stays on a screen left alone."""
    session: Session | None = st.session_state.get(SESSION_KEY)
    if session is not None and session.idle(config.policy):
        sign_out(Ended("idle", f"Signed out after {config.policy.idle_seconds / 60:g} min without activity: "
                               f"sign in again."))
        st.rerun(scope="app")


def acting_reviewer(config: ReviewConfig) -> str | None:
    """The name an action is recorded as: the signed-in reviewer, or (no sign-in needed) the name
    typed in the sidebar; None when the session must sign in (again) first. Button callbacks ask
    again, as Streamlit runs them before the page script: the session may have ended since."""
    if needs_sign_in(config):
        return _signed_in(config)
    return st.session_state.get("reviewer") or decisions.default_reviewer()


def gate(config: ReviewConfig) -> str | None:
    """The signed-in reviewer, or None when the page needs no sign-in; when it needs one and none
    is there, draws the sign-in form and stops the script (so nothing below it runs)."""
    logger = _audit_log()  # (before anything logs)
    try:
        if not needs_sign_in(config):
            return None
        name = _signed_in(config)
        if name is None:
            _form(config)
            st.stop()
    except reviewer_file.ReviewersError as exc:  # the details are for the operator, not for visitors
        logger.error("review page closed: %s", exc)
        st.error("The page cannot check sign-ins now: its reviewers file is unusable "
                 "(the server's log says why).")
        st.stop()
    if not st.get_option("server.enableXsrfProtection"):
        st.error("Sign-in needs Streamlit's XSRF protection: serve the page with `anfe review`, or "
                 "`streamlit run` with --server.enableXsrfProtection true.")
        st.stop()
    with st.sidebar:
        st.caption(f"Signed in as **{md(name)}**")
        st.button("Sign out", key="sign-out", on_click=sign_out)
        st.fragment(_watch_idle, run_every=max(1.0, min(30.0, config.policy.idle_seconds / 4)))(config)
    return name


def _form(config: ReviewConfig) -> None:
    st.title("Label review: sign in")
    message = st.session_state.pop("signin_message", None)
    if not reviewer_file.load(config.reviewers_file):
        st.error("This page is shared beyond this machine but has no reviewers: stop it and add one with "
                 "`anfe review reviewers add NAME --root DATASET_ROOT`.")
        return
    with st.form("signin", clear_on_submit=True):
        name = st.text_input("Name", key="signin-name", autocomplete="username")
        password = st.text_input("Password", type="password", key="signin-password",
                                 autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if submitted and not (isinstance(name, str) and isinstance(password, str)):
        message = signin.WRONG  # a forged value of another type: refused like a wrong password
    elif submitted:
        attempt = signin.sign_in(config.reviewers_file, _limiter(config.policy.backoff), _client(), name, password)
        if attempt.reviewer is not None:
            st.session_state[SESSION_KEY] = Session(attempt.reviewer.name, attempt.reviewer.fingerprint)
            st.rerun()
        message = attempt.message
    if message:
        st.warning(message)


__all__ = ["acting_reviewer", "gate", "needs_sign_in", "sign_out"]
