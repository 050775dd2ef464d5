"""The parallel builds of the kernels against the numpy reference.

Problems in the other tests are small, so fastrnn runs them serially; here the
block count is forced (3 blocks: more than the machine's threads, and not a
divisor of most sizes) so every chunked kernel's parallel build runs, including
batches and sequences shorter than the block count.
"""

import numpy as np
import pytest

import fastrnn.layer_utils
from fastrnn.layer_utils import temporal_fc, temporal_softmax_loss

import reference as ref
from test_layers_vs_reference import assert_matches, make_recurrent, reference_sequence, weights

FORCED_BLOCKS = 3


def record_forms(monkeypatch, forward_name, form_index, backward_name, backward_form_index):
    """The ``form`` arguments a layer passes to its forward and backward kernels
    (``fastrnn.layer_utils`` names, and the form's position in each call), in call
    order, as a list that fills while the test runs."""
    forms = []

    def recording(name, index):
        kernel = getattr(fastrnn.layer_utils, name)

        def record(*args):
            forms.append(args[index])
            return kernel(*args)

        monkeypatch.setattr(fastrnn.layer_utils, name, record)

    recording(forward_name, form_index)
    recording(backward_name, backward_form_index)
    return forms


def record_rnn_forms(monkeypatch):
    """``record_forms`` for the tanh RNN."""
    return record_forms(monkeypatch, "rnn_forward", 8, "rnn_backward", 11)


def record_lstm_forms(monkeypatch):
    """``record_forms`` for the LSTM."""
    return record_forms(monkeypatch, "lstm_forward", 13, "lstm_backward", 15)


@pytest.fixture
def force_blocks(monkeypatch):
    calls = []

    def chunks_for(rows, flops):
        calls.append(rows)
        return min(FORCED_BLOCKS, rows) if rows > 1 else 1

    monkeypatch.setattr(fastrnn.layer_utils, "chunks_for", chunks_for)
    yield
    assert calls, "the layer never asked for a block count: the patch tested nothing"


@pytest.mark.usefixtures("force_blocks")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("N, T, D, H", [(7, 5, 4, 6), (2, 9, 3, 5), (5, 2, 6, 3), (1, 4, 3, 2)])
@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_recurrent_layers_in_blocks(cell_type, N, T, D, H, dtype):
    check_against_reference(make_recurrent(cell_type, D, H, dtype, 1.0), N, T, dtype)


def check_against_reference(layer, N, T, dtype):
    """One forward and backward of ``layer`` on random data against the reference."""
    x = np.random.randn(N, T, layer.input_dim).astype(dtype)
    h0 = np.random.randn(N, layer.h_dim).astype(dtype)
    dh = np.random.randn(N, T, layer.h_dim).astype(dtype)
    h = layer.forward(x, h0)
    dx, dh0 = layer.backward(dh)
    cell_type = "lstm" if isinstance(layer, fastrnn.layer_utils.LSTM) else "rnn"
    h_ref, grads_ref = reference_sequence(cell_type, x, h0, dh, *weights(layer))
    assert_matches(h, h_ref, dtype, "h")
    got = [dx, dh0, *(layer.grads[k] for k in (layer.wx_name, layer.wh_name, layer.b_name))]
    for name, actual, expected in zip(["dx", "dh0", "dWx", "dWh", "db"], got, grads_ref):
        assert_matches(actual, expected, dtype, name)


@pytest.mark.parametrize("blocks", [1, FORCED_BLOCKS])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
@pytest.mark.parametrize("N, H", [(7, 5), (9, 37), (2, 37)])
def test_recurrent_layers_with_packed_weights(cell_type, N, H, dtype, blocks, monkeypatch):
    """The per-step GEMMs on packed weights (kernels.packed), forced here at small
    sizes, give the reference's results, serially and in blocks of unequal row
    counts.  H = 37 makes a partial last panel in both dtypes and, for the LSTM,
    several full ones; 7 and 9 rows leave rows over from the 4-row blocks; 2 rows
    in 3 blocks split the time steps too."""
    asked = []

    def always(wh_size, steps):
        asked.append((wh_size, steps))
        return True

    monkeypatch.setattr(fastrnn.layer_utils, "uses_packed_weights", always)
    monkeypatch.setattr(fastrnn.layer_utils, "uses_narrow_steps", lambda *args: False)
    monkeypatch.setattr(fastrnn.layer_utils, "uses_lstm_narrow_steps", lambda *args: False)
    monkeypatch.setattr(fastrnn.layer_utils, "chunks_for", lambda rows, flops: min(blocks, rows))
    D, T = 4, 6
    layer = make_recurrent(cell_type, D, H, dtype, 0.3)
    check_against_reference(layer, N, T, dtype)
    G = H if cell_type == "rnn" else 4 * H
    assert asked == [(H * G, T)] * 2, "forward and backward each ask once, with Wh's size"


@pytest.mark.parametrize("blocks", [1, FORCED_BLOCKS])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
@pytest.mark.parametrize("N", [9, 2])
def test_packed_weights_with_copies_shared_by_the_threads(cell_type, N, dtype, blocks,
                                                          monkeypatch):
    """Packed weights come with layers whose weights exceed
    kernels.blocked.PER_THREAD_COPY_MAX_SIZE (packing starts at 65,536 values in
    Wh), so in real runs the packed backward reads Wh^T packed once and shared:
    forced here with a Wx over the limit, serially and in blocks, with 2 rows
    also over split time steps."""
    from fastrnn.kernels.blocked import PER_THREAD_COPY_MAX_SIZE

    monkeypatch.setattr(fastrnn.layer_utils, "uses_packed_weights", lambda *args: True)
    monkeypatch.setattr(fastrnn.layer_utils, "uses_narrow_steps", lambda *args: False)
    monkeypatch.setattr(fastrnn.layer_utils, "uses_lstm_narrow_steps", lambda *args: False)
    monkeypatch.setattr(fastrnn.layer_utils, "chunks_for", lambda rows, flops: min(blocks, rows))
    H = 37
    D = PER_THREAD_COPY_MAX_SIZE // H + 1
    check_against_reference(make_recurrent(cell_type, D, H, dtype, 0.02), N, 6, dtype)


@pytest.mark.parametrize("blocks", [1, FORCED_BLOCKS])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("N, H", [(7, 5), (9, 37), (2, 20)])
def test_rnn_with_fused_steps(N, H, dtype, blocks, monkeypatch):
    """The tanh RNN's FUSED_STEPS forward (one packed_affine pass a step), forced
    here at sizes it would not choose, gives the reference's results, serially and
    in blocks.  H = 37 spans several panels, the last one partial; 7 and 9 rows
    leave rows over from the 4-row blocks; 2 rows make more blocks than rows."""
    asked = []

    def always(dtype_, h_dim, steps):
        asked.append((np.dtype(dtype_), h_dim, steps))
        return True

    monkeypatch.setattr(fastrnn.layer_utils, "uses_narrow_steps", lambda *args: False)
    monkeypatch.setattr(fastrnn.layer_utils, "uses_fused_steps", always)
    monkeypatch.setattr(fastrnn.layer_utils, "chunks_for", lambda rows, flops: min(blocks, rows))
    D, T = 4, 6
    check_against_reference(make_recurrent("rnn", D, H, dtype, 0.3), N, T, dtype)
    assert asked == [(np.dtype(dtype), H, T)], "the forward asks once"


@pytest.mark.parametrize("blocks", [1, FORCED_BLOCKS])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("N, H", [(7, 5), (9, 37), (2, 20), (5, 40)])
def test_rnn_with_narrow_steps(N, H, dtype, blocks, monkeypatch):
    """The tanh RNN's NARROW_STEPS forward (narrow_affine) and backward
    (narrow_product), forced here at sizes it would not all choose, give the
    reference's results, serially and in blocks.  H = 20 (float64) and 40
    (float32) fill a narrow panel, so the forward's tanh runs over unpadded
    blocks; 5 and 37 pad; 37 spans two panels in float64."""
    asked = []

    def always(dtype_, h_dim, steps):
        asked.append((np.dtype(dtype_), h_dim, steps))
        return True

    from fastrnn.kernels.blocked import NARROW_STEPS

    forms = record_rnn_forms(monkeypatch)
    monkeypatch.setattr(fastrnn.layer_utils, "uses_narrow_steps", always)
    monkeypatch.setattr(fastrnn.layer_utils, "chunks_for", lambda rows, flops: min(blocks, rows))
    D, T = 4, 6
    check_against_reference(make_recurrent("rnn", D, H, dtype, 0.3), N, T, dtype)
    assert asked == [(np.dtype(dtype), H, T)], "the forward asks once"
    assert forms == [NARROW_STEPS, NARROW_STEPS], "and its backward runs the same form"


@pytest.mark.parametrize("blocks", [1, FORCED_BLOCKS])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("form", ["fused", "narrow"])
@pytest.mark.parametrize("per_thread", [True, False])
@pytest.mark.parametrize("N", [7, 2])
def test_rnn_weights_copied_per_thread_or_shared(N, per_thread, form, dtype, blocks,
                                                 monkeypatch):
    """Small weights are packed / transposed by each chunk for itself, larger ones
    once before the parallel loop (kernels.blocked.PER_THREAD_COPY_MAX_SIZE):
    both ways give the reference's results, in the fused and narrow forms (whose
    own panels are packed in the chunk) and serially or in blocks.  An input of
    more values than the limit in Wx takes the shared copies; 2 rows in 3 blocks
    also split the time steps."""
    from fastrnn.kernels.blocked import PER_THREAD_COPY_MAX_SIZE

    H = 20
    D = 6 if per_thread else PER_THREAD_COPY_MAX_SIZE // H + 1
    assert (D * H <= PER_THREAD_COPY_MAX_SIZE) == per_thread
    monkeypatch.setattr(fastrnn.layer_utils, "uses_narrow_steps", lambda *args: form == "narrow")
    monkeypatch.setattr(fastrnn.layer_utils, "uses_fused_steps", lambda *args: form == "fused")
    monkeypatch.setattr(fastrnn.layer_utils, "chunks_for", lambda rows, flops: min(blocks, rows))
    check_against_reference(make_recurrent("rnn", D, H, dtype, 0.05), N, 5, dtype)


@pytest.mark.parametrize("blocks", [1, FORCED_BLOCKS])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("H, per_thread", [(5, True), (65, False)])
@pytest.mark.parametrize("N", [7, 2])
def test_lstm_backward_weights_copied_per_thread_or_shared(N, H, per_thread, dtype, blocks,
                                                           monkeypatch):
    """The LSTM backward's Wh^T and Wx^T, made by each chunk for itself when
    small and once before the parallel loop otherwise: both give the reference's
    results, serially and in blocks (2 rows in 3 blocks also split the time
    steps).  At H = 65, Wh (H, 4H) has more values than the limit."""
    from fastrnn.kernels.blocked import PER_THREAD_COPY_MAX_SIZE

    assert (H * 4 * H <= PER_THREAD_COPY_MAX_SIZE) == per_thread
    monkeypatch.setattr(fastrnn.layer_utils, "chunks_for", lambda rows, flops: min(blocks, rows))
    check_against_reference(make_recurrent("lstm", 4, H, dtype, 0.05), N, 5, dtype)


@pytest.mark.parametrize("blocks", [1, FORCED_BLOCKS])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("H", [5, 10, 25, 30, 65, 70])
@pytest.mark.parametrize("N", [9, 2])
def test_lstm_with_narrow_steps(N, H, dtype, blocks, monkeypatch):
    """The LSTM's NARROW_STEPS products, forced here wherever the kernels take
    them (the forward needs panels that cover 4H exactly: H a multiple of 5 in
    float64, of 10 in float32), give the reference's results, serially and in
    blocks.  The backward's last Wh^T panel is partly used at every H here; at
    H = 65 and 70 Wh has more values than kernels.blocked.PER_THREAD_COPY_MAX_SIZE,
    so the panels are packed once and shared; 9 rows leave one over from the
    4-row blocks, 2 rows in 3 blocks split the time steps."""
    from fastrnn.kernels.blocked import NARROW_STEPS
    from fastrnn.kernels.packed import narrow_panel_columns

    fits = 4 * H % narrow_panel_columns(dtype) == 0
    forms = record_lstm_forms(monkeypatch)
    monkeypatch.setattr(fastrnn.layer_utils, "uses_lstm_narrow_steps",
                        lambda dtype_, h_dim, steps, backward: backward or fits)
    monkeypatch.setattr(fastrnn.layer_utils, "chunks_for", lambda rows, flops: min(blocks, rows))
    check_against_reference(make_recurrent("lstm", 4, H, dtype, 0.1), N, 5, dtype)
    assert (forms[0] == NARROW_STEPS) == fits and forms[1] == NARROW_STEPS


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lstm_narrow_steps_rule(dtype, monkeypatch):
    """The rule (512-bit vectors, more than one step, Wh up to the limit; forward
    when the panels cover 4H exactly, backward when H is more than half a panel),
    and the notebook-size layer passing its choice on, unpatched."""
    from fastrnn.kernels.blocked import BLAS_STEPS, NARROW_STEPS
    from fastrnn.kernels.packed import narrow_panel_columns
    from fastrnn.kernels.simd import VECTOR_BITS
    from fastrnn.layer_utils import LSTM_NARROW_MAX_WEIGHTS, uses_lstm_narrow_steps

    NR = narrow_panel_columns(dtype)
    monkeypatch.setattr(fastrnn.layer_utils, "VECTOR_BITS", 256)  # only measured at 512
    assert not uses_lstm_narrow_steps(dtype, NR, 50, False)
    assert not uses_lstm_narrow_steps(dtype, NR, 50, True)
    monkeypatch.setattr(fastrnn.layer_utils, "VECTOR_BITS", 512)
    for backward in (False, True):
        assert uses_lstm_narrow_steps(dtype, NR, 50, backward)
        assert not uses_lstm_narrow_steps(dtype, NR, 1, backward)
    assert uses_lstm_narrow_steps(dtype, NR // 4, 50, False)  # 4H = one panel
    assert not uses_lstm_narrow_steps(dtype, NR // 4 + 1, 50, False)
    assert not uses_lstm_narrow_steps(dtype, NR // 2, 50, True)  # half its panel
    assert uses_lstm_narrow_steps(dtype, NR // 2 + 1, 50, True)
    assert uses_lstm_narrow_steps(dtype, NR + 1, 50, True)  # two panels, 21 (41) of 40 (80)
    largest = int(np.sqrt(LSTM_NARROW_MAX_WEIGHTS / 4))
    assert 4 * largest * largest <= LSTM_NARROW_MAX_WEIGHTS < 4 * (largest + 1) ** 2
    assert uses_lstm_narrow_steps(dtype, largest, 50, True)
    assert not uses_lstm_narrow_steps(dtype, largest + 1, 50, True)
    monkeypatch.undo()
    forms = record_lstm_forms(monkeypatch)
    check_against_reference(make_recurrent("lstm", 10, 20, dtype, 0.3), 5, 4, dtype)
    if VECTOR_BITS < 512:
        assert forms == [BLAS_STEPS, BLAS_STEPS]
    elif dtype == np.float64:  # 4H = 80: four narrow panels; H = 20 fills one
        assert forms == [NARROW_STEPS, NARROW_STEPS]
    else:  # 4H = 80: two narrow panels; H = 20 is half of one
        assert forms == [NARROW_STEPS, BLAS_STEPS]


def test_weights_up_to_the_limit_are_copied_per_thread():
    """The rule the kernels apply (kernels.blocked.per_thread_copies), at its edge."""
    from fastrnn.kernels.blocked import PER_THREAD_COPY_MAX_SIZE, per_thread_copies

    assert per_thread_copies(np.zeros((4, PER_THREAD_COPY_MAX_SIZE // 4)))
    assert not per_thread_copies(np.zeros(PER_THREAD_COPY_MAX_SIZE + 1))
    assert per_thread_copies(np.zeros((2, 3), dtype=np.float32))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_narrow_steps_are_chosen_between_one_full_and_one_narrow_panel(dtype, monkeypatch):
    """The rule (512-bit vectors; more than a full panel's columns, at most a
    narrow panel's; more than one step), and the layer passing its choice on to
    both kernels, unpatched."""
    from fastrnn.kernels.packed import narrow_panel_columns, panel_columns
    from fastrnn.kernels.simd import VECTOR_BITS
    from fastrnn.kernels.blocked import NARROW_STEPS
    from fastrnn.layer_utils import uses_narrow_steps

    full, narrow = panel_columns(dtype), narrow_panel_columns(dtype)
    monkeypatch.setattr(fastrnn.layer_utils, "VECTOR_BITS", 256)
    assert not uses_narrow_steps(dtype, narrow, 50)
    monkeypatch.setattr(fastrnn.layer_utils, "VECTOR_BITS", 512)
    assert uses_narrow_steps(dtype, narrow, 50) and uses_narrow_steps(dtype, full + 1, 50)
    assert not uses_narrow_steps(dtype, full, 50)
    assert not uses_narrow_steps(dtype, narrow + 1, 50)
    assert not uses_narrow_steps(dtype, narrow, 1)
    monkeypatch.undo()
    forms = record_rnn_forms(monkeypatch)
    H = narrow if VECTOR_BITS >= 512 else full  # narrow panels only measured at 512 bits
    check_against_reference(make_recurrent("rnn", 3, H, dtype, 0.3), 5, 4, dtype)
    if VECTOR_BITS >= 512:
        assert forms == [NARROW_STEPS, NARROW_STEPS]
    else:
        assert NARROW_STEPS not in forms


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_steps_are_chosen_when_h_fills_most_of_one_panel(dtype, monkeypatch):
    """The rule (512-bit vectors, more than half of one packed panel, more than
    one step), and the layer passing its choice on, unpatched."""
    from fastrnn.kernels.packed import panel_columns
    from fastrnn.kernels.simd import VECTOR_BITS
    from fastrnn.kernels.blocked import BLAS_STEPS
    from fastrnn.kernels.vanilla import FUSED_STEPS
    from fastrnn.layer_utils import uses_fused_steps

    NR = panel_columns(dtype)
    monkeypatch.setattr(fastrnn.layer_utils, "VECTOR_BITS", 256)  # only measured at 512
    assert not uses_fused_steps(dtype, NR, 50)
    monkeypatch.setattr(fastrnn.layer_utils, "VECTOR_BITS", 512)
    assert uses_fused_steps(dtype, NR, 50) and uses_fused_steps(dtype, NR // 2 + 1, 50)
    assert not uses_fused_steps(dtype, NR // 2, 50)
    assert not uses_fused_steps(dtype, NR + 1, 50)
    assert not uses_fused_steps(dtype, NR, 1)
    monkeypatch.undo()
    forms = record_rnn_forms(monkeypatch)
    check_against_reference(make_recurrent("rnn", 3, NR, dtype, 0.3), 5, 4, dtype)
    assert forms == [FUSED_STEPS if VECTOR_BITS >= 512 else BLAS_STEPS, BLAS_STEPS]


def test_packed_weights_are_chosen_for_large_weights_and_sequences():
    from fastrnn.layer_utils import PACKED_WEIGHTS_MIN_SIZE, uses_packed_weights

    assert uses_packed_weights(PACKED_WEIGHTS_MIN_SIZE, 2)
    assert not uses_packed_weights(PACKED_WEIGHTS_MIN_SIZE - 1, 50)
    assert not uses_packed_weights(100 * PACKED_WEIGHTS_MIN_SIZE, 1)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell_type, H", [("lstm", 128), ("rnn", 256)])
def test_layers_large_enough_for_packed_weights(cell_type, H, dtype):
    """The layers' own choice, unpatched, at the smallest sizes that pack (Wh of
    128 x 512 and 256 x 256)."""
    from fastrnn.layer_utils import uses_packed_weights

    layer = make_recurrent(cell_type, 3, H, dtype, 0.1)
    assert uses_packed_weights(layer.params[layer.wh_name].size, 4)
    check_against_reference(layer, 5, 4, dtype)


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_a_backward_uses_its_forwards_blocks(cell_type, monkeypatch):
    """The block count fixes the stored state's layout: a thread count changed
    between forward and backward (here: 3 blocks, then 1) must not change it."""
    blocks = {"count": FORCED_BLOCKS}
    monkeypatch.setattr(fastrnn.layer_utils, "chunks_for",
                        lambda rows, flops: min(blocks["count"], rows))
    N, T, D, H = 5, 4, 3, 6
    layer = make_recurrent(cell_type, D, H, np.float64, 1.0)
    x, h0, dh = np.random.randn(N, T, D), np.random.randn(N, H), np.random.randn(N, T, H)
    layer.forward(x, h0)
    blocks["count"] = 1
    dx, dh0 = layer.backward(dh)
    _, grads_ref = reference_sequence(cell_type, x, h0, dh, *weights(layer))
    assert_matches(dx, grads_ref[0], np.float64, "dx")
    assert_matches(dh0, grads_ref[1], np.float64, "dh0")
    assert_matches(layer.grads[layer.wh_name], grads_ref[3], np.float64, "dWh")


@pytest.mark.usefixtures("force_blocks")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("D, M", [(4, 7), (4, 4100)])
def test_temporal_fc_in_blocks(D, M, dtype):
    """Forward and backward in blocks; with M = 4100, W has more values than
    kernels.blocked.PER_THREAD_COPY_MAX_SIZE, so the blocks share one W^T."""
    N, T = 5, 3
    fc = temporal_fc(D, M, init_scale=1.0, dtype=dtype)
    x = np.random.randn(N, T, D).astype(dtype)
    dout = np.random.randn(N, T, M).astype(dtype)
    out = fc.forward(x)
    dx = fc.backward(dout)
    w, b = fc.params[fc.w_name], fc.params[fc.b_name]
    assert_matches(out, ref.temporal_fc_forward(x, w, b), dtype, "out")
    dx_ref, dw_ref, db_ref = ref.temporal_fc_backward(dout, x, w)
    assert_matches(dx, dx_ref, dtype, "dx")
    assert_matches(fc.grads[fc.w_name], dw_ref, dtype, "dw")
    assert_matches(fc.grads[fc.b_name], db_ref, dtype, "db")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_more_blocks_than_work(dtype, monkeypatch):
    """3 blocks for 2 rows (linear layer) or 2 steps of 1 sequence (recurrent
    layers): the first block, which writes the weight gradients themselves while
    the others write partials, gets no work and must still leave them right."""
    monkeypatch.setattr(fastrnn.layer_utils, "chunks_for", lambda rows, flops: FORCED_BLOCKS)
    for cell_type in ("rnn", "lstm"):
        check_against_reference(make_recurrent(cell_type, 3, 4, dtype, 1.0), 1, 2, dtype)
    fc = temporal_fc(3, 5, init_scale=1.0, dtype=dtype)
    x = np.random.randn(1, 2, 3).astype(dtype)
    dout = np.random.randn(1, 2, 5).astype(dtype)
    fc.forward(x)
    dx = fc.backward(dout)
    dx_ref, dw_ref, db_ref = ref.temporal_fc_backward(dout, x, fc.params[fc.w_name])
    assert_matches(dx, dx_ref, dtype, "dx")
    assert_matches(fc.grads[fc.w_name], dw_ref, dtype, "dw")
    assert_matches(fc.grads[fc.b_name], db_ref, dtype, "db")


@pytest.mark.usefixtures("force_blocks")
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_softmax_loss_in_parallel(dtype):
    N, T, V = 6, 5, 11
    scores = (3 * np.random.randn(N, T, V)).astype(dtype)
    labels = np.random.randint(V, size=(N, T))
    mask = np.random.rand(N, T) > 0.3
    loss_func = temporal_softmax_loss()
    loss = loss_func.forward(scores, labels, mask)
    loss_ref, dx_ref = ref.temporal_softmax_loss(scores, labels, mask)
    assert loss == pytest.approx(loss_ref, rel=1e-10 if dtype == np.float64 else 1e-5)
    assert_matches(loss_func.backward(), dx_ref, dtype, "dscores")


@pytest.mark.usefixtures("force_blocks")
def test_the_parallel_build_really_runs_in_parallel():
    """A forced block count must reach a parallel region, not a serial build that
    shares its cache entry (Numba's cache files do not record compile options)."""
    import numba

    from fastrnn.kernels.lstm import lstm_forward

    assert lstm_forward.parallel.py_func.__qualname__ != lstm_forward.serial.py_func.__qualname__
    layer = make_recurrent("lstm", 3, 4, np.float64, 1.0)
    layer.forward(np.random.randn(6, 5, 3), np.zeros((6, 4)))
    assert numba.threading_layer() in ("omp", "tbb", "workqueue")


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_generation_with_the_output_layer_in_blocks(cell_type, monkeypatch):
    """Blocks of the output layer (parallel build) pick the same greedy words as
    one block (serial build)."""
    import fastrnn.sampling
    from fastrnn.rnn import LanguageModelRNN

    model = LanguageModelRNN(37, 6, 9, cell_type=cell_type)
    for key in model.params:
        model.params[key] = 3 * np.random.randn(*model.params[key].shape)
    serial = model.sample(5, 40)
    monkeypatch.setattr(fastrnn.sampling, "generation_chunks", lambda vocab, hidden: FORCED_BLOCKS)
    assert model.sample(5, 40) == serial
    drawn = model.sample(5, 40, temperature=1.0, seed=7)
    assert len(drawn) == 41 and all(0 <= w < 37 for w in drawn)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", [(5, 7), (1, 80), (300, 257), (16, 4096)])
def test_transposed_copy(shape, dtype):
    """The weights' transposed copies, below and above the size from which they go
    tile by tile (shapes not multiples of the tile)."""
    from fastrnn.kernels.blocked import TILED_TRANSPOSE_MIN_SIZE, transposed_copy

    a = np.random.randn(*shape).astype(dtype)
    t = transposed_copy(a)
    assert t.dtype == dtype and t.flags.c_contiguous
    np.testing.assert_array_equal(t, a.T)
    if shape == (300, 257):
        assert a.size >= TILED_TRANSPOSE_MIN_SIZE > 5 * 7
