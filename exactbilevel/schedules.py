"""Step-size, entropy-weight and penalty schedules (docs/theory.rst, "The algorithm").

A schedule is a pure callable of the step count ``k = 0, 1, 2, ...`` returning
a float (in the style of optax schedules).  Shipped:

* ``power(c0, p)``: ``c0 * (k + 1) ** (-p)``; p > 0 decays, p < 0 grows
  (``power(lam0, -q)`` is the growing penalty ``lam0 (k + 1)^q``), p = 0 is a
  constant;
* ``constant(c)``: ``c`` for every k.

Anything callable works (a ``lambda k: ...``); :func:`as_schedule` turns a
plain number into a constant and :func:`evaluate` evaluates a schedule on an
array of steps (vectorized when the callable accepts arrays, element by
element otherwise), checking that every value is finite.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import _real_scalar

__all__ = ["Power", "power", "constant", "as_schedule", "evaluate"]


@dataclass(frozen=True)
class Power:
    """``c0 * (k + 1) ** (-p)`` (a constant when p = 0)."""

    c0: float
    p: float

    def __post_init__(self):
        object.__setattr__(self, "c0", _real_scalar("c0", self.c0))
        object.__setattr__(self, "p", _real_scalar("p", self.p))

    def __call__(self, k):
        return self.c0 * (np.asarray(k, dtype=np.float64) + 1.0) ** (-self.p)

    @property
    def exponent(self):
        """The decay exponent p (negative for a growing schedule)."""
        return self.p


def power(c0, p):
    """``k -> c0 * (k + 1) ** (-p)``."""
    return Power(c0, p)


def constant(c):
    """``k -> c``."""
    return Power(c, 0.0)


def as_schedule(name, value):
    """A schedule from a number (a constant) or a callable; anything else is a TypeError naming ``name``."""
    if callable(value):
        return value
    try:
        return constant(_real_scalar(name, value))
    except TypeError:
        raise TypeError(
            f"{name} must be a number or a schedule (a callable of the step k, e.g. "
            f"eb.schedules.power(0.5, 0.2)), got {type(value).__name__}"
        ) from None


def _number(name, value, k):
    """The float value of ``schedule(k)``; TypeError naming the schedule unless it is a real number."""
    if isinstance(value, np.ndarray) and value.shape in ((), (1,)) and value.dtype.kind in "iuf":
        value = value.reshape(()).item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        text = repr(value)
        text = text if len(text) <= 60 else text[:57] + "..."
        raise TypeError(f"schedule {name} must return a real number for each step k (an int), got "
                        f"{type(value).__name__} {text} at k = {k}; return a float, e.g. "
                        "lambda k: 0.5 * (k + 1) ** -0.2, or pass eb.schedules.power(0.5, 0.2)")
    return float(value)


def evaluate(name, schedule, ks):
    """``schedule(k)`` for every k in the integer array ``ks``, as float64.

    The schedule is called once on the whole array (its result is used if it is a real
    numeric array of the shape of ``ks``, or a real scalar) and otherwise element by element
    with Python ints.  A value that is not a real number is a TypeError, a non-finite value
    a ValueError, each naming the schedule and the first bad step."""
    ks = np.asarray(ks, dtype=np.int64)
    out = None
    try:
        raw = np.asarray(schedule(ks))
        if raw.dtype.kind in "iuf":
            if raw.shape == ks.shape:
                out = np.array(raw, dtype=np.float64)
            elif raw.ndim == 0:
                out = np.full(ks.shape, float(raw), dtype=np.float64)
    except Exception:
        out = None
    if out is None:  # a scalar-only callable
        out = np.array([_number(name, schedule(int(k)), int(k)) for k in ks.ravel()], dtype=np.float64).reshape(ks.shape)
    bad = np.flatnonzero(~np.isfinite(out.ravel()))
    if bad.size:
        raise ValueError(f"schedule {name} gave {out.ravel()[bad[0]]} at step k = {int(ks.ravel()[bad[0]])}; it must be finite")
    return out
