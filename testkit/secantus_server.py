"""A real MongoDB wire-protocol server for the tests: ``secantusd-py`` (SecantusDB on WiredTiger).

The tests start it on a free loopback port with a temporary storage path and stop it afterwards.
SecantusDB is GPL-2.0: it is a test-only dependency (the ``dev`` extra), never imported by the
project's code; the tests only run its daemon as a separate process and talk to it with pymongo.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote_plus

import pymongo

#: How long a starting server may take to answer a ping before the test fails.
START_TIMEOUT_S = 60.0


class ServerStartError(RuntimeError):
    """The daemon exited or did not answer in time (its log's tail says why)."""


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def daemon_command() -> list[str]:
    """``secantusd-py`` from this interpreter's environment (``python -m secantus`` where the script
    is not beside the interpreter)."""
    script = Path(sys.executable).with_name("secantusd-py")
    if script.exists():
        return [str(script)]
    found = shutil.which("secantusd-py")
    return [found] if found else [sys.executable, "-m", "secantus"]


class SecantusServer:
    """One ``secantusd-py --standalone`` process on 127.0.0.1 with its storage in ``storage``.

    ``stop``/``kill`` and ``start`` again reopen the same storage (WiredTiger recovers it), which is
    how the tests take the server away in the middle of a command and bring it back.
    """

    def __init__(
        self,
        storage: Path,
        *,
        port: int | None = None,
        auth: bool = False,
        test_commands: bool = False,
        sync_on_commit: bool = False,
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        tls_ca: Path | None = None,
    ) -> None:
        self.storage = Path(storage)
        self.port = port or free_port()
        self.auth = auth
        self.test_commands = test_commands
        self.sync_on_commit = sync_on_commit
        self.tls_cert, self.tls_key, self.tls_ca = tls_cert, tls_key, tls_ca
        self.process: subprocess.Popen | None = None
        self.log_path = self.storage.parent / f"{self.storage.name}.log"

    # -- the process -------------------------------------------------------------------------
    def args(self) -> list[str]:
        # An empty config file of our own: no ./secantusd.toml or ~/.secantus one is picked up.
        config = self.storage.parent / f"{self.storage.name}.toml"
        config.touch()
        args = daemon_command() + [
            "--config", str(config),
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--storage-path", str(self.storage),
            "--standalone",
            "--log-level", "WARNING",
            "--cache-size", "256M",
        ]
        if self.auth:
            args.append("--auth")
        if self.test_commands:
            args.append("--enable-test-commands")
        if self.sync_on_commit:  # a write acknowledged with j:true survives a SIGKILL, as on mongod
            args.append("--sync-on-commit")
        if self.tls_cert:
            args += ["--tls-cert-file", str(self.tls_cert), "--tls-key-file", str(self.tls_key)]
        if self.tls_ca:
            args += ["--tls-ca-file", str(self.tls_ca)]
        return args

    def start(self) -> "SecantusServer":
        """Start the daemon and wait until it accepts connections."""
        if self.running:
            return self
        self.storage.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        try:
            self.process = subprocess.Popen(
                self.args(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C in the test run is not delivered twice
            )
        finally:
            log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerStartError(f"secantusd-py exited with {self.process.returncode}: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise ServerStartError(f"secantusd-py did not listen on port {self.port} within "
                               f"{START_TIMEOUT_S:g} s: {self.log_tail()}")

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """Shut down cleanly (SIGTERM), killing it if it does not exit in ``timeout`` seconds."""
        if not self.running:
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: the server dies mid-write, as after a power cut or an OOM kill."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def restart(self) -> "SecantusServer":
        self.stop()
        return self.start()

    def log_tail(self, lines: int = 15) -> str:
        try:
            return " | ".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> "SecantusServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- failure injection and scratch databases ------------------------------------------
    def fail_point(self, mode: object, commands: tuple[str, ...] = (), **data: object) -> None:
        """Arm (or with ``"off"`` disarm) the server's ``failCommand`` fail point (``test_commands``)."""
        with pymongo.MongoClient(self.uri(), serverSelectionTimeoutMS=5000) as client:
            command: dict[str, object] = {"configureFailPoint": "failCommand", "mode": mode}
            if mode != "off":
                command["data"] = {"failCommands": list(commands), **data}
            client.admin.command(command)

    @contextmanager
    def scratch_database(self, prefix: str) -> Iterator[str]:
        """The URI of a fresh database (the server started again if a test killed it); afterwards
        the fail point is off and the database dropped."""
        self.start()
        database = f"{prefix}_{uuid.uuid4().hex[:10]}"
        try:
            yield self.uri(database)
        finally:
            self.start()
            self.fail_point("off")
            with pymongo.MongoClient(self.uri(), serverSelectionTimeoutMS=5000) as client:
                client.drop_database(database)

    # -- addressing it -----------------------------------------------------------------------
    def uri(self, database: str = "", *, user: str | None = None, password: str | None = None,
            **options: str) -> str:
        """``mongodb://[user:pass@]127.0.0.1:port/database[?options]`` (TLS options added when the
        server runs TLS)."""
        credentials = ""
        if user is not None:
            credentials = quote_plus(user) + (f":{quote_plus(password)}" if password is not None else "") + "@"
            options.setdefault("authSource", "admin")
        if self.tls_cert:
            options.setdefault("tls", "true")
            if self.tls_ca:
                options.setdefault("tlsCAFile", str(self.tls_ca))
        query = "&".join(f"{key}={value}" for key, value in options.items())
        return f"mongodb://{credentials}127.0.0.1:{self.port}/{database}" + (f"?{query}" if query else "")

