"""What a training run shows on stderr: the note while kernels compile, and plain
progress lines when stderr is not a terminal."""

import time

import pytest

from fastrnn.lm.progress import Progress, compiling


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
    assert capsys.readouterr().err.splitlines() == [
        "step 1/3: loss 0", "step 2/3: loss 1", "step 3/3: loss 2"]
    with Progress(total=None, log_every=3600.0) as progress:
        progress.step("loss 0")
    with Progress(total=3, enabled=False, log_every=1e-9) as progress:
        progress.step("loss 0")
    assert capsys.readouterr().err == ""


def test_the_interval_must_be_positive():
    with pytest.raises(ValueError, match="log_every: expected a number of seconds > 0, got 0"):
        Progress(total=3, log_every=0)
