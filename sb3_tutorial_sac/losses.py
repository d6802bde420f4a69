"""The tutorial's loss formulas (``docs/variant.md``), written once for every engine and the written-out backward passes."""

import torch as th


def tutorial_target(
    rewards: th.Tensor, discounts: th.Tensor, next_q: th.Tensor, ent_coef: th.Tensor, next_entropy: th.Tensor
) -> th.Tensor:
    """Tutorial rule: ``y = r' + 0.99 * (1 - over) * (min Q_targ + alpha * H(s'))``, ``H`` the tutorial's term."""
    return rewards + discounts * (next_q + ent_coef * next_entropy)


def actor_loss(ent_coef: th.Tensor, entropy: th.Tensor, min_q: th.Tensor) -> th.Tensor:
    """Tutorial rule: the actor loss ``mean(-alpha * H(s) - min(Q1, Q2)(s, a))`` (SB3's, with its own log-prob)."""
    return (-ent_coef * entropy - min_q).mean()


def temperature_loss(
    entropy: th.Tensor, log_ent_coef: th.Tensor, target_entropy: float | th.Tensor, form: str, alpha: th.Tensor | None = None
) -> th.Tensor:
    """
    The temperature loss.

    :param entropy: ``H`` of the actor step (no gradient), ``[batch, 1]``
    :param log_ent_coef: log-alpha
    :param target_entropy: the target entropy (tutorial: -1, i.e. ``-dim(A)``)
    :param form: ``"tutorial"`` or ``"sb3"``
    :param alpha: ``exp(log_alpha)`` if already at hand without gradient (the written-out backward pass)
    """
    excess = entropy - target_entropy
    if form == "tutorial":
        # Tutorial rule: mean((H + 1) * exp(log_alpha)), the gradient scaled by alpha
        return (excess * (log_ent_coef.exp() if alpha is None else alpha)).mean()
    # SB3: -mean(log_alpha * (log_prob + target_entropy)), with log_prob = -H
    return (log_ent_coef * excess).mean()
