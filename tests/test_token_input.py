"""A recurrent layer fed token ids and an embedding (``forward_ids`` / ``backward_ids``),
against the numpy reference run on the looked-up vectors.

An LSTM folds the embedding into its input projection where ``folds_embedding`` says
so (a table E Wx looked up per step, its gradient summed by token); everywhere else
the layer looks the vectors up and runs its usual path.  Both must give the
reference's h, dh0, weight gradients and embedding gradient, in the serial build and
in blocks on threads, and a float32 layer must stay float32.
"""

import numpy as np
import pytest

import fastrnn.layer_utils
from fastrnn.grad_check import eval_numerical_gradient_array, rel_error
from fastrnn.kernels.dispatch import StepForm, force_form
from fastrnn.layer_utils import LSTM, VanillaRNN

import reference as ref
from test_layers_vs_reference import assert_matches, make_recurrent, reference_sequence, weights

# N, T, V, D, H: a vocabulary of at most half the window's tokens (folded for an
# LSTM), one with T = 1, and one of more tokens than the window holds (never folded).
SHAPES = [(4, 7, 5, 3, 6), (3, 9, 2, 4, 5), (1, 6, 3, 2, 4), (2, 1, 1, 3, 2), (2, 3, 30, 4, 3)]


def draw_ids(N, T, V, rng):
    """Token ids (N, T) in [0, V) with every id of a small vocabulary repeated."""
    return rng.integers(0, V, size=(N, T))


def check_ids_against_reference(layer, ids, embedding, dtype, rng):
    """forward_ids / backward_ids of ``layer`` against the reference run on embedding[ids]."""
    N, T = ids.shape
    V, D = embedding.shape
    h0 = rng.standard_normal((N, layer.h_dim)).astype(dtype)
    dh = rng.standard_normal((N, T, layer.h_dim)).astype(dtype)
    inputs = [ids.copy(), embedding.copy(), h0.copy(), dh.copy()]

    h = layer.forward_ids(ids, embedding, h0)
    dembedding, dh0 = layer.backward_ids(dh)

    for before, after in zip(inputs, [ids, embedding, h0, dh]):
        np.testing.assert_array_equal(before, after, err_msg="an input was modified")
    cell_type = "lstm" if isinstance(layer, LSTM) else "rnn"
    h_ref, (dx_ref, dh0_ref, dWx_ref, dWh_ref, db_ref) = reference_sequence(
        cell_type, embedding[ids], h0, dh, *weights(layer))
    dembedding_ref = ref.word_embedding_backward(dx_ref, ids, V)
    assert_matches(h, h_ref, dtype, "h")
    assert_matches(dh0, dh0_ref, dtype, "dh0")
    assert_matches(dembedding, dembedding_ref, dtype, "d embedding")
    assert_matches(layer.grads[layer.wx_name], dWx_ref, dtype, "dWx")
    assert_matches(layer.grads[layer.wh_name], dWh_ref, dtype, "dWh")
    assert_matches(layer.grads[layer.b_name], db_ref, dtype, "db")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("N, T, V, D, H", SHAPES)
@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_ids_input_matches_the_reference(cell_type, N, T, V, D, H, dtype):
    rng = np.random.default_rng(N * 100 + V)
    layer = make_recurrent(cell_type, D, H, dtype, 1.0)
    embedding = rng.standard_normal((V, D)).astype(dtype)
    folds = layer.folds_embedding(V, N, T)
    assert folds == (cell_type == "lstm" and 2 * V <= N * T)
    check_ids_against_reference(layer, draw_ids(N, T, V, rng), embedding, dtype, rng)


@pytest.mark.parametrize("blocks", [2, 3])
@pytest.mark.parametrize("form", [StepForm.BLAS, StepForm.PACKED])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("N", [2, 5, 9])
def test_folded_lstm_in_blocks_on_threads(N, dtype, form, blocks, monkeypatch):
    """The parallel build: chunks of the batch, and with more blocks than rows (N = 2)
    runs of steps whose table gradients are partial sums added at the end."""
    monkeypatch.setattr(fastrnn.layer_utils, "chunks_for",
                        lambda rows, flops: min(blocks, rows) if rows > 1 else 1)
    rng = np.random.default_rng(N)
    T, V, D, H = 8, 4, 3, 5
    layer = make_recurrent("lstm", D, H, dtype, 1.0)
    embedding = rng.standard_normal((V, D)).astype(dtype)
    assert layer.folds_embedding(V, N, T)
    with force_form(form, "lstm"):
        check_ids_against_reference(layer, draw_ids(N, T, V, rng), embedding, dtype, rng)


def test_lstm_folds_only_on_its_full_path():
    layer = LSTM(3, 4)
    assert layer.folds_embedding(10, 4, 5)
    assert not layer.folds_embedding(11, 4, 5)  # more than half the window's tokens
    layer.checkpoint_every = 2
    assert not layer.folds_embedding(10, 4, 5)  # recomputation runs per piece
    layer.checkpoint_every = 0
    layer.memory_budget = 10 ** 9
    assert not layer.folds_embedding(10, 4, 5)
    assert not VanillaRNN(3, 4).folds_embedding(1, 100, 100)


@pytest.mark.parametrize("checkpoint_every", [0, 3])
def test_embedding_gradient_of_the_folded_and_recomputing_paths_by_finite_differences(
        checkpoint_every):
    """d loss / d embedding and d loss / dWx, numerically, through forward_ids."""
    rng = np.random.default_rng(7)
    N, T, V, D, H = 3, 8, 4, 3, 4
    layer = make_recurrent("lstm", D, H, np.float64, 0.5)
    layer.checkpoint_every = checkpoint_every
    assert layer.folds_embedding(V, N, T) == (checkpoint_every == 0)
    ids = draw_ids(N, T, V, rng)
    embedding = rng.standard_normal((V, D))
    h0 = rng.standard_normal((N, H))
    dh = rng.standard_normal((N, T, H))
    layer.forward_ids(ids, embedding, h0)
    dembedding, _ = layer.backward_ids(dh)
    dwx = layer.grads[layer.wx_name].copy()

    numeric = eval_numerical_gradient_array(lambda e: layer.forward_ids(ids, e, h0), embedding,
                                            dh)
    assert rel_error(dembedding, numeric) < 5e-7  # the notebook's bound for sequences
    wx = layer.params[layer.wx_name]
    numeric = eval_numerical_gradient_array(lambda w: layer.forward_ids(ids, embedding, h0), wx,
                                            dh)
    assert rel_error(dwx, numeric) < 5e-7


def test_folded_state_buffers_are_reused_and_vector_input_still_works():
    """The ids' state buffers (int) and the vectors' (float) are not mixed up when a
    layer alternates between the two inputs."""
    rng = np.random.default_rng(3)
    N, T, V, D, H = 4, 6, 3, 2, 5
    layer = make_recurrent("lstm", D, H, np.float64, 1.0)
    embedding = rng.standard_normal((V, D))
    ids = draw_ids(N, T, V, rng)
    h0 = rng.standard_normal((N, H))
    dh = rng.standard_normal((N, T, H))
    for _ in range(2):
        h_ids = layer.forward_ids(ids, embedding, h0)
        dembedding, _ = layer.backward_ids(dh)
        h_vectors = layer.forward(embedding[ids], h0)
        dx, _ = layer.backward(dh)
        np.testing.assert_allclose(h_ids, h_vectors, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dembedding, ref.word_embedding_backward(dx, ids, V),
                                   rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_ids_errors_name_what_was_expected(cell_type):
    layer = make_recurrent(cell_type, 3, 4, np.float64, 1.0)
    embedding = np.ones((5, 3))
    h0 = np.zeros((2, 4))
    with pytest.raises(ValueError, match=r"ids: expected indices in \[0, 5\), got 5"):
        layer.forward_ids(np.array([[0, 5]]), embedding, h0[:1])
    with pytest.raises(ValueError, match=r"ids: expected indices in \[0, 5\), got -1"):
        layer.forward_ids(np.array([[0, -1]]), embedding, h0[:1])
    with pytest.raises(TypeError, match="ids: expected integer word indices"):
        layer.forward_ids(np.zeros((2, 3)), embedding, h0)
    with pytest.raises(ValueError, match="embedding"):
        layer.forward_ids(np.zeros((2, 3), int), np.ones((5, 2)), h0)
    with pytest.raises(ValueError, match="h0"):
        layer.forward_ids(np.zeros((2, 3), int), embedding, np.zeros((3, 4)))
    layer.forward_ids(np.zeros((2, 3), int), embedding, h0)
    with pytest.raises(RuntimeError, match="backward_ids"):
        layer.backward(np.zeros((2, 3, 4)))
    layer.backward_ids(np.zeros((2, 3, 4)))  # the state survived the wrong call
    layer.forward(np.zeros((2, 3, 3)), h0)
    with pytest.raises(RuntimeError, match="the last forward was forward"):
        layer.backward_ids(np.zeros((2, 3, 4)))
    layer.backward(np.zeros((2, 3, 4)))
    if cell_type == "rnn":
        with pytest.raises(TypeError, match="no cell state"):
            layer.forward_ids(np.zeros((2, 3), int), embedding, h0, h0)
