"""The README's step-by-step walkthrough, run as written from a fresh working folder.

The commands are read from README.md itself (the ```bash block between ``<!-- walkthrough -->``
and ``<!-- /walkthrough -->``), so the README and this test cannot drift apart. Each line runs in
bash, with the relative paths it is written with, from an empty folder whose parent holds
``shared/`` (a link to the real ../shared beside the checkout), as a user runs them one after
the other: a line ending in ``&`` starts in the background (the test waits for its first line of
output, as a user does before typing the next command), and ``kill %1`` stops it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

CHECKOUT = Path(__file__).resolve().parent.parent
README = CHECKOUT / "README.md"
SHARED = CHECKOUT.parent / "shared"
START, END = "<!-- walkthrough -->", "<!-- /walkthrough -->"
#: The steps the walkthrough must show, in this order (issue 13): a README edit cannot drop one.
STEPS = [r"^anfe site generate ", r"^anfe site serve .*&$", r"^anfe crawl ", r"^anfe clean \S+ --dry-run",
         r"^anfe clean \S+$", r"^anfe restore ", r"^anfe build ", r"^anfe evaluate ", r"^anfe predict "]


def walkthrough_lines(text: str) -> list[str]:
    """The commands of the marked block (comments and blank lines dropped)."""
    if text.count(START) != 1 or text.count(END) != 1:
        raise AssertionError(f"README.md must hold one {START} ... {END} block")
    block = text[text.index(START) + len(START):text.index(END)]
    fence = re.search(r"```bash\n(.*?)```", block, re.S)
    assert fence, "the walkthrough block holds no ```bash fence"
    lines = []
    for raw in fence.group(1).splitlines():
        command = re.sub(r"\s+#.*$", "", raw).strip()
        if command and not command.startswith("#"):
            lines.append(command)
    return lines


def test_the_walkthrough_names_every_step_in_order():
    lines = walkthrough_lines(README.read_text(encoding="utf-8"))
    at = 0
    for step in STEPS:
        found = next((i for i in range(at, len(lines)) if re.search(step, lines[i])), None)
        assert found is not None, f"no line matching {step!r} after line {at} of the walkthrough: {lines}"
        at = found + 1
    assert all(not re.search(r"(^|\s)/(tmp|work|home)", line) for line in lines), "relative paths only"


class Background:
    """A line that ended in ``&``: its process, and its output so far (read by a thread)."""

    def __init__(self, command: str, cwd: Path, env: dict) -> None:
        self.command = command
        self.process = subprocess.Popen(["bash", "-c", f"exec {command}"], cwd=cwd, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.lines: list[str] = []
        self.first = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)
            self.first.set()
        self.first.set()

    def stop(self) -> int:
        """Ctrl-C, as a user stops it."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()


@pytest.mark.timeout(300)
def test_readme_walkthrough_runs_as_written(tmp_path):
    if not (SHARED / "data" / "faces" / "lfw" / "labels.csv").is_file():
        pytest.skip(f"real images not found at {SHARED / 'data' / 'faces'} (the walkthrough crawls LFW photos)")
    (tmp_path / "shared").symlink_to(SHARED, target_is_directory=True)  # `../shared/...` from the work folder
    work = tmp_path / "work"
    work.mkdir()
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(CHECKOUT), os.environ.get("PYTHONPATH")])),
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    env.pop("ANFE_DB", None)
    background: list[Background] = []
    outputs: dict[str, str] = {}
    try:
        for line in walkthrough_lines(README.read_text(encoding="utf-8")):
            if line.endswith("&"):
                job = Background(line[:-1].strip(), work, env)
                assert job.first.wait(60) and job.process.poll() is None, f"{line!r} did not start:\n{''.join(job.lines)}"
                background.append(job)
                outputs[line] = "".join(job.lines)
                continue
            jobs = re.fullmatch(r"kill %(\d+)", line)
            if jobs:
                assert background[int(jobs.group(1)) - 1].stop() in (0, 1, -signal.SIGINT)
                continue
            done = subprocess.run(["bash", "-c", line], cwd=work, env=env, capture_output=True, text=True,
                                  timeout=240)
            assert done.returncode == 0, f"{line!r} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
            outputs[line] = done.stdout
    finally:
        for job in background:
            job.stop()

    # What the steps left behind, where the README says.
    def output(prefix: str) -> str:
        return next(text for line, text in outputs.items() if line.startswith(prefix))

    assert "serving demo-site at http://127.0.0.1:" in output("anfe site serve")
    images = [p for p in (work / "data" / "images").rglob("*") if p.is_file()]
    assert len(images) >= 6, images
    assert "would move" in output("anfe clean ./data --dry-run")
    assert (work / "data" / "reports" / "cleaning.html").is_file()
    assert " restored, 0 refused" in output("anfe restore")
    assert not [p for p in (work / "data" / "quarantine").rglob("*.jpg")], "restore left files in quarantine"
    assert re.search(r"^g_3: \d+ female \+ \d+ male", output("anfe build"), re.M)
    assert output("anfe builds list").splitlines()[0].startswith("g_3\t")
    assert output("anfe evaluate").startswith("g_3: balanced ")
    assert (work / "reports" / "g_3" / "index.html").is_file()
    assert re.search(r"obama\.jpg: (female|male) \(", output("anfe predict"))
    assert not (tmp_path / "work" / "data" / "data").exists()
