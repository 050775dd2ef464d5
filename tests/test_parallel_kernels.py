"""The parallel builds of the kernels against the numpy reference.

Problems in the other tests are small, so fastrnn runs them serially; here the
block count is forced (3 blocks: more than the machine's threads, and not a
divisor of most sizes) so every chunked kernel's parallel build runs, including
batches and sequences shorter than the block count.
"""

import inspect

import numpy as np
import pytest

import fastrnn.layer_utils
from fastrnn.kernels.dispatch import StepForm, choose_form, force_form, thresholds
from fastrnn.layer_utils import temporal_fc, temporal_softmax_loss

import reference as ref
from test_layers_vs_reference import assert_matches, make_recurrent, reference_sequence, weights

FORCED_BLOCKS = 3


def record_forms(monkeypatch, forward_name, backward_name):
    """The ``form`` arguments a layer passes to its forward and backward kernels
    (``fastrnn.layer_utils`` names), in call order, as a list of StepForm that
    fills while the test runs."""
    forms = []

    def recording(name):
        kernel = getattr(fastrnn.layer_utils, name)
        form_index = list(inspect.signature(kernel.serial.py_func).parameters).index("form")

        def record(*args):
            forms.append(StepForm(args[form_index]))
            return kernel(*args)

        monkeypatch.setattr(fastrnn.layer_utils, name, record)

    recording(forward_name)
    recording(backward_name)
    return forms


def record_rnn_forms(monkeypatch):
    """``record_forms`` for the tanh RNN."""
    return record_forms(monkeypatch, "rnn_forward", "rnn_backward")


def record_lstm_forms(monkeypatch):
    """``record_forms`` for the LSTM."""
    return record_forms(monkeypatch, "lstm_forward", "lstm_backward")


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
    forms = (record_rnn_forms if cell_type == "rnn" else record_lstm_forms)(monkeypatch)
    monkeypatch.setattr(fastrnn.layer_utils, "chunks_for", lambda rows, flops: min(blocks, rows))
    D, T = 4, 6
    layer = make_recurrent(cell_type, D, H, dtype, 0.3)
    with force_form(StepForm.PACKED):
        check_against_reference(layer, N, T, dtype)
    assert forms == [StepForm.PACKED] * 2, "forward and backward both run it"


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

    monkeypatch.setattr(fastrnn.layer_utils, "chunks_for", lambda rows, flops: min(blocks, rows))
    H = 37
    D = PER_THREAD_COPY_MAX_SIZE // H + 1
    with force_form(StepForm.PACKED):
        check_against_reference(make_recurrent(cell_type, D, H, dtype, 0.02), N, 6, dtype)


@pytest.mark.parametrize("blocks", [1, FORCED_BLOCKS])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("N, H", [(7, 5), (9, 37), (2, 20)])
def test_rnn_with_fused_steps(N, H, dtype, blocks, monkeypatch):
    """The tanh RNN's FUSED forward (one packed_affine pass a step), forced
    here at sizes it would not choose, gives the reference's results, serially and
    in blocks.  H = 37 spans several panels, the last one partial; 7 and 9 rows
    leave rows over from the 4-row blocks; 2 rows make more blocks than rows.
    Its backward is not a fused form: it runs what the rules choose."""
    forms = record_rnn_forms(monkeypatch)
    monkeypatch.setattr(fastrnn.layer_utils, "chunks_for", lambda rows, flops: min(blocks, rows))
    D, T = 4, 6
    with force_form(StepForm.FUSED):
        check_against_reference(make_recurrent("rnn", D, H, dtype, 0.3), N, T, dtype)
    assert forms == [StepForm.FUSED, choose_form("rnn", "backward", dtype, H, T, StepForm.FUSED)]


@pytest.mark.parametrize("blocks", [1, FORCED_BLOCKS])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("N, H", [(7, 5), (9, 37), (2, 20), (5, 40)])
def test_rnn_with_narrow_steps(N, H, dtype, blocks, monkeypatch):
    """The tanh RNN's NARROW forward (narrow_affine) and backward
    (narrow_product), forced here at sizes it would not all choose, give the
    reference's results, serially and in blocks.  H = 20 (float64) and 40
    (float32) fill a narrow panel, so the forward's tanh runs over unpadded
    blocks; 5 and 37 pad; 37 spans two panels in float64.  Only the forward
    is forced: the backward follows it."""
    forms = record_rnn_forms(monkeypatch)
    monkeypatch.setattr(fastrnn.layer_utils, "chunks_for", lambda rows, flops: min(blocks, rows))
    D, T = 4, 6
    with force_form(StepForm.NARROW, cell="rnn", direction="forward"):
        check_against_reference(make_recurrent("rnn", D, H, dtype, 0.3), N, T, dtype)
    assert forms == [StepForm.NARROW, StepForm.NARROW], "and its backward runs the same form"


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
    monkeypatch.setattr(fastrnn.layer_utils, "chunks_for", lambda rows, flops: min(blocks, rows))
    with force_form(StepForm[form.upper()], direction="forward"):
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
    """The LSTM's NARROW products, forced here wherever the kernels take
    them (the forward needs panels that cover 4H exactly: H a multiple of 5 in
    float64, of 10 in float32), give the reference's results, serially and in
    blocks.  The backward's last Wh^T panel is partly used at every H here; at
    H = 65 and 70 Wh has more values than kernels.blocked.PER_THREAD_COPY_MAX_SIZE,
    so the panels are packed once and shared; 9 rows leave one over from the
    4-row blocks, 2 rows in 3 blocks split the time steps."""
    from fastrnn.kernels.packed import narrow_panel_columns

    fits = 4 * H % narrow_panel_columns(dtype) == 0
    forms = record_lstm_forms(monkeypatch)
    monkeypatch.setattr(fastrnn.layer_utils, "chunks_for", lambda rows, flops: min(blocks, rows))
    with force_form(StepForm.NARROW):  # where the forward cannot run it, the rules choose
        check_against_reference(make_recurrent("lstm", 4, H, dtype, 0.1), N, 5, dtype)
    assert (forms[0] == StepForm.NARROW) == fits and forms[1] == StepForm.NARROW


def lstm_form(dtype, h_dim, steps, direction, vector_bits=512):
    """The rules' LSTM form (no form forced), at ``vector_bits``."""
    return choose_form("lstm", direction, dtype, h_dim, steps, vector_bits=vector_bits)


def rnn_form(dtype, h_dim, steps, vector_bits=512):
    """The rules' tanh RNN forward form (no form forced), at ``vector_bits``."""
    return choose_form("rnn", "forward", dtype, h_dim, steps, vector_bits=vector_bits)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_lstm_narrow_steps_rule(dtype, monkeypatch):
    """The rule (512-bit vectors, more than one step, Wh up to the limit; forward
    when the panels cover 4H exactly, backward when H is more than half a panel),
    and the notebook-size layer passing its choice on."""
    from fastrnn.kernels.packed import narrow_panel_columns
    from fastrnn.kernels.simd import VECTOR_BITS

    NR = narrow_panel_columns(dtype)
    NARROW, BLAS = StepForm.NARROW, StepForm.BLAS
    for direction in ("forward", "backward"):
        assert lstm_form(dtype, NR, 50, direction, vector_bits=256) == BLAS  # measured at 512
        assert lstm_form(dtype, NR, 50, direction) == NARROW
        assert lstm_form(dtype, NR, 1, direction) == BLAS
    assert lstm_form(dtype, NR // 4, 50, "forward") == NARROW  # 4H = one panel
    assert lstm_form(dtype, NR // 4 + 1, 50, "forward") == BLAS
    assert lstm_form(dtype, NR // 2, 50, "backward") == BLAS  # half its panel
    assert lstm_form(dtype, NR // 2 + 1, 50, "backward") == NARROW
    assert lstm_form(dtype, NR + 1, 50, "backward") == NARROW  # two panels, 21 (41) of 40 (80)
    limit = thresholds(dtype, 512).lstm_narrow_max_weights
    largest = int(np.sqrt(limit / 4))
    assert 4 * largest * largest <= limit < 4 * (largest + 1) ** 2
    assert lstm_form(dtype, largest, 50, "backward") == NARROW
    assert lstm_form(dtype, largest + 1, 50, "backward") == BLAS
    forms = record_lstm_forms(monkeypatch)
    check_against_reference(make_recurrent("lstm", 10, 20, dtype, 0.3), 5, 4, dtype)
    if VECTOR_BITS < 512:
        assert forms == [BLAS, BLAS]
    elif dtype == np.float64:  # 4H = 80: four narrow panels; H = 20 fills one
        assert forms == [NARROW, NARROW]
    else:  # 4H = 80: two narrow panels; H = 20 is half of one
        assert forms == [NARROW, BLAS]


def test_weights_up_to_the_limit_are_copied_per_thread():
    """The rule the kernels apply (kernels.blocked.per_thread_copies), at its edge."""
    from fastrnn.kernels.blocked import PER_THREAD_COPY_MAX_SIZE, per_thread_copies

    assert per_thread_copies(np.zeros((4, PER_THREAD_COPY_MAX_SIZE // 4)))
    assert not per_thread_copies(np.zeros(PER_THREAD_COPY_MAX_SIZE + 1))
    assert per_thread_copies(np.zeros((2, 3), dtype=np.float32))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_narrow_steps_are_chosen_between_one_full_and_one_narrow_panel(dtype, monkeypatch):
    """The rule (512-bit vectors; more than a full panel's columns (at 512 bits),
    at most a narrow panel's; more than one step), and the layer passing its
    choice on to both kernels."""
    from fastrnn.kernels.packed import narrow_panel_columns, panel_columns
    from fastrnn.kernels.simd import VECTOR_BITS

    full, narrow = 2 * 512 // (8 * np.dtype(dtype).itemsize), narrow_panel_columns(dtype)
    assert rnn_form(dtype, narrow, 50, vector_bits=256) != StepForm.NARROW
    assert rnn_form(dtype, narrow, 50) == rnn_form(dtype, full + 1, 50) == StepForm.NARROW
    assert rnn_form(dtype, full, 50) != StepForm.NARROW
    assert rnn_form(dtype, narrow + 1, 50) != StepForm.NARROW
    assert rnn_form(dtype, narrow, 1) != StepForm.NARROW
    forms = record_rnn_forms(monkeypatch)
    H = narrow if VECTOR_BITS >= 512 else panel_columns(dtype)  # only measured at 512 bits
    check_against_reference(make_recurrent("rnn", 3, H, dtype, 0.3), 5, 4, dtype)
    if VECTOR_BITS >= 512:
        assert forms == [StepForm.NARROW, StepForm.NARROW]
    else:
        assert StepForm.NARROW not in forms


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_steps_are_chosen_when_h_fills_most_of_one_panel(dtype, monkeypatch):
    """The rule (512-bit vectors, more than half of one packed panel, more than
    one step), and the layer passing its choice on."""
    from fastrnn.kernels.packed import panel_columns
    from fastrnn.kernels.simd import VECTOR_BITS

    NR = 2 * 512 // (8 * np.dtype(dtype).itemsize)
    FUSED = StepForm.FUSED
    assert rnn_form(dtype, NR, 50, vector_bits=256) != FUSED  # only measured at 512
    assert rnn_form(dtype, NR, 50) == rnn_form(dtype, NR // 2 + 1, 50) == FUSED
    assert rnn_form(dtype, NR // 2, 50) != FUSED
    assert rnn_form(dtype, NR + 1, 50) != FUSED
    assert rnn_form(dtype, NR, 1) != FUSED
    forms = record_rnn_forms(monkeypatch)
    check_against_reference(make_recurrent("rnn", 3, panel_columns(dtype), dtype, 0.3), 5, 4,
                            dtype)
    assert forms == [FUSED if VECTOR_BITS >= 512 else StepForm.BLAS, StepForm.BLAS]


@pytest.mark.parametrize("vector_bits", [512, 256])
@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
@pytest.mark.parametrize("direction", ["forward", "backward"])
def test_packed_weights_are_chosen_for_large_weights_and_sequences(direction, cell_type,
                                                                   vector_bits):
    gates = 4 if cell_type == "lstm" else 1
    limit = thresholds(np.float32, vector_bits).packed_min_weights
    H = int(np.ceil(np.sqrt(limit / gates)))  # the smallest H whose Wh packs
    assert gates * (H - 1) ** 2 < limit <= gates * H * H

    def form(h_dim, steps):
        return choose_form(cell_type, direction, np.float32, h_dim, steps,
                           vector_bits=vector_bits)

    assert form(H, 2) == StepForm.PACKED
    assert form(H - 1, 50) != StepForm.PACKED
    assert form(10 * H, 1) == StepForm.BLAS


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell_type, H", [("lstm", 128), ("rnn", 256)])
def test_layers_large_enough_for_packed_weights(cell_type, H, dtype, monkeypatch):
    """The layers' own choice at the smallest sizes that pack (Wh of 128 x 512
    and 256 x 256)."""
    forms = (record_rnn_forms if cell_type == "rnn" else record_lstm_forms)(monkeypatch)
    check_against_reference(make_recurrent(cell_type, 3, H, dtype, 0.1), 5, 4, dtype)
    assert forms == [StepForm.PACKED, StepForm.PACKED]


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
