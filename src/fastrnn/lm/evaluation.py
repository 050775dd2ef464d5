"""Scoring a model on held-out text: loss, perplexity and accuracy of next-token prediction."""

import math

from .data import Windows, streams

__all__ = ["EVAL_MIN_WINDOW", "evaluate", "evaluate_streams", "scores", "stream_sums"]

# The shortest window (time steps) a trainer validates with (see Trainer.eval_window).
EVAL_MIN_WINDOW = 256


def evaluate(model, ids, seq_len, rows):
    """Loss, perplexity and accuracy of ``model`` predicting ``ids[t + 1]`` from ``ids[:t + 1]``.

    ids (n,) are cut into ``rows`` streams (fewer if there are not seq_len + 1
    tokens per stream) and scored by :func:`evaluate_streams`.
    """
    rows = max(1, min(rows, len(ids) // (seq_len + 1)))
    return evaluate_streams(model, streams(ids, rows), seq_len)  # a view of ids: a memory map stays one


def evaluate_streams(model, data, seq_len):
    """Loss, perplexity and accuracy of ``model`` on ``data`` int (R, T): R streams (or
    validation blocks) read together, in windows of ``seq_len`` with the state carried
    from zeros, as in training, without dropout; each stream predicts its tokens 1 to
    T - 1.  The states are this function's own and no random generator is drawn
    from, so evaluating at any moment changes nothing training will do.  Returns a
    dict with ``loss`` (nats per token), ``perplexity``, ``accuracy`` and ``tokens``
    (the number predicted).
    """
    return scores(*stream_sums(model, data, seq_len))


def stream_sums(model, data, seq_len):
    """(loss in nats, correct predictions, tokens predicted) of :func:`evaluate_streams`
    on ``data`` (R, T), as sums (those of several shares of the streams add up); zeros
    for R = 0."""
    total_loss, correct, tokens = 0.0, 0, 0
    if data.shape[0] == 0:
        return total_loss, correct, tokens
    windows = Windows(data, seq_len)
    h, c = model.zero_state(data.shape[0])
    for start in range(0, data.shape[1] - 1, seq_len):
        inputs, targets = windows(start, min(start + seq_len, data.shape[1] - 1))
        loss_sum, hits = model.score(inputs, targets, h, c)  # never the (R, S, V) scores
        total_loss += loss_sum
        correct += hits
        tokens += targets.size
    return total_loss, correct, tokens


def scores(total_loss, correct, tokens):
    """The dict of :func:`evaluate_streams` from its sums."""
    loss = total_loss / tokens
    return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)),
            "accuracy": correct / tokens, "tokens": tokens}
