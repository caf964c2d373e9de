"""``run(problem, config, seed, method)``: one run of a bi-level method with ground-truth logging.

Methods (same configuration, same diagnostics, same :class:`~exactbilevel.trace.Trace` columns):

``"actor_critic"``
    the regularized single-loop actor-critic of docs/theory.rst, "The algorithm"
    (:mod:`exactbilevel.actor_critic`; sampled and compiled, or ``exact=True``).
``"partial_sgd"``
    the same sampled loop with the upper step ``x <- Proj(x - zeta_k grad_x f(x))``: it
    ignores how pi* moves with x.
``"finite_differences"``
    finite differences of Phi estimated by the lower-level learner: at every step, for each
    coordinate i and sign, the theta learner (actor and critics, lam = infinity) is run
    ``fd_inner`` steps at ``x +- h e_i`` from its current state, and
    ``Phihat = (1 - gamma) sum_s rho(s) sum_a pi_theta(a|s) Qc(s, a) + psi(x)`` is read off
    its cost critic (an objective that is not occupancy-linear is evaluated exactly,
    ``Phihat = f(x, pi_theta)``); ``x <- Proj(x - zeta_k g)`` with the central differences g; then the
    learner runs ``fd_inner`` steps at the new x.  Every transition is counted; phi and its
    critic mirror theta's for the diagnostics.
``"rlhf"``
    the two-stage baseline of standard RLHF: x is fitted once to the initial (reference)
    policy pi_0 = softmax(0), ``x = argmin_{x in X} f(x, pi_0)`` (exactly, L-BFGS-B from x0:
    the reward model fitted on unlimited reference samples), then the lower-level learner
    (theta alone, lam = infinity, i.i.d. sampling, the tau, alpha, beta schedules) runs at
    that fixed x for ``steps`` steps; phi and its critic mirror theta's.
``"hypergradient"``
    the oracle baseline: exact hyper-gradient descent on Phi_{tau_k},
    ``x <- Proj(x - zeta_k grad Phi_{tau_k}(x))`` (docs/theory.rst, "The hyper-gradient"), the lower level
    solved exactly at every step (warm-started).  Needs tau_k > 0.
``"nested_penalty"``
    the nested loop with the penalty gradient: at every step the penalized policy
    theta_{lam_k}(x) is solved exactly (:func:`~exactbilevel.penalized_policy`, warm-started),
    then ``x <- Proj(x - zeta_k grad ell_{lam_k,tau_k}(x))`` (docs/theory.rst, "The value penalty").  Needs tau_k > 0.

For the two oracle methods, at logging points phi holds the logits ``Q*_tau / tau`` of
pi*_tau(x), theta those of the penalized policy (nested) or of pi*_tau(x) (hyper-gradient),
and the critics are exact; their samples column counts no environment transitions.

At every logging point k of ``config.log_steps()`` (k = 0 and the end included; every
``log_every`` steps, or geometrically spaced with ``log_spacing="geometric"``) a row is logged: k, samples
(environment transitions; 0 for the oracle), x, tau, lam, time (wall seconds since
the start, when the row was complete), the user's ``metrics`` and, with
``config.diagnostics``, every quantity of :data:`exactbilevel.diagnostics.QUANTITIES`,
computed in a background thread on a snapshot of the iterate while the compiled loop
continues.
"""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numba
import numpy as np
import scipy.optimize
import tqdm

from ._validation import ConvergenceError, check_choice, is_integer
from .actor_critic import (
    ActorCriticConfig, ActorCriticState, compiled_model, learner_steps, run_actor_critic, transition_sampler,
)
from .diagnostics import QUANTITIES, Diagnostics
from .evaluation import evaluate
from .gradients import hypergradient, lower_solve, softmax_policy
from .objectives import OccupancyObjective, occupancy_cost
from .penalty import penalized_policy
from .problem import BilevelProblem
from .trace import TraceBuilder, _column, run_metadata

__all__ = ["run", "METHODS"]

METHODS = ("actor_critic", "partial_sgd", "finite_differences", "rlhf", "hypergradient", "nested_penalty")


def _mirror(st):
    """phi and its critic take theta's (methods whose learner is theta alone)."""
    st.phi, st.Qphi = np.array(st.theta), np.array(st.Qtheta)


def _learner(problem):
    """The compiled model, sampler and loop dict of the theta learner (i.i.d. draws: no chains)."""
    return (compiled_model(problem), transition_sampler(problem.mdp),
            dict(chains=np.zeros(2, dtype=np.int64), counter=np.zeros(1, dtype=np.int64)))


def _finite_differences(problem, config, rng, on_log, on_steps):
    mdp, obj = problem.mdp, problem.objective
    model, sampler, loop = _learner(problem)
    state = ActorCriticState.initial(problem, config.critic_init)

    def phi_hat(st, x):
        pi = softmax_policy(st.theta)
        if not isinstance(obj, OccupancyObjective):
            return obj.value(x, pi)  # evaluated exactly (docs/theory.rst, "Happy tweets")
        z = x - (0.0 if obj.center is None else np.asarray(obj.center))
        return (1 - mdp.gamma) * float(mdp.rho @ np.sum(pi * st.Qc, axis=1)) + 0.5 * obj.kappa * float(z @ z)

    on_log(state)
    logs, at = config.log_steps(), 1  # logs[at]: the next logging point
    h, m = float(config.fd_step), config.fd_inner
    for k in range(config.steps):
        v = config.schedule_values(np.array([k]))
        tau, alpha, beta, zeta = (float(v[n][0]) for n in ("tau", "alpha", "beta", "zeta"))
        g = np.zeros(problem.d)
        for i in range(problem.d):
            points, values = [], []
            for sign in (1.0, -1.0):
                trial = state.copy()
                xp = problem.project(state.x + sign * h * np.eye(problem.d)[i])
                learner_steps(problem, trial, xp, tau, alpha, beta, m, rng, model, sampler, loop)
                points.append(xp[i])
                values.append(phi_hat(trial, xp))
            if points[0] > points[1]:
                g[i] = (values[0] - values[1]) / (points[0] - points[1])
        state.x = problem.project(state.x - zeta * g)
        learner_steps(problem, state, state.x, tau, alpha, beta, m, rng, model, sampler, loop)
        at = _reached(state, k + 1, logs, at, on_steps, on_log)
    return state


def _reached(state, k, logs, at, on_steps, on_log):
    """Set ``state.k = k``, report it to ``on_steps``, and log (after :func:`_mirror`) when k is
    the next logging point ``logs[at]``; returns the index of the next logging point."""
    state.k = k
    if on_steps is not None:
        on_steps(k)
    if k == logs[at]:
        _mirror(state)
        on_log(state)
        return at + 1
    return at


def _rlhf(problem, config, rng, on_log, on_steps):
    mdp, obj = problem.mdp, problem.objective
    pi0 = softmax_policy(np.zeros((mdp.S, mdp.A)))
    bounds = [(None if np.isinf(a) else a, None if np.isinf(b) else b) for a, b in zip(problem.lo, problem.hi)]
    fit = scipy.optimize.minimize(lambda x: (obj.value(x, pi0), obj.grad_x(x, pi0)), problem.x0, jac=True,
                                  method="L-BFGS-B", bounds=bounds, options=dict(maxiter=10_000, gtol=1e-10))
    if not fit.success:
        raise ConvergenceError(f"rlhf: fitting x to the reference policy failed ({fit.message}); "
                               "check that f(x, pi_0) is bounded below on the box")
    model, sampler, loop = _learner(problem)
    state = ActorCriticState.initial(problem, config.critic_init)
    state.x = problem.project(fit.x)
    on_log(state)
    logs = config.log_steps()
    # with a progress display, blocks of at most steps // 1000 (splitting changes no draw)
    ends = logs if on_steps is None else np.union1d(logs, np.arange(0, config.steps, max(1, config.steps // 1000)))
    at = 1  # logs[at]: the next logging point
    for start, stop in zip(ends[:-1], ends[1:]):
        ks = np.arange(start, stop)
        v = config.schedule_values(ks)
        learner_steps(problem, state, state.x, v["tau"], v["alpha"], v["beta"], ks.size, rng, model, sampler, loop)
        at = _reached(state, int(stop), logs, at, on_steps, on_log)
    return state


def _oracle_descent(problem, config, on_log, on_steps, penalty):
    """x <- Proj(x - zeta_k g_k) with g_k the exact hyper-gradient or the penalty gradient."""
    mdp, reward, obj = problem.mdp, problem.reward, problem.objective
    state = ActorCriticState.initial(problem, config.critic_init)
    V, theta_lam = None, None

    def lower(k):
        v = config.schedule_values(np.array([k]))
        tau, lam = float(v["tau"][0]), float(v["lam"][0])
        if tau <= 0:
            raise ValueError(f"the oracle methods need tau_k > 0; tau_{k} = {tau}")
        sol = lower_solve(mdp, reward.value(state.x), tau, V0=V)
        pen = penalized_policy(mdp, reward, obj, state.x, lam, tau, theta0=theta_lam, solution=sol) if penalty else None
        return tau, sol, pen

    def sync(tau, sol, pen):
        state.phi = sol.Q / tau
        state.Qphi = np.array(sol.Q)
        state.theta = np.array(pen.theta) if pen is not None else sol.Q / tau
        pi_theta = softmax_policy(state.theta)
        state.Qtheta = evaluate(mdp, reward.value(state.x), pi_theta, tau)[1]
        state.Qc = evaluate(mdp, occupancy_cost(obj, state.x, pi_theta, mdp), pi_theta, 0.0)[1]

    tau, sol, pen = lower(0)
    sync(tau, sol, pen)
    on_log(state)
    logs, at = config.log_steps(), 1  # logs[at]: the next logging point
    for k in range(config.steps):
        zeta = float(config.schedule_values(np.array([k]))["zeta"][0])
        g = pen.grad_ell if penalty else hypergradient(mdp, reward, obj, state.x, tau, solution=sol)
        state.x = problem.project(state.x - zeta * g)
        state.k = k + 1
        V = sol.V
        theta_lam = None if pen is None else pen.theta
        tau, sol, pen = lower(k + 1)
        if on_steps is not None:
            on_steps(state.k)
        if state.k == logs[at]:
            at += 1
            sync(tau, sol, pen)
            on_log(state)
    return state


def _save_checkpoint(path, run_id, state, loop, rng, rows, diag):
    """Everything needed to continue, in one .npz written atomically."""
    arrays = {f"state_{n}": getattr(state, n) for n in ("x", "theta", "phi", "Qtheta", "Qphi", "Qc")}
    arrays.update({f"loop_{n}": v for n, v in loop.items()})
    if diag is not None:
        arrays.update({f"diag_{n}": v for n, v in diag.warm_starts().items() if v is not None})
    partial = rows.build({})
    arrays.update({f"row_{n}": partial[n] for n in partial.columns})
    meta = dict(run_id=run_id, k=state.k, samples=state.samples, rng=rng.bit_generator.state)
    arrays["meta"] = np.array(json.dumps(meta))
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _load_checkpoint(path, run_id, rng, rows, diag):
    """Resume from the checkpoint ``path``; ValueError naming the file if it is not a checkpoint
    (not an .npz archive, damaged, or missing an entry) or belongs to another run."""
    from .trace import read_npz

    def damaged(reason):
        return ValueError(f"checkpoint {path} is not a checkpoint of exactbilevel.run ({reason}); "
                          "delete it or choose another checkpoint path")

    try:
        z = read_npz(path)
    except ValueError as exc:
        raise damaged(exc) from None
    try:
        meta = json.loads(str(z["meta"]))
        if not isinstance(meta, dict) or "run_id" not in meta:
            raise ValueError("its meta entry has no run_id")
    except (KeyError, ValueError, TypeError) as exc:
        raise damaged(f"no readable meta entry: {exc}") from None
    if meta["run_id"] != run_id:
        raise ValueError(f"checkpoint {path} belongs to another run (configuration, seed or method differ); "
                         "delete it or choose another checkpoint path")
    try:
        state = ActorCriticState(*(np.array(z[f"state_{n}"]) for n in ("x", "theta", "phi", "Qtheta", "Qphi", "Qc")),
                                 k=meta["k"], samples=meta["samples"])
        loop = {n[5:]: np.array(v) for n, v in z.items() if n.startswith("loop_")}
        names = [n[4:] for n in z if n.startswith("row_")]
        for i in range(z[f"row_{names[0]}"].shape[0]):
            rows.add(**{n: z[f"row_{n}"][i] for n in names})
        if diag is not None:
            diag.set_warm_starts({n[5:]: np.array(v) for n, v in z.items() if n.startswith("diag_")})
        rng.bit_generator.state = meta["rng"]
    except (KeyError, IndexError, ValueError, TypeError) as exc:  # the arrays are in memory: a wrong entry
        raise damaged(f"{type(exc).__name__}: {exc}") from None
    return state, loop


class _Done:
    """A finished 'future' (the row of a run without diagnostics)."""

    def __init__(self, value):
        self._value = value

    def result(self):
        return self._value


def _check_metrics(metrics, names):
    if metrics is None:
        return {}
    if not isinstance(metrics, dict):
        raise TypeError(f"metrics must be a dict name -> callable(state), got {type(metrics).__name__}")
    for name, fn in metrics.items():
        if not isinstance(name, str) or name in names:
            raise ValueError(f"metrics: the metric name {name!r} must be a str and not one of the trace's columns "
                             f"{names}")
        try:
            _column(name, [0.0])
        except ValueError as exc:
            raise ValueError(f"metrics: {exc}") from None
        if not callable(fn):
            raise TypeError(f"metrics[{name!r}] must be callable(state) -> number or array, got {type(fn).__name__}")
    return dict(metrics)


def _metric_value(name, fn, state, shapes):
    """A copy of ``fn(state)`` as float64 (the loop updates the state in place, so a view
    would log a later iterate), of the shape it had at the first logging point."""
    raw = fn(state)
    try:
        value = np.array(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"metrics[{name!r}] must return a number or a numeric array, got "
                        f"{type(raw).__name__}") from None
    if shapes.setdefault(name, value.shape) != value.shape:
        raise ValueError(f"metrics[{name!r}] returned shape {value.shape} at k = {state.k}, but "
                         f"{shapes[name]} at the first logging point; a metric's shape must be fixed")
    return value


def _check_seed(seed):
    """``(seed, record)``: the seed as numpy takes it and its JSON record (run's docstring)."""
    if isinstance(seed, np.random.Generator):
        return seed, {"generator": type(seed.bit_generator).__name__, "state": seed.bit_generator.state}
    if isinstance(seed, np.random.SeedSequence):
        key = [int(v) for v in seed.spawn_key]
        return seed, {"entropy": int(seed.entropy) if np.isscalar(seed.entropy) else [int(v) for v in seed.entropy],
                      "spawn_key": key}
    if not is_integer(seed):
        raise TypeError(f"seed must be an integer >= 0, a numpy.random.SeedSequence or a numpy.random.Generator, "
                        f"got {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}; numpy seeds are non-negative integers")
    return int(seed), int(seed)


def _check_checkpoint(path):
    """The checkpoint path as a Path: a str or os.PathLike naming a file (not a folder), without NUL."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"checkpoint must be a path (a str or os.PathLike) or None, got {type(path).__name__}")
    path = Path(path)
    if "\0" in str(path):
        raise ValueError("checkpoint contains a NUL character; give the path of a file")
    if path.is_dir():
        raise ValueError(f"checkpoint {path} is a folder; give the path of a file in it, e.g. {path / 'run.ckpt.npz'}")
    return path


def run(problem, config, seed=0, method="actor_critic", checkpoint=None, metrics=None, progress=False):
    """Run ``method`` on ``problem`` with ``config``; returns a :class:`~exactbilevel.trace.Trace`.

    ``seed``: an integer >= 0 (Python or numpy), a ``numpy.random.SeedSequence`` or a
    ``numpy.random.Generator`` (used as it is, and advanced); the same seed gives the same
    trace (bit for bit, apart from the ``time`` column).  ``meta["seed"]`` records it: the
    integer, ``{"entropy", "spawn_key"}`` of a SeedSequence, or ``{"generator": name,
    "state": ...}`` of a Generator's bit generator at the start of the run.

    ``config``: schedules left at None are derived from the problem's scales first
    (:meth:`~exactbilevel.ActorCriticConfig.resolve`); ``meta["config"]`` records the
    configuration as given and ``meta["resolved"]`` the numbers the run used.

    ``checkpoint``: a path (for the sampled methods with an int seed).  The run's state,
    random generator, logged rows and the diagnostics' warm starts are written there
    (atomically) at every logging point; if the file exists when the run starts, the run
    continues from it, and gives the same trace as an uninterrupted run (``time`` apart).
    The file is removed when the run completes.

    ``metrics``: a dict ``name -> fn``; ``fn(state)`` (an
    :class:`~exactbilevel.actor_critic.ActorCriticState`: x, theta, phi, critics, k)
    returns a number or an array of fixed shape, logged as a column at every logging
    point (e.g. a property of pi_phi = softmax(state.phi)).

    ``progress``: True shows a progress bar of the steps done (tqdm, on stderr), updated
    at least every ``steps // 1000`` steps; the trace is the same either way.
    """
    if not isinstance(problem, BilevelProblem):
        raise TypeError(f"problem must be an eb.BilevelProblem, got {type(problem).__name__}")
    if not isinstance(config, ActorCriticConfig):
        raise TypeError(f"config must be an eb.ActorCriticConfig, got {type(config).__name__}")
    check_choice("method", method, METHODS)
    seed, seed_record = _check_seed(seed)
    if method not in ("hypergradient", "nested_penalty"):
        compiled_model(problem)  # a model the compiled loop cannot run is refused before anything else
    asked = config
    resolution = config.resolve(problem, method)
    config = resolution.config
    names = ["k", "samples", "x", "tau", "lam", "time"] + (list(QUANTITIES) if config.diagnostics else [])
    metrics = _check_metrics(metrics, names)
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be True or False, got {type(progress).__name__}")
    rows = TraceBuilder(names + list(metrics))
    shapes = {}  # of each metric, fixed by the first logging point
    diag = Diagnostics(problem, batch=config.batch) if config.diagnostics else None
    t0 = time.perf_counter()
    sampled = method in ("actor_critic", "partial_sgd")
    if checkpoint is not None:
        if not sampled or isinstance(seed, np.random.Generator):
            raise ValueError("checkpoint needs a sampled method (actor_critic, partial_sgd) and an integer seed "
                             "or a SeedSequence (a Generator's state is the caller's)")
        checkpoint = _check_checkpoint(checkpoint)
    run_id = json.dumps(dict(config.as_dict(), method=method, seed=seed_record, metrics=sorted(metrics)),
                        sort_keys=True)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    # For the sampled loop, the diagnostics of a logging point run in one background thread,
    # on a snapshot of the iterate, while the compiled loop (which releases the GIL and calls
    # no parallel kernel) goes on; one worker keeps their order, so the warm starts, and hence
    # the numbers, are those of a serial run.  Elsewhere the main thread itself calls parallel
    # kernels, so the diagnostics run in line.
    background = diag is not None and sampled and not config.exact
    # (its kernels run on one thread: numba's thread count is per thread, and two threads
    # spinning in parallel regions would take the loop's core)
    pool = ThreadPoolExecutor(max_workers=1, initializer=numba.set_num_threads, initargs=(1,)) if background else None
    pending = []

    def diagnose(snapshot, row):
        v = config.schedule_values(np.array([snapshot.k]))
        row.update(diag(snapshot, float(v["tau"][0]), float(v["lam"][0])))
        return row

    def drain():
        while pending:
            row = pending.pop(0).result()
            row["time"] = time.perf_counter() - t0
            rows.add(**row)

    def on_log(state, loop=None):
        v = config.schedule_values(np.array([state.k]))
        row = dict(k=state.k, samples=state.samples, x=np.array(state.x), tau=float(v["tau"][0]),
                   lam=float(v["lam"][0]))
        row.update({name: _metric_value(name, fn, state, shapes) for name, fn in metrics.items()})
        if pool is not None:
            pending.append(pool.submit(diagnose, state.copy(), row))
        else:
            pending.append(_Done(row if diag is None else diagnose(state, row)))
        if checkpoint is not None:
            drain()
            _save_checkpoint(checkpoint, run_id, state, loop, rng, rows, diag)

    bar = tqdm.tqdm(total=config.steps, desc=method, unit="step", unit_scale=True) if progress else None
    on_steps = None if bar is None else (lambda k: bar.update(k - bar.n))  # k: the steps done
    try:
        if method == "finite_differences":
            _finite_differences(problem, config, rng, on_log, on_steps)
        elif method == "rlhf":
            _rlhf(problem, config, rng, on_log, on_steps)
        elif sampled:
            resume = None
            if checkpoint is not None and checkpoint.exists():
                resume = _load_checkpoint(checkpoint, run_id, rng, rows, diag)
                if on_steps is not None:
                    on_steps(resume[0].k)
            run_actor_critic(problem, config, rng, on_log, partial=method == "partial_sgd", resume=resume,
                             on_steps=on_steps)
        else:
            _oracle_descent(problem, config, on_log, on_steps, penalty=method == "nested_penalty")
        drain()
    finally:
        if bar is not None:
            bar.close()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    meta = run_metadata(dict(asked.as_dict(), method=method), None)
    meta["seed"] = seed_record
    meta["resolved"] = resolution.as_dict()
    trace = rows.build(meta)
    if checkpoint is not None:
        checkpoint.unlink(missing_ok=True)
    return trace
