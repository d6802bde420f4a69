"""What a new user meets first (issue 32): the warnings for settings that would otherwise act silently, pointed at
the user's line, and the ``sb3-tutorial-sac train`` command line (the yml entry, the file name, the step count)."""

import json
import pathlib
import warnings

import pytest
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
    """The warnings ``make()`` gives whose message contains ``match``."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        make()
    return [w for w in record if match in str(w.message)]


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
    assert not quiet
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
        summary = cli_json(capsys, "--env", "MountainCarContinuous-v0", "--timesteps", "10", "--defaults", "--output", str(output))
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
