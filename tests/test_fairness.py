"""Intervals, the worst group (and --min-group), and the classifier-free fairness build variants on
a small real UTKFace sample (the session cache makes the analysis a one-off)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from anfe.faces.batch import analyse_paths
from anfe.models.builds import BuildOptions, builds_from_analyses
from anfe.faces.cache import AnalysisCache
from anfe.models.centroids import choose_k, fit_gender, parse_k
from anfe.cli.commands import build as build_command
from anfe.cli.commands import evaluate as evaluate_command
from anfe.core.config import AnalysisParams
from anfe.core.errors import DatasetError
from anfe.models.evaluation import EvaluationResult, Outcome, evaluate_build
from anfe.models.fairness import BOOT_PEOPLE, BOOT_PHOTOS, Judged, Resampler, wilson, worst_group
from anfe.models.report import write_report, write_sweep_report

PARAMS = AnalysisParams()


# -- the interval maths ---------------------------------------------------------------------------
@pytest.mark.parametrize("right,total,low,high", [
    (5, 10, 0.2366, 0.7634),     # textbook values (e.g. Newcombe 1998, Agresti & Coull 1998)
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (81, 263, 0.2553, 0.3662),   # Wikipedia's worked example of the Wilson score interval
    (1, 1, 0.2065, 1.0),
])
def test_wilson_matches_known_values(right, total, low, high):
    got = wilson(right, total)
    assert got == pytest.approx((low, high), abs=5e-5)


def test_wilson_of_nothing_is_none_and_shrinks_with_n():
    assert wilson(0, 0) is None
    widths = [np.subtract(*wilson(int(0.9 * n), n)[::-1]) for n in (10, 100, 1000)]
    assert widths[0] > widths[1] > widths[2]


def _outcome(i: int, gender: str, right: bool, race: str, person: str | None = None) -> Outcome:
    other = "female" if gender == "male" else "male"
    labels = {"race": race, **({"identity": person} if person else {})}
    return Outcome(f"p{i}.jpg", f"h{i}", gender, gender if right else other, None, {}, labels)


def _outcomes(spec: dict[tuple[str, str], tuple[int, int]], people: int = 0) -> list[Outcome]:
    """(race, gender) -> (right, total) as outcomes; with ``people`` > 0 every run of that many
    photos of a cell is one person."""
    out, i = [], 0
    for (race, gender), (right, total) in spec.items():
        for j in range(total):
            person = f"{race}-{gender}-{j // people}" if people else None
            out.append(_outcome(i, gender, j < right, race, person))
            i += 1
    return out


SPEC = {("A", "male"): (60, 100), ("A", "female"): (99, 100), ("B", "male"): (195, 200),
        ("B", "female"): (190, 200), ("C", "male"): (10, 20), ("C", "female"): (5, 5)}


def test_bootstrap_is_seeded_and_covers_the_estimate():
    result = EvaluationResult({"id": "t"}, ["female", "male"], _outcomes(SPEC))
    low, high = result.balanced_interval()
    assert low < result.balanced_accuracy() < high
    again = EvaluationResult({"id": "t"}, ["female", "male"], _outcomes(SPEC))
    assert again.balanced_interval() == (low, high)
    assert result.to_dict()["interval_method"] == {"shares": "wilson", "balanced": BOOT_PHOTOS, "level": 0.95}
    # per gender: Wilson over photos
    male = result.per_gender()["male"]
    assert male["interval"] == pytest.approx(wilson(male["right"], male["decided"]))


def test_bootstrap_over_people_is_wider_when_photos_of_a_person_agree():
    genders = ["female", "male"]
    photos = EvaluationResult({"id": "t"}, genders, _outcomes(SPEC))
    people = EvaluationResult({"id": "t"}, genders, _outcomes(SPEC, people=5))
    assert people.resampler.by_people and people.interval_method == BOOT_PEOPLE
    width = lambda iv: iv[1] - iv[0]  # noqa: E731
    assert width(people.balanced_interval()) > width(photos.balanced_interval())
    assert width(people.per_gender()["male"]["interval"]) > width(photos.per_gender()["male"]["interval"])


def test_resampler_keeps_each_gender_count():
    sampler = Resampler(["m"] * 7 + ["f"] * 3, [True] * 10, ["f", "m"], replicates=50)
    truth = np.array(["m"] * 7 + ["f"] * 3)
    assert (sampler.weights[:, truth == "m"].sum(axis=1) == 7).all()
    assert (sampler.weights[:, truth == "f"].sum(axis=1) == 3).all()


# -- the worst group and --min-group ---------------------------------------------------------------
def test_worst_group_leaves_out_small_groups_and_says_which():
    groups = [Judged("A", 200, 0.795, None), Judged("B", 400, 0.9625, None), Judged("C", 25, 0.75, None),
              Judged("D", 50, None, None)]
    worst, left_out = worst_group(groups, 30)
    assert worst.value == "A" and left_out == {"C": 25, "D": 50}
    worst, left_out = worst_group(groups, 20)
    assert worst.value == "C" and left_out == {"D": 50}
    assert worst_group(groups, 1000) == (None, {"A": 200, "B": 400, "C": 25, "D": 50})


def test_worst_groups_of_an_evaluation():
    result = EvaluationResult({"id": "t"}, ["female", "male"], _outcomes(SPEC))
    race = result.worst_groups()["race"]
    assert race["group"] == "A" and race["left_out"] == {"C": 25}
    assert race["balanced_accuracy"] == pytest.approx((0.6 + 0.99) / 2)
    assert race["gap"] == pytest.approx(race["balanced_accuracy"] - result.balanced_accuracy())
    assert race["interval"][0] < race["balanced_accuracy"] < race["interval"][1]
    assert race["gap_interval"][0] < race["gap"] < race["gap_interval"][1] < 0
    cell = result.breakdowns()["race"]["A"]["male"]
    assert cell["interval"] == pytest.approx(wilson(60, 100))
    result.min_group = 20
    assert result.worst_groups()["race"]["group"] == "C"


# -- on real photos ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def analysed(utkface_adult_items, session_cache_path):
    with AnalysisCache(session_cache_path, PARAMS.cache_key) as cache:
        analyses, _ = analyse_paths([i.path for i in utkface_adult_items], PARAMS, cache, 2, progress=False)
    return utkface_adult_items, analyses


def _one(items, analyses, **options):
    (made,) = builds_from_analyses(items, analyses, BuildOptions(sizes=("all",), test_fraction=0.3, **options), PARAMS,
                                   {"source": "utkface-sample"})
    return made


def test_group_variants_on_real_photos(analysed):
    items, analyses = analysed
    plain = _one(items, analyses)
    balanced = _one(items, analyses, variant="group-mean", group_by="race")
    pooled = _one(items, analyses, variant="group-centroids", group_by="race")
    per_group = _one(items, analyses, variant="group-kmeans", group_by="race", k=2)
    assert (balanced["id"], pooled["id"], per_group["id"]) == ("g_all_gm", "g_all_gc", "g_all_gk2")
    for made in (balanced, pooled, per_group):
        assert made["members"] == plain["members"] and made["split"] == plain["split"]  # same draw, same split
        assert made["group_by"] == "race"
    for gender, counts in pooled["group_counts"].items():
        assert len(pooled["centroids"][gender]) == len(counts)
        assert len(balanced["centroids"][gender]) == 1
        assert len(per_group["centroids"][gender]) == sum(min(2, n) for n in counts.values())
    # the group-balanced average is the mean of the per-group averages
    for gender in pooled["centroids"]:
        assert np.allclose(np.mean(pooled["centroids"][gender], axis=0), balanced["centroids"][gender][0])
    with pytest.raises(DatasetError, match="needs a group column"):
        BuildOptions(variant="group-mean")
    with pytest.raises(DatasetError, match="no training image has a 'religion' label"):
        _one(items, analyses, variant="group-mean", group_by="religion")


def test_k_auto_is_chosen_on_validation_members_only(analysed):
    items, analyses = analysed
    made = _one(items, analyses, variant="kmeans", k="auto", k_candidates=(1, 2, 3), group_by="race")
    choice = made["k_choice"]
    assert made["k"] == choice["chosen"] in (1, 2, 3) and made["id"] == f"g_all_k{made['k']}"
    assert set(choice["candidates"]) == {"1", "2", "3"} and choice["fraction"] == 0.2
    test_hashes = {h for hs in made["split"]["test"].values() for h in hs}
    assert not test_hashes & {h for hs in made["members"].values() for h in hs}
    assert parse_k("auto") == "auto" and parse_k("4") == 4
    with pytest.raises(DatasetError):
        parse_k("many")
    with pytest.raises(DatasetError, match="k=auto is for"):
        BuildOptions(variant="group-mean", group_by="race", k="auto")


def test_choose_k_prefers_what_serves_the_worst_group():
    """Two clusters per gender; one small. The validation worst-group score picks k=2."""
    rng = np.random.default_rng(0)
    vectors, groups = {}, {}
    for sign, gender in ((1, "male"), (-1, "female")):
        big = rng.normal(0, 0.05, (80, 4)) + [sign, 0, 0, 0]
        small = rng.normal(0, 0.05, (20, 4)) + [-0.4 * sign, 2, 0, 0]
        vectors[gender] = np.vstack([big, small])
        groups[gender] = ["big"] * 80 + ["small"] * 20
    choice = choose_k(vectors, groups, "kmeans", (1, 2), 0.3, 0)
    assert choice.by == "worst-group" and choice.chosen == 2
    assert choice.scores[2]["worst"] > choice.scores[1]["worst"]
    assert fit_gender(vectors["male"], groups["male"], "group-centroids", 1, 0).shape == (2, 4)


def test_evaluate_cli_prints_intervals_worst_group_and_left_out(analysed, session_cache_path, tmp_path):
    items, _ = analysed
    labels = tmp_path / "labels.csv"
    labels.write_text("path,gender,age,race\n" + "".join(
        f"{i.path},{i.gender},{i.labels['age']},{i.labels['race']}\n" for i in items))
    runner = CliRunner()
    # a labels CSV's builds go to the store of the current folder: a fresh one
    with runner.isolated_filesystem(temp_dir=tmp_path):
        # the library names the missing column; the command adds the flag that gives it
        missing = runner.invoke(build_command, [str(labels), "--sizes", "all", "--variant", "group-mean"])
        assert missing.exit_code == 1
        assert missing.output == ("Error: the variant group-mean needs a group column (such as race): "
                                  "name it with --group-by COLUMN\n")
        made = runner.invoke(build_command, [str(labels), "--test-fraction", "0.3", "--sizes", "all", "--variant",
                                             "group-kmeans", "--group-by", "race", "--k", "auto", "--k-choices", "1,2",
                                             "--cache", str(session_cache_path), "--workers", "1"])
        assert made.exit_code == 0, made.output
        assert "chosen on validation (by " in made.output
        build_id = made.output.strip().splitlines()[-1].split(":")[0]
        out = runner.invoke(evaluate_command, [build_id, "--no-baselines", "--min-group", "2", "--out", "r",
                                               "--cache", str(session_cache_path), "--workers", "1"])
        assert out.exit_code == 0, out.output
        line = out.output.splitlines()[0]
        assert line.startswith(f"{build_id}: balanced ") and "% [" in line
        data = json.loads(Path("r/result.json").read_text())
        worst = data["worst_groups"]
        assert set(worst) == {"race", "age_band"} and data["balanced_interval"]
        for column, w in worst.items():
            assert w["min_group"] == 2
            if w["group"] is None:
                assert f"worst {column}: no group of 2+ faces" in line
            else:
                assert f"worst {column} {w['group']} {100 * w['balanced_accuracy']:.1f}% [" in line
            if w["left_out"]:  # a group under 2 faces, or lacking a gender
                assert f"left out of the worst {column} (under 2 decided faces, or a gender missing; --min-group): " in out.output
        assert any(w["group"] is not None for w in worst.values())
        html = Path("r/index.html").read_text()
        assert "Worst group" in html and "95% interval" in html
        bad = runner.invoke(build_command, [str(labels), "--variant", "kmeans", "--k", "lots"])
        assert bad.exit_code != 0 and "cannot read k='lots'" in bad.output


def test_sweep_table_and_plot_show_the_worst_group(analysed, session_cache_path, tmp_path):
    items, analyses = analysed
    made = [_one(items, analyses), _one(items, analyses, variant="group-centroids", group_by="race")]
    with AnalysisCache(session_cache_path, PARAMS.cache_key) as cache:
        results = [evaluate_build(b, items, PARAMS, cache, 1, use_split=True, baselines=False, progress=False, min_group=3)
                   for b in made]
    page = write_sweep_report(results, tmp_path / "sweep")
    rows = json.loads((page.parent / "sweep.json").read_text())["sweep"]
    assert all(r["balanced_interval"] and "race" in r["worst_groups"] for r in rows)
    assert "worst race" in page.read_text() and (page.parent / "sweep.png").is_file()
    assert write_report(results[1], tmp_path / "one").is_file()


def test_group_adaptive_grows_k_per_group_on_cross_validation(analysed):
    items, analyses = analysed
    made = _one(items, analyses, variant="group-adaptive", group_by="race", k_candidates=(1, 2), validation_folds=2)
    assert made["id"] == "g_all_ga" and made["k_choice"]["folds"] == 2 and "start" in made["k_choice"]["candidates"]
    per_group = made["k_per_group"]
    for gender, counts in made["group_counts"].items():
        assert set(counts) <= set(per_group)
        assert len(made["centroids"][gender]) == sum(min(per_group[v], n) for v, n in counts.items())
    assert made["k"] == max(per_group.values())


def test_cross_validated_choice_scores_every_member_once():
    rng = np.random.default_rng(1)
    vectors = {"male": rng.normal(1, 0.3, (30, 3)), "female": rng.normal(-1, 0.3, (20, 3))}
    choice = choose_k(vectors, None, "kmeans", (1, 2), 0.2, 0, folds=5)
    assert choice.by == "balanced" and choice.folds == 5 and choice.chosen in (1, 2)
    # every member predicted once: the validation faces are all 50
    assert all(s["faces"] == 50 and s["balanced"] == pytest.approx(1.0) for s in choice.scores.values())
    single = choose_k(vectors, None, "kmeans", (1, 2), 0.2, 0)
    assert all(s["faces"] == 10 for s in single.scores.values())  # 20% of 30 and of 20


def test_per_person_figures_carry_intervals():
    result = EvaluationResult({"id": "t"}, ["female", "male"], _outcomes(SPEC, people=5))
    people = result.per_person()
    low, high = people["balanced_interval"]
    assert low < people["balanced_accuracy"] < high
    male = people["per_gender"]["male"]
    assert male["interval"][0] < male["accuracy"] < male["interval"][1]
    assert male["all_right_interval"] == pytest.approx(wilson(int(round(male["all_right"] * male["judged"])), male["judged"]))
