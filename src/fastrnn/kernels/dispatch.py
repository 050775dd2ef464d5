"""How a recurrent kernel runs its per-step products: the step forms, the
thresholds that choose between them, and a way to force one.

A recurrent layer calls :func:`choose_form` once per forward and once per
backward and passes ``int(form)`` to the kernel (``rnn_forward``,
``rnn_backward``, ``lstm_forward``, ``lstm_backward``), whose ``form``
argument the kernels compare against the integer constants below.  The
thresholds are data (:data:`THRESHOLDS`), keyed by the SIMD width the kernels
are compiled for and the dtype, because both set the panel widths the rules
are about; the measurements behind every number are in ``docs/tuning.md``, with
the command under ``asv_bench/`` that re-measures them.

:func:`force_form` overrides the choice, for tests (run a form at sizes the
rules would not choose) and for tuning (time each form against the others:
``asv_bench/tune_forms.py``).
"""

import contextlib
import contextvars
import enum
import functools
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from .packed import narrow_panel_columns
from .simd import VECTOR_BITS


class StepForm(enum.IntEnum):
    """How each step's product with Wh (forward) or Wh^T (backward) runs."""

    BLAS = 0    # one BLAS call per step, on the weights as they are
    PACKED = 1  # on the weights packed once per call (packed.packed_product)
    FUSED = 2   # tanh RNN forward only: bias + x_t Wx + h_{t-1} Wh in one packed_affine pass
    NARROW = 3  # on the weights packed once in narrow panels (narrow_product; the tanh
    #             RNN forward: bias + x_t Wx + h_{t-1} Wh in one narrow_affine pass)


# The members as module globals: an enum member read from its class
# (``StepForm.BLAS``) costs a descriptor call, and choose_form runs at every
# forward and backward.
_BLAS, _PACKED, _FUSED, _NARROW = StepForm

# The kernels' ``form`` values as plain integers: compiled code compares an
# int64 argument with these (a StepForm argument would be a type of its own to
# Numba's dispatcher).
BLAS_STEPS = int(StepForm.BLAS)
PACKED_STEPS = int(StepForm.PACKED)
FUSED_STEPS = int(StepForm.FUSED)
NARROW_STEPS = int(StepForm.NARROW)

CELLS = {"rnn": 1, "lstm": 4}  # cell -> gates per hidden unit (Wh is (H, gates * H))
DIRECTIONS = ("forward", "backward")


@dataclass(frozen=True)
class Thresholds:
    """The sizes at which each step form is chosen, for one (vector width, dtype).

    ``min_steps``: none but BLAS below this many steps (a single product packs
    the weights and reads them once, as OpenBLAS does, so packing cannot gain).
    ``packed_min_weights``: values in Wh from which the products run on packed
    weights.  ``fused_h`` / ``narrow_h``: the H of a tanh RNN whose forward runs
    FUSED / NARROW (its backward runs NARROW after a NARROW forward).
    ``lstm_narrow_max_weights``: values in an LSTM's Wh (H, 4H) up to which its
    products run NARROW, the backward's from ``lstm_narrow_backward_min_h``, the
    forward's where the narrow panels cover 4H exactly (:func:`runs`).
    """

    min_steps: int = 2
    packed_min_weights: int = 65_536
    fused_h: range = range(0)
    narrow_h: range = range(0)
    lstm_narrow_max_weights: int = 0
    lstm_narrow_backward_min_h: int = 0


def _measured_512(dtype):
    """The thresholds measured with 512-bit vectors (AMD Zen 4): full panels of NR
    columns (two vectors: 16 float64, 32 float32), narrow panels of NC (20, 40)."""
    NR = 2 * 512 // (8 * np.dtype(dtype).itemsize)
    NC = narrow_panel_columns(dtype)
    return Thresholds(
        # FUSED when H fills more than half of one full panel (less wastes the padding).
        fused_h=range(NR // 2 + 1, NR + 1),
        # NARROW when H overflows one full panel but fits one narrow panel.
        narrow_h=range(NR + 1, NC + 1),
        # LSTM NARROW up to the largest Wh measured (H = 50); the backward from
        # more than half a narrow panel's columns (fewer leaves most of it padding).
        lstm_narrow_max_weights=10_000,
        lstm_narrow_backward_min_h=NC // 2 + 1)


# Keyed by (vector bits, dtype).  A key not here (a width never measured) gets
# UNMEASURED: BLAS or packed weights only.  See docs/tuning.md for each number.
THRESHOLDS = {(512, np.dtype(dtype)): _measured_512(dtype) for dtype in (np.float64, np.float32)}
UNMEASURED = Thresholds()


# thresholds() answers by (vector_bits, dtype as given): np.dtype() on every call
# would cost more than the rest of choose_form.
_thresholds_by_argument = {}


def thresholds(dtype, vector_bits=VECTOR_BITS):
    """The :class:`Thresholds` for ``dtype`` at ``vector_bits`` (this machine's by default)."""
    key = (vector_bits, dtype)
    found = _thresholds_by_argument.get(key)
    if found is None:
        found = THRESHOLDS.get((vector_bits, np.dtype(dtype)), UNMEASURED)
        _thresholds_by_argument[key] = found
    return found


# narrow_panel_columns by the dtype as given, without np.dtype() at every call.
_narrow_columns = functools.lru_cache(maxsize=None)(narrow_panel_columns)


def runs(form, cell, direction, dtype, h_dim):
    """Whether the kernel of ``cell`` and ``direction`` can run ``form``: FUSED is a
    tanh RNN forward only, and an LSTM forward runs NARROW only where whole narrow
    panels cover its 4H gate columns (its gate pass takes the product as one block)."""
    if form == _FUSED:
        return cell == "rnn" and direction == "forward"
    if form == _NARROW and cell == "lstm" and direction == "forward":
        return 4 * h_dim % _narrow_columns(dtype) == 0
    return True


class _Forced(NamedTuple):
    form: StepForm
    cell: Optional[str]
    direction: Optional[str]


# The forms forced by the enclosing ``force_form`` blocks, innermost last.  A
# context variable: a block forces forms in its own thread (and asyncio task)
# only; a new thread starts with nothing forced.
_forced = contextvars.ContextVar("fastrnn_forced_step_forms", default=())


@contextlib.contextmanager
def force_form(form, cell=None, direction=None):
    """Within the block, :func:`choose_form` returns ``form`` for every layer of
    ``cell`` ("rnn", "lstm"; None: both) and ``direction`` ("forward",
    "backward"; None: both) whose kernel runs it (:func:`runs`); elsewhere the
    rules choose as usual.  For tests and tuning measurements, not for speed:
    the rules are the measured choice.

    Blocks nest (the innermost one that applies wins) and hold for the current
    thread only (a context variable).  Example::

        with force_form(StepForm.PACKED):
            h = layer.forward(x, h0)   # packed weights whatever the size
            layer.backward(dh)
    """
    form = StepForm(form)
    if cell is not None and cell not in CELLS:
        raise ValueError(f"cell: expected one of {sorted(CELLS)} or None, got {cell!r}")
    if direction is not None and direction not in DIRECTIONS:
        raise ValueError(f"direction: expected one of {DIRECTIONS} or None, got {direction!r}")
    token = _forced.set(_forced.get() + (_Forced(form, cell, direction),))
    try:
        yield
    finally:
        _forced.reset(token)


def choose_form(cell, direction, dtype, h_dim, steps, forward_form=None, *,
                vector_bits=VECTOR_BITS):
    """The :class:`StepForm` of a ``cell`` ("rnn" or "lstm") layer's ``direction``
    ("forward" or "backward") kernel, for weights of ``dtype``, hidden size
    ``h_dim`` and ``steps`` time steps; ``forward_form`` is the form the forward
    of a backward's state ran in (a tanh RNN's backward runs NARROW after a
    NARROW forward).  A form forced by :func:`force_form` comes first; otherwise
    the rules with :func:`thresholds` for ``dtype`` and ``vector_bits`` (this
    machine's SIMD width by default; pass another to see the rule there).
    """
    forced_forms = _forced.get()
    if forced_forms:
        _check_cell_direction(cell, direction)
        for forced in reversed(forced_forms):
            if (forced.cell in (None, cell) and forced.direction in (None, direction)
                    and runs(forced.form, cell, direction, dtype, h_dim)):
                return forced.form
    # A layer asks twice per forward + backward with the same arguments: the
    # rules below cost several times a dictionary look-up (docs/tuning.md).
    key = (cell, direction, dtype, h_dim, steps, forward_form, vector_bits)
    form = _chosen.get(key)
    if form is None:
        _check_cell_direction(cell, direction)
        if len(_chosen) >= _CHOSEN_MAX:
            _chosen.clear()
        form = _chosen[key] = _rules(cell, direction, dtype, h_dim, steps, forward_form,
                                     vector_bits)
    return form


# The rules' answers by choose_form's arguments, when no form is forced; cleared
# when full, so that calls with ever new T cannot grow it without bound.
_chosen = {}
_CHOSEN_MAX = 4096


def _check_cell_direction(cell, direction):
    if cell not in CELLS:
        raise ValueError(f"cell: expected one of {sorted(CELLS)}, got {cell!r}")
    if direction not in DIRECTIONS:
        raise ValueError(f"direction: expected one of {DIRECTIONS}, got {direction!r}")


def _rules(cell, direction, dtype, h_dim, steps, forward_form, vector_bits):
    """choose_form's rules, with nothing forced."""
    gates = CELLS[cell]
    if cell == "rnn" and direction == "backward" and forward_form == _NARROW:
        return _NARROW
    limits = thresholds(dtype, vector_bits)
    if steps < limits.min_steps:
        return _BLAS
    if cell == "rnn" and direction == "forward":
        if h_dim in limits.narrow_h:
            return _NARROW
        if h_dim in limits.fused_h:
            return _FUSED
    wh_size = gates * h_dim * h_dim
    if cell == "lstm" and wh_size <= limits.lstm_narrow_max_weights:
        if (h_dim >= limits.lstm_narrow_backward_min_h if direction == "backward"
                else runs(_NARROW, cell, direction, dtype, h_dim)):
            return _NARROW
    if wh_size >= limits.packed_min_weights:
        return _PACKED
    return _BLAS
