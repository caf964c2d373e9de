#!/usr/bin/env python
"""Speed of exact hyper-gradients against one exact policy evaluation on the same MDP.

    python benchmarks/bench_gradients.py            # full size (a few minutes on 2 cores)
    python benchmarks/bench_gradients.py --quick    # reduced sizes, seconds
    python benchmarks/bench_gradients.py --json out.json

Problems (full size; --quick shrinks them):

* GridWorld 1000 x 1000 (S = 10^6, A = 4, slip 0.1, CSR, gamma = 0.99), the
  Gaussian goal reward of docs/theory.rst, "GridWorld goal position" (d = 2, sigma = 1) at x = (500.3, 499.6),
  f = <nu, u> + 0.05/2 |x|^2 with u = -1 on a target cell and +1 on a hazard
  cell, tau = 0.1;
* dense random MDP S = 2000, A = 8, gamma = 0.99, linear reward with d = 100
  standard-normal features, the same kind of objective with a random cost.

"From a solved lower level": the soft solve is done first and passed as
``solution=``; the hyper-gradient is then timed (objective's grad_pi, the
policy system and its solves, the Jacobian contraction).  The peer is
``eb.evaluate(mdp, r, pi*, tau)``, one exact policy evaluation of the same
policy.  Both are timed cold: the policy systems that gradients, objectives and
evaluations share (``evaluation.policy_system``) are cleared before every call,
so each call builds its policy matrix and factorization or multigrid.  Best
of k = 3 rounds that call the evaluation and the hyper-gradient in turn (so
both see the same state of the machine), after a warm-up call on a small
problem of the same kind (compilation excluded): a single cold call at S =
10^6 varies by up to 60 % on the 2-core VM of the README, and whole runs by
20-40 % (after bench_solvers, best of 3 of the grid hyper-gradient took 2.2,
2.7 and 2.9 s).  Ratios = hyper-gradient time / evaluation time.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmark the checkout, installed or not

import exactbilevel as eb  # noqa: E402
from exactbilevel.evaluation import clear_policy_systems  # noqa: E402

SIZES = {
    "full": dict(grid_n=1000, dense_S=2000, k_grid=3, k_dense=3),
    "quick": dict(grid_n=100, dense_S=300, k_grid=3, k_dense=3),
}
GAMMA, TAU, TOL = 0.99, 0.1, 1e-8


def best_of(fns, k):
    """Best time of each of ``fns`` over k rounds that call them in turn, each call
    cold (the shared policy systems are cleared before it): the hyper-gradient and
    the evaluation it is divided by see the same state of the machine."""
    best = [np.inf] * len(fns)
    for _ in range(k):
        for i, fn in enumerate(fns):
            clear_policy_systems()
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def grid_problem(n):
    grid = eb.envs.gridworld(n=n, slip=0.1, gamma=GAMMA, actions=4, sparse=True,
                             targets=[(n // 4, n // 4)], hazards=[(3 * n // 4, n // 2)])
    mdp = grid.mdp
    reward = eb.GaussianGoalReward(grid.coords, mdp.A, sigma=1.0)
    cost = np.repeat(grid.cost()[:, None], mdp.A, axis=1)
    obj = eb.OccupancyObjective(mdp, cost, kappa=0.05)
    return mdp, reward, obj, np.array([n / 2 + 0.3, n / 2 - 0.4])


def dense_problem(S, A=8, d=100):
    mdp = eb.envs.random_mdp(S, A, gamma=GAMMA, seed=0)
    rng = np.random.default_rng(0)
    reward = eb.LinearReward(rng.standard_normal((S, A, d)) / np.sqrt(d))
    obj = eb.OccupancyObjective(mdp, rng.uniform(-1, 1, (S, A)), kappa=0.05)
    return mdp, reward, obj, rng.uniform(-1, 1, d)


def measure(problem, k, forms):
    mdp, reward, obj, x = problem
    r = reward.value(x)
    t0 = time.perf_counter()
    sol = eb.solve(mdp, r, TAU, tol=TOL)
    t_solve = time.perf_counter() - t0
    fns = [lambda: eb.evaluate(mdp, r, sol.pi, TAU)]
    fns += [lambda form=form: eb.hypergradient(mdp, reward, obj, x, TAU, form=form, solution=sol) for form in forms]
    times = best_of(fns, k)
    return {"S": mdp.S, "d": x.size, "solve": t_solve, **dict(zip(("evaluate", *forms), times))}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    size = SIZES["quick" if args.quick else "full"]

    # warm-up on small problems that take the same code paths (S > 3000: Krylov)
    measure(grid_problem(60), 1, ("adjoint",))
    measure(dense_problem(100, d=5), 1, ("adjoint", "forward"))

    rows = []
    g = measure(grid_problem(size["grid_n"]), size["k_grid"], ("adjoint",))
    rows.append(("grid hyper-gradient (adjoint) / evaluation", g["adjoint"], g["evaluate"], 2.0, g))
    rows.append(("grid hyper-gradient (adjoint) [s]", g["adjoint"], None, 3.0, g))
    dn = measure(dense_problem(size["dense_S"]), size["k_dense"], ("adjoint", "forward"))
    rows.append(("dense d=100 hyper-gradient (adjoint) / evaluation", dn["adjoint"], dn["evaluate"], 1.5, dn))
    rows.append(("dense d=100 hyper-gradient (forward) / evaluation", dn["forward"], dn["evaluate"], None, dn))

    print(f"{'measurement':52s} {'ours [s]':>10s} {'peer [s]':>10s} {'ratio':>8s} {'target':>8s}  verdict")
    table = []
    for name, ours, peer, target, info in rows:
        ratio = ours / peer if peer else ours
        verdict = "" if target is None else ("PASS" if ratio <= target else "FAIL")
        print(f"{name:52s} {ours:10.4f} {'' if peer is None else f'{peer:10.4f}':>10s} {ratio:8.3f} "
              f"{'' if target is None else f'<= {target:g}':>8s}  {verdict}")
        table.append(dict(name=name, ours=ours, peer=peer, ratio=ratio, target=target, verdict=verdict,
                          S=info["S"], d=info["d"], lower_solve=info["solve"]))
    print(f"(lower-level solves, not timed above: grid {g['solve']:.1f} s, dense {dn['solve']:.2f} s)")
    if args.json:
        args.json.write_text(json.dumps(dict(rows=table, machine=platform.processor() or platform.machine(),
                                             version=eb.__version__, size="quick" if args.quick else "full"),
                                        indent=2))


if __name__ == "__main__":
    main()
