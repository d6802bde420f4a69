"""The benchmarks' shared harness (``benchmarks/common.py``): the statistics every script reads its speed ratios with
(the distribution-free interval of a median, the verdict against a line: issue 22's 1.3x and 1.0x), the alternation
and the reading of ``--core`` before torch is imported."""

import math
import os
import pathlib
import sys

import numpy as np
import pytest
from scipy import stats

# the scripts import their harness as `common` (their folder is on sys.path when run); so does this test
sys.path.insert(0, str(pathlib.Path(__file__).parents[1] / "benchmarks"))
import common


@pytest.mark.parametrize("n", [6, 9, 15, 31])
def test_median_interval_is_the_widest_order_statistic_pair_of_95_percent_coverage(n):
    values = list(np.random.default_rng(n).permutation(np.arange(1.0, n + 1)))  # k-th smallest is k
    low, high = common.median_interval(values)
    k = int(low)
    assert high == n + 1 - k
    # coverage of (x_(k), x_(n+1-k)): P(k <= B <= n - k), B ~ Binomial(n, 1/2)
    coverage = stats.binom.cdf(n - k, n, 0.5) - stats.binom.cdf(k - 1, n, 0.5)
    assert coverage >= 0.95
    narrower = stats.binom.cdf(n - k - 1, n, 0.5) - stats.binom.cdf(k, n, 0.5)
    assert narrower < 0.95  # the next pair inwards no longer covers 95%


def test_describe_ratio_calls_a_side_only_when_the_interval_excludes_the_line():
    assert common.describe_ratio([0.80, 0.85, 0.82, 0.90, 0.87, 0.86, 0.84, 0.83, 0.88], 1.0).endswith("below 1")
    assert common.describe_ratio([1.31, 1.40, 1.35, 1.33, 1.45, 1.38, 1.36, 1.34, 1.37], 1.3).endswith("above 1.3")
    text = common.describe_ratio([0.90, 0.95, 1.02, 0.93, 0.97, 0.91, 0.92, 0.99, 1.05], 1.0)
    assert text == "0.950 [0.910, 1.020] inconclusive at 1"
    # five repeats: their whole range covers the median 94%, short of 95%: no verdict, however far from the line
    assert all(math.isnan(end) for end in common.median_interval([0.50, 0.51, 0.52, 0.53, 0.54]))
    assert "no verdict" in common.describe_ratio([0.50, 0.51, 0.52, 0.53, 0.54], 1.0)


def test_describe_median_gives_the_interval_or_says_there_is_none():
    assert common.describe_median([0.90, 0.95, 1.02, 0.93, 0.97, 0.91, 0.92, 0.99, 1.05]) == "0.950 [0.910, 1.020]"
    assert common.describe_median([0.5, 0.6, 0.7]) == "0.600 (no 95% interval: 3 values)"


def test_alternate_reverses_every_other_round_and_ratios_pair_by_position():
    assert [common.alternate("AB", k) for k in range(3)] == [["A", "B"], ["B", "A"], ["A", "B"]]
    assert common.paired_ratios([2.0, 3.0], [1.0, 2.0]) == [2.0, 1.5]
    with pytest.raises(ValueError):
        common.paired_ratios([1.0], [1.0, 2.0])  # a repeat missing on one side is an error, not a shorter list


def test_core_is_read_from_the_command_line_before_argparse():
    last = max(os.sched_getaffinity(0))
    assert common.core_from_argv("last", ["--repeats", "3"]) == last
    assert common.core_from_argv(None, ["x"]) is None
    assert common.core_from_argv("last", ["--core", "-1"]) is None
    assert common.core_from_argv(None, [f"--core={last}"]) == last
    with pytest.raises(ValueError, match="--core must be one of"):
        common.core_from_argv(None, ["--core", "100000"])


def test_importing_the_harness_starts_no_numerical_library():
    # a script pins its core after importing common and before numpy, torch or JAX: common must not import them
    import subprocess

    code = "import sys, common; print(sorted(m for m in ('numpy', 'torch', 'jax', 'scipy') if m in sys.modules))"
    folder = pathlib.Path(__file__).parents[1] / "benchmarks"
    out = subprocess.run([sys.executable, "-c", code], cwd=folder, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
