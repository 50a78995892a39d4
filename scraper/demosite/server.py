"""Serve a generated demo site on 127.0.0.1 only (ThreadingHTTPServer), with its special routes.

Paths map to files (``/a/b`` -> ``a/b``, ``a/b/index.html`` or ``a/b/index.json``; repeated
slashes collapse, as on listal; ``/a/b?q=1`` is ``a/b/@q=1/index.json``, the JSON API's pages).
``routes.json`` adds redirects, "HTML where an image was promised", the load-more endpoint
(``POST <prefix>/item-list/`` with ``listid`` and ``offset``, answering JSON that holds an HTML
fragment) and throttled paths (429 with ``Retry-After``, then 200, in turn). ``__HOST__`` in pages,
JSON and lists becomes ``127.0.0.1:<port>``. Every request is recorded (path, method, status,
time), so tests can check that nothing under the robots-disallowed path was fetched and that a
crawler waited after a 429.
"""

from __future__ import annotations

import ipaddress
import json
import mimetypes
import re
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from ..errors import DemoSiteError
from .endless import trap_page
from .generate import HOST, MANIFEST, ROUTES
from .urllist import LISTS_DIR

_TEXT_SUFFIXES = {".html", ".txt", ".json", ".js", ""}
_NOT_AN_IMAGE = (b"<!DOCTYPE html><html><head><title>Please log in</title></head>"
                 b"<body><p>This picture is for members only.</p></body></html>")


def check_loopback(host: str) -> str:
    """Refuse any address but the loopback one: the demo site is never exposed to a network."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        if ipaddress.ip_address(host).is_loopback:
            return host
    except ValueError:
        pass
    raise DemoSiteError(f"the demo site binds to the loopback address only (127.0.0.1), not {host!r}")


@dataclass(frozen=True)
class Event:
    """One request the demo server answered."""

    time: float
    method: str
    path: str
    status: int
    form: dict


def _post_fields(body: bytes, content_type: str) -> dict[str, str]:
    """The fields of a form (``application/x-www-form-urlencoded``) or JSON body, as strings."""
    text = body.decode("utf-8", "replace")
    if "json" in content_type:
        try:
            data = json.loads(text or "{}")
        except json.JSONDecodeError:
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}
    return {k: v[0] for k, v in parse_qs(text).items()}


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read server.requests
        pass

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def do_POST(self) -> None:
        """The load-more endpoint: ``listid`` and ``offset`` (a form or JSON body) -> JSON with HTML."""
        site = self.server.site
        path = re.sub(r"/{2,}", "/", unquote(urlsplit(self.path).path))
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if not path.endswith("/item-list/"):
            self.server.record(path, "POST", 405)
            self._send(405, b"", "text/plain", False, {"Allow": "GET, HEAD"})
            return
        fields = _post_fields(body, self.headers.get("Content-Type") or "")
        answer = site.item_list(path, fields.get("listid", ""), fields.get("offset", ""))
        status = 200 if answer is not None else 400
        self.server.record(path, "POST", status, fields)
        if answer is None:
            self._send(400, b'{"error": "unknown listid or bad offset"}', "application/json", False)
            return
        data = json.dumps(answer).replace(HOST, self.server.host_port).encode("utf-8")
        self._send(200, data, "application/json", False)

    def _send(self, status: int, body: bytes, content_type: str, head: bool, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _serve(self, head: bool) -> None:
        site = self.server.site
        parts = urlsplit(self.path)
        path = re.sub(r"/{2,}", "/", unquote(parts.path))
        method = "HEAD" if head else "GET"
        if path in site.throttled and self.server.throttle(path):
            self.server.record(path, method, 429)
            self._send(429, b"slow down", "text/plain", head, {"Retry-After": str(site.throttled[path])})
            return
        if path in site.redirects:
            status, target = site.redirects[path]
            self.server.record(path, method, int(status))
            self._send(int(status), b"", "text/html", head, {"Location": target})
            return
        if path in site.html_images:
            self.server.record(path, method, 200)
            self._send(200, _NOT_AN_IMAGE, "text/html; charset=utf-8", head)
            return
        trap = trap_page(path)
        if trap is not None:  # the endless pages of the spider traps
            self.server.record(path, method, 200)
            self._send(200, trap.encode("utf-8"), "text/html; charset=utf-8", head)
            return
        target = site.resolve(path + (f"/@{unquote(parts.query)}" if parts.query else ""))
        if target is None and parts.query:
            target = site.resolve(path)
        self.server.record(path, method, 404 if target is None else 200)
        if target is None:
            self._send(404, b"<html><body><h1>404 Not Found</h1></body></html>", "text/html", head)
            return
        body = target.read_bytes()
        if target.suffix in _TEXT_SUFFIXES:
            body = body.replace(HOST.encode(), self.server.host_port.encode())
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        if target.suffix == ".txt":
            content_type = "text/plain; charset=utf-8"
        elif target.suffix == ".html":
            content_type = "text/html; charset=utf-8"
        elif target.suffix == ".json":
            content_type = "application/json"
        elif target.suffix == ".js":
            content_type = "text/javascript; charset=utf-8"
        self._send(200, body, content_type, head)


class _Site:
    """A generated site folder and its routes."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        if not (self.root / MANIFEST).is_file():
            raise DemoSiteError(f"{root} holds no generated demo site: run `anfe site generate` first")
        routes = json.loads((self.root / ROUTES).read_text()) if (self.root / ROUTES).is_file() else {}
        self.redirects: dict[str, list] = routes.get("redirects", {})
        self.html_images: set[str] = set(routes.get("html_images", []))
        self.item_lists: dict[str, dict[str, Any]] = routes.get("item_lists", {})
        self.throttled: dict[str, int] = routes.get("throttled", {})

    def item_list(self, path: str, listid: str, offset: str) -> dict[str, Any] | None:
        """The load-more answer: the items from ``offset`` on, as an HTML fragment in JSON.

        The trap at the end (as seen on real sites): an offset at or past the end does not give
        an empty answer but the last item again, so a crawler that waits for an empty answer
        never stops and one that counts by answers is one off. None for an unknown list.
        """
        data = self.item_lists.get(str(listid))
        if data is None or data["endpoint"] != path or not str(offset).isdigit():
            return None
        items, start = data["items"], int(offset)
        end = min(start + data["chunk"], data.get("available", len(items)))
        chunk = items[start:end]
        if not chunk and data.get("repeat_last") and items:
            chunk = items[-1:]
        answer = {"status": "ok", "offset": start, "count": len(chunk), "html": "\n".join(chunk)}
        if data.get("says_finished"):  # the board's answers say when they are the last
            answer["finished"] = end >= len(items)
        return answer

    def resolve(self, path: str) -> Path | None:
        """The file served at ``path``, or None (never anything outside the site folder)."""
        if any(part == ".." for part in path.split("/")) or path.lstrip("/").startswith((MANIFEST, ROUTES)):
            return None
        target = (self.root / path.lstrip("/")).resolve()
        try:
            target.relative_to(self.root)
        except ValueError:
            return None
        if target.is_dir():
            target = target / "index.html" if (target / "index.html").is_file() else target / "index.json"
        return target if target.is_file() else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], site: _Site) -> None:
        super().__init__(address, _Handler)
        self.site = site
        self.requests: list[str] = []
        self.events: list[Event] = []
        self._lock = threading.Lock()
        self._throttle_state: dict[str, bool] = {}
        self.host_port = f"{address[0]}:{self.server_address[1]}"

    def record(self, path: str, method: str = "GET", status: int = 200, form: dict | None = None) -> None:
        with self._lock:
            self.requests.append(path)
            self.events.append(Event(time.monotonic(), method, path, status, dict(form or {})))

    def throttle(self, path: str) -> bool:
        """True every other time ``path`` is asked for (429 first, then 200, then 429...)."""
        with self._lock:
            now = not self._throttle_state.get(path, False)
            self._throttle_state[path] = now
            return now


class DemoServer:
    """The demo site on ``http://127.0.0.1:<port>`` in a background thread (port 0 = a free one).

    Use as a context manager, or ``start()`` / ``stop()``; ``requests`` lists the paths asked for.
    """

    def __init__(self, site_dir: str | Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = check_loopback(host)
        site = _Site(Path(site_dir))
        try:
            self._server = _Server((self.host, port), site)
        except OSError as exc:
            raise DemoSiteError(f"cannot listen on {self.host}:{port}: {exc}; try --port 0 (a free port)") from exc
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (a free one when 0 was asked for)."""
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[str]:
        """Every path asked for so far, in order (a copy)."""
        with self._server._lock:
            return list(self._server.requests)

    @property
    def events(self) -> list[Event]:
        """Every request so far (time, method, path, status, form fields), in order (a copy)."""
        with self._server._lock:
            return list(self._server.events)

    def start(self) -> "DemoServer":
        """Serve in a daemon thread; returns self."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="demo-site", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted (the CLI)."""
        try:
            self._server.serve_forever()
        finally:
            self._server.server_close()

    def stop(self) -> None:
        """Stop serving and free the port."""
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "DemoServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def url_list_for(site_dir: str | Path, file_name: str, base_url: str, out: str | Path) -> Path:
    """Write the site's URL list ``file_name`` with the real address filled in (for ``urllist``)."""
    host_port = urlsplit(base_url).netloc
    source = Path(site_dir) / LISTS_DIR / file_name
    text = source.read_text(encoding="utf-8").replace(HOST, host_port)
    out = Path(out)
    out.write_text(text, encoding="utf-8")
    return out
