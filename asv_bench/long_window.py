"""Long windows: the time and memory of checkpointing in time (fastrnn.recompute).

    python asv_bench/long_window.py            # all three measurements (~3 minutes)
    python asv_bench/long_window.py --quick    # small sizes, to check the script runs
    python asv_bench/long_window.py --ratio-only --repeats 7   # the time ratio alone

One LSTM layer, D = 64, H = 256, float32, forward + backward with an upstream
gradient on every h:

1. T = 10,000, N = 8: time of ``checkpoint_every="auto"`` over the full path,
   in interleaved repeats in one process (median of each, their ratio, the
   ratio of the minima and of the CPU seconds).  ``--ratio-only`` stops there;
   ``--checkpoint-every K`` times a given K instead of "auto".
2. T = 100,000, N = 8, "auto": the peak RSS growth of the call beyond its
   inputs (x, h0, dh: allocated before) and outputs (h, dx, dh0, weight
   gradients), in a fresh process.
3. T = 1,000,000, N = 1, "auto": time, the same memory figure, and whether
   every output is finite.

Each memory figure comes from a subprocess of its own (Linux): after a small
warm-up call (compile or load the kernels), the inputs are allocated, the
peak RSS is reset to the current one (``/proc/self/clear_refs``), the call
runs, and the peak (VmHWM) less the RSS before less the outputs' bytes is what
the call needed.  Prints one JSON line per
measurement, with the load average.  Run it on a quiet machine.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

D, H = 64, 256

CALL = """
import json, sys, time
import numpy as np
from fastrnn.layer_utils import LSTM
N, T, D, H, setting = {N}, {T}, {D}, {H}, {setting!r}
layer = LSTM(D, H, init_scale=0.05, dtype=np.float32, checkpoint_every=setting)
rng = np.random.default_rng(0)
def inputs(T):
    return (rng.standard_normal((N, T, D), dtype=np.float32), np.zeros((N, H), np.float32),
            rng.standard_normal((N, T, H), dtype=np.float32))
x, h0, dh = inputs(64)  # compile / load the kernels
layer.forward(x, h0); layer.backward(dh); layer._spare = None
x, h0, dh = inputs(T)
def status(field):  # bytes of VmRSS or VmHWM (the peak)
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # resets the peak (VmHWM) to the current RSS: the warm-up's does not count
before = status("VmRSS")
assert status("VmHWM") <= before + 2 ** 20, "the peak was not reset"
start = time.perf_counter()
h = layer.forward(x, h0)
largest = max(a.nbytes for a in layer.meta.work.arrays()) if setting else 0
strides = list(layer.meta.schedule.strides) if setting else []
dx, dh0 = layer.backward(dh)
seconds = time.perf_counter() - start
peak = status("VmHWM")
outputs = [h, dx, dh0, *layer.grads.values()]
print(json.dumps(dict(
    N=N, T=T, setting=setting, seconds=round(seconds, 2),
    us_per_token_row=round(1e6 * seconds / (N * T), 2),
    beyond_inputs_outputs_MiB=round((peak - before - sum(a.nbytes for a in outputs)) / 2**20, 1),
    finite=bool(all(np.all(np.isfinite(a)) for a in outputs)), strides=strides,
    largest_buffer_bytes=largest, bytes_of_h=h.nbytes)))
"""


def load():
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def in_subprocess(N, T, setting):
    """Run CALL in a fresh process; -> its JSON result."""
    code = CALL.format(N=N, T=T, D=D, H=H, setting=setting)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, env=env)
    return json.loads(result.stdout.strip().splitlines()[-1])


def time_ratio(N, T, repeats, setting="auto"):
    """Seconds of forward + backward, full path and ``setting`` (checkpoint_every),
    timed in turn in one process: medians and their ratio, the ratio of the
    minima, and the ratio of the medians of the process's CPU seconds (less
    sensitive than wall time to other processes taking the cores; with threads
    it also counts their waiting)."""
    from fastrnn.layer_utils import LSTM

    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, D), dtype=np.float32)
    h0 = np.zeros((N, H), np.float32)
    dh = rng.standard_normal((N, T, H), dtype=np.float32)
    layer = LSTM(D, H, init_scale=0.05, dtype=np.float32)
    times = {0: [], setting: []}
    cpu = {0: [], setting: []}
    for round_ in range(repeats + 1):
        for each in times:
            layer.checkpoint_every = each
            start, cpu_start = time.perf_counter(), time.process_time()
            layer.forward(x, h0)
            if each:
                strides = list(layer.meta.schedule.strides)
            layer.backward(dh)
            if round_:  # round 0 compiles / loads and fills the buffers
                times[each].append(time.perf_counter() - start)
                cpu[each].append(time.process_time() - cpu_start)
    full, other = (statistics.median(times[s]) for s in times)
    cpu_full, cpu_other = (statistics.median(cpu[s]) for s in cpu)
    return dict(N=N, T=T, setting=setting, strides=strides, full_s=round(full, 3),
                segmented_s=round(other, 3), ratio=round(other / full, 3),
                ratio_of_minima=round(min(times[setting]) / min(times[0]), 3),
                cpu_ratio=round(cpu_other / cpu_full, 3), repeats=repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--ratio-only", action="store_true",
                        help="only the time ratio at T = 10,000 (~1 minute on a quiet machine)")
    parser.add_argument("--repeats", type=int, default=5, help="alternations of the time ratio")
    parser.add_argument("--checkpoint-every", default="auto",
                        help='the setting timed against the full path: "auto" or a K')
    args = parser.parse_args(argv)
    scale = 100 if args.quick else 1
    setting = "auto" if args.checkpoint_every == "auto" else int(args.checkpoint_every)
    print(json.dumps(dict(what="time ratio segmented / full", load=load(),
                          **time_ratio(8, 10_000 // scale, 2 if args.quick else args.repeats,
                                       setting))), flush=True)
    if args.ratio_only:
        return
    print(json.dumps(dict(what="memory", load=load(), **in_subprocess(8, 100_000 // scale,
                                                                      "auto"))), flush=True)
    print(json.dumps(dict(what="a million steps", load=load(),
                          **in_subprocess(1, 1_000_000 // scale, "auto"))), flush=True)
    print(json.dumps(dict(what="load after", load=load())))


if __name__ == "__main__":
    main()
