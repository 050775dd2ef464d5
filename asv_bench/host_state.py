"""The state of a shared multi-core host, for reading small-size timings.

    python asv_bench/host_state.py              # one line
    python asv_bench/host_state.py --watch 60   # one line a second for 60 s

At the notebook's sizes fastrnn's layers run on both cores of the 2-core test
machines, and the host changes under them for seconds to minutes at a time, in
two ways, measured apart:

* **A slow vCPU.**  The same single-thread loop, pinned to each vCPU in turn, takes
  12.9 us on both most of the time and 19-23 us on one of them in spells
  (``vcpu_loop_us``; no steal time in /proc/stat meanwhile).  A layer call waits
  for its slower thread: in one such spell the notebook-size float64 RNN forward's
  main thread took 24.4 us for its half instead of 17.3, the other 17.1.
* **vCPUs far apart.**  A cache line written by one core reaches the other in
  175-195 ns instead of ~38, and an empty two-thread parallel region takes
  2.6-2.9 us instead of 1.5 (``parallel_region_us``).

A single-thread loop (the numpy reference) feels neither as long as the
scheduler keeps it on the faster vCPU, so the ratios of the two-thread layers
move with these spells.  ``compare.py`` records this state before and after each
notebook-size cell.
"""

import argparse
import os
import statistics
import time

import numpy as np
from numba import njit, prange

import fastrnn


@njit(cache=False)
def _l1_sum(values, passes):
    """A fixed amount of single-thread work that stays in L1: ``passes`` sums of
    ``values`` with four independent accumulators."""
    s0 = s1 = s2 = s3 = 0.0
    for _ in range(passes):
        for k in range(0, values.shape[0] - 3, 4):
            s0 += values[k]
            s1 += values[k + 1]
            s2 += values[k + 2]
            s3 += values[k + 3]
    return s0 + s1 + s2 + s3


@njit(parallel=True, cache=False)
def _empty_region(slots):
    """A parallel region whose threads each touch one cache line of their own."""
    for p in prange(slots.shape[0] // 8):
        slots[8 * p] += 1.0


_VALUES = np.random.default_rng(0).random(2048)
_PASSES = 20  # 12.9 us on an unhindered vCPU of the 2-core test machines


def _median_us(fn, calls):
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e6 * statistics.median(times)


def vcpu_loop_us(calls=300):
    """{cpu: median us of the same single-thread loop pinned to that CPU}, for each
    CPU this process may run on, or {} where CPU affinity cannot be set.  The
    calling thread's affinity is restored afterwards."""
    if not hasattr(os, "sched_setaffinity"):
        return {}
    allowed = os.sched_getaffinity(0)
    _l1_sum(_VALUES, 1)  # compile
    times = {}
    try:
        for cpu in sorted(allowed):
            os.sched_setaffinity(0, {cpu})
            times[cpu] = _median_us(lambda: _l1_sum(_VALUES, _PASSES), calls)
    finally:
        os.sched_setaffinity(0, allowed)
    return times


def parallel_region_us(calls=1000):
    """Median us of an empty parallel region on fastrnn's threads (one thread per
    core by default, see ``fastrnn.set_num_threads``)."""
    slots = np.zeros(8 * fastrnn.get_num_threads())
    _empty_region(slots)  # compile, and wake the threads
    return _median_us(lambda: _empty_region(slots), calls)


def state():
    """{"vcpu_loop_us": {cpu: us}, "vcpu_slowdown": slowest / fastest (None
    without affinity), "region_us": us} now."""
    loops = vcpu_loop_us()
    slowdown = max(loops.values()) / min(loops.values()) if loops else None
    return {"vcpu_loop_us": loops, "vcpu_slowdown": slowdown, "region_us": parallel_region_us()}


def describe(host):
    """One line for a ``state()``: the per-vCPU loop times and the region time."""
    loops = host["vcpu_loop_us"]
    if loops:
        per_cpu = " / ".join(f"{us:.1f}" for _, us in sorted(loops.items()))
        vcpus = f"vCPU loop {per_cpu} us (slowest {host['vcpu_slowdown']:.2f}x the fastest)"
    else:
        vcpus = "vCPU loop: no CPU affinity here"
    return f"{vcpus}; empty parallel region {host['region_us']:.1f} us"


def short(host):
    """``state()`` in a table cell: slowest/fastest vCPU ratio and region us."""
    slowdown = "-" if host["vcpu_slowdown"] is None else f"{host['vcpu_slowdown']:.2f}x"
    return f"{slowdown} {host['region_us']:.1f}us"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--watch", type=float, default=0.0, metavar="SECONDS",
                        help="print a line a second for this long")
    args = parser.parse_args(argv)
    end = time.monotonic() + args.watch
    while True:
        print(f"{time.strftime('%H:%M:%S')} {describe(state())}", flush=True)
        if time.monotonic() >= end:
            break
        time.sleep(1.0)


if __name__ == "__main__":
    main()
