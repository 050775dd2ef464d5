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
later window), the stream position advanced all the same (retrying the window would
give the same NaN: the model, states and window would be the same), so a run with skipped steps still resumes exactly; ``max_nonfinite``
of them in a row stop the run with :class:`NonFiniteError`.  A checkpoint with a
non-finite array is never written.

Data-parallel (``mpiexec -n K``, :mod:`fastrnn.lm.parallel`): each process trains
B/K of the streams and the step's gradients and sums are added up across processes
at the few points marked "across processes" below; rank 0 alone writes the run's
files and shows progress, and its clock is the run's (its time budget and stop
requests are agreed in each step's reduce, so every process stops at the same step).

Shapes: B batch rows (streams), S window length (``seq_len``), L layers, H hidden size.
"""

import copy
import dataclasses
import math
import os
import signal
import statistics
import threading
import time
import warnings

import numpy as np

from ..checkpoint import CheckpointError, load_checkpoint
from ..dropout import CounterDropout
from .config import SCHEDULE, TrainConfig, eval_schedule
from .data import Corpus
from .errors import NonFiniteError, RunError
from .evaluation import EVAL_MIN_WINDOW, evaluate_streams, scores, stream_sums
from .lr_schedule import learning_rate, steps_in_budget
from .model import LanguageModel
from .parallel import world
from .progress import Progress, clock, compiling
from .run_dir import (BEST, CONFIG_FILE, FORMAT_VERSION, LATEST, RunDirectory,
                      checkpoint_version, configs, run_document)
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

    group: the processes training together (:mod:`fastrnn.lm.parallel`; default
    :func:`~fastrnn.lm.parallel.world`: this process alone unless started by an MPI
    launcher).  ``streams``: the range of the B streams this process trains, whose
    rows of (L, B, H) its ``state.h``, ``state.c`` are; checkpoints hold all B.
    """

    epoch = _from_state("epoch")
    step_in_epoch = _from_state("step_in_epoch")
    global_step = _from_state("global_step")
    seconds = _from_state("seconds")
    best_val_loss = _from_state("best_val_loss")
    history = _from_state("history")

    def __init__(self, model, corpus, config=None, run_dir=None, group=None):
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
        # Validation reads its blocks in windows of at least EVAL_MIN_WINDOW steps: the
        # states are carried, so the score is the same as with training's windows, and
        # fewer, longer windows cost less (the input projections are larger products
        # and the per-call overhead is paid fewer times).
        self.eval_window = max(self.config.seq_len, EVAL_MIN_WINDOW)
        self.windows_per_epoch = self.train_streams.windows
        self.tokens_per_step = self.config.batch_size * self.config.seq_len
        self.group = world() if group is None else group
        self.streams = self.group.share(self.config.batch_size)
        self._validation_share = self.validation[self.group.blocks(len(self.validation))]
        self._agreed = (0.0, False)  # (rank 0's seconds, stop requested) of the last reduce
        self._session = (time.perf_counter, None)  # run()'s (clock, interrupt) while it runs
        self.state = TrainerState.fresh(model, self.config, len(self.streams))
        model.set_recompute(self.config.recompute, len(self.streams), self.config.seq_len)
        # Masks keyed by (seed, step, layer, stream): no generator state to carry.
        self.dropout = CounterDropout(model.config.dropout, self.config.seed)
        self._tokens = None  # the (B, S + 1) buffer of the current window
        self._kernels_ready = False
        self._saved_step = None  # global_step of the latest checkpoint written or resumed
        self._saved_seconds = None  # and its training seconds (from run(): of the session)
        self._row_mark = None  # (clock, global_step) of the last row (from run(): the session)
        self._curves_drawn = None  # perf_counter() of the last drawing of curves.png
        self._curves_behind = False  # whether metrics rows were written after it

    # ---------------------------------------------------------------- one step

    def _window(self, window):
        """(inputs, targets), each (B, S): window ``window`` of this process's streams,
        views of one (B, S + 1) buffer that the next call overwrites."""
        self._tokens = self.train_streams.window(window, self.streams, self._tokens)
        return self._tokens[:, :-1], self._tokens[:, 1:]

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
        state, model = self.state, self.model
        x, targets = self._window(window)
        start_h, start_c = state.h.copy(), state.c.copy()  # (L, B, H): cheap
        # The scores are computed and consumed chunk by chunk: never (B, S, V).
        loss_sum, correct = model.output_loss(x, targets, state.h, state.c, self.dropout,
                                              state.global_step, self.streams.start,
                                              self.config.batch_size)
        clock, interrupt = self._session  # rank 0's reading and the stop requests
        # Across processes: the sums of the loss, the correct predictions and the stop
        # requests, rank 0's clock (the others add 0.0) and the gradients.
        sums = self.group.sum_step(
            np.array([loss_sum, correct, bool(interrupt and interrupt.requested),
                      clock() if self.group.is_root else 0.0]),
            model.backward_layers, model.grads)
        loss_sum, correct = float(sums[0]), int(sums[1])
        self._agreed = (float(sums[3]), sums[2] > 0)
        norm = model.clip_gradients(self.config.clip)
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
        state.epoch_tokens += self.tokens_per_step
        return loss_sum / self.tokens_per_step

    def compile_kernels(self):
        """Compile (or load from Numba's cache) every kernel training uses, before the
        clock starts: a training step, a validation window and a generated token, with
        the real shapes and dtypes, on a throwaway copy of the model and state (the
        model, optimizer and random generators are left as they were)."""
        model = copy.deepcopy(self.model)
        state = TrainerState.fresh(model, self.config, len(self.streams))
        self._throwaway_step(model, state)
        evaluate_streams(model, self._validation_window(), self.eval_window)
        model.generate_ids([0], 1, temperature=0.8)

    def _validation_window(self):
        """The first validation window of this process's blocks (of all blocks when it
        has none): what warm-up and the schedule's probe evaluate."""
        validation = self._validation_share if len(self._validation_share) else self.validation
        return validation[:, :self.eval_window + 1]

    def _throwaway_step(self, model, state):
        """A training step of ``model`` (a copy) with ``state`` (its own) on window 0."""
        x, targets = self._window(0)
        model.loss_and_gradients(x, targets, state.h, state.c, self.dropout,
                                 rows=self.config.batch_size)
        model.clip_gradients(self.config.clip)
        state.optimizer.step()

    # The probe of a time-bounded schedule times training steps for this share of the
    # budget, at most PROBE_SECONDS and PROBE_STEPS (and at least 3 steps), and takes
    # the median step: small models need no second of probing, and the plan keeps a
    # margin (BUDGET_PLAN_SHARE) for the run's steps being slower than the probe's.
    PROBE_SHARE, PROBE_SECONDS, PROBE_STEPS = 0.01, 1.0, 20

    # A time budget's decay is planned to end after this share of the steps the probe
    # expects: a run slower than its probe (a busy or noisy machine) still completes its
    # cool-down, which is worth far more than the few last steps a faster run then
    # trains at the floor rate.
    BUDGET_PLAN_SHARE = 0.85

    def plan_schedule(self):
        """Fix ``state.schedule_steps``, the step at which the learning rate's decay ends:
        the run's last step, from its epochs, or for a time budget BUDGET_PLAN_SHARE of
        the steps estimated by a short probe of training steps and one validation window
        on a throwaway copy of the model (before the clock starts, like compilation;
        about 1% of the budget).  Called once, at the start of a run that decays; the
        result is recorded in every checkpoint, never measured again."""
        state, config = self.state, self.config
        plans = []
        if config.epochs is not None:
            plans.append(config.epochs * self.windows_per_epoch)
        if config.time_budget is not None:
            step_seconds, validation_seconds = self._probe()
            expected = steps_in_budget(config.time_budget - state.seconds, step_seconds,
                                       self._validations_in, validation_seconds)
            plans.append(state.global_step + round(self.BUDGET_PLAN_SHARE * expected))
        # Rank 0's estimate for every process: K ranks follow one schedule.
        state.schedule_steps = self.group.broadcast(max(1, min(plans)))

    def _probe(self):
        """(seconds of a training step, seconds of a validation pass), timed on a copy."""
        model = copy.deepcopy(self.model)
        state = TrainerState.fresh(model, self.config, len(self.streams))
        self._throwaway_step(model, state)  # first touch of the buffers: not timed
        probe_seconds = min(self.PROBE_SECONDS, self.PROBE_SHARE * self.config.time_budget)
        durations, start = [], time.perf_counter()
        while len(durations) < 3 or (len(durations) < self.PROBE_STEPS
                                     and time.perf_counter() - start < probe_seconds):
            began = time.perf_counter()
            self._throwaway_step(model, state)
            durations.append(time.perf_counter() - began)
        # The median, not the mean: a process's first steps are sometimes twice as slow
        # as the rest (a shared host's slow phase), and a mean over them plans the decay
        # to end far too early (docs/quality_per_minute.md#schedule-probe).
        step_seconds = statistics.median(durations)
        start = time.perf_counter()
        evaluate_streams(model, self._validation_window(), self.eval_window)
        windows = max(1, (self.validation.shape[1] - 1) // self.eval_window)
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
        Across processes, every one calls this; rank 0 alone shows progress and calls
        ``callback`` (its answer is every process's).
        """
        if epochs is not None or time_budget is not None:
            self.config = dataclasses.replace(self.config, epochs=epochs,
                                              time_budget=time_budget).validate()
        if not self.group.is_root:
            progress, callback = False, None
        if self.directory is not None and self.group.is_root:
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
        self._agreed = (state.seconds, False)
        stopped = None

        def clock():
            return seconds_before + time.perf_counter() - session_start

        try:
            with _StopOnInterrupt() as interrupt, Progress(steps_left, progress, log_every) as bar:
                self._session = (clock, interrupt)
                while stopped is None:
                    if epochs is not None and state.epoch >= epochs:
                        stopped = "epochs"
                        break
                    if budget is not None and state.seconds >= budget:
                        stopped = "time"
                        break
                    if interrupt.requested if self.group.size == 1 else self._agreed[1]:
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
                    state.seconds = self._seconds(clock)
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
                        if self.group.broadcast(callback is not None and bool(callback(self, row))):
                            stopped = "callback"
                    elif self._checkpoint_due():
                        self._save(LATEST)
                    state.seconds = self._seconds(clock)
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
        finally:  # also when training stops on an error: the picture has every row
            self._finish_curves()
        return TrainResult(stopped, state.epoch, state.global_step, state.seconds,
                           state.best_val_loss, state.history[-1] if state.history else None)

    def _seconds(self, clock):
        """The run's training seconds now: ``clock()``, or across processes rank 0's
        reading in the last step's reduce (every process decides alike with it)."""
        return clock() if self.group.size == 1 else self._agreed[0]

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
        Across processes, the parameters of all are compared first (ParallelError
        when they differ), and rank 0 alone draws the sample and writes.
        """
        self.group.check_replicas(self.model.params)
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
        if self.group.is_root:
            state.samples.append([row["epoch"], self.model.generate_text(
                length=sample_length, temperature=0.8,
                seed=[self.config.seed, state.global_step])])
        improved = math.isfinite(row["val_loss"]) and (
            state.best_val_loss is None or row["val_loss"] < state.best_val_loss)
        if improved:
            state.best_val_loss = row["val_loss"]
        if self.directory is not None:
            self._save(LATEST)
            if improved:
                self._save(BEST)
            if self.group.is_root:
                self.directory.write_logs(state.history, state.samples,
                                          curves=self._curves_due())
        self._row_mark = (time.perf_counter(), state.global_step)
        return row

    # curves.png is redrawn at most this often (seconds) while a run trains, and at its
    # end: drawing it costs as much as several training steps, inside the time budget.
    CURVES_EVERY = 60.0

    def _curves_due(self):
        """Whether the validation being written redraws ``curves.png``: the first one,
        then when CURVES_EVERY seconds passed since the last drawing; the others leave
        it behind until :meth:`_finish_curves`."""
        now = time.perf_counter()
        due = self._curves_drawn is None or now - self._curves_drawn >= self.CURVES_EVERY
        if due:
            self._curves_drawn = now
        self._curves_behind = not due
        return due

    def _finish_curves(self):
        """Draw ``curves.png`` of every row when the last drawing left some out."""
        if self._curves_behind and self.directory is not None and self.group.is_root:
            self.directory.write_curves(self.state.history)
        self._curves_behind = False

    def evaluate(self):
        """Metrics of the model on the validation blocks (see
        :func:`fastrnn.lm.evaluation.evaluate_streams`); across processes, each scores
        its share of the blocks and the sums are added up."""
        sums = np.array(stream_sums(self.model, self._validation_share, self.eval_window),
                        dtype=np.float64)
        loss_sum, correct, tokens = self.group.sum(sums)
        return scores(float(loss_sum), int(correct), int(tokens))

    # ---------------------------------------------------------------- checkpoints

    def run_config(self):
        """The JSON document of ``config.json``."""
        return run_document(self.corpus, self.model, self.config)

    def checkpoint_contents(self):
        """(arrays, meta): everything needed to continue exactly where training is:
        the parameters (``param/<name>``) and the :class:`TrainerState`, with the run
        format version they are written in.  The carried states are those of all B
        streams, whatever the number of processes: across processes, every one calls
        this, the states are gathered on rank 0, and the others get None for them."""
        arrays, meta = self.state.to_checkpoint()
        for key in ("state/h", "state/c"):
            arrays[key] = self.group.gather_rows(arrays[key])  # across processes
        return {**self.model.state_arrays(), **arrays}, {"format_version": FORMAT_VERSION, **meta}

    def _save(self, name):
        """Write checkpoint ``name``, unless an array of it is not finite (NonFiniteError:
        a checkpoint is never written with one)."""
        arrays, meta = self.checkpoint_contents()
        not_finite = [key for key, array in arrays.items()
                      if array is not None and array.dtype.kind == "f"
                      and not np.isfinite(array).all()]
        not_finite = self.group.broadcast(not_finite)  # rank 0 holds all the states
        if not_finite:
            raise NonFiniteError(self._nonfinite_message(
                f"{not_finite[0]} is not finite, {name} not written"))
        if self.group.is_root:
            self.directory.save_checkpoint(name, arrays, meta)
        if name == LATEST:
            self._saved_step, self._saved_seconds = self.state.global_step, self.state.seconds

    def _share_of(self, arrays):
        """``arrays`` with the carried states of all B streams cut to this process's
        (a checkpoint written by any number of processes continues with any other)."""
        arrays = dict(arrays)
        for key in ("state/h", "state/c"):
            saved = arrays.get(key)
            if saved is not None and saved.ndim == 3 and saved.shape[1] == self.config.batch_size:
                arrays[key] = saved[:, self.streams.start:self.streams.stop]
        return arrays

    def restore(self, arrays, meta, source="checkpoint"):
        """Continue from :meth:`checkpoint_contents` (checked before anything changes)."""
        version = checkpoint_version(meta, source)
        state = self.state.from_checkpoint(self._share_of(arrays), meta, version, source)
        if not 0 <= state.step_in_epoch < self.windows_per_epoch:
            raise CheckpointError(f"{source}: its position in the epoch does not fit this text")
        self.model.load_state_arrays(arrays, source)
        self.state = state
        if version < 4 and self.dropout.rate > 0:
            warnings.warn(f"{source}: written by a fastrnn whose dropout masks came from another "
                          "generator; the run continues with this version's masks (the same "
                          "dropout rate, other draws), so it will not repeat what that version "
                          "would have computed", stacklevel=2)
        self._saved_step, self._saved_seconds = state.global_step, state.seconds


def train(model, corpus, config=None, run_dir=None, callback=None, progress=None,
          log_every=30.0):
    """Train ``model`` on ``corpus`` (see :class:`Trainer`); returns a :class:`TrainResult`.

    With ``run_dir``, the run's files are written there; it must not hold a run
    already (continue one with :func:`resume`).
    """
    trainer = Trainer(model, corpus, config, run_dir)
    # Rank 0 decides, before it writes anything (the others might see its files).
    if run_dir is not None and trainer.group.broadcast(RunDirectory(run_dir).holds_a_run()):
        raise RunError(f"{run_dir}: already holds a run; resume it or choose another directory")
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
    group = world()
    try:
        if corpus is None:
            # Rank 0 first: it may rebuild a damaged store, which the others then open.
            corpus = group.root_first(lambda: Corpus.of_run(
                text_config, document["text"], vocab, full_check and group.is_root))
        else:
            corpus.check_recorded(document["text"])
    except RunError as err:
        raise RunError(f"{run_dir}: {err}") from None
    model = LanguageModel(vocab, corpus.tokenizer, model_config, train_config.seed)
    trainer = Trainer(model, corpus, train_config, run_dir, group)
    trainer.restore(arrays, meta, directory.file(LATEST))
    return trainer
