"""Plain-numpy references for the exact computations of exactbilevel.

No Numba and no code of the package: every function here takes a dense kernel
``P`` of shape ``(S, A, S)`` (``P[s, a, s'] = P(s' | s, a)``), rewards ``r`` of
shape ``(S, A)`` and plain floats, and follows the formulas of docs/theory.rst, "The lower level"
as literally as numpy allows.  They are the independent references the test
suite compares the compiled kernels and the solvers with; they are written
for small problems (dense S x S solves, plain loops).

>>> import numpy as np
>>> from exactbilevel.testing import reference as ref
>>> P = np.array([[[0.5, 0.5], [0.0, 1.0]], [[0.0, 1.0], [0.0, 1.0]]])  # (S=2, A=2, S=2)
>>> r = np.array([[5.0, 10.0], [-1.0, -1.0]])
>>> V, err = ref.policy_iteration_ref(P, r, gamma=0.95)
>>> np.round(V, 6).tolist(), err < 1e-12
([-8.571429, -20.0], True)
"""

from __future__ import annotations

import math

import numpy as np
import scipy.special

__all__ = [
    "actor_critic_steps_ref",
    "dense_kernel",
    "q_values_ref",
    "bellman_ref",
    "policy_ref",
    "entropy_ref",
    "policy_matrix_ref",
    "evaluate_ref",
    "occupancy_ref",
    "value_iteration_ref",
    "policy_iteration_ref",
    "residual_ref",
    "permuted_system_ref",
    "schur_complement_ref",
    "galerkin_ref",
    "gauss_seidel_ref",
    "vcycle_ref",
    "policy_defects_ref",
    "fingerprint_ref",
]

_LD = np.longdouble


def dense_kernel(mdp):
    """The kernel of ``mdp`` as a new dense ``(S, A, S)`` float64 array.

    Accepts a :class:`~exactbilevel.TabularMDP` (dense or sparse) or an array.
    """
    P = getattr(mdp, "P", mdp)
    if hasattr(P, "toarray"):
        return np.array(P.toarray(), dtype=np.float64).reshape(mdp.S, mdp.A, mdp.S)
    return np.array(P, dtype=np.float64)


def q_values_ref(P, r, V, gamma):
    """``Q = r + gamma * P V``, shape ``(S, A)``."""
    P, r, V = np.asarray(P), np.asarray(r), np.asarray(V)
    return r + gamma * np.einsum("sat,t->sa", P, V)


def _soft_max(Q, tau):
    """Row-wise ``m + tau log sum exp((Q - m) / tau)``; the max for tau = 0."""
    m = Q.max(axis=1)
    if tau == 0.0:
        return m
    with np.errstate(over="ignore"):  # -inf for a subnormal tau: exp(-inf) = 0 is the limit
        z = (Q - m[:, None]) / tau
    return m + tau * scipy.special.logsumexp(z, axis=1)


def bellman_ref(P, r, V, gamma, tau=0.0):
    """``(Q, T_tau V)``: Q values and the soft (tau > 0) or hard (tau = 0) Bellman operator."""
    Q = q_values_ref(P, r, V, gamma)
    return Q, _soft_max(Q, float(tau))


def policy_ref(Q, tau=0.0):
    """``softmax(Q / tau)`` row by row; one-hot on the first argmax for tau = 0."""
    Q = np.asarray(Q, dtype=np.float64)
    if tau == 0.0:
        pi = np.zeros_like(Q)
        pi[np.arange(Q.shape[0]), np.argmax(Q, axis=1)] = 1.0
        return pi
    with np.errstate(over="ignore"):  # as in _soft_max
        z = (Q - Q.max(axis=1, keepdims=True)) / tau
    return scipy.special.softmax(z, axis=1)


def entropy_ref(pi):
    """``H(s) = -sum_a pi log pi`` with ``0 log 0 = 0``."""
    pi = np.asarray(pi)
    safe = np.where(pi > 0, pi, 1)
    return -(pi * np.log(safe)).sum(axis=1)


def policy_matrix_ref(P, pi):
    """``P_pi[s, s'] = sum_a pi(a|s) P(s'|s, a)``, shape ``(S, S)``."""
    return np.einsum("sa,sat->st", np.asarray(pi), np.asarray(P))


def _evaluation_system(P, r, pi, gamma, tau, dtype=np.float64):
    P, r, pi = (np.asarray(x, dtype=dtype) for x in (P, r, pi))
    S = P.shape[0]
    M = np.einsum("sa,sat->st", pi, P)
    b = (pi * r).sum(axis=1)
    if tau > 0:
        safe = np.where(pi > 0, pi, 1)
        b = b - dtype(tau) * (pi * np.log(safe)).sum(axis=1)
    return np.eye(S, dtype=dtype) - dtype(gamma) * M, b


def evaluate_ref(P, r, pi, gamma, tau=0.0, refine=0):
    """Exact evaluation of ``pi``: ``(V, Q)`` with ``V = (I - gamma P_pi)^(-1) (sum_a pi r + tau H_pi)``.

    One dense ``np.linalg.solve``.  With ``refine = k > 0``, k rounds of
    iterative refinement whose residuals are computed in ``np.longdouble``
    (mixed-precision refinement), which brings V to about float64 rounding.
    """
    A, b = _evaluation_system(P, r, pi, gamma, tau)
    V = np.linalg.solve(A, b)
    if refine:
        A_ld, b_ld = _evaluation_system(P, r, pi, gamma, tau, dtype=_LD)
        for _ in range(refine):
            res = b_ld - A_ld @ V.astype(_LD)
            V = V + np.linalg.solve(A, res.astype(np.float64))
    return V, q_values_ref(P, r, V, gamma)


def occupancy_ref(P, pi, gamma, rho):
    """``(d, nu)``: ``d = (1 - gamma) (I - gamma P_pi^T)^(-1) rho`` and ``nu = d * pi``."""
    M = policy_matrix_ref(P, pi)
    S = M.shape[0]
    d = (1.0 - gamma) * np.linalg.solve(np.eye(S) - gamma * M.T, np.asarray(rho, dtype=np.float64))
    return d, d[:, None] * np.asarray(pi)


def residual_ref(P, r, V, gamma, tau=0.0):
    """``|T_tau V - V|_inf`` computed in ``np.longdouble`` (for certificates of references).

    Since T_tau is a gamma-contraction, ``|V - V*_tau|_inf <= residual_ref(...) / (1 - gamma)``.
    """
    P, r, V = (np.asarray(x, dtype=_LD) for x in (P, r, V))
    Q = r + _LD(gamma) * np.einsum("sat,t->sa", P, V)
    m = Q.max(axis=1)
    if tau == 0.0:
        TV = m
    else:
        t = _LD(tau)
        TV = m + t * np.log(np.exp((Q - m[:, None]) / t).sum(axis=1))
    return float(np.abs(TV - V).max())


def value_iteration_ref(P, r, gamma, tau=0.0, tol=1e-12, max_iter=1_000_000):
    """Plain value iteration ``V <- T_tau V`` from 0 until ``|V - V*|_inf <= tol``.

    Stops at the first k with ``gamma / (1 - gamma) |V_{k+1} - V_k|_inf <= tol``
    and returns ``V_{k+1}`` (the usual contraction bound).  Raises RuntimeError
    after ``max_iter`` sweeps.
    """
    V = np.zeros(np.asarray(P).shape[0])
    for _ in range(max_iter):
        _, TV = bellman_ref(P, r, V, gamma, tau)
        if gamma * np.abs(TV - V).max() <= tol * (1.0 - gamma):
            return TV
        V = TV
    raise RuntimeError(f"value_iteration_ref did not reach tol={tol} in {max_iter} sweeps")


def policy_iteration_ref(P, r, gamma, tau=0.0, max_iter=None, refine=2):
    """Policy iteration with dense solves: returns ``(V, err)`` with ``|V - V*_tau|_inf <= err``.

    tau = 0: Howard's policy iteration on deterministic policies (an action is
    switched only when it improves Q by more than 1e-14 of the scale, so ties
    cannot cycle).  tau > 0: soft policy iteration, ``pi <- softmax(Q^pi / tau)``,
    until V stops changing (or stops contracting within 1e4 roundings of ``|V|``: the
    returned err certifies it either way); it contracts only at rate gamma when tau is large, so
    ``max_iter`` (None) defaults to ``1000 + 60 / (1 - gamma)`` (enough for 1e-26 at
    rate gamma).  Every evaluation is a dense solve with
    mixed-precision refinement (:func:`evaluate_ref` with ``refine``), and
    ``err = residual_ref(V) / (1 - gamma)`` certifies the answer.
    """
    P, r = np.asarray(P, dtype=np.float64), np.asarray(r, dtype=np.float64)
    S, A = r.shape
    rows = np.arange(S)
    if max_iter is None:
        max_iter = 1000 + int(60 / (1.0 - gamma))
    if tau == 0.0:
        act = np.argmax(r, axis=1)
        for _ in range(max_iter):
            pi = np.zeros((S, A))
            pi[rows, act] = 1.0
            V, Q = evaluate_ref(P, r, pi, gamma, 0.0, refine=refine)
            thr = 1e-14 * (np.abs(r).max() + np.abs(V).max())
            best = np.argmax(Q, axis=1)
            better = Q[rows, best] > Q[rows, act] + thr
            if not better.any():
                break
            act = np.where(better, best, act)
        else:
            raise RuntimeError(f"policy_iteration_ref did not stop in {max_iter} iterations")
    else:
        V, Q = evaluate_ref(P, r, policy_ref(r, tau), gamma, tau, refine=refine)
        scale = np.abs(r).max() + tau * np.log(A)
        last = np.inf
        for _ in range(max_iter):
            V_new, Q = evaluate_ref(P, r, policy_ref(Q, tau), gamma, tau, refine=refine)
            change = np.abs(V_new - V).max()
            V = V_new
            floor = 16 * np.finfo(float).eps * (scale + np.abs(V).max())
            # converged, or no longer contracting at the rounding floor (the level depends on the BLAS)
            if change <= floor or (change <= 1e4 * floor and change >= last):
                break
            last = change
        else:
            raise RuntimeError(f"policy_iteration_ref did not stop in {max_iter} iterations")
    return V, residual_ref(P, r, V, gamma, tau) / (1.0 - gamma)


def actor_critic_steps_ref(P, rho, gamma, reward, cost, kappa, center, lo, hi, schedules, state, sampling,
                           chains, batch, natural, rng, gx0=None):
    """The sampled loop of :mod:`exactbilevel.actor_critic` written plainly (Python loops over the
    steps, numpy inside), drawing from ``rng`` in the same order as the compiled kernel, so both
    give the same samples from the same seed.

    ``P`` dense (S, A, S); ``reward`` the reward object (``value``/``jacobian`` at x);
    ``schedules`` a dict of arrays tau, lam, alpha, beta, zeta (one entry per step); ``state``
    a dict of arrays x, theta, phi, Qtheta, Qphi, Qc, updated in place; ``sampling`` "iid" or
    "markov"; ``chains`` a list of two chain states (Markov), updated in place.  Returns the
    number of environment transitions.  The upper step uses ``grad_x f = gx0 + kappa (x - center)``
    (``gx0`` None: 0).
    """
    S, A = state["theta"].shape
    gx0 = 0.0 if gx0 is None else np.asarray(gx0)
    rho_cdf = np.cumsum(rho)
    cdfs = {}

    def search(cdf, u):
        return min(int(np.searchsorted(cdf, u, side="right")), cdf.size - 1)

    def lse(row):
        m = max(row)
        return m + math.log(sum(math.exp(v - m) for v in row))

    def action(logits, s):
        u, c, z = rng.random(), 0.0, lse(logits[s])
        for a in range(A - 1):
            c += math.exp(logits[s, a] - z)
            if u < c:
                return a
        return A - 1

    def step(s, a):
        if (s, a) not in cdfs:
            nz = np.flatnonzero(P[s, a])
            cdfs[s, a] = (nz, np.cumsum(P[s, a, nz]))
        nz, cdf = cdfs[s, a]
        return int(nz[search(cdf, rng.random())])

    transitions = 0

    def draw(logits, i):
        nonlocal transitions
        if sampling == "iid":
            s = search(rho_cdf, rng.random())
            while rng.random() < gamma:
                s = step(s, action(logits, s))
                transitions += 1
        else:
            s = chains[i]
        a = action(logits, s)
        s2 = step(s, a)
        transitions += 1
        a2 = action(logits, s2)
        if sampling == "markov":
            chains[i] = s2 if rng.random() < gamma else search(rho_cdf, rng.random())
        return s, a, s2, a2

    def logpi(logits, s):
        return logits[s] - lse(logits[s])

    def adv(Q, logits, s, tau):
        v = Q[s] - tau * logpi(logits, s)
        return v - np.exp(logpi(logits, s)) @ v

    st = state
    for t in range(len(schedules["tau"])):
        tau, lam, al, be, ze = (schedules[n][t] for n in ("tau", "lam", "alpha", "beta", "zeta"))
        x0 = st["x"].copy()
        r, R = reward.value(x0), reward.jacobian(x0)
        samples = [(draw(st["phi"], 0), draw(st["theta"], 1)) for _ in range(batch)]
        tds = []
        for (s, a, u, v), (p, b, q, w) in samples:
            tds.append((
                r[s, a] + gamma * (st["Qphi"][u, v] - tau * logpi(st["phi"], u)[v]) - st["Qphi"][s, a],
                r[p, b] + gamma * (st["Qtheta"][q, w] - tau * logpi(st["theta"], q)[w]) - st["Qtheta"][p, b],
                cost[p, b] + gamma * st["Qc"][q, w] - st["Qc"][p, b],
            ))
        for ((s, a, _, _), (p, b, _, _)), (d1, d2, d3) in zip(samples, tds):
            st["Qphi"][s, a] += be / batch * d1
            st["Qtheta"][p, b] += be / batch * d2
            st["Qc"][p, b] += be / batch * d3
        incs = []
        for (s, a, _, _), (p, b, _, _) in samples:
            a_phi = adv(st["Qphi"], st["phi"], s, tau)
            a_th = adv(st["Qtheta"], st["theta"], p, tau) / (1 - gamma) - adv(st["Qc"], st["theta"], p, 0.0) / lam
            if natural:
                incs.append((al / (1 - gamma) / batch * a_phi, al / batch * a_th))
            else:
                e_a, e_b = np.eye(A)[a], np.eye(A)[b]
                incs.append((al / (1 - gamma) / batch * (e_a - np.exp(logpi(st["phi"], s))) * a_phi[a],
                             al / batch * (e_b - np.exp(logpi(st["theta"], p))) * a_th[b]))
        for ((s, _, _, _), (p, _, _, _)), (i_phi, i_th) in zip(samples, incs):
            st["phi"][s] += i_phi
            st["theta"][p] += i_th
        g = sum(R[s, a] - R[p, b] for (s, a, _, _), (p, b, _, _) in samples)
        gx = gx0 + kappa * (x0 - center) + lam / (1 - gamma) * g / batch
        st["x"][:] = np.clip(x0 - ze * gx, lo, hi)
    return transitions


def policy_defects_ref(pi, tol):
    """The number of rows of pi with a NaN, infinite or negative entry, or whose
    sum (numpy's) is more than ``tol`` away from 1."""
    pi = np.asarray(pi, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        broken = ~np.isfinite(pi).all(axis=1) | (pi < 0).any(axis=1) | ~(np.abs(pi.sum(axis=1) - 1.0) <= tol)
    return int(broken.sum())


def fingerprint_ref(bits):
    """``sum_i mix(bits[i] + i g) mod 2^64`` in numpy's wrapping uint64 arithmetic,
    with mix the finalizer of splitmix64 and g = 0x9E3779B97F4A7C15 (Steele, Lea
    and Flood, *Fast splittable pseudorandom number generators*, 2014)."""
    z = np.asarray(bits, dtype=np.uint64) + np.arange(len(bits), dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return int((z ^ (z >> np.uint64(31))).sum(dtype=np.uint64))


def permuted_system_ref(M, gamma, order):
    """``(I - gamma M)[order][:, order]`` as a dense array, for a dense ``(S, S)`` M."""
    M = np.asarray(M, dtype=np.float64)
    A = np.eye(M.shape[0]) - gamma * M
    return A[np.ix_(order, order)]


def schur_complement_ref(A, keep):
    """``A_CC - A_CF A_FF^(-1) A_FC`` for the dense matrix A, C the states where
    the boolean ``keep`` is set and F the others (a dense solve with A_FF)."""
    A = np.asarray(A, dtype=np.float64)
    C, F = np.flatnonzero(keep), np.flatnonzero(~np.asarray(keep))
    return A[np.ix_(C, C)] - A[np.ix_(C, F)] @ np.linalg.solve(A[np.ix_(F, F)], A[np.ix_(F, C)])


def galerkin_ref(A, agg, nc):
    """``P^T A P`` with the piecewise-constant prolongation ``P[i, agg[i]] = 1``, dense."""
    P = np.zeros((np.asarray(A).shape[0], nc))
    P[np.arange(P.shape[0]), agg] = 1.0
    return P.T @ np.asarray(A) @ P


def gauss_seidel_ref(A, b, x, reverse=False):
    """One Gauss-Seidel sweep for the dense system ``A x = b`` from x (a new array),
    rows in index order (reversed with ``reverse``)."""
    A, x = np.asarray(A, dtype=np.float64), np.array(x, dtype=np.float64)
    n = A.shape[0]
    for s in (range(n - 1, -1, -1) if reverse else range(n)):
        x[s] = (b[s] - A[s] @ x + A[s, s] * x[s]) / A[s, s]
    return x


def vcycle_ref(As, aggs, b, coarse_solve=True, pre_reverse=False, post_reverse=True):
    """One V(1, 1) cycle from zero for ``As[0] x = b``, dense and recursive.

    ``As[l]`` is the dense matrix of level l, ``aggs[l]`` maps the states of
    level l to aggregates of level l + 1 (piecewise-constant prolongation
    ``P_l[i, aggs[l][i]] = 1``).  Per level: a Gauss-Seidel sweep from zero
    (rows in reverse order with ``pre_reverse``), the residual restricted by
    ``P_l^T``, the next level's cycle, the correction prolonged by ``P_l``, a
    sweep (reversed with ``post_reverse``).  The last level is solved exactly
    (``coarse_solve``) or by a forward and a backward sweep.
    """
    A = np.asarray(As[0], dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(As) == 1:
        if coarse_solve:
            return np.linalg.solve(A, b)
        x = gauss_seidel_ref(A, b, np.zeros_like(b))
        return gauss_seidel_ref(A, b, x, reverse=True)
    agg = np.asarray(aggs[0])
    x = gauss_seidel_ref(A, b, np.zeros_like(b), reverse=pre_reverse)
    rc = np.bincount(agg, weights=b - A @ x, minlength=np.asarray(As[1]).shape[0])
    x = x + vcycle_ref(As[1:], aggs[1:], rc, coarse_solve, pre_reverse, post_reverse)[agg]
    return gauss_seidel_ref(A, b, x, reverse=post_reverse)

