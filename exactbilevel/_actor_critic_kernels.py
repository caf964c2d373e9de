"""Numba kernels of the sampled actor-critic loop (docs/theory.rst, "The algorithm"); private.

Callers (exactbilevel.actor_critic) validate every input first: indices in
range, CSR rows with non-negative data, cumulative sums per row, logits and
critics finite, schedules evaluated to finite arrays.  The random generator is
a ``numpy.random.Generator`` passed in (Numba shares its state), so a run is
reproducible from its seed.  Plain-numpy references are in
:mod:`exactbilevel.testing.reference` (``actor_critic_step_ref``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LINEAR, GAUSSIAN = 0, 1
IID, MARKOV = 0, 1


@njit(cache=True)
def row_cumsum(indptr, data, out):
    """Cumulative sums of ``data`` restarted at every CSR row (sequential, as np.cumsum per row)."""
    for row in range(indptr.shape[0] - 1):
        c = 0.0
        for j in range(indptr[row], indptr[row + 1]):
            c += data[j]
            out[j] = c


@njit(cache=True)
def search_cdf(cdf, lo, hi, u):
    """Smallest j in [lo, hi) with cdf[j] > u (hi - 1 if none: rounding of the last sum)."""
    a, b = lo, hi - 1
    while a < b:
        m = (a + b) // 2
        if cdf[m] > u:
            b = m
        else:
            a = m + 1
    return a


@njit(cache=True)
def row_lse(logits, s):
    """log sum_a exp(logits[s, a]), max-shifted."""
    A = logits.shape[1]
    m = logits[s, 0]
    for a in range(1, A):
        if logits[s, a] > m:
            m = logits[s, a]
    z = 0.0
    for a in range(A):
        z += math.exp(logits[s, a] - m)
    return m + math.log(z)


@njit(cache=True)
def all_row_lse(logits):
    """``row_lse`` of every row: the values the loop keeps, so that a run split into
    blocks (logging points) draws exactly as one unsplit run would."""
    out = np.empty(logits.shape[0])
    for s in range(logits.shape[0]):
        out[s] = row_lse(logits, s)
    return out


@njit(cache=True)
def sample_action(logits, lse, s, rng):
    u = rng.random()
    c = 0.0
    A = logits.shape[1]
    for a in range(A - 1):
        c += math.exp(logits[s, a] - lse[s])
        if u < c:
            return a
    return A - 1


@njit(cache=True)
def next_state(indptr, indices, cdf, A, s, a, rng):
    row = s * A + a
    return indices[search_cdf(cdf, indptr[row], indptr[row + 1], rng.random())]


@njit(cache=True)
def draw(mode, chain, logits, lse, rho_cdf, indptr, indices, cdf, gamma, rng, counter):
    """One (s, a, s', a') under softmax(logits): s ~ d^pi by geometric restarts (IID) or the
    chain's current state (MARKOV, whose next state is s' with probability gamma, else a draw
    from rho: stationary law d^pi).  Returns (s, a, s', a', next chain state); counter[0] counts
    environment transitions."""
    A = logits.shape[1]
    S = rho_cdf.shape[0]
    if mode == IID:
        s = search_cdf(rho_cdf, 0, S, rng.random())
        while rng.random() < gamma:
            a = sample_action(logits, lse, s, rng)
            s = next_state(indptr, indices, cdf, A, s, a, rng)
            counter[0] += 1
    else:
        s = chain
    a = sample_action(logits, lse, s, rng)
    s2 = next_state(indptr, indices, cdf, A, s, a, rng)
    counter[0] += 1
    a2 = sample_action(logits, lse, s2, rng)
    nxt = chain
    if mode == MARKOV:
        nxt = s2 if rng.random() < gamma else search_cdf(rho_cdf, 0, S, rng.random())
    return s, a, s2, a2, nxt


@njit(cache=True)
def reward_and_grad(kind, Psi, coords, sigma, s, a, x, grad):
    """r_x(s, a), with grad_x r_x(s, a) written into grad: linear ``Psi[s, a] @ x`` or the
    Gaussian bump ``exp(-|c(s) - x|^2 / (2 sigma^2))``."""
    d = x.shape[0]
    if kind == LINEAR:
        r = 0.0
        for i in range(d):
            grad[i] = Psi[s, a, i]
            r += Psi[s, a, i] * x[i]
        return r
    dist2 = 0.0
    for i in range(d):
        dist2 += (coords[s, i] - x[i]) ** 2
    r = math.exp(-dist2 / (2.0 * sigma * sigma))
    for i in range(d):
        grad[i] = r * (coords[s, i] - x[i]) / (sigma * sigma)
    return r


@njit(cache=True)
def soft_advantage_row(Q, logits, lse, tau, s, out):
    """out[b] = Q[s, b] - tau log pi(b|s) - sum_c pi(c|s) (Q[s, c] - tau log pi(c|s))."""
    A = Q.shape[1]
    v = 0.0
    for b in range(A):
        lp = logits[s, b] - lse[s]
        out[b] = Q[s, b] - tau * lp
        v += math.exp(lp) * out[b]
    for b in range(A):
        out[b] -= v


@njit(cache=True, nogil=True)
def run_steps(taus, lams, alphas, betas, zetas,
              x, lo, hi, theta, phi, Qphi, Qtheta, Qc, lse_phi, lse_theta,
              kind, Psi, coords, sigma, cost, kappa, center, gx0,
              indptr, indices, cdf, rho_cdf, gamma, mode, chains, batch, natural, partial, theta_only, rng, counter):
    """len(taus) steps of the algorithm of docs/theory.rst, "The algorithm", in place.

    Per step, with B = batch samples per chain: draw B tuples under pi_phi and B
    under pi_theta; TD errors of the three critics at the current critics, then
    the critic updates (averaged over B); actor directions from the updated
    critics, then the actor updates; then the upper step with the reward
    gradients at the step's starting x, projected on the box [lo, hi].  The cost critic
    learns the cost ``cost`` (S, A); grad_x f is ``gx0 + kappa (x - center)``.  With
    ``partial`` the upper step uses grad_x f only (the partial-SGD baseline)."""
    S, A = theta.shape
    d = x.shape[0]
    B = batch
    sp = np.empty((2, B), np.int64)
    ap = np.empty((2, B), np.int64)
    s2 = np.empty((2, B), np.int64)
    a2 = np.empty((2, B), np.int64)
    td = np.empty((3, B))
    grads = np.empty((2, B, d))
    inc = np.empty((2, B, A))
    adv = np.empty(A)
    adv_c = np.empty(A)
    gx = np.empty(d)
    c1 = 1.0 / (1.0 - gamma)
    for t in range(taus.shape[0]):
        tau, lam, al, be, ze = taus[t], lams[t], alphas[t], betas[t], zetas[t]
        for b in range(B):
            if not theta_only:
                sp[0, b], ap[0, b], s2[0, b], a2[0, b], chains[0] = draw(
                    mode, chains[0], phi, lse_phi, rho_cdf, indptr, indices, cdf, gamma, rng, counter)
            sp[1, b], ap[1, b], s2[1, b], a2[1, b], chains[1] = draw(
                mode, chains[1], theta, lse_theta, rho_cdf, indptr, indices, cdf, gamma, rng, counter)
        # critics: TD errors at the current critics, then the averaged updates
        for b in range(B):
            if not theta_only:
                s, a, u, v = sp[0, b], ap[0, b], s2[0, b], a2[0, b]
                r = reward_and_grad(kind, Psi, coords, sigma, s, a, x, grads[0, b])
                td[0, b] = r + gamma * (Qphi[u, v] - tau * (phi[u, v] - lse_phi[u])) - Qphi[s, a]
            s, a, u, v = sp[1, b], ap[1, b], s2[1, b], a2[1, b]
            r = reward_and_grad(kind, Psi, coords, sigma, s, a, x, grads[1, b])
            td[1, b] = r + gamma * (Qtheta[u, v] - tau * (theta[u, v] - lse_theta[u])) - Qtheta[s, a]
            td[2, b] = cost[s, a] + gamma * Qc[u, v] - Qc[s, a]
        for b in range(B):
            if not theta_only:
                Qphi[sp[0, b], ap[0, b]] += be / B * td[0, b]
            Qtheta[sp[1, b], ap[1, b]] += be / B * td[1, b]
            Qc[sp[1, b], ap[1, b]] += be / B * td[2, b]
        # actors, from the updated critics
        for b in range(B):
            if not theta_only:
                s, a = sp[0, b], ap[0, b]
                soft_advantage_row(Qphi, phi, lse_phi, tau, s, adv)
                for c in range(A):
                    if natural:
                        inc[0, b, c] = al * c1 / B * adv[c]
                    else:
                        e = 1.0 if c == a else 0.0
                        inc[0, b, c] = al * c1 / B * (e - math.exp(phi[s, c] - lse_phi[s])) * adv[a]
            s, a = sp[1, b], ap[1, b]
            soft_advantage_row(Qtheta, theta, lse_theta, tau, s, adv)
            soft_advantage_row(Qc, theta, lse_theta, 0.0, s, adv_c)
            for c in range(A):
                if natural:
                    inc[1, b, c] = al / B * (adv[c] * c1 - adv_c[c] / lam)
                else:
                    e = 1.0 if c == a else 0.0
                    inc[1, b, c] = al / B * (e - math.exp(theta[s, c] - lse_theta[s])) * (adv[a] * c1 - adv_c[a] / lam)
        for b in range(B):
            for c in range(A):
                if not theta_only:
                    phi[sp[0, b], c] += inc[0, b, c]
                theta[sp[1, b], c] += inc[1, b, c]
        for b in range(B):
            if not theta_only:
                lse_phi[sp[0, b]] = row_lse(phi, sp[0, b])
            lse_theta[sp[1, b]] = row_lse(theta, sp[1, b])
        if theta_only:
            continue
        # upper step
        for i in range(d):
            g = 0.0
            for b in range(B):
                g += grads[0, b, i] - grads[1, b, i]
            gx[i] = gx0[i] + kappa * (x[i] - center[i]) + (0.0 if partial else lam * c1 * g / B)
        for i in range(d):
            xi = x[i] - ze * gx[i]
            x[i] = min(max(xi, lo[i]), hi[i])
