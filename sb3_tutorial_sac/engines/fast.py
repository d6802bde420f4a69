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
from sb3_tutorial_sac.engines.base import split_steps
from sb3_tutorial_sac.engines.step import (
    Minibatch,
    Networks,
    StepScalars,
    StepSpec,
    adam_servable,
    make_spec,
    read_networks,
    step_function,
)
from sb3_tutorial_sac.flat import FlatAdam, adam_scalars, init_adam_states
from sb3_tutorial_sac.state import TrainingState

# the step function (step_function) as the fast engine calls it: the inputs (INPUTS) in order, the statistics row first
StepFunction = Callable[..., tuple[th.Tensor, ...]]
# a compiled package's call: the list of inputs, the list of outputs
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
        self._functions: dict[StepSpec, StepFunction] = {}
        # inside loop(): whether the flat Adam updates serve this call (else the reference engine steps), the step at the
        # model's batch size, the inputs that stay the same tensors for the call, and the settings of its scalars
        self._serving = False
        self._main: tuple[int, StepFunction] | None = None
        self._persistent: list[th.Tensor] = []
        self._constants = StepScalars()
        # each optimiser's [lr, beta1, beta2, step count], held on the host during the loop
        self._adam: list[list] = []

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

    def function(self, spec: StepSpec) -> StepFunction:
        """The step for ``spec``, run eagerly (made once per spec)."""
        if spec not in self._functions:
            self._functions[spec] = step_function(spec)
        return self._functions[spec]

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

    def prepare(self, spec: StepSpec) -> None:
        """Called by :meth:`loop` (outside inference mode) with the spec of the model's batch size: the compiled engine
        compiles (or loads) its step here."""

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
        spec = self.spec(settings.batch_size)
        self.prepare(spec)
        self._main = (settings.batch_size, self.function(spec))
        self._persistent = self._persistent_inputs()
        # tau and 1 - tau in double precision (then float32 in torch's kernels, or in the tensor: the same numbers)
        self._constants = StepScalars(tau=settings.tau, keep=1 - settings.tau, target_entropy=settings.target_entropy)
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
        function = self._function_for(batch.actions.shape[0])
        stats.copy_(function(*batch, *self._noise(batch), *self._persistent, self._next_scalars(soft_update))[0])

    def _function_for(self, batch_size: int) -> StepFunction:
        """The step at ``batch_size`` inside :meth:`loop`: made there for the model's batch size."""
        assert self._main is not None
        return self._main[1] if batch_size == self._main[0] else self.function(self.spec(batch_size))

    def run_steps(self, columns: Minibatch, gradient_steps: int, stats: th.Tensor, target_update_interval: int) -> None:
        """The steps of the step function on each step's minibatch, with the per-call work done once: the noise of all
        steps drawn at once where that gives the same numbers (:meth:`_noise_of_steps`), the statistics rows written
        together at the end. A call the flat Adam updates cannot serve is the reference engine's."""
        if not self._serving:
            self._reference.run_steps(columns, gradient_steps, stats, target_update_interval)
            return
        batches = [Minibatch(*batch) for batch in zip(*(split_steps(column, gradient_steps) for column in columns))]
        function = self._function_for(columns.actions.shape[0] // gradient_steps)
        noise, persistent = self._noise_of_steps(batches), self._persistent
        rows = [
            function(*batch, *noise[k], *persistent, self._next_scalars(k % target_update_interval == 0))[0]
            for k, batch in enumerate(batches)
        ]
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

    def _next_scalars(self, soft_update: bool) -> StepScalars:
        """The scalars of the next step (Adam's step counts advance by one): Adam's computed as torch's Adam computes
        them, and whether to soft-update."""
        adam = [0.0] * 6  # (an optimiser that is not there: log-alpha's when alpha is fixed; the step does not read it)
        for i, entry in enumerate(self._adam):
            lr, beta1, beta2, count = entry
            count = entry[3] = count + 1
            adam[2 * i], adam[2 * i + 1] = adam_scalars(lr, beta1, beta2, count)
        constants = self._constants
        return StepScalars(*adam, 1.0 if soft_update else 0.0, constants.tau, constants.keep, constants.target_entropy)  # type: ignore[call-arg]

    def _scalars_of_steps(self, steps: int, target_update_interval: int) -> th.Tensor:
        """
        The scalars of the next ``steps`` steps, float32 ``[steps, N_SCALARS]``: row ``k`` holds what the ``k``-th call
        of :meth:`_next_scalars` would give (the same Python arithmetic, column by column, then rounded to float32 as
        a compiled step's scalars tensor is), and the step counts advance by ``steps``.
        """
        table = np.empty((steps, len(self._constants)))
        table[:] = self._constants  # tau, 1 - tau and the target entropy, set by loop()
        for i, entry in enumerate(self._adam):
            lr, beta1, beta2, count = entry
            table[:, 2 * i : 2 * i + 2] = [adam_scalars(lr, beta1, beta2, k) for k in range(count + 1, count + steps + 1)]
            entry[3] = count + steps
        table[:, StepScalars._fields.index("soft_update")] = np.arange(steps) % target_update_interval == 0
        return th.from_numpy(table.astype(np.float32))
