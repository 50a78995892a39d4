"""What ``anfe review`` serves: the review page (``review_app.py``) behind its trust boundary.

``streamlit run curation/review_server.py -- DATASET_ROOT [options]`` finds the ``st.App`` below
and serves it: :class:`curation.review_guard.TrustBoundary` checks every request first, and an
error in the page is logged with an id while the browser is shown only that id.
"""

from __future__ import annotations

import logging
import os
import secrets
import sys
from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

from curation.review_cli import parse_args
from curation.review_guard import TOKEN_ENV, GuardSettings, TrustBoundary
from curation.server_log import to_stderr

log = logging.getLogger("curation.review_server")


def report_error(exc: Exception) -> bool:
    """An error the page did not expect: the traceback goes to the server's log under a fresh id,
    the browser sees only that id (True: Streamlit shows nothing of its own)."""
    error_id = secrets.token_hex(4)
    log.error("error %s in the review page", error_id, exc_info=exc)
    st.error(f"Something went wrong on the server (error {error_id}); its log has the details.")
    return True


def settings(argv: list[str]) -> GuardSettings:
    """The guard's settings for the page arguments ``argv``; the token comes from the environment."""
    config = parse_args(argv)
    return GuardSettings(config.allowed_hosts, config.trusted_proxies, os.environ.get(TOKEN_ENV) or None)


to_stderr(logging.getLogger("curation"))
app = st.App(str(Path(__file__).with_name("review_app.py")), on_script_error=report_error,
             middleware=[Middleware(TrustBoundary, settings=settings(sys.argv[1:]))])
