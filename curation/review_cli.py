"""``anfe review ROOT``: analyse what is new, then open the label-review page (Streamlit).

``anfe review reviewers add|list|remove`` manages who may sign in. The page stays on 127.0.0.1
unless ``--address`` says otherwise; a shared page needs reviewers and TLS (or ``--insecure-http``).
"""

from __future__ import annotations

import argparse
import functools
import os
import secrets
import shlex
import socket
import ssl
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from anfe.core.paths import cache_location
from anfe.faces.executor import Executor
from anfe.cli.common import analysis_options, friendly_errors, open_cache, store_option
from anfe.core.config import AnalysisParams
from anfe.core.errors import DatasetError
from anfe.core.layout import DatasetLayout, open_dataset
from anfe.core.store import open_store

from . import catalog, moves
from . import reviewers as reviewer_file
from .hosts import page_hosts
from .review_guard import TOKEN_ENV
from .signin import SignInPolicy, is_loopback

APP = Path(__file__).with_name("review_app.py")
#: What `anfe review` runs: the page behind its trust boundary (:mod:`curation.review_guard`).
SERVER = Path(__file__).with_name("review_server.py")
USAGE = "usage: streamlit run curation/review_app.py -- DATASET_ROOT"


# -- configuration -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReviewConfig:
    """What the review page opens (the dataset root, its store, where embeddings come from) and who
    may use it (the reviewers file, None: ROOT/reviewers.json; sign-in even with that file empty),
    the host names it answers to (empty: any, as a bare ``streamlit run`` does) and the proxies
    whose ``X-Forwarded-For`` is believed."""

    root: Path
    db: str | None = None
    cache_path: str | Path | None = None
    params: AnalysisParams = AnalysisParams()
    workers: int = 1
    reviewers: Path | None = None
    require_sign_in: bool = False
    policy: SignInPolicy = SignInPolicy()
    allowed_hosts: tuple[str, ...] = ()
    trusted_proxies: tuple[str, ...] = ()

    @property
    def reviewers_file(self) -> Path:
        """The reviewers file that applies to the dataset."""
        return reviewer_file.reviewers_path(self.root, self.reviewers)

    def to_args(self) -> list[str]:
        """The page's command-line arguments (after ``streamlit run review_app.py --``)."""
        p = self.params
        args = [str(self.root), "--detector", p.detector, "--upsample", str(p.upsample),
                "--jitters", str(p.jitters), "--max-pixels", str(p.max_pixels),
                "--workers", str(self.workers), "--idle-minutes", f"{self.policy.idle_seconds / 60:g}"]
        for flag, value in (("--max-side", p.max_side), ("--db", self.db), ("--cache", self.cache_path),
                            ("--reviewers", self.reviewers)):
            if value:
                args += [flag, str(value)]
        for flag, values in (("--allowed-host", self.allowed_hosts), ("--trusted-proxy", self.trusted_proxies)):
            for value in values:
                args += [flag, value]
        return args + ["--require-sign-in"] * self.require_sign_in


def parse_args(argv: Sequence[str]) -> ReviewConfig:
    """The inverse of :meth:`ReviewConfig.to_args`; raises :class:`DatasetError` on bad arguments."""
    default = AnalysisParams()
    parser = argparse.ArgumentParser(prog="review_app.py", add_help=False, exit_on_error=False)
    parser.add_argument("root")
    parser.add_argument("--db", default=os.environ.get("ANFE_DB") or None)
    parser.add_argument("--cache", default=None)
    parser.add_argument("--detector", default=default.detector)
    parser.add_argument("--upsample", type=int, default=default.upsample)
    parser.add_argument("--max-side", type=int, default=None)
    parser.add_argument("--jitters", type=int, default=default.jitters)
    parser.add_argument("--max-pixels", type=int, default=default.max_pixels)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--reviewers", type=Path, default=None)
    parser.add_argument("--require-sign-in", action="store_true")
    parser.add_argument("--idle-minutes", type=float, default=SignInPolicy().idle_seconds / 60)
    parser.add_argument("--allowed-host", action="append", default=[])
    parser.add_argument("--trusted-proxy", action="append", default=[])
    try:
        ns, unknown = parser.parse_known_args(list(argv))
        params = AnalysisParams(ns.detector, ns.upsample, ns.max_side, ns.jitters, ns.max_pixels)
        policy = SignInPolicy(idle_seconds=ns.idle_minutes * 60)
    except (argparse.ArgumentError, ValueError, SystemExit) as exc:
        raise DatasetError(f"bad arguments {list(argv)}: {exc}; {USAGE} [--db URI] [--cache PATH]") from None
    if unknown:
        raise DatasetError(f"unknown arguments {unknown}: {USAGE}")
    return ReviewConfig(Path(ns.root), ns.db, cache_location(ns.cache) if ns.cache else None, params,
                        max(1, ns.workers), ns.reviewers, ns.require_sign_in, policy, tuple(ns.allowed_host),
                        tuple(ns.trusted_proxy))


class ServingRefused(click.ClickException):
    """``anfe review`` will not serve the page this way (the message says how to fix it)."""


def public_name(address: str) -> str:
    """The name browsers reach ``address`` by: itself, or this machine's name for a wildcard."""
    return socket.getfqdn() if address in {"0.0.0.0", "::", ""} else address


def streamlit_command(config: ReviewConfig, address: str, port: int, headless: bool,
                      tls: tuple[Path, Path] | None = None) -> list[str]:
    """The ``streamlit run`` command line that serves the page for ``config`` behind its trust
    boundary (:mod:`curation.review_server`): only its own host names (``config.allowed_hosts``),
    XSRF protection and CORS on; static serving, the agent API and the file watcher off; no error
    details for clients; a tool for private data sends nothing anywhere and asks nothing (no
    usage statistics, no first-run e-mail prompt)."""
    command = [
        sys.executable, "-m", "streamlit", "run", str(SERVER),
        "--server.address", address, "--server.port", str(port), "--server.headless", str(headless).lower(),
        "--server.enableXsrfProtection", "true", "--server.enableCORS", "true",
        "--server.enableStaticServing", "false", "--server.enableAgentApi", "false",
        "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal",
        "--browser.gatherUsageStats", "false", "--server.showEmailPrompt", "false",
        "--client.showErrorDetails", "none",
        # Streamlit looks up the machine's public address on the internet (checkip) to print an
        # "External URL" and to vet the origins of a page served on every interface: name the
        # address browsers use instead, and print our own URL line, so nothing is asked outside.
        "--browser.serverAddress", public_name(address), "--logger.hideWelcomeMessage", "true",
    ]
    for host in config.allowed_hosts:
        command += ["--server.allowedHosts", host]
    if tls:
        command += ["--server.sslCertFile", str(tls[0]), "--server.sslKeyFile", str(tls[1])]
    return [*command, "--", *config.to_args()]


def serving_plan(root: Path, address: str, reviewers_option: Path | None, tls_cert: Path | None,
                 tls_key: Path | None, insecure_http: bool) -> tuple[Path | None, tuple[Path, Path] | None]:
    """(the reviewers file when it names anyone, the TLS pair or None), or :class:`ServingRefused`
    when the page would be open to others without sign-in or TLS."""
    if (tls_cert is None) != (tls_key is None):
        raise ServingRefused("give both --tls-cert FILE and --tls-key FILE (or neither)")
    path = reviewer_file.reviewers_path(root, reviewers_option)
    reviewers = path.resolve() if reviewer_file.load(path) else None
    if reviewers_option and reviewers is None:
        raise ServingRefused(f"no reviewers in {path}: add one with "
                             f"`anfe review reviewers add NAME --reviewers {path}`")
    if not is_loopback(address) and reviewers is None:
        raise ServingRefused(f"refusing to serve {root} on {address} without sign-in: add a reviewer with "
                             f"`anfe review reviewers add NAME --root {root}` (or serve on 127.0.0.1)")
    if not is_loopback(address) and tls_cert is None and not insecure_http:
        raise ServingRefused(f"refusing to send passwords in clear on {address}: give --tls-cert FILE "
                             f"--tls-key FILE (or --insecure-http behind your own TLS proxy)")
    if tls_cert is None or tls_key is None:
        return reviewers, None
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(tls_cert, tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise ServingRefused(f"cannot use --tls-cert {tls_cert} with --tls-key {tls_key}: {exc}: give a PEM "
                             f"certificate and its unencrypted PEM private key") from None
    return reviewers, (tls_cert.resolve(), tls_key.resolve())


class _ReviewGroup(click.Group):
    """``anfe review ROOT`` is short for ``anfe review serve ROOT``; a first word naming a
    subcommand (``reviewers``) runs that instead."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in ctx.help_option_names):
            args = ["serve", *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path,
                              "[serve] ROOT [OPTIONS]  |  sync ROOT [OPTIONS]  |  reviewers add|list|remove ...")


@click.group(cls=_ReviewGroup)
def review() -> None:
    """Check the labels of a dataset in the browser (`anfe review ROOT`, see `anfe review serve
    --help`), and manage who may sign in to a shared page (`anfe review reviewers --help`)."""


@review.command("serve")
@click.argument("root", type=click.Path(path_type=Path))
@click.option("--address", default="127.0.0.1", show_default=True,
              help="Address to serve on; any other than loopback (e.g. 0.0.0.0) needs reviewers and TLS.")
@click.option("--port", type=click.IntRange(1, 65535), default=8501, show_default=True,
              help="Port to serve on.")
@click.option("--reviewers", "reviewers_option", type=click.Path(dir_okay=False, path_type=Path),
              help="Reviewers file [default: reviewers.json in ROOT]; once it names anyone, the page asks "
                   "them to sign in.")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="PEM certificate (chain) to serve the page over https.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="The certificate's PEM private key.")
@click.option("--insecure-http", is_flag=True,
              help="Serve a shared page over plain http (only behind a TLS-terminating proxy).")
@click.option("--idle-minutes", type=click.FloatRange(0.05, 1440), default=SignInPolicy().idle_seconds / 60,
              show_default=True, help="Sign a reviewer out after this many minutes without an action.")
@click.option("--allowed-host", "allowed_hosts", multiple=True, metavar="NAME",
              help="Another host name the page answers to (repeatable; e.g. the name a proxy or DNS gives "
                   "it). It always answers to the address it serves on (and on loopback, localhost).")
@click.option("--trusted-proxy", "trusted_proxies", multiple=True, metavar="ADDR",
              help="The address of your own reverse proxy (repeatable): only requests from it have their "
                   "X-Forwarded-For believed, for the sign-in limits and the log.")
@click.option("--headless", is_flag=True, help="Do not open a browser window.")
@click.option("--print-command", is_flag=True, help="Print the streamlit command instead of running it.")
@store_option
@analysis_options
@friendly_errors
def serve(root: Path, address: str, port: int, reviewers_option: Path | None, tls_cert: Path | None,
          tls_key: Path | None, insecure_http: bool, idle_minutes: float, allowed_hosts: tuple[str, ...],
          trusted_proxies: tuple[str, ...], headless: bool, print_command: bool, db: str | None, params,
          cache_path, workers) -> None:
    """Check the labels of the dataset ROOT in the browser, suspected label errors first: keep, move
    or reject one or many thumbnails at once, with keyboard shortcuts and undo (see the README).
    The page is curation/review_app.py, served behind curation/review_guard.py (see docs/review.md)."""
    layout = open_dataset(root)
    moves.check_writable(layout)
    reviewers, tls = serving_plan(layout.root, address, reviewers_option, tls_cert, tls_key, insecure_http)
    # The store must answer before the server starts: an unreachable MongoDB is this one line
    # (as under build and clean), not an error shown in the browser seconds later.
    open_store(db, layout.root).close()
    # The page itself analyses only images added later, with processes of its own.
    processes = workers.processes if isinstance(workers, Executor) else workers
    config = ReviewConfig(layout.root, db, cache_path, params, processes, reviewers, not is_loopback(address),
                          SignInPolicy(idle_seconds=idle_minutes * 60), page_hosts(address, allowed_hosts),
                          tuple(trusted_proxies))
    command = streamlit_command(config, address, port, headless, tls)
    if print_command:
        click.echo(shlex.join(command))
        return
    # Bring the catalog in line with the folders and score the photos here (analysing new images,
    # with a progress bar); skipped in a few stat calls when no folder changed since the last time.
    synced = _sync_catalog(layout, db, params, cache_path, workers)
    # A page without sign-in gets a token instead (as Jupyter's does): in the URL printed here and
    # handed to the server through its environment, never its command line (which `ps` shows).
    environment = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    # uvicorn believes X-Forwarded-For from 127.0.0.1 unless told otherwise: believe nobody there
    # (the guard believes only --trusted-proxy)
    environment["FORWARDED_ALLOW_IPS"] = ""
    token = None if reviewers else (os.environ.get(TOKEN_ENV) or secrets.token_urlsafe(32))
    if token:
        environment[TOKEN_ENV] = token
    sign_in = f"sign-in required ({reviewers})" if reviewers else "no sign-in (this machine only; the token)"
    url = f"{'https' if tls else 'http'}://{public_name(address)}:{port}/" + (f"?token={token}" if token else "")
    click.echo(f"{synced.photos} images ({synced.scored} scored now); review page on {url} , {sign_in}",
               err=True)
    sys.stdout.flush()
    sys.stderr.flush()
    if token and not headless:  # Streamlit would open its URL without the token: open ours instead
        command[command.index("--server.headless") + 1] = "true"
        subprocess.Popen([sys.executable, "-m", "curation.open_page", url], start_new_session=True,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # Become the streamlit server (no child left behind when this process is stopped).
    os.execve(command[0], command, environment)


def _sync_catalog(layout: DatasetLayout, db: str | None, params: AnalysisParams, cache_path: str | Path | None,
                  workers: int | Executor) -> catalog.SyncReport:
    """Run the catalog sync (with a progress bar), then let go of any Dask client (and local
    cluster): none may outlive the command (serve execs the page after it)."""
    with open_cache(cache_path, params) as cache, open_store(db, layout.root) as store:
        synced = catalog.sync(layout, store, params, cache, workers, progress=True)
    if isinstance(workers, Executor):
        workers.close()
    return synced


@review.command("sync")
@click.argument("root", type=click.Path(path_type=Path))
@store_option
@analysis_options
@friendly_errors
def sync(root: Path, db: str | None, params: AnalysisParams, cache_path, workers) -> None:
    """Bring the catalog of the dataset ROOT in line with its folders and score the photos for
    review now (what `anfe review ROOT` does before the page opens), e.g. right after a crawl.
    Does nothing when no folder changed since the last sync; a sync that was stopped is redone."""
    synced = _sync_catalog(open_dataset(root), db, params, cache_path, workers)
    click.echo(f"{synced.photos} images: {synced.updated} records updated, {synced.scored} scored now")


# -- reviewers -----------------------------------------------------------------------------------
def _reviewers_file_options(command: Callable[..., None]) -> Callable[..., None]:
    """Adds --root and --reviewers; the command gets the reviewers file they name as its first argument."""

    @click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=Path("."),
                  show_default=True, help="The dataset root whose reviewers.json is meant.")
    @click.option("--reviewers", "reviewers_option", type=click.Path(dir_okay=False, path_type=Path),
                  default=None, help="The reviewers file [default: reviewers.json in the root].")
    @friendly_errors
    @functools.wraps(command)
    def wrapper(root: Path, reviewers_option: Path | None, **kwargs: Any) -> None:
        command(reviewers_option or reviewer_file.reviewers_path(open_dataset(root).root), **kwargs)

    return wrapper


@review.group("reviewers")
def reviewers_group() -> None:
    """Who may sign in to the review page: names with salted scrypt password hashes, kept in
    ROOT/reviewers.json (or --reviewers FILE) readable by the owner only."""


@reviewers_group.command("add")
@click.argument("name")
@_reviewers_file_options
@click.option("--password-stdin", is_flag=True,
              help="Read the password from the first line of standard input instead of asking twice.")
def reviewers_add(path: Path, name: str, password_stdin: bool) -> None:
    """Add reviewer NAME (or change their password); asks for the password."""
    reviewer_file.check_name(name)
    reviewer_file.load(path)  # a malformed or public file is refused before asking anything
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True)
    is_new = reviewer_file.add(path, name, password)
    click.echo(f"{'added' if is_new else 'changed the password of'} {name.strip()} in {path}")


@reviewers_group.command("list")
@_reviewers_file_options
def reviewers_list(path: Path) -> None:
    """List the reviewers (names and when their password was set; never the hashes)."""
    reviewers = reviewer_file.load(path)
    if not reviewers:
        click.echo(f"{path}: no reviewers (the page asks for no sign-in and serves on loopback only)")
    for reviewer in sorted(reviewers.values(), key=lambda r: r.name):
        click.echo(f"{reviewer.name}\t{reviewer.added}")


@reviewers_group.command("remove")
@click.argument("name")
@_reviewers_file_options
def reviewers_remove(path: Path, name: str) -> None:
    """Remove reviewer NAME (their open sessions end at their next action)."""
    reviewer_file.remove(path, name)
    click.echo(f"removed {name} from {path}")
