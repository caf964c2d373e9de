#!/usr/bin/env python
"""Speed of exactbilevel's compiled sweeps and solvers against numpy, scipy and QuantEcon.

    python benchmarks/bench_solvers.py                  # full size (< 10 min on 2 cores)
    python benchmarks/bench_solvers.py --quick          # reduced sizes, seconds
    python benchmarks/bench_solvers.py --json out.json  # also write the table as JSON

Reference problems (full size; --quick shrinks them):

* dense random MDP, S = 2000, A = 8 (``random_mdp``, Dirichlet rows), rewards
  uniform in [0, 1);
* GridWorld 1000 x 1000 (S = 10^6, A = 4, slip 0.1, CSR), reward a Gaussian
  bump (sigma = 1) at one goal cell, so it is zero (underflow) away from it;
* gamma = 0.99, and 0.999 for one grid solve.

Timing: ``time.perf_counter``, best of k calls after one untimed warm-up call
(so Numba compilation and cache loading are excluded).  The expensive calls
at S = 10^6 (grid solves) are timed once (k = 1); their warm-up is the same
call on a small problem of the same kind (same dtypes, same code paths: S >
3000, so policy systems take the Krylov path, not dense LU).  The policy
evaluation there (about 1.2 s) is timed cold, best of k = 3: a single cold call
varied from 1.1 to 2.1 s on the 2-core VM of the README.  A row whose two
sides are both cheap calls (the sweeps) is measured in PAIRED_ROUNDS rounds,
each the best of k calls of one side, then of the other (which side first
alternates), with a pause of PAUSE_S before each; the row reports the median
of the rounds' ratios.  A ratio within one round sees both sides at the same
memory bandwidth, which drifted by 60 % over a day on that VM.  The pause
matters: the thread pools of OpenBLAS and of Numba (OpenMP) keep spinning
after a call, and calling the two in direct alternation slowed both dense
sweeps by 40 % (11.4 and 10.4 ms against 7.3 and 7.1 ms alone); after a pause
of 0.3 s each runs as fast as alone.
Both solvers start from V = 0 (QuantEcon's default start is min R / (1 - beta),
0 here).  Peers run in this process.  Sweeps are timed at the hard optimal V*.

Time limits: each expensive measurement is stopped at its cap (MEASURES) and
at the end of the ``--budget`` (540 s full), which bounds the whole run below
10 minutes whatever the solvers do; a stopped time is a lower bound (">"), so a
row is still decided when the bound suffices (e.g. "> 120 s" against "< 60 s"
is a FAIL) and says "open" otherwise.  Measurements not started before the
budget ran out say "skip".

Every row reports ``ratio = ours / peer`` (times in seconds) or, with no peer,
the time itself, and checks it against the target of the project's issue.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmark the checkout, installed or not
sys.path.insert(0, str(Path(__file__).resolve().parent))  # _report.py beside this script

import scipy.linalg  # noqa: E402
import scipy.sparse  # noqa: E402

import _report  # noqa: E402 (benchmarks/_report.py)
import exactbilevel as eb  # noqa: E402
from exactbilevel.bellman import sweep  # noqa: E402
from exactbilevel.evaluation import clear_policy_systems  # noqa: E402

try:
    import quantecon
    from quantecon.markov import DiscreteDP
except ImportError:  # pragma: no cover
    sys.exit("quantecon is needed for the peer timings: pip install quantecon")

SIZES = {
    #        dense S, grid side, small warm-up problems, repeats (cheap, mid, big solves)
    "full": dict(dense_S=2000, grid_n=1000, warm_S=200, warm_n=60, k_cheap=10, k_mid=3, k_big=1),
    "quick": dict(dense_S=300, grid_n=80, warm_S=100, warm_n=60, k_cheap=5, k_mid=2, k_big=1),
}
#: Run time after which "big" measurements are stopped (">") or not started ("skip").
BUDGET_S = {"full": 540.0, "quick": 120.0}
A_DENSE, A_GRID, SLIP, GAMMA, TOL, TAU = 8, 4, 0.1, 0.99, 1e-8, 0.1
#: Cheap rows (both sides a fast call): rounds of (pause, best of k of one side, pause,
#: best of k of the other), the side first alternating; the pause lets the thread pool of
#: the side just timed stop spinning (a thread pool spins for a while after a call).
PAIRED_ROUNDS, PAUSE_S = 5, 0.3
# QuantEcon's modified policy iteration stops when span(Tv - v) < eps (1 - beta) / beta and
# returns the midrange-corrected v, so |v - v*| <= beta / (1 - beta) * span / 2 < eps / 2:
# the McQueen-Porteus bound our solver certifies.  eps = 2 * TOL is therefore the same
# 1e-8 sup-norm accuracy as our tol = 1e-8 (ours adds a tiny rounding allowance).
QE_EPSILON = 2 * TOL
QE_MAX_ITER = 100_000  # QuantEcon's default 250 could stop early without saying so

COLD_CODE = (
    "import time; t = time.perf_counter(); import numpy as np, exactbilevel as eb; "
    "mdp = eb.envs.random_mdp(50, 4, gamma=0.9, seed=0); "
    "r = np.random.default_rng(0).uniform(size=(50, 4)); "
    "eb.solve(mdp, r, tau=0.1, tol=1e-8); print(time.perf_counter() - t)"
)


def best_of(fn, k, warmup=True, self_timed=False):
    """(best time over k calls of fn, last result), after one untimed warm-up call.
    With ``self_timed`` fn returns (its own time, result)."""
    if warmup:
        fn()
    best, out = np.inf, None
    for _ in range(k):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        if self_timed:
            dt, out = out
        best = min(best, dt)
    return best, out


class Timeout(Exception):
    """Raised by the SIGALRM handler of :func:`deadline`."""


@contextmanager
def deadline(seconds):
    """Interrupt the block after ``seconds`` (the solvers loop in Python between
    compiled calls, so the alarm lands within milliseconds).  Yields a dict whose
    "fired" tells whether it rang: raised inside a Numba dispatch, the Timeout
    reaches the caller wrapped in a SystemError."""
    alarm = {"fired": False}

    def ring(signum, frame):
        alarm["fired"] = True
        raise Timeout
    old = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield alarm
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


# -- problems -----------------------------------------------------------------
@dataclass
class Problem:
    mdp: eb.TabularMDP
    r: np.ndarray

    def qe(self):
        """QuantEcon DiscreteDP: product form (R (S, A), Q (S, A, S)) when dense,
        state-action-pair form (R (S*A,), sparse Q (S*A, S), s/a indices) when sparse."""
        mdp, (S, A) = self.mdp, self.r.shape
        if not mdp.is_sparse:
            return DiscreteDP(self.r, mdp.P, mdp.gamma)
        s_idx, a_idx = np.repeat(np.arange(S), A), np.tile(np.arange(A), S)
        return DiscreteDP(self.r.ravel(), mdp.P, mdp.gamma, s_idx, a_idx)


def dense_problem(S):
    mdp = eb.envs.random_mdp(S, A_DENSE, gamma=GAMMA, seed=0)
    return Problem(mdp, np.random.default_rng(1).uniform(size=(S, A_DENSE)))


def grid_problem(n):
    gw = eb.envs.gridworld(n=n, actions=A_GRID, slip=SLIP, gamma=GAMMA)
    goal = np.array([3 * (n - 1) // 4, (n - 1) // 4], dtype=float)
    return Problem(gw.mdp, eb.GaussianGoalReward(gw.coords, A_GRID, sigma=1.0).value(goal))


# -- measurements: name -> (factory of the timed callable, class, cap) ---------
class Skip(Exception):
    """A measurement not taken: the time budget is spent, or what it needs is missing."""


class Bench:
    """Builds the problems and takes each measurement once (memoized by name).

    A measurement is ``(seconds, result, complete)``; a "big" one that hits its
    cap (or the end of the budget) is ``(cap, None, False)``: a lower bound."""

    def __init__(self, size, budget):
        self.cfg, self.budget = SIZES[size], budget
        self.t0 = t0 = time.perf_counter()
        self.p = {"dense": dense_problem(self.cfg["dense_S"]), "grid": grid_problem(self.cfg["grid_n"])}
        self.p["grid999"] = Problem(self.p["grid"].mdp.replace(gamma=0.999), self.p["grid"].r)
        self.p["small"] = grid_problem(45)  # S = 2025: below DENSE_LU_MAX_STATES, solved by sparse LU
        self.p["periodic"] = periodic_problem()
        self.qe = {name: self.p[name].qe() for name in ("dense", "grid")}
        self.setup_s = time.perf_counter() - t0
        self.memo, self.log, self.notes = {}, {}, {}
        self.warm_up()

    def warm_up(self):
        """Compile / load every kernel on small problems of the same kinds."""
        small = {"dense": dense_problem(self.cfg["warm_S"]), "grid": grid_problem(self.cfg["warm_n"])}
        for p in small.values():
            for tau in (0.0, TAU):
                for method in ("auto", "policy_iteration"):
                    sol = eb.solve(p.mdp, p.r, tau, method=method, tol=TOL)
            eb.evaluate(p.mdp, p.r, sol.pi, tau=TAU)
            p.qe().solve(method="modified_policy_iteration", epsilon=QE_EPSILON, max_iter=QE_MAX_ITER)

    def get(self, name):
        """The measurement ``(seconds, result, complete)``; raises Skip past the budget."""
        if name not in self.memo:
            make, cls, cap = MEASURES[name]
            fn = make(self)  # may take the measurements it depends on first
            k = self.cfg["k_" + cls]
            if cls != "big":
                self.memo[name] = (*best_of(fn, k, self_timed=name == "cold_process"), True)
            else:  # warmed up on small problems (warm_up), not by a second full-size call
                cap = min(cap, self.budget - (time.perf_counter() - self.t0))
                if cap <= 0:
                    raise Skip(f"{name} not run: past the {self.budget:.0f} s budget")
                try:
                    with deadline(cap) as alarm:
                        self.memo[name] = (*best_of(fn, k, warmup=False), True)
                except Exception:
                    if not alarm["fired"]:
                        raise
                    self.memo[name] = (cap, None, False)
            t, _, done = self.memo[name]
            self.log[name] = dict(seconds=t, complete=done, k=k,
                                  warmup="small problem" if cls == "big" else "same call")
        return self.memo[name]

    def paired(self, ours, peer):
        """(ours [s], peer [s], ratios) of two cheap measurements taken in turn:
        PAIRED_ROUNDS rounds of best of k calls of each side (after a warm-up call
        and a pause), the side first alternating between rounds: the rounds'
        ratios, and the medians of each side's bests.  The row takes the median
        ratio: the machine's memory bandwidth drifts by tens of percent within
        minutes, and a ratio taken within a round sees both sides at the same
        bandwidth."""
        fns, k = {name: MEASURES[name][0](self) for name in (ours, peer)}, self.cfg["k_cheap"]
        best = {ours: [], peer: []}
        for i in range(PAIRED_ROUNDS):
            for name in ((peer, ours) if i % 2 == 0 else (ours, peer)):
                time.sleep(PAUSE_S)
                best[name].append(best_of(fns[name], k)[0])
        ratios = np.divide(best[ours], best[peer])
        self.log[f"{ours} / {peer}"] = dict(rounds=PAIRED_ROUNDS, k=k, pause_s=PAUSE_S, ours_s=best[ours],
                                            peer_s=best[peer], ratios=ratios.tolist())
        return float(np.median(best[ours])), float(np.median(best[peer])), ratios

    def result(self, name):
        """The measurement's result; None when it timed out or was skipped."""
        try:
            return self.get(name)[1]
        except Skip:
            return None

    def vstar(self, prob):
        """Hard optimal V* (QuantEcon's, else ours), where the sweeps are timed."""
        out = self.result(f"qe_mpi_{prob}")
        if out is not None:
            return out.v
        out = self.result(f"solve_{prob}_hard")
        if out is not None:
            return out.V
        raise Skip("no V*: both hard solves timed out")


def our_sweep(prob, tau):
    def make(b):
        p, V = b.p[prob], b.vstar(prob)
        Q, TV = np.empty_like(p.r), np.empty(p.mdp.S)
        return lambda: sweep(p.mdp, p.r, V, tau, Q, TV)
    return make, "cheap", None


def numpy_matvec(b):
    p, V = b.p["dense"], b.vstar("dense")
    Pmat = p.mdp.P.reshape(-1, p.mdp.S)  # a view
    return lambda: Pmat @ V


def scipy_sweep(b):
    p, V = b.p["grid"], b.vstar("grid")
    P, r, g, S, A = p.mdp.P, p.r, p.mdp.gamma, p.mdp.S, p.mdp.A
    return lambda: (r + g * (P @ V).reshape(S, A)).max(1)


def qe_bellman(b):
    ddp, V = b.qe["grid"], b.vstar("grid")
    Tv = np.empty(ddp.num_states)
    return lambda: ddp.bellman_operator(V, Tv=Tv)


def our_solve(prob, tau, method, cls, cap=None):
    def make(b):
        p = b.p[prob]
        return lambda: eb.solve(p.mdp, p.r, tau, method=method, tol=TOL)
    return make, cls, cap


def periodic_problem():
    """The 2-state periodic chain 0 -> 1 -> 0 (A = 1) at gamma = 0.999, reward 1 in state 0:
    value iteration's span contracts only at rate gamma (about 26,000 sweeps to
    its default tolerance), so the time is the per-sweep overhead of a tiny
    problem (kernel launches, Python-level work), which small problems avoid:
    one Numba thread and a compiled value-iteration loop
    (``_kernels.SERIAL_MAX_WORK``)."""
    P = np.zeros((2, 1, 2))
    P[0, 0, 1] = P[1, 0, 0] = 1.0
    return Problem(eb.TabularMDP(P, 0.999), np.array([[1.0], [0.0]]))


def periodic_solve(method):
    def make(b):
        p = b.p["periodic"]
        return lambda: eb.solve(p.mdp, p.r, method=method)  # the default tolerance
    return make, "mid", None


def qe_mpi(prob, cls, cap=None):
    def make(b):
        ddp = b.qe[prob]
        return lambda: ddp.solve(method="modified_policy_iteration", epsilon=QE_EPSILON, max_iter=QE_MAX_ITER)
    return make, cls, cap


def evaluate_soft(b):
    """Evaluation of the soft-optimal policy; should that solve time out, of the softmax
    policy of Q at the hard V* (the same sparsity and nearly the same linear system)."""
    p, sol = b.p["grid"], b.result("solve_grid_soft")
    if sol is not None:
        pi = sol.pi
    else:
        pi = eb.policy_from_q(eb.q_values(p.mdp, p.r, b.vstar("grid")), TAU)
        b.notes["evaluate_grid_soft"] = "pi = softmax(Q(V*_hard) / tau): the soft solve timed out"

    def run():  # cold: the policy matrix and its multigrid are built in every call
        clear_policy_systems()
        return eb.evaluate(p.mdp, p.r, pi, tau=TAU)
    return run


def evaluate_small(b):
    """Cold ``evaluate`` on the small sparse grid: the sparse LU path (S <= 3000)."""
    p = b.p["small"]
    pi = eb.policy_from_q(eb.q_values(p.mdp, p.r, np.zeros(p.mdp.S)), TAU)

    def run():
        clear_policy_systems()
        return eb.evaluate(p.mdp, p.r, pi, tau=TAU)
    return run


def dense_lu_small(b):
    """The same evaluation by a dense LU of I - gamma P_pi (the former path below 3000 states)."""
    p = b.p["small"]
    pi = eb.policy_from_q(eb.q_values(p.mdp, p.r, np.zeros(p.mdp.S)), TAU)
    b_pi = eb.evaluation.policy_reward(p.r, pi, TAU)
    S = p.mdp.S

    def run():  # as the former path: P_pi in CSR, made dense, factorized
        ptr, idx, val = eb.evaluation.PolicySystem(p.mdp, pi, factor=False)._csr
        M = np.eye(S) - p.mdp.gamma * scipy.sparse.csr_matrix((val, idx, ptr), shape=(S, S)).toarray()
        return scipy.linalg.lu_solve(scipy.linalg.lu_factor(M, check_finite=False), b_pi, check_finite=False)
    return run


def cold_process(b):
    def run():
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", COLD_CODE], cwd=ROOT, capture_output=True,
                             text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        return float(out.stdout.split()[-1]), time.perf_counter() - t0  # (in-process time, wall time)
    return run


# caps (seconds) bound each big measurement; the budget bounds them all together
MEASURES = {
    "sweep_dense_hard": our_sweep("dense", 0.0),
    "sweep_dense_soft": our_sweep("dense", TAU),
    "numpy_matvec": (numpy_matvec, "cheap", None),
    "sweep_grid_hard": our_sweep("grid", 0.0),
    "sweep_grid_soft": our_sweep("grid", TAU),
    "sweep_grid_soft_1e-3": our_sweep("grid", 1e-3),
    "qe_bellman_grid": (qe_bellman, "cheap", None),
    "scipy_sweep_grid": (scipy_sweep, "cheap", None),
    "qe_mpi_grid": qe_mpi("grid", "big", 240.0),
    "solve_grid_hard": our_solve("grid", 0.0, "auto", "big", 120.0),
    "solve_grid_soft": our_solve("grid", TAU, "auto", "big", 120.0),
    "solve_grid_hard_pi": our_solve("grid", 0.0, "policy_iteration", "big", 90.0),
    "qe_mpi_dense": qe_mpi("dense", "mid"),
    "solve_dense_hard": our_solve("dense", 0.0, "auto", "mid"),
    "solve_dense_hard_pi": our_solve("dense", 0.0, "policy_iteration", "mid"),
    "solve_dense_soft": our_solve("dense", TAU, "auto", "mid"),
    "solve_grid999_soft": our_solve("grid999", TAU, "auto", "big", 120.0),
    "evaluate_grid_soft": (evaluate_soft, "mid", None),
    "cold_process": (cold_process, "mid", None),
    "evaluate_small": (evaluate_small, "cheap", None),
    "dense_lu_small": (dense_lu_small, "cheap", None),
    "solve_periodic_vi": periodic_solve("value_iteration"),
    "solve_periodic_mpi": periodic_solve("modified_policy_iteration"),
}


# -- rows: (name, ours, peer, target) -------------------------------------------
@dataclass(frozen=True)
class Target:
    limit: float
    strict: bool = False  # "<" instead of "<="

    def ok(self, x):
        return x < self.limit if self.strict else x <= self.limit

    def __str__(self):
        return f"{'<' if self.strict else '<='} {self.limit:.3g}"


ROWS = [
    ("dense sweep hard vs numpy P@V", "sweep_dense_hard", "numpy_matvec", Target(1.05)),
    ("dense sweep soft vs our hard", "sweep_dense_soft", "sweep_dense_hard", Target(1.1)),
    ("grid sweep hard vs QuantEcon T", "sweep_grid_hard", "qe_bellman_grid", Target(1 / 3.5)),
    ("grid sweep hard vs scipy CSR", "sweep_grid_hard", "scipy_sweep_grid", Target(1 / 5)),
    ("grid sweep soft 0.1 vs our hard", "sweep_grid_soft", "sweep_grid_hard", Target(1.5)),
    ("grid sweep soft 1e-3 vs our hard", "sweep_grid_soft_1e-3", "sweep_grid_hard", Target(1.5)),
    ("grid solve hard auto vs QE MPI", "solve_grid_hard", "qe_mpi_grid", Target(0.5)),
    ("grid solve soft 0.1 vs our hard", "solve_grid_soft", "solve_grid_hard", Target(1.5)),
    ("dense solve hard auto vs QE MPI", "solve_dense_hard", "qe_mpi_dense", Target(1.0)),
    ("dense solve hard PI vs QE MPI", "solve_dense_hard_pi", "qe_mpi_dense", None),
    ("dense solve soft 0.1 vs our hard", "solve_dense_soft", "solve_dense_hard", Target(1.5)),
    ("grid evaluate soft pi [s]", "evaluate_grid_soft", None, Target(1.5)),
    ("grid g=0.999 solve soft 0.1 [s]", "solve_grid999_soft", None, Target(60.0, strict=True)),
    ("second process import+solve [s]", "cold_process", None, Target(1.0, strict=True)),
    ("sparse evaluate 45x45 vs dense LU", "evaluate_small", "dense_lu_small", None),
    # per-sweep overhead of a tiny problem: 2 states, gamma = 0.999 (were 11 s and more)
    ("periodic S=2 g=0.999 VI [s]", "solve_periodic_vi", None, Target(0.5, strict=True)),
    ("periodic S=2 g=0.999 MPI [s]", "solve_periodic_mpi", None, Target(0.5, strict=True)),
    # last: informative only and as slow as the auto solve (auto hands the grid to PI anyway)
    ("grid solve hard PI vs QE MPI", "solve_grid_hard_pi", "qe_mpi_grid", None),
]


def note(b, name):
    """What a measurement's result says besides its time (method, iterations, agreement)."""
    if name not in b.memo:
        return ""
    t, out, done = b.memo[name]
    text = b.notes.get(name, "")
    if not done:
        return f"stopped at the {t:.3g} s cap" + (f"; {text}" if text else "")
    if isinstance(out, eb.SolveResult):
        text = f"{out.method}, {out.iterations} it, bound {out.error_bound:.1e}"
        qe = b.memo.get("qe_mpi_" + name.split("_")[1])
        if out.tau == 0.0 and qe and qe[2]:
            # both answers are certified to 1e-8, so they must agree to 2e-8 (+ rounding)
            err = float(np.abs(out.V - qe[1].v).max())
            text += f", |V - v_QE| = {err:.1e} ({'agrees' if err <= 2.02 * TOL else 'DISAGREES'})"
    elif name.startswith("qe_mpi"):
        text = f"QE {out.num_iter} it"
    elif name == "cold_process":
        text = f"wall {out:.2f} s incl. interpreter start"
    return text


def machine():
    return _report.machine(quantecon=quantecon.__version__)


def run_row(b, title, ours, peer, target):
    """One table row as a dict.  A measurement stopped at its cap is a lower bound on
    the time, so the ratio is a lower (ours stopped) or upper (peer stopped) bound:
    enough for FAIL, resp. PASS, or else the row says "open"."""
    row = dict(name=title, ours=ours, peer=peer, target=str(target) if target else None,
               measured="ratio ours/peer" if peer else "seconds",
               ours_s=None, peer_s=None, ours_complete=None, peer_complete=None, ratio=None, bound="")
    try:
        if peer and MEASURES[ours][1] == MEASURES[peer][1] == "cheap":
            t_ours, t_peer, ratios = b.paired(ours, peer)
            value, done_ours, done_peer = float(np.median(ratios)), True, True
            rounds = f"median of {len(ratios)} rounds, {ratios.min():.3f}-{ratios.max():.3f}"
        else:
            t_ours, _, done_ours = b.get(ours)
            t_peer, _, done_peer = b.get(peer) if peer else (None, None, True)
            value, rounds = t_ours / t_peer if peer else t_ours, ""
    except Skip as skipped:
        return {**row, "result": "skip", "note": "; ".join(filter(None, (str(skipped), note(b, ours))))}
    bound = "" if done_ours == done_peer else (">" if done_peer else "<")
    row.update(ours_s=t_ours, peer_s=t_peer, ours_complete=done_ours, peer_complete=done_peer,
               ratio=value if peer and (done_ours or done_peer) else None, bound=bound)
    if target is None:
        row["result"] = "info"
    elif not (done_ours or done_peer):
        row["result"] = "open"
    else:
        ok = target.ok(value)
        decided = (done_ours and done_peer) or (bound == ">" and not ok) or (bound == "<" and ok)
        row["result"] = ("PASS" if ok else "FAIL") if decided else "open"
    notes = [rounds, note(b, ours)] + ([f"peer: {note(b, peer)}"] if peer and peer.startswith("qe_mpi") else [])
    row["note"] = "; ".join(filter(None, notes))
    return row


def fmt(x, width, digits, prefix=""):
    return "-".rjust(width) if x is None else f"{prefix}{x:.{digits}f}".rjust(width)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="reduced sizes, to check the script")
    ap.add_argument("--json", type=Path, help="write the table and the machine description here")
    ap.add_argument("--budget", type=float, help="seconds after which slow measurements are skipped "
                    f"(default {BUDGET_S['full']:.0f} full, {BUDGET_S['quick']:.0f} quick)")
    args = ap.parse_args(argv)
    size = "quick" if args.quick else "full"
    load0 = os.getloadavg() if hasattr(os, "getloadavg") else None
    if load0 and load0[0] > 0.5:
        print(f"warning: load average {load0[0]:.2f} before start; other processes will distort the timings")
    b = Bench(size, BUDGET_S[size] if args.budget is None else args.budget)
    cfg = b.cfg
    print(f"{size}: dense S={cfg['dense_S']} A={A_DENSE}; grid {cfg['grid_n']}x{cfg['grid_n']} "
          f"(S={cfg['grid_n'] ** 2}, A={A_GRID}); gamma={GAMMA}, tol={TOL}; setup {b.setup_s:.1f} s")
    head = f"{'name':34} {'ours [s]':>10} {'peer [s]':>10} {'ratio':>7} {'target':>9}  pass  note"
    print(head + "\n" + "-" * len(head))
    rows = []
    for spec in ROWS:
        row = run_row(b, *spec)
        rows.append(row)
        stop = {True: "", False: ">", None: ""}
        print(f"{row['name']:34} {fmt(row['ours_s'], 10, 4, stop[row['ours_complete']])} "
              f"{fmt(row['peer_s'], 10, 4, stop[row['peer_complete']])} {fmt(row['ratio'], 7, 3, row['bound'])} "
              f"{row['target'] or '-':>9}  {row['result']:4}  {row['note']}", flush=True)
    total = time.perf_counter() - b.t0
    count = {v: sum(r["result"] == v for r in rows) for v in ("PASS", "FAIL", "info", "open", "skip")}
    print(", ".join(f"{n} {v}" for v, n in count.items()) + f"; total {total:.0f} s")
    if args.json:
        report = dict(size=size, config={**cfg, "A_dense": A_DENSE, "A_grid": A_GRID, "slip": SLIP,
                                         "gamma": GAMMA, "tol": TOL, "tau": TAU, "qe_epsilon": QE_EPSILON,
                                         "budget_s": b.budget},
                      machine={**machine(), "load_average_at_start": load0}, setup_s=b.setup_s,
                      total_s=total, rows=rows, measurements=b.log)
        _report.write_report(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
