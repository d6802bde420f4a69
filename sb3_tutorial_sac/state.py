"""The training state of :class:`~sb3_tutorial_sac.TutorialSAC`: what a gradient step changes and reads, in one object.

:class:`TrainingState` owns the flat parameter buffers of the actor, the critics and the target critics
(:mod:`sb3_tutorial_sac.flat`), the optimisers (their states are the Adam moments and step counts), log-alpha (or the
fixed alpha), the soft-update pairs and the batch-norm statistics the target critics copy, and the settings of the
step (:class:`StepSettings`). It is the one place these live: the model's ``log_ent_coef``, ``ent_coef_optimizer``
and ``ent_coef_tensor`` are views of it. ``TutorialSAC.train()`` builds the settings from its own attributes at every
call (:meth:`StepSettings.checked`), as SB3's ``SAC.train()`` reads ``self.tau`` and ``self.target_entropy``: a value
set on the model, passed to the constructor or given to ``load(custom_objects=...)`` gives the same update.

A ``train()`` call is a transaction on the state (:meth:`TrainingState.transaction`): all its gradient steps or none.
The engines (:mod:`sb3_tutorial_sac.engines`), the guard (:mod:`sb3_tutorial_sac.guard`) and the benchmarks take this
object and use its public names only; nothing here knows the algorithm's class.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import torch as th
from stable_baselines3.common.utils import get_parameters_by_name, polyak_update

from sb3_tutorial_sac.flat import FlatParameters, rehome_optimizer
from sb3_tutorial_sac.validation import check_arguments, parse_ent_coef

if TYPE_CHECKING:
    from sb3_tutorial_sac.policies import TutorialSACPolicy


@dataclass(frozen=True)
class StepSettings:
    """
    The settings of one ``train()`` call, built from the model's attributes at that call (:meth:`checked`).

    :param tau: the soft update coefficient (tutorial: 0.005; SB3 accepts [0, 1])
    :param gamma: the discount factor (tutorial: 0.99)
    :param target_update_interval: soft-update the target critics every this many gradient steps (tutorial: 1)
    :param target_entropy: the temperature's target entropy (tutorial: -1, ``-dim(A)``)
    :param reward_shift: rewards are normalised at sample time as ``(r + shift) * scale`` (tutorial: 8)
    :param reward_scale: see ``reward_shift`` (tutorial: 1/8)
    :param entropy_term: ``"tutorial"`` (tanh applied twice) or ``"correct"``
    :param ent_coef_loss: ``"tutorial"`` (alpha-scaled) or ``"sb3"``
    :param batch_size: the model's minibatch size (the compiled engine compiles its step for it)
    """

    tau: float
    gamma: float
    target_update_interval: int
    target_entropy: float
    reward_shift: float
    reward_scale: float
    entropy_term: str
    ent_coef_loss: str
    batch_size: int

    @staticmethod
    def checked(action_dim: int, **values: Any) -> StepSettings:
        """
        The settings of a ``train()`` call from the model's values (the fields of this class), checked as the
        constructor checks them; ``target_entropy="auto"`` is ``-action_dim``.

        :raises ValueError: naming the attribute and what it accepts
        """
        # the constructor's checks, with its messages (sb3_tutorial_sac.validation)
        check_arguments(values)
        target_entropy = values["target_entropy"]
        if isinstance(target_entropy, str):
            # Tutorial rule: -1 on Pendulum, -dim(A) in general (as SB3)
            target_entropy = -float(action_dim)
        return StepSettings(
            float(values["tau"]), float(values["gamma"]), int(values["target_update_interval"]), float(target_entropy),
            float(values["reward_shift"]), float(values["reward_scale"]), values["entropy_term"], values["ent_coef_loss"],
            int(values["batch_size"]),
        )  # fmt: skip


T = TypeVar("T")


class StateView(Generic[T]):
    """
    A model attribute that is a view of the attribute of the same name of its training state (``_training_state``):
    SB3's SAC holds ``log_ent_coef``, ``ent_coef_optimizer`` and ``ent_coef_tensor`` on the model; here reading or
    setting them reads or sets the one training state. ``None`` before the model has one (``_setup_model`` builds it).
    """

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, model: Any, owner: type | None = None) -> T:
        state = None if model is None else model.__dict__.get("_training_state")
        return None if state is None else getattr(state, self.name)  # type: ignore[return-value]

    def __set__(self, model: Any, value: T) -> None:
        state = model.__dict__.get("_training_state")
        if state is None:
            raise AttributeError(f"{self.name} is part of the training state, built by _setup_model(): set it after")
        setattr(state, self.name, value)


class HasTrainingState(Protocol):
    """What the modules below the algorithm (:mod:`~sb3_tutorial_sac.interop`) read of a model: its policy and its
    training state (``TutorialSAC`` is one; they never import its class)."""

    @property
    def policy(self) -> TutorialSACPolicy: ...

    @property
    def training_state(self) -> TrainingState: ...


# The model's attributes StepSettings reads at every train() call
SETTINGS: tuple[str, ...] = tuple(StepSettings.__dataclass_fields__)


class TrainingState:
    """
    Everything a gradient step changes and reads.

    The parameters of the actor, of the critics and of the target critics live in flat buffers (one
    :class:`~sb3_tutorial_sac.flat.FlatParameters` each), so that an optimiser step and the soft update are a few
    operations on one tensor (every number stays the same: the updates are elementwise). The critics' buffer is cut
    into one segment per critic, the parameter groups of ``critic.optimizer`` (the tutorial's separate Adams).

    :param policy: the model's policy (its actor, critics and target critics, with their optimisers)
    :param log_ent_coef: log-alpha when it is learned, else ``None``
    :param ent_coef_optimizer: its optimiser, or ``None``
    :param ent_coef_tensor: the fixed alpha when it is not learned
    """

    # the settings of the train() call in progress (or the last one), given by train() before its engine's loop
    settings: StepSettings | None

    def __init__(
        self,
        policy: TutorialSACPolicy,
        log_ent_coef: th.Tensor | None,
        ent_coef_optimizer: th.optim.Optimizer | None,
        ent_coef_tensor: th.Tensor | None,
    ):
        self.policy = policy
        self.actor, self.critic, self.critic_target = policy.actor, policy.critic, policy.critic_target
        self.log_ent_coef, self.ent_coef_optimizer, self.ent_coef_tensor = log_ent_coef, ent_coef_optimizer, ent_coef_tensor
        self.settings = None
        shared = policy.share_features_extractor

        actor_groups = [group["params"] for group in self.actor.optimizer.param_groups]
        self.actor_flat = FlatParameters(list(self.actor.parameters()))
        if len(actor_groups) != 1 or [p.numel() for p in actor_groups[0]] not in (
            [p.numel() for p in self.actor.parameters()],
            [self.actor_flat.flat.numel()],
        ):
            raise ValueError("actor.optimizer must hold the actor's parameters in one group")
        rehome_optimizer(self.actor.optimizer, actor_groups, self.actor_flat.segments)

        # Critic parameter groups: one per critic (the tutorial's separate Adams), plus the critic's own trainable
        # features extractor if it has one. The target critics mirror them element for element.
        critic_groups = [group["params"] for group in self.critic.optimizer.param_groups]
        critic_params = [list(q.parameters()) for q in self.critic.q_networks]
        target_params = [list(q.parameters()) for q in self.critic_target.q_networks]
        own_extractor = [] if shared else list(self.critic.features_extractor.parameters())
        if own_extractor:
            critic_params.append(own_extractor)
            target_params.append(list(self.critic_target.features_extractor.parameters()))
        self.critic_flat = FlatParameters([p for ps in critic_params for p in ps], [len(ps) for ps in critic_params])
        rehome_optimizer(self.critic.optimizer, critic_groups, self.critic_flat.segments)
        self.critic_target_flat = FlatParameters([p for ps in target_params for p in ps])

        # Soft update: online -> target, element for element (a shared extractor lives in the actor's buffer)
        self.soft_update_online: list[th.Tensor] = [self.critic_flat.flat]
        self.soft_update_target: list[th.Tensor] = [self.critic_target_flat.flat]
        if shared:
            self.soft_update_online += list(self.actor.features_extractor.parameters())
            self.soft_update_target += list(self.critic_target.features_extractor.parameters())
        # As SB3's SAC: the batch-norm running statistics are copied into the target critics at every target update
        self.batch_norm_stats = get_parameters_by_name(self.critic, ["running_"])
        self.batch_norm_stats_target = get_parameters_by_name(self.critic_target, ["running_"])

    @staticmethod
    def create(policy: TutorialSACPolicy, ent_coef: str | float, ent_coef_learning_rate: float) -> TrainingState:
        """
        The training state of a new model: its temperature made from ``ent_coef`` (as SB3's SAC makes it, the
        tutorial's start value aside).

        :param ent_coef: ``"auto"``, ``"auto_<start>"`` (learned; tutorial: ``"auto_0.01"``) or a fixed alpha
        :param ent_coef_learning_rate: the temperature optimiser's learning rate at the start
        """
        learned, init_value = parse_ent_coef(ent_coef)
        device = policy.device
        if not learned:
            return TrainingState(policy, None, None, th.tensor(init_value, device=device))
        # Tutorial rule: log(alpha) starts at log(0.01) ("auto_0.01"; SB3's "auto" starts at 1.0)
        log_ent_coef = th.log(th.ones(1, device=device) * init_value).requires_grad_(True)
        return TrainingState(policy, log_ent_coef, th.optim.Adam([log_ent_coef], lr=ent_coef_learning_rate), None)

    def rebuilt(self) -> TrainingState:
        """The state built anew on the policy's parameters where they are now (after ``policy.to(device)`` moved them
        out of the flat buffers), with this temperature and these optimisers."""
        state = TrainingState(self.policy, self.log_ent_coef, self.ent_coef_optimizer, self.ent_coef_tensor)
        state.settings = self.settings
        return state

    @property
    def n_critics(self) -> int:
        return len(self.critic.q_networks)

    @property
    def alpha(self) -> th.Tensor:
        """The current alpha, without gradient: ``exp(log_alpha)`` when it is learned, else the fixed value."""
        if self.log_ent_coef is not None:
            return th.exp(self.log_ent_coef.detach())
        assert self.ent_coef_tensor is not None
        return self.ent_coef_tensor

    @property
    def optimizers(self) -> dict[str, th.optim.Optimizer]:
        """The optimisers a step steps, by their save names."""
        optimizers = {"actor.optimizer": self.actor.optimizer, "critic.optimizer": self.critic.optimizer}
        if self.ent_coef_optimizer is not None:
            optimizers["ent_coef_optimizer"] = self.ent_coef_optimizer
        return optimizers

    def flats(self) -> tuple[FlatParameters, FlatParameters, FlatParameters]:
        """The flat buffers of the actor, the critics and the target critics."""
        return self.actor_flat, self.critic_flat, self.critic_target_flat

    def is_intact(self) -> bool:
        """Whether every parameter and gradient still lives in its flat buffer; repairs the gradients where only they
        left (``zero_grad(set_to_none=True)``). False: the parameters moved (``policy.to(device)``), build anew."""
        if all(flat.is_intact() for flat in self.flats()):
            return True
        return all(flat.repair_grads() for flat in self.flats())

    def soft_update(self, tau: float) -> None:
        """
        Tutorial rule: ``target = (1 - tau) * target + tau * online``, written as the tutorial rounds it (SB3's
        ``polyak_update`` fuses the add); then, as SB3's SAC, the batch-norm statistics copied into the targets.
        """
        with th.no_grad():
            th._foreach_mul_(self.soft_update_target, 1 - tau)
            th._foreach_add_(self.soft_update_target, th._foreach_mul(self.soft_update_online, tau))
        self.copy_batch_norm_stats()

    def copy_batch_norm_stats(self) -> None:
        """SB3's SAC at every target update: ``polyak_update(batch_norm_stats, batch_norm_stats_target, 1.0)``."""
        if self.batch_norm_stats:
            polyak_update(self.batch_norm_stats, self.batch_norm_stats_target, 1.0)

    # ------------------------------------------------------------------------------------------ the guard's view
    def tensors(self) -> dict[str, th.Tensor]:
        """Every tensor a gradient step writes, by name: the flat parameter buffers, log(alpha), the batch-norm
        statistics of the target critics and the optimisers' floating-point states."""
        tensors = {
            "actor parameters": self.actor_flat.flat,
            "critic parameters": self.critic_flat.flat,
            "target critic parameters": self.critic_target_flat.flat,
        }
        # a features extractor shared by the actor and the critics has its target copy outside the flat buffers
        for i, target in enumerate(self.soft_update_target[1:]):
            tensors[f"target features extractor parameter {i}"] = target
        for i, stat in enumerate(self.batch_norm_stats_target):
            tensors[f"target batch-norm statistic {i}"] = stat
        if self.log_ent_coef is not None:
            tensors["log_ent_coef"] = self.log_ent_coef
        for name, optimizer in self.optimizers.items():
            for i, state in enumerate(optimizer.state.values()):
                for key, value in state.items():
                    if isinstance(value, th.Tensor) and value.is_floating_point():
                        tensors[f"{name} state {key}[{i}]"] = value
        return tensors

    def snapshot(self) -> dict[str, Any]:
        """Copies of everything a gradient step changes (:meth:`tensors` and the optimisers' whole states)."""
        with th.no_grad():
            tensors = [*self.flats_and_extras()]
            return {
                "tensors": [(tensor, tensor.detach().clone()) for tensor in tensors],
                "optimizers": [
                    (
                        optimizer,
                        {
                            param: {key: value.clone() if isinstance(value, th.Tensor) else value for key, value in st.items()}
                            for param, st in optimizer.state.items()
                        },
                    )
                    for optimizer in self.optimizers.values()
                ],
            }

    def flats_and_extras(self) -> Iterator[th.Tensor]:
        """The tensors a step writes outside the optimisers: flat buffers, shared extractor targets, batch-norm
        statistics of the targets (and of the critics, which forward passes in train mode move), log(alpha)."""
        yield from (flat.flat for flat in self.flats())
        yield from self.soft_update_target[1:]
        yield from self.batch_norm_stats
        yield from self.batch_norm_stats_target
        if self.log_ent_coef is not None:
            yield self.log_ent_coef

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """
        All or nothing (not in SB3): everything a gradient step changes is copied on entry (:meth:`snapshot`: once per
        ``train()`` call, no per-step work) and put back if the block raises, a ``KeyboardInterrupt`` mid-step or the
        guard's :class:`~sb3_tutorial_sac.guard.NonFiniteError` included.
        """
        snapshot = self.snapshot()
        try:
            yield
        except BaseException:
            self.restore(snapshot)
            raise

    @staticmethod
    def restore(snapshot: dict[str, Any]) -> None:
        """Put back what :meth:`snapshot` copied, in place (the flat buffers stay where they are)."""
        with th.no_grad():
            for tensor, saved in snapshot["tensors"]:
                tensor.copy_(saved)
        for optimizer, states in snapshot["optimizers"]:
            optimizer.state.clear()
            optimizer.state.update(states)
