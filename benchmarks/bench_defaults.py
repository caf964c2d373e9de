#!/usr/bin/env python
"""The default call of the actor-critic over random problems: does it make things better?

    python benchmarks/bench_defaults.py                 # 30 problems, 2 * 10^5 steps, 2 workers
    python benchmarks/bench_defaults.py --n 20 --first 0 --workers 2
    python benchmarks/bench_defaults.py --actor pg      # the softmax-PG actor, other defaults resolved
    python benchmarks/bench_defaults.py --json out.json
    python benchmarks/bench_defaults.py --exact 1011,1022,1029   # exact=True, fixed tau, lam = 200
    python benchmarks/bench_defaults.py --tau-decay 0.2          # tau decaying faster than the default

For each problem of :func:`exactbilevel.testing.problems.defaults_family` (seeds
``first .. first + n - 1``; the defaults were tuned on seeds 0..29, so the default
``--first 1000`` draws problems they have not seen) it runs
``eb.run(problem, eb.ActorCriticConfig(steps=steps), seed=0)`` -- every schedule resolved
from the problem (``eb.defaults``) -- and judges the end of the run by
:func:`exactbilevel.testing.problems.judge_run`: Phi_tau at the final x below its value at
x0, x off the box, residual_phi below 10 % of J* - J(uniform).  One line per problem, the
success fraction at the end.  This is a benchmark of the defaults' quality, not of speed.

``--exact SEEDS``: for each problem, ``exact=True`` with the default step sizes, tau fixed at
the default tau_0 and lam = 200 fixed, 2 * 10^4 steps, against the stationary point x* of
Phi_tau that exact hyper-gradient descent reaches (steps 0.05 L / max(1, |g|) until the step
is below 1e-10): it prints |x_0 - x*| and |x_K - x*|, to be compared with C / lam.
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
from exactbilevel.testing.problems import defaults_family, judge_run  # noqa: E402


def one(seed, steps, actor, tau_decay=None):
    fam = defaults_family(seed)
    kw = {} if actor is None else dict(actor=actor)
    if tau_decay is not None:  # the default tau_0 with another decay exponent
        tau0 = eb.defaults.TAU_C * eb.defaults.problem_scales(fam.problem).reward_ref
        kw["tau"] = eb.schedules.power(tau0, tau_decay)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", eb.ScheduleWarning)
        trace = eb.run(fam.problem, eb.ActorCriticConfig(steps=steps, diagnostics=False, log_every=steps, **kw),
                       seed=0, metrics={"phi": lambda st: st.phi})
    seconds = time.perf_counter() - t0
    j = judge_run(fam.problem, trace["x"][-1], trace["phi"][-1], float(trace["tau"][-1]))
    return dict(seed=seed, problem=fam.describe(), seconds=seconds, **j.as_dict())


def exact_one(seed, steps=20_000, lam=200.0):
    fam = defaults_family(seed)
    p = fam.problem
    tau = eb.defaults.TAU_C * eb.defaults.problem_scales(p).reward_ref
    width = float(np.linalg.norm(p.hi - p.lo))
    x = np.array(p.x0)
    for _ in range(20_000):
        g = eb.hypergradient(p.mdp, p.reward, p.objective, x, tau)
        x_new = p.project(x - 0.05 * width / max(1.0, float(np.linalg.norm(g))) * g)
        if np.linalg.norm(x_new - x) < 1e-10:
            break
        x = x_new
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", eb.ScheduleWarning)  # fixed tau and lam, on purpose
        tr = eb.run(p, eb.ActorCriticConfig(steps=steps, tau=tau, lam=lam, exact=True, log_every=steps,
                                            diagnostics=False))
    return dict(seed=seed, problem=fam.describe(), start=float(np.linalg.norm(p.x0 - x)),
                end=float(np.linalg.norm(tr["x"][-1] - x)), seconds=time.perf_counter() - t0, lam=lam)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--first", type=int, default=1000)
    ap.add_argument("--steps", type=int, default=200_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--actor", choices=("pg", "npg"), default=None)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--exact", type=str, default=None, help="comma-separated seeds: the exact-mode check")
    ap.add_argument("--tau-decay", type=float, default=None,
                    help="the default tau_0 with this decay exponent (default: the resolved 0.05)")
    args = ap.parse_args(argv)
    from joblib import Parallel, delayed

    if args.exact:
        rows = Parallel(n_jobs=args.workers)(delayed(exact_one)(int(s)) for s in args.exact.split(","))
        for r in rows:
            print(f"seed {r['seed']:5d}  {r['problem']}  |x0 - x*| {r['start']:.3g}  after 2e4 exact steps "
                  f"|x - x*| {r['end']:.3g} = {r['end'] * r['lam']:.3g} / lam  ({r['seconds']:.0f} s)")
        return 0

    t0 = time.perf_counter()
    rows = Parallel(n_jobs=args.workers)(delayed(one)(s, args.steps, args.actor, args.tau_decay)
                                         for s in range(args.first, args.first + args.n))
    for r in rows:
        print(f"seed {r['seed']:5d}  {r['problem']}  Phi {r['phi_x0']:+.4f} -> {r['phi_end']:+.4f}  "
              f"on box {'yes' if r['on_box'] else 'no '}  residual {100 * r['relative_residual']:6.2f} %  "
              f"min pi {r['min_pi']:.1e}  {'success' if r['success'] else 'FAILURE'}  ({r['seconds']:.1f} s)")
    wins = sum(r["success"] for r in rows)
    print(f"success: {wins} of {len(rows)} ({100 * wins / len(rows):.0f} %), {args.steps} steps, "
          f"actor {args.actor or 'default'}, tau decay {args.tau_decay or 'default'}; "
          f"{time.perf_counter() - t0:.0f} s on {args.workers} workers")
    if args.json:
        args.json.write_text(json.dumps(dict(args=vars(args) | {"json": str(args.json)}, rows=rows), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
