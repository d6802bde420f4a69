"""rl-zoo3's conventions as rl-zoo3 and SB3 themselves read them (issue 32): the ``default:`` entry of
``hyperparams/tutorial_sac.yml``, folders written with ``normalize`` that ``python -m rl_zoo3.enjoy`` reads (SB3's
pickled ``vecnormalize.pkl``) while this package reads only the JSON beside it, and Optuna trials reported with
TutorialSAC's argument names."""

import argparse
import json
import os
import pathlib
import pickle
import shlex
import subprocess
import sys

import gymnasium as gym
import optuna
import pytest
import yaml

pytest.importorskip("rl_zoo3", reason="rl-zoo3 integration needs the zoo extra: pip install '.[zoo]'")

import rl_zoo3.utils
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from sb3_tutorial_sac import TutorialSAC, zoo
from tests.envs import BoxTargetEnv
from tests.helpers import Payload

REPO = pathlib.Path(__file__).resolve().parent.parent
ENV = "Pendulum-v1"
UNLISTED = "TutorialSACUnlistedBoxTarget-v0"  # a Box task that hyperparams/tutorial_sac.yml does not list

pytestmark = pytest.mark.filterwarnings("ignore:The replay buffer holds")


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "SDL_VIDEODRIVER": "dummy", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}


def run(args: list[str], cwd: pathlib.Path, timeout: float = 180) -> subprocess.CompletedProcess:
    result = subprocess.run(args, cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def zoo_train(algo: str, logs: pathlib.Path, *extra: str) -> pathlib.Path:
    """``sb3-tutorial-sac-zoo train`` of ``algo`` on Pendulum-v1 with ``normalize``, 200 steps, in a subprocess."""
    run(
        [sys.executable, "-m", "sb3_tutorial_sac.zoo", "train", "--algo", algo, "--env", ENV, "-n", "200", "--seed", "0",
         "--num-threads", "1", "-f", str(logs), "--eval-freq", "-1", "-params", "normalize:True", *extra],
        cwd=logs.parent,
    )  # fmt: skip
    return logs / algo / f"{ENV}_1" / ENV


# --------------------------------------------------------------------------------------------- the default: entry


def test_yaml_has_a_default_entry_without_pendulums_reward_normalisation():
    entries = yaml.safe_load(zoo.hyperparams_path("tutorial_sac").read_text())
    default = entries["default"]
    assert default["policy"] == "MlpPolicy" and default["n_timesteps"] > 0
    assert (default["reward_shift"], default["reward_scale"]) == (0.0, 1.0)
    assert UNLISTED not in entries and "CartPole-v1" not in entries


@pytest.fixture()
def unlisted_env():
    gym.register(UNLISTED, entry_point=BoxTargetEnv, kwargs=dict(episode_length=16))
    yield UNLISTED
    gym.registry.pop(UNLISTED, None)


def test_an_env_the_yaml_does_not_list_trains_with_the_default_entry(unlisted_env, tmp_path, capsys, recwarn):
    zoo.main(["train", "--algo", "tutorial_sac", "--env", unlisted_env, "-n", "64", "--seed", "0", "--num-threads", "1",
              "-f", str(tmp_path / "logs"), "--eval-freq", "-1"])  # fmt: skip
    assert "Using 'default' hyperparameters" in capsys.readouterr().out
    model = TutorialSAC.load(tmp_path / "logs" / "tutorial_sac" / f"{unlisted_env}_1" / f"{unlisted_env}.zip")
    assert model.num_timesteps == 64 and (model.reward_shift, model.reward_scale) == (0.0, 1.0)
    config = yaml.load((tmp_path / "logs" / "tutorial_sac" / f"{unlisted_env}_1" / unlisted_env / "config.yml").read_text(),
                       Loader=yaml.UnsafeLoader)  # rl-zoo3's own file of this test's making  # fmt: skip
    assert dict(config)["handle_timeout_termination"] is True
    # the default entry sets the reward switches: no warning about Pendulum's normalisation
    assert not [w for w in recwarn if "reward_shift" in str(w.message)]


def test_a_discrete_env_shows_tutorial_sacs_own_error(tmp_path):
    with pytest.raises(ValueError, match=r"TutorialSAC supports only continuous Box action spaces.*Discrete\(2\)"):
        zoo.main(["train", "--algo", "tutorial_sac", "--env", "CartPole-v1", "-n", "64", "--num-threads", "1",
                  "-f", str(tmp_path / "logs"), "--eval-freq", "-1"])  # fmt: skip


# --------------------------------------------------------------------------------- folders rl-zoo3 itself reads


@pytest.mark.parametrize("algo", ["tutorial_sac", "td3"])
def test_rl_zoo3s_own_enjoy_reads_a_normalize_folder(algo, tmp_path):
    """A folder written by ``sb3-tutorial-sac-zoo train`` with ``normalize`` holds SB3's pickle under rl-zoo3's name,
    which rl-zoo3's own ``rl_zoo3.enjoy`` module (not this package's wrapper) reads."""
    folder = zoo_train(algo, tmp_path / "logs")
    with open(folder / "vecnormalize.pkl", "rb") as file:
        assert isinstance(pickle.load(file), VecNormalize)  # SB3's format
    assert json.loads((folder / "vecnormalize.json").read_text())["format"] == zoo.VECNORMALIZE_FORMAT
    enjoy = ["--algo", algo, "--env", ENV, "-f", str(tmp_path / "logs"), "--no-render", "-n", "50"]
    if algo == "td3":
        result = run([sys.executable, "-m", "rl_zoo3.enjoy", *enjoy], cwd=tmp_path)
    else:  # rl-zoo3's command line lists only its own algorithms: tutorial_sac registered, then rl-zoo3's module
        code = (
            "import runpy, sys; from sb3_tutorial_sac import zoo; zoo.register(); "
            f"sys.argv = ['rl_zoo3.enjoy', *{enjoy!r}]; runpy.run_module('rl_zoo3.enjoy', run_name='__main__')"
        )
        result = run([sys.executable, "-c", code], cwd=tmp_path)
    assert "Loading running average" in result.stdout


def test_this_package_reads_the_json_beside_the_pickle_never_the_pickle(tmp_path):
    saved = VecNormalize(make_vec_env(ENV, n_envs=1), clip_obs=5.0, gamma=0.9)
    saved.obs_rms.mean[:] = [1.0, 2.0, 3.0]
    zoo.save_vec_normalize(saved, tmp_path / "vecnormalize.pkl")
    with open(tmp_path / "vecnormalize.pkl", "rb") as file:
        assert (pickle.load(file).obs_rms.mean == [1.0, 2.0, 3.0]).all()  # SB3's VecNormalize.load reads it
    assert (VecNormalize.load(str(tmp_path / "vecnormalize.pkl"), make_vec_env(ENV, n_envs=1)).obs_rms.mean == [1, 2, 3]).all()
    sentinel = tmp_path / "pwned"
    (tmp_path / "vecnormalize.pkl").write_bytes(pickle.dumps(Payload(sentinel)))
    loaded = zoo.load_vec_normalize(tmp_path / "vecnormalize.pkl", make_vec_env(ENV, n_envs=1))
    assert (loaded.obs_rms.mean == [1.0, 2.0, 3.0]).all() and loaded.clip_obs == 5.0
    assert not sentinel.exists()
    # the pickle alone (a plain rl-zoo3 folder): refused without trust
    (tmp_path / "vecnormalize.json").unlink()
    with pytest.raises(zoo.RefusedError, match=r"is a pickle .*vecnormalize.json.*--trusted"):
        zoo.load_vec_normalize(tmp_path / "vecnormalize.pkl", make_vec_env(ENV, n_envs=1))
    assert not sentinel.exists()


def test_checkpoint_statistics_have_their_own_json():
    assert zoo.vec_normalize_data_path("a/vecnormalize.pkl") == pathlib.Path("a/vecnormalize.json")
    assert zoo.vec_normalize_data_path("a/vecnormalize_200_steps.pkl") == pathlib.Path("a/vecnormalize_200_steps.json")
    assert zoo.vec_normalize_data_path("a/stats") == pathlib.Path("a/stats.json")


# ---------------------------------------------------------------------------------------- Optuna, TutorialSAC's names


def test_a_trial_is_recorded_with_tutorial_sacs_argument_names():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    hyperparams = zoo.sample_tutorial_sac_params(trial, n_actions=1, n_envs=1, additional_args={})
    assert {"batch_size_pow", "ent_coef_init", "net_width"} <= set(trial.params)  # the sampler's names
    attrs = trial.user_attrs
    assert attrs["batch_size"] == 2 ** trial.params["batch_size_pow"] == hyperparams["batch_size"]
    assert attrs["ent_coef"] == f"auto_{trial.params['ent_coef_init']}" == hyperparams["ent_coef"]
    width = trial.params["net_width"]
    assert eval(attrs["policy_kwargs"]) == dict(net_arch=dict(pi=[width], qf=[width, width]))
    # the params attribute, pasted after train, is read by the zoo's -params (StoreDict) into TutorialSAC's arguments
    parser = argparse.ArgumentParser()
    parser.add_argument("-params", "--hyperparams", type=str, nargs="+", action=rl_zoo3.utils.StoreDict)
    parsed = parser.parse_args(shlex.split(attrs["params"])).hyperparams
    assert parsed == hyperparams
    assert not {"batch_size_pow", "ent_coef_init", "net_width"} & set(parsed)
    TutorialSAC("MlpPolicy", ENV, **parsed)  # every name is a constructor argument
