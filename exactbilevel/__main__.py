"""The ``exactbilevel`` command (also ``python -m exactbilevel``).

Subcommands, each with ``--help``:

``run EXPERIMENT [--config FILE.toml] [--seeds N] [--steps K] [--out DIR] [--workers W]``
    run an experiment of :mod:`exactbilevel.experiments`, write its results folder
    (traces, summary, figures) and print the summary table;
``sweep EXPERIMENT --grid GRID.toml [--config FILE.toml] [--out DIR] [--workers W] [--scheduler ADDRESS]``
    run an experiment for every combination of the grid's values (one results folder
    each), on this machine or on a Dask cluster;
``verify [--config FILE.toml] [--quick] [--seeds N] [--steps K] [--out DIR] [--workers W]``
    run the verification of :mod:`exactbilevel.experiments.verify` (the theorem's rates
    on well-scaled problems, fixed and decaying tau, verdicts per claim), write its
    results folder (runs, ``verdicts.json``, figures) and print the verdict table;
    ``--quick`` is the reduced version of the test suite; a rerun resumes;
``plot RESULTS_DIR``
    redraw the figures of a results folder;
``list``
    the experiments and their descriptions;
``config EXPERIMENT``
    print the default configuration as TOML (a starting point for ``--config``);
``solve [--n N] [--gamma G] [--tol T]``
    solve the N x N GridWorld exactly at tau = 0 and 0.1 and print V*, the greedy
    policy as arrows, the certified error bound, the residual and the time.

Errors: a mistake of the user (an unknown experiment, a configuration value of the
wrong type, shape or range, a path that cannot be read or written, an option out of
range) prints one line on stderr naming the option or key and what is expected, and
exits with status 2, before anything is computed where it can be checked first.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

#: Largest side accepted by ``solve --n`` (N^2 states, and the grid is printed).
MAX_SOLVE_N = 300


class UserError(SystemExit):
    """A mistake of the user: ``main`` prints ``message`` (one line) on stderr and exits with status 2.

    A SystemExit (code 2) whose ``str`` is the message."""

    def __init__(self, message):
        super().__init__(2)
        self.message = " ".join(str(message).split())  # one line

    def __str__(self):
        return self.message


def _fail(message):
    raise UserError(f"exactbilevel: {message}")


@contextlib.contextmanager
def _user_input(prefix):
    """ValueError and TypeError raised while checking what the user gave -> UserError."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        _fail(f"{prefix}{exc}")


def _os_message(exc):
    """One line naming the path and the reason of an OSError."""
    paths = " -> ".join(os.fspath(f) for f in (exc.filename, exc.filename2) if f is not None)
    reason = exc.strerror or str(exc) or type(exc).__name__
    return f"{paths}: {reason}" if paths else reason


def _at_least(value, low, option, what="an integer"):
    if value is not None and value < low:
        _fail(f"{option} must be {what} >= {low}, got {value}")


def _check_writable(path, option):
    """``path`` is a folder in which a file can be created (tried for real: root ignores permission bits)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=path, prefix=".exactbilevel-write-test-")
    except OSError as exc:
        _fail(f"{option} {path}: cannot write in this folder ({exc.strerror or exc}); choose a writable folder")
    os.close(fd)
    os.unlink(tmp)


def _output_folder(path, option="--out"):
    """The results folder ``path``, created if needed and checked writable, before anything runs."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        _fail(f"{option} {path}: exists and is not a folder; give a new or an existing folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        _fail(f"{option} {path}: cannot create the folder ({exc.strerror or exc}); choose a writable place")
    _check_writable(path, option)
    return path


def _solve(args):
    from . import GaussianGoalReward, envs, solve

    if not 1 <= args.n <= MAX_SOLVE_N:
        _fail(f"--n must be an integer in [1, {MAX_SOLVE_N}] (the side of the grid), got {args.n}")
    if not 0 <= args.gamma < 1:
        _fail(f"--gamma must be a discount in [0, 1), got {args.gamma}")
    if args.tol is not None and not (math.isfinite(args.tol) and args.tol > 0):
        _fail(f"--tol must be a finite number > 0, got {args.tol}")
    tol = {} if args.tol is None else {"tol": args.tol}
    grid = envs.gridworld(n=args.n, gamma=args.gamma)
    goal = np.array([args.n - 1.0, args.n - 1.0])
    corner = args.n - 1
    r = GaussianGoalReward(grid.coords, grid.mdp.A, sigma=1.0).value(goal)
    print(f"GridWorld {args.n} x {args.n}, slip 0.1, gamma {args.gamma}, reward bump at cell ({corner}, {corner})")
    np.set_printoptions(precision=2, suppress=True, linewidth=120)
    for tau in (0.0, 0.1):
        t0 = time.perf_counter()
        with _user_input("solve: "):  # e.g. --tol below the float64 floor of the problem
            sol = solve(grid.mdp, r, tau=tau, **tol)
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
    """``(module, configuration class, description)``; UserError for an unknown name or, when
    ``running``, for a missing optional dependency (the module's ``missing()`` says which)."""
    from .experiments import EXPERIMENTS

    if not isinstance(name, str) or name not in EXPERIMENTS:
        _fail(f"unknown experiment {name!r}; known: {', '.join(EXPERIMENTS)}")
    problem = getattr(EXPERIMENTS[name][0], "missing", lambda: None)() if running else None
    if problem:
        _fail(f"{name}: {problem}")
    return EXPERIMENTS[name]


def _run(args):
    from .experiments.config import ConfigError, load

    module, cls, _ = _experiment(args.experiment, running=True)
    _at_least(args.seeds, 1, "--seeds")
    _at_least(args.steps, 1, "--steps")
    _at_least(args.workers, 1, "--workers")
    quick = module.QUICK if getattr(args, "quick", False) else {}
    with _user_input("bad configuration: "):
        cfg = load(cls, args.config, **{**quick, **{k: v for k, v in (("seeds", args.seeds), ("steps", args.steps))
                                                    if v is not None}})
    out = _output_folder(args.out or f"results/{args.experiment}")
    t0 = time.perf_counter()
    try:
        rows = module.run_experiment(cfg, out, workers=args.workers, progress=not args.quiet)
    except ConfigError as exc:  # found by the experiment's own checks before its runs (verify: the scales)
        _fail(f"{args.experiment}: {exc}")
    print(module.table(rows))
    print(f"\nresults, traces and figures in {out}/ ({time.perf_counter() - t0:.0f} s)")
    return 0


def _verify(args):
    args.experiment = "verify"
    if args.out is None and args.quick:
        args.out = "results/verify-quick"
    return _run(args)


def _sweep(args):
    from .experiments.sweep import configurations, sweep

    module, cls, _ = _experiment(args.experiment, running=True)
    _at_least(args.workers, 1, "--workers")
    if args.scheduler is not None:
        try:
            import distributed  # noqa: F401
        except ImportError:
            _fail('--scheduler needs dask.distributed: pip install "exactbilevel[dask]"')
    with _user_input("bad configuration: "):
        configurations(cls, args.grid, args.config)  # every combination, before anything runs
    out = _output_folder(args.out or f"results/{args.experiment}-sweep")
    with _user_input("bad configuration: "):
        results = sweep(module, cls, args.grid, out, base=args.config, workers=args.workers,
                        scheduler=args.scheduler, progress=not args.quiet)
    for label, rows in results.items():
        print(f"\n== {label}\n{module.table(rows)}")
    print(f"\nresults in {out}/")
    return 0


def _plot(args):
    out = Path(args.results)
    if not out.is_dir():
        _fail(f"{out} is not a folder: give a results folder written by `exactbilevel run`")
    summary = out / "summary.json"
    if not summary.is_file():
        _fail(f"{out} is not a results folder (no summary.json)")
    try:
        doc = json.loads(summary.read_text(encoding="utf-8"))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        _fail(f"{summary} is damaged ({exc}); run the experiment again to rewrite it")
    methods = doc.get("methods") if isinstance(doc, dict) else None
    if not (isinstance(methods, list) and all(isinstance(m, str) for m in methods)):
        _fail(f"{summary} is damaged (no list of method names under \"methods\"); run the experiment again")
    module = _experiment(doc.get("experiment", "gridworld-goal"))[0]
    _check_writable(out, "RESULTS_DIR")
    try:
        module.figures(out)
    except (ValueError, KeyError) as exc:  # a damaged or incomplete data file of the folder
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        _fail(f"{out} is damaged or incomplete: {text}; run the experiment again")
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


class _Parser(argparse.ArgumentParser):
    """argparse's errors as one line (UserError, exit status 2) instead of the usage text."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message} (see `{self.prog} --help`)")


def _run_options(p, config, seeds, out):
    """The options of the subcommands that run an experiment (`run`, `verify`)."""
    p.add_argument("--config", help=config)
    p.add_argument("--seeds", type=int, help=seeds)
    p.add_argument("--steps", type=int, help="steps per run")
    p.add_argument("--out", help=out)
    p.add_argument("--workers", type=int, default=2, help="parallel runs (joblib; default 2)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def parser():
    p = _Parser(prog="exactbilevel", description="Bi-level RL on tabular MDPs against exact ground truth.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run an experiment and write its results folder")
    r.add_argument("experiment", help="experiment name (see `exactbilevel list`)")
    _run_options(r, "TOML file overriding the default configuration", "seeds per sampled method",
                 "results folder (default results/EXPERIMENT)")
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
    v = sub.add_parser("verify", help="verify the theorem's rates on long runs: verdicts, figures, verdicts.json")
    v.add_argument("--quick", action="store_true", help="the reduced version of the test suite (minutes, not hours)")
    _run_options(v, "TOML file overriding the default configuration (experiments/verify.toml)",
                 "seeds per problem and setting", "results folder (default results/verify, results/verify-quick with --quick)")
    v.set_defaults(func=_verify)
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
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status.

    A user's mistake prints one line on stderr and raises :class:`UserError` (a SystemExit
    with code 2): a bad option or configuration value, an unknown experiment, or a path
    that cannot be read or written (any OSError)."""
    try:
        if argv is not None and any("\0" in str(a) for a in argv):  # a shell cannot pass one; paths refuse it
            _fail("an argument contains a NUL character")
        args = parser().parse_args(argv)
        return args.func(args)
    except UserError as exc:
        error = exc
    except OSError as exc:
        error = UserError(f"exactbilevel: {_os_message(exc)}")
    print(error.message, file=sys.stderr)
    raise error


if __name__ == "__main__":
    raise SystemExit(main())
