"""What a training run shows while it works, on stderr: a progress bar on a terminal,
a plain line every ``log_every`` seconds otherwise (a log file, a notebook's captured
stream), and a note while the kernels compile on a first run."""

import os
import sys
import threading
import time

try:
    import resource
except ImportError:  # POSIX only: on Windows no peak is shown
    resource = None

from tqdm.auto import tqdm

from .._checks import is_number, require

__all__ = ["Progress", "check_log_every", "clock", "compiling", "memory_in_use"]

COMPILE_NOTE_AFTER = 2.0  # seconds: loading the kernels from Numba's cache usually takes less
# Reading the memory in use opens a /proc file (tens of microseconds): a visible
# share of a small model's step if done every step, nothing once a second.
MEMORY_READ_EVERY = 1.0  # seconds


def clock(seconds):
    """``seconds`` as m:ss."""
    seconds = int(round(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


def check_log_every(value):
    """``value`` if it is a number of seconds > 0 (the interval of the plain progress lines)."""
    require(is_number(value) and value > 0, "log_every", "a number of seconds > 0", value)
    return value


def memory_in_use():
    """(resident memory in use, peak resident memory) of this process in bytes (RSS,
    the pages in RAM); either is None where the system does not tell it.  Read from
    /proc/self/statm (Linux) and ``getrusage``'s ru_maxrss (POSIX): the standard
    library suffices, no dependency."""
    current = peak = None
    try:
        with open("/proc/self/statm", "rb") as statm:
            current = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    if resource is not None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        peak *= 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB elsewhere
        # Linux updates the high-water mark lazily (when pages are unmapped): it may
        # lag the memory in use by a little.
        peak = max(peak, current or 0)
    return current, peak


def _memory_text():
    """'mem 812 MiB (peak 1,204 MiB)', or what of it the system tells ('' if nothing)."""
    current, peak = memory_in_use()
    shown = [f"mem {current / 2 ** 20:,.0f} MiB"] if current is not None else []
    if peak is not None:
        shown.append(f"(peak {peak / 2 ** 20:,.0f} MiB)" if shown else
                     f"peak mem {peak / 2 ** 20:,.0f} MiB")
    return " ".join(shown)


def _stream():
    return sys.stderr


class Progress:
    """Per-step progress of a training session (a context manager).

    total: steps of the session (None when only a time budget limits it);
    enabled: True a tqdm bar, False nothing, None (default) a bar when stderr is
    a terminal and otherwise a plain line every ``log_every`` seconds.
    """

    def __init__(self, total, enabled=None, log_every=30.0):
        self.total = total
        self.log_every = check_log_every(log_every)
        bar = _stream().isatty() if enabled is None else enabled
        self.lines = enabled is None and not bar
        self._bar = tqdm(total=total, disable=not bar, unit="step",
                         file=_stream(), leave=False, dynamic_ncols=True,
                         bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
        self._steps = 0
        self._last_line = time.perf_counter()
        self._memory, self._memory_read = "", None  # text and time of the last reading

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._bar.close()
        return False

    def step(self, text):
        """One more step; ``text`` says how it goes (epoch, loss, speed, time left).
        The process's memory in use and its peak are added (read at most every
        MEMORY_READ_EVERY seconds)."""
        self._steps += 1
        now = time.perf_counter()
        if self._memory_read is None or now - self._memory_read >= MEMORY_READ_EVERY:
            self._memory, self._memory_read = _memory_text(), now
        if self._memory:
            text = f"{text}, {self._memory}"
        self._bar.update(1)
        self._bar.set_postfix_str(text)
        if self.lines and now - self._last_line >= self.log_every:
            total = "" if self.total is None else f"/{self.total:,}"
            print(f"step {self._steps:,}{total}: {text}", file=_stream(), flush=True)
            self._last_line = now


def compiling(work, enabled=True, note_after=COMPILE_NOTE_AFTER):
    """Run ``work()`` (the first calls of the kernels) and return its result; when it
    takes longer than ``note_after`` seconds, say so on stderr while it runs and how
    long it took after.  Compiling takes a minute or more (on a first run, or after
    the kernels changed); loading from the cache a second or two, more on a busy
    machine, so the note names both.  Nothing is said when ``enabled`` is False."""
    start = time.perf_counter()
    noted = threading.Event()

    def note():
        print("compiling kernels, or loading them from Numba's cache (only a first run "
              "compiles) ...", file=_stream(), flush=True)
        noted.set()

    timer = threading.Timer(note_after, note)
    if enabled:
        timer.start()
    try:
        result = work()
    finally:
        timer.cancel()
        if enabled:
            timer.join()  # a note being printed is finished before the next line
    if noted.is_set():
        print(f"kernels ready in {time.perf_counter() - start:.1f} s; the time budget starts now",
              file=_stream(), flush=True)
    return result
