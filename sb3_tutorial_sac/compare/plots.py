"""Learning curves of one environment: mean over runs with a 95% bootstrap band, per algorithm, against env steps
(the evaluation points every run has, the scoring points shaded) and against training seconds (one common time
grid), for each policy mode. Drawn on matplotlib's Agg canvas (no pyplot, no display, no global backend switch)."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sb3_tutorial_sac.compare.specs import MODES
from sb3_tutorial_sac.compare.stats import bootstrap_ci, common_steps, mean, seconds_column

# The x axes of the figure's two columns
STEPS_LABEL = "env steps"
# Points of the common time grid of the seconds panels; resamples of the curves' bands (a picture, not a verdict)
TIME_POINTS = 200
BAND_REPS = 5_000


def step_curves(data: pd.DataFrame, steps: Sequence[int]) -> dict[str, pd.DataFrame]:
    """Per algorithm: returns, one row per seed, one column per evaluation step in ``steps``."""
    curves = {}
    for algorithm in dict.fromkeys(data["algorithm"]):
        runs = data[(data["algorithm"] == algorithm) & data["timesteps"].isin(steps)]
        returns = runs.pivot_table(index="seed", columns="timesteps", values="return_mean")
        if not returns.empty:
            curves[algorithm] = returns
    return curves


def time_curves(data: pd.DataFrame, column: str, grid: np.ndarray) -> dict[str, np.ndarray]:
    """Per algorithm: each run's return on the time ``grid`` (runs x grid points): at time t, the mean return of the
    run's last evaluation at or before t (NaN before its first evaluation; after its last one, its final return: a
    finished run stays where it ended, so an algorithm's band reaches its last evaluation)."""
    curves = {}
    for algorithm in dict.fromkeys(data["algorithm"]):
        rows = []
        for _, run in data[data["algorithm"] == algorithm].groupby("seed"):
            run = run.sort_values("timesteps")
            times, returns = run[column].to_numpy(dtype=float), run["return_mean"].to_numpy(dtype=float)
            index = np.searchsorted(times, grid, side="right") - 1
            values = np.where(index >= 0, returns[np.clip(index, 0, None)], np.nan)
            rows.append(values)
        curves[algorithm] = np.array(rows)
    return curves


def time_grids(data: pd.DataFrame, column: str) -> dict[str, np.ndarray]:
    """Per algorithm, the seconds panel's time grid: log-spaced (speeds differ by 10x) from the first evaluation of
    any run to the algorithm's own last evaluation, which is its last point."""
    start = max(float(data[column].min()), 1e-3)
    return {
        str(algorithm): np.geomspace(start, max(float(times.max()), start * 2), TIME_POINTS)
        for algorithm, times in data.groupby("algorithm", sort=False)[column]
    }


def _runs(n: int) -> str:
    return f"{n} run{'s' if n != 1 else ''}"


def _band(ax: Axes, x: np.ndarray, scores: np.ndarray, color: str, label: str) -> None:
    keep = ~np.isnan(scores).any(axis=0)  # the points where every run has a value
    x, scores = x[keep], scores[:, keep]
    if not len(x):
        return
    low, high = bootstrap_ci(mean, scores, axis=0, reps=BAND_REPS)
    ax.plot(x, scores.mean(axis=0), color=color, label=label)
    if np.isfinite(low).all():
        ax.fill_between(x, low, high, color=color, alpha=0.2)


def plot_curves(
    evaluations: pd.DataFrame,
    env: str,
    path: pathlib.Path,
    threshold: float | None = None,
    scoring: Sequence[int] = (),
) -> None:
    """Learning curves of one environment, a 2 x 2 grid: one row per policy mode; x = env steps (left: the
    evaluation points every run has; ``scoring`` shaded) and training seconds (right, log scale: a time grid from
    the first evaluation of any run to the algorithm's last evaluation, each run held at its final return after its
    end; ``stats.seconds_column``: CPU seconds where every run has them). Mean over runs and 95% bootstrap band;
    the threshold of "steps to reach" dashed.

    :param evaluations: the evaluations table of one environment (``collect``); for runs without seconds, the seconds
        panels say so
    :param env: environment id (titles)
    :param path: the PNG to write
    :param threshold: the return threshold, or None
    :param scoring: the evaluation steps a score averages (shaded)
    """
    figure = Figure(figsize=(12, 9))
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 2, sharey=True)
    colors = {algorithm: f"C{i}" for i, algorithm in enumerate(dict.fromkeys(evaluations["algorithm"]))}
    steps = common_steps(evaluations)
    column = seconds_column(evaluations)
    has_seconds = column in evaluations and evaluations[column].notna().all() and len(evaluations)
    grids = time_grids(evaluations[evaluations["timesteps"].isin(steps)], column) if has_seconds else {}
    for (ax_steps, ax_seconds), mode in zip(axes, MODES):
        # The points every run has, in both panels (a run evaluated past the budget is cut at the common points)
        data = evaluations[(evaluations["mode"] == mode) & evaluations["timesteps"].isin(steps)]
        for algorithm, returns in step_curves(data, steps).items():
            label = f"{algorithm} ({_runs(len(returns))})"
            _band(ax_steps, returns.columns.to_numpy(), returns.to_numpy(), colors[algorithm], label)
        if has_seconds:
            for algorithm, grid in grids.items():
                values = time_curves(data[data["algorithm"] == algorithm], column, grid)[algorithm]
                _band(ax_seconds, grid, values, colors[algorithm], f"{algorithm} ({_runs(len(values))})")
        else:
            ax_seconds.text(0.5, 0.5, "no training seconds recorded\n(evaluations.npz without train_seconds)",
                            ha="center", va="center", transform=ax_seconds.transAxes, color="grey")  # fmt: skip
        if len(scoring):
            ax_steps.axvspan(min(scoring), max(scoring), color="grey", alpha=0.15, label="scoring points")
        seconds_label = "training CPU seconds" if column == "train_cpu_seconds" else "training wall seconds"
        if has_seconds:
            ax_seconds.set_xscale("log")
        for ax, xlabel in ((ax_steps, STEPS_LABEL), (ax_seconds, seconds_label)):
            if threshold is not None:
                ax.axhline(threshold, color="grey", linestyle="--", linewidth=1)
            ax.set_title(f"{env}: {mode} policy")
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
        ax_steps.set_ylabel("mean evaluation return (raw)")
    axes[0, 0].legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
