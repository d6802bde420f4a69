"""SB3's conventions that the tutorial does not decide: TutorialSAC next to SB3's SAC, on the same lines (issue 19).

Where the tutorial is silent, SB3's ``SAC`` is the specification: each test runs both and asserts the same observable
result, or the clear error where the variant decides otherwise (docs/variant.md, "SB3's conventions"). Inside the
gradient step too: the batch-norm statistics of the critics reach the target critics at every target update, and
tau = 0 never moves the targets. Save and load side by side: tests/test_save_load.py.
"""

import inspect
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.noise import NormalActionNoise, VectorizedActionNoise
from stable_baselines3.common.preprocessing import get_flattened_obs_dim
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from sb3_tutorial_sac import TutorialSAC
from sb3_tutorial_sac.buffers import sample_minibatches
from tests.envs import BoxTargetEnv

# SB3 and TutorialSAC train from the first transitions here; with batch 8 TutorialSAC says it draws with replacement
pytestmark = pytest.mark.filterwarnings("ignore:The replay buffer holds")

ALGOS = (SAC, TutorialSAC)
TINY = dict(net_arch=[8])


def vec_env(n_envs: int = 1, episode_length: int = 10, **kwargs):
    return make_vec_env(lambda: BoxTargetEnv(episode_length=episode_length, **kwargs), n_envs=n_envs, seed=0)


def make(cls, env=None, **kwargs):
    """A tiny model of ``cls`` (SAC or TutorialSAC) on ``env`` (one BoxTargetEnv of 10 steps by default)."""
    kwargs.setdefault("policy_kwargs", dict(TINY))
    kwargs.setdefault("seed", 0)
    return cls("MlpPolicy", vec_env() if env is None else env, **kwargs)


def quiet(model):
    model.set_logger(Logger(folder=None, output_formats=[]))
    return model


def add(buffer: ReplayBuffer, transitions: list[tuple]) -> None:
    """Store ``(obs, next_obs, action, reward, terminated, truncated)`` rows, one env, in ``buffer``."""
    for obs, next_obs, action, reward, terminated, truncated in transitions:
        buffer.add(
            np.array([obs], np.float32),
            np.array([next_obs], np.float32),
            np.array([action], np.float32),
            np.array([reward], np.float32),
            np.array([terminated or truncated]),
            [{"TimeLimit.truncated": truncated}],
        )


# Eight transitions of 2-d observations [t, 0.5]: a termination at t=1, a time-limit truncation at t=5, t=7 the last
# stored (its window ends there: SB3's buffer treats it as truncated while it is the newest)
TERMINATED, TRUNCATED, GAMMA = {1}, {5}, 0.9
ROWS = [
    (
        [t, 0.5],
        [t + 1 if t not in TERMINATED | TRUNCATED else -t, -0.5],
        [np.sin(t)],
        -1.0 - t,
        t in TERMINATED,
        t in TRUNCATED,
    )
    for t in range(8)
]


def n_step_by_hand(t: int, shift: float, scale: float) -> tuple[float, float, int]:
    """The tutorial's normalisation of every reward, summed over the steps of a 3-step window from ``t`` (float64).

    :return: sum_k gamma^k (r_k + shift) * scale, the bootstrap discount (1 - terminated) * gamma^m, the last step
    """
    total, k = 0.0, 0
    while True:
        total += GAMMA**k * (ROWS[t + k][3] + shift) * scale
        last = t + k
        if last in TERMINATED | TRUNCATED or last == len(ROWS) - 1 or k == 2:
            break
        k += 1
    return total, (0.0 if last in TERMINATED else GAMMA ** (k + 1)), last


# ----------------------------------------------------------------------------------------------- the constructor


def test_every_sac_argument_is_an_argument():
    ours = inspect.signature(TutorialSAC.__init__).parameters
    assert set(inspect.signature(SAC.__init__).parameters) <= set(ours)
    # gSDE's arguments at SAC's defaults are accepted (a SAC configuration that does not use gSDE carries over)
    model = make(TutorialSAC, use_sde=False, sde_sample_freq=-1, use_sde_at_warmup=False, policy_kwargs=dict(use_sde=False))
    assert model.use_sde is False and "use_sde" not in model.policy_kwargs


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(use_sde=True),
        dict(sde_sample_freq=4),
        dict(use_sde_at_warmup=True),
        dict(policy_kwargs=dict(log_std_init=-2.0)),
        dict(policy_kwargs=dict(use_expln=True)),
        dict(policy_kwargs=dict(clip_mean=1.0)),
        dict(policy_kwargs=dict(use_sde=True)),
    ],
)
def test_gsde_is_outside_the_variant(kwargs):
    sac_kwargs = dict(kwargs)
    if "policy_kwargs" in kwargs and "use_sde" not in kwargs["policy_kwargs"]:
        sac_kwargs["use_sde"] = True  # SACPolicy reads these with gSDE only
    if sac_kwargs.get("policy_kwargs", {}).get("use_sde"):
        sac_kwargs = dict(use_sde=True)  # SAC sets policy_kwargs["use_sde"] from its own argument
    assert make(SAC, **sac_kwargs).actor.use_sde or not sac_kwargs.get("use_sde", False)
    with pytest.raises(ValueError, match=r"gSDE .* outside the tutorial's variant.*Softplus std head.*ent_coef"):
        make(TutorialSAC, **kwargs)


def test_tau_zero_keeps_the_targets():
    for cls in ALGOS:
        model = make(cls, tau=0.0, learning_starts=0, batch_size=8)
        before = [p.clone() for p in model.critic_target.parameters()]
        model.learn(30)
        assert model.tau == 0.0 and model._n_updates > 0
        assert all(th.equal(a, b) for a, b in zip(before, model.critic_target.parameters(), strict=True))
        assert not all(th.equal(a, b) for a, b in zip(before, model.critic.parameters(), strict=True))
    with pytest.raises(ValueError, match=r"tau must be in \[0, 1\]"):
        make(TutorialSAC, tau=-0.1)


@pytest.mark.parametrize("value", [False, True])
def test_handle_timeout_termination_in_replay_buffer_kwargs(value):
    kwargs = dict(replay_buffer_kwargs=dict(handle_timeout_termination=value))
    for cls in ALGOS:
        assert make(cls, **kwargs).replay_buffer.handle_timeout_termination is value
    # the argument and SB3's spelling together: the same value is fine, different values an error naming both
    model = make(TutorialSAC, handle_timeout_termination=value, **kwargs)
    assert model.handle_timeout_termination is value and model.replay_buffer.handle_timeout_termination is value
    with pytest.raises(
        ValueError, match=r"handle_timeout_termination=.* and replay_buffer_kwargs\['handle_timeout_termination'\]"
    ):
        make(TutorialSAC, handle_timeout_termination=not value, **kwargs)
    # neither: the tutorial's terminal (SB3: bootstrapped)
    assert make(TutorialSAC).replay_buffer.handle_timeout_termination is False
    assert make(SAC).replay_buffer.handle_timeout_termination is True


# ----------------------------------------------------------------------------------------------- n-step returns


def test_n_steps_builds_sb3s_buffer():
    for cls in ALGOS:
        model = make(cls, n_steps=3, gamma=0.9)
        buffer = model.replay_buffer
        assert type(buffer) is NStepReplayBuffer and (buffer.n_steps, buffer.gamma) == (3, 0.9)
        assert model.n_steps == 3 and model.replay_buffer_kwargs["n_steps"] == 3
        assert type(make(cls).replay_buffer) is ReplayBuffer  # n_steps=1: the one-step buffer
        # with a replay_buffer_class, n_steps is ignored with SB3's warning; the buffer's own kwargs count
        with pytest.warns(UserWarning, match="n_steps=3` is ignored because a custom `replay_buffer_class`"):
            model = make(cls, n_steps=3, replay_buffer_class=NStepReplayBuffer, replay_buffer_kwargs=dict(n_steps=2))
        assert model.replay_buffer.n_steps == 2
    with pytest.raises(AssertionError, match="not supported for Dict"):
        SAC("MultiInputPolicy", BoxTargetEnv(obs_shape=None), n_steps=3)
    with pytest.raises(ValueError, match="n_steps=3: SB3's n-step returns do not support Dict"):
        TutorialSAC("MultiInputPolicy", BoxTargetEnv(obs_shape=None), n_steps=3)
    with pytest.raises(ValueError, match="n_steps must be a positive integer"):
        make(TutorialSAC, n_steps=0)


def test_n_step_samples_and_target_inputs_are_sb3s():
    env = BoxTargetEnv(obs_shape=(2,))
    kwargs = dict(n_steps=3, gamma=GAMMA, replay_buffer_kwargs=dict(handle_timeout_termination=True))
    models = [make(cls, env, **kwargs) for cls in ALGOS]
    for model in models:
        add(model.replay_buffer, ROWS)
    sac, ours = models
    np.random.seed(3)
    theirs = sac.replay_buffer.sample(256)
    np.random.seed(3)
    mine = sample_minibatches(ours.replay_buffer, 4, 64, replacement=True)
    for field in theirs._fields:
        assert th.equal(getattr(mine, field), getattr(theirs, field)), field
    # without the tutorial's normalisation the update's rewards and discounts are SAC's:
    # target_q = rewards + (1 - dones) * discounts * next_q
    ours.reward_shift, ours.reward_scale = 0.0, 1.0
    rewards, discounts = ours._rewards_and_discounts(mine)
    assert th.equal(rewards, theirs.rewards) and th.equal(discounts, (1 - theirs.dones) * theirs.discounts)
    # the tutorial's default draw: distinct transitions, gathered as SB3's buffer gathers them
    mine = sample_minibatches(ours.replay_buffer, 2, 8)
    for rows in mine.observations[:, 0].view(2, 8):
        assert sorted(rows.tolist()) == list(range(8))
    for i, t in enumerate(mine.observations[:, 0].long().tolist()):
        expected, discount, last = n_step_by_hand(t, 0.0, 1.0)
        assert math.isclose(mine.rewards[i].item(), expected, rel_tol=1e-6)
        assert math.isclose(((1 - mine.dones[i]) * mine.discounts[i]).item(), discount, rel_tol=1e-6)
        assert mine.next_observations[i].tolist() == ROWS[last][1]


@pytest.mark.parametrize("shift, scale, engine", [(8.0, 1 / 8, "reference"), (8.0, 1 / 8, "fast"), (3.0, 0.5, "fast")])
def test_n_step_target_by_hand(shift, scale, engine):
    """A 3-step target with an early termination (and a truncation) inside the window, rewards normalised per step."""
    env = BoxTargetEnv(obs_shape=(2,), low=(-2.0,), high=(2.0,))
    model = make(
        TutorialSAC,
        env,
        n_steps=3,
        gamma=GAMMA,
        batch_size=8,
        handle_timeout_termination=True,
        reward_shift=shift,
        reward_scale=scale,
        engine=engine,
        policy_kwargs=dict(net_arch=dict(pi=[8], qf=[8])),
    )
    assert model._engine.name == engine
    add(model.replay_buffer, ROWS)
    quiet(model)
    state = np.random.get_state()
    samples = model._sample_minibatches(1, 8)
    order = samples.observations[:, 0].long().tolist()
    assert sorted(order) == list(range(8))
    by_hand = [n_step_by_hand(t, shift, scale) for t in order]
    # steps taken - 1 from each t: t=0 ends at the termination of t=1 (no bootstrap), t=2 takes all 3 steps, t=3 and
    # t=4 end at the truncation of t=5 (bootstrapped), t=6 at the newest transition
    assert [n_step_by_hand(t, shift, scale)[2] - t for t in range(8)] == [1, 0, 2, 2, 1, 0, 1, 0]
    assert n_step_by_hand(0, shift, scale)[1] == 0.0 and n_step_by_hand(4, shift, scale)[1] == GAMMA**2

    # What the update uses: the rewards and discounts of its target
    rewards, discounts = model._rewards_and_discounts(samples)
    np.testing.assert_allclose(rewards.numpy()[:, 0], [row[0] for row in by_hand], rtol=1e-6)
    np.testing.assert_allclose(discounts.numpy()[:, 0], [row[1] for row in by_hand], rtol=1e-6)

    # The whole target, by hand: y = r' + discount * (min Q_targ(s_m, a') + alpha * H(s_m)), a' and H drawn from the
    # actor at s_m with the step's first noise draw; checked through the first critic's loss of one gradient step
    next_obs = th.tensor([ROWS[row[2]][1] for row in by_hand], dtype=th.float32)
    obs, actions = samples.observations, samples.actions
    with th.no_grad():
        th.manual_seed(7)
        eps = th.randn(8, 1)
        mu, std = model.actor.get_action_dist_params(next_obs)
        u = mu + eps * std
        log_normal = -((u - mu) ** 2) / (2 * std**2) - std.log() - math.log(math.sqrt(2 * math.pi))
        entropy = -(log_normal - th.log(1 - th.tanh(th.tanh(u)) ** 2 + 1e-7))  # the tutorial's term: tanh twice
        next_q = th.min(*model.critic_target(next_obs, 2.0 * th.tanh(u)))
        alpha = model.log_ent_coef.exp()
        y = (
            th.tensor([row[0] for row in by_hand]).view(-1, 1)
            + th.tensor([row[1] for row in by_hand]).view(-1, 1) * (next_q + alpha * entropy).double()
        )
        loss_1 = ((model.critic(obs, actions)[0].double() - y) ** 2).mean().item()
    np.random.set_state(state)
    th.manual_seed(7)
    model.train(1, 8)
    assert math.isclose(model.last_train_stats["critic1_loss"][0], loss_1, rel_tol=1e-5)


def test_n_steps_1_is_the_one_step_update():
    """SB3's NStepReplayBuffer with n_steps=1 trains bit for bit as the one-step ReplayBuffer (n_steps=1, default)."""
    models = [  # each built (seeded) and trained in turn: they draw from the same global generators
        quiet(make(TutorialSAC, vec_env(episode_length=20), batch_size=16, **kwargs)).learn(100)
        for kwargs in ({}, dict(replay_buffer_class=NStepReplayBuffer, replay_buffer_kwargs=dict(n_steps=1)))
    ]
    assert [type(model.replay_buffer) for model in models] == [ReplayBuffer, NStepReplayBuffer]
    assert models[0]._n_updates == 100
    one_step, n_step = (model.policy.state_dict() for model in models)
    assert all(th.equal(one_step[key], n_step[key]) for key in one_step)


def test_n_step_model_saves_and_loads(tmp_path):
    for cls in ALGOS:
        model = make(cls, n_steps=3, gamma=0.9, learning_starts=0, batch_size=8)
        model.learn(30)
        model.save(tmp_path / cls.__name__)
        with pytest.warns(UserWarning, match="n_steps=3` is ignored because a custom `replay_buffer_class`"):
            loaded = cls.load(tmp_path / cls.__name__, env=vec_env())
        buffer = loaded.replay_buffer
        assert (type(buffer), buffer.n_steps, buffer.gamma, loaded.n_steps) == (NStepReplayBuffer, 3, 0.9, 3)
        loaded.learn(20, reset_num_timesteps=False)


# ----------------------------------------------------------------------------------------------- the model's API


def test_get_and_set_parameters():
    for cls in ALGOS:
        model, other = make(cls), make(cls, seed=1)
        assert sorted(model.get_parameters()) == ["actor.optimizer", "critic.optimizer", "ent_coef_optimizer", "policy"]
        with pytest.raises(ValueError):
            model.set_parameters({"policy": other.get_parameters()["policy"]}, exact_match=True)
        model.set_parameters({"policy": other.get_parameters()["policy"]}, exact_match=False)
        assert all(th.equal(a, b) for a, b in zip(model.policy.parameters(), other.policy.parameters(), strict=True))


def test_set_env_and_set_random_seed():
    draws = []
    for cls in ALGOS:
        model = make(cls)
        model.set_env(vec_env())
        assert model.n_envs == 1 and model._last_obs is None
        with pytest.raises(AssertionError, match="number of environments"):
            model.set_env(vec_env(3))
        with pytest.raises(ValueError, match="Observation spaces do not match"):
            model.set_env(vec_env(obs_shape=(5,)))
        model.set_random_seed(3)
        draws.append((model.action_space.sample().tolist(), np.random.rand(), th.rand(1).item()))
    assert draws[0] == draws[1]


class KeyLogger(Logger):
    """SB3's logger, remembering every key recorded."""

    keys: set[str]

    def record(self, key: str, value, exclude=None) -> None:
        self.__dict__.setdefault("keys", set()).add(key)
        super().record(key, value, exclude)


def test_logger_keys_and_stats_window_size():
    keys = []
    for cls in ALGOS:
        model = make(cls, stats_window_size=3, learning_starts=0, batch_size=8)
        logger = KeyLogger(folder=None, output_formats=[])
        model.set_logger(logger)
        model.learn(60, log_interval=1)
        assert model.ep_info_buffer.maxlen == 3 and len(model.ep_info_buffer) == 3
        keys.append(logger.keys)
    # every key of SAC's, and TutorialSAC's own: the two other learning rates and the mean "entropy" H
    assert keys[0] <= keys[1]
    assert keys[1] - keys[0] == {"train/critic_learning_rate", "train/ent_coef_learning_rate", "train/entropy"}


def test_predict_with_state_and_episode_start():
    results = []
    for cls in ALGOS:
        model = make(cls)
        obs = np.full((2, 4), 0.3, np.float32)
        action, state = model.predict(obs, state=None, episode_start=np.array([True, False]), deterministic=True)
        single, _ = model.predict(obs[0], deterministic=True)
        results.append((action.shape, state, single.shape, bool(np.all(np.abs(action) <= 1))))
    assert results[0] == results[1] == ((2, 1), None, (1,), True)


def test_optimize_memory_usage():
    for cls in ALGOS:
        model = make(cls, optimize_memory_usage=True, replay_buffer_kwargs=dict(handle_timeout_termination=False))
        model.learning_starts, model.batch_size = 0, 8
        model.learn(30)
        assert model.replay_buffer.optimize_memory_usage and not hasattr(model.replay_buffer, "next_observations")
    # SB3's buffer refuses it with bootstrapped timeouts: SAC's default; TutorialSAC's default is the tutorial's terminal
    with pytest.raises(ValueError, match="optimize_memory_usage = True and handle_timeout_termination = True"):
        make(SAC, optimize_memory_usage=True)
    assert make(TutorialSAC, optimize_memory_usage=True).replay_buffer.optimize_memory_usage


def test_action_noise_with_several_envs():
    for cls in ALGOS:
        noise = NormalActionNoise(np.full(1, 10.0), np.full(1, 0.1))  # pushes every action onto the upper bound
        model = make(cls, vec_env(2), action_noise=noise, learning_starts=0, train_freq=1, batch_size=8)
        model.learn(20)
        assert isinstance(model.action_noise, VectorizedActionNoise)
        # on Box(-1, 1) SAC's stored actions (rescaled to [-1, 1]) and TutorialSAC's (env units) are the same numbers
        assert np.all(model.replay_buffer.actions[: model.replay_buffer.pos] == 1.0)


@pytest.mark.parametrize(
    "n_envs, kwargs",
    [
        (3, dict(learning_starts=12, train_freq=1, gradient_steps=1)),  # learning_starts counts the steps of all envs
        (3, dict(learning_starts=0, train_freq=2, gradient_steps=-1)),  # -1: as many as transitions collected
        (1, dict(learning_starts=0, train_freq=(5, "step"), gradient_steps=1)),
        (1, dict(learning_starts=0, train_freq=(2, "episode"), gradient_steps=3)),
        (1, dict(learning_starts=0, train_freq=(1, "episode"), gradient_steps=-1)),
    ],
)
def test_schedule(n_envs, kwargs):
    counts = []
    for cls in ALGOS:
        model = make(cls, vec_env(n_envs), batch_size=8, **kwargs)
        model.learn(40)
        counts.append((model.num_timesteps, model._n_updates, model._episode_num))
    assert counts[0] == counts[1]
    with pytest.raises(ValueError, match="must be either 'step' or 'episode'"):
        make(TutorialSAC, train_freq=(1, "epoch"))


def test_whole_episodes_with_several_envs():
    """SAC refuses train_freq in episodes with several envs; TutorialSAC (whose default it is) trains after every step."""
    with pytest.raises(AssertionError, match="only one env when doing episodic training"):
        make(SAC, vec_env(2), train_freq=(1, "episode"), learning_starts=0).learn(10)
    sac = make(SAC, vec_env(2), train_freq=(1, "step"), gradient_steps=-1, learning_starts=0, batch_size=8).learn(40)
    with pytest.warns(UserWarning, match=r"with n_envs=2 TutorialSAC trains after every step .*train_freq=\(1, 'step'\)"):
        ours = make(TutorialSAC, vec_env(2), learning_starts=0, batch_size=8).learn(40)
    assert (ours.num_timesteps, ours._n_updates) == (sac.num_timesteps, sac._n_updates)


class LinearExtractor(BaseFeaturesExtractor):
    """A features extractor with a keyword argument, for ``features_extractor_kwargs``."""

    def __init__(self, observation_space: spaces.Box, features_dim: int = 4):
        super().__init__(observation_space, features_dim)
        self.linear = nn.Linear(int(np.prod(observation_space.shape)), features_dim)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.linear(observations)


@pytest.mark.parametrize(
    "policy_kwargs",
    [
        dict(n_critics=3),
        dict(n_critics=1),
        dict(normalize_images=False),
        dict(optimizer_kwargs=dict(eps=1e-5)),
        dict(optimizer_class=th.optim.AdamW),
        dict(features_extractor_class=LinearExtractor, features_extractor_kwargs=dict(features_dim=5)),
        dict(features_extractor_class=LinearExtractor, share_features_extractor=True),
    ],
)
def test_policy_kwargs(policy_kwargs):
    seen = []
    for cls in ALGOS:
        model = make(cls, policy_kwargs=dict(TINY, **policy_kwargs), learning_starts=0, batch_size=8, train_freq=5)
        model.learn(20)
        assert model._n_updates > 0
        seen.append(
            (
                len(model.critic.q_networks),
                model.critic.features_extractor is model.actor.features_extractor,
                model.critic.features_extractor.features_dim,
                model.policy.normalize_images,
                type(model.critic.optimizer),
                model.actor.optimizer.defaults["eps"],
                {**model.critic.optimizer.defaults, "lr": None},
            )
        )
    assert seen[0] == seen[1]


def test_no_warning_for_a_model_that_uses_none_of_these():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message="TutorialSAC normalises sampled rewards")  # (not Pendulum-v1)
        model = quiet(make(TutorialSAC, batch_size=8))
        model.learn(20)
    assert type(model.replay_buffer) is ReplayBuffer and model.n_steps == 1 and model.tau == 0.005


# ----------------------------------------------------------------- inside the gradient step: batch-norm statistics, tau = 0


class FlattenBatchNormExtractor(BaseFeaturesExtractor):
    """SB3's tests' features extractor with a batch norm (tests/test_train_eval_mode.py), without the dropout."""

    def __init__(self, observation_space: gym.Space):
        super().__init__(observation_space, get_flattened_obs_dim(observation_space))
        self.flatten = nn.Flatten()
        self.batch_norm = nn.BatchNorm1d(self._features_dim)

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return self.batch_norm(self.flatten(observations))


def _batch_norm(critic: nn.Module) -> nn.BatchNorm1d:
    return critic.features_extractor.batch_norm


def _models(share_features_extractor: bool = False, **kwargs) -> list:
    policy_kwargs = {
        "features_extractor_class": FlattenBatchNormExtractor,
        "net_arch": [16],
        "share_features_extractor": share_features_extractor,
    }
    # (SB3's SAC adds use_sde to the policy_kwargs it is given: each model its own copy)
    sac = SAC("MlpPolicy", "Pendulum-v1", seed=0, learning_starts=100, policy_kwargs=dict(policy_kwargs), **kwargs)
    tutorial = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0, policy_kwargs=dict(policy_kwargs), **kwargs)
    return [sac, tutorial]


@pytest.mark.parametrize("share_features_extractor", [False, True])
def test_batch_norm_statistics_reach_the_target_critics_as_in_sb3(share_features_extractor):
    for model in _models(share_features_extractor):
        model.learn(400)
        critic, target = _batch_norm(model.critic), _batch_norm(model.critic_target)
        # the critic's statistics moved, and the target holds them (copied at the last target update)
        assert critic.running_mean.abs().max() > 1e-3, type(model).__name__
        assert th.equal(target.running_mean, critic.running_mean), type(model).__name__
        assert th.equal(target.running_var, critic.running_var), type(model).__name__
        assert not target.training  # the targets compute with the copied statistics (eval mode), as SB3's


def test_batch_norm_statistics_are_copied_at_target_updates_only_as_in_sb3():
    """With target_update_interval=2 the copy follows the target updates (the 1st, 3rd, ... gradient step of each
    train() call), as SB3's; the critics' statistics move at every step."""
    for model in _models(target_update_interval=2):
        model.learn(400)
        critic, target = _batch_norm(model.critic), _batch_norm(model.critic_target)
        model.train(gradient_steps=1, batch_size=64)  # a target update after the critic moved
        assert th.equal(target.running_mean, critic.running_mean), type(model).__name__
        model.train(gradient_steps=2, batch_size=64)  # the second step moves the critic, not the target
        assert not th.equal(target.running_mean, critic.running_mean), type(model).__name__


def test_tau_zero_never_moves_the_targets_as_in_sb3():
    """SB3 accepts tau = 0: the target critics keep their initial parameters (their batch-norm statistics still
    follow the critics', as SB3's)."""
    for model in _models():
        model.tau = 0.0
        initial = [p.detach().clone() for p in model.critic_target.parameters()]
        model.learn(400)
        assert all(th.equal(p, q) for p, q in zip(model.critic_target.parameters(), initial)), type(model).__name__
        critic_moved = [not th.equal(p, q) for p, q in zip(model.critic.parameters(), initial)]
        assert any(critic_moved), type(model).__name__
        assert th.equal(_batch_norm(model.critic_target).running_mean, _batch_norm(model.critic).running_mean)


def test_tau_zero_on_the_fast_engine():
    model = TutorialSAC("MlpPolicy", "Pendulum-v1", seed=0)
    model.tau = 0.0
    initial = [p.detach().clone() for p in model.critic_target.parameters()]
    model.learn(400)
    assert model.update_engine.name == "fast"
    assert all(th.equal(p, q) for p, q in zip(model.critic_target.parameters(), initial))
    assert np.isfinite(model.last_train_stats["critic1_loss"]).all()
