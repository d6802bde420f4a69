"""The statistics of a comparison, after rliable's definitions (Agarwal et al., 2021), written with numpy/scipy
(rliable 1.2 does not import with this project's pandas/arch versions).

One scoring rule for every algorithm (``scores``): the evaluation points that every run of the task has (a run
that evaluated past the budget, as TutorialSAC did before it stopped at the budget, is scored at the same points
as the others), and a run's score is its mean evaluation return over the last ``last`` of them.

* IQM = ``scipy.stats.trim_mean(x, 0.25)`` (rliable's ``aggregate_iqm``): the lowest and the highest quarter of
  the runs, rounded down, are dropped (at 10 runs the mean of the middle 6, at 5 of the middle 3: ``iqm_count``).
* Probability of improvement ``P(X > Y) + 0.5 P(X = Y)`` over all pairs of runs (the Mann-Whitney U statistic
  divided by ``n * m``).
* Confidence intervals: 95% percentile bootstrap with ``BOOTSTRAP_REPS`` resamples (rliable's 50,000) from a
  fixed seed, each sample (one algorithm on one task) resampled on its own: rliable's stratified bootstrap. The
  endpoints are empirical quantiles of the resampled statistics (``np.quantile(method="inverted_cdf")``: values
  the statistic took, well defined when a time to a threshold is infinite).
* Rank test beside each interval: exact two-sided Mann-Whitney (``scipy.stats.mannwhitneyu(method="exact")``),
  or, when the two samples share values (steps to a threshold often do), the exact permutation test of the same
  U statistic over every split of the pooled runs (``scipy.stats.permutation_test``).
* A verdict (``verdict``) is decided only when the bootstrap interval of P excludes 0.5 *and* the rank test
  rejects "no difference" at ``ALPHA``: when two small samples separate, every resample gives P = 0 or 1 and the
  interval collapses onto it, so the interval alone would decide at 2 or 3 runs; the exact test cannot (at 3
  runs against 3, its smallest two-sided p is 0.1). Otherwise the verdict is "inconclusive at n runs".
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import stats

from sb3_tutorial_sac.compare.specs import MODES, REFERENCE

# rliable's number of bootstrap resamples; the seed makes every interval reproducible (--report-only)
BOOTSTRAP_REPS = 50_000
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95
# Level of the rank test that a verdict needs beside the interval
ALPHA = 0.05
# A run's score: the mean of its last this many evaluation points common to all runs
SCORE_LAST = 3
# Resamples per chunk (memory: chunk x runs x evaluation points floats)
_CHUNK = 2_000
# A statistic over resampled runs: each sample with the resamples on axis 0 and the runs on ``axis``
Statistic = Callable[..., npt.NDArray[np.float64]]
# One algorithm's statistics on one environment (a row of the report's table)
Summary = dict[str, Any]


def iqm(scores: npt.ArrayLike, axis: int | None = None) -> npt.NDArray[np.float64]:
    """Interquartile mean (rliable's ``aggregate_iqm``): the mean after dropping the lowest and the highest
    quarter of the scores, each rounded down (``iqm_count`` says how many remain)."""
    return np.asarray(stats.trim_mean(scores, proportiontocut=0.25, axis=axis))


def iqm_count(n: int) -> int:
    """How many of ``n`` runs the IQM averages: ``scipy.stats.trim_mean`` drops ``floor(n / 4)`` at each end."""
    return n - 2 * (n // 4)


def probability_of_improvement(x: npt.ArrayLike, y: npt.ArrayLike, axis: int = -1) -> npt.NDArray[np.float64]:
    """``P(X > Y) + 0.5 P(X = Y)`` over all pairs (rliable's ``probability_of_improvement`` on one task)."""
    x_runs = np.moveaxis(np.asarray(x, dtype=float), axis, -1)
    y_runs = np.moveaxis(np.asarray(y, dtype=float), axis, -1)
    greater = (x_runs[..., :, None] > y_runs[..., None, :]).mean(axis=(-2, -1))
    equal = (x_runs[..., :, None] == y_runs[..., None, :]).mean(axis=(-2, -1))
    return np.asarray(greater + 0.5 * equal)


def mean(x: npt.ArrayLike, axis: int = 0) -> npt.NDArray[np.float64]:
    """``np.mean`` as a bootstrap statistic."""
    return np.asarray(np.mean(np.asarray(x, dtype=float), axis=axis))


def median(x: npt.ArrayLike, axis: int = 0) -> npt.NDArray[np.float64]:
    """``np.median`` as a bootstrap statistic (infinite values allowed: a run that never reaches a threshold)."""
    return np.asarray(np.median(np.asarray(x, dtype=float), axis=axis))


def bootstrap_ci(
    statistic: Statistic,
    *samples: npt.ArrayLike,
    axis: int = 0,
    reps: int = BOOTSTRAP_REPS,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """95% percentile-bootstrap interval of ``statistic(*samples, axis=axis)``, each sample's runs (along
    ``axis``) resampled with replacement on their own (stratified), ``reps`` resamples from ``seed``.

    :param statistic: called as ``statistic(*resampled, axis=axis + 1)``: every resampled sample has the
        resamples on a new first axis
    :param samples: one array per stratum (algorithm, or algorithm and task), runs along ``axis``
    :param axis: the runs' axis of every sample
    :param reps: resamples
    :param seed: seed of the resampling
    :return: ``(low, high)``, the 2.5% and 97.5% empirical quantiles; NaN where a sample has fewer than two runs
        (no interval can be said from one run)
    """
    axis = axis % max(1, np.ndim(samples[0]))  # a negative axis counts from the end of a sample, not of a resample
    arrays = [np.moveaxis(np.asarray(s, dtype=float), axis, 0) for s in samples]
    if min(len(a) for a in arrays) < 2:
        shape = np.shape(statistic(*[np.moveaxis(a, 0, axis) for a in arrays], axis=axis))
        return np.full(shape, np.nan), np.full(shape, np.nan)
    rng = np.random.default_rng(seed)
    values = []
    for start in range(0, reps, _CHUNK):
        size = min(_CHUNK, reps - start)
        resampled = [a[rng.integers(0, len(a), size=(size, len(a)))] for a in arrays]  # (size, runs, ...)
        values.append(statistic(*[np.moveaxis(r, 1, axis + 1) for r in resampled], axis=axis + 1))
    distribution = np.concatenate(values, axis=0)
    alpha = (1 - CONFIDENCE) / 2
    low, high = np.quantile(distribution, [alpha, 1 - alpha], axis=0, method="inverted_cdf")
    return np.asarray(low), np.asarray(high)


def _u_statistic(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64], axis: int = -1) -> npt.NDArray[np.float64]:
    return probability_of_improvement(x, y, axis=axis)


def _split_test(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> float:
    """The exact two-sided permutation test of ``_u_statistic`` over every split of the pooled runs into samples of
    ``len(x)`` and ``len(y)``, as ``scipy.stats.permutation_test(..., permutation_type="independent",
    n_resamples=np.inf)`` computes it (twice the smaller tail, its relative tolerance 100 eps), which refuses a sample of
    one run (a grid seen half-way: a row with one finished seed)."""
    pooled = np.concatenate([x, y])
    splits = [list(chosen) for chosen in itertools.combinations(range(len(pooled)), len(x))]
    first = np.array([pooled[chosen] for chosen in splits])
    second = np.array([np.delete(pooled, chosen) for chosen in splits])
    null = _u_statistic(first, second, axis=-1)
    observed = float(_u_statistic(x, y))
    gamma = abs(100 * np.finfo(float).eps * observed)
    less, greater = float(np.mean(null <= observed + gamma)), float(np.mean(null >= observed - gamma))
    return min(1.0, 2 * min(less, greater))


def rank_test(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[float, str]:
    """Exact two-sided rank test of "X and Y have the same distribution" (Mann-Whitney U).

    :return: ``(p, method)``: ``scipy.stats.mannwhitneyu(method="exact")`` when no value is shared by the two
        samples or repeated; otherwise the exact permutation test of the same statistic (every split of the pooled
        runs), which is right with ties
    """
    x_runs, y_runs = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    pooled = np.concatenate([x_runs, y_runs])
    if len(np.unique(pooled)) == len(pooled):
        return float(stats.mannwhitneyu(x_runs, y_runs, alternative="two-sided", method="exact").pvalue), "exact U"
    if np.all(pooled == pooled[0]):  # every run the same value: no evidence of a difference
        return 1.0, "exact permutation"
    if min(len(x_runs), len(y_runs)) < 2:  # scipy's permutation_test wants two runs a sample: the splits by hand
        return _split_test(x_runs, y_runs), "exact permutation"
    result = stats.permutation_test(
        (x_runs, y_runs), _u_statistic, permutation_type="independent", n_resamples=np.inf, vectorized=True,
        alternative="two-sided", axis=-1,
    )  # fmt: skip
    return float(min(1.0, result.pvalue)), "exact permutation"


def verdict(x: npt.ArrayLike, y: npt.ArrayLike) -> Summary:
    """P(X > Y) with its bootstrap interval and the rank test, and what they decide.

    :return: ``p`` (P(X > Y)), ``ci`` (95% interval), ``p_value`` and ``test`` (``rank_test``), ``n`` (runs of X
        and of Y), ``decided``: +1 (X higher: interval above 0.5 and p < ``ALPHA``), -1 (Y higher), 0 (inconclusive)
    """
    x_runs, y_runs = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    p = float(probability_of_improvement(x_runs, y_runs))
    low, high = bootstrap_ci(probability_of_improvement, x_runs, y_runs, axis=-1)
    p_value, test = rank_test(x_runs, y_runs) if len(x_runs) and len(y_runs) else (math.nan, "")
    decided = 0
    if p_value < ALPHA and float(low) > 0.5:
        decided = 1
    elif p_value < ALPHA and float(high) < 0.5:
        decided = -1
    return {"p": p, "ci": (float(low), float(high)), "p_value": p_value, "test": test, "n": (len(x_runs), len(y_runs)),
            "decided": decided}  # fmt: skip


def common_steps(evaluations: pd.DataFrame) -> list[int]:
    """The evaluation steps that every run of the table has (every algorithm, seed and mode), in order."""
    if not len(evaluations):
        return []
    per_run = evaluations.groupby(["algorithm", "seed", "mode"])["timesteps"].apply(frozenset)
    return sorted(int(step) for step in frozenset.intersection(*per_run))


def scoring_steps(evaluations: pd.DataFrame, last: int = SCORE_LAST) -> list[int]:
    """The evaluation steps a run's score averages: the last ``last`` of ``common_steps``."""
    if last <= 0:
        raise ValueError(f"last must be a positive number of evaluation points, not {last}")
    return common_steps(evaluations)[-last:]


def scores(evaluations: pd.DataFrame, last: int = SCORE_LAST) -> pd.Series:
    """Each run's score: its mean evaluation return over ``scoring_steps`` (the same steps for every run).

    :return: indexed by ``(algorithm, seed, mode)``
    """
    steps = scoring_steps(evaluations, last)
    at_steps = evaluations[evaluations["timesteps"].isin(steps)]
    return at_steps.groupby(["algorithm", "seed", "mode"], sort=False)["return_mean"].mean()


def seconds_column(evaluations: pd.DataFrame) -> str:
    """The seconds the report uses: ``train_cpu_seconds`` (process CPU time) when every row has them, else
    ``train_seconds`` (wall clock; runs written before CPU time was recorded)."""
    if "train_cpu_seconds" in evaluations and len(evaluations) and evaluations["train_cpu_seconds"].notna().all():
        return "train_cpu_seconds"
    return "train_seconds"


def first_reaching(evaluations: pd.DataFrame, threshold: float, column: str = "timesteps") -> pd.Series:
    """Per run and mode: ``column`` at the first of ``common_steps`` whose mean return reaches ``threshold``.

    :param evaluations: evaluation points (``algorithm, seed, mode, timesteps, return_mean`` and ``column``)
    :param threshold: the return to reach
    :param column: ``timesteps`` (env steps), ``train_cpu_seconds`` or ``train_seconds`` (NaN where the table or a
        run has none)
    :return: indexed by ``(algorithm, seed, mode)``; inf for a run that never reaches ``threshold``
    """
    keys = ["algorithm", "seed", "mode"]
    if column not in evaluations:
        evaluations = evaluations.assign(**{column: np.nan})
    ordered = evaluations[evaluations["timesteps"].isin(common_steps(evaluations))].sort_values("timesteps", kind="stable")
    runs = ordered.groupby(keys, sort=False)["timesteps"].min()
    reached = ordered[ordered["return_mean"] >= threshold].drop_duplicates(keys).set_index(keys)[column]
    first = reached.reindex(runs.index).astype(float)
    first[~first.index.isin(reached.index)] = np.inf
    return first


def steps_to_threshold(evaluations: pd.DataFrame, threshold: float) -> pd.Series:
    """Per run and mode: the first common evaluation step whose mean return reaches ``threshold`` (inf: never)."""
    return first_reaching(evaluations, threshold, "timesteps")


def seconds_to_threshold(evaluations: pd.DataFrame, threshold: float) -> pd.Series:
    """Per run and mode: the training seconds (``seconds_column``) at the first common evaluation step reaching
    ``threshold`` (inf: never; NaN: the run recorded no seconds)."""
    return first_reaching(evaluations, threshold, seconds_column(evaluations))


def _by_algorithm(series: pd.Series, algorithm: str, mode: str) -> npt.NDArray[np.float64]:
    """One algorithm's values in one mode (a series indexed by ``(algorithm, seed, mode)``), by seed."""
    if not len(series):
        return np.empty(0)
    index = series.index
    part = series[(index.get_level_values("algorithm") == algorithm) & (index.get_level_values("mode") == mode)]
    return part.sort_index(level="seed").to_numpy(dtype=float)


def summarise(
    evaluations: pd.DataFrame,
    runs: pd.DataFrame,
    threshold: float | None = None,
    reference: str = REFERENCE,
    last: int = SCORE_LAST,
) -> list[Summary]:
    """Statistics of one environment, one dict per algorithm (in order of first appearance in ``runs``).

    Score of a run: ``scores`` (mean return over the last ``last`` common evaluation points). Across runs, for each
    mode: mean, std (ddof=0), IQM with its bootstrap CI. ``steps_to_threshold_<mode>`` / ``seconds_to_threshold_
    <mode>``: median over runs (inf when more than half never reach it) with its bootstrap CI, and the count that
    reached it. Seconds: ``seconds_column``. Timing: means over finished runs. ``versus_<mode>``: ``verdict`` of
    the reference against the algorithm.
    """
    score = scores(evaluations, last) if len(evaluations) else pd.Series(dtype=float)
    steps = seconds = None
    if threshold is not None and len(evaluations):
        steps, seconds = steps_to_threshold(evaluations, threshold), seconds_to_threshold(evaluations, threshold)
    rows = []
    for algorithm in dict.fromkeys(runs["algorithm"]):
        algo_runs = runs[runs["algorithm"] == algorithm]
        ok = algo_runs[algo_runs["status"] == "ok"]
        row: Summary = {
            "algorithm": algorithm,
            "runs": len(ok),
            "diverged": int((algo_runs["status"] == "diverged").sum()),
            "failed": int((algo_runs["status"] == "failed").sum()),
            "missing": int((algo_runs["status"] == "missing").sum()),
        }
        for key in ("wall_seconds", "train_seconds", "train_cpu_seconds", "steps_per_second"):
            values = ok[key] if key in ok else pd.Series(dtype=float)
            row[key] = float(values.mean()) if len(values) and values.notna().all() else np.nan
        row["steps_per_cpu_second"] = float((ok["env_steps"] / ok["train_cpu_seconds"]).mean()) if (
            np.isfinite(row["train_cpu_seconds"])
        ) else np.nan  # fmt: skip
        for mode in MODES:
            values = _by_algorithm(score, algorithm, mode)
            row[f"n_{mode}"] = len(values)
            row[f"scores_{mode}"] = values
            row[f"mean_{mode}"] = float(np.mean(values)) if len(values) else np.nan
            row[f"std_{mode}"] = float(np.std(values)) if len(values) else np.nan
            row[f"iqm_{mode}"] = float(iqm(values)) if len(values) else np.nan
            low, high = bootstrap_ci(iqm, values) if len(values) else (np.nan, np.nan)
            row[f"iqm_{mode}_ci"] = (float(low), float(high))
            for kind, table in (("steps", steps), ("seconds", seconds)):
                if table is None or not len(values):
                    continue
                times = _by_algorithm(table, algorithm, mode)
                row[f"{kind}_{mode}"] = times
                row[f"{kind}_to_threshold_{mode}"] = float(np.median(times))
                low, high = bootstrap_ci(median, times) if not np.isnan(times).any() else (np.nan, np.nan)
                row[f"{kind}_to_threshold_{mode}_ci"] = (float(low), float(high))
                if kind == "steps":
                    row[f"reached_{mode}"] = int(np.isfinite(times).sum())
            reference_scores = _by_algorithm(score, reference, mode)
            if algorithm != reference and len(values) and len(reference_scores):
                row[f"versus_{mode}"] = verdict(reference_scores, values)
        rows.append(row)
    return rows


def pairwise(rows: Sequence[Summary], mode: str) -> list[Summary]:
    """``verdict`` of every pair of algorithms (each pair once, in the rows' order) on their scores in ``mode``.

    :return: one dict per pair: ``x``, ``y`` (algorithm names) and ``verdict(scores of x, scores of y)``
    """
    pairs = []
    for i, first in enumerate(rows):
        for second in rows[i + 1 :]:
            x, y = first[f"scores_{mode}"], second[f"scores_{mode}"]
            if len(x) and len(y):
                pairs.append({"x": first["algorithm"], "y": second["algorithm"], **verdict(x, y)})
    return pairs


def reach_verdict(x_times: npt.ArrayLike, y_times: npt.ArrayLike) -> Summary:
    """``verdict`` on times to a threshold (fewer is better; inf: never reached): +1 when X reaches it first."""
    x_runs, y_runs = np.asarray(x_times, dtype=float), np.asarray(y_times, dtype=float)
    return verdict(-x_runs, -y_runs)
