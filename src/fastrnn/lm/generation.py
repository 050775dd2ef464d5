"""Text from a :class:`~fastrnn.lm.model.LanguageModel`: a start text in the model's
tokens, then tokens drawn by :func:`fastrnn.sampling.sample_ids` (the one sampling
path, shared with the notebook's ``LanguageModelRNN.sample``), turned back into text."""

import numpy as np

from .._checks import is_int, require
from ..sampling import sample_ids

__all__ = ["default_prime", "generate_text"]


def default_prime(model):
    """The token generation starts from when no start text is given: a line break
    if the vocabulary has one, else the most frequent token."""
    vocab = model.vocab
    if "\n" in vocab.index:
        return vocab.index["\n"]
    # The vocabulary is sorted by decreasing count, after <unk> when there is one.
    return 1 if vocab.unknown == 0 and len(vocab) > 1 else 0


def generate_text(model, start="", length=200, temperature=0.8, top_k=0, seed=None, write=None,
                  chunk=64):
    """Text continuing ``start``: ``start`` followed by ``length`` generated tokens.

    ``start`` is split with the model's tokenizer; a token not in the
    vocabulary is a TextError suggesting close matches.  With ``write`` (e.g.
    ``sys.stdout.write``), the text is also passed to it piece by piece as it
    is generated, ``chunk`` tokens per compiled call.  ``seed`` makes the
    draws reproducible (the result does not depend on ``chunk``).
    """
    require(is_int(chunk) and chunk >= 1, "chunk", "an integer >= 1", chunk)
    start_tokens = model.tokenizer.split(start) if start else []
    prime = (model.vocab.encode_exactly(start_tokens) if start_tokens
             else np.array([default_prime(model)], dtype=np.int64))
    detokenize = model.tokenizer.detokenizer()
    detokenize(start_tokens)  # the spacing of what follows depends on the start
    pieces = [start]
    if write is not None and start:
        write(start)
    weights = model.sampling_weights()
    rng = np.random.default_rng(seed)
    state = model.zero_state(1)
    remaining = length
    while remaining > 0:
        n = min(chunk, remaining)
        ids = sample_ids(weights, prime, n, temperature, top_k, rng, state)
        piece = detokenize(model.vocab.decode(ids))
        pieces.append(piece)
        if write is not None:
            write(piece)
        prime = ids[-1:]
        remaining -= n
    return "".join(pieces)
