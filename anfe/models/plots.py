"""PNG plots for the reports, drawn with matplotlib's Agg canvas (no display, no pyplot state)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, NullLocator, StrMethodFormatter


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def confusion_png(confusion: dict[str, dict[str, int]], path: Path) -> Path:
    """The confusion matrix as a labelled heat map (rows: true gender; columns: predicted)."""
    rows = list(confusion)
    cols = list(next(iter(confusion.values()))) if confusion else []
    values = [[confusion[r][c] for c in cols] for r in rows]
    figure = Figure(figsize=(1.6 + 1.3 * len(cols), 1.2 + 0.9 * len(rows)))
    ax = figure.add_subplot()
    ax.imshow(values, cmap="Blues")
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = max((max(r) for r in values), default=0)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            ax.text(j, i, str(v), ha="center", va="center", color="white" if v > top / 2 else "black")
    return _save(figure, path)


def distance_histogram_png(outcomes: Sequence[Any], path: Path) -> Path:
    """Distances to the own and to the other gender's centroid, for right and wrong predictions
    (the paper's Figure 7)."""
    figure = Figure(figsize=(9, 3.4))
    for index, (title, wanted) in enumerate((("right predictions", True), ("wrong predictions", False))):
        ax = figure.add_subplot(1, 2, index + 1)
        group = [o for o in outcomes if o.decided and o.right == wanted and o.own is not None]
        own = [o.own for o in group]
        other = [o.other for o in group if o.other is not None]
        bins = 30 if len(group) > 60 else 12
        if own:
            ax.hist(own, bins=bins, alpha=0.6, label=f"own centroid (mean {sum(own) / len(own):.3f})")
        if other:
            ax.hist(other, bins=bins, alpha=0.6, label=f"other centroid (mean {sum(other) / len(other):.3f})")
        ax.set_title(f"{title} (n={len(group)})")
        ax.set_xlabel("Euclidean distance")
        if own or other:
            ax.legend(fontsize=8)
    return _save(figure, path)


def breakdown_png(label: str, table: dict[str, dict[str, dict[str, Any]]], genders: Sequence[str], path: Path) -> Path:
    """Accuracy per value of one label (race, age band), one bar per gender."""
    values = list(table)
    figure = Figure(figsize=(max(4.5, 1.1 * len(values) * len(genders)), 3.4))
    ax = figure.add_subplot()
    width = 0.8 / max(1, len(genders))
    for gi, gender in enumerate(genders):
        heights = [100 * (table[v][gender]["accuracy"] or 0) for v in values]
        bars = ax.bar([i + gi * width for i in range(len(values))], heights, width, label=gender)
        for bar, v in zip(bars, values):
            ax.text(bar.get_x() + bar.get_width() / 2, bar.get_height() + 1,
                    f"{bar.get_height():.0f}\nn={table[v][gender]['decided']}", ha="center", fontsize=7)
    ax.set_xticks([i + width * (len(genders) - 1) / 2 for i in range(len(values))], values)
    ax.set_ylim(0, 115)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"accuracy by {label}")
    ax.legend(fontsize=8, loc="lower right")
    return _save(figure, path)


def _variant_name(row: dict[str, Any]) -> str:
    if row["variant"] == "mean":
        return "average"
    if row["variant"] == "kmeans":
        return f"k-means k={row['k']}"
    return f"{row['variant']} k={row['k']}" if (row.get("k") or 1) > 1 else str(row["variant"])


def sweep_png(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """:func:`sweep_figure` as a PNG at ``path``."""
    return _save(sweep_figure(rows), path)


def sweep_figure(rows: Sequence[dict[str, Any]]) -> Figure:
    """Accuracy against training images per gender, one line per variant and baseline (Figure 5),
    with 95% intervals as error bars, and the worst group of the first label column (race when
    the test set has it) as a dotted line per variant."""
    figure = Figure(figsize=(7.5, 4.4))
    ax = figure.add_subplot()
    series: dict[str, list[tuple[int, float, Any]]] = {}
    columns = list((rows[0].get("worst_groups") or {}) if rows else {})
    column = "race" if "race" in columns else (columns[0] if columns else None)
    for row in rows:
        name = _variant_name(row)
        if row["balanced_accuracy"] is not None:
            series.setdefault(name, []).append((row["per_gender_size"], 100 * row["balanced_accuracy"],
                                                row.get("balanced_interval")))
        worst = (row.get("worst_groups") or {}).get(column) if column else None
        if worst and worst.get("group") is not None:
            series.setdefault(f"{name}: worst {column}", []).append(
                (row["per_gender_size"], 100 * worst["balanced_accuracy"], worst.get("interval")))
        for base, value in (row.get("baselines") or {}).items():
            if base != "centroids" and value is not None and row["variant"] == "mean":
                series.setdefault(base.replace("_", " "), []).append((row["per_gender_size"], 100 * value, None))
    for name, found in series.items():
        found.sort(key=lambda p: p[0])
        xs, ys = [p[0] for p in found], [p[1] for p in found]
        low = [y - 100 * p[2][0] if p[2] else 0.0 for y, p in zip(ys, found)]
        high = [100 * p[2][1] - y if p[2] else 0.0 for y, p in zip(ys, found)]
        style = ":" if ": worst " in name else ("--" if name in ("logistic regression", "knn") else "-")
        ax.errorbar(xs, ys, yerr=[low, high], marker="o", label=name, linestyle=style, capsize=3)
    ax.set_xscale("log")
    # the sizes themselves as plain numbers (30, 100, 1000), not 3x10^1 at log-scale minor ticks
    sizes = sorted({int(p[0]) for found in series.values() for p in found})
    ax.xaxis.set_major_locator(FixedLocator(sizes))
    ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("training images per gender")
    ax.set_ylabel("balanced accuracy (%), 95% intervals")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return figure


__all__ = ["breakdown_png", "confusion_png", "distance_histogram_png", "sweep_figure", "sweep_png"]
