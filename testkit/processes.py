"""Stopping the servers the tests start as subprocesses (Streamlit, the demo site)."""

from __future__ import annotations

import subprocess


def stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """Terminate ``process``; kill it if it has not exited ``grace`` seconds later."""
    process.terminate()
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
