"""``run(problem, config, seed, method)``: one run of a bi-level method with ground-truth logging.

Methods (same configuration, same diagnostics, same :class:`~exactbilevel.trace.Trace` columns):

``"actor_critic"``
    the regularized single-loop actor-critic of spec section 4
    (:mod:`exactbilevel.actor_critic`; sampled and compiled, or ``exact=True``).
``"hypergradient"``
    the oracle baseline: exact hyper-gradient descent on Phi_{tau_k},
    ``x <- Proj(x - zeta_k grad Phi_{tau_k}(x))`` (spec section 3.1), the lower level
    solved exactly at every step (warm-started); at logging points theta and phi are the
    logits ``Q*_tau / tau`` of pi*_tau(x) and the critics are exact.  Needs tau_k > 0.

Every ``log_every`` steps (and at k = 0 and the end) a row is logged: k, samples
(environment transitions; 0 for the oracle), x, tau, lam, time (wall seconds since
the start) and, with ``config.diagnostics``, every quantity of
:data:`exactbilevel.diagnostics.QUANTITIES`.
"""

from __future__ import annotations

import time

import numpy as np

from .actor_critic import ActorCriticConfig, ActorCriticState, run_actor_critic
from .diagnostics import QUANTITIES, Diagnostics
from .gradients import hypergradient, lower_solve
from .problem import BilevelProblem
from .trace import TraceBuilder, run_metadata

__all__ = ["run", "METHODS"]

METHODS = ("actor_critic", "hypergradient")


def _hypergradient_descent(problem, config, on_log):
    mdp, reward = problem.mdp, problem.reward
    state = ActorCriticState.initial(problem)
    V = None

    def lower(k):
        tau = float(config.schedule_values(np.array([k]))["tau"][0])
        if tau <= 0:
            raise ValueError(f"method 'hypergradient' needs tau_k > 0; tau_{k} = {tau}")
        return tau, lower_solve(mdp, reward.value(state.x), tau, V0=V)

    def sync(sol, tau):
        for name in ("theta", "phi"):
            setattr(state, name, sol.Q / tau)
        state.Qtheta = state.Qphi = np.array(sol.Q)

    tau, sol = lower(0)
    sync(sol, tau)
    on_log(state)
    for k in range(config.steps):
        zeta = float(config.schedule_values(np.array([k]))["zeta"][0])
        g = hypergradient(mdp, reward, problem.objective, state.x, tau, solution=sol)
        state.x = problem.project(state.x - zeta * g)
        state.k = k + 1
        V = sol.V
        tau, sol = lower(k + 1)
        if state.k % config.log_every == 0 or state.k == config.steps:
            sync(sol, tau)
            on_log(state)
    return state


def run(problem, config, seed=0, method="actor_critic"):
    """Run ``method`` on ``problem`` with ``config``; returns a :class:`~exactbilevel.trace.Trace`.

    ``seed``: an int or a ``numpy.random.Generator``; the same seed gives the same trace
    (bit for bit, apart from the ``time`` column).
    """
    if not isinstance(problem, BilevelProblem):
        raise TypeError(f"problem must be an eb.BilevelProblem, got {type(problem).__name__}")
    if not isinstance(config, ActorCriticConfig):
        raise TypeError(f"config must be an eb.ActorCriticConfig, got {type(config).__name__}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    names = ["k", "samples", "x", "tau", "lam", "time"] + (list(QUANTITIES) if config.diagnostics else [])
    rows = TraceBuilder(names)
    diag = Diagnostics(problem, batch=config.batch) if config.diagnostics else None
    t0 = time.perf_counter()

    def on_log(state):
        v = config.schedule_values(np.array([state.k]))
        tau, lam = float(v["tau"][0]), float(v["lam"][0])
        row = dict(k=state.k, samples=state.samples, x=np.array(state.x), tau=tau, lam=lam)
        if diag is not None:
            row.update(diag(state, tau, lam))
        row["time"] = time.perf_counter() - t0
        rows.add(**row)

    if method == "actor_critic":
        run_actor_critic(problem, config, seed, on_log)
    else:
        _hypergradient_descent(problem, config, on_log)
    meta = run_metadata(dict(config.as_dict(), method=method), seed if not isinstance(seed, np.random.Generator) else None)
    return rows.build(meta)
