"""The ``exactbilevel`` command (also ``python -m exactbilevel``).

Subcommands, each with ``--help``:

``run EXPERIMENT [--config FILE.toml] [--seeds N] [--steps K] [--out DIR] [--workers W]``
    run an experiment of :mod:`exactbilevel.experiments`, write its results folder
    (traces, summary, figures) and print the summary table;
``sweep EXPERIMENT --grid GRID.toml [--config FILE.toml] [--out DIR] [--workers W] [--scheduler ADDRESS]``
    run an experiment for every combination of the grid's values (one results folder
    each), on this machine or on a Dask cluster;
``plot RESULTS_DIR``
    redraw the figures of a results folder;
``list``
    the experiments and their descriptions;
``config EXPERIMENT``
    print the default configuration as TOML (a starting point for ``--config``);
``solve [--n N] [--gamma G] [--tol T]``
    solve the N x N GridWorld exactly at tau = 0 and 0.1 and print V*, the greedy
    policy as arrows, the certified error bound, the residual and the time.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def _solve(args):
    from . import GaussianGoalReward, envs, solve

    grid = envs.gridworld(n=args.n, gamma=args.gamma)
    goal = np.array([args.n - 1.0, args.n - 1.0])
    corner = args.n - 1
    r = GaussianGoalReward(grid.coords, grid.mdp.A, sigma=1.0).value(goal)
    print(f"GridWorld {args.n} x {args.n}, slip 0.1, gamma {args.gamma}, reward bump at cell ({corner}, {corner})")
    np.set_printoptions(precision=2, suppress=True, linewidth=120)
    for tau in (0.0, 0.1):
        t0 = time.perf_counter()
        sol = solve(grid.mdp, r, tau=tau, tol=args.tol)
        dt = time.perf_counter() - t0
        print(f"\ntau = {tau}: method {sol.method}, {sol.iterations} iterations, "
              f"residual {sol.residual:.2e}, certified |V - V*| <= {sol.error_bound:.2e}, {dt * 1e3:.1f} ms")
        print("V* =")
        print(sol.V.reshape(args.n, args.n))
        print("greedy policy:")
        print(grid.arrows(sol.pi))
    print("\n(times include Numba compilation on the first run after an install; later runs load the cache)")
    return 0


def _experiment(name, running=False):
    """``(module, configuration class, description)``; SystemExit for an unknown name or, when
    ``running``, for a missing optional dependency (the module's ``missing()`` says which)."""
    from .experiments import EXPERIMENTS

    if name not in EXPERIMENTS:
        raise SystemExit(f"exactbilevel: unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    problem = getattr(EXPERIMENTS[name][0], "missing", lambda: None)() if running else None
    if problem:
        raise SystemExit(f"exactbilevel: {name}: {problem}")
    return EXPERIMENTS[name]


def _run(args):
    from .experiments.config import ConfigError, load

    module, cls, _ = _experiment(args.experiment, running=True)
    try:
        cfg = load(cls, args.config, seeds=args.seeds, steps=args.steps)
    except ConfigError as exc:
        raise SystemExit(f"exactbilevel: bad configuration: {exc}") from None
    out = Path(args.out or f"results/{args.experiment}")
    t0 = time.perf_counter()
    rows = module.run_experiment(cfg, out, workers=args.workers, progress=not args.quiet)
    print(module.table(rows))
    print(f"\nresults, traces and figures in {out}/ ({time.perf_counter() - t0:.0f} s)")
    return 0


def _sweep(args):
    from .experiments.config import ConfigError
    from .experiments.sweep import sweep

    module, cls, _ = _experiment(args.experiment, running=True)
    out = Path(args.out or f"results/{args.experiment}-sweep")
    try:
        results = sweep(module, cls, args.grid, out, base=args.config, workers=args.workers,
                        scheduler=args.scheduler, progress=not args.quiet)
    except ConfigError as exc:
        raise SystemExit(f"exactbilevel: bad configuration: {exc}") from None
    for label, rows in results.items():
        print(f"\n== {label}\n{module.table(rows)}")
    print(f"\nresults in {out}/")
    return 0


def _plot(args):
    import json

    out = Path(args.results)
    summary = out / "summary.json"
    if not summary.exists():
        raise SystemExit(f"exactbilevel: {out} is not a results folder (no summary.json)")
    name = json.loads(summary.read_text()).get("experiment", "gridworld-goal")
    _experiment(name)[0].figures(out)
    print(f"figures written in {out}/")
    return 0


def _list(args):
    from .experiments import EXPERIMENTS

    for name, (_, _, text) in EXPERIMENTS.items():
        print(f"{name:20s} {text}")
    return 0


def _config(args):
    from .experiments.config import dumps, load

    _, cls, _ = _experiment(args.experiment)
    sys.stdout.write(dumps(load(cls)))
    return 0


def parser():
    p = argparse.ArgumentParser(prog="exactbilevel", description="Bi-level RL on tabular MDPs against exact ground truth.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run an experiment and write its results folder")
    r.add_argument("experiment", help="experiment name (see `exactbilevel list`)")
    r.add_argument("--config", help="TOML file overriding the default configuration")
    r.add_argument("--seeds", type=int, help="seeds per sampled method")
    r.add_argument("--steps", type=int, help="steps per run")
    r.add_argument("--out", help="results folder (default results/EXPERIMENT)")
    r.add_argument("--workers", type=int, default=2, help="parallel runs (joblib; default 2)")
    r.add_argument("--quiet", action="store_true", help="no progress bar")
    r.set_defaults(func=_run)
    sw = sub.add_parser("sweep", help="run an experiment over a grid of configuration values")
    sw.add_argument("experiment", help="experiment name (see `exactbilevel list`)")
    sw.add_argument("--grid", required=True, help="TOML file: key = [values, ...] for each swept key")
    sw.add_argument("--config", help="TOML file with the base configuration")
    sw.add_argument("--out", help="results folder (default results/EXPERIMENT-sweep)")
    sw.add_argument("--workers", type=int, default=2, help="parallel runs on this machine (default 2)")
    sw.add_argument("--scheduler", help="address of a Dask scheduler (tcp://host:8786) to run on instead")
    sw.add_argument("--quiet", action="store_true", help="no progress bar")
    sw.set_defaults(func=_sweep)
    pl = sub.add_parser("plot", help="redraw the figures of a results folder")
    pl.add_argument("results", help="results folder written by `exactbilevel run`")
    pl.set_defaults(func=_plot)
    ls = sub.add_parser("list", help="list the experiments")
    ls.set_defaults(func=_list)
    c = sub.add_parser("config", help="print an experiment's default configuration as TOML")
    c.add_argument("experiment")
    c.set_defaults(func=_config)
    s = sub.add_parser("solve", help="solve the N x N GridWorld exactly and print V* and the policy")
    s.add_argument("--n", type=int, default=10, help="side of the grid (default 10)")
    s.add_argument("--gamma", type=float, default=0.95, help="discount (default 0.95)")
    s.add_argument("--tol", type=float, default=None, help="certified tolerance on V (default max(1e-10, 2 x float64 floor))")
    s.set_defaults(func=_solve)
    return p


def main(argv=None):
    args = parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
