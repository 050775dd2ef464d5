"""What a training run shows on stderr: the note while kernels compile, and plain
progress lines when stderr is not a terminal."""

import re
import sys
import time

import numpy as np
import pytest

from fastrnn.lm.progress import Progress, compiling, memory_in_use


def test_slow_compilation_is_announced_and_timed(capsys):
    assert compiling(lambda: time.sleep(0.3) or "done", note_after=0.05) == "done"
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == ("compiling kernels, or loading them from Numba's cache (only a first "
                        "run compiles) ...")
    assert lines[1].startswith("kernels ready in 0.")
    assert lines[1].endswith(" s; the time budget starts now") and len(lines) == 2


def test_quick_or_silenced_compilation_says_nothing(capsys):
    compiling(lambda: None, note_after=5.0)
    compiling(lambda: time.sleep(0.2), enabled=False, note_after=0.01)
    assert capsys.readouterr().err == ""


def test_a_failing_compilation_still_cleans_up(capsys):
    with pytest.raises(RuntimeError, match="no kernel"):
        compiling(lambda: (_ for _ in ()).throw(RuntimeError("no kernel")), note_after=5.0)
    assert capsys.readouterr().err == ""


def test_without_a_terminal_progress_is_a_line_every_interval(capsys):
    # capsys's stderr is not a terminal: no bar, plain lines.
    with Progress(total=3, log_every=1e-9) as progress:
        for step in range(3):
            progress.step(f"loss {step}")
    memory = r", mem [\d,]+ MiB \(peak [\d,]+ MiB\)" if sys.platform == "linux" else ".*"
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 3
    for step, line in enumerate(lines):
        assert re.fullmatch(rf"step {step + 1}/3: loss {step}{memory}", line), line
    with Progress(total=None, log_every=3600.0) as progress:
        progress.step("loss 0")
    with Progress(total=3, enabled=False, log_every=1e-9) as progress:
        progress.step("loss 0")
    assert capsys.readouterr().err == ""


def test_the_interval_must_be_positive():
    with pytest.raises(ValueError, match="log_every: expected a number of seconds > 0, got 0"):
        Progress(total=3, log_every=0)


@pytest.mark.skipif(sys.platform != "linux", reason="the memory in use is read from /proc")
def test_the_memory_shown_follows_what_the_process_holds():
    before, _ = memory_in_use()
    held = np.ones(64 * 2 ** 20 // 8)  # 64 MiB, touched
    during, _ = memory_in_use()
    assert 60 * 2 ** 20 <= during - before <= 80 * 2 ** 20
    del held  # freed: in use goes down, the peak stays (Linux counts pages in batches:
    after, peak = memory_in_use()  # it may lag by a few hundred KiB)
    assert after <= during - 60 * 2 ** 20 and peak >= during - 2 ** 20
