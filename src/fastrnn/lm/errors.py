"""The error of :mod:`fastrnn.lm` that is neither about the text nor about one checkpoint."""


class RunError(ValueError):
    """A run directory that cannot be used as asked (missing, already a run, finished...)."""
