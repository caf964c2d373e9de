"""Rates (docs/theory.rst, "Rates and verdicts"): measured convergence rates beside the theory's exponents, and the biases.

The rate part is :mod:`exactbilevel.experiments.verify` at a shorter length (its
machinery, claims, fits, verdicts and figures): the section 4 actor-critic with the
schedules resolved from each problem, fixed tau and decaying tau, on the well-scaled
random MDP and the GridWorld of docs/theory.rst, "GridWorld goal position", ``seeds`` seeds each, logged at geometric steps;
every quantity of :data:`exactbilevel.experiments.verify.CLAIMS` fitted over the last
``decades`` (>= 1.5) decades in its running average, running minimum and last iterate,
with Student-t intervals over seeds and a verdict by the rule of docs/theory.rst, "Rates and verdicts".  Beside it,
at a fixed random x (standard normal, from ``mdp_seed``):

* the penalty bias against lam, ``|grad ell - grad Phi_tau|`` (theory slope -1) and
  ``p_tau(theta_lam)`` (theory slope -2), deterministic curves fitted without an
  interval, with their fit residual;
* the entropy bias against tau, ``J*_0 - J_0(pi*_tau)`` beside its bound
  ``tau log A / (1 - gamma)``, and the size of the implicit hyper-gradient term, which
  peaks near the smallest action gap of Q*_0 (marked).

Outputs: those of :mod:`~exactbilevel.experiments.verify` (runs, ``scales.json``,
``verdicts.json``, figures ``<problem>-stationarity``, ``<problem>-lower``), and
``lam.npz``, ``tau.npz``, ``summary.json`` (the bias fits), figures ``penalty-bias``,
``entropy-bias``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..gradients import action_gap, hypergradient, lower_solve
from ..penalty import penalized_policy
from ..rates import fit_rate, rate_table
from ..trace import Trace, read_npz
from .config import dumps, need, option
from . import verify as _verify
from .runs import write_atomic

NAME = "rates"


@dataclass(frozen=True)
class Rates(_verify.Verify):
    """Configuration of the rates experiment (defaults: the committed figures): the fields of
    :class:`~exactbilevel.experiments.verify.Verify` (shorter runs, no schedule sweep) and the
    bias sweeps'."""

    steps: int = option(10**7, "actor-critic steps per run")
    sweep_zeta_decay: tuple = option((), "schedule sweep of verify (empty: none)", item=float)
    bias_tau: float = option(0.2, "tau of the penalty-bias sweep")
    lam_min: float = option(1.0, "penalty-bias sweep: lam from lam_min ...")
    lam_max: float = option(1000.0, "... to lam_max (log-spaced, 4 values a decade)")
    tau_min: float = option(1e-3, "entropy-bias sweep: tau from tau_min ...")
    tau_max: float = option(10.0, "... to tau_max (log-spaced, 25 values)")

    def check(self):
        super().check()
        for key in ("bias_tau", "lam_min", "tau_min"):
            need(self, getattr(self, key) > 0, key, "> 0")
        need(self, self.lam_max > self.lam_min, "lam_max", "> lam_min")
        need(self, self.tau_max > self.tau_min, "tau_max", "> tau_min")


def problem(cfg):
    """The random bilevel problem (runs start at x0 = 0) and the probe point of the sweeps."""
    return _verify.random_problem(cfg)


def penalty_sweep(cfg, prob, x):
    """``(lam, |grad ell - grad Phi_tau|, p_tau(theta_lam))`` at x, tau = bias_tau."""
    mdp, reward, obj = prob.mdp, prob.reward, prob.objective
    sol = lower_solve(mdp, reward.value(x), cfg.bias_tau)
    g = hypergradient(mdp, reward, obj, x, cfg.bias_tau, solution=sol)
    lams = np.geomspace(cfg.lam_min, cfg.lam_max, max(3, int(round(4 * np.log10(cfg.lam_max / cfg.lam_min))) + 1))
    bias, pen, theta = [], [], None
    for lam in lams:
        res = penalized_policy(mdp, reward, obj, x, lam, cfg.bias_tau, theta0=theta, solution=sol)
        theta = res.theta
        bias.append(np.linalg.norm(res.grad_ell - g))
        pen.append(res.penalty)
    return lams, np.array(bias), np.array(pen)


def entropy_sweep(cfg, prob, x):
    """``(tau, J*_0 - J_0(pi*_tau), bound, |implicit term|, action gap)`` at x."""
    from ..evaluation import policy_reward, policy_system

    mdp, reward, obj = prob.mdp, prob.reward, prob.objective
    r = reward.value(x)
    J0 = float(mdp.rho @ lower_solve(mdp, r, 0.0).V)
    taus = np.geomspace(cfg.tau_min, cfg.tau_max, 25)
    bias, implicit = [], []
    for tau in taus:
        sol = lower_solve(mdp, r, tau)
        bias.append(J0 - float(mdp.rho @ policy_system(mdp, sol.pi).solve(policy_reward(r, sol.pi, 0.0))))
        implicit.append(np.linalg.norm(hypergradient(mdp, reward, obj, x, tau, solution=sol, full_output=True).implicit))
    bound = taus * np.log(mdp.A) / (1 - mdp.gamma)
    return taus, np.array(bias), bound, np.array(implicit), action_gap(mdp, reward, x)


def run_experiment(cfg, out, workers=1, progress=True):
    """The bias sweeps, then :func:`exactbilevel.experiments.verify.run_claims`; writes the folder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    prob, probe = problem(cfg)
    lams, bias, pen = penalty_sweep(cfg, prob, probe)
    np.savez(out / "lam.tmp.npz", lam=lams, penalty_bias=bias, penalty=pen)
    os.replace(out / "lam.tmp.npz", out / "lam.npz")
    taus, ebias, bound, implicit, gap = entropy_sweep(cfg, prob, probe)
    np.savez(out / "tau.tmp.npz", tau=taus, entropy_bias=ebias, bound=bound, implicit=implicit, gap=gap)
    os.replace(out / "tau.tmp.npz", out / "tau.npz")
    result = _verify.run_claims(cfg, out, workers, progress)
    # noise-free sweeps: fitted without an interval, with their residual (min_decades=0 lets a
    # configuration with lam_max / lam_min < 10^1.5 still fit)
    curve = dict(window=(0.0, 1.0), deterministic=True, min_decades=0.0)
    lam_fits = {"penalty bias": fit_rate(lams, bias, theory=-1.0, **curve),
                "penalty p_tau": fit_rate(lams, pen, theory=-2.0, **curve)}
    rows = [dict(quantity=q, slope=f.slope, method=f.method, theory=f.theory, max_residual=f.max_residual,
                 local_slopes=list(f.local_slopes)) for q, f in lam_fits.items()]
    write_atomic(out / "config.toml", dumps(cfg))
    write_atomic(out / "summary.json", json.dumps(dict(experiment=NAME, methods=result["groups"], rows=rows,
                                                        seconds=time.perf_counter() - t0), indent=2))
    figures(out)
    return dict(result, bias=lam_fits)


def table(result):
    """The verdict table of the runs, then the bias fits."""
    return _verify.table(result) + "\n\npenalty bias against lam (deterministic curves):\n" + rate_table(result["bias"])


def figures(out):
    """The figures of :func:`exactbilevel.experiments.verify.figures`, and the two bias figures."""
    from .. import plots

    out = Path(out)
    _verify.figures(out)
    lam = read_npz(out / "lam.npz", ("lam", "penalty_bias", "penalty"))
    groups = {r"$|\nabla\ell_\lambda - \nabla\Phi_\tau|$": [Trace({"k": lam["lam"], "y": lam["penalty_bias"]})],
              r"$p_\tau(\theta_\lambda)$": [Trace({"k": lam["lam"], "y": lam["penalty"]})]}
    fig = plots.rates(groups, "y", window=(0.0, 1.0), deterministic=True, min_decades=0.0,
                      theory={k: t for k, t in zip(groups, (-1.0, -2.0))},
                      xlabel=r"penalty $\lambda$", ylabel="bias")
    plots.save(fig, out / "penalty-bias")
    _penalty_stability(out, lam)
    tau = read_npz(out / "tau.npz", ("tau", "entropy_bias", "bound", "implicit", "gap"))
    groups = {r"$J^*_0 - J_0(\pi^*_\tau)$": [Trace({"tau": tau["tau"], "y": tau["entropy_bias"]})],
              r"bound $\tau \log A / (1-\gamma)$": [Trace({"tau": tau["tau"], "y": tau["bound"]})],
              r"$|$implicit hyper-gradient term$|$": [Trace({"tau": tau["tau"], "y": tau["implicit"]})]}
    fig = plots.curves(groups, x="tau", y="y", logx=True, logy=True, xlabel=r"entropy weight $\tau$ "
                       f"(smallest action gap {float(tau['gap']):.2g})", ylabel="size")
    plots.save(fig, out / "entropy-bias")


def _penalty_stability(out, lam):
    """The two penalty-bias slopes fitted over the 1.5 decades of lam ending at each lam
    (noise-free curves: no interval), beside their exponents -1 and -2."""
    import matplotlib.pyplot as plt

    from .. import plots
    from ..rates import slope_stability

    if np.log10(lam["lam"][-1] / lam["lam"][0]) < 1.5 + 1e-9:
        return  # a sweep shorter than one window: no stability to show
    with plots.paper_style():
        fig, ax = plt.subplots(figsize=(plots.COLUMN_WIDTH, 2.4), layout="constrained")
        for i, (name, key, p) in enumerate(((r"$|\nabla\ell_\lambda - \nabla\Phi_\tau|$", "penalty_bias", -1.0),
                                            (r"$p_\tau(\theta_\lambda)$", "penalty", -2.0))):
            stab = slope_stability(lam["lam"], lam[key], decades=1.5, deterministic=True, theory=p)
            color = plots.PAPER_RC["axes.prop_cycle"].by_key()["color"][i]  # as in the penalty-bias figure
            plots.plot_slope_stability(ax, stab, theory=False, color=color, label=f"{name} (theory {p:g}, dotted)")
            ax.axhline(p, color=color, ls=":", lw=1.2)
        ax.set_xlabel(r"window end $\lambda$ (window: 1.5 decades)")
        ax.legend(loc="best")
        plots.save(fig, out / "penalty-bias-stability")
        plt.close(fig)
