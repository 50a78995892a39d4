"""The review server's log lines on its standard error (Streamlit configures only its own loggers)."""

from __future__ import annotations

import logging
import sys


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


__all__ = ["to_stderr"]
