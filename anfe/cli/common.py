"""Options and error handling shared by every command of the ``anfe`` CLI (all layers use it)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click

from anfe.faces.batch import default_workers
from anfe.faces.cache import AnalysisCache
from anfe.core.paths import cache_location
from anfe.core.config import DEFAULT_MAX_PIXELS, DETECT_MODES, DETECTORS, DEVICES, ENCODERS, AnalysisParams
from anfe.core.errors import AnfeError, CacheUnreachableError, StoreUnreachableError


def analysis_options(command: Callable) -> Callable:
    """Adds --detector/--detect/--upsample/--max-side/--jitters/--encoder/--device/--cache/--workers; passes ``params``,
    ``cache_path`` and ``workers`` to the command."""
    options = [
        click.option("--detector", type=click.Choice(list(DETECTORS)), default="hog", show_default=True,
                     help="Face detector: dlib's HOG (fast on CPUs), its CNN (more poses) on ONNX Runtime "
                          "(CUDA with --device auto/cuda when present; dlib's boxes), or cnn-dlib: dlib's "
                          "own CNN code (the reference, slow on CPUs)."),
        click.option("--detect", type=click.Choice(list(DETECT_MODES)), default=AnalysisParams.detect,
                     show_default=True,
                     help="HOG: 'sized' skips the scales that only find faces smaller than --min-face px "
                          "or --min-face-share of the shorter side (larger faces keep exactly dlib's "
                          "boxes); 'exact' scans every scale (the reference)."),
        click.option("--min-face", type=click.IntRange(1, None), default=AnalysisParams.min_face,
                     show_default=True, help="--detect sized: the smallest face that counts, in pixels."),
        click.option("--min-face-share", type=click.FloatRange(0.0, 1.0, max_open=True),
                     default=AnalysisParams.min_face_share, show_default=True,
                     help="--detect sized: ... or this share of the photo's shorter side, if larger."),
        click.option("--upsample", type=click.IntRange(0, 4), default=1, show_default=True,
                     help="Times the image is doubled before detection (finds smaller faces)."),
        click.option("--max-side", type=click.IntRange(64, None), default=None,
                     help="Scale images whose longer side exceeds this down for detection only."),
        click.option("--jitters", type=click.IntRange(1, 100), default=1, show_default=True,
                     help="Re-sample each face this many times for its embedding (slower, steadier)."),
        click.option("--encoder", type=click.Choice(list(ENCODERS)), default="onnx", show_default=True,
                     help="Embedding encoder: dlib's network on ONNX Runtime (fast, batched) or "
                          "dlib's own (the reference; same numbers). --jitters > 1 uses dlib's."),
        click.option("--device", type=click.Choice(list(DEVICES)), default="auto", show_default=True,
                     help="Where the ONNX encoder and CNN detector run: auto uses CUDA when onnxruntime-gpu and a "
                          "CUDA device are present, else the CPU."),
        click.option("--max-pixels", type=click.IntRange(1, None), default=DEFAULT_MAX_PIXELS, show_default=True,
                     help="Refuse images with more pixels than this (decompression bombs)."),
        click.option("--cache", "cache_path", default=None, metavar="FILE|URI",
                     help="Analysis cache: a file, or mongodb://HOST:27017/DB to share one between machines "
                          "[default: $ANFE_CACHE or ~/.cache/anfe/analysis.sqlite]."),
        click.option("--workers", type=click.IntRange(1, None), default=None,
                     help="Processes for face analysis [default: all cores]."),
        click.option("--scheduler", default=None, envvar="ANFE_SCHEDULER", metavar="ADDRESS",
                     help="Analyse on a Dask cluster: tcp://HOST:8786 (a running `dask scheduler`), or "
                          "`local` for a LocalCluster of --workers processes [env: ANFE_SCHEDULER]."),
    ]

    @functools.wraps(command)
    def wrapper(*args: Any, detector: str, detect: str, min_face: int, min_face_share: float,
                upsample: int, max_side: int | None, jitters: int,
                encoder: str, device: str, max_pixels: int, cache_path: str | None,
                workers: int | None, scheduler: str | None, **kwargs: Any) -> Any:
        if device == "cuda":  # asked for explicitly: a missing GPU is an error, not a fallback
            from anfe.faces.onnxnet import EncoderUnavailableError, providers_for

            try:
                providers_for(device)
            except EncoderUnavailableError as exc:
                raise click.ClickException(f"{exc}, or use --device cpu") from exc
        kwargs["params"] = AnalysisParams(detector, upsample, max_side, jitters, max_pixels,
                                          encoder, device, detect=detect, min_face=min_face,
                                          min_face_share=min_face_share)
        kwargs["cache_path"] = cache_location(cache_path)
        return run_with_executor(command, args, kwargs, workers, scheduler)

    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


def run_with_executor(command: Callable, args: tuple, kwargs: dict, workers: int | None,
                      scheduler: str | None) -> Any:
    """Call ``command`` with ``workers``: a number of processes here, or, with ``--scheduler``, a
    Dask executor (closed, and a local cluster stopped, when the command returns)."""
    if not scheduler:
        return command(*args, workers=workers or default_workers(), **kwargs)
    from anfe.faces.executor import SchedulerError, make_executor

    try:
        executor = make_executor(workers or default_workers(), scheduler)
    except SchedulerError as exc:
        raise click.ClickException(f"{exc}: start `dask scheduler` there, or use --scheduler local") from exc
    with executor:
        return command(*args, workers=executor, **kwargs)


def open_cache(cache_path: str | Path, params: AnalysisParams) -> AnalysisCache:
    """The analysis cache at ``cache_path`` (a file or a mongodb:// URI) for these parameters."""
    return AnalysisCache(cache_path, params.cache_key)


def store_option(command: Callable) -> Callable:
    """Adds ``--db URI`` (passed as ``db``): the store; default the dataset's embedded file."""
    return click.option(
        "--db", "db", envvar="ANFE_DB", default=None, metavar="URI",
        help="Store URI: sqlite:///path/catalog.sqlite or mongodb://host:27017/anfe "
             "[default: $ANFE_DB, else catalog.sqlite in the dataset root].",
    )(command)


#: Hints every command adds: the store is named by ``--db``, the cache by ``--cache``.
COMMON_HINTS: Mapping[type[AnfeError], str] = {StoreUnreachableError: "--db URI (or ANFE_DB) names it",
                                                CacheUnreachableError: "--cache (or ANFE_CACHE) names it"}


def friendly_errors(command: Callable | None = None, *,
                    hints: Mapping[type[AnfeError], str] | None = None) -> Callable:
    """Turns the library's precise exceptions into one-line ``Error: ...`` messages (exit 1).

    The library says what is wrong; ``hints`` (error class -> what to type) lets a command add
    the flag that fixes it, so library messages never name CLI options. Use as
    ``@friendly_errors`` or ``@friendly_errors(hints={SizeTooLargeError: "use --clamp"})``.
    """
    if command is None:
        return functools.partial(friendly_errors, hints=hints)
    table = {**dict(hints or {}), **COMMON_HINTS}

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except AnfeError as exc:
            hint = next((text for kind, text in table.items() if isinstance(exc, kind)), None)
            raise click.ClickException(f"{exc}: {hint}" if hint else str(exc)) from exc
        except KeyboardInterrupt:
            raise click.ClickException("interrupted: run the same command again to resume") from None

    return wrapper


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
