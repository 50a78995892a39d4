"""Show a cleaning run: a plain-text summary table (counts by rule and gender) for the terminal
and a self-contained HTML page with sample thumbnails per rule (``<root>/reports/cleaning.html``).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from anfe.core.config import DEFAULT_MAX_PIXELS
from anfe.faces.imaging import thumbnail_data_url
from anfe.core.layout import write_atomically
from anfe.core.store import now_iso

from .clean import CleanReport
from .rules import RULES

THUMB_SIDE = 128
SAMPLES_PER_RULE = 12


def summary_table(report: CleanReport) -> str:
    """Counts by rule (rows) and gender (columns), with totals and the kept images."""
    genders = report.genders
    rejected = {g: sum(r.gender == g for r in report.rejections) for g in genders}
    rows = [["rule", *genders, "total"]]
    for reason, row in [*report.counts().items(), ("rejected", rejected), ("kept", report.kept)]:
        rows.append([reason, *(str(row.get(g, 0)) for g in genders), str(sum(row.values()))])
    widths = [max(len(line[i]) for line in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in rows]
    rule = "  ".join("-" * w for w in widths)
    return "\n".join([lines[0], rule, *lines[1:-2], rule, *lines[-2:]])


def write_html(report: CleanReport, path: str | Path | None = None) -> Path:
    """Write the HTML page (default ``<root>/reports/cleaning.html``) and return its path."""
    path = Path(path) if path else report.root / "reports" / "cleaning.html"
    env = Environment(loader=PackageLoader("curation", "templates"), autoescape=select_autoescape(["html"]))
    galleries: dict[str, list[dict]] = {}
    for r in report.rejections:
        chosen = galleries.setdefault(r.reason, [])
        if len(chosen) < SAMPLES_PER_RULE:
            thumb = thumbnail_data_url(r.moved_to or r.path, THUMB_SIDE, DEFAULT_MAX_PIXELS, quality=80)
            chosen.append({"name": r.path.name, "gender": r.gender, "detail": r.detail, "thumb": thumb})
    page = env.get_template("cleaning.html").render(
        root=report.root, dry_run=report.dry_run, scanned=report.scanned, made=now_iso(),
        kept=report.kept, kept_total=sum(report.kept.values()), rejected_total=len(report.rejections),
        genders=report.genders, counts=report.counts(), galleries=galleries,
        helps={r.reason: r.help for r in RULES}, settings=asdict(report.rules),
        repaired=report.repaired, skipped=report.skipped,
    )
    write_atomically(path, page.encode("utf-8"))
    return path
