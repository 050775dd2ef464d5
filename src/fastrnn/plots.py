"""PNG plots of training curves, drawn headless.

Figures are built with ``matplotlib.figure.Figure`` and its Agg canvas, never
through ``pyplot``: no window opens, and the backend of a notebook or program
that imports fastrnn is left as it is.
"""

import math

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .checkpoint import atomic_write

__all__ = ["plot_training_curves", "plot_curve", "plot_panels"]


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


def plot_panels(panels, path, xlabel, ylabel):
    """Side-by-side panels of labelled curves into PNG ``path``.

    panels: a list of (title, curves), each curve (label, x, y, color); curves with
    the same label share one legend entry.
    """
    figure = Figure(figsize=(4.5 * len(panels), 4), layout="constrained")
    axes_list = figure.subplots(1, len(panels), squeeze=False)[0]
    for axes, (title, curves) in zip(axes_list, panels):
        shown = set()
        for label, x, y, color in curves:
            axes.plot(x, y, "-", color=color, alpha=0.8,
                      label=None if label in shown else label)
            shown.add(label)
        axes.set_title(title)
        axes.set_xlabel(xlabel)
        axes.grid(alpha=0.3)
        axes.legend()
    axes_list[0].set_ylabel(ylabel)
    _save(figure, path)
