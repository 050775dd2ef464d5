"""Text in and out: tokenizers, the vocabulary, reading files, and the corpus size checks."""

import re

import numpy as np
import pytest

from fastrnn.corpus import stdlib_docstrings
from fastrnn.lm import Corpus, TrainConfig, minimum_tokens
from fastrnn.text import UNKNOWN, TextError, Tokenizer, Vocabulary, get_tokenizer, read_text

PROSE = 'He said: "Don\'t stop (not yet)." Then, 3 dogs ran.\nThe end!\n\nNew part.'


def test_char_tokens_round_trip_exactly():
    tokenizer = get_tokenizer("char")
    assert tokenizer.split("a b\n") == ["a", " ", "b", "\n"]
    assert tokenizer.join(tokenizer.split(PROSE)) == PROSE


def test_notebook_tokenizer_is_the_notebooks_split():
    tokenizer = get_tokenizer("word", "notebook")
    assert tokenizer.split("The cat\nsat  down") == ["the", "cat", "sat", "", "down"]
    assert tokenizer.join(["the", "cat", "sat"]) == "the cat sat"


def test_words_tokenizer_makes_punctuation_and_line_breaks_tokens():
    tokens = get_tokenizer("word").split(PROSE)
    assert tokens[:12] == ["He", "said", ":", '"', "Don't", "stop", "(", "not", "yet", ")", ".",
                           '"']
    assert tokens.count("\n") == 3
    assert "3" in tokens and "!" in tokens


def test_words_detokenizer_restores_line_breaks_and_spacing():
    tokenizer = get_tokenizer("word")
    assert tokenizer.join(tokenizer.split(PROSE)) == PROSE


def test_words_detokenizer_gives_the_same_text_chunk_by_chunk():
    tokenizer = get_tokenizer("word")
    tokens = tokenizer.split(PROSE)
    detokenize = tokenizer.detokenizer()
    pieces = [detokenize(tokens[i:i + 3]) for i in range(0, len(tokens), 3)]
    assert "".join(pieces) == tokenizer.join(tokens)


def test_unknown_tokenizer_is_refused():
    with pytest.raises(ValueError, match="tokenizer: expected"):
        Tokenizer("bpe")
    with pytest.raises(ValueError, match="level: expected 'char' or 'word'"):
        get_tokenizer("byte")


def test_vocabulary_is_by_count_then_lexicographic_and_independent_of_order():
    tokens = ["b", "a", "c", "a", "b", "d", "a"]
    vocab = Vocabulary.build(tokens)
    assert vocab.tokens == ["a", "b", "c", "d"]
    assert Vocabulary.build(list(reversed(tokens))).tokens == vocab.tokens
    np.testing.assert_array_equal(vocab.encode(["d", "a"]), [3, 0])
    assert vocab.decode([2, 1]) == ["c", "b"]


def test_min_count_maps_rare_tokens_to_unknown():
    vocab = Vocabulary.build(["x", "x", "y", "z", "x", "y"], min_count=2)
    assert vocab.tokens == [UNKNOWN, "x", "y"]
    np.testing.assert_array_equal(vocab.encode(["z", "y", "never"]), [0, 2, 0])


def test_vocabulary_survives_json():
    vocab = Vocabulary.build(list("héllo\n wörld"))
    again = Vocabulary.from_json(vocab.to_json())
    assert again.tokens == vocab.tokens
    rare = Vocabulary.build(["a", "a", "b"], min_count=2)
    assert Vocabulary.from_json(rare.to_json()).unknown == 0


def test_unknown_start_word_suggests_close_matches():
    vocab = Vocabulary.build("the cat sat on the mat with the hat".split())
    with pytest.raises(TextError, match=r"'cta' is not in the model's vocabulary.*'cat'"):
        vocab.encode_exactly(["the", "cta"])
    np.testing.assert_array_equal(vocab.encode_exactly(["the", "cat"]),
                                  [vocab.index["the"], vocab.index["cat"]])


def test_invalid_utf8_names_the_file_and_the_byte_offset(tmp_path):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("fine\n", encoding="utf-8")
    bad.write_bytes("caf\u00e9 ok ".encode("utf-8") + b"\xff tail")
    with pytest.raises(TextError, match=rf"{bad}: not valid utf-8 at byte offset 9\b"):
        read_text([good, bad])
    assert read_text([bad], encoding="latin-1").endswith("\xff tail")


def test_missing_file_and_unknown_encoding_are_text_errors(tmp_path):
    with pytest.raises(TextError, match="nope.txt: cannot read"):
        read_text([tmp_path / "nope.txt"])
    (tmp_path / "a.txt").write_text("abc")
    with pytest.raises(TextError, match="unknown encoding 'klingon'"):
        read_text([tmp_path / "a.txt"], encoding="klingon")


@pytest.mark.parametrize("seq_len, batch_size, fraction, cap", [
    (4, 3, 0.1, None), (64, 32, 0.1, None), (10, 2, 0.5, None), (1, 1, 0.01, None),
    (4, 3, 0.1, 100_000), (10, 2, 0.5, 11), (10, 40, 0.5, 30), (1, 1, 0.01, 1)])
def test_minimum_tokens_is_exactly_enough(seq_len, batch_size, fraction, cap):
    config = TrainConfig(seq_len=seq_len, batch_size=batch_size, val_fraction=fraction,
                         val_tokens=cap)
    needed = minimum_tokens(seq_len, batch_size, fraction, cap)
    corpus = Corpus.from_text("x" * needed)
    split = corpus.split(config)
    assert split.train_tokens >= batch_size * (seq_len + 1)
    assert split.val_tokens >= seq_len + 1
    with pytest.raises(TextError, match=rf"text too short: {needed - 1} char tokens, need at "
                                        rf"least {needed}\b"):
        Corpus.from_text("x" * (needed - 1)).split(config)


def test_empty_text_says_how_much_is_needed():
    with pytest.raises(TextError, match=r"0 word tokens, need at least \d+"):
        Corpus.from_text("", level="word").split(TrainConfig())


def test_builtin_corpus_is_deterministic_english_prose():
    text = stdlib_docstrings()
    assert len(text) > 700_000
    assert text == stdlib_docstrings()
    assert stdlib_docstrings(max_chars=1000) == text[:1000]
    words = text.split()
    assert words.count("the") > 0.02 * len(words)


def test_word_corpus_options():
    text = "The cat saw the cat.\nA dog saw the  cat!"
    words = Corpus.from_text(text, level="word", min_count=2)
    assert words.vocab.tokens[0] == UNKNOWN and "cat" in words.vocab.index
    assert "dog" not in words.vocab.index and "\n" not in words.vocab.index
    assert words.vocab.decode(words.ids).count(UNKNOWN) == 6
    notebook = Corpus.from_text(text, level="word", tokenizer="notebook", min_count=2)
    assert notebook.vocab.unknown is None  # the notebook's mode has no unknown token
    assert notebook.vocab.decode(notebook.ids) == re.split(" |\n", text.lower())
    chars = Corpus.from_text(text, min_count=5)
    assert chars.vocab.unknown is None and "!" in chars.vocab.index
