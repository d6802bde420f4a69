"""Reliability: fuzzed spaces, determinism, exact resume, non-finite data, interruptions, corrupt or foreign files.

Behaviour only, tiny networks, a few hundred steps; nothing here is timed.
"""

import copy
import random
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure
from stable_baselines3.common.type_aliases import ReplayBufferSamples

import sb3_tutorial_sac.policies as policies_module
from sb3_tutorial_sac.engines import FastEngine
from sb3_tutorial_sac import TutorialSAC
from sb3_tutorial_sac.tutorial_sac import NonFiniteError

TINY = dict(net_arch=dict(pi=[8], qf=[8, 8]))
SMALL = dict(net_arch=dict(pi=[16], qf=[16, 16]))


class FuzzEnv(gym.Env):
    """
    Any Box observation and action space; counts actions outside the bounds; can emit NaN/inf on request.

    :param observation_space: the observation Box
    :param action_space: the action Box
    :param episode_length: steps before truncation
    :param bad_at: ``{step: (what, value)}`` with ``what`` in ``"reward"``, ``"obs"``: a non-finite value there
        (steps counted over the env's life, from 1)
    """

    def __init__(
        self,
        observation_space: spaces.Box,
        action_space: spaces.Box,
        episode_length: int = 20,
        bad_at: dict[int, tuple[str, float]] | None = None,
    ):
        super().__init__()
        self.observation_space, self.action_space = observation_space, action_space
        self.episode_length = episode_length
        self.bad_at = dict(bad_at or {})
        self.out_of_bounds = 0
        self.steps = 0
        self._t = 0
        # halves first: finite for bounds up to the dtype's largest value
        self._center = action_space.low.astype(np.float64) / 2 + action_space.high.astype(np.float64) / 2
        self._half = action_space.high.astype(np.float64) / 2 - action_space.low.astype(np.float64) / 2

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.observation_space.seed(seed)
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        action = np.asarray(action).reshape(self.action_space.shape)
        if not (np.all(action >= self.action_space.low) and np.all(action <= self.action_space.high)):
            self.out_of_bounds += 1
        self._t += 1
        self.steps += 1
        unit = (action.astype(np.float64) - self._center) / self._half
        reward = -float(np.mean((unit - 0.4) ** 2))
        obs = self.observation_space.sample()
        what, value = self.bad_at.get(self.steps, ("", 0.0))
        if what == "reward":
            reward = value
        elif what == "obs":
            obs = obs.copy()
            obs.flat[0] = value
        return obs, reward, False, self._t >= self.episode_length, {}


def _envs(model: TutorialSAC) -> list[FuzzEnv]:
    return [env.unwrapped for env in model.get_env().envs]  # type: ignore[attr-defined]


def _state(model: TutorialSAC) -> dict[str, Any]:
    """Every number training changes: the five networks, log(alpha), the optimisers' states, the update count."""
    state: dict[str, Any] = {f"policy.{k}": v.clone() for k, v in model.policy.state_dict().items()}
    if model.log_ent_coef is not None:
        state["log_ent_coef"] = model.log_ent_coef.detach().clone()
    for name, optimizer in model._optimizers().items():
        for index, values in optimizer.state_dict()["state"].items():
            for key, value in values.items():
                state[f"{name}.{index}.{key}"] = value.clone()
    state["_n_updates"] = model._n_updates
    return state


def _assert_same_state(first: dict[str, Any], second: dict[str, Any]) -> None:
    assert first.keys() == second.keys()
    for key, value in first.items():
        if isinstance(value, th.Tensor):
            assert th.equal(value, second[key]), key
        else:
            assert value == second[key], key


def _all_finite(model: TutorialSAC) -> bool:
    return all(bool(th.isfinite(v).all()) for v in _state(model).values() if isinstance(v, th.Tensor))


# ----------------------------------------------------------------------------------------------- fuzzed spaces


@st.composite
def boxes(draw, max_ndim: int, kinds: tuple[str, ...]) -> spaces.Box:
    """A Box of 1 to 6 elements in 1 to ``max_ndim`` dimensions, float32 or float64, with bounds of one ``kind``."""
    size = draw(st.integers(1, 6))
    ndim = draw(st.integers(1, max_ndim))
    shape = [size] + [1] * (ndim - 1)
    shape = draw(st.permutations(shape))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    kind = draw(st.sampled_from(kinds))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "unit":
        low, high = -np.ones(size), np.ones(size)
    elif kind == "asymmetric":
        low = rng.uniform(-5, 3, size)
        high = low + rng.uniform(0.1, 7, size)
    elif kind == "tiny":
        # a width of a few float32 spacings around an arbitrary point
        low = rng.uniform(-3, 3, size).astype(np.float32)
        high = low + np.abs(np.spacing(low)) * rng.integers(1, 100, size)
    else:  # huge
        low = -(10.0 ** rng.uniform(3, 7, size))
        high = 10.0 ** rng.uniform(3, 7, size)
    return spaces.Box(low.reshape(shape).astype(dtype), high.reshape(shape).astype(dtype), dtype=dtype)


@settings(max_examples=25, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    observation_space=boxes(max_ndim=3, kinds=("unit", "asymmetric")),
    action_space=boxes(max_ndim=2, kinds=("unit", "asymmetric", "tiny", "huge")),
    n_envs=st.sampled_from([1, 2]),
    learning_starts=st.sampled_from([0, 30]),
    seed=st.integers(0, 1000),
)
def test_fuzzed_box_spaces(tmp_path_factory, observation_space, action_space, n_envs, learning_starts, seed):
    env = make_vec_env(lambda: FuzzEnv(observation_space, action_space), n_envs=n_envs, seed=seed)
    model = TutorialSAC("MlpPolicy", env, policy_kwargs=TINY, learning_starts=learning_starts, seed=seed)
    model.learn(200)
    # every action sent to the env was inside the bounds, and training kept everything finite
    assert [e.out_of_bounds for e in _envs(model)] == [0] * n_envs
    assert model.num_timesteps >= 200 and model._n_updates > 0
    assert _all_finite(model)

    observations = np.stack([observation_space.sample() for _ in range(5)])
    for deterministic in (True, False):
        single, _ = model.predict(observations[0], deterministic=deterministic)
        batch, _ = model.predict(observations, deterministic=deterministic)
        assert single.shape == action_space.shape and batch.shape == (5, *action_space.shape)
        for action in (single, batch):
            assert np.all(action >= action_space.low) and np.all(action <= action_space.high)

    path = tmp_path_factory.mktemp("fuzz") / "model.zip"
    model.save(path)
    loaded = TutorialSAC.load(path, env=env)
    expected, _ = model.predict(observations, deterministic=True)
    actions, _ = loaded.predict(observations, deterministic=True)
    assert np.array_equal(expected, actions)
    _assert_same_state(_state(model), _state(loaded))


def test_extreme_float32_bounds_act_inside_them():
    """Bounds at float32's limit: the action map stays finite (it overflowed before) and actions stay inside."""
    biggest = np.finfo(np.float32).max
    for low, high in ([-biggest, biggest], [biggest / 4, biggest], [-biggest, -biggest / 2]):
        space = spaces.Box(np.float32(low), np.float32(high), (2,), np.float32)
        model = TutorialSAC("MlpPolicy", FuzzEnv(spaces.Box(-1, 1, (3,)), space), policy_kwargs=TINY, seed=0)
        assert th.isfinite(model.policy.action_center).all() and th.isfinite(model.policy.action_half_range).all()
        for deterministic in (True, False):
            actions, _ = model.predict(np.zeros((50, 3), np.float32), deterministic=deterministic)
            assert np.isfinite(actions).all()
            assert np.all(actions >= space.low) and np.all(actions <= space.high)


def test_multi_dimensional_action_box_trains():
    """An action Box of shape (2, 3): the critics see the flat [batch, 6] actions in the env's units."""
    space = spaces.Box(-np.arange(1, 7, dtype=np.float32).reshape(2, 3), np.full((2, 3), 7, np.float32))
    model = TutorialSAC("MlpPolicy", FuzzEnv(spaces.Box(-1, 1, (4,)), space), policy_kwargs=TINY, seed=0)
    model.learn(60)
    assert model._n_updates == 60 and model.policy.action_half_range.shape == (6,)
    squashed = th.tensor([[-1.0] * 6, [1.0] * 6])
    bounds = th.as_tensor(np.stack([space.low.reshape(-1), space.high.reshape(-1)]))
    assert th.equal(model.policy.to_env_units(squashed), bounds)


def test_float64_bounds_beyond_float32_are_refused():
    space = spaces.Box(-1e300, 1e300, (1,), np.float64)
    with pytest.raises(ValueError, match="float32's range"):
        TutorialSAC("MlpPolicy", FuzzEnv(spaces.Box(-1, 1, (3,)), space))


# ----------------------------------------------------------------------------------------------- determinism, resume


def _pendulum_model(n_envs: int, **kwargs) -> TutorialSAC:
    env = make_vec_env("Pendulum-v1", n_envs=n_envs, seed=1)
    return TutorialSAC("MlpPolicy", env, policy_kwargs=SMALL, seed=3, **kwargs)


@pytest.mark.parametrize("n_envs", [1, 2])
def test_same_seed_same_parameters_and_actions(n_envs):
    runs = []
    for _ in range(2):
        th.manual_seed(n_envs + len(runs))  # the global state before construction must not matter
        model = _pendulum_model(n_envs)
        model.learn(400)
        observations = np.random.default_rng(0).uniform(-1, 1, (8, 3)).astype(np.float32)
        runs.append((_state(model), model.predict(observations, deterministic=True)[0]))
    _assert_same_state(runs[0][0], runs[1][0])
    assert np.array_equal(runs[0][1], runs[1][1])


def _replay_contents(model: TutorialSAC) -> tuple:
    buffer = model.replay_buffer
    end = buffer.buffer_size if buffer.full else buffer.pos
    keys = ("observations", "next_observations", "actions", "rewards", "dones")
    return tuple(getattr(buffer, key)[:end].copy() for key in keys)


@pytest.mark.parametrize(
    "n_envs, kwargs, total, first",
    [
        (1, {}, 600, 200),  # whole episodes, resumed at an episode boundary
        (2, dict(learning_starts=100), 400, 60),  # one step of both envs per rollout, resumed mid-episode, mid-warm-up
    ],
)
def test_exact_resume(tmp_path, n_envs, kwargs, total, first):
    one_go = _pendulum_model(n_envs, **kwargs)
    one_go.learn(total)

    model = _pendulum_model(n_envs, **kwargs)
    model.learn(first)
    model.save(tmp_path / "model", include=["env"])
    model.save_replay_buffer(tmp_path / "buffer")
    del model
    # whatever happens to the global generators in between does not matter
    th.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    resumed = TutorialSAC.load(tmp_path / "model.zip", trusted=True)  # include=["env"] pickles the VecEnv
    resumed.load_replay_buffer(tmp_path / "buffer.pkl")
    resumed.learn(total - first, reset_num_timesteps=False)

    assert resumed.num_timesteps == one_go.num_timesteps == total
    _assert_same_state(_state(one_go), _state(resumed))
    for mine, theirs in zip(_replay_contents(one_go), _replay_contents(resumed)):
        assert np.array_equal(mine, theirs)

    # the saved random state is what makes it exact: without it the run takes another path
    model = _pendulum_model(n_envs, **kwargs)
    model.learn(first)
    model.save(tmp_path / "no_rng", include=["env"], exclude=["_rng_state"])
    model.save_replay_buffer(tmp_path / "buffer")
    th.manual_seed(123)
    np.random.seed(123)
    other = TutorialSAC.load(tmp_path / "no_rng.zip", trusted=True)
    other.load_replay_buffer(tmp_path / "buffer.pkl")
    other.learn(total - first, reset_num_timesteps=False)
    assert not th.equal(other.actor.mu.weight, one_go.actor.mu.weight)


# ----------------------------------------------------------------------------------------------- non-finite data


@pytest.mark.parametrize(
    "what, value, message",
    [
        ("reward", float("nan"), "non-finite reward nan from env 0 at env step 37"),
        ("reward", float("inf"), "non-finite reward inf from env 0 at env step 37"),
        ("obs", float("nan"), "non-finite observation of env 0 at env step 37"),
        ("obs", -float("inf"), "non-finite observation of env 0 at env step 37"),
        # step 40 ends the second episode: the bad value is in the terminal observation
        ("obs@40", float("nan"), "non-finite terminal observation of env 0 at env step 40"),
    ],
)
def test_non_finite_env_data_is_never_stored(what, value, message):
    step = 40 if what.endswith("@40") else 37
    env = FuzzEnv(spaces.Box(-1, 1, (3,)), spaces.Box(-2, 2, (1,)), bad_at={step: (what.split("@")[0], value)})
    model = TutorialSAC("MlpPolicy", env, policy_kwargs=TINY, seed=0)
    with pytest.raises(NonFiniteError, match=message):
        model.learn(100)
    # nothing non-finite was stored and the model trained on the first episodes only
    assert model.replay_buffer.pos == step - 1 and model._n_updates == 20
    assert np.isfinite(model.replay_buffer.observations).all() and np.isfinite(model.replay_buffer.rewards).all()
    assert np.isfinite(model.replay_buffer.next_observations).all()
    assert _all_finite(model) and model._last_obs is None
    # the model carries on (the env is reset at the next learn)
    model.learn(40, reset_num_timesteps=False)
    assert model._n_updates > 20 and _all_finite(model)


def test_the_quick_finite_check_falls_back_to_the_elements():
    """check_transition's sums (guard._surely_finite) pass only finite data; a sum of finite values that overflows
    falls back to the element checks (no error), and infinities that cancel in a sum are still caught."""
    from sb3_tutorial_sac.guard import _surely_finite, check_transition

    reward, dones = np.zeros(1, np.float32), np.zeros(1, dtype=bool)
    assert _surely_finite(reward, np.ones((1, 3), np.float32))
    big = np.full((1, 3), 3e38, np.float32)
    assert not _surely_finite(reward, big)
    check_transition(big, reward, dones, [{}], num_timesteps=0)  # finite: no error
    for bad in ([np.nan, 0, 0], [np.inf, 0, 0], [np.inf, -np.inf, 0]):
        obs = np.array([bad], np.float32)
        assert not _surely_finite(reward, obs)
        with pytest.raises(NonFiniteError, match="non-finite observation of env 0"):
            check_transition(obs, reward, dones, [{}], num_timesteps=0)
    with pytest.raises(NonFiniteError, match="non-finite reward nan"):
        check_transition(np.ones((1, 3), np.float32), np.array([np.nan], np.float32), dones, [{}], num_timesteps=0)


def test_the_guard_s_sums_fall_back_to_the_elements():
    """guard.check_training passes finite tensors on their sums (guard._finite_by_sums); a sum of finite values that
    overflows falls back to the element checks (no error), and a NaN or an infinity is still named."""
    from sb3_tutorial_sac.guard import _finite_by_sums, check_training

    assert _finite_by_sums([th.ones(3), th.zeros(2)]) and _finite_by_sums([])
    assert not _finite_by_sums([th.full((4,), 3e38)])
    for bad in (float("nan"), float("inf"), -float("inf")):
        assert not _finite_by_sums([th.ones(3), th.tensor([1.0, bad])])
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, seed=0)
    state = model.training_state
    flat = state.actor_flat.flat
    stats, names = np.zeros((2, 3)), ["a", "b", "c"]
    with th.no_grad():
        flat[:4] = 3e38  # finite, its sum overflows
    with state.transaction():
        check_training(state, stats, names, 0, 0)
    with th.no_grad():
        flat[5] = float("nan")
    with pytest.raises(NonFiniteError, match="non-finite values in actor parameters"), state.transaction():
        check_training(state, stats, names, 0, 0)


def test_non_finite_check_can_be_turned_off():
    env = FuzzEnv(spaces.Box(-1, 1, (3,)), spaces.Box(-2, 2, (1,)), bad_at={5: ("reward", float("nan"))})
    model = TutorialSAC("MlpPolicy", env, policy_kwargs=TINY, seed=0, check_finite=False, train_freq=(100, "step"))
    model.learn(10)
    assert np.isnan(model.replay_buffer.rewards[4, 0])


def _feed(model: TutorialSAC, steps: int, bad_step: int | None = None, batch: int = 64) -> None:
    """Make the next train() call read ``steps`` random Pendulum-like minibatches, with a NaN reward in one."""
    rng = np.random.default_rng(0)
    rewards = -rng.uniform(0, 16, (steps * batch, 1)).astype(np.float32)
    if bad_step is not None:
        rewards[(bad_step - 1) * batch + 7] = np.nan
    samples = ReplayBufferSamples(
        th.as_tensor(rng.uniform(-1, 1, (steps * batch, 3)).astype(np.float32)),
        th.as_tensor(rng.uniform(-2, 2, (steps * batch, 1)).astype(np.float32)),
        th.as_tensor(rng.uniform(-1, 1, (steps * batch, 3)).astype(np.float32)),
        th.zeros(steps * batch, 1),
        th.as_tensor(rewards),
    )
    model._sample_minibatches = lambda gradient_steps, batch_size: samples  # type: ignore[method-assign]


def _trained_pendulum(seed: int = 0) -> TutorialSAC:
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, seed=seed)
    model.learn(200)
    model.set_logger(configure(None, [""]))
    return model


def test_non_finite_loss_stops_train_and_restores_the_model():
    model = _trained_pendulum()
    before = _state(model)
    _feed(model, steps=10, bad_step=4)
    with pytest.raises(NonFiniteError, match=r"critic1_loss = nan at gradient step 204 \(step 4 of 10"):
        model.train(10, 64)
    # everything as before the call (no NaN weights, no half-applied steps), and training goes on
    _assert_same_state(before, _state(model))
    assert np.isnan(model.last_train_stats["critic1_loss"][3])  # the evidence stays readable
    _feed(model, steps=10)
    model.train(10, 64)
    assert model._n_updates == 210 and _all_finite(model)


def test_non_finite_parameters_after_the_last_step_are_caught(monkeypatch):
    model = _trained_pendulum()
    before = _state(model)
    calls = []
    real_run_steps = FastEngine.run_steps  # the engine's seam: the gradient steps of one train() call

    def poisoned_run_steps(self, columns, gradient_steps, stats, target_update_interval):
        real_run_steps(self, columns, gradient_steps, stats, target_update_interval)
        calls.append(gradient_steps)
        with th.no_grad():  # after the 5th (last) gradient step
            model.critic_target.q_networks[0][0].weight[0, 0] = float("inf")

    assert isinstance(model.update_engine, FastEngine)
    monkeypatch.setattr(FastEngine, "run_steps", poisoned_run_steps)
    _feed(model, steps=5)
    with pytest.raises(NonFiniteError, match="non-finite values in target critic parameters"):
        model.train(5, 64)
    assert calls == [5]
    _assert_same_state(before, _state(model))


# ----------------------------------------------------------------------------------------------- interruptions


class RaiseAt(BaseCallback):
    def __init__(self, step: int, error: BaseException):
        super().__init__()
        self.step, self.error = step, error

    def _on_step(self) -> bool:
        if self.num_timesteps == self.step:
            raise self.error
        return True


@pytest.mark.parametrize("error", [KeyboardInterrupt(), RuntimeError("callback failed")])
def test_interrupted_learn_leaves_a_usable_model(tmp_path, error):
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=TINY, seed=0)
    with pytest.raises(type(error)):
        model.learn(1000, callback=RaiseAt(250, error))
    # the env stepped to 250 but transition 250 was not stored: the next learn() starts from a reset
    assert model.num_timesteps == 250 and model.replay_buffer.pos == 249 and model._last_obs is None
    model.save(tmp_path / "model")
    model.save_replay_buffer(tmp_path / "buffer")
    loaded = TutorialSAC.load(tmp_path / "model", env=make_vec_env("Pendulum-v1", n_envs=1))
    loaded.load_replay_buffer(tmp_path / "buffer")
    for m in (model, loaded):
        m.learn(200, reset_num_timesteps=False)
        assert m.num_timesteps == 450 and m._n_updates == 400 and _all_finite(m)


def test_interrupted_train_applies_no_step(monkeypatch):
    model = _trained_pendulum()
    before = _state(model)
    assert isinstance(model.update_engine, FastEngine)
    sample_action_entropy = policies_module.sample_action_entropy
    calls = []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 8:  # the actor's draw of the 4th gradient step (2 per step), after its critic steps
            raise KeyboardInterrupt
        return sample_action_entropy(*args, **kwargs)

    monkeypatch.setattr(policies_module, "sample_action_entropy", interrupted)
    _feed(model, steps=10)
    with pytest.raises(KeyboardInterrupt):
        model.train(10, 64)
    assert len(calls) == 8
    _assert_same_state(before, _state(model))
    monkeypatch.setattr(policies_module, "sample_action_entropy", sample_action_entropy)
    model.train(10, 64)
    assert model._n_updates == 210


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    model = _trained_pendulum()
    model.save(tmp_path / "model.zip")
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    good_model, good_buffer = (tmp_path / "model.zip").read_bytes(), (tmp_path / "buffer.pkl").read_bytes()
    model.learn(200, reset_num_timesteps=False)

    real_save = th.save

    def save_then_interrupt(obj, file, *args, **kwargs):
        real_save(obj, file, *args, **kwargs)
        raise KeyboardInterrupt  # after the first of the zip's members is written

    def savez_half_then_interrupt(file, *args, **kwargs):
        file.write(b"half an npz")
        raise KeyboardInterrupt

    monkeypatch.setattr(th, "save", save_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        model.save(tmp_path / "model.zip")
    monkeypatch.setattr(np, "savez", savez_half_then_interrupt)  # the replay buffer is written as an npz
    with pytest.raises(KeyboardInterrupt):
        model.save_replay_buffer(tmp_path / "buffer.pkl")
    monkeypatch.undo()

    assert (tmp_path / "model.zip").read_bytes() == good_model
    assert (tmp_path / "buffer.pkl").read_bytes() == good_buffer
    assert sorted(p.name for p in tmp_path.iterdir()) == ["buffer.pkl", "model.zip"]  # no temporary files left
    TutorialSAC.load(tmp_path / "model.zip").load_replay_buffer(tmp_path / "buffer.pkl")
    # and a save that completes replaces the file
    model.save(tmp_path / "model.zip")
    assert (tmp_path / "model.zip").read_bytes() != good_model


# ----------------------------------------------------------------------------------------------- corrupt or foreign files


def test_set_parameters_is_all_or_nothing(tmp_path, monkeypatch):
    model = _trained_pendulum()
    before = _state(model)

    TutorialSAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=dict(pi=[8], qf=[8, 4]))).save(tmp_path / "arch")
    SAC("MlpPolicy", "Pendulum-v1", policy_kwargs=dict(net_arch=[8])).save(tmp_path / "sac")
    data = (tmp_path / "arch.zip").read_bytes()
    (tmp_path / "truncated.zip").write_bytes(data[: len(data) // 2])

    with pytest.raises(ValueError, match=r"critic.qf0.2.weight: shape \(4, 8\) given, \(8, 8\) in this model"):
        model.set_parameters(tmp_path / "arch.zip")
    with pytest.raises(ValueError, match="missing keys"):
        model.set_parameters(tmp_path / "sac.zip")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        model.set_parameters(tmp_path / "truncated.zip")
    with pytest.raises(ValueError, match="unknown"):
        model.set_parameters({"policy.nonsense": {}}, exact_match=False)
    _assert_same_state(before, _state(model))

    # same networks, optimiser state of another size (torch's own load_state_dict would take it)
    other = _trained_pendulum(seed=1)
    params = copy.deepcopy(other.get_parameters())  # (an optimiser's state_dict() shares its state dicts)
    params["actor.optimizer"]["state"][0]["exp_avg"] = th.zeros(5)
    with pytest.raises(ValueError, match=r"actor.optimizer group 0 state exp_avg: shape \(5,\) given"):
        model.set_parameters(params)
    _assert_same_state(before, _state(model))

    # a failure past the checks rolls back what was already written
    real_load_state_dict = th.optim.Adam.load_state_dict
    failures = []

    def broken(self, state_dict):
        # the critic's optimiser fails once, after the policy and the actor's optimiser were written
        if self is model.critic.optimizer and not failures:
            failures.append(self)
            raise RuntimeError("disk on fire")
        real_load_state_dict(self, state_dict)

    monkeypatch.setattr(th.optim.Adam, "load_state_dict", broken)
    with pytest.raises(ValueError, match="nothing was loaded: disk on fire"):
        model.set_parameters(other.get_parameters())
    monkeypatch.undo()
    assert failures
    _assert_same_state(before, _state(model))

    # and a good file loads, then training carries on
    model.set_parameters(other.get_parameters())
    # (log_ent_coef is a saved variable, not a state dict: SB3's set_parameters leaves it, so does this one)
    _assert_same_state({**_state(other), "log_ent_coef": None}, {**_state(model), "log_ent_coef": None})
    model.learn(200, reset_num_timesteps=False)
    assert _all_finite(model)
