"""Side-by-side speed of fastrnn, the classic numpy lib and PyTorch, in ONE run.

    python asv_bench/compare.py                 # full table (a few minutes)
    python asv_bench/compare.py --quick         # smallest sizes, few repeats
    python asv_bench/compare.py --markdown docs/benchmarks.md

Times one training step of one recurrent layer -- forward over the whole sequence,
then backward from an upstream gradient on every hidden state -- for LSTM and
vanilla RNN, float64 and float32, at the sizes (N, T, D, H) of the performance
issue; then one training iteration of the notebook's language model, generation
speed, JIT cost and peak memory.  Every timing is a median over repeats after a
warm-up; fastrnn, the numpy reference and PyTorch (in a worker process of its
own) are timed in alternating rounds.  Ratios are peer time / fastrnn time (above
1: fastrnn is faster).  The machine's GEMM throughput is measured with numpy's
matmul and printed, with the fraction of it fastrnn reaches.  Do not run anything
else on the machine meanwhile: with 2 cores, any other load halves the figures.
"""

import argparse
import contextlib
import datetime
import functools
import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import host_state  # noqa: E402  (beside this script, as is the baseline)
import numpy_lib  # noqa: E402

import fastrnn  # noqa: E402
from fastrnn.layer_utils import LSTM, VanillaRNN, temporal_softmax_loss  # noqa: E402
from fastrnn.optim import Adam  # noqa: E402
from fastrnn.rnn import LanguageModelRNN  # noqa: E402

# PyTorch is optional (its columns are then left out) and is timed in a process
# of its own (``--torch-worker``): loaded into the same process, its OpenMP
# runtime slowed fastrnn's two-thread kernels (measured: notebook-size LSTM
# forward+backward, median of 2,900 calls: float32 126 us alone, 154-171 us with
# torch imported; float64 182-186 us, 187-246 us).
HAVE_TORCH = importlib.util.find_spec("torch") is not None

SIZES = [(10, 50, 10, 20), (32, 100, 64, 128), (64, 100, 256, 256), (64, 50, 512, 1024)]
DTYPES = [np.float64, np.float32]
CELLS = {"lstm": (LSTM, 4, numpy_lib.lstm_forward, numpy_lib.lstm_backward),
         "rnn": (VanillaRNN, 1, numpy_lib.rnn_forward, numpy_lib.rnn_backward)}


# Pause before each measurement.  A library's idle worker threads keep spinning
# for a while after its last call (OpenBLAS's for ~0.1 s, OpenMP's for a spin
# count), and on 2 cores they take one away from whatever is timed next: measured,
# the notebook-size fastrnn LSTM timed right after the numpy GEMM-peak run took
# 0.31 ms against 0.18-0.21 ms on a quiet machine.
SETTLE_S = 0.5

# fastrnn, the numpy reference and PyTorch are timed in this many alternating rounds.
ROUNDS = 4

# Each side runs for its whole time budget: the cap on calls only bounds memory.
# With a cap of 200 calls (50 a round), the notebook-size fastrnn layers were
# timed over ~3 ms bursts right after each pause while the numpy reference ran
# for ~40 ms, and a burst that fell on a slow moment set a quarter of the
# samples: measured in one process, three alternating runs each, fastrnn
# float32 RNN 62-91 us capped against 61.3-61.5 us uncapped, float64 LSTM
# 178-245 us against 175-204 us (the numpy reference moved by less than 4%).
MAX_REPEATS = 100_000


def median_ms(fn, budget_s, min_repeats=3, max_repeats=MAX_REPEATS):
    """Median wall time of fn() in ms, after a pause (``SETTLE_S``) and one warm-up
    call, within about budget_s."""
    return interleaved_median_ms({"fn": fn}, budget_s, rounds=1, min_repeats=min_repeats,
                                 max_repeats=max_repeats)["fn"]


def run_for(fn, budget_s, min_repeats, max_repeats):
    """Wall times in s of repeated fn() calls: at least min_repeats, then more
    until budget_s has passed or there are max_repeats."""
    times = []
    start = time.perf_counter()
    while len(times) < min_repeats or (time.perf_counter() - start < budget_s
                                       and len(times) < max_repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def interleaved_median_ms(timers, budget_s, rounds=ROUNDS, min_repeats=3,
                          max_repeats=MAX_REPEATS):
    """{name: median wall time in ms} of each of ``timers``, timed in alternation:
    ``rounds`` rounds in which each, after a pause (``SETTLE_S``), runs for about
    budget_s / rounds.  A timer is a function, called here (one warm-up call each
    before the first round), or an object whose ``sample(budget_s, min_repeats,
    max_repeats)`` returns the wall times of calls made elsewhere (``TorchPeer``'s
    process, which warms up on its own).  A burst of load from elsewhere on the
    shared machine then falls on both sides of a ratio instead of on one of them
    (measured: the notebook-size LSTM timed at 0.22 ms in one run and 0.13 ms
    alone, at the same commit)."""
    samplers = {}
    for name, timer in timers.items():
        if hasattr(timer, "sample"):
            samplers[name] = timer.sample
        else:
            timer()
            samplers[name] = functools.partial(run_for, timer)
    times = {name: [] for name in timers}
    for _ in range(rounds):
        for name, sample in samplers.items():
            if budget_s > 0:  # (a zero budget is a smoke run: no pause)
                time.sleep(SETTLE_S)
            times[name] += sample(budget_s / rounds, -(-min_repeats // rounds),
                                  max_repeats // rounds)
    return {name: 1e3 * statistics.median(ts) for name, ts in times.items()}


def gemm_gflops(dtype, budget_s):
    """The machine's GEMM throughput (numpy matmul, all cores), GFLOP/s."""
    n = 2048
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n)).astype(dtype), rng.standard_normal((n, n)).astype(dtype)
    out = np.empty((n, n), dtype=dtype)
    ms = median_ms(lambda: np.matmul(a, b, out=out), budget_s)
    return 2 * n ** 3 / (ms * 1e6)


def layer_flops(cell, N, T, D, H):
    """FLOP of one forward+backward: 24*N*T*H*(D+H) for an LSTM, 6*... for a tanh RNN."""
    return (24 if cell == "lstm" else 6) * N * T * H * (D + H)


def layer_inputs(dtype, size):
    """x, h0, dh for one size, the same in every process."""
    N, T, D, H = size
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, D)).astype(dtype)
    h0 = rng.standard_normal((N, H)).astype(dtype)
    dh = rng.standard_normal((N, T, H)).astype(dtype)
    return x, h0, dh


def time_layer(cell, dtype, size, budget_s, torch_peer=None):
    """{'fastrnn': ms, 'numpy': ms, 'torch': ms or None} for one layer step, timed in
    alternating rounds (PyTorch by ``torch_peer``'s process, when given)."""
    layer_class, _, np_forward, np_backward = CELLS[cell]
    x, h0, dh = layer_inputs(dtype, size)
    layer = layer_class(size[2], size[3], init_scale=0.1, dtype=dtype)
    wx, wh, b = (layer.params[k] for k in (layer.wx_name, layer.wh_name, layer.b_name))

    def fastrnn_step():
        layer.forward(x, h0)
        layer.backward(dh)

    def numpy_step():
        _, caches = np_forward(x, h0, wx, wh, b)
        np_backward(dh, caches, wx, wh)

    timers = {"fastrnn": fastrnn_step, "numpy": numpy_step}
    if torch_peer is not None:
        timers["torch"] = torch_peer.timer(cell, dtype, size)
    return {"torch": None, **interleaved_median_ms(timers, budget_s)}


def torch_step(torch, cell, dtype, size):
    """One forward+backward of torch ``nn.LSTM`` / ``nn.RNN`` on the inputs of
    ``layer_inputs``, as a function of no arguments."""
    N, T, D, H = size
    x, h0, dh = layer_inputs(dtype, size)
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    module = (torch.nn.LSTM(D, H, batch_first=True) if cell == "lstm"
              else torch.nn.RNN(D, H, nonlinearity="tanh", batch_first=True)).to(tdtype)
    tx = torch.tensor(x, requires_grad=True)
    th0 = torch.tensor(h0[None], requires_grad=True)
    tdh = torch.tensor(dh)
    state = (th0, torch.zeros_like(th0)) if cell == "lstm" else th0

    def step():
        out, _ = module(tx, state)
        out.backward(tdh)

    return step


def torch_worker():
    """Run in a process of its own (``--torch-worker``), serving ``TorchPeer``.

    Prints {"version": ...}; then for each request line on stdin, JSON {"cell",
    "dtype", "size", "budget_s", "min_repeats", "max_repeats"}, prints {"times":
    [s, ...]}.  The first request for a layer builds it and runs one warm-up step.
    """
    import torch

    print(json.dumps({"version": f"torch {torch.__version__} ({torch.get_num_threads()} threads)"}),
          flush=True)
    steps = {}
    for line in sys.stdin:
        request = json.loads(line)
        dtype, size = np.dtype(request["dtype"]).type, tuple(request["size"])
        key = layer_key(request["cell"], dtype, size)
        if key not in steps:
            steps[key] = torch_step(torch, request["cell"], dtype, size)
            steps[key]()
        times = run_for(steps[key], request["budget_s"], request["min_repeats"],
                        request["max_repeats"])
        print(json.dumps({"times": times}), flush=True)


def layer_key(cell, dtype, size):
    return f"{cell} {np.dtype(dtype).name} {' '.join(map(str, size))}"


class TorchPeer:
    """PyTorch timed in a worker process of its own (``torch_worker``), one request
    at a time, so that its rounds alternate with fastrnn's and numpy's.  Use as a
    context manager; ``version`` names torch and its thread count."""

    def __init__(self):
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "--torch-worker"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.version = self._reply()["version"]

    def _reply(self):
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the PyTorch worker stopped (exit code {self.process.wait()})")
        return json.loads(line)

    def timer(self, cell, dtype, size):
        """A timer for ``interleaved_median_ms``: one layer step in the worker."""
        return _WorkerStep(self, dict(cell=cell, dtype=np.dtype(dtype).name, size=list(size)))

    def sample(self, step, budget_s, min_repeats, max_repeats):
        """Wall times in s of repeated calls of ``step`` (a request) in the worker."""
        request = dict(step, budget_s=budget_s, min_repeats=min_repeats, max_repeats=max_repeats)
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return self._reply()["times"]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.process.stdin.close()
        self.process.wait()


class _WorkerStep:
    """One layer step timed by a ``TorchPeer``'s worker (see ``interleaved_median_ms``)."""

    def __init__(self, peer, step):
        self.peer, self.step = peer, step

    def sample(self, budget_s, min_repeats, max_repeats):
        return self.peer.sample(self.step, budget_s, min_repeats, max_repeats)


def time_language_model(vocab, dtype, budget_s):
    """ms of one train_net iteration (N=10, T=50, D=10, H=20, LSTM, Adam) both ways."""
    N, T, D, H = 10, 50, 10, 20
    rng = np.random.default_rng(0)
    words = rng.integers(vocab, size=(N, T))
    labels = rng.integers(vocab, size=(N, T))
    np.random.seed(0)
    model = LanguageModelRNN(vocab, D, H, cell_type="lstm", dtype=dtype)
    loss_func = temporal_softmax_loss()
    optimizer = Adam(model, 5e-4)
    mask = np.ones((N, T))
    h0 = np.zeros((N, H))

    def fastrnn_iteration():
        loss_func.forward(model.forward(words, h0), labels, mask)
        model.backward(loss_func.backward())
        optimizer.step()

    baseline = numpy_lib.LanguageModel(vocab, D, H)
    times = interleaved_median_ms({"fastrnn": fastrnn_iteration,
                                   "numpy": lambda: baseline.train_step(words, labels)}, budget_s)
    return times["fastrnn"], times["numpy"]


def generation_speed(vocab, embedding, hidden, budget_s):
    """Tokens per second of LanguageModelRNN.sample (one stream, float32, sampled)."""
    np.random.seed(0)
    model = LanguageModelRNN(vocab, embedding, hidden, cell_type="lstm", dtype=np.float32)
    n = 20_000
    ms = median_ms(lambda: model.sample(0, n, temperature=1.0, seed=0), budget_s, min_repeats=3)
    return n / (ms / 1e3)


_JIT_PROBE = textwrap.dedent("""
    import time
    start = time.perf_counter()
    import numpy as np
    from fastrnn.layer_utils import LSTM
    layer = LSTM(10, 20)
    layer.forward(np.ones((10, 50, 10)), np.zeros((10, 20)))
    layer.backward(np.ones((10, 50, 20)))
    print(time.perf_counter() - start)
""")


def jit_cost():
    """(cold, warm) seconds for a new process to import fastrnn and run its first
    LSTM forward+backward: with an empty compile cache, then with it filled."""
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        runs = [float(subprocess.run([sys.executable, "-c", _JIT_PROBE], env=env, check=True,
                                     capture_output=True, text=True).stdout) for _ in range(3)]
    return runs[0], min(runs[1:])


_MEMORY_PROBE = textwrap.dedent("""
    import numpy as np
    from fastrnn import _threads
    from fastrnn.layer_utils import LSTM

    default_threshold = _threads.PARALLEL_MIN_FLOPS

    def rss(field):
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) * 1024 for l in f if l.startswith(field))

    N, T, D, H = {size}
    # Load (or compile) the code the measured call runs -- the parallel build --
    # on a tiny problem first, so no compilation lands in the measurement.
    _threads.PARALLEL_MIN_FLOPS = 0
    small = LSTM(D, H, dtype=np.float32)
    small.forward(np.ones((2, 2, D), np.float32), np.zeros((2, H), np.float32))
    small.backward(np.ones((2, 2, H), np.float32))
    _threads.PARALLEL_MIN_FLOPS = default_threshold
    layer = LSTM(D, H, dtype=np.float32)
    x = np.ones((N, T, D), np.float32)
    h0 = np.zeros((N, H), np.float32)
    dh = np.ones((N, T, H), np.float32)
    with open("/proc/self/clear_refs", "w") as f:   # reset the peak (VmHWM) to the current RSS
        f.write("5")
    before = rss("VmRSS:")
    h = layer.forward(x, h0)
    dx, dh0 = layer.backward(dh)
    print(rss("VmHWM:") - before)
""")


def lstm_memory(size):
    """(peak bytes of a float32 LSTM forward+backward, the formula's bytes).

    Formula: stored activations (gates (T, N, 4H), tanh(c) (T, N, H), c and h
    (T + 1, N, H) with the initial state, the time-major copy of x (T, N, D)) +
    inputs (x, h0, dh) + outputs (h, dx, dh0) + weight gradients.  The peak is the
    process's resident-memory high-water mark during the call above its level
    before, plus the inputs (made before).
    """
    N, T, D, H = size
    unit = N * T * 4
    stored = unit * (4 * H + 3 * H + D) + 2 * N * H * 4
    inputs = unit * (D + H) + N * H * 4
    outputs = unit * (H + D) + N * H * 4
    weight_grads = 4 * 4 * H * (D + H + 1)
    added = int(subprocess.run([sys.executable, "-c", _MEMORY_PROBE.format(size=size)],
                               check=True, capture_output=True, text=True).stdout)
    return added + inputs, stored + inputs + outputs + weight_grads


def machine_line(torch_version=None):
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    versions = [f"python {platform.python_version()}", f"numpy {np.__version__}",
                f"numba {__import__('numba').__version__}", f"scipy {__import__('scipy').__version__}",
                f"fastrnn {fastrnn.__version__}"]
    if torch_version:
        versions.append(torch_version)
    return f"{cpu}, {os.cpu_count()} cores; fastrnn threads {fastrnn.get_num_threads()}; " \
           + ", ".join(versions)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smallest size only, short budgets")
    parser.add_argument("--markdown", help="also write the tables to this Markdown file")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    parser.add_argument("--torch-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    budget = 0.2 if args.quick else 2.0
    sizes = SIZES[:1] if args.quick else SIZES
    if args.torch_worker:
        torch_worker()
        return
    with TorchPeer() if HAVE_TORCH else contextlib.nullcontext() as torch_peer:
        report(args, budget, sizes, torch_peer)


def report(args, budget, sizes, torch_peer):
    """Time everything, print the tables and write the files ``args`` asks for."""
    torch_version = torch_peer.version if torch_peer else None
    lines, figures = [], {"layers": [], "language_model": [], "generation": {}}

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    say(f"# fastrnn side by side ({datetime.date.today().isoformat()})")
    say()
    say(f"Machine: {machine_line(torch_version)}")
    # The peak is measured before and after the layers and the higher figure kept:
    # one measurement that fell in a slow phase of the shared machine gave float32
    # 130 GFLOP/s against 197-204 in the runs before, and fastrnn "115% of peak".
    peaks_before = {np.dtype(d).name: gemm_gflops(d, budget) for d in DTYPES}
    rows = []
    for cell in CELLS:
        for dtype in DTYPES:
            for size in sizes:
                print(f"timing {cell} {np.dtype(dtype).name} {size}", file=sys.stderr, flush=True)
                before = host_state.state()
                t = time_layer(cell, dtype, size, budget, torch_peer)
                rows.append((cell, np.dtype(dtype).name, size, t, before, host_state.state()))
    peaks_after = {np.dtype(d).name: gemm_gflops(d, budget) for d in DTYPES}
    peaks = {k: max(peaks_before[k], peaks_after[k]) for k in peaks_before}
    say("GEMM peak (numpy matmul 2048^3, all cores; the higher of a measurement before and one "
        "after the layers): " + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in peaks.items()))
    figures.update(gemm_gflops=peaks, gemm_gflops_before=peaks_before,
                   gemm_gflops_after=peaks_after)
    say()
    say("One layer, forward + backward, median ms; ratio = peer / fastrnn")
    say()
    say("| cell | dtype | N, T, D, H | fastrnn | numpy | torch | numpy/fastrnn | torch/fastrnn "
        "| fastrnn GFLOP/s | % of GEMM peak | host before / after |")
    say("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for cell, name, size, t, before, after in rows:
        gflops = layer_flops(cell, *size) / (t["fastrnn"] * 1e6)
        torch_ms = f"{t['torch']:.3f}" if t["torch"] else "-"
        torch_ratio = f"{t['torch'] / t['fastrnn']:.2f}x" if t["torch"] else "-"
        say(f"| {cell} | {name} | {', '.join(map(str, size))} | {t['fastrnn']:.3f} | "
            f"{t['numpy']:.3f} | {torch_ms} | {t['numpy'] / t['fastrnn']:.2f}x | "
            f"{torch_ratio} | {gflops:.1f} | {100 * gflops / peaks[name]:.0f}% | "
            f"{host_state.short(before)} / {host_state.short(after)} |")
        figures["layers"].append(dict(cell=cell, dtype=name, size=size, host_before=before,
                                      host_after=after, **t))
    say()
    say("Host: the slowest vCPU's time for the same single-thread loop over the fastest's, and an "
        "empty two-thread parallel region, just before and just after the row was timed "
        "(`asv_bench/host_state.py`; quiet: 1.00x and ~1.5 us). The small sizes run on both "
        "cores and wait for the slower one; the numpy reference runs on one.")
    say()
    say("Language model, one train_net iteration (N=10, T=50, D=10, H=20, LSTM, Adam, float64)")
    say()
    say("| vocabulary | fastrnn ms | numpy ms | numpy/fastrnn |")
    say("|---:|---:|---:|---:|")
    for vocab in (200, 2000):
        fast, slow = time_language_model(vocab, np.float64, budget)
        say(f"| {vocab} | {fast:.3f} | {slow:.3f} | {slow / fast:.2f}x |")
        figures["language_model"].append(dict(vocab=vocab, fastrnn_ms=fast, numpy_ms=slow))
    if not args.quick:
        say()
        say("Generation, one stream, float32 LSTM, sampled (temperature 1)")
        say()
        for label, (vocab, emb, hidden) in {"char (V=65, E=64, H=256)": (65, 64, 256),
                                            "word (V=5000, E=128, H=128)": (5000, 128, 128)}.items():
            rate = generation_speed(vocab, emb, hidden, budget)
            say(f"- {label}: {rate:,.0f} tokens/s")
            figures["generation"][label] = rate
        cold, warm = jit_cost()
        say()
        say(f"JIT: import + first LSTM forward+backward in a new process: {cold:.1f} s with an "
            f"empty compile cache, {warm:.2f} s with the on-disk cache warm")
        peak, formula = lstm_memory(SIZES[2])
        say(f"Memory, float32 LSTM forward+backward at {SIZES[2]}: peak {peak / 2**20:.1f} MiB "
            f"(the call's resident growth plus its inputs), formula {formula / 2**20:.1f} MiB "
            f"({peak / formula:.2f}x)")
        figures.update(jit_cold_s=cold, jit_warm_s=warm, memory_peak=peak, memory_formula=formula)

    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write("\n".join(lines) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(machine=machine_line(torch_version), **figures), f,
                      indent=1)


if __name__ == "__main__":
    main()
