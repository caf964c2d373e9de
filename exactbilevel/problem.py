"""A bi-level problem: an MDP, a reward family r_x, an upper objective f and a box X for x.

    minimize_{x in X} f(x, pi*(x)),   pi*(x) optimal for r_x        (docs/theory.rst)

``X = {x : lo <= x <= hi}`` (entries may be infinite); ``bounds=None`` is all of R^d.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import as_float_array
from .bellman import check_mdp
from .gradients import check_reward_model
from .objectives import check_objective

__all__ = ["BilevelProblem"]


def _side(name, raw, d):
    """One side of the box: a number or a (d,) array, as a new (d,) float64 array."""
    arr = as_float_array(name, raw, finite=False)
    if arr.shape not in ((), (1,), (d,)):
        raise ValueError(f"{name} must be a number or an array of shape ({d},) (x has d = {d}), got shape {arr.shape}")
    return np.broadcast_to(arr, (d,)).copy()


@dataclass(frozen=True, eq=False)
class BilevelProblem:
    """``BilevelProblem(mdp, reward, objective, x0, bounds=None)``.

    Parameters
    ----------
    mdp : TabularMDP
    reward : object with ``value(x)`` (S, A) and ``jacobian(x)`` (S, A, d)
    objective : object with ``value``, ``grad_x``, ``grad_pi``
    x0 : (d,) starting point, inside the box
    bounds : None, or a pair ``(lo, hi)`` of numbers or (d,) arrays with lo <= hi
        (use -inf / inf for open sides)

    Attributes ``lo`` and ``hi`` are the (d,) box; :meth:`project` clips onto it.
    ``x0``, ``lo`` and ``hi`` are read-only float64 copies: the caller's arrays
    are neither changed nor frozen.
    """

    mdp: object
    reward: object
    objective: object
    x0: np.ndarray
    bounds: object = None

    def __post_init__(self):
        check_mdp(self.mdp)
        check_objective(self.objective, self.mdp)
        x0, _, _ = check_reward_model(self.reward, self.mdp, self.x0, name="x0")
        x0 = x0.copy()  # as_float_array may return the caller's array itself: never freeze it
        d = x0.size
        if self.bounds is None:
            lo, hi = np.full(d, -np.inf), np.full(d, np.inf)
        else:
            try:
                lo_raw, hi_raw = self.bounds
            except (TypeError, ValueError):
                raise TypeError("bounds must be None or a pair (lo, hi) of numbers or (d,) arrays") from None
            lo, hi = (_side(f"bounds[{i}]", raw, d) for i, raw in enumerate((lo_raw, hi_raw)))
            if np.isnan(lo).any() or np.isnan(hi).any() or np.any(lo > hi):
                raise ValueError(f"bounds must satisfy lo <= hi (no NaN), got lo = {lo}, hi = {hi}")
        outside = np.flatnonzero((x0 < lo) | (x0 > hi))
        if outside.size:
            i = int(outside[0])
            raise ValueError(
                f"x0 must lie in the box: x0[{i}] = {x0[i]} is outside [{lo[i]}, {hi[i]}]; "
                "move x0 inside or widen bounds"
            )
        for name, v in (("x0", x0), ("lo", lo), ("hi", hi)):
            v.setflags(write=False)
            object.__setattr__(self, name, v)

    @property
    def d(self) -> int:
        return self.x0.size

    def project(self, x):
        """The Euclidean projection of x onto the box: ``clip(x, lo, hi)``."""
        return np.clip(x, self.lo, self.hi)
