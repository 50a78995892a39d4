"""The ``anfe import`` and ``anfe export`` commands: bring a labelled set into a dataset root, and
write a root out as a Hugging Face imagefolder with a dataset card."""

from __future__ import annotations

from pathlib import Path

import click

from anfe.faces.cache import AnalysisCache
from anfe.core.paths import cache_location
from anfe.core.config import AnalysisParams
from anfe.exchange.dataset_card import dataset_card
from anfe.core.errors import DatasetError
from anfe.exchange.export import FORMATS, export_root
from anfe.exchange.importer import KINDS, import_photos
from .common import friendly_errors, store_option
from anfe.core.store import open_store
from anfe.models.splits import SPLIT_MODES


@click.command("import")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--root", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The dataset root to import into (created when absent).")
@click.option("--kind", type=click.Choice(KINDS), default="auto", show_default=True,
              help="auto: a .csv is a labels CSV, a .txt/.tsv a FaceScrub list, a folder holds label folders.")
@click.option("--files", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="FaceScrub: the folder holding the downloaded photos, named by face_id [default: the list's folder].")
@click.option("--site", default=None, help="The site name recorded for these photos [default: import:<source name>].")
@store_option
@friendly_errors
def import_(source: Path, root: Path, kind: str, files: Path | None, site: str | None, db: str | None) -> None:
    """Copy a labelled set into ROOT by content hash, keeping person, source URL, age, race and any
    other label in the store; then clean, review, build and export work on ROOT as on a crawl.

    SOURCE is a labels CSV (path, gender; optional person, source_url, age, race, ...), a folder of
    label folders (<SOURCE>/female/..., a subfolder per person optional) or a FaceScrub list whose
    photos are on disk. Running it again adds nothing; a photo that cannot be imported is named in
    one line and the run goes on.
    """
    root.mkdir(parents=True, exist_ok=True)
    with open_store(db, root) as store:
        report = import_photos(source, root, store, kind, files, site)
    for problem in report.problems:
        click.echo(f"skipped: {problem}", err=True)
    added = ", ".join(f"{n} {g}" for g, n in sorted(report.added.items())) or "none"
    click.echo(f"imported {report.total_added} photos into {root} ({added}); {report.already} already there; "
               f"{len(report.problems)} skipped")


@click.command("export")
@click.argument("root", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="A new folder for the imagefolder, its metadata and its dataset card.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="hf", show_default=True,
              help="hf: metadata.jsonl per split; csv: metadata.csv per split (both load as imagefolder).")
@click.option("--include-quarantine", is_flag=True,
              help="Also export the quarantined photos (with their status and reason).")
@click.option("--split-by", type=click.Choice(SPLIT_MODES), default=None,
              help="Write train/ and test/ (person: no person on both sides) [default: train/ only].")
@click.option("--test-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.2,
              show_default=True, help="The test part of each gender with --split-by.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split.")
@click.option("--name", default=None, help="The dataset's name on its card [default: the root's folder name].")
@click.option("--cache", "cache_path", default=None, metavar="FILE|URI",
              help="Analysis cache the face boxes come from [default: $ANFE_CACHE or ~/.cache/anfe/analysis.sqlite].")
@store_option
@friendly_errors
def export(root: Path, out: Path, fmt: str, include_quarantine: bool, split_by: str | None, test_fraction: float,
           seed: int, name: str | None, cache_path: str | None, db: str | None) -> None:
    """Write ROOT as a Hugging Face imagefolder: <split>/<gender>/<photo> plus metadata (person, site,
    source URL, face box, age, group labels, content hash) and a dataset card (README.md).

    Load it with datasets.load_dataset("imagefolder", data_dir=OUT). Photos are copied; the root is
    only read. Quarantined photos stay out unless --include-quarantine.
    """
    where = cache_location(cache_path)
    use_cache = "://" in str(where) or Path(where).is_file()  # never create an empty cache just to read it
    with open_store(db, root) as store:
        records, decisions = store.find_images(), store.decisions()
        if use_cache:
            with AnalysisCache(where, AnalysisParams().cache_key) as cache:
                result = export_root(root, store, out, fmt, include_quarantine, split_by, test_fraction, seed, cache)
        else:
            result = export_root(root, store, out, fmt, include_quarantine, split_by, test_fraction, seed)
    if not result.count():
        raise DatasetError(f"{root} holds no photos to export")
    card = dataset_card(result, records, decisions, name or Path(root).resolve().name)
    (out / "README.md").write_text(card, encoding="utf-8")
    parts = ", ".join(f"{split} {len(rows)}" for split, rows in sorted(result.rows.items()))
    click.echo(f"exported {result.count()} photos ({parts}) to {out} with a dataset card (README.md); "
               f'load with datasets.load_dataset("imagefolder", data_dir="{out}")')


__all__ = ["export", "import_"]
