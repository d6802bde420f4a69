"""The non-finite guard of :class:`~sb3_tutorial_sac.TutorialSAC` (not in SB3; ``check_finite=True`` by default).

Two places, each called from the algorithm at one point:

* collection (``TutorialSAC._store_transition``): a NaN or an infinity in an observation or a reward stops
  ``learn()`` before the transition reaches the replay buffer (:func:`check_transition`, :func:`check_observation`);
  the model then starts its next ``learn()`` from a reset;
* training (``TutorialSAC.train``): inside the call's transaction on the training state
  (:meth:`~sb3_tutorial_sac.state.TrainingState.transaction`, which puts everything back when the call fails),
  :func:`check_training` raises when a per-step statistic or a tensor the call wrote is not finite, so that
  ``train()`` applies all its gradient steps or none.

These functions take the values they check, never the model.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.vec_env import VecNormalize

from sb3_tutorial_sac.state import TrainingState


class NonFiniteError(ValueError):
    """
    A NaN or an infinity reached TutorialSAC's data or training: an observation or a reward from the env (the
    transition was not stored), or a loss, a parameter or an optimiser state in ``train()`` (the model was
    restored to its state before that ``train()`` call). The message names the step and the quantity.
    """


def first_non_finite(value: np.ndarray | dict[str, np.ndarray]) -> tuple[str, int] | None:
    """
    Where a NaN or an infinity sits in a batched array (or dict of arrays) of floats, first index first.

    :return: ``(key, env index)`` (key ``""`` for an array), or ``None`` when everything is finite
    """
    items = value.items() if isinstance(value, dict) else (("", value),)
    for key, array in items:
        array = np.asarray(array)
        if array.dtype.kind in "fc" and not np.isfinite(array).all():
            bad = ~np.isfinite(array.reshape(len(array), -1) if array.ndim > 0 else array.reshape(1, 1))
            return key, int(np.flatnonzero(bad.any(axis=1))[0])
    return None


def _surely_finite(reward: Any, new_obs: Any) -> bool:
    """Whether the float arrays ``reward`` and ``new_obs`` are finite by their sums alone: a NaN or an infinity makes a
    sum non-finite, so finite sums need no element check. False (check each element) for anything else, and where a
    sum of finite values overflows."""
    return (
        type(reward) is np.ndarray
        and type(new_obs) is np.ndarray
        and reward.dtype.kind == new_obs.dtype.kind == "f"
        and math.isfinite(reward.sum())
        and math.isfinite(new_obs.sum())
    )


def _finite_by_sums(tensors: list[th.Tensor]) -> bool:
    """
    Whether every element of ``tensors`` is finite, by their sums alone (one host synchronisation): a NaN or an
    infinity makes a sum non-finite. False (then check each element: ``isfinite`` costs several times a sum) where a
    sum is not finite, a sum of finite values that overflows included.
    """
    with th.no_grad():
        sums = [t.sum() for t in tensors if t.is_floating_point()]
        return not sums or math.isfinite(th.stack(sums).sum().item())


def check_observation(
    obs: np.ndarray | dict[str, np.ndarray], what: str, num_timesteps: int, env_index: int | None = None
) -> None:
    """Raise :class:`NonFiniteError` if the batched observation ``obs`` holds a NaN or an infinity.

    :param num_timesteps: the model's env steps (named in the message)
    """
    bad = first_non_finite(obs)
    if bad is not None:
        key = bad[0]
        env_index = bad[1] if env_index is None else env_index
        name = f"{what}[{key!r}]" if key else what
        raise NonFiniteError(
            f"TutorialSAC: non-finite {name} of env {env_index} at env step {num_timesteps}; "
            "nothing was stored. The next learn() resets the env (check_finite=False turns this check off)."
        )


def check_transition(
    new_obs: np.ndarray | dict[str, np.ndarray],
    reward: np.ndarray,
    dones: np.ndarray,
    infos: list[dict[str, Any]],
    num_timesteps: int,
    vec_normalize: VecNormalize | None = None,
) -> None:
    """
    A NaN or inf observation or reward stops training before it reaches the replay buffer. Per env step, one sum of
    the reward and one of the next observation (:func:`_surely_finite`), the element checks only where a sum is not
    finite.

    :param num_timesteps: the model's env steps (named in the message)
    :param vec_normalize: the model's ``VecNormalize`` wrapper, if any: its un-normalised values are checked
    """
    if vec_normalize is not None:
        # check what is stored: the un-normalised values (VecNormalize would clip an inf away)
        reward, new_obs = vec_normalize.old_reward, vec_normalize.old_obs
    if not _surely_finite(reward, new_obs):
        bad = first_non_finite(reward)
        if bad is not None:
            raise NonFiniteError(
                f"TutorialSAC: non-finite reward {reward[bad[1]]} from env {bad[1]} at env step {num_timesteps}; "
                "the transition was not stored. The next learn() resets the env (check_finite=False turns this check "
                "off)."
            )
        check_observation(new_obs, "observation", num_timesteps)
    if dones.any():
        for i in np.flatnonzero(dones):
            terminal = infos[i].get("terminal_observation")
            if terminal is not None:
                batched: np.ndarray | dict[str, np.ndarray]
                if isinstance(terminal, dict):
                    batched = {key: np.asarray(value)[None] for key, value in terminal.items()}
                else:
                    batched = np.asarray(terminal)[None]
                check_observation(batched, "terminal observation", num_timesteps, env_index=int(i))


def check_training(
    state: TrainingState, values: np.ndarray, stat_names: list[str], n_updates: int, num_timesteps: int
) -> None:
    """
    Inside a ``train()`` call's :meth:`~sb3_tutorial_sac.state.TrainingState.transaction`: raise
    :class:`NonFiniteError` (the transaction then restores the state) if a per-step statistic of the call or a tensor
    it wrote (:meth:`~sb3_tutorial_sac.state.TrainingState.tensors`) is NaN or infinite; name the first bad gradient
    step and the quantity.

    :param values: the per-step statistics, ``[gradient_steps, len(stat_names)]``, on the host
    :param stat_names: their names
    :param n_updates: the model's gradient steps before this call
    :param num_timesteps: the model's env steps
    """
    finite_rows = np.isfinite(values).all(axis=1)
    tensors = state.tensors()
    if finite_rows.all() and _finite_by_sums(list(tensors.values())):
        return
    # one host synchronisation for all tensors
    finite_tensors = th.stack([th.isfinite(t).all() for t in tensors.values()]).cpu().numpy()
    if finite_rows.all() and finite_tensors.all():
        return
    gradient_steps = len(values)
    where = f"(env step {num_timesteps}, gradient steps {n_updates + 1} to {n_updates + gradient_steps})"
    if not finite_rows.all():
        row = int(np.flatnonzero(~finite_rows)[0])
        column = int(np.flatnonzero(~np.isfinite(values[row]))[0])
        what = (
            f"{stat_names[column]} = {values[row, column]} at gradient step {n_updates + row + 1} "
            f"(step {row + 1} of {gradient_steps} in this train() call, env step {num_timesteps})"
        )
    else:
        name = list(tensors)[int(np.flatnonzero(~finite_tensors)[0])]
        what = f"non-finite values in {name} after this train() call {where}"
    raise NonFiniteError(
        f"TutorialSAC.train(): {what}. The parameters, log_ent_coef and optimiser states were restored to "
        "their values before this train() call, so the model holds no non-finite value and can be saved or "
        "trained further. Look for extreme rewards or observations in the replay buffer, or too large learning "
        "rates (check_finite=False turns this check off)."
    )
