"""Running average and running minimum over k of a logged quantity (docs/theory.rst, "What is measured").

Finite-time theorems of the kind the package checks bound an average over the run,
``(1/K) sum_{k<K} v(k)``, or the minimum over ``k <= K``, not the last iterate.  A
trace knows ``v`` only at its logging points ``k_0 = 0 < k_1 < ... < k_{n-1}``, so:

* :func:`running_mean` is the quadrature that replaces ``v`` between two logging
  points by the straight line through them, ``vhat``, and sums it at the integer steps::

      M(k_m) = (1/k_m) sum_{j < k_m} vhat(j)
             = (1/k_m) sum_{i < m} [ n_i v_i + (n_i - 1)/2 (v_{i+1} - v_i) ],   n_i = k_{i+1} - k_i

  (the sum of a straight line over the n_i integers k_i, ..., k_{i+1} - 1).  It is the
  trapezoid rule on the logging points with its endpoint correction,
  ``M(K) = [int_0^K vhat(t) dt - (v(K) - v(0)) / 2] / K``, and it is exact whenever ``v``
  is linear between consecutive logging points (in particular for logging at every step,
  where it is the plain mean of ``v_0, ..., v_{K-1}``).  Its error is
  ``(1/K) sum_{j<K} (v(j) - vhat(j))``; for a ``v`` with ``|v''| <= C`` on an interval
  of length n_i each term is at most ``C n_i^2 / 8``, so the error is at most
  ``C max_i n_i^2 / 8``; of the noise of a sampled run between logging points it sees
  nothing.  At ``K = 0`` the average is empty: NaN.
* :func:`running_min` is ``min_{i <= m} v_i``, the minimum over the logging points up to
  ``k_m`` (the minimum over every k <= K is not known: it is at most this).

Shapes: ``k`` is (n,), strictly increasing non-negative integers starting at 0 (the
``k`` column of a :class:`~exactbilevel.trace.Trace`); ``values`` has n entries along
``axis`` (default 0, the Trace convention: ``trace["x"]`` is (n, d); use ``axis=-1``
for a stack (n_seeds, n) of seeds).  The result is a new float64 array of the shape of
``values``; NaN in ``values`` propagates to every later entry, and so do an infinity and a
sum beyond the float64 range (as inf or NaN, without a warning).  The inputs are not changed.
"""

from __future__ import annotations

import numpy as np

from ._validation import is_integer

__all__ = ["running_mean", "running_min"]


def _array(name, value):
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested lists and the like
        raise TypeError(f"{name} must be a numeric array: {exc}") from None


def _check(k, values, axis):
    k_arr = _array("k", k)
    if k_arr.ndim != 1 or k_arr.size == 0:
        raise ValueError(f"k must be a non-empty 1-D array of logging steps, got shape {k_arr.shape}")
    if not (k_arr.dtype.kind in "iu" or (k_arr.dtype.kind == "f" and np.all(np.isfinite(k_arr))
                                         and np.all(k_arr == np.round(k_arr)))):
        raise TypeError(f"k must hold integers (the logging steps), got dtype {k_arr.dtype}")
    if float(k_arr.max()) >= 2.0**63:
        raise ValueError(f"k must hold logging steps below 2^63, got {k_arr.max()!r}")
    k_arr = k_arr.astype(np.int64)
    if k_arr[0] != 0:
        raise ValueError(f"k must start at 0 (the running quantities start at the first step), got k[0] = {k_arr[0]}")
    if np.any(np.diff(k_arr) <= 0):
        i = int(np.flatnonzero(np.diff(k_arr) <= 0)[0])
        raise ValueError(f"k must be strictly increasing, got k[{i}] = {k_arr[i]} >= k[{i + 1}] = {k_arr[i + 1]}")
    v = _array("values", values)
    if v.dtype.kind not in "biuf":
        raise TypeError(f"values must be a real numeric array (bool, int or float), got dtype {v.dtype}")
    if not is_integer(axis) or not -v.ndim <= axis < max(v.ndim, 1):
        raise ValueError(f"axis must be an int in [-{v.ndim}, {v.ndim}) for values of shape {v.shape}, got {axis!r}")
    if v.ndim == 0 or v.shape[axis] != k_arr.size:
        raise ValueError(f"values must have len(k) = {k_arr.size} entries along axis {axis}, got shape {v.shape}")
    with np.errstate(over="ignore"):  # a longdouble beyond the float64 range: inf
        return k_arr, np.moveaxis(v.astype(np.float64), axis, 0)


def running_mean(k, values, axis=0):
    """``(1/K) sum_{j<K} vhat(j)`` at every logging point K of ``k``, with ``vhat`` the
    piecewise-linear interpolant of ``values`` between logging points (module docstring:
    the formula, its exactness and error bound); NaN at K = 0.  Same shape as ``values``."""
    k, v = _check(k, values, axis)
    n = (np.diff(k).astype(np.float64)).reshape((-1,) + (1,) * (v.ndim - 1))
    out = np.empty_like(v)
    out[0] = np.nan
    with np.errstate(over="ignore", invalid="ignore"):  # values near the float64 range: inf or NaN, as documented
        pieces = n * v[:-1] + 0.5 * (n - 1.0) * (v[1:] - v[:-1])
        out[1:] = np.cumsum(pieces, axis=0) / k[1:].astype(np.float64).reshape(n.shape)
    return np.moveaxis(out, 0, axis)


def running_min(k, values, axis=0):
    """``min_{i <= m} values_i`` at every logging point k_m (module docstring); NaN
    propagates.  Same shape as ``values``."""
    _, v = _check(k, values, axis)
    return np.moveaxis(np.minimum.accumulate(v, axis=0), 0, axis)
