"""Open the review page in the browser once its server answers (``python -m curation.open_page URL``).

Streamlit opens its own URL, which lacks the page's token; ``anfe review`` starts this instead,
just before it becomes the server, so the browser gets the URL with the token, as Jupyter's does.
"""

from __future__ import annotations

import ssl
import sys
import time
import urllib.request
import webbrowser
from urllib.parse import urlsplit, urlunsplit


def wait_and_open(url: str, timeout: float = 120.0) -> bool:
    """Poll the server's health route until it answers (up to ``timeout`` s), then open ``url``."""
    parts = urlsplit(url)
    health = urlunsplit((parts.scheme, parts.netloc, "/_stcore/health", "", ""))
    local = ssl.create_default_context()
    local.check_hostname, local.verify_mode = False, ssl.CERT_NONE  # only asks "are you up?" of our own server
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(health, timeout=2, context=local) as response:
                if response.status == 200:
                    return webbrowser.open(url)
        except OSError:
            time.sleep(0.5)
    return False


if __name__ == "__main__":
    wait_and_open(sys.argv[1])
