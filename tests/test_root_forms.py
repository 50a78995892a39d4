"""Every command that takes a dataset root works however the root is written: ``./data``, ``data``,
``../x/data``, an absolute path and a symbolic link to the folder (issue 13, item 1).

The commands run from a working folder of their own, as a user runs them: the library used to
join a path relative to the current folder onto the root a second time (``data/data/images``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from anfe.cli.app import cli
from scraper.demosite import DemoServer, generate_site, url_list_for

pytestmark = pytest.mark.slow

CHECKOUT = Path(__file__).resolve().parent.parent
GROUP = "dlib/examples/faces/2008_001009.jpg"
FORMS = ["./data", "data", "../x/data", "absolute", "symlink"]


@pytest.fixture(scope="module")
def template(tmp_path_factory, utkface_rows, shared_faces) -> Path:
    """A small dataset root: 4 adult men (one more file: a group photo) and 4 adult women."""
    root = tmp_path_factory.mktemp("template") / "data"
    adults = [r for r in utkface_rows if 25 <= int(r["age"]) <= 40]
    for gender in ("male", "female"):
        folder = root / "images" / gender
        folder.mkdir(parents=True)
        for row in [r for r in adults if r["gender"] == gender][:4]:
            shutil.copyfile(row["path"], folder / Path(row["path"]).name)
    shutil.copyfile(shared_faces / "facecount" / GROUP, root / "images" / "male" / "group.jpg")
    return root


@pytest.fixture(scope="module")
def url_list(lfw_labels: Path, tmp_path_factory):
    """A served demo site and its actors' URL list (for `anfe crawl urllist --root ...`)."""
    site = tmp_path_factory.mktemp("site")
    generate_site(lfw_labels, site, people=2, photos=1, per_page=2, seed=3)
    with DemoServer(site) as server:
        yield url_list_for(site, "facescrub_actors.txt", server.base_url, site / "actors.txt")


def place(form: str, template: Path, base: Path) -> tuple[Path, str, Path]:
    """Copy the template where ``form`` says; returns (working folder, ROOT argument, real root)."""
    work = base / "work"
    work.mkdir()
    if form in ("./data", "data"):
        real = work / "data"
    elif form == "../x/data":
        real = base / "x" / "data"
    else:
        real = base / ("abs" if form == "absolute" else "real") / "data"
    shutil.copytree(template, real)
    if form == "absolute":
        return work, str(real), real
    if form == "symlink":
        (work / "linked").symlink_to(real, target_is_directory=True)
        return work, "linked", real
    return work, form, real


def anfe(*args: str | Path) -> str:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == 0, f"anfe {' '.join(map(str, args))} failed:\n{result.output}"
    return result.output


@pytest.mark.parametrize("form", FORMS)
def test_every_root_taking_command_accepts_the_form(form, template, url_list, tmp_path, monkeypatch,
                                                     session_cache_path):
    work, root, real = place(form, template, tmp_path)
    monkeypatch.chdir(work)
    cache = ["--cache", session_cache_path, "--workers", "1"]
    group = "images/male/group.jpg"

    out = anfe("clean", root, "--dry-run", "--quiet", *cache)
    assert f"would move {group} -> quarantine/many-faces/" in out
    assert (real / group).is_file()

    out = anfe("clean", root, "--quiet", *cache)
    assert "moved 1 to" in out
    quarantined = real / "quarantine" / "many-faces" / "male" / "group.jpg"
    assert quarantined.is_file() and not (real / group).exists()

    assert "1 file(s) in quarantine (many-faces: 1)" in anfe("quarantine", "list", root)
    assert f"restored {group}" in anfe("restore", root, "--reason", "many-faces")
    assert (real / group).is_file()

    # a quarantined file named by a path relative to the current folder, as a shell completes it
    anfe("clean", root, "--quiet", "--no-near-duplicate", *cache)
    assert f"restored {group}" in anfe("restore", root, f"{root}/quarantine/many-faces/male/group.jpg")
    assert "0 interrupted move(s) finished" in anfe("quarantine", "repair", root)

    assert "9 images: 9 from cache" in anfe("analyze", root, *cache)
    out = anfe("build", root, "--sizes", "2", "--test-fraction", "0.25", *cache)
    assert "g_2: 2 female + 2 male" in out
    assert (real / "catalog.sqlite").is_file()
    assert anfe("builds", "list", "--root", root).startswith("g_2\t")
    assert '"id": "g_2"' in anfe("builds", "show", "g_2", "--root", root)
    assert "g_2: balanced" in anfe("evaluate", "g_2", "--root", root, "--no-baselines", *cache)
    assert anfe("predict", f"{root}/images/female", "--build", "g_2", "--root", root, *cache).count("female") >= 4
    assert str(real) in anfe("review", root, "--print-command", *cache)

    # the crawl runs in a process of its own (Scrapy's reactor cannot restart), as a user runs it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(CHECKOUT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "anfe", "crawl", "urllist", "--root", root, "--fast", "-a", f"file={url_list}",
         "-s", "PROGRESS_INTERVAL=0", "-s", "LOG_LEVEL=WARNING"],
        cwd=work, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "new images in" in done.stdout
    assert len(list((real / "images" / "male").iterdir())) > 5
    assert not list(tmp_path.rglob("data/data")), "a path was joined onto the root twice"
