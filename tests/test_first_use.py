"""What a new user meets first (issue 32): the warnings for settings that would otherwise act silently, pointed at
the user's line, and the ``sb3-tutorial-sac train`` command line (the yml entry, the file name, the step count)."""

import json
import pathlib
import warnings

import pytest
import torch as th
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import OrnsteinUhlenbeckActionNoise

from sb3_tutorial_sac import TutorialSAC
from sb3_tutorial_sac.cli import main as cli_main
from tests.envs import BoxTargetEnv

pytestmark = pytest.mark.filterwarnings("ignore:The replay buffer holds")

THIS_FILE = pathlib.Path(__file__).resolve()
TINY = dict(net_arch=[8])
REWARD_WARNING = "TutorialSAC normalises sampled rewards as"


def box_env():
    return make_vec_env(lambda: BoxTargetEnv(episode_length=10), n_envs=1, seed=0)


def caught(make, match: str = "") -> list[warnings.WarningMessage]:
    """The warnings ``make()`` gives whose message contains ``match`` (not the ResourceWarnings of objects that other
    tests left to the garbage collector, which may run inside ``make()``)."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        make()
    return [w for w in record if match in str(w.message) and not issubclass(w.category, ResourceWarning)]


def assert_at_this_file(found: list[warnings.WarningMessage]) -> None:
    assert found, "no warning"
    for w in found:
        assert pathlib.Path(w.filename).resolve() == THIS_FILE, (w.filename, w.lineno, str(w.message)[:80])


# ---------------------------------------------------------------------------------- Pendulum's reward normalisation


def test_pendulum_keeps_the_tutorials_reward_normalisation_without_a_warning():
    found = caught(lambda: TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY), REWARD_WARNING)
    assert not found
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY)
    assert (model.reward_shift, model.reward_scale) == (8.0, 0.125)
    assert type(model.reward_shift) is float and type(model.ent_coef_learning_rate) is float  # plain numbers saved


@pytest.mark.parametrize("env", ["MountainCarContinuous-v0", "box"])
def test_other_envs_warn_naming_the_switch_at_the_users_line(env):
    found = caught(lambda: TutorialSAC("MlpPolicy", box_env() if env == "box" else env, policy_kwargs=TINY), REWARD_WARNING)
    assert_at_this_file(found)
    message = str(found[0].message)
    assert "reward_shift" in message and "reward_scale" in message and "Pendulum-v1" in message
    assert ("MountainCarContinuous-v0" if env != "box" else "not a registered one") in message


@pytest.mark.parametrize("given", [dict(reward_shift=0.0), dict(reward_scale=1.0), dict(reward_shift=8.0, reward_scale=0.125)])
def test_no_reward_warning_once_the_user_sets_them(given):
    model = None

    def make():
        nonlocal model
        model = TutorialSAC("MlpPolicy", "MountainCarContinuous-v0", policy_kwargs=TINY, **given)

    assert not caught(make, REWARD_WARNING)
    assert model.reward_shift == given.get("reward_shift", 8.0)  # type: ignore[union-attr]


def test_loading_a_model_gives_no_setting_warning(tmp_path):
    model = TutorialSAC("MlpPolicy", box_env(), policy_kwargs=TINY, ent_coef=0.1, ent_coef_loss="sb3")
    model.save(tmp_path / "model")
    assert not caught(lambda: TutorialSAC.load(tmp_path / "model", env=box_env()), "TutorialSAC normalises")
    assert not caught(lambda: TutorialSAC.load(tmp_path / "model", env=box_env()), "fixes alpha")


# ------------------------------------------------------------------------------------------------- the temperature


def test_ent_coef_auto_with_the_tutorial_loss_warns():
    found = caught(lambda: TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, ent_coef="auto"), "ent_coef='auto'")
    assert_at_this_file(found)
    assert "ent_coef_loss='sb3'" in str(found[0].message) and "0 of 10" in str(found[0].message)
    quiet = caught(lambda: TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, ent_coef="auto", ent_coef_loss="sb3"))
    assert not quiet, [str(w.message) for w in quiet]
    assert not caught(lambda: TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, ent_coef="auto_0.5"))


@pytest.mark.parametrize(
    "given, named",
    [
        (dict(ent_coef_loss="sb3"), ["ent_coef_loss='sb3'"]),
        (dict(ent_coef_learning_rate=1e-3), ["ent_coef_learning_rate=0.001"]),
        (dict(ent_coef_loss="sb3", ent_coef_learning_rate=3e-4), ["ent_coef_loss='sb3'", "ent_coef_learning_rate=0.0003"]),
    ],
)
def test_a_fixed_ent_coef_warns_that_the_temperature_knobs_are_ignored(given, named):
    found = caught(lambda: TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, ent_coef=0.05, **given), "fixes alpha")
    assert_at_this_file(found)
    assert all(name in str(found[0].message) for name in named)


def test_a_fixed_ent_coef_alone_is_quiet():
    assert not caught(lambda: TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, ent_coef=0.05))


# --------------------------------------------------------------------------------------- sb3-tutorial-sac train


def cli_json(capsys, *args: str) -> dict:
    assert cli_main(["train", "--no-progress-bar", "--eval-episodes", "1", "--json", *args]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_cli_train_uses_the_yml_entry_of_the_env(tmp_path, capsys):
    output = tmp_path / "car.zip"
    summary = cli_json(capsys, "--env", "MountainCarContinuous-v0", "--timesteps", "10", "--output", str(output))
    assert summary["hyperparams"] == "tutorial_sac.yml"
    model = TutorialSAC.load(output)
    assert (model.reward_shift, model.reward_scale, model.gamma, model.entropy_term) == (0.0, 0.1, 0.9999, "correct")
    assert model.policy_kwargs["net_arch"] == dict(pi=[64, 64], qf=[64, 64])
    assert isinstance(model.action_noise, OrnsteinUhlenbeckActionNoise)


def test_cli_train_defaults_ignores_the_entry(tmp_path, capsys):
    output = tmp_path / "car.zip"
    with pytest.warns(UserWarning, match=REWARD_WARNING):
        summary = cli_json(
            capsys, "--env", "MountainCarContinuous-v0", "--timesteps", "10", "--defaults", "--output", str(output)
        )
    assert summary["hyperparams"] == "defaults"
    assert TutorialSAC.load(output).reward_shift == 8.0


def test_cli_train_prints_the_file_it_wrote_and_why_the_steps_round_up(tmp_path, capsys):
    output = tmp_path / "cli_model"
    assert cli_main(["train", "--timesteps", "250", "--no-progress-bar", "--eval-episodes", "1", "--output", str(output)]) == 0
    out = capsys.readouterr().out
    assert f"saved to          {output}.zip\n" in out and (tmp_path / "cli_model.zip").is_file()
    # Pendulum-v1's episodes are 200 steps, collected whole: 400 steps for 250
    assert "TutorialSAC on Pendulum-v1: 400 env steps" in out
    assert "(400 for 250 asked: train_freq=(1, 'episode') collects whole episodes" in out


# ------------------------------------------------------------------------------- the compiled engine, as a user sees it


def failing_compile_step(*args, **kwargs):
    raise RuntimeError("no C++ compiler")


def test_compiled_with_tanh_warns_and_trains_with_the_reference_engine():
    from torch import nn

    from sb3_tutorial_sac.engines import ReferenceEngine

    model = None

    def make():
        nonlocal model
        tanh = dict(net_arch=[8], activation_fn=nn.Tanh)
        model = TutorialSAC("MlpPolicy", "Pendulum-v1", engine="compiled", policy_kwargs=tanh)

    found = caught(make, "compiled engine cannot be used")
    assert_at_this_file(found)
    message = str(found[0].message)
    assert "Linear + ReLU" in message and "Training uses the reference engine" in message
    assert type(model.update_engine) is ReferenceEngine  # type: ignore[union-attr]


def test_after_a_failed_compile_update_engine_reports_the_fast_engine(monkeypatch):
    import sb3_tutorial_sac.engines.compiled.engine as compiled_module
    from sb3_tutorial_sac.engines import FastEngine
    from sb3_tutorial_sac.engines.compiled.engine import CompiledEngine

    monkeypatch.setattr(compiled_module, "compile_step", failing_compile_step)
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", engine="compiled", policy_kwargs=TINY, seed=0)
    assert type(model.update_engine) is CompiledEngine
    found = caught(lambda: model.learn(200), "compiled engine cannot be used")
    assert_at_this_file(found)  # the user's learn() line, not SB3's off_policy_algorithm.py
    assert type(model.update_engine) is FastEngine
    assert not caught(lambda: model.learn(200, reset_num_timesteps=False), "compiled engine")  # warned once
    # the fast engine's update, bit for bit, across the switch
    fast = TutorialSAC("MlpPolicy", "Pendulum-v1", engine="fast", policy_kwargs=TINY, seed=0)
    fast.learn(200)
    fast.learn(200, reset_num_timesteps=False)
    for mine, theirs in zip(model.policy.parameters(), fast.policy.parameters()):
        assert th.equal(mine, theirs)


def test_the_compiled_engine_says_it_compiles_at_verbose_1(monkeypatch, capsys):
    import sb3_tutorial_sac.engines.compiled.engine as compiled_module

    def quick_compile_step(spec, inputs, rewrites, configs):  # the eager loop stands in for the package
        from sb3_tutorial_sac.engines.compiled.rewrites import loop_function

        function = loop_function(spec)
        return (lambda values: list(function(*values))), False

    monkeypatch.setattr(compiled_module, "compile_step", quick_compile_step)
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", engine="compiled", policy_kwargs=TINY, seed=0, verbose=1)
    model.learn(200, log_interval=None)
    out = capsys.readouterr().out
    assert "compiled engine: compiling the gradient step for this model's configuration (once on this machine" in out
    assert "TutorialSAC's compiled engine: compiled in" in out
    quiet = TutorialSAC("MlpPolicy", "Pendulum-v1", engine="compiled", policy_kwargs=TINY, seed=0, verbose=0)
    quiet.learn(200)
    assert "compiled engine" not in capsys.readouterr().out


def test_the_several_envs_warning_points_at_the_users_line():
    env = make_vec_env(lambda: BoxTargetEnv(episode_length=10), n_envs=2, seed=0)
    model = TutorialSAC("MlpPolicy", env, policy_kwargs=TINY, reward_shift=0.0, batch_size=8)
    found = caught(lambda: model.learn(40), "collects whole episodes, which SB3 supports only with one env")
    assert_at_this_file(found)


# ------------------------------------------------------------------------------------------------ smaller first-use items


def test_an_unknown_policy_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match=r"Policy 'MLPPolicy' unknown \(did you mean 'MlpPolicy'.*'MlpPolicy', 'CnnPolicy', "
                                         r"'MultiInputPolicy'"):  # fmt: skip
        TutorialSAC("MLPPolicy", "Pendulum-v1")


def test_loading_a_model_saved_with_tensorboard_log_is_quiet_until_learn(tmp_path):
    pytest.importorskip("tensorboard", reason="learn() with tensorboard_log needs the tensorboard extra")
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, tensorboard_log=str(tmp_path / "tb"))
    model.save(tmp_path / "model")
    assert not caught(lambda: TutorialSAC.load(tmp_path / "model"), "tensorboard_log")  # to predict: nothing to say
    loaded = TutorialSAC.load(tmp_path / "model", env=make_vec_env("Pendulum-v1", n_envs=1))
    assert loaded.tensorboard_log is None
    found = caught(lambda: loaded.learn(1), "tensorboard_log")
    assert_at_this_file(found)
    assert not caught(lambda: loaded.learn(1, reset_num_timesteps=False), "tensorboard_log")  # once
    kept = TutorialSAC.load(tmp_path / "model", env=make_vec_env("Pendulum-v1", n_envs=1), tensorboard_log=str(tmp_path))
    assert not caught(lambda: kept.learn(1), "tensorboard_log")


def test_tensorboard_is_a_user_extra():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]

    extras = tomllib.loads((THIS_FILE.parent.parent / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(requirement.startswith("tensorboard") for requirement in extras["tensorboard"])
    quickstart = (THIS_FILE.parent.parent / "docs" / "guide" / "quickstart.md").read_text()
    assert 'pip install ".[tensorboard]"' in quickstart


def test_what_sb3s_sac_can_and_cannot_read_is_as_the_docs_say(tmp_path):
    """docs/guide/interop.md, "What SB3's own SAC can read": the model file and the replay buffer file."""
    import pickle
    import zipfile

    import numpy as np
    from stable_baselines3 import SAC

    model = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, seed=0)
    model.learn(200)
    model.save(tmp_path / "model")
    model.save_replay_buffer(tmp_path / "buffer")
    with pytest.raises(KeyError, match="observation_space and action_space were not given"):
        SAC.load(tmp_path / "model.zip")
    with zipfile.ZipFile(tmp_path / "model.zip") as archive, archive.open("policy.pth") as file:
        import io

        state = th.load(io.BytesIO(file.read()), weights_only=True)
    assert set(state) == set(model.policy.state_dict())
    assert (tmp_path / "buffer.pkl").is_file()  # SB3's name, an npz archive
    with pytest.raises(pickle.UnpicklingError):
        SAC("MlpPolicy", "Pendulum-v1", buffer_size=1000).load_replay_buffer(tmp_path / "buffer.pkl")
    stored = np.load(tmp_path / "buffer.pkl", allow_pickle=False)
    assert stored["observations"].shape == (200, 1, 3) and "meta" in stored.files
    assert np.abs(stored["actions"]).max() > 1.0  # the environment's units (Pendulum: [-2, 2])


def test_interop_and_readme_say_what_net_arch_switches():
    root = THIS_FILE.parent.parent
    for page in (root / "README.md", root / "docs" / "modules" / "tutorial_sac.md"):
        row = next(line for line in page.read_text().splitlines() if line.startswith("| actor |"))
        assert "widths only" in row and "Softplus std head stays" in row, page


def test_plot_train_says_when_a_run_is_shorter_than_its_window(tmp_path):
    pytest.importorskip("pandas", reason="SB3's load_results (monitor files) needs pandas, which the zoo extra brings")
    from stable_baselines3.common.monitor import Monitor

    from sb3_tutorial_sac import zoo

    run = tmp_path / "logs" / "tutorial_sac" / "Pendulum-v1_1"
    run.mkdir(parents=True)
    env = Monitor(BoxTargetEnv(episode_length=5), str(run / "0"))
    env.reset(seed=0)
    for _ in range(3 * 5):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    env.close()
    args = ["-a", "tutorial_sac", "-e", "Pendulum-v1", "-f", str(tmp_path / "logs")]
    (hint,) = zoo._short_runs_hints(args)
    assert "has 3 episodes, fewer than the smoothing window (-w 100)" in hint and "Pass -w 1" in hint
    assert zoo._short_runs_hints([*args, "-w", "2"]) == []
