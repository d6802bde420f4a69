"""rl-zoo3 integration (``sb3_tutorial_sac.zoo``): train, enjoy, plots and Optuna tuning of ``tutorial_sac`` from
``hyperparams/tutorial_sac.yml``, other zoo algorithms untouched. Tiny budgets: behaviour, not learning (learning
checks are in the rl-zoo3 section of ``benchmarks/RESULTS.md``). The zoo's scripts run in subprocesses, as from the
command line."""

import argparse
import copy
import importlib.util
import os
import pathlib
import subprocess
import sys

import numpy as np
import optuna
import pytest
import yaml

pytest.importorskip("rl_zoo3", reason="rl-zoo3 integration needs the zoo extra: pip install '.[zoo]'")

import rl_zoo3.enjoy
import rl_zoo3.exp_manager
import rl_zoo3.hyperparams_opt
import rl_zoo3.train
import rl_zoo3.utils
from stable_baselines3 import SAC
from stable_baselines3.common.type_aliases import TrainFreq, TrainFrequencyUnit

from sb3_tutorial_sac import TutorialSAC, zoo
from tests.helpers import train_args, zoo_cli

REPO = pathlib.Path(__file__).resolve().parent.parent
TOP_LEVEL_YAML = REPO / "hyperparams" / "tutorial_sac.yml"
ENV = "Pendulum-v1"
BOX2D_ENVS = {"LunarLanderContinuous-v3", "BipedalWalker-v3"}
MUJOCO_ENVS = {"InvertedPendulum-v5", "Hopper-v5", "HalfCheetah-v5", "Walker2d-v5"}
# What -optimize samples (trial.params), the variant's own knobs
TUNED = {
    "learning_rate",
    "critic_learning_rate",
    "ent_coef_learning_rate",
    "ent_coef_init",
    "reward_shift",
    "reward_scale",
    "batch_size_pow",
    "net_width",
    "entropy_term",
    "handle_timeout_termination",
}


def missing_extra(env_id: str) -> str | None:
    """Why ``env_id`` cannot be built here (its extra is not installed), or None."""
    if env_id in BOX2D_ENVS and importlib.util.find_spec("Box2D") is None:
        return "needs the box2d extra (pip install '.[box2d]')"
    if env_id in MUJOCO_ENVS and importlib.util.find_spec("mujoco") is None:
        return "needs the mujoco extra (pip install '.[mujoco]')"
    return None


# (overrides tests/conftest.py's fixture of the same name, a tiny model: here two zoo runs)
@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    """Two 400-step zoo runs (seeds 3, 4) of tutorial_sac on Pendulum-v1 with the default hyperparameters file,
    evaluated every 200 steps (two runs: the zoo's all_plots aggregates over runs)."""
    folder = tmp_path_factory.mktemp("zoo_train")
    for seed in ("3", "4"):
        args = train_args("tutorial_sac", folder / "logs", "-n", "400", "--eval-freq", "200", "--eval-episodes", "2")
        zoo_cli(*args, "--seed", seed, cwd=folder)
    return folder / "logs"


# ---------------------------------------------------------------------------------------------------------------
# Registration and the hyperparameters file
# ---------------------------------------------------------------------------------------------------------------


def test_register_adds_tutorial_sac_only() -> None:
    tables = (rl_zoo3.utils.ALGOS, rl_zoo3.hyperparams_opt.HYPERPARAMS_SAMPLER, rl_zoo3.hyperparams_opt.HYPERPARAMS_CONVERTER)
    before = [{key: value for key, value in table.items() if key != zoo.ALGO} for table in tables]
    zoo.register()
    zoo.register()  # idempotent
    for table, others in zip(tables, before):
        assert {key: value for key, value in table.items() if key != zoo.ALGO} == others
    assert rl_zoo3.utils.ALGOS["tutorial_sac"] is TutorialSAC
    assert rl_zoo3.utils.ALGOS["sac"] is SAC
    assert rl_zoo3.hyperparams_opt.HYPERPARAMS_SAMPLER["tutorial_sac"] is zoo.sample_tutorial_sac_params
    assert rl_zoo3.hyperparams_opt.HYPERPARAMS_CONVERTER["tutorial_sac"] is zoo.convert_tutorial_sac_params
    # Every zoo module that looks the algorithm up sees it (the scripts choose --algo among ALGOS' keys)
    for module in (rl_zoo3, rl_zoo3.train, rl_zoo3.enjoy, rl_zoo3.exp_manager):
        assert module.ALGOS["tutorial_sac"] is TutorialSAC
    assert rl_zoo3.exp_manager.HYPERPARAMS_SAMPLER["tutorial_sac"] is zoo.sample_tutorial_sac_params


def test_hyperparams_path() -> None:
    path = zoo.hyperparams_path("tutorial_sac")
    assert path.is_file() and path.name == "tutorial_sac.yml"
    assert path.read_text() == TOP_LEVEL_YAML.read_text()
    entries = yaml.safe_load(path.read_text())
    # The tutorial's exact setup: 20,000 steps, nothing but TutorialSAC's defaults
    assert entries["Pendulum-v1"] == {"n_timesteps": 20000, "policy": "MlpPolicy"}
    sac = zoo.hyperparams_path("sac")
    assert sac == pathlib.Path(rl_zoo3.__file__).resolve().parent / "hyperparams" / "sac.yml"
    assert "Pendulum-v1" in yaml.safe_load(sac.read_text())


def test_default_conf_file_and_explicit_one_wins() -> None:
    ours = str(zoo.hyperparams_path("tutorial_sac"))
    args = ["--algo", "tutorial_sac", "--env", ENV]
    assert zoo._with_default_conf_file(args) == [*args, "--conf-file", ours]
    for explicit in (["--conf-file", "x.yml"], ["-conf", "x.yml"], ["--conf", "x.yml"]):
        assert zoo._with_default_conf_file([*args, *explicit]) == [*args, *explicit]
    for other in (["--algo", "sac"], ["--env", ENV]):  # any other algorithm (ppo by default): the zoo's own file
        assert zoo._with_default_conf_file(other) == other


# "default" is rl-zoo3's entry for every task the file does not list (tests/test_zoo_conventions.py)
@pytest.mark.parametrize("env_id", sorted(set(yaml.safe_load(TOP_LEVEL_YAML.read_text())) - {"default"}))
def test_every_yaml_entry_builds(env_id: str, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reason = missing_extra(env_id)
    if reason is not None:
        pytest.skip(f"{env_id} {reason}")
    monkeypatch.chdir(tmp_path)  # MuJoCo writes its warnings to MUJOCO_LOG.TXT in the working directory
    from rl_zoo3.exp_manager import ExperimentManager

    zoo.register()
    entry = yaml.safe_load(TOP_LEVEL_YAML.read_text())[env_id]
    config = str(zoo.hyperparams_path("tutorial_sac"))
    manager = ExperimentManager(argparse.Namespace(), "tutorial_sac", env_id, str(tmp_path), seed=0, verbose=0, config=config)
    model, saved = manager.setup_experiment()  # type: ignore[misc]
    try:
        assert isinstance(model, TutorialSAC)
        assert model.get_env().envs[0].unwrapped.spec.id == env_id  # type: ignore[union-attr]
        assert saved["n_timesteps"] == manager.n_timesteps == entry["n_timesteps"] > 0
        for key in (
            "reward_shift",
            "reward_scale",
            "batch_size",
            "learning_starts",
            "gamma",
            "critic_learning_rate",
            "entropy_term",
        ):
            if key in entry:
                assert getattr(model, key) == pytest.approx(entry[key]), key
        if "handle_timeout_termination" in entry:
            assert model.replay_buffer.handle_timeout_termination == entry["handle_timeout_termination"]
        if "noise_type" in entry:
            assert model.action_noise is not None
        # A few real steps (collection and, past the warm-up, training) with the entry's model and env
        model.learning_starts = min(model.learning_starts, 16)
        model.batch_size = min(model.batch_size, 16)
        model.train_freq = TrainFreq(16, TrainFrequencyUnit.STEP)
        model.learn(48)
        assert model.num_timesteps == 48
        action, _ = model.predict(model.get_env().reset(), deterministic=True)  # type: ignore[union-attr]
        space = model.action_space
        assert action.shape == (1, *space.shape) and np.all(action >= space.low) and np.all(action <= space.high)
    finally:
        model.get_env().close()  # type: ignore[union-attr]


# ---------------------------------------------------------------------------------------------------------------
# train / enjoy / plots, end to end
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.expensive
def test_train_writes_the_zoo_layout(trained: pathlib.Path) -> None:
    assert sorted(p.name for p in (trained / "tutorial_sac").iterdir()) == [f"{ENV}_1", f"{ENV}_2"]
    run = trained / "tutorial_sac" / f"{ENV}_1"
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["0.monitor.csv", "best_model.zip", "evaluations.npz", ENV, f"{ENV}.zip"]
    )
    evaluations = np.load(run / "evaluations.npz")
    assert evaluations["timesteps"].tolist() == [200, 400]
    assert evaluations["results"].shape == (2, 2) and np.all(evaluations["ep_lengths"] == 200)
    assert np.all(evaluations["results"] < 0)  # raw Pendulum returns
    config = yaml.load((run / ENV / "config.yml").read_text(), Loader=yaml.UnsafeLoader)
    assert dict(config) == {"n_timesteps": 20000, "policy": "MlpPolicy"}  # our YAML's Pendulum entry
    args = yaml.load((run / ENV / "args.yml").read_text(), Loader=yaml.UnsafeLoader)
    assert args["algo"] == "tutorial_sac" and args["n_timesteps"] == 400 and args["seed"] == 3
    assert args["conf_file"] == str(zoo.hyperparams_path("tutorial_sac"))  # the default for tutorial_sac
    monitor = (run / "0.monitor.csv").read_text().splitlines()
    assert len(monitor) == 2 + 2  # header lines, then two 200-step episodes
    model = TutorialSAC.load(run / f"{ENV}.zip")
    assert model.num_timesteps == 400 and model.reward_shift == 8.0 and model.batch_size == 64


@pytest.mark.expensive
def test_enjoy_runs_episodes(trained: pathlib.Path, tmp_path: pathlib.Path) -> None:
    common = ["--algo", "tutorial_sac", "--env", ENV, "-f", str(trained), "--no-render", "-n", "400", "--seed", "0"]
    for extra in ([], ["--load-best"], ["--stochastic"]):
        out = zoo_cli("enjoy", *common, *extra, cwd=tmp_path).stdout
        rewards = [float(line.split(":")[1]) for line in out.splitlines() if line.startswith("Episode Reward:")]
        assert len(rewards) == 2 and all(-2000 < reward < 0 for reward in rewards), out[-2000:]
        assert "Episode Length 200" in out


@pytest.mark.expensive
def test_record_video(trained: pathlib.Path, tmp_path: pathlib.Path) -> None:
    pytest.importorskip("moviepy", reason="record_video needs moviepy (the zoo extra)")
    args = ["--algo", "tutorial_sac", "--env", ENV, "-f", str(trained), "-n", "50", "-o", str(tmp_path / "video")]
    zoo_cli("record_video", *args, cwd=tmp_path)
    (video,) = (tmp_path / "video").glob("*.mp4")
    assert video.name.startswith("final-model-tutorial_sac-Pendulum-v1") and video.stat().st_size > 1000


@pytest.mark.expensive
def test_plots(trained: pathlib.Path, tmp_path: pathlib.Path) -> None:
    zoo_cli("plot_train", "-a", "tutorial_sac", "-e", ENV, "-f", str(trained), "-w", "1", cwd=tmp_path)
    out = tmp_path / "all_plots"
    zoo_cli("all_plots", "-a", "tutorial_sac", "-e", ENV, "-f", str(trained), "-o", str(out), "--no-display", cwd=tmp_path)
    assert out.with_suffix(".pkl").is_file()
    figure = tmp_path / "from_file.png"
    zoo_cli("plot_from_file", "-i", str(out.with_suffix(".pkl")), "-o", str(figure), "--format", "png", cwd=tmp_path)
    assert figure.stat().st_size > 0


@pytest.mark.expensive
def test_other_algorithms_keep_the_zoo_hyperparameters(tmp_path: pathlib.Path) -> None:
    zoo_cli(*train_args("sac", tmp_path / "logs", "-n", "200", "--eval-freq", "-1"), cwd=tmp_path)
    run = tmp_path / "logs" / "sac" / f"{ENV}_1"
    config = yaml.load((run / ENV / "config.yml").read_text(), Loader=yaml.UnsafeLoader)
    assert dict(config) == yaml.safe_load(zoo.hyperparams_path("sac").read_text())[ENV]
    model = SAC.load(run / f"{ENV}.zip")
    assert type(model) is SAC and model.num_timesteps == 200


@pytest.mark.expensive
def test_explicit_conf_file(tmp_path: pathlib.Path) -> None:
    conf = tmp_path / "mine.yml"
    conf.write_text(yaml.safe_dump({ENV: {"n_timesteps": 200, "policy": "MlpPolicy", "batch_size": 32, "reward_scale": 0.5}}))
    zoo_cli(*train_args("tutorial_sac", tmp_path / "logs", "--eval-freq", "-1", "--conf-file", str(conf)), cwd=tmp_path)
    model = TutorialSAC.load(tmp_path / "logs" / "tutorial_sac" / f"{ENV}_1" / f"{ENV}.zip")
    assert model.num_timesteps == 200 and model.batch_size == 32 and model.reward_scale == 0.5


def test_unknown_script() -> None:
    with pytest.raises(SystemExit, match="unknown script 'fly'"):
        zoo.main(["fly"])


# ---------------------------------------------------------------------------------------------------------------
# Optuna
# ---------------------------------------------------------------------------------------------------------------


def test_sampler_and_converter() -> None:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(5):
        trial = study.ask()
        hyperparams = zoo.sample_tutorial_sac_params(trial, 1, 1, {"using_her_replay_buffer": False, "her_kwargs": {}})
        assert set(trial.params) == TUNED
        # The zoo's --trial-id reads a trial back through the converter: the same hyperparameters
        assert zoo.convert_tutorial_sac_params(copy.deepcopy(trial.params)) == hyperparams
        assert hyperparams["ent_coef"].startswith("auto_") and hyperparams["batch_size"] in (32, 64, 128, 256, 512)
        width = trial.params["net_width"]
        assert hyperparams["policy_kwargs"] == {"net_arch": {"pi": [width], "qf": [width, width]}}
        model = TutorialSAC("MlpPolicy", ENV, **hyperparams)  # every sample is a valid TutorialSAC
        assert model.log_ent_coef.exp().item() == pytest.approx(trial.params["ent_coef_init"], rel=1e-5)
        study.tell(trial, 0.0)


def _optimize(folder: pathlib.Path, storage: str, seed: int, *extra: str) -> list[str]:
    return [
        *train_args("tutorial_sac", folder, "-n", "400"),
        "-optimize",
        "--storage",
        storage,
        "--study-name",
        "tiny",
        "--n-evaluations",
        "1",
        "--eval-episodes",
        "1",
        "--sampler",
        "random",
        "--pruner",
        "none",
        "--no-optim-plots",
        "--seed",
        str(seed),
        *extra,
    ]


@pytest.mark.expensive
def test_optimize_two_trials(tmp_path: pathlib.Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    zoo_cli(*_optimize(tmp_path / "logs", storage, 0, "--n-trials", "2"), cwd=tmp_path)
    trials = optuna.load_study(study_name="tiny", storage=storage).trials
    assert [trial.state for trial in trials] == [optuna.trial.TrialState.COMPLETE] * 2
    for trial in trials:
        assert set(trial.params) == TUNED and -2000 < trial.value < 0  # a raw Pendulum return
    assert len(list((tmp_path / "logs" / "tutorial_sac").glob("report_Pendulum-v1_2-trials-400-random-none_*.csv"))) == 1


@pytest.mark.expensive
def test_two_workers_share_one_study(tmp_path: pathlib.Path) -> None:
    storage = str(tmp_path / "study.log")  # Optuna's journal file, as the zoo reads a path ending in .log
    env = {**os.environ, "SDL_VIDEODRIVER": "dummy", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "sb3_tutorial_sac.zoo", *_optimize(tmp_path / "logs", storage, seed, "--n-trials", "2")],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for seed in (0, 1)
    ]
    outputs = [worker.communicate(timeout=180)[0] for worker in workers]
    assert [worker.returncode for worker in workers] == [0, 0], "\n".join(output[-2000:] for output in outputs)
    storage_object = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(storage))
    trials = optuna.load_study(study_name="tiny", storage=storage_object).trials
    # 2 trials per worker: 4 in the study, numbered 0-3 once each, all complete, 2 from each worker process
    assert sorted(trial.number for trial in trials) == [0, 1, 2, 3]
    assert all(trial.state == optuna.trial.TrialState.COMPLETE for trial in trials)
    assert sorted({trial.user_attrs["worker_pid"] for trial in trials}) == sorted(worker.pid for worker in workers)
    assert sorted(list(map(lambda t: t.user_attrs["worker_pid"], trials)).count(worker.pid) for worker in workers) == [2, 2]
    assert len({tuple(sorted(trial.params.items())) for trial in trials}) == 4  # no trial ran twice


# ---------------------------------------------------------------------------------------------------------------
# Installed (non-editable) package
# ---------------------------------------------------------------------------------------------------------------


@pytest.mark.expensive
def test_installed_package_finds_its_hyperparams(tmp_path: pathlib.Path) -> None:
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "wheel"), str(REPO)]
    if importlib.util.find_spec("setuptools") is not None:
        build.insert(5, "--no-build-isolation")  # no download when setuptools is already here
    subprocess.run(build, check=True, capture_output=True, timeout=180)
    (wheel,) = (tmp_path / "wheel").glob("*.whl")
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
        timeout=180,
    )
    code = "from sb3_tutorial_sac import zoo; print(zoo.__file__); print(zoo.hyperparams_path('tutorial_sac'))"
    # The installed copy comes first on the path; the working directory holds no hyperparams/ folder
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    module, path = pathlib.Path(out[0]), pathlib.Path(out[1])
    assert module.is_relative_to(target) and path == target / "sb3_tutorial_sac" / "hyperparams" / "tutorial_sac.yml"
    assert path.read_text() == TOP_LEVEL_YAML.read_text()
