"""The error contract under malformed input, with the strategies of exactbilevel.testing.malformed.

Every public callable (``exactbilevel.__all__`` and the environment builders) is called with
exactly one argument malformed: it must raise ValueError or TypeError naming the argument
(ConvergenceError where documented), or return a result without NaN; the caller's arrays stay
unchanged and writeable (``check_error_contract``).  Calls that reach compiled kernels run in a
subprocess, where a missed check that crashes the interpreter fails the test instead of
killing pytest; so do the explicit crash-prone cases (malformed sparse kernels, indices out of
range).  The command line refuses every malformed configuration with one line and status 2,
before anything runs.  The regressions at the end are the defects these strategies found.
"""

import io
import math
import re
import warnings
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import exactbilevel as eb
from exactbilevel.__main__ import main
from exactbilevel.experiments import EXPERIMENTS
from exactbilevel.testing import malformed as M

from conftest import examples
from test_cli_errors import workdir as no_runs  # noqa: F401 (a fixture: a scratch folder where nothing can be computed)
from test_hardening_core import ROOT, assert_clean, run_isolated

IN_PROCESS = tuple(n for n in M.CALLS if n not in M.KERNEL_CALLS)

#: Callables of exactbilevel.__all__ that take no user input of their own: result and
#: exception types (they are built by the package and validated where they are made).
NOT_INPUT = {"SolveResult", "ConvergenceError", "Hypergradient", "Lagrangian", "PenalizedPolicy", "Resolution",
             "ScheduleWarning", "SlopeStability", "Verdict", "RateFit"}


def test_the_module_docstring_examples():
    import doctest

    failed, attempted = doctest.testmod(M, optionflags=doctest.ELLIPSIS)
    assert attempted > 0 and failed == 0


def test_every_public_callable_is_covered():
    public = {n for n in eb.__all__ if callable(getattr(eb, n)) and not isinstance(getattr(eb, n), type(eb))}
    assert public - NOT_INPUT == {n for n in M.CALLS if not n.startswith("envs.")}
    assert {"envs.random_mdp", "envs.gridworld"} <= set(M.CALLS)
    assert set(M.KERNEL_CALLS) < set(M.CALLS) and "solve" in M.KERNEL_CALLS and "fit_rate" in IN_PROCESS


# --------------------------------------------------------------------------- in this process


@pytest.mark.parametrize("name", IN_PROCESS)
def test_malformed_calls_in_process(name):
    """The Python-level callables (constructors, rates, running statistics, Trace, softmax):
    each drawn malformed call meets the contract."""
    outcomes = set()

    @settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(M.malformed_calls([name]))
    def check(call):
        outcomes.add(call.check()[0])

    check()
    assert "raised" in outcomes


@settings(max_examples=examples(60), deadline=None)
@given(M.valid_calls())
def test_the_valid_base_calls_are_valid(call):
    """What malformed_calls starts from returns normally (so a refusal is due to the malformed
    argument), without NaN where NaN is not documented, and leaves the caller's arrays alone."""
    name, args, kwargs = call
    spec = M._SPECS[name]
    kind, out = M.check_error_contract(M.resolve(name), args, kwargs, nan_ok=spec.nan_ok)
    assert kind == "returned", (name, out)


def test_check_error_contract_detects_violations():
    """The checker itself: an escaping IndexError, an unnamed argument, a NaN result, a changed or
    frozen caller array are each reported."""
    def index_error(a):
        return [][1]

    def unnamed(a):
        raise ValueError("something is wrong")

    def nan_result(a):
        return np.array([np.nan])

    def changes(a):
        a[0] = 5.0

    def freezes(a):
        a.setflags(write=False)

    def warns(a):
        return np.array([1e308]) * 10

    for fn in (index_error, unnamed, nan_result, changes, freezes, warns):
        with pytest.raises(AssertionError):
            M.check_error_contract(fn, (np.zeros(2),), argument="a")
    assert M.check_error_contract(nan_result, (np.zeros(2),), argument="a", nan_ok=True)[0] == "returned"
    kind, exc = M.check_error_contract(lambda a: math.sqrt(-1) if a is None else eb.softmax_policy(a),
                                       (np.zeros(3),), argument="theta")
    assert kind == "raised" and "theta" in str(exc)


@pytest.mark.parametrize("kind", sorted(M.SCALAR_KINDS))
def test_every_malformed_scalar_is_refused_or_valid(kind):
    """Every value of malformed_scalars through the package's own checks of that kind: a
    TypeError or ValueError naming the parameter, or a value inside the kind's range."""
    from exactbilevel._validation import _real_scalar, check_choice, check_gamma, check_int, check_positive, check_tau
    from exactbilevel.envs.random_mdp import _check_sparse_flag, _rng

    checks = {
        "real": lambda v: _real_scalar("p", v), "nonnegative": lambda v: check_tau(v),
        "positive": lambda v: check_positive("p", v), "discount": check_gamma,
        "probability": lambda v: eb.envs.gridworld(n=1, slip=v).slip,
        "fraction": lambda v: eb.fit_rate(np.geomspace(1, 1e3, 10), np.geomspace(1, 1e3, 10) ** -1.0, level=v).level,
        "int": lambda v: check_int("p", v), "count": lambda v: check_int("p", v, minimum=1),
        "size": lambda v: check_int("p", v, minimum=1), "seed": _rng,
        "bool": _check_sparse_flag, "choice": lambda v: check_choice("p", v, ("iid", "markov")),
    }
    names = {"nonnegative": "tau", "discount": "gamma", "probability": "slip", "fraction": "level", "seed": "seed",
             "bool": "sparse"}
    valid = {
        "real": lambda v: math.isfinite(v), "nonnegative": lambda v: 0 <= v < math.inf,
        "positive": lambda v: 0 < v < math.inf, "discount": lambda v: 0 <= v < 1, "probability": lambda v: 0 <= v <= 1,
        "fraction": lambda v: 0 < v < 1, "int": lambda v: isinstance(v, int), "count": lambda v: v >= 1,
        "size": lambda v: v >= 1, "seed": lambda v: isinstance(v, np.random.Generator), "bool": lambda v: True,
        "choice": lambda v: v in ("iid", "markov"),
    }

    @settings(max_examples=examples(60), deadline=None)
    @given(M.malformed_scalars(kind, ("iid", "markov")))
    def check(value):
        outcome, out = M.check_error_contract(checks[kind], (value,), argument=names.get(kind, "p"))
        if outcome == "returned":
            assert out is None if kind == "bool" and value is None else valid[kind](out), (value, out)

    check()


@settings(max_examples=examples(40), deadline=None)
@given(st.integers(1, 4), st.integers(1, 3), st.data())
def test_malformed_kernels_distributions_and_policies(S, A, data):
    """The three distribution strategies against the checks they are drawn for: refused with a
    ValueError or TypeError naming P, rho or pi, unless within tolerance (then valid)."""
    P = data.draw(M.malformed_probabilities(S, A))
    outcome, _ = M.check_error_contract(eb.TabularMDP, (P, 0.9), argument="P")
    if outcome == "returned":
        assert np.allclose(P.sum(axis=2), 1.0, atol=1e-10) and P.min() >= 0
    mdp = eb.envs.random_mdp(S, A, seed=0)
    rho = data.draw(M.malformed_distributions(S))
    M.check_error_contract(eb.TabularMDP, (np.array(mdp.P), 0.9, rho), argument="rho")
    pi = data.draw(M.malformed_policies(S, A))
    outcome, _ = M.check_error_contract(eb.occupancy, (mdp, pi), argument="pi")
    if outcome == "returned":
        assert np.allclose(np.sum(pi, axis=1), 1.0, atol=1e-9) and np.min(pi) >= 0


# --------------------------------------------------------------------------- in a subprocess


def test_malformed_calls_reaching_kernels_in_subprocess():
    """Every callable whose calls reach compiled kernels, and TabularMDP on malformed sparse
    kernels of every scipy format: in one fresh interpreter, so that a crash fails this test.
    Each name gets its own derandomized Hypothesis run; the subprocess prints what it saw."""
    n = examples(30)
    code = f"""
    import collections
    from hypothesis import HealthCheck, given, settings
    import exactbilevel as eb
    from exactbilevel.testing import malformed as M
    from exactbilevel.testing.strategies import malformed_sparse_kernels

    print("using", eb.__file__, flush=True)
    seen = collections.defaultdict(collections.Counter)

    def run(name, strategy, body, examples):
        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(strategy)
        def check(case):
            seen[name][body(case)] += 1
        print("checking", name, flush=True)
        check()

    for name in M.KERNEL_CALLS:
        run(name, M.malformed_calls([name]), lambda call: call.check()[0], {n})
    run("sparse P", malformed_sparse_kernels(),
        lambda pair: M.check_error_contract(eb.TabularMDP, (pair[0], 0.9), argument="P")[0], {2 * n})
    print(dict(seen))
    """
    proc = run_isolated(code, timeout=600)
    assert_clean(proc)
    assert f"using {ROOT}" in proc.stdout
    seen = eval(proc.stdout.strip().splitlines()[-1], {"Counter": dict})
    assert set(seen) == set(M.KERNEL_CALLS) | {"sparse P"}
    assert all(counts.get("raised", 0) > 0 for counts in seen.values()), seen
    assert seen["sparse P"] == {"raised": sum(seen["sparse P"].values())}  # every malformed structure refused


def _assert_refused_in_subprocess(code, error, words):
    """``code`` (uncaught) must end the fresh interpreter with status 1 and a last stderr line
    ``error: ...`` naming ``words``: a clean refusal, not a crash (negative status) or another error."""
    proc = run_isolated(code, timeout=300)
    last = proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ""
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-2000:])
    assert re.match(rf"^{error}: ", last), last
    for w in words:
        assert re.search(rf"(?<![\w]){re.escape(w)}(?![\w])", last), (w, last)


@pytest.mark.parametrize("case,error,words", [
    # scipy accepts a CSC matrix with a row index out of range; its conversions then read out of bounds
    ("M = sp.csc_matrix(P); M.indices[0] = 10**8; eb.TabularMDP(M, 0.9)", "ValueError", ["P"]),
    ("M = sp.coo_array(P); M.coords[1][0] = -5; eb.solve(eb.TabularMDP(M, 0.9), np.zeros((3, 2)))", "ValueError",
     ["P"]),
    ("eb.envs.gridworld(n=3, targets=[(0, 2**62)])", "ValueError", ["targets"]),
    ("eb.envs.gridworld(n=3, walls=[(0, 2**64)])", "TypeError", ["walls"]),
    # a solution of an MDP with another number of actions, into the kernels of the hyper-gradient
    ("mdp = eb.envs.random_mdp(3, 2, seed=0); rew = eb.LinearReward(np.ones((3, 2, 1)));"
     "obj = eb.OccupancyObjective(mdp, np.ones((3, 2)));"
     "sol = eb.solve(eb.envs.random_mdp(3, 4, seed=1), np.ones((3, 4)), 0.5);"
     "eb.hypergradient(mdp, rew, obj, np.ones(1), 0.5, solution=sol)", "ValueError", ["solution"]),
])
def test_crash_prone_cases_end_with_a_clean_error(case, error, words):
    code = f"""
    import numpy as np, scipy.sparse as sp, exactbilevel as eb
    P = np.full((6, 3), 1.0 / 3)
    {case}
    """
    _assert_refused_in_subprocess(code, error, words)


# --------------------------------------------------------------------------- the command line


@settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(M.malformed_configs())
def test_malformed_configurations_exit_2_with_one_line_before_running(no_runs, case):
    """Wrong type, shape or range for a random key, unknown keys, text that is not TOML, for every
    experiment: ``main(["run", ...])`` raises SystemExit(2) after exactly one line on stderr naming the
    key, and no run has started (no runs/ in the results folder)."""
    name, text, key = case
    (no_runs / "case.toml").write_text(text, encoding="utf-8")
    out = no_runs / "out"
    err = io.StringIO()
    with redirect_stderr(err), redirect_stdout(io.StringIO()), pytest.raises(SystemExit) as exc:
        main(["run", name, "--config", "case.toml", "--out", str(out), "--quiet"])
    assert exc.value.code == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("exactbilevel:"), err.getvalue()
    if key is None:
        assert "TOML" in lines[0]
    else:
        assert re.search(rf"(?<![\w]){re.escape(key)}(?![\w])", lines[0]), (key, lines[0])
    assert not (out / "runs").exists()


# --------------------------------------------------------------------------- regressions


def _mdp():
    return eb.envs.random_mdp(3, 2, gamma=0.9, seed=0)


def _models(mdp):
    rng = np.random.default_rng(0)
    reward = eb.LinearReward(rng.normal(size=(mdp.S, mdp.A, 2)))
    return reward, eb.OccupancyObjective(mdp, rng.uniform(-1, 1, (mdp.S, mdp.A)), kappa=0.1)


class _NanValue:
    def value(self, x, pi):
        return math.nan

    def grad_x(self, x, pi):
        return np.zeros(x.size)

    def grad_pi(self, x, pi):
        return np.zeros_like(pi)


def _solution(S, A, tau, **replace):
    import dataclasses

    sol = eb.solve(eb.envs.random_mdp(S, A, seed=1), np.ones((S, A)), tau)
    return dataclasses.replace(sol, **replace) if replace else sol


def _problem():
    mdp = eb.envs.random_mdp(4, 2, gamma=0.8, seed=0)
    reward, obj = _models(mdp)
    return eb.BilevelProblem(mdp, reward, obj, [0.1, 0.2])


def _absorbing():
    """Three absorbing states (every action stays), gamma 0.9."""
    return eb.TabularMDP(np.repeat(np.eye(3)[:, None, :], 2, axis=1), 0.9)


def _rows_above_one():
    P = np.zeros((3, 2, 3))
    P[:, :, 0], P[:, :, 1] = 0.5, 0.5 + 1e-11
    return P


_CFG = dict(steps=4, log_every=2, diagnostics=False)
M_MAX = np.finfo(np.float64).max

REGRESSIONS = {
    # a longdouble beyond the float64 range: the cast to float64 warned (overflow) instead of a clear error
    "longdouble array": (lambda: eb.GaussianGoalReward(np.array([[np.longdouble("1e4000"), 0.0]]), 1),
                         ValueError, r"^coords has a NaN or infinite"),
    # numpy registers timedelta64 as an integer (numbers.Real), which float() and int() refuse
    "timedelta kappa": (lambda: eb.DistributionMatchingObjective(_mdp(), np.full(3, 1 / 3),
                                                                 kappa=np.timedelta64(1, "s")),
                        TypeError, r"^kappa must be a real number"),
    "timedelta S": (lambda: eb.TabularReward(np.timedelta64(2, "s"), 2), TypeError, r"^S must be an int"),
    "timedelta level": (lambda: eb.fit_rate(np.geomspace(1, 1e3, 10), np.ones(10), level=np.timedelta64(1, "s")),
                        ValueError, r"^level must be"),
    # BilevelProblem called x0 "x" in its messages
    "x0 NaN": (lambda: eb.BilevelProblem(_mdp(), *_models(_mdp()), [math.nan, 0.0]), ValueError, r"^x0 has a NaN"),
    # a ragged column: numpy's ValueError without the column's name
    "ragged column": (lambda: eb.Trace({"k": [[1], [2, 3]]}), TypeError, r"^column 'k' must be a numeric array"),
    # running statistics: k of floats beyond int64 (a wrong cast), -inf, float16; values at the range's end
    "k beyond int64": (lambda: eb.running_min(np.r_[0.0, 1e300], [1.0, 2.0]), ValueError,
                       r"^k must hold logging steps"),
    "k -inf": (lambda: eb.running_mean(np.r_[0.0, -np.inf], [1.0, 2.0]), TypeError, r"^k must hold integers"),
    "values complex": (lambda: eb.running_mean([0, 1], [1.0, 1j]), TypeError, r"^values must be a real numeric"),
    # reward or psi beyond the float64 range: a RuntimeWarning (overflow in matmul) instead of an error
    "Psi @ x overflow": (lambda: eb.LinearReward(np.ones((2, 1, 2))).value([1e308, 1e308]), ValueError,
                         r"^x = .* beyond the float64 range"),
    "psi overflow": (lambda: eb.OccupancyObjective(_mdp(), np.ones((3, 2)), kappa=1.0).psi(np.array([1e300, 0])),
                     ValueError, r"^x = .* kappa/2 \|x - center\|\^2 is beyond"),
    "hypergradient x huge": (lambda: eb.hypergradient(_mdp(), eb.LinearReward(np.ones((3, 2, 1))),
                                                      _models(_mdp())[1], [1e308], 0.5), ValueError,
                             r"at x = .* beyond the float64 range; pass x"),
    # sums of huge entries warned (overflow in reduce) before the row-sum error
    "rho huge": (lambda: eb.envs.random_mdp(3, 2, rho=np.full(3, M_MAX)), ValueError,
                 r"^rho sums to (np.float64\()?inf"),
    "P huge": (lambda: eb.TabularMDP(np.full((2, 1, 2), M_MAX), 0.5), ValueError, r"^P\[0, 0, :\] sums to inf"),
    # run: checkpoint of the wrong type or a folder (an IsADirectoryError escaped)
    "checkpoint int": (lambda: eb.run(_problem(), eb.ActorCriticConfig(**_CFG), checkpoint=123), TypeError,
                       r"^checkpoint must be a path"),
    "checkpoint folder": (lambda: eb.run(_problem(), eb.ActorCriticConfig(**_CFG), checkpoint="/"), ValueError,
                          r"^checkpoint / is a folder"),
    "metric name empty": (lambda: eb.run(_problem(), eb.ActorCriticConfig(**_CFG), metrics={"": lambda s: 0.0}),
                          ValueError, r"^metrics: column name '' is not allowed"),
    # a lower-level solution of another MDP (another A) or with NaN was trusted: numpy errors or NaN results
    "solution other A": (lambda: eb.action_gap(_mdp(), _models(_mdp())[0], np.zeros(2), solution=_solution(3, 4, 0.0)),
                         ValueError, r"^solution was computed for tau = 0.0 and \(S, A\) = \(3, 4\)"),
    "solution NaN Q": (lambda: eb.limit_policy(_mdp(), np.ones((3, 2)),
                                               solution=_solution(3, 2, 0.0, Q=np.full((3, 2), np.nan))),
                       ValueError, r"^solution.Q has a NaN"),
    "solution zero pi": (lambda: eb.value_penalty(_mdp(), *_models(_mdp())[:1], np.zeros(2), np.full((3, 2), 0.5), 0.5,
                                                  solution=_solution(3, 2, 0.5, pi=np.zeros((3, 2)))),
                         ValueError, r"^solution.pi\[0, :\] sums to"),
    # an objective whose value is NaN gave a NaN Lagrangian and a NaN phi
    "objective NaN": (lambda: eb.penalty_lagrangian(_mdp(), _models(_mdp())[0], _NanValue(), np.zeros(2),
                                                    np.zeros((3, 2)), 10.0, 0.5), ValueError,
                      r"^objective.value must return a finite scalar"),
    "hypergradient phi NaN": (lambda: eb.hypergradient(_mdp(), _models(_mdp())[0], _NanValue(), np.zeros(2), 0.5,
                                                       full_output=True), ValueError, r"^objective.value must return"),
    # choices given as arrays: numpy's "truth value of an array is ambiguous"
    "actor array": (lambda: eb.ActorCriticConfig(steps=4, actor=np.array(["npg", "pg"])), TypeError,
                    r"^actor must be one of"),
    "form array": (lambda: eb.hypergradient(_mdp(), *_models(_mdp()), np.zeros(2), 0.5, form=np.array([1, 2])),
                   TypeError, r"^form must be one of"),
    "rule array": (lambda: eb.limit_policy(_mdp(), np.ones((3, 2)), rule=np.array(["limit", "uniform"])), TypeError,
                   r"^rule must be one of"),
    "method array": (lambda: eb.run(_problem(), eb.ActorCriticConfig(**_CFG), method=np.array(["rlhf", "x"])),
                     TypeError, r"^method must be one of"),
    # values beyond the float64 range: NaN (inf - inf) and warnings instead of an error
    # (rows summing to 1 + 1e-11, within tolerance: P V = inf for V = 1.8e308, and gamma 0 * inf = NaN)
    "q_values NaN": (lambda: eb.q_values(eb.TabularMDP(_rows_above_one(), 0.0), np.ones((3, 2)), np.full(3, M_MAX)),
                     ValueError, r"^Q = r \+ gamma P V is beyond the float64 range"),
    "evaluate beyond range": (lambda: eb.evaluate(_mdp(), np.full((3, 2), M_MAX / 2), np.full((3, 2), 0.5)),
                              ValueError, r"^V\^pi or Q\^pi is beyond the float64 range"),
    "soft_advantage tau huge": (lambda: eb.soft_advantage(_mdp(), np.ones((3, 2)), np.full((3, 2), 0.5), 1e308),
                                ValueError, r"beyond the float64 range.*scale r \(or tau\) down"),
    "npg r huge": (lambda: eb.natural_policy_gradient(eb.envs.random_mdp(2, 2, gamma=0.0, seed=3),
                                                      np.array([[M_MAX, -M_MAX], [-M_MAX, -M_MAX]]),
                                                      np.array([[0.3, -1.0], [2.0, 0.1]]), 0.5),
                   ValueError, r"^Q\^pi - V\^pi is beyond the float64 range.*scale r"),
    "soft_advantage tau log pi": (lambda: eb.soft_advantage(_mdp().replace(gamma=0.0), np.ones((3, 2)),
                                                            np.array([[0.9, 0.1]] * 3), 1e308),
                                  ValueError, r"^Atilde\^pi = .* beyond the float64 range"),
    # absorbing states of values +inf and -inf: J = rho @ V was inf - inf (a RuntimeWarning, NaN)
    "expected_return inf - inf": (lambda: eb.expected_return(_absorbing(), np.array([[M_MAX, M_MAX], [-M_MAX, -M_MAX],
                                                                                   [0.0, 0.0]]), np.full((3, 2), 0.5)),
                                  ValueError, r"^V\^pi is beyond the float64 range"),
    # counts beyond int64 (and beyond the float64 integers): a wrong cast or an OverflowError in a kernel
    "steps 2^63": (lambda: eb.ActorCriticConfig(steps=2**63), ValueError, r"^steps must be <= 9007199254740992"),
    "batch 10^30": (lambda: eb.ActorCriticConfig(steps=4, batch=10**30), ValueError, r"^batch must be <="),
    "penalized lam tiny": (lambda: eb.penalized_policy(_mdp(), *_models(_mdp()), np.zeros(2), 5e-324, 0.5),
                           ValueError, r"logit step .* beyond the float64 range; use a larger tau or lam"),
    # rates: no seeds (an empty mean warned), a window too short named decades
    "no seeds": (lambda: eb.slope_stability(np.geomspace(1, 1e3, 16), np.zeros((0, 16))), ValueError,
                 r"^values must have shape"),
    "decades tiny": (lambda: eb.slope_stability(np.geomspace(10, 1e4, 16), np.ones(16), decades=5e-324), ValueError,
                     r"or pass a larger decades"),
}


@pytest.mark.parametrize("name", sorted(REGRESSIONS))
def test_regression(name):
    """The defects the strategies found, each a clear error now, without a warning."""
    call, error, pattern = REGRESSIONS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(error, match=pattern):
            call()


@pytest.mark.parametrize("tau", [1e307, 1e308])
def test_policy_gradient_at_a_huge_tau_is_finite(tau):
    """tau log softmax was formed with 2 tau, which overflows for tau > 9e307 (then inf * 0 = NaN
    where log pi = 0); the gradient at uniform logits is the one of tau = 0 (Atilde = Q - V there:
    log pi is the same for every action)."""
    mdp = _mdp().replace(gamma=0.0)
    r = np.array([[1.0, 0.0], [0.0, 2.0], [0.5, 0.5]])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        g = eb.policy_gradient(mdp, r, np.zeros((3, 2)), tau)
    np.testing.assert_allclose(g, eb.policy_gradient(mdp, r, np.zeros((3, 2)), 0.0), atol=1e-300 + 1e-12 * tau)


@pytest.mark.parametrize("gamma", [0.0, 0.9])
@pytest.mark.parametrize("method", ["value_iteration", "policy_iteration", "modified_policy_iteration", "anderson",
                                    "auto"])
def test_warm_starts_up_to_the_bound(method, gamma):
    """V0 of 1.8e308 made the first sweep inf - inf (a RuntimeWarning, then a NaN error bound): it is
    refused, naming V0.  V0 at the largest accepted size, (1 - gamma) V0_MAX, solves without a warning,
    and the error bound holds against the plain-numpy policy iteration: from the constant start
    modified policy iteration certified 3.7e-12 at a true error of 5.3e-12 (the bound of the value
    shifted by its midrange took the rounding allowance of the shifted, small V, not of the iterate)."""
    from exactbilevel.solvers import V0_MAX
    from exactbilevel.testing import reference as ref

    mdp = _mdp().replace(gamma=gamma)
    r = np.array([[1.0, 0.0], [0.0, 2.0], [0.5, 0.5]])
    V_star, err = ref.policy_iteration_ref(ref.dense_kernel(mdp), r, gamma, 0.1)
    big = (1.0 - gamma) * V0_MAX
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        with pytest.raises(ValueError, match=r"^V0 has an entry of size 1.8e\+308"):
            eb.solve(mdp, r, 0.1, method=method, V0=np.full(3, M_MAX))
        for V0 in (np.array([big, -big, 0.0]), np.full(3, big), np.full(3, -big)):
            res = eb.solve(mdp, r, 0.1, method=method, V0=V0, max_iter=10**5)
            assert res.converged and np.abs(res.V - V_star).max() <= res.error_bound + err


def test_solve_takes_any_max_iter():
    """max_iter of 2^63 or more (unlimited, in effect) raised OverflowError in the compiled loop."""
    mdp = _mdp()
    for max_iter in (2**63, 10**30):
        assert eb.solve(mdp, np.ones((3, 2)), 0.1, method="value_iteration", max_iter=max_iter).converged


def test_verify_names_mdp_seed():
    """A negative mdp_seed was reported as "key 'kappa' must be >= 0 (and mdp_seed >= 0), got 0.1"."""
    from exactbilevel.experiments.config import ConfigError, load

    with pytest.raises(ConfigError, match=r"^key 'mdp_seed' must be an integer >= 0.*got -1$"):
        load(EXPERIMENTS["verify"][1], "mdp_seed = -1\n")


def test_sparse_and_dense_inputs_are_not_frozen():
    """check_error_contract also watches the arrays inside a caller's sparse matrix."""
    P = sp.csr_matrix(np.full((6, 3), 1.0 / 3))
    kind, mdp = M.check_error_contract(eb.TabularMDP, (P, 0.9), argument="P")
    assert kind == "returned" and mdp.is_sparse and P.data.flags.writeable


@settings(max_examples=120, deadline=None)
@given(M.malformed_gymnasium_tables())
def test_from_gymnasium_refuses_every_malformed_table_cleanly(case):
    """One defect in an otherwise valid toy-text table: a ValueError or TypeError naming the
    table's entry (``env.unwrapped...``) or rho, nothing else, and the caller's arrays unchanged."""
    from exactbilevel.envs import from_gymnasium

    env, defect = case
    outcome, value = M.check_error_contract(from_gymnasium, (env, 0.9), names=("env", "rho"))
    assert outcome == "raised", f"the defect {defect!r} was accepted"


_GRID = eb.envs.gridworld(n=3, targets=[(0, 2)], hazards=[(1, 1)])


@settings(max_examples=150, deadline=None)
@given(st.one_of(
    st.tuples(st.just("state"), st.tuples(M.malformed_scalars("int"), st.just(0)), st.just("row")),
    st.tuples(st.just("state"), st.tuples(st.just(0), st.integers(3, 10**6)), st.just("col")),
    st.tuples(st.just("cell"), st.tuples(M.malformed_scalars("int")), st.just("s")),
    st.tuples(st.just("cost"), st.tuples(M.malformed_scalars("real")), st.just("target")),
    st.tuples(st.just("arrows"), st.tuples(M.malformed_arrays((9, 5))), st.just("pi_or_actions")),
    st.tuples(st.just("arrows"), st.tuples(M.malformed_arrays((9,), base=np.zeros(9, dtype=np.int64))),
              st.just("pi_or_actions")),
))
def test_the_gridworld_methods_refuse_malformed_input_cleanly(case):
    name, args, argument = case
    M.check_error_contract(getattr(_GRID, name), args, argument=argument)
