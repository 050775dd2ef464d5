"""The ``fastrnn`` command end to end on a small generated text: train, generate, info, resume,
and its errors (usage errors exit 2, text and checkpoint errors exit 1 and change nothing)."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from fastrnn.cli import main

TINY = ["--hidden", "12", "--embedding", "8", "--seq-len", "8", "--batch-size", "4",
        "--lr", "0.01", "--quiet"]


def story(path, lines=80, seed=0):
    """Write a small word-level story; returns its path."""
    rng = np.random.default_rng(seed)
    words = "the old man saw a big red boat , and the sea was calm".split()
    text = "\n".join(" ".join(rng.choice(words, size=rng.integers(4, 9))).capitalize() + "."
                     for _ in range(lines))
    path.write_text(text + "\n", encoding="utf-8")
    return path


def read_all(directory):
    return {name: (directory / name).read_bytes() for name in sorted(os.listdir(directory))}


@pytest.fixture(scope="module")
def word_run(tmp_path_factory):
    """A word-level run trained for two epochs through the command line."""
    base = tmp_path_factory.mktemp("cli")
    text = story(base / "story.txt")
    run_dir = base / "run"
    status = main(["train", str(text), "--level", "word", "--epochs", "2", "--out", str(run_dir),
                   "--lr-schedule", "linear", "--warmup", "2", *TINY])
    assert status == 0
    return run_dir


def test_train_writes_the_run_directory(word_run):
    assert set(os.listdir(word_run)) == {
        "config.json", "vocab.json", "checkpoint_latest.npz", "checkpoint_best.npz",
        "metrics.jsonl", "curves.png", "samples.txt"}
    rows = (word_run / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2
    assert '"val_loss"' in rows[0] and '"val_accuracy"' in rows[0]


def test_generate_is_reproducible_with_a_seed_and_restores_line_breaks(word_run, capsys):
    assert main(["generate", str(word_run), "--seed", "3", "--length", "60"]) == 0
    first = capsys.readouterr().out
    assert main(["generate", str(word_run), "--seed", "3", "--length", "60"]) == 0
    assert capsys.readouterr().out == first
    assert main(["generate", str(word_run), "--seed", "4", "--length", "60"]) == 0
    assert capsys.readouterr().out != first
    assert "\n" in first.strip() and " ." not in first


def test_generate_greedy_from_a_start_text(word_run, capsys):
    assert main(["generate", str(word_run), "--start", "The old", "--greedy", "--length",
                 "10"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("The old")
    assert main(["generate", str(word_run), "--start", "The old", "--greedy", "--length",
                 "10", "--seed", "99"]) == 0
    assert capsys.readouterr().out == out


def test_unknown_start_word_is_an_error_with_suggestions(word_run, capsys):
    assert main(["generate", str(word_run), "--start", "The bot"]) == 1
    err = capsys.readouterr().err
    assert "fastrnn: error: start text: 'bot' is not in the model's vocabulary" in err
    assert "'boat'" in err


def test_info_reports_the_run(word_run, capsys):
    assert main(["info", str(word_run)]) == 0
    out = capsys.readouterr().out
    assert "story.txt" in out and "word level (words tokenizer)" in out
    assert "1 x LSTM 12 units" in out
    assert "best validation:  " in out and "nats per token" in out
    assert "training time:" in out and "parameters:" in out
    config = json.loads((word_run / "config.json").read_text())["training"]
    assert (f"schedule:         learning rate {config['lr']:g} (linear to 0.1 x over the last "
            "0.25, 2 warmup steps); validation every "
            f"{config['eval_every']} of training and at epoch ends, on <= "
            f"{config['val_tokens']:,} held-out tokens; latest checkpoint written at "
            f"validations and every {config['checkpoint_every']} of training\n") in out
    assert "non-finite steps: 0 skipped (no update; the run stops after 5 in a row)" in out
    assert "lr_schedule=linear, warmup=2" in out
    steps = int(re.search(r"\((\d+) steps in all\)", out)[1])
    assert f"lr decays until step {steps}" in out  # the run's 2 epochs


@pytest.mark.parametrize("settings, expected", [
    (dict(eval_every=500, checkpoint_every=90.0),
     "validation every 500 steps and at epoch ends, on <= 100,000 held-out tokens; latest "
     "checkpoint written at validations and every 90 s of training"),
    (dict(eval_every="epoch", checkpoint_every=None, val_tokens=None),
     "validation at epoch ends, on the tail 0.1 of the text; latest checkpoint written at "
     "validations")])
def test_info_states_the_schedule_in_words(settings, expected):
    from fastrnn.cli import _schedule
    from fastrnn.lm import TrainConfig
    assert _schedule(TrainConfig(**settings)) == (
        f"learning rate 0.005 (linear to 0.1 x over the last 0.25); {expected}")


def test_info_states_the_learning_rate_schedule():
    from fastrnn.cli import _schedule
    from fastrnn.lm import TrainConfig
    config = TrainConfig(lr_schedule="cosine", lr_floor=0.1, lr_decay_share=0.25, warmup=100)
    assert _schedule(config).startswith(
        "learning rate 0.005 (cosine to 0.1 x over the last 0.25, 100 warmup steps); ")


def test_resume_trains_further_and_refuses_other_settings(word_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name, data in read_all(word_run).items():
        (run_dir / name).write_bytes(data)
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--resume", "--out", str(run_dir), "--hidden", "30"])
    assert exit_info.value.code == 2
    assert "only --epochs, --time-budget, --eval-every, --checkpoint-every and " \
           "--max-nonfinite may be given (got --hidden)" in capsys.readouterr().err
    assert main(["train", "--resume", "--out", str(run_dir), "--epochs", "3", "--quiet"]) == 0
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 3


def test_resume_with_a_truncated_checkpoint_fails_and_changes_nothing(word_run, tmp_path,
                                                                      capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name, data in read_all(word_run).items():
        (run_dir / name).write_bytes(data)
    latest = run_dir / "checkpoint_latest.npz"
    latest.write_bytes(latest.read_bytes()[:1000])
    before = read_all(run_dir)
    assert main(["train", "--resume", "--out", str(run_dir), "--epochs", "4"]) == 1
    assert "checkpoint_latest.npz: not a readable checkpoint" in capsys.readouterr().err
    assert read_all(run_dir) == before


def test_generate_with_a_corrupted_checkpoint_is_a_clear_error(word_run, tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name, data in read_all(word_run).items():
        (run_dir / name).write_bytes(data)
    best = run_dir / "checkpoint_best.npz"
    data = bytearray(best.read_bytes())
    data[len(data) // 2] ^= 0x55
    best.write_bytes(bytes(data))
    assert main(["generate", str(run_dir)]) == 1
    assert "checkpoint_best.npz" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["train", "--layers", "0"], "--layers: expected an integer >= 1"),
    (["train", "--level", "byte"], "invalid choice: 'byte'"),
    (["train", "--dropout", "1.5"], "--dropout: expected a probability"),
    (["train", "--resume"], "--resume needs --out RUN_DIR"),
    (["generate"], "the following arguments are required: RUN_DIR"),
    (["generate", "run", "--temperature", "-1"], "--temperature: expected a number >= 0"),
    (["fly"], "invalid choice: 'fly'"),
])
def test_bad_arguments_print_usage_and_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: fastrnn") and message in err


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().err


def test_invalid_utf8_names_file_and_offset(tmp_path, capsys):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"hello world\n" * 10 + b"\xc3\x28 more")
    assert main(["train", str(bad), "--out", str(tmp_path / "run"), *TINY]) == 1
    err = capsys.readouterr().err
    assert f"{bad}: not valid utf-8 at byte offset 120" in err
    assert not (tmp_path / "run").exists()


def test_too_short_text_says_how_many_tokens_are_needed(tmp_path, capsys):
    short = tmp_path / "short.txt"
    short.write_text("only a few characters\n")
    assert main(["train", str(short), "--out", str(tmp_path / "run"), *TINY]) == 1
    err = capsys.readouterr().err
    assert "text too short: 22 char tokens, need at least" in err
    assert not (tmp_path / "run").exists()


def test_generate_from_a_missing_run_directory(tmp_path, capsys):
    assert main(["generate", str(tmp_path / "nowhere")]) == 1
    assert "no such run directory" in capsys.readouterr().err


def test_python_dash_m_runs_the_command(tmp_path):
    result = subprocess.run([sys.executable, "-m", "fastrnn", "train", "--epochs", "0"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 2
    assert result.stderr.startswith("usage: fastrnn train")


def test_generate_into_a_closed_pipe_stops_quietly(word_run):
    reader = subprocess.Popen([sys.executable, "-m", "fastrnn", "generate", str(word_run),
                               "--length", "200000"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    assert len(reader.stdout.read(20)) == 20
    reader.stdout.close()  # like `| head -c 20`
    assert reader.wait(timeout=120) == 0
    assert reader.stderr.read() == b""


def test_version(capsys):
    import fastrnn

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"fastrnn {fastrnn.__version__}\n"


@pytest.mark.parametrize("argv, message", [
    (["train", "--hidden", "abc"], "--hidden: expected an integer >= 1, got abc"),
    (["train", "--hidden", "2.5"], "--hidden: expected an integer >= 1, got 2.5"),
    (["train", "--lr", "0"], "--lr: expected a learning rate > 0, got 0"),
    (["train", "--val-fraction", "0.7"],
     "--val-fraction: expected a fraction in (0, 0.5], got 0.7"),
    (["train", "--time-budget", "nan"], "--time-budget: expected a number of seconds > 0"),
    (["train", "--seed", "-1"], "--seed: expected an integer >= 0, got -1"),
    (["train", "--log-every", "0"], "--log-every: expected a number of seconds > 0, got 0"),
    (["train", "--recompute", "0"], "--recompute: expected 'off', 'on', 'auto' or a number of "
     "steps >= 1 between stored states, got 0"),
    (["train", "--recompute", "sqrt"], "--recompute: expected 'off', 'on', 'auto' or a number "
     "of steps >= 1 between stored states, got sqrt"),
    (["generate", "run", "--top-k", "-3"], "--top-k: expected an integer >= 0 (0 = all), got -3"),
])
def test_options_are_checked_by_the_configurations_own_rules(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


def test_without_a_terminal_training_prints_progress_lines(tmp_path, capsys):
    text = story(tmp_path / "story.txt")
    argv = ["train", str(text), "--epochs", "1", "--out", str(tmp_path / "run"),
            *[option for option in TINY if option != "--quiet"], "--log-every", "1e-9"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "step 1/" in err and "tok/s" in err and "loss " in err
