"""Every check cell of the seed notebook, with its own data and tolerances.

The five imports are the notebook's, with `lib` replaced by `fastrnn`: that is the drop-in promise.
Below them, the semantics the notebook relies on without saying so (lib-api.md).
"""

import numpy as np
import pytest

from fastrnn.rnn import *
from fastrnn.layer_utils import *
from fastrnn.grad_check import *
from fastrnn.optim import *
from fastrnn.train import *

import reference as ref


# --------------------------------------------------------------------------------------------
# Vanilla RNN
# --------------------------------------------------------------------------------------------

def test_rnn_step_forward():
    N, D, H = 3, 10, 4

    rnn = VanillaRNN(D, H, init_scale=0.02, name="rnn_test")
    x = np.linspace(-0.4, 0.7, num=N*D).reshape(N, D)
    prev_h = np.linspace(-0.2, 0.5, num=N*H).reshape(N, H)

    rnn.params[rnn.wx_name] = np.linspace(-0.1, 0.9, num=D*H).reshape(D, H)
    rnn.params[rnn.wh_name] = np.linspace(-0.3, 0.7, num=H*H).reshape(H, H)
    rnn.params[rnn.b_name] = np.linspace(-0.2, 0.4, num=H)

    next_h, _ = rnn.step_forward(x, prev_h)
    expected_next_h = np.asarray([
        [-0.58172089, -0.50182032, -0.41232771, -0.31410098],
        [0.66854692, 0.79562378, 0.87755553, 0.92795967],
        [0.97934501, 0.99144213, 0.99646691, 0.99854353]])

    assert rel_error(expected_next_h, next_h) < 1e-8


def test_rnn_step_backward():
    N, D, H = 4, 5, 6

    rnn = VanillaRNN(D, H, init_scale=0.02, name="rnn_test")

    x = np.random.randn(N, D)
    h = np.random.randn(N, H)
    Wx = np.random.randn(D, H)
    Wh = np.random.randn(H, H)
    b = np.random.randn(H)

    rnn.params[rnn.wx_name] = Wx
    rnn.params[rnn.wh_name] = Wh
    rnn.params[rnn.b_name] = b

    out, meta = rnn.step_forward(x, h)

    dnext_h = np.random.randn(*out.shape)

    dx_num = eval_numerical_gradient_array(lambda x: rnn.step_forward(x, h)[0], x, dnext_h)
    dprev_h_num = eval_numerical_gradient_array(lambda h: rnn.step_forward(x, h)[0], h, dnext_h)
    dWx_num = eval_numerical_gradient_array(lambda Wx: rnn.step_forward(x, h)[0], Wx, dnext_h)
    dWh_num = eval_numerical_gradient_array(lambda Wh: rnn.step_forward(x, h)[0], Wh, dnext_h)
    db_num = eval_numerical_gradient_array(lambda b: rnn.step_forward(x, h)[0], b, dnext_h)

    dx, dprev_h, dWx, dWh, db = rnn.step_backward(dnext_h, meta)

    assert rel_error(dx_num, dx) < 1e-8
    assert rel_error(dprev_h_num, dprev_h) < 1e-8
    assert rel_error(dWx_num, dWx) < 1e-8
    assert rel_error(dWh_num, dWh) < 1e-8
    assert rel_error(db_num, db) < 1e-8


def test_rnn_forward():
    N, T, D, H = 2, 3, 4, 5

    rnn = VanillaRNN(D, H, init_scale=0.02, name="rnn_test")

    x = np.linspace(-0.1, 0.3, num=N*T*D).reshape(N, T, D)
    h0 = np.linspace(-0.3, 0.1, num=N*H).reshape(N, H)
    Wx = np.linspace(-0.2, 0.4, num=D*H).reshape(D, H)
    Wh = np.linspace(-0.4, 0.1, num=H*H).reshape(H, H)
    b = np.linspace(-0.7, 0.1, num=H)

    rnn.params[rnn.wx_name] = Wx
    rnn.params[rnn.wh_name] = Wh
    rnn.params[rnn.b_name] = b

    h = rnn.forward(x, h0)
    # The notebook prints these six rows with a stray bracket; they are h of shape (N, T, H).
    expected_h = np.asarray([
        [-0.42070749, -0.27279261, -0.11074945, 0.05740409, 0.22236251],
        [-0.39525808, -0.22554661, -0.0409454, 0.14649412, 0.32397316],
        [-0.42305111, -0.24223728, -0.04287027, 0.15997045, 0.35014525],
        [-0.55857474, -0.39065825, -0.19198182, 0.02378408, 0.23735671],
        [-0.27150199, -0.07088804, 0.13562939, 0.33099728, 0.50158768],
        [-0.51014825, -0.30524429, -0.06755202, 0.17806392, 0.40333043]]).reshape(N, T, H)

    assert h.shape == (N, T, H)
    assert rel_error(expected_h, h) < 1e-7


def test_rnn_backward():
    N, D, T, H = 2, 3, 10, 5

    rnn = VanillaRNN(D, H, init_scale=0.02, name="rnn_test")

    x = np.random.randn(N, T, D)
    h0 = np.random.randn(N, H)
    Wx = np.random.randn(D, H)
    Wh = np.random.randn(H, H)
    b = np.random.randn(H)

    rnn.params[rnn.wx_name] = Wx
    rnn.params[rnn.wh_name] = Wh
    rnn.params[rnn.b_name] = b

    out = rnn.forward(x, h0)

    dout = np.random.randn(*out.shape)

    dx, dh0 = rnn.backward(dout)

    dx_num = eval_numerical_gradient_array(lambda x: rnn.forward(x, h0), x, dout)
    dh0_num = eval_numerical_gradient_array(lambda h0: rnn.forward(x, h0), h0, dout)
    dWx_num = eval_numerical_gradient_array(lambda Wx: rnn.forward(x, h0), Wx, dout)
    dWh_num = eval_numerical_gradient_array(lambda Wh: rnn.forward(x, h0), Wh, dout)
    db_num = eval_numerical_gradient_array(lambda b: rnn.forward(x, h0), b, dout)

    dWx = rnn.grads[rnn.wx_name]
    dWh = rnn.grads[rnn.wh_name]
    db = rnn.grads[rnn.b_name]

    assert rel_error(dx_num, dx) < 5e-7
    assert rel_error(dh0_num, dh0) < 5e-7
    assert rel_error(dWx_num, dWx) < 5e-7
    assert rel_error(dWh_num, dWh) < 5e-7
    assert rel_error(db_num, db) < 5e-7


# --------------------------------------------------------------------------------------------
# Word embedding, temporal fc, temporal softmax loss
# --------------------------------------------------------------------------------------------

def test_word_embedding_forward():
    N, T, V, D = 2, 4, 5, 3

    we = word_embedding(V, D, name="we")

    x = np.asarray([[0, 3, 1, 2], [2, 1, 0, 3]])
    W = np.linspace(0, 1, num=V*D).reshape(V, D)

    we.params[we.w_name] = W

    out = we.forward(x)
    expected_out = np.asarray([
        [[0., 0.07142857, 0.14285714],
         [0.64285714, 0.71428571, 0.78571429],
         [0.21428571, 0.28571429, 0.35714286],
         [0.42857143, 0.5, 0.57142857]],
        [[0.42857143, 0.5, 0.57142857],
         [0.21428571, 0.28571429, 0.35714286],
         [0., 0.07142857, 0.14285714],
         [0.64285714, 0.71428571, 0.78571429]]])

    assert rel_error(expected_out, out) < 1e-7


def test_word_embedding_backward():
    N, T, V, D = 50, 3, 5, 6

    we = word_embedding(V, D, name="we")

    x = np.random.randint(V, size=(N, T))
    W = np.random.randn(V, D)

    we.params[we.w_name] = W

    out = we.forward(x)
    dout = np.random.randn(*out.shape)

    # The notebook reads we.grads without calling backward; the gradient is defined by backward.
    we.backward(dout)
    dW = we.grads[we.w_name]

    f = lambda W: we.forward(x)
    dW_num = eval_numerical_gradient_array(f, W, dout)

    assert rel_error(dW, dW_num) < 1e-11


def test_temporal_fc():
    N, T, D, M = 2, 3, 4, 5

    t_fc = temporal_fc(D, M, init_scale=0.02, name='test_t_fc')

    x = np.random.randn(N, T, D)
    w = np.random.randn(D, M)
    b = np.random.randn(M)

    t_fc.params[t_fc.w_name] = w
    t_fc.params[t_fc.b_name] = b

    out = t_fc.forward(x)

    dout = np.random.randn(*out.shape)

    dx_num = eval_numerical_gradient_array(lambda x: t_fc.forward(x), x, dout)
    dw_num = eval_numerical_gradient_array(lambda w: t_fc.forward(x), w, dout)
    db_num = eval_numerical_gradient_array(lambda b: t_fc.forward(x), b, dout)

    dx = t_fc.backward(dout)
    dw = t_fc.grads[t_fc.w_name]
    db = t_fc.grads[t_fc.b_name]

    assert rel_error(dx_num, dx) < 1e-9
    assert rel_error(dw_num, dw) < 1e-9
    assert rel_error(db_num, db) < 1e-9


@pytest.mark.parametrize("N, T, V, p, expected, tolerance", [
    (100, 1, 10, 1.0, 2.3, 0.1),    # "Should be about 2.3"  (log 10 = 2.303)
    (100, 10, 10, 1.0, 23.0, 1.0),  # "Should be about 23"
    (5000, 10, 10, 0.1, 2.3, 0.1),  # "Should be about 2.3"
])
def test_temporal_softmax_loss_sanity(N, T, V, p, expected, tolerance):
    loss_func = temporal_softmax_loss()

    x = 0.001 * np.random.randn(N, T, V)
    y = np.random.randint(V, size=(N, T))
    mask = np.random.rand(N, T) <= p

    assert abs(loss_func.forward(x, y, mask) - expected) < tolerance


def test_temporal_softmax_loss_gradient():
    loss_func = temporal_softmax_loss()
    N, T, V = 7, 8, 9

    x = np.random.randn(N, T, V)
    y = np.random.randint(V, size=(N, T))
    mask = (np.random.rand(N, T) > 0.5)

    loss = loss_func.forward(x, y, mask)
    dx = loss_func.backward()

    dx_num = eval_numerical_gradient(lambda x: loss_func.forward(x, y, mask), x, verbose=False)

    assert np.isfinite(loss)
    assert rel_error(dx, dx_num) < 1e-7


# --------------------------------------------------------------------------------------------
# TestRNN: fixed-value losses and the per-parameter gradient check
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell_type, expected_loss", [
    ('rnn', 51.0949189134),
    ('lstm', 49.2140256354),
])
def test_test_rnn_loss(cell_type, expected_loss):
    N, D, H = 10, 20, 40
    V = 4
    T = 13

    model = TestRNN(D, H, cell_type=cell_type)
    loss_func = temporal_softmax_loss()

    # Set all model parameters to fixed values
    for k, v in model.params.items():
        model.params[k] = np.linspace(-1.4, 1.3, num=v.size).reshape(*v.shape)

    features = np.linspace(-1.5, 0.3, num=(N * D * T)).reshape(N, T, D)
    h0 = np.linspace(-1.5, 0.5, num=(N*H)).reshape(N, H)
    labels = (np.arange(N * T) % V).reshape(N, T)

    pred = model.forward(features, h0)

    mask = np.ones((N, T))

    loss = loss_func.forward(pred, labels, mask)
    loss_func.backward()

    assert abs(loss - expected_loss) < 1e-10


def test_test_rnn_gradient_check():
    batch_size = 2
    timesteps = 3
    input_dim = 4
    hidden_dim = 6
    label_size = 4

    labels = np.random.randint(label_size, size=(batch_size, timesteps))
    features = np.random.randn(batch_size, timesteps, input_dim)
    h0 = np.random.randn(batch_size, hidden_dim)

    model = TestRNN(input_dim, hidden_dim, cell_type='rnn')
    loss_func = temporal_softmax_loss()

    pred = model.forward(features, h0)

    mask = np.ones((batch_size, timesteps))

    loss = loss_func.forward(pred, labels, mask)
    dLoss = loss_func.backward()

    dout, dh0 = model.backward(dLoss)

    grads = model.grads

    assert sorted(grads) == sorted(model.params)
    for param_name in sorted(grads):
        f = lambda _: loss_func.forward(model.forward(features, h0), labels, mask)
        param_grad_num = eval_numerical_gradient(f, model.params[param_name], verbose=False, h=1e-6)
        e = rel_error(param_grad_num, grads[param_name])
        assert e < 1e-6, '%s relative error: %e' % (param_name, e)


# --------------------------------------------------------------------------------------------
# LSTM
# --------------------------------------------------------------------------------------------

def test_lstm_step_forward():
    N, D, H = 3, 4, 5

    lstm = LSTM(D, H, init_scale=0.02, name='test_lstm')

    x = np.linspace(-0.4, 1.2, num=N*D).reshape(N, D)
    prev_h = np.linspace(-0.3, 0.7, num=N*H).reshape(N, H)
    prev_c = np.linspace(-0.4, 0.9, num=N*H).reshape(N, H)
    Wx = np.linspace(-2.1, 1.3, num=4*D*H).reshape(D, 4 * H)
    Wh = np.linspace(-0.7, 2.2, num=4*H*H).reshape(H, 4 * H)
    b = np.linspace(0.3, 0.7, num=4*H)

    lstm.params[lstm.wx_name] = Wx
    lstm.params[lstm.wh_name] = Wh
    lstm.params[lstm.b_name] = b

    next_h, next_c, cache = lstm.step_forward(x, prev_h, prev_c)

    expected_next_h = np.asarray([
        [0.24635157, 0.28610883, 0.32240467, 0.35525807, 0.38474904],
        [0.49223563, 0.55611431, 0.61507696, 0.66844003, 0.7159181],
        [0.56735664, 0.66310127, 0.74419266, 0.80889665, 0.858299]])
    expected_next_c = np.asarray([
        [0.32986176, 0.39145139, 0.451556, 0.51014116, 0.56717407],
        [0.66382255, 0.76674007, 0.87195994, 0.97902709, 1.08751345],
        [0.74192008, 0.90592151, 1.07717006, 1.25120233, 1.42395676]])

    assert rel_error(expected_next_h, next_h) < 1e-7
    assert rel_error(expected_next_c, next_c) < 1e-7


def test_lstm_step_backward():
    N, D, H = 4, 5, 6

    lstm = LSTM(D, H, init_scale=0.02, name='test_lstm')

    x = np.random.randn(N, D)
    prev_h = np.random.randn(N, H)
    prev_c = np.random.randn(N, H)
    Wx = np.random.randn(D, 4 * H)
    Wh = np.random.randn(H, 4 * H)
    b = np.random.randn(4 * H)

    lstm.params[lstm.wx_name] = Wx
    lstm.params[lstm.wh_name] = Wh
    lstm.params[lstm.b_name] = b

    next_h, next_c, cache = lstm.step_forward(x, prev_h, prev_c)

    dnext_h = np.random.randn(*next_h.shape)
    dnext_c = np.random.randn(*next_c.shape)

    fx_h = lambda x: lstm.step_forward(x, prev_h, prev_c)[0]
    fh_h = lambda h: lstm.step_forward(x, prev_h, prev_c)[0]
    fc_h = lambda c: lstm.step_forward(x, prev_h, prev_c)[0]
    fWx_h = lambda Wx: lstm.step_forward(x, prev_h, prev_c)[0]
    fWh_h = lambda Wh: lstm.step_forward(x, prev_h, prev_c)[0]
    fb_h = lambda b: lstm.step_forward(x, prev_h, prev_c)[0]

    fx_c = lambda x: lstm.step_forward(x, prev_h, prev_c)[1]
    fh_c = lambda h: lstm.step_forward(x, prev_h, prev_c)[1]
    fc_c = lambda c: lstm.step_forward(x, prev_h, prev_c)[1]
    fWx_c = lambda Wx: lstm.step_forward(x, prev_h, prev_c)[1]
    fWh_c = lambda Wh: lstm.step_forward(x, prev_h, prev_c)[1]
    fb_c = lambda b: lstm.step_forward(x, prev_h, prev_c)[1]

    num_grad = eval_numerical_gradient_array

    dx_num = num_grad(fx_h, x, dnext_h) + num_grad(fx_c, x, dnext_c)
    dh_num = num_grad(fh_h, prev_h, dnext_h) + num_grad(fh_c, prev_h, dnext_c)
    dc_num = num_grad(fc_h, prev_c, dnext_h) + num_grad(fc_c, prev_c, dnext_c)
    dWx_num = num_grad(fWx_h, Wx, dnext_h) + num_grad(fWx_c, Wx, dnext_c)
    dWh_num = num_grad(fWh_h, Wh, dnext_h) + num_grad(fWh_c, Wh, dnext_c)
    db_num = num_grad(fb_h, b, dnext_h) + num_grad(fb_c, b, dnext_c)

    dx, dh, dc, dWx, dWh, db = lstm.step_backward(dnext_h, dnext_c, cache)

    assert rel_error(dx_num, dx) < 1e-6
    assert rel_error(dh_num, dh) < 1e-6
    assert rel_error(dc_num, dc) < 1e-6
    assert rel_error(dWx_num, dWx) < 1e-6
    assert rel_error(dWh_num, dWh) < 1e-6
    assert rel_error(db_num, db) < 1e-6


def test_lstm_forward():
    N, D, H, T = 2, 5, 4, 3

    lstm = LSTM(D, H, init_scale=0.02, name='test_lstm')

    x = np.linspace(-0.4, 0.6, num=N*T*D).reshape(N, T, D)
    h0 = np.linspace(-0.4, 0.8, num=N*H).reshape(N, H)
    Wx = np.linspace(-0.2, 0.9, num=4*D*H).reshape(D, 4 * H)
    Wh = np.linspace(-0.3, 0.6, num=4*H*H).reshape(H, 4 * H)
    b = np.linspace(0.2, 0.7, num=4*H)

    lstm.params[lstm.wx_name] = Wx
    lstm.params[lstm.wh_name] = Wh
    lstm.params[lstm.b_name] = b

    h = lstm.forward(x, h0)

    expected_h = np.asarray([
        [[0.01764008, 0.01823233, 0.01882671, 0.0194232],
         [0.11287491, 0.12146228, 0.13018446, 0.13902939],
         [0.31358768, 0.33338627, 0.35304453, 0.37250975]],
        [[0.45767879, 0.4761092, 0.4936887, 0.51041945],
         [0.6704845, 0.69350089, 0.71486014, 0.7346449],
         [0.81733511, 0.83677871, 0.85403753, 0.86935314]]])

    assert rel_error(expected_h, h) < 1e-7


def test_lstm_backward():
    N, D, T, H = 2, 3, 10, 6

    lstm = LSTM(D, H, init_scale=0.02, name='test_lstm')

    x = np.random.randn(N, T, D)
    h0 = np.random.randn(N, H)
    Wx = np.random.randn(D, 4 * H)
    Wh = np.random.randn(H, 4 * H)
    b = np.random.randn(4 * H)

    lstm.params[lstm.wx_name] = Wx
    lstm.params[lstm.wh_name] = Wh
    lstm.params[lstm.b_name] = b

    out = lstm.forward(x, h0)

    dout = np.random.randn(*out.shape)

    dx, dh0 = lstm.backward(dout)
    dWx = lstm.grads[lstm.wx_name]
    dWh = lstm.grads[lstm.wh_name]
    db = lstm.grads[lstm.b_name]

    dx_num = eval_numerical_gradient_array(lambda x: lstm.forward(x, h0), x, dout)
    dh0_num = eval_numerical_gradient_array(lambda h0: lstm.forward(x, h0), h0, dout)
    dWx_num = eval_numerical_gradient_array(lambda Wx: lstm.forward(x, h0), Wx, dout)
    dWh_num = eval_numerical_gradient_array(lambda Wh: lstm.forward(x, h0), Wh, dout)
    db_num = eval_numerical_gradient_array(lambda b: lstm.forward(x, h0), b, dout)

    assert rel_error(dx_num, dx) < 1e-6
    assert rel_error(dh0_num, dh0) < 1e-6
    assert rel_error(dWx_num, dWx) < 1e-6
    assert rel_error(dWh_num, dWh) < 1e-6
    assert rel_error(db_num, db) < 1e-6


# --------------------------------------------------------------------------------------------
# Semantics the notebook depends on (lib-api.md, "Semantics the notebook depends on")
# --------------------------------------------------------------------------------------------

def _recurrent_layer(cell_type, D, H, **kwargs):
    return (VanillaRNN if cell_type == 'rnn' else LSTM)(D, H, **kwargs)


def _reference_forward(cell_type, x, h0, Wx, Wh, b):
    if cell_type == 'rnn':
        return ref.rnn_forward(x, h0, Wx, Wh, b)[0]
    return ref.lstm_forward(x, h0, Wx, Wh, b)[0]


def _set_random_params(layer, cell_type, D, H):
    G = 1 if cell_type == 'rnn' else 4
    layer.params[layer.wx_name] = np.random.randn(D, G * H)
    layer.params[layer.wh_name] = np.random.randn(H, G * H)
    layer.params[layer.b_name] = np.random.randn(G * H)


def _layer_params(layer):
    return [layer.params[layer.wx_name], layer.params[layer.wh_name], layer.params[layer.b_name]]


@pytest.mark.parametrize("cell_type", ['rnn', 'lstm'])
def test_parameters_perturbed_in_place_are_read_at_every_forward(cell_type):
    N, T, D, H = 2, 4, 3, 5
    layer = _recurrent_layer(cell_type, D, H)
    _set_random_params(layer, cell_type, D, H)
    x, h0 = np.random.randn(N, T, D), np.random.randn(N, H)

    before = layer.forward(x, h0)
    for key in (layer.wx_name, layer.wh_name, layer.b_name):
        layer.params[key].flat[1] += 0.25
        after = layer.forward(x, h0)
        assert not np.allclose(after, before), key
        np.testing.assert_allclose(after, _reference_forward(cell_type, x, h0, *_layer_params(layer)),
                                   rtol=1e-10, atol=1e-12)
        before = after


@pytest.mark.parametrize("cell_type", ['rnn', 'lstm'])
def test_reassigned_parameter_takes_effect(cell_type):
    N, T, D, H = 2, 4, 3, 5
    layer = _recurrent_layer(cell_type, D, H)
    _set_random_params(layer, cell_type, D, H)
    x, h0 = np.random.randn(N, T, D), np.random.randn(N, H)
    layer.forward(x, h0)

    layer.params[layer.wh_name] = 2.0 * layer.params[layer.wh_name]

    np.testing.assert_allclose(layer.forward(x, h0),
                               _reference_forward(cell_type, x, h0, *_layer_params(layer)),
                               rtol=1e-10, atol=1e-12)


def test_temporal_fc_and_embedding_read_parameters_at_every_call():
    t_fc = temporal_fc(3, 4)
    x = np.random.randn(2, 5, 3)
    t_fc.forward(x)
    t_fc.params[t_fc.w_name][0, 0] += 1.0
    t_fc.params[t_fc.b_name] = np.arange(4.0)
    np.testing.assert_allclose(
        t_fc.forward(x), ref.temporal_fc_forward(x, t_fc.params[t_fc.w_name], np.arange(4.0)),
        rtol=1e-12, atol=1e-12)

    we = word_embedding(6, 3)
    words = np.array([[0, 1, 5], [5, 5, 2]])
    we.forward(words)
    we.params[we.w_name][5] = 7.0
    assert np.all(we.forward(words)[1, :2] == 7.0)


def test_rnn_container_shares_the_layers_arrays():
    rnn = VanillaRNN(3, 4, name='rnn')
    fc = temporal_fc(4, 5, name='fc')
    net = RNN(rnn, fc)

    assert set(net.params) == set(rnn.params) | set(fc.params)
    for layer in (rnn, fc):
        for k in layer.params:
            assert net.params[k] is layer.params[k]


@pytest.mark.parametrize("cell_type", ['rnn', 'lstm'])
def test_model_params_are_live(cell_type):
    N, T, D, H = 2, 4, 3, 5
    model = TestRNN(D, H, cell_type=cell_type)
    prefix = 'vanilla_rnn' if cell_type == 'rnn' else 'lstm'
    keys = {'wx': prefix + '_wx', 'wh': prefix + '_wh', 'b': prefix + '_b'}
    assert set(model.params) == set(keys.values())
    x, h0 = np.random.randn(N, T, D), np.random.randn(N, H)

    def expected():
        return _reference_forward(cell_type, x, h0, *(model.params[keys[k]] for k in ('wx', 'wh', 'b')))

    np.testing.assert_allclose(model.forward(x, h0), expected(), rtol=1e-10, atol=1e-12)

    # assigning a new array into model.params takes effect at the next forward
    model.params[keys['wx']] = np.random.randn(*model.params[keys['wx']].shape)
    np.testing.assert_allclose(model.forward(x, h0), expected(), rtol=1e-10, atol=1e-12)

    # perturbing model.params in place (what the gradient check does) also takes effect
    model.params[keys['wh']][0, 0] += 0.5
    np.testing.assert_allclose(model.forward(x, h0), expected(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell_type", ['rnn', 'lstm'])
def test_language_model_params_are_live(cell_type):
    V, D, H, N, T = 7, 3, 4, 2, 5
    model = LanguageModelRNN(V, D, H, cell_type=cell_type)
    words = np.random.randint(V, size=(N, T))
    h0 = np.zeros((N, H))
    before = model.forward(words, h0)
    assert before.shape == (N, T, V)

    for k in sorted(model.params):
        model.params[k] = model.params[k] + 0.1
        after = model.forward(words, h0)
        assert not np.allclose(after, before), k
        before = after


def _layers_of(model):
    """The layer objects a model holds as attributes (whatever their attribute names)."""
    return [v for v in vars(model).values()
            if hasattr(v, 'name') and isinstance(getattr(v, 'params', None), dict)]


@pytest.mark.parametrize("cell_type", ['rnn', 'lstm'])
@pytest.mark.parametrize("make_model", [
    lambda cell_type: TestRNN(3, 4, cell_type=cell_type),
    lambda cell_type: LanguageModelRNN(7, 3, 4, cell_type=cell_type),
], ids=['TestRNN', 'LanguageModelRNN'])
def test_model_params_are_the_layers_arrays(make_model, cell_type):
    model = make_model(cell_type)
    layers = _layers_of(model)
    owners = {k: [layer for layer in layers if k in layer.params] for k in model.params}
    assert set(owners) == {k for layer in layers for k in layer.params}
    for k, (owner, *others) in owners.items():
        assert not others, f"{k} is in two layers"
        assert model.params[k] is owner.params[k]

    k = sorted(model.params)[0]
    new = np.ones_like(model.params[k])
    model.params[k] = new
    assert model.params[k] is new
    assert owners[k][0].params[k] is new


def test_rnn_container_refuses_duplicate_names():
    with pytest.raises(ValueError):
        RNN(VanillaRNN(3, 4, name='same'), VanillaRNN(3, 4, name='same'))
    with pytest.raises(ValueError):
        RNN(temporal_fc(3, 4, name='fc'), temporal_fc(4, 4, name='fc'))


def _dtype_case(dtype, cell_type):
    N, T, D, H = 2, 3, 4, 5
    layer = _recurrent_layer(cell_type, D, H, dtype=dtype)
    x = np.random.randn(N, T, D).astype(dtype)
    h0 = np.random.randn(N, H).astype(dtype)
    return layer, x, h0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell_type", ['rnn', 'lstm'])
def test_dtype_is_preserved(dtype, cell_type):
    layer, x, h0 = _dtype_case(dtype, cell_type)
    for v in layer.params.values():
        assert v.dtype == dtype
    h = layer.forward(x, h0)
    dx, dh0 = layer.backward(np.ones_like(h))
    assert h.dtype == dtype
    assert dx.dtype == dtype
    assert dh0.dtype == dtype
    for k, g in layer.grads.items():
        assert g.dtype == dtype, k


def test_default_dtype_is_float64():
    for layer in (VanillaRNN(3, 4), LSTM(3, 4), word_embedding(5, 3), temporal_fc(3, 4)):
        for v in layer.params.values():
            assert v.dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_dtype_is_preserved_by_the_other_layers_and_models(dtype):
    we = word_embedding(6, 3, dtype=dtype)
    emb = we.forward(np.array([[0, 5, 2]]))
    we.backward(np.ones_like(emb))
    assert emb.dtype == dtype and we.grads[we.w_name].dtype == dtype

    fc = temporal_fc(3, 4, dtype=dtype)
    out = fc.forward(emb)
    dx = fc.backward(np.ones_like(out))
    assert out.dtype == dtype and dx.dtype == dtype
    assert all(g.dtype == dtype for g in fc.grads.values())

    loss_func = temporal_softmax_loss()
    loss_func.forward(out, np.array([[0, 1, 3]]), np.ones((1, 3), dtype=bool))
    assert loss_func.backward().dtype == dtype

    for cell_type in ('rnn', 'lstm'):
        model = LanguageModelRNN(6, 3, 4, cell_type=cell_type, dtype=dtype)
        scores = model.forward(np.array([[0, 5, 2]]), np.zeros((1, 4), dtype=dtype))
        assert scores.dtype == dtype
        model.backward(np.ones_like(scores))
        assert all(g.dtype == dtype for g in model.grads.values())


@pytest.mark.parametrize("cell_type", ['rnn', 'lstm'])
def test_backward_uses_the_state_of_the_latest_forward(cell_type):
    N, T, D, H = 2, 4, 3, 5
    layer = _recurrent_layer(cell_type, D, H)
    _set_random_params(layer, cell_type, D, H)
    x1, x2 = np.random.randn(N, T, D), np.random.randn(N, T, D)
    h0, dh = np.random.randn(N, H), np.random.randn(N, T, H)

    layer.forward(x1, h0)
    layer.forward(x2, h0)
    dx, dh0 = layer.backward(dh)

    if cell_type == 'rnn':
        dx_ref, dh0_ref, *_ = ref.rnn_backward(dh, ref.rnn_forward(x2, h0, *_layer_params(layer))[1])
    else:
        dx_ref, dh0_ref, *_ = ref.lstm_backward(dh, ref.lstm_forward(x2, h0, *_layer_params(layer))[2])
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dh0, dh0_ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cell_type", ['rnn', 'lstm'])
def test_results_are_not_overwritten_by_later_calls(cell_type):
    """Like the classic lib, every call returns fresh arrays: a caller may keep them."""
    N, T, D, H = 2, 4, 3, 5
    layer = _recurrent_layer(cell_type, D, H)
    _set_random_params(layer, cell_type, D, H)
    h0 = np.random.randn(N, H)

    h1 = layer.forward(np.random.randn(N, T, D), h0)
    dx1, dh01 = layer.backward(np.random.randn(N, T, H))
    grads1 = dict(layer.grads)
    kept = [a.copy() for a in (h1, dx1, dh01, *grads1.values())]

    layer.forward(np.random.randn(N, T, D), h0)
    layer.backward(np.random.randn(N, T, H))

    for before, now in zip(kept, (h1, dx1, dh01, *grads1.values())):
        np.testing.assert_array_equal(before, now)


@pytest.mark.parametrize("make_layer, backward_args", [
    (lambda: VanillaRNN(3, 4), (np.zeros((2, 5, 4)),)),
    (lambda: LSTM(3, 4), (np.zeros((2, 5, 4)),)),
    (lambda: temporal_fc(3, 4), (np.zeros((2, 5, 4)),)),
    (lambda: word_embedding(6, 3), (np.zeros((2, 5, 3)),)),
    (lambda: temporal_softmax_loss(), ()),
    (lambda: TestRNN(3, 4, cell_type='rnn'), (np.zeros((2, 5, 4)),)),
    (lambda: TestRNN(3, 4, cell_type='lstm'), (np.zeros((2, 5, 4)),)),
    (lambda: LanguageModelRNN(6, 3, 4, cell_type='lstm'), (np.zeros((2, 5, 6)),)),
], ids=['VanillaRNN', 'LSTM', 'temporal_fc', 'word_embedding', 'temporal_softmax_loss',
        'TestRNN-rnn', 'TestRNN-lstm', 'LanguageModelRNN'])
def test_backward_without_forward_raises_a_clear_error(make_layer, backward_args):
    with pytest.raises((RuntimeError, ValueError), match=r"(?i)forward"):
        make_layer().backward(*backward_args)
