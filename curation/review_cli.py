"""``anfe review ROOT``: analyse what is new, then open the label-review page (Streamlit) on localhost."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import click

from anfe.batch import analyse_paths
from anfe.cliutil import analysis_options, friendly_errors, open_cache, store_option

from . import quarantine
from .review import ReviewConfig, open_dataset

APP = Path(__file__).with_name("review_app.py")


def streamlit_command(config: ReviewConfig, address: str, port: int, headless: bool) -> list[str]:
    """The ``streamlit run`` command line that serves the page for ``config``."""
    return [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", address, "--server.port", str(port),
        "--server.headless", "true" if headless else "false",
        "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
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
    config = ReviewConfig(layout.root, db, cache_path, params, workers)
    command = streamlit_command(config, address, port, headless)
    if print_command:
        click.echo(shlex.join(command))
        return
    files = layout.image_files()
    with open_cache(cache_path, params) as cache:  # analyse new images here, with a progress bar
        _results, stats = analyse_paths(files, params, cache, workers, progress=True)
    click.echo(f"{stats.total} images ({stats.analysed} analysed now); review page on http://{address}:{port}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # Become the streamlit server (no child left behind when this process is stopped).
    os.execv(command[0], command)
