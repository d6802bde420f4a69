"""The statistics ``benchmarks/throughput.py`` reads its speed ratios with: the distribution-free interval of a median
and the verdict against a line (issue 22's 1.3x and 1.0x)."""

import importlib.util
import math
import pathlib

import numpy as np
import pytest
from scipy import stats

_PATH = pathlib.Path(__file__).parents[1] / "benchmarks" / "throughput.py"
_SPEC = importlib.util.spec_from_file_location("throughput_under_test", _PATH)
assert _SPEC is not None and _SPEC.loader is not None
throughput = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(throughput)  # not __main__: it pins no core


@pytest.mark.parametrize("n", [6, 9, 15, 31])
def test_median_interval_is_the_widest_order_statistic_pair_of_95_percent_coverage(n):
    values = list(np.random.default_rng(n).permutation(np.arange(1.0, n + 1)))  # k-th smallest is k
    low, high = throughput.median_interval(values)
    k = int(low)
    assert high == n + 1 - k
    # coverage of (x_(k), x_(n+1-k)): P(k <= B <= n - k), B ~ Binomial(n, 1/2)
    coverage = stats.binom.cdf(n - k, n, 0.5) - stats.binom.cdf(k - 1, n, 0.5)
    assert coverage >= 0.95
    narrower = stats.binom.cdf(n - k - 1, n, 0.5) - stats.binom.cdf(k, n, 0.5)
    assert narrower < 0.95  # the next pair inwards no longer covers 95%


def test_describe_ratio_calls_a_side_only_when_the_interval_excludes_the_line():
    assert throughput.describe_ratio([0.80, 0.85, 0.82, 0.90, 0.87, 0.86, 0.84, 0.83, 0.88], 1.0).endswith("below 1")
    assert throughput.describe_ratio([1.31, 1.40, 1.35, 1.33, 1.45, 1.38, 1.36, 1.34, 1.37], 1.3).endswith("above 1.3")
    text = throughput.describe_ratio([0.90, 0.95, 1.02, 0.93, 0.97, 0.91, 0.92, 0.99, 1.05], 1.0)
    assert text == "0.950 [0.910, 1.020] inconclusive at 1"
    # five repeats: their whole range covers the median 94%, short of 95%: no verdict, however far from the line
    assert all(math.isnan(end) for end in throughput.median_interval([0.50, 0.51, 0.52, 0.53, 0.54]))
    assert "no verdict" in throughput.describe_ratio([0.50, 0.51, 0.52, 0.53, 0.54], 1.0)
