"""Whether a process id is alive on this machine: the frontier takes back a dead crawler's claims
and the demo site clears a dead builder's folder by it."""

from __future__ import annotations

import os


def process_alive(pid: int) -> bool:
    """True when a process with this id runs on this machine (one we may not signal counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


__all__ = ["process_alive"]
