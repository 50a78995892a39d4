"""CI stops with one line when the shared photos are missing, instead of skipping most tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_fails_with_one_line_without_the_shared_folder(tmp_path):
    checkout = tmp_path / "checkout"
    (checkout / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "run", checkout / ".ci" / "run")  # no ../shared beside this checkout
    done = subprocess.run(["bash", str(checkout / ".ci" / "run")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == f"ci: {tmp_path}/shared/data/faces is missing: put the shared data folder beside the checkout\n"
