"""Rewards parametrized by the upper-level variable x (docs/theory.rst, "Objects and shapes").

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

__all__ = ["LinearReward", "TabularReward", "GaussianGoalReward", "GAUSSIAN_MIN_SIGMA"]


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
        """``r_x = Psi @ x``, shape ``(S, A)``; ValueError if an entry is beyond the float64 range."""
        x = _check_x(x, self.d)
        with np.errstate(over="ignore", invalid="ignore"):
            r = self.Psi @ x
        if not np.all(np.isfinite(r)):
            s, a = (int(i) for i in np.argwhere(~np.isfinite(r))[0])
            raise ValueError(f"x = {x} gives the reward r_x[{s}, {a}] = Psi[{s}, {a}] @ x beyond the float64 range; "
                             "pass x (or Psi) of a smaller scale")
        return r

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


#: Smallest width :class:`GaussianGoalReward` accepts: its Jacobian is at most
#: ``exp(-1/2) / sigma`` in size, finite in float64 for sigma >= this.
GAUSSIAN_MIN_SIGMA = 1e-300

#: Scaled distances ``|c - x| / sigma`` beyond this give the bump exp(-z^2 / 2) = 0
#: exactly in float64 (it underflows for z > 38.6); they are clipped to it so
#: that neither z^2 nor the Jacobian's z * bump overflows or becomes NaN.
_Z_CLIP = 1e3


@dataclass(frozen=True, eq=False, repr=False)
class GaussianGoalReward:
    """Gaussian bump around a goal ``x`` (docs/theory.rst, "GridWorld goal position"), the same for every action.

    ``value(x)[s, a] = exp(-|c(s) - x|^2 / (2 sigma^2))``, shape ``(S, A)``;
    ``jacobian(x)[s, a, :] = value(x)[s, a] * (c(s) - x) / sigma^2``, shape ``(S, A, k)``.

    Both are computed from the scaled differences ``z = (c(s) - x) / sigma``, as
    ``exp(-|z|^2 / 2)`` and ``(value * z) / sigma``, so that no intermediate
    under- or overflows (sigma^2 is never formed): every finite coords, x and
    sigma in ``[GAUSSIAN_MIN_SIGMA, inf)`` = ``[1e-300, inf)`` give finite values
    in [0, 1] and a finite Jacobian (at most ``exp(-1/2) / sigma`` per entry).

    Parameters
    ----------
    coords : array_like of shape (S, k)
        Coordinates ``c(s)`` of each state, e.g. ``GridWorld.coords`` (k = 2);
        copied and made read-only.
    A : int
        Number of actions (>= 1).
    sigma : float
        Width of the bump, finite and >= 1e-300 (ValueError otherwise).
    """

    coords: np.ndarray
    A: int
    sigma: float = field(default=1.0)

    def __post_init__(self):
        object.__setattr__(self, "coords", _frozen("coords", self.coords, 2))
        object.__setattr__(self, "A", check_int("A", self.A, minimum=1))
        sigma = check_positive("sigma", self.sigma)
        if sigma < GAUSSIAN_MIN_SIGMA:
            raise ValueError(
                f"sigma must be >= {GAUSSIAN_MIN_SIGMA:g} (the Jacobian, of size up to 0.61 / sigma, "
                f"would overflow float64), got {sigma!r}; measure coords in larger units"
            )
        object.__setattr__(self, "sigma", sigma)

    @property
    def S(self) -> int:
        return self.coords.shape[0]

    @property
    def d(self) -> int:
        return self.coords.shape[1]

    def _bump(self, x):
        """``(exp(-|z|^2 / 2) (S,), z (S, k))`` with ``z = (c - x) / sigma`` clipped to
        ``+-_Z_CLIP`` (where the bump is 0 anyway)."""
        x = _check_x(x, self.d)
        with np.errstate(over="ignore", under="ignore"):  # c - x may overflow: then the bump is 0
            z = np.clip((self.coords - x) / self.sigma, -_Z_CLIP, _Z_CLIP)
            return np.exp(-0.5 * np.einsum("sk,sk->s", z, z)), z

    def value(self, x) -> np.ndarray:
        """``exp(-|c(s) - x|^2 / (2 sigma^2))`` repeated over actions, shape ``(S, A)``."""
        r, _ = self._bump(x)
        return np.repeat(r[:, None], self.A, axis=1)

    def jacobian(self, x) -> np.ndarray:
        """``r(s) * (c(s) - x) / sigma^2`` repeated over actions, shape ``(S, A, k)``."""
        r, z = self._bump(x)
        with np.errstate(under="ignore"):
            jac = (r[:, None] * z) / self.sigma
        return np.repeat(jac[:, None, :], self.A, axis=1)

    def __repr__(self):
        return f"GaussianGoalReward(S={self.S}, A={self.A}, k={self.d}, sigma={self.sigma})"
