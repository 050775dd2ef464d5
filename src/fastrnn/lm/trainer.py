"""The training loop: truncated BPTT over contiguous streams with Adam (see
:mod:`fastrnn.lm`), validation after every epoch, checkpoints, and resuming.

Shapes: B batch rows (streams), S window length (``seq_len``), L layers, H hidden size.
"""

import copy
import dataclasses
import os
import signal
import threading
import time

from ..checkpoint import CheckpointError, load_checkpoint
from .config import TrainConfig
from .data import Corpus, Windows, streams
from .errors import RunError
from .model import LanguageModel
from .progress import Progress, clock, compiling
from .run_dir import (BEST, CONFIG_FILE, LATEST, RunDirectory, checkpoint_version, configs,
                      run_document)
from .state import TrainerState

__all__ = ["TrainResult", "Trainer", "train", "resume", "resume_trainer"]


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


def _from_state(name):
    return property(lambda self: getattr(self.state, name),
                    doc=f"``state.{name}`` (see :class:`TrainerState`).")


class Trainer:
    """Trains a :class:`LanguageModel` on a :class:`Corpus`; see :mod:`fastrnn.lm`.

    run_dir: where to write the run's files (nothing is written when None).
    ``state`` (a :class:`TrainerState`) is everything besides the parameters that
    decides the next step.  ``run()`` may be called again to train further.
    """

    epoch = _from_state("epoch")
    step_in_epoch = _from_state("step_in_epoch")
    global_step = _from_state("global_step")
    seconds = _from_state("seconds")
    best_val_loss = _from_state("best_val_loss")
    history = _from_state("history")

    def __init__(self, model, corpus, config=None, run_dir=None):
        self.model = model
        self.corpus = corpus
        self.config = (config or TrainConfig()).validate()
        self.run_dir = run_dir
        self.directory = None if run_dir is None else RunDirectory(run_dir)
        if model.vocab is not corpus.vocab and model.vocab.tokens != corpus.vocab.tokens:
            raise ValueError("model, corpus: the model was built for another vocabulary")
        train_ids, self.val_ids = corpus.split(self.config)
        self.train_streams = streams(train_ids, self.config.batch_size)  # a view
        self._windows = Windows(self.train_streams, self.config.seq_len)
        self.windows_per_epoch = (self.train_streams.shape[1] - 1) // self.config.seq_len
        self.state = TrainerState.fresh(model, self.config)
        self._kernels_ready = False

    # ---------------------------------------------------------------- one step

    def _window(self, window):
        """(inputs, targets), each (B, S) int64: window ``window`` of every stream (in
        buffers that the next call overwrites)."""
        S = self.config.seq_len
        return self._windows(window * S, (window + 1) * S)

    def _train_window(self, window):
        """Forward, backward, clip and Adam step on window ``window`` of every stream."""
        state = self.state
        x, targets = self._window(window)
        scores = self.model.forward(x, state.h, state.c, state.dropout_rng)
        loss_sum, correct = self.model.loss(scores, targets)
        self.model.backward(self.model.loss_gradient())
        self.model.clip_gradients(self.config.clip)
        state.optimizer.step()
        state.epoch_loss += loss_sum
        state.epoch_correct += correct
        state.epoch_tokens += targets.size
        return loss_sum / targets.size

    def compile_kernels(self):
        """Compile (or load from Numba's cache) every kernel training uses, before the
        clock starts: a training step, a validation window and a generated token, with
        the real shapes and dtypes, on a throwaway copy of the model and state (the
        model, optimizer and random generators are left as they were)."""
        model = copy.deepcopy(self.model)
        state = TrainerState.fresh(model, self.config)
        x, targets = self._window(0)
        model.loss(model.forward(x, state.h, state.c, state.dropout_rng), targets)
        model.backward(model.loss_gradient())
        model.clip_gradients(self.config.clip)
        state.optimizer.step()
        S, B = self.config.seq_len, self.config.batch_size
        validation_rows = max(1, min(B, len(self.val_ids) // (S + 1)))
        model.evaluate(self.val_ids[:validation_rows * (S + 1)], S, B)
        model.generate_ids([0], 1, temperature=0.8)

    # ---------------------------------------------------------------- the loop

    def run(self, callback=None, progress=None, epochs=None, time_budget=None, log_every=30.0):
        """Train until the configured epochs or time budget are reached.

        epochs, time_budget: when given, replace the configured ones (e.g. to
        train a finished run further).  callback(trainer, row): called after
        every validation with its metrics row; returning True stops training.
        progress: show a progress bar (None: when stderr is a terminal; otherwise a
        line every ``log_every`` seconds); False shows nothing, not even the
        note while kernels compile.  The time budget counts from after compilation.
        Ctrl-C stops at the end of the current step and writes a checkpoint.
        """
        if epochs is not None or time_budget is not None:
            self.config = dataclasses.replace(self.config, epochs=epochs,
                                              time_budget=time_budget).validate()
        if self.directory is not None:
            self.directory.write_settings(self.run_config(), self.model.vocab)
        if not self._kernels_ready:
            compiling(self.compile_kernels, enabled=progress is not False)
            self._kernels_ready = True
        state = self.state
        epochs, budget = self.config.epochs, self.config.time_budget
        tokens_per_step = self.train_streams.shape[0] * self.config.seq_len
        steps_left = None if epochs is None else max(
            0, epochs * self.windows_per_epoch - state.global_step)
        session_start, session_steps = time.perf_counter(), 0
        seconds_before = state.seconds
        stopped = None
        with _StopOnInterrupt() as interrupt, Progress(steps_left, progress, log_every) as bar:
            while stopped is None:
                if epochs is not None and state.epoch >= epochs:
                    stopped = "epochs"
                    break
                if budget is not None and state.seconds >= budget:
                    stopped = "time"
                    break
                if interrupt.requested:
                    stopped = "interrupted"
                    break
                if state.step_in_epoch == 0:  # a new epoch: streams restart from zero states
                    state.h[...] = 0.0
                    state.c[...] = 0.0
                    state.epoch_loss, state.epoch_correct, state.epoch_tokens = 0.0, 0, 0
                loss = self._train_window(state.step_in_epoch)
                state.step_in_epoch += 1
                state.global_step += 1
                session_steps += 1
                state.seconds = seconds_before + time.perf_counter() - session_start
                bar.step(self._progress_text(loss, session_steps * tokens_per_step,
                                             time.perf_counter() - session_start))
                if state.step_in_epoch == self.windows_per_epoch:
                    state.epoch += 1
                    state.step_in_epoch = 0
                    row = self._validate_and_save()
                    state.seconds = seconds_before + time.perf_counter() - session_start
                    if callback is not None and callback(self, row):
                        stopped = "callback"
        if stopped == "time" and state.step_in_epoch > 0:
            # A budget ends mid-epoch: validate what was reached, so the run has a score.
            row = self._validate_and_save()
            if callback is not None:
                callback(self, row)
        elif self.directory is not None and stopped == "interrupted":
            self._save(LATEST)
        return TrainResult(stopped, state.epoch, state.global_step, state.seconds,
                           state.best_val_loss, state.history[-1] if state.history else None)

    def _progress_text(self, loss, session_tokens, elapsed):
        """Epoch, loss of the last step, tokens/s and the time left."""
        tokens_per_second = session_tokens / max(elapsed, 1e-9)
        etas = []
        if self.config.epochs is not None:
            steps_left = self.config.epochs * self.windows_per_epoch - self.state.global_step
            tokens_per_step = self.train_streams.shape[0] * self.config.seq_len
            etas.append(steps_left * tokens_per_step / tokens_per_second)
        if self.config.time_budget is not None:
            etas.append(max(0.0, self.config.time_budget - self.state.seconds))
        eta = f", ETA {clock(min(etas))}" if etas else ""
        return (f"epoch {self.state.epoch + 1}, loss {loss:.3f}, "
                f"{tokens_per_second:,.0f} tok/s{eta}")

    def _validate_and_save(self):
        """Validate, log a metrics row and a sample, write checkpoints, metrics and curves."""
        state = self.state
        evaluation = self.evaluate()
        tokens = max(1, state.epoch_tokens)
        row = {
            "epoch": round(state.epoch + state.step_in_epoch / self.windows_per_epoch, 4),
            "step": state.global_step,
            "seconds": round(state.seconds, 3),
            "train_loss": state.epoch_loss / tokens,
            "train_accuracy": state.epoch_correct / tokens,
            "val_loss": evaluation["loss"],
            "val_perplexity": evaluation["perplexity"],
            "val_accuracy": evaluation["accuracy"],
        }
        state.history.append(row)
        sample_length = 300 if self.model.tokenizer.name == "char" else 60
        state.samples.append([row["epoch"], self.model.generate_text(
            length=sample_length, temperature=0.8, seed=[self.config.seed, state.global_step])])
        improved = state.best_val_loss is None or row["val_loss"] < state.best_val_loss
        if improved:
            state.best_val_loss = row["val_loss"]
        if self.directory is not None:
            self._save(LATEST)
            if improved:
                self._save(BEST)
            self.directory.write_logs(state.history, state.samples)
        return row

    def evaluate(self):
        """Metrics of the model on the validation tail (see :meth:`LanguageModel.evaluate`)."""
        return self.model.evaluate(self.val_ids, self.config.seq_len, self.config.batch_size)

    # ---------------------------------------------------------------- checkpoints

    def run_config(self):
        """The JSON document of ``config.json``."""
        return run_document(self.corpus, self.model, self.config)

    def checkpoint_contents(self):
        """(arrays, meta): everything needed to continue exactly where training is:
        the parameters (``param/<name>``) and the :class:`TrainerState`."""
        arrays, meta = self.state.to_checkpoint()
        return {**self.model.state_arrays(), **arrays}, meta

    def _save(self, name):
        self.directory.save_checkpoint(name, *self.checkpoint_contents())

    def restore(self, arrays, meta, source="checkpoint"):
        """Continue from :meth:`checkpoint_contents` (checked before anything changes)."""
        version = checkpoint_version(meta, source)
        state = self.state.from_checkpoint(arrays, meta, version, source)
        if not 0 <= state.step_in_epoch < self.windows_per_epoch:
            raise CheckpointError(f"{source}: its position in the epoch does not fit this text")
        self.model.load_state_arrays(arrays, source)
        self.state = state


def train(model, corpus, config=None, run_dir=None, callback=None, progress=None,
          log_every=30.0):
    """Train ``model`` on ``corpus`` (see :class:`Trainer`); returns a :class:`TrainResult`.

    With ``run_dir``, the run's files are written there; it must not hold a run
    already (continue one with :func:`resume`).
    """
    if run_dir is not None and RunDirectory(run_dir).holds_a_run():
        raise RunError(f"{run_dir}: already holds a run; resume it or choose another directory")
    trainer = Trainer(model, corpus, config, run_dir)
    return trainer.run(callback, progress, log_every=log_every)


def resume(run_dir, epochs=None, time_budget=None, callback=None, progress=None,
           corpus=None, log_every=30.0, full_check=False):
    """Continue the run in ``run_dir`` from its latest checkpoint.

    The text is the run's token store, its sources checked cheaply (``full_check``:
    hashed whole), or read again from the run's sources (or ``corpus``); it must be
    the one the run started with (see :meth:`Corpus.of_run`).  ``epochs``/``time_budget``
    replace the configured limits.  Everything is read and checked before any file
    of the run is written.
    Returns a :class:`TrainResult`.
    """
    trainer = resume_trainer(run_dir, corpus, full_check)
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
    return trainer.run(callback, progress, log_every=log_every)


def resume_trainer(run_dir, corpus=None, full_check=False):
    """A :class:`Trainer` restored from the latest checkpoint of ``run_dir``, with the
    run's own recorded settings."""
    directory = RunDirectory(run_dir)
    document, _, vocab = directory.read_settings()
    text_config, model_config, train_config = configs(document, directory.file(CONFIG_FILE))
    if not os.path.exists(directory.file(LATEST)):
        raise RunError(f"{run_dir}: no checkpoint to resume from (the run ended before its "
                       "first epoch did, without a Ctrl-C); train it again")
    arrays, meta = load_checkpoint(directory.file(LATEST))
    try:
        if corpus is None:
            corpus = Corpus.of_run(text_config, document["text"], vocab, full_check)
        else:
            corpus.check_recorded(document["text"])
    except RunError as err:
        raise RunError(f"{run_dir}: {err}") from None
    model = LanguageModel(vocab, corpus.tokenizer, model_config, train_config.seed)
    trainer = Trainer(model, corpus, train_config, run_dir)
    trainer.restore(arrays, meta, directory.file(LATEST))
    return trainer
