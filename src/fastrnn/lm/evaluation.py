"""Scoring a model on held-out text: loss, perplexity and accuracy of next-token prediction."""

import math

from .data import Windows, streams

__all__ = ["evaluate"]


def evaluate(model, ids, seq_len, rows):
    """Loss, perplexity and accuracy of ``model`` predicting ``ids[t + 1]`` from ``ids[:t + 1]``.

    ids (n,) are cut into ``rows`` streams (fewer if there are not seq_len + 1
    tokens per stream), read in windows of ``seq_len`` with the state carried,
    as in training, without dropout.  Returns a dict with ``loss`` (nats per
    token), ``perplexity``, ``accuracy`` and ``tokens`` (the number predicted).
    """
    rows = max(1, min(rows, len(ids) // (seq_len + 1)))
    data = streams(ids, rows)  # a view: ids may be a token store's memory map
    windows = Windows(data, seq_len)
    h, c = model.zero_state(rows)
    total_loss, correct, tokens = 0.0, 0, 0
    for start in range(0, data.shape[1] - 1, seq_len):
        inputs, targets = windows(start, min(start + seq_len, data.shape[1] - 1))
        loss_sum, hits = model.loss(model.forward(inputs, h, c), targets)
        total_loss += loss_sum
        correct += hits
        tokens += targets.size
    loss = total_loss / tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)),
            "accuracy": correct / tokens, "tokens": tokens}
