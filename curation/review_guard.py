"""The review page's door (ASGI middleware in front of Streamlit, for ``anfe review``).

Every HTTP request and WebSocket handshake passes here first:

- ``Host`` must be one of the page's own names and ``Origin``, when sent, too: else 403 (a page
  reached through DNS rebinding, or a foreign site's WebSocket, gets nothing);
- a page without sign-in asks for its token (``?token=`` in the URL ``anfe review`` prints, then
  a cookie, as Jupyter does): else 403;
- Streamlit's metrics endpoint is closed;
- the client address is the connecting one, or, from a ``--trusted-proxy``, the one that proxy
  saw (``X-Forwarded-For``); the page's sign-in limiter keys on it;
- a WebSocket may not take over an earlier session by presenting its id: each connection gets a
  session of its own;
- the first message of a session no longer names the script's path, the versions or the git
  repository.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from .hosts import client_address, host_allowed, origin_allowed

log = logging.getLogger("curation.review_guard")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: The environment variable that hands the token to the server process (never its command line).
TOKEN_ENV = "ANFE_REVIEW_TOKEN"
TOKEN_COOKIE = "anfe_review_token"
#: Answered without the token (it says only "ok"), so tools can wait for the server.
OPEN_PATHS = frozenset({"/_stcore/health", "/healthz"})
#: Closed to everyone: Streamlit's counters (sessions, cache use) are nobody's business.
CLOSED_PATHS = frozenset({"/_stcore/metrics"})


@dataclass(frozen=True)
class GuardSettings:
    """The names the page answers to, the proxies whose ``X-Forwarded-For`` counts, and the
    token a page without sign-in asks for (None: no token)."""

    allowed_hosts: tuple[str, ...]
    trusted_proxies: tuple[str, ...] = ()
    token: str | None = None


def _headers(scope: Scope) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, value in scope.get("headers", []):
        found.setdefault(name.decode("latin-1").lower(), []).append(value.decode("latin-1"))
    return found


def _cookie(headers: dict[str, list[str]], name: str) -> str | None:
    for line in headers.get("cookie", []):
        for part in line.split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
    return None


def _same(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


class TrustBoundary:
    """The middleware (see the module's docstring); ``settings`` say what it lets in."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], settings: GuardSettings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        host, origin = (headers.get("host") or [None])[0], (headers.get("origin") or [None])[0]
        path = scope.get("path", "")
        if not host_allowed(host, self.settings.allowed_hosts) or \
                not origin_allowed(origin, self.settings.allowed_hosts):
            log.warning("refused %s %s: Host %r, Origin %r is not one of the page's names %s",
                        scope["type"], path[:100], (host or "")[:100], (origin or "")[:100],
                        ", ".join(self.settings.allowed_hosts))
            await _deny(scope, receive, send, 403, "Forbidden: this page answers only to its own names.")
            return
        if path in CLOSED_PATHS:
            await _deny(scope, receive, send, 404, "Not found.")
            return
        token = self.settings.token
        if token and path not in OPEN_PATHS:
            query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
            given = [v for k, v in query if k == "token"]
            if scope["type"] == "http" and given and _same(given[-1], token):
                await _redirect_setting_cookie(send, path, [(k, v) for k, v in query if k != "token"], token)
                return
            if not _same(_cookie(headers, TOKEN_COOKIE), token):
                await _deny(scope, receive, send, 403, "Forbidden: open the page with the URL `anfe review` "
                                                       "printed (it holds the page's token).")
                return
        scope = dict(scope)
        peer = scope.get("client") or (None, 0)
        scope["client"] = (client_address(peer[0], headers.get("x-forwarded-for", []),
                                          self.settings.trusted_proxies), peer[1])
        if scope["type"] == "websocket":
            scope["headers"] = _without_session_reuse(scope.get("headers", []))
            scope["subprotocols"] = scope.get("subprotocols", [])[:2]
            send = _quiet_first_message(send)
        await self.app(scope, receive, send)


async def _deny(scope: Scope, receive: Receive, send: Send, status: int, text: str) -> None:
    """``status`` with ``text``; a WebSocket handshake is closed before it is accepted (the
    server answers 403)."""
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.close", "code": 1008})
        return
    body = (text + "\n").encode("utf-8")
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": body})


async def _redirect_setting_cookie(send: Send, path: str, query: list[tuple[str, str]], token: str) -> None:
    """The token was right: remember it in a cookie only this site gets, and drop it from the URL."""
    location = path + (f"?{urlencode(query)}" if query else "")
    cookie = f"{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict"
    await send({"type": "http.response.start", "status": 303,
                "headers": [(b"location", location.encode("latin-1", "replace")), (b"set-cookie", cookie.encode()),
                            (b"content-length", b"0"), (b"cache-control", b"no-store")]})
    await send({"type": "http.response.body", "body": b""})


def _without_session_reuse(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The handshake's headers with the third ``Sec-WebSocket-Protocol`` entry (the id of an
    earlier session to resume) dropped: a connection never attaches to another's session."""
    kept = []
    for name, value in headers:
        if name.lower() == b"sec-websocket-protocol":
            value = b",".join(value.split(b",")[:2])
        kept.append((name, value))
    return kept


def _quiet_first_message(send: Send) -> Send:
    """``send`` that blanks what a session's first message tells of the server (the script's path,
    the Streamlit and Python versions, the OS, the installation id) and drops git information."""

    async def quiet(message: Message) -> None:
        data = message.get("bytes") if message.get("type") == "websocket.send" else None
        if data:
            try:
                forward = ForwardMsg.FromString(data)
            except Exception:  # not ours to judge: pass it on untouched
                forward = None
            kind = forward.WhichOneof("type") if forward is not None else None
            if kind == "git_info_changed":
                return
            if kind == "new_session":
                new = forward.new_session
                new.main_script_path = ""
                info = new.initialize.environment_info
                info.streamlit_version, info.python_version, info.server_os = "", "", ""
                new.initialize.user_info.Clear()
                message = {**message, "bytes": forward.SerializeToString()}
        await send(message)

    return quiet


__all__ = ["CLOSED_PATHS", "GuardSettings", "OPEN_PATHS", "TOKEN_COOKIE", "TOKEN_ENV", "TrustBoundary"]
