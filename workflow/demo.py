"""``anfe demo``: the whole flow on the local demo site, with no server to install.

Generates the demo site from labelled photos (held-back test photos are kept off the site),
serves it on 127.0.0.1, crawls its load-more list (the first third of the people in the HTML,
the rest through ``POST /listal/item-list/``) with the listal-style spider into a fresh dataset root,
runs the automatic filters, builds centroids for several sizes (plus the several-centroid
variant), evaluates every build on the held-back photos and writes the HTML report.
"""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import click

from anfe.faces.cache import AnalysisCache
from anfe.cli.common import analysis_options, friendly_errors, open_cache, store_option
from anfe.core.config import AnalysisParams
from anfe.core.dataset import LabelledImage, age_of, by_gender, load_labelled
from anfe.core.errors import AnfeError, DatasetError
from anfe.models.evaluation import evaluate_build
from anfe.models.report import write_sweep_report
from anfe.core.people import SYNTHETIC_PERSON
from anfe.core.store import Store, open_store
from anfe.models.builds import ALL, BuildOptions, make_builds, parse_sizes
from curation.clean import clean
from curation.cleaning_report import summary_table, write_html
from curation.rules import CleanRules
from scraper.demosite import DemoServer, SiteSpec, generate_site

DEFAULT_SOURCE = Path("../shared/data/faces/utkface")


def default_source() -> Path:
    """../shared/data/faces/utkface beside the current folder, else beside this checkout."""
    for base in (Path.cwd(), Path(__file__).resolve().parents[1]):
        candidate = (base / DEFAULT_SOURCE).resolve()
        if candidate.exists():
            return candidate
    return DEFAULT_SOURCE


class DemoError(AnfeError):
    """A step of the demo failed; the message names the step and how to fix it."""


@dataclass(frozen=True)
class DemoConfig:
    """What the demo does: the photos it starts from, how much it crawls, builds and tests."""

    source: Path
    out: Path
    people: int = 24
    photos: int = 8
    test_per_gender: int = 100
    min_age: float | None = 17.0
    sizes: tuple[int | str, ...] = (25, 50, 75)
    k: int = 4
    seed: int = 0
    db: str | None = None


@dataclass
class DemoResult:
    """Where everything went and the headline figures."""

    out: Path
    dataset_root: Path
    site_dir: Path
    crawl_log: Path
    cleaning_html: Path | None = None
    report_html: Path | None = None
    builds: list[str] = field(default_factory=list)
    figures: dict[str, dict] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def split_source(items: list[LabelledImage], config: DemoConfig) -> tuple[list[LabelledImage], list[LabelledImage]]:
    """(site photos, held-back test photos): a seeded per-gender split, adults only where ages are known."""
    if config.min_age is not None:
        items = [i for i in items if (age := age_of(i.labels)) is None or age >= config.min_age]
    rng = random.Random(config.seed)
    site, test = [], []
    for gender, group in by_gender(items).items():
        group = sorted(group, key=lambda i: str(i.path))
        rng.shuffle(group)
        take = min(config.test_per_gender, len(group) // 3)
        test.extend(group[:take])
        site.extend(group[take:])
    if not test or not site:
        raise DatasetError(f"{config.source} holds too few labelled photos for a demo")
    return site, test


def write_labels(items: list[LabelledImage], path: Path) -> Path:
    """A labels CSV with absolute paths (path, gender, then every other label)."""
    extra = sorted({k for i in items for k in i.labels})
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "gender", *extra])
        for item in items:
            writer.writerow([str(Path(item.path).resolve()), item.gender, *(item.labels.get(k, "") for k in extra)])
    return path


def crawl(base_url: str, dataset_root: Path, db: str | None, log_path: Path) -> None:
    """Run the listal-style spider over the demo site in a child process (one reactor per process)."""
    command = [sys.executable, "-m", "anfe", "crawl", "listal", "--root", str(dataset_root), "--fast",
               "-a", "profile=demo-listal-more", "-a", f"base_url={base_url}", "-s", "LOG_LEVEL=INFO"]
    if db:
        command += ["--db", db]
    with log_path.open("w", encoding="utf-8") as log:
        done = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        raise DemoError(f"the crawl failed (exit {done.returncode}): see {log_path}")


def mark_synthetic(store: Store) -> int:
    """Mark every record of the store as showing a made-up person (:data:`SYNTHETIC_PERSON`)."""
    return store.upsert_images({"content_hash": r["content_hash"], SYNTHETIC_PERSON: True}
                               for r in store.find_images(fields=("content_hash",)))


def run_demo(config: DemoConfig, params: AnalysisParams, cache: AnalysisCache, workers: int,
             progress: bool = True, echo=click.echo) -> DemoResult:
    """Every step in order; returns where the outputs are and the figures measured."""
    out = config.out.resolve()
    if (out / "data").exists() and any((out / "data").iterdir()):
        raise DemoError(f"{out} already holds a demo: choose a new --out folder")
    if config.db:  # a store that cannot be reached fails now, before anything is written
        with open_store(config.db):
            pass
    result = DemoResult(out, out / "data", out / "site", out / "crawl.log")
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        result.seconds[name] = round(now - clock, 1)
        clock = now

    site_items, test_items = split_source(load_labelled(config.source), config)
    site_csv = write_labels(site_items, out / "labels" / "site.csv")
    test_csv = write_labels(test_items, out / "labels" / "test.csv")
    spec = SiteSpec(people=2, photos=1, per_page=4, seed=config.seed, list_people=config.people,
                    list_photos=config.photos, list_first=max(1, config.people // 3),
                    list_chunk=max(1, config.people // 4))
    manifest = generate_site(site_csv, result.site_dir, spec=spec)
    expected = manifest["spiders"]["listal-more"]["images"]
    promised = ", ".join(f"{n} {g}" for g, n in expected.items()) if isinstance(expected, dict) else expected
    echo(f"1/5 demo site: {result.site_dir} (its load-more list promises {promised} photos)")
    lap("site")

    with DemoServer(result.site_dir) as server:
        echo(f"2/5 crawling {server.base_url} with the listal spider into {result.dataset_root} ...")
        crawl(server.base_url, result.dataset_root, config.db, result.crawl_log)
    lap("crawl")

    with open_store(config.db, result.dataset_root) as store:
        # Without identities the site's people are synthetic (photos of different people under one
        # name): their records say so, and the people rules (of this clean and any later one) skip them.
        if not any(item.person for item in site_items):
            mark_synthetic(store)
        rules = CleanRules(min_age=config.min_age or 0)
        cleaned = clean(result.dataset_root, rules, params, cache, workers, store, progress=progress)
        result.cleaning_html = write_html(cleaned, out / "cleaning.html")
        echo("3/5 cleaned:\n" + summary_table(cleaned))
        lap("clean")

        items = load_labelled(result.dataset_root)
        dataset = {"source": str(result.dataset_root), "site": str(result.site_dir)}
        builds = []
        for options in (BuildOptions(config.sizes, config.seed, clamp=True),
                        BuildOptions(config.sizes[-1:], config.seed, "kmeans", config.k, clamp=True)):
            builds += make_builds(items, options, params, cache, workers, dataset=dataset, progress=progress).builds
        for build in builds:
            store.save_build(build)
        result.builds = [b["id"] for b in builds]
        echo(f"4/5 builds saved in {store.uri}: {', '.join(result.builds)}")
        lap("build")

    evaluations = [
        evaluate_build(build, test_items, params, cache, workers, test_source=str(test_csv), progress=progress)
        for build in builds
    ]
    result.report_html = write_sweep_report(evaluations, out / "report")
    for evaluation in evaluations:
        data = evaluation.to_dict()
        result.figures[evaluation.build_id] = {
            "per_gender": data.get("per_gender"), "balanced_accuracy": data.get("balanced_accuracy"),
        }
    lap("evaluate")
    (out / "demo.json").write_text(json.dumps({
        "builds": result.builds, "figures": result.figures, "seconds": result.seconds,
        "dataset_root": str(result.dataset_root), "report": str(result.report_html),
        "cleaning": str(result.cleaning_html), "crawl_log": str(result.crawl_log),
    }, indent=1), encoding="utf-8")
    return result


@click.command()
@click.option("--source", type=click.Path(exists=False, path_type=Path), default=None,
              help="Labelled photos to build the demo site from: a labels CSV, a folder holding labels.csv, "
                   "or a folder of label folders [default: ../shared/data/faces/utkface, beside the current "
                   "folder or the checkout].")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("./demo-out"),
              show_default=True, help="Folder for the site, the dataset root, the store and the reports.")
@click.option("--people", default=24, show_default=True, type=click.IntRange(2, 500),
              help="People with a stated gender on the demo site's load-more list (half women, half men); "
                   "its HTML shows the first third, the rest come through POST /listal/item-list/.")
@click.option("--photos", default=8, show_default=True, type=click.IntRange(1, 100), help="Photos per person.")
@click.option("--test-per-gender", default=100, show_default=True, type=click.IntRange(5, None),
              help="Photos per gender held back from the site to evaluate the builds on.")
@click.option("--min-age", default=17.0, show_default=True, type=float,
              help="Where the source has an age column, only people this old or older (the paper: 17).")
@click.option("--sizes", default="25,50,75", show_default=True,
              help="Build sizes (images per gender), comma-separated; the largest also gets a k-means build.")
@click.option("--k", default=4, show_default=True, type=click.IntRange(1, 64),
              help="Centroids per gender of the several-centroid build.")
@click.option("--seed", default=0, show_default=True, help="Seed of the split, the site and the builds.")
@click.option("--quiet", is_flag=True, help="No progress bars.")
@store_option
@analysis_options
@friendly_errors
def demo(source: Path | None, out: Path, people: int, photos: int, test_per_gender: int, min_age: float,
         sizes: str, k: int, seed: int, quiet: bool, db: str | None, params, cache_path, workers) -> None:
    """Run the whole flow on a local demo site: generate, serve, crawl, clean, build, evaluate, report.

    Nothing to install: the site is served on 127.0.0.1 and the embedded store is used unless
    --db mongodb://... is given. By default the photos come from ../shared/data/faces/utkface.
    """
    source = source or default_source()
    if not source.exists():
        raise click.ClickException(f"{source} does not exist: give labelled photos with --source (a labels CSV or a folder)")
    try:
        size_list = tuple(sorted(parse_sizes(sizes), key=lambda n: (n == ALL, n if n != ALL else 0)))
    except DatasetError as exc:
        raise click.BadParameter(str(exc), param_hint="--sizes") from None
    config = DemoConfig(source, out, people, photos, test_per_gender, min_age, size_list, k, seed, db)
    with open_cache(cache_path, params) as cache:
        result = run_demo(config, params, cache, workers, progress=not quiet)
    click.echo("5/5 evaluated on the held-back photos:")
    for build_id, figures in result.figures.items():
        per = figures.get("per_gender") or {}
        rates = ", ".join(f"{g} {(v.get('accuracy') or 0) * 100:.1f}%" for g, v in per.items() if isinstance(v, dict))
        balanced = figures.get("balanced_accuracy")
        click.echo(f"  {build_id}: {rates}; balanced {balanced * 100:.1f}%" if balanced is not None else f"  {build_id}: {rates}")
    click.echo(f"dataset root: {result.dataset_root}\ncleaning report: {result.cleaning_html}\n"
               f"evaluation report: {result.report_html}\ncrawl log: {result.crawl_log}\n"
               f"review the labels: anfe review {result.dataset_root}\n"
               "timings (s): " + ", ".join(f"{step} {seconds:g}" for step, seconds in result.seconds.items()))
