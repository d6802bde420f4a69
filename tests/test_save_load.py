"""Model and replay-buffer files (sb3_tutorial_sac.persistence) in normal use: small, data only, round trips of
everything training needs, SB3's conventions of save and load side by side with SAC, the trusted opt-in for SB3's
pickled format, set_parameters. Crafted files: tests/test_load_untrusted.py, test_load_values.py, test_load_bounds.py.
Tiny networks, a few hundred steps."""

import copy
import io
import json
import os
import random
import stat
import warnings
import zipfile

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise, VectorizedActionNoise
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.utils import ConstantSchedule, LinearSchedule

from sb3_tutorial_sac import TutorialSAC, buffer_files, persistence
from sb3_tutorial_sac.data import from_data, has_pickle, to_data
from tests.envs import BoxTargetEnv
from tests.helpers import TINY, small
from tests.helpers import tiny_model as _model
from tests.helpers import zip_data as _data


# ----------------------------------------------------------------------------------------------- small


def test_pendulum_files_are_small(tmp_path):
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0)  # every default: the tutorial's networks
    for steps in (0, 400):
        model.learn(steps) if steps else None
        model.save(tmp_path / "model.zip")
        with zipfile.ZipFile(tmp_path / "model.zip") as archive:
            assert archive.getinfo("data").file_size < 64 * 1024
        assert (tmp_path / "model.zip").stat().st_size < 1024 * 1024
        data = _data(tmp_path / "model.zip")
        assert data["format"] == persistence.FORMAT and data["notes"] == []
        # the allow-list: none of the engine's objects, nothing pickled
        assert set(data["attributes"]) == {*persistence.saved_attributes(TutorialSAC), "_rng_state"}
        assert not has_pickle(data)


# ----------------------------------------------------------------------------------------------- round trips


def _rng_states(model):
    return (random.getstate(), np.random.get_state(), th.get_rng_state(), model.action_space.np_random.bit_generator.state)


def test_round_trip_keeps_parameters_optimizers_and_random_states(tmp_path):
    model = _model(learning_starts=30)
    model.learn(300)
    model.action_space.sample()
    model.save(tmp_path / "model.zip")
    states = _rng_states(model)
    random.random(), np.random.rand(), th.rand(1), model.action_space.sample()  # move every generator on
    loaded = TutorialSAC.load(tmp_path / "model.zip")
    python, numpy, torch, action_space = _rng_states(loaded)
    assert python == states[0] and action_space == states[3] and th.equal(torch, states[2])
    assert numpy[0] == states[1][0] and np.array_equal(numpy[1], states[1][1]) and numpy[2:] == states[1][2:]
    for name, tensor in model.policy.state_dict().items():
        assert th.equal(tensor, loaded.policy.state_dict()[name]), name
    assert th.equal(model.log_ent_coef, loaded.log_ent_coef)
    for name in persistence.torch_save_params(model)[0][1:]:
        mine, theirs = model.get_parameters()[name], loaded.get_parameters()[name]
        assert mine["param_groups"] == theirs["param_groups"], name
        for index, values in mine["state"].items():
            for key, value in values.items():
                assert th.equal(value, theirs["state"][index][key]), (name, index, key)
    for name in ("num_timesteps", "_n_updates", "_episode_num", "_current_progress_remaining", "learning_starts"):
        assert getattr(loaded, name) == getattr(model, name), name
    assert list(loaded.ep_info_buffer) == list(model.ep_info_buffer) and loaded.ep_info_buffer.maxlen == 100


def test_round_trip_of_every_hyperparameter(tmp_path):
    """Non-default values of every kind: schedules (SB3's, rl-zoo3's), classes, tuples, action noise, a fixed alpha."""
    rl_zoo3_utils = pytest.importorskip("rl_zoo3.utils")
    env = make_vec_env(lambda: BoxTargetEnv(obs_shape=(3,), low=(-1.0, 0.0), high=(2.0, 1.0)), n_envs=2)
    base = OrnsteinUhlenbeckActionNoise(np.zeros(2), 0.3 * np.ones(2), dt=0.1)
    model = TutorialSAC(
        "MlpPolicy",
        env,
        learning_rate=ConstantSchedule(1e-3),
        critic_learning_rate=rl_zoo3_utils.SimpleLinearSchedule(2e-3),
        ent_coef_learning_rate=LinearSchedule(1e-3, 1e-4, 0.5),
        buffer_size=500,
        batch_size=16,
        train_freq=(3, "step"),
        gradient_steps=2,
        action_noise=VectorizedActionNoise(base, 2),
        sample_with_replacement=True,
        reward_shift=1.5,
        ent_coef=0.2,
        target_entropy=-0.5,
        entropy_term="correct",
        stats_window_size=7,
        policy_kwargs=dict(net_arch=dict(pi=[8], qf=[8]), activation_fn=th.nn.Tanh, optimizer_kwargs=dict(betas=(0.8, 0.9))),
        seed=3,
    )
    model.learn(60)
    model.save(tmp_path / "model.zip")
    loaded = TutorialSAC.load(tmp_path / "model.zip")
    for name in ("learning_rate", "critic_learning_rate", "ent_coef_learning_rate"):
        assert type(getattr(loaded, name)) is type(getattr(model, name)), name
        assert [getattr(loaded, name)(p) for p in (1.0, 0.6, 0.1)] == [getattr(model, name)(p) for p in (1.0, 0.6, 0.1)]
    for name in ("train_freq", "gradient_steps", "buffer_size", "batch_size", "reward_shift", "target_entropy", "ent_coef"):
        assert getattr(loaded, name) == getattr(model, name), name
    assert loaded.policy_kwargs == model.policy_kwargs and loaded.policy_kwargs["optimizer_kwargs"]["betas"] == (0.8, 0.9)
    assert loaded.actor.optimizer.param_groups[0]["betas"] == (0.8, 0.9)
    assert loaded.ent_coef_tensor.item() == pytest.approx(0.2) and loaded.log_ent_coef is None
    assert loaded.observation_space == model.observation_space and loaded.action_space == model.action_space
    noises = loaded.action_noise.noises
    assert type(noises[0]) is OrnsteinUhlenbeckActionNoise and noises[0]._dt == 0.1
    assert all(np.array_equal(a.noise_prev, b.noise_prev) for a, b in zip(noises, model.action_noise.noises))
    loaded.set_env(env)
    loaded.learn(30)


@pytest.mark.parametrize(
    "space",
    [
        spaces.Box(-np.inf, np.inf, (3,), np.float32),
        spaces.Box(np.array([-1.0, 0.0]), np.array([2.0, 5.0]), dtype=np.float64),
        spaces.Box(0, 255, (8, 8, 3), np.uint8),
        spaces.Discrete(5, start=-2),
        spaces.MultiDiscrete([3, 4], start=[1, 0]),
        spaces.MultiBinary(4),
        spaces.Dict({"a": spaces.Box(-1, 1, (2,)), "b": spaces.Discrete(3)}),
    ],
)
def test_spaces_as_data(space):
    data = to_data(space)
    json.dumps(data)
    assert from_data(json.loads(json.dumps(data)), "space") == space
    noise = from_data(to_data(NormalActionNoise(np.zeros(2), np.ones(2))), "noise")
    assert noise._sigma.tolist() == [1, 1] and noise._dtype == np.float32


def _optimizers(model):
    return {
        "actor": model.actor.optimizer,
        "critic": model.critic.optimizer,
        "ent_coef": model.ent_coef_optimizer,
    }


def test_save_load_keeps_everything_training_needs(tmp_path):
    model = small("Pendulum-v1")
    model.learn(400)
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")

    loaded = TutorialSAC.load(tmp_path / "model.zip", env=make_vec_env("Pendulum-v1", n_envs=1))
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    # all five networks and log-alpha
    for name, tensor in model.policy.state_dict().items():
        assert th.equal(tensor, loaded.policy.state_dict()[name]), name
    assert th.equal(model.log_ent_coef, loaded.log_ent_coef) and loaded.log_ent_coef.requires_grad
    # all four optimiser states (the two critics' Adams are critic.optimizer's two groups)
    for name, optimizer in _optimizers(model).items():
        state, loaded_state = optimizer.state_dict(), _optimizers(loaded)[name].state_dict()
        assert len(loaded_state["param_groups"]) == len(state["param_groups"]), name
        for index, values in state["state"].items():
            for key, value in values.items():
                assert th.equal(value, loaded_state["state"][index][key]), (name, index, key)
    assert len(loaded.critic.optimizer.param_groups) == 2
    # the optimiser states are bound to the loaded model's own parameters
    assert loaded.ent_coef_optimizer.param_groups[0]["params"][0] is loaded.log_ent_coef
    (actor_segment,) = loaded.actor.optimizer.param_groups[0]["params"]
    start, end = actor_segment.data_ptr(), actor_segment.data_ptr() + 4 * actor_segment.numel()
    assert all(start <= p.data_ptr() < end for p in loaded.actor.parameters())
    # and training continues from them: the same update on both gives the same parameters
    for m in (model, loaded):
        m.set_logger(configure(None, [""]))
        np.random.seed(3)
        th.manual_seed(3)
        m.train(50, 64)
    for name, tensor in model.policy.state_dict().items():
        assert th.equal(tensor, loaded.policy.state_dict()[name]), name
    assert th.equal(model.log_ent_coef, loaded.log_ent_coef)
    # learn(..., reset_num_timesteps=False) carries on counting
    loaded.learn(200, reset_num_timesteps=False)
    assert loaded.num_timesteps == 600 and loaded._n_updates == 650
    assert loaded.actor.optimizer.state_dict()["state"][0]["step"].item() == 650


def test_save_load_fixed_ent_coef_and_hyperparameters(tmp_path):
    model = small(
        "Pendulum-v1",
        ent_coef=0.3,
        entropy_term="correct",
        reward_shift=1.0,
        reward_scale=0.5,
        critic_learning_rate=1e-3,
        handle_timeout_termination=True,
    )
    model.save(tmp_path / "m")
    loaded = TutorialSAC.load(tmp_path / "m.zip")
    assert loaded.ent_coef_tensor.item() == pytest.approx(0.3) and loaded.log_ent_coef is None
    assert (loaded.entropy_term, loaded.reward_shift, loaded.reward_scale) == ("correct", 1.0, 0.5)
    assert loaded.critic.optimizer.param_groups[0]["lr"] == 1e-3
    assert loaded.replay_buffer.handle_timeout_termination is True


# ----------------------------------------------------------------------------------------------- replay buffers


# a Box with and without the memory-efficient buffer, a Dict (SB3's DictReplayBuffer has no memory-efficient variant)
@pytest.mark.parametrize(("optimize_memory_usage", "obs_shape"), [(False, (3,)), (True, (3,)), (False, None)])
def test_replay_buffer_round_trip(tmp_path, optimize_memory_usage, obs_shape):
    env = make_vec_env(lambda: BoxTargetEnv(obs_shape=obs_shape, episode_length=20), n_envs=2)
    policy = "MultiInputPolicy" if obs_shape is None else "MlpPolicy"
    kwargs = dict(policy_kwargs=TINY, buffer_size=60, optimize_memory_usage=optimize_memory_usage, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = TutorialSAC(policy, env, **kwargs)
        model.learn(40)
        model.save_replay_buffer(tmp_path / "buffer")
        assert zipfile.is_zipfile(tmp_path / "buffer.pkl")
        loaded = TutorialSAC(policy, env, **{**kwargs, "buffer_size": 4})
        loaded.load_replay_buffer(tmp_path / "buffer")
    mine, theirs = model.replay_buffer, loaded.replay_buffer
    assert (theirs.buffer_size, theirs.pos, theirs.full, type(theirs)) == (mine.buffer_size, mine.pos, mine.full, type(mine))
    for name, array in buffer_files._buffer_arrays(mine).items():
        assert np.array_equal(array, buffer_files._buffer_arrays(theirs)[name]), name
    assert theirs.device == loaded.device
    model.learn(100)  # wraps around: a full buffer
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    assert loaded.replay_buffer.full
    for name, array in buffer_files._buffer_arrays(model.replay_buffer).items():
        assert np.array_equal(array, buffer_files._buffer_arrays(loaded.replay_buffer)[name]), name


def test_replay_buffer_of_other_spaces_is_refused(tmp_path):
    model = _model()
    model.learn(20)
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    other = _model(BoxTargetEnv(obs_shape=(4,)))
    with pytest.raises(ValueError, match="other spaces"):
        other.load_replay_buffer(tmp_path / "buffer.pkl")


def test_an_n_step_buffer_loaded_into_a_model_that_samples_otherwise_says_so(tmp_path):
    """As in SB3 (test_n_step_replay_buffer_round_trip below), the file's buffer replaces the model's with its settings; not
    silently: a warning names each setting that changes the targets."""
    n_step = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, n_steps=3, gamma=0.9, seed=0)
    n_step.learn(300)
    path = tmp_path / "n_step.pkl"
    n_step.save_replay_buffer(path)
    cases = [
        (
            dict(),
            r"class='NStepReplayBuffer' \(this model's buffer: a ReplayBuffer\), n_steps=3 \(this model's buffer: 1\), "
            r"gamma=0.9 \(this model's gamma: 0.99\)",
        ),
        (dict(n_steps=5, gamma=0.9), r"n_steps=3 \(this model's buffer: 5\)\. As in SB3"),
        (dict(n_steps=3, gamma=0.5), r"gamma=0.9 \(this model's buffer: 0.5\)"),
        (dict(n_steps=3, gamma=0.9, handle_timeout_termination=True), r"handle_timeout_termination=False \(this model"),
    ]
    for kwargs, message in cases:
        other = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, seed=1, **kwargs)
        with pytest.warns(UserWarning, match=rf"load_replay_buffer: PosixPath\('.*n_step.pkl'\), meta gives {message}"):
            other.load_replay_buffer(path)
        assert (other.replay_buffer.n_steps, other.replay_buffer.gamma) == (3, 0.9)  # the file's, as in SB3
    same = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, n_steps=3, gamma=0.9, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same.load_replay_buffer(path)
    assert same.replay_buffer.pos == n_step.replay_buffer.pos


# --------------------------------------------------------------------------------- SB3's conventions, side by side with SAC


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
        "NStepReplayBuffer",
        3,
        0.9,
        500,
        150,
        False,
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


# ----------------------------------------------------------------------------------------------- foreign files, the opt-in


def test_load_rejects_foreign_and_broken_files(tmp_path):
    sac = SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8]))
    sac.save(tmp_path / "sac.zip")
    with pytest.raises(ValueError, match="not saved by TutorialSAC"):
        TutorialSAC.load(tmp_path / "sac.zip")

    small("Pendulum-v1").save(tmp_path / "good.zip")
    data = (tmp_path / "good.zip").read_bytes()
    (tmp_path / "truncated.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        TutorialSAC.load(tmp_path / "truncated.zip")
    (tmp_path / "text.zip").write_text("not a zip")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        TutorialSAC.load(tmp_path / "text.zip")
    # a file object works, and is read from where it stands
    buffer = io.BytesIO(data)
    assert isinstance(TutorialSAC.load(buffer), TutorialSAC)


def test_sb3_format_is_refused_by_default_and_loads_trusted(tmp_path):
    model = _model()
    model.learn(200)
    BaseAlgorithm.save(model, tmp_path / "old.zip")  # SB3's own save: pickled data entries
    with pytest.raises(ValueError, match=r"'policy_class'.*SB3's pickled format.*TutorialSAC.load\(path, trusted=True\)"):
        TutorialSAC.load(tmp_path / "old.zip")
    loaded = TutorialSAC.load(tmp_path / "old.zip", trusted=True)
    for name, tensor in model.policy.state_dict().items():
        assert th.equal(tensor, loaded.policy.state_dict()[name]), name
    assert loaded.num_timesteps == 200
    # a pickled replay buffer (SB3's save_replay_buffer)
    from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

    OffPolicyAlgorithm.save_replay_buffer(model, tmp_path / "old_buffer.pkl")
    with pytest.raises(ValueError, match="trusted=True"):
        loaded.load_replay_buffer(tmp_path / "old_buffer.pkl")
    loaded.load_replay_buffer(tmp_path / "old_buffer.pkl", trusted=True)
    assert loaded.replay_buffer.pos == 200
    # a file of another algorithm stays refused, trusted or not
    SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8])).save(tmp_path / "sac.zip")
    for trusted in (False, True):
        with pytest.raises(ValueError, match="not saved by TutorialSAC"):
            TutorialSAC.load(tmp_path / "sac.zip", trusted=trusted)


def test_include_env_needs_the_opt_in(tmp_path):
    model = _model(make_vec_env("Pendulum-v1", n_envs=1, seed=1))
    model.learn(30)
    model.save(tmp_path / "model.zip", include=["env"])
    assert "env: pickled" in _data(tmp_path / "model.zip")["notes"][0]
    with pytest.raises(ValueError, match=r"\['env'\] is a pickled object.*trusted=True"):
        TutorialSAC.load(tmp_path / "model.zip")
    resumed = TutorialSAC.load(tmp_path / "model.zip", trusted=True)
    assert np.array_equal(resumed._last_obs, model._last_obs) and resumed.get_env() is not None
    # with an env of the caller's, the saved one is not needed (nor unpickled)
    other = TutorialSAC.load(tmp_path / "model.zip", env=make_vec_env("Pendulum-v1", n_envs=1))
    assert other._last_obs is None and other.num_timesteps == model.num_timesteps


class Extractor(BaseFeaturesExtractor):
    def __init__(self, observation_space):
        super().__init__(observation_space, features_dim=3)

    def forward(self, observations):
        return observations


def test_values_that_are_not_data(tmp_path):
    # a schedule function: saved as its current value, with a warning and a note
    model = _model(learning_rate=lambda progress: 1e-3 * progress)
    with pytest.warns(UserWarning, match="learning_rate is a schedule function, not data"):
        model.save(tmp_path / "schedule.zip")
    assert TutorialSAC.load(tmp_path / "schedule.zip").learning_rate == pytest.approx(1e-3)
    assert "learning_rate" in _data(tmp_path / "schedule.zip")["notes"][0]
    # ... or pickled when included
    model.save(tmp_path / "pickled.zip", include=["learning_rate"])
    with pytest.raises(ValueError, match="learning_rate"):
        TutorialSAC.load(tmp_path / "pickled.zip")
    assert TutorialSAC.load(tmp_path / "pickled.zip", trusted=True).learning_rate(0.5) == pytest.approx(5e-4)
    assert TutorialSAC.load(tmp_path / "pickled.zip", custom_objects={"learning_rate": 2e-4}).learning_rate == 2e-4
    # a custom class: pickled with a warning naming the field and the opt-in (nothing the user saves is lost)
    model = _model(policy_kwargs=dict(net_arch=dict(pi=[8], qf=[8]), features_extractor_class=Extractor))
    with pytest.warns(UserWarning, match=r"policy_kwargs cannot be written as data.*Extractor.*trusted=True"):
        model.save(tmp_path / "custom.zip")
    with pytest.raises(ValueError, match="policy_kwargs"):
        TutorialSAC.load(tmp_path / "custom.zip")
    assert TutorialSAC.load(tmp_path / "custom.zip", trusted=True).policy.features_extractor_class is Extractor
    model.save(tmp_path / "custom_included.zip", include=["policy_kwargs"])
    assert TutorialSAC.load(tmp_path / "custom_included.zip", trusted=True).policy.features_extractor_class is Extractor


# ----------------------------------------------------------------------------------------------- set_parameters


def _optimizer_state(model, change) -> dict:
    import copy

    state = copy.deepcopy(model.critic.optimizer.state_dict())
    change(state)
    return {"critic.optimizer": state}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s["param_groups"][0].update(lr=10**400), r"group 0 lr: 1000.*not a finite number >= 0"),
        (lambda s: s["param_groups"][0].update(betas=(10**400, 0.999)), r"betas: .*not two numbers in \[0, 1\)"),
        (lambda s: [v.update(step=th.tensor(3e38)) for v in s["state"].values()], r"step: .*not an integer in \[0, 2\*\*53\]"),
        (lambda s: [v.update(step=10**400) for v in s["state"].values()], r"step: .*not an integer in \[0, 2\*\*53\]"),
        (lambda s: [v.update(step=th.tensor(2.5)) for v in s["state"].values()], r"step: .*not an integer"),
        (lambda s: [v.pop("exp_avg") for v in s["state"].values()], r"\['exp_avg_sq', 'step'\], where Adam keeps"),
    ],
    ids=["lr_10_400", "betas_10_400", "step_3e38", "step_10_400", "step_fraction", "no_exp_avg"],
)
def test_a_loaded_optimiser_state_has_what_learn_needs(trained, change, message):
    model, _ = trained
    with pytest.raises(ValueError, match=message) as error:
        model.set_parameters(_optimizer_state(model, change), exact_match=False)
    assert not isinstance(error.value.__cause__, OverflowError)
    model.learn(200, reset_num_timesteps=False)  # nothing was loaded: it trains on


# ----------------------------------------------------------------------------------------------- writing


def test_save_keeps_the_permission_bits_of_the_file_it_replaces(trained, tmp_path):
    model, _ = trained
    for name, save in (("model.zip", model.save), ("buffer.pkl", model.save_replay_buffer)):
        path = tmp_path / name
        save(path)
        os.chmod(path, 0o600)
        save(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        os.chmod(path, 0o640)
        save(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o640, name
    # a new file gets open()'s mode, as before
    umask = os.umask(0o022)
    try:
        model.save(tmp_path / "new.zip")
    finally:
        os.umask(umask)
    assert stat.S_IMODE((tmp_path / "new.zip").stat().st_mode) == 0o644
