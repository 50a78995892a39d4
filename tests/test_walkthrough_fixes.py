"""What a new user tripped on in the README walkthrough (issue 26, items 1-4 and 6-8): each test
fails on the code before the fix."""

from __future__ import annotations

import csv
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from anfe.cli.app import cli
from anfe.models.evaluation import EvaluationResult, Outcome
from anfe.models.fairness import MIN_PEOPLE, Resampler
from anfe.models.plots import sweep_figure

REPO = Path(__file__).resolve().parents[1]


def _run(*args):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _outcomes(people_per_gender: int, photos: int = 3, site: str | None = None) -> list[Outcome]:
    found = []
    for gender, other in (("female", "male"), ("male", "female")):
        for p in range(people_per_gender):
            for i in range(photos):
                labels = {"identity": f"{gender}-{p}", **({"site": site} if site else {})}
                found.append(Outcome(f"{gender}{p}_{i}.jpg", f"{gender}{p}{i}", gender,
                                     gender if (p + i) % 2 == 0 else other, None,
                                     {gender: 0.5, other: 0.6}, labels))
    return found


def _result(outcomes: list[Outcome]) -> EvaluationResult:
    return EvaluationResult({"id": "g_3", "counts": {"female": 3, "male": 3}}, ["female", "male"], outcomes)


# -- item 1: no zero-width intervals from one person per gender ----------------------------------
def test_one_person_per_gender_gets_no_interval_and_a_note():
    result = _result(_outcomes(1))
    assert result.balanced_accuracy() is not None
    assert result.balanced_interval() is None  # was a zero-width interval: a certainty the data does not hold
    assert all(v["interval"] is None for v in result.per_gender().values())
    assert result.too_few_people_note().startswith("too few test people for a 95% interval (1 female, 1 male;")
    many = _result(_outcomes(MIN_PEOPLE))
    low, high = many.balanced_interval()
    assert low < many.balanced_accuracy() < high and many.too_few_people_note() is None
    resampler = Resampler(["female", "male"], [True, False], ["female", "male"], ["a", "b"])
    assert resampler.too_few_people() and resampler.balanced() is None and resampler.gap(np.ones(2, bool)) is None


# -- item 8: a label column with one value is no "worst group" -----------------------------------
def test_a_single_value_column_is_not_a_worst_group():
    result = _result(_outcomes(MIN_PEOPLE, photos=8, site="demo"))
    assert "site" in result.breakdowns()
    assert "site" not in result.worst_groups()


# -- item 8: plain numbers on the sweep's x axis -------------------------------------------------
def test_sweep_axis_reads_plain_numbers():
    rows = [{"build": f"g_{n}", "variant": "mean", "k": 1, "per_gender_size": n, "balanced_accuracy": 0.9,
             "balanced_interval": (0.85, 0.95), "worst_groups": {}, "baselines": {}} for n in (30, 40, 60, 1000)]
    figure = sweep_figure(rows)
    figure.canvas.draw()
    axis = figure.axes[0].xaxis
    assert [t.get_text() for t in axis.get_ticklabels()] == ["30", "40", "60", "1,000"]
    assert not [t.get_text() for t in axis.get_ticklabels(minor=True) if t.get_text()]


# -- item 6: a short prefix -----------------------------------------------------------------------
def test_restore_with_a_short_prefix_says_it_needs_eight_digits(tmp_path):
    (tmp_path / "data" / "images" / "male").mkdir(parents=True)
    result = _run("restore", tmp_path / "data", "2587")
    assert result.exit_code == 1
    assert "2587: a content-hash prefix needs 8+ hex digits (it has 4)" in result.output


# -- item 7: outputs land in ignored folders -----------------------------------------------------
def test_demo_and_report_outputs_are_git_ignored():
    found = subprocess.run(["git", "-C", str(REPO), "check-ignore", "demo-out/data/x.jpg", "reports/g_3/index.html"],
                           capture_output=True, text=True)
    assert found.stdout.split() == ["demo-out/data/x.jpg", "reports/g_3/index.html"], found


# -- item 4: demo --db checks the store first and leaves nothing --------------------------------
@pytest.mark.slow
def test_demo_with_an_unreachable_db_fails_before_writing(shared_faces, tmp_path):
    out = tmp_path / "demo"
    result = _run("demo", "--source", shared_faces / "utkface", "--out", out, "--db", "mongodb://127.0.0.1:1/x",
                  "--quiet")
    assert result.exit_code == 1
    assert "127.0.0.1:1" in result.output and "crawl.log" not in result.output
    assert not out.exists()


# -- item 2: --where is applied to the held-out split, or refused --------------------------------
@pytest.mark.slow
def test_where_on_the_held_out_split_is_applied_or_refused(utkface_adult_items, tmp_path, session_cache_path):
    labels = tmp_path / "labels.csv"
    with labels.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "gender", "age", "race"])
        for item in utkface_adult_items:
            writer.writerow([item.path, item.gender, item.labels["age"], item.labels["race"]])
    common = ("--db", tmp_path / "catalog.sqlite", "--cache", session_cache_path, "--workers", "1")
    built = _run("build", labels, "--sizes", "3", "--test-fraction", "0.5", *common)
    assert built.exit_code == 0, built.output
    assert "warning: g_3 holds only 3" in built.output
    plain = _run("evaluate", "g_3", "--no-baselines", "--out", tmp_path / "r0", *common)
    assert plain.exit_code == 0, plain.output
    assert "warning: g_3 holds only 3" in plain.output
    white = _run("evaluate", "g_3", "--no-baselines", "--out", tmp_path / "r1", "--where", "race=White", *common)
    assert white.exit_code == 0, white.output
    scored = lambda folder: json.loads((tmp_path / folder / "result.json").read_text())  # noqa: E731
    assert 0 < scored("r1")["images"] < scored("r0")["images"]  # was the same: the filter was ignored
    assert scored("r1")["test_source"].endswith("where race=White")
    for where, message in (("race=Nope", "no image passes the filter(s) race=Nope"),
                           ("colour=red", "no image has a 'colour' label to filter on"),
                           ("age>>17", "cannot read the filter 'age>>17'")):
        refused = _run("evaluate", "g_3", "--no-baselines", "--out", tmp_path / "r2", "--where", where, *common)
        assert refused.exit_code != 0 and message in refused.output, (where, refused.output)
        assert len([line for line in refused.output.splitlines() if line.startswith("Error:")]) == 1


# -- item 8: the report's tables fit a 1280 px window ---------------------------------------------
def _sweep_results() -> list[EvaluationResult]:
    """Six builds scored on 40 people per gender with a race, an age and a site column."""
    races = ("Asian", "Black", "Indian", "Others", "White")
    results = []
    for size in (3, 10, 30, 100, 300, 1000):
        outcomes = []
        for gender, other in (("female", "male"), ("male", "female")):
            for p in range(40):
                labels = {"identity": f"{gender}-{p}", "race": races[p % 5], "age": str(18 + p), "site": "demo"}
                outcomes.append(Outcome(f"{gender}{p}.jpg", f"{gender}{p}", gender, gender if p % 7 else other,
                                        None, {gender: 0.5, other: 0.6}, labels))
        results.append(EvaluationResult({"id": f"g_{size}", "variant": "mean", "k": 1, "seed": 0,
                                         "counts": {"female": size, "male": size}, "fingerprint": "f" * 64,
                                         "created": "now"},
                                        ["female", "male"], outcomes, baselines={
                                            name: {"balanced_accuracy": 0.95, "accuracy": {"female": 0.94, "male": 0.96},
                                                   "params": {"k": 15}} for name in ("logistic_regression", "knn")}))
    return results


@pytest.mark.slow
@pytest.mark.browser
def test_report_tables_fit_a_1280_px_window(tmp_path):
    from anfe.models.report import write_sweep_report
    from testkit.browser import CHROMIUM, CHROMIUM_ARGS

    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    page_path = write_sweep_report(_sweep_results(), tmp_path / "sweep")
    widths = {}
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for name, path in (("sweep", page_path), ("build", tmp_path / "sweep" / "g_3" / "index.html")):
            page.goto(path.as_uri())
            widths[name] = page.evaluate(
                "() => [document.documentElement.scrollWidth,"
                " Math.max(...[...document.querySelectorAll('table')].map(t => t.scrollWidth))]")
        browser.close()
    assert all(page_width <= 1280 and table <= 1280 for page_width, table in widths.values()), widths
