"""Hardening of the numerical core (issue 17): malformed sparse transitions, arrays
the caller owns, extreme but valid inputs, default tolerances.

Crash-prone cases (malformed sparse structures, which scipy's own conversions may
read out of bounds) run in a subprocess, so that a segmentation fault fails the
test instead of killing pytest.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import exactbilevel as eb
from exactbilevel.testing.strategies import SPARSE_FORMATS, sparse_kernels

from conftest import examples


#: The checkout these tests belong to: subprocesses import exactbilevel from here.
ROOT = Path(__file__).resolve().parents[1]


def run_isolated(code, timeout=300):
    """Run ``code`` in a fresh interpreter (this checkout first on sys.path);
    return the CompletedProcess.  A crash shows as a negative return code."""
    prelude = f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout)


def assert_clean(proc):
    assert proc.returncode == 0, (
        f"subprocess exited with {proc.returncode} (negative: killed by a signal)\n"
        f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )


# --------------------------------------------------------------------------- sparse P

def _valid_rows(S=3, A=2):
    rng = np.random.default_rng(5)
    P = rng.random((S * A, S)) + 0.1
    return P / P.sum(axis=1, keepdims=True)


@settings(max_examples=examples(40))
@given(sparse_kernels())
def test_every_sparse_format_stores_the_same_kernel(pair):
    """All formats, matrices and arrays, int32/int64 indices, unsorted indices and
    duplicates: the stored CSR equals the dense kernel (duplicates summed), and the
    solve equals the dense MDP's."""
    M, P = pair
    S, A, _ = P.shape
    m = eb.TabularMDP(M, 0.9)
    assert m.is_sparse and (m.S, m.A) == (S, A)
    np.testing.assert_allclose(m.P.toarray().reshape(S, A, S), P, rtol=1e-14, atol=1e-17)
    r = np.arange(S * A, dtype=float).reshape(S, A) / (S * A)
    dense = eb.TabularMDP(P, 0.9)
    np.testing.assert_allclose(eb.solve(m, r).V, eb.solve(dense, r).V, atol=1e-9)


def test_sparse_input_not_changed():
    """Validation and canonicalization work on copies: the caller's matrix (unsorted,
    with duplicates) keeps its arrays, their values and their writeability."""
    P = _valid_rows()
    rows, cols = np.nonzero(P)
    rows, cols, vals = np.repeat(rows, 2)[::-1], np.repeat(cols, 2)[::-1], np.repeat(P[rows, cols] / 2, 2)[::-1]
    for M in (sp.coo_matrix((vals, (rows, cols)), shape=P.shape),
              sp.csr_matrix((vals.copy(), cols.copy(), np.arange(0, vals.size + 1, 2 * 3)), shape=P.shape)):
        before = [a.copy() for a in ((M.row, M.col, M.data) if M.format == "coo" else (M.indices, M.indptr, M.data))]
        eb.TabularMDP(M, 0.9)
        after = (M.row, M.col, M.data) if M.format == "coo" else (M.indices, M.indptr, M.data)
        for b, a in zip(before, after):
            np.testing.assert_array_equal(a, b)
            assert a.flags.writeable


MALFORMED_CASES = {
    # the reproductions of issue 17 and their relatives, one per stored structure
    "coo col = S": "M = sp.coo_matrix(P); M.col[0] = S",
    "coo row = S*A": "M = sp.coo_matrix(P); M.row[0] = S * A",
    "coo negative col": "M = sp.coo_matrix(P); M.col[3] = -1",
    "coo_array coords": "M = sp.coo_array(P); M.coords[1][0] = S",
    "coo short row array": "M = sp.coo_matrix(P); M.row = M.row[:-1]",
    "csr col = S": "M = sp.csr_matrix(P); M.indices[0] = S",
    "csr_array int64 huge": "M = sp.csr_array(P); M.indices = M.indices.astype(np.int64); M.indices[2] = 2**40",
    "csr float indices": "M = sp.csr_matrix(P); M.indices = M.indices.astype(float)",
    "csr short indptr": "M = sp.csr_matrix(P); M.indptr = M.indptr[:-1]",
    "csc row out of range": "M = sp.csc_matrix(P); M.indices[0] = S * A + 5",
    "csc row 1e8": "M = sp.csc_matrix(P); M.indices[0] = 10**8",
    "csc negative row": "M = sp.csc_matrix(P); M.indices[0] = -7",
    "csc_array row": "M = sp.csc_array(P); M.indices[0] = 50",
    "csc indptr beyond": "M = sp.csc_matrix(P); M.indptr[1] = 100",
    "bsr block col": "M = sp.bsr_matrix(P, blocksize=(2, 1)); M.indices[0] = 50",
    "bsr negative": "M = sp.bsr_array(P, blocksize=(2, 1)); M.indices[0] = -1",
    "bsr indptr end": "M = sp.bsr_matrix(P, blocksize=(2, 1)); M.indptr[-1] = 100",
    "lil col": "M = sp.lil_matrix(P); M.rows[0][0] = 7",
    "lil negative": "M = sp.lil_array(P); M.rows[1][0] = -1",
    "dok key": "M = sp.dok_matrix(P); dict.__setitem__(getattr(M, '_dict', M), (0, 9), 0.1)",
    "dia offsets count": "M = sp.dia_matrix(P); M.offsets = np.append(M.offsets, 0)",
}


def test_malformed_sparse_refused_without_crash():
    """Each malformed structure gives a ValueError naming P (TypeError for float
    indices would also do, but the message must name P), in a subprocess."""
    code = """
    import numpy as np, scipy.sparse as sp, exactbilevel as eb
    print("using", eb.__file__)
    S, A = 3, 2
    P = np.full((S * A, S), 1.0 / S)
    CASES = %r
    for name, build in CASES.items():
        print("case", name, flush=True)
        ns = dict(np=np, sp=sp, P=P.copy(), S=S, A=A)
        exec(build, ns)
        try:
            eb.TabularMDP(ns["M"], 0.9)
        except (ValueError, TypeError) as exc:
            assert "P" in str(exc).split(), (name, str(exc))
            print("refused", name, type(exc).__name__, exc, flush=True)
        else:
            raise AssertionError(f"{name}: accepted")
    print("done")
    """ % (MALFORMED_CASES,)
    proc = run_isolated(code)
    assert_clean(proc)
    assert f"using {ROOT}" in proc.stdout  # this checkout's exactbilevel
    assert proc.stdout.count("\nrefused ") + proc.stdout.startswith("refused ") == len(MALFORMED_CASES)
    assert "ValueError" in proc.stdout


def test_malformed_sparse_hypothesis_in_subprocess():
    """Hypothesis-drawn malformed structures of every format (the strategy of
    exactbilevel.testing): all refused with a ValueError naming P, none crashes."""
    n = examples(150)
    code = f"""
    import re
    from hypothesis import given, settings, HealthCheck
    import exactbilevel as eb
    from exactbilevel.testing.strategies import malformed_sparse_kernels

    seen = set()

    @settings(max_examples={n}, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(malformed_sparse_kernels())
    def check(pair):
        M, defect = pair
        seen.add((M.format, defect))
        try:
            eb.TabularMDP(M, 0.9)
        except ValueError as exc:
            assert re.search(r"\\bP\\b", str(exc)), str(exc)
        else:
            raise AssertionError(f"accepted a {{M.format}} with defect {{defect}}")

    check()
    print(sorted(seen))
    """
    proc = run_isolated(code)
    assert_clean(proc)
    seen = eval(proc.stdout.strip().splitlines()[-1])
    assert {f for f, _ in seen} >= set(SPARSE_FORMATS) - {"dia"}


def test_out_of_range_dia_offset_drops_entries_as_scipy_does():
    """A DIA offset beyond the shape holds no entries (scipy's semantics): here
    that leaves a row short of 1, which is reported as a row-sum error naming P."""
    P = _valid_rows(2, 1)
    M = sp.dia_matrix(P)
    M.offsets[0] = 100
    with pytest.raises(ValueError, match=r"\bP\b.*sums to"):
        eb.TabularMDP(M, 0.9)


def test_sparse_one_dimensional_refused():
    with pytest.raises(ValueError, match=r"\bP\b"):
        eb.TabularMDP(sp.coo_array(np.ones(3) / 3), 0.9)


# --------------------------------------------------------------------------- caller's arrays

class _StoredObjective:
    """f(x, pi) = <c, pi> + <a, x>: grad_x and grad_pi return the stored (writeable) arrays themselves."""

    def __init__(self, S, A, d):
        rng = np.random.default_rng(3)
        self.c, self.a = rng.standard_normal((S, A)), rng.standard_normal(d)

    def value(self, x, pi):
        return float(np.sum(self.c * pi) + self.a @ x)

    def grad_x(self, x, pi):
        return self.a

    def grad_pi(self, x, pi):
        return self.c


def _small_problem(S=4, A=2, d=3):
    rng = np.random.default_rng(11)
    P = rng.random((S, A, S)) + 0.05
    mdp = eb.TabularMDP(P / P.sum(axis=2, keepdims=True), 0.8)
    reward = eb.LinearReward(rng.standard_normal((S, A, d)))
    return mdp, reward, _StoredObjective(S, A, d)


def test_bilevel_problem_does_not_freeze_x0():
    mdp, reward, obj = _small_problem()
    x0 = np.array([0.1, -0.2, 0.3])
    prob = eb.BilevelProblem(mdp, reward, obj, x0, bounds=(np.full(3, -1.0), np.full(3, 1.0)))
    assert x0.flags.writeable
    x0[0] = 5.0  # the caller may keep using it; the problem holds its own copy
    assert prob.x0[0] == 0.1 and not prob.x0.flags.writeable


def test_hypergradient_full_output_does_not_freeze_objective_arrays():
    mdp, reward, obj = _small_problem()
    a0, c0 = obj.a.copy(), obj.c.copy()
    x = np.array([0.3, 0.1, -0.5])
    out = eb.hypergradient(mdp, reward, obj, x, 0.5, full_output=True)
    assert obj.a.flags.writeable and obj.c.flags.writeable and x.flags.writeable
    np.testing.assert_array_equal(obj.a, a0)
    np.testing.assert_array_equal(obj.c, c0)
    np.testing.assert_array_equal(out.grad_x_f, a0)  # grad_x f of a linear f is a
    assert not out.grad_x_f.flags.writeable and out.grad_x_f is not obj.a
    obj.a[:] = 0.0  # changing the objective's array afterwards does not change the result
    np.testing.assert_array_equal(out.grad_x_f, a0)


def test_hypergradient_dataclass_copies_what_it_is_given():
    g = np.ones(2)
    h = eb.Hypergradient(grad=g, phi=0.0, grad_x_f=g, implicit=g, pi=np.ones((1, 1)), dpi_dx=None,
                         form="adjoint", solution=None)
    assert g.flags.writeable and not h.grad.flags.writeable


def _calls():
    """(name, call(arrays), arrays): public functions of the core with caller-owned arrays."""
    mdp, reward, obj = _small_problem()
    S, A = mdp.S, mdp.A
    rng = np.random.default_rng(2)
    r = rng.standard_normal((S, A))
    theta = rng.standard_normal((S, A))
    pi = eb.softmax_policy(theta)
    x = np.array([0.2, -0.1, 0.4])
    P = np.array(mdp.P)
    return [
        ("TabularMDP", lambda P, rho: eb.TabularMDP(P, 0.9, rho), [P, np.full(S, 1.0 / S)]),
        ("solve", lambda r, V0: eb.solve(mdp, r, 0.1, V0=V0), [r.copy(), rng.standard_normal(S)]),
        ("solve vi", lambda r, V0: eb.solve(mdp, r, method="vi", V0=V0), [r.copy(), np.zeros(S)]),
        ("policy_gradient", lambda r, th: eb.policy_gradient(mdp, r, th, 0.1), [r.copy(), theta.copy()]),
        ("natural_policy_gradient", lambda r, th: eb.natural_policy_gradient(mdp, r, th, 0.1),
         [r.copy(), theta.copy()]),
        ("softmax_policy", lambda th: eb.softmax_policy(th), [theta.copy()]),
        ("expected_return", lambda r, p: eb.expected_return(mdp, r, p, 0.1), [r.copy(), pi.copy()]),
        ("soft_advantage", lambda r, p: eb.soft_advantage(mdp, r, p, 0.1), [r.copy(), pi.copy()]),
        ("return_gradient", lambda x, p: eb.return_gradient(mdp, reward, x, p), [x.copy(), pi.copy()]),
        ("hypergradient", lambda x, V0: eb.hypergradient(mdp, reward, obj, x, 0.3, V0=V0, full_output=True),
         [x.copy(), np.zeros(S)]),
        ("hypergradient forward", lambda x: eb.hypergradient(mdp, reward, obj, x, 0.3, form="forward"),
         [x.copy()]),
        ("LinearReward", lambda Psi, x: eb.LinearReward(Psi).jacobian(x), [np.ones((S, A, 3)), x.copy()]),
        ("GaussianGoalReward", lambda c, x: eb.GaussianGoalReward(c, A, 0.5).jacobian(x),
         [rng.standard_normal((S, 3)), x.copy()]),
        ("BilevelProblem", lambda x0, lo: eb.BilevelProblem(mdp, reward, obj, x0, (lo, 10.0)),
         [x.copy(), np.full(3, -1.0)]),
    ]


@pytest.mark.parametrize("index", range(len(_calls())), ids=[c[0] for c in _calls()])
def test_public_functions_leave_caller_arrays_alone(index):
    name, call, arrays = _calls()[index]
    before = [a.copy() for a in arrays]
    call(*arrays)
    for a, b in zip(arrays, before):
        np.testing.assert_array_equal(a, b, err_msg=name)
        assert a.flags.writeable, name


# --------------------------------------------------------------------------- extreme valid input

@pytest.mark.parametrize("sigma", [1e-300, 1e-200, 1e-5, 1.0, 1e200, 1e300])
@pytest.mark.parametrize("t", [0.0, 0.5, 1.0, 3.0, 40.0])
def test_gaussian_goal_reward_any_width(sigma, t):
    """At x = c + t sigma e_1 (and e_2 = 0): value exp(-t^2/2), Jacobian
    (-t exp(-t^2/2) / sigma, 0): closed forms, relative error 1e-14, no warning."""
    import warnings

    coords = np.array([[0.0, 0.0], [2.0, -1.0]])
    g = eb.GaussianGoalReward(coords, 2, sigma=sigma)
    x = np.array([t * sigma, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v, J = g.value(x), g.jacobian(x)
    want = np.exp(-t * t / 2)
    np.testing.assert_allclose(v[0], want, rtol=1e-14, atol=0)
    np.testing.assert_allclose(J[0, :, 0], -t * want / sigma, rtol=1e-14, atol=0)
    assert np.all(J[0, :, 1] == 0.0)
    assert np.all(np.isfinite(v)) and np.all(np.isfinite(J)) and np.all((0 <= v) & (v <= 1))


def test_gaussian_goal_reward_huge_distances():
    """c - x beyond the float64 range (coords 1e308, x -1e308): bump 0, Jacobian 0, no NaN."""
    g = eb.GaussianGoalReward(np.array([[1e308, -1e308]]), 1, sigma=1e-200)
    x = np.array([-1e308, 1e308])
    assert g.value(x)[0, 0] == 0.0
    assert np.all(g.jacobian(x) == 0.0)


def test_gaussian_goal_reward_jacobian_matches_finite_differences_at_small_sigma():
    sigma = 1e-150
    g = eb.GaussianGoalReward(np.array([[0.0, 0.0]]), 1, sigma=sigma)
    x = np.array([0.7, -0.4]) * sigma
    J = g.jacobian(x)[0, 0]
    h = 1e-7 * sigma
    fd = [(g.value(x + h * e)[0, 0] - g.value(x - h * e)[0, 0]) / (2 * h) for e in np.eye(2)]
    np.testing.assert_allclose(J, fd, rtol=1e-6)


@pytest.mark.parametrize("sigma", [1e-301, 5e-324])
def test_gaussian_goal_reward_refuses_sigma_below_range(sigma):
    with pytest.raises(ValueError, match=r"^sigma\b"):
        eb.GaussianGoalReward(np.zeros((1, 2)), 1, sigma=sigma)


@pytest.mark.parametrize("shape", [(0, 3), (3, 0), (0, 0)])
def test_softmax_policy_empty(shape):
    with pytest.raises(ValueError, match=r"^theta\b"):
        eb.softmax_policy(np.zeros(shape))


EXTREME = np.array([[1e308, -1e308], [1e308, 1e308], [-1e308, 0.0]])
#: the same policy from moderate logits: softmax rows (1, 0), (1/2, 1/2), (0, 1) exactly
MODERATE = np.array([[0.0, -1e4], [0.0, 0.0], [-1e4, 0.0]])


def _three_state_mdp():
    rng = np.random.default_rng(4)
    P = rng.random((3, 2, 3)) + 0.1
    return eb.TabularMDP(P / P.sum(axis=2, keepdims=True), 0.9), rng.standard_normal((3, 2))


def test_softmax_policy_extreme_logits():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pi = eb.softmax_policy(EXTREME)
    np.testing.assert_array_equal(pi, [[1.0, 0.0], [0.5, 0.5], [0.0, 1.0]])


@pytest.mark.parametrize("tau", [0.0, 1e-8, 0.1, 10.0])
def test_policy_gradient_extreme_logits(tau):
    """Logits +-1e308 give the policy of MODERATE; the policy gradient has entries
    d pi Atilde that vanish where pi = 0, so it equals the gradient at MODERATE."""
    import warnings

    mdp, r = _three_state_mdp()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = eb.policy_gradient(mdp, r, EXTREME, tau)
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, eb.policy_gradient(mdp, r, MODERATE, tau), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("tau", [0.0, 1e-8, 1e-4])
def test_natural_policy_gradient_extreme_logits(tau):
    """npg(s, a) - npg(s, b) = (Q(s, a) - Q(s, b) - tau (theta_a - theta_b)) / (1 - gamma)
    (Atilde = Q - V - tau log pi and log pi_a - log pi_b = theta_a - theta_b), with Q
    the soft Q of the policy, here from the moderate logits of the same policy."""
    mdp, r = _three_state_mdp()
    g = eb.natural_policy_gradient(mdp, r, EXTREME, tau)
    assert np.all(np.isfinite(g))
    pi = eb.softmax_policy(MODERATE)
    _, Q = eb.evaluate(mdp, r, pi, tau)
    c = 1.0 - mdp.gamma
    for s, (a, b) in [(0, (1, 0)), (2, (0, 1)), (1, (1, 0))]:
        want = (Q[s, a] - Q[s, b] - tau * (0.5 * EXTREME[s, a] - 0.5 * EXTREME[s, b]) * 2) / c
        np.testing.assert_allclose(g[s, a] - g[s, b], want, rtol=1e-9, atol=1e-9)


def test_natural_policy_gradient_beyond_range_is_a_clear_error():
    """tau = 0.1, spread 2e308, 1 - gamma = 0.1: the entry is about 2e308, beyond float64."""
    mdp, r = _three_state_mdp()
    with pytest.raises(ValueError, match=r"theta\[0, 1\].*float64"):
        eb.natural_policy_gradient(mdp, r, EXTREME, 0.1)


def _penalty_problem():
    """The MDP of _three_state_mdp with a linear reward (d = 2) and an occupancy objective."""
    mdp, _ = _three_state_mdp()
    rng = np.random.default_rng(8)
    reward = eb.LinearReward(rng.standard_normal((3, 2, 2)))
    obj = eb.OccupancyObjective(mdp, rng.standard_normal((3, 2)), kappa=0.1)
    return mdp, reward, obj, np.array([0.3, -0.2])


@pytest.mark.parametrize("tau", [0.0, 1e-8, 0.1, 10.0])
def test_penalty_lagrangian_extreme_logits(tau):
    """Logits +-1e308 (spread 2e308, beyond float64: log pi = -inf there): L and its gradients
    are finite, without a warning, and equal the independent formulas at the same policy:
    f = objective.value, p = value_penalty, grad_x = grad_x f + lam (grad J* - grad J)
    (optimal_return_gradient, return_gradient) and grad_theta = pi (g - <pi, g>) - lam dJ/dtheta
    (policy_gradient, itself checked at these logits above)."""
    import warnings

    from exactbilevel.objectives import grad_theta

    mdp, reward, obj, x = _penalty_problem()
    lam = 5.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        L = eb.penalty_lagrangian(mdp, reward, obj, x, EXTREME, lam, tau)
    pi = eb.softmax_policy(MODERATE)
    np.testing.assert_array_equal(L.pi, pi)
    for v in (L.value, L.f, L.penalty, L.grad_x, L.grad_theta):
        assert np.all(np.isfinite(v))
    assert L.f == pytest.approx(obj.value(x, pi), rel=1e-12)
    assert L.penalty == pytest.approx(eb.value_penalty(mdp, reward, x, pi, tau), rel=1e-9, abs=1e-12)
    grad_x = obj.grad_x(x, pi) + lam * (eb.optimal_return_gradient(mdp, reward, x, tau)
                                        - eb.return_gradient(mdp, reward, x, pi))
    np.testing.assert_allclose(L.grad_x, grad_x, rtol=1e-9, atol=1e-9)
    want = grad_theta(pi, obj.grad_pi(x, pi)) - lam * eb.policy_gradient(mdp, reward.value(x), EXTREME, tau)
    np.testing.assert_allclose(L.grad_theta, want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("tau", [1e-3, 0.1, 10.0])
def test_penalty_lagrangian_tiny_probability_against_mpmath(tau):
    """A row with logits (0, -700) (pi = e^-700 / (1 + e^-700) ~ 1e-304, not 0) beside rows of
    spread 2e308: the theta gradient of the tiny entry, -lam/(1 - gamma) d pi Atilde + pi (g - <pi, g>)
    with Atilde = Q - V - tau log pi, against mpmath (50 digits) for pi and pi log pi."""
    import mpmath

    mpmath.mp.dps = 50
    mdp, reward, obj, x = _penalty_problem()
    lam = 5.0
    theta = np.array([[1e308, -1e308], [0.0, -700.0], [-1e308, 0.0]])
    L = eb.penalty_lagrangian(mdp, reward, obj, x, theta, lam, tau)
    p_mp = mpmath.exp(-700) / (1 + mpmath.exp(-700))
    assert float(p_mp) > 0 and L.pi[1, 1] == pytest.approx(float(p_mp), rel=1e-13)
    pi = np.array(L.pi)
    _, Q = eb.evaluate(mdp, reward.value(x), pi, tau)
    V = eb.evaluate(mdp, reward.value(x), pi, tau)[0]
    d, _ = eb.occupancy(mdp, pi)
    g = obj.grad_pi(x, pi)
    # pi Atilde = pi (Q - V) - tau pi log pi, and pi (g - <pi, g>), in mpmath
    pi_row = [1 / (1 + mpmath.exp(-700)), p_mp]
    mean_g = sum(p * mpmath.mpf(float(g[1, a])) for a, p in enumerate(pi_row))
    atilde_term = p_mp * (mpmath.mpf(float(Q[1, 1])) - mpmath.mpf(float(V[1]))) - tau * p_mp * mpmath.log(p_mp)
    want = -lam / (1 - mdp.gamma) * mpmath.mpf(float(d[1])) * atilde_term + p_mp * (mpmath.mpf(float(g[1, 1])) - mean_g)
    assert L.grad_theta[1, 1] == pytest.approx(float(want), rel=1e-9)
    assert np.all(np.isfinite(L.grad_theta)) and np.all(L.grad_theta[[0, 2], [1, 0]] == 0.0)


@pytest.mark.parametrize("tau", [0.1, 10.0])
def test_penalized_policy_from_extreme_theta0(tau):
    """theta0 of spread 2e308 (shifted rows would be -2e308: beyond float64) converges, without a
    warning, to the minimizer reached from the same policy's moderate logits and from the default start."""
    import warnings

    mdp, reward, obj, x = _penalty_problem()
    lam = 50.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = eb.penalized_policy(mdp, reward, obj, x, lam, tau, theta0=EXTREME)
    b = eb.penalized_policy(mdp, reward, obj, x, lam, tau, theta0=MODERATE)
    c = eb.penalized_policy(mdp, reward, obj, x, lam, tau)
    for other in (b, c):
        assert a.ell == pytest.approx(other.ell, rel=1e-10, abs=1e-12)
        np.testing.assert_allclose(a.pi, other.pi, atol=1e-9)
        np.testing.assert_allclose(a.grad_ell, other.grad_ell, rtol=1e-7, atol=1e-9)
    assert np.all(np.isfinite(a.theta)) and a.theta.max() == 0.0


@pytest.mark.parametrize("tau", [0.0, 0.1, 10.0])
def test_diagnostics_extreme_logits(tau):
    """phi and theta of spread 2e308: every quantity equals the one at the same policies' moderate
    logits (NaN exactly where that is NaN: the tau = 0 entries), without a warning; critic_bias
    also against its formula with log pi of the policy, pi log pi = 0 where pi = 0."""
    import warnings

    from exactbilevel.actor_critic import ActorCriticState
    from exactbilevel.diagnostics import Diagnostics

    mdp, reward, obj, x = _penalty_problem()
    prob = eb.BilevelProblem(mdp, reward, obj, x)
    lam, g = 20.0, mdp.gamma
    rng = np.random.default_rng(1)
    critics = [rng.standard_normal((3, 2)) for _ in range(3)]
    extreme = ActorCriticState(x.copy(), EXTREME.copy(), EXTREME.copy(), *[c.copy() for c in critics])
    moderate = ActorCriticState(x.copy(), MODERATE.copy(), MODERATE.copy(), *[c.copy() for c in critics])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = Diagnostics(prob)(extreme, tau, lam)
    want = Diagnostics(prob)(moderate, tau, lam)
    for name, value in got.items():
        if np.isnan(want[name]):
            assert np.isnan(value), name
        else:
            assert value == pytest.approx(want[name], rel=1e-7, abs=1e-9), name
    assert np.isfinite(got["critic_bias"]) and np.isfinite(got["kkt_residual"])
    # critic_bias from its formula: D(Q) = d pi (Ahat(Q, tau) / (1 - gamma) - Ahat(Qc, 0) / lam)
    pi = eb.softmax_policy(MODERATE)
    r = reward.value(x)
    Q_th = eb.evaluate(mdp, r, pi, tau)[1]
    Qc = eb.evaluate(mdp, obj.cost, pi, 0.0)[1]
    d, _ = eb.occupancy(mdp, pi)
    logpi = np.log(np.where(pi > 0, pi, 1.0))

    def D(Qt, Qcc):
        def adv(Q, t):
            A = Q - t * logpi
            return A - np.sum(pi * A, axis=1, keepdims=True)
        return d[:, None] * pi * (adv(Qt, tau) / (1 - g) - adv(Qcc, 0.0) / lam)

    bias = float(np.linalg.norm(D(critics[0], critics[2]) - D(Q_th, Qc)))
    assert got["critic_bias"] == pytest.approx(bias, rel=1e-9)


# --------------------------------------------------------------------------- default tolerance

import math  # noqa: E402

from exactbilevel.solvers import METHODS  # noqa: E402
from exactbilevel.testing import reference as ref  # noqa: E402
from exactbilevel.testing import strategies as ebst  # noqa: E402

EPS = np.finfo(float).eps


def _twice_floor(r, tau, A, gamma):
    """2 x the float64 floor of the solvers' module docstring, from its formula."""
    r_abs, ent = float(np.abs(r).max()), tau * math.log(A)
    scale = (r_abs + ent) / (1 - gamma)
    return 2 * 8 * EPS * (r_abs + scale + ent) / (1 - gamma)


def _issue_problems():
    rng = np.random.default_rng(17)
    out = []
    m = eb.envs.random_mdp(30, 4, gamma=0.99, seed=1)
    out.append(("random gamma 0.99 |r| 10", m, 10.0 * rng.uniform(-1, 1, (30, 4))))
    m = eb.envs.random_mdp(30, 4, gamma=0.999, seed=2)
    out.append(("random gamma 0.999 r in [0,1]", m, rng.uniform(0, 1, (30, 4))))
    g = eb.envs.gridworld(n=10, gamma=0.999)
    r = eb.GaussianGoalReward(g.coords, g.mdp.A, sigma=1.0).value(np.array([9.0, 9.0]))
    out.append(("gridworld 10 gamma 0.999", g.mdp, r))
    return out


@pytest.mark.parametrize("index", range(3), ids=[p[0] for p in _issue_problems()])
@pytest.mark.parametrize("tau", [0.0, 0.1])
def test_default_tol_solves_issue_problems(index, tau):
    """The reproductions of issue 17: the default call certifies max(1e-10, 2 floor),
    and its V is within the bound of an independent dense policy iteration; an
    explicit tol=1e-10 stays a ValueError, as before."""
    _, mdp, r = _issue_problems()[index]
    res = eb.solve(mdp, r, tau)
    assert res.converged
    want = max(1e-10, _twice_floor(r, tau, mdp.A, mdp.gamma))
    assert want > 1e-10  # these problems need the relative default
    assert res.error_bound <= want
    V_ref, err = ref.policy_iteration_ref(ref.dense_kernel(mdp), r, mdp.gamma, tau)
    assert np.abs(res.V - V_ref).max() <= res.error_bound + err
    with pytest.raises(ValueError, match=r"^tol=1e-10 is below the float64 floor"):
        eb.solve(mdp, r, tau, tol=1e-10)


def test_default_tol_is_1e10_where_the_floor_allows():
    mdp = eb.envs.random_mdp(10, 3, gamma=0.9, seed=3)
    r = np.random.default_rng(0).uniform(-1, 1, (10, 3))
    assert _twice_floor(r, 0.0, 3, 0.9) < 1e-10
    a, b = eb.solve(mdp, r), eb.solve(mdp, r, tol=1e-10)
    assert a.error_bound <= 1e-10
    np.testing.assert_array_equal(a.V, b.V)  # the same computation as an explicit 1e-10


@settings(max_examples=examples(25))
@given(data=st.data())
def test_default_tol_hypothesis(data):
    """Random MDPs (gamma up to 0.999), rewards up to 1e6, every method, tau in {0} or
    [1e-6, 10]: the default call converges to max(1e-10, 2 floor), within its
    bound of an independent dense policy iteration."""
    mdp = data.draw(ebst.mdps(max_states=8, max_actions=3, gamma=(0.0, 0.999)))
    r = data.draw(ebst.rewards(mdp, scale=(1e-3, 1e6)))
    tau = data.draw(ebst.taus(1e-6, 10.0, include_zero=True))
    method = data.draw(st.sampled_from(METHODS))
    res = eb.solve(mdp, r, tau, method=method)
    assert res.converged
    assert res.error_bound <= max(1e-10, _twice_floor(r, tau, mdp.A, mdp.gamma))
    V_ref, err = ref.policy_iteration_ref(ref.dense_kernel(mdp), r, mdp.gamma, tau)
    assert np.abs(res.V - V_ref).max() <= res.error_bound + err


def test_default_tol_values_beyond_float64_is_a_clear_error():
    mdp = eb.envs.random_mdp(3, 2, gamma=0.99, seed=0)
    with pytest.raises(ValueError, match=r"float64 range"):
        eb.solve(mdp, np.full((3, 2), 1e307))


@pytest.mark.parametrize("tol", [0.0, -1.0, float("nan"), float("inf")])
def test_explicit_bad_tol_still_refused(tol):
    mdp = eb.envs.random_mdp(3, 2, gamma=0.5, seed=0)
    with pytest.raises(ValueError, match=r"^tol\b"):
        eb.solve(mdp, np.zeros((3, 2)), tol=tol)


def test_cli_solve_gamma_0999():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-m", "exactbilevel", "solve", "--gamma", "0.999", "--n", "6"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("certified |V - V*| <=") == 2


# --------------------------------------------------------------------------- small problems

@settings(max_examples=examples(30))
@given(data=st.data())
def test_compiled_value_iteration_equals_python_loop(data):
    """The compiled value-iteration loop of small problems gives the same bits (V, Q,
    pi, bound, sweep count, method) as the Python-level loop it replaces (forced
    here by setting the size threshold below every problem), for value iteration
    and for "auto" on sparse MDPs, which starts with it and may switch."""
    from exactbilevel import _kernels

    mdp = data.draw(ebst.mdps(max_states=8, max_actions=3, gamma=(0.0, 0.999)))
    r = data.draw(ebst.rewards(mdp, scale=(1e-3, 1e3)))
    tau = data.draw(ebst.taus(1e-4, 1.0, include_zero=True))
    method = data.draw(st.sampled_from(["value_iteration", "auto"]))
    max_iter = data.draw(st.sampled_from([None, 1, 3]))
    a = eb.solve(mdp, r, tau, method=method, max_iter=max_iter, raise_on_failure=False)
    saved = _kernels.SERIAL_MAX_WORK
    _kernels.SERIAL_MAX_WORK = -1
    try:
        b = eb.solve(mdp, r, tau, method=method, max_iter=max_iter, raise_on_failure=False)
    finally:
        _kernels.SERIAL_MAX_WORK = saved
    assert (a.method, a.iterations, a.converged) == (b.method, b.iterations, b.converged)
    assert a.error_bound == b.error_bound
    for x, y in ((a.V, b.V), (a.Q, b.Q), (a.pi, b.pi)):
        np.testing.assert_array_equal(x, y)


def test_small_problem_runs_single_threaded_and_restores_threads():
    """A small solve runs its kernels with one Numba thread (set thread-locally) and
    restores the caller's thread count afterwards, also after an exception."""
    import numba

    mdp = eb.envs.random_mdp(3, 2, gamma=0.9, seed=0)
    before = numba.get_num_threads()
    seen = []

    class Spy:  # an objective whose methods record the thread count inside hypergradient
        def value(self, x, pi):
            seen.append(numba.get_num_threads())
            return 0.0

        def grad_x(self, x, pi):
            return np.zeros(x.size)

        def grad_pi(self, x, pi):
            seen.append(numba.get_num_threads())
            return np.ones_like(pi)

    reward = eb.LinearReward(np.ones((3, 2, 1)))
    eb.hypergradient(mdp, reward, Spy(), np.zeros(1), 0.1, full_output=True)
    assert seen and set(seen) == {1}
    assert numba.get_num_threads() == before
    with pytest.raises(ValueError):
        eb.solve(mdp, np.zeros((3, 2)), tol=-1.0)
    assert numba.get_num_threads() == before
