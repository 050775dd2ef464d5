"""The step-form dispatch: the table, the rules' edges, and force_form."""

import threading

import numpy as np
import pytest

from fastrnn.kernels import blocked, dispatch, vanilla
from fastrnn.kernels.dispatch import (THRESHOLDS, UNMEASURED, StepForm, choose_form, force_form,
                                      runs, thresholds)
from fastrnn.kernels.packed import narrow_panel_columns


def test_the_kernels_compare_against_the_enums_values():
    assert [int(form) for form in StepForm] == [0, 1, 2, 3]
    assert (blocked.NARROW_STEPS, blocked.PACKED_STEPS) == (StepForm.NARROW, StepForm.PACKED)
    assert (vanilla.FUSED_STEPS, vanilla.NARROW_STEPS) == (StepForm.FUSED, StepForm.NARROW)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_measured_ranges_follow_the_panel_widths(dtype):
    """At 512 bits a full panel is two vectors (16 float64, 32 float32 columns)
    and a narrow one 20 (40): the table's ranges are those panels' edges."""
    full, narrow = {np.float64: (16, 20), np.float32: (32, 40)}[dtype]
    assert narrow_panel_columns(dtype) == narrow
    limits = THRESHOLDS[(512, np.dtype(dtype))]
    assert limits.fused_h == range(full // 2 + 1, full + 1)
    assert limits.narrow_h == range(full + 1, narrow + 1)
    assert limits.lstm_narrow_backward_min_h == narrow // 2 + 1
    assert thresholds(dtype, 256) is UNMEASURED and thresholds(dtype, 512) is limits


def test_the_notebook_sizes_choose_narrow_panels_at_512_bits():
    """(N, T, D, H) = (10, 50, 10, 20): float64 runs every product on narrow panels."""
    for cell, direction in [("rnn", "forward"), ("lstm", "forward"), ("lstm", "backward")]:
        assert choose_form(cell, direction, np.float64, 20, 50,
                           vector_bits=512) == StepForm.NARROW
    assert choose_form("rnn", "backward", np.float64, 20, 50, StepForm.NARROW) == StepForm.NARROW
    assert choose_form("rnn", "backward", np.float64, 20, 50, StepForm.BLAS) == StepForm.BLAS


def test_a_forced_form_applies_to_its_cell_and_direction_only():
    def forms():
        return [choose_form(cell, direction, np.float64, 3, 5)
                for cell in ("rnn", "lstm") for direction in ("forward", "backward")]

    unforced = forms()
    assert unforced == [StepForm.BLAS] * 4
    with force_form(StepForm.PACKED):
        assert forms() == [StepForm.PACKED] * 4
        with force_form(StepForm.NARROW, cell="lstm", direction="backward"):
            assert forms() == [StepForm.PACKED] * 3 + [StepForm.NARROW]
        assert forms() == [StepForm.PACKED] * 4
    assert forms() == unforced


def test_a_form_a_kernel_cannot_run_is_not_forced_on_it():
    """FUSED is a tanh RNN forward only; an LSTM forward runs NARROW only where
    whole narrow panels cover 4H."""
    NC = narrow_panel_columns(np.float64)
    assert runs(StepForm.FUSED, "rnn", "forward", np.float64, 7)
    assert not runs(StepForm.FUSED, "rnn", "backward", np.float64, 7)
    assert not runs(StepForm.FUSED, "lstm", "forward", np.float64, 7)
    assert runs(StepForm.NARROW, "lstm", "forward", np.float64, NC // 4)
    assert not runs(StepForm.NARROW, "lstm", "forward", np.float64, NC // 4 + 1)
    with force_form(StepForm.FUSED):
        assert choose_form("rnn", "forward", np.float64, 3, 5) == StepForm.FUSED
        assert choose_form("rnn", "backward", np.float64, 3, 5) == StepForm.BLAS
        assert choose_form("lstm", "forward", np.float64, 3, 5) == StepForm.BLAS
    with force_form(StepForm.NARROW):
        assert choose_form("lstm", "forward", np.float64, NC // 4 + 1, 5) == StepForm.BLAS


def test_a_forced_form_holds_in_its_own_thread_only():
    seen = []
    with force_form(StepForm.PACKED):
        worker = threading.Thread(
            target=lambda: seen.append(choose_form("rnn", "forward", np.float64, 3, 5)))
        worker.start()
        worker.join()
        assert choose_form("rnn", "forward", np.float64, 3, 5) == StepForm.PACKED
    assert seen == [StepForm.BLAS]


def test_bad_names_are_refused():
    with pytest.raises(ValueError, match="cell"):
        with force_form(StepForm.BLAS, cell="gru"):
            pass
    with pytest.raises(ValueError, match="direction"):
        with force_form(StepForm.BLAS, direction="sideways"):
            pass
    with pytest.raises(ValueError, match="direction"):
        choose_form("rnn", "sideways", np.float64, 3, 5)
    with pytest.raises(ValueError, match="cell: expected one of .* got 'gru'"):
        choose_form("gru", "forward", np.float64, 3, 5)
    with pytest.raises(ValueError):
        with force_form(7):
            pass


def test_the_tuning_script_times_every_form(capsys):
    """asv_bench/tune_forms.py on a tiny layer: a row per form, each with what ran."""
    import os
    import sys

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "asv_bench"))
    import tune_forms

    tune_forms.main(["--cell", "rnn", "--dtype", "float32", "--size", "2x3x2x4",
                     "--seconds", "0.05"])
    lines = capsys.readouterr().out.splitlines()
    rows = {line.split()[0]: line for line in lines[2:]}
    assert sorted(rows) == sorted(form.name for form in StepForm)
    assert "FUSED, BLAS" in rows["FUSED"], "FUSED is a forward form: the backward runs BLAS"
    assert "NARROW, NARROW" in rows["NARROW"]
    assert sum(line.rstrip().endswith("*") for line in lines[2:]) >= 1, "the rules' choice"


def test_kept_answers_are_the_rules_answers_and_a_forced_form_still_wins():
    args = ("lstm", "forward", np.float32, 64, 300)
    first = choose_form(*args)
    assert choose_form(*args) is first  # answered from dispatch._chosen
    assert first == dispatch._rules(*args, None, dispatch.VECTOR_BITS)
    with force_form(StepForm.BLAS):
        assert choose_form(*args) == StepForm.BLAS
    assert choose_form(*args) == first


def test_kept_answers_do_not_grow_without_bound(monkeypatch):
    monkeypatch.setattr(dispatch, "_CHOSEN_MAX", 8)
    monkeypatch.setattr(dispatch, "_chosen", {})
    for steps in range(2, 40):
        choose_form("rnn", "forward", np.float64, 20, steps)
    assert len(dispatch._chosen) <= 8
