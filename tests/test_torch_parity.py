"""fastrnn's VanillaRNN and LSTM against torch.nn.RNN / torch.nn.LSTM, in float64.

Weights are copied from fastrnn into torch. fastrnn keeps Wx (D, G), Wh (H, G) and one bias b (G,);
torch keeps weight_ih_l0 (G, D), weight_hh_l0 (G, H) and two biases, so torch gets the transposes,
b as bias_ih and zeros as bias_hh. For the LSTM, fastrnn's gate blocks are ordered i, f, o, g and
torch's i, f, g, o: swapping the last two blocks maps one onto the other (and back).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch not installed: parity tests need torch (CPU build)")

from fastrnn.grad_check import rel_error
from fastrnn.layer_utils import LSTM, VanillaRNN

SHAPES = [  # N, T, D, H
    (1, 1, 2, 3),
    (3, 7, 4, 5),
    (5, 20, 8, 16),
]


def fastrnn_to_torch_gate_order(H):
    """Column permutation taking fastrnn's i, f, o, g blocks to torch's i, f, g, o (an involution)."""
    i, f, o, g = (np.arange(k * H, (k + 1) * H) for k in range(4))
    return np.concatenate([i, f, g, o])


def run_torch(module, x, h0, dh, lstm):
    x_t = torch.tensor(x, requires_grad=True)
    h0_t = torch.tensor(h0[None], requires_grad=True)
    state = (h0_t, torch.zeros_like(h0_t)) if lstm else h0_t
    h, _ = module(x_t, state)
    (h * torch.tensor(dh)).sum().backward()
    return h.detach().numpy(), x_t.grad.numpy(), h0_t.grad.numpy()[0]


def random_layer(layer_class, D, H, G):
    layer = layer_class(D, H)
    layer.params[layer.wx_name] = 0.5 * np.random.randn(D, G)
    layer.params[layer.wh_name] = 0.5 * np.random.randn(H, G)
    layer.params[layer.b_name] = 0.5 * np.random.randn(G)
    return layer


def assert_close(name, ours, theirs):
    assert ours.shape == theirs.shape, name
    e = rel_error(ours, theirs)
    assert e < 1e-10, f"{name}: relative error {e:.3e}"


@pytest.mark.parametrize("N, T, D, H", SHAPES)
def test_vanilla_rnn_matches_torch(N, T, D, H):
    layer = random_layer(VanillaRNN, D, H, H)
    Wx, Wh, b = (layer.params[k] for k in (layer.wx_name, layer.wh_name, layer.b_name))
    module = torch.nn.RNN(D, H, num_layers=1, nonlinearity='tanh', batch_first=True).double()
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.tensor(Wx.T))
        module.weight_hh_l0.copy_(torch.tensor(Wh.T))
        module.bias_ih_l0.copy_(torch.tensor(b))
        module.bias_hh_l0.zero_()
    x, h0, dh = np.random.randn(N, T, D), np.random.randn(N, H), np.random.randn(N, T, H)

    h = layer.forward(x, h0)
    dx, dh0 = layer.backward(dh)
    h_t, dx_t, dh0_t = run_torch(module, x, h0, dh, lstm=False)

    assert_close('h', h, h_t)
    assert_close('dx', dx, dx_t)
    assert_close('dh0', dh0, dh0_t)
    assert_close('dWx', layer.grads[layer.wx_name], module.weight_ih_l0.grad.numpy().T)
    assert_close('dWh', layer.grads[layer.wh_name], module.weight_hh_l0.grad.numpy().T)
    assert_close('db', layer.grads[layer.b_name], module.bias_ih_l0.grad.numpy())
    assert_close('db (torch bias_hh)', layer.grads[layer.b_name], module.bias_hh_l0.grad.numpy())


@pytest.mark.parametrize("N, T, D, H", SHAPES)
def test_lstm_matches_torch(N, T, D, H):
    layer = random_layer(LSTM, D, H, 4 * H)
    Wx, Wh, b = (layer.params[k] for k in (layer.wx_name, layer.wh_name, layer.b_name))
    perm = fastrnn_to_torch_gate_order(H)
    module = torch.nn.LSTM(D, H, num_layers=1, batch_first=True).double()
    with torch.no_grad():
        module.weight_ih_l0.copy_(torch.tensor(Wx[:, perm].T))
        module.weight_hh_l0.copy_(torch.tensor(Wh[:, perm].T))
        module.bias_ih_l0.copy_(torch.tensor(b[perm]))
        module.bias_hh_l0.zero_()
    x, h0, dh = np.random.randn(N, T, D), np.random.randn(N, H), np.random.randn(N, T, H)

    h = layer.forward(x, h0)
    dx, dh0 = layer.backward(dh)
    h_t, dx_t, dh0_t = run_torch(module, x, h0, dh, lstm=True)

    assert_close('h', h, h_t)
    assert_close('dx', dx, dx_t)
    assert_close('dh0', dh0, dh0_t)
    assert_close('dWx', layer.grads[layer.wx_name], module.weight_ih_l0.grad.numpy().T[:, perm])
    assert_close('dWh', layer.grads[layer.wh_name], module.weight_hh_l0.grad.numpy().T[:, perm])
    assert_close('db', layer.grads[layer.b_name], module.bias_ih_l0.grad.numpy()[perm])
    assert_close('db (torch bias_hh)', layer.grads[layer.b_name], module.bias_hh_l0.grad.numpy()[perm])
