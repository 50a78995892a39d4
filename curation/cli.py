"""The ``anfe clean``, ``anfe quarantine`` and ``anfe restore`` commands (registered through the
``anfe.cli.commands`` entry points): thin wrappers over :mod:`curation.clean` and
:mod:`curation.quarantine` that print summaries and one-line errors.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import click

from anfe.cli.common import analysis_options, friendly_errors, open_cache, store_option
from anfe.core.dataset import age_of
from anfe.core.errors import DatasetError
from anfe.core.layout import open_dataset
from anfe.core.store import by_content_hash, open_store

from . import moves
from . import quarantine as q
from .rules import AGE_FIELDS, RULES, CleanRules, ages_from_csv

_ROOT = click.argument("root", type=click.Path(file_okay=False, path_type=Path))


#: The thresholds of :class:`CleanRules` as options of ``anfe clean``: field -> (type, help).
THRESHOLDS: dict[str, tuple[click.ParamType, str]] = {
    "min_width": (click.IntRange(1, None), "too-small: minimum image width in pixels."),
    "min_height": (click.IntRange(1, None), "too-small: minimum image height in pixels."),
    "min_eye_distance": (click.FloatRange(0, None), "small-face: minimum pixels between the eye centres."),
    "min_face_side": (click.IntRange(0, None), "small-face: minimum side of the face box in pixels "
                      "(0 = off)."),
    "near_distance": (click.IntRange(0, 32), "near-duplicate: most differing bits of the 64-bit "
                      "perceptual hash."),
    "min_age": (click.FloatRange(0, None), "under-age: youngest age kept (the paper removed ages 0-16)."),
    "wrong_person_distance": (click.FloatRange(0, None, min_open=True), "wrong-person: farthest a photo "
                              "may lie from the median of its person's other photos (dlib's same-person "
                              "tolerance)."),
}


def _rule_switches(command: Callable) -> Callable:
    """One ``--no-<reason>`` flag per rule (``off_<field>``) and one option per threshold."""
    options = [click.option(f"--no-{r.reason}", f"off_{r.field}", is_flag=True, help=f"Keep {r.help}.")
               for r in RULES]
    options += [click.option("--" + name.replace("_", "-"), type=kind, default=getattr(CleanRules(), name),
                             show_default=True, help=text) for name, (kind, text) in THRESHOLDS.items()]
    options.append(click.option("--quarantine-wrong-person", is_flag=True, help="wrong-person: quarantine "
                                "the suspects directly instead of sending them to review."))
    for option in reversed(options):
        command = option(command)
    return command


def _rules_from(kwargs: dict[str, Any]) -> CleanRules:
    switches = {rule.field: not kwargs.pop("off_" + rule.field) for rule in RULES}
    return CleanRules(**switches, **{k: kwargs.pop(k) for k in (*THRESHOLDS, "quarantine_wrong_person")})


@click.command()
@_ROOT
@click.option("--dry-run", is_flag=True, help="Print what would move and write the report; move nothing.")
@click.option("--labels", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="A labels CSV with 'path' and 'age' (or 'birth_year' and 'photo_year') columns, "
                   "for the under-age rule (matched to the dataset's files by content).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write the HTML page [default: ROOT/reports/cleaning.html].")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@_rule_switches
@analysis_options
@store_option
@friendly_errors(hints={moves.ReadOnlyDatasetError: "to see what would move without moving anything, "
                                                    "use --dry-run"})
def clean(root: Path, dry_run: bool, labels: Path | None, report_path: Path | None, quiet: bool,
          params, cache_path, workers, db, **kwargs: Any) -> None:
    """Take bad images out of the dataset ROOT (ROOT/images/<gender>/...) into ROOT/quarantine/.

    Runs the analysis pass once (cached) and applies every rule, in this order: unreadable,
    too-small, no-face, many-faces, small-face, under-age, exact-duplicate, label-conflict,
    near-duplicate, then the people rules (when the store names each photo's person, as a crawl
    does): wrong-person, mislabelled-person. Each rule has a --no-<rule> switch. Rejected files
    move to quarantine/<rule>/<gender>/, listed in quarantine/manifest.jsonl and marked in the
    store; nothing is deleted, and `anfe restore` puts files back. Label conflicts, wrong-person
    suspects and mislabelled people go there with status "review" for the review app to settle.
    """
    from .clean import clean as run_clean
    from .cleaning_report import summary_table, write_html

    rules = _rules_from(kwargs)
    layout = open_dataset(root)
    if not dry_run:
        moves.check_writable(layout, layout.label_folders())
    ages, by_name = ages_from_csv(labels) if labels else ({}, {})
    no_store = dry_run and not db and not (layout.root / "catalog.sqlite").exists()  # a dry run creates none
    with (nullcontext() if no_store else open_store(db, layout.root) as store,
          open_cache(cache_path, params) as cache):
        if store is not None and rules.under_age:
            ages = {**by_content_hash(store.find_images(fields=AGE_FIELDS), age_of), **ages}
        report = run_clean(layout.root, rules, params, cache, workers, store, ages, by_name,
                           dry_run=dry_run, progress=not quiet)
    for line in report.repaired:
        click.echo(f"repaired an interrupted move: {line}")
    if dry_run:
        for r in report.rejections:
            click.echo(f"would move {r.path.relative_to(layout.root)} -> quarantine/{r.reason}/  "
                       f"({r.detail})")
    for r in report.skipped:
        click.echo(f"warning: skipped {r.path}: {r.problem}", err=True)
    click.echo(summary_table(report))
    try:
        page = write_html(report, report_path)
    except OSError as exc:
        page = None
        click.echo(f"warning: could not write the HTML report: {exc}", err=True)
    verb, moved = ("would move", report.rejections) if dry_run else ("moved", report.moved)
    click.echo(f"{report.scanned} files scanned ({report.stats.cached} analyses from the cache, "
               f"{report.stats.analysed} new); {verb} {len(moved)} to {layout.quarantine}; report: {page}")


@click.group()
def quarantine() -> None:
    """Look at (and repair) the quarantine of a dataset root: what was taken out, and why."""


@quarantine.command("list")
@_ROOT
@click.option("--reason", default=None, help="Only files quarantined for this reason (e.g. no-face).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
@friendly_errors
def list_command(root: Path, reason: str | None, as_json: bool) -> None:
    """List the files now in ROOT/quarantine (oldest first) with their reason and original place."""
    layout = open_dataset(root)
    entries = q.list_quarantined(layout, reason)
    for e in entries:
        if as_json:
            fields = ("original", "reason", "detail", "gender", "content_hash", "actor", "time")
            click.echo(json.dumps({"quarantined": e.dst, **{k: getattr(e, k) for k in fields}}))
        else:
            click.echo(f"{e.reason:16} {e.dst}  <- {e.original}  ({e.detail})")
    if not as_json:
        counts = ", ".join(f"{k}: {v}" for k, v in q.reasons(layout).items())
        total = counts if reason is None else f"{reason}: {len(entries)}"
        click.echo(f"{len(entries)} file(s) in quarantine" + (f" ({total})" if entries else ""))


@quarantine.command("repair")
@_ROOT
@store_option
@friendly_errors
def repair_command(root: Path, db: str | None) -> None:
    """Finish moves that a crash interrupted (replays ROOT/quarantine/manifest.jsonl)."""
    layout = open_dataset(root)
    with open_store(db, layout.root) as store:
        done = moves.replay(layout, store)
    for line in done:
        click.echo(line)
    click.echo(f"{len(done)} interrupted move(s) finished")


def _short_prefix(layout: Any, target: Any) -> bool:
    """True for a hex string under 8 digits that names no file: a hash prefix too short to mean one."""
    text = str(target)
    return (isinstance(target, str) and 0 < len(text) < 8 and all(c in "0123456789abcdefABCDEF" for c in text)
            and not Path(text).exists() and not (layout.root / text).exists())


@click.command()
@_ROOT
@click.argument("targets", nargs=-1)
@click.option("--reason", default=None, help="Restore every file quarantined for this reason.")
@click.option("--all", "restore_all", is_flag=True, help="Restore every quarantined file.")
@store_option
@friendly_errors
def restore(
    root: Path, targets: tuple[str, ...], reason: str | None, restore_all: bool, db: str | None
) -> None:
    """Put quarantined files of ROOT back where they came from.

    TARGETS are quarantined paths (absolute or relative to ROOT) or content hashes (a unique
    prefix of 8+ hex digits will do); or use --reason R or --all. A file never overwrites one
    already at its original place: that restore is refused and the rest go on. --all with an
    empty quarantine says so and succeeds, so the same command can be run again.
    """
    layout = open_dataset(root)
    if not (targets or reason or restore_all):
        raise click.UsageError(
            "name what to restore: quarantined PATHS or content hashes, --reason R, or --all")
    with open_store(db, layout.root) as store:
        for line in moves.replay(layout, store):  # a restore a crash cut short is finished first
            click.echo(f"repaired an interrupted move: {line}")
        chosen: list[Any] = list(targets)
        if reason or restore_all:
            chosen += q.list_quarantined(layout, None if restore_all else reason)
        if not chosen and restore_all:  # done already (or run again after a kill): not an error
            click.echo(f"nothing to restore: {layout.quarantine} holds no quarantined file")
            return
        if not chosen:
            raise DatasetError(f"nothing in {layout.quarantine} matches: see `anfe quarantine list {root}`")
        refused = 0
        for target in chosen:
            if _short_prefix(layout, target):
                refused += 1
                click.echo(f"refused: {target}: a content-hash prefix needs 8+ hex digits (it has {len(target)}); "
                           f"see `anfe quarantine list {root}`", err=True)
                continue
            try:
                click.echo(f"restored {q.restore_file(layout, target, store).relative_to(layout.root)}")
            except moves.QuarantineError as exc:
                refused += 1
                click.echo(f"refused: {exc}", err=True)
    click.echo(f"{len(chosen) - refused} restored, {refused} refused")
    if refused:
        raise SystemExit(1)
