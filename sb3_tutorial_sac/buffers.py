"""Minibatches drawn as the tutorial draws them: ``random.sample(datas, 64)``, distinct transitions.

SB3's ``ReplayBuffer.sample`` draws a minibatch's indices with replacement, so a transition may appear twice in
one minibatch. :func:`sample_minibatches` draws the minibatches of one ``train()`` call at once, each one
without replacement (the tutorial's rule), or SB3's way with ``replacement=True``. It gathers from SB3's
``ReplayBuffer``, ``DictReplayBuffer`` and ``NStepReplayBuffer`` (n-step returns, with the sums of discounts that
the tutorial's per-step reward normalisation needs: :class:`NStepReplayBufferSamples`).
"""

from typing import NamedTuple

import numpy as np
import torch as th
from stable_baselines3.common.buffers import DictReplayBuffer, NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize
from gymnasium import spaces

from sb3_tutorial_sac import validation


class NStepReplayBufferSamples(NamedTuple):
    """
    SB3's ``ReplayBufferSamples`` of an ``NStepReplayBuffer`` (the same fields, the same values), and one more column.

    For a transition whose n-step return sums ``m`` steps (``m <= n_steps``: fewer when the episode ends, or the
    stored data does, inside the window): ``rewards`` is ``sum_{k<m} gamma^k r_k``, ``discounts`` is ``gamma^m``,
    ``dones`` whether step ``m`` terminated, ``next_observations`` the observation after step ``m`` (SB3's), and
    ``discount_sums`` is ``sum_{k<m} gamma^k``: the n-step return of a reward of 1 at every step, computed as the
    buffer computes ``rewards``. ``TutorialSAC.train`` normalises the return with it, per step as the tutorial
    normalises each reward: ``sum_k gamma^k (r_k + shift) * scale = (rewards + shift * discount_sums) * scale``.
    """

    observations: th.Tensor
    actions: th.Tensor
    next_observations: th.Tensor
    dones: th.Tensor
    rewards: th.Tensor
    discounts: th.Tensor
    discount_sums: th.Tensor


def sample_minibatches(
    replay_buffer: ReplayBuffer,
    n_batches: int,
    batch_size: int,
    env: VecNormalize | None = None,
    replacement: bool = False,
) -> ReplayBufferSamples | DictReplayBufferSamples:
    """
    Draw ``n_batches`` minibatches of ``batch_size`` transitions in one call; rows
    ``[i * batch_size, (i + 1) * batch_size)`` of every tensor are minibatch ``i``.

    Tutorial rule: each minibatch is ``random.sample(datas, 64)``, ``batch_size`` *distinct* transitions, uniform
    over the stored ones; different minibatches are independent draws (a transition may appear in several).
    A transition is a (buffer position, env index) pair: with ``n_envs > 1`` each position holds ``n_envs``.
    The valid positions are SB3's: ``[0, size())``, except that with ``optimize_memory_usage=True`` and a full
    buffer the position ``pos`` is left out (its next observation has been overwritten).

    How (rejection): each minibatch's ``batch_size`` flat indices (position and env index in one integer) are
    drawn uniformly with replacement; then, while a minibatch repeats an index, every repeated entry but its first
    occurrence (in row order) is drawn again, vectorised over all entries and minibatches that need it. With a
    full buffer of 100,000 and batch 64, about 2% of minibatches repeat an index and one redraw settles them.
    Why the result is uniform over subsets: which entries are drawn again depends only on which entries are
    equal, never on their values, and every draw is uniform; so relabelling the transitions by any permutation
    leaves the law of the result unchanged. A law over sequences of ``batch_size`` distinct transitions that
    every relabelling leaves unchanged is uniform (a relabelling maps any such sequence onto any other), so every
    subset is equally likely, in a uniformly random order, as ``random.sample`` gives. Minibatches are
    independent: each row's redraws depend only on that row.

    When fewer than ``4 * batch_size`` transitions are stored (the tutorial's first ``train()``: 200 for 64),
    rejection needs more rounds; each minibatch is then the first ``batch_size`` of a uniform random permutation
    of the stored transitions (argsort of uniform keys, at most 4x the size of the output), uniform too.
    All draws use NumPy's global generator, as SB3's buffers do, so ``set_random_seed`` reproduces them.

    :param replay_buffer: SB3's ``ReplayBuffer``, ``DictReplayBuffer`` or ``NStepReplayBuffer`` (or a subclass that
        overrides neither ``sample`` nor ``_get_samples``); any buffer with ``replacement=True``
    :param n_batches: number of minibatches (gradient steps)
    :param batch_size: transitions per minibatch (tutorial: 64)
    :param env: the ``VecNormalize`` wrapper to normalise observations and rewards with, as in SB3's ``sample``
    :param replacement: ``True``: SB3's draw, exactly ``replay_buffer.sample(n_batches * batch_size, env)`` (the same
        random numbers; from an ``NStepReplayBuffer``, the same values and one more column); ``False``: the
        tutorial's, no transition twice within a minibatch
    :return: SB3's replay samples with ``n_batches * batch_size`` rows; from an ``NStepReplayBuffer``,
        :class:`NStepReplayBufferSamples` (SB3's n-step samples and ``discount_sums``)
    :raises ValueError: without replacement, for a buffer class this function cannot gather from, or when fewer
        transitions are stored than a minibatch needs
    """
    n_step = _is_n_step(replay_buffer)
    if replacement and n_step:
        # SB3's draw, the same random numbers: BaseBuffer.sample's positions, then NStepReplayBuffer._get_samples's
        # env indices (NStepReplayBuffer refuses optimize_memory_usage)
        upper_bound = replay_buffer.buffer_size if replay_buffer.full else replay_buffer.pos
        batch_inds = np.random.randint(0, upper_bound, size=n_batches * batch_size)
        env_indices = np.random.randint(0, replay_buffer.n_envs, size=batch_inds.shape)
        return _gather_n_step(replay_buffer, batch_inds, env_indices, env)  # type: ignore[arg-type,return-value]
    if replacement:
        return replay_buffer.sample(n_batches * batch_size, env=env)
    problem = distinct_sampling_problem(replay_buffer)
    if problem is not None:
        raise ValueError(problem)
    # Valid positions, as SB3's ReplayBuffer.sample: with optimize_memory_usage and a full buffer it draws
    # (randint(1, buffer_size) + pos) % buffer_size, i.e. every position but pos; else randint(0, size())
    skip_pos = replay_buffer.optimize_memory_usage and replay_buffer.full
    n_envs = replay_buffer.n_envs
    n_stored = stored_transitions(replay_buffer)
    if n_stored < batch_size:
        raise ValueError(
            f"The replay buffer holds {n_stored} transitions and a minibatch needs {batch_size} distinct ones "
            "(the tutorial's random.sample); collect more before training (learning_starts) or pass "
            "replacement=True (SB3's drawing, with replacement)"
        )
    flat = _distinct_rows(n_stored, n_batches, batch_size).reshape(-1)
    offsets, env_indices = np.divmod(flat, n_envs)
    batch_inds = (offsets + replay_buffer.pos + 1) % replay_buffer.buffer_size if skip_pos else offsets
    if n_step:
        return _gather_n_step(replay_buffer, batch_inds, env_indices, env)  # type: ignore[arg-type,return-value]
    return _gather(replay_buffer, batch_inds, env_indices, env)


def distinct_sampling_problem(replay_buffer: ReplayBuffer) -> str | None:
    """Why :func:`sample_minibatches` cannot draw from ``replay_buffer`` without replacement (None: it can)."""
    buffer_class = type(replay_buffer)
    if any(
        isinstance(replay_buffer, base)
        and buffer_class.sample is base.sample
        and buffer_class._get_samples is base._get_samples
        for base in (ReplayBuffer, DictReplayBuffer, NStepReplayBuffer)
    ):
        return None
    return (
        f"Sampling without replacement (the tutorial's random.sample) supports SB3's ReplayBuffer, "
        f"DictReplayBuffer and NStepReplayBuffer, not {buffer_class.__name__}, which draws its own samples: pass "
        "replacement=True (TutorialSAC: sample_with_replacement=True) to use the buffer's own (SB3's) drawing"
    )


def _is_n_step(replay_buffer: ReplayBuffer) -> bool:
    """Whether ``replay_buffer`` is an ``NStepReplayBuffer`` whose samples :func:`_gather_n_step` gathers."""
    buffer_class = type(replay_buffer)
    return (
        isinstance(replay_buffer, NStepReplayBuffer)
        and buffer_class.sample is NStepReplayBuffer.sample
        and buffer_class._get_samples is NStepReplayBuffer._get_samples
    )


def stored_transitions(replay_buffer: ReplayBuffer) -> int:
    """How many distinct transitions a minibatch can be drawn from (SB3's valid positions times ``n_envs``)."""
    skip_pos = replay_buffer.optimize_memory_usage and replay_buffer.full
    return (replay_buffer.size() - int(skip_pos)) * replay_buffer.n_envs


def _distinct_rows(n: int, n_rows: int, k: int) -> np.ndarray:
    """``[n_rows, k]`` integers in ``[0, n)``, each row ``k`` distinct ones uniformly (see :func:`sample_minibatches`)."""
    if n < 4 * k:
        # Few stored transitions: a random permutation of all n per row, cut to k (n < 4k: at most 4x the output)
        return np.argsort(np.random.random_sample((n_rows, n)), axis=1)[:, :k]
    rows = np.random.randint(0, n, size=(n_rows, k), dtype=np.int64)
    todo = np.arange(n_rows)  # rows that may hold a repeat
    while todo.size:
        # one sort per row by value, equal values in column order: value * k + column
        values, columns = np.divmod(np.sort(rows[todo] * k + np.arange(k), axis=1), k)
        # a sorted entry equal to the one before repeats an earlier column's: draw it again (the first is kept)
        row, i = np.nonzero(values[:, 1:] == values[:, :-1])
        rows[todo[row], columns[row, i + 1]] = np.random.randint(0, n, size=row.size, dtype=np.int64)
        todo = np.unique(todo[row])
    return rows


def _take_rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """
    ``array[batch_inds, env_indices]`` of a buffer array ``[buffer_size, n_envs, ...]`` as a new array, given the
    flat indices ``rows = batch_inds * n_envs + env_indices``: the same values, gathered by ``take`` along the
    flattened first two dimensions (a view of SB3's contiguous storage), measured faster than NumPy's indexing by two
    index arrays (the changelog's benchmark record, the gather of train()).
    """
    return array.reshape(-1, *array.shape[2:]).take(rows, axis=0)


def _gather(
    replay_buffer: ReplayBuffer, batch_inds: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None
) -> ReplayBufferSamples | DictReplayBufferSamples:
    """
    SB3's ``ReplayBuffer._get_samples`` / ``DictReplayBuffer._get_samples`` (stable_baselines3/common/buffers.py),
    line for line after their first line, with the given env indices instead of the ones they draw
    (``env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))``); every
    ``array[batch_inds, env_indices]`` taken as :func:`_take_rows` (the same values).
    """
    rb = replay_buffer
    rows = batch_inds * rb.n_envs + env_indices
    if isinstance(rb, DictReplayBuffer):
        # DictReplayBuffer._get_samples
        obs_ = rb._normalize_obs({key: _take_rows(obs, rows) for key, obs in rb.observations.items()}, env)
        next_obs_ = rb._normalize_obs({key: _take_rows(obs, rows) for key, obs in rb.next_observations.items()}, env)
        assert isinstance(obs_, dict) and isinstance(next_obs_, dict)
        return DictReplayBufferSamples(
            observations={key: rb.to_torch(obs) for key, obs in obs_.items()},
            actions=rb.to_torch(_take_rows(rb.actions, rows)),
            next_observations={key: rb.to_torch(obs) for key, obs in next_obs_.items()},
            # Only use dones that are not due to timeouts
            dones=rb.to_torch(_take_rows(rb.dones, rows) * (1 - _take_rows(rb.timeouts, rows))).reshape(-1, 1),
            rewards=rb.to_torch(rb._normalize_reward(_take_rows(rb.rewards, rows).reshape(-1, 1), env)),
        )
    # ReplayBuffer._get_samples
    if rb.optimize_memory_usage:
        next_rows = (batch_inds + 1) % rb.buffer_size * rb.n_envs + env_indices
        next_obs = rb._normalize_obs(_take_rows(rb.observations, next_rows), env)
    else:
        next_obs = rb._normalize_obs(_take_rows(rb.next_observations, rows), env)
    data = (
        rb._normalize_obs(_take_rows(rb.observations, rows), env),
        _take_rows(rb.actions, rows),
        next_obs,
        # Only use dones that are not due to timeouts
        (_take_rows(rb.dones, rows) * (1 - _take_rows(rb.timeouts, rows))).reshape(-1, 1),
        rb._normalize_reward(_take_rows(rb.rewards, rows).reshape(-1, 1), env),
    )
    # to_torch without its copy: every array here is a new one (take copies; VecNormalize returns new arrays), shared
    # with nothing else, so the tensors take its memory (SB3's default copies it once more)
    return ReplayBufferSamples(*(rb.to_torch(array, copy=False) for array in data))  # type: ignore[arg-type]


def _gather_n_step(
    rb: NStepReplayBuffer, batch_inds: np.ndarray, env_indices: np.ndarray, env: VecNormalize | None
) -> NStepReplayBufferSamples:
    """
    SB3's ``NStepReplayBuffer._get_samples`` (stable_baselines3/common/buffers.py, SB3 2.9), line for line after its
    first line, with the given env indices instead of the ones it draws, and one more column, ``discount_sums``
    (see :class:`NStepReplayBufferSamples`), computed as ``rewards`` is with a reward of 1 at every step.
    """
    # Note: the self.pos index is dangerous (will overlap two different episodes when buffer is full)
    # so we set self.pos-1 to truncated=True (temporarily) if done=False and truncated=False
    last_valid_index = rb.pos - 1
    original_timeout_values = rb.timeouts[last_valid_index].copy()
    rb.timeouts[last_valid_index] = np.logical_or(original_timeout_values, np.logical_not(rb.dones[last_valid_index]))
    try:
        # Compute n-step indices with wrap-around
        steps = np.arange(rb.n_steps).reshape(1, -1)  # shape: [1, n_steps]
        indices = (batch_inds[:, None] + steps) % rb.buffer_size  # shape: [batch, n_steps]

        # Retrieve sequences of transitions
        rewards_seq = rb._normalize_reward(rb.rewards[indices, env_indices[:, None]], env)  # [batch, n_steps]
        dones_seq = rb.dones[indices, env_indices[:, None]]  # [batch, n_steps]
        truncated_seq = rb.timeouts[indices, env_indices[:, None]]  # [batch, n_steps]

        # Compute masks: 1 until first done/truncation (inclusive)
        done_or_truncated = np.logical_or(dones_seq, truncated_seq)
        done_idx = done_or_truncated.argmax(axis=1)
        # If no done/truncation, keep full sequence
        has_done_or_truncated = done_or_truncated.any(axis=1)
        done_idx = np.where(has_done_or_truncated, done_idx, rb.n_steps - 1)

        mask = np.arange(rb.n_steps).reshape(1, -1) <= done_idx[:, None]  # shape: [batch, n_steps]
        # Compute discount factors for bootstrapping (using target Q-Value)
        # It is gamma ** n_steps by default but should be adjusted in case of early termination/truncation.
        target_q_discounts = rb.gamma ** mask.sum(axis=1, keepdims=True).astype(np.float32)  # [batch, 1]

        # Apply discount
        discounts = rb.gamma ** np.arange(rb.n_steps, dtype=np.float32).reshape(1, -1)  # [1, n_steps]
        discounted_rewards = rewards_seq * discounts * mask
        n_step_returns = discounted_rewards.sum(axis=1, keepdims=True)  # [batch, 1]
        # Not in SB3: sum_{k<m} gamma^k, the same sum with a reward of 1 at every step
        discount_sums = (discounts * mask).sum(axis=1, keepdims=True)  # [batch, 1]

        # Compute indices of next_obs/done at the final point of the n-step transition
        last_indices = (batch_inds + done_idx) % rb.buffer_size
        next_obs = rb._normalize_obs(rb.next_observations[last_indices, env_indices], env)
        next_dones = rb.dones[last_indices, env_indices][:, None].astype(np.float32)
        next_timeouts = rb.timeouts[last_indices, env_indices][:, None].astype(np.float32)
        final_dones = next_dones * (1.0 - next_timeouts)
    finally:
        # Revert back tmp changes to avoid sampling across episodes
        rb.timeouts[last_valid_index] = original_timeout_values

    # Gather observations and actions
    obs = rb._normalize_obs(rb.observations[batch_inds, env_indices], env)
    actions = rb.actions[batch_inds, env_indices]

    return NStepReplayBufferSamples(
        observations=rb.to_torch(obs),  # type: ignore[arg-type]
        actions=rb.to_torch(actions),
        next_observations=rb.to_torch(next_obs),  # type: ignore[arg-type]
        dones=rb.to_torch(final_dones),
        rewards=rb.to_torch(n_step_returns),
        discounts=rb.to_torch(target_q_discounts),
        discount_sums=rb.to_torch(discount_sums),
    )


def rewards_and_discounts(
    replay_data: ReplayBufferSamples | DictReplayBufferSamples, shift: float, scale: float, gamma: float, buffer_name: str
) -> tuple[th.Tensor, th.Tensor]:
    """
    The normalised rewards ``r'`` and the discounts of the target ``y = r' + discounts * (min Q_targ + alpha H)``.

    Tutorial rule: rewards are normalised at sample time, ``r' = (r + shift) * scale`` (the tutorial's ``(r + 8) / 8``);
    the buffer holds raw rewards.

    :param replay_data: minibatches drawn from the replay buffer (:func:`sample_minibatches`)
    :param shift: ``reward_shift``
    :param scale: ``reward_scale``
    :param gamma: the discount factor (one-step samples; n-step samples carry their own discounts)
    :param buffer_name: the replay buffer's class name (for the error)
    :return: rewards and discounts, ``[rows, 1]`` each
    """
    if replay_data.discounts is None:
        rewards = (replay_data.rewards + shift) * scale
        # gamma * (1 - over): 0.99 or exactly 0, so the target rounds exactly as the tutorial's
        return rewards, (1 - replay_data.dones) * gamma
    # n-step returns (SB3's NStepReplayBuffer, as SB3's SAC): the rewards are sum_{k<m} gamma^k r_k over the m <= n_steps
    # steps taken, the discounts gamma^m. Tutorial rule, per env step: every reward the return sums is normalised,
    # sum_k gamma^k (r_k + shift) * scale, computed as (sum_k gamma^k r_k + shift * sum_k gamma^k) * scale (the same
    # sum; for m = 1 the one-step formula's own rounding)
    discount_sums = getattr(replay_data, "discount_sums", None)
    if discount_sums is None:
        if shift != 0:
            raise ValueError(
                f"{buffer_name} gives n-step discounts but not the sums of discounts "
                "(sb3_tutorial_sac.buffers.NStepReplayBufferSamples) that reward_shift needs, to shift every reward "
                "the n-step return sums: use SB3's NStepReplayBuffer, or reward_shift=0"
            )
        discount_sums = th.zeros_like(replay_data.rewards)
    rewards = (replay_data.rewards + shift * discount_sums) * scale
    return rewards, (1 - replay_data.dones) * replay_data.discounts


def chunk_steps(
    gradient_steps: int,
    batch_size: int,
    target_update_interval: int,
    observation_space: spaces.Space,
    action_space: spaces.Space,
) -> int:
    """How many gradient steps' minibatches ``train()`` draws at once: all of them where they take at most
    ``validation.MAX_MINIBATCH_BYTES``, else as many whole periods of ``target_update_interval`` as fit (at least one),
    so that each chunk's soft updates fall where the whole call's would."""
    row = validation.replay_buffer_bytes(1, observation_space, action_space, False)
    fit = max(1, validation.MAX_MINIBATCH_BYTES // max(1, row * batch_size))
    if fit >= gradient_steps:
        return gradient_steps
    return max(target_update_interval, fit - fit % target_update_interval)
