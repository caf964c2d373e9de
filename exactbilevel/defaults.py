"""Schedules resolved from the problem's own scales (docs/theory.rst, "Resolved defaults", a choice of this package).

A constant default (lam0 = 10, zeta0 = 0.05, ...) is wrong by orders of magnitude on most
problems: the upper step's noise grows like ``lam H G`` and ``f / lam`` must stay small next
to ``J``.  :func:`problem_scales` measures the scales once, before a run; :func:`default_schedules`
turns them into power laws ``c0 (k + 1)^(-p)``; :func:`time_scale_rates` gives the unit-free
rates that the ordering and the asymptotic conditions are checked on.

Scales (:class:`ProblemScales`), over a set of probe points of the box X -- x0, the box's
centre and its 2^d corners (64 corners drawn with a fixed seed when d > 6; an infinite
side of the box is replaced, for the scales only, by ``x0_i +- max(1, |x0|_inf)``):

=================  =========================================================================
``horizon``        H = 1 / (1 - gamma)
``reward_x0``      R0 = max r_x0 - min r_x0 (spread of the reward over (s, a) at x0)
``reward_box``     Rbox = the largest such spread over the probe points
``reward_max_x0``  max r_x0 (for the critics' start)
``reward_ref``     Rref = sqrt(max(R0, Rbox / 100) Rbox): the geometric mean of the spread at
                   x0 and over the box (x travels between the two; R0 is floored at Rbox / 100 so
                   that x0 = 0 of a linear reward does not give Rref = 0)
``feature``        G = max over the probe points and (s, a) of ``|grad_x r_x(s, a)|_2``
``box_width``      L = ``|hi - lo|_2`` (the diameter of the box)
``cost``           F = max c - min c of the upper cost c at (x0, uniform policy): the objective's
                   own cost for an occupancy objective, ``occupancy_cost`` otherwise
=================  =========================================================================

Default schedules (each only where the user did not set it; ``tau0`` is the user's tau at
k = 0 when given, else the default's; where tau0 = 0 the reward scale Rref takes its place
in the formulas for alpha, lam and the critics):

==============  =========================================  ==============================================
tau             0.5 Rref (k+1)^-0.05                       comparable to the reward spread, so that
                                                           pi*_tau keeps every action's probability at
                                                           least about exp(-Rref / tau); decays slowly
                                                           (see "the lock" below)
alpha (actors)  0.1 / (tau0 H) (k+1)^-0.1                  a natural actor's row moves by
                                                           alpha H tau0 = 10 % of a soft policy-iteration
                                                           step per visit; the per-visit logit change
                                                           alpha H Ahat is unit-free
beta (critics)  0.5 (k+1)^-0.05                            a fraction of the TD error (unit-free)
lam             F / (tau0 H) (k+1)^0.1                     f / lam is then of the order of tau H, the
                                                           scale of J_tau's curvature in pi: the
                                                           penalized policy's deviation from pi*_tau
                                                           and the residual bias ``lam H |R^T d nu|`` stay
                                                           of the order of the hyper-gradient
zeta (upper)    c_z L / (sqrt(2) lam0 H G) (k+1)^-0.3      the x-noise sd per step, zeta lam H G sqrt(2),
                                                           is c_z box widths; c_z = 1e-3 / sqrt(B)
                                                           sampled with batch B; with exact updates
                                                           c_z = 3e-2 and lam0 -> F / (tau0 H) (rates)
critic_init     H (max r_x0 + tau0 log A)                  optimistic: an upper bound of every soft Q at
                                                           x0.  A natural actor moves a row by the
                                                           advantages of all its actions, so actions not
                                                           yet sampled are judged by their critics' start;
                                                           started below the true values they look bad,
                                                           are not sampled again and the lower level
                                                           locks (on the 10 x 10 GridWorld a start at the
                                                           uniform policy's soft value under a zero
                                                           reward left residual_phi at the uniform
                                                           policy's); started above, they are tried and
                                                           corrected
actor           "npg"                                      the natural actor (docs/theory.rst, "The algorithm");
                                                           softmax PG moves a row by pi(a|s) times as
                                                           much, and over the bench_defaults family its
                                                           lower level tracked less often
==============  =========================================  ==============================================

Exponents: alpha / beta ~ k^-0.05 -> 0; zeta lam / alpha ~ k^-0.1 -> 0;
``|tau_{k+1} - tau_k| / (alpha_k tau_k) ~ 0.05 k^-0.9 -> 0``; lam -> infinity: every condition
of docs/theory.rst, "The algorithm" holds.

Unit-free rates (:func:`time_scale_rates`), invariant when x, r or the box are rescaled
(features, box and x0 by c; or rewards, tau and costs by c):

* critic: b_k = beta_k (fraction of a TD error per visit);
* actors: a_k = alpha_k H tau_k (fraction of a soft policy-iteration step per visit; tau_k
  replaced by Rref where tau_k = 0);
* upper: z_k = zeta_k lam_k H G sqrt(2) / L (the sd of one upper step's noise, in box widths);
  with exact updates (``exact=True`` and the oracle methods), which have no noise, lam_k is
  replaced by the penalty scale F / (tau_k H), at which the expected upper step has the size
  of grad Phi_tau whatever lam is (so fixing lam = 200 does not shrink the default zeta).

The time-scale ordering asks b_k >= a_k >= z_k along the run.

The lock.  pi*_tau gives action b of state s the probability exp(-(V - Q(s, b)) / tau); a
sampled critic learns Q(s, b) only from visits to (s, b), at about beta nu(s, b) per step.
Once exp(-DeltaQ / tau_k) falls below about 1 / (k beta_k) -- DeltaQ the action gap of Q,
up to Rref H -- actions stop being sampled, their critic values go stale, pi_phi and pi_theta
freeze apart and E[ghat] = lam H R^T (nu_phi - nu_theta) becomes a constant push towards the
box.  Any power-law decay of tau meets that bound eventually (it needs tau_k >= DeltaQ /
log(k beta_k)); the default exponent 0.05 keeps Rref / tau_k below 2 k^0.05 (3.7 at k = 2e5,
5 at k = 1e8).  This is a property of the algorithm of docs/theory.rst, "The algorithm" with power-law tau, not
of the defaults; a faster decay is the user's to choose and is reported by the diagnostics
(min_pi, residual_phi).

Known limits of the defaults (measured, ``benchmarks/bench_defaults.py`` and the experiments):

* the cost scale F is the spread of the upper cost c; for an objective that is not
  occupancy-linear, c = grad_pi f / d(s) (``occupancy_cost``) is large where d is small, so F
  can overstate f's sensitivity by orders of magnitude: on the happy-tweets prefix tree
  (342 states) F = 4.7e3, lam0 = 237 and x barely moves; that experiment sets lam and zeta;
* a faster tau decay with the other defaults unchanged tracks worse: with tau_k =
  0.5 Rref (k+1)^-0.2 the bench_defaults success fell from 29 to 16 of 30 at 2 x 10^5 steps,
  the failures being lags of the lower level (residual_phi 27-230 % of J* - J(uniform)),
  not locks (min pi_phi 0.007-0.4).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import asdict, dataclass

import numpy as np

from . import schedules as sch

__all__ = ["ProblemScales", "problem_scales", "default_schedules", "time_scale_rates", "SCHEDULE_NAMES"]

SCHEDULE_NAMES = ("tau", "lam", "alpha", "beta", "zeta")

# constants of the default schedules (module docstring)
TAU_C, TAU_P = 0.5, 0.05
ALPHA_C, ALPHA_P = 0.1, 0.1
BETA_C, BETA_P = 0.5, 0.05
LAM_C, LAM_Q = 1.0, 0.1
ZETA_C_SAMPLED, ZETA_C_EXACT, ZETA_P = 1e-3, 3e-2, 0.3
_MAX_CORNERS = 64


@dataclass(frozen=True)
class ProblemScales:
    """The scales of a :class:`~exactbilevel.BilevelProblem` (module docstring)."""

    horizon: float
    reward_x0: float
    reward_box: float
    reward_ref: float
    reward_max_x0: float
    feature: float
    box_width: float
    cost: float
    S: int
    A: int
    gamma: float

    def as_dict(self):
        return asdict(self)


def _probe_points(problem):
    x0 = np.asarray(problem.x0, dtype=np.float64)
    w = max(1.0, float(np.max(np.abs(x0))) if x0.size else 1.0)
    lo = np.where(np.isfinite(problem.lo), problem.lo, x0 - w)
    hi = np.where(np.isfinite(problem.hi), problem.hi, x0 + w)
    d = x0.size
    if d <= 6:
        corners = [np.where(np.array(bits, dtype=bool), hi, lo) for bits in itertools.product((0, 1), repeat=d)]
    else:
        bits = np.random.default_rng(0).integers(0, 2, size=(_MAX_CORNERS, d)).astype(bool)
        corners = [np.where(b, hi, lo) for b in bits]
    return [x0, 0.5 * (lo + hi)] + corners, lo, hi


def problem_scales(problem):
    """:class:`ProblemScales` of ``problem`` (module docstring): one reward value and
    Jacobian per probe point and one upper cost at (x0, uniform)."""
    from .objectives import occupancy_cost  # noqa: PLC0415 (import cycle)

    mdp = problem.mdp
    points, lo, hi = _probe_points(problem)
    spreads, feats = [], []
    r_max = float(np.max(problem.reward.value(points[0])))
    for x in points:
        r = np.asarray(problem.reward.value(x), dtype=np.float64)
        R = np.asarray(problem.reward.jacobian(x), dtype=np.float64)
        spreads.append(float(r.max() - r.min()))
        feats.append(float(np.sqrt(np.max(np.sum(R * R, axis=-1)))))
    uniform = np.full((mdp.S, mdp.A), 1.0 / mdp.A)
    c = np.asarray(occupancy_cost(problem.objective, np.asarray(problem.x0), uniform, mdp))
    R0, Rbox = spreads[0], max(spreads)
    return ProblemScales(
        horizon=1.0 / (1.0 - mdp.gamma), reward_x0=R0, reward_box=Rbox,
        reward_ref=math.sqrt(max(R0, Rbox / 100.0) * Rbox), reward_max_x0=r_max, feature=max(feats),
        box_width=float(np.linalg.norm(hi - lo)), cost=float(c.max() - c.min()),
        S=int(mdp.S), A=int(mdp.A), gamma=float(mdp.gamma),
    )


def _need(value, what, schedule):
    if not (value > 0 and math.isfinite(value)):
        raise ValueError(f"cannot derive a default {schedule} schedule: the problem's {what} is {value}; "
                         f"pass {schedule}= explicitly to ActorCriticConfig")
    return value


def default_schedules(scales, given, exact=False, batch=1):
    """``dict name -> schedule`` for every name of :data:`SCHEDULE_NAMES` and ``critic_init``:
    the user's where ``given[name]`` is not None, else the default of the module docstring.

    ``given``: ``dict name -> schedule or None`` (and ``critic_init``: a number or None)."""
    H = scales.horizon
    out = {}
    if given.get("tau") is not None:
        out["tau"] = given["tau"]
    else:
        out["tau"] = sch.power(TAU_C * _need(scales.reward_ref, "reward spread", "tau"), TAU_P)
    tau0 = float(sch.evaluate("tau", out["tau"], [0])[0])
    tau_s = tau0 if tau0 > 0 else _need(scales.reward_ref, "reward spread", "alpha")
    out["alpha"] = given["alpha"] if given.get("alpha") is not None else sch.power(ALPHA_C / (tau_s * H), ALPHA_P)
    out["beta"] = given["beta"] if given.get("beta") is not None else sch.power(BETA_C, BETA_P)
    if given.get("lam") is not None:
        out["lam"] = given["lam"]
    else:
        out["lam"] = sch.power(LAM_C * _need(scales.cost, "upper cost spread (f does not depend on pi at x0)", "lam")
                               / (tau_s * H), -LAM_Q)
    if given.get("zeta") is not None:
        out["zeta"] = given["zeta"]
    elif scales.box_width == 0:
        out["zeta"] = sch.constant(1.0)  # a one-point box: x cannot move and zeta does nothing
    else:
        lam0 = _upper_lam(scales, float(sch.evaluate("lam", out["lam"], [0])[0]), tau_s, exact)
        c = ZETA_C_EXACT if exact else ZETA_C_SAMPLED / math.sqrt(batch)
        G = _need(scales.feature, "feature scale |grad_x r|", "zeta")
        out["zeta"] = sch.power(c * _need(scales.box_width, "box width", "zeta") / (math.sqrt(2.0) * lam0 * H * G),
                                ZETA_P)
    ci = given.get("critic_init")
    out["critic_init"] = float(ci) if ci is not None else H * (scales.reward_max_x0 + tau0 * math.log(scales.A))
    return out


def _upper_lam(scales, lam, tau, exact):
    """The penalty weight that sets the upper step's scale: lam itself for sampled updates (the
    noise of ghat is lam H G sqrt(2)); for exact updates, which carry no noise, the penalty
    scale F / (tau H) at which E[ghat] = grad_x f + lam H R^T (nu_phi - nu_theta) has the
    size of grad Phi_tau whatever lam is."""
    if not exact:
        return lam
    return LAM_C * scales.cost / (tau * scales.horizon) if scales.cost > 0 else lam


def time_scale_rates(scales, values, exact=False):
    """Unit-free rates ``dict b, a, z -> arrays`` from schedule values (``dict name -> array``
    at the same steps; module docstring).  ``exact``: expected updates, for which z uses the
    penalty scale F / (tau H) in place of lam (no noise to scale by)."""
    tau = np.where(values["tau"] > 0, values["tau"], scales.reward_ref)
    b = np.asarray(values["beta"], dtype=np.float64)
    a = values["alpha"] * scales.horizon * tau
    lam = _upper_lam(scales, values["lam"], tau, exact)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = values["zeta"] * lam * scales.horizon * scales.feature * math.sqrt(2.0) / scales.box_width
    if scales.box_width == 0 or scales.feature == 0:
        z = np.zeros_like(b)  # x cannot move, or the reward does not depend on it
    return dict(b=b, a=a, z=z)
