"""PNG plots of training curves, drawn headless.

Figures are built with ``matplotlib.figure.Figure`` and its Agg canvas, never
through ``pyplot``: no window opens, and the backend of a notebook or program
that imports fastrnn is left as it is.
"""

import math

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .checkpoint import atomic_write

__all__ = ["plot_training_curves", "plot_curve"]


def _save(figure, path):
    FigureCanvasAgg(figure)
    with atomic_write(path, "wb") as stream:
        figure.savefig(stream, format="png", dpi=100)


def plot_training_curves(history, path):
    """Loss and accuracy of training and validation against training steps, into PNG ``path``.

    history: the metrics rows of a run (dicts with ``step``, ``train_loss``,
    ``val_loss``, ``train_accuracy``, ``val_accuracy``; a training value is None
    when every step since the row before was skipped).
    """
    steps = [row["step"] for row in history]
    figure = Figure(figsize=(10, 4), layout="constrained")
    loss_axes, accuracy_axes = figure.subplots(1, 2)
    for axes, key, label in ((loss_axes, "loss", "loss (nats per token)"),
                             (accuracy_axes, "accuracy", "next-token accuracy")):
        for kind, style, name in (("train", "o-", "training"), ("val", "s-", "validation")):
            values = [math.nan if row[f"{kind}_{key}"] is None else row[f"{kind}_{key}"]
                      for row in history]
            axes.plot(steps, values, style, label=name, markersize=3)
        axes.set_xlabel("training step")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        axes.legend()
    _save(figure, path)


def plot_curve(x, y, path, xlabel, ylabel, title=None):
    """One curve ``y`` against ``x`` into PNG ``path``."""
    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.subplots()
    axes.plot(x, y, "o-")
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    if title:
        axes.set_title(title)
    axes.grid(alpha=0.3)
    _save(figure, path)
