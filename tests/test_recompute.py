"""Checkpointing in time (fastrnn.recompute): a layer with ``checkpoint_every`` or
``memory_budget`` gives the full path's results from stored states and
recomputed segments, in bounded memory.

Equality: h, dx, dh0 and c_T bitwise in float64 (the same kernels, forms and
blocks run every step), the weight gradients (summed piece by piece) to 1e-12
relative; float32 to 1e-5 relative.  Blocks are forced as in
test_parallel_kernels.py: 1 (the serial build) and 3 (the parallel one, with
N = 1 also splitting the time steps).
"""

import re
import sys
import time

import numpy as np
import pytest

import fastrnn.layer_utils
from fastrnn import recompute
from fastrnn.kernels.dispatch import StepForm, force_form, runs
from fastrnn.layer_utils import LSTM, VanillaRNN

from test_benchmarks import BENCH_DIR, load
from test_layers_vs_reference import assert_matches, make_recurrent, reference_sequence

K = 6  # even, as "auto" makes it: see recompute.SegmentedState
STEPS = [1, K - 1, K, K + 1, 7 * K + 3]


def relative(actual, expected):
    """max |actual - expected| / max |expected| (0 for two zero arrays)."""
    scale = np.abs(expected).max(initial=0.0)
    return np.abs(actual - expected).max(initial=0.0) / scale if scale else 0.0


def forward_backward(layer, x, h0, dh):
    """-> (h, dx, dh0, c_T or None), (dWx, dWh, db) and the forward state's type."""
    h = layer.forward(x, h0)
    final_c = getattr(layer, "final_c", None)
    kind = type(layer.meta)
    dx, dh0 = layer.backward(dh)
    grads = tuple(layer.grads[k] for k in (layer.wx_name, layer.wh_name, layer.b_name))
    return (h, dx, dh0, final_c), grads, kind


def assert_same_as_full_path(layer, N, T, dtype, setting, seed=0):
    """Run ``layer`` with checkpoint_every=0 and then ``setting`` on the same data;
    assert the segmented run was segmented, its results equal the full path's
    and the inputs are left as they came."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, T, layer.input_dim)).astype(dtype)
    h0 = rng.standard_normal((N, layer.h_dim)).astype(dtype)
    dh = rng.standard_normal((N, T, layer.h_dim)).astype(dtype)
    inputs = [a.copy() for a in (x, h0, dh)]
    layer.checkpoint_every = 0
    full, full_grads, full_kind = forward_backward(layer, x, h0, dh)
    layer.checkpoint_every = setting
    seg, seg_grads, seg_kind = forward_backward(layer, x, h0, dh)
    assert full_kind is not recompute.SegmentedState
    assert seg_kind is recompute.SegmentedState
    for before, after in zip(inputs, (x, h0, dh)):
        np.testing.assert_array_equal(before, after, err_msg="an input was modified")
    names = ("h", "dx", "dh0", "c_T")
    for name, a, b in zip(names, seg, full):
        if b is None:
            continue
        assert a.dtype == dtype and a.shape == b.shape, name
        if dtype == np.float64:
            assert np.array_equal(a, b), f"{name}: not bitwise, {relative(a, b):.1e} relative"
        else:
            assert relative(a, b) <= 1e-5, f"{name}: {relative(a, b):.1e} relative"
    bound = 1e-12 if dtype == np.float64 else 1e-5
    for name, a, b in zip(("dWx", "dWh", "db"), seg_grads, full_grads):
        assert a.dtype == dtype and a.shape == b.shape, name
        assert np.all(np.isfinite(a)), name
        assert relative(a, b) <= bound, f"{name}: {relative(a, b):.1e} relative"


def force_blocks(monkeypatch, blocks):
    monkeypatch.setattr(fastrnn.layer_utils, "chunks_for",
                        lambda rows, flops: min(blocks, rows) if rows > 1 else 1)


@pytest.mark.parametrize("blocks", [1, 3])
@pytest.mark.parametrize("N", [1, 7])
@pytest.mark.parametrize("T", STEPS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_segments_give_the_full_paths_results(cell_type, dtype, T, N, blocks, monkeypatch):
    force_blocks(monkeypatch, blocks)
    layer = make_recurrent(cell_type, 5, 7, dtype, 0.5)
    assert_same_as_full_path(layer, N, T, dtype, K)


FORM_H = 10  # 4H = 40: the LSTM forward runs NARROW in float64 too


@pytest.mark.parametrize("cell_type, form", [
    (cell_type, form) for cell_type in ("rnn", "lstm") for form in StepForm
    if runs(form, cell_type, "forward", np.float64, FORM_H)
    or runs(form, cell_type, "backward", np.float64, FORM_H)])
def test_segments_run_every_step_form_as_the_full_path(cell_type, form, monkeypatch):
    """Each form forced where one of the cell's kernels runs it, in blocks: segments of
    K steps and a last one of 3 run the form chosen for the whole T, so still bitwise."""
    H = FORM_H
    force_blocks(monkeypatch, 3)
    with force_form(form):
        assert_same_as_full_path(make_recurrent(cell_type, 5, H, np.float64, 0.5), 7,
                                 7 * K + 3, np.float64, K)


@pytest.mark.parametrize("strides", [(24, 6, 2), (12, 4), (10,)])
@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_nested_schedules_give_the_full_paths_results(cell_type, strides, monkeypatch):
    """Two and three levels of stored states (what a tight memory_budget chooses),
    with groups cut short at the end of the sequence, and one level of K = 10."""
    monkeypatch.setattr(recompute, "plan",
                        lambda T, setting, budget, costs: recompute.Schedule(strides, 0))
    force_blocks(monkeypatch, 3)
    layer = make_recurrent(cell_type, 5, 7, np.float64, 0.5)
    for N, T in [(7, 61), (1, 100), (4, 24)]:
        assert_same_as_full_path(layer, N, T, np.float64, "auto")


@pytest.mark.parametrize("cell_type", ["rnn", "lstm"])
def test_segments_match_the_numpy_reference(cell_type, monkeypatch):
    """The segmented kernels against tests/reference.py itself (not only against
    the full path): two levels, 3 blocks over N = 7 rows, a short last piece."""
    monkeypatch.setattr(recompute, "plan",
                        lambda T, setting, budget, costs: recompute.Schedule((12, 4), 0))
    force_blocks(monkeypatch, 3)
    layer = make_recurrent(cell_type, 5, 7, np.float64, 0.5)
    layer.checkpoint_every = "auto"
    rng = np.random.default_rng(1)
    x, h0, dh = (rng.standard_normal(shape) for shape in [(7, 29, 5), (7, 7), (7, 29, 7)])
    h = layer.forward(x, h0)
    assert isinstance(layer.meta, recompute.SegmentedState)
    dx, dh0 = layer.backward(dh)
    h_ref, grads_ref = reference_sequence(cell_type, x, h0, dh, *(
        layer.params[k] for k in (layer.wx_name, layer.wh_name, layer.b_name)))
    assert_matches(h, h_ref, np.float64, "h")
    grads = (dx, dh0, *(layer.grads[k] for k in (layer.wx_name, layer.wh_name, layer.b_name)))
    for name, a, b in zip(("dx", "dh0", "dWx", "dWh", "db"), grads, grads_ref):
        assert_matches(a, b, np.float64, name)


def test_the_layer_reuses_its_workspace_and_the_results_stay_exact():
    """A second call of the same sizes takes the workspace the first backward
    left (no new buffers a call), with the same results; a backward without a
    forward is still refused."""
    layer = make_recurrent("lstm", 5, 7, np.float64, 0.5)
    layer.checkpoint_every = "auto"
    x, h0, dh = np.ones((2, 30, 5)), np.zeros((2, 7)), np.ones((2, 30, 7))
    layer.forward(x, h0)
    first = layer.backward(dh)
    work = layer._spare
    layer.forward(x, h0)
    assert layer.meta.work is work
    second = layer.backward(dh)
    for a, b in zip(first, second):
        assert np.array_equal(a, b)
    with pytest.raises(RuntimeError, match="no forward state"):
        layer.backward(dh)


def test_auto_takes_even_steps_near_the_square_root_or_pieces_of_16_mib():
    big = recompute.costs("lstm", 512, 1024, 1024, 8, 2)  # 46 MB a step
    assert recompute.auto_steps(1, big) == 2 and recompute.auto_steps(100, big) == 10
    assert recompute.auto_steps(101, big) == 12 and recompute.auto_steps(10 ** 12, big) == 10 ** 6
    small = recompute.costs("rnn", 1, 2, 3, 8, 1)  # 120 bytes a step
    assert recompute.auto_steps(100, small) == 139_810  # 16 MiB // 120, even
    assert recompute.plan(5, "auto", None, small).strides == (5,)  # at most T
    c = recompute.costs("lstm", 8, 64, 256, 4, 2)  # 59,392 bytes a step
    assert c.piece_step == 8 * (64 + 7 * 256) * 4
    assert recompute.auto_steps(100_000, c) == 318
    assert recompute.auto_steps(10_000, c) == 282  # 16 MiB // 59,392 = 282 > 100
    assert recompute.plan(100_000, "auto", None, c).strides == (318,)
    assert recompute.plan(5, 50, None, c).strides == (5,)  # K > T: one segment
    assert recompute.plan(5, 0, None, c).strides == ()


def test_a_budget_chooses_the_least_recomputation_that_fits():
    T = 100_000
    c = recompute.costs("lstm", 8, 64, 256, 4, 2)
    full = recompute.plan(T, "auto", 10 ** 12, c)
    assert full.strides == () and full.recompute == 0
    assert full.nbytes == T * c.full_step + c.fixed
    assert full.nbytes > 5.5e9  # the issue's ~5.9 GB
    root = recompute.plan(T, 0, full.nbytes - 1, c)
    assert root.strides == (318,) and root.recompute == 1
    assert root.nbytes <= 64 * 2 ** 20
    # Budgets for the part that depends on the schedule, above the fixed part.
    tight = recompute.plan(T, "auto", c.fixed + (root.nbytes - c.fixed) // 3, c)
    assert tight.recompute >= 2 and tight.nbytes - c.fixed <= (root.nbytes - c.fixed) // 3
    assert all(a % b == 0 for a, b in zip(tight.strides, tight.strides[1:]))
    assert tight.strides[-1] % 2 == 0
    tighter = recompute.plan(T, "auto", c.fixed + (tight.nbytes - c.fixed) // 2, c)
    assert tighter.recompute > tight.recompute
    with pytest.raises(ValueError, match=r"the least is [\d,]+ bytes"):
        recompute.plan(T, "auto", c.fixed, c)
    with pytest.raises(ValueError, match="both fix the schedule"):
        recompute.plan(T, 100, 10 ** 9, c)


def test_a_budget_on_the_layer_picks_its_schedule():
    layer = LSTM(3, 4, memory_budget=10 ** 9)
    layer.forward(np.ones((1, 50, 3)), np.zeros((1, 4)))
    assert type(layer.meta) is fastrnn.layer_utils.LSTMForwardState  # the full path fits
    c = recompute.costs("lstm", 1, 3, 4, 8, 1)
    layer.memory_budget = 50 * c.full_step  # less than the full path's
    layer.forward(np.ones((1, 50, 3)), np.zeros((1, 4)))
    schedule = layer.meta.schedule
    assert len(schedule.strides) == 1 and schedule.strides[0] < 50
    assert schedule.nbytes <= layer.memory_budget


@pytest.mark.parametrize("value", [-1, 1.5, "sqrt", "AUTO", True, None, [4], np.ones(2)])
def test_bad_checkpoint_every_is_refused_naming_what_came(value):
    expected = r"checkpoint_every: expected .* got " + re.escape(repr(value))
    with pytest.raises(ValueError, match=expected):
        VanillaRNN(3, 4, checkpoint_every=value)
    layer = LSTM(3, 4)
    with pytest.raises(ValueError, match="checkpoint_every"):
        layer.checkpoint_every = value
    assert layer.checkpoint_every == 0


@pytest.mark.parametrize("value", [0, -5, "1GB", True, float("nan"), float("inf")])
def test_bad_memory_budget_is_refused_naming_what_came(value):
    with pytest.raises(ValueError, match="memory_budget: expected None or a positive number"):
        LSTM(3, 4, memory_budget=value)


def test_the_settings_are_attributes_with_defaults_of_the_notebook():
    layer = VanillaRNN(3, 4)
    assert layer.checkpoint_every == 0 and layer.memory_budget is None
    layer.checkpoint_every = np.int64(7)
    assert layer.checkpoint_every == 7 and type(layer.checkpoint_every) is int
    layer.memory_budget = 2.5e6
    assert layer.memory_budget == 2_500_000
    assert "not run checkpoints" in VanillaRNN.checkpoint_every.__doc__


def test_the_cell_state_stays_finite_over_a_million_saturated_steps():
    """An LSTM whose gates saturate open (i = f = o = g = 1) adds 1 to c every
    step: c_T = 10^6, and everything stays finite in float32 over 10^6 steps."""
    T, D, H = 1_000_000, 2, 4
    layer = LSTM(D, H, dtype=np.float32, checkpoint_every="auto")
    layer.params[layer.wx_name][...] = 0.0
    layer.params[layer.wh_name][...] = 0.0
    layer.params[layer.b_name][...] = 30.0  # sigmoid(30) = tanh(30) = 1 in float32
    x = np.random.default_rng(0).standard_normal((1, T, D)).astype(np.float32)
    start = time.perf_counter()
    h = layer.forward(x, np.zeros((1, H), np.float32))
    assert np.all(layer.final_c == T)
    dx, dh0 = layer.backward(np.ones((1, T, H), np.float32))
    grads = [layer.grads[k] for k in (layer.wx_name, layer.wh_name, layer.b_name)]
    for name, a in zip(["h", "dx", "dh0", "dWx", "dWh", "db"], [h, dx, dh0, *grads]):
        assert a.dtype == np.float32 and np.all(np.isfinite(a)), name
    assert np.all(h[0, -1] == 1.0)
    assert time.perf_counter() - start < 60


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_memory_beyond_inputs_and_outputs_stays_bounded():
    """LSTM N = 8, D = 64, H = 256 float32, T = 30,000 with "auto", in a fresh
    process: the peak RSS growth of forward + backward less the outputs' bytes
    stays under 64 MiB (the full path needs T N (2D + 7H) 4 bytes = 1.8 GB
    more), and no buffer of the workspace is anywhere near T-sized (the
    largest, a piece's gates, K N 4H values with K = 282 here, under a
    twentieth of h's T N H)."""
    T = 30_000
    # The measurement of asv_bench/long_window.py, in a fresh process.
    measured = load(BENCH_DIR / "long_window.py").in_subprocess(8, T, "auto")
    full = T * recompute.costs("lstm", 8, 64, 256, 4, 2).full_step
    assert full > 10 * 64 * 2 ** 20
    assert measured["beyond_inputs_outputs_MiB"] < 64, measured
    assert measured["largest_buffer_bytes"] < measured["bytes_of_h"] / 20, measured
