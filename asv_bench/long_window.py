"""Long windows: the time and memory of checkpointing in time (fastrnn.recompute).

    python asv_bench/long_window.py            # all three measurements (~3 minutes)
    python asv_bench/long_window.py --quick    # small sizes, to check the script runs

One LSTM layer, D = 64, H = 256, float32, forward + backward with an upstream
gradient on every h:

1. T = 10,000, N = 8: time of ``checkpoint_every="auto"`` over the full path,
   in interleaved repeats (median of each, and their ratio).
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
start = time.perf_counter()
h = layer.forward(x, h0)
strides = list(layer.meta.schedule.strides) if setting else []
dx, dh0 = layer.backward(dh)
seconds = time.perf_counter() - start
peak = status("VmHWM")
outputs = [h, dx, dh0, *layer.grads.values()]
print(json.dumps(dict(
    N=N, T=T, setting=setting, seconds=round(seconds, 2),
    us_per_token_row=round(1e6 * seconds / (N * T), 2),
    beyond_inputs_outputs_MiB=round((peak - before - sum(a.nbytes for a in outputs)) / 2**20, 1),
    finite=bool(all(np.all(np.isfinite(a)) for a in outputs)), strides=strides)))
"""


def load():
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def in_subprocess(N, T, setting):
    """Run CALL in a fresh process; -> its JSON result."""
    code = CALL.format(N=N, T=T, D=D, H=H, setting=setting)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def time_ratio(N, T, repeats):
    """Median seconds of forward + backward, full path and "auto", timed in turn."""
    from fastrnn.layer_utils import LSTM

    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, D), dtype=np.float32)
    h0 = np.zeros((N, H), np.float32)
    dh = rng.standard_normal((N, T, H), dtype=np.float32)
    layer = LSTM(D, H, init_scale=0.05, dtype=np.float32)
    times = {0: [], "auto": []}
    for round_ in range(repeats + 1):
        for setting in times:
            layer.checkpoint_every = setting
            start = time.perf_counter()
            layer.forward(x, h0)
            layer.backward(dh)
            if round_:  # round 0 compiles / loads and fills the buffers
                times[setting].append(time.perf_counter() - start)
    full, auto = (statistics.median(times[s]) for s in times)
    return dict(N=N, T=T, full_s=round(full, 3), auto_s=round(auto, 3),
                ratio=round(auto / full, 3), repeats=repeats)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    args = parser.parse_args(argv)
    scale = 100 if args.quick else 1
    print(json.dumps(dict(what="time ratio auto / full", load=load(),
                          **time_ratio(8, 10_000 // scale, 2 if args.quick else 5))), flush=True)
    print(json.dumps(dict(what="memory", load=load(), **in_subprocess(8, 100_000 // scale,
                                                                      "auto"))), flush=True)
    print(json.dumps(dict(what="a million steps", load=load(),
                          **in_subprocess(1, 1_000_000 // scale, "auto"))), flush=True)
    print(json.dumps(dict(what="load after", load=load())))


if __name__ == "__main__":
    main()
