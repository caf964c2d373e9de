"""Rewards parametrized by the upper-level variable x (spec section 1).

A reward is a protocol, not a class hierarchy: any object with

* ``value(x) -> ndarray (S, A)``: the reward table ``r_x[s, a]``;
* ``jacobian(x) -> ndarray (S, A, d)``: ``R_x[s, a, i] = d r_x[s, a] / d x[i]``;

both float64, for ``x`` of shape ``(d,)``, can be passed wherever the package
expects a reward.  Transitions never depend on x.  The classes below are small
immutable implementations of that protocol; each checks that ``x`` is a finite
real vector of the right length and raises ``ValueError`` naming ``x``
otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._validation import as_float_array, check_int, check_positive

__all__ = ["LinearReward", "TabularReward", "GaussianGoalReward"]


def _check_x(x, d):
    """``x`` as a float64 array of shape ``(d,)``, finite."""
    arr = as_float_array("x", x)
    if arr.shape != (d,):
        raise ValueError(f"x must be a vector of length d = {d}, shape ({d},), got shape {arr.shape}")
    return arr


def _frozen(name, value, ndim):
    """A read-only float64 copy of ``value`` with ``ndim`` dimensions, none of them empty."""
    arr = as_float_array(name, value, shape=(None,) * ndim).copy()
    if 0 in arr.shape:
        raise ValueError(f"{name} must have no empty dimension, got shape {arr.shape}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False, repr=False)
class LinearReward:
    """Linear reward ``r_x = Psi @ x``.

    ``value(x)[s, a] = sum_i Psi[s, a, i] * x[i]``, shape ``(S, A)``;
    ``jacobian(x) = Psi``, shape ``(S, A, d)``, the stored read-only array
    itself (it does not depend on x).

    Parameters
    ----------
    Psi : array_like of shape (S, A, d)
        Finite real features; copied and made read-only.
    """

    Psi: np.ndarray

    def __post_init__(self):
        object.__setattr__(self, "Psi", _frozen("Psi", self.Psi, 3))

    @property
    def S(self) -> int:
        return self.Psi.shape[0]

    @property
    def A(self) -> int:
        return self.Psi.shape[1]

    @property
    def d(self) -> int:
        return self.Psi.shape[2]

    def value(self, x) -> np.ndarray:
        """``r_x = Psi @ x``, shape ``(S, A)``."""
        return self.Psi @ _check_x(x, self.d)

    def jacobian(self, x) -> np.ndarray:
        """``Psi``, shape ``(S, A, d)`` (read-only; x is only validated)."""
        _check_x(x, self.d)
        return self.Psi

    def __repr__(self):
        return f"LinearReward(S={self.S}, A={self.A}, d={self.d})"


@dataclass(frozen=True)
class TabularReward:
    """One free parameter per state-action pair: ``r_x = x.reshape(S, A)``, ``d = S * A``.

    This is the linear reward with identity features, ``Psi[s, a, i] = 1`` if
    ``i == s * A + a`` else 0, without storing them.  ``jacobian(x)`` returns
    that identity as a fresh dense ``(S, A, S * A)`` array, as the protocol asks:
    ``8 * (S * A)**2`` bytes (80 MB at ``S * A = 3162``), so it is meant for
    small problems; code that only needs ``R_x^T nu`` can use ``nu.ravel()``.
    """

    S: int
    A: int

    def __post_init__(self):
        object.__setattr__(self, "S", check_int("S", self.S, minimum=1))
        object.__setattr__(self, "A", check_int("A", self.A, minimum=1))

    @property
    def d(self) -> int:
        return self.S * self.A

    def value(self, x) -> np.ndarray:
        """``x.reshape(S, A)``, shape ``(S, A)`` (a copy)."""
        return _check_x(x, self.d).reshape(self.S, self.A).copy()

    def jacobian(self, x) -> np.ndarray:
        """The identity ``(S * A, S * A)`` reshaped to ``(S, A, S * A)``."""
        _check_x(x, self.d)
        return np.eye(self.d).reshape(self.S, self.A, self.d)


@dataclass(frozen=True, eq=False, repr=False)
class GaussianGoalReward:
    """Gaussian bump around a goal ``x`` (spec section 6.1), the same for every action.

    ``value(x)[s, a] = exp(-|c(s) - x|^2 / (2 sigma^2))``, shape ``(S, A)``;
    ``jacobian(x)[s, a, :] = value(x)[s, a] * (c(s) - x) / sigma^2``, shape ``(S, A, k)``.

    Parameters
    ----------
    coords : array_like of shape (S, k)
        Coordinates ``c(s)`` of each state, e.g. ``GridWorld.coords`` (k = 2);
        copied and made read-only.
    A : int
        Number of actions (>= 1).
    sigma : float
        Width of the bump (> 0).
    """

    coords: np.ndarray
    A: int
    sigma: float = field(default=1.0)

    def __post_init__(self):
        object.__setattr__(self, "coords", _frozen("coords", self.coords, 2))
        object.__setattr__(self, "A", check_int("A", self.A, minimum=1))
        object.__setattr__(self, "sigma", check_positive("sigma", self.sigma))

    @property
    def S(self) -> int:
        return self.coords.shape[0]

    @property
    def d(self) -> int:
        return self.coords.shape[1]

    def _bump(self, x):
        """``(exp(-|c - x|^2 / (2 sigma^2)) (S,), c - x (S, k))``."""
        diff = self.coords - _check_x(x, self.d)
        return np.exp(-np.einsum("sk,sk->s", diff, diff) / (2.0 * self.sigma**2)), diff

    def value(self, x) -> np.ndarray:
        """``exp(-|c(s) - x|^2 / (2 sigma^2))`` repeated over actions, shape ``(S, A)``."""
        r, _ = self._bump(x)
        return np.repeat(r[:, None], self.A, axis=1)

    def jacobian(self, x) -> np.ndarray:
        """``r(s) * (c(s) - x) / sigma^2`` repeated over actions, shape ``(S, A, k)``."""
        r, diff = self._bump(x)
        return np.repeat((r[:, None] * diff / self.sigma**2)[:, None, :], self.A, axis=1)

    def __repr__(self):
        return f"GaussianGoalReward(S={self.S}, A={self.A}, k={self.d}, sigma={self.sigma})"
