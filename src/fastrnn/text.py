"""Text in and out: reading files, tokenizers and the vocabulary.

Three tokenizers, chosen by name:

* ``char``: every character is a token; decoding joins them back, so spacing and
  line breaks are kept exactly.
* ``notebook``: the classic notebook's word split, kept as a faithful mode:
  lowercase, split on every space and every newline (``re.split(" |\\n", ...)``),
  so two spaces in a row give an empty token and line breaks are lost.
* ``words`` (the default word tokenizer): words (letters, digits, inner
  apostrophes), each punctuation mark and each line break are tokens; case is
  kept.  Decoding puts spaces between words but not before closing punctuation
  or after opening brackets, and restores the line breaks.

The vocabulary is built deterministically: tokens by decreasing count, ties in
lexicographic order; with ``min_count > 1`` the rarer tokens become ``<unk>``.
"""

import collections
import difflib
import json
import re

import numpy as np

__all__ = ["TextError", "read_text", "Tokenizer", "get_tokenizer", "Vocabulary", "UNKNOWN"]

UNKNOWN = "<unk>"

# A word is a run of letters/digits/underscores, possibly with inner apostrophes
# ("don't", "O'Neil"); any other non-space character is a token of its own, and
# so is every line break.  Spaces and tabs only separate tokens.
_WORD_PATTERN = re.compile(r"\w+(?:'\w+)*|\n|[^\w\s]")
_NO_SPACE_BEFORE = frozenset(".,;:!?)]}%")
_NO_SPACE_AFTER = frozenset("([{$#@")
_QUOTES = frozenset("\"'`")


class TextError(ValueError):
    """A text that cannot be used: unreadable, badly encoded, or too short."""


def read_text(paths, encoding="utf-8"):
    """The contents of the files ``paths`` decoded with ``encoding``, joined by newlines.

    Raises TextError naming the file and the byte offset of the first byte that
    is not valid in ``encoding``, or naming a file that cannot be read.
    """
    pieces = []
    for path in paths:
        try:
            with open(path, "rb") as stream:
                data = stream.read()
        except OSError as err:
            raise TextError(f"{path}: cannot read ({err.strerror})") from err
        try:
            pieces.append(data.decode(encoding))
        except UnicodeDecodeError as err:
            bad = data[err.start:err.end]
            raise TextError(
                f"{path}: not valid {encoding} at byte offset {err.start} (byte {bad!r}: "
                f"{err.reason}); pass --encoding with the file's encoding") from err
        except LookupError as err:
            raise TextError(f"--encoding: unknown encoding {encoding!r}") from err
    return "\n".join(pieces)


class _WordJoiner:
    """Turns ``words`` tokens back into text, chunk by chunk (for streaming).

    Remembers the previous token and whether a double quote is open, so that
    the spacing of a chunk depends on what came before it.
    """

    def __init__(self):
        self.previous = "\n"
        self.quote_open = False

    def __call__(self, tokens):
        out = []
        for token in tokens:
            out.append(" " if self._space_between(token) else "")
            out.append(token)
            if token == '"':
                self.quote_open = not self.quote_open
            self.previous = token
        return "".join(out)

    def _space_between(self, token):
        previous = self.previous
        if token == "\n" or previous == "\n":
            return False
        if token in _NO_SPACE_BEFORE or previous in _NO_SPACE_AFTER:
            return False
        if token == '"':
            return not self.quote_open  # an opening quote follows a space, a closing one does not
        if previous == '"':
            return not self.quote_open  # after a closing quote comes a space
        if token in _QUOTES or previous in _QUOTES:
            return False
        return True


class _FixedJoiner:
    """Joins tokens with a fixed separator; ``separator`` goes between chunks too."""

    def __init__(self, separator):
        self.separator = separator
        self.started = False

    def __call__(self, tokens):
        if not tokens:
            return ""
        text = self.separator.join(tokens)
        if self.started:
            text = self.separator + text
        self.started = True
        return text


class Tokenizer:
    """Splits text into tokens (``split``) and joins tokens back (``detokenizer``)."""

    def __init__(self, name):
        if name not in ("char", "notebook", "words"):
            raise ValueError(f"tokenizer: expected 'char', 'notebook' or 'words', got {name!r}")
        self.name = name

    def split(self, text):
        """The tokens of ``text``, a list of str."""
        if self.name == "char":
            return list(text)
        if self.name == "notebook":
            return re.split(" |\n", text.lower())
        return _WORD_PATTERN.findall(text)

    def detokenizer(self):
        """A callable turning successive chunks of tokens into successive pieces of text."""
        if self.name == "char":
            return _FixedJoiner("")
        if self.name == "notebook":
            return _FixedJoiner(" ")
        return _WordJoiner()

    def join(self, tokens):
        """The text of a whole sequence of tokens."""
        return self.detokenizer()(list(tokens))

    def __repr__(self):
        return f"Tokenizer({self.name!r})"


def get_tokenizer(level, word_tokenizer="words"):
    """The tokenizer for ``level`` 'char' or 'word' (then ``word_tokenizer``:
    'words' or 'notebook')."""
    if level == "char":
        return Tokenizer("char")
    if level == "word":
        if word_tokenizer not in ("words", "notebook"):
            raise ValueError(f"tokenizer: expected 'words' or 'notebook', got {word_tokenizer!r}")
        return Tokenizer(word_tokenizer)
    raise ValueError(f"level: expected 'char' or 'word', got {level!r}")


class Vocabulary:
    """Token <-> index.  ``tokens[i]`` is the token of index ``i``.

    ``unknown`` is the index of ``<unk>`` (which stands for every token seen fewer
    than ``min_count`` times when the vocabulary was built), or None when there is
    no such token.
    """

    def __init__(self, tokens, has_unknown=False):
        self.tokens = list(tokens)
        self.index = {token: i for i, token in enumerate(self.tokens)}
        if len(self.index) != len(self.tokens):
            raise ValueError("tokens: expected distinct tokens, got duplicates")
        if has_unknown and UNKNOWN not in self.index:
            raise ValueError(f"tokens: {UNKNOWN!r} is missing")
        self.unknown = self.index[UNKNOWN] if has_unknown else None

    @classmethod
    def build(cls, tokens, min_count=1):
        """From a token sequence: decreasing count, then lexicographic order.

        Tokens seen fewer than ``min_count`` times are left out and ``<unk>``
        (index 0) stands for them, if there are any.
        """
        if min_count < 1:
            raise ValueError(f"min_count: expected an integer >= 1, got {min_count!r}")
        counts = collections.Counter(tokens)
        kept = sorted((t for t, n in counts.items() if n >= min_count),
                      key=lambda t: (-counts[t], t))
        has_unknown = len(kept) < len(counts)
        return cls(([UNKNOWN] if has_unknown else []) + kept, has_unknown)

    def __len__(self):
        return len(self.tokens)

    def encode(self, tokens):
        """Token indices, int64 (n,); unknown tokens map to ``<unk>`` (KeyError without it)."""
        if self.unknown is None:
            return np.array([self.index[t] for t in tokens], dtype=np.int64)
        get, unknown = self.index.get, self.unknown
        return np.array([get(t, unknown) for t in tokens], dtype=np.int64)

    def encode_exactly(self, tokens):
        """Token indices of a start text: every token must be in the vocabulary.

        Raises TextError naming the first unknown token and suggesting close matches.
        """
        missing = [t for t in tokens if t not in self.index]
        if missing:
            token = missing[0]
            candidates = [t for t in self.tokens if t != UNKNOWN]
            close = difflib.get_close_matches(token, candidates, n=5)
            hint = (f"; close matches: {', '.join(repr(t) for t in close)}" if close
                    else "; no close match in the vocabulary")
            raise TextError(f"start text: {token!r} is not in the model's vocabulary "
                            f"({len(self)} tokens){hint}")
        return np.array([self.index[t] for t in tokens], dtype=np.int64)

    def decode(self, indices):
        """The tokens of integer indices, a list of str."""
        return [self.tokens[i] for i in indices]

    def to_json(self):
        return json.dumps({"tokens": self.tokens, "unknown": self.unknown is not None},
                          ensure_ascii=False, indent=0)

    @classmethod
    def from_json(cls, text):
        saved = json.loads(text)
        return cls(saved["tokens"], saved["unknown"])
