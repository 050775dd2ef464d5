"""Training on a token store: the same parameters as the in-memory text, the ids never
copied, resuming without reading the text again, and the run's record of its store."""

import json
import os
import shutil

import numpy as np
import pytest

from fastrnn.lm import (Corpus, LanguageModel, ModelConfig, RunError, Trainer, TrainConfig,
                        load_run, resume, train)
from fastrnn.text import read_text
from fastrnn.token_store import StoreError

from texts import rhyme

SMALL = dict(embedding=8, hidden=12, dtype="float64", layers=2, dropout=0.2)
# Epochs end these runs: their schedule never depends on the speed of the machine.
FAST = dict(seq_len=8, batch_size=4, lr=1e-2, time_budget=None)



def model_for(corpus):
    return LanguageModel(corpus.vocab, corpus.tokenizer, ModelConfig(**SMALL), seed=3)


@pytest.fixture
def books(tmp_path):
    """Two text files in a directory (and one in a subdirectory)."""
    root = tmp_path / "books"
    (root / "more").mkdir(parents=True)
    paths = [root / "a.txt", root / "b.txt", root / "more" / "c.txt"]
    for seed, path in enumerate(paths):
        path.write_text(rhyme(40, seed), encoding="utf-8")
    return root, paths


@pytest.mark.parametrize("level, min_count", [("char", 1), ("word", 2)])
def test_training_on_a_store_gives_the_in_memory_parameters_bitwise(books, tmp_path, level,
                                                                     min_count):
    root, paths = books
    in_memory = Corpus.from_text(read_text(paths), level, min_count=min_count)
    stored = Corpus.from_files([root], level, min_count=min_count, cache_dir=tmp_path / "c")
    assert isinstance(stored.ids, np.memmap) and stored.ids.dtype == np.uint8
    assert stored.vocab.tokens == in_memory.vocab.tokens
    config = TrainConfig(epochs=2, **FAST)
    expected, got = model_for(in_memory), model_for(stored)
    train(expected, in_memory, config)
    trainer = Trainer(got, stored, config)
    # The streams are a view of the memory map, not a copy of the ids.
    assert np.shares_memory(trainer.train_streams.ids, stored.ids)
    trainer.run(progress=False)
    for name, value in expected.params.items():
        np.testing.assert_array_equal(got.params[name], value, err_msg=name)
    assert got.evaluate(stored.ids, 8, 4) == expected.evaluate(in_memory.ids, 8, 4)


def test_the_run_records_its_store_and_resumes_without_reading_the_text(books, tmp_path,
                                                                       monkeypatch):
    root, paths = books
    corpus = Corpus.from_files([root], "word")
    constant = dict(FAST, lr_schedule="constant")  # the same rates when a run is trained further
    straight = model_for(corpus)
    train(straight, corpus, TrainConfig(epochs=2, **constant))

    run_dir = str(tmp_path / "run")
    train(model_for(corpus), corpus, TrainConfig(epochs=1, **constant), run_dir)
    with open(os.path.join(run_dir, "config.json"), encoding="utf-8") as stream:
        text = json.load(stream)["text"]
    assert text["store"]["path"] == str(corpus.store.path)
    assert text["sha256"] == corpus.store.fingerprint and text["store"]["dtype"] == "|u1"
    assert text["sources"] == [str(p) for p in paths]  # sorted, recursively

    def no_reading(*args, **kwargs):
        raise AssertionError("the text was read again")
    monkeypatch.setattr("fastrnn.sources.read_chunks", no_reading)
    monkeypatch.setattr("fastrnn.token_store.read_chunks", no_reading)
    resume(run_dir, epochs=2, progress=False)
    resumed = load_run(run_dir, "latest").model
    for name, value in straight.params.items():
        np.testing.assert_array_equal(resumed.params[name], value, err_msg=name)


@pytest.fixture
def stored_run(books, tmp_path):
    """A run of one epoch on a directory's store (its own cache), and that corpus."""
    root, paths = books
    corpus = Corpus.from_files([root], "char", cache_dir=tmp_path / "cache")
    run_dir = str(tmp_path / "run")
    train(model_for(corpus), corpus, TrainConfig(epochs=1, **FAST), run_dir)
    return run_dir, corpus, paths


def test_a_changed_source_is_an_error_naming_the_file(stored_run):
    run_dir, corpus, paths = stored_run
    data = bytearray(paths[1].read_bytes())
    data[len(data) // 2] = ord("X") if data[len(data) // 2] != ord("X") else ord("Y")
    paths[1].write_bytes(bytes(data))  # same size
    with pytest.raises(StoreError, match=f"{paths[1]}: changed since the token store"):
        resume(run_dir, epochs=2, progress=False)


def test_the_full_check_finds_damaged_ids_and_the_store_is_rebuilt(stored_run):
    run_dir, corpus, paths = stored_run
    ids = corpus.store.path / "ids.bin"
    original = ids.read_bytes()
    damaged = bytearray(original)
    damaged[len(damaged) // 2] ^= 1
    ids.write_bytes(bytes(damaged))
    with pytest.raises(StoreError, match="ids.bin: its ids do not match their recorded hash"):
        corpus.store.check_sources(full=True)
    assert resume(run_dir, epochs=2, progress=False, full_check=True).epochs == 2
    assert ids.read_bytes() == original  # rebuilt in place (the same key)


def test_a_missing_store_is_rebuilt_with_the_same_key_and_verified(stored_run):
    run_dir, corpus, paths = stored_run
    path = corpus.store.path
    shutil.rmtree(path)
    resume(run_dir, epochs=2, progress=False)
    assert (path / "ids.bin").is_file()  # the same key: the same directory
    # The text changed while the store was gone: rebuilt from it, and refused.
    shutil.rmtree(path)
    paths[0].write_text(rhyme(40, seed=9), encoding="utf-8")
    with pytest.raises(RunError, match="the text differs from the one the run started with"):
        resume(run_dir, epochs=3, progress=False)


def test_a_run_recorded_before_stores_keeps_its_int64_check(stored_run):
    """Version 2 runs fingerprinted the int64 ids and recorded no store."""
    run_dir, corpus, paths = stored_run
    config_path = os.path.join(run_dir, "config.json")
    with open(config_path, encoding="utf-8") as stream:
        document = json.load(stream)
    del document["text"]["store"]
    document["format_version"] = 2
    document["text"]["sha256"] = corpus.ids_sha256(np.int64)
    with open(config_path, "w", encoding="utf-8") as stream:
        json.dump(document, stream)
    assert resume(run_dir, epochs=2, progress=False).epochs == 2
    document["text"]["sha256"] = "0" * 64
    with open(config_path, "w", encoding="utf-8") as stream:
        json.dump(document, stream)
    with pytest.raises(RunError, match="the text differs"):
        resume(run_dir, epochs=3, progress=False)


def test_the_int64_fingerprint_is_that_of_the_in_memory_ids(books):
    root, paths = books
    in_memory = Corpus.from_text(read_text(paths), "word")
    stored = Corpus.from_files([root], "word")
    assert stored.ids_sha256(np.int64) == in_memory.fingerprint
    assert stored.fingerprint == stored.store.fingerprint != in_memory.fingerprint
