"""The command line with token stores: training on directories and globs, ``prepare``,
``stores``, ``info``'s store line, ``eval``, resuming without the text, and the errors
a user meets on the way, in their own words."""

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fastrnn.cli import main
from fastrnn.lm import Corpus, load_run
from fastrnn.text import read_text

TINY = ["--hidden", "12", "--embedding", "8", "--seq-len", "8", "--batch-size", "4",
        "--lr", "0.01"]
SRC = Path(__file__).resolve().parent.parent / "src"


def story(path, lines=80, seed=0, words="the old man saw a big red boat , and the sea was calm"):
    rng = np.random.default_rng(seed)
    words = words.split()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(" ".join(rng.choice(words, size=rng.integers(4, 9))) + "."
                              for _ in range(lines)) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A cache directory of the test's own, so that listings hold only its stores."""
    path = tmp_path / "cache"
    monkeypatch.setenv("FASTRNN_CACHE_DIR", str(path))
    return path


@pytest.fixture
def library(tmp_path):
    """A folder of books: two files at the top, one in a subfolder, and a hidden file."""
    root = tmp_path / "library"
    books = [story(root / "a.txt", seed=1), story(root / "b.txt", seed=2),
             story(root / "shelf" / "c.txt", seed=3)]
    (root / ".notes").write_text("hidden, not read")
    return root, books


def store_path(output):
    return re.search(r"token store (\S+):", output).group(1)


def test_prepare_then_train_on_a_directory_reuses_the_store(library, cache, tmp_path, capsys,
                                                            monkeypatch):
    root, books = library
    assert main(["prepare", str(root), "--level", "word"]) == 0
    out = capsys.readouterr().out
    prepared = store_path(out)
    assert Path(prepared).parent == cache
    assert "on disk" in out and "from 3 files" in out and "word tokens" in out

    monkeypatch.setattr("fastrnn.token_store._build", lambda *a: pytest.fail("prepared again"))
    run_dir = tmp_path / "run"
    assert main(["train", str(root), "--level", "word", "--epochs", "1", "--out", str(run_dir),
                 *TINY]) == 0
    out = capsys.readouterr().out
    assert store_path(out) == prepared
    text = json.loads((run_dir / "config.json").read_text())["text"]
    assert text["sources"] == [str(b) for b in books] and text["store"]["path"] == prepared

    assert main(["info", str(run_dir)]) == 0
    line = next(l for l in capsys.readouterr().out.splitlines() if l.startswith("token store:"))
    assert prepared in line and "on disk" in line and line.endswith("; ok")


def test_a_glob_and_a_quiet_prepare(library, cache, capsys):
    root, books = library
    assert main(["prepare", str(root / "**" / "*.txt"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("token store ") and "from 3 files" in out and out.count("\n") == 1


def test_stores_lists_and_removes(library, cache, capsys):
    root, books = library
    assert main(["prepare", str(books[0]), "--quiet"]) == 0
    first = store_path(capsys.readouterr().out)
    assert main(["prepare", str(books[1]), str(root / "shelf"), "--level", "word",
                 "--quiet"]) == 0
    second = store_path(capsys.readouterr().out)
    books[0].write_text("changed\n" * 10)  # the first store goes stale

    assert main(["stores"]) == 0
    lines = capsys.readouterr().out.splitlines()
    row = {path: line for line in lines for path in (first, second) if line.startswith(path)}
    assert "  stale  " in row[first] and str(books[0]) in row[first]
    assert "  ok  " in row[second] and "word tokens" in row[second]
    assert row[second].endswith(f"{books[1]}, {books[2]}")
    assert lines[-1].startswith(f"2 token stores in {cache}")

    key = Path(first).name
    size = sum(f.stat().st_size for f in Path(first).iterdir())
    assert main(["stores", "--remove", key]) == 0
    assert capsys.readouterr().out.startswith(f"removed {key}: {size:,} bytes (")
    assert not Path(first).exists()
    assert main(["stores", "--remove", key]) == 1
    assert f"fastrnn: error: {key}: no such token store" in capsys.readouterr().err


@pytest.fixture
def word_run(tmp_path_factory):
    """A word-level run (rare words become <unk>) trained on one story."""
    base = tmp_path_factory.mktemp("eval")
    text = story(base / "story.txt", lines=120)
    with open(text, "a", encoding="utf-8") as stream:
        stream.write("the aardvark .\n")  # seen once: <unk>
    run_dir = base / "run"
    assert main(["train", str(text), "--level", "word", "--min-count", "3", "--epochs", "1",
                 "--out", str(run_dir), *TINY, "--quiet"]) == 0
    return run_dir, text


def test_eval_reports_the_models_scores_on_another_text(word_run, tmp_path, capsys):
    run_dir, _ = word_run
    other = story(tmp_path / "other.txt", lines=50, seed=7,
                  words="the old man saw a big red boat , and a zebra")
    assert main(["eval", str(run_dir), str(other), "--quiet"]) == 0
    out = capsys.readouterr().out
    loss, perplexity, accuracy, tokens = re.fullmatch(
        r"loss (\S+) nats per token, perplexity (\S+), accuracy (\S+) \((\S+) tokens "
        r"predicted\)\n", out).groups()
    run = load_run(str(run_dir))
    corpus = Corpus.from_text(read_text([other]), "word", min_count=3, vocab=run.model.vocab)
    expected = run.model.evaluate(corpus.ids, 8, 4)  # in memory, "zebra" as <unk>
    assert float(loss) == pytest.approx(expected["loss"], abs=1e-4)
    assert float(perplexity) == pytest.approx(expected["perplexity"], abs=0.01)
    assert float(accuracy) == pytest.approx(expected["accuracy"], abs=1e-4)
    assert int(tokens.replace(",", "")) == expected["tokens"]
    assert main(["stores"]) == 0
    assert f"tokens (a model's vocabulary, for eval); {other}" in capsys.readouterr().out


def test_eval_of_a_token_the_vocabulary_lacks_without_unk(tmp_path, capsys):
    text = story(tmp_path / "story.txt")
    run_dir = tmp_path / "run"
    assert main(["train", str(text), "--epochs", "1", "--out", str(run_dir), *TINY,
                 "--quiet"]) == 0
    other = tmp_path / "other.txt"
    other.write_text("the old man saw a qq boat\n" * 20)
    assert main(["eval", str(run_dir), str(other)]) == 1
    assert (f"fastrnn: error: {other}: the token 'q' is not in the model's vocabulary"
            in capsys.readouterr().err)


def test_resume_after_a_source_changed_names_the_file(tmp_path, capsys):
    text = story(tmp_path / "story.txt")
    run_dir = tmp_path / "run"
    assert main(["train", str(text), "--epochs", "1", "--out", str(run_dir), *TINY,
                 "--quiet"]) == 0
    assert main(["train", "--resume", "--out", str(run_dir), "--epochs", "2", "--full-check",
                 "--quiet"]) == 0
    with open(text, "a") as stream:
        stream.write("one more line\n")
    assert main(["train", "--resume", "--out", str(run_dir), "--epochs", "3"]) == 1
    err = capsys.readouterr().err
    assert f"fastrnn: error: {text}: changed since the token store" in err


# --------------------------------------------------------------------------------------------
# Errors in the user's words
# --------------------------------------------------------------------------------------------

def test_an_empty_file_says_so(tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    assert main(["train", str(empty), "--out", str(tmp_path / "run"), *TINY]) == 1
    err = capsys.readouterr().err
    assert f"fastrnn: error: {empty}: no text to train on (the file is empty)" in err
    assert "voc_dim" not in err and not (tmp_path / "run").exists()


def test_out_naming_a_file_says_it_is_not_a_run_directory(tmp_path, capsys):
    text = story(tmp_path / "story.txt")
    for resume in ([], ["--resume"]):
        argv = ["train", *([] if resume else [str(text)]), *resume, "--out", str(text), *TINY]
        assert main(argv) == 1
        err = capsys.readouterr().err
        assert f"fastrnn: error: --out: {text} exists and is not a run directory" in err
        assert "Errno" not in err


def test_a_directory_with_no_text(tmp_path, capsys):
    folder = tmp_path / "pictures"
    folder.mkdir()
    (folder / "cat.jpg").write_bytes(b"\xff\xd8\xff\xe0\0\x10JFIF")
    assert main(["train", str(folder), "--out", str(tmp_path / "run"), *TINY]) == 1
    err = capsys.readouterr().err
    assert f"fastrnn: error: {folder}: no text file in the directory (1 not text: " in err
    assert "cat.jpg: a NUL byte at byte offset 4" in err


def test_a_binary_file_stops_or_is_skipped_with_a_warning(tmp_path, capsys):
    text = story(tmp_path / "story.txt")
    binary = tmp_path / "data.bin"
    binary.write_bytes(b"looks like text " * 100 + b"\0\1\2")
    run_dir = tmp_path / "run"
    assert main(["train", str(text), str(binary), "--out", str(run_dir), *TINY]) == 1
    assert (f"fastrnn: error: {binary}: not a text file, a NUL byte at byte offset 1600"
            in capsys.readouterr().err)
    assert not run_dir.exists()
    assert main(["train", str(text), str(binary), "--on-bad-file", "skip", "--epochs", "1",
                 "--out", str(run_dir), *TINY, "--quiet"]) == 0
    assert (f"fastrnn: warning: skipped: {binary}: not a text file, a NUL byte at byte "
            "offset 1600\n") in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["prepare"], "the following arguments are required: PATH"),
    (["prepare", "x", "--max-vocab", "1"], "--max-vocab: expected an integer >= 2"),
    (["train", "x", "--max-vocab", "100"], "--max-vocab goes with --level word"),
    (["prepare", "x", "--on-bad-file", "ignore"], "invalid choice: 'ignore'"),
    (["eval", "run"], "the following arguments are required: PATH"),
    (["stores", "--remove"], "expected one argument"),
    (["train", "x", "--full-check"], "--full-check goes with --resume"),
    (["train", "--resume", "--out", "run", "--max-vocab", "10"],
     "may be given (got --max-vocab)"),
])
def test_usage_errors_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: fastrnn") and message in err


@pytest.mark.parametrize("command", ["prepare", "stores", "eval", "train"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: fastrnn {command}") and len(out) > 400


# --------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------

def peak_rss_anon_mb(argv, cwd):
    """Run ``python -m fastrnn argv`` and sample its RssAnon (anonymous memory, not the
    mapped pages of files such as the token store) every 5 ms: the peak, in MB."""
    process = subprocess.Popen([sys.executable, "-m", "fastrnn", *argv], cwd=cwd,
                               env=dict(os.environ, PYTHONPATH=str(SRC)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0

    def sample():
        nonlocal peak
        while process.poll() is None:
            try:
                with open(f"/proc/{process.pid}/status") as status:
                    for line in status:
                        if line.startswith("RssAnon:"):
                            peak = max(peak, int(line.split()[1]))
            except OSError:
                return
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    out, err = process.communicate(timeout=600)
    sampler.join()
    assert process.returncode == 0, err.decode()
    return peak / 1024


def test_training_memory_does_not_grow_with_the_text(tmp_path):
    """Peak anonymous memory of `fastrnn train` on a 30 MB text against a 1 MB one:
    the ids of 30 MB as int64 alone would add 232 MB (the text as a list of
    characters, as before token stores, 800 MB); both runs prepare their store with
    the same chunks, then train a tiny model for 2 s on its memory map."""
    piece = "".join(f"line {i}: the quick brown fox jumps over the lazy dog.\n"
                    for i in range(2000)).encode()
    for name, megabytes in (("small.txt", 1), ("big.txt", 30)):
        with open(tmp_path / name, "wb") as stream:
            for _ in range(megabytes * 10**6 // len(piece) + 1):
                stream.write(piece)
    options = ["--time-budget", "2", "--val-fraction", "0.002", "--hidden", "8",
               "--embedding", "4", "--seq-len", "16", "--batch-size", "8", "--quiet"]
    small, big = (peak_rss_anon_mb(["train", name, "--out", f"run-{name}", *options], tmp_path)
                  for name in ("small.txt", "big.txt"))
    assert big - small < 80, f"peak RssAnon {small:.0f} MB on 1 MB, {big:.0f} MB on 30 MB"
