"""Training on long windows: recomputation in every recurrent layer, the output layer and
the loss over chunks of time steps (never the (B, S, V) scores), and a step's memory."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastrnn.layer_utils as layer_utils
import reference
from fastrnn.dropout import CounterDropout
from fastrnn.layer_utils import fc_softmax_loss, temporal_fc
from fastrnn.lm import Corpus, LanguageModel, ModelConfig, RunError, Trainer, TrainConfig
from fastrnn.lm.model import RECOMPUTE_ABOVE_BYTES
from fastrnn.lm.run_dir import FORMAT_VERSION, configs, run_document

from texts import rhyme


@pytest.fixture(scope="module")
def corpus():
    return Corpus.from_text(rhyme(lines=200))


def model_for(corpus, **options):
    config = dict(dtype="float64", embedding=8, hidden=12, layers=2)
    return LanguageModel(corpus.vocab, corpus.tokenizer, ModelConfig(**{**config, **options}),
                         seed=3)


def relative(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


def test_chunked_output_and_loss_match_the_reference():
    """7 rows a chunk over 3 x 10 rows (the last chunk partial) = the numpy reference."""
    rng = np.random.default_rng(0)
    fc = temporal_fc(5, 11, init_scale=0.5, name="out")
    x = rng.normal(size=(3, 10, 5))
    labels = rng.integers(0, 11, size=(3, 10))
    result = fc_softmax_loss(fc, x, labels, 0.25, chunk_bytes=7 * 11 * 8)
    scores = reference.temporal_fc_forward(x, fc.params["out_w"], fc.params["out_b"])
    loss, dscores = reference.temporal_softmax_loss(scores, labels, np.ones((3, 10)), False)
    dx, dw, db = reference.temporal_fc_backward(0.25 * dscores, x, fc.params["out_w"])
    assert abs(result.loss - 0.25 * loss) <= 1e-13 * loss
    assert result.correct == np.count_nonzero(scores.argmax(axis=2) == labels)
    for got, expected in ((result.dx, dx), (result.dw, dw), (result.db, db)):
        assert relative(got, expected) <= 1e-13
    assert fc.meta is None and fc.grads["out_w"] is None  # the layer is left alone
    without = fc_softmax_loss(fc, x, labels, 0.25, gradients=False, chunk_bytes=7 * 11 * 8)
    assert without.loss == result.loss and without.dx is None


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_a_chunked_training_step_equals_the_unchunked_one(corpus, cell, monkeypatch):
    """With dropout between two layers: the same loss, hits, states and gradients as
    forward + loss + backward over the whole (B, S, V) scores."""
    monkeypatch.setattr(layer_utils, "SCORE_CHUNK_BYTES", 13 * len(corpus.vocab) * 8)
    whole, chunked = model_for(corpus, cell=cell), model_for(corpus, cell=cell)
    x, targets = corpus.ids[:120].reshape(4, 30), corpus.ids[1:121].reshape(4, 30)
    dropout = CounterDropout(0.3, seed=5)
    h, c = whole.zero_state(4)
    loss, hits = whole.loss(whole.forward(x, h, c, dropout, step=2), targets)
    whole.backward(whole.loss_gradient())
    h2, c2 = chunked.zero_state(4)
    loss2, hits2 = chunked.loss_and_gradients(x, targets, h2, c2, dropout, step=2)
    assert abs(loss2 - loss) <= 1e-13 * loss and hits2 == hits
    assert np.array_equal(h2, h) and np.array_equal(c2, c)
    for name, grad in whole.grads.items():
        assert relative(chunked.grads[name], grad) <= 1e-12, name
    h3, c3 = chunked.zero_state(4)
    assert chunked.score(x, targets, h3, c3) == pytest.approx((whole.loss(
        whole.forward(x, *whole.zero_state(4)), targets)), rel=1e-13)


def counted(monkeypatch, module, name):
    """Replace ``module.name`` by a wrapper that counts its calls; returns the count list."""
    calls, kernel = [], getattr(module, name)
    monkeypatch.setattr(module, name, lambda *args: calls.append(1) or kernel(*args))
    return calls


@pytest.mark.parametrize("above_bytes, segmented", [(RECOMPUTE_ABOVE_BYTES, False), (1, True)])
def test_score_takes_the_full_path_unless_the_window_is_large(corpus, monkeypatch, above_bytes,
                                                               segmented):
    """A window whose full path stays under RECOMPUTE_ABOVE_BYTES is scored with the kernel
    training runs (one compiled forward for both); a larger one segmented, storing only
    states.  Both give the full path's loss and hits, and the layers' settings are left."""
    import fastrnn.lm.model as lm_model
    import fastrnn.recompute as recompute

    model = model_for(corpus)
    x, targets = corpus.ids[:120].reshape(4, 30), corpus.ids[1:121].reshape(4, 30)
    expected = model.loss(model.forward(x, *model.zero_state(4)), targets)
    model.set_recompute(7, rows=4, steps=30)
    monkeypatch.setattr(lm_model, "RECOMPUTE_ABOVE_BYTES", above_bytes)
    full = counted(monkeypatch, layer_utils, "lstm_forward")
    pieces = counted(monkeypatch, recompute, "lstm_forward_states")
    loss, hits = model.score(x, targets, *model.zero_state(4))
    assert loss == pytest.approx(expected[0], rel=1e-13) and hits == expected[1]
    assert (len(pieces) > 0, len(full) > 0) == (segmented, not segmented)
    assert [cell.checkpoint_every for cell in model.cells] == [7, 7]


def test_training_with_recomputation_reaches_the_same_parameters(corpus):
    """Long windows, two LSTM layers with dropout, float64: a few steps with every
    layer recomputing (K = 30: 14 segments a window; 'on' would make one segment of a
    model this small, see AUTO_MIN_PIECE_BYTES) end where storing every step does."""
    config = dict(seq_len=400, batch_size=2, lr=1e-2, epochs=1, val_tokens=1000,
                  eval_every="epoch")
    trainers = {}
    for recompute in ("off", 30):
        model = model_for(corpus, dropout=0.3)
        trainers[recompute] = Trainer(model, corpus, TrainConfig(recompute=recompute, **config))
        trainers[recompute].run(progress=False)
    off, on = trainers["off"], trainers[30]
    assert [cell.checkpoint_every for cell in on.model.cells] == [30, 30]
    assert [cell.checkpoint_every for cell in off.model.cells] == [0, 0]
    assert on.global_step == off.global_step >= 3
    for name, value in off.model.params.items():
        assert relative(on.model.params[name], value) <= 1e-12, name
    assert on.state.history[-1]["val_loss"] == pytest.approx(
        off.state.history[-1]["val_loss"], rel=1e-12)


def test_auto_recomputes_only_when_a_windows_activations_are_large(corpus):
    model = LanguageModel(corpus.vocab, corpus.tokenizer, ModelConfig(layers=2), seed=0)
    assert model.set_recompute("auto", rows=32, steps=64) == 0  # the default window: 35 MB
    assert model.set_recompute("auto", rows=32, steps=10_000) == "auto"
    # What the full path stores a step (recompute.costs): B (2 D + 7 H) floats a layer.
    per_step = 32 * ((2 * 64 + 7 * 256) + (2 * 256 + 7 * 256)) * 4
    steps = RECOMPUTE_ABOVE_BYTES // per_step
    assert model.set_recompute("auto", 32, steps) == 0
    assert model.set_recompute("auto", 32, steps + 1) == "auto"
    assert model.set_recompute("off", 32, 10_000) == 0
    assert model.set_recompute(50, 32, 10) == 50
    assert [cell.checkpoint_every for cell in model.cells] == [50, 50]


def test_a_training_steps_memory_does_not_grow_with_window_times_vocabulary():
    """S = 20,000 steps, V = 2,000 words, float32, two layers with dropout: the scores
    alone would be 153 MiB (and their gradient as much again); the step's peak memory
    beyond what it held before stays under 88 MiB: the output layer's chunk of scores
    and its gradient (2 x 16 MiB), each layer's recomputation pieces (16 MiB,
    AUTO_MIN_PIECE_BYTES) and the layer outputs and their gradients (a few MiB);
    65 MiB measured.  No mask is stored: dropout is regenerated in backward."""
    script = textwrap.dedent("""
        import json, numpy as np
        from fastrnn.dropout import CounterDropout
        from fastrnn.lm import LanguageModel, ModelConfig
        from fastrnn.text import Vocabulary, get_tokenizer

        V, S = 2000, 20000
        model = LanguageModel(Vocabulary([f"w{i}" for i in range(V)]),
                              get_tokenizer("word", "words"),
                              ModelConfig(embedding=16, hidden=32, layers=2, dropout=0.5),
                              seed=0)
        model.set_recompute("on", 1, S)
        dropout = CounterDropout(0.5, seed=1)
        ids = np.random.default_rng(0).integers(0, V, size=(1, S + 1))
        x, targets = ids[:, :-1], ids[:, 1:]
        h, c = model.zero_state(1)
        model.loss_and_gradients(x[:, :64], targets[:, :64], h, c, dropout)  # load the kernels

        def status(key):
            with open("/proc/self/status") as lines:
                return next(int(line.split()[1]) * 1024 for line in lines
                            if line.startswith(key + ":"))

        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # the peak starts again from what is in use now
        before = status("VmRSS")
        loss, _ = model.loss_and_gradients(x, targets, h, c, dropout, step=1)
        print(json.dumps({"growth": status("VmHWM") - before, "loss": loss / S,
                          "scores": S * V * 4}))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    assert measured["scores"] > 150 * 2 ** 20
    assert measured["growth"] < 88 * 2 ** 20, measured
    assert abs(measured["loss"] - np.log(2000)) < 0.1  # untrained: ~uniform over the words


def test_runs_before_format_4_stored_every_step(corpus):
    document = run_document(corpus, model_for(corpus), TrainConfig(recompute="on"))
    assert configs(document, FORMAT_VERSION)[2].recompute == "on"
    del document["training"]["recompute"]
    assert configs(document, 3)[2].recompute == "off"
    with pytest.raises(RunError, match=r"the setting training\.recompute is missing"):
        configs(document, 4)
