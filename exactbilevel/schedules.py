"""Step-size, entropy-weight and penalty schedules (spec section 4).

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


def evaluate(name, schedule, ks):
    """``schedule(k)`` for every k in the integer array ``ks``, as float64; non-finite values
    are a ValueError naming the schedule and the first bad step."""
    ks = np.asarray(ks, dtype=np.int64)
    try:
        out = np.asarray(schedule(ks), dtype=np.float64)
        if out.shape != ks.shape:
            out = np.broadcast_to(out, ks.shape).copy() if out.ndim == 0 else None
    except Exception:
        out = None
    if out is None:  # a scalar-only callable
        out = np.array([float(schedule(int(k))) for k in ks], dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(out))
    if bad.size:
        raise ValueError(f"schedule {name} gave {out[bad[0]]} at step k = {int(ks[bad[0]])}; it must be finite")
    return out
