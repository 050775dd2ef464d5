"""The Python cost of a recurrent layer call: forward + backward of a tiny layer
(N=1, T=2, D=H=2), where the kernels' work is negligible and what is timed is
validation, buffers, the step-form choice and the kernel calls' dispatch.

    python asv_bench/layer_overhead.py            # us per forward + backward, best of 15
    taskset -c 1 python asv_bench/layer_overhead.py   # pinned: the shared host's vCPUs differ

Run it in alternating processes against another checkout (PYTHONPATH=OTHER/src)
to compare two commits; single-threaded (NUMBA_NUM_THREADS=1) so that only the
Python layer differs.
"""

import argparse
import json
import time

import numpy as np

from fastrnn.layer_utils import LSTM, VanillaRNN


def layer_overhead_us(cell, repeats=15, calls=2000):
    """Best over ``repeats`` of the mean us of ``calls`` forward + backward pairs."""
    layer = {"lstm": LSTM, "rnn": VanillaRNN}[cell](2, 2)
    x, h0, dh = np.ones((1, 2, 2)), np.zeros((1, 2)), np.ones((1, 2, 2))
    for _ in range(200):
        layer.forward(x, h0)
        layer.backward(dh)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            layer.forward(x, h0)
            layer.backward(dh)
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
    return best


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--calls", type=int, default=2000)
    args = parser.parse_args(argv)
    print(json.dumps({cell: round(layer_overhead_us(cell, args.repeats, args.calls), 2)
                      for cell in ("lstm", "rnn")}))


if __name__ == "__main__":
    main()
