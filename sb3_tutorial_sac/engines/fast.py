"""The fast engine: the written-out step (:func:`~sb3_tutorial_sac.engines.step.step_function`) run eagerly.

For flat Box observations and plain ReLU MLPs with the tutorial's heads (the tutorial's networks and any ``net_arch``
of them): the forward passes as function calls on views of the flat buffers, the backward passes written out, one
Adam update per flat buffer, and the whole loop in inference mode (no autograd bookkeeping on any operation). The same
numbers as the reference engine, bit for bit on the CPU: proven on a probe batch when the model is set up
(:func:`~sb3_tutorial_sac.engines.probe.engine_difference`), and by the tests over whole runs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.torch_layers import FlattenExtractor
from stable_baselines3.common.type_aliases import PyTorchObs

from sb3_tutorial_sac.engines.base import Unavailable, UpdateEngine
from sb3_tutorial_sac.engines.probe import engine_difference
from sb3_tutorial_sac.engines.reference import ReferenceEngine
from sb3_tutorial_sac.engines.step import (
    KEEP,
    N_SCALARS,
    SOFT_UPDATE,
    TARGET_ENTROPY,
    TAU,
    Minibatch,
    Networks,
    StepSpec,
    adam_servable,
    eager,
    make_spec,
    read_networks,
)
from sb3_tutorial_sac.flat import FlatAdam, adam_scalars, init_adam_states
from sb3_tutorial_sac.state import TrainingState

Runner = Callable[[list[th.Tensor]], list[th.Tensor]]


def outside_reason(state: TrainingState) -> str | None:
    """Why ``state``'s observations are outside what the written-out step covers (flat Box observations through SB3's
    FlattenExtractor), or None. Images, dicts and other features extractors are the reference engine's by design."""
    observation_space = state.policy.observation_space
    extractors = (state.actor.features_extractor, state.critic.features_extractor, state.critic_target.features_extractor)
    if not (isinstance(observation_space, spaces.Box) and len(observation_space.shape) == 1):
        space, shape = type(observation_space).__name__, getattr(observation_space, "shape", None)
        return f"it covers flat Box observations, the observation space is a {space} of shape {shape}"
    if any(type(extractor) is not FlattenExtractor for extractor in extractors):
        return f"it covers SB3's FlattenExtractor, the features extractor is {type(extractors[0]).__name__}"
    return None


class FastEngine(UpdateEngine):
    """
    :func:`~sb3_tutorial_sac.engines.step.step_function` run eagerly on the training state. A ``train()`` call whose
    optimisers one flat Adam update cannot serve (another optimiser class, groups with different learning rates or
    step counts) is run by the reference engine: the same numbers.

    :param state: the training state it steps
    :param networks: its networks as the step function reads them
    """

    name = "fast"
    description: ClassVar[str] = "the fast engine (the same update, bit for bit the tutorial's; slower)"
    # bit for bit on the CPU; on CUDA the kernels may sum in another order than autograd's
    tolerance: ClassVar[dict[str, float]] = {"rtol": 1e-5, "atol": 1e-6}

    def __init__(self, state: TrainingState, networks: Networks):
        super().__init__(state)
        self.networks = networks
        self._actor_adam = FlatAdam(state.actor.optimizer, state.actor_flat)
        self._critic_adam = FlatAdam(state.critic.optimizer, state.critic_flat)
        self._reference = ReferenceEngine(state)
        self._device = state.actor_flat.flat.device
        self._eager: dict[StepSpec, Runner] = {}
        # the scalars input: Python floats for the eager step, a float32 tensor for a compiled one (same numbers)
        self._scalar_values = [0.0] * N_SCALARS
        self._scalars_host = np.zeros(N_SCALARS, dtype=np.float32)
        self._scalars = th.from_numpy(self._scalars_host).to(self._device)
        self._serving = False
        # this call's batch size, the step for it, and whether it takes the scalars as a tensor
        self._main: tuple[int, Runner, bool] | None = None
        self._adam: list[list] = []
        self._persistent: list[th.Tensor] = []

    @classmethod
    def unproven(cls, state: TrainingState) -> FastEngine | Unavailable:
        """The fast engine for ``state``'s networks as their types show them, before the probe (:meth:`build`)."""
        outside = outside_reason(state)
        if outside is not None:
            return Unavailable(outside, engine="fast", silent=True)
        networks = read_networks(state)
        if isinstance(networks, str):
            return Unavailable(networks, engine="fast")
        return FastEngine(state, networks)

    @classmethod
    def build(cls, state: TrainingState) -> UpdateEngine | Unavailable:
        engine = FastEngine.unproven(state)
        if isinstance(engine, Unavailable):
            return engine
        difference = engine.reference_difference()
        return engine if difference is None else Unavailable(difference, engine="fast")

    def reference_difference(self) -> str | None:
        """
        One gradient step of this engine and of the reference engine on the probe batch, with learning rates 0 (so the
        comparison is of the forward passes, the losses and the gradients, in Adam's moments), within
        :attr:`tolerance`. This proves the engine's reading of the networks (offsets, heads, switches) and catches
        what their types do not show (a forward hook, a changed module).

        :return: what differs, or None when everything agrees
        """
        return engine_difference(self, ReferenceEngine(self.state), learning_rates=False, **self.tolerance)

    def spec(self, batch_size: int) -> StepSpec:
        """The static description of this call's step at ``batch_size``."""
        return make_spec(self.state, self.networks, batch_size)

    def runner(self, spec: StepSpec) -> Runner:
        """The step for ``spec``, called with the list of inputs: here the step function run eagerly."""
        if spec not in self._eager:
            self._eager[spec] = eager(spec)
        return self._eager[spec]

    def observations(self, observations: PyTorchObs) -> PyTorchObs:
        # what preprocess_obs does for a flat Box (FlattenExtractor is the identity on [batch, n]), once for all steps
        assert isinstance(observations, th.Tensor)
        return observations.float()

    # -------------------------------------------------------------------------------------------- the loop
    def _servable(self) -> bool:
        """Whether this call's optimiser states can be stepped by the step function's flat Adam updates."""
        state = self.state
        if not (self._actor_adam.prepare() and self._critic_adam.prepare()):
            return False
        optimizer = state.ent_coef_optimizer
        if optimizer is not None:
            if not adam_servable(optimizer) or [len(g["params"]) for g in optimizer.param_groups] != [1]:
                return False
            init_adam_states(optimizer)
        return True

    def _persistent_inputs(self) -> list[th.Tensor]:
        """The inputs that stay the same tensors for a whole ``train()`` call."""
        state = self.state
        if state.log_ent_coef is not None and state.ent_coef_optimizer is not None:
            log_alpha = state.log_ent_coef.detach()
            alpha_state = state.ent_coef_optimizer.state[state.log_ent_coef]
            alpha_moments = [alpha_state["exp_avg"], alpha_state["exp_avg_sq"]]
        else:
            assert state.ent_coef_tensor is not None
            log_alpha = state.ent_coef_tensor
            alpha_moments = [th.zeros(1, device=self._device), th.zeros(1, device=self._device)]
        policy = state.policy
        return [policy.action_half_range, policy.action_center, state.actor_flat.flat, state.critic_flat.flat,
                state.critic_target_flat.flat, log_alpha, self._actor_adam.exp_avg, self._actor_adam.exp_avg_sq,
                self._critic_adam.exp_avg, self._critic_adam.exp_avg_sq, *alpha_moments]  # fmt: skip

    def _optimizers(self) -> list[tuple[th.optim.Optimizer, list[th.Tensor]]]:
        """Each optimiser with the tensors whose states it steps (one flat segment per group)."""
        state = self.state
        optimizers = [(state.actor.optimizer, state.actor_flat.segments), (state.critic.optimizer, state.critic_flat.segments)]
        if state.ent_coef_optimizer is not None:
            assert state.log_ent_coef is not None
            optimizers.append((state.ent_coef_optimizer, [state.log_ent_coef]))
        return optimizers

    def _read_step_counts(self) -> None:
        """Adam's hyperparameters and step counts, held on the host during the loop (see :meth:`_write_step_counts`)."""
        self._adam = []
        for optimizer, params in self._optimizers():
            group = optimizer.param_groups[0]
            count = int(optimizer.state[params[0]]["step"].item())
            self._adam.append([group["lr"], group["betas"][0], group["betas"][1], count])

    def _write_step_counts(self) -> None:
        for (optimizer, params), (_, _, _, count) in zip(self._optimizers(), self._adam):
            for param in params:
                optimizer.state[param]["step"].fill_(count)

    def main_runner(self, spec: StepSpec) -> tuple[Runner, bool]:
        """The step for this call's batch size (the compiled engine compiles it; called outside inference mode), and
        whether it takes the scalars as a tensor."""
        return self.runner(spec), False

    @contextlib.contextmanager
    def loop(self) -> Iterator[None]:
        state, settings = self.state, self.settings
        self._serving = self._servable()
        if not self._serving:
            with self._reference.loop():
                yield
            return
        log_ent_coef = state.log_ent_coef
        if log_ent_coef is not None and (log_ent_coef.grad is None or log_ent_coef.grad.is_inference()):
            # made here, outside inference mode, so that the model keeps an ordinary tensor (as the reference engine's)
            log_ent_coef.grad = th.zeros_like(log_ent_coef)
        self._main = (settings.batch_size, *self.main_runner(self.spec(settings.batch_size)))
        self._persistent = self._persistent_inputs()
        # tau and 1 - tau in double precision (then float32 in torch's kernels, or in the tensor: the same numbers)
        values = self._scalar_values
        values[TAU], values[KEEP], values[TARGET_ENTROPY] = settings.tau, 1 - settings.tau, settings.target_entropy
        self._read_step_counts()
        try:
            with th.inference_mode():
                yield
        finally:
            self._write_step_counts()

    def step(self, batch: Minibatch, stats: th.Tensor, soft_update: bool) -> None:
        if not self._serving:
            self._reference.step(batch, stats, soft_update)
            return
        stats.copy_(self._step(batch, self._noise(batch), soft_update))

    def steps(self, batches: Sequence[Minibatch], stats: th.Tensor, target_update_interval: int) -> None:
        """:meth:`step` on each minibatch, with the per-call work done once: the noise of all steps drawn at once where
        that gives the same numbers (:meth:`_noise_of_steps`), the statistics rows written together at the end."""
        if not self._serving or not batches:
            super().steps(batches, stats, target_update_interval)
            return
        noise = self._noise_of_steps(batches)
        rows = [self._step(batch, noise[k], k % target_update_interval == 0) for k, batch in enumerate(batches)]
        th.stack(rows, out=stats)

    def _noise_block(self, steps: int, shape: th.Size) -> th.Tensor:
        """
        The noise of ``steps`` steps whose draws have ``shape`` (:meth:`_noise`), as one tensor ``[steps, 2, *shape]``,
        the same numbers as drawn step by step: on the CPU, one draw when a step's draw has a multiple of 16 numbers
        (torch's CPU ``normal_`` fills 16 numbers at a time from uniforms drawn in order, so one long draw is the short
        ones end to end; a draw of another size recomputes its last 16, and CUDA's generator offsets differ); else
        step by step.
        """
        if self._device.type == "cpu" and shape.numel() % 16 == 0:
            return th.empty(steps, 2, *shape).normal_()
        return th.stack([th.stack(self._noise_of_shape(shape)) for _ in range(steps)])

    def _noise(self, batch: Minibatch) -> tuple[th.Tensor, th.Tensor]:
        """Tutorial rule: two noise draws of ``[batch, act]`` from the global generator, ``s'`` then ``s`` (as
        ``Normal.rsample`` draws them)."""
        return self._noise_of_shape(batch.actions.shape)

    def _noise_of_shape(self, shape: th.Size) -> tuple[th.Tensor, th.Tensor]:
        return th.empty(shape, device=self._device).normal_(), th.empty(shape, device=self._device).normal_()

    def _noise_of_steps(self, batches: Sequence[Minibatch]) -> Sequence[tuple[th.Tensor, th.Tensor]]:
        """The noise of every step (:meth:`_noise`), drawn at once where the steps' minibatches have one shape
        (:meth:`_noise_block`)."""
        shape = batches[0].actions.shape
        if any(batch.actions.shape != shape for batch in batches):
            return [self._noise(batch) for batch in batches]
        return [(pair[0], pair[1]) for pair in self._noise_block(len(batches), shape).unbind(0)]

    def _step(self, batch: Minibatch, noise: tuple[th.Tensor, th.Tensor], soft_update: bool) -> th.Tensor:
        """One step of the step function with ``noise`` (s' then s); returns its statistics row."""
        assert self._main is not None
        batch_size = batch.actions.shape[0]
        main_size, run, as_tensor = self._main
        if batch_size != main_size:
            run, as_tensor = self.runner(self.spec(batch_size)), False
        values = self._next_scalars(soft_update)
        scalars: list[float] | th.Tensor = values
        if as_tensor:
            self._scalars_host[:] = values
            scalars = self._scalars  # shares the host array's memory on the CPU (the compiled engine's device)
        return run(self.inputs(batch, noise, scalars))[0]

    def _next_scalars(self, soft_update: bool) -> list[float]:
        """The scalars input of the next step (:data:`~sb3_tutorial_sac.engines.step.N_SCALARS`; Adam's step counts
        advance by one): Adam's scalars computed as torch's Adam computes them, and whether to soft-update."""
        values = self._scalar_values
        for i, entry in enumerate(self._adam):
            lr, beta1, beta2, count = entry
            count = entry[3] = count + 1
            values[2 * i], values[2 * i + 1] = adam_scalars(lr, beta1, beta2, count)
        values[SOFT_UPDATE] = 1.0 if soft_update else 0.0
        return values

    def _scalars_of_steps(self, steps: int, target_update_interval: int) -> th.Tensor:
        """
        The scalars inputs of the next ``steps`` steps, float32 ``[steps, N_SCALARS]``: row ``k`` holds what the
        ``k``-th call of :meth:`_next_scalars` would give (the same Python arithmetic, column by column, then rounded to
        float32 as the fast engine's scalars tensor is), and the step counts advance by ``steps``.
        """
        table = np.empty((steps, len(self._scalar_values)))
        table[:] = self._scalar_values  # tau, 1 - tau and the target entropy, set by loop()
        for i, entry in enumerate(self._adam):
            lr, beta1, beta2, count = entry
            table[:, 2 * i : 2 * i + 2] = [adam_scalars(lr, beta1, beta2, k) for k in range(count + 1, count + steps + 1)]
            entry[3] = count + steps
        table[:, SOFT_UPDATE] = np.arange(steps) % target_update_interval == 0
        return th.from_numpy(table.astype(np.float32))

    def inputs(self, batch: Minibatch, noise: tuple[th.Tensor, th.Tensor], scalars: list[float] | th.Tensor) -> list:
        """The step function's inputs (:data:`~sb3_tutorial_sac.engines.step.INPUTS`) for ``batch`` inside
        :meth:`loop`: a new list at each call (a compiled package takes the list's tensors)."""
        return [batch.observations, batch.actions, batch.next_observations, batch.rewards, batch.discounts,
                *noise, *self._persistent, scalars]  # fmt: skip
