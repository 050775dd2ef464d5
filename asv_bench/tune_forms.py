"""Time every step form of one recurrent layer against the others, in one process.

    python asv_bench/tune_forms.py --cell rnn --dtype float64 --size 10x50x10x20
    python asv_bench/tune_forms.py --cell lstm --dtype float32 --size 32x50x32x40 --seconds 20

Re-measures the thresholds of ``fastrnn.kernels.dispatch`` (docs/tuning.md): for
one (cell, dtype, N x T x D x H), each form is forced in turn
(``dispatch.force_form``) and the layer's forward and backward are timed, the
forms in alternating rounds; medians per call, in microseconds.  A form a kernel
cannot run is left to the rules for that direction (FUSED is a tanh RNN forward
only; see ``dispatch.runs``): the "ran" column says what each direction ran, and
``*`` marks the form the rules choose unforced.  The layer picks its own block
count (threads), as in training.  Run it on a quiet machine and compare forms
within one run only.
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
from fastrnn.kernels.dispatch import StepForm, choose_form, force_form  # noqa: E402
from fastrnn.layer_utils import LSTM, VanillaRNN  # noqa: E402

LAYERS = {"rnn": VanillaRNN, "lstm": LSTM}


def ran_forms(cell, dtype, H, T, form):
    """(forward, backward) forms a layer runs with ``form`` forced."""
    with force_form(form):
        forward = choose_form(cell, "forward", dtype, H, T)
        return forward, choose_form(cell, "backward", dtype, H, T, forward)


def measure(cell, dtype, size, seconds, rounds=5):
    """Rows (form, (forward form, backward form) run, forward us, backward us) for
    every StepForm, timed in ``rounds`` alternating rounds within ~``seconds``."""
    N, T, D, H = size
    np.random.seed(0)
    layer = LAYERS[cell](D, H, init_scale=0.1, dtype=dtype)
    x = np.random.randn(N, T, D).astype(dtype)
    h0 = np.random.randn(N, H).astype(dtype)
    dh = np.random.randn(N, T, H).astype(dtype)
    times = {form: ([], []) for form in StepForm}

    def run(form, calls):
        forward_times, backward_times = times[form]
        with force_form(form):
            for _ in range(calls):
                start = time.perf_counter()
                layer.forward(x, h0)
                middle = time.perf_counter()
                layer.backward(dh)
                forward_times.append(middle - start)
                backward_times.append(time.perf_counter() - middle)

    for form in StepForm:  # compile, and a first estimate of the cost of a call
        run(form, 2)
    per_call = max(sum(map(sum, times[form])) / 2 for form in StepForm)
    calls = max(1, int(seconds / (rounds * len(StepForm) * per_call)))
    for form in StepForm:
        times[form] = ([], [])
    for _ in range(rounds):
        for form in StepForm:
            run(form, calls)
    return [(form, ran_forms(cell, np.dtype(dtype), H, T, form),
             1e6 * statistics.median(times[form][0]), 1e6 * statistics.median(times[form][1]))
            for form in StepForm]


def table(cell, dtype, size, rows):
    """The rows as a text table, the rules' choice marked with ``*``."""
    N, T, D, H = size
    chosen = choose_form(cell, "forward", dtype, H, T)
    chosen = (chosen, choose_form(cell, "backward", dtype, H, T, chosen))
    lines = [f"{cell} {np.dtype(dtype).name} (N, T, D, H) = {size}, median us per call",
             f"{'forced':8} {'ran (forward, backward)':24} {'forward':>9} {'backward':>9} "
             f"{'both':>9}"]
    for form, ran, forward_us, backward_us in rows:
        mark = "*" if ran == chosen else " "
        names = f"{ran[0].name}, {ran[1].name}"
        lines.append(f"{form.name:8} {names:24} {forward_us:9.1f} {backward_us:9.1f} "
                     f"{forward_us + backward_us:9.1f} {mark}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", choices=sorted(LAYERS), required=True)
    parser.add_argument("--dtype", choices=["float64", "float32"], default="float64")
    parser.add_argument("--size", default="10x50x10x20", help="N x T x D x H")
    parser.add_argument("--seconds", type=float, default=10.0, help="time budget, roughly")
    args = parser.parse_args(argv)
    size = tuple(int(n) for n in args.size.split("x"))
    if len(size) != 4 or min(size) < 1:
        parser.error(f"--size: expected N x T x D x H, four positive integers, got {args.size!r}")
    rows = measure(args.cell, np.dtype(args.dtype), size, args.seconds)
    print(table(args.cell, np.dtype(args.dtype), size, rows))


if __name__ == "__main__":
    main()
