"""Verify (docs/theory.rst, "What is measured" and "Rates and verdicts"): the theorem's rates measured on long runs, with verdicts.

``exactbilevel verify`` runs the section 4 actor-critic, with the schedules resolved
from each problem (:mod:`exactbilevel.defaults`), on well-scaled problems, with fixed
and with decaying tau, over ``seeds`` seeds each, logged at geometrically spaced steps
(``logs_per_decade`` a decade) up to ``steps``, and judges each claim of the theory.

Problems
--------
``"random"``: the random MDP of the rates experiment (Dirichlet rows, linear rewards
with standard-normal features, an occupancy objective with a uniform random cost,
x in [-3, 3]^d, x0 = 0); ``"gridworld"``: the GridWorld goal problem of docs/theory.rst, "GridWorld goal position"
(its committed design, :mod:`exactbilevel.experiments.gridworld_goal`).

Before any run each problem is checked to be well scaled (:func:`check_scales`): the
exact oracle (L-BFGS-B on Phi_tau with the exact hyper-gradient) finds the minimizer
x*_tau at tau_0 (from x0) and at the last tau of the decaying schedule (from x*_{tau_0}:
a continuation, the path a decaying run follows), and each must lie at least
``margin`` of the box width inside every face; the reward reference scale must be
within ``max_reward_ratio`` of tau_0 (``R_ref / tau_0 <= max_reward_ratio``: the
entropy neither swamps nor vanishes next to the rewards).  A problem that fails is
reported, and nothing runs.

Claims and forms
----------------
The theory's exponents are -1/3 for fixed tau and -1/10 for decaying tau (the paper's
summaries, stated for stationarity).  A finite-time theorem of this kind bounds a sum
of the stationarity measure and the lower-level errors (its Lyapunov function),
averaged over k, so each of those quantities is judged against the same exponent:

* stationarity: ``|grad Phi_tau(x_k)|^2`` for fixed tau; for decaying tau the squared
  penalty-KKT residual of the unregularized (tau = 0) problem, ``kkt_residual^2``
  (:mod:`exactbilevel.diagnostics`), the stationarity measure of the problem the
  decaying run is meant to solve, and ``|grad Phi_{tau_k}(x_k)|^2`` beside it;
* lower level: residual_phi, residual_theta (the two actors' optimality gaps) and the
  critic errors of Qphi and Qtheta.

Each quantity is fitted in three forms: the running ``average`` (1/K) sum_{k<K} v(k)
(the theorem's form; the piecewise-linear quadrature over the logging points of
:func:`exactbilevel.running.running_mean`), the running ``minimum`` over the logging
points (:func:`exactbilevel.running.running_min`), and the ``last iterate`` (which the
theorem does not bound; shown for reference, and judged by the same rule).

Fits and verdicts
-----------------
The slope of log(value) on log(k) over the last ``decades`` (>= 1.5) decades, with the
Student-t interval over seeds (:func:`exactbilevel.rates.fit_rate`; its coverage is
tested at 93-97 % for a nominal 95 % with 10 seeds on synthetic data, and one seed gives
no interval), its stability against the window's end
(:func:`exactbilevel.rates.slope_stability`), and the verdict of docs/theory.rst, "Rates and verdicts"
(:func:`exactbilevel.rates.verdict`): inconsistent when the whole interval lies above
the exponent, consistent when it lies below 0 and not above the exponent ("tight" when
it contains it), inconclusive otherwise.  Every inconclusive or inconsistent verdict
carries a diagnostic measured over the same window (:func:`diagnose`): how the
last iterate moved, the PL constant's bound (Mei et al. Lemma 15, which falls like
exp(-gap / tau) when tau decays) and min pi, the share of x on the box, the range of
the slope over the later window ends, and the schedules' noise scale zeta lam^2.

Schedule sweep
--------------
In the noise-dominated regime the last iterate does not converge at the optimization
rate but tracks the noise floor, whose size for ``|grad Phi_tau|^2`` is about zeta_k lam_k^2
(the x-step's variance is (zeta lam H G)^2 / B, and a descent step of size zeta
spreads x over a basin as zeta times that).  The sweep (fixed tau, on the first
problem) runs zeta_k = zeta_0 (k+1)^-z for each z of ``sweep_zeta_decay`` with the
other schedules resolved, three ways: ``exact=True`` (expected updates: no noise, the
optimization rate alone; one deterministic run, fitted without an interval), sampled
with batch 1 and with batch ``sweep_batch`` (the floor's level falls like 1/B); the
table gives each last-iterate slope of ``|grad Phi_tau|^2`` beside the noise-floor exponent
-z + 2 q (lam_k ~ k^q) and the ratio of the final medians of batch 1 and batch B.

Outputs (folder ``out``): ``runs/<problem>-<setting>/seed<k>.npz`` and
``runs/sweep-.../``, ``scales.json`` (the well-scaled check), ``verdicts.json``
(every claim with its fit, verdict and diagnostic; the sweep; the run time),
``summary.json``, figures ``<problem>-stationarity`` (the stationarity measures,
last iterate, average and minimum, with the slope against the window's end),
``<problem>-lower`` (the lower-level averages) and ``sweep``.
Interrupted runs resume: finished runs are kept and sampled runs continue from their
checkpoints.  ``--quick`` (:data:`QUICK`) is a reduced version for the test suite.
"""

from __future__ import annotations

import json
import math
import re
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import numpy as np

from .. import defaults, envs, schedules
from ..actor_critic import ActorCriticConfig, ScheduleWarning
from ..gradients import hypergradient
from ..objectives import OccupancyObjective
from ..problem import BilevelProblem
from ..rates import fit_rate, slope_stability, verdict
from ..rewards import LinearReward
from ..trace import Trace
from ..running import running_mean, running_min
from .config import ConfigError, dumps, need, option
from . import gridworld_goal
from .runs import load_runs, run_one, run_tasks, write_atomic

NAME = "verify"
PROBLEMS = ("random", "gridworld")
SETTINGS = ("decaying tau", "fixed tau")
THEORY = {"decaying tau": -0.1, "fixed tau": -1.0 / 3.0}
FORMS = ("average", "minimum", "last iterate")
#: one colour and marker per setting, in every figure of the package (blue and red are the
#: decaying and the first fixed tau of the GridWorld figures too)
STYLE = {"decaying tau": dict(color="#1f77b4", marker="o"), "fixed tau": dict(color="#d62728", marker="s")}
FORM_LINE = {"last iterate": dict(lw=0.7, alpha=0.55, ls="-"), "average": dict(lw=1.6, ls="-"),
             "minimum": dict(lw=1.1, ls="--")}
LOWER = (("actor residual (phi)", "residual_phi"), ("actor residual (theta)", "residual_theta"),
         ("critic error (phi)", "critic_error_phi"), ("critic error (theta)", "critic_error_theta"))
#: setting -> ((claim, quantity), ...); kkt_residual2 is the square of the trace's kkt_residual
CLAIMS = {
    "decaying tau": (("stationarity at tau = 0 (KKT)", "kkt_residual2"), ("stationarity of Phi_tau_k", "grad_phi_norm2"),
                     *LOWER),
    "fixed tau": (("stationarity of Phi_tau", "grad_phi_norm2"), *LOWER),
}

LABELS = {"kkt_residual2": r"KKT residual$^2$ at $\tau = 0$", "grad_phi_norm2": r"$\|\nabla\Phi_{\tau_k}(x_k)\|^2$",
          "residual_phi": r"$J^*_\tau - J_\tau(\pi_\phi)$", "residual_theta": r"$G(\theta) - \min G$",
          "critic_error_phi": r"critic error $Q_\phi$", "critic_error_theta": r"critic error $Q_\theta$"}


@dataclass(frozen=True)
class Verify:
    """Configuration of ``exactbilevel verify`` (defaults: the committed verdicts)."""

    problems: tuple = option(PROBLEMS, "problems to verify on: random (the rates MDP) and gridworld (docs/theory.rst, \"GridWorld goal position\")")
    steps: int = option(10**8, "actor-critic steps per run")
    seeds: int = option(10, "seeds per problem and setting (>= 2 for intervals)")
    logs_per_decade: int = option(20, "geometrically spaced logging points per decade of k")
    sampling: str = option("markov", "iid or markov (one trajectory: about 5 times cheaper per step)")
    actor: str = option("npg", "pg or npg")
    tau_decay: float = option(0.05, "decaying tau: tau_k = tau_0 (k+1)^-tau_decay, tau_0 resolved from the problem")
    alpha_decay: float = option(defaults.ALPHA_P, "actors: alpha_k = alpha_0 (k+1)^-alpha_decay, alpha_0 resolved")
    beta_decay: float = option(defaults.BETA_P, "critics: beta_k = beta_0 (k+1)^-beta_decay, beta_0 resolved")
    zeta_decay: float = option(defaults.ZETA_P, "upper: zeta_k = zeta_0 (k+1)^-zeta_decay, zeta_0 resolved")
    lam_growth: float = option(defaults.LAM_Q, "penalty: lam_k = lam_0 (k+1)^lam_growth, lam_0 resolved")
    decades: float = option(1.5, "fit window: the last `decades` decades of k (>= 1.5)")
    margin: float = option(0.02, "well scaled: x*_tau at least margin * box width inside every face")
    max_reward_ratio: float = option(10.0, "well scaled: R_ref / tau_0 at most this")
    S: int = option(20, "random problem: states")
    A: int = option(4, "random problem: actions")
    gamma: float = option(0.9, "random problem: discount")
    d: int = option(3, "random problem: dimension of x")
    mdp_seed: int = option(0, "random problem: seed of the MDP, features and cost")
    kappa: float = option(0.1, "random problem: weight of kappa/2 |x|^2")
    sweep_zeta_decay: tuple = option((0.3, 0.5, 0.7), "sweep: exponents z of zeta_k = zeta_0 (k+1)^-z (empty: no sweep)",
                                     item=float)
    sweep_batch: int = option(16, "sweep: the large batch B")
    sweep_seeds: int = option(4, "sweep: seeds per sampled variant")
    sweep_steps: int = option(3_000_000, "sweep: steps of the sampled runs")
    sweep_exact_steps: int = option(100_000, "sweep: steps of the exact=True runs")

    def check(self):
        need(self, len(self.problems) >= 1 and set(self.problems) <= set(PROBLEMS)
             and len(set(self.problems)) == len(self.problems), "problems", f"distinct names from {list(PROBLEMS)}")
        for key in ("steps", "seeds", "logs_per_decade", "S", "A", "d", "sweep_batch", "sweep_seeds", "sweep_steps",
                    "sweep_exact_steps"):
            need(self, getattr(self, key) >= 1, key, "an integer >= 1")
        need(self, self.sampling in ("iid", "markov"), "sampling", "'iid' or 'markov'")
        need(self, self.actor in ("pg", "npg"), "actor", "'pg' or 'npg'")
        need(self, 0 <= self.gamma < 1, "gamma", "in [0, 1)")
        need(self, self.S * self.S * self.A <= 5 * 10**7, "S", "at most sqrt(5e7 / A) (dense transitions)")
        need(self, self.tau_decay > 0, "tau_decay", "> 0 (the decaying setting)")
        for key in ("alpha_decay", "beta_decay", "zeta_decay", "lam_growth"):
            need(self, 0 <= getattr(self, key) <= 2, key, "in [0, 2]")
        need(self, self.decades >= 1.5, "decades", ">= 1.5 (a shorter window cannot tell a rate from noise)")
        need(self, 0 <= self.margin < 0.5, "margin", "in [0, 0.5)")
        need(self, self.max_reward_ratio > 0, "max_reward_ratio", "> 0")
        need(self, self.kappa >= 0, "kappa", ">= 0")
        need(self, self.mdp_seed >= 0, "mdp_seed", "an integer >= 0 (a numpy seed)")
        need(self, all(z >= 0 for z in self.sweep_zeta_decay), "sweep_zeta_decay", "exponents >= 0")
        for key in ("steps", "sweep_steps", "sweep_exact_steps"):
            span = math.log10(getattr(self, key)) if getattr(self, key) > 0 else 0.0
            if key == "steps" or self.sweep_zeta_decay:
                need(self, span >= self.decades + 0.5, key,
                     f">= 10^{self.decades + 0.5:g} (a fit window of {self.decades:g} decades after the first half decade)")


#: ``exactbilevel verify --quick``: a reduced run for the test suite (under 3 minutes on 2 cores)
QUICK = dict(problems=["random"], steps=200_000, seeds=10, sweep_zeta_decay=[0.3, 0.7], sweep_seeds=3,
             sweep_steps=100_000, sweep_exact_steps=2_000, sweep_batch=8)


# ----------------------------------------------------------------------------- problems

def random_problem(cfg):
    """The random problem of ``cfg`` (fields S, A, gamma, d, mdp_seed, kappa) and a probe point:
    ``(BilevelProblem, probe)``.  Dirichlet rows (:func:`exactbilevel.envs.random_mdp`), a linear
    reward with standard-normal features, an occupancy objective with a uniform cost in [-1, 1]
    and kappa/2 |x|^2, x in [-3, 3]^d from x0 = 0; the probe is a standard-normal x (x = 0
    would make every reward zero), all from ``mdp_seed``."""
    mdp = envs.random_mdp(cfg.S, cfg.A, gamma=cfg.gamma, seed=cfg.mdp_seed)
    rng = np.random.default_rng(cfg.mdp_seed)
    reward = LinearReward(rng.standard_normal((cfg.S, cfg.A, cfg.d)))
    obj = OccupancyObjective(mdp, rng.uniform(-1, 1, (cfg.S, cfg.A)), kappa=cfg.kappa)
    return BilevelProblem(mdp, reward, obj, np.zeros(cfg.d), bounds=(-3.0, 3.0)), rng.standard_normal(cfg.d)


def problem(cfg, name):
    """The :class:`~exactbilevel.BilevelProblem` called ``name`` ("random" or "gridworld")."""
    if name == "random":
        return random_problem(cfg)[0]
    if name == "gridworld":
        return gridworld_goal.problem(gridworld_goal.GridworldGoal())
    raise ValueError(f"unknown problem {name!r}; expected one of {PROBLEMS}")


def _setup(name, cfg):
    return problem(cfg, name), None


def _base(cfg):
    return dict(steps=cfg.steps, sampling=cfg.sampling, actor=cfg.actor, log_spacing="geometric",
                logs_per_decade=cfg.logs_per_decade)


def resolved_tau0(cfg, prob):
    """tau_0 resolved from the problem (:mod:`exactbilevel.defaults`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScheduleWarning)
        res = ActorCriticConfig(**_base(cfg)).resolve(prob)
    return float(res.config.tau(0)), res


def _exponents(cfg, res):
    """The alpha, beta, zeta and lam schedules whose exponent ``cfg`` changes from the resolved
    default's: the resolved coefficient with the configured exponent (the others stay None,
    resolved when the run starts)."""
    out = {}
    for name, p in (("alpha", cfg.alpha_decay), ("beta", cfg.beta_decay), ("zeta", cfg.zeta_decay),
                    ("lam", -cfg.lam_growth)):
        sched = getattr(res.config, name)
        if isinstance(sched, schedules.Power) and sched.p != p:
            out[name] = schedules.power(sched.c0, p)
    return out


def settings(cfg, prob):
    """``setting -> ActorCriticConfig keywords``: tau fixed at the resolved tau_0, or decaying
    from it; the step sizes resolved from the problem (coefficients), with the configured
    exponents."""
    tau0, res = resolved_tau0(cfg, prob)
    base = dict(_base(cfg), **_exponents(cfg, res))
    return {"decaying tau": dict(base, tau=schedules.power(tau0, cfg.tau_decay)), "fixed tau": dict(base, tau=tau0)}


@dataclass(frozen=True)
class Scales:
    """The well-scaled check of one problem (:func:`check_scales`)."""

    problem: str
    tau0: float
    tau_end: float
    reward_ref: float
    reward_ratio: float
    x_star: tuple
    x_star_end: tuple
    margin: float
    margin_end: float
    grad_norm: float
    ok: bool
    reason: str


def _minimize(prob, tau, start):
    """x*_tau: L-BFGS-B on Phi_tau over the box, from ``start``, with the exact hyper-gradient."""
    from scipy.optimize import minimize

    def fun(x):
        h = hypergradient(prob.mdp, prob.reward, prob.objective, x, tau, full_output=True)
        return h.phi, np.array(h.grad)

    res = minimize(fun, np.array(start, dtype=float), jac=True, method="L-BFGS-B", bounds=list(zip(prob.lo, prob.hi)),
                   options=dict(maxiter=500, gtol=1e-10, ftol=1e-14))
    return np.array(res.x)


def check_scales(cfg, name, prob=None):
    """:class:`Scales` of problem ``name``: x*_tau inside the box (by ``margin`` of its width)
    at tau_0 and at tau_K of the decaying schedule, and R_ref / tau_0 <= ``max_reward_ratio``."""
    prob = problem(cfg, name) if prob is None else prob
    tau0, res = resolved_tau0(cfg, prob)
    tau_end = float(schedules.power(tau0, cfg.tau_decay)(cfg.steps))
    width = prob.hi - prob.lo
    out = {}
    start = prob.x0
    for key, tau in (("start", tau0), ("end", tau_end)):  # continuation: x*_{tau_K} from x*_{tau_0}, as tau decays
        start = _minimize(prob, tau, start)
        out[key] = (start, float(np.min(np.minimum(start - prob.lo, prob.hi - start) / width)))
    g = hypergradient(prob.mdp, prob.reward, prob.objective, out["start"][0], tau0)
    ratio = res.scales.reward_ref / tau0
    problems = []
    for key, tau in (("start", tau0), ("end", tau_end)):
        if out[key][1] < cfg.margin:
            problems.append(f"x*_tau at tau = {tau:.3g} is {out[key][1]:.3g} of the box width from a face "
                            f"(< margin {cfg.margin:g}): widen the box")
    if ratio > cfg.max_reward_ratio:
        problems.append(f"R_ref / tau_0 = {ratio:.3g} > max_reward_ratio {cfg.max_reward_ratio:g}")
    return Scales(problem=name, tau0=tau0, tau_end=tau_end, reward_ref=res.scales.reward_ref, reward_ratio=ratio,
                  x_star=tuple(out["start"][0].tolist()), x_star_end=tuple(out["end"][0].tolist()),
                  margin=out["start"][1], margin_end=out["end"][1], grad_norm=float(np.linalg.norm(g)),
                  ok=not problems, reason="; ".join(problems) or "well scaled")


# ----------------------------------------------------------------------------- fits

def exponent(schedule, steps):
    """The power of k of a schedule over [steps / 10, steps] (exact for :class:`~exactbilevel.schedules.Power`)."""
    if isinstance(schedule, schedules.Power):
        return -schedule.p
    k1, k0 = float(steps), float(steps) / 10
    return float(np.log(schedule(k1) / schedule(k0)) / np.log(k1 / k0))


def _values(traces, quantity):
    """(k, values (n_seeds, n)) of ``quantity`` over the seeds (kkt_residual2: the squared KKT residual)."""
    k = np.asarray(traces[0]["k"])
    col = "kkt_residual" if quantity == "kkt_residual2" else quantity
    v = np.stack([np.asarray(t[col], dtype=float) for t in traces])
    return k, v**2 if quantity == "kkt_residual2" else v


def forms(k, v):
    """``form -> (k[1:], values[:, 1:])``: running average, running minimum and last iterate (k = 0 dropped)."""
    return {"average": (k[1:], running_mean(k, v, axis=-1)[:, 1:]),
            "minimum": (k[1:], running_min(k, v, axis=-1)[:, 1:]),
            "last iterate": (k[1:], v[:, 1:])}


@dataclass(frozen=True)
class Claim:
    """One judged claim: a quantity in one form, on one problem and setting.

    Attributes
    ----------
    problem, setting, claim : what is judged ("random", "fixed tau", "stationarity of Phi_tau").
    quantity : the trace column (``kkt_residual2``: the square of ``kkt_residual``).
    form : "average", "minimum" or "last iterate" (module docstring).
    theory : the exponent judged against.
    slope, ci : the fitted slope and its 95 % Student-t interval over seeds (NaN when not fitted).
    k_range, decades : the fit window [k_lo, k_hi] and its length in decades.
    n_seeds : seeds fitted.
    verdict, tight, reason : :func:`exactbilevel.rates.verdict` (``reason``: the part of the rule that applied).
    stability : (min, max) of the slope over the last decade of window ends
        (:func:`exactbilevel.rates.slope_stability`).
    diagnostic : :func:`diagnose` for a verdict other than "consistent", else ""; for an average
        falling faster than k^-0.9 (``TRANSIENT_SLOPE``) also a note that it is dominated by its
        early excess (a finite excess over K gives 1/K), with the last iterate's slope.
    schedules : ((name, power of k), ...) of the schedules of the run.
    stable : the slope moved by at most ``max(STABLE_SPAN, half-width of the interval)`` over the
        last decade of window ends; otherwise the diagnostic says from where to where.
    """

    problem: str
    setting: str
    claim: str
    quantity: str
    form: str
    theory: float
    slope: float
    ci: tuple
    k_range: tuple
    decades: float
    n_seeds: int
    verdict: str
    tight: bool
    reason: str
    stability: tuple
    diagnostic: str
    schedules: tuple
    stable: bool = True

    @property
    def label(self):
        return f"{self.verdict} (tight)" if self.tight else self.verdict


def _window_slope(k, y):
    """Least-squares slope of log median(y) on log k (NaN if not positive)."""
    m = np.median(y, axis=0)
    if m.size < 2 or np.any(~np.isfinite(m)) or np.any(m <= 0):
        return float("nan")
    return float(np.polyfit(np.log(k), np.log(m), 1)[0])


def diagnose(traces, k_range, stab, noise_exp, prob, values=None):
    """One sentence of measured facts over the fit window [k_lo, k_hi] (median over seeds):
    the change of the fitted form's median over the window (``values``: (k, (n_seeds, n))),
    the PL bound, min pi and the entropy bias J*_0 - J_0(pi*_tau) (a floor of the tau = 0
    residuals while tau_k is large; their log-log slopes and final values), the share of x
    coordinates on the box, the range of the fitted slope over the last decade of window
    ends, and the power of k of the noise scale zeta_k lam_k^2."""
    k = np.asarray(traces[0]["k"], dtype=float)
    w = (k >= k_range[0]) & (k <= k_range[1])
    parts = []
    if values is not None:
        kv, v = values
        m = np.median(v[:, (kv >= k_range[0]) & (kv <= k_range[1])], axis=0)
        if m[0] > 0:
            parts.append(f"median x{m[-1] / m[0]:.3g} over the window")
        if np.all(np.diff(v[:, (kv >= k_range[0]) & (kv <= k_range[1])], axis=1) == 0):
            parts.append("unchanged in every seed over the window (the minimum was reached before it)")
    for col, what in (("pl_bound", "PL bound"), ("min_pi", "min pi"), ("entropy_bias", "entropy bias J*_0 - J_0(pi*_tau)")):
        y = np.stack([np.asarray(t[col], dtype=float)[w] for t in traces])
        s = _window_slope(k[w], y)
        end = float(np.median(y[:, -1]))
        parts.append(f"{what} ~ k^{s:.2f} (ends at {end:.2g})" if np.isfinite(s) else f"{what} ends at {end:.2g}")
    x = np.stack([np.asarray(t["x"], dtype=float)[w] for t in traces])
    scale = np.maximum(1.0, np.abs(np.concatenate([prob.lo, prob.hi])))
    on = np.isclose(x, prob.lo, atol=1e-9 * scale.max()) | np.isclose(x, prob.hi, atol=1e-9 * scale.max())
    parts.append(f"x on the box {100 * on.mean():.0f}%")
    if len(stab):
        late = stab.slopes[stab.ends >= stab.ends[-1] / 10]
        parts.append(f"slope over the last decade of window ends in [{late.min():.2f}, {late.max():.2f}]")
    parts.append(f"noise scale zeta lam^2 ~ k^{noise_exp:.2f}")
    return "; ".join(parts)


def judge(traces, problem_name, setting, cfg_decades=1.5, prob=None, theory=None):
    """The :class:`Claim` rows of one problem and setting: every quantity of
    ``CLAIMS[setting]`` in every form of :data:`FORMS`, fitted over the last ``cfg_decades``
    decades of ``traces`` (its runs, one per seed, logged at the same steps) against
    ``theory`` (default ``THEORY[setting]``).  ``prob``: the problem, for the diagnostics
    (None: no diagnostics)."""
    theory = THEORY[setting] if theory is None else theory
    exps = _schedule_exponents(traces[0])
    noise_exp = exps.get("zeta", 0.0) + 2 * exps.get("lam", 0.0)
    rows = []
    for claim, q in CLAIMS[setting]:
        k, v = _values(traces, q)
        for form, (kf, vf) in forms(k, v).items():
            rows.append(_judge_one(traces, problem_name, setting, claim, q, form, kf, vf, theory, cfg_decades,
                                   exps, noise_exp, prob))
    return rows


def _schedule_exponents(trace):
    """{name: power of k} of tau and lam (from the logged columns, over the last decade) and of
    zeta, alpha and beta (from the power laws recorded in ``meta["resolved"]``)."""
    out = {}
    k = np.asarray(trace["k"], dtype=float)
    hi = k[-1]
    lo = k[np.searchsorted(k, hi / 10)]
    for col in ("tau", "lam"):
        v = np.asarray(trace[col], dtype=float)
        a, b = v[np.searchsorted(k, lo)], v[-1]
        out[col] = float(np.log(b / a) / np.log(hi / lo)) if a > 0 and b > 0 else 0.0
    resolved = trace.meta.get("resolved", {})
    for name in ("zeta", "alpha", "beta"):
        found = re.search(r"\bp=([-+0-9.eE]+)\)", str(resolved.get(name, ""))) if isinstance(resolved, Mapping) else None
        if found:
            out[name] = -float(found.group(1))
    return out


#: an average whose slope is below this falls like 1/K: a finite early excess divided by K
TRANSIENT_SLOPE = -0.9
#: a slope is stable when, over the last decade of window ends, it moves by at most this or by the
#: half-width of its interval, whichever is larger
STABLE_SPAN = 0.05


def _judge_one(traces, problem_name, setting, claim, q, form, k, v, theory, decades, exps, noise_exp, prob):
    sched = tuple(sorted((n, round(e, 4)) for n, e in exps.items()))
    bad = ~np.isfinite(v)
    if bad.any():
        first = float(k[np.flatnonzero(bad.any(axis=0))[0]])
        return Claim(problem_name, setting, claim, q, form, theory, float("nan"), (float("nan"),) * 2, (first, first),
                     0.0, v.shape[0], "inconclusive", False, f"{int(bad.sum())} values not finite (first at k = {first:g})",
                     (), "the quantity is not defined at some logging points", sched, False)
    # a value of exactly 0 (a solver-accuracy zero) is clipped at 1e-300 (log of 0 is -inf)
    fit = fit_rate(k, v, decades=decades, theory=theory, schedules=dict(sched), floor=1e-300)
    stab = slope_stability(k, v, decades=decades, theory=theory, floor=1e-300)
    ver = verdict(fit)
    late = stab.slopes[stab.ends >= stab.ends[-1] / 10]
    half = (fit.ci[1] - fit.ci[0]) / 2 if fit.has_interval else 0.0
    stable = bool(late.max() - late.min() <= max(STABLE_SPAN, half))
    diag = "" if ver.verdict == "consistent" or prob is None else diagnose(traces, fit.k_range, stab, noise_exp, prob,
                                                                                  values=(k, v))
    if not stable:
        note = (f"the slope has not stabilized: from {_fmt(late[0])} to {_fmt(late[-1])} over the last decade of "
                f"window ends")
        diag = f"{diag}; {note}" if diag else note
    if form == "average" and fit.slope < TRANSIENT_SLOPE:
        last = fit_rate(k, _values(traces, q)[1][:, 1:], decades=decades, floor=1e-300)
        note = (f"the average falls like 1/K: it is dominated by its early excess, not by the rate (the last "
                f"iterate's slope is {_fmt(last.slope)})")
        diag = f"{diag}; {note}" if diag else note
    return Claim(problem_name, setting, claim, q, form, theory, fit.slope, tuple(map(float, fit.ci)),
                 tuple(map(float, fit.k_range)), float(fit.decades), fit.n_seeds, ver.verdict, ver.tight, ver.reason,
                 (float(late.min()), float(late.max())), diag, sched, stable)


# ----------------------------------------------------------------------------- sweep

def sweep_variants(cfg, prob):
    """``label -> (z, variant, ActorCriticConfig keywords, seeds)`` of the schedule sweep (fixed tau)."""
    tau0, res = resolved_tau0(cfg, prob)
    zeta0 = float(res.config.zeta(0))
    out = {}
    base = dict(_base(cfg), tau=tau0, lam=res.config.lam)
    for z in cfg.sweep_zeta_decay:
        zeta = schedules.power(zeta0, z)
        out[f"sweep z={z:g} exact"] = (z, "exact", dict(base, steps=cfg.sweep_exact_steps, zeta=zeta, exact=True), 1)
        out[f"sweep z={z:g} B=1"] = (z, "batch 1", dict(base, steps=cfg.sweep_steps, zeta=zeta), cfg.sweep_seeds)
        out[f"sweep z={z:g} B={cfg.sweep_batch}"] = (z, f"batch {cfg.sweep_batch}",
                                                      dict(base, steps=cfg.sweep_steps, zeta=zeta,
                                                           batch=cfg.sweep_batch), cfg.sweep_seeds)
    return out


def sweep_rows(cfg, runs, prob):
    """One row per exponent z: the last-iterate slopes of |grad Phi_tau|^2 (exact, batch 1,
    batch B) beside the noise-floor exponent -z + 2 q, and the batch-1 / batch-B ratio of
    the final medians."""
    variants = sweep_variants(cfg, prob)
    rows = []
    for z in cfg.sweep_zeta_decay:
        row = dict(zeta_decay=z)
        finals = {}
        for label, (zz, variant, kw, _) in variants.items():
            if zz != z:
                continue
            traces = runs[label]
            k, v = _values(traces, "grad_phi_norm2")
            q = exponent(kw["lam"], kw["steps"])
            row["noise_exponent"] = -z + 2 * q
            row["penalty_exponent"] = -2 * q
            fit = fit_rate(k[1:], v[:, 1:], decades=cfg.decades, floor=1e-300, deterministic=variant == "exact",
                           schedules={"zeta": -z, "lam": q})
            row[variant] = dict(slope=fit.slope, ci=list(map(float, fit.ci)) if fit.has_interval else None,
                                k_range=list(fit.k_range), final_median=float(np.median(v[:, -1])),
                                max_residual=fit.max_residual)
            finals[variant] = float(np.median(v[:, -1]))
        big = f"batch {cfg.sweep_batch}"
        row["batch_ratio"] = finals["batch 1"] / finals[big] if finals.get(big) else float("nan")
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- running

def names(cfg):
    """Every run group of the folder: ``<problem>/<setting>`` and the sweep's labels."""
    out = [f"{p}/{s}" for p in cfg.problems for s in SETTINGS]
    if cfg.sweep_zeta_decay:
        out += list(sweep_variants(cfg, problem(cfg, cfg.problems[0])))
    return out


def tasks(cfg, out, probs):
    todo = []
    for p in cfg.problems:
        for s, kw in settings(cfg, probs[p]).items():
            todo += [(partial(_setup, p), cfg, f"{p}/{s}", "actor_critic", kw, seed, out) for seed in range(cfg.seeds)]
    if cfg.sweep_zeta_decay:
        p = cfg.problems[0]
        for label, (_, _, kw, n) in sweep_variants(cfg, probs[p]).items():
            todo += [(partial(_setup, p), cfg, label, "actor_critic", kw, seed, out) for seed in range(n)]
    # the longest first, so that the pool's last runs are short
    return sorted(todo, key=lambda t: -t[4]["steps"] * t[4].get("batch", 1) * (300 if t[4].get("exact") else 1))


def run_claims(cfg, out, workers=1, progress=True):
    """Check the scales, run (or resume) every run, judge the claims; write ``scales.json``,
    ``verdicts.json`` and ``config.toml`` in ``out``.  Returns ``dict(claims, sweep, scales,
    groups)``; ConfigError (nothing run) for a problem that is not well scaled."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    probs = {p: problem(cfg, p) for p in cfg.problems}
    scales = [check_scales(cfg, p, probs[p]) for p in cfg.problems]
    write_atomic(out / "scales.json", json.dumps([asdict(s) for s in scales], indent=2))
    bad = [s for s in scales if not s.ok]
    if bad:
        raise ConfigError("; ".join(f"problem {s.problem!r} is not well scaled: {s.reason}" for s in bad))
    todo = tasks(cfg, out, probs)
    for task in {t[2]: t for t in todo}.values():  # each group's schedules pass the checks of eb.run
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ScheduleWarning)
                ActorCriticConfig(**task[4]).resolve(probs[task[0].args[0]])
        except ValueError as exc:
            raise ConfigError(f"the runs {task[2]!r} would be refused: {exc}") from None
    done = run_tasks(run_one, todo, workers, progress, NAME)
    groups = names(cfg)
    # exactly this configuration's runs (a folder may hold other seeds from an earlier configuration)
    paths = {g: [path for _, _, path in sorted((r for r in done if r[0] == g), key=lambda r: r[1])] for g in groups}
    runs = {g: [Trace.load(path) for path in paths[g]] for g in groups}
    claims = [c for p in cfg.problems for s in SETTINGS for c in judge(runs[f"{p}/{s}"], p, s, cfg.decades, probs[p])]
    sweep = sweep_rows(cfg, runs, probs[cfg.problems[0]]) if cfg.sweep_zeta_decay else []
    seconds = time.perf_counter() - t0
    write_atomic(out / "config.toml", dumps(cfg))
    # the runs' own wall times (each trace's last "time"), kept across resumed invocations
    run_seconds = float(sum(float(t["time"][-1]) for traces in runs.values() for t in traces))
    doc = dict(experiment=NAME, theory=THEORY, rule=RULE, coverage=COVERAGE, scales=[asdict(s) for s in scales],
               claims=[dict(asdict(c), label=c.label) for c in claims], sweep=sweep, seconds=seconds,
               run_seconds=run_seconds, steps=cfg.steps, seeds=cfg.seeds, sampling=cfg.sampling,
               runs={g: [str(Path(p).relative_to(out)) for p in ps] for g, ps in paths.items()})
    write_atomic(out / "verdicts.json", json.dumps(doc, indent=2, default=float))
    return dict(claims=claims, sweep=sweep, scales=scales, groups=groups)


def run_experiment(cfg, out, workers=1, progress=True):
    """:func:`run_claims`, then ``summary.json`` and the figures; the result of :func:`run_claims`."""
    t0 = time.perf_counter()
    result = run_claims(cfg, out, workers, progress)
    write_atomic(Path(out) / "summary.json", json.dumps(dict(experiment=NAME, methods=result["groups"],
                                                             seconds=time.perf_counter() - t0), indent=2))
    figures(out)
    return result


RULE = ("docs/theory.rst, \"Rates and verdicts\" (the theory's rate is an upper bound): inconsistent when the whole interval lies above the "
        "theory's exponent; consistent when the whole interval lies below 0 and it is not inconsistent (tight when "
        "it contains the exponent); inconclusive otherwise")
COVERAGE = ("Student-t interval over seeds at 95 %; coverage tested on synthetic data with a known slope "
            "(10 seeds, independent and AR(1) 0.8 noise): within [93 %, 97 %] (tests/test_rates.py)")


def _fmt(v):
    return "nan" if not np.isfinite(v) else f"{v:.3f}"


def table(result):
    """The verdict table (claim, quantity, theory, slope [interval], window, verdict, diagnostic), then the sweep."""
    lines = []
    head = ("problem", "setting", "claim", "form", "theory", "slope [95% interval]", "window k", "verdict", "stable")
    rows = [head]
    notes = []
    for c in result["claims"]:
        iv = f"{_fmt(c.slope)} [{_fmt(c.ci[0])}, {_fmt(c.ci[1])}]"
        rows.append((c.problem, c.setting, c.claim, c.form, _fmt(c.theory), iv,
                     f"[{c.k_range[0]:.3g}, {c.k_range[1]:.3g}]", c.label, "yes" if c.stable else "no"))
        if c.diagnostic and c.form == "average":
            notes.append(f"  {c.problem}, {c.setting}, {c.claim} (average), {c.label}: {c.diagnostic}")
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for j, r in enumerate(rows):
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())
        if j == 0:
            lines.append("-" * len(lines[0]))
    seen = {}
    for c in result["claims"]:
        seen.setdefault((c.problem, c.setting), c.schedules)
    lines += ["", "schedules (powers of k; every fit depends on them):"]
    lines += [f"  {p}, {s}: " + ", ".join(f"{n} ~ k^{e:.3g}" for n, e in sched) for (p, s), sched in seen.items()]
    if notes:
        lines += ["", "diagnostics (inconclusive or inconsistent averages; every row's is in verdicts.json):", *notes]
    if result["sweep"]:
        lines += ["", "schedule sweep (fixed tau, last iterate of |grad Phi_tau|^2):"]
        for r in result["sweep"]:
            cells = [f"z = {r['zeta_decay']:g}", f"noise floor zeta lam^2 ~ k^{r['noise_exponent']:.2f}",
                     f"penalty bias^2 lam^-2 ~ k^{r['penalty_exponent']:.2f}"]
            for variant, val in r.items():
                if isinstance(val, dict):
                    ci = f" [{_fmt(val['ci'][0])}, {_fmt(val['ci'][1])}]" if val["ci"] else " (deterministic)"
                    cells.append(f"{variant}: {_fmt(val['slope'])}{ci}")
            cells.append(f"final batch-1 / batch-B median {r['batch_ratio']:.3g}")
            lines.append("  " + "; ".join(cells))
    return "\n".join(lines)


# ----------------------------------------------------------------------------- figures

def figures(out):
    """Draw the figures of a results folder (PNG and PDF)."""
    out = Path(out)
    doc, runs = _load(out)
    problems_ = list(dict.fromkeys(c["problem"] for c in doc["claims"]))
    for p in problems_:
        _stationarity_figure(out, p, {s: runs[f"{p}/{s}"] for s in SETTINGS}, doc)
        _lower_figure(out, p, {s: runs[f"{p}/{s}"] for s in SETTINGS})
    if doc.get("sweep"):
        _sweep_figure(out, doc)


def _load(out):
    out = Path(out)
    try:
        doc = json.loads((out / "verdicts.json").read_text(encoding="utf-8"))
        groups = json.loads((out / "summary.json").read_text(encoding="utf-8"))["methods"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{out}: verdicts.json or summary.json missing or damaged ({type(exc).__name__}: {exc})") from None
    if isinstance(doc.get("runs"), dict):  # exactly the runs the verdicts were judged on
        return doc, {g: [Trace.load(out / p) for p in doc["runs"][g]] for g in groups}
    return doc, load_runs(out, groups)


def _median_band(v):
    return np.median(v, axis=0), np.quantile(v, 0.1, axis=0), np.quantile(v, 0.9, axis=0)


def _theory_guide(ax, k, y, p):
    """k^p from the median's value at the window's start, drawn dotted black over the last 1.5 decades."""
    k1 = k[-1]
    k0 = k1 / 10**1.5
    i = int(np.searchsorted(k, k0))
    ks = np.geomspace(k[i], k1, 20)
    ax.plot(ks, 0.5 * y[i] * (ks / k[i]) ** p, color="black", ls=":", lw=1.2, zorder=5)


def _stationarity_figure(out, p, by_setting, doc):
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    from .. import plots

    panels = [("fixed tau", "grad_phi_norm2", r"fixed $\tau$: $\|\nabla\Phi_\tau(x_k)\|^2$"),
              ("decaying tau", "grad_phi_norm2", r"decaying $\tau$: $\|\nabla\Phi_{\tau_k}(x_k)\|^2$"),
              ("decaying tau", "kkt_residual2", r"decaying $\tau$: KKT residual$^2$, $\tau = 0$")]
    with plots.paper_style():
        fig, axes = plt.subplots(2, 3, figsize=(plots.PAGE_WIDTH, 4.6), layout="constrained")
        for col, (s, q, title) in enumerate(panels):
            ax, ax2 = axes[0, col], axes[1, col]
            k, v = _values(by_setting[s], q)
            c = STYLE[s]["color"]
            fitted = forms(k, v)
            for form, (kf, vf) in fitted.items():
                mid, lo, hi = _median_band(vf)
                ax.plot(kf, mid, color=c, **FORM_LINE[form])
                if form == "average":
                    ax.fill_between(kf, lo, hi, color=c, alpha=0.18, lw=0)
                    _theory_guide(ax, kf, mid, THEORY[s])
            ax.set(xscale="log", yscale="log", title=title, xlabel="step $k$")
            for form in ("average", "last iterate"):
                kf, vf = fitted[form]
                stab = slope_stability(kf, vf, decades=1.5, theory=THEORY[s], floor=1e-300)
                handles = plots.plot_slope_stability(ax2, stab, theory=THEORY[s] if form == "average" else False,
                                                     color=c, label=form)
                if form == "last iterate":
                    handles[0].set_alpha(0.5)
            judged = {c_["form"]: c_["label"] for c_ in doc["claims"]
                      if c_["problem"] == p and c_["setting"] == s and c_["quantity"] == q}
            ax2.set_title(f"average: {judged.get('average', '-')}\nlast iterate: {judged.get('last iterate', '-')}")
            ax2.set_xlabel("window end $k$")
            ax2.set_ylabel("fitted slope over 1.5 decades" if col == 0 else "")
        grey = "0.25"
        handles = [Line2D([], [], color=grey, **FORM_LINE[f], label=f) for f in FORMS]
        handles += [Line2D([], [], color="black", ls=":", lw=1.2, label="theory exponent"),
                    Line2D([], [], color=STYLE["fixed tau"]["color"], lw=1.4, label="fixed tau"),
                    Line2D([], [], color=STYLE["decaying tau"]["color"], lw=1.4, label="decaying tau")]
        n = len(by_setting["fixed tau"])
        fig.legend(handles=handles, loc="outside lower center", ncols=6, frameon=False,
                   title=f"{p}: median over {n} seeds, band 10-90 % (top) and 95 % seed interval (bottom)")
        plots.save(fig, out / f"{p}-stationarity")
        plt.close(fig)


def _lower_figure(out, p, by_setting):
    import matplotlib.pyplot as plt

    from .. import plots

    with plots.paper_style():
        fig, axes = plt.subplots(2, len(LOWER), figsize=(plots.PAGE_WIDTH, 4.4), layout="constrained")
        for col, (claim, q) in enumerate(LOWER):
            ax, ax2 = axes[0, col], axes[1, col]
            for s in SETTINGS:
                k, v = _values(by_setting[s], q)
                kf, vf = forms(k, v)["average"]
                mid, lo, hi = _median_band(vf)
                ax.plot(kf, mid, color=STYLE[s]["color"], lw=1.4, label=s)
                ax.fill_between(kf, lo, hi, color=STYLE[s]["color"], alpha=0.18, lw=0)
                if np.all(mid > 0):
                    _theory_guide(ax, kf, mid, THEORY[s])
                if np.all(np.isfinite(vf)):
                    stab = slope_stability(kf, vf, decades=1.5, theory=THEORY[s], floor=1e-300)
                    plots.plot_slope_stability(ax2, stab, theory=False, color=STYLE[s]["color"], label=s)
                    ax2.axhline(THEORY[s], color=STYLE[s]["color"], ls=":", lw=1.1)
            ax.set(xscale="log", yscale="log", title=f"{LABELS[q]} (average)", xlabel="step $k$")
            ax2.set_xlabel("window end $k$")
            ax2.set_ylabel("fitted slope over 1.5 decades" if col == 0 else "")
        n = len(by_setting["fixed tau"])
        fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside lower center", ncols=2, frameon=False,
                   title=f"{p}: running average, median over {n} seeds, band 10-90 % (top);\n"
                         "slope with its 95 % interval over seeds (bottom); dotted: theory exponents")
        plots.save(fig, out / f"{p}-lower")
        plt.close(fig)


def _sweep_figure(out, doc):
    import matplotlib.pyplot as plt

    from .. import plots

    markers = {"exact": "D", "batch 1": "o"}
    with plots.paper_style():
        fig, ax = plt.subplots(figsize=(plots.COLUMN_WIDTH, 2.6), layout="constrained")
        zs = [r["zeta_decay"] for r in doc["sweep"]]
        ax.plot(zs, [r["noise_exponent"] for r in doc["sweep"]], color="black", ls=":", lw=1.2,
                label=r"noise floor $\zeta_k\lambda_k^2$")
        ax.plot(zs, [r["penalty_exponent"] for r in doc["sweep"]], color="0.5", ls="--", lw=1.0,
                label=r"penalty bias$^2$ $\lambda_k^{-2}$")
        variants = [v for v in doc["sweep"][0] if isinstance(doc["sweep"][0][v], dict)]
        for j, variant in enumerate(variants):
            ys = np.array([r[variant]["slope"] for r in doc["sweep"]])
            err = np.array([[r[variant]["slope"] - r[variant]["ci"][0], r[variant]["ci"][1] - r[variant]["slope"]]
                            if r[variant]["ci"] else [0.0, 0.0] for r in doc["sweep"]]).T
            ax.errorbar(np.array(zs) + 0.01 * (j - 1), ys, yerr=err, color=STYLE["fixed tau"]["color"],
                        marker=markers.get(variant, "^"), ls="none", ms=4, capsize=2,
                        mfc="white" if variant == "exact" else STYLE["fixed tau"]["color"], label=variant)
        ax.axhline(0, color="0.6", lw=0.6)
        ax.set_xlabel(r"$z$ in $\zeta_k = \zeta_0 (k+1)^{-z}$")
        ax.set_ylabel(r"last-iterate slope of $\|\nabla\Phi_\tau\|^2$")
        ax.legend(loc="best")
        plots.save(fig, out / "sweep")
        plt.close(fig)
