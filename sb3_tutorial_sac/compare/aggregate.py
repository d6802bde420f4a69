"""Across tasks (rliable's aggregate metrics): scores normalised per task by fixed, sourced scores (the uniform
random policy = 0, a published reference score = 1: ``TASK_SCORES``, never the sample's own mean), the IQM of the
normalised scores with every task weighted equally and a stratified bootstrap interval, the performance profile
(fraction of runs above each normalised score, tasks weighted equally) with stratified-bootstrap bands, and the
probability of improvement averaged over tasks, with its interval."""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Mapping, Sequence

import gymnasium as gym
import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sb3_tutorial_sac.compare.stats import bootstrap_ci, probability_of_improvement


@dataclasses.dataclass(frozen=True)
class TaskScores:
    """The fixed scores that normalise one task: 0 = ``random``, 1 = ``reference``, each with its source."""

    random: float
    random_source: str
    reference: float
    reference_source: str

    @property
    def span(self) -> float:
        return self.reference - self.random


_RANDOM_SOURCE = "uniform random policy, mean return of 100 episodes, seeds 0-99 (`aggregate.random_score`, run here)"
# rl-zoo3's benchmark.md (DLR-RM/rl-baselines3-zoo, commit 0088472), SAC's mean reward of its trained agent
# (deterministic policy); the nearest version of the task where the table has no entry for ours
_ZOO = "rl-zoo3 benchmark.md, SAC"
TASK_SCORES: dict[str, TaskScores] = {
    "Pendulum-v1": TaskScores(-1207.555222701356, _RANDOM_SOURCE, -156.995, f"{_ZOO}, Pendulum-v1, 20k steps"),
    "LunarLanderContinuous-v3": TaskScores(
        -212.6757661039201, _RANDOM_SOURCE, 260.390, f"{_ZOO}, LunarLanderContinuous-v2, 500k steps"
    ),
    "HalfCheetah-v5": TaskScores(-274.8601040362532, _RANDOM_SOURCE, 9535.451, f"{_ZOO}, HalfCheetah-v3, 1M steps"),
    "Hopper-v5": TaskScores(16.66883949956298, _RANDOM_SOURCE, 2325.547, f"{_ZOO}, Hopper-v3, 1M steps"),
}
# The normalised scores at which the performance profile is drawn
PROFILE_TAUS = np.linspace(-0.5, 1.5, 81)


def random_score(env_id: str, episodes: int = 100, seed: int = 0) -> float:
    """Mean return of the uniform random policy: episode ``i`` reset with seed ``seed + i``, actions sampled from
    the action space seeded with ``seed``.

    :param env_id: Gymnasium environment id
    :param episodes: episodes averaged
    :param seed: first reset seed and the action space's seed
    """
    env = gym.make(env_id)
    env.action_space.seed(seed)
    returns = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        done, total = False, 0.0
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def normalise(scores: Mapping[str, Mapping[str, npt.ArrayLike]]) -> dict[str, dict[str, np.ndarray]]:
    """Scores of each task mapped by ``TASK_SCORES``: the random policy's mean return is 0, the reference score 1.

    :param scores: per task, per algorithm, the runs' scores (one mode)
    :return: the same layout, normalised
    """
    normalised = {}
    for env, per_algorithm in scores.items():
        if env not in TASK_SCORES:
            raise ValueError(f"scores: no random and reference scores for {env}; known: {sorted(TASK_SCORES)}")
        task = TASK_SCORES[env]
        normalised[env] = {a: (np.asarray(v, dtype=float) - task.random) / task.span for a, v in per_algorithm.items()}
    return normalised


def weighted_iqm(per_task: Sequence[npt.ArrayLike], axis: int = 0) -> npt.NDArray[np.float64]:
    """IQM of the runs of every task together, each task weighted equally (each run of a task with ``n`` runs weighs
    ``1 / n``): the weighted mean of the runs between the 25% and 75% points of the total weight, the runs on
    either boundary counted by the part of their weight inside. With the same number of runs per task, divisible by
    4, it is rliable's ``aggregate_iqm`` (``scipy.stats.trim_mean(all runs, 0.25)``). A bootstrap statistic when each
    task's runs lie along ``axis``."""
    arrays = [np.moveaxis(np.asarray(t, dtype=float), axis, -1) for t in per_task]
    values = np.concatenate(arrays, axis=-1)
    weights = np.concatenate([np.full(a.shape[-1], 1.0 / a.shape[-1]) for a in arrays]) / len(arrays)
    order = np.argsort(values, axis=-1, kind="stable")
    sorted_values = np.take_along_axis(values, order, axis=-1)
    sorted_weights = weights[order]
    upper = np.cumsum(sorted_weights, axis=-1)
    lower = upper - sorted_weights
    inside = np.clip(np.minimum(upper, 0.75) - np.maximum(lower, 0.25), 0.0, None)
    return np.asarray((sorted_values * inside).sum(axis=-1) / 0.5)


def _common_algorithms(normalised: Mapping[str, Mapping[str, np.ndarray]]) -> list[str]:
    tasks = list(normalised.values())
    return [a for a in tasks[0] if all(a in task for task in tasks[1:])]


def aggregate(normalised: Mapping[str, Mapping[str, np.ndarray]]) -> tuple[list[dict], list[dict]]:
    """The aggregate metrics of the algorithms that every task has.

    :return: ``(rows, pairs)``: per algorithm ``{"algorithm", "runs", "iqm", "ci"}`` (``runs``: its number of runs on
        each task, in the tasks' order; IQM of the normalised scores
        of all runs, tasks weighted equally: ``weighted_iqm``; stratified bootstrap over runs within each task); per
        pair of algorithms ``{"x", "y", "p", "ci"}``: the mean over tasks of P(X > Y), stratified bootstrap
    """
    algorithms = _common_algorithms(normalised)
    rows = []
    for algorithm in algorithms:
        per_task = [normalised[env][algorithm] for env in normalised]
        low, high = bootstrap_ci(lambda *tasks, axis: weighted_iqm(tasks, axis=axis), *per_task)
        rows.append({"algorithm": algorithm, "runs": [len(t) for t in per_task], "iqm": float(weighted_iqm(per_task)),
                     "ci": (float(low), float(high))})  # fmt: skip
    pairs = []
    for i, x in enumerate(algorithms):
        for y in algorithms[i + 1 :]:
            samples = [s for env in normalised for s in (normalised[env][x], normalised[env][y])]

            def mean_p(*resampled: np.ndarray, axis: int) -> np.ndarray:
                return np.mean(
                    [probability_of_improvement(a, b, axis=axis) for a, b in zip(resampled[::2], resampled[1::2])], axis=0
                )

            low, high = bootstrap_ci(mean_p, *samples, axis=-1)
            p = float(np.mean([probability_of_improvement(normalised[env][x], normalised[env][y]) for env in normalised]))
            pairs.append({"x": x, "y": y, "p": p, "ci": (float(low), float(high))})
    return rows, pairs


def performance_profile(per_task: Sequence[npt.ArrayLike], taus: npt.ArrayLike = PROFILE_TAUS, axis: int = 0) -> np.ndarray:
    """Fraction of runs whose normalised score exceeds each ``tau``, the mean over tasks of each task's fraction
    (rliable's score distribution, tasks weighted equally); a bootstrap statistic when runs lie along ``axis``."""
    taus = np.asarray(taus)
    return np.mean([(np.asarray(t, dtype=float)[..., None] > taus).mean(axis=axis) for t in per_task], axis=0)


def plot_profile(normalised: Mapping[str, Mapping[str, np.ndarray]], path: pathlib.Path, title: str) -> None:
    """The performance profile of each algorithm that every task has, with a 95% stratified bootstrap band."""
    figure = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    for i, algorithm in enumerate(_common_algorithms(normalised)):
        per_task = [normalised[env][algorithm] for env in normalised]

        def profile(*tasks: np.ndarray, axis: int) -> np.ndarray:
            return performance_profile(tasks, axis=axis)

        low, high = bootstrap_ci(profile, *per_task, reps=5_000)
        ax.plot(PROFILE_TAUS, performance_profile(per_task), color=f"C{i}", label=algorithm)
        ax.fill_between(PROFILE_TAUS, low, high, color=f"C{i}", alpha=0.2)
    ax.set_xlabel("normalised score tau (random policy = 0, reference score = 1)")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def aggregate_markdown(normalised: Mapping[str, Mapping[str, np.ndarray]], mode: str) -> str:
    """The aggregate section's tables (``aggregate``) in markdown."""
    rows, pairs = aggregate(normalised)
    sources = "; ".join(
        f"{env}: random {TASK_SCORES[env].random:.1f} ({TASK_SCORES[env].random_source}), reference "
        f"{TASK_SCORES[env].reference:.1f} ({TASK_SCORES[env].reference_source})"
        for env in normalised
    )
    lines = [
        f"Tasks: {', '.join(normalised)}, weighted equally; {mode} policy; normalised score = (score - random) / "
        f"(reference - random), from fixed scores: {sources}.",
        "",
        "| algorithm | runs: all tasks (per task) | IQM of normalised scores [95% CI] |",
        "|---|---:|---:|",
        *[
            f"| {r['algorithm']} | {sum(r['runs'])} ({' + '.join(map(str, r['runs']))}) | {r['iqm']:.2f} "
            f"[{r['ci'][0]:.2f}, {r['ci'][1]:.2f}] |"
            for r in rows
        ],
        "",
        "| X | Y | P(X > Y), mean over tasks [95% CI] | interval |",
        "|---|---|---:|---|",
    ]
    for pair in pairs:
        low, high = pair["ci"]
        # No exact test across tasks: the interval alone is reported, not a verdict (a stratified bootstrap collapses
        # when a task's few runs separate, as on one task)
        says = "above 0.5" if low > 0.5 else "below 0.5" if high < 0.5 else "includes 0.5"
        lines.append(f"| {pair['x']} | {pair['y']} | {pair['p']:.2f} [{low:.2f}, {high:.2f}] | {says} |")
    return "\n".join(lines)


def read_scores(frames: Sequence[pd.DataFrame], mode: str, last: int) -> dict[str, dict[str, np.ndarray]]:
    """Per task, per algorithm, the runs' scores (``stats.scores``) from evaluation tables (``collect``)."""
    from sb3_tutorial_sac.compare.stats import scores

    result: dict[str, dict[str, np.ndarray]] = {}
    for frame in frames:
        for env, table in frame.groupby("env", sort=False):
            score = scores(table, last)
            part = score[score.index.get_level_values("mode") == mode]
            result[str(env)] = {
                str(a): group.sort_index(level="seed").to_numpy(dtype=float)
                for a, group in part.groupby(level="algorithm", sort=False)
            }
    return result
