"""Paired statistics of a comparison whose rows share seeds, equivalence, multiplicity and power.

Every row of a grid trains and evaluates with the same seeds (rl-zoo3 seeds the training env, the evaluation env and
the algorithm with the run's seed), so the evaluation start states of seed ``s`` are the same in every row: two
rows' scores are *paired* by seed, and their per-seed differences carry the comparison (the unpaired rank test
ignores the pairing and has little power at 10 seeds).

* ``signed_rank_test``: the exact two-sided Wilcoxon signed-rank test of "the differences are symmetric about 0",
  every sign assignment of the non-zero differences enumerated (zeros count 0; tied magnitudes share their mean
  rank), so ties and zeros are handled exactly; without ties or zeros it is ``scipy.stats.wilcoxon(method="exact")``.
* ``paired_ci``: the 95% percentile bootstrap interval of the mean per-seed difference (seeds resampled as pairs).
* ``tost``: two one-sided signed-rank tests of the differences shifted by the margin (equivalence: the difference
  lies within ``+/- margin``); p = the larger of the two.
* ``holm``: Holm's step-down adjustment of a family of p-values (family-wise error rate).
* ``seeds_needed``: the seeds a test at ``alpha`` needs for 80% power at the observed standardised effect: the
  paired (or two-sample) t-test's n from the noncentral t, divided by the signed-rank (rank-sum) test's asymptotic
  relative efficiency under normality, 3/pi; at least the seeds whose exact test can reach ``alpha`` at all. A report
  sizes each verdict at ``alpha / m`` for a family of ``m`` tests (Holm's strictest step), so the count it prints is
  enough for the verdict after the correction, not only for the uncorrected test.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from scipy import stats

from sb3_tutorial_sac.compare.stats import BOOTSTRAP_REPS, BOOTSTRAP_SEED, CONFIDENCE, bootstrap_ci, mean

ALPHA = 0.05
POWER = 0.8
# Asymptotic relative efficiency of the signed-rank and rank-sum tests to the t-tests under normality
RANK_EFFICIENCY = 3 / math.pi
# Above this many non-zero differences the exact null distribution is drawn by seeded sign flips, not enumerated
EXACT_LIMIT = 20
FLIP_REPS = 200_000


def _signed_ranks(differences: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Signed ranks of the non-zero differences (tied magnitudes share their mean rank)."""
    d = np.asarray(differences, dtype=float)
    d = d[d != 0]
    return np.sign(d) * stats.rankdata(np.abs(d))


def _flip_sums(ranks: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The signed-rank sum under every sign assignment (or ``FLIP_REPS`` seeded ones above ``EXACT_LIMIT``)."""
    magnitudes = np.abs(ranks)
    if len(magnitudes) <= EXACT_LIMIT:
        signs = np.array(list(itertools.product((-1.0, 1.0), repeat=len(magnitudes))))
    else:
        signs = np.random.default_rng(BOOTSTRAP_SEED).choice((-1.0, 1.0), size=(FLIP_REPS, len(magnitudes)))
    return signs @ magnitudes


def signed_rank_test(differences: npt.ArrayLike, alternative: str = "two-sided") -> float:
    """Exact Wilcoxon signed-rank test of the per-seed differences.

    :param differences: ``x - y`` per seed
    :param alternative: ``"two-sided"``, ``"greater"`` (the differences lie above 0) or ``"less"``
    :return: the p-value (1.0 when every difference is zero)
    """
    ranks = _signed_ranks(differences)
    if not len(ranks):
        return 1.0
    observed = ranks.sum()
    null = _flip_sums(ranks)
    tolerance = 1e-9 * max(1.0, float(np.abs(null).max()))
    if alternative == "greater":
        return float(np.mean(null >= observed - tolerance))
    if alternative == "less":
        return float(np.mean(null <= observed + tolerance))
    if alternative != "two-sided":
        raise ValueError(f"alternative must be 'two-sided', 'greater' or 'less', not {alternative!r}")
    return float(min(1.0, np.mean(np.abs(null) >= abs(observed) - tolerance)))


def smallest_p(n: int, paired: bool = True, m: int | None = None) -> float:
    """The smallest two-sided p the exact test can give: ``2 / 2^n`` paired, ``2 / C(n + m, n)`` unpaired."""
    if paired:
        return min(1.0, 2.0 / 2.0**n) if n > 0 else 1.0
    m = n if m is None else m
    return min(1.0, 2.0 / math.comb(n + m, n)) if n > 0 and m > 0 else 1.0


def min_seeds(alpha: float = ALPHA, paired: bool = True) -> int:
    """The fewest seeds (per row) at which the exact test can reject at ``alpha`` at all."""
    n = 1
    while smallest_p(n, paired) >= alpha:
        n += 1
    return n


def paired_ci(x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[float, float]:
    """95% bootstrap interval of the mean of ``x - y`` (seeds resampled as pairs); NaN below two seeds."""
    low, high = bootstrap_ci(mean, np.asarray(x, dtype=float) - np.asarray(y, dtype=float))
    return float(low), float(high)


def tost(x: npt.ArrayLike, y: npt.ArrayLike, margin: float, paired: bool = True) -> float:
    """Equivalence test (two one-sided tests) of ``x`` and ``y`` within ``+/- margin``.

    Paired: signed-rank tests of ``d + margin > 0`` and ``d - margin < 0`` (``d = x - y``); unpaired: one-sided
    exact Mann-Whitney tests of ``x + margin`` above ``y`` and ``x - margin`` below ``y``.

    :return: the larger one-sided p (equivalence is shown when it is below the level)
    """
    if not margin > 0:
        raise ValueError(f"margin must be positive, not {margin}")
    x_runs, y_runs = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if paired:
        d = x_runs - y_runs
        return max(signed_rank_test(d + margin, "greater"), signed_rank_test(d - margin, "less"))

    def one_sided(a: npt.NDArray[np.float64], alternative: str) -> float:
        return float(stats.mannwhitneyu(a, y_runs, alternative=alternative, method="exact").pvalue)

    return max(one_sided(x_runs + margin, "greater"), one_sided(x_runs - margin, "less"))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error rate), in the order given; NaN stays NaN."""
    p = np.asarray(p_values, dtype=float)
    finite = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(len(p), np.nan)
    order = finite[np.argsort(p[finite], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, (len(order) - rank) * p[index])
        adjusted[index] = min(1.0, running)
    return adjusted.tolist()


def _t_power(n: int, effect: float, alpha: float, paired: bool) -> float:
    if paired:
        df, noncentrality = n - 1, effect * math.sqrt(n)
    else:
        df, noncentrality = 2 * n - 2, effect * math.sqrt(n / 2)
    if df < 1:
        return 0.0
    critical = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(critical, df, noncentrality) + stats.nct.cdf(-critical, df, noncentrality))


def t_test_seeds(effect: float, alpha: float = ALPHA, power: float = POWER, paired: bool = True) -> int:
    """Seeds per row the t-test needs for ``power`` at the standardised ``effect`` (Cohen's d_z paired, d
    unpaired): e.g. 34 paired and 64 per group unpaired at 0.5, the textbook figures."""
    effect = abs(effect)
    if not effect > 0:
        return math.inf  # type: ignore[return-value]
    n = 2
    while _t_power(n, effect, alpha, paired) < power:
        n += 1
        if n > 100_000:
            return math.inf  # type: ignore[return-value]
    return n


def effect_size(x: npt.ArrayLike, y: npt.ArrayLike, paired: bool = True) -> float:
    """The standardised effect of ``x`` over ``y``: d_z = mean(d) / std(d, ddof=1) paired (``d = x - y``), Cohen's
    d (pooled std) unpaired; +/-inf when the spread is 0 (or unknown: a single value) and the difference is not, 0
    when both are, NaN without values."""
    x_runs, y_runs = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if not (len(x_runs) and len(y_runs)):
        return math.nan
    if paired:
        d = x_runs - y_runs
        spread = float(np.std(d, ddof=1)) if len(d) > 1 else 0.0
        difference = float(np.mean(d))
    else:
        enough = min(len(x_runs), len(y_runs)) > 1
        spread = math.sqrt((np.var(x_runs, ddof=1) + np.var(y_runs, ddof=1)) / 2) if enough else 0.0
        difference = float(np.mean(x_runs) - np.mean(y_runs))
    if spread > 0:
        return difference / spread
    if math.isnan(difference):
        return math.nan
    return math.copysign(math.inf, difference) if difference else 0.0


def seeds_for_effect(effect: float, paired: bool = True, alpha: float = ALPHA, power: float = POWER) -> float:
    """Seeds per row the exact rank test needs for ``power`` at level ``alpha`` at the standardised ``effect``: the
    t-test's n divided by the rank test's efficiency 3/pi, rounded up, and no fewer than ``min_seeds(alpha)``; inf
    when the effect is 0 or undefined."""
    if math.isnan(effect) or effect == 0:
        return math.inf
    if math.isinf(effect):
        return float(min_seeds(alpha, paired))
    n_t = t_test_seeds(effect, alpha, power, paired)
    if math.isinf(n_t):
        return math.inf
    return float(max(min_seeds(alpha, paired), math.ceil(n_t / RANK_EFFICIENCY)))


def seeds_needed(x: npt.ArrayLike, y: npt.ArrayLike, paired: bool = True, alpha: float = ALPHA, power: float = POWER) -> float:
    """Seeds per row the exact rank test would need for ``power`` at level ``alpha`` at the effect the samples show
    (``effect_size``, then ``seeds_for_effect``). A verdict judged after Holm's correction over a family of ``m``
    tests is sized at ``alpha / m``, the level of Holm's strictest step."""
    return seeds_for_effect(effect_size(x, y, paired), paired, alpha, power)


__all__ = [
    "ALPHA",
    "BOOTSTRAP_REPS",
    "CONFIDENCE",
    "effect_size",
    "holm",
    "min_seeds",
    "paired_ci",
    "seeds_for_effect",
    "seeds_needed",
    "signed_rank_test",
    "smallest_p",
    "t_test_seeds",
    "tost",
]
