"""The reference engine: the tutorial's step with the modules' own forward passes, autograd and torch's ``Adam.step()``.

What the notebook does, for every network ``TutorialSACPolicy`` can hold (images, dicts, any features extractor,
BatchNorm, any number of critics), and the oracle the other engines are proven against.
"""

from __future__ import annotations

from functools import reduce
from typing import ClassVar

import torch as th
from torch.nn import functional as F

from sb3_tutorial_sac import losses
from sb3_tutorial_sac.engines.base import UpdateEngine
from sb3_tutorial_sac.engines.step import Minibatch
from sb3_tutorial_sac.policies import sample_action_entropy
from sb3_tutorial_sac.state import TrainingState


class ReferenceEngine(UpdateEngine):
    """
    The tutorial's step (``docs/variant.md``, "One gradient step") through the modules, autograd and torch's Adam.

    :param state: the training state it steps
    """

    name = "reference"
    description: ClassVar[str] = "the reference engine (the same update through autograd; slower)"

    def __init__(self, state: TrainingState):
        super().__init__(state)
        self.actor_dist_params = state.actor.get_action_dist_params
        self.q_values = state.critic
        self.target_q_values = state.critic_target
        self.actor_params = list(state.actor.parameters())
        self._no_ent_coef_loss = th.zeros((), device=state.actor_flat.flat.device)

    def step(self, batch: Minibatch, stats: th.Tensor, soft_update: bool) -> None:
        state, settings = self.state, self.settings
        obs, to_env_units = batch.observations, state.policy.to_env_units
        # Tutorial rule: alpha as it was before this step, in the target and in the actor loss
        ent_coef = state.alpha

        # 1. Target, computed once. Tutorial rule: noise draw 1 of 2 is for s' (shape [batch, act])
        with th.no_grad():
            next_obs = batch.next_observations
            next_actions, next_entropy = sample_action_entropy(*self.actor_dist_params(next_obs), settings.entropy_term)  # type: ignore[arg-type]
            # Tutorial rule: the critics see actions in the env's units (a * 2 on Pendulum)
            next_q = reduce(th.minimum, self.target_q_values(next_obs, to_env_units(next_actions)))
            target_q = losses.tutorial_target(batch.rewards, batch.discounts, next_q, ent_coef, next_entropy)

        # 2. Critic steps. Tutorial rule: each critic has its own MSE loss and its own Adam (lr 3e-3); the parameter
        # groups of critic.optimizer are those two Adams (SB3: one Adam on 0.5 * (mse_1 + mse_2)). Summing the losses
        # before backward leaves each critic's gradient its own (and a trainable features extractor of the critics
        # learns from both, as SB3's)
        critic_losses = [F.mse_loss(current_q, target_q) for current_q in self.q_values(obs, batch.actions)]
        state.critic_flat.zero_grad()
        reduce(th.add, critic_losses).backward()
        state.critic.optimizer.step()

        # 3. Actor step, with the UPDATED critics (the tutorial's order; SB3's too).
        # Tutorial rule: noise draw 2 of 2 is for s; loss = mean(-alpha * H(s) - min Q(s, a))
        actions_pi, entropy = sample_action_entropy(*self.actor_dist_params(obs), settings.entropy_term)  # type: ignore[arg-type]
        min_qf_pi = reduce(th.minimum, self.q_values(obs, to_env_units(actions_pi)))
        actor_loss = losses.actor_loss(ent_coef, entropy, min_qf_pi)
        state.actor_flat.zero_grad()
        # Gradients for the actor only: the tutorial's backward also fills the critics' and alpha's .grad, which their
        # next zero_grad() discards before use
        actor_loss.backward(inputs=self.actor_params)
        state.actor.optimizer.step()
        entropy = entropy.detach()

        # 4. Temperature step, on H(s) of step 3 (computed before the actor's step).
        # Tutorial rule: alpha stepped last (SB3: first, before the critics)
        if state.ent_coef_optimizer is not None:
            log_ent_coef = state.log_ent_coef
            assert log_ent_coef is not None
            ent_coef_loss = losses.temperature_loss(entropy, log_ent_coef, settings.target_entropy, settings.ent_coef_loss)
            log_ent_coef.grad = None  # what zero_grad() does
            ent_coef_loss.backward()
            state.ent_coef_optimizer.step()
        else:
            ent_coef_loss = self._no_ent_coef_loss

        # 5. Soft update of both target critics (and, as SB3's SAC, their batch-norm statistics)
        if soft_update:
            state.soft_update(settings.tau)

        with th.no_grad():
            th.stack([*critic_losses, actor_loss, ent_coef_loss, entropy.mean(), ent_coef.reshape(())], out=stats)
