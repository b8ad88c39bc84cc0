"""The CPU kernels' own exponential (``_exp_nonpositive``) against NumPy's, element by element.

The softmax, loss and gradient kernels take every exponential from it, so the
parity tests cover it only through sums; here each value is checked to within
one unit in the last place, over the whole domain the kernels give it (logits
minus their row maximum, so x <= 0), with its edges: 0, the flush threshold,
-inf and NaN.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastsoftmax.kernels._cpu_kernels import _EXP_FLUSH, _exp_nonpositive

SMALLEST_NORMAL = np.finfo(np.float64).tiny


def exp_kernel(x):
    v = np.array(x, dtype=np.float64)
    _exp_nonpositive(v, v.size)
    return v


def ulps(got, want):
    return np.abs(got - want) / np.spacing(want)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=_EXP_FLUSH, max_value=0.0), min_size=1, max_size=300))
def test_within_one_ulp_of_numpy(xs):
    x = np.array(xs)
    got, want = exp_kernel(x), np.exp(x)
    normal = want >= SMALLEST_NORMAL  # the last few above the threshold come out subnormal
    assert ulps(got[normal], want[normal]).max(initial=0) <= 1.0
    np.testing.assert_allclose(got[~normal], want[~normal], rtol=0, atol=SMALLEST_NORMAL)


def test_dense_sweep_within_one_ulp():
    rng = np.random.default_rng(12345)
    x = np.concatenate([-rng.exponential(30.0, 200_000), -rng.random(200_000) * 2, np.linspace(-700, 0, 100_001)])
    got, want = exp_kernel(x), np.exp(x)
    assert ulps(got, want).max() <= 1.0


@pytest.mark.parametrize("x, want", [(0.0, 1.0), (-0.0, 1.0), (-1e-300, 1.0), (-np.inf, 0.0),
                                     (-745.2, 0.0), (_EXP_FLUSH - 1e-9, 0.0), (-1e308, 0.0)])
def test_edges(x, want):
    assert exp_kernel([x])[0] == want


def test_nan_stays_nan():
    """A diverged logit must reach the loss as NaN, so that training stops."""
    got = exp_kernel([-1.0, np.nan, -2.0])
    assert np.isnan(got[1]) and np.isfinite(got[[0, 2]]).all()


def test_only_the_first_n_are_written():
    v = np.full(10, -1.0)
    _exp_nonpositive(v, 7)
    np.testing.assert_array_equal(v[7:], -1.0)
    np.testing.assert_allclose(v[:7], np.exp(-1.0), rtol=1e-15)
