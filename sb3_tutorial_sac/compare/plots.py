"""Learning curves of one environment: mean over runs with a 95% bootstrap band, per algorithm, against env steps
and against training seconds, for each policy mode. Drawn on matplotlib's Agg canvas (no pyplot, no display, no
global backend switch)."""

from __future__ import annotations

import pathlib

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sb3_tutorial_sac.compare.specs import MODES
from sb3_tutorial_sac.compare.stats import bootstrap_ci, mean

# The x axes of the figure's two columns
STEPS_LABEL = "env steps"
SECONDS_LABEL = "training seconds (mean over runs at each evaluation point)"


def _curves(data: pd.DataFrame) -> dict[str, tuple[pd.DataFrame, pd.DataFrame]]:
    """Per algorithm: returns and training seconds, one row per seed, one column per evaluation step (the steps
    that every run has)."""
    curves = {}
    for algorithm in dict.fromkeys(data["algorithm"]):
        runs = data[data["algorithm"] == algorithm]
        returns = runs.pivot_table(index="seed", columns="timesteps", values="return_mean").dropna(axis=1)
        if returns.empty:
            continue
        seconds_column = runs["train_seconds"] if "train_seconds" in runs else pd.Series(np.nan, index=runs.index)
        seconds = (
            runs.assign(train_seconds=seconds_column)
            .groupby(["seed", "timesteps"])["train_seconds"]
            .mean()
            .unstack()
            .reindex(index=returns.index, columns=returns.columns)
        )
        curves[algorithm] = returns, seconds
    return curves


def _band(ax: Axes, x: np.ndarray, scores: np.ndarray, color: str, label: str) -> None:
    low, high = bootstrap_ci(mean, scores, axis=0)
    ax.plot(x, scores.mean(axis=0), color=color, label=label)
    if np.isfinite(low).all():
        ax.fill_between(x, low, high, color=color, alpha=0.2)


def plot_curves(evaluations: pd.DataFrame, env: str, path: pathlib.Path, threshold: float | None = None) -> None:
    """Learning curves of one environment, a 2 x 2 grid: one row per policy mode; x = env steps (left) and training
    seconds (right: at each evaluation point, the mean return over runs against the mean training seconds over runs,
    evaluations excluded). Mean over runs and 95% bootstrap band; the threshold of "steps to reach" dashed.

    :param evaluations: the evaluations table of one environment (``collect``); without a ``train_seconds`` column,
        or for runs whose ``evaluations.npz`` has none, the seconds panels say so
    :param env: environment id (titles)
    :param path: the PNG to write
    :param threshold: the return threshold, or None
    """
    figure = Figure(figsize=(12, 9))
    FigureCanvasAgg(figure)
    axes = figure.subplots(2, 2, sharey=True)
    colors = {algorithm: f"C{i}" for i, algorithm in enumerate(dict.fromkeys(evaluations["algorithm"]))}
    for (ax_steps, ax_seconds), mode in zip(axes, MODES):
        curves = _curves(evaluations[evaluations["mode"] == mode])
        for algorithm, (returns, seconds) in curves.items():
            scores, label = returns.to_numpy(), f"{algorithm} ({len(returns)} runs)"
            _band(ax_steps, returns.columns.to_numpy(), scores, colors[algorithm], label)
            if not seconds.isna().to_numpy().any():
                _band(ax_seconds, seconds.to_numpy().mean(axis=0), scores, colors[algorithm], label)
        if not ax_seconds.lines:
            ax_seconds.text(0.5, 0.5, "no training seconds recorded\n(evaluations.npz without train_seconds)",
                            ha="center", va="center", transform=ax_seconds.transAxes, color="grey")  # fmt: skip
        for ax, xlabel in ((ax_steps, STEPS_LABEL), (ax_seconds, SECONDS_LABEL)):
            if threshold is not None:
                ax.axhline(threshold, color="grey", linestyle="--", linewidth=1)
            ax.set_title(f"{env}: {mode} policy")
            ax.set_xlabel(xlabel)
            ax.grid(alpha=0.3)
        ax_steps.set_ylabel("mean evaluation return (raw)")
    axes[0, 0].legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
