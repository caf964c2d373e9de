"""Certified solvers of the (soft) Bellman optimality equation (docs/theory.rst, "The lower level").

``solve(mdp, r, tau)`` returns V*_tau, the fixed point of the soft Bellman
operator T_tau (hard max for tau = 0; see :mod:`exactbilevel.bellman`), with
Q*_tau = r + gamma P V*_tau and the optimal policy pi*_tau.

Certificate
-----------
Every method ends with a sweep ``(Q, TV)`` at its last iterate V.  Since
T_tau is monotone, a gamma-contraction and ``T(V + c) = TV + gamma c``, with
``d = TV - V`` (McQueen-Porteus bounds, one step before the sweep)::

    V + min(d) / (1-gamma)  <=  V*  <=  V + max(d) / (1-gamma)

so the *midrange-corrected* value ``V_ret = V + (max d + min d) / (2 (1-gamma))``
satisfies ``|V_ret - V*|_inf <= span(d) / (2 (1-gamma))``.  Stopping on the span
without this correction leaves V off by up to a constant; we return V_ret.  Its
Q is the sweep's, shifted: ``Q(V + c) = Q(V) + gamma c P 1``, with the row sums
``P 1`` the model kept (:attr:`TabularMDP.row_sums`), so no further sweep is
needed; from it come pi and ``residual = |T V_ret - V_ret|_inf`` (equal to
``span(d) / 2`` up to rounding), and ``|V_ret - V*| <= residual / (1 - gamma)``
is a second valid bound.  (The bound of ``TV + gamma/(1-gamma) mid(d)`` is
1/gamma tighter, but its Q would cost a second sweep: value iteration on the
dense benchmark MDP takes 8 sweeps that way, 7 this way.)  The returned
``error_bound`` is the smaller of the two, plus a float64 rounding allowance
``8 eps (|r|_inf + |V|_inf + tau log A) / (1 - gamma)`` (a model of the rounding
of one sweep, propagated through the contraction; not an interval-arithmetic
guarantee).  A result is returned only when ``error_bound <= tol``; otherwise
:class:`ConvergenceError` is raised (or, with ``raise_on_failure=False``, a
result with ``converged=False``).  A ``tol`` below the float64 floor of the
problem (the allowance at ``|V|_inf = (|r|_inf + tau log A)/(1-gamma)``) is a
``ValueError``: no float64 computation can certify it.  The default
``tol=None`` is ``max(1e-10, 2 x floor)`` (see :func:`solve`), the same rule
(:meth:`_Problem.auto_tol`) by which the gradients pick the tolerance of their
lower-level solves.

Methods
-------
``"value_iteration"``  V <- T_tau V; span stopping as above.  Needs about
    log(tol (1-gamma) / span) / log(gamma) sweeps in the worst case, far fewer
    on fast-mixing MDPs.
``"policy_iteration"`` Howard's policy iteration for tau = 0; for tau > 0 the
    same loop with the softmax policy is Newton's method on ``T_tau V - V = 0``
    (the Jacobian of T_tau is gamma P_pi for the softmax policy pi of Q), i.e.
    soft policy iteration.  Each step evaluates the current policy with
    :class:`~exactbilevel.evaluation.PolicySystem` (dense LU for small S, multigrid-preconditioned BiCGSTAB
    on a compiled CSR matvec otherwise: no dense S x S matrix for sparse MDPs),
    to an accuracy tied to the current residual (inexact Newton).
``"modified_policy_iteration"``  the greedy (softmax) policy of each sweep,
    then ``MPI_BACKUPS = 80`` backups
    ``V <- r_pi + tau H_pi + gamma P_pi V`` on the compiled policy matrix
    (Puterman 6.5), each about 1/A of a sweep.  On sparse MDPs with a stencil
    form (``TabularMDP.stencil``: grids) the backups read P_pi as weights on
    each chunk's offsets (``bellman.stencil_backups``: 2.6 ms at S = 10^6
    against 5.2 ms for the CSR P_pi).  Otherwise, for tau > 0 on sparse MDPs
    the pattern of P_pi (the same for every policy of full support) is built
    once (``_kernels.policy_pattern``) and only its values are refilled per
    step (``_kernels.policy_refill``, 20 ms instead of 200 ms at S = 10^6;
    soft policy iteration on large sparse MDPs does the same); for tau = 0 the
    backups read the greedy action's rows of the packed P directly
    (``bellman.action_backups``: no P_pi, 3 bytes per entry on grids).  On
    dense MDPs the sweep builds P_pi and r_pi + tau H_pi of its greedy policy
    while each state's rows of P are in cache (``_kernels.sweep_dense_policy``:
    one read of P), and the backups stop once one changes V by a span of at
    most ``(1 - gamma) tol / 2`` (``_kernels.dense_backups``).
``"anderson"``  Anderson-accelerated value iteration (memory 5, least squares
    on the residuals); a step whose residual span does not fall below the
    previous one is rejected in favour of the plain sweep and the memory is
    cleared (safeguard).
``"auto"``  on dense MDPs, modified policy iteration with at most
    ``AUTO_MPI_BACKUPS = 20`` backups a step, and policy iteration (LU
    evaluations) from the last midrange-corrected value once a step's backups
    all run without meeting their stop (slowly mixing policies) or its steps
    predict more than ``AUTO_SWITCH_STEPS`` further steps.  On the dense
    benchmark MDP (S = 2000, A = 8, gamma = 0.99) 3 sweeps and 10-12 backups
    certify 1e-8 in 35-42 ms, where value iteration takes 7 sweeps and 46-66
    ms; on dense GridWorlds the first step hands over to policy iteration, in
    the time of the former value-iteration start (0.4 ms at S = 100, 40-50 ms
    at S = 400).  On sparse MDPs, value iteration while its observed span
    contraction predicts fewer than ``AUTO_SWITCH_SWEEPS`` further sweeps,
    then policy iteration warm-started from the current V when S <=
    ``DENSE_LU_MAX_STATES`` (policy evaluations by sparse LU), or when tau > 0
    and the contraction predicts more than ``AUTO_NEWTON_SWEEPS`` sweeps (on
    the 1000 x 1000 GridWorld at gamma = 0.999, tau = 0.1: 18 Newton steps
    with multigrid evaluations, 13 s); else modified policy iteration (at
    gamma = 0.99 there it certifies 1e-8 in 7 s, policy iteration in 12.6 s;
    hard policy iteration meets deterministic policies whose evaluations at
    gamma near 1 need hundreds of Krylov iterations, and is never chosen for
    large sparse MDPs).  Fast-mixing sparse MDPs finish in a few
    value-iteration sweeps.

Every method accepts a warm start ``V0`` (later issues solve thousands of
nearby problems).

References: Puterman, *Markov Decision Processes* (1994), 6.6.3 (span bounds),
6.4 (policy iteration); Geist, Scherrer, Pietquin (2019) for the regularized
Bellman operators; Walker and Ni (2011) for Anderson acceleration.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _kernels
from ._validation import ConvergenceError, as_float_array, check_int, check_positive, check_tau
from .bellman import action_backups, check_mdp, check_reward, greedy, stencil_backups, sweep
from .evaluation import DENSE_LU_MAX_STATES, PolicySystem, policy_reward

__all__ = ["solve", "SolveResult", "ConvergenceError", "METHODS", "AUTO_SWITCH_SWEEPS", "DEFAULT_TOL"]

METHODS = ("auto", "value_iteration", "policy_iteration", "modified_policy_iteration", "anderson")
_ALIASES = {
    "vi": "value_iteration", "pi": "policy_iteration", "newton": "policy_iteration",
    "mpi": "modified_policy_iteration",
}

#: "auto" leaves value iteration when it predicts more sweeps than this.
AUTO_SWITCH_SWEEPS = 30

#: "auto" on large sparse MDPs with tau > 0 takes policy iteration (multigrid
#: evaluations) instead of modified policy iteration when value iteration
#: predicts more sweeps than this (on the 1000 x 1000 GridWorld, tau = 0.1:
#: about 1500 predicted sweeps at gamma = 0.99, where modified policy iteration
#: takes 7 s and policy iteration 12.6 s; 4400 at gamma = 0.999, where they take
#: 65 s and 13 s).
AUTO_NEWTON_SWEEPS = 3000

#: "auto" on a dense MDP starts with modified policy iteration, at most this
#: many backups a step (each stops early once it changes V by less than the
#: certificate needs), and leaves it for policy iteration (LU evaluations) when
#: a step uses them all, or when its steps predict more than AUTO_SWITCH_STEPS
#: further steps.
AUTO_MPI_BACKUPS = 20
AUTO_SWITCH_STEPS = 10

#: Policy backups per improvement step of modified policy iteration.  A step
#: also costs a sweep, the greedy policy and (stencil MDPs) the weights of P_pi,
#: about 7 backups' worth on the 1000 x 1000 GridWorld, whose stencil backups
#: take 2.6 ms: there (gamma = 0.99) 10 / 20 / 40 / 60 / 80 / 100 / 150 backups
#: certify 1e-8 in 10.1 / 7.8 / 7.2 / 6.8 / 6.5 / 6.7-7.2 / 9.0 s for tau = 0,
#: and 30 / 60 / 80 / 100 / 150 in 8.6 / 7.5 / 6.6-6.9 / 7.4-7.7 / 7.2-8.0 s
#: for tau = 0.1 (reward bump of bench_gradients); with the bump of
#: bench_solvers, 40 / 60 / 80 all take 7.4-8.4 s, within the noise.
MPI_BACKUPS = 80

#: Forcing term of policy iteration's inexact Newton steps: each evaluation
#: stops at a linear residual of FORCING x the current Bellman residual
#: |T V - V|_inf (Dembo, Eisenstat and Steihaug 1982), and never above what the
#: final certificate needs.  Was 0.01 (1 - gamma): at gamma = 0.999 on the
#: 1000 x 1000 GridWorld that asked 7 orders of magnitude of the first
#: evaluations and took 41 s where 0.01 takes 33 s.
FORCING = 0.01

#: The absolute tolerance of :func:`solve` when ``tol=None`` (the default), unless
#: the problem's float64 floor asks for a larger one (see :func:`solve`).
DEFAULT_TOL = 1e-10

_EPS = np.finfo(np.float64).eps

#: A warm start V0 may have entries of size up to ``(1 - gamma) V0_MAX``, an eighth of the
#: float64 range times 1 - gamma: the sweeps add and subtract values of its size and the
#: midrange corrections scale its span by 1 / (1 - gamma).
V0_MAX = 0.125 * np.finfo(np.float64).max
_ANDERSON_MEMORY = 5


@dataclass(frozen=True)
class SolveResult:
    """Result of :func:`solve`.

    Attributes
    ----------
    V : (S,) optimal values, ``|V - V*_tau|_inf <= error_bound``.
    Q : (S, A) ``r + gamma P V``.
    pi : (S, A) softmax of Q / tau (one-hot first argmax for tau = 0).
    residual : ``|T_tau V - V|_inf``.
    error_bound : certified bound on ``|V - V*_tau|_inf`` (module docstring).
    iterations : Bellman sweeps (value iteration, Anderson) or policy
        evaluations plus sweeps before them (policy iteration, auto).
    converged : ``error_bound <= tol``.
    method : the method that produced V.
    tau : the entropy weight.
    """

    V: np.ndarray
    Q: np.ndarray
    pi: np.ndarray
    residual: float
    error_bound: float
    iterations: int
    converged: bool
    method: str
    tau: float


class _Problem:
    """Validated inputs plus the certificate arithmetic shared by all methods."""

    def __init__(self, mdp, r, tau, tol):
        self.mdp, self.r, self.tau, self.tol = mdp, r, tau, tol
        self.gamma = mdp.gamma
        self.c = self.gamma / (1.0 - self.gamma)
        self.r_abs = float(np.abs(r).max())
        self.ent = tau * np.log(mdp.A)
        self.Q = np.empty((mdp.S, mdp.A))
        self.TV = np.empty(mdp.S)
        self.pi = self.M = self.b = None  # buffers of sweep_policy

    def allowance(self, V_abs):
        return 8.0 * _EPS * (self.r_abs + V_abs + self.ent) / (1.0 - self.gamma)

    def scale(self):
        """``(|r|_inf + tau log A) / (1 - gamma)``, a bound on |V*_tau|_inf."""
        return (self.r_abs + self.ent) / (1.0 - self.gamma)

    def floor(self):
        """The float64 floor: the rounding allowance at ``|V|_inf = scale``."""
        return self.allowance(self.scale())

    def auto_tol(self, absolute=0.0, relative=0.0):
        """The tolerance ``max(absolute, relative * scale, 2 * floor, 1e-300)``: the one
        rule for tolerances chosen for the caller (the default of :func:`solve`,
        ``absolute = DEFAULT_TOL``; the lower-level solves of the gradients,
        ``relative = 1e-12``).  Twice the floor leaves the iterations room to
        certify it.  A ValueError when the floor is not finite (the values'
        scale is beyond float64)."""
        with np.errstate(over="ignore"):
            floor = self.floor()
        if not np.isfinite(floor):
            raise ValueError(
                f"r and gamma give values beyond the float64 range: (|r|_inf + tau log A) / (1 - gamma) "
                f"with |r|_inf = {self.r_abs:.3g}, tau = {self.tau:g}, gamma = {self.gamma}; "
                "scale the rewards down"
            )
        return max(float(absolute), float(relative) * self.scale(), 2.0 * floor, 1e-300)

    def sweep(self, V):
        """(Q, TV) at V, into the problem's buffers."""
        return sweep(self.mdp, self.r, V, self.tau, self.Q, self.TV)

    def sweep_policy(self, V):
        """:meth:`sweep` of a dense MDP that also leaves the greedy policy's
        matrix and rewards in ``self.M``, ``self.b`` (one read of P)."""
        if self.M is None:
            S, A = self.Q.shape
            self.pi, self.M, self.b = np.empty((S, A)), np.empty((S, S)), np.empty(S)
        _kernels.sweep_dense_policy(self.mdp.P, self.r, V, self.gamma, self.tau, self.Q, self.TV,
                                    self.pi, self.M, self.b)
        return self.Q, self.TV

    def backups(self, V, count):
        """Up to ``count`` backups ``V <- b + gamma M V`` with the matrix of the last
        :meth:`sweep_policy`, stopped once one changes V by a span of at most
        ``(1 - gamma) tol / 2`` (then the next sweep's span is about that, half of
        what certifies ``tol``): returns (V, backups done)."""
        return _kernels.dense_backups(self.M, self.b, self.gamma, V, np.empty_like(V), count,
                                      0.5 * (1.0 - self.gamma) * self.tol)

    def certify(self, V, TV):
        """(bound, V_hat) from the sweep TV = T V: ``bound`` on the error of the
        value :meth:`result` returns for this sweep, ``V + mid(d) / (1 - gamma)``
        (module docstring), and the midrange-corrected ``V_hat = TV + c mid(d)``,
        the warm start of the next step."""
        d = TV - V
        lo, hi = d.min(), d.max()
        V_hat = TV + self.c * 0.5 * (hi + lo)
        size = max(np.abs(V).max(), np.abs(TV).max(), np.abs(V_hat).max())
        bound = 0.5 * (hi - lo) / (1.0 - self.gamma) + self.allowance(size)
        return bound, V_hat

    def result(self, V, Q, TV, bound, iterations, method):
        """The result for the last sweep ``(Q, TV)`` at V: the value
        ``V + mid(d) / (1 - gamma)`` with its Q, pi and residual, from Q shifted
        by the model's row sums (no further sweep)."""
        d = TV - V
        shift = 0.5 * (d.max() + d.min()) / (1.0 - self.gamma)
        size = float(np.abs(V).max())  # the shifted Q keeps the rounding of Q at V, of this size
        V = V + shift
        Q = Q.copy()
        TV = np.empty_like(V)
        _kernels.shift_q(Q, self.mdp.row_sums, self.gamma * shift, self.tau, TV)
        residual = float(np.abs(TV - V).max())
        size = max(size, float(np.abs(V).max()))
        bound = min(bound, residual / (1.0 - self.gamma) + self.allowance(size))
        pi = greedy(Q, self.tau)
        for arr in (V, Q, pi):
            arr.setflags(write=False)
        return SolveResult(
            V=V, Q=Q, pi=pi, residual=residual, error_bound=float(bound),
            iterations=int(iterations), converged=bool(bound <= self.tol), method=method, tau=self.tau,
        )


def _value_iteration(prob, V, max_iter, count=0, switch=False):
    """Plain sweeps.  With ``switch``, returns ("switch", V_hat, TV, count,
    needed) when the observed span contraction predicts ``needed >
    AUTO_SWITCH_SWEEPS`` sweeps: the midrange-corrected value and the last
    sweep itself.  Small problems (``_kernels.SERIAL_MAX_WORK``) run the same
    loop compiled (``_kernels.value_iteration_dense`` / ``_csr``: the same sweeps,
    bounds and stopping rule, without a Python-level iteration per sweep)."""
    mdp = prob.mdp
    if _kernels.sweep_work(mdp) <= _kernels.SERIAL_MAX_WORK:
        args = (prob.r, V.copy(), prob.TV, prob.Q, prob.gamma, prob.tau, prob.tol, int(max_iter), int(count),
                bool(switch), float(AUTO_SWITCH_SWEEPS), prob.r_abs, float(prob.ent))
        if mdp.is_sparse:
            V, TV, count, bound, status, needed = _kernels.value_iteration_csr(*mdp.packed, *args)
        else:
            V, TV, count, bound, status, needed = _kernels.value_iteration_dense(mdp.P, *args)
        if status == 2:
            _, V_hat = prob.certify(V, TV)
            return ("switch", V_hat, TV, count, needed)
        return prob.result(V, prob.Q, TV, bound, count, "value_iteration")
    prev = None
    for i in range(max_iter):
        Q, TV = prob.sweep(V)
        count += 1
        bound, V_hat = prob.certify(V, TV)
        if bound <= prob.tol or i == max_iter - 1:
            break
        if switch and prev is not None and count >= 3:
            rate = bound / prev
            needed = np.inf if rate >= 1.0 else np.log(prob.tol / bound) / np.log(max(rate, 1e-300))
            if needed > AUTO_SWITCH_SWEEPS:
                return ("switch", V_hat, TV, count, needed)
        prev = bound
        V = TV.copy()
    return prob.result(V, Q, TV, bound, count, "value_iteration")


def _policy_iteration(prob, V, max_iter, count=0, method="policy_iteration", backups=None, switch=False):
    """Policy iteration (``backups=None``) or modified policy iteration.

    Each step takes the greedy (softmax for tau > 0) policy of the last sweep
    and evaluates it: to an accuracy tied to the current residual (inexact
    Newton) by :meth:`PolicySystem.solve`, or, with ``backups = m``, by m
    backups ``V <- r_pi + tau H_pi + gamma P_pi V`` on the compiled policy
    matrix (each about 1/A of a sweep).  On dense MDPs the sweep also builds
    that matrix (:meth:`_Problem.sweep_policy`) and the backups stop early once
    they change V by less than the certificate needs (:meth:`_Problem.backups`).
    With ``switch`` (dense MDPs), returns ("switch", V_hat, count), V_hat the
    midrange-corrected value of the last sweep, when the observed contraction
    of the bound per step predicts more than ``AUTO_SWITCH_STEPS`` further
    steps, or when a step's backups end without meeting their stop (slow
    evaluations: LU ones pay)."""
    gamma = prob.gamma
    refill = None
    mdp = prob.mdp
    fused = backups is not None and not mdp.is_sparse
    if mdp.is_sparse and prob.tau > 0.0 and (
        mdp.S > DENSE_LU_MAX_STATES if backups is None else mdp.stencil is None
    ):
        # soft policies have full support (up to underflow), so P_pi has the
        # same pattern at every step: build it once and refill the values.
        indptr, indices, data = mdp.csr
        ptr, idx, slot = _kernels.policy_pattern(indptr, indices, mdp.S, mdp.A)
        refill = (indptr, data, ptr, idx, slot, np.empty(idx.shape[0]))

    def system_of(pi):
        if refill is None:
            return PolicySystem(mdp, pi, factor=backups is None)
        indptr, data, ptr, idx, slot, val = refill
        _kernels.policy_refill(indptr, data, pi, ptr, slot, val)
        return PolicySystem._from_csr(mdp, (ptr, idx, val))

    swept = prob.sweep_policy if fused else prob.sweep
    Q, TV = swept(V)
    count += 1
    bound, V_hat = prob.certify(V, TV)
    prev = None
    for _ in range(max_iter):
        if bound <= prob.tol:
            break
        if switch and prev is not None:
            rate = bound / prev
            if rate >= 1.0 or np.log(prob.tol / bound) / np.log(max(rate, 1e-300)) > AUTO_SWITCH_STEPS:
                return ("switch", V_hat, count)
        prev = bound
        if fused:
            V, done = prob.backups(TV.copy(), backups)
            if switch and done == backups:
                return ("switch", V_hat, count)
        else:
            pi = greedy(Q, prob.tau)
            b = policy_reward(prob.r, pi, prob.tau)
            if backups is None:
                # evaluate to a linear residual of FORCING x the Bellman residual, and
                # never coarser than what the certificate needs at the end.
                resid = float(np.abs(TV - V).max())
                target = max(0.1 * prob.tol * (1.0 - gamma), FORCING * resid)
                rtol = min(max(target / max(float(np.abs(b).max()), 1e-300), 1e-14), 1e-3)
                V = system_of(pi).solve(b, x0=V_hat, rtol=rtol)
            elif mdp.stencil is not None:  # P_pi on the stencil form of P
                V = stencil_backups(mdp, pi, b, TV.copy(), backups)
            elif prob.tau == 0.0:  # sparse: the greedy policy's rows of P, as they are
                V = action_backups(mdp, np.argmax(pi, axis=1), b, TV.copy(), backups)
            else:  # sparse, soft: the refilled CSR of P_pi
                V = system_of(pi).backup(b, TV.copy(), backups)
        Q, TV = swept(V)
        count += 1
        bound, V_hat = prob.certify(V, TV)
    return prob.result(V, Q, TV, bound, count, method)


def _anderson(prob, V, max_iter, count=0):
    m = _ANDERSON_MEMORY
    Vs, Fs, Gs = [], [], []  # iterates, residuals, images
    prev_span = np.inf
    for _ in range(max_iter):
        swept = V
        Q, TV = prob.sweep(V)
        count += 1
        bound, _ = prob.certify(V, TV)
        if bound <= prob.tol:
            break
        f = TV - V
        span = f.max() - f.min()
        if Vs and span >= prev_span:
            # safeguard: the extrapolated point did worse; take the plain sweep
            # from the last accepted point and forget the history.
            V = Gs[-1].copy()
            Vs, Fs, Gs = [], [], []
            prev_span = np.inf
            continue
        prev_span = span
        Vs.append(V.copy()), Fs.append(f), Gs.append(TV.copy())
        if len(Vs) > m + 1:
            Vs.pop(0), Fs.pop(0), Gs.pop(0)
        if len(Vs) == 1:
            V = TV.copy()
            continue
        dF = np.stack([Fs[i + 1] - Fs[i] for i in range(len(Fs) - 1)], axis=1)
        dG = np.stack([Gs[i + 1] - Gs[i] for i in range(len(Gs) - 1)], axis=1)
        coef, *_ = np.linalg.lstsq(dF, f, rcond=1e-12)
        V = TV - dG @ coef
    return prob.result(swept, Q, TV, bound, count, "anderson")


@_kernels.serial_when_small
def solve(mdp, r, tau=0.0, method="auto", tol=None, V0=None, max_iter=None, raise_on_failure=True):
    """Solve the (soft) Bellman optimality equation with a certified error bound.

    Parameters
    ----------
    mdp : TabularMDP
    r : (S, A) array, finite rewards.
    tau : float >= 0, entropy weight (0: hard max).
    method : {"auto", "value_iteration", "policy_iteration",
        "modified_policy_iteration", "anderson"} (aliases "vi", "pi",
        "newton", "mpi"); see the module docstring.
    tol : float > 0 or None, absolute sup-norm tolerance on V.  An explicit tol
        must be at least the float64 floor of the problem (module docstring),
        else ValueError; ``tol=1e-10`` behaves exactly as the former default.
        None (the default) means ``max(1e-10, 2 * floor)``, with twice the floor
        ``2 floor = 16 eps (|r|_inf + tau log A) (2 - gamma) / (1 - gamma)^2``:
        1e-10 wherever that is smaller (``(|r|_inf + tau log A) (2 - gamma) /
        (1 - gamma)^2`` up to about 2.8e4), otherwise twice the floor (e.g.
        3.6e-10 for ``|r|_inf = 10`` at gamma = 0.99, 3.5e-9 for ``|r|_inf = 1`` at
        gamma = 0.999): a tolerance float64 can certify on every problem whose
        floor is finite (ValueError when the values' scale is beyond float64).  ``result.converged`` and the error
        bound refer to the tolerance used.
    V0 : (S,) array, optional warm start (default zeros), finite with entries of size at most
        ``(1 - gamma) V0_MAX``, ``V0_MAX`` = 2.2e307 (an eighth of the float64 range).
    max_iter : int, optional; default ``ceil(40 / (1 - gamma)) + 1000`` sweeps for
        value iteration, Anderson and modified policy iteration, 500 policy
        evaluations for policy iteration.
    raise_on_failure : bool; if False, a non-converged result is returned
        instead of raising :class:`ConvergenceError`.

    Returns
    -------
    SolveResult with ``|V - V*_tau|_inf <= error_bound <= tol``.
    """
    check_mdp(mdp)
    r = check_reward(mdp, r)
    tau = check_tau(tau)
    tol = None if tol is None else check_positive("tol", tol)
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, one of {METHODS}, got {type(method).__name__}")
    name = _ALIASES.get(method, method)
    if name not in METHODS:
        raise ValueError(f"method must be one of {METHODS} (or aliases {tuple(_ALIASES)}), got {method!r}")
    V = np.zeros(mdp.S) if V0 is None else as_float_array("V0", V0, shape=(mdp.S,)).copy()
    if V0 is not None and V.size and np.abs(V).max() > (1.0 - mdp.gamma) * V0_MAX:
        raise ValueError(
            f"V0 has an entry of size {np.abs(V).max():.3g}, beyond (1 - gamma) V0_MAX = "
            f"{(1.0 - mdp.gamma) * V0_MAX:.3g} (gamma = {mdp.gamma}: beyond it the sweeps and their midrange "
            "corrections, of size |V0| / (1 - gamma), would overflow); pass a warm start of the size of the values, "
            "or V0=None"
        )
    prob = _Problem(mdp, r, tau, tol)
    if tol is None:
        tol = prob.tol = prob.auto_tol(absolute=DEFAULT_TOL)
    with np.errstate(over="ignore"):
        floor = prob.floor()
    if tol < floor:
        raise ValueError(
            f"tol={tol:g} is below the float64 floor {floor:.3g} of this problem "
            f"(|r|_inf = {prob.r_abs:.3g}, gamma = {mdp.gamma}); pass tol >= {2 * floor:.2g}"
        )
    sweeps = int(np.ceil(40.0 / (1.0 - mdp.gamma))) + 1000
    if max_iter is not None:  # beyond 2^62 it is unlimited in practice, and fits the compiled loops' int64
        max_iter = min(check_int("max_iter", max_iter, minimum=1), 2**62)
    if name == "value_iteration":
        res = _value_iteration(prob, V, max_iter or sweeps)
    elif name == "anderson":
        res = _anderson(prob, V, max_iter or sweeps)
    elif name == "policy_iteration":
        res = _policy_iteration(prob, V, max_iter or 500)
    elif name == "modified_policy_iteration":
        res = _policy_iteration(prob, V, max_iter or sweeps, method=name, backups=MPI_BACKUPS)
    elif not mdp.is_sparse:
        res = _policy_iteration(prob, V, max_iter or sweeps, method="auto:modified_policy_iteration",
                                backups=AUTO_MPI_BACKUPS, switch=True)
        if isinstance(res, tuple):
            _, V, count = res
            res = _policy_iteration(prob, V, max_iter or 500, count=count, method="auto:policy_iteration")
    else:
        res = _value_iteration(prob, V, max_iter or sweeps, switch=True)
        if isinstance(res, tuple):
            _, V_hat, TV, count, needed = res
            # policy iteration pays off where its evaluations are direct (sparse
            # LU) and, with multigrid evaluations of soft policies, where value
            # iteration contracts slowly; otherwise modified policy iteration,
            # from the last sweep: the midrange correction adds a constant that
            # its backups shed only as gamma^m, and that turns the exact ties of
            # flat regions (rewards that underflow to 0) into rounding noise in
            # the greedy policies (on the 1000 x 1000 GridWorld, tau = 0: 45
            # steps and 11 s from V_hat, 29 steps and 6.4 s from the sweep).
            if mdp.S <= DENSE_LU_MAX_STATES or (tau > 0.0 and needed > AUTO_NEWTON_SWEEPS):
                res = _policy_iteration(prob, V_hat, max_iter or 500, count=count, method="auto:policy_iteration")
            else:
                res = _policy_iteration(
                    prob, TV.copy(), max_iter or sweeps, count=count, method="auto:modified_policy_iteration",
                    backups=MPI_BACKUPS,
                )
        else:
            res = SolveResult(**{**res.__dict__, "method": "auto:value_iteration"})
    if not res.converged and raise_on_failure:
        raise ConvergenceError(
            f"{res.method} stopped after {res.iterations} iterations with error bound "
            f"{res.error_bound:.3g} > tol = {tol:g}; raise max_iter, loosen tol, or try another method"
        )
    return res
