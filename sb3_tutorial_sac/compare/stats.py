"""The statistics of a comparison, after rliable's definitions (Agarwal et al., 2021), written with numpy/scipy
(rliable 1.2 does not import with this project's pandas/arch versions).

IQM = ``scipy.stats.trim_mean(x, 0.25)``; probability of improvement ``P(X > Y) + 0.5 P(X = Y)`` over all pairs of
runs (the Mann-Whitney U statistic divided by ``n * m``); 95% percentile-bootstrap confidence intervals over runs
(``scipy.stats.bootstrap``, each algorithm's runs resampled independently, fixed seed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from sb3_tutorial_sac.compare.specs import MODES, REFERENCE

BOOTSTRAP_REPS = 5000
BOOTSTRAP_SEED = 0
# A statistic over runs: one value per run along ``axis`` in, the statistic out
Statistic = Callable[..., npt.NDArray[np.float64]]
# One algorithm's statistics on one environment (a row of the report's table)
Summary = dict[str, Any]


def iqm(scores: npt.ArrayLike, axis: int | None = None) -> npt.NDArray[np.float64]:
    """Interquartile mean (rliable's ``aggregate_iqm``): the mean of the middle 50% of the scores."""
    return np.asarray(stats.trim_mean(scores, proportiontocut=0.25, axis=axis))


def probability_of_improvement(x: npt.ArrayLike, y: npt.ArrayLike, axis: int = -1) -> npt.NDArray[np.float64]:
    """``P(X > Y) + 0.5 P(X = Y)`` over all pairs (rliable's ``probability_of_improvement`` on one task)."""
    x_runs = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    y_runs = np.moveaxis(np.asarray(y, dtype=float), axis, -1)
    greater = (x_runs[..., :, None] > y_runs[..., None, :]).mean(axis=(-2, -1))
    equal = (x_runs[..., :, None] == y_runs[..., None, :]).mean(axis=(-2, -1))
    return np.asarray(greater + 0.5 * equal)


def bootstrap_ci(
    statistic: Statistic, *samples: npt.ArrayLike, axis: int = 0
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """95% percentile-bootstrap interval of ``statistic`` (samples resampled independently; fixed seed).

    NaN where a sample has fewer than two values (no interval can be said from one run).
    """
    arrays = [np.asarray(s, dtype=float) for s in samples]
    if min(a.shape[axis] for a in arrays) < 2:
        shape = np.shape(statistic(*arrays, axis=axis))
        return np.full(shape, np.nan), np.full(shape, np.nan)
    result = stats.bootstrap(
        arrays,
        statistic,
        n_resamples=BOOTSTRAP_REPS,
        confidence_level=0.95,
        method="percentile",
        paired=False,
        vectorized=True,
        axis=axis,
        rng=np.random.default_rng(BOOTSTRAP_SEED),
    )
    return result.confidence_interval.low, result.confidence_interval.high


def mean(x: npt.ArrayLike, axis: int = 0) -> npt.NDArray[np.float64]:
    """``np.mean`` as a bootstrap statistic."""
    return np.asarray(np.mean(np.asarray(x, dtype=float), axis=axis))


def first_reaching(evaluations: pd.DataFrame, threshold: float, column: str = "timesteps") -> pd.Series:
    """Per run and mode: ``column`` at the first evaluation point whose mean return reaches ``threshold``.

    :param evaluations: evaluation points (``algorithm, seed, mode, timesteps, return_mean`` and ``column``)
    :param threshold: the return to reach
    :param column: ``timesteps`` (env steps) or ``train_seconds`` (NaN where the table or a run has none)
    :return: indexed by ``(algorithm, seed, mode)``; inf for a run that never reaches ``threshold``
    """
    keys = ["algorithm", "seed", "mode"]
    if column not in evaluations:
        evaluations = evaluations.assign(**{column: np.nan})
    ordered = evaluations.sort_values("timesteps", kind="stable")
    runs = ordered.groupby(keys)["timesteps"].min()
    reached = ordered[ordered["return_mean"] >= threshold].drop_duplicates(keys).set_index(keys)[column]
    first = reached.reindex(runs.index).astype(float)
    first[~first.index.isin(reached.index)] = np.inf
    return first


def steps_to_threshold(evaluations: pd.DataFrame, threshold: float) -> pd.Series:
    """Per run and mode: the first evaluation step whose mean return reaches ``threshold`` (inf: never)."""
    return first_reaching(evaluations, threshold, "timesteps")


def seconds_to_threshold(evaluations: pd.DataFrame, threshold: float) -> pd.Series:
    """Per run and mode: the training seconds at the first evaluation reaching ``threshold`` (inf: never; NaN: the
    run's ``evaluations.npz`` has no ``train_seconds``)."""
    return first_reaching(evaluations, threshold, "train_seconds")


def _final_returns(evaluations: pd.DataFrame) -> dict[tuple[str, str], npt.NDArray[np.float64]]:
    """Per algorithm and mode: the mean return at the last evaluation point of each run, by seed."""
    final: dict[tuple[str, str], npt.NDArray[np.float64]] = {}
    if len(evaluations):
        last = evaluations.loc[evaluations.groupby(["algorithm", "seed", "mode"])["timesteps"].idxmax()]
        for (algorithm, mode), group in last.groupby(["algorithm", "mode"]):
            final[(algorithm, mode)] = group.sort_values("seed")["return_mean"].to_numpy(dtype=float)
    return final


def summarise(
    evaluations: pd.DataFrame, runs: pd.DataFrame, threshold: float | None = None, reference: str = REFERENCE
) -> list[Summary]:
    """Statistics of one environment, one dict per algorithm (in order of first appearance in ``runs``).

    Final return of a run = the mean return of its last evaluation point; across runs: mean, std (ddof=0),
    IQM with its 95% bootstrap CI, for each mode. ``steps_to_threshold_<mode>``: median over runs of the first
    evaluation step reaching ``threshold`` (inf if more than half never do), with the count that did;
    ``seconds_to_threshold_<mode>``: median over runs of the training seconds at that step (NaN for runs without
    ``train_seconds``). Timing: mean over finished runs. ``p_improvement_<mode>``: P(reference > algorithm) with
    its CI.
    """
    final = _final_returns(evaluations)
    to_threshold = seconds = None
    if threshold is not None and len(evaluations):
        to_threshold, seconds = steps_to_threshold(evaluations, threshold), seconds_to_threshold(evaluations, threshold)
    rows = []
    for algorithm in dict.fromkeys(runs["algorithm"]):
        algo_runs = runs[runs["algorithm"] == algorithm]
        ok = algo_runs[algo_runs["status"] == "ok"]
        row: Summary = {
            "algorithm": algorithm,
            "runs": len(ok),
            "failed": int((algo_runs["status"] == "failed").sum()),
            "missing": int((algo_runs["status"] == "missing").sum()),
            "wall_seconds": float(ok["wall_seconds"].mean()) if len(ok) else np.nan,
            "train_seconds": float(ok["train_seconds"].mean()) if len(ok) else np.nan,
            "steps_per_second": float(ok["steps_per_second"].mean()) if len(ok) else np.nan,
        }
        for mode in MODES:
            scores = final.get((algorithm, mode), np.empty(0))
            row[f"n_{mode}"] = len(scores)
            row[f"mean_{mode}"] = float(np.mean(scores)) if len(scores) else np.nan
            row[f"std_{mode}"] = float(np.std(scores)) if len(scores) else np.nan
            row[f"iqm_{mode}"] = float(iqm(scores)) if len(scores) else np.nan
            low, high = bootstrap_ci(iqm, scores) if len(scores) else (np.nan, np.nan)
            row[f"iqm_{mode}_ci"] = (float(low), float(high))
            if to_threshold is not None and seconds is not None and len(scores):
                steps = to_threshold.xs((algorithm, mode), level=("algorithm", "mode")).to_numpy()
                row[f"steps_to_threshold_{mode}"] = float(np.median(steps))
                row[f"reached_{mode}"] = int(np.isfinite(steps).sum())
                run_seconds = seconds.xs((algorithm, mode), level=("algorithm", "mode")).to_numpy()
                row[f"seconds_to_threshold_{mode}"] = float(np.median(run_seconds))
            reference_scores = final.get((reference, mode), np.empty(0))
            if algorithm != reference and len(scores) and len(reference_scores):
                row[f"p_improvement_{mode}"] = float(probability_of_improvement(reference_scores, scores))
                low, high = bootstrap_ci(probability_of_improvement, reference_scores, scores, axis=-1)
                row[f"p_improvement_{mode}_ci"] = (float(low), float(high))
        rows.append(row)
    return rows
