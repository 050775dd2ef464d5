"""The errors of :mod:`fastrnn.lm` that are neither about the text nor about one checkpoint."""


class RunError(ValueError):
    """A run directory that cannot be used as asked (missing, already a run, finished...)."""


class NonFiniteError(RunError):
    """Training stopped: steps whose loss or gradient was not finite, too many in a row,
    or parameters that are not finite where a checkpoint was due (never written)."""
