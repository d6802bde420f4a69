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


@pytest.mark.parametrize(("cls", "kwargs"), ALGORITHMS)
def test_n_step_replay_buffer_round_trip(tmp_path, cls, kwargs):
    """save_replay_buffer and load_replay_buffer keep an NStepReplayBuffer with its n_steps and gamma, as SB3's SAC
    does (SB3 pickles the buffer; TutorialSAC writes it as data): the loaded buffer samples the same n-step returns."""
    model = cls("MlpPolicy", _env(), seed=0, n_steps=3, gamma=0.9, buffer_size=500, **copy.deepcopy(kwargs))
    model.learn(150)
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    loaded = cls("MlpPolicy", _env(), seed=1, buffer_size=10, **copy.deepcopy(kwargs))  # one-step, another size
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    mine, theirs = model.replay_buffer, loaded.replay_buffer
    assert (type(theirs).__name__, theirs.n_steps, theirs.gamma, theirs.buffer_size, theirs.pos, theirs.full) == (
        "NStepReplayBuffer", 3, 0.9, 500, 150, False,
    )
    indices = np.arange(0, 150, 7)
    first, second = (buffer._get_samples(indices) for buffer in (mine, theirs))
    for name in ("observations", "actions", "next_observations", "dones", "rewards", "discounts"):
        assert np.array_equal(getattr(first, name).numpy(), getattr(second, name).numpy()), name


def test_n_step_replay_buffer_meta_is_checked(tmp_path):
    model = TutorialSAC("MlpPolicy", _env(), seed=0, n_steps=3, **ALGORITHMS[1].values[1])
    model.learn(20)
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    with np.load(tmp_path / "buffer.pkl", allow_pickle=False) as archive:
        arrays = dict(archive)
    meta = json.loads(str(arrays.pop("meta")[()]))
    assert (meta["class"], meta["n_steps"], meta["gamma"]) == ("NStepReplayBuffer", 3, 0.99)
    for change, message in ((dict(gamma=2.0), "gamma=2.0, not a number in"), (dict(n_steps=0), "n_steps=0, not an")):
        with open(tmp_path / "crafted.pkl", "wb") as file:
            np.savez(file, meta=np.array(json.dumps({**meta, **change})), **arrays)
        with pytest.raises(ValueError, match=message):
            model.load_replay_buffer(tmp_path / "crafted.pkl")
