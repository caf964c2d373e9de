"""The tau -> 0 limit of the soft-optimal policy (docs/theory.rst, "The lower level"): pi*_0 without tie-breaking.

The unregularized optimal actions of state s, to a tolerance ``tie_tol``::

    O(s) = {a : Q*_0(s, a) >= max_b Q*_0(s, b) - tie_tol}

Limit of pi*_tau as tau -> 0.  ``V*_tau(s) = max_pi J_0(pi; s) + tau H(pi; s)``
(H the discounted entropy) is a maximum of functions affine in tau, hence convex,
and by Danskin's theorem ``V*_tau = V*_0 + tau V1 + o(tau)`` with V1 the
largest discounted entropy among the optimal policies (the stationary policies
supported on O).  V1 is the fixed point of the soft Bellman operator at tau = 1,
reward 0, restricted to O::

    V1(s) = log sum_{a in O(s)} exp(Q1(s, a)),     Q1 = gamma P V1

Then ``(Q*_tau - V*_tau) / tau -> Q1 - V1`` on O (the tau = 0 terms cancel)
and ``-> -inf`` off O, so::

    lim_{tau -> 0} pi*_tau(a|s) = exp(Q1(s, a) - V1(s)) 1[a in O(s)]

the maximum-causal-entropy optimal policy.  Every optimal action keeps a
positive weight, but the weights are uniform over O(s) only when the tied
actions lead to equal downstream entropy ``sum_s' P(s'|s, a) V1(s')``: an
action whose successors keep more tied choices open gets more weight (state 0
choosing between a successor with one optimal action and one with two, both
absorbing, gives ``1 : 2^(gamma / (1 - gamma))``).  ``rule="uniform"`` returns
the uniform distribution over O(s) instead (the simpler description, exact when
the downstream entropies agree, e.g. whenever every action of every state is
tied, or gamma = 0).  Both depend on x only through O: where the optimal sets
do not change, pi*_0 is constant.  Near-ties with a true gap of at most
``tie_tol`` count as ties: the result is then the limit for the problem with
those gaps closed, which pi*_tau follows for tau well above the gap (and
leaves only for tau below it).

V1 is computed by :func:`~exactbilevel.solve` at tau = 1 with reward 0 on O and
``-M`` off it, ``M = 50 + gamma log A / (1 - gamma)``: since ``0 <= V1 <= log A /
(1 - gamma)``, actions off O then have soft weight at most ``e^-50`` and are set
to 0.  That solve is skipped when no state has two optimal actions.

Default tolerance.  The tau = 0 solution has ``|V - V*_0|_inf <= eps_V`` (its
certified ``error_bound``), so each computed ``Q = r + gamma P V`` is within
``gamma eps_V`` plus rounding of Q*_0 and each computed gap within
``2 gamma eps_V`` plus rounding of the true one.  The default::

    tie_tol = 4 error_bound + 16 eps |r|_inf / (1 - gamma)^2

(eps the float64 machine epsilon; the second term is of the order of the
solver's float64 floor for this reward, the rounding of V) detects every exact
tie, and no true gap larger than ``2 tie_tol`` is taken for a tie.
"""

from __future__ import annotations

import numpy as np

from ._validation import _real_scalar, check_choice
from .bellman import check_mdp, check_reward
from .gradients import lower_solve

__all__ = ["limit_policy", "optimal_actions", "RULES"]

RULES = ("limit", "uniform")

_EPS = np.finfo(np.float64).eps

#: Soft weight bound e^-MARGIN of the actions off O in the restricted entropy solve.
MARGIN = 50.0


def _tie_tol(mdp, r, sol, tie_tol):
    if tie_tol is None:
        r_abs = float(np.abs(r).max()) if r.size else 0.0
        return 4.0 * float(sol.error_bound) + 16.0 * _EPS * r_abs / (1.0 - mdp.gamma) ** 2
    tie_tol = _real_scalar("tie_tol", tie_tol)
    if tie_tol < 0.0:
        raise ValueError(f"tie_tol must be >= 0 (a tolerance on Q*_0 gaps) or None for the default, got {tie_tol}")
    return tie_tol


def _inputs(mdp, r, solution, tie_tol):
    check_mdp(mdp)
    r = check_reward(mdp, r)
    sol = lower_solve(mdp, r, 0.0, solution)
    return sol, _tie_tol(mdp, r, sol, tie_tol)


def _optimal(Q, tol):
    return Q >= Q.max(axis=1, keepdims=True) - tol


def optimal_actions(mdp, r, solution=None, tie_tol=None):
    """The optimal actions ``O(s)`` of ``Q*_0`` for the reward table r, as a boolean (S, A) array.

    ``a`` is in O(s) iff ``Q*_0(s, a) >= max_b Q*_0(s, b) - tie_tol``; the default
    ``tie_tol`` is in the module docstring.  ``solution``: a tau = 0
    :class:`~exactbilevel.SolveResult` for r to reuse (trusted to be for this r;
    its ``error_bound`` enters the default tolerance).  Every row has at least
    one True.
    """
    sol, tol = _inputs(mdp, r, solution, tie_tol)
    return _optimal(np.asarray(sol.Q), tol)


def _limit_from_mask(mdp, O):
    """The tau -> 0 limit policy for validated optimal sets O (module docstring)."""
    pi = O.astype(np.float64)
    if np.all(O.sum(axis=1) == 1):
        return pi
    g = mdp.gamma
    M = MARGIN + g * np.log(mdp.A) / (1.0 - g)
    sol = lower_solve(mdp, np.where(O, 0.0, -M), 1.0)
    Q1 = np.where(O, np.asarray(sol.Q), -np.inf)
    w = np.exp(Q1 - Q1.max(axis=1, keepdims=True))
    return w / w.sum(axis=1, keepdims=True)


def limit_policy(mdp, r, solution=None, tie_tol=None, rule="limit"):
    """The tau -> 0 limit of the soft-optimal policy pi*_tau for the reward table r: an (S, A) policy.

    ``rule="limit"`` (default): ``exp(Q1(s, a) - V1(s))`` on the optimal actions
    O(s) and 0 elsewhere, the maximum-causal-entropy optimal policy, which is
    the exact limit (module docstring); ``rule="uniform"``: ``1 / |O(s)|`` on O(s),
    the same limit only where the tied actions have equal downstream entropy.

    Parameters
    ----------
    mdp : TabularMDP
    r : (S, A) rewards.
    solution : tau = 0 :class:`~exactbilevel.SolveResult` for r to reuse (else solved here).
    tie_tol : float >= 0 or None; None uses
        ``4 error_bound + 16 eps |r|_inf / (1 - gamma)^2`` (module docstring).
    rule : "limit" or "uniform".

    Returns
    -------
    (S, A) float64 array, rows summing to 1 (to rounding), zero off O(s); it
    depends only on O and P, not on the order of the actions, the solver's
    warm start or its tie-breaking.  The returned array is new (the caller
    owns it).
    """
    check_choice("rule", rule, RULES)
    sol, tol = _inputs(mdp, r, solution, tie_tol)
    O = _optimal(np.asarray(sol.Q), tol)
    if rule == "uniform":
        return O / O.sum(axis=1, keepdims=True)
    return _limit_from_mask(mdp, O)
