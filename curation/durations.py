"""Durations in words for the page: seconds under a minute (an idle limit of 30 s is "30 s", not
"0 min"), whole minutes otherwise."""

from __future__ import annotations


def in_words(seconds: float) -> str:
    """``seconds`` as "45 s" (under a minute, at least 1 s) or "N min" (rounded)."""
    if seconds < 59.5:
        return f"{max(1, round(seconds))} s"
    return f"{round(seconds / 60)} min"


__all__ = ["in_words"]
