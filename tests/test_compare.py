"""``sb3-tutorial-sac compare``: the grid runs end to end, resumes, survives a failing run, gives the same report on
Ray, and its statistics equal hand-computed values. Tiny budgets: these tests check behaviour, not learning."""

import dataclasses
import json
import pathlib
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from sb3_tutorial_sac import cli
from sb3_tutorial_sac import compare as cmp
from sb3_tutorial_sac.compare import paired, verdicts
from sb3_tutorial_sac.compare.records import other_cpus, version_of

TINY = dict(budget=400, eval_freq=200, eval_episodes=2)
TINY_ARGS = ["--budget", "400", "--eval-freq", "200", "--eval-episodes", "2", "--no-progress"]


@pytest.fixture(scope="module")
def local_run(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """tutorial_sac and sac x seeds 0, 1 on Pendulum-v1, from the command line, two worker processes."""
    log_folder = tmp_path_factory.mktemp("compare_local")
    code = cli.main(
        [
            "compare",
            "--algos",
            "tutorial_sac",
            "sac",
            "--seeds",
            "2",
            "--jobs",
            "2",
            "--log-folder",
            str(log_folder),
            *TINY_ARGS,
        ]
    )
    assert code == 0
    return log_folder


def _specs(log_folder: pathlib.Path, seeds=(0, 1), variants=None) -> list[cmp.RunSpec]:
    variants = variants or [cmp.Variant("tutorial_sac", "tutorial_sac"), cmp.Variant("sac", "sac")]
    return cmp.make_specs(variants, ["Pendulum-v1"], list(seeds), log_folder=log_folder, **TINY)


def _tables(markdown: str) -> list[list[str]]:
    """Table rows of a report, without the timing columns (training seconds to threshold, CPU and wall seconds per
    run, env steps per CPU second: they vary from run to run)."""
    rows = [line.split(" | ") for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    return [row[:7] + row[11:] for row in rows]


def test_end_to_end_files(local_run: pathlib.Path) -> None:
    # rl-zoo3's layout: <log>/<algo>/<env>_<seed>/ with evaluations.npz, the monitor file, config and model
    for algo in ("tutorial_sac", "sac"):
        for seed in (0, 1):
            run_dir = local_run / algo / f"Pendulum-v1_{seed}"
            for name in ("evaluations.npz", "0.monitor.csv", "Pendulum-v1.zip", "Pendulum-v1/config.yml", cmp.RUN_FILE):
                assert (run_dir / name).is_file(), run_dir / name
            with np.load(run_dir / "evaluations.npz") as data:
                np.testing.assert_array_equal(data["timesteps"], [200, 400])
                assert data["results"].shape == data["results_stochastic"].shape == (2, 2)  # 2 evaluations x 2 episodes
                # Pendulum's rewards are in [-16.3, 0]: raw returns of 200-step episodes, not normalised ones
                assert (data["results"] < 0).all() and (data["results"] >= -16.3 * 200).all()
                # training seconds (evaluations excluded) at each evaluation point
                assert data["train_seconds"].shape == (2,) and 0 < data["train_seconds"][0] < data["train_seconds"][1]
            record = json.loads((run_dir / cmp.RUN_FILE).read_text())
            assert record["status"] == "ok" and record["env_steps"] == 400 and record["train_seconds"] > 0
    # The run used each algorithm's own zoo hyperparameters: SAC's learning rate from rl-zoo3's sac.yml
    config = yaml.load((local_run / "sac/Pendulum-v1_0/Pendulum-v1/config.yml").read_text(), Loader=yaml.UnsafeLoader)
    # and config.yml records the budget trained (400) beside the zoo's n_timesteps
    assert dict(config) == {"learning_rate": 0.001, "n_timesteps": 400, "n_timesteps_zoo": 20000, "policy": "MlpPolicy"}

    evaluations = pd.read_csv(local_run / "compare_evaluations.csv")
    assert len(evaluations) == 2 * 2 * 2 * 2  # algorithms x seeds x evaluation points x modes
    assert set(evaluations["mode"]) == {"deterministic", "stochastic"}
    with np.load(local_run / "sac/Pendulum-v1_1/evaluations.npz") as data:
        row = evaluations.query("algorithm == 'sac' and seed == 1 and timesteps == 400 and mode == 'stochastic'")
        assert row["return_mean"].item() == pytest.approx(data["results_stochastic"][1].mean())
        assert row["train_seconds"].item() == pytest.approx(data["train_seconds"][1])
    runs = pd.read_csv(local_run / "compare_runs.csv")
    assert list(runs["status"]) == ["ok"] * 4
    assert (local_run / "compare_Pendulum-v1.png").stat().st_size > 10_000
    markdown = (local_run / "compare.md").read_text()
    assert "| tutorial_sac | 2 |" in markdown and "| sac | 2 |" in markdown
    # a row of --algos says what it trains (not just its key); where its hyperparameters come from follows per task
    assert "- `tutorial_sac`: TutorialSAC with the task's `tutorial_sac.yml` entry (which one:" in markdown
    assert "- `sac`: rl-zoo3's `sac` with its `sac.yml` entry for the task, or its defaults where there is none" in markdown
    assert "- `sac`: rl-zoo3's tuned `sac.yml` entry (learning_rate 0.001; SB3 defaults otherwise)." in markdown
    assert "![learning curves on Pendulum-v1](compare_Pendulum-v1.png)" in markdown


def test_zoo_plotting_reads_the_runs(local_run: pathlib.Path, tmp_path: pathlib.Path) -> None:
    # rl-zoo3's own all_plots finds both algorithms' evaluations (deterministic and the stochastic key)
    for key in ("results", "results_stochastic"):
        out = tmp_path / key  # all_plots appends .pkl
        subprocess.run(
            [sys.executable, "-m", "rl_zoo3.plots.all_plots", "-a", "tutorial_sac", "sac", "-e", "Pendulum-v1",
             "-f", str(local_run), "-l", "cmp", "-k", key, "--no-display", "-o", str(out)],
            check=True, capture_output=True, cwd=tmp_path,
        )  # fmt: skip
        data = pd.read_pickle(f"{out}.pkl")
        assert set(data["Pendulum-v1"]) == {"TUTORIAL_SAC-cmp", "SAC-cmp"}


def test_resume_skips_finished_runs(local_run: pathlib.Path, tmp_path: pathlib.Path) -> None:
    log_folder = tmp_path / "resumed"
    shutil.copytree(local_run, log_folder)
    npz = log_folder / "sac/Pendulum-v1_0/evaluations.npz"
    before = npz.read_bytes(), npz.stat().st_mtime_ns
    # A half-written run (no compare_run.json) is not finished: it is trained again
    (log_folder / "sac/Pendulum-v1_1" / cmp.RUN_FILE).unlink()
    records = cmp.run_all(_specs(log_folder, seeds=(0, 1, 2)), jobs=2, progress=False)
    skipped = sorted(key for key, record in records.items() if record.get("skipped"))
    assert skipped == ["sac Pendulum-v1 seed 0", "tutorial_sac Pendulum-v1 seed 0", "tutorial_sac Pendulum-v1 seed 1"]
    assert all(record["status"] == "ok" for record in records.values()) and len(records) == 6
    assert (npz.read_bytes(), npz.stat().st_mtime_ns) == before
    # Same seed, same protocol, fresh process: the re-trained run equals the original
    np.testing.assert_array_equal(
        np.load(log_folder / "sac/Pendulum-v1_1/evaluations.npz")["results"],
        np.load(local_run / "sac/Pendulum-v1_1/evaluations.npz")["results"],
    )
    # --report-only trains nothing and names what is missing
    report, runs = cmp.compare(
        [cmp.Variant("sac", "sac")], seeds=[0, 3], log_folder=log_folder, report_only=True, progress=False, **TINY
    )
    assert list(runs["status"]) == ["ok", "missing"] and not (log_folder / "sac/Pendulum-v1_3").exists()
    assert "| sac | 1 (1 missing) |" in report and "- sac: **missing** (not run yet) seeds 3" in report
    # A finished run with another protocol is never overwritten silently
    with pytest.raises(ValueError, match="another protocol"):
        cmp.run_all([dataclasses.replace(_specs(log_folder)[0], budget=600)], progress=False)


def test_failing_run_is_reported_and_others_complete(tmp_path: pathlib.Path) -> None:
    variants = [cmp.Variant("tutorial_sac", "tutorial_sac"), cmp.Variant("broken", "tutorial_sac", {"batch_size": 0})]
    report, runs = cmp.compare(variants, seeds=[0], log_folder=tmp_path, jobs=2, progress=False, **TINY)
    statuses = dict(zip(runs["algorithm"], runs["status"]))
    assert statuses == {"tutorial_sac": "ok", "broken": "failed"}
    error = runs.set_index("algorithm").loc["broken", "error"]
    assert error.startswith("ValueError") and "batch_size" in error
    assert "broken seed 0: **failed**: ValueError" in report
    assert "Traceback" in (tmp_path / "broken/tutorial_sac/Pendulum-v1_0/error.txt").read_text()
    assert (tmp_path / "tutorial_sac/Pendulum-v1_0" / cmp.RUN_FILE).is_file()
    assert set(pd.read_csv(tmp_path / "compare_evaluations.csv")["algorithm"]) == {"tutorial_sac"}


def test_ray_backend_gives_the_same_report(local_run: pathlib.Path, tmp_path: pathlib.Path) -> None:
    ray = pytest.importorskip("ray")
    variants = [cmp.Variant("tutorial_sac", "tutorial_sac"), cmp.Variant("sac", "sac")]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        report, runs = cmp.compare(variants, seeds=[0], log_folder=tmp_path / "ray", backend="ray", progress=False, **TINY)
    finally:
        ray.shutdown()
    assert list(runs["status"]) == ["ok"] * 2
    # The files came back from the Ray workers into the same layout, and the numbers are the local ones
    assert (tmp_path / "ray/sac/Pendulum-v1_0/Pendulum-v1.zip").is_file()
    # (but for the training seconds at each evaluation point, wall-clock): seed 0 of the local grid, and its report
    seconds = ["train_seconds", "train_cpu_seconds"]
    local = pd.read_csv(local_run / "compare_evaluations.csv").drop(columns=seconds)
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "ray/compare_evaluations.csv").drop(columns=seconds),
        local[local["seed"] == 0].reset_index(drop=True),
    )
    shutil.copytree(local_run, tmp_path / "local")
    local_report, _ = cmp.compare(variants, seeds=[0], log_folder=tmp_path / "local", report_only=True, progress=False, **TINY)
    assert _tables(report) == _tables(local_report)


def _synthetic() -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two algorithms x 4 seeds, evaluations at 100, 200, 300 steps; final returns chosen to be easy by hand."""
    finals = {
        ("A", "deterministic"): [-100.0, -150.0, -300.0, -120.0],
        ("A", "stochastic"): [-110.0, -160.0, -200.0, -130.0],
        ("B", "deterministic"): [-150.0, -250.0, -180.0, -400.0],
        ("B", "stochastic"): [-150.0, -250.0, -180.0, -400.0],
    }
    rows = []
    for (algorithm, mode), scores in finals.items():
        for seed, final in enumerate(scores):
            # Per seed: -1000 at 100 steps; at 200 steps, -190 for seeds 0 and 1 (reached -200), else -500
            for timesteps, value in ((100, -1000.0), (200, -190.0 if seed < 2 else -500.0), (300, final)):
                rows.append(dict(env="Pendulum-v1", algorithm=algorithm, seed=seed, timesteps=timesteps, mode=mode,
                                 return_mean=value, return_std=0.0, episodes=1, returns=str(value)))  # fmt: skip
    runs = pd.DataFrame(
        [dict(env="Pendulum-v1", algorithm=a, algo="x", seed=s, status="ok", error="", env_steps=300,
              wall_seconds=10.0 + s, train_seconds=5.0 + s, eval_seconds=1.0, steps_per_second=300 / (5.0 + s))
         for a in "AB" for s in range(4)]
    )  # fmt: skip
    return pd.DataFrame(rows), runs


def test_statistics_against_hand_computed_values(tmp_path: pathlib.Path) -> None:
    evaluations, runs = _synthetic()
    evaluations.to_csv(tmp_path / "synthetic.csv", index=False)
    rows = cmp.summarise(pd.read_csv(tmp_path / "synthetic.csv"), runs, threshold=-200.0, reference="A", last=1)
    a, b = rows
    assert (a["algorithm"], b["algorithm"], a["runs"]) == ("A", "B", 4)
    # mean and std (ddof=0) of [-100, -150, -300, -120]
    assert a["mean_deterministic"] == pytest.approx(-167.5)
    assert a["std_deterministic"] == pytest.approx(np.sqrt((67.5**2 + 17.5**2 + 132.5**2 + 47.5**2) / 4))
    # IQM of 4 runs: the middle two, sorted [-300, -150, -120, -100] -> mean(-150, -120)
    assert a["iqm_deterministic"] == pytest.approx(-135.0)
    assert b["iqm_stochastic"] == pytest.approx(-215.0)  # sorted [-400, -250, -180, -150]
    for row in rows:
        for mode in cmp.MODES:
            low, high = row[f"iqm_{mode}_ci"]
            assert low <= row[f"iqm_{mode}"] <= high
    # P(A > B), deterministic: A = [-100, -150, -300, -120], B = [-150, -250, -180, -400]
    # -100 beats 4, -150 beats 3 and ties -150 (3.5), -300 beats 1 (-400), -120 beats 4: 12.5 / 16
    assert b["versus_deterministic"]["p"] == pytest.approx(12.5 / 16)
    # stochastic: A = [-110, -160, -200, -130]: 4 + 3 + 2 + 4 = 13 / 16
    assert b["versus_stochastic"]["p"] == pytest.approx(13 / 16)
    low, high = b["versus_deterministic"]["ci"]
    assert 0.0 <= low <= 12.5 / 16 <= high <= 1.0
    assert b["versus_deterministic"]["decided"] == 0  # 4 runs each, overlapping: inconclusive
    assert "versus_deterministic" not in a  # no row against itself
    # Steps to -200: seeds 0, 1 reach it at 200; seeds 2, 3 at 300 if their final return is >= -200
    # A det.: seed 2 ends at -300 (never), seed 3 at -120 (300) -> [200, 200, inf, 300] -> median 250
    assert a["steps_to_threshold_deterministic"] == 250 and a["reached_deterministic"] == 3
    # A stoch.: [200, 200, 300 (-200 reaches -200), 300] -> 250; B: [200, 200, 300, inf] -> 250
    assert a["steps_to_threshold_stochastic"] == 250 and a["reached_stochastic"] == 4
    assert b["reached_deterministic"] == 3
    # Timing: means over runs of 10..13 s, 5..8 s, 300/5..300/8 steps/s
    assert a["wall_seconds"] == pytest.approx(11.5) and a["train_seconds"] == pytest.approx(6.5)
    assert a["steps_per_second"] == pytest.approx(np.mean([300 / 5, 300 / 6, 300 / 7, 300 / 8]))

    synthetic = pd.read_csv(tmp_path / "synthetic.csv")
    markdown = cmp.write_report(synthetic, runs, tmp_path, "synthetic", reference="A", last=1)
    assert "| A | 4 | -167.5 +/- " in markdown
    assert "| 0.78 [" in markdown and "| 0.81 [" in markdown  # 12.5/16 and 13/16, two decimals
    assert "| 250 [" in markdown and "] (3/4) |" in markdown  # Pendulum-v1's default threshold, -200
    assert "its mean evaluation return at env steps 300 (the last 1 evaluation points" in markdown
    assert (tmp_path / "synthetic_Pendulum-v1.png").stat().st_size > 10_000
    assert (tmp_path / "synthetic.md").read_text() == markdown


def test_statistics_helpers() -> None:
    # rliable's definitions: IQM trims 25% at each end; P(X > Y) counts ties half; one run gives no interval
    assert cmp.iqm(np.arange(8.0)) == pytest.approx(3.5)
    assert cmp.probability_of_improvement([1.0, 2.0], [1.0, 0.0]) == pytest.approx(0.875)
    low, high = cmp.bootstrap_ci(cmp.iqm, np.array([1.0]))
    assert np.isnan(low) and np.isnan(high)


def test_module_entry_point_and_cli_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sb3_tutorial_sac.compare", "--help"], capture_output=True, text=True, check=True
    )
    assert "--ablation" in result.stdout and "--backend" in result.stdout
    with pytest.raises(SystemExit, match="positive"):
        cli.main(["compare", "--seeds", "0"])


def test_variants_option_selects_ablation_rows(monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path) -> None:
    import sb3_tutorial_sac.compare.cli as compare_cli

    seen = {}

    def fake_compare(variants, envs, *args, **kwargs):
        seen["labels"], seen["envs"] = [variant.label for variant in variants], list(envs)
        return "report", pd.DataFrame({"status": ["done"]})

    monkeypatch.setattr(compare_cli, "compare", fake_compare)
    folder = str(tmp_path)
    assert cli.main(["compare", "--ablation", "--variants", "all_fixes", "tutorial_sac", "--log-folder", folder]) == 0
    assert seen == {"labels": ["tutorial_sac", "all_fixes"], "envs": ["Pendulum-v1"]}  # in the ablation's order
    assert cli.main(["compare", "--ablation", "--log-folder", folder]) == 0
    assert seen["labels"] == [variant.label for variant in cmp.ABLATION]
    with pytest.raises(SystemExit, match=r"--variants: unknown ablation rows \['no_such_row'\]; the rows are"):
        cli.main(["compare", "--ablation", "--variants", "no_such_row"])
    # Without --ablation: named rows after the plain algorithms (one grid: the ablation row, the compute-matched SAC)
    assert cli.main(["compare", "--variants", "all_fixes", "sac_tutorial_nets", "--log-folder", folder]) == 0
    assert seen["labels"] == ["tutorial_sac", "sac", "all_fixes", "sac_tutorial_nets"]
    with pytest.raises(SystemExit, match=r"--variants: unknown rows \['no_such_row'\]; the rows are \['correct_entropy'"):
        cli.main(["compare", "--variants", "no_such_row"])
    # The ablation around a task's yml entry (MuJoCo): on the tasks named, its own rows
    assert cli.main(["compare", "--ablation", "yml", "--envs", "Hopper-v5", "--log-folder", folder]) == 0
    assert seen == {"labels": [variant.label for variant in cmp.YML_ABLATION], "envs": ["Hopper-v5"]}
    with pytest.raises(SystemExit, match="--ablation yml needs --envs"):
        cli.main(["compare", "--ablation", "yml", "--log-folder", folder])
    # --algos adds plain algorithms to an ablation, after its reference (the order --report-only rebuilds)
    assert cli.main(["compare", "--ablation", "yml", "--envs", "Hopper-v5", "--algos", "sac", "--log-folder", folder]) == 0
    labels = [variant.label for variant in cmp.YML_ABLATION]
    assert seen["labels"] == [labels[0], "sac", *labels[1:]]


def test_all_fixes_is_the_sb3_alpha_loss_row_on_the_mujoco_entries() -> None:
    """On a yml entry that already has the correct tanh term and bootstrapped time limits, all_fixes changes only the
    temperature loss: the yml ablation's sb3_alpha_loss row trains exactly all_fixes (the Hopper-v5 grid's all_fixes)."""
    from sb3_tutorial_sac.zoo import hyperparams_path

    entries = yaml.safe_load(hyperparams_path("tutorial_sac").read_text().replace("!!float ", ""))
    row = cmp.VARIANTS["sb3_alpha_loss"].overrides
    for env in ("HalfCheetah-v5", "Hopper-v5"):
        assert {**entries[env], **cmp.VARIANTS["all_fixes"].overrides} == {**entries[env], **row}, env
    assert {**entries["Pendulum-v1"], **cmp.VARIANTS["all_fixes"].overrides} != {**entries["Pendulum-v1"], **row}


def test_the_yml_ablation_switches_each_rule_of_the_mujoco_entry() -> None:
    """Around Hopper-v5's yml entry: each fix the entry makes (the correct tanh term, bootstrapped time limits) switched
    back to the tutorial's rule, each tutorial rule it keeps switched alone to SB3's choice; every row a constructor's
    argument that changes the entry."""
    from sb3_tutorial_sac.zoo import hyperparams_path

    entry = yaml.safe_load(hyperparams_path("tutorial_sac").read_text().replace("!!float ", ""))["HalfCheetah-v5"]
    rows = {variant.label: variant.overrides for variant in cmp.YML_ABLATION}
    assert next(iter(rows)) == "tutorial_sac" and rows["tutorial_sac"] == {} and len(rows) == 9
    assert rows["tutorial_entropy"] == {"entropy_term": "tutorial"} and entry["entropy_term"] == "correct"
    assert rows["timeouts_as_terminals"] == {"handle_timeout_termination": False} and entry["handle_timeout_termination"]
    for label, overrides in list(rows.items())[1:]:
        assert any(entry.get(key, "default") != value for key, value in overrides.items()), label
        assert cmp.VARIANTS[label].overrides == overrides  # --variants names them too
    # The report describes each row by its description: on this entry (batch 256, critic rate 1e-3, scale 0.1) none may
    # state one of Pendulum-v1's values (batch 64, the critic's 3e-3, (r + 8) / 8, its networks) except as Pendulum-v1's
    for variant in (*cmp.YML_ABLATION, cmp.VARIANTS["all_fixes"]):
        unqualified = re.sub(r"Pendulum-v1: [^)]*\)", "", variant.description)
        for pendulum_only in ("64", "3e-3", "r + 8", "[128]", "the tutorial's networks"):
            assert pendulum_only not in unqualified, (variant.label, pendulum_only)


def test_ablation_variants_are_tutorial_sac_switches() -> None:
    from sb3_tutorial_sac import TutorialSAC

    labels = [variant.label for variant in cmp.ABLATION]
    assert labels[0] == "tutorial_sac" and not cmp.ABLATION[0].overrides and len(set(labels)) == len(labels)
    for variant in cmp.ABLATION:
        assert variant.algo == "tutorial_sac"
        # every switch is a constructor argument (policy_kwargs as rl-zoo3 reads a string of the yml)
        kwargs = {k: eval(v) if k == "policy_kwargs" else v for k, v in variant.overrides.items()}
        TutorialSAC("MlpPolicy", "Pendulum-v1", **kwargs)
    # leave-one-out: all_fixes less each of its fixes
    all_fixes = next(v for v in cmp.ABLATION if v.label == "all_fixes").overrides
    for name, fix in cmp.specs.FIXES.items():
        row = next(v for v in cmp.ABLATION if v.label == f"all_fixes_but_{name}")
        assert row.overrides == {k: v for k, v in all_fixes.items() if k not in fix}


def _curves(curves: dict[str, list[list[tuple[int, float, float]]]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluation and run tables from hand-written curves: per algorithm, per seed, ``(env steps, training seconds,
    mean return)`` at each evaluation point (the same for both modes)."""
    rows = [
        dict(env="Pendulum-v1", algorithm=algorithm, seed=seed, timesteps=steps, train_seconds=seconds,
             train_cpu_seconds=seconds, mode=mode, return_mean=value, return_std=0.0, episodes=1, returns=str(value))
        for algorithm, seeds in curves.items()
        for seed, points in enumerate(seeds)
        for steps, seconds, value in points
        for mode in cmp.MODES
    ]  # fmt: skip
    runs = pd.DataFrame(
        [dict(env="Pendulum-v1", algorithm=algorithm, algo=algorithm, overrides="{}", seed=seed, status="ok", error="",
              env_steps=points[-1][0], wall_seconds=10.0, train_seconds=5.0, train_cpu_seconds=4.0, eval_seconds=1.0,
              steps_per_second=40.0)
         for algorithm, seeds in curves.items() for seed, points in enumerate(seeds)]
    )  # fmt: skip
    return pd.DataFrame(rows), runs


def test_collect_reads_train_seconds_from_npz(tmp_path: pathlib.Path) -> None:
    # A run written with train_seconds and one written before they were recorded (NaN, never an error)
    specs = _specs(tmp_path, seeds=(0,))
    for spec, seconds in zip(specs, ([0.5, 1.25], None)):
        spec.run_dir().mkdir(parents=True)
        arrays = dict(timesteps=[200, 400], results=[[-900.0, -800.0], [-300.0, -100.0]],
                      results_stochastic=[[-700.0, -700.0], [-200.0, -200.0]])  # fmt: skip
        np.savez(spec.run_dir() / "evaluations.npz", **arrays, **({"train_seconds": seconds} if seconds else {}))
    one_commit = {"status": "ok", "provenance": {"commit": "0123456789abcdef", "dirty": False}}
    timed = {**one_commit, "train_cpu_seconds": 1800.0, "eval_seconds": 360.0, "wall_seconds": 4500.0}
    evaluations, runs = cmp.collect(specs, {specs[0].key: timed, specs[1].key: one_commit})
    assert list(evaluations.columns[:5]) == ["env", "algorithm", "seed", "timesteps", "train_seconds"]
    with_seconds = evaluations[evaluations["algorithm"] == "tutorial_sac"]
    assert list(with_seconds["train_seconds"]) == [0.5, 1.25, 0.5, 1.25]  # deterministic, then stochastic
    assert list(with_seconds["return_mean"]) == [-850.0, -200.0, -700.0, -200.0]
    assert evaluations.loc[evaluations["algorithm"] == "sac", "train_seconds"].isna().all()
    # The report takes both: the seconds column and the seconds panels say what is missing, nothing fails
    markdown = cmp.write_report(evaluations, runs, tmp_path, "seconds", last=1)
    assert "| 400 (1/1) | n/a |" in markdown  # training seconds to -200: not recorded by every run, so none
    assert "CPU s to -200" not in markdown  # no verdict on seconds that not every run recorded (nor on wall seconds)
    assert "Code: every run from commit 0123456789ab (2 runs)." in markdown
    # what the pooled runs cost, from the records that timed it (the other run's record has no timings)
    assert "Compute (1 run timed): training 0.50 CPU h, evaluation 0.10 h (wall clock); 1.25 h of wall clock" in markdown
    assert (tmp_path / "seconds_Pendulum-v1.png").stat().st_size > 10_000


def test_cli_imports_compare_only_for_its_command() -> None:
    # `train` and the help work without the compare extra; `compare` without it names the pip command
    code = (
        "import sys; sys.modules['pandas'] = None\n"
        "from sb3_tutorial_sac import cli\n"
        "assert not any(name.startswith('sb3_tutorial_sac.compare') for name in sys.modules)\n"
        "cli.main(['compare', '--seeds', '1'])\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 1, result.stderr
    assert 'needs the compare extra (pandas is missing): pip install "sb3-tutorial-sac[compare]"' in result.stderr


def test_compute_matched_sac_has_the_tutorial_networks_and_batch() -> None:
    from stable_baselines3 import SAC

    variant = cmp.VARIANTS["sac_tutorial_nets"]
    kwargs = dict(variant.overrides, policy_kwargs=eval(variant.overrides["policy_kwargs"]))
    model = SAC("MlpPolicy", "Pendulum-v1", **kwargs)
    assert model.batch_size == 64
    assert [m.out_features for m in model.actor.latent_pi if hasattr(m, "out_features")] == [128]
    assert [m.out_features for m in model.critic.q_networks[0] if hasattr(m, "out_features")] == [128, 128, 1]
    assert {v.overrides["reward_scale"] for v in cmp.REWARD_SCALES} == {0.25, 0.0625}


def test_runs_stop_at_the_budget_record_cpu_seconds_and_scale_lin_schedules(tmp_path: pathlib.Path) -> None:
    # Budget 300 is not a whole number of Pendulum episodes (200 steps): without the stop, tutorial_sac would train
    # its second episode to 400. SAC with a lin_ learning rate: the budget override scales it to 300 env steps.
    tutorial = cmp.Variant("tutorial_sac", "tutorial_sac")
    sac = cmp.Variant("sac_lin", "sac", {"learning_rate": "lin_1e-3"})
    specs = cmp.make_specs([tutorial, sac], ["Pendulum-v1"], [0], 300, 100, 1, tmp_path)
    for spec in specs:
        record = cmp.train_one(spec)
        assert record["status"] == "ok", record.get("traceback")
        assert record["env_steps"] == 300
        assert 0 < record["train_cpu_seconds"]
        with np.load(spec.run_dir() / "evaluations.npz") as data:
            assert list(data["timesteps"]) == [100, 200, 300]
            cpu = data["train_cpu_seconds"]
            assert len(cpu) == 3 and np.all(np.diff(cpu) > 0) and cpu[0] > 0
        config = yaml.load((spec.run_dir() / "Pendulum-v1" / "config.yml").read_text(), Loader=yaml.UnsafeLoader)
        assert config["n_timesteps"] == 300 and config["n_timesteps_zoo"] == 20000
    evaluations, _ = cmp.collect(specs, {spec.key: {"status": "ok"} for spec in specs})
    assert evaluations["train_cpu_seconds"].notna().all()
    assert config["schedules"] == {
        "learning_rate": "lin_1e-3: linear from 1e-3 to 0 over 300 env steps (scaled to the budget)"
    }
    from stable_baselines3 import SAC

    model = SAC.load(specs[1].run_dir() / "Pendulum-v1.zip")
    # The last gradient step followed env step 299: progress remaining 1 - 299 / 300 of the budget (not of 20,000)
    assert model.actor.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * (1 - 299 / 300))


def test_a_run_the_guard_stops_is_recorded_as_diverged_reported_and_not_retrained(tmp_path: pathlib.Path) -> None:
    # Rewards scaled past float32's range: the first train() call (after the first episode, env step 200) meets an
    # infinite critic loss and TutorialSAC's guard stops training. That is the row's outcome, not a harness failure:
    # recorded (status "diverged", the step, its evaluations up to there), reported, skipped on resume
    from sb3_tutorial_sac.compare.backends import run_all

    rows = [cmp.Variant("tutorial_sac", "tutorial_sac"), cmp.Variant("blowup", "tutorial_sac", {"reward_scale": 1e38})]
    report, runs = cmp.compare(rows, ["Pendulum-v1"], [0], 400, 150, 1, tmp_path, jobs=1, progress=False)
    assert list(runs["status"]) == ["ok", "diverged"] and list(runs["env_steps"]) == [400, 200]
    specs = cmp.make_specs(rows, ["Pendulum-v1"], [0], 400, 150, 1, tmp_path)
    record = json.loads((specs[1].run_dir() / cmp.RUN_FILE).read_text())
    assert record["status"] == "diverged" and record["diverged_at"] == 200 and record["provenance"]["cpu"]
    assert record["error"].startswith("NonFiniteError: TutorialSAC.train(): critic1_loss = inf at gradient step 1")
    with np.load(specs[1].run_dir() / "evaluations.npz") as data:
        # The evaluations before it stopped, and one at the stop (rl-zoo3's learn() ends its first callback, the
        # evaluation, in a `finally`) of the model as the guard restored it
        assert list(data["timesteps"]) == [150, 200]
    assert "| blowup | 0 (1 diverged) |" in report
    line = "- blowup seed 0: **diverged** at env step 200: NonFiniteError: TutorialSAC.train(): critic1_loss = inf at "
    assert line + "gradient step 1 (step 1 of 200 in this train() call, env step 200)." in report.splitlines()
    assert "A contrast pairs the seeds where both rows have a score" in report
    # one seed where one row only diverged: a divergence contrast, inconclusive (it takes 6 such seeds at 0.05)
    line = "- tutorial_sac vs blowup, runs that diverge: inconclusive (of 1 paired seed, 0 diverged in tutorial_sac only "
    assert (
        line + "and 1 in blowup only; exact McNemar p = 1.000, Holm p = 1.000; 6 such seeds, all in one row, would "
        "decide at level 0.05)." in report.splitlines()
    )
    # Resumed: neither run trains again; rebuilt from the records alone, the report is the same
    records = run_all(specs, jobs=1, progress=False)
    assert [(r["status"], r.get("skipped")) for r in records.values()] == [("ok", True), ("diverged", True)]
    assert cli.main(["compare", "--report-only", "--log-folder", str(tmp_path), "--no-progress"]) == 0
    assert (tmp_path / "compare.md").read_text() == report
    # Replayed, the diverged run diverges again at the same step with the same evaluations
    assert cli.main(["compare", "--verify", "1", "--log-folder", str(tmp_path), "--no-progress"]) == 0
    verified = json.loads((tmp_path / "verify.json").read_text())
    assert verified["identical"] and verified["rows"]["blowup Pendulum-v1"][0]["identical"]
    # benchmarks/divergence.py re-runs it to the train() call the guard stops and replays that call on each engine
    script = pathlib.Path(__file__).parents[1] / "benchmarks" / "divergence.py"
    args = ["--log-folder", str(tmp_path), "--row", "blowup", "--seed", "0", "--engines", "reference", "fast"]
    out = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, check=True).stdout
    assert "failing call: train(200, batch_size=64) at env step 200" in out
    for engine in ("reference", "fast"):
        assert f"replayed on the {engine} engine: TutorialSAC.train(): critic1_loss = inf at gradient step 1 (" in out
    assert out.count("std ") == 1 and "on the buffer's 200 observations" in out
    # A record that reached the budget whose replay diverges (or the other way round) differs by its status alone
    run_file = specs[1].run_dir() / cmp.RUN_FILE
    run_file.write_text(json.dumps({**record, "status": "ok"}))
    assert cli.main(["compare", "--verify", "1", "--log-folder", str(tmp_path), "--no-progress"]) == 0
    verified = json.loads((tmp_path / "verify.json").read_text())
    entry = verified["rows"]["blowup Pendulum-v1"][0]
    assert not verified["identical"] and not entry["identical"] and entry["differs"] == "status ok -> diverged"
    assert verified["rows"]["tutorial_sac Pendulum-v1"][0]["identical"]


def test_zoo_schedule_defaults_rows_provenance_and_verify(tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    # --schedule zoo: SAC's lin_ schedule runs over the zoo's 20,000 steps and training stops at the budget of 300;
    # a defaults row trains from TutorialSAC's constructor defaults (not the yml entry); every record names its code
    sac = cmp.Variant("sac_lin", "sac", {"learning_rate": "lin_1e-3"})
    defaults = cmp.Variant("defaults", "tutorial_sac", {"reward_shift": 0.0}, defaults=True)
    specs = cmp.make_specs([sac, defaults], ["Pendulum-v1"], [0], 300, 150, 1, tmp_path, schedule="zoo")
    assert specs[0].protocol()["schedule"] == "zoo" and specs[1].protocol()["defaults"] is True
    assert "schedule" not in cmp.make_specs([sac], ["Pendulum-v1"], [0], 300, 150, 1, tmp_path)[0].protocol()
    for spec in specs:
        record = cmp.train_one(spec)
        assert record["status"] == "ok", record.get("traceback")
        assert record["env_steps"] == 300
        provenance = record["provenance"]
        assert provenance["versions"]["stable-baselines3"] and provenance["threads"] == 1 and provenance["cpu"]
        assert provenance["commit"] is None or len(provenance["commit"]) == 40
    config = yaml.load((specs[0].run_dir() / "Pendulum-v1" / "config.yml").read_text(), Loader=yaml.UnsafeLoader)
    assert config["schedules"]["learning_rate"].startswith("lin_1e-3: linear from 1e-3 to 0 over the zoo's 20000 env steps")
    from stable_baselines3 import SAC

    model = SAC.load(specs[0].run_dir() / "Pendulum-v1.zip")
    assert model.actor.optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * (1 - 299 / 20000))
    assert json.loads((specs[1].run_dir() / cmp.RUN_FILE).read_text())["hyperparams"].startswith("tutorial_sac defaults")
    assert json.loads((specs[1].run_dir() / cmp.RUN_FILE).read_text())["provenance"]["engine"]
    # --verify 1: the replay of each row on this code gives the same evaluations
    args = ["compare", "--verify", "1", "--log-folder", str(tmp_path), "--jobs", "1", "--no-progress"]
    assert cli.main(args) == 0
    verified = json.loads((tmp_path / "verify.json").read_text())
    assert verified["identical"] and set(verified["rows"]) == {"sac_lin Pendulum-v1", "defaults Pendulum-v1"}
    assert verified["verified_on"]["cpu"] == provenance["cpu"] == verified["rows"]["sac_lin Pendulum-v1"][0]["record_cpu"]
    assert "another CPU model" not in capsys.readouterr().out
    # A record of another CPU model whose replay differs: the command says a replay is bit-identical only there
    run_file = specs[0].run_dir() / cmp.RUN_FILE
    record = json.loads(run_file.read_text())
    record["provenance"]["cpu"] = "Other CPU"
    run_file.write_text(json.dumps(record))
    with np.load(specs[0].run_dir() / "evaluations.npz") as data:
        arrays = {key: data[key] for key in data.files}
    np.savez(specs[0].run_dir() / "evaluations.npz", **{**arrays, "results": arrays["results"] + 1.0})
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "Replayed 2 runs (1 seeds per row): 1 identical" in out
    assert f"recorded on another CPU model (Other CPU; this one: {provenance['cpu']}): a replay is bit-identical" in out
    verified = json.loads((tmp_path / "verify.json").read_text())
    assert verified["rows"]["sac_lin Pendulum-v1"][0] == {
        "seed": 0,
        "record_version": version_of(record),
        "record_cpu": "Other CPU",
        "identical": False,
        "differs": "results",
    }
    # The same difference on this machine's CPU model: no such sentence (the code or the setup changed)
    verified["rows"]["sac_lin Pendulum-v1"][0]["record_cpu"] = provenance["cpu"]
    assert other_cpus(verified) == []
    # The report read the schedule back from the records and states it
    protocol = next(line for line in (tmp_path / "compare.md").read_text().splitlines() if line.startswith("Protocol:"))
    assert "its lin_ schedules run over the zoo's n_timesteps and training stops at the budget" in protocol
    assert "scales its lin_ schedules" not in protocol


def test_protocol_line_states_the_schedule_and_an_unknown_schedule_is_refused(tmp_path: pathlib.Path) -> None:
    from sb3_tutorial_sac.compare.grid import protocol_note

    budget = protocol_note(300, 150, 2, [0, 1])
    assert budget.startswith("Protocol: 300 env steps per run, training stopped at that step for every algorithm")
    assert "every 150 env steps, 2 episodes with the deterministic and 2 with the stochastic policy; seeds 0, 1;" in budget
    assert "(a budget below the zoo's n_timesteps scales its lin_ schedules to the budget;" in budget
    zoo = protocol_note(300, 150, 2, [0, 1], schedule="zoo", engine="compiled")
    assert "(its lin_ schedules run over the zoo's n_timesteps and training stops at the budget;" in zoo
    assert zoo.endswith("TutorialSAC's rows train with `engine='compiled'` (each run's provenance names the engine it used).")
    sac = cmp.Variant("sac", "sac")
    with pytest.raises(ValueError, match=r"schedule='Zoo': the schedule is one of 'budget', 'zoo'"):
        cmp.make_specs([sac], ["Pendulum-v1"], [0], 300, 150, 1, tmp_path, schedule="Zoo")
    with pytest.raises(SystemExit):
        cli.main(["compare", "--schedule", "zoo_steps", "--log-folder", str(tmp_path)])


def test_engine_option_reaches_tutorial_sac_rows_only(tmp_path: pathlib.Path) -> None:
    # --engine sets TutorialSAC(engine=...) of the tutorial_sac rows: their protocol and config.yml record it, the
    # model trains with it (provenance); a SAC row has no engine, so its protocol stays as before
    from sb3_tutorial_sac.compare.runs import _hyperparams

    tutorial = cmp.Variant("tuned", "tutorial_sac", {"reward_scale": 0.25})
    rows = [tutorial, cmp.Variant("sac", "sac")]
    specs = cmp.make_specs(rows, ["Pendulum-v1"], [0], 300, 150, 1, tmp_path, engine="reference")
    assert specs[0].protocol()["engine"] == "reference" and "engine" not in specs[1].protocol()
    assert _hyperparams(specs[0]) == {"reward_scale": 0.25, "engine": "reference"} and _hyperparams(specs[1]) == {}
    assert "engine" not in cmp.make_specs([tutorial], ["Pendulum-v1"], [0], 300, 150, 1, tmp_path)[0].protocol()
    record = cmp.train_one(specs[0])
    assert record["status"] == "ok", record.get("traceback")
    assert record["provenance"]["engine"] == "ReferenceEngine" and record["provenance"]["engine_setting"] == "reference"
    config = yaml.load((specs[0].run_dir() / "Pendulum-v1" / "config.yml").read_text(), Loader=yaml.UnsafeLoader)
    assert config["engine"] == "reference"
    with pytest.raises(ValueError, match=r"engine='jit': TutorialSAC's engine is one of 'auto', .*'compiled'"):
        cmp.make_specs([tutorial], ["Pendulum-v1"], [0], 300, 150, 1, tmp_path, engine="jit")
    with pytest.raises(SystemExit):  # argparse names the option and its choices
        cli.main(["compare", "--engine", "jit", "--log-folder", str(tmp_path)])


def _flat(values: dict[str, list[float]], steps=(1000, 2000)) -> dict[str, list[list[tuple[int, float, float]]]]:
    """Curves whose every evaluation point has the run's one value (seconds = steps / 1000)."""
    return {a: [[(t, t / 1000, v) for t in steps] for v in runs] for a, runs in values.items()}


def test_separated_samples_of_3_runs_are_inconclusive() -> None:
    # Every tutorial_sac run above every sac run, paired by seed: the exact signed-rank test cannot reject at 3
    # paired seeds (smallest two-sided p = 2/8), so the sentence is inconclusive and says how many seeds would decide
    evaluations, runs = _curves(_flat({"tutorial_sac": [-150.0, -155.0, -160.0], "sac": [-300.0, -310.0, -320.0]}))
    sentence = cmp.headline(evaluations, runs, threshold=None).splitlines()[0]
    assert sentence.startswith(
        "- tutorial_sac vs sac, final score, deterministic: inconclusive (difference +155.0 return [150.0, 160.0] "
        "(3 paired seeds, tutorial_sac better in 3), signed-rank p = 0.250, Holm p = 0.250;"
    )
    assert sentence.endswith("paired seeds would decide at this effect, 80% power at level 0.05).")
    # The same separation at 10 paired seeds: decided (p = 2 / 2^10)
    ten = _flat({"tutorial_sac": [-150.0 - i for i in range(10)], "sac": [-300.0 - i for i in range(10)]})
    evaluations, runs = _curves(ten)
    assert cmp.headline(evaluations, runs, threshold=None).splitlines()[0] == (
        "- tutorial_sac vs sac, final score, deterministic: tutorial_sac ends higher than sac (difference +150.0 return "
        "[150.0, 150.0] (10 paired seeds, tutorial_sac better in 10), signed-rank p = 0.002, Holm p = 0.002; about 6 "
        "paired seeds give 80% power at this effect at level 0.05)."
    )


def test_the_seeds_a_verdict_needs_are_sized_at_holms_strictest_level() -> None:
    # Three rows: 3 contrasts per family, so a verdict is judged after Holm over 3 tests. a ends above b in 9 of 10
    # seeds (signed-rank p = 0.004, Holm p = 0.012), and the seed count is sized at 0.05 / 3, not at 0.05: a count
    # sized at 0.05 could be below the seeds at hand while the corrected test stays inconclusive
    gaps = [3.0, 5.0, 1.0, 4.0, 6.0, 2.0, 7.0, 8.0, -1.0, 9.0]
    values = {
        "tutorial_sac": [-150.0 + g for g in gaps],
        "sac": [-150.0] * 10,
        "all_fixes": [-150.0 - 50.0 * i for i in range(10)],
    }
    evaluations, runs = _curves(_flat(values))
    results = verdicts.analyse(evaluations, ["tutorial_sac", "sac", "all_fixes"], "Pendulum-v1", None)
    first = next(r for r in results if (r.x, r.y, r.mode, r.kind) == ("tutorial_sac", "sac", "deterministic", "difference"))
    assert first.family_size == 3
    assert first.effect == pytest.approx(np.mean(gaps) / np.std(gaps, ddof=1))
    assert first.seeds_needed == paired.seeds_needed(np.array(gaps), np.zeros(10), alpha=0.05 / 3)
    assert first.seeds_needed > paired.seeds_needed(np.array(gaps), np.zeros(10))  # the uncorrected count is smaller
    assert paired.min_seeds(0.05 / 3) == 7  # 2 / 2^7 < 0.0167 <= 2 / 2^6
    line = cmp.headline(evaluations, runs, threshold=None).splitlines()[0]
    assert line.startswith("- tutorial_sac vs sac, final score, deterministic: tutorial_sac ends higher than sac")
    assert f"; about {int(first.seeds_needed)} paired seeds give 80% power at this effect at level 0.05/3)" in line


def test_reaching_first_is_paired_and_uses_cpu_seconds() -> None:
    # 6 seeds each; tutorial_sac reaches -200 at 1000 steps in every run, sac at 3000; seconds = steps / 1000 for
    # tutorial_sac, 2x sac's steps / 1000
    steps = (1000, 2000, 3000)
    tutorial = [[(t, t / 1000, -150.0) for t in steps] for _ in range(6)]
    sac = [[(1000, 2.0, -900.0), (2000, 4.0, -500.0), (3000, 6.0, -100.0 - i)] for i in range(6)]
    evaluations, runs = _curves({"tutorial_sac": tutorial, "sac": sac})
    lines = cmp.headline(evaluations, runs, threshold=-200.0, last=1).splitlines()
    # every per-seed difference is -2,000 steps: p = 2 / 2^6
    assert (
        "- tutorial_sac vs sac, env steps to -200, deterministic: tutorial_sac reaches -200 in fewer env steps than sac "
        "(difference -2,000 env steps [-2,000, -2,000] (6 paired seeds, tutorial_sac better in 6), signed-rank p = 0.031, "
        "Holm p = 0.031; about 6 paired seeds give 80% power at this effect at level 0.05)." in lines
    )
    cpu = "- tutorial_sac vs sac, CPU s to -200, deterministic: tutorial_sac reaches -200 in fewer CPU s"
    assert any(line.startswith(cpu) for line in lines)
    assert lines[0].startswith("- tutorial_sac vs sac, final score, deterministic: sac ends higher than tutorial_sac")
    # Two runs each: never decided, whatever the separation; the report's first line says why
    evaluations, runs = _curves({"tutorial_sac": tutorial[:2], "sac": sac[:2]})
    assert "inconclusive (difference -2,000 env steps" in cmp.headline(evaluations, runs, -200.0)


def test_a_run_evaluated_past_the_budget_is_scored_at_the_common_points(tmp_path: pathlib.Path) -> None:
    # tutorial_sac seed 0 trained past the budget (an old record): an extra evaluation at 3,450 steps with a high
    # return. Every run is scored at the last 2 common points (2,000 and 3,000), and the curves end there too.
    steps = (1000, 2000, 3000)
    tutorial = [[(1000, 1.0, -900.0), (2000, 2.0, -400.0), (3000, 3.0, -300.0), (3450, 3.5, -100.0)]]
    tutorial += [[(t, t / 1000, -350.0) for t in steps]]
    sac = [[(t, t / 1000, v) for t in steps] for v in (-250.0, -260.0)]
    evaluations, runs = _curves({"tutorial_sac": tutorial, "sac": sac})
    assert cmp.common_steps(evaluations) == [1000, 2000, 3000]
    assert cmp.scoring_steps(evaluations, last=2) == [2000, 3000]
    scores = cmp.scores(evaluations, last=2)
    assert scores[("tutorial_sac", 0, "deterministic")] == pytest.approx(-350.0)  # mean(-400, -300), not -100
    assert scores[("sac", 1, "stochastic")] == pytest.approx(-260.0)
    rows = cmp.summarise(evaluations, runs, None, last=2)
    assert rows[0]["mean_deterministic"] == pytest.approx(-350.0)
    markdown = cmp.write_report(evaluations, runs, tmp_path, "past", last=2)
    assert (
        "1 of the 2 `tutorial_sac` runs were recorded before training stopped at the budget and trained to 3,450" in markdown
    )
    assert "its mean evaluation return at env steps 2,000, 3,000 (the last 2 evaluation points that every run has" in markdown
    curves = cmp.plots.step_curves(evaluations[evaluations["mode"] == "deterministic"], cmp.common_steps(evaluations))
    assert list(curves["tutorial_sac"].columns) == [1000, 2000, 3000]


def test_seconds_curves_on_a_common_time_grid() -> None:
    # Each run's return at time t is its last evaluation at or before t; NaN before the first, its last after its end
    evaluations, _ = _curves({"a": [[(1000, 1.0, -500.0), (2000, 3.0, -200.0)], [(1000, 2.0, -400.0), (2000, 2.5, -300.0)]]})
    data = evaluations[evaluations["mode"] == "deterministic"]
    grid = np.array([0.5, 1.0, 2.0, 2.5, 2.9, 3.0, 3.5])
    curves = cmp.plots.time_curves(data, "train_cpu_seconds", grid)
    # after a run's last evaluation, its final return (the band reaches the algorithm's last evaluation)
    np.testing.assert_array_equal(curves["a"][0], [np.nan, -500.0, -500.0, -500.0, -500.0, -200.0, -200.0])
    np.testing.assert_array_equal(curves["a"][1], [np.nan, np.nan, -400.0, -300.0, -300.0, -300.0, -300.0])
    # each algorithm's time grid ends at its own last evaluation (3.0 s for "a")
    grids = cmp.plots.time_grids(data, "train_cpu_seconds")
    assert grids["a"][-1] == pytest.approx(3.0) and grids["a"][0] == pytest.approx(1.0)


def test_rank_test_and_bootstrap() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=6), rng.normal(0.5, size=5)
    # Without ties the exact permutation test of U is the exact Mann-Whitney test
    p, method = cmp.stats.rank_test(x, y)
    assert method == "exact U"
    tied_x, tied_y = np.append(x, y[0]), y  # one value shared: the permutation test
    p_tied, method_tied = cmp.stats.rank_test(tied_x, tied_y)
    assert method_tied == "exact permutation" and 0 < p_tied <= 1
    from scipy import stats

    perm = stats.permutation_test((x, y), cmp.stats._u_statistic, permutation_type="independent", n_resamples=np.inf,
                                  vectorized=True, alternative="two-sided", axis=-1)  # fmt: skip
    assert p == pytest.approx(perm.pvalue)
    assert cmp.stats.rank_test([1.0, 1.0], [1.0, 1.0]) == (1.0, "exact permutation")
    # With ties, the splits enumerated by hand give scipy's p; and they take a row of one run, which scipy refuses
    # (a grid seen half-way, the reference at one seed shared with the row's only run)
    tied = stats.permutation_test((tied_x, tied_y), cmp.stats._u_statistic, permutation_type="independent",
                                  n_resamples=np.inf, vectorized=True, alternative="two-sided", axis=-1)  # fmt: skip
    assert p_tied == pytest.approx(tied.pvalue) and cmp.stats._split_test(tied_x, tied_y) == pytest.approx(tied.pvalue)
    with pytest.raises(ValueError, match="two or more observations"):
        stats.permutation_test(([5.0, 5.0, 5.0], [1.0]), cmp.stats._u_statistic, permutation_type="independent",
                               n_resamples=np.inf, vectorized=True, alternative="two-sided", axis=-1)  # fmt: skip
    # [5, 5, 5] vs [1]: P = 1 for the observed split, 1/3 for the 3 splits with the 1 among X: two-sided 2 x 1/4
    assert cmp.stats.rank_test([5.0, 5.0, 5.0], [1.0]) == (pytest.approx(0.5), "exact permutation")
    assert cmp.stats.rank_test([1300.75, 2417.0], [1300.75])[0] == pytest.approx(1.0)
    # Seeded: the same interval every time; another seed moves it little at 50,000 resamples
    first = cmp.bootstrap_ci(cmp.iqm, x)
    assert cmp.bootstrap_ci(cmp.iqm, x) == first and cmp.BOOTSTRAP_REPS == 50_000
    other = cmp.bootstrap_ci(cmp.iqm, x, seed=1)
    assert abs(other[0] - first[0]) < 0.05 and abs(other[1] - first[1]) < 0.05
    # The endpoints are values the statistic took (empirical quantiles): P on 3 x 3 runs is a multiple of 1/18
    low, high = cmp.bootstrap_ci(cmp.probability_of_improvement, x[:3], y[:3], axis=-1)
    assert (low * 18) == pytest.approx(round(low * 18)) and (high * 18) == pytest.approx(round(high * 18))
    # Times that are never reached (inf) give an interval, not NaN
    assert cmp.bootstrap_ci(cmp.stats.median, [1000.0, np.inf, np.inf])[1] == np.inf
    assert [cmp.stats.iqm_count(n) for n in (3, 4, 5, 10, 12)] == [3, 2, 3, 6, 6]


def test_aggregate_metrics_against_hand_computations(tmp_path: pathlib.Path) -> None:
    from sb3_tutorial_sac.compare import aggregate as agg

    pendulum, lunar = agg.TASK_SCORES["Pendulum-v1"], agg.TASK_SCORES["LunarLanderContinuous-v3"]
    assert "benchmark.md" in pendulum.reference_source and "random policy" in pendulum.random_source
    # Per task: the random policy 0, the committed reference score 1 (not the sample's own mean)
    raw = {
        "Pendulum-v1": {"tutorial_sac": [-150.0, -170.0, -600.0, -160.0], "sac": [-160.0, -180.0, -200.0, -170.0]},
        "LunarLanderContinuous-v3": {"tutorial_sac": [0.0, 50.0], "sac": [100.0, 200.0]},
    }
    normalised = agg.normalise(raw)
    np.testing.assert_allclose(
        normalised["Pendulum-v1"]["tutorial_sac"],
        (np.array([-150, -170, -600, -160]) - pendulum.random) / (pendulum.reference - pendulum.random),
    )
    np.testing.assert_allclose(
        normalised["LunarLanderContinuous-v3"]["sac"], (np.array([100.0, 200.0]) - lunar.random) / lunar.span
    )
    rows, pairs = agg.aggregate(normalised)
    # Tasks weighted equally: Pendulum's 4 runs weigh 1/8 each, LunarLander's 2 runs 1/4 each; the IQM is the
    # weighted mean of the middle half of the weight
    values = np.concatenate([normalised[e]["tutorial_sac"] for e in normalised])
    weights = np.array([1 / 8] * 4 + [1 / 4] * 2)
    order = np.argsort(values)
    v, w = values[order], weights[order]
    upper = np.cumsum(w)
    inside = np.clip(np.minimum(upper, 0.75) - np.maximum(upper - w, 0.25), 0, None)
    assert rows[0]["algorithm"] == "tutorial_sac" and rows[0]["runs"] == [4, 2]
    assert rows[0]["iqm"] == pytest.approx((v * inside).sum() / 0.5)
    assert rows[0]["ci"][0] <= rows[0]["iqm"] <= rows[0]["ci"][1]
    # With equal runs per task (a multiple of 4), the weighted IQM is rliable's trim_mean of all runs
    equal = [np.array([1.0, 2.0, 3.0, 10.0]), np.array([0.0, 5.0, 6.0, 7.0])]
    assert agg.weighted_iqm(equal) == pytest.approx(cmp.stats.iqm(np.concatenate(equal)))
    # P(tutorial_sac > sac): Pendulum 1 + 2.5 + 0 + 1.5 of 16 = 5/16... counted below; LunarLander 0 of 4
    p_pendulum = float(cmp.stats.probability_of_improvement(raw["Pendulum-v1"]["tutorial_sac"], raw["Pendulum-v1"]["sac"]))
    assert pairs[0]["x"] == "tutorial_sac" and pairs[0]["p"] == pytest.approx((p_pendulum + 0.0) / 2)
    # Performance profile: the mean over tasks of each task's fraction of runs above tau
    profile = agg.performance_profile([normalised[e]["tutorial_sac"] for e in normalised], taus=[0.0, 2.0])
    expected = np.mean([(normalised[e]["tutorial_sac"] > 0).mean() for e in normalised])
    np.testing.assert_allclose(profile, [expected, 0.0])
    with pytest.raises(ValueError, match="no random and reference scores for CartPole-v1"):
        agg.normalise({"CartPole-v1": {"tutorial_sac": [1.0]}})
    # The random-policy score is what random_score() prints
    assert agg.random_score("Pendulum-v1") == pytest.approx(pendulum.random)


def test_report_of_several_tasks_has_the_aggregate(tmp_path: pathlib.Path) -> None:
    pendulum, runs_p = _curves(_flat({"tutorial_sac": [-150.0, -170.0, -600.0], "sac": [-160.0, -180.0, -200.0]}))
    lunar, runs_l = _curves(_flat({"tutorial_sac": [0.0, 50.0], "sac": [100.0, 200.0]}))
    lunar, runs_l = (t.assign(env="LunarLanderContinuous-v3") for t in (lunar, runs_l))
    evaluations, runs = pd.concat([pendulum, lunar]), pd.concat([runs_p, runs_l])
    markdown = cmp.write_report(evaluations, runs, tmp_path, "two")
    assert "## Across tasks" in markdown and "| tutorial_sac | 5 (3 + 2) |" in markdown
    assert "| tutorial_sac | sac | 0.28 [" in markdown  # (5/9 + 0) / 2
    assert "weighted equally" in markdown and "reference -157.0 (rl-zoo3 benchmark.md, SAC, Pendulum-v1" in markdown
    assert (tmp_path / "two_profile_deterministic.png").stat().st_size > 10_000
    # The same from the two folders' tables (--aggregate), one of them an ablation's (its grid has SAC beside it)
    for table, folder, stem in ((pendulum, tmp_path / "p", "compare"), (lunar, tmp_path / "l", "ablation")):
        folder.mkdir()
        table.to_csv(folder / f"{stem}_evaluations.csv", index=False)
    assert cli.main(["compare", "--aggregate", str(tmp_path / "p"), str(tmp_path / "l"), "--log-folder", str(tmp_path)]) == 0
    across = (tmp_path / "aggregate.md").read_text()
    assert "| tutorial_sac | sac | 0.28 [" in across
    assert "From the evaluation tables `p/compare_evaluations.csv`, `l/ablation_evaluations.csv`." in across
    with pytest.raises(ValueError, match=r"--aggregate: .*none/compare_evaluations.csv does not exist"):
        cmp.grid.aggregate_folders([tmp_path / "p", tmp_path / "none"], tmp_path)


def test_hyperparameter_provenance() -> None:
    from sb3_tutorial_sac.compare.provenance import origin

    assert origin("sac", "Pendulum-v1") == "rl-zoo3's tuned `sac.yml` entry (learning_rate 0.001; SB3 defaults otherwise)"
    assert (
        origin("sac", "InvertedPendulum-v5")
        == "the algorithm's defaults (rl-zoo3's `sac.yml` has no InvertedPendulum-v5 entry)"
    )
    assert "seed 0, which is one of the comparison seeds" in origin("tutorial_sac", "MountainCarContinuous-v0")
    assert origin("tutorial_sac", "Pendulum-v1", {"reward_scale": 0.25}).endswith("; changed here: reward_scale=0.25")


# Every committed grid: its folder under benchmarks/runs/ holds the records, the report and the command that made it;
# an across-task folder holds the aggregate of committed grids and the command that made it
REPO = pathlib.Path(__file__).parents[1]
COMMITTED_GRIDS = sorted((REPO / "benchmarks" / "runs").glob("*/report_command.txt"))


def _report_commands(path: pathlib.Path) -> list[list[str]]:
    """The commands of a ``report_command.txt``, one per line: the folder's report, then any report of a subset of its
    rows (``--algos``/``--variants``, written under its own names)."""
    return [shlex.split(line) for line in path.read_text().splitlines() if line.strip()]


def _aggregate_sources(args: list[str]) -> list[str]:
    """The folders an ``--aggregate`` report command reads (empty for a grid's ``--report-only``)."""
    if "--aggregate" not in args:
        return []
    return args[args.index("--aggregate") + 1 : args.index("--log-folder")]


def test_committed_grids_name_their_report_command() -> None:
    assert {path.parent.name for path in COMMITTED_GRIDS} >= {"Pendulum-v1", "Pendulum-v1-ablation"}
    grids = {f"benchmarks/runs/{path.parent.name}" for path in COMMITTED_GRIDS}
    for path in COMMITTED_GRIDS:
        args, *subsets = _report_commands(path)
        own = f"benchmarks/runs/{path.parent.name}"
        sources = _aggregate_sources(args)
        if sources:
            # across tasks: committed grids only, each rebuilt by its own command, and no other option
            assert args == ["sb3-tutorial-sac", "compare", "--aggregate", *sources, "--log-folder", own] and not subsets
            assert len(sources) >= 2 and set(sources) <= grids - {own}
            assert not any(_aggregate_sources(_report_commands(REPO / s / "report_command.txt")[0]) for s in sources)
            continue
        # the grid is read from the records: no other option than the folder
        assert args == ["sb3-tutorial-sac", "compare", "--report-only", "--log-folder", own]
        for subset in subsets:  # then a subset of its rows, under its own names: only the rows named besides
            head, selection, tail = subset[:3], subset[3:-2], subset[-2:]
            assert head == args[:3] and tail == args[3:] and selection[0] in ("--algos", "--variants"), subset
            assert not [word for word in selection if word.startswith("-") and word not in ("--algos", "--variants")]
        # every record names the code that made it, or the folder holds a replay that verified the runs
        records = [json.loads(p.read_text()) for p in path.parent.rglob(cmp.RUN_FILE)]
        assert len(records) >= 10
        unknown = [r for r in records if not (r.get("provenance") or {}).get("commit")]
        if unknown:
            assert json.loads((path.parent / "verify.json").read_text())["identical"]


def _results_grid_commands() -> list[list[str]]:
    """The commands of ``benchmarks/RESULTS.md`` that train (or resume) a grid under ``benchmarks/runs/``."""
    text = (REPO / "benchmarks" / "RESULTS.md").read_text()
    commands = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.DOTALL | re.MULTILINE):
        for line in re.sub(r"\s*\\\n\s*", " ", block).splitlines():
            if not line.startswith("sb3-tutorial-sac compare"):
                continue
            words = shlex.split(line.split(" #", 1)[0])
            if not {"--report-only", "--verify", "--aggregate"} & set(words):
                if any(word.startswith("benchmarks/runs/") for word in words):
                    commands.append(words)
    return commands


def test_results_commands_make_the_committed_records() -> None:
    # Each grid command RESULTS.md gives (to run or resume a grid) makes exactly the runs its folder holds: every
    # finished record is one of the command's runs, with the same protocol and in the same place, so the command
    # resumes the grid instead of starting another one beside it
    import argparse

    from sb3_tutorial_sac.compare.cli import _rows, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    checked = set()
    for words in _results_grid_commands():
        args = parser.parse_args(words[2:])
        variants, envs, _, _ = _rows(args)
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        folder = REPO / args.log_folder
        specs = cmp.make_specs(
            variants, envs, seeds, args.budget, args.eval_freq, args.eval_episodes, folder, schedule=args.schedule or "budget",
            engine=args.engine or "auto",
        )  # fmt: skip
        by_dir = {spec.run_dir(): spec for spec in specs}
        for path in folder.rglob(cmp.RUN_FILE):
            record = json.loads(path.read_text())
            assert path.parent in by_dir, f"{path}: not a run of `{shlex.join(words)}`"
            assert record["protocol"] == by_dir[path.parent].protocol(), path
            checked.add(folder.name)
    grids = {"Pendulum-v1", "Pendulum-v1-ablation", "LunarLanderContinuous-v3-100k", "MuJoCo-v5-100k", "Hopper-v5-100k"}
    assert grids <= checked


def test_episode_lengths_count_the_training_episodes_that_reach_the_time_limit(tmp_path: pathlib.Path) -> None:
    # benchmarks/episode_lengths.py reads each finished run's monitor file (SB3's Monitor writes it): a run of
    # Pendulum-v1 (limit 200) with episodes of 3, 200, 20 and 200 steps has 2 at the limit, its longest 200
    from stable_baselines3.common.monitor import ResultsWriter

    script = REPO / "benchmarks" / "episode_lengths.py"
    for label, lengths in (("short", [3, 200, 20, 200]), ("other", [7])):
        run = tmp_path / label / "Pendulum-v1_0"
        run.mkdir(parents=True)
        writer = ResultsWriter(str(run / "0"), header={"t_start": 0.0, "env_id": "Pendulum-v1"})
        for length in lengths:
            writer.write_row({"r": -1.0, "l": length, "t": 0.1})
        writer.close()
        protocol = {"algo": "tutorial_sac", "env": "Pendulum-v1", "seed": 0}
        (run / cmp.RUN_FILE).write_text(json.dumps({"status": "ok", "label": label, "protocol": protocol}))

    def lines(*args: str) -> list[str]:
        command = [sys.executable, str(script), "--log-folder", str(tmp_path), *args]
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()

    assert lines("--row", "short")[3:] == ["| short | Pendulum-v1 | 0 | 4 | 200 | 200 | 2 |"]
    assert lines("--limit", "20")[3:] == [
        "| other | Pendulum-v1 | 0 | 1 | 7 | 20 | 0 |",
        "| short | Pendulum-v1 | 0 | 4 | 200 | 20 | 1 |",
    ]
    result = subprocess.run(
        [sys.executable, str(script), "--log-folder", str(tmp_path), "--row", "nope"], capture_output=True, text=True
    )
    assert result.returncode == 1 and result.stderr.strip() == f"{tmp_path}: no finished run of the rows ['nope']"
    # A record of a task gymnasium does not register here needs --limit, and the error says so
    unknown = tmp_path / "unknown" / "NoSuchTask-v0_0"
    shutil.copytree(tmp_path / "other" / "Pendulum-v1_0", unknown)
    protocol = {"algo": "tutorial_sac", "env": "NoSuchTask-v0", "seed": 0}
    (unknown / cmp.RUN_FILE).write_text(json.dumps({"status": "ok", "label": "unknown", "protocol": protocol}))
    command = [sys.executable, str(script), "--log-folder", str(tmp_path), "--row", "unknown"]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr.startswith("--limit: NoSuchTask-v0 is not a registered environment")
    assert result.stderr.strip().endswith("give the time limit")
    assert lines("--row", "unknown", "--limit", "7")[3:] == ["| unknown | NoSuchTask-v0 | 0 | 1 | 7 | 7 | 1 |"]
    # The committed Hopper-v5 records give what RESULTS.md quotes: at seed 0 no training episode of
    # timeouts_as_terminals reached the 1,000-step limit (the longest 455 steps), so the switch never acted; at seed 1,
    # 4 did
    folder = REPO / "benchmarks" / "runs" / "Hopper-v5-100k"
    command = [sys.executable, str(script), "--log-folder", str(folder), "--row", "timeouts_as_terminals"]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()
    assert "| timeouts_as_terminals | Hopper-v5 | 0 | 811 | 455 | 1,000 | 0 |" in out
    assert [line.split(" | ")[-1] for line in out if line.startswith("| timeouts_as_terminals | Hopper-v5 | 1 |")] == ["4 |"]
    results = (REPO / "benchmarks" / "RESULTS.md").read_text()
    assert (
        "python benchmarks/episode_lengths.py --log-folder benchmarks/runs/Hopper-v5-100k --row timeouts_as_terminals"
        in results
    )


@pytest.mark.expensive
@pytest.mark.parametrize("command_file", COMMITTED_GRIDS, ids=lambda path: path.parent.name)
def test_report_only_rebuilds_the_committed_report(command_file: pathlib.Path, tmp_path: pathlib.Path) -> None:
    # The committed records alone give the committed report, byte for byte (seeded bootstrap, no clock); an
    # aggregate reads the committed grids' evaluation tables where they lie
    folder = tmp_path / command_file.parent.name
    commands = [command[1:] for command in _report_commands(command_file)]
    sources = _aggregate_sources(commands[0])
    if not sources:
        shutil.copytree(command_file.parent, folder)
    for args in commands:  # the folder's report, then each subset's (report_command.txt's lines, in order)
        args = [str(REPO / arg) if arg in sources else arg for arg in args]
        args[args.index("--log-folder") + 1] = str(folder)
        assert cli.main(args) == 0
    reports = [p for p in command_file.parent.iterdir() if p.is_file() and p.suffix in (".md", ".csv", ".png")]
    assert len(reports) >= (3 if sources else 4)
    for committed in reports:
        assert (folder / committed.name).read_bytes() == committed.read_bytes(), committed.name
