"""The learning rate of a step: warmup, then a decay over the run, counted in steps.

The rate of step ``s`` (0-based: the step after ``s`` steps were taken) is a pure
function of the run's settings (:class:`~fastrnn.lm.config.TrainConfig`: ``lr``,
``lr_schedule``, ``warmup``, ``lr_floor``) and of ``total``, the steps the decay
spans, fixed once at the start of a run and recorded in its trainer state
(``schedule_steps``): never measured again, so a resumed run, or K processes of one
run, compute the same rates.  A run bounded by a time budget gets ``total`` from
:func:`steps_in_budget`, an estimate from a short timed probe, less a margin
(:attr:`~fastrnn.lm.trainer.Trainer.BUDGET_PLAN_SHARE`).

Schedules: 'constant' (``lr`` at every step; the warmup still applies); 'cosine'
and 'linear' from ``lr`` down to ``lr * lr_floor`` at step ``total``, and
``lr * lr_floor`` after it (a run trained further than planned); the decay spans the
last ``lr_decay_share`` of the steps after the warmup (1: all of them; 0.2: the rate
stays at ``lr`` for 80% of them, then cools down).
"""

import math

__all__ = ["LR_SCHEDULES", "learning_rate", "steps_in_budget"]

LR_SCHEDULES = ("constant", "cosine", "linear")


def learning_rate(config, step, total):
    """The rate of step ``step`` (int >= 0) of a run with settings ``config`` (a
    TrainConfig) whose decay ends at step ``total`` (int >= 1; None before it is
    known: the decay has not started; unused by 'constant')."""
    lr = config.lr
    if step < config.warmup:
        return lr * (step + 1) / config.warmup
    if config.lr_schedule == "constant" or total is None:
        return lr
    decay_start = max(config.warmup, total - round(config.lr_decay_share * (total - config.warmup)))
    if step < decay_start:
        return lr
    progress = min(1.0, (step - decay_start) / max(1, total - decay_start))
    if config.lr_schedule == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:
        shape = 1.0 - progress
    return lr * (config.lr_floor + (1.0 - config.lr_floor) * shape)


def steps_in_budget(seconds, step_seconds, validations, validation_seconds, rounds=4):
    """How many training steps fit in ``seconds`` of training time, when a step takes
    ``step_seconds`` and ``validations(n)`` validations of ``validation_seconds``
    each come with n steps (at least 1)."""
    steps = max(1, int(seconds / step_seconds))
    for _ in range(rounds):  # validations take time from steps: a fixed point, reached fast
        left = seconds - validations(steps) * validation_seconds
        steps = max(1, int(left / step_seconds))
    return steps
