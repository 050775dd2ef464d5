"""The trainer's resumable state: everything besides the parameters that decides the
next training step, as one object, saved into a checkpoint and restored as a whole.

Each field says how it is stored (``value``: a JSON value in the checkpoint's
metadata under the field's name; ``array``: an array named ``state/<name>``;
``optimizer``: Adam, stored as ``adam_m/<param>``, ``adam_v/<param>``, ``adam_t``
and ``lr``) and from which run format version it exists (``since``).  Adding a
field is one line here and a bump of :data:`fastrnn.lm.run_dir.FORMAT_VERSION`;
checkpoints of older versions get the field's value of a fresh state, which must
be what those runs did.
"""

import copy
import dataclasses

import numpy as np

from ..checkpoint import CheckpointError
from ..optim import Adam

__all__ = ["TrainerState"]


def _field(kind, since=1, **options):
    return dataclasses.field(metadata={"kind": kind, "since": since}, **options)


def _value_field(default, since=1):
    """A plain value (number, string, None), ``default`` at the start."""
    return _field("value", since, default=default)


def _list_field(since=1):
    """A list of JSON values, empty at the start."""
    return _field("value", since, default_factory=list)


def _array_field(since=1):
    return _field("array", since)


@dataclasses.dataclass
class TrainerState:
    """h, c (L, B, H): the states carried from one window to the next (c unused by a
    tanh RNN); ``optimizer``,
    Adam with its moments (one (size,) pair per parameter) and step count; the
    position (``epoch`` completed epochs, ``step_in_epoch`` the next window of the
    current one, ``global_step`` windows read, skipped ones included), ``seconds``
    of training in all sessions; ``epoch_loss``, ``epoch_correct``, ``epoch_tokens``:
    the sums (loss in nats, correct predictions, tokens) of the steps since the last
    metrics row (named when rows came only at epoch ends); ``best_val_loss``;
    ``history`` (one metrics dict per validation) and ``samples`` ([epoch, text] per
    validation); ``skipped_steps``, ``skipped_in_a_row``: steps whose loss or
    gradient was not finite, in all and in a row up to now; ``schedule_steps``: the
    step at which the learning rate's decay ends, fixed once at the start of the run
    (None: not yet, or a constant rate; see :mod:`fastrnn.lm.lr_schedule`)."""

    h: np.ndarray = _array_field()
    c: np.ndarray = _array_field()
    optimizer: Adam = _field("optimizer")
    epoch: int = _value_field(0)
    step_in_epoch: int = _value_field(0)
    global_step: int = _value_field(0)
    seconds: float = _value_field(0.0)
    epoch_loss: float = _value_field(0.0)
    epoch_correct: int = _value_field(0)
    epoch_tokens: int = _value_field(0)
    best_val_loss: float | None = _value_field(None)
    history: list = _list_field()
    samples: list = _list_field()
    skipped_steps: int = _value_field(0, since=3)
    skipped_in_a_row: int = _value_field(0, since=3)
    schedule_steps: int | None = _value_field(None, since=4)

    @classmethod
    def fresh(cls, model, config, rows=None):
        """The state before the first step of ``model`` (a LanguageModel) trained with
        ``config`` (a TrainConfig): zero states, Adam at step 0.  (Dropout masks need
        no state: they are a function of the seed and the step, see
        :mod:`fastrnn.dropout`.)  rows: the streams whose states this process carries
        (default all ``batch_size``; a data-parallel process's share)."""
        h, c = model.zero_state(config.batch_size if rows is None else rows)
        return cls(h=h, c=c, optimizer=Adam(model.net, lr=config.lr))

    def to_checkpoint(self):
        """(arrays, meta): the state as named arrays and JSON values (copies)."""
        arrays, meta = {}, {}
        for field in dataclasses.fields(self):
            _CODECS[field.metadata["kind"]].write(field.name, getattr(self, field.name),
                                                  arrays, meta)
        return arrays, meta

    def from_checkpoint(self, arrays, meta, version, source="checkpoint"):
        """A new state read from what :meth:`to_checkpoint` wrote in run format ``version``,
        checked against this one (array shapes, the optimizer's parameters); ``self`` is
        not changed.  Fields newer than ``version`` keep this state's values."""
        values = {}
        for field in dataclasses.fields(self):
            current = getattr(self, field.name)
            if version < field.metadata["since"]:
                values[field.name] = copy.deepcopy(current)
                continue
            try:
                values[field.name] = _CODECS[field.metadata["kind"]].read(
                    field.name, current, arrays, meta, source)
            except KeyError as err:
                raise CheckpointError(f"{source}: {err.args[0]!r} is missing") from None
        return TrainerState(**values)


class _Value:
    @staticmethod
    def write(name, value, arrays, meta):
        meta[name] = copy.deepcopy(value)

    @staticmethod
    def read(name, current, arrays, meta, source):
        return copy.deepcopy(meta[name])


class _Array:
    @staticmethod
    def write(name, value, arrays, meta):
        arrays[f"state/{name}"] = value.copy()

    @staticmethod
    def read(name, current, arrays, meta, source):
        saved = arrays[f"state/{name}"]
        if saved.shape != current.shape or saved.dtype != current.dtype:
            raise CheckpointError(f"{source}: state/{name} is {saved.dtype} {saved.shape}, "
                                  f"training needs {current.dtype} {current.shape}")
        return saved.copy()


class _Optimizer:
    @staticmethod
    def write(name, optimizer, arrays, meta):
        saved = optimizer.state_dict()
        for param, (m, v) in saved["state"].items():
            arrays[f"adam_m/{param}"] = m
            arrays[f"adam_v/{param}"] = v
        meta["adam_t"], meta["lr"] = saved["t"], saved["lr"]

    @staticmethod
    def read(name, current, arrays, meta, source):
        moments = {param: [arrays[f"adam_m/{param}"], arrays[f"adam_v/{param}"]]
                   for param in current.net.params if f"adam_m/{param}" in arrays}
        optimizer = copy.copy(current)  # the same model and hyper-parameters
        optimizer.load_state_dict({"lr": meta["lr"], "t": meta["adam_t"], "state": moments})
        return optimizer


_CODECS = {"value": _Value, "array": _Array, "optimizer": _Optimizer}
