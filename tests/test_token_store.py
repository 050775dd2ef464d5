"""The token store: the same tokens as the in-memory corpus, streaming in bounded
memory, and every way its input or the store itself can go wrong."""

import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from fastrnn.corpus import stdlib_docstrings
from fastrnn.lm import Corpus
from fastrnn.sources import SkippedFileWarning, resolve_sources
from fastrnn.text import UNKNOWN, TextError, Vocabulary, get_tokenizer, read_text
from fastrnn.token_store import (IDS, META, StoreError, TokenStore, list_stores, prepare,
                                 remove_store)

SRC = Path(__file__).resolve().parent.parent / "src"
PROSE = stdlib_docstrings()
EXTRA = " Ünïcödé ΣΟΦΊΑ ς 日本語 😀 don't 'tis dogs' a''b\r\n  two  spaces\n\n"


def in_memory(files, level="char", tokenizer="words", min_count=2):
    """The corpus of ``files`` tokenized in memory: what a store must hold."""
    return Corpus.from_text(read_text(files), level, tokenizer, min_count)


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    """Four files (one empty), ~0.9 MB together, with non-ASCII text and odd spacing."""
    root = tmp_path_factory.mktemp("books")
    return [write(root / "a.txt", PROSE[:400_000] + EXTRA),
            write(root / "b.txt", ""),
            write(root / "c.txt", EXTRA + PROSE[300_000:]),
            write(root / "d.txt", "last line without newline Σ")]


@pytest.mark.parametrize("level, tokenizer, min_count", [
    ("char", "words", 1), ("char", "words", 2), ("word", "words", 1), ("word", "words", 2),
    ("word", "notebook", 1), ("word", "notebook", 2)])
@pytest.mark.parametrize("chunk_bytes", [None, 4093])
def test_store_has_the_in_memory_corpus_ids_and_vocabulary(books, tmp_path, level, tokenizer,
                                                           min_count, chunk_bytes):
    store = prepare(books, level, tokenizer, min_count, cache_dir=tmp_path,
                    chunk_bytes=chunk_bytes)
    corpus = in_memory(books, level, tokenizer, min_count)
    assert store.vocab.tokens == corpus.vocab.tokens
    assert store.vocab.unknown == corpus.vocab.unknown
    assert store.ids.dtype == (np.uint8 if len(store.vocab) <= 256 else np.uint16)
    np.testing.assert_array_equal(store.ids, corpus.ids)
    assert not store.ids.flags.writeable


def test_char_store_decodes_to_the_text(books, tmp_path):
    store = prepare(books, "char", cache_dir=tmp_path, chunk_bytes=1 << 16)
    text = "\n".join(p.read_bytes().decode("utf-8") for p in books)
    assert store.tokenizer.join(store.vocab.decode(store.ids)) == text


ALPHABET = st.sampled_from(list("ab Σς'.\n日\r") + ["é", "😀"])


@settings(max_examples=60, deadline=None)
@given(texts=st.lists(st.text(ALPHABET, max_size=40), min_size=1, max_size=3),
       chunk_bytes=st.integers(1, 9),
       tokenizer=st.sampled_from(["char", "words", "notebook"]))
def test_chunk_boundaries_do_not_change_tokens(texts, chunk_bytes, tokenizer):
    """Chunks of a few bytes cut words, multi-byte characters and "\\r\\n" everywhere."""
    with tempfile.TemporaryDirectory() as root:
        files = [write(Path(root) / f"{i}.txt", text) for i, text in enumerate(texts)]
        level = "char" if tokenizer == "char" else "word"
        expected = in_memory(files, level, tokenizer, 1)
        if len(expected) == 0 or not "".join(texts):  # "" or files joined by "\n" only
            with pytest.raises(TextError, match="no text to train on"):
                prepare(files, level, tokenizer, 1, cache_dir=Path(root) / "c",
                        chunk_bytes=chunk_bytes)
            return
        store = prepare(files, level, tokenizer, 1, cache_dir=Path(root) / "c",
                        chunk_bytes=chunk_bytes)
        assert store.vocab.tokens == expected.vocab.tokens
        np.testing.assert_array_equal(store.ids, expected.ids)


def test_max_vocab_keeps_the_most_frequent_words_in_vocabulary_order(books, tmp_path):
    store = prepare(books, "word", "words", 1, max_vocab=50, cache_dir=tmp_path)
    tokens = get_tokenizer("word").split(read_text(books))
    full = Vocabulary.build(tokens)
    assert store.vocab.tokens == [UNKNOWN] + full.tokens[:49]
    expected = [store.vocab.index.get(t, 0) for t in tokens]
    np.testing.assert_array_equal(store.ids, expected)
    with pytest.raises(ValueError, match="max_vocab: only with level='word' and tokenizer='words'"):
        prepare(books, "char", max_vocab=50, cache_dir=tmp_path)


def test_a_given_vocabulary_encodes_another_text_as_in_memory(books, tmp_path):
    """A trained model's vocabulary (``eval``): unknown words are its <unk>; without
    one, an unknown token is an error naming the files and the token."""
    vocab = prepare(books[:1], "word", "words", 50, cache_dir=tmp_path).vocab
    assert vocab.unknown is not None
    store = prepare(books[2:], "word", vocab=vocab, cache_dir=tmp_path)
    assert store.vocab.tokens == vocab.tokens
    expected = Corpus.from_text(read_text(books[2:]), "word", vocab=vocab)
    np.testing.assert_array_equal(store.ids, expected.ids)
    assert store.path != prepare(books[2:], "word", cache_dir=tmp_path).path
    chars = Vocabulary(list("abc \n"))
    write(tmp_path / "t.txt", "abc cab\nbad\n")
    with pytest.raises(TextError, match=r"t\.txt: the token 'd' is not in the model's vocabulary "
                                        r"\(5 tokens, no <unk>\)"):
        prepare([tmp_path / "t.txt"], "char", vocab=chars, cache_dir=tmp_path / "c")
    assert not any((tmp_path / "c").iterdir())


def test_prepare_reuses_the_store_and_its_files_are_as_documented(books, tmp_path, monkeypatch):
    store = prepare(books, "word", cache_dir=tmp_path)
    assert sorted(p.name for p in store.path.iterdir()) == ["ids.bin", "store.json", "vocab.json"]
    meta = json.loads((store.path / META).read_text())
    assert meta["n_tokens"] == len(store) and meta["dtype"] == "<u2"
    assert [s["path"] for s in meta["sources"]] == [str(p) for p in books]
    assert store.nbytes == sum(p.stat().st_size for p in store.path.iterdir())
    monkeypatch.setattr("fastrnn.token_store._build", lambda *a: pytest.fail("encoded again"))
    again = prepare([str(p) for p in books], "word", cache_dir=tmp_path)
    assert again.path == store.path and again.fingerprint == store.fingerprint
    assert [s.name for s in tmp_path.iterdir()] == [store.path.name]


def test_default_cache_dir_follows_the_environment(books, tmp_path, monkeypatch):
    monkeypatch.setenv("FASTRNN_CACHE_DIR", str(tmp_path / "env"))
    assert prepare(books[3:], "char").path.parent == tmp_path / "env"
    monkeypatch.delenv("FASTRNN_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert prepare(books[3:], "char").path.parent == tmp_path / "xdg" / "fastrnn" / "stores"


def test_a_changed_source_is_a_clear_error(tmp_path):
    big = write(tmp_path / "big.txt", PROSE)
    store = prepare([big], "char", cache_dir=tmp_path / "cache")
    stat = big.stat()
    os.utime(big, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # touched, same text
    store.check_sources()
    data = bytearray(big.read_bytes())
    data[1000] = ord("#") if data[1000] != ord("#") else ord("@")  # inside the first sampled block
    big.write_bytes(bytes(data))
    os.utime(big, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size and time as prepared
    with pytest.raises(StoreError, match=r"big\.txt: changed since the token store .* contents"):
        store.check_sources()
    write(big, PROSE + "more")
    size = len(PROSE.encode("utf-8"))
    with pytest.raises(StoreError, match=rf"{size} bytes then, {size + 4} now"):
        store.check_sources()


def test_the_full_check_finds_an_edit_between_sampled_blocks(tmp_path):
    big = write(tmp_path / "big.txt", PROSE)
    store = prepare([big], "char", cache_dir=tmp_path / "cache")
    stat = big.stat()
    data = bytearray(big.read_bytes())
    data[len(data) // 30] ^= 1  # between the first two sampled blocks: the cheap check misses it
    big.write_bytes(bytes(data))
    os.utime(big, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    store.check_sources()
    with pytest.raises(StoreError, match="contents differ"):
        store.check_sources(full=True)


def test_a_truncated_or_damaged_store_says_to_prepare_again(books, tmp_path):
    store = prepare(books, "char", cache_dir=tmp_path)
    with open(store.path / IDS, "r+b") as stream:
        stream.truncate(len(store) - 1)
    with pytest.raises(StoreError, match=r"ids.bin: \d+ bytes, expected .* truncated.*prepare"):
        TokenStore.open(store.path)
    rebuilt = prepare(books, "char", cache_dir=tmp_path)  # replaces it
    assert len(rebuilt) == len(store) and rebuilt.fingerprint == store.fingerprint
    (store.path / META).write_text("{not json")
    with pytest.raises(StoreError, match="damaged token store .*prepare"):
        TokenStore.open(store.path)
    (rebuilt.path / META).unlink()
    with pytest.raises(StoreError, match="not a token store"):
        TokenStore.open(rebuilt.path)


def test_a_flipped_id_is_found_by_the_full_check(books, tmp_path):
    store = prepare(books[3:], "char", cache_dir=tmp_path)
    path = store.path / IDS
    ids = bytearray(path.read_bytes())
    ids[3] ^= 1
    path.write_bytes(bytes(ids))
    with pytest.raises(StoreError, match="do not match their recorded hash"):
        TokenStore.open(store.path).check_sources(full=True)


def test_an_empty_file_says_there_is_no_text(tmp_path):
    empty = write(tmp_path / "empty.txt", "")
    for level in ("char", "word"):
        with pytest.raises(TextError, match=r"empty\.txt: no text to train on \(the file is empty\)"):
            prepare([empty], level, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())


def test_a_binary_file_is_named_with_its_offset_and_nothing_is_left(books, tmp_path):
    binary = tmp_path / "in" / "image.png"
    binary.parent.mkdir()
    binary.write_bytes(b"IHDR" * 5000 + b"\0" + b"abc")
    cache = tmp_path / "cache"
    with pytest.raises(TextError, match=r"image\.png: not a text file, a NUL byte at byte offset 20000"):
        prepare([books[0], binary], "word", cache_dir=cache, chunk_bytes=1000)
    assert list(cache.iterdir()) == []  # no store, no scratch directory
    with pytest.warns(SkippedFileWarning, match=r"image\.png"):
        store = prepare([books[0], binary, books[3]], "word", cache_dir=cache, chunk_bytes=1000,
                        on_bad_file="skip")
    expected = in_memory([books[0], books[3]], "word")
    np.testing.assert_array_equal(store.ids, expected.ids)
    assert store.vocab.tokens == expected.vocab.tokens
    assert [s["path"] for s in store.meta["skipped"]] == [str(binary)]


@pytest.mark.parametrize("chunk_bytes", [3, 1 << 20])
def test_invalid_utf8_is_reported_at_read_texts_offset(tmp_path, chunk_bytes):
    bad = tmp_path / "latin1.txt"
    bad.write_bytes("éé".encode("utf-8") + b"abc caf\xe9 ok")
    with pytest.raises(TextError) as expected:
        read_text([bad])
    with pytest.raises(TextError) as got:
        prepare([bad], "char", cache_dir=tmp_path / "cache", chunk_bytes=chunk_bytes)
    assert str(got.value) == str(expected.value)
    assert "byte offset 11" in str(got.value)
    assert len(prepare([bad], "char", encoding="latin-1", cache_dir=tmp_path / "c2")) == 15


def test_directories_and_globs_are_read_recursively_in_sorted_order(tmp_path):
    root = tmp_path / "library"
    b = write(root / "b" / "book.txt", "second\n")
    a = write(root / "a.txt", "first\n")
    c = write(root / "b" / "c" / "deep.md", "third\n")
    write(root / ".hidden.txt", "no")
    write(root / ".git" / "HEAD", "no")
    (root / "cover.jpg").write_bytes(b"\xff\xd8\xff\0")
    with pytest.warns(SkippedFileWarning, match=r"cover\.jpg: a NUL byte at byte offset 3"):
        assert resolve_sources([root]) == [a.resolve(), b.resolve(), c.resolve()]
    with pytest.warns(SkippedFileWarning):
        assert resolve_sources([str(root / "**" / "*")]) == [a.resolve(), b.resolve(),
                                                             c.resolve()]
    assert resolve_sources([str(root / "*.txt"), a, root / "b"]) == [a.resolve(), b.resolve(),
                                                                     c.resolve()]
    with pytest.warns(SkippedFileWarning):
        store = prepare([root], "char", cache_dir=tmp_path / "cache")
    assert store.tokenizer.join(store.vocab.decode(store.ids)) == "first\n\nsecond\n\nthird\n"


def test_inputs_with_no_text_name_the_input(tmp_path):
    nothing = tmp_path / "nothing"
    (nothing / "sub").mkdir(parents=True)
    (nothing / "sub" / "data.bin").write_bytes(b"\0\1\2")
    with pytest.warns(SkippedFileWarning), \
            pytest.raises(TextError, match=r"nothing: no text file in the directory \(1 not text"):
        resolve_sources([nothing])
    with pytest.raises(TextError, match=r"missing\.txt: no such file or directory"):
        resolve_sources([tmp_path / "missing.txt"])
    with pytest.raises(TextError, match=r"\*\.none: no text file matches the pattern"):
        resolve_sources([str(tmp_path / "*.none")])


def test_a_failure_half_way_leaves_no_store(books, tmp_path, monkeypatch):
    def fail(self, ids):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr("fastrnn.token_store._Writer.write", fail)
    with pytest.raises(OSError, match="No space left"):
        prepare(books, "word", cache_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_list_and_remove_stores(books, tmp_path):
    source = write(tmp_path / "src.txt", PROSE[:5000])
    one = prepare([source], "char", cache_dir=tmp_path / "c")
    two = prepare(books, "word", cache_dir=tmp_path / "c")
    (tmp_path / "c" / ".tmp-abc-1-2").mkdir()  # left by a killed prepare
    write(source, PROSE[:4000])
    listed = {entry["path"]: entry for entry in list_stores(tmp_path / "c")}
    assert listed[one.path]["status"] == "stale" and "src.txt" in listed[one.path]["problem"]
    assert listed[two.path]["status"] == "ok" and listed[two.path]["n_tokens"] == len(two)
    assert listed[tmp_path / "c" / ".tmp-abc-1-2"]["status"] == "incomplete"
    assert remove_store(one.path.name, tmp_path / "c") == one.nbytes
    assert remove_store(tmp_path / "c" / ".tmp-abc-1-2") == 0
    assert [e["path"] for e in list_stores(tmp_path / "c")] == [two.path]
    with pytest.raises(StoreError, match="not a token store .*src.txt.*not removed"):
        remove_store(tmp_path)
    assert source.exists()


def random_words_table_script(n_words, make, feed, report):
    """The source of a fresh process that builds a table of words (``make``, with
    ``table`` its result) from ``n_words`` random words of 4 to 12 letters, fed
    (``feed``, given ``start``, ``end``) in chunks of prepare's size cut at a space,
    and prints ``report`` (``growth``: the anonymous memory it took, read before
    ``report`` is evaluated)."""
    return textwrap.dedent("""
        import numpy as np
        from fastrnn.kernels.tokens import FrequentWords, WordsTable
        from fastrnn.token_store import WORD_CHUNK_BYTES, _code_points

        def rss_anon():
            with open("/proc/self/status") as status:
                return next(int(line.split()[1]) for line in status
                            if line.startswith("RssAnon:")) * 1024

        rng = np.random.default_rng(0)
        cuts = np.cumsum(rng.integers(5, 14, {n_words}))  # a space and 4 to 12 letters
        letters = rng.integers(ord("a"), ord("z") + 1, cuts[-1], np.uint8)
        letters[cuts[:-1]] = ord(" ")
        text = letters.tobytes().decode("ascii")
        codes = _code_points(text)
        FrequentWords(4).add(_code_points("warm up"))  # compiled, classes tabled
        WordsTable().ids("warm up", _code_points("warm up"))
        before = rss_anon()
        table = {make}
        start = 0
        while start < len(text):
            end = (text.rfind(" ", 0, start + WORD_CHUNK_BYTES) + 1
                   if start + WORD_CHUNK_BYTES < len(text) else len(text))
            {feed}
            start = end
        growth = rss_anon() - before
        print({report})
    """).format(n_words=n_words, make=make, feed=feed, report=report)


TABLE_COST = random_words_table_script(
    300_000, "WordsTable()", "table.ids(text[start:end], codes[start:end])",
    "len(table), growth / len(table)")


def test_the_table_of_distinct_words_costs_about_165_bytes_per_word():
    """The word level's memory beyond one chunk: the distinct words (the module
    docstring's figure), measured as anonymous memory in a fresh process, since the
    table's arrays are not Python objects; words of 4 to 12 letters, as in prose."""
    result = subprocess.run([sys.executable, "-c", TABLE_COST], capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(SRC)), check=True)
    distinct, per_word = result.stdout.split()
    assert int(distinct) > 290_000 and 100 < float(per_word) < 250, per_word  # 166 measured


MEASURE = textwrap.dedent("""
    import sys, threading, time
    from fastrnn.token_store import prepare

    def rss_anon_kb():
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("RssAnon:"))

    # Loading the compiled loops (one build per array type) and tabling the character
    # classes cost a fixed ~50 MB, paid before the baseline, on the text's first MB.
    prepare([sys.argv[5]], sys.argv[2], cache_dir=sys.argv[3], chunk_bytes=int(sys.argv[4]))
    before = peak = rss_anon_kb()
    done = False

    def sample():  # VmHWM would include the warm-up's peak, and cannot be reset here
        global peak
        while not done:
            peak = max(peak, rss_anon_kb())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample)
    sampler.start()
    store = prepare([sys.argv[1]], sys.argv[2], cache_dir=sys.argv[3], chunk_bytes=int(sys.argv[4]))
    done = True
    sampler.join()
    print((peak - before) / 1024, len(store))
""")



@pytest.mark.parametrize("level, text_mb, chunk_bytes, bound_mb", [
    ("char", 40, 1 << 20, 50), ("word", 8, 1 << 18, 40)])
def test_prepare_memory_does_not_grow_with_the_text(tmp_path, level, text_mb, chunk_bytes,
                                                    bound_mb):
    """Peak anonymous memory growth in a fresh process: ~20 MB measured at both
    levels; reading the whole text at once (one chunk) fails it: 240 MB at char
    level, 67 MB at word level."""
    path = tmp_path / "big.txt"
    piece = PROSE.encode("utf-8")
    with open(path, "wb") as stream:
        for _ in range(text_mb * 10**6 // len(piece) + 1):
            stream.write(piece)
    tiny = tmp_path / "first-mb.txt"
    tiny.write_bytes(path.read_bytes()[:10**6])
    env = dict(os.environ, PYTHONPATH=str(SRC))
    result = subprocess.run([sys.executable, "-c", MEASURE, str(path), level,
                             str(tmp_path / "cache"), str(chunk_bytes), str(tiny)],
                            capture_output=True, text=True, env=env, check=True)
    growth_mb, n_tokens = result.stdout.split()
    assert int(n_tokens) > text_mb * 10**5  # it did read the whole text
    assert float(growth_mb) < bound_mb, f"{level}: peak RSS grew {growth_mb} MB"


def test_a_line_without_spaces_is_cut_between_tokens_and_a_huge_word_is_an_error(
        tmp_path, monkeypatch):
    """The read buffer of the word level stays bounded: a line with no space is cut
    after punctuation (same tokens as in memory); a run of word characters longer
    than MAX_WORD_CHARS, or for 'notebook' any run without a space or line break, is
    an error naming the file and where the run starts."""
    monkeypatch.setattr("fastrnn.token_store.MAX_WORD_CHARS", 100)
    minified = write(tmp_path / "min.json", "[" + ",".join(f'"k{i}":{i}' for i in range(400)) + "]")
    store = prepare([minified], "word", "words", 1, cache_dir=tmp_path / "c", chunk_bytes=64)
    np.testing.assert_array_equal(store.ids, in_memory([minified], "word", "words", 1).ids)
    with pytest.raises(TextError, match=r"min\.json: more than 100 characters without a space "
                                        r"or line break in a row from character offset 0 on"):
        prepare([minified], "word", "notebook", 1, cache_dir=tmp_path / "c", chunk_bytes=64)
    huge = write(tmp_path / "huge.txt", "two words " + "x" * 150 + "\n")
    with pytest.raises(TextError, match=r"huge\.txt: more than 100 letters, digits or "
                                        r"apostrophes in a row from character offset 10 on"):
        prepare([huge], "word", "words", 1, cache_dir=tmp_path / "c", chunk_bytes=64)
    assert prepare([huge], "char", cache_dir=tmp_path / "c", chunk_bytes=64).ids.size == 161
