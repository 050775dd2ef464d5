"""Numerical gradients by centred differences, for checking backward passes."""

import numpy as np

__all__ = ["rel_error", "eval_numerical_gradient", "eval_numerical_gradient_array"]


def rel_error(x, y):
    """max |x - y| / max(1e-8, |x| + |y|), elementwise."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    return np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))


def eval_numerical_gradient(f, x, verbose=True, h=1e-5):
    """Gradient of the scalar f(x) with respect to x (perturbed in place, restored).

    f: callable taking x and returning a scalar; x: float array.  Returns an
    array shaped like x.
    """
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        f_plus = f(x)
        x[ix] = old - h
        f_minus = f(x)
        x[ix] = old
        grad[ix] = (f_plus - f_minus) / (2 * h)
        if verbose:
            print(ix, grad[ix])
        it.iternext()
    return grad


def eval_numerical_gradient_array(f, x, df, h=1e-5):
    """Gradient of sum(f(x) * df) with respect to x, for an array-valued f.

    x is perturbed in place and restored; df has the shape of f(x).
    """
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        pos = np.array(f(x), copy=True)
        x[ix] = old - h
        neg = np.array(f(x), copy=True)
        x[ix] = old
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
        it.iternext()
    return grad
