"""Commands run in processes of their own for the tests (Scrapy's reactor runs once per process), and a
loopback port nobody listens on."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

#: The checkout: scrapy.cfg is there.
CHECKOUT = Path(__file__).resolve().parent.parent


def closed_port() -> int:
    """A loopback port nobody listens on (bound, then released): connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(*command: str, cwd: Path = CHECKOUT, timeout: int = 120) -> subprocess.CompletedProcess:
    """A command in a process of its own (Scrapy's reactor runs once per process), with this checkout first."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CHECKOUT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", *command], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
