"""Model and replay-buffer files (sb3_tutorial_sac.persistence): data only, small, safe to load, round trips, the
trusted opt-in, and the rl-zoo3 flows that write and read them. Tiny networks, a few hundred steps."""

import base64
import io
import json
import os
import pathlib
import pickle
import random
import warnings
import zipfile

import cloudpickle
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.noise import NormalActionNoise, OrnsteinUhlenbeckActionNoise, VectorizedActionNoise
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.utils import ConstantSchedule, LinearSchedule

from sb3_tutorial_sac import TutorialSAC, buffer_files, persistence
from sb3_tutorial_sac.data import from_data, has_pickle, to_data
from tests.envs import BoxTargetEnv
from tests.helpers import rewrite_zip, zip_data

TINY = dict(net_arch=dict(pi=[8], qf=[8, 8]))


class Payload:
    """Unpickling it runs ``touch <sentinel>``: the sentinel file exists iff a load ran code from the file."""

    def __init__(self, sentinel: pathlib.Path):
        self.sentinel = str(sentinel)

    def __reduce__(self):
        return (os.system, (f"touch {self.sentinel}",))


def _model(env="Pendulum-v1", **kwargs) -> TutorialSAC:
    kwargs.setdefault("policy_kwargs", TINY)
    return TutorialSAC("MlpPolicy", env, seed=0, **kwargs)


_rewrite, _data = rewrite_zip, zip_data


def _replaced(data: dict, name: str, value) -> bytes:
    return json.dumps({**data, "attributes": {**data["attributes"], name: value}}).encode()


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> pathlib.Path:
    """A trained tiny Pendulum model's file."""
    model = _model()
    model.learn(400)
    path = tmp_path_factory.mktemp("saved") / "model.zip"
    model.save(path)
    return path


# ----------------------------------------------------------------------------------------------- safe to load


def test_pickled_data_entries_are_refused_and_never_run(saved, tmp_path):
    data = _data(saved)
    sentinel = tmp_path / "pwned"
    blob = base64.b64encode(cloudpickle.dumps(Payload(sentinel))).decode()
    forms = [{":pickled:": blob}, {":type:": "<class 'Payload'>", ":serialized:": blob}]
    nested = {"policy_kwargs": {"net_arch": forms[0]}, "_rng_state": {"python": [forms[1]]}}
    cases = [(name, form) for name in data["attributes"] for form in forms] + list(nested.items())
    assert len(data["attributes"]) > 30
    for name, value in cases:
        crafted = tmp_path / "crafted.zip"
        _rewrite(saved, crafted, data=_replaced(data, name, value))
        with pytest.raises(ValueError, match=r"trusted=True"):
            TutorialSAC.load(crafted)
        assert not sentinel.exists(), name
    # SB3's own format (a data entry with :serialized:, no format marker): refused too
    sb3_data = {name: value for name, value in data["attributes"].items() if name != "policy_class"}
    sb3_data["policy_class"] = {
        ":type:": "<class 'abc.ABCMeta'>",
        ":serialized:": blob,
        "__module__": "sb3_tutorial_sac.policies",
    }
    _rewrite(saved, crafted, data=json.dumps(sb3_data).encode())
    with pytest.raises(ValueError, match=r"policy_class.*trusted=True"):
        TutorialSAC.load(crafted)
    assert not sentinel.exists()
    # the payload is real: with the opt-in, the file's pickle runs
    _rewrite(saved, crafted, data=_replaced(data, "tensorboard_log", forms[0]))
    TutorialSAC.load(crafted, trusted=True)
    assert sentinel.exists()


@pytest.mark.parametrize(
    "member", ["policy", "actor.optimizer", "critic.optimizer", "ent_coef_optimizer", "pytorch_variables", "extra"]
)
def test_pickled_tensor_members_are_refused_and_never_run(saved, tmp_path, member):
    sentinel = tmp_path / "pwned"
    as_torch = io.BytesIO()
    th.save({"weight": Payload(sentinel)}, as_torch)
    for content in (as_torch.getvalue(), pickle.dumps(Payload(sentinel))):
        crafted = tmp_path / "crafted.zip"
        _rewrite(saved, crafted, **{f"{member}.pth": content})
        with pytest.raises(ValueError, match=rf"{member}.pth is not plain tensors.*weights_only"):
            TutorialSAC.load(crafted)
        with pytest.raises(ValueError, match="weights_only"):
            _model().set_parameters(crafted)
        assert not sentinel.exists()


def test_pickled_replay_buffers_are_refused_and_never_run(tmp_path):
    model = _model()
    sentinel = tmp_path / "pwned"
    (tmp_path / "buffer.pkl").write_bytes(pickle.dumps(Payload(sentinel)))
    with pytest.raises(ValueError, match=r"load_replay_buffer\(path, trusted=True\)"):
        model.load_replay_buffer(tmp_path / "buffer.pkl")
    assert not sentinel.exists()
    # an npz whose arrays are pickled objects (np.savez pickles object arrays)
    model.learn(50)
    model.save_replay_buffer(tmp_path / "good.pkl")
    with np.load(tmp_path / "good.pkl") as npz:
        arrays = dict(npz)
    for name in ("meta", "observations"):
        with open(tmp_path / "crafted.pkl", "wb") as file:
            np.savez(file, **{**arrays, name: np.array([Payload(sentinel)], dtype=object)})
        with pytest.raises(ValueError, match="trusted=True"):
            model.load_replay_buffer(tmp_path / "crafted.pkl")
        assert not sentinel.exists()
    # the payload is real: with the opt-in, SB3's loader unpickles it
    with pytest.raises(AssertionError):  # (SB3 then finds it is not a ReplayBuffer)
        model.load_replay_buffer(tmp_path / "buffer.pkl", trusted=True)
    assert sentinel.exists()


def test_attributes_beyond_the_allow_list_and_classes_beyond_torch_and_sb3_are_refused(saved, tmp_path):
    data = _data(saved)
    for name, value in (("_setup_model", 1), ("__class__", "TutorialSAC"), ("lr_schedule", {":class:": "torch.nn.ReLU"})):
        _rewrite(saved, tmp_path / "crafted.zip", data=_replaced(data, name, value))
        with pytest.raises(ValueError, match=rf"\['{name}'\] beyond those a TutorialSAC file holds.*trusted=True"):
            TutorialSAC.load(tmp_path / "crafted.zip")
    for value in ({":class:": "os.system"}, {":class:": "torch.nn.functional.relu"}, {":class:": "builtins.eval"}):
        _rewrite(saved, tmp_path / "crafted.zip", data=_replaced(data, "replay_buffer_class", value))
        with pytest.raises(ValueError, match="is not a class of"):
            TutorialSAC.load(tmp_path / "crafted.zip")


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


# ----------------------------------------------------------------------------------------------- the opt-in


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


# ----------------------------------------------------------------------------------------------- rl-zoo3


@pytest.mark.expensive
def test_zoo_checkpoints_replay_buffer_and_continued_training(tmp_path):
    pytest.importorskip("rl_zoo3")
    from tests.test_zoo import train_args, zoo_cli

    logs = tmp_path / "logs"
    extra = ("-n", "400", "--eval-freq", "200", "--eval-episodes", "1", "--save-freq", "200", "--save-replay-buffer")
    zoo_cli(*train_args("tutorial_sac", logs, *extra), cwd=tmp_path)
    run = logs / "tutorial_sac" / "Pendulum-v1_1"
    assert {"rl_model_200_steps.zip", "rl_model_400_steps.zip", "best_model.zip", "replay_buffer.pkl"} <= {
        p.name for p in run.iterdir()
    }
    for model_file in ("Pendulum-v1.zip", "best_model.zip", "rl_model_200_steps.zip"):
        assert _data(run / model_file)["format"] == persistence.FORMAT
    with np.load(run / "replay_buffer.pkl", allow_pickle=False) as npz:  # the zoo's name, an npz of data
        assert npz["rewards"].shape == (400, 1)

    common = ["--algo", "tutorial_sac", "--env", "Pendulum-v1", "-f", str(logs), "--no-render", "-n", "200", "--seed", "0"]
    for choice in (["--load-checkpoint", "200"], ["--load-last-checkpoint"], ["--load-best"]):
        out = zoo_cli("enjoy", *common, *choice, cwd=tmp_path).stdout
        assert "Episode Reward:" in out, choice

    # -i: continue the saved model with its replay buffer
    out = zoo_cli(
        *train_args("tutorial_sac", logs, "-n", "200", "--eval-freq", "-1", "-i", str(run / "Pendulum-v1.zip")), cwd=tmp_path
    )
    assert "Loading replay buffer" in out.stdout
    continued = TutorialSAC.load(logs / "tutorial_sac" / "Pendulum-v1_2" / "Pendulum-v1.zip")
    assert continued._n_updates == 400 + 200 and continued.actor.optimizer.state_dict()["state"][0]["step"].item() == 600
