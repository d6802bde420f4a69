"""The proofs engines give before they are used: one probe batch, one gradient step of two engines from the same state,
one comparison of everything the step wrote."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch as th
from stable_baselines3.common.preprocessing import get_action_dim

from sb3_tutorial_sac.engines.base import UpdateEngine
from sb3_tutorial_sac.engines.step import STATISTICS, Minibatch
from sb3_tutorial_sac.state import TrainingState


def probe_batch(state: TrainingState, batch_size: int = 16) -> Minibatch:
    """
    A minibatch of random flat observations, actions in the env's units, rewards and discounts (a fifth of them 0),
    the same for every call (its own seeded generator), on the state's device.
    """
    generator = th.Generator().manual_seed(0)
    policy = state.policy
    obs_dim = policy.observation_space.shape[0]  # type: ignore[index]
    act_dim = get_action_dim(policy.action_space)
    device = state.actor_flat.flat.device

    def randn(*shape: int) -> th.Tensor:
        return th.randn(*shape, generator=generator).to(device)

    observations, next_observations = randn(batch_size, obs_dim), randn(batch_size, obs_dim)
    actions = policy.to_env_units((th.rand(batch_size, act_dim, generator=generator) * 2 - 1).to(device))
    rewards = randn(batch_size, 1)
    discounts = th.where(th.rand(batch_size, 1, generator=generator) < 0.2, 0.0, 0.99).float().to(device)
    return Minibatch(observations, actions, next_observations, rewards, discounts)


def differences(expected: dict[str, th.Tensor], mine: dict[str, th.Tensor], rtol: float = 0.0, atol: float = 0.0) -> list[str]:
    """What differs between two sets of named tensors: bit for bit where both tolerances are 0, else within them."""
    problems = []
    for name, value in expected.items():
        other = mine.get(name)
        if other is None or other.shape != value.shape:
            problems.append(f"{name}: shape {None if other is None else tuple(other.shape)} against {tuple(value.shape)}")
            continue
        same = th.equal(other, value) if rtol == atol == 0 else th.allclose(other, value, rtol=rtol, atol=atol, equal_nan=True)
        if not same:
            problems.append(f"{name}: largest difference {(other - value).abs().nan_to_num(float('inf')).max().item():.3g}")
    return problems


@contextmanager
def _learning_rates_zero(state: TrainingState) -> Iterator[None]:
    groups = [group for optimizer in state.optimizers.values() for group in optimizer.param_groups]
    rates = [group["lr"] for group in groups]
    for group in groups:
        group["lr"] = 0.0
    try:
        yield
    finally:
        for group, rate in zip(groups, rates):
            group["lr"] = rate


def one_step(engine: UpdateEngine, batch: Minibatch, learning_rates: bool) -> dict[str, th.Tensor]:
    """
    One gradient step of ``engine`` on ``batch`` from the state's current values with fresh optimiser states, torch's
    generator seeded with 0; the state is put back afterwards.

    :param learning_rates: step with the optimisers' learning rates; ``False``: with learning rates 0, so that the
        parameters stay and the Adam moments are the gradients (a comparison of forward passes and gradients)
    :return: the statistics and every tensor the step wrote (the state's
        :meth:`~sb3_tutorial_sac.state.TrainingState.tensors`), by name
    """
    state = engine.state
    snapshot = state.snapshot()
    n_stats = state.n_critics + len(STATISTICS)
    stats = th.zeros(n_stats, device=batch.actions.device)
    device = batch.actions.device
    try:
        with th.random.fork_rng(devices=[device] if device.type == "cuda" else []):
            for optimizer in state.optimizers.values():
                optimizer.state.clear()
            with _learning_rates_zero(state) if not learning_rates else _nothing():
                th.manual_seed(0)
                with engine.loop():
                    engine.step(batch._replace(observations=engine.observations(batch.observations)), stats, soft_update=True)
        tensors = {name: tensor.detach().clone() for name, tensor in state.tensors().items()}
    finally:
        TrainingState.restore(snapshot)
    # the statistics first: they name the part of the step that differs
    names = [f"critic loss {i + 1}" for i in range(state.n_critics)] + list(STATISTICS)
    return {**{name: stats[i] for i, name in enumerate(names)}, **tensors}


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def engine_difference(
    engine: UpdateEngine, oracle: UpdateEngine, rtol: float = 0.0, atol: float = 0.0, learning_rates: bool = True
) -> str | None:
    """
    One gradient step of ``engine`` and of ``oracle`` on the probe batch, from the same state, compared.

    :return: what differs (``"; "``-joined, at most four), or None when everything agrees
    """
    batch = probe_batch(engine.state)
    expected = one_step(oracle, batch, learning_rates)
    mine = one_step(engine, batch, learning_rates)
    problems = differences(expected, mine, rtol, atol)
    return "; ".join(problems[:4]) if problems else None
