"""What ``anfe review`` serves: the review page (``review_app.py``) behind its trust boundary.

``streamlit run curation/review_server.py -- DATASET_ROOT [options]`` finds the ``st.App`` below
and serves it: :class:`curation.review_guard.TrustBoundary` checks every request first, and an
error in the page is logged with an id while the browser is shown only that id.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import streamlit as st
from starlette.middleware import Middleware

from curation.review_cli import parse_args
from curation.review_guard import TOKEN_ENV, GuardSettings, TrustBoundary
from curation.server_log import report_error, to_stderr


def settings(argv: list[str]) -> GuardSettings:
    """The guard's settings for the page arguments ``argv``; the token comes from the environment."""
    config = parse_args(argv)
    return GuardSettings(config.allowed_hosts, config.trusted_proxies, os.environ.get(TOKEN_ENV) or None)


to_stderr(logging.getLogger("curation"))
app = st.App(str(Path(__file__).with_name("review_app.py")), on_script_error=report_error,
             middleware=[Middleware(TrustBoundary, settings=settings(sys.argv[1:]))])
