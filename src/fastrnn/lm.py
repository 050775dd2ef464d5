"""Language models on your own text: the Python API under the ``fastrnn`` command.

::

    from fastrnn.lm import Corpus, LanguageModel, ModelConfig, TrainConfig, train, load_run

    corpus = Corpus.from_files(["novel.txt"], level="char")       # or Corpus.builtin()
    model = LanguageModel(corpus.vocab, corpus.tokenizer, ModelConfig(hidden=256))
    result = train(model, corpus, TrainConfig(epochs=5), run_dir="runs/novel",
                   callback=lambda trainer, row: print(row["epoch"], row["val_loss"]))
    print(model.generate_text("The ", length=200, temperature=0.8, seed=1))
    model = load_run("runs/novel").model                             # later, elsewhere

Training follows char-rnn: the token stream is cut into ``batch_size``
contiguous streams (one per batch row) and read in windows of ``seq_len``
tokens; the hidden and cell states at the end of a window are the initial states
of the next one (truncated backpropagation through time: no gradient flows
back across windows), and they are reset to zero at the start of every epoch.
The tail ``val_fraction`` of the text is held out and evaluated after every
epoch.  Everything that decides the next step (parameters, Adam's moments, the
carried states, the dropout generator, the position in the epoch) is in the
checkpoint, so an interrupted and resumed run ends with exactly the parameters
of an uninterrupted one.

Shapes: B batch rows (streams), S window length (``seq_len``), L layers,
E embedding size, H hidden size, V vocabulary size.
"""

import dataclasses
import hashlib
import json
import math
import os
import signal
import sys
import threading
import time

import numpy as np
from tqdm.auto import tqdm

from . import _checks
from . import corpus as builtin_corpus
from ._threads import generation_chunks
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint, write_text
from .kernels.generate import generate as generate_kernel
from .layer_utils import LSTM, RNN, VanillaRNN, temporal_fc, temporal_softmax_loss, word_embedding
from .optim import Adam
from .text import TextError, Tokenizer, Vocabulary, get_tokenizer, read_text

__all__ = [
    "TextConfig", "ModelConfig", "TrainConfig", "Corpus", "LanguageModel", "Trainer",
    "TrainResult", "Run", "train", "resume", "load_run", "RunError",
]

RUN_FORMAT = "fastrnn-run-1"
CONFIG_FILE = "config.json"
VOCAB_FILE = "vocab.json"
LATEST = "checkpoint_latest.npz"
BEST = "checkpoint_best.npz"
METRICS_FILE = "metrics.jsonl"
CURVES_FILE = "curves.png"
SAMPLES_FILE = "samples.txt"



class RunError(ValueError):
    """A run directory that cannot be used as asked (missing, already a run, finished...)."""


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------

def _require(condition, name, expected, value):
    if not condition:
        raise ValueError(f"{name}: expected {expected}, got {value!r}")


def _is_int(value):
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


@dataclasses.dataclass
class TextConfig:
    """How text becomes tokens.

    level: 'char' or 'word'; tokenizer (word level): 'words' (punctuation and line
    breaks are tokens) or 'notebook' (lowercase, split on spaces and newlines);
    min_count: with the 'words' tokenizer, words seen fewer times become ``<unk>``;
    origin: 'files' (then ``sources`` are their absolute paths), 'builtin' (the
    built-in corpus) or 'text' (a string given in Python, which cannot be read again).
    """

    level: str = "char"
    tokenizer: str = "words"
    min_count: int = 2
    origin: str = "text"
    sources: list = dataclasses.field(default_factory=list)
    encoding: str = "utf-8"

    def validate(self):
        get_tokenizer(self.level, self.tokenizer)
        _require(self.origin in ("files", "builtin", "text"), "origin",
                 "'files', 'builtin' or 'text'", self.origin)
        _require(_is_int(self.min_count) and self.min_count >= 1, "min_count",
                 "an integer >= 1", self.min_count)
        return self

    def describe(self):
        """Where the text comes from, for messages."""
        return {"files": ", ".join(self.sources),
                "builtin": "the built-in corpus (standard-library docstrings)",
                "text": "a text given in Python"}[self.origin]

    @property
    def effective_min_count(self):
        """Only the 'words' tokenizer maps rare tokens to ``<unk>``."""
        return self.min_count if self.level == "word" and self.tokenizer == "words" else 1


@dataclasses.dataclass
class ModelConfig:
    """Embedding -> ``layers`` recurrent layers (``cell`` 'lstm' or 'rnn') -> linear.

    dropout: probability of dropping an activation between stacked layers
    (training only); dtype: 'float32' (fast) or 'float64'.
    """

    cell: str = "lstm"
    layers: int = 1
    embedding: int = 64
    hidden: int = 256
    dropout: float = 0.0
    dtype: str = "float32"

    def validate(self):
        _require(self.cell in ("lstm", "rnn"), "cell", "'lstm' or 'rnn'", self.cell)
        for name in ("layers", "embedding", "hidden"):
            value = getattr(self, name)
            _require(_is_int(value) and value >= 1, name, "an integer >= 1", value)
        _require(0.0 <= self.dropout < 1.0, "dropout", "a probability in [0, 1)", self.dropout)
        _require(self.dtype in _checks.FLOAT_NAMES, "dtype", "'float32' or 'float64'", self.dtype)
        return self


@dataclasses.dataclass
class TrainConfig:
    """Truncated BPTT with Adam.

    Training stops after ``epochs`` epochs or ``time_budget`` seconds (of this
    run, all sessions together), whichever comes first; at least one is needed.
    clip: maximum global norm of the gradient (0 = no clipping);
    val_fraction: the share of the text, at its end, held out for validation.
    """

    seq_len: int = 64
    batch_size: int = 32
    epochs: int | None = None
    time_budget: float | None = 120.0
    lr: float = 5e-3
    clip: float = 5.0
    val_fraction: float = 0.1
    seed: int = 0

    def validate(self):
        for name in ("seq_len", "batch_size"):
            value = getattr(self, name)
            _require(_is_int(value) and value >= 1, name, "an integer >= 1", value)
        _require(self.epochs is None or (_is_int(self.epochs) and self.epochs >= 1), "epochs",
                 "an integer >= 1 or None", self.epochs)
        _require(self.time_budget is None or self.time_budget > 0, "time_budget",
                 "a number of seconds > 0 or None", self.time_budget)
        _require(self.epochs is not None or self.time_budget is not None, "epochs",
                 "a number of epochs or a time budget (both are None)", None)
        _require(self.lr > 0, "lr", "a learning rate > 0", self.lr)
        _require(self.clip >= 0, "clip", "a gradient norm >= 0 (0 = no clipping)", self.clip)
        _require(0.0 < self.val_fraction <= 0.5, "val_fraction", "a fraction in (0, 0.5]",
                 self.val_fraction)
        _require(_is_int(self.seed) and self.seed >= 0, "seed", "an integer >= 0", self.seed)
        return self


# --------------------------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------------------------

class Corpus:
    """A tokenized text: ``tokenizer``, ``vocab`` and ``ids`` (n,) int64.

    With ``vocab`` given (a saved model's), the text is encoded with it instead of
    building a new one; a token it does not know is an error unless it has ``<unk>``.
    """

    def __init__(self, text, config=None, vocab=None):
        self.config = (config or TextConfig()).validate()
        self.tokenizer = get_tokenizer(self.config.level, self.config.tokenizer)
        tokens = self.tokenizer.split(text)
        if vocab is None:
            vocab = Vocabulary.build(tokens, self.config.effective_min_count)
        self.vocab = vocab
        try:
            self.ids = vocab.encode(tokens)
        except KeyError as err:
            raise TextError(f"text: the token {err.args[0]!r} is not in the saved vocabulary "
                            "(the text changed since the run started)") from None

    @classmethod
    def from_text(cls, text, level="char", tokenizer="words", min_count=2, vocab=None):
        """A corpus of the string ``text``."""
        return cls(text, TextConfig(level, tokenizer, min_count), vocab)

    @classmethod
    def from_files(cls, paths, level="char", tokenizer="words", min_count=2,
                   encoding="utf-8", vocab=None):
        """A corpus of text files (joined by newlines); see :func:`fastrnn.text.read_text`."""
        paths = [os.path.abspath(p) for p in paths]
        text = read_text(paths, encoding)
        return cls(text, TextConfig(level, tokenizer, min_count, "files", paths, encoding), vocab)

    @classmethod
    def builtin(cls, level="char", tokenizer="words", min_count=2, vocab=None):
        """The built-in English corpus (:func:`fastrnn.corpus.stdlib_docstrings`)."""
        return cls(builtin_corpus.stdlib_docstrings(),
                   TextConfig(level, tokenizer, min_count, "builtin"), vocab)

    @classmethod
    def from_config(cls, config, vocab=None):
        """The corpus a run was trained on, read again from its sources."""
        if config.origin == "files":
            return cls.from_files(config.sources, config.level, config.tokenizer,
                                  config.min_count, config.encoding, vocab)
        if config.origin == "builtin":
            return cls.builtin(config.level, config.tokenizer, config.min_count, vocab)
        raise RunError("the run was trained on a text given in Python, which cannot be read "
                       "again: pass the same Corpus")

    def __len__(self):
        return len(self.ids)

    @property
    def fingerprint(self):
        """SHA-256 of the token ids: tells whether a resumed run sees the same text."""
        return hashlib.sha256(self.ids.tobytes()).hexdigest()

    def describe(self):
        """Where the text came from, for messages."""
        return self.config.describe()

    def split(self, train_config):
        """(train ids, validation ids): the validation ids are the tail of the text.

        Training needs one window of ``seq_len + 1`` tokens (inputs and the next
        tokens) in each of ``batch_size`` streams; validation at least one window
        of ``seq_len + 1`` tokens.  Raises TextError saying how many tokens that is.
        """
        S, B, fraction = train_config.seq_len, train_config.batch_size, train_config.val_fraction
        n = len(self.ids)
        needed = minimum_tokens(S, B, fraction)
        if n < needed:
            raise TextError(
                f"text too short: {n} {self.config.level} tokens, need at least {needed} "
                f"(one window of seq_len + 1 = {S + 1} tokens in each of batch_size = {B} "
                f"streams for training, plus a validation tail of {fraction:g} of the text, "
                f"at least {S + 1} tokens); use a longer text or smaller --seq-len/--batch-size")
        n_val = _validation_size(n, S, fraction)
        return self.ids[:n - n_val], self.ids[n - n_val:]


def _validation_size(n_tokens, seq_len, val_fraction):
    return max(int(n_tokens * val_fraction), seq_len + 1)


def minimum_tokens(seq_len, batch_size, val_fraction):
    """The fewest tokens with one training window per stream and one validation window."""
    train_needed = batch_size * (seq_len + 1)
    n = max(train_needed + seq_len + 1, math.ceil(train_needed / (1.0 - val_fraction)))
    while n - _validation_size(n, seq_len, val_fraction) < train_needed:
        n += 1
    return n


def streams(ids, rows):
    """Cut ``ids`` (n,) into ``rows`` contiguous streams: (rows, n // rows), the tail dropped."""
    length = len(ids) // rows
    return np.ascontiguousarray(ids[:rows * length].reshape(rows, length))


# --------------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------------

class LanguageModel:
    """Embedding (V, E) -> L recurrent layers of H units -> linear (H, V) scores.

    Built from the layers of :mod:`fastrnn.layer_utils` (``embedding``,
    ``layer0``...``layer{L-1}``, ``output``); ``params`` and ``grads`` are live
    views of theirs, by name.  Weights are drawn from ``numpy.random.default_rng(seed)``
    (the global numpy generator is left untouched): recurrent and output weights
    uniform in +-1/sqrt(H) (as PyTorch), LSTM forget-gate biases 1, embedding N(0, 1).
    """

    def __init__(self, vocab, tokenizer, config=None, seed=0):
        self.config = (config or ModelConfig()).validate()
        self.vocab = vocab
        self.tokenizer = tokenizer if isinstance(tokenizer, Tokenizer) else Tokenizer(tokenizer)
        self.dtype = np.dtype(self.config.dtype)
        self.is_lstm = self.config.cell == "lstm"
        V, E, H = len(vocab), self.config.embedding, self.config.hidden
        cell_class = LSTM if self.is_lstm else VanillaRNN
        # The layers draw their initial weights from the global generator; keep
        # the caller's global state, the weights are redrawn from ``seed`` below.
        global_state = np.random.get_state()
        try:
            self.embedding = word_embedding(V, E, name="embedding", dtype=self.dtype)
            self.cells = [cell_class(E if layer == 0 else H, H, name=f"layer{layer}",
                                     dtype=self.dtype)
                          for layer in range(self.config.layers)]
            self.output = temporal_fc(H, V, name="output", dtype=self.dtype)
        finally:
            np.random.set_state(global_state)
        self.net = RNN(self.embedding, *self.cells, self.output)
        self.params, self.grads = self.net.params, self.net.grads
        self._loss = temporal_softmax_loss(dim_average=True)
        self._dropout_masks = []
        self._initialise(np.random.default_rng(seed))

    def _initialise(self, rng):
        H = self.config.hidden
        bound = 1.0 / math.sqrt(H)
        for name, value in self.params.items():
            if name == self.embedding.w_name:
                new = rng.standard_normal(value.shape)
            elif name == self.output.b_name:
                new = np.zeros(value.shape)
            else:
                new = rng.uniform(-bound, bound, value.shape)
            value[...] = new
        if self.is_lstm:
            for cell in self.cells:
                cell.params[cell.b_name][H:2 * H] = 1.0  # forget gates open at the start

    @property
    def num_layers(self):
        return self.config.layers

    @property
    def hidden_size(self):
        return self.config.hidden

    def parameter_count(self):
        return int(sum(value.size for value in self.params.values()))

    def zero_state(self, rows):
        """(h, c), each (L, rows, H) zeros: the state at the start of a stream."""
        shape = (self.num_layers, rows, self.hidden_size)
        return np.zeros(shape, self.dtype), np.zeros(shape, self.dtype)

    def forward(self, x, h, c, dropout_rng=None):
        """Scores (B, S, V) for tokens x int (B, S).

        h, c (L, B, H): the states before the window, overwritten with the states
        after it (c is unused by a tanh RNN).  With ``dropout_rng`` (a numpy
        Generator) and ``dropout > 0``, inverted dropout is applied between
        layers and the masks are kept for :meth:`backward`.
        """
        activations = self.embedding.forward(x)
        keep = 1.0 - self.config.dropout
        self._dropout_masks = []
        for layer, cell in enumerate(self.cells):
            # The layer keeps its own copies of the initial states for backward, so
            # h and c can be overwritten with the final states just below.
            if self.is_lstm:
                activations = cell.forward(activations, h[layer], c[layer])
                c[layer] = cell.final_c
            else:
                activations = cell.forward(activations, h[layer])
            h[layer] = activations[:, -1]
            mask = None
            if dropout_rng is not None and keep < 1.0 and layer < self.num_layers - 1:
                kept = dropout_rng.random(activations.shape, dtype=self.dtype) < keep
                mask = kept * self.dtype.type(1.0 / keep)
                activations *= mask
            self._dropout_masks.append(mask)
        return self.output.forward(activations)

    def backward(self, dscores):
        """dscores (B, S, V) -> fills ``grads`` of every layer (the initial states get none)."""
        dactivations = self.output.backward(dscores)
        for layer in reversed(range(self.num_layers)):
            mask = self._dropout_masks[layer]
            if mask is not None:
                dactivations *= mask
            dactivations, _ = self.cells[layer].backward(dactivations)
        self.embedding.backward(dactivations)

    def loss(self, scores, targets):
        """(sum over the B*S tokens of -log p(target), number of correct argmax predictions).

        Keeps the gradient of the MEAN loss per token for :meth:`loss_gradient`.
        """
        B, S, _ = scores.shape
        mean_over_rows = self._loss.forward(scores, targets, np.ones((B, S), self.dtype))
        correct = int(np.count_nonzero(scores.argmax(axis=-1) == targets))
        return float(mean_over_rows) * B, correct

    def loss_gradient(self):
        """d(mean loss per token) / d scores, (B, S, V), of the last :meth:`loss`."""
        dscores = self._loss.backward()
        dscores *= self.dtype.type(1.0 / dscores.shape[1])  # the layer averages over B only
        return dscores

    def clip_gradients(self, max_norm):
        """Scale all gradients together so that their global L2 norm is at most
        ``max_norm`` (0 = no clipping).  Returns the norm before clipping."""
        grads = list(self.grads.values())
        norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
        if 0 < max_norm < norm:
            scale = self.dtype.type(max_norm / norm)
            for g in grads:
                g *= scale
        return norm

    def evaluate(self, ids, seq_len, rows):
        """Loss, perplexity and accuracy of predicting ``ids[t + 1]`` from ``ids[:t + 1]``.

        ids (n,) are cut into ``rows`` streams (fewer if there are not seq_len + 1
        tokens per stream), read in windows of ``seq_len`` with the state carried,
        as in training, without dropout.  Returns a dict with ``loss`` (nats per
        token), ``perplexity``, ``accuracy`` and ``tokens`` (the number predicted).
        """
        rows = max(1, min(rows, len(ids) // (seq_len + 1)))
        data = streams(ids, rows)
        h, c = self.zero_state(rows)
        total_loss, correct, tokens = 0.0, 0, 0
        for start in range(0, data.shape[1] - 1, seq_len):
            stop = min(start + seq_len, data.shape[1] - 1)
            targets = data[:, start + 1:stop + 1]
            loss_sum, hits = self.loss(self.forward(data[:, start:stop], h, c), targets)
            total_loss += loss_sum
            correct += hits
            tokens += targets.size
        loss = total_loss / tokens
        return {"loss": loss, "perplexity": math.exp(min(loss, 700.0)),
                "accuracy": correct / tokens, "tokens": tokens}

    # ---------------------------------------------------------------- generation

    def _kernel_weights(self):
        """The weights as the generation kernel takes them: contiguous, one dtype."""
        def ready(array):
            return np.ascontiguousarray(array, dtype=self.dtype)
        return (ready(self.params[self.embedding.w_name]),
                tuple(ready(cell.params[cell.wx_name]) for cell in self.cells),
                tuple(ready(cell.params[cell.wh_name]) for cell in self.cells),
                tuple(ready(cell.params[cell.b_name]) for cell in self.cells),
                ready(self.params[self.output.w_name]), ready(self.params[self.output.b_name]))

    def generate_ids(self, prime, length, temperature=1.0, top_k=0, rng=None, state=None):
        """Feed ``prime`` (P,) token ids and draw ``length`` more: int64 (length,).

        temperature 0 is greedy (argmax); otherwise tokens are drawn from
        softmax(scores / temperature), among the ``top_k`` best (0 = all).
        rng: numpy Generator of the draws (a fresh unseeded one when None).
        state: (h, c), each (L, 1, H), the state before ``prime``, updated in
        place (zeros when None).  After the call it has consumed ``prime`` and all
        but the last generated token, so ``generate_ids(out[-1:], ...)`` with the
        same state and generator continues the same sequence.
        The loop runs in one compiled call.
        """
        V = len(self.vocab)
        prime = np.asarray(prime)
        if prime.ndim != 1 or prime.size < 1 or not np.issubdtype(prime.dtype, np.integer):
            raise ValueError(f"prime: expected a non-empty 1-D array of token ids, got {prime!r}")
        if prime.min() < 0 or prime.max() >= V:
            raise ValueError(f"prime: expected token ids in [0, {V}), "
                             f"got {prime.min()}..{prime.max()}")
        _require(_is_int(length) and length >= 0, "length", "an integer >= 0", length)
        _require(math.isfinite(temperature) and temperature >= 0, "temperature",
                 "a number >= 0 (0 = greedy)", temperature)
        _require(_is_int(top_k) and top_k >= 0, "top_k", "an integer >= 0 (0 = all)", top_k)
        if state is None:
            state = self.zero_state(1)
        h, c = state
        shape = (self.num_layers, 1, self.hidden_size)
        for name, array in (("h", h), ("c", c)):
            if not (isinstance(array, np.ndarray) and array.shape == shape
                    and array.dtype == self.dtype and array.flags.c_contiguous):
                raise ValueError(f"state {name}: expected a C-contiguous {self.dtype.name} "
                                 f"array of shape {shape}")
        rng = np.random.default_rng() if rng is None else rng
        uniforms = rng.random(int(length))
        out = np.empty(int(length), dtype=np.int64)
        if length == 0:
            return out
        embedding, wxs, whs, bs, fc_w, fc_b = self._kernel_weights()
        generate_kernel(embedding, wxs, whs, bs, fc_w, fc_b, self.is_lstm,
                        np.ascontiguousarray(prime, dtype=np.int64), float(temperature),
                        int(top_k), uniforms, h.reshape(shape[0], shape[2]),
                        c.reshape(shape[0], shape[2]), out, generation_chunks(V, shape[2]))
        return out

    def default_prime(self):
        """The token generation starts from when no start text is given: a line
        break if the vocabulary has one, else the most frequent token."""
        if "\n" in self.vocab.index:
            return self.vocab.index["\n"]
        # The vocabulary is sorted by decreasing count, after <unk> when there is one.
        return 1 if self.vocab.unknown == 0 and len(self.vocab) > 1 else 0

    def generate_text(self, start="", length=200, temperature=0.8, top_k=0, seed=None,
                      write=None, chunk=64):
        """Text continuing ``start``: ``start`` followed by ``length`` generated tokens.

        ``start`` is split with the model's tokenizer; a token not in the
        vocabulary is a TextError suggesting close matches.  With ``write`` (e.g.
        ``sys.stdout.write``), the text is also passed to it piece by piece as it
        is generated, ``chunk`` tokens per compiled call.  ``seed`` makes the
        draws reproducible (the result does not depend on ``chunk``).
        """
        _require(_is_int(chunk) and chunk >= 1, "chunk", "an integer >= 1", chunk)
        start_tokens = self.tokenizer.split(start) if start else []
        prime = (self.vocab.encode_exactly(start_tokens) if start_tokens
                 else np.array([self.default_prime()], dtype=np.int64))
        detokenize = self.tokenizer.detokenizer()
        detokenize(start_tokens)  # the spacing of what follows depends on the start
        pieces = [start]
        if write is not None and start:
            write(start)
        rng = np.random.default_rng(seed)
        state = self.zero_state(1)
        remaining = length
        while remaining > 0:
            n = min(chunk, remaining)
            ids = self.generate_ids(prime, n, temperature, top_k, rng, state)
            piece = detokenize(self.vocab.decode(ids))
            pieces.append(piece)
            if write is not None:
                write(piece)
            prime = ids[-1:]
            remaining -= n
        return "".join(pieces)

    # ---------------------------------------------------------------- saving

    def state_arrays(self):
        """The parameters, ``param/<name>`` -> array (copies)."""
        return {f"param/{name}": value.copy() for name, value in self.params.items()}

    def load_state_arrays(self, arrays, source="checkpoint"):
        """Copy ``param/<name>`` arrays into the parameters, checking names and shapes first."""
        for name, value in self.params.items():
            key = f"param/{name}"
            if key not in arrays:
                raise CheckpointError(f"{source}: no parameter {name!r}; it does not belong "
                                      "to this model")
            if arrays[key].shape != value.shape or arrays[key].dtype != value.dtype:
                raise CheckpointError(
                    f"{source}: parameter {name!r} is {arrays[key].dtype} {arrays[key].shape}, "
                    f"the model needs {value.dtype} {value.shape}")
        for name, value in self.params.items():
            value[...] = arrays[f"param/{name}"]


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class TrainResult:
    """How a call to :meth:`Trainer.run` ended.

    stopped: 'epochs', 'time', 'interrupted' (Ctrl-C) or 'callback';
    last: the last metrics row (None when no validation ran).
    """

    stopped: str
    epochs: int
    steps: int
    seconds: float
    best_val_loss: float | None
    last: dict | None


class _StopOnInterrupt:
    """While active (main thread only), the first Ctrl-C asks the loop to stop at
    the end of the current step, so a checkpoint of a consistent state can be
    written; a second Ctrl-C interrupts at once, as usual."""

    def __init__(self):
        self.requested = False
        self._installed = False
        self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True
        return self

    def __exit__(self, *exc):
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _progress_bar(total, enabled):
    """A tqdm bar on stderr; ``enabled`` None means 'when stderr is a terminal'."""
    if enabled is None:
        enabled = sys.stderr.isatty()
    return tqdm(total=total, disable=not enabled, unit="step", file=sys.stderr, leave=False,
                dynamic_ncols=True,
                bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")


class Trainer:
    """Trains a :class:`LanguageModel` on a :class:`Corpus`; see the module docstring.

    run_dir: where to write the run's files (nothing is written when None).
    ``run()`` may be called again to train further.
    """

    def __init__(self, model, corpus, config=None, run_dir=None):
        self.model = model
        self.corpus = corpus
        self.config = (config or TrainConfig()).validate()
        self.run_dir = run_dir
        if model.vocab is not corpus.vocab and model.vocab.tokens != corpus.vocab.tokens:
            raise ValueError("model, corpus: the model was built for another vocabulary")
        train_ids, self.val_ids = corpus.split(self.config)
        S, B = self.config.seq_len, self.config.batch_size
        self.train_streams = streams(train_ids, B)
        self.windows_per_epoch = (self.train_streams.shape[1] - 1) // S
        self.optimizer = Adam(model.net, lr=self.config.lr)
        self.dropout_rng = np.random.default_rng([self.config.seed, 1])
        self.h, self.c = model.zero_state(B)
        self.epoch = 0          # completed epochs
        self.step_in_epoch = 0  # the next window of the current epoch
        self.global_step = 0
        self.seconds = 0.0
        self.best_val_loss = None
        self.history = []
        self.samples = []
        self._epoch_loss, self._epoch_correct, self._epoch_tokens = 0.0, 0, 0

    # ---------------------------------------------------------------- one step

    def _train_window(self, window):
        """Forward, backward, clip and Adam step on window ``window`` of every stream."""
        S = self.config.seq_len
        x = self.train_streams[:, window * S:(window + 1) * S]
        targets = self.train_streams[:, window * S + 1:(window + 1) * S + 1]
        scores = self.model.forward(x, self.h, self.c, self.dropout_rng)
        loss_sum, correct = self.model.loss(scores, targets)
        self.model.backward(self.model.loss_gradient())
        self.model.clip_gradients(self.config.clip)
        self.optimizer.step()
        self._epoch_loss += loss_sum
        self._epoch_correct += correct
        self._epoch_tokens += targets.size
        return loss_sum / targets.size

    # ---------------------------------------------------------------- the loop

    def run(self, callback=None, progress=None, epochs=None, time_budget=None):
        """Train until the configured epochs or time budget are reached.

        epochs, time_budget: when given, replace the configured ones (e.g. to
        train a finished run further).  callback(trainer, row): called after
        every validation with its metrics row; returning True stops training.
        progress: show a progress bar (None: when stderr is a terminal).
        Ctrl-C stops at the end of the current step and writes a checkpoint.
        """
        if epochs is not None or time_budget is not None:
            self.config = dataclasses.replace(self.config, epochs=epochs,
                                              time_budget=time_budget).validate()
        if self.run_dir is not None:
            self._write_run_files()
        epochs, budget = self.config.epochs, self.config.time_budget
        tokens_per_step = self.train_streams.shape[0] * self.config.seq_len
        steps_left = None if epochs is None else max(
            0, epochs * self.windows_per_epoch - self.global_step)
        session_start, session_steps = time.perf_counter(), 0
        seconds_before = self.seconds
        stopped = None
        with _StopOnInterrupt() as interrupt, _progress_bar(steps_left, progress) as bar:
            while stopped is None:
                if epochs is not None and self.epoch >= epochs:
                    stopped = "epochs"
                    break
                if budget is not None and self.seconds >= budget:
                    stopped = "time"
                    break
                if interrupt.requested:
                    stopped = "interrupted"
                    break
                if self.step_in_epoch == 0:  # a new epoch: streams restart from zero states
                    self.h[...] = 0.0
                    self.c[...] = 0.0
                    self._epoch_loss, self._epoch_correct, self._epoch_tokens = 0.0, 0, 0
                loss = self._train_window(self.step_in_epoch)
                self.step_in_epoch += 1
                self.global_step += 1
                session_steps += 1
                self.seconds = seconds_before + time.perf_counter() - session_start
                bar.update(1)
                bar.set_postfix_str(self._progress_text(
                    loss, session_steps * tokens_per_step, time.perf_counter() - session_start))
                if self.step_in_epoch == self.windows_per_epoch:
                    self.epoch += 1
                    self.step_in_epoch = 0
                    row = self._validate_and_save()
                    self.seconds = seconds_before + time.perf_counter() - session_start
                    if callback is not None and callback(self, row):
                        stopped = "callback"
        if stopped == "time" and self.step_in_epoch > 0:
            # A budget ends mid-epoch: validate what was reached, so the run has a score.
            row = self._validate_and_save()
            if callback is not None:
                callback(self, row)
        elif self.run_dir is not None and stopped == "interrupted":
            self._save(LATEST)
        return TrainResult(stopped, self.epoch, self.global_step, self.seconds,
                           self.best_val_loss, self.history[-1] if self.history else None)

    def _progress_text(self, loss, session_tokens, elapsed):
        """The bar's postfix: epoch, loss of the last step, tokens/s and the time left."""
        tokens_per_second = session_tokens / max(elapsed, 1e-9)
        etas = []
        if self.config.epochs is not None:
            steps_left = self.config.epochs * self.windows_per_epoch - self.global_step
            tokens_per_step = self.train_streams.shape[0] * self.config.seq_len
            etas.append(steps_left * tokens_per_step / tokens_per_second)
        if self.config.time_budget is not None:
            etas.append(max(0.0, self.config.time_budget - self.seconds))
        eta = f", ETA {_clock(min(etas))}" if etas else ""
        return f"epoch {self.epoch + 1}, loss {loss:.3f}, {tokens_per_second:,.0f} tok/s{eta}"

    def _validate_and_save(self):
        """Validate, log a metrics row and a sample, write checkpoints, metrics and curves."""
        evaluation = self.evaluate()
        tokens = max(1, self._epoch_tokens)
        row = {
            "epoch": round(self.epoch + self.step_in_epoch / self.windows_per_epoch, 4),
            "step": self.global_step,
            "seconds": round(self.seconds, 3),
            "train_loss": self._epoch_loss / tokens,
            "train_accuracy": self._epoch_correct / tokens,
            "val_loss": evaluation["loss"],
            "val_perplexity": evaluation["perplexity"],
            "val_accuracy": evaluation["accuracy"],
        }
        self.history.append(row)
        sample_length = 300 if self.model.tokenizer.name == "char" else 60
        self.samples.append((row["epoch"], self.model.generate_text(
            length=sample_length, temperature=0.8, seed=[self.config.seed, self.global_step])))
        improved = self.best_val_loss is None or row["val_loss"] < self.best_val_loss
        if improved:
            self.best_val_loss = row["val_loss"]
        if self.run_dir is not None:
            self._save(LATEST)
            if improved:
                self._save(BEST)
            self._write_logs()
        return row

    def evaluate(self):
        """Metrics of the model on the validation tail (see :meth:`LanguageModel.evaluate`)."""
        return self.model.evaluate(self.val_ids, self.config.seq_len, self.config.batch_size)

    # ---------------------------------------------------------------- files

    def run_config(self):
        """The JSON document of ``config.json``."""
        return {
            "format": RUN_FORMAT,
            "text": {**dataclasses.asdict(self.corpus.config), "tokens": len(self.corpus),
                     "sha256": self.corpus.fingerprint},
            "model": {**dataclasses.asdict(self.model.config), "vocab_size": len(self.model.vocab),
                      "parameters": self.model.parameter_count()},
            "training": dataclasses.asdict(self.config),
        }

    def _write_run_files(self):
        os.makedirs(self.run_dir, exist_ok=True)
        write_text(os.path.join(self.run_dir, CONFIG_FILE),
                   json.dumps(self.run_config(), indent=2) + "\n")
        write_text(os.path.join(self.run_dir, VOCAB_FILE), self.model.vocab.to_json() + "\n")

    def _write_logs(self):
        # matplotlib is imported only by runs that write their curves (it is slow to import).
        from .plots import plot_training_curves

        write_text(os.path.join(self.run_dir, METRICS_FILE),
                   "".join(json.dumps(row) + "\n" for row in self.history))
        write_text(os.path.join(self.run_dir, SAMPLES_FILE),
                   "".join(f"=== epoch {epoch:g} ===\n{text}\n\n" for epoch, text in self.samples))
        plot_training_curves(self.history, os.path.join(self.run_dir, CURVES_FILE))

    def checkpoint_contents(self):
        """(arrays, meta): everything needed to continue exactly where training is."""
        arrays = self.model.state_arrays()
        optimizer = self.optimizer.state_dict()
        for name, (m, v) in optimizer["state"].items():
            arrays[f"adam_m/{name}"] = m
            arrays[f"adam_v/{name}"] = v
        arrays["state/h"] = self.h.copy()
        arrays["state/c"] = self.c.copy()
        meta = {
            "epoch": self.epoch, "step_in_epoch": self.step_in_epoch,
            "global_step": self.global_step, "seconds": self.seconds,
            "best_val_loss": self.best_val_loss, "adam_t": optimizer["t"], "lr": optimizer["lr"],
            "dropout_rng": self.dropout_rng.bit_generator.state,
            "epoch_loss": self._epoch_loss, "epoch_correct": self._epoch_correct,
            "epoch_tokens": self._epoch_tokens, "history": self.history,
            "samples": self.samples,
        }
        return arrays, meta

    def _save(self, name):
        arrays, meta = self.checkpoint_contents()
        save_checkpoint(os.path.join(self.run_dir, name), arrays, meta)

    def restore(self, arrays, meta, source="checkpoint"):
        """Continue from :meth:`checkpoint_contents` (checked before anything changes)."""
        shape = self.h.shape
        for key in ("state/h", "state/c"):
            if key not in arrays or arrays[key].shape != shape:
                raise CheckpointError(f"{source}: {key} is missing or not of shape {shape}")
        try:
            adam = {"lr": meta["lr"], "t": meta["adam_t"], "state": {
                name: [arrays[f"adam_m/{name}"], arrays[f"adam_v/{name}"]]
                for name in self.model.params if f"adam_m/{name}" in arrays}}
            counters = {key: meta[key] for key in (
                "epoch", "step_in_epoch", "global_step", "seconds", "best_val_loss",
                "epoch_loss", "epoch_correct", "epoch_tokens", "history", "samples",
                "dropout_rng")}
        except KeyError as err:
            raise CheckpointError(f"{source}: {err.args[0]!r} is missing") from None
        if counters["step_in_epoch"] >= self.windows_per_epoch:
            raise CheckpointError(f"{source}: its position in the epoch does not fit this text")
        self.model.load_state_arrays(arrays, source)
        self.optimizer.load_state_dict(adam)
        self.h[...] = arrays["state/h"]
        self.c[...] = arrays["state/c"]
        self.dropout_rng.bit_generator.state = counters.pop("dropout_rng")
        self.epoch = counters["epoch"]
        self.step_in_epoch = counters["step_in_epoch"]
        self.global_step = counters["global_step"]
        self.seconds = counters["seconds"]
        self.best_val_loss = counters["best_val_loss"]
        self._epoch_loss = counters["epoch_loss"]
        self._epoch_correct = counters["epoch_correct"]
        self._epoch_tokens = counters["epoch_tokens"]
        self.history = list(counters["history"])
        self.samples = [tuple(pair) for pair in counters["samples"]]


def _clock(seconds):
    seconds = int(round(seconds))
    return f"{seconds // 60:d}:{seconds % 60:02d}"


def train(model, corpus, config=None, run_dir=None, callback=None, progress=None):
    """Train ``model`` on ``corpus`` (see :class:`Trainer`); returns a :class:`TrainResult`.

    With ``run_dir``, the run's files are written there; it must not hold a run
    already (continue one with :func:`resume`).
    """
    if run_dir is not None and os.path.exists(os.path.join(run_dir, CONFIG_FILE)):
        raise RunError(f"{run_dir}: already holds a run; resume it or choose another directory")
    trainer = Trainer(model, corpus, config, run_dir)
    return trainer.run(callback, progress)


# --------------------------------------------------------------------------------------------
# Run directories
# --------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Run:
    """A run directory, loaded: its configuration (the ``config.json`` document),
    the model with the parameters of a checkpoint, and that checkpoint's metadata."""

    directory: str
    config: dict
    model: LanguageModel
    checkpoint: str
    meta: dict


def _read_run_config(run_dir):
    path = os.path.join(run_dir, CONFIG_FILE)
    if not os.path.isdir(run_dir):
        raise RunError(f"{run_dir}: no such run directory")
    try:
        with open(path, encoding="utf-8") as stream:
            config = json.load(stream)
        with open(os.path.join(run_dir, VOCAB_FILE), encoding="utf-8") as stream:
            vocab = Vocabulary.from_json(stream.read())
    except FileNotFoundError as err:
        raise RunError(f"{run_dir}: not a run directory ({os.path.basename(err.filename)} "
                       "is missing)") from None
    except (ValueError, KeyError, TypeError) as err:
        raise RunError(f"{run_dir}: unreadable run files ({err})") from None
    if config.get("format") != RUN_FORMAT:
        raise RunError(f"{path}: not a {RUN_FORMAT} configuration")
    return config, vocab


def _configs(document):
    """(TextConfig, ModelConfig, TrainConfig) of a ``config.json`` document."""
    def build(cls, values):
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in fields}).validate()
    return (build(TextConfig, document["text"]), build(ModelConfig, document["model"]),
            build(TrainConfig, document["training"]))


def load_run(run_dir, checkpoint="best"):
    """The model of a run directory, with the parameters of its best checkpoint
    (``checkpoint='latest'``: the latest; 'best' falls back to the latest when
    no validation has run yet).  Returns a :class:`Run`."""
    _require(checkpoint in ("best", "latest"), "checkpoint", "'best' or 'latest'", checkpoint)
    document, vocab = _read_run_config(run_dir)
    text_config, model_config, train_config = _configs(document)
    name = BEST if checkpoint == "best" and os.path.exists(os.path.join(run_dir, BEST)) \
        else LATEST
    path = os.path.join(run_dir, name)
    arrays, meta = load_checkpoint(path)
    model = LanguageModel(vocab, get_tokenizer(text_config.level, text_config.tokenizer),
                          model_config, train_config.seed)
    model.load_state_arrays(arrays, path)
    return Run(run_dir, document, model, name, meta)


def resume(run_dir, epochs=None, time_budget=None, callback=None, progress=None,
           corpus=None):
    """Continue the run in ``run_dir`` from its latest checkpoint.

    The text is read again from the run's sources (or ``corpus``) and must be the
    one it started with.  ``epochs``/``time_budget`` replace the configured
    limits.  Everything is read and checked before any file is written.
    Returns a :class:`TrainResult`.
    """
    trainer = resume_trainer(run_dir, corpus)
    if epochs is not None or time_budget is not None:
        trainer.config = dataclasses.replace(trainer.config, epochs=epochs,
                                             time_budget=time_budget).validate()
    done = trainer.config.epochs is not None and trainer.epoch >= trainer.config.epochs
    over = trainer.config.time_budget is not None and trainer.seconds >= trainer.config.time_budget
    if done or over:
        reached = (f"{trainer.epoch} epochs (limit {trainer.config.epochs})" if done else
                   f"{trainer.seconds:.0f} s (time budget {trainer.config.time_budget:g} s)")
        raise RunError(f"{run_dir}: nothing to do, the run has already trained {reached}; "
                       "raise --epochs or --time-budget to train further")
    return trainer.run(callback, progress)


def resume_trainer(run_dir, corpus=None):
    """A :class:`Trainer` restored from the latest checkpoint of ``run_dir``."""
    document, vocab = _read_run_config(run_dir)
    text_config, model_config, train_config = _configs(document)
    if not os.path.exists(os.path.join(run_dir, LATEST)):
        raise RunError(f"{run_dir}: no checkpoint to resume from (the run ended before its "
                       "first epoch did, without a Ctrl-C); train it again")
    arrays, meta = load_checkpoint(os.path.join(run_dir, LATEST))
    if corpus is None:
        corpus = Corpus.from_config(text_config, vocab)
    if corpus.fingerprint != document["text"]["sha256"]:
        raise RunError(f"{run_dir}: the text differs from the one the run started with "
                       f"({corpus.describe()})")
    model = LanguageModel(vocab, corpus.tokenizer, model_config, train_config.seed)
    trainer = Trainer(model, corpus, train_config, run_dir)
    trainer.restore(arrays, meta, os.path.join(run_dir, LATEST))
    return trainer
