"""Whether a process id is alive on this machine: a dead crawler's locks are taken over, a dead
writer's partial files swept and a dead demo-site builder's folder cleared by it (a leaf)."""

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
