"""SB3 conventions of save and load (issue 19, items 5 and 6): SB3's ``SAC`` and ``TutorialSAC`` run side by side on
the same lines, and the observable result is the same. Tiny networks, a few hundred steps."""

import copy
import json
import zipfile

import numpy as np
import pytest
from stable_baselines3 import SAC
from stable_baselines3.common.env_util import make_vec_env

from sb3_tutorial_sac import TutorialSAC

# Both algorithms one gradient step per env step, so that learn(250) stops in the middle of an episode
ALGORITHMS = [
    pytest.param(SAC, dict(policy_kwargs=dict(net_arch=[8]), learning_starts=100), id="SAC"),
    pytest.param(
        TutorialSAC,
        dict(policy_kwargs=dict(net_arch=dict(pi=[8], qf=[8, 8])), train_freq=1, gradient_steps=1),
        id="TutorialSAC",
    ),
]


def _env():
    return make_vec_env("Pendulum-v1", n_envs=1, seed=1)


def _attributes(path) -> set[str]:
    with zipfile.ZipFile(path) as archive:
        data = json.loads(archive.read("data"))
    return set(data.get("attributes", data))


@pytest.mark.parametrize(("cls", "kwargs"), ALGORITHMS)
def test_load_with_force_reset_false_continues_the_episode(tmp_path, cls, kwargs):
    model = cls("MlpPolicy", _env(), seed=0, **copy.deepcopy(kwargs))
    model.learn(250)
    assert model.num_timesteps == 250  # mid-episode (Pendulum-v1's episodes are 200 steps)
    model.save(tmp_path / "model.zip")
    assert {"_last_obs", "_last_episode_starts", "_last_original_obs"} <= _attributes(tmp_path / "model.zip")

    # no env given: the saved episode is kept
    loaded = cls.load(tmp_path / "model.zip")
    assert np.array_equal(loaded._last_obs, model._last_obs) and loaded._last_obs.dtype == model._last_obs.dtype
    # the running env given back, force_reset=False: its episode goes on from the saved observation
    resumed = cls.load(tmp_path / "model.zip", env=model.get_env(), force_reset=False)
    assert np.array_equal(resumed._last_obs, model._last_obs)
    assert np.array_equal(resumed._last_episode_starts, model._last_episode_starts)
    assert np.array_equal(resumed._last_original_obs, model._last_original_obs)
    resumed.learn(1, reset_num_timesteps=False)
    assert np.array_equal(resumed.replay_buffer.observations[0], model._last_obs)  # the first transition stored
    # a new env, force_reset=True (the default): the episode restarts from a reset
    reset = cls.load(tmp_path / "model.zip", env=_env())
    assert reset._last_obs is None


@pytest.mark.parametrize(("cls", "kwargs"), ALGORITHMS)
def test_include_wins_over_exclude(tmp_path, cls, kwargs):
    model = cls("MlpPolicy", "Pendulum-v1", seed=0, verbose=1, **copy.deepcopy(kwargs))
    model.save(tmp_path / "both.zip", exclude=["verbose"], include=["verbose"])
    model.save(tmp_path / "excluded.zip", exclude=["verbose"])
    assert "verbose" in _attributes(tmp_path / "both.zip") and "verbose" not in _attributes(tmp_path / "excluded.zip")
    assert cls.load(tmp_path / "both.zip").verbose == 1
    assert cls.load(tmp_path / "excluded.zip").verbose == 0  # the constructor's default
