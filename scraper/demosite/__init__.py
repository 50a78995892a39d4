"""The local demo site: a generator (several site styles plus URL lists, with traps) and a loopback server."""

from .generate import DISALLOWED, MANIFEST, SiteSpec, bomb_png, generate_site
from .server import DemoServer, check_loopback, url_list_for

__all__ = ["DISALLOWED", "MANIFEST", "DemoServer", "SiteSpec", "bomb_png", "check_loopback", "generate_site",
           "url_list_for"]
