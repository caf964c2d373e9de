"""GridWorld goal position (docs/theory.rst, "GridWorld goal position", a choice of this package).

An N x N grid (actions up, down, left, right, stay; slip to a uniformly random
move; walls reflect; rho uniform).  The upper variable x in [0, N-1]^2 is the
goal: ``r_x(s, a) = exp(-|c(s) - x|^2 / (2 sigma^2))``.  The designer's objective
``f = <nu^pi, u> + kappa/2 |x - xbar|^2`` with
``u(s) = cost_slope |c(s) - cost_center| + hazard_cost [s a hazard] + target_cost [s a target]``.
The defaults are the design of docs/theory.rst, "GridWorld goal position" (sigma = 2.5, ``u = |c(s) - (2, 7)| / 9`` plus 2 on the
hazards (1, 6), (1, 7), (1, 8), kappa = 0.01, xbar = (4.5, 4.5), x0 = (7, 2)), whose exact
landscape has a basin of Phi_0 reachable from x0, fixed-tau stall points away from
argmin Phi_0, and partial SGD heading to xbar.

Outputs (in the results folder):

* ``landscape.npz``: Phi_0 (from the tau -> 0 limit policy, :func:`exactbilevel.limit_policy`)
  and Phi_tau on a grid of x (exact solves);
* ``runs/<method>/seed<k>.npz`` (+ ``.json``): the Trace of every run, with every
  ground-truth diagnostic of docs/theory.rst, "What is measured" at the logging points;
* ``summary.json``: the final table (final Phi_0 over seeds: median and the
  10-90% quantiles, final x, environment samples);
* figures ``landscape.{png,pdf}`` (both landscapes with the median x_k path of
  each method) and ``objective.{png,pdf}`` (Phi_0(x_k) against environment
  samples, median and 10-90% band over seeds).

Methods: the section 4 actor-critic with decaying tau, the same with each fixed
tau of ``tau_fixed``, partial SGD (sampled), finite differences of Phi estimated
by the lower-level learner (the same budget of learner steps), all with the step
sizes resolved from the problem (``lam0 = alpha0 = beta0 = zeta0 = 0``; the tau
schedule is the experiment's: it is what is compared); and the exact oracles, plotted
against their outer steps: hyper-gradient descent on Phi_tau with decaying tau
(``oracle_tau_decay``) and with each fixed tau, and the nested loop with the
penalty gradient (lam = 10 (k+1)^lam_growth unless lam0 is set).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import envs, schedules
from ..limits import limit_policy
from ..objectives import OccupancyObjective
from ..problem import BilevelProblem
from ..rewards import GaussianGoalReward
from ..solvers import solve
from ..trace import read_npz
from .config import dumps, need, option
from .runs import load_runs, run_one, run_tasks, spread, step_sizes, write_atomic

NAME = "gridworld-goal"


@dataclass(frozen=True)
class GridworldGoal:
    """Configuration of the GridWorld goal experiment (defaults: the committed figures)."""

    n: int = option(10, "side N of the grid")
    slip: float = option(0.1, "probability of a uniformly random move")
    gamma: float = option(0.95, "discount")
    sigma: float = option(2.5, "width of the goal bump")
    targets: tuple = option((), "target cells [row, col], u += target_cost", item=(int, 2))
    hazards: tuple = option(((1, 6), (1, 7), (1, 8)), "hazard cells [row, col], u += hazard_cost")
    target_cost: float = option(-1.0, "added to u on target cells")
    hazard_cost: float = option(2.0, "added to u on hazard cells")
    cost_center: tuple = option((2.0, 7.0), "u(s) = cost_slope |c(s) - cost_center| + ...", length=2)
    cost_slope: float = option(1.0 / 9.0, "slope of the distance part of u")
    kappa: float = option(0.01, "weight of kappa/2 |x - xbar|^2")
    xbar: tuple = option((4.5, 4.5), "center of the quadratic term", length=2)
    x0: tuple = option((7.0, 2.0), "starting goal position", length=2)
    steps: int = option(2_000_000, "actor-critic steps per run")
    seeds: int = option(10, "seeds per sampled method")
    log_every: int = option(50_000, "steps between logging points")
    tau0: float = option(0.5, "tau_k = tau0 (k+1)^-tau_decay")
    tau_decay: float = option(0.2, "decay exponent of tau")
    tau_fixed: tuple = option((0.5, 0.1), "fixed-tau variants")
    lam0: float = option(0.0, "lam_k = lam0 (k+1)^lam_growth; 0: resolved from the problem (eb.defaults)")
    lam_growth: float = option(0.1, "growth exponent of lam")
    alpha0: float = option(0.0, "actors: alpha0 (k+1)^-alpha_decay; 0: resolved from the problem (eb.defaults)")
    alpha_decay: float = option(0.1, "")
    beta0: float = option(0.0, "critics: beta0 (k+1)^-beta_decay; 0: resolved from the problem (eb.defaults)")
    beta_decay: float = option(0.05, "")
    zeta0: float = option(0.0, "upper: zeta0 (k+1)^-zeta_decay; 0: resolved from the problem (eb.defaults)")
    zeta_decay: float = option(0.3, "")
    actor: str = option("npg", "pg or npg")
    optimistic: bool = option(False, "soft critics start at the largest soft value (else the resolved default)")
    fd_step: float = option(0.25, "finite differences: step h")
    fd_inner: int = option(2000, "finite differences: learner steps per estimate")
    fd_zeta: float = option(0.5, "finite differences: constant upper step")
    oracle_steps: int = option(300, "outer steps of the oracles (exact hyper-gradient descent, nested)")
    oracle_zeta: float = option(2.0, "their constant step size")
    oracle_tau_decay: float = option(0.5, "the decaying-tau oracle: tau_k = tau0 (k+1)^-oracle_tau_decay")
    landscape_step: float = option(0.25, "spacing of the x grid of the landscapes")
    landscape_tau: float = option(0.1, "tau of the Phi_tau landscape")

    def check(self):
        need(self, 2 <= self.n <= 1000, "n", "an integer in [2, 1000]")
        need(self, 0 <= self.slip <= 1, "slip", "in [0, 1]")
        need(self, 0 <= self.gamma < 1, "gamma", "in [0, 1)")
        for key in ("sigma", "tau0", "landscape_step", "landscape_tau", "oracle_zeta", "fd_step", "fd_zeta"):
            need(self, getattr(self, key) > 0, key, "> 0")
        for key in ("lam0", "alpha0", "beta0", "zeta0"):
            need(self, getattr(self, key) >= 0, key, ">= 0 (0: resolved from the problem)")
        for key in ("kappa", "tau_decay", "lam_growth", "alpha_decay", "beta_decay", "zeta_decay", "cost_slope",
                    "oracle_tau_decay"):
            need(self, getattr(self, key) >= 0, key, ">= 0")
        for key in ("steps", "seeds", "log_every", "oracle_steps", "fd_inner"):
            need(self, getattr(self, key) >= 1, key, "an integer >= 1")
        for key in ("targets", "hazards"):
            need(self, all(len(c) == 2 and all(isinstance(v, int) and 0 <= v < self.n for v in c) for c in getattr(self, key)),
                 key, f"a list of [row, col] cells with entries in [0, {self.n - 1}]")
        for key in ("xbar", "x0"):
            need(self, len(getattr(self, key)) == 2 and all(0 <= v <= self.n - 1 for v in getattr(self, key)), key,
                 f"a point [x1, x2] in [0, {self.n - 1}]^2")
        need(self, all(t > 0 for t in self.tau_fixed), "tau_fixed", "a list of numbers > 0")
        need(self, (self.n - 1) / self.landscape_step <= 10**3, "landscape_step",
             f"at least (n - 1) / 1000 = {(self.n - 1) / 1000:g} (at most 1001 x 1001 landscape points)")
        need(self, self.actor in ("pg", "npg"), "actor", '"pg" or "npg"')


def problem(cfg):
    grid = envs.gridworld(n=cfg.n, slip=cfg.slip, gamma=cfg.gamma, targets=[tuple(c) for c in cfg.targets],
                          hazards=[tuple(c) for c in cfg.hazards])
    mdp = grid.mdp
    reward = GaussianGoalReward(grid.coords, mdp.A, sigma=cfg.sigma)
    u = cfg.cost_slope * np.linalg.norm(grid.coords - np.array(cfg.cost_center, dtype=float), axis=1)
    u = u + grid.cost(target=cfg.target_cost, hazard=cfg.hazard_cost)
    cost = np.repeat(u[:, None], mdp.A, axis=1)
    obj = OccupancyObjective(mdp, cost, kappa=cfg.kappa, center=np.array(cfg.xbar, dtype=float))
    return BilevelProblem(mdp, reward, obj, np.array(cfg.x0, dtype=float), bounds=(0.0, cfg.n - 1.0))


def landscape(cfg, prob):
    """Phi_0 and Phi_tau on the grid ``arange(0, n - 1, step)`` in both coordinates:
    ``(grid, phi0[i, j], phi_tau[i, j])`` at x = (grid[i], grid[j])."""
    grid = np.arange(0.0, cfg.n - 1 + 1e-9, cfg.landscape_step)
    phi0 = np.empty((grid.size, grid.size))
    phit = np.empty_like(phi0)
    mdp, reward, obj = prob.mdp, prob.reward, prob.objective
    V0 = Vt = None
    for i, a in enumerate(grid):
        for j, b in enumerate(grid):
            x = np.array([a, b])
            r = reward.value(x)
            s0 = solve(mdp, r, 0.0, tol=1e-9, V0=V0)
            st = solve(mdp, r, cfg.landscape_tau, tol=1e-9, V0=Vt)
            V0, Vt = s0.V, st.V
            phi0[i, j], phit[i, j] = obj.value(x, limit_policy(mdp, r, solution=s0)), obj.value(x, st.pi)
    return grid, phi0, phit


def methods(cfg):
    """``name -> (method, ActorCriticConfig, seeds)`` for every curve of the figures."""
    common = dict(step_sizes(cfg), actor=cfg.actor, log_every=cfg.log_every, steps=cfg.steps)

    def start(tau):  # optimistic: the largest soft value, (max r + tau log A) / (1 - gamma), max r = 1 (the bump)
        return dict(critic_init=(1.0 + tau * np.log(5)) / (1.0 - cfg.gamma)) if cfg.optimistic else {}

    decaying = dict(common, tau=schedules.power(cfg.tau0, cfg.tau_decay), **start(cfg.tau0))
    out = {"decaying tau": ("actor_critic", decaying, cfg.seeds)}
    for t in cfg.tau_fixed:
        out[f"fixed tau = {t:g}"] = ("actor_critic", dict(common, tau=t, **start(t)), cfg.seeds)
    out["partial SGD"] = ("partial_sgd", decaying, cfg.seeds)
    # the same learner-step budget: (2 d + 1) fd_inner learner steps per outer step, d = 2
    fd_steps = max(1, cfg.steps // (5 * cfg.fd_inner))
    out["finite differences"] = ("finite_differences", dict(
        decaying, steps=fd_steps, log_every=max(1, fd_steps // 50), zeta=cfg.fd_zeta, fd_step=cfg.fd_step,
        fd_inner=cfg.fd_inner), cfg.seeds)
    # the exact oracles (k counts their outer steps): hyper-gradient descent on Phi_tau with
    # decaying and fixed tau, and the nested loop with the penalty gradient
    oracle = dict(actor=cfg.actor, steps=cfg.oracle_steps, log_every=max(1, cfg.oracle_steps // 50),
                  zeta=cfg.oracle_zeta, tau=schedules.power(cfg.tau0, cfg.oracle_tau_decay))
    out["hypergradient, decaying tau (oracle)"] = ("hypergradient", oracle, 1)
    for t in cfg.tau_fixed:
        out[f"hypergradient, tau = {t:g} (oracle)"] = ("hypergradient", dict(oracle, tau=t), 1)
    out["nested (oracle)"] = ("nested_penalty", dict(oracle, lam=schedules.power(cfg.lam0 or 10.0, -cfg.lam_growth)), 1)
    return out


def setup(cfg):
    """``(problem, metrics)`` of one run (no extra metrics)."""
    return problem(cfg), None


def tasks(cfg, out):
    return [(setup, cfg, name, method, kw, seed, out) for name, (method, kw, n) in methods(cfg).items()
            for seed in range(n)]


def summarize(runs):
    rows = []
    for name, traces in runs.items():
        xs = np.array([t["x"][-1] for t in traces])
        rows.append(dict(method=name, seeds=len(traces), **spread("phi0", [t["phi0"][-1] for t in traces]),
                         x_mean=xs.mean(axis=0).tolist(), samples=int(traces[0]["samples"][-1])))
    return rows


def table(rows):
    w = max([6] + [len(r["method"]) for r in rows])
    head = f"{'method':{w}s} {'seeds':>5s} {'final Phi_0: median [q10, q90]':>34s} {'final x (mean)':>16s} {'samples':>12s}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['method']:{w}s} {r['seeds']:5d} {r['phi0_median']:12.4f} [{r['phi0_q10']:8.4f}, {r['phi0_q90']:8.4f}]"
                     f"   ({r['x_mean'][0]:5.2f}, {r['x_mean'][1]:5.2f}) {r['samples']:12d}")
    return "\n".join(lines)


def run_experiment(cfg, out, workers=1, progress=True):
    """Run everything, write the results folder ``out``, return the summary rows."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    prob = problem(cfg)
    grid, phi0, phit = landscape(cfg, prob)
    tmp = out / "landscape.tmp.npz"
    np.savez(tmp, grid=grid, phi0=phi0, phi_tau=phit, tau=cfg.landscape_tau)
    os.replace(tmp, out / "landscape.npz")
    todo = tasks(cfg, out)
    run_tasks(run_one, todo, workers, progress, NAME)
    names = list(methods(cfg))
    rows = summarize(load_runs(out, names))
    write_atomic(out / "config.toml", dumps(cfg))
    write_atomic(out / "summary.json", json.dumps(dict(experiment=NAME, methods=names, rows=rows,
                                                        seconds=time.perf_counter() - t0), indent=2))
    figures(out)
    return rows


def figures(out):
    """Draw the two figures of a results folder (PNG and PDF)."""
    from .. import plots

    out = Path(out)
    land = read_npz(out / "landscape.npz", ("grid", "phi0", "phi_tau", "tau"))
    runs = load_runs(out)
    # x = (row, column) of the grid: drawn with the column horizontal, rows downwards
    paths = {name: np.median(np.stack([t["x"] for t in traces]), axis=0)[:, ::-1] for name, traces in runs.items()}
    fig = plots.landscapes(land["grid"], land["grid"], {r"$\Phi_0(x)$": land["phi0"],
                                                        rf"$\Phi_\tau(x)$, $\tau$ = {float(land['tau']):g}": land["phi_tau"]},
                           paths=paths, y_down=True, xlabel="goal column $x_2$ (cells)",
                           ylabel="goal row $x_1$ (cells)")
    plots.save(fig, out / "landscape")
    sampled = {name: traces for name, traces in runs.items() if traces[0]["samples"][-1] > 0}
    fig = plots.curves(sampled, x="samples", y="phi0", logx=True, xlabel="environment samples",
                       ylabel=r"$\Phi_0(x_k)$")
    plots.save(fig, out / "objective")
