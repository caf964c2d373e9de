"""Bellman operators, hard and entropy-regularized (docs/theory.rst, "The lower level").

For a reward ``r`` of shape ``(S, A)`` and values ``V`` of shape ``(S,)``::

    Q(s, a)      = r(s, a) + gamma * sum_s' P(s' | s, a) V(s')
    (T_tau V)(s) = m(s) + tau * log sum_a exp((Q(s, a) - m(s)) / tau),   m(s) = max_a Q(s, a)
    (T_0 V)(s)   = m(s)

and the policy greedy for Q, ``pi(a|s) = exp((Q(s,a) - (T_tau V)(s)) / tau)``
(one-hot on the first maximizing action for tau = 0).  T_tau is a
gamma-contraction in the sup norm and ``T_tau(V + c) = T_tau V + gamma c`` for a
constant c.  The log-sum-exp is max-shifted and terms whose exponent is below
-708 (``_vecmath.EXP_SKIP``: e^-708 < 3.3e-308, which cannot change a sum
holding the maximal term's 1) are skipped, so tau from 1e-8 up and rewards up
to 1e6 give no overflow and no NaN.  exp and log are those of
:mod:`exactbilevel._vecmath` (within 1 ulp of numpy's), which
compile to SIMD code.

The sweeps are Numba kernels, parallel over states, for dense and CSR
transitions alike (the public functions run problems whose sweep reads at most
``_kernels.SERIAL_MAX_WORK`` entries on one thread: a parallel launch costs
more than such a sweep); sparse MDPs whose states come in runs with the same
transitions up to the shift (grids) are swept on their stencil form
(``TabularMDP.stencil``), with the same bits as the CSR sweep.
"""

from __future__ import annotations

import numpy as np

from . import _kernels, _stencil_kernels
from ._validation import as_float_array, check_tau
from .mdp import TabularMDP

__all__ = ["q_values", "bellman_operator", "policy_from_q"]


def _check_in_range(what, value):
    if not np.all(np.isfinite(value)):
        raise ValueError(f"{what} is beyond the float64 range (an entry is inf or NaN); scale r and V down")


def check_mdp(mdp):
    if not isinstance(mdp, TabularMDP):
        raise TypeError(
            f"mdp must be an exactbilevel.TabularMDP, got {type(mdp).__name__}; "
            "build one with eb.TabularMDP(P, gamma, rho)"
        )
    return mdp


def check_reward(mdp, r, name="r"):
    return as_float_array(name, r, shape=(mdp.S, mdp.A))


def check_values(mdp, V, name="V"):
    return as_float_array(name, V, shape=(mdp.S,))


def sweep(mdp, r, V, tau, Q=None, TV=None):
    """One Bellman sweep on validated inputs: returns (Q, TV), written into Q and
    TV when given.  No checks: callers validate."""
    if Q is None:
        Q = np.empty((mdp.S, mdp.A))
    if TV is None:
        TV = np.empty(mdp.S)
    if mdp.stencil is not None:
        _stencil_kernels.sweep_stencil(*mdp.stencil[:3], r, V, mdp.gamma, tau, Q, TV)
    elif mdp.is_sparse:
        _kernels.sweep_csr(*mdp.packed, r, V, mdp.gamma, tau, Q, TV)
    else:
        _kernels.sweep_dense(mdp.P, r, V, mdp.gamma, tau, Q, TV)
    return Q, TV


def action_backups(mdp, actions, b, V, count):
    """``count`` backups ``V <- b + gamma P(.|s, a_s) V`` of the deterministic policy
    ``s -> actions[s]`` of a sparse MDP, each a gamma-contraction towards that
    policy's values.  Its rows of P are copied once in the packed form of the
    sweep (3 bytes per entry on grids), then read ``count`` times.  No checks:
    callers validate (actions int64 in [0, A), b and V of shape (S,))."""
    rows = _kernels.action_rows(*mdp.packed, actions)
    out = np.empty_like(V)
    for _ in range(count):
        _kernels.state_backup(*rows, b, mdp.gamma, V, out)
        V, out = out, V
    return V


def stencil_policy_weights(mdp, pi):
    """The rows of P_pi on the stencil form of P (``mdp.stencil`` not None): W of
    shape (U, S) with ``P_pi(s + uoff[c, u] | s) = W[u, s]`` for s in chunk c
    (``_stencil_kernels.policy_weights``).  No checks: callers validate."""
    starts, _, w, uoff, umap, _ = mdp.stencil
    W = np.empty((uoff.shape[1], mdp.S))
    _stencil_kernels.policy_weights(starts, w, umap, pi, W)
    return W


def stencil_backups(mdp, pi, b, V, count):
    """``count`` backups ``V <- b + gamma P_pi V`` of the policy ``pi`` (S, A) on
    the stencil form of P (``mdp.stencil`` not None): the weights of P_pi on each
    chunk's offsets are formed once (``_stencil_kernels.policy_weights``, one
    array (U, S)), then read ``count`` times by a vectorized loop.  No checks:
    callers validate."""
    starts, _, _, uoff, _, nu = mdp.stencil
    W = stencil_policy_weights(mdp, pi)
    out = np.empty_like(V)
    for _ in range(count):
        _stencil_kernels.stencil_backup(starts, uoff, nu, W, b, mdp.gamma, V, out)
        V, out = out, V
    return V


def greedy(Q, tau):
    """Policy of validated Q (see :func:`policy_from_q`)."""
    pi = np.empty_like(Q)
    _kernels.policy_from_q(Q, tau, pi)
    return pi


@_kernels.serial_when_small
def q_values(mdp, r, V):
    """``Q = r + gamma * P V``, shape ``(S, A)``."""
    check_mdp(mdp)
    Q, _ = sweep(mdp, check_reward(mdp, r), check_values(mdp, V), 0.0)
    _check_in_range("Q = r + gamma P V", Q)
    return Q


@_kernels.serial_when_small
def bellman_operator(mdp, r, V, tau=0.0):
    """``(T_tau V)(s)``, shape ``(S,)``: the soft (tau > 0) or hard (tau = 0) Bellman operator."""
    check_mdp(mdp)
    _, TV = sweep(mdp, check_reward(mdp, r), check_values(mdp, V), check_tau(tau))
    _check_in_range("T_tau V", TV)
    return TV


def policy_from_q(Q, tau=0.0):
    """``pi(a|s) = softmax(Q(s, .) / tau)(a)``; one-hot on the first argmax for tau = 0.

    Q has shape ``(S, A)``; so has pi, whose rows sum to 1 to rounding.
    """
    Q = as_float_array("Q", Q, shape=(None, None))
    if Q.shape[0] == 0 or Q.shape[1] == 0:
        raise ValueError(f"Q must have at least one state and one action, got shape {Q.shape}")
    return greedy(Q, check_tau(tau))
