"""Which names the review page answers to, and who a request comes from (free of Streamlit).

A browser on this machine can be led to the page by a foreign web page that rebinds its own name
to 127.0.0.1 (DNS rebinding): the request then carries that foreign name in ``Host`` and
``Origin``. Answering only the page's own names, as Jupyter and Streamlit's
``server.allowedHosts`` do, closes that door.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

#: The names every page answers to when it serves on loopback.
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = {"0.0.0.0", "::", ""}


def _normal(name: str) -> str:
    return name.strip().strip("[]").lower().rstrip(".")


def page_hosts(address: str, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The host names the page serving on ``address`` answers to: the address itself (on a
    wildcard, this machine's names instead), loopback's names on loopback, and ``extra``."""
    names: list[str] = []
    if address in WILDCARDS:
        names += [socket.getfqdn(), socket.gethostname(), *LOOPBACK_NAMES]
    else:
        names.append(address)
    if is_loopback_name(address):
        names += LOOPBACK_NAMES
    names += list(extra)
    unique: dict[str, None] = {}
    for name in names:
        if _normal(name):
            unique[_normal(name)] = None
    return tuple(unique)


def is_loopback_name(address: str | None) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if address and _normal(address) == "localhost":
        return True
    try:
        return ipaddress.ip_address(_normal(address or "")).is_loopback
    except ValueError:
        return False


def host_name(host_header: str | None) -> str | None:
    """The name in a ``Host`` header (port dropped), or None when it is absent or malformed."""
    if not host_header:
        return None
    try:
        parts = urlsplit(f"//{host_header}")
        _ = parts.port  # a port that is not a number is malformed
    except ValueError:
        return None
    if parts.hostname is None or parts.username or parts.password or parts.path or parts.query:
        return None
    return _normal(parts.hostname)


def host_allowed(host_header: str | None, allowed: Sequence[str]) -> bool:
    """True when the ``Host`` header names one of ``allowed`` (any port)."""
    name = host_name(host_header)
    return name is not None and name in {_normal(a) for a in allowed}


def origin_allowed(origin: str | None, allowed: Sequence[str]) -> bool:
    """True when there is no ``Origin`` (not a browser's cross-site request) or it names one of
    ``allowed``; ``null`` (sandboxed frames, files) is refused."""
    if origin is None:
        return True
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return False
    return host_allowed(parts.netloc, allowed)


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted_proxies: Sequence[str]) -> str:
    """Who a request comes from: the connecting address, or, when that is one of
    ``trusted_proxies``, the last address in ``X-Forwarded-For`` that is not a trusted proxy
    (the one the trusted proxy itself saw). Without trusted proxies the header is ignored."""
    address = _normal(peer or "") or "unknown"
    trusted = {_normal(p) for p in trusted_proxies}
    if address not in trusted:
        return address
    hops = [_normal(h) for value in forwarded_for for h in value.split(",") if _normal(h)]
    for hop in reversed(hops):
        if hop not in trusted:
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return "unknown"  # not an address: the proxy passed on a made-up value
    return address


__all__ = ["LOOPBACK_NAMES", "client_address", "host_allowed", "host_name", "is_loopback_name",
           "origin_allowed", "page_hosts"]
