"""``asv_bench/step_rates.py``: the steps/s of both sides' training steps, alternating."""

import importlib.util
import math
import pathlib

import numpy as np
import pytest

BENCH_DIR = pathlib.Path(__file__).resolve().parent.parent / "asv_bench"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("bench_step_rates", BENCH_DIR / "step_rates.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_summary_takes_the_median_of_each_round_then_over_rounds(script):
    rounds = [{"fastrnn": [0.030, 0.020, 0.040], "torch": [0.036, 0.030, 0.090]},
              {"fastrnn": [0.025, 0.025, 0.025], "torch": [0.040, 0.040, 0.040]},
              {"fastrnn": [0.050, 0.050, 0.050], "torch": [0.050, 0.050, 0.050]}]
    per_round, overall = script.summary(rounds)
    assert [round(row["fastrnn"], 9) for row in per_round] == [30.0, 25.0, 50.0]
    assert [round(row["torch"], 9) for row in per_round] == [36.0, 40.0, 50.0]
    assert [round(row["ratio"], 9) for row in per_round] == [1.2, 1.6, 1.0]
    # Medians over rounds of each side (30 and 40 ms), not the median of the ratios.
    assert math.isclose(overall["fastrnn"], 30.0) and math.isclose(overall["torch"], 40.0)
    assert math.isclose(overall["ratio"], 40.0 / 30.0)
    assert overall["ratio_range"] == pytest.approx([1.0, 1.6])


def test_time_steps_times_only_the_steps_after_the_warmup(script):
    called = []
    seconds = script.time_steps(called.append, warmup=3, steps=4)
    assert called == list(range(7))
    assert len(seconds) == 4 and all(s >= 0 for s in seconds)


def test_fastrnn_side_is_the_default_training_step(script, tmp_path):
    """fastrnn's timed step is a training step of the default model: on a repetitive
    text its loss falls within a few steps."""
    text = "the cat sat on the mat. " * 800  # 19,200 characters: several windows of 32 x 64
    step = script.fastrnn_step(text, 1, str(tmp_path / "run"))
    losses = [step(n) for n in range(8)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_the_script_rejects_empty_rounds(script):
    with pytest.raises(SystemExit):
        script.main(["--rounds", "0"])
