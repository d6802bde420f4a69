"""TutorialSAC: the SAC variant of the Pendulum-v1 notebook tutorial as a Stable-Baselines3 algorithm.

Read side by side with ``stable_baselines3/sac/sac.py``: every line that differs from SB3's SAC carries a
comment naming the tutorial rule it implements (``docs/variant.md`` in the repository states them all).
"""

import warnings
from typing import Any, ClassVar, Literal, TypeVar

import numpy as np
import torch as th
from stable_baselines3.common.base_class import maybe_make_env
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import (
    GymEnv,
    MaybeCallback,
    DictReplayBufferSamples,
    ReplayBufferSamples,
    RolloutReturn,
    Schedule,
    TrainFreq,
    TrainFrequencyUnit,
)
from stable_baselines3.common.utils import FloatSchedule, update_learning_rate
from stable_baselines3.common.vec_env import VecEnv

from sb3_tutorial_sac import user_warnings, validation
from sb3_tutorial_sac.buffers import chunk_steps, distinct_sampling_problem, rewards_and_discounts
from sb3_tutorial_sac.buffers import sample_minibatches, stored_transitions
from sb3_tutorial_sac.engines import Minibatch, UpdateEngine, make_engine
from sb3_tutorial_sac.model_files import DataFiles
from sb3_tutorial_sac.guard import NonFiniteError, check_observation, check_training, check_transition
from sb3_tutorial_sac.state import StateView, StepSettings, TrainingState
from sb3_tutorial_sac.policies import (
    check_policy_kwargs,
    CnnPolicy,
    EntropyTerm,
    MlpPolicy,
    MultiInputPolicy,
    TutorialActor,
    TutorialSACPolicy,
)
from sb3_tutorial_sac.validation import ENT_COEF_LOSSES  # noqa: F401 (re-exported)

SelfTutorialSAC = TypeVar("SelfTutorialSAC", bound="TutorialSAC")

EntCoefLoss = Literal["tutorial", "sb3"]

# Per-step statistics kept by ``train()`` in ``last_train_stats``, after one ``critic<i>_loss`` per critic
TRAIN_STATS: tuple[str, ...] = ("actor_loss", "ent_coef_loss", "entropy", "ent_coef")


class TutorialSAC(DataFiles):
    """
    Soft Actor-Critic exactly as the Pendulum-v1 notebook tutorial writes it (``docs/variant.md``), inside SB3.

    With its defaults, ``TutorialSAC("MlpPolicy", "Pendulum-v1").learn(20_000)`` is the tutorial: reward
    normalisation ``(r + 8) / 8``, ``log(alpha)`` learned from ``log(0.01)`` with the alpha-scaled loss,
    target entropy ``-dim(A)``, the tutorial's entropy term (tanh applied twice), twin critics with their own
    Adam at 3e-3, actor and temperature at 3e-4, batch 64, buffer 100,000, the time limit treated as a
    terminal, one whole episode then as many gradient steps as env steps collected, no uniform warm-up.

    :param policy: The policy model to use (MlpPolicy, MultiInputPolicy, CnnPolicy)
    :param env: The environment to learn from (if registered in Gym, can be str)
    :param learning_rate: Adam learning rate of the actor (tutorial: 3e-4); a float or a schedule of the
        progress remaining (from 1 to 0)
    :param critic_learning_rate: Adam learning rate of each critic (tutorial: 3e-3); float or schedule
    :param ent_coef_learning_rate: Adam learning rate of ``log(alpha)`` (tutorial: 3e-4); float or schedule
    :param buffer_size: size of the replay buffer (tutorial: 100,000, first in first out)
    :param learning_starts: how many steps to collect with uniform random actions before learning starts
        (tutorial: 0, no warm-up)
    :param batch_size: Minibatch size for each gradient update (tutorial: 64)
    :param tau: the soft update coefficient, in ``[0, 1]`` as in SB3 (tutorial: 0.005; 0: the target critics never move)
    :param gamma: the discount factor (tutorial: 0.99)
    :param train_freq: Update the model every ``train_freq`` steps, or a tuple like ``(1, "episode")``
        (tutorial: one whole episode). With more than one env, episodes cannot be collected whole and
        ``(k, "episode")`` is run as ``(1, "step")`` (with a warning).
    :param gradient_steps: How many gradient steps to do after each rollout; ``-1`` means as many as env
        steps collected (tutorial)
    :param action_noise: the action noise type (None by default, as in the tutorial)
    :param replay_buffer_class: Replay buffer class to use. If ``None``, it will be automatically selected.
    :param replay_buffer_kwargs: Keyword arguments to pass to the replay buffer on creation.
    :param optimize_memory_usage: Enable a memory efficient variant of the replay buffer
    :param n_steps: When ``n_steps > 1``, uses n-step returns (SB3's ``NStepReplayBuffer``) when updating the critics,
        as SB3's ``SAC``: only when ``replay_buffer_class`` is ``None`` (else pass
        ``replay_buffer_class=NStepReplayBuffer, replay_buffer_kwargs={"n_steps": ..., "gamma": ...}``), not with
        Dict observations. The tutorial's reward normalisation is applied to every reward the return sums (1: the
        tutorial's one-step target)
    :param handle_timeout_termination: whether a time-limit truncation bootstraps (SB3's choice, ``True``)
        or ends the return like a terminal (``False``). ``None`` (default): ``replay_buffer_kwargs``'s
        ``handle_timeout_termination`` if it has one (SB3's spelling), else ``False`` (tutorial); given both ways,
        the two must agree
    :param sample_with_replacement: how each minibatch is drawn from the replay buffer: without replacement,
        ``batch_size`` distinct transitions (tutorial: ``random.sample(datas, 64)``, ``False``), or with replacement
        (SB3's ``ReplayBuffer.sample``, ``True``). While the buffer holds fewer than ``batch_size`` transitions
        (several envs, or short first episodes), minibatches are drawn with replacement, with a warning
    :param reward_shift: the tutorial normalises sampled rewards as ``(r + reward_shift) * reward_scale``
        (tutorial: 8.0); raw rewards are stored
    :param reward_scale: see ``reward_shift`` (tutorial: 1/8); ``reward_shift=0, reward_scale=1`` turns the
        normalisation off
    :param ent_coef: Entropy coefficient alpha, in SB3's convention: ``"auto_<x>"`` learns it from ``x``
        (tutorial: ``"auto_0.01"``), ``"auto"`` learns it from 1.0 (SB3's default), a number fixes it
    :param target_entropy: target entropy when learning alpha; ``"auto"`` is ``-dim(A)`` (tutorial: -1 on
        Pendulum)
    :param entropy_term: ``"tutorial"``: ``H = -(log N(u) - log(1 - tanh(tanh(u))^2 + 1e-7))``, tanh applied
        twice as the tutorial does; ``"correct"``: the mathematically correct ``log(1 - tanh(u)^2 + 1e-7)``
    :param ent_coef_loss: ``"tutorial"``: ``mean((H - target_entropy) * alpha)``, the gradient scaled by
        alpha; ``"sb3"``: SB3's ``-mean(log_alpha * (log_prob + target_entropy))``
    :param target_update_interval: update the target network every ``target_update_interval`` gradient
        steps (tutorial: 1)
    :param engine: how each gradient step is computed (:mod:`sb3_tutorial_sac.engines`), never what:
        ``"reference"``: module calls, autograd and torch's Adam (any network); ``"fast"``: the step written out once
        (forward and backward passes, Adam, soft update) run eagerly in inference mode (flat Box observations and ReLU
        MLPs with the tutorial's heads; proven on a probe batch when the model is set up, bit for bit the reference's
        numbers on CPU); ``"compiled"``: the same step compiled once by AOTInductor (CPU; within rounding of the
        reference); ``"auto"``: the fast engine where it is proven, else the reference engine with a warning that says
        why. The engine chosen is :attr:`update_engine`. Not in SB3
    :param check_finite: stop with a :class:`NonFiniteError` naming the step and the quantity when an
        observation or a reward is NaN or infinite (checked before the transition is stored) or when a loss, a
        parameter or an optimiser state turns non-finite in ``train()`` (checked once per ``train()`` call; the
        model is then restored to its state before that call). Not in SB3; on by default, ``False`` skips the checks
    :param use_sde: SB3's gSDE: only ``False``. gSDE needs SB3's log-std head; the tutorial's actor has a Softplus std
        head (``ValueError`` otherwise)
    :param sde_sample_freq: SB3's gSDE: only ``-1`` (see ``use_sde``)
    :param use_sde_at_warmup: SB3's gSDE: only ``False`` (see ``use_sde``)
    :param stats_window_size: Window size for the rollout logging, specifying the number of episodes to
        average the reported success rate, mean episode length, and mean reward over
    :param tensorboard_log: the log location for tensorboard (if None, no logging)
    :param policy_kwargs: additional arguments to be passed to the policy on creation (``net_arch``, ...)
    :param verbose: Verbosity level: 0 for no output, 1 for info messages, 2 for debug messages
    :param seed: Seed for the pseudo random generators
    :param device: Device (cpu, cuda, ...) on which the code should be run.
        Setting it to auto, the code will be run on the GPU if possible.
    :param _init_setup_model: Whether or not to build the network at the creation of the instance
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: TutorialSACPolicy
    actor: TutorialActor
    # Views of the training state (SB3's SAC holds these on the model): reading or setting them reads or sets the state
    log_ent_coef = StateView[th.Tensor | None]()
    ent_coef_optimizer = StateView[th.optim.Optimizer | None]()
    ent_coef_tensor = StateView[th.Tensor | None]()

    def __init__(
        self,
        policy: str | type[TutorialSACPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        critic_learning_rate: float | Schedule = 3e-3,
        ent_coef_learning_rate: float | Schedule = user_warnings.ENT_COEF_LEARNING_RATE,
        buffer_size: int = 100_000,
        learning_starts: int = 0,
        batch_size: int = 64,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = (1, "episode"),
        gradient_steps: int = -1,
        action_noise: ActionNoise | None = None,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        n_steps: int = 1,
        handle_timeout_termination: bool | None = None,
        sample_with_replacement: bool = False,
        reward_shift: float = user_warnings.REWARD_SHIFT,
        reward_scale: float = user_warnings.REWARD_SCALE,
        ent_coef: str | float = "auto_0.01",
        target_entropy: str | float = "auto",
        entropy_term: EntropyTerm = "tutorial",
        ent_coef_loss: EntCoefLoss = "tutorial",
        target_update_interval: int = 1,
        engine: str = "auto",
        check_finite: bool = True,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        use_sde_at_warmup: bool = False,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ):
        # Check the tutorial's knobs before anything is built, so that bad input fails fast and clearly
        # (sb3_tutorial_sac.validation: the same checks run on every value a file gives load)
        validation.check_arguments(
            dict(
                learning_rate=learning_rate,
                critic_learning_rate=critic_learning_rate,
                ent_coef_learning_rate=ent_coef_learning_rate,
                batch_size=batch_size,
                buffer_size=buffer_size,
                target_update_interval=target_update_interval,
                gradient_steps=gradient_steps,
                reward_scale=reward_scale,
                reward_shift=reward_shift,
                entropy_term=entropy_term,
                engine=engine,
                ent_coef_loss=ent_coef_loss,
                ent_coef=ent_coef,
                target_entropy=target_entropy,
                gamma=gamma,
                tau=tau,
            )
        )

        # SB3 conventions the tutorial does not decide: SB3's SAC is the spec (tests/test_sb3_conformance.py), or the
        # variant refuses them with the reason (docs/variant.md, "SB3's conventions")
        validation.check_sde(use_sde, sde_sample_freq, use_sde_at_warmup)
        policy_kwargs = check_policy_kwargs(policy_kwargs)
        validation.check_n_steps(n_steps, optimize_memory_usage, replay_buffer_class)
        replay_buffer_kwargs = dict(replay_buffer_kwargs or {})
        handle_timeout_termination = validation.resolve_handle_timeout_termination(
            handle_timeout_termination, replay_buffer_kwargs
        )

        if env is not None:
            # Check the action space here: SB3 would assert on unbounded Boxes before we can say more
            env = maybe_make_env(env, verbose)
            validation.check_action_space(env.action_space)
            validation.check_n_steps(n_steps, optimize_memory_usage, replay_buffer_class, env.observation_space)

        # Tutorial rule: the 200-step time limit is a terminal, no bootstrap (SB3: handle_timeout_termination=True)
        replay_buffer_kwargs["handle_timeout_termination"] = handle_timeout_termination

        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,
            gradient_steps,
            action_noise,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            n_steps=n_steps,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            sde_support=False,
            supported_action_spaces=None,  # checked below, with a clearer error
            support_multi_env=True,
        )

        self.critic_learning_rate = critic_learning_rate
        # (a plain float: the default's type only tells the warnings below whether it was passed)
        self.ent_coef_learning_rate = (
            float(ent_coef_learning_rate) if isinstance(ent_coef_learning_rate, user_warnings.TutorialDefault)
            else ent_coef_learning_rate
        )  # fmt: skip
        self.handle_timeout_termination = handle_timeout_termination
        self.sample_with_replacement = sample_with_replacement
        self.reward_shift = float(reward_shift)
        self.reward_scale = float(reward_scale)
        self.ent_coef = ent_coef
        self.target_entropy = target_entropy
        self.entropy_term = entropy_term
        self.ent_coef_loss = ent_coef_loss
        self.target_update_interval = target_update_interval
        self.engine = engine
        self.check_finite = check_finite
        self.last_train_stats: dict[str, np.ndarray] = {}

        if _init_setup_model:  # (load builds with _init_setup_model=False, then sets the file's values)
            # Not in SB3: settings that would act silently (Pendulum's reward normalisation elsewhere, ignored knobs)
            user_warnings.warn_about_settings(
                self.env, reward_shift, reward_scale, ent_coef, ent_coef_loss, ent_coef_learning_rate
            )
            self._setup_model()

    def _get_policy_from_name(self, policy_name: str) -> type[BasePolicy]:
        """SB3's alias lookup; an unknown name's error lists the names this algorithm knows (SB3's does not)."""
        if policy_name in self.policy_aliases:
            return self.policy_aliases[policy_name]
        close = [name for name in self.policy_aliases if name.lower() == str(policy_name).lower()]
        hint = f" (did you mean {close[0]!r}? names are case-sensitive)" if close else ""
        raise ValueError(
            f"Policy {policy_name!r} unknown{hint}: TutorialSAC's policies are {', '.join(map(repr, self.policy_aliases))}, "
            "or pass a TutorialSACPolicy subclass"
        )

    def _setup_model(self) -> None:
        super()._setup_model()
        if not self.sample_with_replacement and self.replay_buffer is not None:
            problem = distinct_sampling_problem(self.replay_buffer)
            if problem is not None:
                raise ValueError(problem)
        self._create_aliases()
        self.critic_lr_schedule = FloatSchedule(self.critic_learning_rate)
        self.ent_coef_lr_schedule = FloatSchedule(self.ent_coef_learning_rate)

        if self.target_entropy == "auto":
            # Tutorial rule: target entropy -1 on Pendulum, -dim(A) in general (same as SB3)
            self.target_entropy = float(-np.prod(self.action_space.shape).astype(np.float32))  # type: ignore[arg-type]
        else:
            self.target_entropy = float(self.target_entropy)

        # The one training state (flat buffers, optimisers, log-alpha and its optimiser) and the engine that steps it
        self._build_engine(TrainingState.create(self.policy, self.ent_coef, self.ent_coef_lr_schedule(1)))
        self._set_learning_rates(self._current_progress_remaining)

    def _create_aliases(self) -> None:
        self.actor = self.policy.actor
        self.critic = self.policy.critic
        self.critic_target = self.policy.critic_target

    def _build_engine(self, state: TrainingState) -> None:
        """Make ``state`` the model's training state and build the engine chosen by ``engine`` on it
        (:mod:`sb3_tutorial_sac.engines`). ``train()`` calls it again, on the state rebuilt, if something moved the
        parameters out of their flat buffers (``policy.to(device)``)."""
        state.settings = self._step_settings()  # (the engines' probe steps with them)
        self._training_state = state
        self._engine = make_engine(state, self.engine)

    @property
    def training_state(self) -> TrainingState:
        """What the gradient step changes and reads (not in SB3; read-only): flat buffers, optimisers, log-alpha."""
        return self._training_state

    @property
    def update_engine(self) -> UpdateEngine:
        """The engine that computes each gradient step (not in SB3; read-only), chosen by ``engine`` at setup; after an
        engine gave way (the compiled engine when it cannot compile: :attr:`UpdateEngine.replacement`), the one used."""
        replacement = getattr(self._engine, "replacement", None)
        if replacement is not None:
            self._engine = replacement  # between train() calls: the optimisers' states carry over (engines read them)
        return self._engine

    def _update_learning_rate(self, optimizers: list[th.optim.Optimizer] | th.optim.Optimizer | None = None) -> None:
        """
        Set each optimiser's learning rate from its own schedule and log them.

        Tutorial rule: three learning rates, actor 3e-4, critics 3e-3, temperature 3e-4
        (SB3: one ``learning_rate`` for all networks).
        """
        for key, value in self._set_learning_rates(self._current_progress_remaining).items():
            self.logger.record(f"train/{key}", value)

    def _set_learning_rates(self, progress_remaining: float) -> dict[str, float]:
        """Set the three optimisers' learning rates at ``progress_remaining``; return them by log name."""
        rates = {
            "learning_rate": self.lr_schedule(progress_remaining),
            "critic_learning_rate": self.critic_lr_schedule(progress_remaining),
        }
        update_learning_rate(self.actor.optimizer, rates["learning_rate"])
        update_learning_rate(self.critic.optimizer, rates["critic_learning_rate"])
        if self.ent_coef_optimizer is not None:
            rates["ent_coef_learning_rate"] = self.ent_coef_lr_schedule(progress_remaining)
            update_learning_rate(self.ent_coef_optimizer, rates["ent_coef_learning_rate"])
        return rates

    def _sample_action(
        self,
        learning_starts: int,
        action_noise: ActionNoise | None = None,
        n_envs: int = 1,
    ) -> tuple[np.ndarray, np.ndarray]:
        """
        Sample an action with the current stochastic policy (or uniformly before ``learning_starts``).

        :return: the action for the env and the action to store, both in the environment's units.
            Tutorial rule: the buffer holds ``tanh(u) * 2`` on Pendulum, the values the critic is fed
            (SB3 stores actions rescaled to [-1, 1]).
        """
        if self.num_timesteps < learning_starts:
            action = np.array([self.action_space.sample() for _ in range(n_envs)])
        else:
            assert self._last_obs is not None, "self._last_obs was not set"
            action, _ = self.predict(self._last_obs, deterministic=False)
        if action_noise is not None:
            scaled_action = np.clip(self.policy.scale_action(action) + action_noise(), -1, 1)
            action = self.policy.unscale_action(scaled_action)
        return action, action

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: BaseCallback,
        train_freq: TrainFreq,
        replay_buffer: ReplayBuffer,
        action_noise: ActionNoise | None = None,
        learning_starts: int = 0,
        log_interval: int | None = None,
    ) -> RolloutReturn:
        if env.num_envs > 1 and train_freq.unit == TrainFrequencyUnit.EPISODE:
            # Tutorial rule: one whole episode per rollout. SB3 cannot collect whole episodes from several
            # envs at once, so with n_envs > 1 each rollout is one step of every env (and, with
            # gradient_steps=-1, as many gradient steps as transitions: the tutorial's ratio).
            self._warn_once(
                "multi_env_episode",
                f"train_freq={tuple(train_freq)} collects whole episodes, which SB3 supports only with one env; "
                f"with n_envs={env.num_envs} TutorialSAC trains after every step of all envs instead "
                "(train_freq=(1, 'step')).",
            )
            train_freq = TrainFreq(1, TrainFrequencyUnit.STEP)
        try:
            return super().collect_rollouts(
                env, callback, train_freq, replay_buffer, action_noise, learning_starts, log_interval
            )
        except BaseException:
            # Not in SB3: an exception (a KeyboardInterrupt, a callback's error, a non-finite observation) may
            # come between an env step and the storing of its transition, leaving the env one step ahead of
            # self._last_obs. Start the next learn() from a fresh reset instead of storing a transition whose
            # observations do not match; every stored transition stays consistent.
            self._last_obs = None
            if self.optimize_memory_usage and (replay_buffer.full or replay_buffer.pos > 0):
                # the memory-efficient buffer reads next_obs from the next slot: end the trajectory here
                replay_buffer.dones[(replay_buffer.pos - 1) % replay_buffer.buffer_size] = True
            raise

    def _warn_once(self, key: str, message: str) -> None:
        """Warn the first time ``key`` comes up for this model."""
        warned = self.__dict__.setdefault("_warned", set())
        if key not in warned:
            warned.add(key)
            warnings.warn(message, stacklevel=user_warnings.user_stacklevel())

    def _sample_minibatches(self, gradient_steps: int, batch_size: int) -> ReplayBufferSamples | DictReplayBufferSamples:
        """
        Draw the minibatches of all ``gradient_steps`` at once (:func:`~sb3_tutorial_sac.buffers.sample_minibatches`:
        the same distribution as that many draws of ``batch_size``, at a fraction of the cost).

        :return: SB3 replay samples whose tensors have ``gradient_steps * batch_size`` rows, in step order
        """
        assert self.replay_buffer is not None
        # Tutorial rule: each minibatch is random.sample(datas, 64), distinct transitions (SB3: with replacement)
        replacement = self.sample_with_replacement
        if not replacement and stored_transitions(self.replay_buffer) < batch_size:
            # where random.sample would fail, draw as SB3 does until the buffer holds a whole minibatch
            self._warn_once(
                "few_transitions",
                f"The replay buffer holds {stored_transitions(self.replay_buffer)} transitions, fewer than "
                f"batch_size={batch_size}: minibatches are drawn with replacement until it holds {batch_size} "
                "(raise learning_starts to train only on distinct transitions).",
            )
            replacement = True
        return sample_minibatches(self.replay_buffer, gradient_steps, batch_size, self._vec_normalize_env, replacement)

    def _rewards_and_discounts(
        self, replay_data: ReplayBufferSamples | DictReplayBufferSamples, settings: StepSettings | None = None
    ) -> tuple[th.Tensor, th.Tensor]:
        """The normalised rewards and the discounts of :meth:`_sample_minibatches`' samples, with this call's
        ``settings`` (default: the model's, read now): :func:`~sb3_tutorial_sac.buffers.rewards_and_discounts`."""
        settings = settings if settings is not None else self._step_settings()
        # Tutorial rule: rewards are normalised at sample time, r' = (r + 8) / 8; raw rewards are stored
        buffer_name = type(self.replay_buffer).__name__
        return rewards_and_discounts(replay_data, settings.reward_shift, settings.reward_scale, settings.gamma, buffer_name)

    def _minibatch_columns(
        self, engine: UpdateEngine, gradient_steps: int, batch_size: int, settings: StepSettings
    ) -> Minibatch:
        """The minibatches of ``gradient_steps`` steps as ``engine`` reads them (normalised rewards and discounts)."""
        replay_data = self._sample_minibatches(gradient_steps, batch_size)
        rewards, discounts = self._rewards_and_discounts(replay_data, settings)
        return Minibatch(
            engine.observations(replay_data.observations),
            replay_data.actions,
            engine.observations(replay_data.next_observations),
            rewards,
            discounts,
        )

    def _step_settings(self) -> StepSettings:
        """The settings of a ``train()`` call: the model's attributes as they are now, checked as the constructor checks
        them (as SB3's ``SAC.train()`` reads ``self.tau``: ``model.tau = ...`` takes effect at the next call)."""
        action_dim = int(np.prod(self.action_space.shape))  # type: ignore[arg-type]
        return StepSettings.checked(
            action_dim, tau=self.tau, gamma=self.gamma, target_update_interval=self.target_update_interval,
            target_entropy=self.target_entropy, reward_shift=self.reward_shift, reward_scale=self.reward_scale,
            entropy_term=self.entropy_term, ent_coef_loss=self.ent_coef_loss, batch_size=self.batch_size,
        )  # fmt: skip

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        # Switch to train mode (this affects batch norm / dropout)
        self.policy.set_training_mode(True)
        # Update each optimiser's learning rate from its own schedule
        self._update_learning_rate()
        if gradient_steps <= 0:
            return
        if not self._training_state.is_intact():  # the parameters left their flat buffers (policy.to(device))
            self._build_engine(self._training_state.rebuilt())
        state, engine = self._training_state, self.update_engine
        state.settings = settings = self._step_settings()
        engine.verbose = self.verbose  # (the compiled engine says when it compiles)

        # The minibatches of all gradient steps, drawn at once; not in SB3: in chunks of at most MAX_MINIBATCH_BYTES
        # (whole target-update periods) where they would take more, so that no call (a file's gradient_steps=2e9)
        # draws them all at once. One chunk holds the tutorial's 200 steps of 64 many thousand times over
        spaces_ = (self.observation_space, self.action_space)
        chunk = chunk_steps(gradient_steps, batch_size, settings.target_update_interval, *spaces_)
        columns = self._minibatch_columns(engine, min(chunk, gradient_steps), batch_size, settings)
        # Per-step statistics, brought to the host once at the end (no .item() per step)
        stat_names = [f"critic{i + 1}_loss" for i in range(self.critic.n_critics)] + list(TRAIN_STATS)
        stats = th.zeros(gradient_steps, len(stat_names), device=self.device)
        # Not in SB3: all or nothing. An exception (a KeyboardInterrupt mid-step included) or a non-finite value
        # restores everything this call changed (a transaction on the training state; sb3_tutorial_sac.guard)
        with state.transaction():
            with engine.loop():
                for start in range(0, gradient_steps, chunk):
                    steps = min(chunk, gradient_steps - start)
                    if start > 0:  # the next chunk's minibatches (as ordinary tensors, as the first's)
                        with th.inference_mode(False):
                            columns = self._minibatch_columns(engine, steps, batch_size, settings)
                    engine.run_steps(columns, steps, stats[start : start + steps], settings.target_update_interval)
            values = stats.cpu().numpy()
            self.last_train_stats = {name: values[:, i] for i, name in enumerate(stat_names)}
            if self.check_finite:
                check_training(state, values, stat_names, self._n_updates, self.num_timesteps)
        self._n_updates += gradient_steps
        self._record_train_stats(values)

    def _record_train_stats(self, values: np.ndarray) -> None:
        """Log the means of a ``train()`` call's statistics under SB3's SAC's names."""
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", float(np.mean(self.last_train_stats["ent_coef"])))
        self.logger.record("train/actor_loss", float(np.mean(self.last_train_stats["actor_loss"])))
        # Same quantity as SB3's critic_loss, 0.5 * (mse_1 + mse_2), so both overlay in plots
        critic_loss = 0.5 * values[:, : self.critic.n_critics].sum(axis=1)
        self.logger.record("train/critic_loss", float(np.mean(critic_loss)))
        self.logger.record("train/entropy", float(np.mean(self.last_train_stats["entropy"])))
        if self.ent_coef_optimizer is not None:
            self.logger.record("train/ent_coef_loss", float(np.mean(self.last_train_stats["ent_coef_loss"])))

    def _optimizers(self) -> dict[str, th.optim.Optimizer]:
        return self._training_state.optimizers

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        self._warn_about_a_files_tensorboard_log()  # not in SB3: a file does not decide where learn() writes
        total_timesteps, callback = super()._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        if self.check_finite and self._last_obs is not None:
            try:
                check_observation(self._last_obs, "observation from the env's reset()", self.num_timesteps)
            except NonFiniteError:
                self._last_obs = None  # type: ignore[assignment]  # the next learn() resets the env
                raise
        return total_timesteps, callback

    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: np.ndarray | dict[str, np.ndarray],
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        if self.check_finite:
            # Not in SB3: a NaN or inf observation or reward stops learn() before it reaches the replay buffer (and
            # collect_rollouts then starts the next learn() from a reset)
            check_transition(new_obs, reward, dones, infos, self.num_timesteps, self._vec_normalize_env)
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)

    def learn(
        self: SelfTutorialSAC,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "TutorialSAC",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfTutorialSAC:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
