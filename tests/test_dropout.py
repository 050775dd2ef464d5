"""Counter-based dropout (fastrnn.dropout): against the Python-int reference, and the
properties the training loop relies on (pieces of a batch or window see the same mask)."""

import numpy as np
import pytest

from fastrnn.dropout import CounterDropout

from reference import dropout_keep


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("H", [1, 4, 7])
def test_mask_matches_reference(dtype, H):
    rate, seed, step, layer = 0.3, 12345, 17, 2
    values = np.random.default_rng(0).standard_normal((3, 5, H)).astype(dtype)
    expected_keep = dropout_keep(seed, step, layer, range(4, 7), range(9, 14), H, 1 - rate)
    out = CounterDropout(rate, seed).apply(values.copy(), step, layer, first_stream=4, first_t=9)
    assert out.dtype == dtype
    expected = np.where(expected_keep, values * dtype(1 / (1 - rate)), 0).astype(dtype)
    np.testing.assert_array_equal(out, expected)


def test_pieces_of_streams_and_time_see_the_whole_mask():
    dropout = CounterDropout(0.5, 3)
    whole = dropout.apply(np.ones((6, 40, 16)), step=5, layer=1)
    top = dropout.apply(np.ones((2, 40, 16)), step=5, layer=1, first_stream=0)
    bottom = dropout.apply(np.ones((4, 40, 16)), step=5, layer=1, first_stream=2)
    later = dropout.apply(np.ones((6, 15, 16)), step=5, layer=1, first_t=25)
    np.testing.assert_array_equal(np.concatenate([top, bottom]), whole)
    np.testing.assert_array_equal(later, whole[:, 25:])


@pytest.mark.parametrize("field", ["seed", "step", "layer"])
def test_every_key_field_changes_the_mask(field):
    key = dict(seed=1, step=2, layer=0)
    base = CounterDropout(0.5, key["seed"]).apply(np.ones((4, 8, 32)), key["step"], key["layer"])
    key[field] += 1
    other = CounterDropout(0.5, key["seed"]).apply(np.ones((4, 8, 32)), key["step"], key["layer"])
    assert not np.array_equal(base, other)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_kept_fraction_and_scale(rate):
    out = CounterDropout(rate, 0).apply(np.ones((8, 128, 256), np.float32), step=0, layer=0)
    kept = out != 0
    # 262,144 draws: the kept fraction's standard deviation is below 0.001.
    assert abs(kept.mean() - (1 - rate)) < 0.005
    np.testing.assert_allclose(out[kept], np.float32(1 / (1 - rate)))


def test_rate_zero_is_identity():
    values = np.random.default_rng(1).standard_normal((2, 3, 5))
    np.testing.assert_array_equal(CounterDropout(0.0, 0).apply(values.copy(), 0, 0), values)


@pytest.mark.parametrize("values, message", [
    (np.ones((2, 3)), r"\(R, T, H\), got float64 \(2, 3\)"),
    (np.ones((2, 3, 4), np.int64), "got int64"),
    (np.ones((2, 3, 4))[:, ::2], "non-contiguous"),
    ([[[1.0]]], "got list"),
])
def test_bad_values(values, message):
    with pytest.raises(ValueError, match=message):
        CounterDropout(0.5, 0).apply(values, 0, 0)


@pytest.mark.parametrize("kwargs, message", [
    (dict(step=-1, layer=0), "step: expected an integer in"),
    (dict(step=0, layer=1.5), "layer: expected an integer in"),
    (dict(step=0, layer=0, first_stream=2 ** 63), "first_stream"),
])
def test_bad_keys(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CounterDropout(0.5, 0).apply(np.ones((1, 1, 1)), **kwargs)


@pytest.mark.parametrize("rate", [-0.1, 1.0, "0.5", True])
def test_bad_rate(rate):
    with pytest.raises(ValueError, match=r"expected a probability in \[0, 1\)"):
        CounterDropout(rate, 0)
