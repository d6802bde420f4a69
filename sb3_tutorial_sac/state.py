"""The training state of :class:`~sb3_tutorial_sac.TutorialSAC`: what a gradient step changes and reads, in one object.

:class:`TrainingState` owns the flat parameter buffers of the actor, the critics and the target critics
(:mod:`sb3_tutorial_sac.flat`), the optimisers (their states are the Adam moments and step counts), log-alpha (or the
fixed alpha), the soft-update pairs and the batch-norm statistics the target critics copy, and the settings of the
step (:class:`StepSettings`). ``TutorialSAC.train()`` reads the settings from the model at every call
(:meth:`TrainingState.read`), as SB3's ``SAC.train()`` reads ``self.tau`` and ``self.target_entropy``: a value set on
the model, passed to the constructor or given to ``load(custom_objects=...)`` gives the same update.

The engines (:mod:`sb3_tutorial_sac.engines`), the guard (:mod:`sb3_tutorial_sac.guard`) and the benchmarks take this
object and use its public names only.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch as th
from stable_baselines3.common.utils import get_parameters_by_name, polyak_update

from sb3_tutorial_sac.flat import FlatParameters, rehome_optimizer
from sb3_tutorial_sac.policies import ENTROPY_TERMS

if TYPE_CHECKING:
    from sb3_tutorial_sac.policies import TutorialSACPolicy
    from sb3_tutorial_sac.tutorial_sac import TutorialSAC

# What TutorialSAC(ent_coef_loss=...) accepts
ENT_COEF_LOSSES: tuple[str, ...] = ("tutorial", "sb3")


def _real(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value)


@dataclass(frozen=True)
class StepSettings:
    """
    The settings of one ``train()`` call, read from the model's attributes at that call (:meth:`from_model`).

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
    def from_model(model: TutorialSAC) -> StepSettings:
        """
        The model's settings as they are now, checked as the constructor checks them.

        :raises ValueError: naming the attribute and what it accepts
        """
        tau, gamma, interval = model.tau, model.gamma, model.target_update_interval
        if not (_real(tau) and 0.0 <= tau <= 1.0):
            raise ValueError(f"tau must be a number in [0, 1] (tutorial: 0.005), got {tau!r}")
        if not (_real(gamma) and 0.0 <= gamma <= 1.0):
            raise ValueError(f"gamma must be a number in [0, 1] (tutorial: 0.99), got {gamma!r}")
        if isinstance(interval, bool) or not isinstance(interval, (int, np.integer)) or interval <= 0:
            raise ValueError(f"target_update_interval must be a positive integer (tutorial: 1), got {interval!r}")
        batch_size = model.batch_size
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"batch_size must be a positive integer (tutorial: 64), got {batch_size!r}")
        target_entropy = model.target_entropy
        if isinstance(target_entropy, str) and target_entropy == "auto":
            # Tutorial rule: -1 on Pendulum, -dim(A) in general (as SB3)
            target_entropy = float(-np.prod(model.action_space.shape).astype(np.float32))  # type: ignore[arg-type]
        if not _real(target_entropy):
            raise ValueError(f"target_entropy must be 'auto' (-dim(A)) or a finite number, got {model.target_entropy!r}")
        if not (_real(model.reward_shift)):
            raise ValueError(f"reward_shift must be a finite number (tutorial: 8.0), got {model.reward_shift!r}")
        if not (_real(model.reward_scale) and model.reward_scale != 0):
            raise ValueError(f"reward_scale must be a finite non-zero number (tutorial: 1/8), got {model.reward_scale!r}")
        for name, accepted in (("entropy_term", ENTROPY_TERMS), ("ent_coef_loss", ENT_COEF_LOSSES)):
            if getattr(model, name) not in accepted:
                raise ValueError(f"{name} must be one of {accepted} (tutorial: 'tutorial'), got {getattr(model, name)!r}")
        return StepSettings(
            float(tau), float(gamma), int(interval), float(target_entropy), float(model.reward_shift),
            float(model.reward_scale), str(model.entropy_term), str(model.ent_coef_loss), int(model.batch_size),
        )  # fmt: skip


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
        self.settings: StepSettings | None = None
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

    # ------------------------------------------------------------------------------------------ per train() call
    def read(self, model: TutorialSAC) -> StepSettings:
        """
        Read the model's settings and temperature (``log_ent_coef``, ``ent_coef_optimizer``, ``ent_coef_tensor``) as
        they are now: called at the start of every ``train()``.

        :return: the settings, also kept as :attr:`settings`
        """
        self.settings = StepSettings.from_model(model)
        self.log_ent_coef, self.ent_coef_optimizer = model.log_ent_coef, model.ent_coef_optimizer
        self.ent_coef_tensor = getattr(model, "ent_coef_tensor", None)
        return self.settings

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

    @staticmethod
    def restore(snapshot: dict[str, Any]) -> None:
        """Put back what :meth:`snapshot` copied, in place (the flat buffers stay where they are)."""
        with th.no_grad():
            for tensor, saved in snapshot["tensors"]:
                tensor.copy_(saved)
        for optimizer, states in snapshot["optimizers"]:
            optimizer.state.clear()
            optimizer.state.update(states)
