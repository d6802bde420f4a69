"""``sb3-tutorial-sac compare``: the grid runs end to end, resumes, survives a failing run, gives the same report on
Ray, and its statistics equal hand-computed values. Tiny budgets: these tests check behaviour, not learning."""

import dataclasses
import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import yaml

from sb3_tutorial_sac import cli
from sb3_tutorial_sac import compare as cmp

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
    """Table rows of a report, without the timing columns (train seconds to threshold, seconds per run, env steps
    per second: wall-clock varies from run to run)."""
    rows = [line.split(" | ") for line in markdown.splitlines() if line.startswith("| ") and "---" not in line]
    return [row[:7] + row[10:] for row in rows]


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
    assert dict(config) == {"learning_rate": 0.001, "n_timesteps": 20000, "policy": "MlpPolicy"}

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
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        report, runs = cmp.compare(
            [cmp.Variant("tutorial_sac", "tutorial_sac"), cmp.Variant("sac", "sac")],
            seeds=[0, 1],
            log_folder=tmp_path,
            backend="ray",
            progress=False,
            **TINY,
        )
    finally:
        ray.shutdown()
    assert list(runs["status"]) == ["ok"] * 4
    # The files came back from the Ray workers into the same layout, and the numbers are the local ones
    assert (tmp_path / "sac/Pendulum-v1_1/Pendulum-v1.zip").is_file()
    # (but for the training seconds at each evaluation point, wall-clock)
    pd.testing.assert_frame_equal(
        pd.read_csv(tmp_path / "compare_evaluations.csv").drop(columns="train_seconds"),
        pd.read_csv(local_run / "compare_evaluations.csv").drop(columns="train_seconds"),
    )
    assert _tables(report) == _tables((local_run / "compare.md").read_text())


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
    rows = cmp.summarise(pd.read_csv(tmp_path / "synthetic.csv"), runs, threshold=-200.0, reference="A")
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
    assert b["p_improvement_deterministic"] == pytest.approx(12.5 / 16)
    # stochastic: A = [-110, -160, -200, -130]: 4 + 3 + 2 + 4 = 13 / 16
    assert b["p_improvement_stochastic"] == pytest.approx(13 / 16)
    low, high = b["p_improvement_deterministic_ci"]
    assert 0.0 <= low <= 12.5 / 16 <= high <= 1.0
    assert "p_improvement_deterministic" not in a  # no row against itself
    # Steps to -200: seeds 0, 1 reach it at 200; seeds 2, 3 at 300 if their final return is >= -200
    # A det.: seed 2 ends at -300 (never), seed 3 at -120 (300) -> [200, 200, inf, 300] -> median 250
    assert a["steps_to_threshold_deterministic"] == 250 and a["reached_deterministic"] == 3
    # A stoch.: [200, 200, 300 (-200 reaches -200), 300] -> 250; B: [200, 200, 300, inf] -> 250
    assert a["steps_to_threshold_stochastic"] == 250 and a["reached_stochastic"] == 4
    assert b["reached_deterministic"] == 3
    # Timing: means over runs of 10..13 s, 5..8 s, 300/5..300/8 steps/s
    assert a["wall_seconds"] == pytest.approx(11.5) and a["train_seconds"] == pytest.approx(6.5)
    assert a["steps_per_second"] == pytest.approx(np.mean([300 / 5, 300 / 6, 300 / 7, 300 / 8]))

    markdown = cmp.write_report(pd.read_csv(tmp_path / "synthetic.csv"), runs, tmp_path, "synthetic", reference="A")
    assert "| A | 4 | -167.5 +/- " in markdown
    assert "| 0.78 [" in markdown and "| 0.81 [" in markdown  # 12.5/16 and 13/16, two decimals
    assert "250 (3/4) / 250 (4/4)" in markdown  # Pendulum-v1's default threshold, -200
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


def test_ablation_variants_are_tutorial_sac_switches() -> None:
    from sb3_tutorial_sac import TutorialSAC

    labels = [variant.label for variant in cmp.ABLATION]
    assert labels[0] == "tutorial_sac" and not cmp.ABLATION[0].overrides and len(set(labels)) == len(labels)
    for variant in cmp.ABLATION:
        assert variant.algo == "tutorial_sac"
        TutorialSAC("MlpPolicy", "Pendulum-v1", **variant.overrides)  # every switch is a constructor argument


def _curves(curves: dict[str, list[list[tuple[int, float, float]]]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluation and run tables from hand-written curves: per algorithm, per seed, ``(env steps, training seconds,
    mean return)`` at each evaluation point (the same for both modes)."""
    rows = [
        dict(env="Pendulum-v1", algorithm=algorithm, seed=seed, timesteps=steps, train_seconds=seconds, mode=mode,
             return_mean=value, return_std=0.0, episodes=1, returns=str(value))
        for algorithm, seeds in curves.items()
        for seed, points in enumerate(seeds)
        for steps, seconds, value in points
        for mode in cmp.MODES
    ]  # fmt: skip
    runs = pd.DataFrame(
        [dict(env="Pendulum-v1", algorithm=algorithm, algo=algorithm, seed=seed, status="ok", error="", env_steps=200,
              wall_seconds=10.0, train_seconds=5.0, eval_seconds=1.0, steps_per_second=40.0)
         for algorithm, seeds in curves.items() for seed in range(len(seeds))]
    )  # fmt: skip
    return pd.DataFrame(rows), runs


def test_headline_tutorial_sac_ends_higher_sac_reaches_in_fewer_steps() -> None:
    evaluations, runs = _curves(
        {
            "tutorial_sac": [[(100, 1.0, -500.0), (200, 2.0, -150.0)], [(100, 1.0, -400.0), (200, 3.0, -160.0)]],
            "sac": [[(100, 5.0, -180.0), (200, 10.0, -170.0)], [(100, 7.0, -190.0), (200, 14.0, -180.0)]],
        }
    )
    assert cmp.headline(evaluations, runs, threshold=-200.0) == (
        "With the deterministic policy, tutorial_sac ends higher than sac (final return, IQM over runs: -155.0 against "
        "-175.0); sac reaches -200 in fewer env steps (median 100 against 200), tutorial_sac in fewer training seconds "
        "(median 2.5 s against 6.0 s)."
    )


def test_headline_sac_ends_higher_and_reaches_sooner() -> None:
    evaluations, runs = _curves(
        {
            "tutorial_sac": [[(1000, 1.0, -900.0), (2000, 3.0, -190.0)], [(1000, 1.0, -800.0), (2000, 3.0, -170.0)]],
            "sac": [[(1000, 2.0, -150.0), (2000, 4.0, -120.0)], [(1000, 2.0, -160.0), (2000, 4.0, -140.0)]],
        }
    )
    assert cmp.headline(evaluations, runs, threshold=-200.0) == (
        "With the deterministic policy, sac ends higher than tutorial_sac (final return, IQM over runs: -130.0 against "
        "-180.0); sac reaches -200 in fewer env steps (median 1,000 against 2,000) and in fewer training seconds "
        "(median 2.0 s against 3.0 s)."
    )
    # Runs written before train_seconds was recorded: the sentence says so rather than guess
    no_seconds = evaluations.assign(train_seconds=np.nan)
    assert cmp.headline(no_seconds, runs, threshold=-200.0).endswith(
        "sac reaches -200 in fewer env steps (median 1,000 against 2,000) (training seconds to it not recorded)."
    )


def test_headline_a_side_that_never_reaches_the_threshold(tmp_path: pathlib.Path) -> None:
    evaluations, runs = _curves(
        {
            "tutorial_sac": [[(100, 1.0, -900.0), (200, 2.0, -800.0)], [(100, 1.0, -700.0), (200, 2.0, -150.0)]],
            "sac": [[(100, 2.0, -400.0), (200, 4.0, -190.0)], [(100, 2.0, -300.0), (200, 4.0, -180.0)]],
        }
    )
    # tutorial_sac reaches -200 in one run of two: not in more than half, its median is "not reached"
    assert cmp.headline(evaluations, runs, threshold=-200.0) == (
        "With the deterministic policy, sac ends higher than tutorial_sac (final return, IQM over runs: -185.0 against "
        "-475.0); only sac reaches -200 in more than half of its runs (median 200 env steps, 4.0 training seconds; "
        "tutorial_sac: 1 of 2 runs)."
    )
    assert cmp.headline(evaluations, runs, threshold=-100.0).endswith(
        "; neither reaches -100 in more than half of its runs (tutorial_sac: 0 of 2 runs, sac: 0 of 2 runs)."
    )
    # In the report: the sentence under the task's heading, before the table; the seconds column beside the steps
    markdown = cmp.write_report(evaluations, runs, tmp_path, "headline")
    heading, sentence, table = (markdown.index(s) for s in ("## Pendulum-v1", "With the deterministic", "| algorithm"))
    assert heading < sentence < table
    assert "median train s to -200 (det. / stoch.) |" in markdown
    assert "| not reached (1/2) / not reached (1/2) | not reached / not reached |" in markdown
    assert "| 200 (2/2) / 200 (2/2) | 4.0 / 4.0 |" in markdown


def test_collect_reads_train_seconds_from_npz(tmp_path: pathlib.Path) -> None:
    # A run written with train_seconds and one written before they were recorded (NaN, never an error)
    specs = _specs(tmp_path, seeds=(0,))
    for spec, seconds in zip(specs, ([0.5, 1.25], None)):
        spec.run_dir().mkdir(parents=True)
        arrays = dict(timesteps=[200, 400], results=[[-900.0, -800.0], [-300.0, -100.0]],
                      results_stochastic=[[-700.0, -700.0], [-200.0, -200.0]])  # fmt: skip
        np.savez(spec.run_dir() / "evaluations.npz", **arrays, **({"train_seconds": seconds} if seconds else {}))
    evaluations, runs = cmp.collect(specs, {spec.key: {"status": "ok"} for spec in specs})
    assert list(evaluations.columns[:5]) == ["env", "algorithm", "seed", "timesteps", "train_seconds"]
    with_seconds = evaluations[evaluations["algorithm"] == "tutorial_sac"]
    assert list(with_seconds["train_seconds"]) == [0.5, 1.25, 0.5, 1.25]  # deterministic, then stochastic
    assert list(with_seconds["return_mean"]) == [-850.0, -200.0, -700.0, -200.0]
    assert evaluations.loc[evaluations["algorithm"] == "sac", "train_seconds"].isna().all()
    # The report takes both: the seconds column and the seconds panels say what is missing, nothing fails
    markdown = cmp.write_report(evaluations, runs, tmp_path, "seconds")
    assert "| 400 (1/1) / 400 (1/1) | 1.2 / 1.2 |" in markdown  # tutorial_sac: -200 reached at 400 steps, 1.25 s
    assert "| 400 (1/1) / 400 (1/1) | n/a / n/a |" in markdown  # sac: no train_seconds
    assert "(training seconds to it not recorded)" in markdown
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
