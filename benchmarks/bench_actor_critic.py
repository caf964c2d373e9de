#!/usr/bin/env python
"""Speed of the compiled actor-critic loop (docs/theory.rst, "The algorithm") and the cost of its diagnostics.

    python benchmarks/bench_actor_critic.py            # 10^6 steps (about a minute on 2 cores)
    python benchmarks/bench_actor_critic.py --quick    # 10^5 steps
    python benchmarks/bench_actor_critic.py --json out.json

Problem: the 10 x 10 GridWorld of docs/theory.rst, "GridWorld goal position" (5 actions, slip 0.1, gamma 0.95), Gaussian goal
reward (sigma 1), cost -1 on a target cell and +1 on a hazard cell, kappa 0.01, the default
schedules of ``ActorCriticConfig``, i.i.d. sampling.  Rows:

* environment transitions per second of the compiled loop (one thread: the loop is serial),
  diagnostics off;
* the same loop written plainly (``exactbilevel.testing.reference.actor_critic_steps_ref``,
  Python loops over steps and samples with numpy inside), run in this process on the first
  2000 steps: the ratio is the time per step, peer / ours;
* the run with diagnostics at 100 logging points against the run without: the added share.

Times: ``time.perf_counter``; the compiled loop is warmed up on a short run first.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmark the checkout, installed or not

import exactbilevel as eb  # noqa: E402
from exactbilevel.actor_critic import ActorCriticState  # noqa: E402
from exactbilevel.testing import reference as ref  # noqa: E402


def problem():
    grid = eb.envs.gridworld(n=10, targets=[(0, 9)], hazards=[(5, 5)])
    mdp = grid.mdp
    reward = eb.GaussianGoalReward(grid.coords, mdp.A, sigma=1.0)
    cost = np.repeat(grid.cost()[:, None], mdp.A, axis=1)
    return eb.BilevelProblem(mdp, reward, eb.OccupancyObjective(mdp, cost, kappa=0.01), np.array([4.0, 4.0]),
                             bounds=(0, 9))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    steps = 10**5 if args.quick else 10**6
    prob = problem()
    warnings.simplefilter("ignore", eb.ScheduleWarning)
    eb.run(prob, eb.ActorCriticConfig(steps=2000, log_every=1000), seed=0)  # compile / load caches

    t0 = time.perf_counter()
    plain = eb.run(prob, eb.ActorCriticConfig(steps=steps, log_every=steps // 100, diagnostics=False), seed=0)
    t_plain = time.perf_counter() - t0
    rate = plain["samples"][-1] / t_plain

    t0 = time.perf_counter()
    eb.run(prob, eb.ActorCriticConfig(steps=steps, log_every=steps // 100), seed=0)
    t_diag = time.perf_counter() - t0

    n_ref = 2000
    cfg = eb.ActorCriticConfig(steps=steps)
    sched = cfg.schedule_values(np.arange(n_ref))
    st = ActorCriticState.initial(prob)
    state = {n: np.array(getattr(st, n)) for n in ("x", "theta", "phi", "Qtheta", "Qphi", "Qc")}
    obj = prob.objective
    t0 = time.perf_counter()
    ref.actor_critic_steps_ref(ref.dense_kernel(prob.mdp), prob.mdp.rho, prob.mdp.gamma, prob.reward, obj.cost,
                               obj.kappa, np.zeros(2), prob.lo, prob.hi, sched, state, "iid", [0, 0], 1, False,
                               np.random.default_rng(0))
    t_ref = (time.perf_counter() - t0) / n_ref
    t_ours = t_plain / steps

    rows = [
        ("compiled loop, million transitions / s", rate / 1e6, ">= 2", rate >= 2e6),
        ("plain numpy loop / compiled loop (time per step)", t_ref / t_ours, ">= 30", t_ref / t_ours >= 30),
        ("diagnostics at 100 points: added share of run time", t_diag / t_plain - 1, "<= 0.2", t_diag / t_plain - 1 <= 0.2),
    ]
    print(f"{steps} steps: {t_plain:.2f} s without diagnostics, {t_diag:.2f} s with; "
          f"plain loop {t_ref * 1e6:.0f} us / step, compiled {t_ours * 1e6:.2f} us / step")
    for name, value, target, ok in rows:
        print(f"{name:55s} {value:10.3f}  target {target:7s} {'PASS' if ok else 'FAIL'}")
    if args.json:
        args.json.write_text(json.dumps([dict(name=n, value=v, target=t, passed=bool(ok)) for n, v, t, ok in rows],
                                        indent=2))


if __name__ == "__main__":
    main()
