"""A small dataset root of real photos under review, its queue items, and `anfe review` started on it, for
the review tests."""

from __future__ import annotations

import os
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from anfe.core.hashing import content_hash
from anfe.core.layout import DatasetLayout, content_file_name
from curation.views import QueueItem
from testkit.processes import stop


def make_review_dataset(utkface_rows: list[dict], root: Path, per_gender: int = 6) -> DatasetLayout:
    """A dataset root holding ``per_gender`` real UTKFace adults per gender, named by content hash."""
    picked: dict[str, list[dict]] = {"female": [], "male": []}
    for row in utkface_rows[::23]:
        if 25 <= int(row["age"]) <= 50 and len(picked[row["gender"]]) < per_gender:
            picked[row["gender"]].append(row)
    for gender, rows in picked.items():
        folder = root / "images" / gender
        folder.mkdir(parents=True, exist_ok=True)
        for row in rows:
            data = Path(row["path"]).read_bytes()
            (folder / content_file_name(content_hash(data), ".jpg")).write_bytes(data)
    return DatasetLayout(root)


def items_of(layout: DatasetLayout, gender: str) -> list[QueueItem]:
    """Queue items without analysis (the decision logic needs only names and hashes)."""
    return [QueueItem(p, gender, p.stem) for p in layout.image_files(gender)]


def start_review(root: Path, port: int, log: Path, *options: str, env: dict | None = None,
                 ssl_context: ssl.SSLContext | None = None) -> subprocess.Popen:
    """`anfe review ROOT --headless` on 127.0.0.1:``port`` (its output in ``log``), once it answers."""
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "anfe", "review", str(root), "--headless", "--port", str(port), "--workers", "1",
             *options], stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "USER": "os-user", **(env or {})})
    scheme = "https" if ssl_context else "http"
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise AssertionError(f"anfe review exited: {log.read_text()}")
        try:
            with urllib.request.urlopen(f"{scheme}://127.0.0.1:{port}/_stcore/health", timeout=2,
                                        context=ssl_context) as response:
                if response.status == 200:
                    return process
        except OSError:
            if time.monotonic() > deadline:
                stop(process)
                raise AssertionError(f"no answer within 120 s: {log.read_text()}") from None
            time.sleep(0.3)
