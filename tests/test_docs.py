"""The README stays a short front page with a map of the guides, the reference is current, and
the benchmarks page holds one row per claim with the machine and the command."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_the_reference_is_generated_from_the_commands_and_current():
    # In a fresh process: click caches each command's help option as first asked for, and other
    # tests invoke commands on their own (without the group's -h).
    generated = subprocess.run([sys.executable, "-m", "testkit.reference"], capture_output=True, text=True,
                               check=True, timeout=120).stdout
    assert (DOCS / "reference.md").read_text(encoding="utf-8") == generated, (
        "docs/reference.md is out of date: python -m testkit.reference > docs/reference.md")


def test_the_readme_is_short_and_maps_every_guide():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) < 200
    linked = set(re.findall(r"\]\((docs/[\w.-]+\.md)\)", text))
    assert all((ROOT / link).is_file() for link in linked), linked
    assert {f"docs/{p.name}" for p in DOCS.glob("*.md")} <= linked
    for command in ('pip install -e ".[dev]"', "\npytest\n", 'pytest -m "not slow"', "anfe demo", "<!-- walkthrough -->"):
        assert command in text, command


def test_every_link_between_the_guides_points_at_a_file():
    for page in [ROOT / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+\.md)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            assert (page.parent / target).is_file(), f"{page.name} links to {target}"


def test_the_benchmarks_hold_one_row_per_claim_with_machine_and_command():
    rows = [line for line in (DOCS / "benchmarks.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("| ") and not line.startswith(("| claim", "| ---"))]
    assert len(rows) >= 20
    for row in rows:
        claim, figure, machine, command = [cell.strip() for cell in row.strip("|").split(" | ")]
        assert claim and figure and machine, row
        assert command.startswith(("`", "the same")), row
        assert not re.search(r"\b(issue|target|before|today|previous)\b", row, re.I), row
