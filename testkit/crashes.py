"""The crash tests' walk (see :mod:`anfe.core.crashpoints`): count a command's passages of its crash
points, kill it at chosen passages, run it again, and compare what it left with an uninterrupted
run's; plus the small steps the curation crash tests run in a subprocess (a reviewer's batch, the
review page's thumbnails)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from anfe.core.layout import DatasetLayout
from anfe.core.store import open_store

ROOT = Path(__file__).resolve().parent.parent
#: A case: (crash point, passage from 1).
Case = tuple[str, int]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any ``ANFE_CRASH*`` setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANFE_CRASH")}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


def run(command: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    """Run ``command`` in ``cwd`` (output captured, five minutes at most)."""
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, env=clean_env(**env))


def passages(command: list[str], cwd: Path, log: Path) -> Counter:
    """Run ``command`` once, uninterrupted, counting the passages of every crash point."""
    log.unlink(missing_ok=True)
    done = run(command, cwd, ANFE_CRASH_LOG=str(log))
    assert done.returncode == 0, done.stderr[-3000:]
    return Counter(log.read_text().split()) if log.exists() else Counter()


def every_passage(counts: Counter, points: Sequence[str]) -> list[Case]:
    """Every passage of every point (for commands with few passages)."""
    return [(point, n) for point in points for n in range(1, counts.get(point, 0) + 1)]


def report(request: Any, what: str, tried: int, failures: list[str], unreached: int = 0) -> None:
    """Print the counts (shown with -s or -rA; always in the terminal summary's line) and fail on any failure."""
    line = (f"crash points ({what}): {tried} tried, {tried - len(failures)} passed"
            + (f" ({unreached} not reached in the crash run: the run ended normally)" if unreached else ""))
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(line)
    print(line)
    assert not failures, f"{line}; failed: " + "; ".join(failures[:10])


def walk(tmp_path: Path, template: Path, command: list[str], points: Sequence[str], state: Callable[[Path], Any],
         request: Any, what: str, choose: Callable[[Counter, Sequence[str]], list[Case]] = every_passage,
         prepare: Callable[[Path, Path, str], None] | None = None) -> Counter:
    """Count the passages of ``command`` (run in a copy of ``template``), then for each case
    ``choose`` picks: a fresh copy, a run killed there, the same command again, and ``state`` of the
    copy compared with the uninterrupted run's. ``prepare(copy, truth, point)`` readies a copy
    before its crash run (e.g. hands it the uninterrupted run's analysis cache)."""
    truth = tmp_path / "truth"
    shutil.copytree(template, truth)
    counts = passages(command, truth, tmp_path / "passages.log")
    expected = state(truth)
    cases = choose(counts, points)
    failures, unreached = [], 0
    for point, n in cases:
        case = tmp_path / f"{point}-{n}"
        shutil.copytree(template, case)
        if prepare is not None:
            prepare(case, truth, point)
        unreached += run(command, case, ANFE_CRASH_AT=f"{point}:{n}").returncode != -signal.SIGKILL
        again = run(command, case)
        if again.returncode != 0:
            failures.append(f"{point}:{n}: the re-run failed: {again.stderr[-500:]}")
        elif (found := state(case)) != expected:
            failures.append(f"{point}:{n}: {found} != {expected}")
    report(request, what, len(cases), failures, unreached)
    assert unreached == 0
    return counts


def temporary_files(root: Path) -> list[str]:
    """The write-through-a-rename temporary files (``.part-*``) left under ``root``."""
    return sorted(p.relative_to(root).as_posix() for p in root.rglob(".part-*"))


# -- the steps the curation crash tests run in a subprocess ---------------------------------------
def review_batch(root: Path, male: str, female: str, who: str = "ann") -> None:
    """What the review page does at its start and for one reviewer's batch: repair, then decide
    (relabel the photo ``male`` as female, reject the photo ``female``) unless decided already."""
    from curation import decisions
    from curation.queue import QueueItem

    layout = DatasetLayout(root)
    with open_store(None, root) as store:
        decisions.repair(layout, store)
        log = decisions.read_log(store)
        for gender, name, action, options in (("male", male, "relabel", {"new_label": "female"}),
                                              ("female", female, "reject", {"reason": "wrong-person"})):
            path = layout.gender_dir(gender) / name
            item = QueueItem(path, gender, path.stem)
            if not log.reviewed(item.content_hash):
                decisions.decide(layout, store, [item], action, who, **options)


def make_thumbnails(root: Path) -> None:
    """What the review page does as it shows every photo of ``root``: its thumbnail, from the
    cache or made and kept there."""
    from curation import thumbnails

    for path in sorted(DatasetLayout(root).image_files()):
        thumbnails.thumbnail(root, path, path.stem)


#: ``python -c`` commands running the steps above: ``REVIEW_BATCH + [root, male, female]``,
#: ``THUMBNAILS + [root]``.
REVIEW_BATCH = [sys.executable, "-c", "import sys; from pathlib import Path; from testkit.crashes import review_batch; "
                "review_batch(Path(sys.argv[1]), sys.argv[2], sys.argv[3])"]
THUMBNAILS = [sys.executable, "-c", "import sys; from pathlib import Path; from testkit.crashes import make_thumbnails; "
              "make_thumbnails(Path(sys.argv[1]))"]
