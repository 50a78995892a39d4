"""``anfe review ROOT``: analyse what is new, then open the label-review page (Streamlit) on localhost."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import click

from anfe.batch import analyse_paths
from anfe.cache import cache_location
from anfe.executor import Executor
from anfe.cliutil import analysis_options, friendly_errors, open_cache, store_option
from anfe.config import AnalysisParams
from anfe.errors import DatasetError
from anfe.layout import open_dataset
from anfe.store import open_store

from . import quarantine

APP = Path(__file__).with_name("review_app.py")


# -- configuration -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReviewConfig:
    """What the review page opens: the dataset root, its store, and where embeddings come from."""

    root: Path
    db: str | None = None
    cache_path: str | Path | None = None
    params: AnalysisParams = AnalysisParams()
    workers: int = 1

    def to_args(self) -> list[str]:
        """The page's command-line arguments (after ``streamlit run review_app.py --``)."""
        p = self.params
        args = [str(self.root), "--detector", p.detector, "--upsample", str(p.upsample),
                "--jitters", str(p.jitters), "--max-pixels", str(p.max_pixels), "--workers", str(self.workers)]
        if p.max_side:
            args += ["--max-side", str(p.max_side)]
        if self.db:
            args += ["--db", self.db]
        if self.cache_path:
            args += ["--cache", str(self.cache_path)]
        return args


def parse_args(argv: Sequence[str]) -> ReviewConfig:
    """The inverse of :meth:`ReviewConfig.to_args`; raises :class:`DatasetError` on bad arguments."""
    parser = argparse.ArgumentParser(prog="review_app.py", add_help=False, exit_on_error=False)
    parser.add_argument("root")
    parser.add_argument("--db", default=os.environ.get("ANFE_DB") or None)
    parser.add_argument("--cache", default=None)
    parser.add_argument("--detector", default="hog")
    parser.add_argument("--upsample", type=int, default=1)
    parser.add_argument("--max-side", type=int, default=None)
    parser.add_argument("--jitters", type=int, default=1)
    parser.add_argument("--max-pixels", type=int, default=AnalysisParams().max_pixels)
    parser.add_argument("--workers", type=int, default=1)
    try:
        ns, unknown = parser.parse_known_args(list(argv))
        params = AnalysisParams(ns.detector, ns.upsample, ns.max_side, ns.jitters, ns.max_pixels)
    except (argparse.ArgumentError, ValueError, SystemExit) as exc:
        raise DatasetError(
            f"bad arguments {list(argv)}: {exc}; usage: streamlit run curation/review_app.py -- DATASET_ROOT "
            f"[--db URI] [--cache PATH]"
        ) from None
    if unknown:
        raise DatasetError(f"unknown arguments {unknown}: usage: streamlit run curation/review_app.py -- DATASET_ROOT")
    return ReviewConfig(Path(ns.root), ns.db, cache_location(ns.cache) if ns.cache else None, params, max(1, ns.workers))


#: A labelling tool for private data sends nothing anywhere and asks nothing: no usage statistics,
#: no "enter your email" prompt on a first run (both as flags and in the environment, which also
#: reaches a `streamlit run` the page starts itself).
PRIVATE_ENV = {"STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false", "STREAMLIT_SERVER_SHOW_EMAIL_PROMPT": "false"}


def streamlit_command(config: ReviewConfig, address: str, port: int, headless: bool) -> list[str]:
    """The ``streamlit run`` command line that serves the page for ``config``."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", address, "--server.port", str(port),
        "--server.headless", "true" if headless else "false",
        "--browser.gatherUsageStats", "false", "--server.showEmailPrompt", "false",
        "--client.toolbarMode", "minimal",
        "--", *config.to_args(),
    ]


@click.command()
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Address to serve on; the default keeps the page on this machine (use 0.0.0.0 to share it).")
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True, help="Port to serve on.")
@click.option("--headless", is_flag=True, help="Do not open a browser window.")
@click.option("--print-command", is_flag=True, help="Print the streamlit command instead of running it.")
@store_option
@analysis_options
@friendly_errors
def review(root: Path, address: str, port: int, headless: bool, print_command: bool, db: str | None,
           params, cache_path, workers) -> None:
    """Check the labels of the dataset ROOT in the browser, suspected label errors first.

    Opens a page with a grid of thumbnails per gender, ordered by how far each face is from its
    own gender's average against the other's. Keep, move to the other gender or reject (to
    quarantine/<reason>/) one or many at once, with keyboard shortcuts and undo. Every decision
    is logged in the store before the file moves. Same as
    `streamlit run curation/review_app.py -- ROOT`.
    """
    layout = open_dataset(root)
    quarantine.check_writable(layout)
    # The store must answer before the server starts: an unreachable MongoDB is this one line
    # (as under build and clean), not an error shown in the browser seconds later.
    open_store(db, layout.root).close()
    # The page itself analyses only images added later, with processes of its own.
    processes = workers.processes if isinstance(workers, Executor) else workers
    config = ReviewConfig(layout.root, db, cache_path, params, processes)
    command = streamlit_command(config, address, port, headless)
    if print_command:
        click.echo(shlex.join(command))
        return
    files = layout.image_files()
    with open_cache(cache_path, params) as cache:  # analyse new images here, with a progress bar
        _results, stats = analyse_paths(files, params, cache, workers, progress=True)
    if isinstance(workers, Executor):  # a Dask client (and a local cluster) must not outlive the exec below
        workers.close()
    click.echo(f"{stats.total} images ({stats.analysed} analysed now); review page on http://{address}:{port}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # Become the streamlit server (no child left behind when this process is stopped).
    os.execve(command[0], command, {**os.environ, **PRIVATE_ENV})
