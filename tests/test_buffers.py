"""sample_minibatches: the tutorial's random.sample(datas, 64) (distinct transitions) over SB3's replay buffers."""

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from scipy import stats
from stable_baselines3.common.buffers import DictReplayBuffer, NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_tutorial_sac.buffers import sample_minibatches
from tests.envs import BoxTargetEnv

OBS = spaces.Box(-np.inf, np.inf, (3,), np.float32)
ACT = spaces.Box(-1.0, 1.0, (1,), np.float32)


def filled(n_added: int, buffer_size: int = 1000, n_envs: int = 1, dict_obs: bool = False, **kwargs) -> ReplayBuffer:
    """A buffer after ``n_added`` steps of ``n_envs`` envs; the transition added as number ``t`` (step-major) carries
    ``t`` in its reward, action and observation ``[t, 1, -t]``, its next observation is the next step's observation
    (``t + n_envs``: consistent with optimize_memory_usage), ``done = t % 2``, ``truncated = (t % 3 == 0)``."""
    kwargs.setdefault("handle_timeout_termination", False)
    if dict_obs:
        buffer: ReplayBuffer = DictReplayBuffer(
            buffer_size * n_envs,
            spaces.Dict({"position": OBS, "velocity": spaces.Box(-5, 5, (2,))}),
            ACT,
            "cpu",
            n_envs,
            **kwargs,
        )
    else:
        buffer = ReplayBuffer(buffer_size * n_envs, OBS, ACT, "cpu", n_envs, **kwargs)
    for step in range(n_added):
        ids = (step * n_envs + np.arange(n_envs)).astype(np.float32)
        obs, next_obs = (np.stack([i, np.ones(n_envs), -i], axis=1).astype(np.float32) for i in (ids, ids + n_envs))
        if dict_obs:
            velocity = np.full((n_envs, 2), 0.5, np.float32) * ids[:, None]
            obs, next_obs = ({"position": o, "velocity": velocity} for o in (obs, next_obs))
        infos = [{"TimeLimit.truncated": bool(i % 3 == 0)} for i in ids]
        buffer.add(obs, next_obs, ids.reshape(n_envs, 1), ids, ids % 2, infos)
    return buffer


def ids_of(data) -> np.ndarray:
    """The id of every row (the reward, which carries it)."""
    return data.rewards.numpy().reshape(-1).astype(np.int64)


def stored_ids(buffer: ReplayBuffer) -> set[int]:
    """Ids of the transitions SB3's sample may return (pos left out when optimize_memory_usage and full)."""
    positions = list(range(buffer.size()))
    if buffer.optimize_memory_usage and buffer.full:
        positions.remove(buffer.pos)
    return {int(i) for i in buffer.rewards[positions].reshape(-1)}


CASES = {
    "70 stored": dict(n_added=70),
    "150 stored": dict(n_added=150),
    "500 stored": dict(n_added=500),
    "full after FIFO eviction": dict(n_added=250, buffer_size=100),
    "3 envs": dict(n_added=30, n_envs=3),
    "3 envs full": dict(n_added=250, buffer_size=100, n_envs=3),
    "optimize_memory_usage full": dict(n_added=250, buffer_size=100, optimize_memory_usage=True),
    "optimize_memory_usage full 399": dict(n_added=900, buffer_size=400, optimize_memory_usage=True),
    "optimize_memory_usage exactly 64": dict(n_added=165, buffer_size=100, optimize_memory_usage=True, n_envs=1),
    "optimize_memory_usage not full": dict(n_added=80, buffer_size=100, optimize_memory_usage=True),
    "dict": dict(n_added=90, dict_obs=True),
    "dict full 2 envs": dict(n_added=150, buffer_size=100, dict_obs=True, n_envs=2),
}


@pytest.mark.parametrize("case", CASES)
def test_no_repeat_within_a_minibatch_and_only_stored_transitions(case):
    buffer = filled(**CASES[case])
    stored = stored_ids(buffer)
    np.random.seed(0)
    data = sample_minibatches(buffer, 200, 64)
    ids = ids_of(data).reshape(200, 64)
    assert all(len(set(row)) == 64 for row in ids)
    assert set(ids.reshape(-1)) <= stored
    if len(stored) < 200:
        # minibatches are independent draws: over 200 of them every stored transition shows up
        assert set(ids.reshape(-1)) == stored


def test_optimize_memory_usage_full_leaves_pos_out():
    buffer = filled(165, buffer_size=100, optimize_memory_usage=True)  # 99 valid transitions: pos is not one
    np.random.seed(1)
    ids = ids_of(sample_minibatches(buffer, 500, 64))
    assert int(buffer.rewards[buffer.pos, 0]) not in set(ids)
    assert set(ids) == stored_ids(buffer) and len(stored_ids(buffer)) == 99


@pytest.mark.parametrize("n_added, n_envs", [(300, 1), (100, 3), (40, 1)])
def test_uniform_over_stored_transitions(n_added, n_envs):
    buffer = filled(n_added, buffer_size=1000, n_envs=n_envs)
    np.random.seed(123)
    ids = ids_of(sample_minibatches(buffer, 2000, 32))
    counts = np.bincount(ids, minlength=n_added * n_envs)
    assert counts.size == n_added * n_envs and counts.min() > 0
    assert stats.chisquare(counts).pvalue > 1e-3
    # and the position within a minibatch does not depend on the transition (uniform order, as random.sample)
    first = np.bincount(ids.reshape(2000, 32)[:, 0], minlength=n_added * n_envs)
    assert stats.chisquare(first).pvalue > 1e-3


def test_each_subset_equally_likely():
    """5 transitions, minibatches of 2 (the permutation path): all 20 ordered pairs equally often."""
    buffer = filled(5, buffer_size=10)
    np.random.seed(7)
    ids = ids_of(sample_minibatches(buffer, 20000, 2)).reshape(-1, 2)
    assert np.all(ids[:, 0] != ids[:, 1])
    ordered = np.bincount(ids[:, 0] * 5 + ids[:, 1], minlength=25)
    assert stats.chisquare(ordered[ordered > 0]).pvalue > 1e-3 and np.count_nonzero(ordered) == 20
    # the rejection path (at least 4 * batch stored): 12 transitions, minibatches of 3: each ordered triple as often
    buffer = filled(12, buffer_size=20)
    np.random.seed(8)
    ids = ids_of(sample_minibatches(buffer, 40000, 3)).reshape(-1, 3)
    assert np.all((ids[:, 0] != ids[:, 1]) & (ids[:, 0] != ids[:, 2]) & (ids[:, 1] != ids[:, 2]))
    triples = np.unique(ids, axis=0, return_counts=True)[1]
    assert triples.size == 12 * 11 * 10 and stats.chisquare(triples).pvalue > 1e-3


def assert_samples_equal(ours, sb3) -> None:
    for field in ("observations", "actions", "next_observations", "dones", "rewards"):
        a, b = getattr(ours, field), getattr(sb3, field)
        if isinstance(a, dict):
            assert a.keys() == b.keys()
            for key in a:
                assert a[key].dtype == b[key].dtype and th.equal(a[key], b[key]), (field, key)
        else:
            assert a.dtype == b.dtype and th.equal(a, b), field
    assert ours.discounts is None


def vec_normalize(dict_obs: bool) -> VecNormalize:
    """A VecNormalize with running statistics of a few steps (observations and rewards)."""
    if dict_obs:
        env = VecNormalize(DummyVecEnv([lambda: BoxTargetEnv(obs_shape=None)]), gamma=0.99)
    else:
        env = VecNormalize(make_vec_env("Pendulum-v1", n_envs=1, seed=0), gamma=0.99)
    env.reset()
    for _ in range(50):
        env.step(np.stack([env.action_space.sample()]))
    return env


@pytest.mark.parametrize("normalize", [False, True], ids=["raw", "VecNormalize"])
@pytest.mark.parametrize(
    "case", ["150 stored", "full after FIFO eviction", "3 envs full", "optimize_memory_usage full", "dict full 2 envs"]
)
def test_rows_are_sb3s_get_samples(case, normalize, monkeypatch):
    """The gathered rows equal SB3's own ReplayBuffer/DictReplayBuffer._get_samples for the same positions and env
    indices (its env-index draw, np.random.randint, made to return ours), with and without VecNormalize."""
    buffer = filled(**CASES[case])
    env = vec_normalize(CASES[case].get("dict_obs", False)) if normalize else None
    np.random.seed(3)
    ours = sample_minibatches(buffer, 4, 64, env=env)
    np.random.seed(3)  # the same draw without normalisation gives the ids (the drawing never reads env)
    ids = ids_of(sample_minibatches(buffer, 4, 64))
    # ids are step * n_envs + env index; the position follows from the FIFO order
    steps, env_indices = np.divmod(ids, buffer.n_envs)
    batch_inds = steps % buffer.buffer_size
    if buffer.n_envs == 1:
        sb3 = buffer._get_samples(batch_inds, env=env)  # n_envs=1: SB3's env index is always 0
    else:
        with monkeypatch.context() as patch:
            patch.setattr(np.random, "randint", lambda low, high, size: env_indices)
            sb3 = buffer._get_samples(batch_inds, env=env)
    assert_samples_equal(ours, sb3)
    if normalize:
        assert not np.array_equal(ours.rewards.numpy().reshape(-1), ids)  # the rewards were normalised


def test_gather_values_dones_timeouts():
    """Each row's values: observation, action, next observation (from the next slot with optimize_memory_usage), done."""
    for optimize in (False, True):
        buffer = filled(30, buffer_size=100, optimize_memory_usage=optimize)
        np.random.seed(0)
        data = sample_minibatches(buffer, 10, 20)
        for obs, action, next_obs, done, reward in zip(*(x.numpy() for x in data[:5])):
            t = reward[0]
            assert obs.tolist() == [t, 1.0, -t] and action[0] == t
            assert next_obs.tolist() == [t + 1, 1.0, -t - 1]
            assert done[0] == (t % 2)  # handle_timeout_termination=False: timeouts are never set


def test_timeouts_mask_dones():
    buffer = filled(90, buffer_size=100, handle_timeout_termination=True)
    np.random.seed(0)
    data = sample_minibatches(buffer, 10, 64)
    t = data.rewards.numpy().reshape(-1).astype(int)
    np.testing.assert_array_equal(data.dones.numpy().reshape(-1), (t % 2) * (t % 3 != 0))


@pytest.mark.parametrize("case", ["70 stored", "3 envs full", "optimize_memory_usage full", "dict"])
def test_replacement_is_sb3s_sample(case):
    buffer = filled(**CASES[case])
    np.random.seed(5)
    ours = sample_minibatches(buffer, 7, 64, replacement=True)
    after = np.random.randint(1 << 30)
    np.random.seed(5)
    assert_samples_equal(ours, buffer.sample(7 * 64))
    assert np.random.randint(1 << 30) == after  # the same random numbers consumed


def test_seeded_draws_repeat():
    buffer = filled(250, buffer_size=100, n_envs=2)
    np.random.seed(9)
    first = ids_of(sample_minibatches(buffer, 50, 64))
    np.random.seed(9)
    np.testing.assert_array_equal(first, ids_of(sample_minibatches(buffer, 50, 64)))


def test_shapes_and_zero_batches():
    buffer = filled(100)
    data = sample_minibatches(buffer, 3, 64)
    assert data.observations.shape == (192, 3) and data.actions.shape == (192, 1)
    assert data.rewards.shape == data.dones.shape == (192, 1)
    assert sample_minibatches(buffer, 0, 64).observations.shape == (0, 3)


@pytest.mark.parametrize(
    "kwargs, stored",
    [
        (dict(n_added=63), 63),
        (dict(n_added=0), 0),
        (dict(n_added=21, n_envs=3), 63),
        (dict(n_added=64, buffer_size=64, optimize_memory_usage=True), 63),
    ],
)
def test_too_few_transitions(kwargs, stored):
    buffer = filled(**kwargs)
    with pytest.raises(ValueError, match=rf"holds {stored} transitions and a minibatch needs 64 .*replacement=True"):
        sample_minibatches(buffer, 2, 64)
    if stored:
        assert sample_minibatches(buffer, 2, 64, replacement=True).rewards.shape == (128, 1)


def test_exactly_batch_size_stored():
    buffer = filled(64)
    np.random.seed(0)
    ids = ids_of(sample_minibatches(buffer, 5, 64)).reshape(5, 64)
    assert all(sorted(row) == list(range(64)) for row in ids)


def test_unsupported_buffer_class():
    class OwnSample(ReplayBuffer):
        def sample(self, batch_size, env=None):
            return super().sample(batch_size, env)

    class OwnNStepSamples(NStepReplayBuffer):
        def _get_samples(self, batch_inds, env=None):
            return super()._get_samples(batch_inds, env)

    class Subclass(ReplayBuffer):
        pass

    for bad in (OwnNStepSamples(1000, OBS, ACT, "cpu"), OwnSample(1000, OBS, ACT, "cpu")):
        with pytest.raises(ValueError, match=rf"not {type(bad).__name__}.*replacement=True"):
            sample_minibatches(bad, 1, 64)
    ok = Subclass(1000, OBS, ACT, "cpu", handle_timeout_termination=False)
    ok.__dict__.update({k: v for k, v in filled(100).__dict__.items() if k != "device"})
    assert len(set(ids_of(sample_minibatches(ok, 1, 64)))) == 64


# ------------------------------------------------------------------------------------- TutorialSAC's use of it


def _minibatches_of(model, gradient_steps: int = 50):
    from stable_baselines3.common.logger import Logger

    model.set_logger(Logger(folder=None, output_formats=[]))
    model.learn(400)
    return model._sample_minibatches(gradient_steps, model.batch_size)


def test_tutorial_sac_draws_distinct_transitions_by_default():
    from sb3_tutorial_sac import TutorialSAC

    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, policy_kwargs=dict(net_arch=dict(pi=[8], qf=[8])))
    assert model.sample_with_replacement is False
    samples = _minibatches_of(model)
    rows = th.cat([samples.observations, samples.actions, samples.rewards], dim=1).view(50, 64, -1)
    for minibatch in rows:
        assert len(th.unique(minibatch, dim=0)) == 64  # 400 stored: a repeat would be likely with replacement


def test_sample_with_replacement_restores_sb3s_draw():
    from sb3_tutorial_sac import TutorialSAC

    model = TutorialSAC(
        "MlpPolicy", "Pendulum-v1", seed=0, sample_with_replacement=True, policy_kwargs=dict(net_arch=dict(pi=[8], qf=[8]))
    )
    _minibatches_of(model, 1)
    state = np.random.get_state()
    ours = model._sample_minibatches(50, 64)
    np.random.set_state(state)
    expected = model.replay_buffer.sample(50 * 64)
    for mine, theirs in zip(ours, expected):
        if mine is not None:
            assert th.equal(mine, theirs)
    repeats = sum(len(th.unique(batch, dim=0)) < 64 for batch in ours.observations.view(50, 64, -1))
    assert repeats > 10  # with replacement, minibatches of 64 from 400 transitions mostly repeat one


def test_too_few_transitions_fall_back_to_replacement_with_a_warning():
    from sb3_tutorial_sac import TutorialSAC

    model = TutorialSAC("MlpPolicy", BoxTargetEnv(episode_length=20), seed=0, batch_size=64)
    with pytest.warns(UserWarning, match="holds 20 transitions, fewer than batch_size=64"):
        model.learn(100)
    assert model._n_updates == 100


def test_a_buffer_that_draws_its_own_samples_needs_the_switch():
    from sb3_tutorial_sac import TutorialSAC

    class OwnNStepSamples(NStepReplayBuffer):
        def _get_samples(self, batch_inds, env=None):
            return super()._get_samples(batch_inds, env)

    with pytest.raises(ValueError, match=r"not OwnNStepSamples.*sample_with_replacement=True"):
        TutorialSAC("MlpPolicy", "Pendulum-v1", replay_buffer_class=OwnNStepSamples)
    TutorialSAC("MlpPolicy", "Pendulum-v1", replay_buffer_class=OwnNStepSamples, sample_with_replacement=True)
    TutorialSAC("MlpPolicy", "Pendulum-v1", replay_buffer_class=NStepReplayBuffer)  # SB3's own: gathered distinct
