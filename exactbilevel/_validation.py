"""Input checks shared by the public functions.

Every public function validates its arguments here, in Python, before any
compiled kernel sees them: a kernel assumes finite float64 arrays of the right
shape and indices in range.  Each check raises ``TypeError`` (wrong kind of
object) or ``ValueError`` (right kind, wrong value) naming the argument, what
was wrong and how to fix it.
"""

from __future__ import annotations

import numbers

import numpy as np

__all__ = [
    "ConvergenceError",
    "as_float_array",
    "check_gamma",
    "check_tau",
    "check_positive",
    "check_int",
    "check_choice",
    "is_real",
    "is_integer",
]


class ConvergenceError(RuntimeError):
    """An iterative solver (Bellman or linear) stopped before certifying its tolerance."""


def as_float_array(name, value, shape=None, *, finite=True, nonneg=False):
    """Return ``value`` as a C-contiguous float64 array, after checking it.

    ``shape`` is a tuple whose entries are ints or None (any length).  Booleans,
    integers and floats are accepted and converted; complex, object and string
    arrays raise ``TypeError``.
    """
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{name} must be a real numeric array, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except Exception as exc:  # ragged nested lists and the like
        raise TypeError(f"{name} must be a real numeric array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must have a real numeric dtype (bool, int or float), got dtype {arr.dtype}; "
            "convert it with np.asarray(..., dtype=float)"
        )
    if shape is not None:
        if arr.ndim != len(shape) or any(
            want is not None and got != want for got, want in zip(arr.shape, shape)
        ):
            want_txt = "(" + ", ".join("*" if w is None else str(w) for w in shape) + ("," if len(shape) == 1 else "") + ")"
            raise ValueError(f"{name} must have shape {want_txt}, got shape {arr.shape}")
    with np.errstate(over="ignore"):  # a longdouble beyond the float64 range becomes inf: reported below
        arr = np.ascontiguousarray(arr, dtype=np.float64)
    if finite and not np.all(np.isfinite(arr)):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name} has a NaN or infinite entry at index {tuple(int(i) for i in bad)}; "
            "every entry must be finite"
        )
    if nonneg and arr.size and arr.min() < 0:
        bad = np.unravel_index(int(np.argmin(arr)), arr.shape)
        raise ValueError(
            f"{name} has a negative entry {arr[bad]!r} at index {tuple(int(i) for i in bad)}; "
            "every entry must be >= 0"
        )
    return arr


def is_real(value):
    """A real number: an instance of numbers.Real, but not a bool and not a numpy
    timedelta64 (which numpy registers as an integer; it has no float value)."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_, np.timedelta64))


def is_integer(value):
    """An integer: an instance of numbers.Integral, but not a bool and not a numpy timedelta64."""
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_, np.timedelta64))


def _real_scalar(name, value):
    if not is_real(value):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_gamma(gamma):
    """gamma must be a real number in [0, 1)."""
    gamma = _real_scalar("gamma", gamma)
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must lie in [0, 1), got {gamma}; discounting needs gamma < 1")
    return gamma


def check_tau(tau):
    """tau must be a finite real number >= 0 (0 is the hard max)."""
    tau = _real_scalar("tau", tau)
    if tau < 0.0:
        raise ValueError(f"tau must be >= 0 (0 is the unregularized hard max), got {tau}")
    return tau


def check_positive(name, value):
    value = _real_scalar(name, value)
    if value <= 0.0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def check_choice(name, value, choices, expected=None):
    """value must be one of the strings ``choices``: TypeError for a value that is not a
    string (a numpy array of strings included), ValueError for another string; the
    messages say ``name must be {expected}`` (default ``one of {choices}``)."""
    expected = f"one of {tuple(choices)}" if expected is None else expected
    if not isinstance(value, str):
        text = repr(value)
        text = text if len(text) <= 60 else text[:57] + "..."
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {text}")
    if value not in choices:
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    return value


def check_int(name, value, minimum=None, maximum=None):
    if not is_integer(value):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {value}")
    return value
