"""exactbilevel: bi-level reinforcement learning on tabular MDPs, measured against exact ground truth.

The sample-based regularized actor-critic of Zeng, Bhatt, Ganesh and Koppel
(arXiv 2601.16399) beside compiled exact solvers.  See the theory page,
``docs/theory.rst``, for the mathematics.
"""

from .mdp import TabularMDP
from .rewards import GaussianGoalReward, LinearReward, TabularReward
from .bellman import bellman_operator, policy_from_q, q_values
from .solvers import ConvergenceError, SolveResult, solve
from .evaluation import evaluate, occupancy
from .objectives import CallableObjective, DistributionMatchingObjective, OccupancyObjective
from .limits import limit_policy, optimal_actions
from .gradients import (
    Hypergradient, action_gap, expected_return, hypergradient, natural_policy_gradient,
    optimal_return_gradient, policy_gradient, return_gradient, soft_advantage, softmax_policy,
)
from .penalty import Lagrangian, PenalizedPolicy, penalized_policy, penalty_lagrangian, value_penalty
from .problem import BilevelProblem
from . import defaults
from .actor_critic import ActorCriticConfig, Resolution, ScheduleWarning
from .trace import Trace
from .rates import RateFit, SlopeStability, Verdict, fit_rate, rate_table, slope_stability, verdict
from .running import running_mean, running_min
from .runner import run
from . import envs, preferences, schedules

__version__ = "0.1.0"

__all__ = [
    "TabularMDP",
    "LinearReward",
    "TabularReward",
    "GaussianGoalReward",
    "q_values",
    "bellman_operator",
    "policy_from_q",
    "solve",
    "SolveResult",
    "ConvergenceError",
    "evaluate",
    "occupancy",
    "OccupancyObjective",
    "DistributionMatchingObjective",
    "CallableObjective",
    "softmax_policy",
    "expected_return",
    "soft_advantage",
    "policy_gradient",
    "natural_policy_gradient",
    "return_gradient",
    "optimal_return_gradient",
    "hypergradient",
    "Hypergradient",
    "action_gap",
    "limit_policy",
    "optimal_actions",
    "value_penalty",
    "penalty_lagrangian",
    "Lagrangian",
    "penalized_policy",
    "PenalizedPolicy",
    "envs",
    "preferences",
    "schedules",
    "BilevelProblem",
    "ActorCriticConfig",
    "Resolution",
    "defaults",
    "ScheduleWarning",
    "Trace",
    "run",
    "fit_rate",
    "slope_stability",
    "verdict",
    "SlopeStability",
    "Verdict",
    "RateFit",
    "running_mean",
    "running_min",
    "rate_table",
    "__version__",
]
