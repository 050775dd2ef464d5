"""Every fastrnn layer and optimizer against the numpy reference in tests/reference.py.

Shapes include the degenerate ones (N = 1, T = 1) and D != H; parameters are also scaled by 50 so
that the gates saturate; inputs come contiguous, as strided views and transposed; float64 results
must match the reference to ~1e-10, float32 ones to ~1e-4 and stay float32.
"""

import numpy as np
import pytest

from fastrnn.layer_utils import (LSTM, VanillaRNN, temporal_fc, temporal_softmax_loss,
                                 word_embedding)
from fastrnn.optim import SGD, SGDM, RMSProp, Adam
from fastrnn.rnn import LanguageModelRNN

import reference as ref

RTOL = {np.float64: 1e-10, np.float32: 1e-4}

SHAPES = [  # N, T, D, H
    (1, 1, 3, 4),
    (1, 6, 4, 2),
    (3, 1, 2, 5),
    (4, 7, 6, 3),
]
LAYOUTS = ['contiguous', 'strided', 'transposed']
DTYPES = [np.float64, np.float32]
SCALES = [1.0, 50.0]


def assert_matches(actual, expected, dtype, what=''):
    """actual has the dtype under test and equals the float64 reference within the dtype's
    tolerance, elementwise relative with an absolute floor relative to the array's magnitude."""
    actual = np.asarray(actual)
    assert actual.dtype == dtype, f"{what}: dtype {actual.dtype}, expected {np.dtype(dtype)}"
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert np.all(np.isfinite(actual)), f"{what}: not finite"
    rtol = RTOL[dtype]
    np.testing.assert_allclose(actual, expected, rtol=rtol,
                               atol=rtol * max(1.0, np.abs(expected).max(initial=0.0)), err_msg=what)


def draw(shape, layout, dtype, scale=1.0):
    """A standard normal array of `shape` (times `scale`) laid out as asked:
    'contiguous'; 'strided': every other element of a larger array along the second-to-last
    axis (the time axis for (N, T, D)); 'transposed': the transpose of a C array (F order)."""
    shape = tuple(shape)

    def normal(*dims):
        return (scale * np.random.randn(*dims)).astype(dtype)

    if layout == 'contiguous':
        a = normal(*shape)
    elif layout == 'strided':
        axis = max(len(shape) - 2, 0)
        big = list(shape)
        big[axis] *= 2
        a = normal(*big)[(slice(None),) * axis + (slice(None, None, 2),)]
    elif layout == 'transposed':
        a = normal(*shape[::-1]).T
    else:
        raise AssertionError(layout)
    assert a.dtype == dtype
    assert a.shape == shape
    return a


def make_recurrent(cell_type, D, H, dtype, scale, param_layout='contiguous'):
    G = H if cell_type == 'rnn' else 4 * H
    layer = (VanillaRNN if cell_type == 'rnn' else LSTM)(D, H, name='under_test', dtype=dtype)
    layer.params[layer.wx_name] = draw((D, G), param_layout, dtype, scale)
    layer.params[layer.wh_name] = draw((H, G), param_layout, dtype, scale)
    layer.params[layer.b_name] = draw((G,), 'contiguous', dtype, scale)
    return layer


def weights(layer):
    return layer.params[layer.wx_name], layer.params[layer.wh_name], layer.params[layer.b_name]


# --------------------------------------------------------------------------------------------
# Recurrent layers over a sequence
# --------------------------------------------------------------------------------------------

def reference_sequence(cell_type, x, h0, dh, Wx, Wh, b):
    """-> h, (dx, dh0, dWx, dWh, db)"""
    if cell_type == 'rnn':
        h, cache = ref.rnn_forward(x, h0, Wx, Wh, b)
        return h, ref.rnn_backward(dh, cache)
    h, _, cache = ref.lstm_forward(x, h0, Wx, Wh, b)
    dx, dh0, _, dWx, dWh, db = ref.lstm_backward(dh, cache)
    return h, (dx, dh0, dWx, dWh, db)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("N, T, D, H", SHAPES)
@pytest.mark.parametrize("cell_type", ['rnn', 'lstm'])
def test_recurrent_forward_backward(cell_type, N, T, D, H, layout, dtype, scale):
    layer = make_recurrent(cell_type, D, H, dtype, scale)
    x = draw((N, T, D), layout, dtype)
    h0 = draw((N, H), layout, dtype)
    dh = draw((N, T, H), layout, dtype)

    inputs = [x.copy(), h0.copy(), dh.copy(), *(w.copy() for w in weights(layer))]

    h = layer.forward(x, h0)
    dx, dh0 = layer.backward(dh)

    for before, after in zip(inputs, [x, h0, dh, *weights(layer)]):
        np.testing.assert_array_equal(before, after, err_msg="an input was modified")
    h_ref, (dx_ref, dh0_ref, dWx_ref, dWh_ref, db_ref) = reference_sequence(
        cell_type, x, h0, dh, *weights(layer))
    assert_matches(h, h_ref, dtype, 'h')
    assert_matches(dx, dx_ref, dtype, 'dx')
    assert_matches(dh0, dh0_ref, dtype, 'dh0')
    assert_matches(layer.grads[layer.wx_name], dWx_ref, dtype, 'dWx')
    assert_matches(layer.grads[layer.wh_name], dWh_ref, dtype, 'dWh')
    assert_matches(layer.grads[layer.b_name], db_ref, dtype, 'db')


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", ['strided', 'transposed'])
@pytest.mark.parametrize("cell_type", ['rnn', 'lstm'])
def test_recurrent_with_non_contiguous_parameters(cell_type, layout, dtype):
    N, T, D, H = 3, 5, 4, 6
    layer = make_recurrent(cell_type, D, H, dtype, 1.0, param_layout=layout)
    x = draw((N, T, D), 'contiguous', dtype)
    h0 = draw((N, H), 'contiguous', dtype)
    dh = draw((N, T, H), 'contiguous', dtype)

    h = layer.forward(x, h0)
    dx, dh0 = layer.backward(dh)

    h_ref, grads_ref = reference_sequence(cell_type, x, h0, dh, *weights(layer))
    assert_matches(h, h_ref, dtype, 'h')
    for name, got, want in zip(['dx', 'dh0', 'dWx', 'dWh', 'db'],
                               [dx, dh0, *(layer.grads[k] for k in
                                           (layer.wx_name, layer.wh_name, layer.b_name))],
                               grads_ref):
        assert_matches(got, want, dtype, name)


@pytest.mark.parametrize("cell_type", ['rnn', 'lstm'])
def test_saturated_gates_stay_finite(cell_type):
    N, T, D, H = 4, 20, 5, 8
    layer = make_recurrent(cell_type, D, H, np.float64, 1000.0)
    x = 100.0 * np.random.randn(N, T, D)
    h0 = np.random.randn(N, H)
    with np.errstate(all='raise'):
        h = layer.forward(x, h0)
        dx, dh0 = layer.backward(np.random.randn(N, T, H))
    assert np.all(np.abs(h) <= 1.0)
    for a in (dx, dh0, *layer.grads.values()):
        assert np.all(np.isfinite(a))
    h_ref, grads_ref = reference_sequence(cell_type, x, h0, np.zeros((N, T, H)), *weights(layer))
    assert_matches(h, h_ref, np.float64, 'h')


@pytest.mark.parametrize("dtype", DTYPES)
def test_lstm_forward_with_carried_cell_state(dtype):
    N, T, D, H = 3, 4, 5, 6
    layer = make_recurrent('lstm', D, H, dtype, 1.0)
    x = draw((N, T, D), 'contiguous', dtype)
    h0 = draw((N, H), 'contiguous', dtype)
    c0 = draw((N, H), 'contiguous', dtype)

    h = layer.forward(x, h0, c0=c0)

    h_ref, c_ref, _ = ref.lstm_forward(x, h0, *weights(layer), c0=c0)
    assert_matches(h, h_ref, dtype, 'h')
    zero_c0 = ref.lstm_forward(x, h0, *weights(layer))[0]
    assert not np.allclose(h_ref, zero_c0)
    np.testing.assert_allclose(layer.forward(x, h0), zero_c0, rtol=RTOL[dtype],
                               atol=RTOL[dtype])


# --------------------------------------------------------------------------------------------
# Step functions
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("N, T, D, H", SHAPES)
def test_rnn_step(N, T, D, H, layout, dtype, scale):
    layer = make_recurrent('rnn', D, H, dtype, scale)
    x = draw((N, D), layout, dtype)
    prev_h = draw((N, H), layout, dtype)
    dnext_h = draw((N, H), layout, dtype)

    next_h, meta = layer.step_forward(x, prev_h)
    grads = layer.step_backward(dnext_h, meta)

    next_h_ref, cache = ref.rnn_step_forward(x, prev_h, *weights(layer))
    grads_ref = ref.rnn_step_backward(dnext_h, cache)
    assert_matches(next_h, next_h_ref, dtype, 'next_h')
    for name, got, want in zip(['dx', 'dprev_h', 'dWx', 'dWh', 'db'], grads, grads_ref):
        assert_matches(got, want, dtype, name)


@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("N, T, D, H", SHAPES)
def test_lstm_step(N, T, D, H, layout, dtype, scale):
    layer = make_recurrent('lstm', D, H, dtype, scale)
    x = draw((N, D), layout, dtype)
    prev_h = draw((N, H), layout, dtype)
    prev_c = draw((N, H), layout, dtype)
    dnext_h = draw((N, H), layout, dtype)
    dnext_c = draw((N, H), layout, dtype)

    next_h, next_c, meta = layer.step_forward(x, prev_h, prev_c)
    grads = layer.step_backward(dnext_h, dnext_c, meta)

    next_h_ref, next_c_ref, cache = ref.lstm_step_forward(x, prev_h, prev_c, *weights(layer))
    grads_ref = ref.lstm_step_backward(dnext_h, dnext_c, cache)
    assert_matches(next_h, next_h_ref, dtype, 'next_h')
    assert_matches(next_c, next_c_ref, dtype, 'next_c')
    for name, got, want in zip(['dx', 'dprev_h', 'dprev_c', 'dWx', 'dWh', 'db'], grads, grads_ref):
        assert_matches(got, want, dtype, name)


def test_lstm_steps_chained_give_truncated_bptt_with_carried_state():
    """Forward through T steps from a carried (h0, c0), backward from dh on every step and a
    gradient on the last cell state: the step API gives the reference's dx, dh0, dc0 and weights."""
    N, T, D, H = 2, 5, 3, 4
    layer = make_recurrent('lstm', D, H, np.float64, 1.0)
    x, h0, c0 = np.random.randn(N, T, D), np.random.randn(N, H), np.random.randn(N, H)
    dh, dc_last = np.random.randn(N, T, H), np.random.randn(N, H)

    h, c, metas = h0, c0, []
    for t in range(T):
        h, c, meta = layer.step_forward(x[:, t, :], h, c)
        metas.append(meta)
    dx = np.zeros((N, T, D))
    dprev_h, dprev_c = np.zeros((N, H)), dc_last
    dWx, dWh, db = (np.zeros_like(w) for w in weights(layer))
    for t in reversed(range(T)):
        dx[:, t, :], dprev_h, dprev_c, dWx_t, dWh_t, db_t = layer.step_backward(
            dh[:, t, :] + dprev_h, dprev_c, metas[t])
        dWx += dWx_t
        dWh += dWh_t
        db += db_t

    h_ref, c_ref, cache = ref.lstm_forward(x, h0, *weights(layer), c0=c0)
    grads_ref = ref.lstm_backward(dh, cache, dc_last=dc_last)
    assert_matches(h, h_ref[:, -1], np.float64, 'h_T')
    assert_matches(c, c_ref[:, -1], np.float64, 'c_T')
    for name, got, want in zip(['dx', 'dh0', 'dc0', 'dWx', 'dWh', 'db'],
                               [dx, dprev_h, dprev_c, dWx, dWh, db], grads_ref):
        assert_matches(got, want, np.float64, name)


# --------------------------------------------------------------------------------------------
# Word embedding, temporal fc, temporal softmax loss
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("index_dtype", [np.int64, np.int32])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("N, T, V, D", [(1, 1, 1, 1), (2, 4, 5, 3), (50, 3, 5, 6), (3, 9, 40, 7)])
def test_word_embedding(N, T, V, D, dtype, index_dtype):
    we = word_embedding(V, D, name='we_test', dtype=dtype)
    W = np.random.randn(V, D).astype(dtype)
    we.params[we.w_name] = W
    words = np.random.randint(V, size=(N, 2 * T)).astype(index_dtype)[:, ::2]  # a strided view
    dout = draw((N, T, D), 'transposed', dtype)

    out = we.forward(words)
    we.backward(dout)

    assert_matches(out, ref.word_embedding_forward(words, W), dtype, 'out')
    assert_matches(we.grads[we.w_name], ref.word_embedding_backward(dout, words, V), dtype, 'dW')


def test_word_embedding_repeated_words_accumulate():
    V, D = 6, 3
    we = word_embedding(V, D)
    words = np.array([[4, 4, 4], [4, 1, 4]])
    dout = np.random.randn(2, 3, D)

    we.forward(words)
    we.backward(dout)
    dW = we.grads[we.w_name]

    np.testing.assert_allclose(dW[4], dout[0].sum(axis=0) + dout[1, 0] + dout[1, 2], rtol=1e-14)
    np.testing.assert_allclose(dW[1], dout[1, 1], rtol=1e-14)
    assert np.all(dW[[0, 2, 3, 5]] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("N, T, D, M", [(1, 1, 3, 4), (2, 3, 4, 5), (5, 8, 7, 2)])
def test_temporal_fc(N, T, D, M, layout, dtype):
    fc = temporal_fc(D, M, name='fc_test', dtype=dtype)
    fc.params[fc.w_name] = draw((D, M), layout, dtype)
    fc.params[fc.b_name] = draw((M,), 'contiguous', dtype)
    x = draw((N, T, D), layout, dtype)
    dout = draw((N, T, M), layout, dtype)

    out = fc.forward(x)
    dx = fc.backward(dout)

    w, b = fc.params[fc.w_name], fc.params[fc.b_name]
    dx_ref, dw_ref, db_ref = ref.temporal_fc_backward(dout, x, w)
    assert_matches(out, ref.temporal_fc_forward(x, w, b), dtype, 'out')
    assert_matches(dx, dx_ref, dtype, 'dx')
    assert_matches(fc.grads[fc.w_name], dw_ref, dtype, 'dw')
    assert_matches(fc.grads[fc.b_name], db_ref, dtype, 'db')


@pytest.mark.parametrize("mask_kind", ['bool', 'float', 'int', 'all_false'])
@pytest.mark.parametrize("dim_average", [True, False])
@pytest.mark.parametrize("scale", [1.0, 1e4])
@pytest.mark.parametrize("dtype", DTYPES)
# the last shape has more than 2**16 scores: large enough for a multithreaded path
@pytest.mark.parametrize("N, T, V", [(1, 1, 2), (7, 8, 9), (3, 1, 50), (64, 32, 40)])
def test_temporal_softmax_loss(N, T, V, dtype, scale, dim_average, mask_kind):
    scores = draw((N, T, V), 'strided', dtype, scale)
    labels = np.random.randint(V, size=(N, T))
    mask = np.random.rand(N, T) > 0.3
    mask = {'bool': mask, 'float': mask.astype(np.float64), 'int': mask.astype(np.int64),
            'all_false': np.zeros((N, T), dtype=bool)}[mask_kind]
    loss_func = temporal_softmax_loss(dim_average=dim_average)

    loss = loss_func.forward(scores, labels, mask)
    dscores = loss_func.backward()

    loss_ref, dscores_ref = ref.temporal_softmax_loss(scores, labels, mask, dim_average)
    assert np.isfinite(loss)
    assert loss == pytest.approx(loss_ref, rel=RTOL[dtype], abs=RTOL[dtype])
    assert_matches(dscores, dscores_ref, dtype, 'dscores')
    if mask_kind == 'all_false':
        assert loss == 0 and np.all(dscores == 0)


# --------------------------------------------------------------------------------------------
# Optimizers: fastrnn's step() on a real model against the reference update rules
# --------------------------------------------------------------------------------------------

OPTIMIZERS = {
    'SGD': (lambda model, lr: SGD(model, lr), lambda lr: ref.SGD(lr)),
    'SGDM': (lambda model, lr: SGDM(model, lr, momentum=0.9), lambda lr: ref.SGDM(lr, 0.9)),
    'RMSProp': (lambda model, lr: RMSProp(model, lr, decay=0.9, eps=1e-8),
                lambda lr: ref.RMSProp(lr, 0.9, 1e-8)),
    'Adam': (lambda model, lr: Adam(model, lr, beta1=0.8, beta2=0.99, eps=1e-8),
             lambda lr: ref.Adam(lr, 0.8, 0.99, 1e-8)),
}


def fill_grads(model, V, N=3, T=4):
    words = np.random.randint(V, size=(N, T))
    labels = np.random.randint(V, size=(N, T))
    loss_func = temporal_softmax_loss()
    loss_func.forward(model.forward(words, np.random.randn(N, model.hidden_dim)), labels,
                      np.ones((N, T)))
    model.backward(loss_func.backward())
    return {k: np.array(model.grads[k], copy=True) for k in model.params}


@pytest.mark.parametrize("schedule", ['one step', 'constant lr', 'lr changed between steps'])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer(name, schedule):
    make, make_ref = OPTIMIZERS[name]
    V, lr = 11, 0.05
    model = LanguageModelRNN(V, 4, 5, cell_type='lstm')
    arrays = {k: model.params[k] for k in model.params}
    expected = {k: np.array(v, copy=True) for k, v in arrays.items()}
    initial = {k: np.array(v, copy=True) for k, v in arrays.items()}
    optimizer, optimizer_ref = make(model, lr), make_ref(lr)

    n_steps = 1 if schedule == 'one step' else 6
    for step in range(n_steps):
        if schedule == 'lr changed between steps' and step > 0:
            optimizer.lr = optimizer_ref.lr = lr * 0.5 ** step
        grads = fill_grads(model, V)
        optimizer.step()
        optimizer_ref.step(expected, grads)
        for k in arrays:
            assert model.params[k] is arrays[k], f"{k}: not updated in place"
            np.testing.assert_allclose(model.params[k], expected[k], rtol=1e-12, atol=1e-14,
                                       err_msg=f"{name} step {step + 1}, {k}")
    assert all(not np.array_equal(arrays[k], initial[k]) for k in arrays), "some parameter never moved"


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_optimizer_keeps_float32_parameters_float32(name):
    make, make_ref = OPTIMIZERS[name]
    V, lr = 9, 0.01
    model = LanguageModelRNN(V, 3, 4, cell_type='rnn', dtype=np.float32)
    arrays = {k: model.params[k] for k in model.params}
    expected = {k: v.astype(np.float64) for k, v in arrays.items()}
    optimizer, optimizer_ref = make(model, lr), make_ref(lr)
    for step in range(3):
        grads = fill_grads(model, V)
        optimizer.step()
        optimizer_ref.step(expected, grads)
    for k in arrays:
        assert model.params[k] is arrays[k]
        assert_matches(model.params[k], expected[k], np.float32, k)


@pytest.mark.parametrize("cell_type", ['rnn', 'lstm'])
def test_changing_the_initial_state_after_forward_does_not_change_backward(cell_type):
    N, T, D, H = 3, 4, 2, 5
    layer = make_recurrent(cell_type, D, H, np.float64, 1.0)
    x, h0, dh = np.random.randn(N, T, D), np.random.randn(N, H), np.random.randn(N, T, H)
    layer.forward(x, h0)
    expected = layer.backward(dh)
    layer.forward(x, h0)
    h0 += 1.0  # the caller reuses its buffer before calling backward
    got = layer.backward(dh)
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell_type", ['rnn', 'lstm'])
def test_state_buffers_reused_across_iterations_leave_results_and_outputs_intact(cell_type):
    """A layer reuses the buffers of a consumed state for its next forward: every
    iteration must still match the reference, and nothing returned earlier change."""
    N, T, D, H = 4, 6, 3, 5
    layer = make_recurrent(cell_type, D, H, np.float64, 1.0)
    kept = []
    for _ in range(3):
        x, h0, dh = np.random.randn(N, T, D), np.random.randn(N, H), np.random.randn(N, T, H)
        h = layer.forward(x, h0)
        dx, dh0 = layer.backward(dh)
        h_ref, grads_ref = reference_sequence(cell_type, x, h0, dh, *weights(layer))
        assert_matches(h, h_ref, np.float64, "h")
        assert_matches(dx, grads_ref[0], np.float64, "dx")
        assert_matches(layer.grads[layer.wh_name], grads_ref[3], np.float64, "dWh")
        kept.append((h, h.copy(), dx, dx.copy()))
    assert layer._spare is not None, "no buffers were kept for reuse: the test tested nothing"
    for h, h_then, dx, dx_then in kept:
        np.testing.assert_array_equal(h, h_then)
        np.testing.assert_array_equal(dx, dx_then)
