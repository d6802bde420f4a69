"""The comparison's verdicts: the paired test, the equivalence test, Holm's correction and the seeds a verdict needs,
against hand-computed values (scipy where it has them); verdicts from paired grids; the pooling rule on code
versions; ``--report-only`` read from the records alone. Synthetic records: no training."""

import json
import math
import pathlib

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from sb3_tutorial_sac import cli
from sb3_tutorial_sac import compare as cmp
from sb3_tutorial_sac.compare import paired, verdicts
from sb3_tutorial_sac.compare.records import VERIFY_FILE, discover

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_signed_rank_test_is_scipys_exact_wilcoxon_without_ties() -> None:
    rng = np.random.default_rng(3)
    for n in (6, 10, 14):
        d = rng.normal(0.4, 1.0, n)
        assert paired.signed_rank_test(d) == pytest.approx(stats.wilcoxon(d, method="exact").pvalue)
        for alternative in ("greater", "less"):
            expected = stats.wilcoxon(d, method="exact", alternative=alternative).pvalue
            assert paired.signed_rank_test(d, alternative) == pytest.approx(expected)
    # By hand: 10 positive differences: only the all-positive and all-negative sign assignments are as extreme
    assert paired.signed_rank_test(np.arange(1.0, 11.0)) == pytest.approx(2 / 2**10)
    # Zeros count 0, ties share their rank: [1, 1, 0, -3] -> ranks of |1|, |1|, |3| = 1.5, 1.5, 3; T = 0; every one
    # of the 8 sign assignments has |T| >= 0
    assert paired.signed_rank_test([1.0, 1.0, 0.0, -3.0]) == 1.0
    assert paired.signed_rank_test([0.0, 0.0]) == 1.0
    with pytest.raises(ValueError, match="alternative"):
        paired.signed_rank_test([1.0], "bigger")


def test_tost_holm_and_seeds_needed_against_hand_computed_values() -> None:
    x = np.array([10.0, 11.0, 9.0, 10.5, 9.5, 10.2, 9.8, 10.1, 9.9, 10.3])
    y = x - np.array([0.1, -0.2, 0.3, 0.0, 0.2, -0.1, 0.15, 0.05, -0.05, 0.25])
    # Every |difference| < 1: both one-sided tests see 10 positive (negative) shifted differences: p = 1 / 2^10
    assert paired.tost(x, y, margin=1.0) == pytest.approx(1 / 2**10)
    d = x - y
    expected = max(
        stats.wilcoxon(d + 0.2, method="exact", alternative="greater").pvalue,
        stats.wilcoxon(d - 0.2, method="exact", alternative="less").pvalue,
    )
    assert paired.tost(x, y, margin=0.2) == pytest.approx(expected)
    with pytest.raises(ValueError, match="margin must be positive"):
        paired.tost(x, y, margin=0.0)
    # Holm: sorted 0.005 x 4, 0.01 x 3, 0.03 x 2, then max(0.06, 0.04 x 1); NaN stays NaN
    assert paired.holm([0.01, 0.04, 0.03, 0.005, math.nan])[:4] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert math.isnan(paired.holm([0.01, math.nan])[1])
    # The t-tests' textbook sample sizes at d = 0.5, 80% power, two-sided 5%: 34 paired, 64 per group
    assert paired.t_test_seeds(0.5) == 34 and paired.t_test_seeds(0.5, paired=False) == 64
    # The rank tests need 1 / (3 / pi) times as many, and at least the seeds whose exact test can reject at all
    diffs = np.array([1.0, 3.0] * 5)  # mean 2, sd 1.054: d_z = 1.897
    needed = paired.t_test_seeds(2.0 / np.std(diffs, ddof=1))
    assert paired.seeds_needed(diffs, np.zeros(10)) == max(6, math.ceil(needed / (3 / math.pi)))
    assert paired.min_seeds() == 6 and paired.min_seeds(paired=False) == 4
    assert paired.smallest_p(5) == pytest.approx(2 / 32) and paired.smallest_p(3, paired=False) == pytest.approx(0.1)
    assert math.isinf(paired.seeds_needed(np.ones(5), np.ones(5)))
    # The standardised effect: Cohen's d with the pooled std unpaired (sqrt((1 + 0) / 2) here), +/-inf without spread,
    # NaN without values; a verdict after Holm over m tests is sized at 0.05 / m (at least 8 paired seeds at m = 6,
    # whose smallest p 2 / 2^8 is the first below 0.05 / 6)
    assert paired.effect_size([1.0, 2.0, 3.0], [0.0, 0.0, 0.0], paired=False) == pytest.approx(2.0 / math.sqrt(0.5))
    assert paired.effect_size([1.0], [0.0]) == math.inf and paired.effect_size([0.0, 0.0], [1.0, 1.0]) == -math.inf
    assert math.isnan(paired.effect_size([], []))
    assert paired.seeds_for_effect(math.inf) == 6 and paired.seeds_for_effect(math.inf, alpha=0.05 / 6) == 8
    assert math.isinf(paired.seeds_for_effect(math.nan)) and math.isinf(paired.seeds_for_effect(0.0))
    assert paired.seeds_for_effect(0.5, alpha=0.05 / 6) == math.ceil(paired.t_test_seeds(0.5, alpha=0.05 / 6) / (3 / math.pi))
    assert paired.t_test_seeds(0.5, alpha=0.05 / 6) > paired.t_test_seeds(0.5)


def _frame(values: dict[str, list[float]], env: str = "Pendulum-v1") -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluation and run tables whose every run has one value at its one evaluation point, seeds 0, 1, ..."""
    rows = [
        dict(env=env, algorithm=a, seed=seed, timesteps=1000, train_seconds=1.0, train_cpu_seconds=1.0, mode=mode,
             return_mean=value, return_std=0.0, episodes=1, returns=str(value))
        for a, runs in values.items() for seed, value in enumerate(runs) for mode in cmp.MODES
    ]  # fmt: skip
    runs = pd.DataFrame(
        [dict(env=env, algorithm=a, algo=a, overrides="{}", seed=seed, status="ok", error="", env_steps=1000,
              wall_seconds=1.0, train_seconds=1.0, train_cpu_seconds=1.0, eval_seconds=0.0, steps_per_second=1.0,
              version=COMMIT[:12], packages="", cpu="", engine="")
         for a, runs in values.items() for seed, _ in enumerate(runs)]
    )  # fmt: skip
    return pd.DataFrame(rows), runs


def test_a_tie_in_time_to_threshold_is_zero_not_minus_zero() -> None:
    # Neither row reaches -200 on any seed (a third row does): every paired difference of env steps is 0, printed +0
    values = {"tutorial_sac": [-900.0 - i for i in range(6)], "sac": [-800.0 - i for i in range(6)], "c": [-150.0] * 6}
    evaluations, _ = _frame(values)
    results = verdicts.analyse(evaluations, ["tutorial_sac", "sac", "c"], "Pendulum-v1", -200.0)
    steps = next(r for r in results if r.measure == "steps")
    assert (steps.x, steps.y) == ("tutorial_sac", "sac")
    assert steps.difference == 0 and math.copysign(1.0, steps.difference) == 1.0
    assert all(math.copysign(1.0, value) == 1.0 for value in steps.ci)
    line = next(line for line in verdicts.sentences(results, -200.0) if "env steps to" in line)
    assert "difference +0 env steps [0, 0] (6 paired seeds, tutorial_sac better in 0)" in line
    assert verdicts.unreached_note(evaluations, -200.0) == ""


def test_a_threshold_no_run_reaches_gives_no_time_to_threshold_verdict(tmp_path: pathlib.Path) -> None:
    # Hopper-v5's reward_threshold (3,800) at 100k steps: every time to it is "never", so every such contrast is a
    # tie; no test is made on it and the report says why, after the score verdicts
    values = {"tutorial_sac": [-900.0 - i for i in range(6)], "sac": [-800.0 - i for i in range(6)]}
    evaluations, runs = _frame(values)
    results = verdicts.analyse(evaluations, ["tutorial_sac", "sac"], "Pendulum-v1", -200.0)
    assert {r.measure for r in results} == {"score"} and len(results) == 4  # two modes, difference and equivalence
    note = verdicts.unreached_note(evaluations, -200.0)
    assert note.startswith("No run reaches -200 with the deterministic policy within the budget")
    report = cmp.write_report(evaluations, runs, tmp_path)
    assert note in report.splitlines() and "sac, env steps to -200" not in report  # (the table still says never)
    # A stochastic policy reaching it does not count (the time-to-threshold measures are of the deterministic one)
    stochastic = evaluations["mode"] == "stochastic"
    evaluations.loc[stochastic & (evaluations["seed"] == 0), "return_mean"] = -100.0
    assert not verdicts.reached(evaluations, -200.0)
    evaluations.loc[~stochastic & (evaluations["seed"] == 0) & (evaluations["algorithm"] == "sac"), "return_mean"] = -100.0
    assert verdicts.reached(evaluations, -200.0) and verdicts.unreached_note(evaluations, -200.0) == ""


def test_a_paired_grid_decides_where_the_unpaired_test_cannot() -> None:
    # Seeds differ widely (the evaluation start states), and X is 5 above Y on every seed: the unpaired rank test
    # sees two overlapping samples, the paired test ten positive differences
    base = [-150.0 - 40.0 * i for i in range(10)]
    x, y = [b + 5.0 + 0.1 * i for i, b in enumerate(base)], base
    assert cmp.verdict(x, y)["decided"] == 0 and cmp.verdict(x, y)["p_value"] > 0.5
    evaluations, _ = _frame({"tutorial_sac": x, "sac": y})
    results = verdicts.analyse(evaluations, ["tutorial_sac", "sac"], "Pendulum-v1", None)
    score = next(r for r in results if r.kind == "difference" and r.mode == "deterministic")
    assert score.paired and score.n == (10, 10) and score.wins == 10 and score.p == pytest.approx(2 / 1024)
    assert score.difference == pytest.approx(5.45)
    lines = verdicts.sentences(results, None)
    assert lines[0].startswith("- tutorial_sac vs sac, final score, deterministic: tutorial_sac ends higher than sac")
    # ... and 5.45 is within the margin of Pendulum-v1 (5% of reference - random): said beside the difference
    margin = 0.05 * (-156.995 + 1207.555222701356)
    assert verdicts.margin_for("Pendulum-v1") == pytest.approx(margin)
    assert f"a difference within the equivalence margin +/- {margin:,.1f}" in lines[0]


def test_equivalence_before_cannot_be_told_apart_and_holm_within_families() -> None:
    rng = np.random.default_rng(0)
    base = list(-150.0 - 40.0 * np.arange(10))
    close = [b + float(rng.normal(0, 1)) for b in base]
    far = [b - 100.0 - 10 * i for i, b in enumerate(base)]
    evaluations, _ = _frame({"tutorial_sac": base, "sac": close, "all_fixes": far})
    results = verdicts.analyse(evaluations, ["tutorial_sac", "sac", "all_fixes"], "Pendulum-v1", None)
    lines = verdicts.sentences(results, None)
    assert any(
        line.startswith("- tutorial_sac vs sac, final score, deterministic: tutorial_sac and sac cannot be told apart "
                        "within +/- 52.5") for line in lines
    )  # fmt: skip
    # three contrasts per family; Holm's adjusted p of the smallest of three equal p's is 3x
    family = [r for r in results if r.family == ("score", "deterministic", "difference", "every pair")]
    assert len(family) == 3
    smallest = min(family, key=lambda r: r.p)
    assert smallest.p_holm == pytest.approx(min(1.0, 3 * smallest.p))
    # Without a margin for the task, no equivalence test and never "cannot be told apart"
    evaluations, _ = _frame({"tutorial_sac": base, "sac": close}, env="CartPole-v1")
    results = verdicts.analyse(evaluations, ["tutorial_sac", "sac"], "CartPole-v1", None)
    assert all(r.kind == "difference" for r in results)
    assert all("cannot be told apart" not in line for line in verdicts.sentences(results, None))
    # The ablation: the reference against every row, all_fixes against its leave-one-out rows
    # (not the reference against a leave-one-out row); Holm within the contrasts of each anchor
    labels = ["tutorial_sac", "a", "b", "c", "d", "all_fixes", "all_fixes_but_x"]
    expected = [("tutorial_sac", label) for label in labels[1:-1]] + [("all_fixes", "all_fixes_but_x")]
    assert verdicts.contrasts(labels) == expected
    values = {label: [b - 10.0 * i for b in base] for i, label in enumerate(labels)}
    evaluations, _ = _frame(values)
    sizes = verdicts.family_sizes(verdicts.analyse(evaluations, labels, "Pendulum-v1", None))
    assert sizes[("score", "deterministic", "difference", "tutorial_sac")] == 5
    assert sizes[("score", "deterministic", "difference", "all_fixes")] == 1


def test_a_row_that_diverges_more_often_is_tested_on_its_discordant_seeds() -> None:
    # a never diverges; b diverges at seeds 0-6; c at seed 0 only. The score contrasts pair only the seeds where both
    # rows have a score, so b's divergences are tested apart: the exact McNemar test of the seeds where one row only
    # diverged (scipy's binomial test), Holm over the contrasts that have such a seed
    status = {"a": ["ok"] * 10, "b": ["diverged"] * 7 + ["ok"] * 3, "c": ["diverged"] + ["ok"] * 9}
    runs = pd.DataFrame(
        [{"env": "Pendulum-v1", "algorithm": label, "seed": seed, "status": s} for label, column in status.items()
         for seed, s in enumerate(column)]
    )  # fmt: skip
    results = verdicts.divergence(runs, ["a", "b", "c"])
    by_pair = {(r.x, r.y): r for r in results}
    assert set(by_pair) == {("a", "b"), ("a", "c"), ("b", "c")}
    discordant = ((("a", "b"), 0, 7), (("a", "c"), 0, 1), (("b", "c"), 6, 6))  # (x only, x only + y only)
    p = {pair: stats.binomtest(k, n, 0.5).pvalue for pair, k, n in discordant}
    assert p[("a", "b")] == pytest.approx(2 / 2**7) and p[("b", "c")] == pytest.approx(2 / 2**6) and p[("a", "c")] == 1
    assert {pair: r.p for pair, r in by_pair.items()} == pytest.approx(p)
    # Holm over the three: 3 x 2/128 = 0.047, then max(0.047, 2 x 2/64) = 0.0625, then 1
    assert [by_pair[pair].p_holm for pair in p] == pytest.approx([3 / 64, 1.0, 1 / 16])
    # the seeds that decide: all discordant in one row, 2 / 2^k below 0.05 / 3 -> k = 7
    assert {r.seeds_needed for r in results} == {7.0} and {r.family_size for r in results} == {3}
    assert by_pair[("a", "b")].difference == pytest.approx(-0.7) and by_pair[("b", "c")].wins == 0
    assert verdicts.sentences(results, None) == [
        "- a vs b, runs that diverge: b diverges at more seeds than a (of 10 paired seeds, 0 diverged in a only and 7 "
        "in b only; exact McNemar p = 0.016, Holm p = 0.047).",
        "- a vs c, runs that diverge: inconclusive (of 10 paired seeds, 0 diverged in a only and 1 in c only; exact "
        "McNemar p = 1.000, Holm p = 1.000; 7 such seeds, all in one row, would decide at level 0.05/3).",
        "- b vs c, runs that diverge: inconclusive (of 10 paired seeds, 6 diverged in b only and 0 in c only; exact "
        "McNemar p = 0.031, Holm p = 0.062; 7 such seeds, all in one row, would decide at level 0.05/3).",
    ]
    assert "exact McNemar test" in verdicts.family_note(results, "Pendulum-v1")
    # Only seeds where both rows finished are paired (a missing run is no evidence); a contrast without a seed where
    # one row only diverged is not tested (it cannot reject) and does not count in the family
    runs.loc[(runs["algorithm"] == "a") & (runs["seed"] < 6), "status"] = "missing"
    results = verdicts.divergence(runs, ["a", "b", "c"])
    assert [(r.x, r.y, r.n, r.family_size) for r in results] == [("a", "b", (4, 4), 2), ("b", "c", (10, 10), 2)]
    assert verdicts.divergence(runs[runs["algorithm"] != "b"], ["a", "c"]) == []


def test_a_report_with_too_few_seeds_says_so_in_its_first_line(tmp_path: pathlib.Path) -> None:
    evaluations, runs = _frame({"tutorial_sac": [-150.0, -160.0], "sac": [-300.0, -310.0]})
    markdown = cmp.write_report(evaluations, runs, tmp_path, "few")
    assert markdown.splitlines()[2].startswith(
        "**Too few seeds for any verdict**: at 2 seeds per row the exact tests cannot give a p below 0.05"
    )
    assert "a verdict needs at least 6 paired seeds per row" in markdown.splitlines()[2]
    verdict_table = pd.read_csv(tmp_path / "few_verdicts.csv")
    assert set(verdict_table["kind"]) == {"difference", "equivalence"} and verdict_table["paired"].all()
    evaluations, runs = _frame({"tutorial_sac": [-150.0 - i for i in range(6)], "sac": [-300.0 - i for i in range(6)]})
    assert "Too few seeds" not in cmp.write_report(evaluations, runs, tmp_path, "enough")


def _write_run(folder: pathlib.Path, variant: cmp.Variant, seed: int, value: float, commit: str | None) -> None:
    """A finished run's files as the harness writes them (evaluations.npz, compare_run.json), without training."""
    _write_spec(cmp.RunSpec(variant, "Pendulum-v1", seed, 2000, 1000, 2, str(folder)), value, commit)


def _grid(folder: pathlib.Path, commits: list[str | None]) -> None:
    for seed, commit in enumerate(commits):
        _write_run(folder, cmp.Variant("tutorial_sac", "tutorial_sac"), seed, -150.0 - seed, commit)
        _write_run(folder, cmp.VARIANTS["all_fixes"], seed, -140.0 - seed, commit)


def test_a_grid_on_several_cpu_models_names_the_seeds_whose_rows_ran_on_different_ones(tmp_path: pathlib.Path) -> None:
    # Seeds 0-5 of both rows on one machine; at seeds 6 and 7 the second row ran on another one
    for seed in range(8):
        _write_spec(
            cmp.RunSpec(cmp.Variant("tutorial_sac", "tutorial_sac"), "Pendulum-v1", seed, 2000, 1000, 2, str(tmp_path)),
            -150.0 - seed,
            cpu="AMD EPYC",
        )
        other = "Intel Xeon" if seed >= 6 else "AMD EPYC"
        _write_spec(
            cmp.RunSpec(cmp.VARIANTS["all_fixes"], "Pendulum-v1", seed, 2000, 1000, 2, str(tmp_path)), -140.0 - seed, cpu=other
        )
    assert cli.main(["compare", "--report-only", "--log-folder", str(tmp_path), "--no-progress"]) == 0
    report = (tmp_path / "compare.md").read_text()
    assert (
        "CPU: AMD EPYC (14 runs); Intel Xeon (2 runs); at seeds 6, 7 the rows ran on different models, so the paired "
        "CPU-seconds differences of those seeds also compare two machines." in report
    )
    # Every row of a seed on one model (a seed-major grid moved to another machine): said so, no seed named
    for seed in (6, 7):
        run_file = (
            cmp.RunSpec(
                cmp.Variant("tutorial_sac", "tutorial_sac"), "Pendulum-v1", seed, 2000, 1000, 2, str(tmp_path)
            ).run_dir()
            / cmp.RUN_FILE
        )
        record = json.loads(run_file.read_text())
        record["provenance"]["cpu"] = "Intel Xeon"
        run_file.write_text(json.dumps(record))
    assert cli.main(["compare", "--report-only", "--log-folder", str(tmp_path), "--no-progress"]) == 0
    report = (tmp_path / "compare.md").read_text()
    assert "CPU: AMD EPYC (12 runs); Intel Xeon (4 runs); the rows of each seed ran on one model." in report


def test_report_only_reads_the_grid_from_the_records(tmp_path: pathlib.Path) -> None:
    _grid(tmp_path, [COMMIT] * 6)
    grid = discover(tmp_path)
    assert [v.label for v in grid.variants] == ["tutorial_sac", "all_fixes"]
    assert (grid.seeds, grid.budget, grid.eval_freq, grid.eval_episodes) == (list(range(6)), 2000, 1000, 2)
    # No flag but the folder: the protocol comes from the records
    assert cli.main(["compare", "--report-only", "--log-folder", str(tmp_path), "--no-progress"]) == 0
    full = (tmp_path / "compare.md").read_text()
    assert "all_fixes ends higher than tutorial_sac" in full and f"Code: every run from commit {COMMIT[:12]} (12 runs)" in full
    assert "Packages: torch 2.13.0. CPU: test CPU." in full
    # A subset of the rows is written under its own names; the full report stays as it was
    subset = ["compare", "--report-only", "--algos", "tutorial_sac", "--log-folder", str(tmp_path), "--no-progress"]
    assert cli.main(subset) == 0
    assert (tmp_path / "compare_tutorial_sac.md").is_file() and (tmp_path / "compare.md").read_text() == full
    # Rebuilt from the same records: byte for byte
    assert cli.main(["compare", "--report-only", "--log-folder", str(tmp_path), "--no-progress"]) == 0
    assert (tmp_path / "compare.md").read_text() == full
    with pytest.raises(SystemExit, match="no finished run of the rows"):
        cli.main(["compare", "--report-only", "--algos", "td3", "--log-folder", str(tmp_path)])


def test_runs_of_several_code_versions_are_pooled_only_after_a_replay(tmp_path: pathlib.Path) -> None:
    _grid(tmp_path, [COMMIT] * 3 + ["f" * 40] * 3)
    with pytest.raises(SystemExit, match="pooled only after a replay: run the same command with --verify N"):
        cli.main(["compare", "--report-only", "--log-folder", str(tmp_path), "--no-progress"])
    # Records without provenance (written before it) count as unknown versions: the same rule
    unknown = tmp_path / "unknown"
    _grid(unknown, [None] * 6)
    with pytest.raises(SystemExit, match=r"unknown \(12 runs\)"):
        cli.main(["compare", "--report-only", "--log-folder", str(unknown), "--no-progress"])
    # A replay that found a row different: still refused, naming the row
    rows = {f"{label} Pendulum-v1": [{"seed": 0, "record_version": "x", "identical": label == "tutorial_sac", "differs": ""}]
            for label in ("tutorial_sac", "all_fixes")}  # fmt: skip
    verify = {"verified_on": {"commit": "a" * 40, "dirty": False}, "seeds_per_row": 1, "identical": False, "rows": rows}
    (tmp_path / VERIFY_FILE).write_text(json.dumps(verify))
    with pytest.raises(SystemExit, match=r"rows whose replay differed: \['all_fixes Pendulum-v1'\]"):
        cli.main(["compare", "--report-only", "--log-folder", str(tmp_path), "--no-progress"])
    # Every row replayed identically: pooled, and the report says on what
    rows["all_fixes Pendulum-v1"][0]["identical"] = True
    (tmp_path / VERIFY_FILE).write_text(json.dumps({**verify, "identical": True, "rows": rows}))
    assert cli.main(["compare", "--report-only", "--log-folder", str(tmp_path), "--no-progress"]) == 0
    pooled = (
        f"Code: the runs come from {COMMIT[:12]} (6 runs), ffffffffffff (6 runs); pooled because a replay on commit "
        "aaaaaaaaaaaa re-ran 1 committed seeds per row (2 runs) and found every evaluation identical"
    )
    assert pooled in (tmp_path / "compare.md").read_text()


def test_report_only_keeps_the_engine_and_the_yml_ablations_order(tmp_path: pathlib.Path) -> None:
    # A yml ablation with SAC beside it (--algos sac), trained with --engine compiled: --report-only alone finds the
    # engine (the TutorialSAC rows' protocol; SAC has none) and lists the rows in the grid's order
    rows = [cmp.YML_ABLATION[0], cmp.Variant("sac", "sac"), *cmp.YML_ABLATION[1:]]
    for seed in range(2):
        for i, variant in enumerate(rows):
            spec = cmp.RunSpec(variant, "Pendulum-v1", seed, 2000, 1000, 2, str(tmp_path), engine="compiled")
            _write_spec(spec, -150.0 - seed - i)
    grid = discover(tmp_path, ablation=True)
    assert [v.label for v in grid.variants] == [v.label for v in rows]
    assert grid.engine == "compiled" and grid.variants[2] is cmp.YML_ABLATION[1] and grid.variants[1] == rows[1]
    assert cli.main(["compare", "--report-only", "--ablation", "yml", "--log-folder", str(tmp_path), "--no-progress"]) == 0
    report = (tmp_path / "ablation.md").read_text()
    assert "TutorialSAC's rows train with `engine='compiled'`" in report
    listed = [line.split("`")[1] for line in report.splitlines() if line.startswith("- `")][: len(rows)]
    assert listed == [v.label for v in rows]
    # One more run on the default engine: the records no longer describe one grid
    _write_spec(cmp.RunSpec(cmp.YML_ABLATION[0], "Pendulum-v1", 2, 2000, 1000, 2, str(tmp_path)), -150.0)
    with pytest.raises(ValueError, match=r"different engines \['auto', 'compiled'\]"):
        discover(tmp_path, ablation=True)


def _write_spec(spec: cmp.RunSpec, value: float, commit: str | None = COMMIT, cpu: str = "test CPU") -> None:
    """A finished run of ``spec`` (its protocol as the harness records it, a budget of 2,000 env steps), without
    training."""
    run_dir = spec.run_dir()
    run_dir.mkdir(parents=True)
    np.savez(
        run_dir / "evaluations.npz",
        timesteps=[1000, 2000],
        results=[[value - 100, value - 100], [value, value]],
        ep_lengths=[[200, 200], [200, 200]],
        results_stochastic=[[value - 110, value - 110], [value - 10, value - 10]],
        ep_lengths_stochastic=[[200, 200], [200, 200]],
        train_seconds=[1.0, 2.0],
        train_cpu_seconds=[1.0, 2.0],
    )
    record = {"protocol": spec.protocol(), "label": spec.variant.label, "status": "ok", "env_steps": 2000}
    if commit is not None:
        record["provenance"] = {"commit": commit, "dirty": False, "versions": {"torch": "2.13.0"}, "cpu": cpu}
    (run_dir / cmp.RUN_FILE).write_text(json.dumps(record))
