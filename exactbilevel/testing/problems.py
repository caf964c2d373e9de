"""A family of small bi-level problems and the success criterion of the default call.

:func:`defaults_family` draws the problems on which the resolved defaults
(:mod:`exactbilevel.defaults`) are measured (``benchmarks/bench_defaults.py``):

* a random MDP (Dirichlet rows) with S uniform in 5..30, A in 2..5, gamma in
  {0.75, 0.8, 0.9, 0.95, 0.99};
* a linear reward ``r = Psi x`` with i.i.d. N(0, s^2) features, s log-uniform in [0.05, 3],
  x of dimension d in 2..4, the box [-b, b]^d with b log-uniform in [2, 20];
* half of the problems an occupancy objective ``<nu, c> + kappa/2 |x|^2`` with
  c ~ uniform(-1, 1), the other half a policy-matching objective
  ``sum_{s,a} (pi(a|s) - target(a|s))^2 + kappa/2 |x|^2`` (target rows Dirichlet(1)),
  kappa = 0.1; x0 ~ 0.5 N(0, I), clipped to the box.

:func:`judge_run` applies the criterion: with tau_K the entropy weight at the last step,
a run succeeds when Phi_{tau_K}(x_K) < Phi_{tau_K}(x0), x_K lies off the box's boundary
(every coordinate more than 1e-9 box widths inside), and the lower level tracks,
``J*_{tau_K}(x_K) - J_{tau_K}(x_K, pi_phi) < 0.1 (J*_{tau_K}(x_K) - J_{tau_K}(x_K, uniform))``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from ..envs import random_mdp
from ..evaluation import evaluate
from ..gradients import lower_solve, softmax_policy
from ..objectives import CallableObjective, OccupancyObjective
from ..problem import BilevelProblem
from ..rewards import LinearReward

__all__ = ["FamilyProblem", "RunJudgement", "defaults_family", "judge_run", "policy_matching_objective"]

GAMMAS = (0.75, 0.8, 0.9, 0.95, 0.99)


@dataclass(frozen=True)
class FamilyProblem:
    """A drawn problem and what was drawn: ``problem``; ``seed``, S, A, gamma, d,
    ``feature_sd`` (s), ``box`` (b), ``objective`` ("occupancy" or "matching")."""

    problem: BilevelProblem
    seed: int
    S: int
    A: int
    gamma: float
    d: int
    feature_sd: float
    box: float
    objective: str

    def describe(self):
        return (f"S={self.S:2d} A={self.A} gamma={self.gamma:.2f} d={self.d} s={self.feature_sd:5.3f} "
                f"b={self.box:5.2f} {self.objective}")


def policy_matching_objective(mdp, target, kappa):
    """``f(x, pi) = sum (pi - target)^2 + kappa/2 |x|^2`` as a :class:`~exactbilevel.CallableObjective`."""
    target = np.array(target, dtype=np.float64)
    return CallableObjective(
        mdp,
        lambda x, pi: float(np.sum((pi - target) ** 2) + 0.5 * kappa * float(x @ x)),
        lambda x, pi: kappa * x,
        lambda x, pi: 2.0 * (pi - target),
    )


def defaults_family(seed, kappa=0.1):
    """The problem of the family (module docstring) drawn with ``numpy.random.default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    S, A = int(rng.integers(5, 31)), int(rng.integers(2, 6))
    gamma = float(rng.choice(GAMMAS))
    d = int(rng.integers(2, 5))
    s = float(np.exp(rng.uniform(np.log(0.05), np.log(3.0))))
    b = float(np.exp(rng.uniform(np.log(2.0), np.log(20.0))))
    mdp = random_mdp(S, A, gamma=gamma, seed=int(rng.integers(1 << 30)))
    reward = LinearReward(rng.normal(0.0, s, size=(S, A, d)))
    if rng.random() < 0.5:
        kind, obj = "occupancy", OccupancyObjective(mdp, rng.uniform(-1.0, 1.0, size=(S, A)), kappa=kappa)
    else:
        kind, obj = "matching", policy_matching_objective(mdp, rng.dirichlet(np.ones(A), size=S), kappa)
    x0 = np.clip(0.5 * rng.normal(size=d), -b, b)
    problem = BilevelProblem(mdp, reward, obj, x0, bounds=(-b, b))
    return FamilyProblem(problem, int(seed), S, A, gamma, d, s, b, kind)


@dataclass(frozen=True)
class RunJudgement:
    """The criterion of :func:`judge_run`: ``phi_x0`` and ``phi_end`` (Phi_{tau_K} at x0 and
    x_K), ``on_box``, ``relative_residual`` (the lower level's residual over the uniform
    policy's), ``min_pi`` (of pi_phi), ``success``."""

    phi_x0: float
    phi_end: float
    on_box: bool
    relative_residual: float
    min_pi: float
    success: bool

    def as_dict(self):
        return asdict(self)


def judge_run(problem, x, phi, tau):
    """:class:`RunJudgement` of a run that ended at ``x`` (d,) with logits ``phi`` (S, A) at
    entropy weight ``tau`` > 0 (module docstring); exact solves and evaluations."""
    mdp, obj = problem.mdp, problem.objective
    x = np.asarray(x, dtype=np.float64)

    def phi_tau(at):
        sol = lower_solve(mdp, problem.reward.value(at), tau)
        return obj.value(at, sol.pi), sol

    p0, _ = phi_tau(np.asarray(problem.x0))
    p1, sol = phi_tau(x)
    r = problem.reward.value(x)
    J_star = float(mdp.rho @ sol.V)
    pi = softmax_policy(np.asarray(phi, dtype=np.float64))
    J_phi = float(mdp.rho @ evaluate(mdp, r, pi, tau)[0])
    J_uni = float(mdp.rho @ evaluate(mdp, r, np.full((mdp.S, mdp.A), 1.0 / mdp.A), tau)[0])
    width = problem.hi - problem.lo
    on_box = bool(np.any(np.minimum(x - problem.lo, problem.hi - x) <= 1e-9 * width))
    rel = (J_star - J_phi) / max(J_star - J_uni, 1e-300)
    return RunJudgement(float(p0), float(p1), on_box, float(rel), float(pi.min()),
                        bool(p1 < p0 and not on_box and rel < 0.1))
