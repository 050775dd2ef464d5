"""The Python API: the stacked model's gradients, training with truncated BPTT, exact resume,
checkpoints, and generation in the compiled kernel."""

import csv
import importlib.util
import os
import pathlib
import signal

import numpy as np
import pytest

from fastrnn.checkpoint import CheckpointError, atomic_write, load_checkpoint, save_checkpoint
from fastrnn.dropout import CounterDropout
from fastrnn.lm import (LATEST, Corpus, LanguageModel, ModelConfig, RunError, Trainer, TrainConfig,
                        load_run, resume, resume_trainer, train)
from fastrnn.lm.evaluation import EVAL_MIN_WINDOW, evaluate_streams
from fastrnn.lm.run_dir import RunDirectory
from fastrnn.text import TextError

from texts import rhyme

SMALL = dict(embedding=8, hidden=12)
# Epochs end these runs: their schedule never depends on the speed of the machine.
FAST = dict(seq_len=8, batch_size=4, lr=1e-2, time_budget=None)



@pytest.fixture(scope="module")
def corpus():
    return Corpus.from_text(rhyme())


def model_for(corpus, dtype="float64", **options):
    return LanguageModel(corpus.vocab, corpus.tokenizer,
                         ModelConfig(dtype=dtype, **{**SMALL, **options}), seed=3)


def params_of(model):
    return {name: value.copy() for name, value in model.params.items()}


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_gradient_of_the_stacked_model_with_dropout_matches_finite_differences(corpus, cell):
    model = model_for(corpus, cell=cell, layers=2, dropout=0.3)
    x = corpus.ids[:12].reshape(2, 6)
    targets = corpus.ids[1:13].reshape(2, 6)
    dropout = CounterDropout(0.3, seed=5)
    start_h, start_c = (np.random.default_rng(1).normal(size=(2, 2, 12)) for _ in range(2))

    def mean_loss():
        h, c = start_h.copy(), start_c.copy()
        # The same step and streams at every call: the same dropout masks.
        total, _ = model.loss(model.forward(x, h, c, dropout, step=7, first_stream=3), targets)
        return total / targets.size

    mean_loss()
    model.backward(model.loss_gradient())
    picks = np.random.default_rng(2)
    for name, value in model.params.items():
        analytic = model.grads[name]
        for flat in picks.choice(value.size, size=3, replace=False):
            index = np.unravel_index(flat, value.shape)
            saved = value[index]
            value[index] = saved + 1e-6
            up = mean_loss()
            value[index] = saved - 1e-6
            down = mean_loss()
            value[index] = saved
            numeric = (up - down) / 2e-6
            assert abs(numeric - analytic[index]) <= 1e-6 + 1e-5 * abs(numeric), name


def test_dropout_masks_follow_the_global_stream_and_the_step(corpus):
    """A share of the streams, with its first stream's index, gets the rows the whole
    batch gets (what a data-parallel rank relies on); another step, other masks."""
    model = model_for(corpus, layers=3, dropout=0.5, dtype="float64")
    dropout = CounterDropout(0.5, seed=1)
    x = corpus.ids[:40].reshape(4, 10)

    def scores(rows, step, first_stream):
        h, c = model.zero_state(len(x[rows]))
        return model.forward(x[rows], h, c, dropout, step, first_stream)

    whole = scores(slice(0, 4), step=3, first_stream=0)
    np.testing.assert_array_equal(scores(slice(2, 4), step=3, first_stream=2), whole[2:])
    assert not np.array_equal(scores(slice(2, 4), step=3, first_stream=0), whole[2:])
    assert not np.array_equal(scores(slice(0, 4), step=4, first_stream=0), whole)
    h, c = model.zero_state(4)
    assert not np.array_equal(model.forward(x, h, c), whole)  # no dropout without one


def test_forward_carries_the_state_from_window_to_window(corpus):
    model = model_for(corpus, layers=2)
    x = corpus.ids[:20].reshape(2, 10)
    h, c = model.zero_state(2)
    whole = model.forward(x, h, c)
    h2, c2 = model.zero_state(2)
    halves = np.concatenate([model.forward(x[:, :4], h2, c2), model.forward(x[:, 4:], h2, c2)],
                            axis=1)
    np.testing.assert_allclose(halves, whole, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(h2, h, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c2, c, rtol=1e-12, atol=1e-14)


def test_global_norm_clipping(corpus):
    model = model_for(corpus)
    x = corpus.ids[:16].reshape(2, 8)
    h, c = model.zero_state(2)
    model.loss(model.forward(x, h, c), corpus.ids[1:17].reshape(2, 8))
    model.backward(model.loss_gradient())
    before = {k: g.copy() for k, g in model.grads.items()}
    norm = model.clip_gradients(0.0)
    assert norm > 0.01
    limit = norm / 4
    assert model.clip_gradients(limit) == pytest.approx(norm)
    after = np.sqrt(sum(np.vdot(g, g) for g in model.grads.values()))
    assert after == pytest.approx(limit, rel=1e-12)
    for k, g in model.grads.items():
        np.testing.assert_allclose(g, before[k] / 4, rtol=1e-12)


def test_building_a_model_leaves_the_global_random_state_alone(corpus):
    np.random.seed(7)
    expected = np.random.random()
    np.random.seed(7)
    first = model_for(corpus, layers=2)
    assert np.random.random() == expected
    again = model_for(corpus, layers=2)
    for name in first.params:
        np.testing.assert_array_equal(first.params[name], again.params[name])


# --------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("layers", [1, 2])
def test_greedy_generation_is_the_argmax_of_the_models_forward(corpus, layers):
    model = model_for(corpus, layers=layers)
    prime = corpus.ids[:5]
    out = model.generate_ids(prime, 15, temperature=0.0)
    sequence = np.concatenate([prime, out])
    h, c = model.zero_state(1)
    scores = model.forward(sequence[None, :-1], h, c)
    np.testing.assert_array_equal(scores[0, len(prime) - 1:].argmax(axis=-1), out)


def test_generation_is_reproducible_and_does_not_depend_on_chunks(corpus):
    model = model_for(corpus, dtype="float32")
    one = model.generate_text("the cat", 80, temperature=1.0, top_k=5, seed=11, chunk=80)
    pieces = []
    chunked = model.generate_text("the cat", 80, temperature=1.0, top_k=5, seed=11, chunk=7,
                                  write=pieces.append)
    assert one == chunked == "".join(pieces)
    assert one.startswith("the cat") and len(one) == len("the cat") + 80
    assert model.generate_text("the cat", 80, temperature=1.0, seed=12) != one


def test_bad_generation_arguments_are_refused_before_the_kernel(corpus):
    model = model_for(corpus)
    V = len(corpus.vocab)
    with pytest.raises(ValueError, match=r"prime: expected token ids in \[0, "):
        model.generate_ids([V], 3)
    with pytest.raises(ValueError, match="prime: expected a non-empty"):
        model.generate_ids([], 3)
    with pytest.raises(ValueError, match="temperature: expected"):
        model.generate_ids([0], 3, temperature=-1.0)
    with pytest.raises(ValueError, match="top_k: expected"):
        model.generate_ids([0], 3, top_k=-2)
    with pytest.raises(ValueError, match="state h: expected"):
        model.generate_ids([0], 3, state=(np.zeros((1, 1, 5)), np.zeros((1, 1, 12))))
    with pytest.raises(TextError, match="'q' is not in the model's vocabulary"):
        model.generate_text("q", 3)


# --------------------------------------------------------------------------------------------
# Training, checkpoints, resume
# --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, corpus):
    run_dir = str(tmp_path_factory.mktemp("run") / "run")
    model = model_for(corpus, dtype="float32")
    rows = []
    result = train(model, corpus, TrainConfig(epochs=3, **FAST), run_dir,
                   callback=lambda trainer, row: rows.append(row))
    return run_dir, model, result, rows, corpus


def test_training_writes_every_run_file_and_learns(finished_run):
    run_dir, model, result, rows, _ = finished_run
    assert sorted(os.listdir(run_dir)) == sorted([
        "config.json", "vocab.json", "checkpoint_latest.npz", "checkpoint_best.npz",
        "metrics.jsonl", "curves.png", "samples.txt"])
    assert result.stopped == "epochs" and result.epochs == 3
    assert [row["epoch"] for row in rows] == [1.0, 2.0, 3.0]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["val_loss"] < rows[0]["val_loss"] < np.log(len(model.vocab))
    assert result.best_val_loss == min(row["val_loss"] for row in rows)
    with open(os.path.join(run_dir, "curves.png"), "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(os.path.join(run_dir, "samples.txt"), encoding="utf-8") as samples:
        assert samples.read().count("=== epoch") == 3


def test_curves_are_redrawn_at_most_every_curves_every_and_complete_at_the_end(
        corpus, tmp_path, monkeypatch):
    drawn = []  # the number of metrics rows of each drawing
    monkeypatch.setattr(RunDirectory, "write_curves",
                        lambda directory, history: drawn.append(len(history)))
    trainer = Trainer(model_for(corpus, dtype="float32"), corpus,
                      TrainConfig(epochs=3, **FAST), str(tmp_path / "run"))
    trainer.run(progress=False)
    # Three validations within a minute: the first drawing, then one at the end.
    assert drawn == [1, 3]
    drawn.clear()
    trainer.CURVES_EVERY = 0.0
    trainer.run(progress=False, epochs=5)
    assert drawn == [4, 5]  # every validation draws: nothing is left behind


def test_validation_windows_do_not_change_the_score():
    # A held-out tail of several training windows, read in one window by validation.
    long_corpus = Corpus.from_text(rhyme() * 30)
    model = model_for(long_corpus)  # float64: the sums differ only in rounding
    trainer = Trainer(model, long_corpus, TrainConfig(epochs=1, val_tokens=None, **FAST))
    assert trainer.eval_window == max(FAST["seq_len"], EVAL_MIN_WINDOW)
    blocks = trainer.validation
    assert blocks.shape[1] > FAST["seq_len"] + 1  # several training windows per block
    np.testing.assert_allclose(trainer.evaluate()["loss"],
                               evaluate_streams(model, blocks, FAST["seq_len"])["loss"],
                               rtol=1e-12)


def test_a_loaded_run_generates_what_the_trained_model_does(finished_run):
    run_dir, model, _, _, _ = finished_run
    run = load_run(run_dir, "latest")
    for name, value in model.params.items():
        np.testing.assert_array_equal(run.model.params[name], value)
    assert run.model.generate_text("the", 50, seed=4) == model.generate_text("the", 50, seed=4)


def test_training_into_an_existing_run_is_refused(finished_run, corpus):
    run_dir = finished_run[0]
    with pytest.raises(RunError, match="already holds a run"):
        train(model_for(corpus), corpus, TrainConfig(epochs=1, **FAST), run_dir)


def test_resuming_a_run_without_checkpoint_says_so(finished_run, tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("config.json", "vocab.json"):
        (run_dir / name).write_bytes(open(os.path.join(finished_run[0], name), "rb").read())
    with pytest.raises(RunError, match="no checkpoint to resume from"):
        resume(str(run_dir), corpus=finished_run[4])


def test_resuming_a_finished_run_says_what_to_raise(finished_run):
    with pytest.raises(RunError, match=r"nothing to do.*trained 3 epochs \(limit 3\).*--epochs"):
        resume(finished_run[0], corpus=finished_run[4])


def test_resumed_run_ends_bitwise_equal_to_an_uninterrupted_one(tmp_path):
    corpus = Corpus.from_text(rhyme(seed=1))
    # A constant rate: a decay planned over 1 epoch is not the one planned over 2 (resuming
    # with a schedule mid-run is tested in test_schedule.py).
    constant = dict(FAST, lr_schedule="constant")
    config = TrainConfig(epochs=2, **constant)
    options = dict(layers=2, dropout=0.2)

    straight = model_for(corpus, **options)
    train(straight, corpus, config, str(tmp_path / "straight"))

    first = model_for(corpus, **options)
    train(first, corpus, TrainConfig(epochs=1, **constant), str(tmp_path / "split"))
    result = resume(str(tmp_path / "split"), epochs=2, corpus=corpus)
    assert result.epochs == 2
    resumed = load_run(str(tmp_path / "split"), "latest").model
    for name, value in straight.params.items():
        np.testing.assert_array_equal(resumed.params[name], value, err_msg=name)


def test_ctrl_c_mid_epoch_writes_a_checkpoint_and_resume_is_exact(tmp_path, monkeypatch):
    corpus = Corpus.from_text(rhyme(seed=2))
    config = TrainConfig(epochs=1, **FAST)
    straight = model_for(corpus, layers=2, dropout=0.1)
    train(straight, corpus, config, str(tmp_path / "straight"))

    original = Trainer._train_window
    calls = []

    def interrupted_window(self, window):
        calls.append(window)
        if len(calls) == 5:  # as if the user pressed Ctrl-C during the fifth step
            signal.raise_signal(signal.SIGINT)
        return original(self, window)

    monkeypatch.setattr(Trainer, "_train_window", interrupted_window)
    # The handler to be restored is whatever the process had: Python's default, or
    # SIG_IGN in a process started in the background by a non-interactive shell.
    handler_before = signal.getsignal(signal.SIGINT)
    result = train(model_for(corpus, layers=2, dropout=0.1), corpus, config,
                   str(tmp_path / "split"))
    monkeypatch.setattr(Trainer, "_train_window", original)
    assert result.stopped == "interrupted" and result.steps == 5
    assert signal.getsignal(signal.SIGINT) is handler_before

    trainer = resume_trainer(str(tmp_path / "split"), corpus)
    assert (trainer.epoch, trainer.step_in_epoch) == (0, 5)
    trainer.run()
    for name, value in straight.params.items():
        np.testing.assert_array_equal(trainer.model.params[name], value, err_msg=name)


def test_a_time_budget_stops_training_and_still_validates(corpus):
    trainer = Trainer(model_for(corpus, dtype="float32"), corpus,
                      TrainConfig(**{**FAST, "time_budget": 0.05}))
    result = trainer.run()
    assert result.stopped == "time" and result.steps >= 1
    assert result.last is not None and np.isfinite(result.last["val_loss"])


def damaged_copies(run_dir, tmp_path):
    """(name, path) of a truncated and a corrupted copy of the run's latest checkpoint."""
    with open(os.path.join(run_dir, LATEST), "rb") as stream:
        data = stream.read()
    truncated, corrupted = tmp_path / "truncated.npz", tmp_path / "corrupted.npz"
    truncated.write_bytes(data[:len(data) // 2])
    flipped = bytearray(data)
    flipped[len(data) // 3] ^= 0xFF
    corrupted.write_bytes(bytes(flipped))
    return [("truncated", truncated), ("corrupted", corrupted)]


def test_damaged_checkpoints_give_a_clear_error(finished_run, tmp_path):
    for _, path in damaged_copies(finished_run[0], tmp_path):
        with pytest.raises(CheckpointError, match=rf"{path}: .*corrupted"):
            load_checkpoint(path)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "missing.npz")


def test_resume_from_a_damaged_checkpoint_changes_no_file(finished_run, tmp_path):
    source_dir = finished_run[0]
    for kind, damaged in damaged_copies(source_dir, tmp_path):
        run_dir = tmp_path / kind
        run_dir.mkdir()
        for name in os.listdir(source_dir):
            (run_dir / name).write_bytes(open(os.path.join(source_dir, name), "rb").read())
        (run_dir / LATEST).write_bytes(damaged.read_bytes())
        before = {name: (run_dir / name).read_bytes() for name in os.listdir(run_dir)}
        with pytest.raises(CheckpointError, match=LATEST):
            resume(str(run_dir), epochs=5, corpus=finished_run[4])
        assert {name: (run_dir / name).read_bytes() for name in os.listdir(run_dir)} == before


def test_a_failed_atomic_write_leaves_the_old_file(tmp_path):
    path = tmp_path / "checkpoint.npz"
    save_checkpoint(path, {"w": np.arange(3.0)}, {"step": 1})
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_write(path) as stream:
            stream.write(b"half a file")
            raise RuntimeError("disk full")
    arrays, meta = load_checkpoint(path)
    np.testing.assert_array_equal(arrays["w"], np.arange(3.0))
    assert meta["step"] == 1
    assert os.listdir(tmp_path) == ["checkpoint.npz"]


def test_a_checkpoint_of_another_model_is_refused(finished_run, corpus):
    run_dir = finished_run[0]
    arrays, _ = load_checkpoint(os.path.join(run_dir, LATEST))
    bigger = LanguageModel(corpus.vocab, corpus.tokenizer, ModelConfig(embedding=8, hidden=20))
    with pytest.raises(CheckpointError, match="parameter 'layer0_wx' is float32 .*needs"):
        bigger.load_state_arrays(arrays)


def test_quality_per_minute_benchmark_runs_on_a_small_budget(tmp_path, capsys):
    path = pathlib.Path(__file__).resolve().parent.parent / "asv_bench" / "quality_per_minute.py"
    spec = importlib.util.spec_from_file_location("quality_per_minute", path)
    benchmark = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(benchmark)
    table, png = tmp_path / "curve.csv", tmp_path / "curve.png"
    assert benchmark.main(["--seconds", "0.6", "--every", "0.3", "--max-chars", "30000",
                           "--csv", str(table), "--png", str(png)]) == 0
    with open(table, newline="") as stream:
        rows = list(csv.DictReader(stream))
    seconds = [float(row["seconds"]) for row in rows]
    # At least the untrained row and one after training; with a cold compile cache
    # the first step alone (it compiles the kernels) can outlast the whole budget.
    assert len(rows) >= 2 and seconds[0] == 0.0 and seconds == sorted(seconds)
    assert seconds[-1] >= 0.6
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])
    assert png.read_bytes()[:4] == b"\x89PNG"
    assert "validation loss" in capsys.readouterr().out
