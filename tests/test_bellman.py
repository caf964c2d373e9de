"""Bellman sweeps, Q values and greedy policies against the plain-numpy references.

The compiled kernels are reached only through the public functions and the
internal ``bellman.sweep`` (their own signatures may change).  References:
:mod:`exactbilevel.testing.reference` (numpy + scipy.special.logsumexp), itself
checked here against explicit loops with ``math.fsum``.
"""

import math
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

import exactbilevel as eb
from exactbilevel import _kernels, bellman
from exactbilevel.testing import reference as ref
from exactbilevel.testing import strategies as ebst

EPS = np.finfo(float).eps


def scale_of(r, V, tau, A):
    """Magnitude of Q and T V: the natural unit for absolute tolerances."""
    return np.abs(r).max() + np.abs(V).max() + tau * math.log(A) + 1e-300


@st.composite
def problems(draw, tau=ebst.taus(1e-6, 10.0, include_zero=True), **mdp_kwargs):
    mdp = draw(ebst.mdps(**mdp_kwargs))
    r = draw(ebst.rewards(mdp))
    V = draw(ebst.values(mdp, scale=(1e-3, 1e8)))
    return mdp, r, V, draw(tau)


# --------------------------------------------------------------------------- the reference itself


def loop_bellman(P, r, V, gamma, tau):
    """Explicit loops, math.fsum and math.exp/log: an independent check of bellman_ref."""
    S, A = r.shape
    Q = np.empty((S, A))
    TV = np.empty(S)
    for s in range(S):
        for a in range(A):
            Q[s, a] = r[s, a] + gamma * math.fsum(P[s, a, t] * V[t] for t in range(S))
        m = max(Q[s])
        TV[s] = m if tau == 0 else m + tau * math.log(math.fsum(math.exp((q - m) / tau) for q in Q[s]))
    return Q, TV


@settings(max_examples=examples(30))
@given(problems(max_states=6, max_actions=4))
def test_reference_bellman_matches_loops(problem):
    mdp, r, V, tau = problem
    P = ref.dense_kernel(mdp)
    Q0, TV0 = loop_bellman(P, r, V, mdp.gamma, tau)
    Q1, TV1 = ref.bellman_ref(P, r, V, mdp.gamma, tau)
    sc = scale_of(r, V, tau, mdp.A)
    np.testing.assert_allclose(Q1, Q0, rtol=0, atol=1e-13 * sc)
    np.testing.assert_allclose(TV1, TV0, rtol=0, atol=1e-13 * sc)


# --------------------------------------------------------------------------- kernels against the reference


@settings(max_examples=examples(80))
@given(problems())
def test_sweep_equals_reference(problem):
    mdp, r, V, tau = problem
    P = ref.dense_kernel(mdp)
    Q, TV = bellman.sweep(mdp, r, V, tau)
    Qr, TVr = ref.bellman_ref(P, r, V, mdp.gamma, tau)
    sc = scale_of(r, V, tau, mdp.A)
    assert Q.shape == (mdp.S, mdp.A) and TV.shape == (mdp.S,)
    np.testing.assert_allclose(Q, Qr, rtol=0, atol=1e-12 * sc)
    np.testing.assert_allclose(TV, TVr, rtol=0, atol=1e-12 * sc)


@settings(max_examples=examples(30))
@given(problems())
def test_sweep_writes_into_given_buffers(problem):
    mdp, r, V, tau = problem
    Q = np.full((mdp.S, mdp.A), np.nan)
    TV = np.full(mdp.S, np.nan)
    Q2, TV2 = bellman.sweep(mdp, r, V, tau, Q, TV)
    assert Q2 is Q and TV2 is TV
    Qr, TVr = ref.bellman_ref(ref.dense_kernel(mdp), r, V, mdp.gamma, tau)
    sc = scale_of(r, V, tau, mdp.A)
    np.testing.assert_allclose(Q, Qr, rtol=0, atol=1e-12 * sc)
    np.testing.assert_allclose(TV, TVr, rtol=0, atol=1e-12 * sc)


@settings(max_examples=examples(60))
@given(problems())
def test_public_q_values_and_bellman_operator_equal_reference(problem):
    mdp, r, V, tau = problem
    P = ref.dense_kernel(mdp)
    sc = scale_of(r, V, tau, mdp.A)
    Qr, TVr = ref.bellman_ref(P, r, V, mdp.gamma, tau)
    np.testing.assert_allclose(eb.q_values(mdp, r, V), ref.q_values_ref(P, r, V, mdp.gamma), rtol=0, atol=1e-12 * sc)
    np.testing.assert_allclose(eb.bellman_operator(mdp, r, V, tau), TVr, rtol=0, atol=1e-12 * sc)
    # lists and integer arrays are accepted as well
    np.testing.assert_allclose(eb.q_values(mdp, r.tolist(), list(V)), Qr, rtol=0, atol=1e-12 * sc)
    # the default tau is the hard max
    np.testing.assert_allclose(eb.bellman_operator(mdp, r, V), Qr.max(axis=1), rtol=0, atol=1e-12 * sc)


@settings(max_examples=examples(60))
@given(problems())
def test_dense_and_sparse_sweeps_agree(problem):
    mdp, r, V, tau = problem
    dense, sparse = mdp.to_dense(), mdp.to_sparse()
    assert not dense.is_sparse and sparse.is_sparse
    Qd, TVd = bellman.sweep(dense, r, V, tau)
    Qs, TVs = bellman.sweep(sparse, r, V, tau)
    sc = scale_of(r, V, tau, mdp.A)
    np.testing.assert_allclose(Qd, Qs, rtol=0, atol=1e-12 * sc)
    np.testing.assert_allclose(TVd, TVs, rtol=0, atol=1e-12 * sc)


@settings(max_examples=examples(30))
@given(problems(max_states=10, max_actions=3))
def test_sparse_with_duplicate_and_unsorted_entries(problem):
    """A CSR matrix whose rows list columns out of order and repeat them means the same kernel."""
    mdp, r, V, tau = problem
    P = ref.dense_kernel(mdp).reshape(mdp.S * mdp.A, mdp.S)
    rng = np.random.default_rng(mdp.S * 7 + mdp.A)
    data, indices, indptr = [], [], [0]
    for row in P:
        cols = np.flatnonzero(row)
        vals = row[cols]
        # split every entry in two halves and reverse the order of the columns
        cols = np.repeat(cols[::-1], 2)
        vals = np.repeat(vals[::-1] / 2, 2)
        perm = rng.permutation(cols.size)
        data.extend(vals[perm]), indices.extend(cols[perm])
        indptr.append(len(data))
    M = sp.csr_matrix((np.array(data), np.array(indices), np.array(indptr)), shape=P.shape)
    weird = eb.TabularMDP(M, mdp.gamma, mdp.rho)
    Qw, TVw = bellman.sweep(weird, r, V, tau)
    Qr, TVr = ref.bellman_ref(P.reshape(mdp.S, mdp.A, mdp.S), r, V, mdp.gamma, tau)
    sc = scale_of(r, V, tau, mdp.A)
    np.testing.assert_allclose(Qw, Qr, rtol=0, atol=1e-12 * sc)
    np.testing.assert_allclose(TVw, TVr, rtol=0, atol=1e-12 * sc)


# --------------------------------------------------------------------------- stability and limits


@settings(max_examples=examples(80))
@given(problems(tau=ebst.taus(1e-8, 1e3)))
def test_soft_operator_stable_and_between_hard_bounds(problem):
    """No warning, finite, and T_0 V <= T_tau V <= T_0 V + tau log A, for tau in [1e-8, 1e3], |r| <= 1e6."""
    mdp, r, V, tau = problem
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with np.errstate(all="raise"):
            Q, TV = bellman.sweep(mdp, r, V, tau)
            pi = eb.policy_from_q(Q, tau)
            T0 = eb.bellman_operator(mdp, r, V, 0.0)
    assert np.all(np.isfinite(Q)) and np.all(np.isfinite(TV)) and np.all(np.isfinite(pi))
    slack = 4 * EPS * (np.abs(TV).max() + tau * math.log(mdp.A))
    assert np.all(TV >= T0 - slack)
    assert np.all(TV - T0 <= tau * math.log(mdp.A) + slack)
    np.testing.assert_allclose(pi.sum(axis=1), 1.0, rtol=0, atol=1e-12)


@settings(max_examples=examples(40))
@given(problems(tau=st.just(1.0)))
def test_soft_tends_to_hard_as_tau_decreases(problem):
    mdp, r, V, _ = problem
    T0 = eb.bellman_operator(mdp, r, V, 0.0)
    Q = eb.q_values(mdp, r, V)
    prev = np.inf
    for tau in 10.0 ** np.arange(2, -9, -1):
        gap = eb.bellman_operator(mdp, r, V, tau) - T0
        slack = 4 * EPS * (np.abs(T0).max() + tau * math.log(mdp.A))
        assert np.all(gap >= -slack)
        assert np.all(gap <= tau * math.log(mdp.A) + slack)
        assert gap.max() <= prev + slack  # decreasing in tau
        prev = gap.max()
    # with k exactly tied maximizers the gap is at least tau log k (and the rest is smaller)
    k = (Q == Q.max(axis=1, keepdims=True)).sum(axis=1)
    tau = 1e-3
    gap = eb.bellman_operator(mdp, r, V, tau) - T0
    assert np.all(gap >= tau * np.log(k) - 4 * EPS * np.abs(T0).max() - 1e-12 * tau)


@settings(max_examples=examples(40))
@given(problems(), st.floats(-1e6, 1e6), ebst.seeds)
def test_contraction_monotonicity_and_shift(problem, c, seed):
    """gamma-contraction in sup norm, monotone, and T(V + c) = T V + gamma c."""
    mdp, r, V, tau = problem
    g = mdp.gamma
    W = V + np.random.default_rng(seed).uniform(-1, 1, mdp.S) * (np.abs(V).max() + 1)
    TV = eb.bellman_operator(mdp, r, V, tau)
    TW = eb.bellman_operator(mdp, r, W, tau)
    sc = scale_of(r, np.abs(V) + np.abs(W) + abs(c), tau, mdp.A)
    assert np.abs(TV - TW).max() <= g * np.abs(V - W).max() + 1e-12 * sc
    hi = np.maximum(V, W)
    assert np.all(eb.bellman_operator(mdp, r, hi, tau) >= np.maximum(TV, TW) - 1e-12 * sc)
    np.testing.assert_allclose(eb.bellman_operator(mdp, r, V + c, tau), TV + g * c, rtol=0, atol=1e-12 * sc)


@settings(max_examples=examples(40))
@given(problems(), st.floats(-1e6, 1e6))
def test_row_sums_and_shifted_q_equal_a_sweep_at_the_shifted_values(problem, c):
    """``row_sums`` are P's, read-only; ``_kernels.shift_q`` turns the sweep at V
    into the sweep at V + c (``Q(V + c) = Q(V) + gamma c P 1``) without reading P,
    as :func:`exactbilevel.solve` uses it: against ``bellman_ref`` at V + c."""
    mdp, r, V, tau = problem
    P = ref.dense_kernel(mdp)
    np.testing.assert_allclose(mdp.row_sums, P.sum(axis=2), rtol=0, atol=4 * EPS * mdp.S)
    assert not mdp.row_sums.flags.writeable
    Q, TV = bellman.sweep(mdp, r, V, tau)
    _kernels.shift_q(Q, mdp.row_sums, mdp.gamma * c, tau, TV)
    Qr, TVr = ref.bellman_ref(P, r, V + c, mdp.gamma, tau)
    sc = scale_of(r, np.abs(V) + abs(c), tau, mdp.A)
    np.testing.assert_allclose(Q, Qr, rtol=0, atol=1e-12 * sc)
    np.testing.assert_allclose(TV, TVr, rtol=0, atol=1e-12 * sc)


@settings(max_examples=examples(40))
@given(problems(max_states=12))
def test_fused_dense_sweep_equals_its_parts(problem):
    """``_kernels.sweep_dense_policy`` (modified policy iteration's sweep on dense MDPs):
    Q and TV as ``bellman_ref``, pi the greedy policy of that Q (``policy_ref``), M its
    policy matrix (``policy_matrix_ref``), b its rewards with the entropy term."""
    mdp, r, V, tau = problem
    P = ref.dense_kernel(mdp)
    S, A = r.shape
    Q, TV, pi, M, b = np.empty((S, A)), np.empty(S), np.empty((S, A)), np.empty((S, S)), np.empty(S)
    _kernels.sweep_dense_policy(P, r, V, mdp.gamma, tau, Q, TV, pi, M, b)
    Qr, TVr = ref.bellman_ref(P, r, V, mdp.gamma, tau)
    sc = scale_of(r, V, tau, A)
    np.testing.assert_allclose(Q, Qr, rtol=0, atol=1e-12 * sc)
    np.testing.assert_allclose(TV, TVr, rtol=0, atol=1e-12 * sc)
    np.testing.assert_allclose(pi, ref.policy_ref(Q, tau), rtol=0, atol=1e-12)
    np.testing.assert_allclose(M, ref.policy_matrix_ref(P, pi), rtol=0, atol=1e-14)
    np.testing.assert_allclose(b, (pi * r).sum(axis=1) + tau * ref.entropy_ref(pi), rtol=0,
                               atol=1e-12 * (np.abs(r).max() + tau * math.log(A) + 1))


@settings(max_examples=examples(30))
@given(problems(min_actions=7, max_actions=20, max_states=12, sparse=False))
def test_dense_sweeps_with_many_actions(problem):
    """The dense kernels read the A rows of a state eight at a time and the rest one at a
    time (``_kernels._rows_dot``): A from 7 to 20 takes both paths and their mixes."""
    mdp, r, V, tau = problem
    P = ref.dense_kernel(mdp)
    S, A = r.shape
    Qr, TVr = ref.bellman_ref(P, r, V, mdp.gamma, tau)
    sc = scale_of(r, V, tau, A)
    Q, TV = bellman.sweep(mdp, r, V, tau)
    np.testing.assert_allclose(Q, Qr, rtol=0, atol=1e-12 * sc)
    np.testing.assert_allclose(TV, TVr, rtol=0, atol=1e-12 * sc)
    Q, TV, pi, M, b = np.empty((S, A)), np.empty(S), np.empty((S, A)), np.empty((S, S)), np.empty(S)
    _kernels.sweep_dense_policy(P, r, V, mdp.gamma, tau, Q, TV, pi, M, b)
    np.testing.assert_allclose(Q, Qr, rtol=0, atol=1e-12 * sc)
    np.testing.assert_allclose(TV, TVr, rtol=0, atol=1e-12 * sc)


@settings(max_examples=examples(30))
@given(ebst.mdps(max_states=12, sparse=False), ebst.seeds, st.integers(1, 30))
def test_dense_backups_equal_numpy_backups(mdp, seed, count):
    """``_kernels.dense_backups``: with ``stop = 0`` all ``count`` backups
    ``x <- b + gamma M x`` (as numpy's, to rounding); with an infinite ``stop``, one."""
    rng = np.random.default_rng(seed)
    S = mdp.S
    M = ref.policy_matrix_ref(ref.dense_kernel(mdp), rng.dirichlet(np.ones(mdp.A), size=S))
    b, x0 = rng.uniform(-1, 1, S), rng.uniform(-10, 10, S)
    out, done = _kernels.dense_backups(M, b, mdp.gamma, x0.copy(), np.empty(S), count, 0.0)
    x = x0.copy()
    for _ in range(done):
        x, last = b + mdp.gamma * M @ x, x
    np.testing.assert_allclose(out, x, rtol=0, atol=1e-12 * 20)
    # it stops early only after a change of span 0 (always, for one state)
    assert done == count or S == 1 or np.ptp(x - last) <= 1e-12 * 20
    one, done = _kernels.dense_backups(M, b, mdp.gamma, x0.copy(), np.empty(S), count, np.inf)
    assert done == 1
    np.testing.assert_allclose(one, b + mdp.gamma * M @ x0, rtol=0, atol=1e-12 * 20)


# --------------------------------------------------------------------------- policies


@st.composite
def q_tables(draw):
    S = draw(st.integers(1, 30))
    A = draw(st.integers(1, 6))
    return draw(ebst.rewards((S, A), scale=(1e-3, 1e8)))


@settings(max_examples=examples(80))
@given(q_tables(), ebst.taus(1e-8, 1e3, include_zero=True))
def test_policy_from_q_equals_reference(Q, tau):
    pi = eb.policy_from_q(Q, tau)
    pr = ref.policy_ref(Q, tau)
    assert pi.shape == Q.shape
    np.testing.assert_allclose(pi, pr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(pi.sum(axis=1), 1.0, rtol=0, atol=1e-12)
    assert np.all(pi >= 0)
    if tau == 0:
        # one-hot on the first maximizer, exactly
        assert np.array_equal(pi, pr)


@settings(max_examples=examples(40))
@given(problems())
def test_policy_of_sweep_q_is_softmax_of_q_minus_tv(problem):
    """pi(a|s) = exp((Q(s,a) - T V(s)) / tau): the definition in docs/theory.rst, "The lower level"."""
    mdp, r, V, tau = problem
    Q, TV = bellman.sweep(mdp, r, V, tau)
    pi = eb.policy_from_q(Q, tau)
    if tau > 0:
        z = (Q - TV[:, None]) / tau
        expected = np.exp(np.minimum(z, 0.0))
        # (Q - TV)/tau has an absolute rounding error of about eps |Q| / tau
        err = 8 * EPS * np.abs(Q).max() / tau
        if err < 1e-3:
            np.testing.assert_allclose(pi, expected, rtol=4 * err + 1e-12, atol=1e-12)


def test_policy_ties_uniform_soft_first_hard():
    Q = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [-1e6, 5.0, -1e6, 5.0]])
    np.testing.assert_array_equal(
        eb.policy_from_q(Q, 0.0), [[0, 1, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0]]
    )
    pi = eb.policy_from_q(Q, 1e-8)
    np.testing.assert_allclose(pi, [[0, 0.5, 0.5, 0], [0.25] * 4, [0, 0.5, 0, 0.5]], atol=1e-15)


def test_extreme_values_no_overflow():
    """Rewards 1e6, tau 1e-8: exponents of 1e14 must be max-shifted, not overflowed."""
    P = np.full((2, 3, 2), 0.5)
    mdp = eb.TabularMDP(P, 0.99)
    r = np.array([[1e6, -1e6, 1e6 - 1e-2], [0.0, 1e-300, -1e-300]])
    V = np.array([1e8, -1e8])
    for tau in (1e-8, 1e-3, 1.0, 1e3):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            TV = eb.bellman_operator(mdp, r, V, tau)
            pi = eb.policy_from_q(eb.q_values(mdp, r, V), tau)
        Qr, TVr = ref.bellman_ref(P, r, V, 0.99, tau)
        np.testing.assert_allclose(TV, TVr, rtol=1e-14)
        np.testing.assert_allclose(pi, ref.policy_ref(Qr, tau), atol=1e-12)
        assert np.all(np.isfinite(TV)) and np.all(np.isfinite(pi))


def test_single_action_soft_equals_hard():
    """With A = 1, log sum exp of one term is that term: T_tau = T_0 and pi = 1."""
    mdp = eb.envs.random_mdp(5, 1, gamma=0.7, seed=3)
    r = np.arange(5.0)[:, None]
    V = np.linspace(-1, 1, 5)
    for tau in (1e-8, 1.0, 1e3):
        np.testing.assert_array_equal(eb.bellman_operator(mdp, r, V, tau), eb.bellman_operator(mdp, r, V, 0.0))
        np.testing.assert_array_equal(eb.policy_from_q(eb.q_values(mdp, r, V), tau), np.ones((5, 1)))


def test_two_action_closed_form():
    """tau log(e^{a/tau} + e^{b/tau}) = max + tau log(1 + e^{-|a-b|/tau}) on a gamma = 0 MDP."""
    P = np.zeros((1, 2, 1))
    P[0, :, 0] = 1.0
    mdp = eb.TabularMDP(P, 0.0)
    for a, b, tau in [(1.0, 0.0, 1.0), (3.0, 3.0, 0.5), (-2.0, 5.0, 10.0), (1e6, 1e6 - 1.0, 1e-3)]:
        expected = max(a, b) + tau * math.log1p(math.exp(-abs(a - b) / tau))
        got = eb.bellman_operator(mdp, np.array([[a, b]]), np.zeros(1), tau)[0]
        assert got == pytest.approx(expected, rel=1e-15, abs=1e-15)
        p = eb.policy_from_q(np.array([[a, b]]), tau)[0, 0]
        assert p == pytest.approx(1.0 / (1.0 + math.exp((b - a) / tau)), rel=1e-14)


# --------------------------------------------------------------------------- the testing helpers' own examples


def test_testing_helpers_docstring_examples():
    """The examples in exactbilevel.testing's docstrings run and pass."""
    import doctest

    import exactbilevel.testing

    for module in (exactbilevel.testing, ref, ebst):
        failed, attempted = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
        assert attempted > 0 and failed == 0, module.__name__


# --------------------------------------------------------------------------- packed CSR forms


@pytest.mark.parametrize(
    "make, relative, coded",
    [
        (lambda: eb.envs.gridworld(n=40, actions=4, sparse=True).mdp, True, True),
        (lambda: eb.envs.random_mdp(300, 3, successors=4, seed=2), True, False),
        (lambda: eb.envs.random_mdp(40_000, 1, successors=2, seed=3), False, False),
        (
            lambda: eb.TabularMDP(
                sp.csr_matrix(
                    (np.full(40_000, 1.0), (np.arange(40_000), (np.arange(40_000) * 7919) % 40_000)),
                    shape=(40_000, 40_000),
                ),
                0.9,
            ),
            False,
            True,
        ),
    ],
    ids=["grid-relative-coded", "random-relative-plain", "far-absolute-plain", "far-absolute-coded"],
)
def test_every_packed_form_equals_a_scipy_matvec(make, relative, coded):
    mdp = make()
    _, _, is_relative, codes, _ = mdp.packed
    assert is_relative == relative and (codes.size > 0) == coded
    rng = np.random.default_rng(0)
    r = rng.normal(size=(mdp.S, mdp.A))
    V = rng.normal(size=mdp.S)
    Q, TV = bellman.sweep(mdp, r, V, 0.0)
    Q_ref = r + mdp.gamma * (mdp.P @ V).reshape(mdp.S, mdp.A)  # scipy, independent of the kernel
    np.testing.assert_allclose(Q, Q_ref, rtol=0, atol=1e-12 * (1 + np.abs(Q_ref).max()))
    np.testing.assert_array_equal(TV, Q.max(axis=1))
    # the backups of a deterministic policy read the same rows
    actions = rng.integers(0, mdp.A, mdp.S)
    b = rng.normal(size=mdp.S)
    out = bellman.action_backups(mdp, actions, b, V.copy(), 2)
    P_a = mdp.P[np.arange(mdp.S) * mdp.A + actions]  # scipy rows (s, a_s)
    once = b + mdp.gamma * (P_a @ V)
    np.testing.assert_allclose(out, b + mdp.gamma * (P_a @ once), rtol=0, atol=1e-12 * (1 + np.abs(once).max()))
