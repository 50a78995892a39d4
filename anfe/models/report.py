"""Write an evaluation as JSON (for machines) and as an HTML page with PNG plots and thumbnails.

The report folder is self-contained: ``result.json``, ``index.html``, the plots, and small
JPEG thumbnails of the misclassified images in ``thumbs/`` (originals are never copied).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from . import plots
from anfe.core.config import DEFAULT_MAX_PIXELS
from anfe.core.errors import ImageError
from .evaluation import EvaluationResult, sweep_table
from .fairness import pct_interval, points, points_interval
from anfe.faces.imaging import thumbnail_jpeg
from anfe.core.layout import write_atomically

log = logging.getLogger(__name__)
THUMB_SIDE = 128
MAX_GALLERY = 120


def _environment() -> Environment:
    env = Environment(loader=PackageLoader("anfe.models", "templates"), autoescape=select_autoescape(["html"]))
    env.filters["pct"] = lambda v: "n/a" if v is None else f"{100 * v:.1f}%"
    env.filters["num"] = lambda v: "n/a" if v is None else f"{v:.3f}"
    env.filters["ci"] = pct_interval
    env.filters["pts"] = points
    env.filters["ptsci"] = points_interval
    return env


def _thumbnail(source: str, target: Path) -> bool:
    """A small JPEG of ``source`` at ``target``; False when the image cannot be opened."""
    try:
        data = thumbnail_jpeg(source, THUMB_SIDE, DEFAULT_MAX_PIXELS)
    except (OSError, ImageError) as exc:  # a thumbnail is decoration: a bad file must not stop the report
        log.warning("no thumbnail for %s: %s", source, exc)
        return False
    write_atomically(target, data)
    return True


def _write_json(data: dict, path: Path) -> None:
    write_atomically(path, json.dumps(data, indent=1, sort_keys=False).encode("utf-8"))


def write_report(result: EvaluationResult, out_dir: str | Path) -> Path:
    """Write ``result.json``, the PNG plots, the gallery thumbnails and ``index.html``; return the page."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    data = result.to_dict()
    _write_json(data, out / "result.json")
    pictures = {
        "confusion": plots.confusion_png(data["confusion"], out / "confusion.png").name,
        "distances": plots.distance_histogram_png(result.outcomes, out / "distances.png").name,
    }
    breakdown_pngs = {
        label: plots.breakdown_png(label, table, result.genders, out / f"breakdown_{label}.png").name
        for label, table in data["breakdowns"].items()
    }
    gallery = []
    for index, o in enumerate(result.misclassified()[:MAX_GALLERY]):
        name = f"thumbs/{index:03d}_{(o.content_hash or 'x')[:12]}.jpg"
        if _thumbnail(o.path, out / name):
            gallery.append({"thumb": name, "outcome": o})
    page = _environment().get_template("report.html").render(
        r=data, pictures=pictures, breakdown_pngs=breakdown_pngs, gallery=gallery,
        wrong=len(result.misclassified()), max_gallery=MAX_GALLERY,
    )
    write_atomically(out / "index.html", page.encode("utf-8"))
    return out / "index.html"


def write_sweep_report(results: Sequence[EvaluationResult], out_dir: str | Path) -> Path:
    """One sub-report per build (``<out>/<build id>/``) plus ``sweep.json``, ``sweep.png`` and
    an ``index.html`` with accuracy against training size (the paper's Figure 5)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pages = {r.build_id: write_report(r, out / r.build_id).relative_to(out).as_posix() for r in results}
    rows = sweep_table(results)
    _write_json({"sweep": rows}, out / "sweep.json")
    plots.sweep_png(rows, out / "sweep.png")
    page = _environment().get_template("sweep.html").render(rows=rows, pages=pages)
    write_atomically(out / "index.html", page.encode("utf-8"))
    return out / "index.html"


__all__ = ["write_report", "write_sweep_report"]
