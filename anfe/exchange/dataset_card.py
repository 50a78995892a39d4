"""The dataset card of an export: ``README.md`` with the YAML header Hugging Face reads, and the
answers a datasheet of a scraped face dataset owes (Gebru et al., "Datasheets for Datasets"): what
was collected, from where and when, what the filters and the reviewers took out, the counts per
gender, site and group, the known gaps, and consent and licensing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from .export import ExportResult
from anfe.core.store import now_iso

_SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


def _size_category(n: int) -> str:
    return next((name for limit, name in _SIZES if n < limit), "n>1M")


def _table(title: str, counts: Mapping[str, int]) -> str:
    if not counts:
        return f"**{title}**: none recorded.\n"
    lines = [f"| {title} | photos |", "|---|---:|"]
    lines += [f"| {k} | {v} |" for k, v in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    return "\n".join(lines) + "\n"


def _yaml_list(name: str, values: Iterable[str]) -> list[str]:
    return [f"{name}:", *(f"- {v}" for v in values)]


def _crawls(records: list[dict]) -> dict[str, dict[str, Any]]:
    """Per site: first and last fetch (or import) time and the spiders (profiles) that brought it."""
    out: dict[str, dict[str, Any]] = {}
    for r in records:
        site = r.get("site") or "unknown"
        entry = out.setdefault(site, {"first": None, "last": None, "spiders": set(), "photos": 0})
        when = r.get("fetched_at") or r.get("imported_at")
        if when:
            entry["first"] = min(filter(None, [entry["first"], when]))
            entry["last"] = max(filter(None, [entry["last"], when]))
        entry["spiders"].add(r.get("spider") or r.get("source") or "unknown")
        entry["photos"] += 1
    return out


def _gaps(result: ExportResult, by_gender: Counter, by_site: dict[str, Counter]) -> list[str]:
    """Plain statements of what the export lacks, measured on its rows."""
    rows = [r for rows in result.rows.values() for r in rows]
    gaps = []
    if by_gender and min(by_gender.values()) < 0.8 * max(by_gender.values()):
        gaps.append("The genders are unbalanced: " + ", ".join(f"{n} {g}" for g, n in sorted(by_gender.items())) + ".")
    for column in ("person", "age", "race", "face_box", "source_url"):
        missing = sum(r.get(column) in (None, "") for r in rows)
        if missing:
            gaps.append(f"{missing} of {len(rows)} photos have no {column.replace('_', ' ')}.")
    for site, genders in sorted(by_site.items()):
        if len(genders) == 1:
            gaps.append(f"Every photo of {site} is {next(iter(genders))}: the site cannot be told apart from the label.")
    gaps.append("Two labels only (female, male), as the sites state them: no one's own words about their "
                "gender, and nothing for people outside the two.")
    gaps.append("Celebrities, as the sites photograph them: posed, made up, well lit, mostly adults; not a "
                "sample of any population.")
    return gaps


def dataset_card(result: ExportResult, records: list[dict], decisions: list[dict], name: str) -> str:
    """The card's Markdown with its YAML header."""
    rows = [r for rows in result.rows.values() for r in rows]
    by_gender = Counter(r["label"] for r in rows)
    by_site_gender: dict[str, Counter] = {}
    for r in rows:
        by_site_gender.setdefault(r.get("site") or "unknown", Counter())[r["label"]] += 1
    quarantined = Counter(r.get("quarantine_reason") or "unknown" for r in records
                          if r.get("status") in ("quarantined", "review") or r.get("quarantine_reason"))
    actions = Counter(d.get("action") or "unknown" for d in decisions)
    header = [
        "---", f"pretty_name: {name}", "license: other",
        "license_details: The photos' rights stay with their owners; see Consent and licensing.",
        *_yaml_list("task_categories", ["image-classification"]),
        *_yaml_list("tags", ["faces", "gender", "anfe"]),
        *_yaml_list("size_categories", [_size_category(len(rows))]),
        "configs:", "- config_name: default", "  data_dir: .", "---", "",
    ]
    body = [f"# {name}", "",
            f"A gender-labelled face dataset exported by anfe on {now_iso()}: {len(rows)} photos "
            f"({', '.join(f'{n} {s}' for s, n in sorted(Counter(k for k in result.rows for _ in result.rows[k]).items()))}).",
            "", "Load it with:", "", "```python", "import datasets",
            'ds = datasets.load_dataset("imagefolder", data_dir="PATH/TO/THIS/FOLDER")', "```", "",
            "The `label` is the gender (the photo's folder); the other columns: "
            + ", ".join(f"`{c}`" for c in ("person", "site", "source_url", "page_url", "face_box", "age", "race",
                                          *result.group_columns, "content_hash", "status", "quarantine_reason"))
            + ". `face_box` is [top, right, bottom, left] in pixels of the one face dlib found (empty when the "
            "photo was not analysed with the default parameters or holds no single face); `content_hash` is "
            "the SHA-256 of the file.", "",
            "## Counts", "", _table("gender", by_gender), _table("site", Counter(r.get("site") or "unknown" for r in rows))]
    for column in ("race", *result.group_columns):
        values = Counter(str(r[column]) for r in rows if r.get(column) not in (None, ""))
        if values:
            body.append(_table(column, values))
    ages = [r["age"] for r in rows if r.get("age") is not None]
    if ages:
        body.append(f"Ages known for {len(ages)} photos: {min(ages):g} to {max(ages):g}.\n")
    body += ["## Collection", "", "| site | photos | first | last | spiders or source |", "|---|---:|---|---|---|"]
    for site, c in sorted(_crawls(records).items()):
        body.append(f"| {site} | {c['photos']} | {c['first'] or ''} | {c['last'] or ''} | {', '.join(sorted(c['spiders']))} |")
    body += ["", "## Filters and review", "",
             "Automatic filters (anfe clean) and reviewers moved photos to quarantine with a reason; "
             + ("they are included here, with `status` and `quarantine_reason`." if any(r["status"] != "active" for r in rows)
                else "they are left out of this export (`anfe export --include-quarantine` adds them)."), "",
             _table("quarantine reason", quarantined), _table("review decision", actions),
             "## Known gaps", "", *[f"- {g}" for g in _gaps(result, by_gender, by_site_gender)], "",
             "## Consent and licensing", "",
             "The photos were published by the sites named above (or came from the labelled set they were "
             "imported from). Their copyright and the personality rights of the people shown stay with their "
             "owners; this export grants no licence to them. The people shown did not consent to this dataset. "
             "Use it for research on face analysis and its biases only, keep the source URLs with every copy, "
             "and remove a photo when its owner or the person shown asks.", ""]
    return "\n".join(header + body)


__all__ = ["dataset_card"]
