"""TutorialSAC inside SB3's machinery: the tutorial's defaults, spaces and devices, VecEnvs, the tutorial's state in and
out, errors, the CLI. Training: tests/test_train.py; predict: test_predict.py; files: test_save_load.py."""

import math
import pathlib
import warnings

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env

from sb3_tutorial_sac import MultiInputPolicy, TutorialSAC, TutorialSACPolicy, export_tutorial_state, load_tutorial_state
from tests.envs import BoxTargetEnv
from tests.helpers import small
from tests.tutorial_reference import ModelAction, ModelValue, Tutorial

DEVICES = ["cpu"] + (["cuda"] if th.cuda.is_available() else [])


# ----------------------------------------------------------------------------------------------- defaults


def test_defaults_are_the_tutorial():
    model = TutorialSAC("MlpPolicy", "Pendulum-v1")
    assert model.batch_size == 64 and model.buffer_size == 100_000
    assert model.learning_starts == 0 and model.gradient_steps == -1
    assert (model.train_freq.frequency, model.train_freq.unit.value) == (1, "episode")
    assert model.tau == 0.005 and model.gamma == 0.99
    assert model.reward_shift == 8.0 and model.reward_scale == 1 / 8
    assert model.target_entropy == -1.0
    assert model.log_ent_coef is not None and math.isclose(model.log_ent_coef.item(), math.log(0.01), rel_tol=1e-6)
    assert model.replay_buffer.handle_timeout_termination is False
    assert model.actor.optimizer.param_groups[0]["lr"] == 3e-4
    assert [group["lr"] for group in model.critic.optimizer.param_groups] == [3e-3, 3e-3]
    assert model.ent_coef_optimizer.param_groups[0]["lr"] == 3e-4
    # Two critic parameter groups, each exactly one critic's parameters
    # (each group is one flat tensor that the critic's parameters are views of)
    for group, q_net in zip(model.critic.optimizer.param_groups, model.critic.q_networks, strict=True):
        (segment,) = group["params"]
        assert segment.numel() == sum(p.numel() for p in q_net.parameters())
        start, end = segment.data_ptr(), segment.data_ptr() + 4 * segment.numel()
        assert all(start <= p.data_ptr() < end for p in q_net.parameters())
    # The tutorial's shapes, PyTorch default init
    shapes = {k: tuple(v.shape) for k, v in export_tutorial_state(model)["model_action"].items()}
    assert shapes == {k: tuple(v.shape) for k, v in ModelAction().state_dict().items()}
    shapes = {k: tuple(v.shape) for k, v in export_tutorial_state(model)["model_value1"].items()}
    assert shapes == {k: tuple(v.shape) for k, v in ModelValue().state_dict().items()}


# ----------------------------------------------------------------------------------------------- predict


@pytest.mark.parametrize("device", DEVICES)
def test_asymmetric_bounds_multi_dim_actions(device):
    low, high = (-1.0, 0.0, 10.0), (3.0, 0.5, 10.001)
    env = BoxTargetEnv(obs_shape=(6,), low=low, high=high)
    model = small(env, device=device)
    model.learn(120)  # the env asserts every action is inside the bounds
    obs = np.random.default_rng(0).uniform(-1, 1, size=(200, 6)).astype(np.float32)
    for deterministic in (True, False):
        action, _ = model.predict(obs, deterministic=deterministic)
        assert action.shape == (200, 3)
        assert np.all(action >= np.array(low, np.float32)) and np.all(action <= np.array(high, np.float32))
    # The critic sees actions in the env's units, and the buffer stores them
    assert model.replay_buffer.actions[:120, 0, 2].min() >= 10.0
    assert model.target_entropy == -3.0
    # episodes are collected whole: 3 episodes of 50 steps for a budget of 120
    assert model.num_timesteps == 150 and model._n_updates == 150 and model.last_train_stats["entropy"].shape == (50,)


@pytest.mark.parametrize("device", DEVICES)
def test_to_env_units_matches_bounds(device):
    env = BoxTargetEnv(low=(-1.0, 0.0), high=(3.0, 0.5))
    model = small(env, device=device)
    squashed = th.tensor([[-1.0, -1.0], [0.0, 0.0], [1.0, 1.0]], device=model.device)
    expected = th.tensor([[-1.0, 0.0], [1.0, 0.25], [3.0, 0.5]], device=model.device)
    assert th.allclose(model.policy.to_env_units(squashed), expected)


# ----------------------------------------------------------------------------------------------- spaces, VecEnvs


def test_two_envs():
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    model = small(env)
    with pytest.warns(UserWarning, match="n_envs=2"):
        model.learn(400)
    # one step of both envs per rollout, then as many gradient steps as transitions: the tutorial's ratio
    assert model.num_timesteps == 400 and model._n_updates == 400
    assert model.replay_buffer.size() == 200 and model.replay_buffer.n_envs == 2
    action, _ = model.predict(env.reset(), deterministic=True)
    assert action.shape == (2, 1)


def test_dict_observations(tmp_path):
    env = BoxTargetEnv(obs_shape=None, low=(-2.0, -1.0), high=(2.0, 1.0), episode_length=40)
    model = TutorialSAC("MultiInputPolicy", env, seed=0, policy_kwargs=dict(net_arch=dict(pi=[16], qf=[16, 16])))
    assert isinstance(model.policy, MultiInputPolicy)
    model.learn(120)
    assert model._n_updates == 120
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (2,)
    model.save(tmp_path / "dict.zip")
    loaded = TutorialSAC.load(tmp_path / "dict.zip")
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], action)


def test_cnn_policy():
    class ImageEnv(BoxTargetEnv):
        def __init__(self):
            super().__init__(obs_shape=None, episode_length=20)
            self.observation_space = spaces.Box(0, 255, (36, 36, 1), np.uint8)

    model = TutorialSAC("CnnPolicy", ImageEnv(), seed=0, buffer_size=100, batch_size=8)
    model.learn(40)
    assert model._n_updates == 40
    assert model.predict(ImageEnv().observation_space.sample(), deterministic=True)[0].shape == (1,)


# ----------------------------------------------------------------------------------------------- save / load


# ----------------------------------------------------------------------------------------------- callbacks, logging


# ----------------------------------------------------------------------------------------------- interop


def test_tutorial_state_round_trip_acts_the_same():
    th.manual_seed(11)
    tutorial = Tutorial()
    model = small("Pendulum-v1", policy_kwargs=None)
    load_tutorial_state(model, tutorial.state())
    obs = th.randn(32, 3)
    th.manual_seed(5)
    action, _ = tutorial.model_action(obs)
    th.manual_seed(5)
    np.testing.assert_array_equal(model.predict(obs.numpy(), deterministic=False)[0], action.detach().numpy())
    q = tutorial.model_value2(obs, action.detach())
    assert th.equal(model.critic(obs, action.detach())[1], q)

    # and back: a tutorial built from the export acts the same as the model
    th.manual_seed(12)
    back = Tutorial()
    back.load(export_tutorial_state(model))
    for name, tensor in tutorial.state().items():
        other = back.state()[name]
        if isinstance(tensor, dict):
            assert all(th.equal(tensor[k], other[k]) for k in tensor), name
        else:
            assert th.equal(tensor, other)
    assert export_tutorial_state(model)["alpha"].shape == ()


def test_load_tutorial_state_is_all_or_nothing():
    model = small("Pendulum-v1", policy_kwargs=None)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    state = Tutorial().state()
    bad = {**state, "model_value_next2": {**state["model_value_next2"], "sequential.4.bias": th.zeros(2)}}
    with pytest.raises(ValueError, match=r"model_value_next2.*sequential\.4\.bias.*shape"):
        load_tutorial_state(model, bad)
    with pytest.raises(ValueError, match="missing"):
        load_tutorial_state(model, {k: v for k, v in state.items() if k != "alpha"})
    with pytest.raises(ValueError, match="keys"):
        load_tutorial_state(model, {**state, "model_action": {"fc.weight": th.zeros(1)}})
    assert all(th.equal(v, model.policy.state_dict()[k]) for k, v in before.items())


# ----------------------------------------------------------------------------------------------- bad input


class _Discrete(BoxTargetEnv):
    def __init__(self, space):
        super().__init__()
        self.action_space = space


@pytest.mark.parametrize(
    "space",
    [
        spaces.Discrete(3),
        spaces.MultiDiscrete([2, 3]),
        spaces.MultiBinary(2),
        spaces.Box(-np.inf, np.inf, (1,)),
        spaces.Box(np.array([-1.0, 0.0]), np.array([1.0, np.inf])),
    ],
    ids=["Discrete", "MultiDiscrete", "MultiBinary", "unbounded", "half-bounded"],
)
def test_rejects_action_spaces(space):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match="action_space"):
            TutorialSAC("MlpPolicy", _Discrete(space))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"entropy_term": "exact"}, "entropy_term"),
        ({"ent_coef_loss": "paper"}, "ent_coef_loss"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"critic_learning_rate": -1e-3}, "critic_learning_rate"),
        ({"ent_coef_learning_rate": float("nan")}, "ent_coef_learning_rate"),
        ({"learning_rate": lambda _: -1.0}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 64.5}, "batch_size"),
        ({"buffer_size": 0}, "buffer_size"),
        ({"reward_scale": 0}, "reward_scale"),
        ({"reward_scale": float("inf")}, "reward_scale"),
        ({"reward_shift": float("nan")}, "reward_shift"),
        ({"ent_coef": "auto_x"}, "ent_coef"),
        ({"ent_coef": "auto_-0.1"}, "ent_coef"),
        ({"ent_coef": "autox"}, "ent_coef"),
        ({"ent_coef": -0.1}, "ent_coef"),
        ({"ent_coef": "-1"}, "ent_coef"),
        ({"target_entropy": "minus one"}, "target_entropy"),
        ({"gradient_steps": -2}, "gradient_steps"),
        (
            {"handle_timeout_termination": True, "replay_buffer_kwargs": {"handle_timeout_termination": False}},
            "handle_timeout_termination",
        ),
    ],
)
def test_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TutorialSAC("MlpPolicy", "Pendulum-v1", **kwargs)


def test_accepts_sb3_ent_coef_forms():
    assert TutorialSAC("MlpPolicy", "Pendulum-v1", ent_coef="auto").log_ent_coef.exp().item() == pytest.approx(1.0)
    assert TutorialSAC("MlpPolicy", "Pendulum-v1", ent_coef="0.2").ent_coef_tensor.item() == pytest.approx(0.2)
    assert TutorialSAC("MlpPolicy", "Pendulum-v1", ent_coef=0).ent_coef_tensor.item() == 0.0


def test_policy_class_and_alias():
    assert TutorialSAC.policy_aliases["MlpPolicy"] is TutorialSACPolicy
    model = TutorialSAC(TutorialSACPolicy, "Pendulum-v1")
    assert type(model.policy) is TutorialSACPolicy


def test_cli_train(tmp_path, capsys):
    from sb3_tutorial_sac.cli import main

    output = tmp_path / "cli.zip"
    assert (
        main(["train", "--timesteps", "400", "--eval-episodes", "2", "--output", str(output), "--no-progress-bar", "--json"])
        == 0
    )
    import json

    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["timesteps"] == 400 and summary["gradient_steps"] == 400
    assert -2000 < summary["deterministic_return_mean"] <= 0 and -2000 < summary["stochastic_return_mean"] <= 0
    assert pathlib.Path(summary["saved_to"]).exists()
    assert TutorialSAC.load(output).num_timesteps == 400
