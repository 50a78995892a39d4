"""The ``anfe`` command: analysis, builds, evaluation and prediction, plus commands that the
curation and scraper layers contribute through the ``anfe.commands`` entry-point group."""

from __future__ import annotations

import json
import sys
from importlib.metadata import entry_points
from pathlib import Path

import click

from anfe.core.version import __version__
from anfe.faces.batch import analyse_paths
from anfe.faces.cache import AnalysisCache
from anfe.core.paths import cache_location, is_cache_uri
from .common import analysis_options, friendly_errors, open_cache, setup_logging
from anfe.core.dataset import load_labelled

#: anfe's own commands, loaded lazily (module:attribute).
_OWN_COMMANDS = {
    "analyze": "anfe.cli.app:analyze",
    "cache": "anfe.cli.app:cache",
    "build": "anfe.cli.commands:build",
    "builds": "anfe.cli.commands:builds",
    "evaluate": "anfe.cli.commands:evaluate",
    "predict": "anfe.cli.commands:predict",
    "import": "anfe.cli.datacommands:import_",
    "export": "anfe.cli.datacommands:export",
}


def _load(spec: str) -> click.Command:
    module_name, _, attribute = spec.partition(":")
    module = __import__(module_name, fromlist=[attribute])
    return getattr(module, attribute)


class _LazyGroup(click.Group):
    """Loads a command's module only when that command (or the full help) is asked for."""

    def _specs(self) -> dict[str, str]:
        specs = dict(_OWN_COMMANDS)
        for ep in entry_points(group="anfe.commands"):
            specs.setdefault(ep.name, ep.value)
        return specs

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self._specs()) | set(self.commands))

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.commands:
            return self.commands[name]
        spec = self._specs().get(name)
        return _load(spec) if spec else None


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="anfe")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Build gender-labelled face datasets and ANFE models (average dlib face embeddings).

    Crawl (crawl, site), clean (clean, quarantine, restore), review (review), then build,
    evaluate and predict. Every command has --help.
    """
    setup_logging(verbose)


@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A labels CSV (path, gender, ...) instead of label folders.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per image.")
@analysis_options
@friendly_errors
def analyze(source: Path, labels: Path | None, as_json: bool, params, cache_path,
            workers) -> None:
    """Run the analysis pass (faces, landmarks, embeddings, hashes) over SOURCE and cache it.

    SOURCE is a dataset root, a folder of label folders, a labels CSV or a single image.
    A second run over unchanged images reads everything from the cache.
    """
    paths = [source] if source.is_file() and source.suffix.lower() != ".csv" else [
        item.path for item in load_labelled(source, labels)
    ]
    with open_cache(cache_path, params) as cache:
        results, stats = analyse_paths(paths, params, cache, workers)
    if as_json:
        for path, a in results.items():
            click.echo(json.dumps({"path": path, "content_hash": a.content_hash, "faces": a.face_count,
                                   "boxes": [list(f.box) for f in a.faces], "error": a.error}))
    faces, encoders = {}, {}
    for a in results.values():
        key = a.error or f"{min(a.face_count, 2)}{'+' if a.face_count >= 2 else ''} face(s)"
        faces[key] = faces.get(key, 0) + 1
        for face in a.faces:
            encoders[face.encoder] = encoders.get(face.encoder, 0) + 1
    click.echo(f"{stats.total} images: {stats.cached} from cache, {stats.analysed} analysed now", err=as_json)
    click.echo("  " + ", ".join(f"{k}: {v}" for k, v in sorted(faces.items())), err=as_json)
    if encoders:
        click.echo("  embeddings by encoder: " + ", ".join(f"{k} {v}" for k, v in sorted(encoders.items())),
                   err=as_json)


@click.group()
def cache() -> None:
    """The analysis cache: results by content hash and parameters (default ~/.cache/anfe/analysis.sqlite)."""


@cache.command("merge")
@click.argument("target", metavar="TARGET")
@click.argument("sources", nargs=-1, required=True, metavar="SOURCE...")
@friendly_errors
def cache_merge(target: str, sources: tuple[str, ...]) -> None:
    """Copy into TARGET every analysis of the SOURCE caches that it lacks. Each is a cache file or
    a mongodb:// URI: e.g. move a laptop's cache into the shared MongoDB cache, or back."""
    with AnalysisCache(cache_location(target), "") as joined:
        for source in sources:
            added = joined.merge_from(cache_location(source))
            click.echo(f"{source}: {added} analyses added")


@cache.command("info")
@click.argument("location", required=False, metavar="[FILE|URI]")
@friendly_errors
def cache_info(location: str | None) -> None:
    """How many analyses the cache (a file or a mongodb:// URI; default: the user's cache) holds,
    per parameter set."""
    where = cache_location(location)
    if not is_cache_uri(where) and not Path(where).is_file():
        click.echo(f"{where}: no cache yet (any analysing command creates it)")
        return
    with AnalysisCache(where, "") as opened:
        counts = opened.counts()
    if is_cache_uri(where):
        from anfe.core.mongo import redact  # pymongo only for those who ask for MongoDB

        where = redact(str(where))
    click.echo(f"{where}:")
    for params, count in counts.items():
        click.echo(f"  {params}: {count} images")


def main() -> None:
    cli(prog_name="anfe")


if __name__ == "__main__":
    sys.exit(main())
