"""The token-choice kernels of generation against numpy: the k-th largest logit
(top-k cut) and the draw from the tempered, cut softmax."""

import numpy as np
import pytest

from fastrnn.kernels.generate import choose_token, kth_largest


def logits_with_ties(rng, V):
    """Logits where about half the values repeat (ties at the top-k cut are the hard case)."""
    return rng.integers(-4, 5, size=V).astype(np.float64) * 0.75 + (
        rng.random(V) < 0.5) * rng.standard_normal(V)


@pytest.mark.parametrize("V", [1, 2, 7, 100, 1000])
def test_kth_largest_matches_np_partition(V):
    rng = np.random.default_rng(V)
    for _ in range(20):
        values = logits_with_ties(rng, V)
        for k in sorted(k for k in {1, 2, V // 2, V - 1, V} if 1 <= k <= V):
            heap = np.full(k + 3, np.nan)  # a scratch of k is enough; the rest stays untouched
            assert kth_largest(values, k, heap) == np.partition(values, V - k)[V - k]
            assert np.isnan(heap[k:]).all()


def reference_choice(logits, temperature, top_k, uniform):
    """The documented rule, in numpy: argmax at temperature 0 or top_k 1; else the
    first token whose running probability (softmax(logits / T), zero below the k-th
    largest logit) exceeds uniform * total."""
    V = logits.shape[0]
    if temperature == 0.0 or top_k == 1:
        return int(np.argmax(logits))
    threshold = np.partition(logits, V - top_k)[V - top_k] if 0 < top_k < V else -np.inf
    p = np.exp((logits - logits.max()) / temperature)
    p[logits < threshold] = 0.0
    running = np.cumsum(p)
    above = np.nonzero((p > 0) & (running > uniform * running[-1]))[0]
    return int(above[0]) if above.size else int(np.nonzero(p > 0)[0][-1])


@pytest.mark.parametrize("V", [2, 3, 9, 65, 500])
def test_choose_token_matches_the_numpy_rule(V):
    rng = np.random.default_rng(100 + V)
    probs = np.empty(V)
    for _ in range(200):
        logits = logits_with_ties(rng, V)
        temperature = float(rng.choice([0.0, 0.3, 1.0, 2.5]))
        top_k = int(rng.choice([0, 1, 2, 3, max(1, V // 3), V - 1, V]))
        uniform = float(rng.choice([0.0, rng.random(), 1.0 - 1e-12]))
        got = choose_token(logits, temperature, top_k, uniform, probs)
        assert got == reference_choice(logits, temperature, top_k, uniform)


def test_choose_token_never_picks_below_the_top_k_cut():
    rng = np.random.default_rng(0)
    V, top_k = 50, 3
    probs = np.empty(V)
    logits = rng.standard_normal(V)
    allowed = set(np.argsort(logits)[-top_k:].tolist())
    drawn = {int(choose_token(logits, 5.0, top_k, float(u), probs)) for u in rng.random(500)}
    assert drawn == allowed


def test_choose_token_keeps_ties_at_the_top_k_cut():
    # The 2nd largest logit is 2, shared by tokens 1-3: all of them stay, token 4 never comes.
    logits = np.array([3.0, 2.0, 2.0, 2.0, 1.0])
    probs = np.empty(5)
    uniforms = np.linspace(0, 1, 400, endpoint=False)
    drawn = {int(choose_token(logits, 1.0, 2, u, probs)) for u in uniforms}
    assert drawn == {0, 1, 2, 3}
