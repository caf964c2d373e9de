#!/usr/bin/env python
"""Small MDPs: solves, hyper-gradients, landscapes and diagnostics on the 10 x 10 GridWorld, against numpy and JAX.

    python benchmarks/bench_small.py                  # full size (about 3 minutes on 2 idle cores)
    python benchmarks/bench_small.py --quick          # reduced sizes (21 x 21 landscape, 10^5 steps)
    python benchmarks/bench_small.py --check-only     # one x, no timing: every peer's answers against ours
    python benchmarks/bench_small.py --json out.json  # also write the table, the agreement errors and the machine

Problem: the GridWorld goal experiment (``exactbilevel.experiments.gridworld_goal``, defaults):
S = 100, A = 5, slip 0.1, gamma = 0.95, reward the Gaussian goal bump (sigma 2.5) at x,
f = <nu^pi, u> + kappa/2 |x - xbar|^2 (kappa 0.01, xbar (4.5, 4.5)), tau = 0.1.

Rows (step 1 of the issue "Small MDPs fast": the numbers a faster implementation must beat):

(a) one soft ``eb.solve(mdp, r, 0.1)`` at x0 = (7, 2), cold, against the numpy peer's soft
    Newton (policy iteration on the soft Bellman equation, ``np.linalg.solve`` evaluations);
(b) one ``eb.hypergradient(..., full_output=True)`` at x0, cold (value and gradient of
    Phi_tau), against the numpy peer (soft Newton, then the adjoint implicit gradient);
(c) Phi_tau and grad Phi_tau on an n x n grid of x over [0, 9]^2 (n = 101 full, 21 quick):
    ours a loop of ``eb.hypergradient`` with ``V0=`` the previous point's V (the grid
    visited row by row, alternate rows reversed, so consecutive points are neighbours);
    the numpy peer the same loop, warm-started the same way; the JAX peer ``jax.jit`` of
    ``jax.vmap`` of ``jax.value_and_grad`` of 12 soft Newton steps from V = 0 and f
    (gradient by reverse mode through the 12 steps), over chunks of CHUNK points;
(d) Phi_0 on the same grid, ours only (``eb.solve(mdp, r, 0)`` warm-started, then
    ``eb.limit_policy`` and ``objective.value``), for information, and (c) + (d)
    against JAX's (c), the issue's wording of its landscape target;
(e) the share the exact diagnostics add to a run: ``eb.run(prob, ActorCriticConfig(steps=K,
    sampling="markov", log_spacing="geometric", logs_per_decade=20))`` against the same
    with ``diagnostics=False`` (K = 10^6 full, 10^5 quick), and the share extrapolated to
    10^8 steps (151 logging points): (t_diag - t_plain) / points(K) * 151 / (t_plain / K * 1e8).
    An extrapolation, not a measurement: the diagnostics run in a background thread
    beside the loop, so their cost per point on a second core is what is extrapolated.
    An info row gives the share if they did not overlap at all: their cost a point,
    timed in a K_SERIAL-step run (where the loop is negligible), x 151 / (t_plain / K x 1e8).

JAX: jax / jaxlib 0.10.2 deadlocks on the 2-core machine in the first vmapped call (see
JAX_BELOW); the JAX rows need jax < 0.10 (``pip install "jax<0.10"``, the ``bench`` extra).

Timing: ``time.perf_counter``; every side is warmed up first (Numba caches, JAX compilation
of the chunk shape excluded); both sides run in this process in alternating rounds (which
side goes first alternates; a pause of PAUSE_S before each side lets the thread pool just
used stop spinning).  Single calls: best of k calls per round, best over the rounds;
landscapes and runs: one whole landscape / run per side per round, best over the rounds.
Ratios are ours / peer (< 1: ours faster).  Every peer's answers are compared with ours
(max abs differences printed); a difference above AGREE = 1e-8 stops the script with exit
status 1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmark the checkout, installed or not
sys.path.insert(0, str(Path(__file__).resolve().parent))  # _report.py beside this script


import _report  # noqa: E402 (benchmarks/_report.py)
import exactbilevel as eb  # noqa: E402
from exactbilevel.experiments import gridworld_goal as gg  # noqa: E402

try:
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
except ImportError:  # pragma: no cover - the JAX rows say so
    jax = jnp = None

TAU = 0.1
AGREE = 1e-8
PAUSE_S = 0.2
NEWTON_STEPS_JAX = 12
CHUNK = 64  # landscape points per call of the JAX peer (vmap; 16-1089 time alike); the last chunk is padded
SIZES = {
    "full": dict(n=101, k_single=30, rounds_single=5, rounds_land=2, steps=10**6, rounds_run=2),
    "quick": dict(n=21, k_single=10, rounds_single=3, rounds_land=2, steps=10**5, rounds_run=2),
}
#: Targets of the issue: (a), (b) absolute [s]; (c) ratios ours / peer; (e) the added share.
T_SOLVE, T_HYPER, T_VS_JAX, T_VS_NUMPY, T_DIAG = 0.3e-3, 0.5e-3, 1 / 5, 1 / 10, 0.10
SKIP_JAX = "skipped: pip install jax"
#: jax / jaxlib 0.10.2 deadlocks on this 2-core machine in the batched LU of jnp.linalg.solve under vmap
#: (two XLA pool threads each wait in ParallelBatchMap of lapack_dtrsm_ffi for work queued behind the
#: other); 0.9.2 does not.  The JAX rows are skipped on 0.10 and later unless --jax-any-version.
JAX_BELOW = (0, 10)
SKIP_JAX_VERSION = ("skipped: jax {} deadlocks in vmapped jnp.linalg.solve on 2 cores; "
                    "pip install 'jax<0.10' (or --jax-any-version)")
K_SERIAL = 10**4  # steps of the runs that time the diagnostics alone (the loop is negligible there)


# -- peers ------------------------------------------------------------------------
class NumpyPeer:
    """Plain numpy: soft Newton with ``np.linalg.solve``, then the adjoint hyper-gradient
    (exactbilevel/gradients.py, module docstring) of Phi_tau(x) = <nu^pi*, c> + kappa/2 |x - xbar|^2."""

    def __init__(self, prob, tau):
        mdp, reward, obj = prob.mdp, prob.reward, prob.objective
        self.P = np.array(mdp.P)                                # (S, A, S)
        self.S, self.A = mdp.S, mdp.A
        self.P2 = self.P.reshape(self.S * self.A, self.S)       # rows (s, a)
        self.gamma, self.rho, self.tau = mdp.gamma, np.array(mdp.rho), tau
        self.coords, self.sigma = np.array(reward.coords), reward.sigma
        self.c, self.kappa, self.xbar = np.array(obj.cost), obj.kappa, np.array(obj.center)
        self.I = np.eye(self.S)

    def reward(self, x):
        z = (self.coords - x) / self.sigma                     # (S, 2)
        b = np.exp(-0.5 * (z * z).sum(1))
        r = np.repeat(b[:, None], self.A, 1)
        R = np.repeat((b[:, None] * z / self.sigma)[:, None, :], self.A, 1)   # (S, A, 2)
        return r, R

    def softmax(self, r, V):
        Q = r + self.gamma * (self.P2 @ V).reshape(self.S, self.A)
        m = Q.max(1, keepdims=True)
        E = np.exp((Q - m) / self.tau)
        Z = E.sum(1, keepdims=True)
        return Q, m[:, 0] + self.tau * np.log(Z[:, 0]), E / Z, (Q - m) / self.tau - np.log(Z)

    def solve(self, r, V=None, tol=1e-12, max_steps=50):
        """Soft Newton (soft policy iteration) until |T V - V|_inf <= tol: (V, Q, pi)."""
        V = np.zeros(self.S) if V is None else V
        for _ in range(max_steps):
            Q, TV, pi, logpi = self.softmax(r, V)
            if np.abs(TV - V).max() <= tol:
                return V, Q, pi
            M = self.I - self.gamma * np.einsum("sa,sat->st", pi, self.P)
            V = np.linalg.solve(M, (pi * (r - self.tau * logpi)).sum(1))
        raise RuntimeError("numpy soft Newton did not converge")

    def hypergradient(self, x, V0=None):
        """(Phi_tau(x), grad Phi_tau(x), V*_tau(x))."""
        r, R = self.reward(x)
        V, _, pi = self.solve(r, V0)
        M = self.I - self.gamma * np.einsum("sa,sat->st", pi, self.P)
        d = (1 - self.gamma) * np.linalg.solve(M.T, self.rho)  # state occupancy d^pi
        c_pi = (pi * self.c).sum(1)
        Vc = np.linalg.solve(M, c_pi)
        Qc = self.c + self.gamma * (self.P2 @ Vc).reshape(self.S, self.A)
        G = pi * d[:, None] * Qc                               # pi * grad_pi f
        w = np.linalg.solve(M.T, self.gamma * (G.ravel() @ self.P2) - G.sum(1))
        implicit = np.einsum("sad,sa->d", R, G + pi * w[:, None]) / self.tau
        diff = x - self.xbar
        return d @ c_pi + 0.5 * self.kappa * diff @ diff, self.kappa * diff + implicit, V


def jax_peer(prob, tau, steps=NEWTON_STEPS_JAX):
    """``f(X (m, 2)) -> (Phi_tau (m,), grad (m, 2))``: jit + vmap of value_and_grad of
    ``steps`` soft Newton steps from V = 0 and f, in float64."""
    mdp, reward, obj = prob.mdp, prob.reward, prob.objective
    S, A, gamma = mdp.S, mdp.A, mdp.gamma
    P, rho, c = jnp.asarray(mdp.P), jnp.asarray(mdp.rho), jnp.asarray(obj.cost)
    coords, sigma, kappa, xbar = jnp.asarray(reward.coords), reward.sigma, obj.kappa, jnp.asarray(obj.center)
    eye = jnp.eye(S)

    def phi(x):
        z = (coords - x) / sigma
        r = jnp.repeat(jnp.exp(-0.5 * (z * z).sum(1))[:, None], A, 1)

        def policy(V):
            logpi = jax.nn.log_softmax((r + gamma * P @ V) / tau, axis=1)
            return jnp.exp(logpi), logpi

        def newton(_, V):
            pi, logpi = policy(V)
            M = eye - gamma * jnp.einsum("sa,sat->st", pi, P)
            return jnp.linalg.solve(M, (pi * (r - tau * logpi)).sum(1))

        V = jax.lax.fori_loop(0, steps, newton, jnp.zeros(S))
        pi, _ = policy(V)
        M = eye - gamma * jnp.einsum("sa,sat->st", pi, P)
        d = (1 - gamma) * jnp.linalg.solve(M.T, rho)
        diff = x - xbar
        return d @ (pi * c).sum(1) + 0.5 * kappa * diff @ diff

    batched = jax.jit(jax.vmap(jax.value_and_grad(phi)))

    def landscape(X):
        m = X.shape[0]
        size = min(m, CHUNK)  # one compiled shape: (CHUNK, 2), or (m, 2) for fewer points
        pad = np.concatenate([X, np.repeat(X[-1:], (-m) % size, 0)])
        phis, grads = [], []
        for i in range(0, pad.shape[0], size):
            p, g = batched(jnp.asarray(pad[i:i + size]))
            phis.append(np.asarray(p)), grads.append(np.asarray(g))
        return np.concatenate(phis)[:m], np.concatenate(grads)[:m]

    return landscape


# -- ours -------------------------------------------------------------------------
def ours_landscape(prob, X, order):
    """Phi_tau and grad Phi_tau at the rows of X, visited in ``order``, each solve warm-started."""
    mdp, reward, obj = prob.mdp, prob.reward, prob.objective
    phi, grad, V = np.empty(len(X)), np.empty((len(X), 2)), None
    for i in order:
        h = eb.hypergradient(mdp, reward, obj, X[i], TAU, V0=V, full_output=True)
        V, phi[i], grad[i] = h.solution.V, h.phi, h.grad
    return phi, grad


def ours_phi0(prob, X, order):
    """Phi_0 at the rows of X (hard solve warm-started, the tau -> 0 limit policy, f)."""
    mdp, reward, obj = prob.mdp, prob.reward, prob.objective
    phi0, V = np.empty(len(X)), None
    for i in order:
        r = reward.value(X[i])
        s0 = eb.solve(mdp, r, 0.0, V0=V)
        V, phi0[i] = s0.V, obj.value(X[i], eb.limit_policy(mdp, r, solution=s0))
    return phi0


def numpy_landscape(peer, X, order):
    phi, grad, V = np.empty(len(X)), np.empty((len(X), 2)), None
    for i in order:
        phi[i], grad[i], V = peer.hypergradient(X[i], V)
    return phi, grad


def grid_points(n, hi=9.0):
    """X (n*n, 2) with X[i*n + j] = (g_i, g_j), and the serpentine visiting order."""
    g = np.linspace(0.0, hi, n)
    X = np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2)
    order = np.concatenate([np.arange(i * n, (i + 1) * n)[::1 if i % 2 == 0 else -1] for i in range(n)])
    return X, order


# -- timing -------------------------------------------------------------------------
def rounds(sides, n_rounds, k=1):
    """Best time of each callable in ``sides`` (name -> fn) over ``n_rounds`` rounds of
    ``k`` calls each, the order of the sides alternating round by round, a pause before
    each side; returns (best times, last results)."""
    names = list(sides)
    best, last = {n: np.inf for n in names}, {}
    for rnd in range(n_rounds):
        for name in (names if rnd % 2 == 0 else names[::-1]):
            time.sleep(PAUSE_S)
            for _ in range(k):
                t0 = time.perf_counter()
                last[name] = sides[name]()
                best[name] = min(best[name], time.perf_counter() - t0)
    return best, last


def maxdiff(a, b):
    return float(np.max(np.abs(np.asarray(a, float) - np.asarray(b, float))))


class Agreement:
    """Max abs differences of the peers' answers from ours; fails loudly above AGREE."""

    def __init__(self):
        self.errors = {}

    def check(self, name, ours, peer):
        err = maxdiff(ours, peer)
        self.errors[name] = err
        ok = err <= AGREE
        print(f"  agreement {name:42s} max |ours - peer| = {err:.1e}  {'ok' if ok else 'DISAGREES'}", flush=True)
        if not ok:
            raise SystemExit(f"bench_small: {name} disagrees with ours by {err:.3g} > {AGREE:g}")


# -- measurements ---------------------------------------------------------------------
def check_only(prob, jax_skip):
    """One x, no timing: each peer present against ours."""
    mdp, reward, obj, x = prob.mdp, prob.reward, prob.objective, prob.x0
    agree, peer = Agreement(), NumpyPeer(prob, TAU)
    sol = eb.solve(mdp, reward.value(x), TAU)
    V, _, pi = peer.solve(peer.reward(x)[0])
    agree.check("(a) numpy soft Newton: V", sol.V, V)
    agree.check("(a) numpy soft Newton: pi", sol.pi, pi)
    h = eb.hypergradient(mdp, reward, obj, x, TAU, full_output=True)
    p, g, _ = peer.hypergradient(x)
    agree.check("(b) numpy hyper-gradient: Phi_tau", h.phi, p)
    agree.check("(b) numpy hyper-gradient: grad", h.grad, g)
    if jax_skip is None:
        pj, gj = jax_peer(prob, TAU)(x[None, :])
        agree.check("(c) JAX: Phi_tau", h.phi, pj[0])
        agree.check("(c) JAX: grad", h.grad, gj[0])
    else:
        print(f"  JAX peer: {jax_skip}")
    return agree.errors


def measure(prob, size, jax_skip):
    use_jax = jax_skip is None
    mdp, reward, obj, x = prob.mdp, prob.reward, prob.objective, prob.x0
    peer, agree, rows, info = NumpyPeer(prob, TAU), Agreement(), [], {}
    r = reward.value(x)
    r_np = peer.reward(x)[0]

    def row(name, ours, peer_s, target, kind, note=""):
        """kind "abs": ours [s] against an absolute target; "ratio": ours / peer against a
        target ratio; "share": a fraction; "info": no target."""
        ratio = ours / peer_s if peer_s else None
        value = {"abs": ours, "ratio": ratio, "share": ours, "info": None}[kind]
        verdict = "info" if target is None or value is None else ("PASS" if value <= target else "FAIL")
        rows.append(dict(name=name, ours=ours, peer=peer_s, ratio=ratio, target=target, kind=kind,
                         verdict=verdict, note=note))
        print_row(rows[-1])

    print(table_head(), flush=True)
    # (a) single soft solve, cold, both sides
    for _ in range(3):  # warm-up
        eb.solve(mdp, r, TAU), peer.solve(r_np)
    t, out = rounds({"ours": lambda: eb.solve(mdp, r, TAU), "numpy": lambda: peer.solve(r_np)},
                    size["rounds_single"], size["k_single"])
    agree.check("(a) numpy soft Newton: V", out["ours"].V, out["numpy"][0])
    row("(a) soft solve, S = 100 [ms/call]", t["ours"], t["numpy"], T_SOLVE, "abs",
        f"{out['ours'].iterations} sweeps ({out['ours'].method}); ours / numpy {t['ours'] / t['numpy']:.2f}")
    info["solve"] = t

    # (b) single hyper-gradient, cold
    hg = lambda: eb.hypergradient(mdp, reward, obj, x, TAU, full_output=True)  # noqa: E731
    for _ in range(3):
        hg(), peer.hypergradient(x)
    t, out = rounds({"ours": hg, "numpy": lambda: peer.hypergradient(x)}, size["rounds_single"], size["k_single"])
    agree.check("(b) numpy hyper-gradient: Phi_tau", out["ours"].phi, out["numpy"][0])
    agree.check("(b) numpy hyper-gradient: grad", out["ours"].grad, out["numpy"][1])
    row("(b) hyper-gradient + Phi_tau [ms/call]", t["ours"], t["numpy"], T_HYPER, "abs",
        f"ours / numpy {t['ours'] / t['numpy']:.2f}")
    info["hypergradient"] = t

    # (c), (d) landscapes
    n = size["n"]
    X, order = grid_points(n)
    N = len(X)
    sides = {"ours": lambda: ours_landscape(prob, X, order), "numpy": lambda: numpy_landscape(peer, X, order),
             "ours_phi0": lambda: ours_phi0(prob, X, order)}
    ours_landscape(prob, X[:20], order[:20] % 20), ours_phi0(prob, X[:20], np.arange(20))
    numpy_landscape(peer, X[:20], np.arange(20))
    if use_jax:
        jl = jax_peer(prob, TAU)
        t0 = time.perf_counter()
        jl(X[:CHUNK] if N >= CHUNK else X)  # compiles the chunk shape
        info["jax_compile_s"] = time.perf_counter() - t0
        sides["jax"] = lambda: jl(X)
    t, out = rounds(sides, size["rounds_land"])
    phi, grad = out["ours"]
    agree.check(f"(c) numpy landscape {n}x{n}: Phi_tau", phi, out["numpy"][0])
    agree.check(f"(c) numpy landscape {n}x{n}: grad", grad, out["numpy"][1])
    if use_jax:
        agree.check(f"(c) JAX landscape {n}x{n}: Phi_tau", phi, out["jax"][0])
        agree.check(f"(c) JAX landscape {n}x{n}: grad", grad, out["jax"][1])
    per = {k: v / N for k, v in t.items()}
    if use_jax:
        row(f"(c) landscape {n}x{n} Phi_tau+grad vs JAX [ms/x]", per["ours"], per["jax"], T_VS_JAX, "ratio",
            f"whole grid: ours {t['ours']:.1f} s, JAX {t['jax']:.1f} s (jit + vmap, chunks of {CHUNK}, "
            f"compile {info['jax_compile_s']:.1f} s excluded)")
    else:
        print(f"(c) landscape vs JAX: {jax_skip}")
    row(f"(c) landscape {n}x{n} Phi_tau+grad vs numpy [ms/x]", per["ours"], per["numpy"], T_VS_NUMPY, "ratio",
        f"whole grid: ours {t['ours']:.1f} s, numpy {t['numpy']:.1f} s (both loops warm-started)")
    row(f"(d) landscape {n}x{n} Phi_0 (info) [ms/x]", per["ours_phi0"], None, None, "info",
        f"whole grid {t['ours_phi0']:.1f} s: solve tau = 0 (V0 warm), limit_policy, objective.value")
    if use_jax:
        both = per["ours"] + per["ours_phi0"]
        row("(c)+(d) Phi_0, Phi_tau, grad vs JAX (c) [ms/x]", both, per["jax"], T_VS_JAX, "ratio",
            "the issue's wording of the landscape target")
    info["landscape_s"] = t
    info["landscape_points"] = N

    # (e) the diagnostics' share of a run
    K = size["steps"]
    cfg = eb.ActorCriticConfig(steps=K, sampling="markov", log_spacing="geometric", logs_per_decade=20)
    points, points_1e8 = len(cfg.log_steps()), len(replace(cfg, steps=10**8).log_steps())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", eb.ScheduleWarning)
        for diag in (True, False):
            eb.run(prob, replace(cfg, steps=2000, diagnostics=diag), seed=0)
        t, _ = rounds({"diag": lambda: eb.run(prob, cfg, seed=0),
                       "plain": lambda: eb.run(prob, replace(cfg, diagnostics=False), seed=0)}, size["rounds_run"])
        # the diagnostics alone: a run so short that its loop is negligible beside them
        short = replace(cfg, steps=K_SERIAL)
        t_short, _ = rounds({"diag": lambda: eb.run(prob, short, seed=0),
                             "plain": lambda: eb.run(prob, replace(short, diagnostics=False), seed=0)},
                            size["rounds_run"])
    share = t["diag"] / t["plain"] - 1.0
    per_point = (t["diag"] - t["plain"]) / points
    per_step = t["plain"] / K
    extrapolated = per_point * points_1e8 / (per_step * 1e8)
    points_short = len(short.log_steps())
    alone = (t_short["diag"] - t_short["plain"]) / points_short
    serial = alone * points_1e8 / (per_step * 1e8)
    row(f"(e) diagnostics, {K:.0e} steps, {points} points: share", share, None, None, "info",
        f"run {t['diag']:.2f} s with, {t['plain']:.2f} s without; {per_step * 1e6:.2f} us/step, "
        f"{per_point * 1e3:.1f} ms added per point")
    row(f"(e) diagnostics at 1e8 steps, {points_1e8} points (extrapolated): share", extrapolated, None, T_DIAG,
        "share", f"extrapolation: {per_point * 1e3:.1f} ms/point x {points_1e8} / ({per_step * 1e6:.2f} us x 1e8)")
    row("(e) same, diagnostics not overlapped (info): share", serial, None, None, "info",
        f"{alone * 1e3:.1f} ms a point alone (a {K_SERIAL:.0e}-step run, {points_short} points: "
        f"{t_short['diag']:.2f} s with, {t_short['plain']:.3f} s without) x {points_1e8} / "
        f"({per_step * 1e6:.2f} us x 1e8)")
    info["run_s"] = dict(t, steps=K, points=points, points_1e8=points_1e8, per_point_s=per_point,
                         per_step_s=per_step, short=dict(t_short, steps=K_SERIAL, points=points_short,
                                                          per_point_alone_s=alone))
    return rows, agree.errors, info


# -- output ---------------------------------------------------------------------------
def table_head():
    head = f"{'name':58s} {'ours':>9s} {'peer':>9s} {'ours/peer':>9s} {'target':>10s}  verdict"
    return head + "\n" + "-" * len(head)


def print_row(row):
    def ms(v):
        return "-" if v is None else f"{v * 1e3:.3f}"
    if row["kind"] == "share" or (row["kind"] == "info" and row["peer"] is None and "share" in row["name"]):
        ours, target = f"{row['ours']:+.1%}", "-" if row["target"] is None else f"<= {row['target']:.0%}"
    else:
        ours = ms(row["ours"])
        target = {"abs": lambda t: f"<= {t * 1e3:g} ms", "ratio": lambda t: f"<= {t:g}"}.get(
            row["kind"], lambda t: "-")(row["target"]) if row["target"] is not None else "-"
    ratio = "-" if row["ratio"] is None else f"{row['ratio']:.3f}"
    print(f"{row['name']:58s} {ours:>9s} {ms(row['peer']):>9s} {ratio:>9s} {target:>10s}  {row['verdict']}"
          f"  {row['note']}", flush=True)


def machine():
    jaxlib = None
    if jax is not None:
        import jaxlib as _jaxlib
        jaxlib = _jaxlib.__version__
    return _report.machine(jax=None if jax is None else jax.__version__, jaxlib=jaxlib,
                           env={k: os.environ.get(k) for k in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                               "NUMBA_NUM_THREADS", "XLA_FLAGS")})


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="reduced sizes, to check the script")
    ap.add_argument("--check-only", action="store_true", help="one x, no timing: the peers' agreement checks")
    ap.add_argument("--no-jax", action="store_true", help="leave the JAX peer out (as if JAX were missing)")
    ap.add_argument("--jax-any-version", action="store_true", help="run the JAX peer on jax >= 0.10 too (it may hang)")
    ap.add_argument("--json", type=Path, help="write the table, the agreement errors and the machine here")
    args = ap.parse_args(argv)
    if jax is None or args.no_jax:
        jax_skip = SKIP_JAX
    elif tuple(int(v) for v in jax.__version__.split(".")[:2]) >= JAX_BELOW and not args.jax_any_version:
        jax_skip = SKIP_JAX_VERSION.format(jax.__version__)
    else:
        jax_skip = None
    load0 = os.getloadavg() if hasattr(os, "getloadavg") else None
    prob = gg.problem(gg.GridworldGoal())
    mdp = prob.mdp
    print(f"GridWorld goal: S = {mdp.S}, A = {mdp.A}, gamma = {mdp.gamma}, tau = {TAU}, x0 = {prob.x0}; "
          f"JAX {jax.__version__ if jax_skip is None else '- (' + jax_skip + ')'}; "
          f"load average {'n/a' if load0 is None else f'{load0[0]:.2f}'}")
    t_start = time.perf_counter()
    if args.check_only:
        errors = check_only(prob, jax_skip)
        rows, info, size = [], {}, "check-only"
        print(f"check-only: every peer agrees within {AGREE:g} ({time.perf_counter() - t_start:.1f} s)")
    else:
        if load0 and load0[0] > 0.5:
            print(f"warning: load average {load0[0]:.2f} before start; other processes will distort the timings")
        size = "quick" if args.quick else "full"
        rows, errors, info = measure(prob, SIZES[size], jax_skip)
        count = {v: sum(r["verdict"] == v for r in rows) for v in ("PASS", "FAIL", "info")}
        print(", ".join(f"{n} {v}" for v, n in count.items()) + f"; total {time.perf_counter() - t_start:.0f} s")
    if args.json:
        report = dict(size=size, config={**SIZES.get(size, {}), "tau": TAU, "agree": AGREE, "chunk": CHUNK,
                                         "newton_steps_jax": NEWTON_STEPS_JAX, "pause_s": PAUSE_S},
                      machine={**machine(), "load_average_at_start": load0}, rows=rows, agreement=errors,
                      info=info, total_s=time.perf_counter() - t_start)
        _report.write_report(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
