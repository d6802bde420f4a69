"""predict(): the deterministic action is the scaled tanh of the mean; its speed-only forward paths
(sb3_tutorial_sac/fast_predict.py) give the same actions as the actor's modules called as they are, and fall back to
those module calls, with one warning, where torch's hook internals are not what the paths expect."""

import warnings
from collections import OrderedDict
from types import MappingProxyType

import numpy as np
import pytest
import torch as th
from stable_baselines3.common.policies import BasePolicy
from torch import nn
from torch.nn.modules import module as torch_module

from sb3_tutorial_sac import TutorialSAC, fast_predict
from tests.envs import BoxTargetEnv
from tests.helpers import small

NETWORKS = {
    "Pendulum, the tutorial's networks": lambda: TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0),
    "two asymmetric actions, a deeper trunk": lambda: TutorialSAC(
        "MlpPolicy",
        BoxTargetEnv(obs_shape=(3,), low=(-1.0, 0.0), high=(3.0, 0.5)),
        policy_kwargs=dict(net_arch=dict(pi=[32, 16], qf=[32, 32])),
        reward_shift=0.0,
        reward_scale=1.0,
        seed=0,
    ),
}


@pytest.fixture
def linear_calls(monkeypatch):
    """Counts the calls of ``nn.Linear.forward``: the module calls, which the plain-tensor path does not make."""
    calls = []
    forward = nn.Linear.forward

    def counting(self, x):
        calls.append(self)
        return forward(self, x)

    monkeypatch.setattr(nn.Linear, "forward", counting)
    return calls


def _observations(model, n=5):
    model.observation_space.seed(1)
    return np.stack([model.observation_space.sample() for _ in range(n)])


def _module_actions(policy, obs, deterministic, seed):
    """The actions from the actor's modules called one by one, as they are (hooks included), in SB3's no_grad."""
    actor = policy.actor
    th.manual_seed(seed)
    with th.no_grad():
        latent_pi = actor.latent_pi(th.as_tensor(obs))
        mean_actions, std = actor.mu(latent_pi), actor.std(latent_pi)
        if deterministic:
            squashed = th.tanh(mean_actions)
        else:
            squashed = th.tanh(mean_actions + th.randn_like(mean_actions) * std)
    return policy.unscale_action(squashed.numpy())


def _predict(policy, obs, deterministic, seed, predict=None):
    th.manual_seed(seed)
    actions = (predict or type(policy).predict)(policy, obs, deterministic=deterministic)[0]
    return actions, th.random.get_rng_state()


def _all_actions(policy, obs):
    """predict()'s actions, deterministic and stochastic (seeded), and the generator's state after each."""
    return [_predict(policy, obs, deterministic, seed=7) for deterministic in (True, False)]


def _assert_same(found, expected):
    for (actions, state), (expected_actions, expected_state) in zip(found, expected):
        assert np.array_equal(actions, expected_actions)
        assert th.equal(state, expected_state)


@pytest.mark.parametrize("network", list(NETWORKS))
def test_fast_and_plain_paths_give_the_same_actions(network, linear_calls):
    """predict() on flat Box observations runs the actor's layers as plain tensors (no module call) and gives the actions
    of the modules called as they are, and SB3's predict()'s, deterministic and stochastic, the generator included."""
    model = NETWORKS[network]()
    policy, obs = model.policy, _observations(model)
    assert fast_predict.problem() is None
    linear_calls.clear()  # the model's setup (the engine's probe) calls the critics
    fast = _all_actions(policy, obs)
    assert not linear_calls  # the plain-tensor path
    assert policy.actor.plain_layers() is not None
    for (actions, _), deterministic in zip(fast, (True, False)):
        assert np.array_equal(actions, _module_actions(policy, obs, deterministic, seed=7))
    _assert_same([_predict(policy, obs, deterministic, 7, BasePolicy.predict) for deterministic in (True, False)], fast)


def _rename(names, old, new):
    return tuple(new if name == old else name for name in names)


# torch's hook internals changed on purpose, and what the warning must say
BROKEN_INTERNALS = {
    "a global hook dictionary that is not a dict": (
        lambda monkeypatch: monkeypatch.setattr(torch_module, "_global_forward_hooks", MappingProxyType(OrderedDict())),
        r"relies on torch\.nn\.modules\.module\._global_forward_hooks being a dict, and in torch \S+ it is a mappingproxy",
    ),
    "a global hook dictionary missing (renamed)": (
        lambda monkeypatch: monkeypatch.setattr(
            fast_predict,
            "GLOBAL_HOOK_DICTS",
            _rename(fast_predict.GLOBAL_HOOK_DICTS, "_global_forward_pre_hooks", "_global_forward_pre_hooks_v2"),
        ),
        r"relies on torch\.nn\.modules\.module\._global_forward_pre_hooks_v2, which torch \S+ does not have",
    ),
    "a module's hook dictionary missing (renamed)": (
        lambda monkeypatch: monkeypatch.setattr(
            fast_predict, "MODULE_DICTS", _rename(fast_predict.MODULE_DICTS, "_forward_hooks", "_forward_hooks_v2")
        ),
        r"relies on nn\.Module\._forward_hooks_v2, which torch \S+ does not have",
    ),
}


@pytest.mark.parametrize("broken", list(BROKEN_INTERNALS))
@pytest.mark.parametrize("network", list(NETWORKS))
def test_changed_hook_internals_fall_back_to_module_calls_with_one_warning(monkeypatch, linear_calls, network, broken):
    """Where a private torch name the fast paths read is missing or not a dict, predict() calls the actor's modules (SB3's
    predict()) after one warning naming it, with the same actions as before, deterministic and stochastic."""
    model = NETWORKS[network]()
    policy, obs = model.policy, _observations(model)
    fast = _all_actions(policy, obs)
    breaking, reason = BROKEN_INTERNALS[broken]
    breaking(monkeypatch)
    assert fast_predict.problem() is not None
    linear_calls.clear()
    with pytest.warns(UserWarning, match=f"predict\\(\\) calls the actor's modules .*: that path {reason}") as record:
        first = _predict(policy, obs, True, seed=7)
    assert len([w for w in record if "predict()" in str(w.message)]) == 1
    assert linear_calls  # the modules were called
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=r"predict\(\) calls")  # one warning per policy
        _assert_same([first, *_all_actions(policy, obs)[1:]], fast)
        assert policy.actor.plain_layers() is None
        # the actor's own forward (call_layers) calls the modules too: the same numbers
        linear_calls.clear()
        with th.no_grad():
            mean_actions, std = policy.actor.get_action_dist_params(th.as_tensor(obs))
        assert len(linear_calls) == 2 + len(model.policy.net_arch["pi"])  # trunk, mu and std
        latent_pi = policy.actor.latent_pi(th.as_tensor(obs))
        assert th.equal(mean_actions, policy.actor.mu(latent_pi)) and th.equal(std, policy.actor.std(latent_pi))


@pytest.mark.parametrize("broken", [None, *BROKEN_INTERNALS])
def test_a_users_forward_hook_is_honoured(monkeypatch, broken):
    """A forward hook a user sets on one of the actor's layers changes predict()'s actions as it changes the modules'
    (SB3's predict()), on the fast path and after the fallback; a global module hook sees the layers called."""
    model = NETWORKS["Pendulum, the tutorial's networks"]()
    policy, obs = model.policy, _observations(model)
    if broken is not None:
        BROKEN_INTERNALS[broken][0](monkeypatch)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = _all_actions(policy, obs)
        handle = policy.actor.mu.register_forward_hook(lambda module, inputs, output: output + 0.25)
        try:
            hooked = _all_actions(policy, obs)
            for (actions, _), deterministic in zip(hooked, (True, False)):
                assert np.array_equal(actions, _module_actions(policy, obs, deterministic, seed=7))
            assert not np.array_equal(hooked[0][0], before[0][0])
            _assert_same([_predict(policy, obs, det, 7, BasePolicy.predict) for det in (True, False)], hooked)
        finally:
            handle.remove()
        _assert_same(_all_actions(policy, obs), before)  # the hook removed: the same actions as before it
        if broken is None:
            calls = []
            handle = torch_module.register_module_forward_hook(lambda module, inputs, output: calls.append(module))
            try:
                _assert_same(_all_actions(policy, obs), before)
            finally:
                handle.remove()
            assert policy.actor.mu in calls


# ----------------------------------------------------------------------------------------------- predict() itself


def test_predict_deterministic_is_scaled_tanh_mu():
    model = small("Pendulum-v1")
    obs = np.random.default_rng(0).uniform(-1, 1, size=(5, 3)).astype(np.float32)
    action, state = model.predict(obs, deterministic=True)
    assert state is None and action.shape == (5, 1) and action.dtype == np.float32
    with th.no_grad():
        mu, _ = model.actor.get_action_dist_params(th.as_tensor(obs))
    np.testing.assert_array_equal(action, (th.tanh(mu) * 2).numpy())
    single, _ = model.predict(obs[0], deterministic=True)
    assert single.shape == (1,)
    np.testing.assert_array_equal(single, action[0])
    stochastic = np.stack([model.predict(obs, deterministic=False)[0] for _ in range(20)])
    assert np.all(np.abs(stochastic) <= 2.0) and stochastic.std(axis=0).min() > 0
