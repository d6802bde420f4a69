"""The tutorial's gradient step, written once, and the engines that run it.

:meth:`UpdateEngine.step` is the tutorial's update in its order (``docs/variant.md``, "One gradient step"):

1. the target ``y = r' + 0.99 * (1 - over) * (min Q_targ(s', a') + alpha * H(s'))``, ``a'`` and ``H(s')`` drawn
   fresh from the actor (noise draw 1 of 2), with the actor and alpha as they were before this step;
2. critic 1, then critic 2, each on its own MSE against ``y`` and its own Adam;
3. the actor, on the UPDATED critics: ``mean(-alpha * H(s) - min Q(s, a))`` (noise draw 2 of 2);
4. the temperature, on ``H(s)`` of step 3;
5. the soft update of both target critics.

Engines differ only in how each part is computed, never in what:

* :class:`ReferenceEngine`: module calls, autograd and torch's ``Adam.step()``; the readable transcription of the
  tutorial, used for every network, and the oracle the tests hold the others to;
* :class:`FastEngine`: for flat Box observations and plain ReLU MLPs (the tutorial's networks and any ``net_arch``
  of them): the layers as function calls, the backward passes written out (:mod:`sb3_tutorial_sac.manual`), one
  Adam update per flat buffer (:class:`~sb3_tutorial_sac.flat.FlatAdam`), the whole loop in inference mode. The
  same numbers as the reference engine, bit for bit on CPU.
* :class:`~sb3_tutorial_sac.compiled.CompiledEngine` (``engine="compiled"``): the fast engine's step as one function,
  compiled once per configuration by AOTInductor and cached; the same mathematics, rounded by Inductor's kernels
  (within 1e-5 of the reference engine after 300 steps on well-conditioned training, not bit for bit).

:func:`make_engine` picks one when the model is set up (``TutorialSAC(engine=...)``). The fast engine is built only
for networks it is proven to compute: it checks itself against the modules' own forward passes and autograd's
gradients on a probe batch, and anything it cannot prove falls back to the reference engine with one warning.
A new engine subclasses :class:`UpdateEngine`, registers in :data:`ENGINES`, and ``TutorialSAC.train()`` does not change.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from functools import partial, reduce
from typing import TYPE_CHECKING, ClassVar, NamedTuple

import torch as th
from gymnasium import spaces
from stable_baselines3.common.preprocessing import get_action_dim
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch.nn import functional as F

from sb3_tutorial_sac.flat import FlatAdam, adam_step, init_adam_states
from sb3_tutorial_sac.manual import ManualUpdate
from sb3_tutorial_sac import losses
from sb3_tutorial_sac.policies import functional_forward, sample_action_entropy

if TYPE_CHECKING:
    from stable_baselines3.common.type_aliases import PyTorchObs

    from sb3_tutorial_sac.tutorial_sac import TutorialSAC


class Minibatch(NamedTuple):
    """One gradient step's data, already in the form the tutorial's update reads it."""

    observations: PyTorchObs
    actions: th.Tensor
    next_observations: PyTorchObs
    # Tutorial rule: normalised at sample time, r' = (r + 8) / 8
    rewards: th.Tensor
    # gamma * (1 - over): 0.99 or exactly 0, so the target rounds exactly as the tutorial's
    discounts: th.Tensor


class UpdateEngine:
    """
    One gradient step of the tutorial (:meth:`step`), with the parts an engine computes its own way.

    :param model: the algorithm; the engine reads its networks, optimisers, flat buffers and loss switches
    """

    name: ClassVar[str]
    # the context in which the target and the statistics are computed (gradients off)
    no_grad: ClassVar[staticmethod] = staticmethod(th.no_grad)
    actor_dist_params: Callable[[PyTorchObs], tuple[th.Tensor, th.Tensor]]
    target_q_values: Callable[[PyTorchObs, th.Tensor], Sequence[th.Tensor]]

    def __init__(self, model: TutorialSAC):
        self.model = model
        self.entropy_term = model.entropy_term
        self.ent_coef_loss = model.ent_coef_loss
        assert isinstance(model.target_entropy, float)
        self.target_entropy = model.target_entropy
        self.to_env_units = model.policy.to_env_units
        self.tau = model.tau
        self._no_ent_coef_loss = th.zeros((), device=model.device)

    def observations(self, observations: PyTorchObs) -> PyTorchObs:
        """The observations of all minibatches of a ``train()`` call as this engine reads them (once per call)."""
        return observations

    @contextlib.contextmanager
    def loop(self) -> Iterator[None]:
        """The context of one ``train()`` call's loop of :meth:`step` (prepares the optimiser steps)."""
        yield

    def step(self, batch: Minibatch, stats: th.Tensor, soft_update: bool) -> None:
        """
        One gradient step, in the tutorial's order.

        :param batch: the minibatch
        :param stats: this step's row of statistics, written in place: each critic's loss, the actor loss, the
            temperature loss, the mean ``H(s)`` and alpha (``TRAIN_STATS`` of the algorithm)
        :param soft_update: whether the target critics are updated after this step (``target_update_interval``)
        """
        model = self.model
        obs = batch.observations
        # Tutorial rule: alpha as it was before this step, in the target and in the actor loss
        ent_coef = th.exp(model.log_ent_coef.detach()) if model.log_ent_coef is not None else model.ent_coef_tensor

        # 1. Target, computed once. Tutorial rule: noise draw 1 of 2 is for s' (shape [batch, act])
        with self.no_grad():
            next_obs = batch.next_observations
            next_actions, next_entropy = sample_action_entropy(*self.actor_dist_params(next_obs), self.entropy_term)
            # Tutorial rule: the critics see actions in the env's units (a * 2 on Pendulum)
            next_q = reduce(th.minimum, self.target_q_values(next_obs, self.to_env_units(next_actions)))
            target_q = losses.tutorial_target(batch.rewards, batch.discounts, next_q, ent_coef, next_entropy)

        # 2. Critic steps. Tutorial rule: each critic has its own MSE loss and its own Adam (lr 3e-3); the parameter
        # groups of critic.optimizer are those two Adams (SB3: one Adam on 0.5 * (mse_1 + mse_2))
        critic_losses = self.critic_grads(obs, batch.actions, target_q)
        self.critic_optimizer_step()

        # 3. Actor step, with the UPDATED critics (the tutorial's order; SB3's too).
        # Tutorial rule: noise draw 2 of 2 is for s; loss = mean(-alpha * H(s) - min Q(s, a))
        actor_loss, entropy = self.actor_grads(obs, ent_coef)
        self.actor_optimizer_step()

        # 4. Temperature step, on H(s) of step 3 (computed before the actor's step).
        # Tutorial rule: alpha stepped last (SB3: first, before the critics)
        if model.ent_coef_optimizer is not None:
            ent_coef_loss = self.temperature_grads(entropy, ent_coef)
            self.ent_coef_optimizer_step()
        else:
            ent_coef_loss = self._no_ent_coef_loss

        # 5. Soft update of both target critics. Tutorial rule: target = 0.995 * target + 0.005 * online, after every
        # gradient step; written as the tutorial rounds it (SB3's polyak_update fuses the add)
        if soft_update:
            with self.no_grad():
                th._foreach_mul_(model._soft_update_target, 1 - self.tau)
                th._foreach_add_(model._soft_update_target, th._foreach_mul(model._soft_update_online, self.tau))

        with self.no_grad():
            th.stack([*critic_losses, actor_loss, ent_coef_loss, entropy.mean(), ent_coef.reshape(())], out=stats)

    # The parts an engine computes its own way. Each *_grads writes the gradients into the parameters' .grad
    # (views of the flat gradient buffers) and returns the losses; each *_optimizer_step applies them.

    def critic_grads(self, obs: PyTorchObs, actions: th.Tensor, target_q: th.Tensor) -> list[th.Tensor]:
        """Each critic's MSE against ``target_q`` (0-dim tensors) and its gradients."""
        raise NotImplementedError

    def actor_grads(self, obs: PyTorchObs, ent_coef: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        """The actor loss (0-dim) and ``H(s)`` (``[batch, 1]``, no gradient), and the actor's gradients."""
        raise NotImplementedError

    def temperature_grads(self, entropy: th.Tensor, ent_coef: th.Tensor) -> th.Tensor:
        """The temperature loss (0-dim) and log-alpha's gradient."""
        raise NotImplementedError

    def critic_optimizer_step(self) -> None:
        self.model.critic.optimizer.step()

    def actor_optimizer_step(self) -> None:
        self.model.actor.optimizer.step()

    def ent_coef_optimizer_step(self) -> None:
        assert self.model.ent_coef_optimizer is not None
        self.model.ent_coef_optimizer.step()


class ReferenceEngine(UpdateEngine):
    """
    The tutorial's step with the modules' own forward passes, autograd and torch's ``Adam.step()``: what the
    notebook does, for every network ``TutorialSACPolicy`` can hold. The other engines are proven against it.
    """

    name = "reference"

    def __init__(self, model: TutorialSAC):
        super().__init__(model)
        self.actor_dist_params = model.actor.get_action_dist_params
        self.q_values = model.critic
        self.target_q_values = model.critic_target
        self.actor_params = list(model.actor.parameters())

    def critic_grads(self, obs: PyTorchObs, actions: th.Tensor, target_q: th.Tensor) -> list[th.Tensor]:
        losses = [F.mse_loss(current_q, target_q) for current_q in self.q_values(obs, actions)]
        self.model._critic_flat.zero_grad()
        # Summing the losses before backward leaves each critic's gradient its own (and a trainable features
        # extractor of the critics learns from both, as SB3's)
        reduce(th.add, losses).backward()
        return losses

    def actor_grads(self, obs: PyTorchObs, ent_coef: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        actions_pi, entropy = sample_action_entropy(*self.actor_dist_params(obs), self.entropy_term)
        min_qf_pi = reduce(th.minimum, self.q_values(obs, self.to_env_units(actions_pi)))
        loss = losses.actor_loss(ent_coef, entropy, min_qf_pi)
        self.model._actor_flat.zero_grad()
        # Gradients for the actor only: the tutorial's backward also fills the critics' and alpha's .grad, which
        # their next zero_grad() discards before use
        loss.backward(inputs=self.actor_params)
        return loss, entropy.detach()

    def temperature_grads(self, entropy: th.Tensor, ent_coef: th.Tensor) -> th.Tensor:
        log_ent_coef = self.model.log_ent_coef
        assert log_ent_coef is not None
        loss = losses.temperature_loss(entropy, log_ent_coef, self.target_entropy, self.ent_coef_loss)
        log_ent_coef.grad = None  # what zero_grad() does
        loss.backward()
        return loss


class FastEngine(UpdateEngine):
    """
    The same step for flat Box observations and plain ReLU MLPs with the tutorial's heads: the forward passes as
    function calls on the modules' parameters, the backward passes written out with autograd's own kernels and
    formulas (:class:`~sb3_tutorial_sac.manual.ManualUpdate`), one Adam update per flat buffer where the groups
    share their hyperparameters (:class:`~sb3_tutorial_sac.flat.FlatAdam`, else
    :func:`~sb3_tutorial_sac.flat.adam_step`), and the whole loop in inference mode (no autograd bookkeeping on
    any operation). Tensors kept after the loop (Adam states, log-alpha's gradient) are made before it.

    :param model: the algorithm
    :param manual: the written-out backward passes for its networks
    """

    name = "fast"
    # the whole loop runs in inference mode: turning gradients off again would be repeated work
    no_grad: ClassVar[staticmethod] = staticmethod(contextlib.nullcontext)

    def __init__(self, model: TutorialSAC, manual: ManualUpdate):
        super().__init__(model)
        self.manual = manual
        actor = model.actor
        trunk, std_head = functional_forward(actor.latent_pi), functional_forward(actor.std)
        mu_head = functional_forward(actor.mu)

        def actor_dist_params(obs: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
            latent = trunk(obs)
            return mu_head(latent), std_head(latent)

        target_q_networks = [functional_forward(q_net) for q_net in model.critic_target.q_networks]

        def target_q_values(obs: th.Tensor, actions: th.Tensor) -> list[th.Tensor]:
            # Tutorial rule: Q(s, a) on cat(state, action), the action in the env's units
            q_input = th.cat([obs, actions], dim=1)
            return [q_net(q_input) for q_net in target_q_networks]

        # flat Box observations only (make_engine builds this engine for nothing else)
        self.actor_dist_params = actor_dist_params  # type: ignore[assignment]
        self.target_q_values = target_q_values  # type: ignore[assignment]
        self._actor_adam = FlatAdam(actor.optimizer, model._actor_flat)
        self._critic_adam = FlatAdam(model.critic.optimizer, model._critic_flat)

    def observations(self, observations: PyTorchObs) -> PyTorchObs:
        # what preprocess_obs does for a flat Box (FlattenExtractor is the identity on [batch, n]), once for all steps
        assert isinstance(observations, th.Tensor)
        return observations.float()

    @contextlib.contextmanager
    def loop(self) -> Iterator[None]:
        model = self.model
        # One Adam update per flat buffer where FlatAdam can serve every group (checked once per call), else per group
        actor_adam, critic_adam = self._actor_adam, self._critic_adam
        # the optimiser steps of UpdateEngine replaced for this call's loop
        self.actor_optimizer_step = actor_adam.step if actor_adam.prepare() else partial(adam_step, model.actor.optimizer)  # type: ignore[method-assign]
        self.critic_optimizer_step = critic_adam.step if critic_adam.prepare() else partial(adam_step, model.critic.optimizer)  # type: ignore[method-assign]
        if model.ent_coef_optimizer is not None and model.log_ent_coef is not None:
            # made here, outside inference mode, so that they are ordinary tensors after the loop
            init_adam_states(model.ent_coef_optimizer)
            if model.log_ent_coef.grad is None or model.log_ent_coef.grad.is_inference():
                model.log_ent_coef.grad = th.zeros_like(model.log_ent_coef)
            self.ent_coef_optimizer_step = partial(adam_step, model.ent_coef_optimizer)  # type: ignore[method-assign]
        with th.inference_mode():
            yield

    def critic_grads(self, obs: PyTorchObs, actions: th.Tensor, target_q: th.Tensor) -> list[th.Tensor]:
        assert isinstance(obs, th.Tensor)
        return self.manual.critic_step_grads(obs, actions, target_q)

    def actor_grads(self, obs: PyTorchObs, ent_coef: th.Tensor) -> tuple[th.Tensor, th.Tensor]:
        assert isinstance(obs, th.Tensor)
        return self.manual.actor_step_grads(obs, ent_coef, self.entropy_term)

    def temperature_grads(self, entropy: th.Tensor, ent_coef: th.Tensor) -> th.Tensor:
        log_ent_coef = self.model.log_ent_coef
        assert log_ent_coef is not None
        # ent_coef is exp(log_alpha) of this step: log_alpha has not changed since
        target_entropy, form = self.target_entropy, self.ent_coef_loss
        return self.manual.temperature_step_grads(entropy, log_ent_coef, target_entropy, form, alpha=ent_coef)


# The compiled engine (sb3_tutorial_sac.compiled) is a FastEngine whose step is compiled once: imported here, after it
from sb3_tutorial_sac.compiled import CompiledEngine  # noqa: E402

ENGINES: dict[str, type[UpdateEngine]] = {"reference": ReferenceEngine, "fast": FastEngine, "compiled": CompiledEngine}
# What TutorialSAC(engine=...) accepts
ENGINE_NAMES: tuple[str, ...] = ("auto", *ENGINES)


def _outside_fast_engine(model: TutorialSAC) -> str | None:
    """Why ``model``'s observations are outside what the fast engine is written for (flat Box observations through
    SB3's FlattenExtractor), or None. Images, dicts and other features extractors are the reference engine's by
    design: ``"auto"`` takes it for them without a warning."""
    observation_space = model.observation_space
    extractors = (model.actor.features_extractor, model.critic.features_extractor, model.critic_target.features_extractor)
    if not (isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 1):
        space, shape = type(observation_space).__name__, getattr(observation_space, "shape", None)
        return f"it covers flat Box observations, the observation space is a {space} of shape {shape}"
    if any(type(extractor) is not FlattenExtractor for extractor in extractors):
        return f"it covers SB3's FlattenExtractor, the features extractor is {type(extractors[0]).__name__}"
    return None


def _fast_engine_or_reason(model: TutorialSAC) -> FastEngine | str:
    """The fast engine for ``model``'s networks (flat Box observations), or why it cannot be used (before probing)."""
    assert isinstance(model.observation_space, spaces.Box)
    observation_space = model.observation_space
    manual = ManualUpdate.build(
        model.actor, list(model.critic.q_networks), observation_space.shape[0], model.policy.to_env_units,
        model.policy.action_half_range,
    )  # fmt: skip
    if isinstance(manual, str):
        return manual
    return FastEngine(model, manual)


def _probe_difference(model: TutorialSAC, fast: FastEngine, reference: ReferenceEngine) -> str | None:
    """
    Run both engines' forward passes and gradients (no optimiser step) on a probe batch and compare them.

    :return: what differs, or None when everything agrees
    """
    device = model.device
    generator = th.Generator().manual_seed(0)
    obs_dim = model.observation_space.shape[0]  # type: ignore[index]
    act_dim = get_action_dim(model.action_space)
    obs = th.randn(16, obs_dim, generator=generator).to(device)
    actions = model.policy.to_env_units((th.rand(16, act_dim, generator=generator) * 2 - 1).to(device))
    target_q = th.randn(16, 1, generator=generator).to(device)
    ent_coef = th.tensor(0.05, device=device)
    tolerance = dict(rtol=1e-5, atol=1e-6)

    def close(name: str, mine: th.Tensor, expected: th.Tensor) -> str | None:
        if mine.shape != expected.shape:
            return f"{name}: shape {tuple(mine.shape)} against {tuple(expected.shape)}"
        if not th.allclose(mine, expected, equal_nan=True, **tolerance):  # type: ignore[arg-type]
            return f"{name}: largest difference {(mine - expected).abs().nan_to_num(float('inf')).max().item():.3g}"
        return None

    with th.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        with th.no_grad():
            expected_dist = reference.actor_dist_params(obs)
            expected_target = reference.target_q_values(obs, actions)
        with th.inference_mode():
            dist, target = fast.actor_dist_params(obs), fast.target_q_values(obs, actions)
        checks = [close("the actor's mean", dist[0], expected_dist[0]), close("the actor's std", dist[1], expected_dist[1])]
        checks += [close(f"target critic {i + 1}", q, e) for i, (q, e) in enumerate(zip(target, expected_target))]
        if len(target) != len(expected_target):
            checks.append(f"{len(target)} target critics against {len(expected_target)}")

        for part, flat in (("critic", model._critic_flat), ("actor", model._actor_flat)):
            results = []
            for engine in (reference, fast):
                th.manual_seed(0)
                with th.inference_mode() if engine is fast else contextlib.nullcontext():
                    if part == "critic":
                        losses = engine.critic_grads(obs, actions, target_q)
                    else:
                        losses = list(engine.actor_grads(obs, ent_coef))
                results.append(([loss.detach().clone() for loss in losses], flat.flat_grad.clone()))
            (expected_losses, expected_grad), (losses, grad) = results
            checks += [close(f"{part} loss {i + 1}", a, b) for i, (a, b) in enumerate(zip(losses, expected_losses))]
            checks.append(close(f"the {part} gradients", grad, expected_grad))
    problems = [check for check in checks if check is not None]
    return "; ".join(problems) if problems else None


def make_engine(model: TutorialSAC, name: str) -> UpdateEngine:
    """
    The engine ``name`` for ``model`` (``TutorialSAC(engine=...)``).

    ``"auto"`` takes the fast engine where it is proven on ``model``'s networks (see :func:`_probe_difference`),
    else the reference engine with a warning that says why (no warning for observations the fast engine is not
    written for: images, dicts, other features extractors). ``"fast"`` raises that reason as a ``ValueError``
    instead; ``"reference"`` is always available. ``"compiled"`` needs the fast engine (it raises as ``"fast"`` does)
    and its own step function proven equal to the fast engine's step on a probe batch
    (:meth:`~sb3_tutorial_sac.compiled.CompiledEngine.probe_difference`), else it warns and gives the fast engine.
    """
    if name == "reference":
        return ReferenceEngine(model)
    if name not in ENGINE_NAMES:
        raise ValueError(f"engine must be one of {ENGINE_NAMES}, got {name!r}")
    reference = ReferenceEngine(model)
    outside = _outside_fast_engine(model)
    if outside is not None and name == "auto":
        return reference  # the engine for these observations: nothing was expected of the fast engine, no warning
    fast = outside if outside is not None else _fast_engine_or_reason(model)
    reason = fast if isinstance(fast, str) else _probe_difference(model, fast, reference)
    if reason is None and name == "compiled":
        assert isinstance(fast, FastEngine)
        # the compiled engine computes the fast engine's step as one function: proven against it on a probe batch
        compiled = CompiledEngine(model, fast.manual)
        difference = compiled.probe_difference()
        if difference is None:
            return compiled
        warnings.warn(
            f"TutorialSAC's compiled engine cannot be used for this model: {difference}. Training uses the fast engine "
            "(the same update, bit for bit the tutorial's; slower).",
            stacklevel=4,
        )
    if reason is None:
        assert isinstance(fast, FastEngine)
        return fast
    message = f"TutorialSAC's fast engine cannot be used for this model: {reason}."
    if name in ("fast", "compiled"):
        raise ValueError(f"{message} Use engine='reference' (or 'auto', which falls back to it).")
    warnings.warn(f"{message} Training uses the reference engine (the same update through autograd; slower).", stacklevel=4)
    return reference
