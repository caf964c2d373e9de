"""Upper-level objectives f(x, pi) (docs/theory.rst, "Objects and shapes" and "Gradients").

An objective is a protocol, not a class hierarchy: any object with

* ``value(x, pi) -> float``;
* ``grad_x(x, pi) -> ndarray (d,)``: the partial gradient in x at fixed pi;
* ``grad_pi(x, pi) -> ndarray (S, A)``: the partial derivatives
  ``df / dpi(a|s)``, each entry of pi treated as a free coordinate (no simplex
  projection; the softmax Jacobian of :func:`grad_theta` removes the part
  normal to the simplex);

can be passed wherever the package expects one.  The sampled actor-critic also
reads, from an optional fourth method,

* ``occupancy_cost(x, pi) -> ndarray (S, A)``: a cost c with
  ``grad_pi f(x, pi) = d^pi(s) Q_c^pi(s, a)`` at this pi (f's linearization
  ``<nu, c>`` has the same policy gradient at pi); its cost critic learns
  ``Q_c``.  Without it, :func:`occupancy_cost` derives one from ``grad_pi``
  (:func:`cost_of_policy_gradient`, one more solve).

Shipped here:

:class:`OccupancyObjective`
    ``f = <nu^pi, c> + psi(x)``, linear in the state-action occupancy;
    ``df/dpi(a|s) = d^pi(s) Q_c^pi(s, a)`` with ``Q_c^pi = c + gamma P V_c^pi``
    and ``V_c^pi = (I - gamma P_pi)^(-1) c_pi``: the policy-gradient theorem for
    the cost c (Sutton et al. 2000, written for the occupancy ``nu`` that sums
    to 1).
:class:`DistributionMatchingObjective`
    ``f = |d^pi - target|_2^2 + psi(x)``; by the chain rule through
    ``d = (1 - gamma)(I - gamma P_pi^T)^(-1) rho``, ``df/dpi`` is the gradient
    of ``<nu^pi, c>`` for the state cost ``c(s, a) = 2 (d^pi(s) - target(s))``
    held fixed.
:class:`CallableObjective`
    wraps three user callables and checks the shapes they return.

``psi(x) = kappa/2 |x - center|^2`` (docs/theory.rst, "GridWorld goal position"; ``center`` None means
the origin, whatever the length of x) for the two built-in objectives.

All policies are validated (shape ``(S, A)``, rows on the simplex to 1e-9).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import _real_scalar, as_float_array
from .bellman import check_mdp, sweep
from .evaluation import check_policy, policy_system

__all__ = [
    "OccupancyObjective",
    "DistributionMatchingObjective",
    "CallableObjective",
    "check_objective",
    "grad_theta",
    "occupancy_cost",
    "cost_of_policy_gradient",
    "finite_value",
]


def _check_x(x):
    arr = as_float_array("x", x)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"x must be a non-empty vector, shape (d,), got shape {arr.shape}")
    return arr


def _frozen(arr):
    arr = np.array(arr, dtype=np.float64)
    arr.setflags(write=False)
    return arr


def grad_theta(pi, g_pi):
    """Softmax chain rule: ``g_theta(s, a) = pi(a|s) (g_pi(s, a) - sum_b pi(b|s) g_pi(s, b))``.

    ``pi = softmax(theta)`` row by row; ``g_pi`` is ``df/dpi`` (S, A), the
    result ``df/dtheta`` (S, A).  Inputs are assumed validated.
    """
    return pi * (g_pi - np.sum(pi * g_pi, axis=1, keepdims=True))


class _Quadratic:
    """``psi(x) = kappa/2 |x - center|^2`` and its gradient (mixin for objectives)."""

    def _init_psi(self, kappa, center):
        kappa = _real_scalar("kappa", kappa)
        if kappa < 0:
            raise ValueError(f"kappa must be >= 0 (the weight of kappa/2 |x - center|^2), got {kappa}")
        object.__setattr__(self, "kappa", kappa)
        if center is not None:
            center = as_float_array("center", center)
            if center.ndim != 1 or center.size == 0:
                raise ValueError(f"center must be a non-empty vector, shape (d,), got shape {center.shape}")
            center = _frozen(center)
        object.__setattr__(self, "center", center)

    def _diff(self, x):
        x = _check_x(x)
        if self.center is None:
            return x
        if x.shape != self.center.shape:
            raise ValueError(
                f"x must have the length of center, d = {self.center.size}, got shape {x.shape}"
            )
        return x - self.center

    def _in_range(self, x, value, what):
        if not np.all(np.isfinite(value)):
            raise ValueError(f"x = {x} is so far from center that {what} is beyond the float64 range; "
                             "pass x (or kappa) of a smaller scale")
        return value

    def psi(self, x):
        """``kappa/2 |x - center|^2`` (ValueError if beyond the float64 range)."""
        with np.errstate(over="ignore", invalid="ignore"):
            z = self._diff(x)
            value = 0.5 * self.kappa * float(z @ z)
        return self._in_range(x, value, "kappa/2 |x - center|^2")

    def grad_x(self, x, pi):
        """``kappa (x - center)``: pi enters f only through the occupancy term (ValueError if
        beyond the float64 range)."""
        self._policy(pi)
        with np.errstate(over="ignore", invalid="ignore"):
            g = self.kappa * self._diff(x)
        return self._in_range(x, g, "kappa (x - center)")

    def _policy(self, pi):
        return check_policy(self.mdp, pi)

    def _occupancy(self, pi):
        """``(system, d^pi)``: the :class:`PolicySystem` of pi and its state occupancy."""
        system = policy_system(self.mdp, pi)
        return system, (1.0 - self.mdp.gamma) * system.solve(self.mdp.rho, transpose=True)

    def _cost_gradient(self, d, Vc, c):
        """``d^pi(s) Q_c^pi(s, a)`` for a cost c (S, A) with values ``Vc = V_c^pi``."""
        Qc, _ = sweep(self.mdp, np.ascontiguousarray(c), Vc, 0.0)
        return d[:, None] * Qc


@dataclass(frozen=True, eq=False)
class OccupancyObjective(_Quadratic):
    """``f(x, pi) = <nu^pi, c> + kappa/2 |x - center|^2`` (docs/theory.rst, "Gradients").

    ``nu^pi(s, a) = d^pi(s) pi(a|s)`` sums to 1, so ``<nu^pi, c>`` is the
    normalized discounted cost ``(1 - gamma) E[sum_t gamma^t c(s_t, a_t)]``.

    ``grad_pi f(s, a) = d^pi(s) Q_c^pi(s, a)``; ``grad_x f = kappa (x - center)``.

    Parameters
    ----------
    mdp : TabularMDP
    cost : (S, A) finite array c (e.g. +1 on hazard cells, -1 on targets).
    kappa : float >= 0.
    center : (d,) array or None (the origin).
    """

    mdp: object
    cost: np.ndarray
    kappa: float = 0.0
    center: np.ndarray | None = None

    def __post_init__(self):
        check_mdp(self.mdp)
        object.__setattr__(self, "cost", _frozen(as_float_array("cost", self.cost, shape=(self.mdp.S, self.mdp.A))))
        self._init_psi(self.kappa, self.center)

    def value(self, x, pi):
        pi = self._policy(pi)
        _, d = self._occupancy(pi)
        return float(d @ np.sum(pi * self.cost, axis=1)) + self.psi(x)

    def grad_pi(self, x, pi):
        self._diff(x)
        pi = self._policy(pi)
        # d^pi and V_c^pi are independent solves: together (concurrently on large sparse MDPs)
        rho_solution, Vc = policy_system(self.mdp, pi).solve_many(
            [(self.mdp.rho, True), (np.sum(pi * self.cost, axis=1), False)])
        return self._cost_gradient((1.0 - self.mdp.gamma) * rho_solution, Vc, self.cost)

    def occupancy_cost(self, x, pi):
        """The cost c itself (f is linear in nu)."""
        self._diff(x)
        self._policy(pi)
        return np.array(self.cost)


@dataclass(frozen=True, eq=False)
class DistributionMatchingObjective(_Quadratic):
    """``f(x, pi) = |d^pi - target|_2^2 + kappa/2 |x - center|^2``.

    ``grad_pi f(s, a) = d^pi(s) Q_g^pi(s, a)`` for the state cost
    ``g(s) = 2 (d^pi(s) - target(s))`` (chain rule through d^pi; see the module
    docstring); ``grad_x f = kappa (x - center)``.

    Parameters
    ----------
    mdp : TabularMDP
    target : (S,) state distribution (>= 0, sums to 1 within 1e-9).
    kappa, center : as for :class:`OccupancyObjective`.
    """

    mdp: object
    target: np.ndarray
    kappa: float = 0.0
    center: np.ndarray | None = None

    def __post_init__(self):
        check_mdp(self.mdp)
        target = as_float_array("target", self.target, shape=(self.mdp.S,), nonneg=True)
        with np.errstate(over="ignore"):
            total = target.sum()
        if abs(total - 1.0) > 1e-9:
            raise ValueError(f"target must sum to 1 (a state distribution), got sum {total!r}")
        object.__setattr__(self, "target", _frozen(target))
        self._init_psi(self.kappa, self.center)

    def value(self, x, pi):
        _, d = self._occupancy(self._policy(pi))
        z = d - self.target
        return float(z @ z) + self.psi(x)

    def _state_cost(self, d):
        return np.repeat((2.0 * (d - self.target))[:, None], self.mdp.A, axis=1)

    def grad_pi(self, x, pi):
        self._diff(x)
        pi = self._policy(pi)
        system, d = self._occupancy(pi)
        c = self._state_cost(d)
        return self._cost_gradient(d, system.solve(np.sum(pi * c, axis=1)), c)

    def occupancy_cost(self, x, pi):
        """``c(s, a) = 2 (d^pi(s) - target(s))``."""
        self._diff(x)
        return self._state_cost(self._occupancy(self._policy(pi))[1])


@dataclass(frozen=True, eq=False)
class CallableObjective:
    """An objective from three callables ``value(x, pi)``, ``grad_x(x, pi)``, ``grad_pi(x, pi)``.

    Each call validates pi against ``mdp`` and checks what the callable returns:
    a finite float, a finite ``(d,)`` vector (``d = len(x)``), a finite ``(S, A)``
    array; a value of the wrong type raises ``TypeError`` and one of the wrong shape or
    not finite ``ValueError``, each naming the callable.
    """

    mdp: object
    value_fn: object
    grad_x_fn: object
    grad_pi_fn: object

    def __post_init__(self):
        check_mdp(self.mdp)
        for name in ("value_fn", "grad_x_fn", "grad_pi_fn"):
            if not callable(getattr(self, name)):
                raise TypeError(f"{name} must be callable (x, pi) -> ..., got {type(getattr(self, name)).__name__}")

    def _args(self, x, pi):
        return _check_x(x), check_policy(self.mdp, pi)

    def value(self, x, pi):
        return finite_value("value_fn", self.value_fn(*self._args(x, pi)))

    def grad_x(self, x, pi):
        x, pi = self._args(x, pi)
        return as_float_array("grad_x_fn(x, pi)", self.grad_x_fn(x, pi), shape=(x.size,))

    def grad_pi(self, x, pi):
        x, pi = self._args(x, pi)
        return as_float_array("grad_pi_fn(x, pi)", self.grad_pi_fn(x, pi), shape=(self.mdp.S, self.mdp.A))


def finite_value(name, raw):
    """``raw``, what ``name`` returned for (x, pi), as a finite float: TypeError unless it is a
    real scalar (a bool, a string or None is not), ValueError unless it is finite and of shape ()."""
    text = repr(raw)
    text = text if len(text) <= 60 else text[:57] + "..."
    try:
        out = None if isinstance(raw, (str, bytes, bool, np.bool_)) or raw is None else np.asarray(raw)
    except (ValueError, TypeError):  # e.g. a ragged list
        out = None
    if out is None or out.dtype.kind not in "iuf":
        raise TypeError(f"{name} must return a finite scalar (a float) for (x, pi), got {type(raw).__name__} "
                        f"{text}; return e.g. float(...) of the objective's value")
    with np.errstate(over="ignore"):  # a longdouble beyond the float64 range: inf, refused below
        value = float(out) if out.shape == () else None
    if value is None or not np.isfinite(value):
        raise ValueError(f"{name} must return a finite scalar (a float) for (x, pi), got {text}"
                         + (f" of shape {out.shape}" if out.shape != () else ""))
    return value


def check_objective(objective, mdp=None):
    """``objective`` must have callable ``value``, ``grad_x`` and ``grad_pi``
    (and, when it has an ``mdp`` attribute and ``mdp`` is given, the same S and A)."""
    missing = [m for m in ("value", "grad_x", "grad_pi") if not callable(getattr(objective, m, None))]
    if missing:
        raise TypeError(
            f"objective must have methods value(x, pi), grad_x(x, pi) and grad_pi(x, pi); "
            f"{type(objective).__name__} lacks {', '.join(missing)} (wrap callables in eb.CallableObjective)"
        )
    own = getattr(objective, "mdp", None)
    if mdp is not None and own is not None and (own.S, own.A) != (mdp.S, mdp.A):
        raise ValueError(
            f"objective was built for an MDP with (S, A) = ({own.S}, {own.A}), "
            f"but mdp has ({mdp.S}, {mdp.A})"
        )
    return objective


def cost_of_policy_gradient(mdp, pi, g_pi):
    """The cost c (S, A) whose occupancy-linear objective has the partial derivatives
    ``g_pi`` at pi: ``d^pi(s) Q_c^pi(s, a) = g_pi(s, a)``.

    With ``q = g_pi / d^pi`` (row by row), ``c = q - gamma P (sum_a pi q)``: then
    ``Q_c^pi = q`` (the Bellman equation of Q_c^pi has the unique solution q).  States
    with ``d^pi(s) = 0`` get ``q = 0`` (f does not see them) and must have
    ``g_pi(s, .) = 0`` (ValueError otherwise).  One transposed solve.
    """
    check_mdp(mdp)
    pi = check_policy(mdp, pi)
    g_pi = as_float_array("g_pi", g_pi, shape=(mdp.S, mdp.A))
    d = (1.0 - mdp.gamma) * policy_system(mdp, pi).solve(mdp.rho, transpose=True)
    unseen = d <= 0
    if np.any(g_pi[unseen] != 0):
        s = int(np.flatnonzero(unseen & np.any(g_pi != 0, axis=1))[0])
        raise ValueError(f"g_pi is not 0 in state {s}, which pi never visits (d^pi = 0): no occupancy cost "
                         "reproduces it (give rho full support)")
    q = np.where(unseen[:, None], 0.0, g_pi / np.where(unseen, 1.0, d)[:, None])
    Vq = np.sum(pi * q, axis=1)
    backed, _ = sweep(mdp, np.zeros((mdp.S, mdp.A)), Vq, 0.0)  # gamma P Vq
    return q - backed


def occupancy_cost(objective, x, pi, mdp):
    """The occupancy cost c (S, A) of ``objective`` at (x, pi): its method
    ``occupancy_cost(x, pi)`` when it has one, else
    ``cost_of_policy_gradient(mdp, pi, objective.grad_pi(x, pi))``; checked finite."""
    method = getattr(objective, "occupancy_cost", None)
    if callable(method):
        c = method(x, pi)
    else:
        c = cost_of_policy_gradient(mdp, pi, objective.grad_pi(x, pi))
    return as_float_array("objective.occupancy_cost(x, pi)", c, shape=(mdp.S, mdp.A))
