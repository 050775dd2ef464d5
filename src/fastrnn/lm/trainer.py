"""The training loop: truncated BPTT over contiguous streams with Adam (see
:mod:`fastrnn.lm`), validation on a schedule, checkpoints, and resuming.

The schedule (:class:`TrainConfig`): every epoch end, and every ``eval_every`` steps
or seconds of training, the model is validated and the latest checkpoint (and the
best, when the validation loss improved), a metrics row and a sample are written;
between validations, the latest checkpoint is written every ``checkpoint_every``
seconds.  None of that changes the trajectory: evaluation and sampling have their
own states and random generators, so a run resumed from any checkpoint ends with
exactly the parameters of an uninterrupted one, whatever the timing.

A step whose loss or gradient norm is not finite is skipped: no update, the carried
states put back as they were before its window (a NaN state would poison every
later window), the stream position and the dropout generator advanced all the same
(retrying the window would give the same NaN: the model, states and window would be
the same), so a run with skipped steps still resumes exactly; ``max_nonfinite``
of them in a row stop the run with :class:`NonFiniteError`.  A checkpoint with a
non-finite array is never written.

Shapes: B batch rows (streams), S window length (``seq_len``), L layers, H hidden size.
"""

import copy
import dataclasses
import math
import os
import signal
import threading
import time

import numpy as np

from ..checkpoint import CheckpointError, load_checkpoint
from .config import SCHEDULE, TrainConfig, eval_schedule
from .data import Corpus
from .errors import NonFiniteError, RunError
from .evaluation import evaluate_streams
from .lr_schedule import learning_rate, steps_in_budget
from .model import LanguageModel
from .progress import Progress, clock, compiling
from .run_dir import (BEST, CONFIG_FILE, LATEST, RunDirectory, checkpoint_version, configs,
                      run_document)
from .state import TrainerState

__all__ = ["TrainResult", "Trainer", "train", "resume", "resume_trainer"]


@dataclasses.dataclass
class TrainResult:
    """How a call to :meth:`Trainer.run` ended.

    stopped: 'epochs', 'time', 'interrupted' (Ctrl-C or SIGTERM) or 'callback';
    last: the last metrics row (None when no validation ran).
    """

    stopped: str
    epochs: int
    steps: int
    seconds: float
    best_val_loss: float | None
    last: dict | None


class _StopOnInterrupt:
    """While active (main thread only), the first Ctrl-C (SIGINT) or SIGTERM (what a
    machine being shut down or pre-empted sends) asks the loop to stop at the end of
    the current step, so a checkpoint of a consistent state can be written; a second
    one interrupts at once (KeyboardInterrupt)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self._previous = {}

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {number: signal.signal(number, self._handle)
                              for number in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        return False


def _from_state(name):
    return property(lambda self: getattr(self.state, name),
                    doc=f"``state.{name}`` (see :class:`TrainerState`).")


class Trainer:
    """Trains a :class:`LanguageModel` on a :class:`Corpus`; see :mod:`fastrnn.lm`.

    run_dir: where to write the run's files (nothing is written when None).
    ``state`` (a :class:`TrainerState`) is everything besides the parameters that
    decides the next step.  ``run()`` may be called again to train further.
    ``split`` (:class:`~fastrnn.lm.split.TextSplit`): the text's training and
    validation ranges; ``train_streams`` reads the training text window by window;
    ``validation`` int64 (k, block length): the validation blocks.
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
        self.split = corpus.split(self.config)
        self.train_streams = self.split.train_streams(self.config.batch_size,
                                                      self.config.seq_len)
        self.validation = self.split.validation()  # (k, block length), at most val_tokens
        self.windows_per_epoch = self.train_streams.windows
        self.tokens_per_step = self.config.batch_size * self.config.seq_len
        self.state = TrainerState.fresh(model, self.config)
        self._kernels_ready = False
        self._saved_step = None  # global_step of the latest checkpoint written or resumed
        self._saved_seconds = None  # and its training seconds (from run(): of the session)
        self._row_mark = None  # (clock, global_step) of the last row (from run(): the session)

    # ---------------------------------------------------------------- one step

    def _window(self, window):
        """(inputs, targets), each (B, S): window ``window`` of every stream."""
        tokens = self.train_streams.window(window)
        return tokens[:, :-1], tokens[:, 1:]

    def learning_rate(self):
        """The learning rate of the next step: the one place it comes from, a function
        of the settings, ``state.global_step`` and ``state.schedule_steps`` (see
        :mod:`fastrnn.lm.lr_schedule`), never of the clock."""
        return learning_rate(self.config, self.state.global_step, self.state.schedule_steps)

    def _train_window(self, window):
        """Forward, backward, clip and Adam step on window ``window`` of every stream.

        Returns the mean loss per token, or None when the loss or the gradient was
        not finite: then there is no update, the carried states are put back as they
        were before the window, and the step is counted as skipped.
        """
        state = self.state
        x, targets = self._window(window)
        start_h, start_c = state.h.copy(), state.c.copy()  # (L, B, H): cheap
        scores = self.model.forward(x, state.h, state.c, state.dropout_rng)
        loss_sum, correct = self.model.loss(scores, targets)
        self.model.backward(self.model.loss_gradient())
        norm = self.model.clip_gradients(self.config.clip)
        if not (math.isfinite(loss_sum) and math.isfinite(norm)):
            state.h[...] = start_h
            state.c[...] = start_c
            state.skipped_steps += 1
            state.skipped_in_a_row += 1
            return None
        state.optimizer.lr = self.learning_rate()
        state.optimizer.step()
        state.skipped_in_a_row = 0
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
        self._throwaway_step(model, state)
        S = self.config.seq_len
        evaluate_streams(model, self.validation[:, :S + 1], S)
        model.generate_ids([0], 1, temperature=0.8)

    def _throwaway_step(self, model, state):
        """A training step of ``model`` (a copy) with ``state`` (its own) on window 0."""
        x, targets = self._window(0)
        model.loss(model.forward(x, state.h, state.c, state.dropout_rng), targets)
        model.backward(model.loss_gradient())
        model.clip_gradients(self.config.clip)
        state.optimizer.step()

    # The probe of a time-bounded schedule times training steps for this share of the
    # budget, at most PROBE_SECONDS (and at least 3 steps).
    PROBE_SHARE, PROBE_SECONDS = 0.01, 1.0

    def plan_schedule(self):
        """Fix ``state.schedule_steps``, the step at which the learning rate's decay ends:
        the run's last step, from its epochs, or for a time budget estimated by a short
        probe of training steps and one validation window on a throwaway copy of the
        model (before the clock starts, like compilation; about 1% of the budget).
        Called once, at the start of a run that decays; the result is recorded in
        every checkpoint, never measured again."""
        state, config = self.state, self.config
        plans = []
        if config.epochs is not None:
            plans.append(config.epochs * self.windows_per_epoch)
        if config.time_budget is not None:
            step_seconds, validation_seconds = self._probe()
            plans.append(state.global_step + steps_in_budget(
                config.time_budget - state.seconds, step_seconds,
                self._validations_in, validation_seconds))
        state.schedule_steps = max(1, min(plans))

    def _probe(self):
        """(seconds of a training step, seconds of a validation pass), timed on a copy."""
        model = copy.deepcopy(self.model)
        state = TrainerState.fresh(model, self.config)
        self._throwaway_step(model, state)  # first touch of the buffers: not timed
        probe_seconds = min(self.PROBE_SECONDS, self.PROBE_SHARE * self.config.time_budget)
        steps, start = 0, time.perf_counter()
        while steps < 3 or time.perf_counter() - start < probe_seconds:
            self._throwaway_step(model, state)
            steps += 1
        step_seconds = (time.perf_counter() - start) / steps
        S = self.config.seq_len
        start = time.perf_counter()
        evaluate_streams(model, self.validation[:, :S + 1], S)
        windows = max(1, (self.validation.shape[1] - 1) // S)
        return step_seconds, (time.perf_counter() - start) * windows

    def _validations_in(self, steps):
        """How many validations ``steps`` more steps bring: epoch ends, ``eval_every`` and
        the one at the end of the budget."""
        done = self.state.global_step
        count = (done + steps) // self.windows_per_epoch - done // self.windows_per_epoch + 1
        kind, amount = eval_schedule(self.config.eval_every)
        if kind == "steps":
            count += (done + steps) // amount - done // amount
        elif kind == "seconds":
            count += int((self.config.time_budget - self.state.seconds) // amount)
        return count

    # ---------------------------------------------------------------- the loop

    def run(self, callback=None, progress=None, epochs=None, time_budget=None, log_every=30.0):
        """Train until the configured epochs or time budget are reached.

        epochs, time_budget: when given, replace the configured ones (e.g. to
        train a finished run further).  callback(trainer, row): called after
        every validation with its metrics row; returning True stops training.
        progress: show a progress bar (None: when stderr is a terminal; otherwise a
        line every ``log_every`` seconds); False shows nothing, not even the
        note while kernels compile.  The time budget counts from after compilation.
        Ctrl-C or SIGTERM stops at the end of the current step and writes a checkpoint.
        Raises :class:`NonFiniteError` after ``max_nonfinite`` non-finite steps in a row.
        """
        if epochs is not None or time_budget is not None:
            self.config = dataclasses.replace(self.config, epochs=epochs,
                                              time_budget=time_budget).validate()
        if self.directory is not None:
            self.directory.write_settings(self.run_config(), self.model.vocab)
            self.directory.remove_unfinished_writes()
        if not self._kernels_ready:
            compiling(self.compile_kernels, enabled=progress is not False)
            self._kernels_ready = True
        state = self.state
        if state.schedule_steps is None and self.config.lr_schedule != "constant":
            self.plan_schedule()
        epochs, budget = self.config.epochs, self.config.time_budget
        steps_left = None if epochs is None else max(
            0, epochs * self.windows_per_epoch - state.global_step)
        session_start, session_steps = time.perf_counter(), 0
        seconds_before = state.seconds
        self._saved_seconds = state.seconds  # the timer of checkpoints starts with the session
        self._row_mark = (session_start, state.global_step)
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
                    # Already zero after the epoch end's row, but not in checkpoints of
                    # format 1-2, which kept the sums of the epoch they ended.
                    state.epoch_loss, state.epoch_correct, state.epoch_tokens = 0.0, 0, 0
                loss = self._train_window(state.step_in_epoch)
                state.step_in_epoch += 1
                state.global_step += 1
                session_steps += 1
                state.seconds = seconds_before + time.perf_counter() - session_start
                if state.skipped_in_a_row >= self.config.max_nonfinite:
                    raise NonFiniteError(self._nonfinite_message(
                        f"loss/gradient not finite {state.skipped_in_a_row} times in a row"))
                bar.step(self._progress_text(loss, session_steps * self.tokens_per_step,
                                             time.perf_counter() - session_start))
                epoch_end = state.step_in_epoch == self.windows_per_epoch
                if epoch_end:
                    state.epoch += 1
                    state.step_in_epoch = 0
                if epoch_end or self._evaluation_due():
                    row = self._validate_and_save()
                    if callback is not None and callback(self, row):
                        stopped = "callback"
                elif self._checkpoint_due():
                    self._save(LATEST)
                state.seconds = seconds_before + time.perf_counter() - session_start
        if stopped == "time" and (not state.history or
                                  state.history[-1]["step"] != state.global_step):
            # A budget ends between validations: validate what was reached, so the run has
            # a score and a checkpoint of its last step.
            row = self._validate_and_save()
            if callback is not None:
                callback(self, row)
        elif (self.directory is not None and stopped == "interrupted"
              and self._saved_step != state.global_step):
            self._save(LATEST)
        return TrainResult(stopped, state.epoch, state.global_step, state.seconds,
                           state.best_val_loss, state.history[-1] if state.history else None)

    def _evaluation_due(self):
        """Whether ``eval_every`` asks for a validation now (epoch ends always have one)."""
        kind, amount = eval_schedule(self.config.eval_every)
        if kind == "steps":
            return self.state.global_step % amount == 0
        if kind == "seconds":
            last = self.state.history[-1]["seconds"] if self.state.history else 0.0
            return self.state.seconds - last >= amount
        return False

    def _checkpoint_due(self):
        """Whether ``checkpoint_every`` seconds of training passed since the last checkpoint."""
        every = self.config.checkpoint_seconds
        return (self.directory is not None and every is not None
                and self.state.seconds - self._saved_seconds >= every)

    def _nonfinite_message(self, what):
        """``what`` went wrong at this step, where the last good checkpoint is, what to do."""
        if self.directory is None or self._saved_step is None:
            last = "no checkpoint was written"
        else:
            last = (f"the last good checkpoint is {self.directory.file(LATEST)} "
                    f"(step {self._saved_step})")
        return f"step {self.state.global_step}: {what}; {last}; lower --lr or raise --clip"

    def _progress_text(self, loss, session_tokens, elapsed):
        """Epoch, loss of the last step, tokens/s and the time left."""
        tokens_per_second = session_tokens / max(elapsed, 1e-9)
        etas = []
        if self.config.epochs is not None:
            steps_left = self.config.epochs * self.windows_per_epoch - self.state.global_step
            etas.append(steps_left * self.tokens_per_step / tokens_per_second)
        if self.config.time_budget is not None:
            etas.append(max(0.0, self.config.time_budget - self.state.seconds))
        eta = f", ETA {clock(min(etas))}" if etas else ""
        shown = "skipped (not finite)" if loss is None else f"{loss:.3f}"
        return (f"epoch {self.state.epoch + 1}, loss {shown}, "
                f"{tokens_per_second:,.0f} tok/s{eta}")

    def _validate_and_save(self):
        """Validate, log a metrics row and a sample, write checkpoints, metrics and curves.

        The row: step, epoch (fractional), tokens read, training tokens/s since the
        last row, learning rate, seconds of training, training loss and accuracy of
        the steps since the last row (None when all were skipped), validation loss,
        perplexity and accuracy, and the non-finite steps skipped so far.
        """
        state = self.state
        now, mark_step = time.perf_counter(), self._row_mark[1]
        tokens_per_second = ((state.global_step - mark_step) * self.tokens_per_step
                             / max(now - self._row_mark[0], 1e-9))
        evaluation = self.evaluate()
        trained = state.epoch_tokens
        row = {
            "step": state.global_step,
            "epoch": round(state.epoch + state.step_in_epoch / self.windows_per_epoch, 4),
            "tokens": state.global_step * self.tokens_per_step,
            "tokens_per_second": round(tokens_per_second, 1),
            "lr": state.optimizer.lr,  # of the last step
            "seconds": round(state.seconds, 3),
            "train_loss": state.epoch_loss / trained if trained else None,
            "train_accuracy": state.epoch_correct / trained if trained else None,
            "val_loss": evaluation["loss"],
            "val_perplexity": evaluation["perplexity"],
            "val_accuracy": evaluation["accuracy"],
            "skipped_steps": state.skipped_steps,
        }
        state.history.append(row)
        state.epoch_loss, state.epoch_correct, state.epoch_tokens = 0.0, 0, 0
        sample_length = 300 if self.model.tokenizer.name == "char" else 60
        state.samples.append([row["epoch"], self.model.generate_text(
            length=sample_length, temperature=0.8, seed=[self.config.seed, state.global_step])])
        improved = math.isfinite(row["val_loss"]) and (
            state.best_val_loss is None or row["val_loss"] < state.best_val_loss)
        if improved:
            state.best_val_loss = row["val_loss"]
        if self.directory is not None:
            self._save(LATEST)
            if improved:
                self._save(BEST)
            self.directory.write_logs(state.history, state.samples)
        self._row_mark = (time.perf_counter(), state.global_step)
        return row

    def evaluate(self):
        """Metrics of the model on the validation blocks (see
        :func:`fastrnn.lm.evaluation.evaluate_streams`)."""
        return evaluate_streams(self.model, self.validation, self.config.seq_len)

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
        """Write checkpoint ``name``, unless an array of it is not finite (NonFiniteError:
        a checkpoint is never written with one)."""
        arrays, meta = self.checkpoint_contents()
        for key, array in arrays.items():
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise NonFiniteError(self._nonfinite_message(
                    f"{key} is not finite, {name} not written"))
        self.directory.save_checkpoint(name, arrays, meta)
        if name == LATEST:
            self._saved_step, self._saved_seconds = self.state.global_step, self.state.seconds

    def restore(self, arrays, meta, source="checkpoint"):
        """Continue from :meth:`checkpoint_contents` (checked before anything changes)."""
        version = checkpoint_version(meta, source)
        state = self.state.from_checkpoint(arrays, meta, version, source)
        if not 0 <= state.step_in_epoch < self.windows_per_epoch:
            raise CheckpointError(f"{source}: its position in the epoch does not fit this text")
        self.model.load_state_arrays(arrays, source)
        self.state = state
        self._saved_step, self._saved_seconds = state.global_step, state.seconds


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
           corpus=None, log_every=30.0, schedule=None, full_check=False):
    """Continue the run in ``run_dir`` from its latest checkpoint.

    The text is the run's token store, its sources checked cheaply (``full_check``:
    hashed whole), or read again from the run's sources (or ``corpus``); it must be
    the one the run started with (see :meth:`Corpus.of_run`).  ``epochs``/``time_budget`` replace the configured
    limits; ``schedule``, a dict of settings named in :data:`fastrnn.lm.config.SCHEDULE`
    (``eval_every``, ``checkpoint_every``, ``max_nonfinite``), replaces those (they
    change what the run writes and when, not the parameters it reaches).  Everything
    is read and checked before any file is written.  Returns a :class:`TrainResult`.
    """
    schedule = dict(schedule or {})
    others = sorted(set(schedule) - set(SCHEDULE))
    if others:
        raise ValueError(f"schedule: expected settings among {', '.join(SCHEDULE)}, "
                         f"got {', '.join(others)}")
    trainer = resume_trainer(run_dir, corpus, full_check)
    if epochs is not None or time_budget is not None:
        schedule.update(epochs=epochs, time_budget=time_budget)
    trainer.config = dataclasses.replace(trainer.config, **schedule).validate()
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
    document, version, vocab = directory.read_settings()
    text_config, model_config, train_config = configs(document, version,
                                                      directory.file(CONFIG_FILE))
    if not os.path.exists(directory.file(LATEST)):
        raise RunError(f"{run_dir}: no checkpoint to resume from (the run ended before its "
                       "first validation or checkpoint, without a Ctrl-C); train it again")
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
