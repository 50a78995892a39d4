"""``anfe review ROOT``: analyse what is new, then open the label-review page (Streamlit).

``anfe review reviewers add|list|remove`` manages who may sign in. The page stays on this
machine (127.0.0.1) unless ``--address`` says otherwise, and a page shared beyond loopback is
refused unless reviewers are configured (then it asks them to sign in) and it is served over
TLS (``--tls-cert``/``--tls-key``) or ``--insecure-http`` is given explicitly.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import ssl
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

from . import moves
from . import reviewers as reviewer_file
from .signin import AccessConfig, SignInPolicy, is_loopback

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


class ServingRefused(click.ClickException):
    """``anfe review`` will not serve the page this way (the message says how to fix it)."""


def public_name(address: str) -> str:
    """The name browsers reach ``address`` by: itself, or this machine's name for a wildcard."""
    return socket.getfqdn() if address in {"0.0.0.0", "::", ""} else address


def streamlit_command(config: ReviewConfig, address: str, port: int, headless: bool,
                      tls: tuple[Path, Path] | None = None, access: AccessConfig = AccessConfig()) -> list[str]:
    """The ``streamlit run`` command line that serves the page for ``config``.

    XSRF protection and CORS stay on; usage statistics, static serving, the agent API and the
    file watcher (for editing the app's code) are off.
    """
    command = [
        sys.executable, "-m", "streamlit", "run", str(APP),
        "--server.address", address, "--server.port", str(port),
        "--server.headless", "true" if headless else "false",
        "--server.enableXsrfProtection", "true", "--server.enableCORS", "true",
        "--server.enableStaticServing", "false", "--server.enableAgentApi", "false",
        "--server.fileWatcherType", "none",
        "--browser.gatherUsageStats", "false", "--server.showEmailPrompt", "false",
        "--client.toolbarMode", "minimal",
        # Streamlit looks up the machine's public address on the internet (checkip) to print an
        # "External URL" and to vet the origins of a page served on every interface: name the
        # address browsers use instead, and print our own URL line, so nothing is asked outside.
        "--browser.serverAddress", public_name(address), "--logger.hideWelcomeMessage", "true",
    ]
    if tls:
        command += ["--server.sslCertFile", str(tls[0]), "--server.sslKeyFile", str(tls[1])]
    return [*command, "--", *config.to_args(), *access.to_args()]


def check_tls(cert: Path, key: Path) -> tuple[Path, Path]:
    """``(cert, key)`` resolved, once they load as a certificate chain and its private key."""
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise ServingRefused(f"cannot use --tls-cert {cert} with --tls-key {key}: {exc}: give a PEM "
                             f"certificate and its unencrypted PEM private key") from None
    return cert.resolve(), key.resolve()


def serving_plan(root: Path, address: str, reviewers_option: Path | None, tls_cert: Path | None,
                 tls_key: Path | None, insecure_http: bool, policy: SignInPolicy = SignInPolicy(),
                 ) -> tuple[AccessConfig, bool, tuple[Path, Path] | None]:
    """(who may use the page, whether reviewers are configured, the TLS pair or None), or
    :class:`ServingRefused` when the page would be open to others without sign-in or TLS."""
    if (tls_cert is None) != (tls_key is None):
        raise ServingRefused("give both --tls-cert FILE and --tls-key FILE (or neither)")
    path = reviewer_file.reviewers_path(root, reviewers_option)
    configured = bool(reviewer_file.load(path))
    if reviewers_option and not configured:
        raise ServingRefused(f"no reviewers in {path}: add one with "
                             f"`anfe review reviewers add NAME --reviewers {path}`")
    if not is_loopback(address):
        if not configured:
            raise ServingRefused(
                f"refusing to serve {root} on {address} without sign-in: add a reviewer with "
                f"`anfe review reviewers add NAME --root {root}` (or serve on 127.0.0.1)")
        if tls_cert is None and not insecure_http:
            raise ServingRefused(
                f"refusing to send passwords in clear on {address}: give --tls-cert FILE --tls-key FILE "
                f"(or --insecure-http behind your own TLS proxy)")
    tls = check_tls(tls_cert, tls_key) if tls_cert and tls_key else None
    explicit = path.resolve() if reviewers_option or configured else None
    return AccessConfig(explicit, not is_loopback(address), policy), configured, tls


class _ReviewGroup(click.Group):
    """``anfe review ROOT`` serves the page (short for ``anfe review serve ROOT``); a first word
    naming a subcommand (``reviewers``) runs that instead."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["serve", *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[serve] ROOT [OPTIONS]  |  reviewers add|list|remove ...")


@click.group(cls=_ReviewGroup)
def review() -> None:
    """Check the labels of a dataset in the browser (`anfe review ROOT`, see `anfe review serve
    --help`), and manage who may sign in to a shared page (`anfe review reviewers --help`)."""


@review.command("serve")
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Address to serve on; the default keeps the page on this machine. Any other (e.g. "
                   "0.0.0.0 to share it) needs reviewers (`anfe review reviewers add`) and TLS.")
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True, help="Port to serve on.")
@click.option("--reviewers", "reviewers_option", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Reviewers file [default: reviewers.json in ROOT]; when it names anyone, the page asks "
                   "them to sign in (on any address).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="PEM certificate (chain) to serve the page over https (Streamlit's server.sslCertFile).")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The certificate's PEM private key (Streamlit's server.sslKeyFile).")
@click.option("--insecure-http", is_flag=True,
              help="Serve a shared page over plain http (only behind a TLS-terminating proxy).")
@click.option("--idle-minutes", type=click.FloatRange(0.05, 24 * 60), default=SignInPolicy().idle_seconds / 60,
              show_default=True, help="Sign a reviewer out after this many minutes without an action.")
@click.option("--headless", is_flag=True, help="Do not open a browser window.")
@click.option("--print-command", is_flag=True, help="Print the streamlit command instead of running it.")
@store_option
@analysis_options
@friendly_errors
def serve(root: Path, address: str, port: int, reviewers_option: Path | None, tls_cert: Path | None,
          tls_key: Path | None, insecure_http: bool, idle_minutes: float, headless: bool, print_command: bool,
          db: str | None, params, cache_path, workers) -> None:
    """Check the labels of the dataset ROOT in the browser, suspected label errors first.

    Opens a page with a grid of thumbnails per gender, ordered by how far each face is from its
    own gender's average against the other's. Keep, move to the other gender or reject (to
    quarantine/<reason>/) one or many at once, with keyboard shortcuts and undo. Every decision
    is logged in the store before the file moves. Same as
    `streamlit run curation/review_app.py --server.address 127.0.0.1 -- ROOT`.

    With reviewers configured, the page shows a sign-in form first and records the signed-in
    name with every decision; a session ends after --idle-minutes without an action.
    """
    layout = open_dataset(root)
    moves.check_writable(layout)
    access, configured, tls = serving_plan(layout.root, address, reviewers_option, tls_cert, tls_key, insecure_http,
                                           SignInPolicy(idle_seconds=idle_minutes * 60))
    # The store must answer before the server starts: an unreachable MongoDB is this one line
    # (as under build and clean), not an error shown in the browser seconds later.
    open_store(db, layout.root).close()
    # The page itself analyses only images added later, with processes of its own.
    processes = workers.processes if isinstance(workers, Executor) else workers
    config = ReviewConfig(layout.root, db, cache_path, params, processes)
    command = streamlit_command(config, address, port, headless, tls, access)
    if print_command:
        click.echo(shlex.join(command))
        return
    files = layout.image_files()
    with open_cache(cache_path, params) as cache:  # analyse new images here, with a progress bar
        _results, stats = analyse_paths(files, params, cache, workers, progress=True)
    if isinstance(workers, Executor):  # a Dask client (and a local cluster) must not outlive the exec below
        workers.close()
    sign_in = (f"sign-in required ({access.reviewers_file(layout.root)})" if configured
               else "no sign-in (this machine only)")
    click.echo(f"{stats.total} images ({stats.analysed} analysed now); review page on "
               f"{'https' if tls else 'http'}://{public_name(address)}:{port}, {sign_in}", err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # Become the streamlit server (no child left behind when this process is stopped).
    os.execve(command[0], command, {**os.environ, **PRIVATE_ENV})


# -- reviewers -----------------------------------------------------------------------------------
def _file_options(command):
    command = click.option("--reviewers", "reviewers_option", type=click.Path(dir_okay=False, path_type=Path),
                           default=None, help="The reviewers file [default: reviewers.json in the root].")(command)
    return click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
                        show_default=True, help="The dataset root whose reviewers.json is meant.")(command)


def _reviewers_file(root: Path, reviewers_option: Path | None) -> Path:
    if reviewers_option:
        return reviewers_option
    return reviewer_file.reviewers_path(open_dataset(root).root)


@review.group("reviewers")
def reviewers_group() -> None:
    """Who may sign in to the review page: names with salted scrypt password hashes, kept in
    ROOT/reviewers.json (or --reviewers FILE) readable by the owner only."""


@reviewers_group.command("add")
@click.argument("name")
@_file_options
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input "
              "instead of prompting for it twice.")
@friendly_errors
def reviewers_add(name: str, root: Path, reviewers_option: Path | None, password_stdin: bool) -> None:
    """Add reviewer NAME (or change their password); asks for the password."""
    path = _reviewers_file(root, reviewers_option)
    reviewer_file.check_name(name)
    reviewer_file.load(path)  # a malformed or public file is refused before asking anything
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True)
    is_new = reviewer_file.add(path, name, password)
    click.echo(f"{'added' if is_new else 'changed the password of'} {name.strip()} in {path}")


@reviewers_group.command("list")
@_file_options
@friendly_errors
def reviewers_list(root: Path, reviewers_option: Path | None) -> None:
    """List the reviewers (names and when their password was set; never the hashes)."""
    path = _reviewers_file(root, reviewers_option)
    reviewers = reviewer_file.load(path)
    if not reviewers:
        click.echo(f"{path}: no reviewers (the page asks for no sign-in and serves on loopback only)")
    for reviewer in sorted(reviewers.values(), key=lambda r: r.name):
        click.echo(f"{reviewer.name}\t{reviewer.added}")


@reviewers_group.command("remove")
@click.argument("name")
@_file_options
@friendly_errors
def reviewers_remove(name: str, root: Path, reviewers_option: Path | None) -> None:
    """Remove reviewer NAME (their open sessions end at their next action)."""
    path = _reviewers_file(root, reviewers_option)
    reviewer_file.remove(path, name)
    click.echo(f"removed {name} from {path}")
