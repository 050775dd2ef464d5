"""Bad input is refused before any compiled kernel sees it (kernels do no bounds checks), with an
error of the form "<name>: expected ..., got ..." that names the argument and what came."""

import re

import numpy as np
import pytest

from fastrnn import _checks
from fastrnn.layer_utils import LSTM, VanillaRNN, temporal_fc, temporal_softmax_loss, word_embedding
from fastrnn.rnn import LanguageModelRNN, TestRNN

N, T, D, H, V = 2, 5, 3, 4, 7


def refused(*names, errors=(ValueError, TypeError)):
    """pytest.raises for an error whose message starts with one of `names`, then
    ': expected', and says what it got."""
    alternatives = "|".join(re.escape(n) for n in names)
    return pytest.raises(errors, match=rf"^({alternatives}): expected .*\bgot\b")


def recurrent(cell_type):
    return (VanillaRNN if cell_type == 'rnn' else LSTM)(D, H, name=cell_type)


def gates(cell_type):
    return H if cell_type == 'rnn' else 4 * H


CELLS = ['rnn', 'lstm']


# --------------------------------------------------------------------------------------------
# Recurrent layers
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell_type", CELLS)
@pytest.mark.parametrize("x_shape", [(N, D), (N, T, D, 1), (N, T, D + 1), (N, T, 0), (0, T, D),
                                     (N, 0, D)],
                         ids=['rank 2', 'rank 4', 'wrong D', 'empty D', 'empty batch', 'no steps'])
def test_x_of_wrong_rank_or_shape(cell_type, x_shape):
    with refused('x'):
        recurrent(cell_type).forward(np.zeros(x_shape), np.zeros((N, H)))


@pytest.mark.parametrize("cell_type", CELLS)
@pytest.mark.parametrize("h0_shape", [(N + 1, H), (N, H - 1), (N, H + 1), (H,), (1, N, H)],
                         ids=['wrong N', 'H too small', 'H too large', 'rank 1', 'rank 3'])
def test_h0_of_wrong_rank_or_shape(cell_type, h0_shape):
    with refused('h0'):
        recurrent(cell_type).forward(np.zeros((N, T, D)), np.zeros(h0_shape))


def test_h0_message_states_expected_and_actual_shape():
    with pytest.raises(ValueError) as info:
        VanillaRNN(D, H).forward(np.zeros((N, T, D)), np.zeros((N, H - 1)))
    message = str(info.value)
    assert message.startswith('h0: expected')
    assert str((N, H)) in message and str((N, H - 1)) in message


@pytest.mark.parametrize("cell_type", CELLS)
@pytest.mark.parametrize("dh_shape", [(N, T + 1, H), (N, T, H + 1), (N + 1, T, H), (N, T * H)],
                         ids=['wrong T', 'wrong H', 'wrong N', 'rank 2'])
def test_dh_of_wrong_shape(cell_type, dh_shape):
    layer = recurrent(cell_type)
    layer.forward(np.zeros((N, T, D)), np.zeros((N, H)))
    with refused('dh'):
        layer.backward(np.zeros(dh_shape))


@pytest.mark.parametrize("cell_type", CELLS)
@pytest.mark.parametrize("which, shape", [
    ('wx', lambda G: (D + 1, G)),
    ('wx', lambda G: (D, G - 1)),
    ('wx', lambda G: (D * G,)),
    ('wh', lambda G: (H + 1, G)),
    ('wh', lambda G: (H, G + 1)),
    ('b', lambda G: (G + 1,)),
    ('b', lambda G: (1, G)),
])
def test_parameter_of_wrong_shape_is_named_by_its_key(cell_type, which, shape):
    layer = recurrent(cell_type)
    key = {'wx': layer.wx_name, 'wh': layer.wh_name, 'b': layer.b_name}[which]
    layer.params[key] = np.zeros(shape(gates(cell_type)))
    with pytest.raises(ValueError, match=rf"^{re.escape(key)}: expected .*\bgot\b"):
        layer.forward(np.zeros((N, T, D)), np.zeros((N, H)))


@pytest.mark.parametrize("cell_type", CELLS)
def test_step_forward_inputs(cell_type):
    layer = recurrent(cell_type)
    state = (np.zeros((N, H)),) * (1 if cell_type == 'rnn' else 2)
    with refused('x'):
        layer.step_forward(np.zeros((N, D + 1)), *state)
    with refused('x'):
        layer.step_forward(np.zeros((N, 1, D)), *state)
    with refused('prev_h'):
        layer.step_forward(np.zeros((N, D)), np.zeros((N + 1, H)), *state[1:])
    if cell_type == 'lstm':
        with refused('prev_c'):
            layer.step_forward(np.zeros((N, D)), np.zeros((N, H)), np.zeros((N, H + 1)))


def test_model_inputs_are_checked():
    model = TestRNN(D, H, cell_type='lstm')
    with refused('x', 'feat'):
        model.forward(np.zeros((N, T, D + 1)), np.zeros((N, H)))
    with refused('h0'):
        model.forward(np.zeros((N, T, D)), np.zeros((N + 1, H)))


# --------------------------------------------------------------------------------------------
# Word indices
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad_word", [-1, V, V + 100, -V])
def test_word_index_out_of_range(bad_word):
    words = np.zeros((N, T), dtype=np.int64)
    words[1, 2] = bad_word
    with pytest.raises(ValueError, match=rf"^x: expected .*\[0, {V}\).*\bgot {bad_word}\b"):
        word_embedding(V, D).forward(words)


def test_float_words_are_refused():
    with refused('x', errors=TypeError):
        word_embedding(V, D).forward(np.zeros((N, T)))


@pytest.mark.parametrize("shape", [(N,), (N, T, 1)])
def test_words_of_wrong_rank(shape):
    with refused('x'):
        word_embedding(V, D).forward(np.zeros(shape, dtype=np.int64))


def test_embedding_dout_of_wrong_shape():
    we = word_embedding(V, D)
    we.forward(np.zeros((N, T), dtype=np.int64))
    with refused('dout'):
        we.backward(np.zeros((N, T, D + 1)))


def test_language_model_refuses_out_of_range_words():
    model = LanguageModelRNN(V, D, H, cell_type='lstm')
    with refused('x', 'words'):
        model.forward(np.full((N, T), V), np.zeros((N, H)))
    with refused('x', 'words'):
        model.forward(np.full((N, T), -1), np.zeros((N, H)))


@pytest.mark.parametrize("cell_type", CELLS)
@pytest.mark.parametrize("bad_index", [V, V + 3, -1])
def test_sample_from_an_index_out_of_range(cell_type, bad_index):
    model = LanguageModelRNN(V, D, H, cell_type=cell_type)
    with pytest.raises(ValueError, match=r"^word_index: expected .*\bgot\b"):
        model.sample(bad_index, 10)


def test_sample_from_a_non_integer_index():
    model = LanguageModelRNN(V, D, H, cell_type='lstm')
    with refused('word_index'):
        model.sample(1.5, 10)


# --------------------------------------------------------------------------------------------
# temporal fc, temporal softmax loss
# --------------------------------------------------------------------------------------------

def test_temporal_fc_shapes():
    fc = temporal_fc(D, V)
    with refused('x'):
        fc.forward(np.zeros((N, T, D + 1)))
    with refused('x'):
        fc.forward(np.zeros((N * T, D)))
    fc.forward(np.zeros((N, T, D)))
    with refused('dout'):
        fc.backward(np.zeros((N, T, V + 1)))


def test_temporal_fc_parameter_of_wrong_shape():
    fc = temporal_fc(D, V, name='fc')
    fc.params[fc.w_name] = np.zeros((D + 1, V))
    with pytest.raises(ValueError, match=r"^fc_w: expected .*\bgot\b"):
        fc.forward(np.zeros((N, T, D)))


SCORES_NAMES = ('feat', 'scores', 'x')
LABEL_NAMES = ('label', 'labels', 'y')


@pytest.mark.parametrize("shape", [(N, T), (N * T * V,), (N, T, V, 1)])
def test_softmax_scores_of_wrong_rank(shape):
    with refused(*SCORES_NAMES):
        temporal_softmax_loss().forward(np.zeros(shape), np.zeros((N, T), dtype=np.int64),
                                        np.ones((N, T)))


@pytest.mark.parametrize("shape", [(N, T + 1), (N + 1, T), (N * T,)])
def test_softmax_labels_of_wrong_shape(shape):
    with refused(*LABEL_NAMES):
        temporal_softmax_loss().forward(np.zeros((N, T, V)), np.zeros(shape, dtype=np.int64),
                                        np.ones((N, T)))


@pytest.mark.parametrize("bad_label", [-1, V])
def test_softmax_labels_out_of_range(bad_label):
    labels = np.zeros((N, T), dtype=np.int64)
    labels[0, -1] = bad_label
    with refused(*LABEL_NAMES, errors=ValueError):
        temporal_softmax_loss().forward(np.zeros((N, T, V)), labels, np.ones((N, T)))


def test_softmax_float_labels_are_refused():
    with refused(*LABEL_NAMES):
        temporal_softmax_loss().forward(np.zeros((N, T, V)), np.zeros((N, T)), np.ones((N, T)))


@pytest.mark.parametrize("shape", [(N, T + 1), (T, N), (N * T,)])
def test_softmax_mask_of_wrong_shape(shape):
    with refused('mask'):
        temporal_softmax_loss().forward(np.zeros((N, T, V)), np.zeros((N, T), dtype=np.int64),
                                        np.ones(shape))


class _Tagged(np.ndarray):
    """An ndarray subclass, as a caller's array type might be."""


def test_arrays_in_kernel_form_are_used_as_they_are_and_others_converted():
    x = np.arange(24.0).reshape(2, 3, 4)
    labels, expected = ("N", "T", "D"), (None, None, 4)
    assert _checks.float_array("x", x, labels, expected, x.dtype) is x
    for other in (np.asfortranarray(x), x[:, ::-1].copy()[:, ::-1], x.view(_Tagged)):
        got = _checks.float_array("x", other, labels, expected, x.dtype)
        assert type(got) is np.ndarray and got.dtype == np.float64 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, x)
    # Non-native byte order is not a type the kernels are compiled for: refused, not guessed at.
    with pytest.raises(TypeError, match=r"^x: expected a float32 or float64 array, got .*>f8"):
        _checks.float_array("x", x.astype(">f8"), labels, expected, x.dtype)
    layer = LSTM(4, 5)
    assert layer._weights()[1] is layer.params[layer.wh_name]


def test_float_types_the_kernels_are_not_compiled_for_are_refused():
    layer = LSTM(3, 4, dtype=np.float32)
    with pytest.raises(TypeError, match=r"^x: expected .*float32.*got .*float16"):
        layer.forward(np.ones((2, 5, 3), np.float16), np.zeros((2, 4)))
    with pytest.raises(TypeError, match=r"^feat: expected a float32 or float64 array, got .*float16"):
        temporal_softmax_loss().forward(np.ones((2, 3, 4), np.float16), np.zeros((2, 3), int),
                                        np.ones((2, 3)))
