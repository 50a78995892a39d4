"""The ``anfe build``, ``builds``, ``evaluate`` and ``predict`` commands: thin wrappers that read
options, call the library (:mod:`anfe.models.builds`, :mod:`anfe.models.evaluation`, :mod:`anfe.models.prediction`,
:mod:`anfe.models.report`) and print short results."""

from __future__ import annotations

import fnmatch
import functools
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from anfe.faces.batch import default_workers
from anfe.models.builds import (
    VARIANTS, BuildOptions, apply_filters, build_sort_key, load_items, make_builds, parse_sizes, parse_where,
    params_from_build, small_build_warning, summary,
)
from anfe.faces.cache import AnalysisCache
from anfe.core.paths import cache_location
from anfe.models.centroids import DEFAULT_K_CANDIDATES, DEFAULT_VALIDATION_FRACTION, parse_candidates, parse_k
from .common import analysis_options, friendly_errors, open_cache, run_with_executor, store_option
from anfe.core.dataset import LabelledImage
from anfe.core.errors import (
    AnfeError, DatasetError, MissingGroupError, NoTestSplitError, SizeTooLargeError, StoreError, UnknownBuildError,
)
from anfe.models.evaluation import DEFAULT_KNN_K, EvaluationResult, evaluate_build, test_set_for
from anfe.faces.executor import Executor
from anfe.models.fairness import DEFAULT_MIN_GROUP, pct, pct_interval, points, points_interval
from anfe.core.layout import IMAGE_SUFFIXES
from anfe.core.people import PERSON_FIELDS
from anfe.models.prediction import default_max_distance, predict_paths
from anfe.models.shipped import DEFAULT_SHIPPED, describe, is_shipped, load_shipped, shipped_builds
from anfe.models.splits import SPLIT_MODES
from anfe.core.store import CATALOG_NAME, Store, open_store


# -- shared option helpers ------------------------------------------------------------------
def _filter_options(command: Callable) -> Callable:
    """--where COLUMN OP VALUE (repeatable) and --min-age N; passes ``conditions``."""

    @functools.wraps(command)
    def wrapper(*args: Any, where: tuple[str, ...], min_age: float | None, **kwargs: Any) -> Any:
        try:
            conditions = [parse_where(w) for w in where]
        except AnfeError as exc:
            raise click.BadParameter(str(exc), param_hint="--where") from exc
        if min_age is not None:
            conditions.append(parse_where(f"age>={min_age:g}"))
        return command(*args, conditions=conditions, **kwargs)

    wrapper = click.option("--min-age", type=float, default=None,
                           help="Keep images whose 'age' label is at least this (same as --where age>=N).")(wrapper)
    return click.option("--where", multiple=True, metavar="EXPR",
                        help="Keep images whose label passes, e.g. age>=17 or race=Asian (repeatable).")(wrapper)


def _cache_options(command: Callable) -> Callable:
    """--cache and --workers for commands that analyse with a build's own parameters."""

    @functools.wraps(command)
    def wrapper(*args: Any, cache_path: str | None, workers: int | None, scheduler: str | None,
                **kwargs: Any) -> Any:
        return run_with_executor(command, args, {**kwargs, "cache_path": cache_location(cache_path)},
                                 workers, scheduler)

    wrapper = click.option("--scheduler", default=None, envvar="ANFE_SCHEDULER", metavar="ADDRESS",
                           help="Analyse on a Dask cluster: tcp://HOST:8786 (a running `dask scheduler`), "
                                "or `local` for a LocalCluster of --workers processes [env: ANFE_SCHEDULER].")(wrapper)
    wrapper = click.option("--workers", type=click.IntRange(1, None), default=None,
                           help="Processes for face analysis [default: all cores].")(wrapper)
    return click.option("--cache", "cache_path", default=None, metavar="FILE|URI",
                        help="Analysis cache: a file, or mongodb://HOST:27017/DB to share one between machines "
                             "[default: $ANFE_CACHE or ~/.cache/anfe/analysis.sqlite].")(wrapper)


def _root_option(command: Callable) -> Callable:
    return click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
                        help="Dataset root whose catalog.sqlite holds the builds (when no --db) [default: .].")(command)


def _open_existing_store(db: str | None, root: Path | None) -> Store:
    """The store named by --db, else the catalog of --root (which must exist: reading commands
    never create an empty store by accident)."""
    if db:
        return open_store(db)
    root = root or Path(".")
    if not (root / CATALOG_NAME).is_file():
        raise StoreError(
            f"no store at {root / CATALOG_NAME}: pass --db URI (or set ANFE_DB) or --root DATASET_DIR"
        )
    return open_store(None, root)


def _dataset_root(source: Path, labels: Path | None) -> Path:
    """Where the embedded store goes without --db: the dataset folder, or for a labels CSV the
    current folder (the default --root of evaluate/predict; the CSV's folder may be read-only)."""
    if labels is not None or not source.is_dir() or (source / "labels.csv").is_file():
        return Path(".")
    return source


def _get_build(build_id: str, db: str | None, root: Path | None) -> dict:
    """A build from the store, or a shipped build when no store of the user's has that id."""
    if is_shipped(build_id) and not db and not (root or Path(".")).joinpath(CATALOG_NAME).is_file():
        return load_shipped(build_id)
    with _open_existing_store(db, root) as store:
        if is_shipped(build_id) and build_id not in {b["id"] for b in store.list_builds()}:
            return load_shipped(build_id)
        return store.get_build(build_id)


# -- build ----------------------------------------------------------------------------------
@click.command()
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A labels CSV (path, gender, other labels...) instead of label folders.")
@click.option("--sizes", default="1000", show_default=True,
              help="Images per gender, comma-separated (1000,2K,...; 'all' = every usable image). One build each.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the random draw (recorded).")
@click.option("--variant", type=click.Choice(VARIANTS), default="mean", show_default=True,
              help="mean: one average per gender (the paper); kmeans: k centroids per gender; group-mean: the "
                   "mean of the per-group averages (--group-by); group-centroids: one average per group; "
                   "group-kmeans: k centroids per group; group-adaptive: a k per group, grown on validation where "
                   "the group is served worst. All nearest-centroid.")
@click.option("--k", "k_text", default="16", show_default=True, metavar="N|auto",
              help="Centroids per gender (kmeans) or per group (group-kmeans); auto: the best of --k-choices "
                   "on a validation part of the training images (never the test split).")
@click.option("--k-choices", default=",".join(map(str, DEFAULT_K_CANDIDATES)), show_default=True,
              help="The k tried by --k auto.")
@click.option("--group-by", default=None, metavar="COLUMN",
              help="The label column (e.g. race) the group variants group by; with --k auto the worst "
                   "group's validation accuracy chooses k.")
@click.option("--validation-fraction", type=click.FloatRange(0, 1, min_open=True, max_open=True),
              default=DEFAULT_VALIDATION_FRACTION, show_default=True,
              help="Part of the training images per gender that --k auto scores each k on.")
@click.option("--validation-folds", type=click.IntRange(1, None), default=1, show_default=True,
              help="More than 1: --k auto and group-adaptive score every training image once, across this many "
                   "folds (cross-validation), instead of one --validation-fraction part.")
@click.option("--test-fraction", type=click.FloatRange(0, 1, max_open=True), default=0.0, show_default=True,
              help="Hold back this part of each gender as the test split (recorded in the build; 0.3 = 70/30).")
@click.option("--split-seed", type=int, default=0, show_default=True, help="Seed of the held-out split.")
@click.option("--split-by", type=click.Choice(SPLIT_MODES), default="person", show_default=True,
              help="person: hold back whole people when the images name them (an identity/person column, "
                   "or the crawl's records), so no person is on both sides; photo: single photos at random.")
@click.option("--clamp", is_flag=True,
              help="A size larger than the usable images of a gender takes that gender's count for every gender "
                   "(with a warning; the build is named by it, e.g. g_16) instead of failing.")
@click.option("--prefix", default="g", show_default=True, help="Build id prefix: <prefix>_<size>[_k<k>].")
@_filter_options
@store_option
@analysis_options
@friendly_errors(hints={SizeTooLargeError: "use a smaller --sizes, --sizes all, or --clamp to take every "
                                          "image of a smaller gender",
                        MissingGroupError: "name it with --group-by COLUMN"})
def build(source: Path, labels: Path | None, sizes: str, seed: int, variant: str, k_text: str, k_choices: str,
          group_by: str | None, validation_fraction: float, validation_folds: int, test_fraction: float,
          split_seed: int, split_by: str, clamp: bool, prefix: str, conditions: list, db: str | None, params,
          cache_path, workers) -> None:
    """Make ANFE builds from SOURCE: draw N single-face images per gender, average their embeddings.

    SOURCE is a dataset root, a folder of label folders (<SOURCE>/male, <SOURCE>/female) or a
    labels CSV. Each size gives one build saved in the store as g_<N> (g_<N>_k<K> for k-means),
    with its seed, members, fingerprint, embedding parameters and the held-out split.

    Example (UTKFace adults, 70/30 split, the plain average and 16 centroids per gender):

      anfe build utkface/labels.csv --min-age 17 --test-fraction 0.3 --sizes all

      anfe build utkface/labels.csv --min-age 17 --test-fraction 0.3 --sizes all --variant kmeans --k 16

    Fairness variants (see the README): --variant group-kmeans --group-by race --k auto.
    """
    options = BuildOptions(tuple(parse_sizes(sizes)), seed, variant, parse_k(k_text), test_fraction, split_seed,
                           clamp, prefix, split_by, group_by, parse_candidates(k_choices), validation_fraction,
                           validation_folds)
    records = None
    if db and labels is None and source.is_dir():  # a dataset root whose records live in --db
        with open_store(db) as catalog:
            records = catalog.find_images(fields=PERSON_FIELDS)
    items = load_items(source, labels, conditions, records)
    dataset = {
        "source": str(source.resolve()),
        "labels": str(labels.resolve()) if labels else None,
        "filters": [str(c) for c in conditions],
    }
    with open_cache(cache_path, params) as cache:
        run = make_builds(items, options, params, cache, workers, dataset=dataset)
    made, stats = run.builds, run.stats
    with open_store(db, _dataset_root(source, labels)) as store:
        for doc in made:
            store.save_build(doc)
        where = store.uri
    skipped = made[0]["dataset"]["skipped"]
    click.echo(f"{len(items)} images ({stats.cached} from cache, {stats.analysed} analysed now); "
               f"not usable: {', '.join(f'{r} {n}' for r, n in skipped.items()) or 'none'}")
    if made[0]["split"]:
        split = made[0]["split"]
        people = split.get("test_people") or {}
        click.echo(f"held out for testing (by {split.get('by', 'photo')}): " + ", ".join(
            f"{n} {g}" + (f" ({people[g]} {'person' if people[g] == 1 else 'people'})" if g in people else "")
            for g, n in split["test_counts"].items())
            + " distinct photos, those without exactly one face included (evaluate scores them as unknown)")
    for warning in filter(None, map(small_build_warning, made)):  # before the builds' lines, which end the output
        click.echo(warning, err=True)
    for doc in made:
        counts = " + ".join(f"{n} {g}" for g, n in doc["counts"].items())
        chosen = doc.get("k_choice")
        per_group = doc.get("k_per_group")
        how = (f", k={chosen['chosen']} chosen on validation (by {chosen['by']})" if chosen and not per_group else "")
        if per_group:
            how = (f", k per {doc['group_by']} chosen on validation: "
                   + ", ".join(f"{v} {n}" for v, n in per_group.items()))
        click.echo(f"{doc['id']}: {counts}, seed {doc['seed']}, fingerprint {doc['fingerprint'][:12]}{how}, saved in {where}")


# -- builds list/show/delete ----------------------------------------------------------------
@click.group()
def builds() -> None:
    """List, show or delete the builds in a store."""


@builds.command("list")
@store_option
@_root_option
@friendly_errors
def list_builds(db: str | None, root: Path | None) -> None:
    """One line per build: id, variant, images per gender, seed, fingerprint, when made; then the
    builds shipped with anfe (what `anfe predict` uses without --build)."""
    docs: list[dict] = []
    if db or root is not None or Path(CATALOG_NAME).is_file():  # a store named but absent is an error
        with _open_existing_store(db, root) as store:
            docs = sorted(store.list_builds(), key=lambda d: build_sort_key(d["id"]))
    if not docs:
        click.echo("no builds of your own yet: make one with `anfe build SOURCE --sizes 1000`")
    for doc in [*docs, *({**b, "created": f"{b.get('created', '')}\tshipped with anfe"} for b in shipped_builds())]:
        counts = " + ".join(f"{n} {g}" for g, n in doc.get("counts", {}).items())
        variant = doc.get("variant", "mean") + (f" k={doc.get('k')}" if doc.get("variant") in ("kmeans", "group-kmeans") else "")
        click.echo(f"{doc['id']}\t{variant}\t{counts}\tseed {doc.get('seed')}\t"
                   f"{doc.get('fingerprint', '')[:12]}\t{doc.get('created', '')}")


@builds.command("show")
@click.argument("build_id")
@click.option("--full", is_flag=True, help="Include the member hashes, centroids and split hashes.")
@store_option
@_root_option
@friendly_errors
def show_build(build_id: str, full: bool, db: str | None, root: Path | None) -> None:
    """Print a build's provenance as JSON (without its long lists unless --full)."""
    doc = _get_build(build_id, db, root)
    click.echo(json.dumps(doc if full else summary(doc), indent=1))


@builds.command("delete")
@click.argument("build_id")
@store_option
@_root_option
@friendly_errors
def delete_build(build_id: str, db: str | None, root: Path | None) -> None:
    """Remove a build from the store (images and the analysis cache are untouched)."""
    with _open_existing_store(db, root) as store:
        store.delete_build(build_id)
    click.echo(f"deleted build {build_id}")


# -- evaluate -------------------------------------------------------------------------------
def _select_builds(store: Store, pattern: str) -> list[dict]:
    """Comma-separated ids or shell patterns (``g_*``) -> builds; an unknown id names the known ones."""
    known = [b["id"] for b in store.list_builds()]
    chosen: list[str] = []
    for part in [p.strip() for p in pattern.split(",") if p.strip()]:
        if any(ch in part for ch in "*?["):
            matches = fnmatch.filter(known, part)
            if not matches:
                raise UnknownBuildError(f"no build matches {part!r}; known builds: {', '.join(known) or 'none'}")
            chosen.extend(matches)
        else:
            chosen.append(part)
    docs = [store.get_build(i) for i in dict.fromkeys(chosen)]
    return sorted(docs, key=lambda d: (d.get("variant") or "", d.get("k") or 0, sum((d.get("counts") or {}).values())))


def _worst_text(worst: dict[str, dict[str, Any]]) -> str:
    """``worst race Asian 81.7% [77.0, 85.9], gap -13.5 pt [-18.1, -9.2]; worst age_band ...``."""
    parts = []
    for column, w in worst.items():
        if w["group"] is None:
            parts.append(f"worst {column}: no group of {w['min_group']}+ faces")
            continue
        parts.append(f"worst {column} {w['group']} {pct(w['balanced_accuracy'])} {pct_interval(w['interval'])}, "
                     f"gap {points(w['gap'])} {points_interval(w['gap_interval'])}")
    return "; ".join(parts)


def _left_out_notes(worst: dict[str, dict[str, Any]]) -> list[str]:
    """One note per column whose small groups were left out of the worst-group figure."""
    return [f"left out of the worst {column} (under {w['min_group']} decided faces, or a gender missing; --min-group): "
            + ", ".join(f"{v} ({n})" for v, n in w["left_out"].items())
            for column, w in worst.items() if w["left_out"]]


def _result_line(result: EvaluationResult, page: Path, worst: dict[str, dict[str, Any]] | None = None) -> str:
    """The summary line: balanced accuracy and per gender with 95% intervals, the worst group per
    label column with its gap to overall, the baselines, people and the leak check."""
    per = result.per_gender()
    parts = ", ".join(f"{g} {pct(v['accuracy'])} {pct_interval(v['interval'])}" for g, v in per.items())
    unknown = sum(v["images"] - v["decided"] for v in per.values())
    line = (f"{result.build_id}: balanced {pct(result.balanced_accuracy())} {pct_interval(result.balanced_interval())} "
            f"({parts}; unknown {unknown})")
    worst = result.worst_groups() if worst is None else worst
    if worst:
        line += "; " + _worst_text(worst)
    for name in ("logistic_regression", "knn"):
        if name in result.baselines:
            line += f"; {name.replace('_', ' ')} {pct(result.baselines[name]['balanced_accuracy'])}"
    people = result.per_person()
    if people:
        line += (f"; {people['test_people']} test people, per person balanced "
                 f"{pct(people['balanced_accuracy'])} {pct_interval(people.get('balanced_interval'))}")
    if result.leak:
        leak = result.leak
        line += f"; leak {leak['count']}/{leak['faces']} test faces within {leak['radius']:g} of a training face"
    return f"{line} -> {page}"


@click.command()
@click.argument("build_ids")
@click.argument("test_source", required=False, type=click.Path(exists=True, path_type=Path))
@click.option("--labels", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A labels CSV of the test set instead of TEST_SOURCE.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Report folder [default: ./reports/<build id>, or ./reports/sweep for several builds].")
@click.option("--baselines/--no-baselines", default=True, show_default=True,
              help="Also train logistic regression and kNN on the build's member embeddings.")
@click.option("--knn-k", type=click.IntRange(1, None), default=DEFAULT_KNN_K, show_default=True, help="Neighbours for the kNN baseline.")
@click.option("--max-distance", type=float, default=None,
              help="Count faces farther than this from every centroid as unknown [default: off].")
@click.option("--min-group", type=click.IntRange(1, None), default=DEFAULT_MIN_GROUP, show_default=True,
              help="Leave groups (a race, an age band...) with fewer decided test faces out of the worst-group "
                   "figures; the summary says which were left out.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary JSON (without per-image rows) to stdout.")
@_filter_options
@store_option
@_root_option
@_cache_options
@friendly_errors(hints={NoTestSplitError: "rebuild with --test-fraction 0.3, or give a test set (TEST_SOURCE or --labels)"})
def evaluate(build_ids: str, test_source: Path | None, labels: Path | None, out: Path | None, baselines: bool,
             knn_k: int, max_distance: float | None, min_group: int, as_json: bool, conditions: list, db: str | None,
             root: Path | None, cache_path: str | Path, workers: int) -> None:
    """Score builds on a test set and write a JSON + HTML report with plots.

    BUILD_IDS is one id, several (g_1000,g_2000) or a pattern ('g_*'); several builds also give
    an accuracy-against-training-size plot. Without TEST_SOURCE/--labels the test set is the
    build's recorded held-out split (from the dataset it was built from). The build's own members
    are never scored; images with no face or several faces count as "unknown". When the test set
    names people (an identity/person column, or a crawl's records), it also counts the test people
    and reports accuracy per person; the leak check counts test faces within 0.4 of a training face.
    Every accuracy carries its 95% interval (Wilson over photos; a bootstrap over people when the
    test set names them), and for each label column (race, age band...) the summary names the
    worst group of at least --min-group faces, with its gap to the overall balanced accuracy.
    The test images are analysed with the build's own recorded parameters (detector,
    upsampling...), so that they are embedded as its members were: hence no analysis options.
    """
    from anfe.models.report import write_report, write_sweep_report

    with _open_existing_store(db, root) as store:
        docs = _select_builds(store, build_ids)
    results = []
    loaded: dict[tuple, list[LabelledImage]] = {}
    given = None if test_source is None and labels is None else load_items(test_source, labels, conditions)
    for doc in docs:
        if given is None:
            test = test_set_for(doc, loaded)
            items, use_split, source_text = test.items, test.use_split, test.source
            if conditions:  # --where applies to the held-out split as to a given test set
                items = apply_filters(items, conditions)
                source_text += " where " + " and ".join(map(str, conditions))
        else:
            items, use_split, source_text = given, False, str(labels or test_source)
        params = params_from_build(doc)
        with AnalysisCache(cache_path, params.cache_key) as cache:
            results.append(evaluate_build(
                doc, items, params, cache, workers, use_split=use_split, baselines=baselines,
                knn_k=knn_k, max_distance=max_distance, test_source=source_text, min_group=min_group,
            ))
    if len(results) == 1:
        page = write_report(results[0], out or Path("reports") / results[0].build_id)
        pages = {results[0].build_id: page}
    else:
        base = out or Path("reports") / "sweep"
        page = write_sweep_report(results, base)
        pages = {r.build_id: base / r.build_id / "index.html" for r in results}
    if as_json:
        click.echo(json.dumps([r.to_dict(with_outcomes=False) for r in results], indent=1))
    for r in results:
        worst = r.worst_groups()
        click.echo(_result_line(r, pages[r.build_id], worst), err=as_json)
        for note in [*_left_out_notes(worst), *r.notes]:
            click.echo(f"  note: {note}", err=as_json)
        warning = small_build_warning(r.build)
        if warning:
            click.echo(f"  {warning}", err=True)
    if len(results) > 1:
        click.echo(f"sweep: {page}", err=as_json)


# -- predict --------------------------------------------------------------------------------
def _expand(paths: tuple[Path, ...]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES))
        else:
            files.append(path)
    return files


@click.command()
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--build", "build_id", default=None,
              help=f"The build to predict with, e.g. g_1000 [default: the shipped {DEFAULT_SHIPPED}, made from LFW].")
@click.option("--max-distance", type=float, default=None,
              help="Working range: a face farther than this from every centroid is 'unknown' "
                   "[default: the farthest training face of the build].")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per image.")
@store_option
@_root_option
@_cache_options
@friendly_errors
def predict(images: tuple[Path, ...], build_id: str | None, max_distance: float | None, as_json: bool,
            db: str | None, root: Path | None, cache_path: str | Path, workers: int) -> None:
    """Predict the gender of the face in each image (files or folders) with a build.

    Per face: the nearest gender, the distance to each gender's centroid and the margin between
    them. An image is "unknown" when it holds no face, several faces (each is listed with its
    box), or a face beyond the working range. Boxes are [top, right, bottom, left] in pixels.
    The images are analysed with the build's own recorded parameters (no analysis options).
    Without --build, --root and --db, the build shipped with anfe answers (and says so).
    """
    if build_id is None and db is None and root is None:
        doc = load_shipped(DEFAULT_SHIPPED)
        click.echo(describe(doc), err=True)
    elif build_id is None:
        raise click.UsageError(f"name the build with --build ID (see `anfe builds list`), or drop --root/--db "
                               f"to use the shipped {DEFAULT_SHIPPED}")
    else:
        doc = _get_build(build_id, db, root)
    build_id = doc["id"]
    warning = small_build_warning(doc)
    if warning:
        click.echo(warning, err=True)
    files = _expand(images)
    if not files:
        raise DatasetError("no image files found in the given folder(s)")
    params = params_from_build(doc)
    limit = default_max_distance(doc) if max_distance is None else max_distance
    with AnalysisCache(cache_path, params.cache_key) as cache:
        found = predict_paths(files, doc, params, cache, workers if isinstance(workers, Executor) else min(workers, len(files)), limit, progress=len(files) > 20)
    for p in found:
        click.echo(json.dumps({**p.to_dict(), "build": build_id, "max_distance": limit}) if as_json else p.describe())


__all__ = ["build", "builds", "evaluate", "predict"]
