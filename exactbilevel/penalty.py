"""The value-penalty landscape (docs/theory.rst, "The value penalty", a choice of this package).

For a reward r_x, an objective f, a penalty weight lam > 0 and tau >= 0::

    p_tau(x, pi)          = J*_tau(x) - J_tau(x, pi)  >= 0      (= 0 iff pi = pi*_tau(x))
    L_{lam,tau}(x, theta) = f(x, pi_theta) + lam p_tau(x, pi_theta)
    ell_{lam,tau}(x)      = min_theta L_{lam,tau}(x, theta)

    grad_x L     = grad_x f(x, pi_theta) + lam R_x^T (nu^{pi*_tau(x)} - nu^{pi_theta}) / (1 - gamma)
    grad_theta L = grad_theta f(x, pi_theta) - lam dJ_tau/dtheta (x, pi_theta)

and, at the minimizer theta_lam(x) (Danskin), ``grad ell(x) = grad_x L(x, theta_lam(x))``.
Expected: ``|grad ell - grad Phi_tau| = O(1/lam)`` and
``p_tau(x, pi_{theta_lam}) = O(1/lam^2)``.

:func:`penalized_policy` finds theta_lam(x) by preconditioned (natural) policy
gradient descent on ``L / lam = f / lam - J_tau + J*_tau``.  With
``q_f(s, a) = grad_pi f(s, a) / d^pi(s)`` (the natural gradient of f, since
``grad_theta f(s) = (diag pi_s - pi_s pi_s^T) grad_pi f(s)``) a step is::

    theta <- theta + eta / tau * ( Atilde^pi - (1 - gamma) q_f / lam )

``eta = 1`` is soft policy iteration on the reward ``r - (1 - gamma) q_f / lam``
(for f = <nu, c> + psi, q_f = Q_c^pi); eta is halved whenever L does not
decrease (and grown back by 2 after a success).  The iteration stops when the
largest logit step of an ``eta = 1`` step, ``max |delta - sum_a pi delta|``
with ``delta = (Atilde - (1 - gamma) q_f / lam) / tau``, is below ``tol``.
States with d^pi(s) = 0 get q_f = 0 (f does not see them).  L is not convex
in theta: the result is a stationary point reached from ``theta0`` (the
soft-optimal logits ``Q*_tau / tau`` by default), the global minimum when
lam is large enough for the penalty to dominate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._validation import ConvergenceError, _real_scalar, as_float_array, check_int, check_positive, check_tau
from .bellman import check_mdp
from .evaluation import check_policy, policy_reward, policy_system
from .gradients import (
    _evaluate, _policy_weighted, _reward_gradient, _shifted_logits, _state_occupancy, _tau_log_softmax,
    check_reward_model, check_theta, log_softmax, lower_solve,
)
from .objectives import check_objective, finite_value, grad_theta

__all__ = ["value_penalty", "penalty_lagrangian", "Lagrangian", "penalized_policy", "PenalizedPolicy"]


def _check_lam(lam):
    lam = _real_scalar("lam", lam)
    if lam <= 0.0:
        raise ValueError(f"lam must be > 0 (the penalty weight), got {lam}")
    return lam


def value_penalty(mdp, reward, x, pi, tau=0.0, solution=None):
    """``p_tau(x, pi) = J*_tau(x) - J_tau(x, pi) >= 0`` (a float; zero up to solver accuracy at pi*_tau).

    ``solution``: a SolveResult at this x and tau to reuse.
    """
    check_mdp(mdp)
    x, r, _ = check_reward_model(reward, mdp, x)
    pi, tau = check_policy(mdp, pi), check_tau(tau)
    sol = lower_solve(mdp, r, tau, solution)
    V = policy_system(mdp, pi).solve(policy_reward(r, pi, tau))
    return float(mdp.rho @ (sol.V - V))


@dataclass(frozen=True)
class Lagrangian:
    """:func:`penalty_lagrangian` at (x, theta): ``value = f + lam * penalty``, ``f``,
    ``penalty`` = p_tau, ``grad_x`` (d,), ``grad_theta`` (S, A), ``pi`` = softmax(theta)."""

    value: float
    f: float
    penalty: float
    grad_x: np.ndarray
    grad_theta: np.ndarray
    pi: np.ndarray

    def __post_init__(self):
        for v in (self.grad_x, self.grad_theta, self.pi):
            v.setflags(write=False)


def _parts(mdp, r, objective, x, theta, tau, sol):
    """``(pi, Atilde, system, f, p)`` at theta, on validated inputs.  tau log pi is formed
    from the logits (finite logits of any spread): Atilde is finite where pi > 0 and may be
    +inf where pi = 0 (tau log pi beyond the float64 range)."""
    pi = np.exp(log_softmax(theta))
    V, _, A, system = _evaluate(mdp, r, pi, tau, _tau_log_softmax(theta, tau) if tau > 0 else None)
    return pi, A, system, finite_value("objective.value", objective.value(x, pi)), float(mdp.rho @ (sol.V - V))


def _lagrangian(mdp, r, R, objective, x, theta, lam, tau, sol):
    """The :class:`Lagrangian` at (x, theta) and the natural-gradient logit step
    ``Atilde - (1 - gamma) q_f / lam`` of :func:`penalized_policy`, on validated inputs."""
    pi, A, system, f, p = _parts(mdp, r, objective, x, theta, tau, sol)
    d = _state_occupancy(mdp, system)
    g_pi = as_float_array("objective.grad_pi(x, pi)", objective.grad_pi(x, pi), shape=(mdp.S, mdp.A))
    g_x = as_float_array("objective.grad_x(x, pi)", objective.grad_x(x, pi), shape=(x.size,))
    grad_x = g_x + lam * (_reward_gradient(mdp, R, sol.pi) - _reward_gradient(mdp, R, pi, system))
    grad_th = grad_theta(pi, g_pi) - _policy_weighted(lam / (1.0 - mdp.gamma) * d[:, None], pi, A)
    with np.errstate(over="ignore", invalid="ignore"):  # beyond the float64 range: penalized_policy refuses it
        q_f = np.divide(g_pi, d[:, None], out=np.zeros_like(g_pi), where=d[:, None] > 0)
        step = A - (1.0 - mdp.gamma) * q_f / lam
    return Lagrangian(f + lam * p, f, p, grad_x, grad_th, pi), step


def penalty_lagrangian(mdp, reward, objective, x, theta, lam, tau=0.0, solution=None):
    """``L_{lam,tau}(x, theta)`` with its gradients in x and theta (module docstring): a :class:`Lagrangian`.

    ``solution``: a SolveResult of the lower level at this x and tau to reuse.
    """
    check_mdp(mdp)
    check_objective(objective, mdp)
    x, r, R = check_reward_model(reward, mdp, x)
    theta, lam, tau = check_theta(mdp, theta), _check_lam(lam), check_tau(tau)
    sol = lower_solve(mdp, r, tau, solution)
    return _lagrangian(mdp, r, R, objective, x, theta, lam, tau, sol)[0]


@dataclass(frozen=True)
class PenalizedPolicy:
    """Result of :func:`penalized_policy`.

    Attributes
    ----------
    theta : (S, A) logits theta_lam(x) (each row shifted to max 0).
    pi : (S, A) softmax(theta).
    ell : ell_{lam,tau}(x) = L(x, theta).
    grad_ell : (d,) grad ell(x) = grad_x L(x, theta) (Danskin).
    penalty : p_tau(x, pi).
    f : f(x, pi).
    step : the final eta = 1 logit step size (the stopping quantity, <= tol).
    iterations : policy updates made.
    """

    theta: np.ndarray
    pi: np.ndarray
    ell: float
    grad_ell: np.ndarray
    penalty: float
    f: float
    step: float
    iterations: int

    def __post_init__(self):
        for v in (self.theta, self.pi, self.grad_ell):
            v.setflags(write=False)


def penalized_policy(mdp, reward, objective, x, lam, tau, theta0=None, tol=1e-11, max_iter=10_000,
                     solution=None):
    """The penalized policy theta_lam(x) = argmin_theta L_{lam,tau}(x, theta) and grad ell(x).

    Algorithm and stopping rule in the module docstring; tau must be > 0 (at
    tau = 0 the minimizer can be deterministic, with infinite logits).  ``theta0``:
    starting logits, finite of any size (each row is shifted to max 0, and entries far
    enough below it to have probability 0 are raised to ``-max(8.9e307 / max(1, tau), 1000)``,
    so that tau log pi stays within the float64 range); None starts from Q*_tau / tau.
    A logit step beyond the float64 range (a tiny tau or lam against the rewards' scale)
    is a ValueError.
    Raises :class:`~exactbilevel.ConvergenceError` if the step does not fall
    below ``tol`` within ``max_iter`` updates.
    """
    check_mdp(mdp)
    check_objective(objective, mdp)
    x, r, R = check_reward_model(reward, mdp, x)
    lam, tau = _check_lam(lam), check_tau(tau)
    if tau == 0.0:
        raise ValueError("tau must be > 0 for penalized_policy: at tau = 0 the minimizer may need infinite logits")
    tol, max_iter = check_positive("tol", tol), check_int("max_iter", max_iter, minimum=1)
    sol = lower_solve(mdp, r, tau, solution)
    if theta0 is None:  # Q*_tau / tau, shifted (the difference first: Q / tau may overflow for a tiny tau)
        with np.errstate(over="ignore"):
            theta = (sol.Q - sol.Q.max(axis=1, keepdims=True)) / tau
    else:
        theta = check_theta(mdp, theta0, "theta0")
    theta = _shifted_logits(theta, tau)
    cur, step = _lagrangian(mdp, r, R, objective, x, theta, lam, tau, sol)
    eta, it = 1.0, 0
    while True:
        with np.errstate(over="ignore", invalid="ignore"):
            delta = step / tau
        if not np.all(np.isfinite(delta)):
            s, a = (int(i) for i in np.argwhere(~np.isfinite(delta))[0])
            raise ValueError(
                f"penalized_policy: the logit step at [{s}, {a}], (Atilde - (1 - gamma) q_f / lam) / tau with "
                f"tau = {tau:g} and lam = {lam:g}, is beyond the float64 range; use a larger tau or lam, "
                "or rewards and an objective of a smaller scale"
            )
        delta = delta - np.sum(cur.pi * delta, axis=1, keepdims=True)
        size = float(np.abs(delta).max())
        if size <= tol or it >= max_iter:
            break
        # backtrack until L does not increase (up to rounding of L)
        slack = 1e-14 * (abs(cur.value) + lam * abs(float(mdp.rho @ sol.V)))
        while True:
            trial = theta + eta * delta
            trial -= trial.max(axis=1, keepdims=True)
            _, _, _, f, p = _parts(mdp, r, objective, x, trial, tau, sol)
            if f + lam * p <= cur.value + slack or eta < 1e-12:
                break
            eta *= 0.5
        theta = trial
        cur, step = _lagrangian(mdp, r, R, objective, x, theta, lam, tau, sol)
        eta = min(1.0, 2.0 * eta)
        it += 1
    if size > tol:
        raise ConvergenceError(
            f"penalized_policy: logit step {size:.3g} still above tol = {tol:g} after {it} updates; "
            "raise max_iter, or lam (small lam makes L less convex in theta)"
        )
    return PenalizedPolicy(theta=theta, pi=cur.pi, ell=cur.value, grad_ell=np.array(cur.grad_x),
                           penalty=cur.penalty, f=cur.f, step=size, iterations=it)
