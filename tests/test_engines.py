"""The update's engines (sb3_tutorial_sac.engines): the fast engine against the reference engine, custom networks,
the probe that decides which one a model gets, and the public ``engine`` argument."""

import warnings

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.logger import Logger
from torch import nn
from torch.nn import functional as F

from sb3_tutorial_sac import TutorialSAC, TutorialSACPolicy
from sb3_tutorial_sac.engines import FastEngine, ReferenceEngine, make_engine
from sb3_tutorial_sac.engines.base import UpdateEngine
from tests.envs import BoxTargetEnv


class SoftplusPlusHead(nn.Module):
    """A std head with its own forward: ``softplus(linear(h)) + 1e-3`` (the Linear inside as in the tutorial's)."""

    def __init__(self, in_features: int, out_features: int):
        super().__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, latent: th.Tensor) -> th.Tensor:
        return F.softplus(self.linear(latent)) + 1e-3


class TanhQNetwork(nn.Module):
    """A critic with its own forward and another activation: ``l3(tanh(l2(tanh(l1(x)))))``."""

    def __init__(self, in_features: int, width: int = 16):
        super().__init__()
        self.l1, self.l2, self.l3 = nn.Linear(in_features, width), nn.Linear(width, width), nn.Linear(width, 1)

    def forward(self, x: th.Tensor) -> th.Tensor:
        return self.l3(th.tanh(self.l2(th.tanh(self.l1(x)))))


class CustomHeadPolicy(TutorialSACPolicy):
    def make_actor(self, features_extractor=None):
        actor = super().make_actor(features_extractor)
        actor.std = SoftplusPlusHead(actor.std[0].in_features, actor.std[0].out_features).to(self.device)
        return actor


class CustomCriticPolicy(TutorialSACPolicy):
    def make_critic(self, features_extractor=None):
        critic = super().make_critic(features_extractor)
        in_features = critic.q_networks[0][0].in_features
        for i in range(critic.n_critics):
            q_net = TanhQNetwork(in_features).to(self.device)
            critic.q_networks[i] = q_net
            critic.add_module(f"qf{i}", q_net)
        return critic


def _model(policy=TutorialSACPolicy, engine="auto", env="Pendulum-v1", **kwargs) -> TutorialSAC:
    model = TutorialSAC(policy, env, seed=0, device="cpu", engine=engine, **kwargs)
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def _observations(model: TutorialSAC, n: int = 7) -> th.Tensor:
    rng = np.random.default_rng(1)
    low, high = np.maximum(model.observation_space.low, -5), np.minimum(model.observation_space.high, 5)
    return th.as_tensor(rng.uniform(low, high, size=(n, *model.observation_space.shape)), dtype=th.float32)


def test_custom_std_head_gives_its_own_numbers_in_predict_and_training():
    with pytest.warns(UserWarning, match="std head"):
        model = _model(CustomHeadPolicy)
    assert isinstance(model.update_engine, ReferenceEngine)
    actor, obs = model.actor, _observations(model)
    latent = actor.latent_pi(obs)
    expected_mu, expected_std = actor.mu(latent), actor.std(latent)
    # predict()'s forward (function calls for flat Box observations) keeps the head's own arithmetic
    mu, std = actor.get_action_dist_params(obs)
    assert th.equal(mu, expected_mu) and th.equal(std, expected_std)
    assert th.equal(std, F.softplus(actor.std.linear(latent)) + 1e-3)
    action, _ = model.predict(obs.numpy(), deterministic=True)
    np.testing.assert_array_equal(action, model.policy.unscale_action(th.tanh(expected_mu).detach().numpy()))
    # training reads the head through the engine: the same numbers as the module
    with th.no_grad():
        engine_mu, engine_std = model.update_engine.actor_dist_params(obs)
    assert th.equal(engine_mu, expected_mu) and th.equal(engine_std, expected_std)
    # and the fast engine refuses it by name
    with pytest.raises(ValueError, match="std head"):
        _model(CustomHeadPolicy, engine="fast")
    model.learn(400)
    reference = _model(CustomHeadPolicy, engine="reference")
    reference.learn(400)
    for (name, value), expected in zip(model.policy.state_dict().items(), reference.policy.state_dict().values()):
        assert th.equal(value, expected), name


def test_custom_critic_gives_its_own_numbers_in_training():
    with pytest.warns(UserWarning, match="critics of Linear [+] ReLU"):
        model = _model(CustomCriticPolicy)
    assert isinstance(model.update_engine, ReferenceEngine)
    obs = _observations(model)
    actions = th.as_tensor(np.random.default_rng(2).uniform(-2, 2, size=(7, 1)), dtype=th.float32)
    q_input = th.cat([obs, actions], dim=1)
    with th.no_grad():
        q_values = model.update_engine.q_values(obs, actions)
        target_values = model.update_engine.target_q_values(obs, actions)
        for q_net, q, target in zip(model.critic.q_networks, q_values, target_values):
            expected = q_net.l3(th.tanh(q_net.l2(th.tanh(q_net.l1(q_input)))))
            assert th.equal(q, expected) and th.equal(target, expected)  # targets start as copies
    model.learn(400)
    assert model._n_updates == 400 and np.isfinite(model.last_train_stats["critic1_loss"]).all()
    moved = model.critic.q_networks[0].l1.weight - model.critic_target.q_networks[0].l1.weight
    assert moved.abs().max() > 1e-4  # the custom critics were trained (and their targets followed slowly)


def test_the_probe_catches_what_the_layer_types_do_not_show():
    """A forward hook on a critic's last Linear changes what the module computes without changing any type: the
    fast engine's written-out passes would ignore it. The probe on the modules' own forward catches it."""
    model = _model()
    assert isinstance(model.update_engine, FastEngine)
    assert model.update_engine.reference_difference() is None
    model.critic.q_networks[1][-1].register_forward_hook(lambda module, inputs, output: output * 2)
    fast = FastEngine.unproven(model.training_state)
    assert isinstance(fast, FastEngine)  # the structure alone looks supported
    difference = fast.reference_difference()
    assert difference is not None and "critic" in difference
    with pytest.warns(UserWarning, match="critic loss 2"):
        engine = make_engine(model.training_state, "auto")  # what the model builds at setup
    assert isinstance(engine, ReferenceEngine)


def test_engine_argument_is_checked():
    with pytest.raises(ValueError, match=r"engine must be one of \('auto', 'reference', 'fast'"):
        TutorialSAC("MlpPolicy", "Pendulum-v1", engine="jax")
    assert _model(engine="reference").update_engine.name == "reference"
    assert _model().update_engine.name == "fast"


# Every configuration the fast engine covers: (env kwargs, policy_kwargs, model kwargs)
SUPPORTED = [
    ({}, {}, {}),
    ({"low": (-1.0, 0.0, -5.0), "high": (3.0, 0.5, 5.0)}, {}, {"entropy_term": "correct"}),
    ({"low": (-1.0, 0.0), "high": (3.0, 0.5)}, {"net_arch": {"pi": [32, 16], "qf": [32, 16, 8]}, "n_critics": 1}, {}),
    ({"low": (-1.0, 0.0), "high": (3.0, 0.5)}, {"net_arch": [24]}, {"ent_coef_loss": "sb3", "ent_coef": "auto"}),
    ({}, {}, {"ent_coef": 0.1, "target_update_interval": 2}),
    ({}, {"share_features_extractor": True}, {"handle_timeout_termination": True, "reward_shift": 0.0}),
]


@pytest.mark.parametrize(("env_kwargs", "policy_kwargs", "kwargs"), SUPPORTED)
def test_both_engines_give_identical_parameters_after_300_steps(env_kwargs, policy_kwargs, kwargs):
    models = []
    for engine in ("fast", "reference"):
        env = BoxTargetEnv(obs_shape=(5,), **env_kwargs)
        model = TutorialSAC("MlpPolicy", env, seed=4, device="cpu", policy_kwargs=policy_kwargs, engine=engine, **kwargs)
        assert model.update_engine.name == engine
        model.set_logger(Logger(folder=None, output_formats=[]))
        model.learn(300)
        models.append(model)
    fast, reference = models
    assert fast._n_updates == reference._n_updates == 300
    for (name, value), expected in zip(fast.policy.state_dict().items(), reference.policy.state_dict().values(), strict=True):
        assert th.equal(value, expected), name
    if fast.log_ent_coef is not None:
        assert th.equal(fast.log_ent_coef, reference.log_ent_coef)
    for name in ("actor.optimizer", "critic.optimizer"):
        mine, theirs = (m.training_state.optimizers[name].state_dict()["state"] for m in models)
        for key in mine:
            for state_key in ("exp_avg", "exp_avg_sq", "step"):
                assert th.equal(mine[key][state_key], theirs[key][state_key]), (name, key, state_key)
    start = TutorialSAC("MlpPolicy", BoxTargetEnv(obs_shape=(5,), **env_kwargs), seed=4, policy_kwargs=policy_kwargs, **kwargs)
    moved = max((a - b).abs().max().item() for a, b in zip(fast.policy.parameters(), start.policy.parameters()))
    assert moved > 1e-3


@pytest.mark.parametrize("batch_size", [64, 40])  # 64 numbers per draw: drawn at once; 40: step by step
def test_the_noise_of_a_train_call_drawn_at_once_is_the_noise_drawn_step_by_step(batch_size):
    """FastEngine.steps draws the noise of all steps at once where torch gives the same numbers: the parameters, the
    statistics and torch's global generator after train() are those of UpdateEngine.steps (one step at a time)."""
    results = []
    for steps in (FastEngine.steps, UpdateEngine.steps):
        model = _model(batch_size=batch_size)
        model.learn(250)
        assert isinstance(model.update_engine, FastEngine)
        model.update_engine.steps = steps.__get__(model.update_engine)  # type: ignore[method-assign]
        model.train(30, batch_size)
        results.append((model, th.get_rng_state(), model.last_train_stats))
    (bulk, bulk_rng, bulk_stats), (stepwise, stepwise_rng, stepwise_stats) = results
    assert th.equal(bulk_rng, stepwise_rng)
    for name, values in bulk_stats.items():
        assert values.shape == (30,) and np.array_equal(values, stepwise_stats[name]), name
    for (name, value), expected in zip(bulk.policy.state_dict().items(), stepwise.policy.state_dict().values(), strict=True):
        assert th.equal(value, expected), name


def test_dict_and_image_observations_take_the_reference_engine_without_a_warning():
    """The fast engine is written for flat Box observations: for dicts and images "auto" takes the reference engine
    silently (nothing was expected of the fast engine), and asking for the fast one says why it cannot be had."""
    from gymnasium import spaces

    class ImageEnv(BoxTargetEnv):
        def __init__(self):
            super().__init__(obs_shape=None, episode_length=20)
            self.observation_space = spaces.Box(0, 255, (36, 36, 1), np.uint8)

    cases = {
        "MultiInputPolicy": (BoxTargetEnv(obs_shape=None), "flat Box observations, the observation space is a Dict"),
        # SB3 transposes images to channels first
        "CnnPolicy": (ImageEnv(), r"flat Box observations, the observation space is a Box of shape \(1, 36, 36\)"),
    }
    for policy, (env, reason) in cases.items():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            warnings.filterwarnings("ignore", message="TutorialSAC normalises sampled rewards")  # (not Pendulum-v1)
            model = TutorialSAC(policy, env, seed=0, buffer_size=100, batch_size=8)
        assert type(model.update_engine) is ReferenceEngine, policy
        with pytest.raises(ValueError, match=f"fast engine cannot be used for this model: it covers {reason}"):
            TutorialSAC(policy, env, seed=0, buffer_size=100, batch_size=8, engine="fast")
        # the compiled engine falls back, as "auto" would (issue 32: tests/test_first_use.py)
        with pytest.warns(UserWarning, match=f"compiled engine cannot be used for this model: .*it covers {reason}"):
            model = TutorialSAC(policy, env, seed=0, buffer_size=100, batch_size=8, engine="compiled")
        assert type(model.update_engine) is ReferenceEngine, policy
