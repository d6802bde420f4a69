"""Across tasks (rliable's aggregate metrics): scores normalised per task (random policy = 0, the baseline
algorithm, rl-zoo3's SAC, = 1), the IQM of every run of every task with a stratified bootstrap interval, the
performance profile (fraction of runs above each normalised score), and the probability of improvement averaged
over tasks, with its interval."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping, Sequence

import gymnasium as gym
import numpy as np
import numpy.typing as npt
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sb3_tutorial_sac.compare.stats import bootstrap_ci, iqm, probability_of_improvement

# The algorithm whose mean score is 1 on every task
BASELINE = "sac"
# Mean return of the uniform random policy, 100 episodes, seeds 0..99 (``random_score(env)`` prints each)
RANDOM_SCORES: dict[str, float] = {
    "Pendulum-v1": -1207.555222701356,
    "LunarLanderContinuous-v3": -212.6757661039201,
    "MountainCarContinuous-v0": -33.251699754754085,
    "InvertedPendulum-v5": 5.23,
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


def normalise(scores: Mapping[str, Mapping[str, npt.ArrayLike]], baseline: str = BASELINE) -> dict[str, dict[str, np.ndarray]]:
    """Scores of each task mapped so that the random policy is 0 and the mean score of ``baseline`` is 1.

    :param scores: per task, per algorithm, the runs' scores (one mode)
    :param baseline: the algorithm whose mean is 1 (present on every task)
    :return: the same layout, normalised
    """
    normalised = {}
    for env, per_algorithm in scores.items():
        if baseline not in per_algorithm:
            raise ValueError(f"scores: {env} has no {baseline} runs to normalise by")
        if env not in RANDOM_SCORES:
            raise ValueError(f"scores: no random-policy score for {env}; known: {sorted(RANDOM_SCORES)}")
        low, high = RANDOM_SCORES[env], float(np.mean(np.asarray(per_algorithm[baseline], dtype=float)))
        normalised[env] = {a: (np.asarray(v, dtype=float) - low) / (high - low) for a, v in per_algorithm.items()}
    return normalised


def _common_algorithms(normalised: Mapping[str, Mapping[str, np.ndarray]]) -> list[str]:
    tasks = list(normalised.values())
    return [a for a in tasks[0] if all(a in task for task in tasks[1:])]


def aggregate_iqm(per_task: Sequence[npt.ArrayLike], axis: int = 0) -> npt.NDArray[np.float64]:
    """IQM of every run of every task together (rliable's ``aggregate_iqm``); a bootstrap statistic when each task's
    runs lie along ``axis``."""
    return iqm(np.concatenate([np.asarray(t, dtype=float) for t in per_task], axis=axis), axis=axis)


def aggregate(normalised: Mapping[str, Mapping[str, np.ndarray]]) -> tuple[list[dict], list[dict]]:
    """The aggregate metrics of the algorithms that every task has.

    :return: ``(rows, pairs)``: per algorithm ``{"algorithm", "runs", "iqm", "ci"}`` (IQM of the normalised scores
        of all runs, stratified bootstrap over runs within each task); per pair of algorithms ``{"x", "y", "p",
        "ci"}``: the mean over tasks of P(X > Y), stratified bootstrap
    """
    algorithms = _common_algorithms(normalised)
    rows = []
    for algorithm in algorithms:
        per_task = [normalised[env][algorithm] for env in normalised]
        low, high = bootstrap_ci(lambda *tasks, axis: aggregate_iqm(tasks, axis=axis), *per_task)
        rows.append({"algorithm": algorithm, "runs": sum(len(t) for t in per_task), "iqm": float(aggregate_iqm(per_task)),
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


def performance_profile(per_task: Sequence[npt.ArrayLike], taus: npt.ArrayLike = PROFILE_TAUS) -> np.ndarray:
    """Fraction of all runs (every task) whose normalised score exceeds each ``tau`` (rliable's score
    distribution)."""
    runs = np.concatenate([np.asarray(t, dtype=float) for t in per_task])
    return (runs[:, None] > np.asarray(taus)[None, :]).mean(axis=0)


def plot_profile(normalised: Mapping[str, Mapping[str, np.ndarray]], path: pathlib.Path, title: str) -> None:
    """The performance profile of each algorithm that every task has, with a 95% stratified bootstrap band."""
    figure = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(figure)
    ax = figure.subplots()
    for i, algorithm in enumerate(_common_algorithms(normalised)):
        per_task = [normalised[env][algorithm] for env in normalised]

        def profile(*tasks: np.ndarray, axis: int) -> np.ndarray:
            runs = np.concatenate(tasks, axis=axis)
            return (runs[..., None] > PROFILE_TAUS).mean(axis=axis)

        low, high = bootstrap_ci(profile, *per_task, reps=5_000)
        ax.plot(PROFILE_TAUS, performance_profile(per_task), color=f"C{i}", label=algorithm)
        ax.fill_between(PROFILE_TAUS, low, high, color=f"C{i}", alpha=0.2)
    ax.set_xlabel(f"normalised score tau (random policy = 0, mean of {BASELINE} = 1)")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


def aggregate_markdown(normalised: Mapping[str, Mapping[str, np.ndarray]], mode: str) -> str:
    """The aggregate section's tables (``aggregate``) in markdown."""
    rows, pairs = aggregate(normalised)
    lines = [
        f"Tasks: {', '.join(normalised)}; {mode} policy; normalised score = (score - random) / (mean score of "
        f"{BASELINE} - random), random = the uniform random policy's mean return ({', '.join(f'{e}: {RANDOM_SCORES[e]:.1f}' for e in normalised)}).",  # noqa: E501
        "",
        "| algorithm | runs (all tasks) | IQM of normalised scores [95% CI] |",
        "|---|---:|---:|",
        *[f"| {r['algorithm']} | {r['runs']} | {r['iqm']:.2f} [{r['ci'][0]:.2f}, {r['ci'][1]:.2f}] |" for r in rows],
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
