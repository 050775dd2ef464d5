"""sigmoid and tanh of fastrnn.kernels.activations against numpy, over the whole float range.

The truth is computed in np.longdouble (80-bit on x86-64) when the platform has it, else float64,
from the very same input values (float32 inputs are widened exactly).
"""

import numpy as np
import pytest

from numba import njit

from fastrnn.kernels.activations import exp_nonpositive, sigmoid, sigmoid_into, tanh, tanh_into

TRUTH = np.longdouble if np.finfo(np.longdouble).eps < 1e-17 else np.float64


def true_sigmoid(z):
    """1 / (1 + exp(-z)) for z >= 0 and exp(z) / (1 + exp(z)) for z < 0, in TRUTH precision."""
    z = np.asarray(z, dtype=TRUTH)
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def true_tanh(z):
    return np.tanh(np.asarray(z, dtype=TRUTH))


@njit
def exp_nonpositive_into(src, dst):
    for i in range(src.shape[0]):
        dst[i] = exp_nonpositive(src[i])


def grid(dtype):
    """Every regime: ±0, subnormals, |z| < 1e-3, [-50, 50], huge magnitudes, the largest
    finite values and ±inf."""
    info = np.finfo(dtype)
    smallest_subnormal = info.smallest_subnormal
    tiny = np.logspace(np.log10(float(smallest_subnormal)), -3, 4000)
    huge = np.logspace(1, np.log10(float(info.max)) - 1e-9, 4000)
    parts = [
        np.array([0.0, -0.0, smallest_subnormal, -smallest_subnormal, info.tiny, -info.tiny]),
        tiny, -tiny,
        np.linspace(-1e-3, 1e-3, 20001),
        np.linspace(-50, 50, 200001),
        np.linspace(-1000, 1000, 20001),
        huge, -huge,
        np.array([info.max, -info.max, np.inf, -np.inf]),
    ]
    with np.errstate(over='ignore', under='ignore'):
        return np.ascontiguousarray(np.concatenate([p.astype(dtype) for p in parts]))


# float64: < 1e-14 relative where the true value is a normal number above 1e-300;
# float32: results stored in float32 are within 1e-6 relative of the truth.
TOLERANCE = {
    np.float64: dict(rtol=1e-14, normal_above=1e-300),
    np.float32: dict(rtol=1e-6, normal_above=float(np.finfo(np.float32).tiny)),
}


def apply_into(into, z):
    out = np.full_like(z, np.nan)
    into(z, out)
    return out


def check_accuracy(got, truth, dtype, rtol=None):
    tol = dict(TOLERANCE[dtype], **({} if rtol is None else dict(rtol=rtol)))
    assert got.dtype == dtype
    assert not np.isnan(got).any()
    got = got.astype(TRUTH)
    normal = np.abs(truth) > tol['normal_above']
    rel = np.abs(got[normal] - truth[normal]) / np.abs(truth[normal])
    worst = np.argmax(rel)
    assert rel[worst] < tol['rtol'], (
        f"max relative error {float(rel[worst]):.3e} at z-index {worst} (true {truth[normal][worst]})")
    # where the true value is tiny, an absolute error at most that tiny bound
    assert np.all(np.abs(got[~normal] - truth[~normal]) <= tol['normal_above'])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name, into, truth", [
    ("sigmoid", sigmoid_into, true_sigmoid),
    ("tanh", tanh_into, true_tanh),
])
def test_accuracy_over_the_whole_float_range(dtype, name, into, truth):
    z = grid(dtype)
    check_accuracy(apply_into(into, z), truth(z), dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_exp_of_nonpositive_arguments(dtype):
    """exp on u <= 0, which the softmax and sampling kernels use directly, within one
    machine epsilon relative (measured: 0.69 eps in both widths).  The grid covers
    every reduced argument |r| <= ln2/2 many times over, so this bounds the
    polynomial itself: float64's degree-8 fit, 7e-15 off in p, would fail it."""
    u = grid(dtype)
    u = u[u <= 0]
    check_accuracy(apply_into(exp_nonpositive_into, u), np.exp(u.astype(TRUTH)), dtype,
                   rtol=float(np.finfo(dtype).eps))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_limits(dtype):
    z = np.array([np.inf, np.finfo(dtype).max, 0.0, -0.0, -np.finfo(dtype).max, -np.inf], dtype=dtype)
    s = apply_into(sigmoid_into, z)
    np.testing.assert_array_equal(s[:4], np.array([1, 1, 0.5, 0.5], dtype))
    # sigmoid(-inf) = 0; like everywhere else, a result within 1e-300 of a tiny truth is as good
    assert np.all((0 <= s[4:]) & (s[4:] <= TOLERANCE[np.float64]['normal_above']))
    np.testing.assert_array_equal(apply_into(tanh_into, z), np.array([1, 1, 0, 0, -1, -1], dtype))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tanh_is_odd(dtype):
    z = grid(dtype)
    np.testing.assert_array_equal(apply_into(tanh_into, -z), -apply_into(tanh_into, z))


def test_sigmoid_of_z_plus_sigmoid_of_minus_z_is_one():
    z = grid(np.float64)
    total = apply_into(sigmoid_into, z) + apply_into(sigmoid_into, -z)
    assert np.max(np.abs(total - 1.0)) <= 1e-15


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_monotone_and_in_range(dtype):
    z = np.sort(grid(dtype))
    s = apply_into(sigmoid_into, z)
    t = apply_into(tanh_into, z)
    assert np.all(np.diff(s) >= 0) and np.all((0 <= s) & (s <= 1))
    assert np.all(np.diff(t) >= 0) and np.all((-1 <= t) & (t <= 1))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_no_floating_point_warnings(dtype):
    z = grid(dtype)
    with np.errstate(all='raise'):
        apply_into(sigmoid_into, z)
        apply_into(tanh_into, z)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_scalar_functions_match_the_array_wrappers(dtype):
    z = grid(dtype)[::97]
    scalar_sigmoid = np.array([sigmoid(v) for v in z]).astype(dtype)
    scalar_tanh = np.array([tanh(v) for v in z]).astype(dtype)
    np.testing.assert_array_equal(scalar_sigmoid, apply_into(sigmoid_into, z))
    np.testing.assert_array_equal(scalar_tanh, apply_into(tanh_into, z))
    check_accuracy(scalar_sigmoid, true_sigmoid(z), dtype)
    check_accuracy(scalar_tanh, true_tanh(z), dtype)


@pytest.mark.parametrize("value", [0.0, 1e-300, -3.5, 20.0, 710.0, -1e308])
def test_scalar_functions_on_python_floats(value):
    assert sigmoid(value) == pytest.approx(float(true_sigmoid(value)), rel=1e-14, abs=1e-300)
    assert tanh(value) == pytest.approx(float(true_tanh(value)), rel=1e-14, abs=1e-300)
