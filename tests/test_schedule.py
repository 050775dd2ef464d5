"""Long runs: validation blocks spread over the text and capped, evaluation and checkpoints
on a schedule, bitwise resume from a mid-epoch checkpoint, the non-finite guard, and a
run killed (SIGKILL) at random moments that always leaves a loadable checkpoint."""

import json
import os
import signal
import subprocess
import sys
import time
import types

import numpy as np
import pytest

from fastrnn.checkpoint import load_checkpoint
from fastrnn.cli import main
from fastrnn.lm import (LATEST, Corpus, LanguageModel, ModelConfig, NonFiniteError, Trainer,
                        TrainConfig, load_run, resume, resume_trainer, train)
from fastrnn.lm.lr_schedule import learning_rate, steps_in_budget
from fastrnn.lm.split import VALIDATION_BLOCKS, split_text

from texts import rhyme

SMALL = dict(embedding=8, hidden=12, dtype="float64", layers=2, dropout=0.2)
# Epochs end these runs: their schedule never depends on the speed of the machine.
FAST = dict(seq_len=8, batch_size=4, lr=1e-2, lr_schedule="cosine", warmup=3,
            time_budget=None)



@pytest.fixture(scope="module")
def corpus():
    return Corpus.from_text(rhyme(seed=5))


def model_for(corpus):
    return LanguageModel(corpus.vocab, corpus.tokenizer, ModelConfig(**SMALL), seed=3)


# --------------------------------------------------------------------------------------------
# The split
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n, seq_len, cap", [(100_000, 16, 4_000), (100_000, 64, 50_000),
                                             (5_000, 8, 100_000), (300, 8, 20)])
def test_validation_blocks_are_capped_and_spread_over_the_whole_text(n, seq_len, cap):
    ids = np.arange(n)
    config = TrainConfig(seq_len=seq_len, batch_size=4, val_tokens=cap, val_fraction=0.1)
    split = split_text(ids, config)
    blocks = split.val_ranges
    length = blocks[0][1] - blocks[0][0]
    assert split.val_tokens <= max(min(cap, n // 10), seq_len + 1)
    assert 1 <= len(blocks) <= VALIDATION_BLOCKS
    assert all(stop - start == length for start, stop in blocks)
    assert (length - 1) % seq_len == 0  # whole windows of predictions
    # Block i lies in the i-th of k equal parts: every part of the text is represented.
    k = len(blocks)
    for i, (start, stop) in enumerate(blocks):
        assert i * n // k <= start and stop <= (i + 1) * n // k
    # Training and validation ranges are disjoint and cover the whole text.
    covered = sorted(split.train_ranges + blocks)
    assert covered[0][0] == 0 and covered[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(covered, covered[1:]))
    np.testing.assert_array_equal(split.validation(), np.stack([ids[a:b] for a, b in blocks]))


def test_the_training_streams_read_the_ranges_without_copying_the_text(tmp_path):
    ids = np.memmap(tmp_path / "ids.bin", dtype=np.uint16, mode="w+", shape=(20_000,))
    ids[:] = np.random.default_rng(0).integers(0, 60_000, size=20_000)
    split = split_text(ids, TrainConfig(seq_len=7, batch_size=5, val_tokens=1_000))
    streams = split.train_streams(5, 7)
    assert streams.ids is ids  # windows are gathered from the mapped array, one at a time
    joined = np.concatenate([ids[a:b] for a, b in split.train_ranges]).astype(np.int64)
    expected = joined[:5 * streams.length].reshape(5, streams.length)
    buffer = np.empty((5, 8), np.int64)
    for w in range(streams.windows):  # every window: many cross from one range to the next
        window = streams.window(w)
        assert window.dtype == np.int64
        np.testing.assert_array_equal(window, expected[:, w * 7:w * 7 + 8])
        assert streams.window(w, out=buffer) is buffer
        np.testing.assert_array_equal(buffer, window)


# --------------------------------------------------------------------------------------------
# Schedule and bitwise resume
# --------------------------------------------------------------------------------------------

def everything(trainer):
    """The arrays and values a step depends on: parameters, Adam, states, position."""
    arrays, meta = trainer.checkpoint_contents()
    return arrays, {key: meta[key] for key in ("adam_t", "epoch",
                                               "step_in_epoch", "global_step")}


def assert_bitwise_equal(a, b):
    arrays_a, meta_a = everything(a)
    arrays_b, meta_b = everything(b)
    assert meta_a == meta_b
    assert arrays_a.keys() == arrays_b.keys()
    for key in arrays_a:
        assert np.array_equal(arrays_a[key], arrays_b[key]), key


def stop_mid_second_epoch(rows):
    """A callback that keeps the rows and stops at the first one in the second epoch."""
    def callback(trainer, row):
        rows.append(row)
        return row["epoch"] > 1.0 and trainer.step_in_epoch > 0
    return callback


@pytest.fixture(scope="module")
def straight(corpus):
    """Two epochs without a stop, validated only at the epoch ends."""
    trainer = Trainer(model_for(corpus), corpus, TrainConfig(epochs=2, eval_every="epoch",
                                                             **FAST))
    trainer.run(progress=False)
    return trainer


def test_a_run_resumed_from_a_mid_epoch_checkpoint_ends_bitwise_equal(corpus, straight,
                                                                      tmp_path):
    split_dir = str(tmp_path / "split")
    rows = []
    result = train(model_for(corpus), corpus, TrainConfig(epochs=2, eval_every=5, **FAST),
                   split_dir, callback=stop_mid_second_epoch(rows), progress=False)
    assert result.stopped == "callback"
    assert len(rows) > 2  # evaluations inside the first epoch too
    resumed = resume_trainer(split_dir, corpus)
    assert resumed.epoch == 1 and resumed.step_in_epoch == result.steps - resumed.windows_per_epoch
    resumed.run(progress=False)
    assert_bitwise_equal(resumed, straight)


def test_timed_evaluations_change_nothing_and_any_of_them_resumes_exactly(corpus, straight):
    config = TrainConfig(epochs=2, eval_every="0.001s", **FAST)
    rows = []
    first = Trainer(model_for(corpus), corpus, config)
    assert first.run(callback=stop_mid_second_epoch(rows), progress=False).stopped == "callback"
    assert len(rows) > 10  # validated at (nearly) every step: whenever the clock said so
    arrays, meta = first.checkpoint_contents()
    meta = json.loads(json.dumps(meta))  # as read back from a checkpoint
    second = Trainer(model_for(corpus), corpus, config)
    second.restore(arrays, meta)
    second.run(progress=False)
    assert_bitwise_equal(second, straight)


def test_metrics_rows_carry_the_schedule(corpus, tmp_path):
    run_dir = tmp_path / "run"
    train(model_for(corpus), corpus, TrainConfig(epochs=1, eval_every=4, **FAST), str(run_dir),
          progress=False)
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    windows = Trainer(model_for(corpus), corpus, TrainConfig(epochs=1, **FAST)).windows_per_epoch
    expected_steps = list(range(4, windows, 4)) + [windows]
    assert [row["step"] for row in rows] == expected_steps
    assert [row["tokens"] for row in rows] == [step * 4 * 8 for step in expected_steps]
    assert rows[-1]["epoch"] == 1.0 and 0 < rows[0]["epoch"] < 1
    config = TrainConfig(epochs=1, **FAST)
    for row in rows:  # the rate of the row's last step
        assert row["lr"] == pytest.approx(plain_rate(config, row["step"] - 1, windows), rel=1e-12)
        assert row["skipped_steps"] == 0 and row["tokens_per_second"] > 0
        assert np.isfinite(row["train_loss"]) and np.isfinite(row["val_loss"])
    assert (run_dir / "samples.txt").read_text().count("=== epoch") == len(rows)


def test_a_resumed_run_may_be_given_a_new_schedule_and_no_other_setting(corpus, tmp_path):
    run_dir = str(tmp_path / "run")
    train(model_for(corpus), corpus, TrainConfig(epochs=1, eval_every="epoch", **FAST), run_dir,
          progress=False)
    with pytest.raises(ValueError, match="schedule: expected settings among eval_every, "
                                         "checkpoint_every, max_nonfinite, got lr"):
        resume(run_dir, epochs=2, corpus=corpus, schedule={"lr": 0.1})
    resume(run_dir, epochs=2, corpus=corpus, progress=False, schedule={"eval_every": 10})
    run = load_run(run_dir, "latest")
    windows = run.meta["global_step"] // 2
    assert [row["step"] for row in run.meta["history"]] == \
        [windows] + [step for step in range(windows + 1, 2 * windows) if step % 10 == 0] + \
        [2 * windows]
    assert run.config["training"]["eval_every"] == 10  # recorded: the next resume keeps it


# --------------------------------------------------------------------------------------------
# The learning-rate schedule
# --------------------------------------------------------------------------------------------

def plain_rate(config, step, total):
    """The schedule as the formulas read: a linear warmup to lr over ``warmup`` steps,
    lr until the decay starts, then cosine (or linear) from lr to lr * floor over the
    last ``lr_decay_share`` of the steps from warmup to total."""
    lr, w, floor = config.lr, config.warmup, config.lr_floor
    start = total - round(config.lr_decay_share * (total - w))
    if step < w:
        return lr * (step + 1) / w
    if config.lr_schedule == "constant" or step < start:
        return lr
    x = min(step - start, total - start) / (total - start)
    if config.lr_schedule == "cosine":
        return floor * lr + (lr - floor * lr) * (1 + np.cos(np.pi * x)) / 2
    return floor * lr + (lr - floor * lr) * (1 - x)


@pytest.mark.parametrize("schedule, share", [("constant", 1.0), ("cosine", 1.0),
                                             ("linear", 1.0), ("linear", 0.3)])
def test_the_rate_of_each_step_follows_the_formula(schedule, share):
    config = TrainConfig(lr=3e-3, lr_schedule=schedule, warmup=10, lr_floor=0.2, epochs=1,
                         lr_decay_share=share)
    total = 110
    rates = [learning_rate(config, step, total) for step in range(130)]
    np.testing.assert_allclose(rates, [plain_rate(config, step, total) for step in range(130)],
                               rtol=1e-12)
    assert rates[0] == pytest.approx(3e-4) and rates[9] == 3e-3  # the warmup ends at lr
    expected_end = 3e-3 if schedule == "constant" else 0.2 * 3e-3
    assert rates[total] == pytest.approx(expected_end) and rates[-1] == rates[total]
    if share < 1.0:  # 30% of the 100 steps after the warmup: the decay starts at step 80
        assert rates[79] == 3e-3 and rates[81] < 3e-3


def test_steps_in_budget_leave_time_for_the_validations():
    def validations(steps):
        return steps // 30 + 1

    steps = steps_in_budget(10.0, 0.1, validations, 1.0)
    assert 60 <= steps <= 70  # 100 steps without validations; 3-4 of them take 3-4 s
    assert steps == int((10.0 - validations(steps) * 1.0) / 0.1)  # a fixed point


def test_a_time_budget_is_turned_into_steps_once_and_a_resume_reuses_them(corpus, tmp_path,
                                                                           monkeypatch):
    """The probe's figures are fixed here (the clock would make them differ from run to run);
    the run records the steps they give, and a resume never probes again: it continues
    with the recorded steps and ends bitwise equal to a run without a stop."""
    config = TrainConfig(eval_every=5, **{**FAST, "time_budget": 1e4})
    monkeypatch.setattr(Trainer, "_probe", lambda self: (1.0, 1.0))
    straight = Trainer(model_for(corpus), corpus, config)
    straight.run(progress=False, callback=lambda trainer, row: row["step"] >= 20)
    planned = straight.state.schedule_steps
    # 1 s a step, and 1 s a validation every 5 steps and every epoch end; the decay is
    # planned to end after a share of the steps expected:
    expected = 1e4 / (1 + 1 / 5 + 1 / straight.windows_per_epoch)
    assert planned == pytest.approx(Trainer.BUDGET_PLAN_SHARE * expected, rel=1e-3)
    assert Trainer.BUDGET_PLAN_SHARE < 1
    run_dir = str(tmp_path / "split")
    train(model_for(corpus), corpus, config, run_dir, progress=False,
          callback=lambda trainer, row: row["step"] >= 10)
    assert load_checkpoint(os.path.join(run_dir, LATEST))[1]["schedule_steps"] == planned

    def no_probe(self):
        raise AssertionError("a resumed run probes again")

    monkeypatch.setattr(Trainer, "_probe", no_probe)
    resumed = resume_trainer(run_dir, corpus)
    resumed.run(progress=False, callback=lambda trainer, row: row["step"] >= 20)
    assert resumed.state.schedule_steps == planned
    assert_bitwise_equal(resumed, straight)
    for row in resumed.history:
        assert row["lr"] == pytest.approx(plain_rate(config, row["step"] - 1, planned), rel=1e-12)


def test_the_probe_of_a_small_model_stops_after_probe_steps(corpus, monkeypatch):
    """A small model's steps take microseconds: the probe times PROBE_STEPS of them (after
    an untimed first) instead of a whole second, and gives the seconds of a step and of
    a validation pass."""
    calls = []
    throwaway = Trainer._throwaway_step
    monkeypatch.setattr(Trainer, "_throwaway_step",
                        lambda self, model, state: calls.append(1) or throwaway(self, model, state))
    trainer = Trainer(model_for(corpus), corpus, TrainConfig(**{**FAST, "time_budget": 1e4}))
    step_seconds, validation_seconds = trainer._probe()
    assert len(calls) == 1 + Trainer.PROBE_STEPS
    assert 0 < step_seconds < Trainer.PROBE_SECONDS and validation_seconds > 0


def test_the_probe_takes_the_median_step_so_a_few_slow_steps_do_not_shorten_the_plan(
        corpus, monkeypatch):
    """Three of the probe's timed steps take 0.21 s and the others 0.01 s on the trainer's
    clock (a host's slow phase): the step time it reports is a typical step's, not the
    mean, which the slow ones would make four times as long."""
    import fastrnn.lm.trainer as trainer_module

    now = [0.0]
    calls = []

    def step_on_the_fake_clock(self, model, state):
        calls.append(1)
        # call 1 is the untimed first touch; calls 2-4 are the first three timed steps
        now[0] += 0.21 if len(calls) in (2, 3, 4) else 0.01

    trainer = Trainer(model_for(corpus), corpus, TrainConfig(**{**FAST, "time_budget": 1e4}))
    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(perf_counter=lambda: now[0]))
    monkeypatch.setattr(Trainer, "_throwaway_step", step_on_the_fake_clock)
    step_seconds, _ = trainer._probe()
    timed = len(calls) - 1
    assert timed == Trainer.PROBE_STEPS  # 0.8 s of the clock: under PROBE_SECONDS
    mean = (3 * 0.21 + (timed - 3) * 0.01) / timed
    assert step_seconds == pytest.approx(0.01)
    assert step_seconds < mean / 2


# --------------------------------------------------------------------------------------------
# The non-finite guard
# --------------------------------------------------------------------------------------------

def poison(monkeypatch, trainer, bad_steps, where):
    """Make the loss (``where='loss'``) or a gradient ('gradient') NaN at ``bad_steps``
    (1-based training steps); records, for each bad step, the carried states and the
    parameters before and after it."""
    model, seen, training = trainer.model, {}, [False]
    train_window = trainer._train_window
    output_loss, backward_layers = LanguageModel.output_loss, LanguageModel.backward_layers

    def bad():  # (global_step counts the steps done: this one is global_step + 1)
        return training[0] and trainer.state.global_step + 1 in bad_steps

    def poisoned_window(window):
        before = (trainer.state.h.copy(), trainer.state.c.copy(),
                  {k: v.copy() for k, v in model.params.items()})
        training[0] = True
        result = train_window(window)
        if bad():
            seen[trainer.state.global_step + 1] = before, (
                trainer.state.h.copy(), trainer.state.c.copy(),
                {k: v.copy() for k, v in model.params.items()})
        training[0] = False
        return result

    # On the class, for this model only: the kernels' warm-up trains a copy of the model.
    def poisoned_loss(self, *args, **options):
        total, correct = output_loss(self, *args, **options)
        return (float("nan") if self is model and where == "loss" and bad() else total), correct

    def poisoned_backward(self):
        backward_layers(self)
        if self is model and where == "gradient" and bad():
            model.grads["layer0_wx"][0, 0] = np.inf

    monkeypatch.setattr(trainer, "_train_window", poisoned_window)
    monkeypatch.setattr(LanguageModel, "output_loss", poisoned_loss)
    monkeypatch.setattr(LanguageModel, "backward_layers", poisoned_backward)
    return seen


@pytest.mark.parametrize("where", ["loss", "gradient"])
def test_a_non_finite_step_is_skipped_with_its_states_restored(corpus, tmp_path, monkeypatch,
                                                               where):
    trainer = Trainer(model_for(corpus), corpus, TrainConfig(epochs=1, eval_every=3, **FAST),
                      str(tmp_path / "run"))
    seen = poison(monkeypatch, trainer, {4, 5, 6, 11}, where)
    trainer.run(progress=False)
    assert sorted(seen) == [4, 5, 6, 11]
    for step, ((h, c, params), (h_after, c_after, params_after)) in seen.items():
        assert np.array_equal(h, h_after) and np.array_equal(c, c_after), step
        for name in params:
            assert np.array_equal(params[name], params_after[name]), (step, name)
    state = trainer.state
    assert (state.skipped_steps, state.skipped_in_a_row) == (4, 0)
    assert state.optimizer.t == state.global_step - 4
    rows = {row["step"]: row for row in state.history}
    assert rows[6]["train_loss"] is None and rows[6]["skipped_steps"] == 3  # all 3 skipped
    assert rows[12]["skipped_steps"] == 4 and np.isfinite(rows[12]["train_loss"])
    run = load_run(str(tmp_path / "run"), "latest")
    assert run.meta["skipped_steps"] == 4
    assert all(np.isfinite(value).all() for value in run.model.params.values())


def test_non_finite_steps_in_a_row_stop_the_run_and_name_the_last_good_checkpoint(
        corpus, tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    trainer = Trainer(model_for(corpus), corpus,
                      TrainConfig(epochs=1, eval_every=3, max_nonfinite=3, **FAST), str(run_dir))
    poison(monkeypatch, trainer, set(range(10, 100)), "loss")
    latest = os.path.join(str(run_dir), LATEST)
    with pytest.raises(NonFiniteError, match=rf"^step 12: loss/gradient not finite 3 times in a "
                                             rf"row; the last good checkpoint is {latest} "
                                             rf"\(step 9\); lower --lr or raise --clip$"):
        trainer.run(progress=False)
    arrays, meta = load_checkpoint(latest)
    assert meta["global_step"] == 9 and meta["skipped_steps"] == 0


def test_a_checkpoint_with_a_non_finite_array_is_never_written(corpus, tmp_path):
    run_dir = tmp_path / "run"
    trainer = Trainer(model_for(corpus), corpus, TrainConfig(epochs=1, eval_every=3, **FAST),
                      str(run_dir))
    trainer.run(progress=False, time_budget=1e-9)  # one step, then a checkpoint
    before = (run_dir / LATEST).read_bytes()
    trainer.model.params["output_b"][2] = np.nan
    with pytest.raises(NonFiniteError, match=r"step 1: param/output_b is not finite, "
                                             r"checkpoint_latest.npz not written; the last good "
                                             r"checkpoint is .* \(step 1\)"):
        trainer._save(LATEST)
    assert (run_dir / LATEST).read_bytes() == before


# --------------------------------------------------------------------------------------------
# The command line: options, and kill -9 at any moment
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["--eval-every", "0"], "--eval-every: expected a number of steps >= 1, a duration"),
    (["--eval-every", "10 minutes"], "--eval-every: expected a number of steps >= 1"),
    (["--checkpoint-every", "30"], "--checkpoint-every: expected a duration such as '30s'"),
    (["--val-tokens", "0"], "--val-tokens: expected an integer >= 1"),
    (["--max-nonfinite", "0"], "--max-nonfinite: expected an integer >= 1, got 0"),
    (["--lr-schedule", "step"], "argument --lr-schedule: invalid choice: 'step'"),
    (["--warmup", "-1"], "--warmup: expected a number of steps >= 0, got -1"),
    (["--lr-floor", "2"], "--lr-floor: expected a fraction of lr in [0, 1], got 2"),
    (["--lr-decay-share", "0"], "--lr-decay-share: expected a share of the steps in (0, 1]"),
])
def test_schedule_options_are_checked(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *argv])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_a_run_killed_at_any_moment_leaves_a_checkpoint_that_loads_and_resumes(tmp_path):
    text = tmp_path / "rhyme.txt"
    text.write_text(rhyme(lines=300, seed=6), encoding="utf-8")
    run_dir = tmp_path / "run"
    first = ["train", str(text), "--out", str(run_dir), "--hidden", "12", "--embedding", "8",
             "--seq-len", "8", "--batch-size", "4", "--epochs", "1000", "--eval-every", "7",
             "--checkpoint-every", "0.05s", "--quiet"]
    again = ["train", "--resume", "--out", str(run_dir)]
    moments = np.random.default_rng(int(time.time())).uniform(0.0, 0.6, size=3)
    steps = []
    for attempt, moment in enumerate(moments):
        process = subprocess.Popen([sys.executable, "-m", "fastrnn",
                                    *(first if attempt == 0 else again)],
                                   stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        start_step = steps[-1] if steps else 0
        # Wait for a checkpoint of this session, then kill at a random moment after it.
        while time.monotonic() < deadline and process.poll() is None:
            if (run_dir / LATEST).exists() and \
                    load_run(str(run_dir), "latest").meta["global_step"] > start_step:
                break
            time.sleep(0.05)
        time.sleep(moment)
        assert process.poll() is None, process.stderr.read().decode()
        process.send_signal(signal.SIGKILL)
        process.wait()
        process.stderr.close()
        run = load_run(str(run_dir), "latest")  # the latest complete checkpoint
        steps.append(run.meta["global_step"])
        assert all(np.isfinite(value).all() for value in run.model.params.values())
    assert steps == sorted(steps) and steps[0] > 0
    # A shutdown (SIGTERM) stops at the end of a step and writes its checkpoint, as Ctrl-C.
    process = subprocess.Popen([sys.executable, "-m", "fastrnn", *again],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    while load_run(str(run_dir), "latest").meta["global_step"] == steps[-1]:
        assert process.poll() is None, process.stderr.read().decode()
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, err.decode()
    assert b"interrupted" in out and b"continue with: fastrnn train --resume" in out
    trainer = resume_trainer(str(run_dir))
    assert trainer.global_step > steps[-1]
    # The temporary files of the writes the kills cut short are gone.
    assert not [name for name in os.listdir(run_dir) if name.endswith(".tmp")]
