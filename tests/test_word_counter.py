"""The bounded word counter of ``prepare(..., max_vocab=N)``: Misra-Gries' guarantee
against exact counts (``collections.Counter`` is the reference), the vocabulary it
gives, its determinism, and its memory, which does not grow with the distinct words."""

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fastrnn.kernels.tokens import FrequentWords
from fastrnn.text import UNKNOWN, Vocabulary, get_tokenizer, read_text
from fastrnn.token_store import META, _code_points, prepare

from test_token_store import random_words_table_script

SRC = Path(__file__).resolve().parent.parent / "src"
SPLIT = get_tokenizer("word").split


def zipf_text(n_words, n_distinct, seed, exponent=1.3):
    """Lines of words drawn from a Zipf law over ``n_distinct`` made-up words."""
    rng = np.random.default_rng(seed)
    vocabulary = [f"w{k}x{rng.integers(1000)}" for k in range(n_distinct)]
    ranks = rng.zipf(exponent, 3 * n_words)
    ranks = ranks[ranks <= n_distinct][:n_words] - 1
    words = [vocabulary[r] for r in ranks]
    return "\n".join(" ".join(words[i:i + 12]) for i in range(0, len(words), 12)) + "\n"


def counted(text, capacity, piece):
    """A FrequentWords table fed ``text`` in pieces of about ``piece`` characters, cut
    at spaces as prepare cuts its chunks."""
    table, start = FrequentWords(capacity), 0
    while start < len(text):
        end = text.rfind(" ", start, start + piece) + 1 if start + piece < len(text) else 0
        end = end if end > start else len(text)
        table.add(_code_points(text[start:end]))
        start = end
    return table


@settings(max_examples=40, deadline=None)
@given(ranks=st.lists(st.integers(0, 40), min_size=1, max_size=600),
       capacity=st.integers(1, 24), piece=st.integers(3, 200))
def test_the_counter_keeps_every_word_more_frequent_than_its_threshold(ranks, capacity, piece):
    """count <= occurrences <= count + threshold; a word that occurs more than
    ``threshold`` times is in the table; threshold <= 2 n_tokens / capacity."""
    text = " ".join(f"w{r % 7}{'z' * (r // 7)}" for r in ranks)
    exact = collections.Counter(SPLIT(text))
    table = counted(text, capacity, piece)
    ids = table.ids(text, _code_points(text), capacity)
    kept = {token: slot for slot, token in enumerate(table.tokens) if token is not None}
    assert len(kept) == len(table) <= capacity
    if len(exact) <= capacity:
        assert table.threshold == 0 and set(kept) == set(exact)
    for token, slot in kept.items():
        assert table.counts[slot] <= exact[token] <= table.counts[slot] + table.threshold
    assert table.threshold <= 2 * len(ranks) / capacity
    assert {w for w, n in exact.items() if n > table.threshold} <= set(kept)
    index = kept
    np.testing.assert_array_equal(ids, [index.get(t, capacity) for t in SPLIT(text)])


def exact_vocabulary(files, min_count, max_vocab):
    """Vocabulary.build over all the words, cut to ``max_vocab`` as prepare documents."""
    full = Vocabulary.build(SPLIT(read_text(files)), min_count)
    kept = [t for t in full.tokens if t != UNKNOWN]
    if len(kept) + (full.unknown is not None) > max_vocab:
        return [UNKNOWN] + kept[:max_vocab - 1]
    return full.tokens


@pytest.mark.parametrize("max_vocab, min_count, per_word, exponent, exact", [
    (30, 1, 4, 1.3, True), (200, 2, 4, 1.1, True), (30, 1, 1, 1.3, False),
    (100, 1, 2, 1.2, False)])
def test_the_vocabulary_is_exact_when_the_store_says_so(tmp_path, monkeypatch, max_vocab,
                                                        min_count, per_word, exponent, exact):
    """Zipf texts of 60,000 words, 5,000 distinct, far more than the counter's slots:
    with 4 slots per word (the default) the top words stand out and the vocabulary
    is the exact one; with 1 or 2 the store records that it may not be, and it isn't."""
    monkeypatch.setattr("fastrnn.token_store.MIN_COUNTER_SLOTS", 1)
    monkeypatch.setattr("fastrnn.token_store.COUNTER_SLOTS_PER_WORD", per_word)
    path = tmp_path / "zipf.txt"
    path.write_text(zipf_text(60_000, 5_000, seed=max_vocab, exponent=exponent))
    store = prepare([path], "word", "words", min_count, max_vocab, cache_dir=tmp_path / "c",
                    chunk_bytes=1 << 14)
    counter = store.meta["word_counter"]
    assert counter["capacity"] == per_word * max_vocab
    assert 0 < counter["threshold"] <= 2 * len(store) / counter["capacity"]
    assert counter["vocab_exact"] == exact
    assert (store.vocab.tokens == exact_vocabulary([path], min_count, max_vocab)) == exact
    note = f"may differ from exact counting among words seen <= {counter['threshold']:,} times"
    assert (note in store.describe()) != exact
    index = store.vocab.index
    np.testing.assert_array_equal(store.ids, [index.get(t, 0) for t in SPLIT(path.read_text())])


def test_without_max_vocab_the_counts_are_exact_and_nothing_is_recorded(tmp_path):
    path = tmp_path / "zipf.txt"
    path.write_text(zipf_text(20_000, 3_000, seed=1))
    store = prepare([path], "word", "words", 1, cache_dir=tmp_path)
    assert store.meta["word_counter"] is None
    assert store.vocab.tokens == Vocabulary.build(SPLIT(path.read_text()), 1).tokens


def test_the_same_text_gives_the_same_store_whatever_the_chunks(tmp_path, monkeypatch):
    """Deterministic: the counter sees the same tokens in the same order (ties in the
    vocabulary go in lexicographic order, as without max_vocab)."""
    monkeypatch.setattr("fastrnn.token_store.MIN_COUNTER_SLOTS", 1)
    path = tmp_path / "zipf.txt"
    path.write_text(zipf_text(30_000, 4_000, seed=2))
    stores = [prepare([path], "word", "words", 1, 40, cache_dir=tmp_path / str(chunk),
                      chunk_bytes=chunk) for chunk in (1 << 12, 1 << 16)]
    assert stores[0].meta["word_counter"]["threshold"] > 0  # the table was full
    assert stores[0].fingerprint == stores[1].fingerprint
    assert stores[0].vocab.tokens == stores[1].vocab.tokens
    assert json.loads((stores[0].path / META).read_text())["word_counter"] == \
        stores[1].meta["word_counter"]


COUNTER_COST = random_words_table_script(
    700_000, "FrequentWords(1 << 15)", "table.add(codes[start:end])",
    "len(set(text.split())), int(table.state[0]), growth / 1e6")  # slots given


def test_the_counter_costs_a_bounded_amount_per_slot_whatever_the_distinct_words():
    """700,000 random words (~690,000 distinct) into 32,768 slots: the growth of
    anonymous memory in a fresh process (the table's arrays are not Python objects);
    an exact table would take ~166 bytes per distinct word, 115 MB here."""
    result = subprocess.run([sys.executable, "-c", COUNTER_COST], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(SRC)), check=True)
    distinct, given, growth_mb = result.stdout.split()
    assert int(distinct) > 15 * int(given) and int(given) == 1 << 15
    assert float(growth_mb) < 8, growth_mb  # 0.6-2.7 MB measured, the arrays 1.7 MB
