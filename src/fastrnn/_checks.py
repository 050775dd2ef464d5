"""Input validation for the layers: compiled kernels do no bounds checks, so every
array is checked here, before a kernel sees it.

Errors name the argument, what was expected and what came, e.g.
``h0: expected shape (N, H) = (2, 5), got (2, 4)``.
"""

import numpy as np

# The float types the kernels are compiled for: the one definition of them.
KERNEL_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
FLOAT_NAMES = tuple(dtype.name for dtype in KERNEL_FLOATS)  # ('float32', 'float64')


def float_dtype(name, value):
    """``value`` (a dtype, a type or a name such as 'float32') as one of
    KERNEL_FLOATS; TypeError naming ``name`` otherwise."""
    try:
        dtype = np.dtype(value)
    except TypeError:
        dtype = None
    if dtype not in KERNEL_FLOATS:
        came = value if dtype is None else dtype.name
        raise TypeError(f"{name}: expected float32 or float64, got {came!r}")
    return dtype


def _describe(value):
    if isinstance(value, np.ndarray):
        return f"{value.ndim}-D {value.dtype} array of shape {value.shape}"
    return f"{type(value).__name__}"


def _shape_text(labels, expected):
    names = ", ".join(labels)
    if all(e is None for e in expected):
        return f"({names})"
    values = ", ".join("?" if e is None else str(e) for e in expected)
    if len(expected) == 1:
        values += ","
    return f"({names}) = ({values})"


def _shape_matches(shape, expected):
    """Whether ``shape`` has the ``expected`` sizes (``None`` = any size >= 1)."""
    if shape == expected:  # fully given: one tuple comparison (much cheaper than the loop)
        return True
    if len(shape) != len(expected):
        return False
    for size, want in zip(shape, expected):
        if size != want and (want is not None or size < 1):
            return False
    return True


def check_shape(name, array, labels, expected):
    """Raise ValueError unless ``array`` has ``len(labels)`` dimensions of the
    ``expected`` sizes (``None`` = any size >= 1)."""
    if _shape_matches(array.shape, expected):
        return
    if array.ndim != len(labels):
        raise ValueError(
            f"{name}: expected a {len(labels)}-D array of shape {_shape_text(labels, expected)}, "
            f"got a {array.ndim}-D array of shape {array.shape}")
    raise ValueError(f"{name}: expected shape {_shape_text(labels, expected)}, got {array.shape}")


def float_array(name, value, labels, expected, dtype=None, cast=False):
    """Return ``value`` as a C-contiguous float array of the given shape.

    dtype: the compute dtype.  With ``cast=False`` a float array of another
    precision is a TypeError (no silent up- or down-cast of data); with
    ``cast=True`` it is converted (used for states such as h0, which callers
    often build with ``np.zeros`` whatever the model's dtype).
    """
    # The common case first, in a few attribute reads (a layer checks three
    # arrays a call, which at the notebook's sizes is ~1% of the step each):
    # already what the kernels take, returned as is, as the full path would.
    # (dtype, when given, is one of KERNEL_FLOATS: the callers pass their
    # parameters' dtype.)
    if (dtype is not None and type(value) is np.ndarray and value.dtype == dtype
            and value.flags.c_contiguous and _shape_matches(value.shape, expected)):
        return value
    if not isinstance(value, np.ndarray):
        value = np.asarray(value)
    if not cast and value.dtype not in KERNEL_FLOATS:
        raise TypeError(f"{name}: expected a float32 or float64 array, got {_describe(value)}")
    if cast and value.dtype.kind not in "biuf":  # bool, integers, floats
        raise TypeError(f"{name}: expected a float array, got {_describe(value)}")
    if dtype is not None and value.dtype != dtype and not cast:
        raise TypeError(
            f"{name}: expected {np.dtype(dtype).name} to match the layer's parameters, "
            f"got {value.dtype.name} (build the layer with dtype={value.dtype.name} or cast the input)")
    check_shape(name, value, labels, expected)
    dtype = dtype if dtype is not None else value.dtype
    return np.ascontiguousarray(value, dtype=dtype)


def index_array(name, value, labels, expected, upper):
    """Return ``value`` as a C-contiguous int64 array of indices in ``[0, upper)``."""
    if not isinstance(value, np.ndarray):
        value = np.asarray(value)
    if value.dtype.kind not in "iu":
        raise TypeError(f"{name}: expected integer word indices, got {_describe(value)}")
    check_shape(name, value, labels, expected)
    low, high = value.min(), value.max()
    if low < 0 or high >= upper:
        bad = low if low < 0 else high
        raise ValueError(f"{name}: expected indices in [0, {upper}), got {bad}")
    return np.ascontiguousarray(value, dtype=np.int64)


def parameter(layer, key, labels, expected, dtype=None):
    """Fetch ``layer.params[key]`` (read at every call, never cached) and check it.

    All parameters of a layer must share one float dtype; ``dtype`` is the one
    the layer's first parameter set.  Returns a C-contiguous array: the very
    same object when it already is one.
    """
    value = layer.params.get(key)
    if (type(value) is np.ndarray and value.flags.c_contiguous
            and (value.dtype == dtype if dtype is not None else value.dtype in KERNEL_FLOATS)
            and _shape_matches(value.shape, expected)):
        return value  # the common case, as in float_array
    if not isinstance(value, np.ndarray) or value.dtype not in KERNEL_FLOATS:
        raise TypeError(f"{key}: expected a float32 or float64 parameter array, "
                        f"got {_describe(value)}")
    if dtype is not None and value.dtype != dtype:
        raise TypeError(f"{key}: expected {np.dtype(dtype).name} like the layer's other "
                        f"parameters, got {value.dtype.name}")
    check_shape(key, value, labels, expected)
    return np.ascontiguousarray(value)


def positive_int(name, value):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}: expected a positive integer, got {value!r}")
    return int(value)


class ArgumentError(ValueError):
    """A value outside what its argument accepts; ``name``, ``expected`` and ``value``
    are kept so that the command line can name its own option instead."""

    def __init__(self, name, expected, value):
        super().__init__(f"{name}: expected {expected}, got {value!r}")
        self.name, self.expected, self.value = name, expected, value


def require(condition, name, expected, value):
    """Raise ArgumentError(name, expected, value) unless ``condition``."""
    if not condition:
        raise ArgumentError(name, expected, value)


def is_int(value):
    """An integer, not a bool."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_number(value):
    """An int or float (numpy's too), not a bool."""
    return isinstance(value, (int, float, np.integer, np.floating)) and \
        not isinstance(value, (bool, np.bool_))
