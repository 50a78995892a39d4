"""The review server's log lines on its standard error (Streamlit configures only its own
loggers), and errors reported by id: the traceback for the log, the id for the browser."""

from __future__ import annotations

import logging
import secrets
import sys

import streamlit as st

log = logging.getLogger("curation.review_server")


def to_stderr(logger: logging.Logger, propagate: bool = True) -> logging.Logger:
    """``logger`` at INFO with one handler writing timestamped lines to standard error (added
    once, however often this is called); ``propagate`` False keeps its lines from a parent's handler."""
    if not any(getattr(h, "_anfe_review", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._anfe_review = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = propagate
    return logger


def report_error(exc: BaseException) -> bool:
    """An error the page did not expect (``st.App``'s ``on_script_error``): its traceback goes to
    the log under a fresh id, the page shows only that id; True: Streamlit shows nothing of its own."""
    error_id = secrets.token_hex(4)
    log.error("error %s in the review page", error_id, exc_info=exc)
    st.error(f"Something went wrong on the server (error {error_id}); its log has the details.")
    return True


__all__ = ["report_error", "to_stderr"]
