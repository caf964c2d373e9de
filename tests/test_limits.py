"""The tau -> 0 limit policy (exactbilevel.limits) against closed forms, eb.solve at small tau and a
reference solver.

References: the closed form of a two-branch tie; soft-optimal policies ``eb.solve(mdp, r, tau).pi``
at small tau (their limit is the definition); :func:`exactbilevel.testing.reference.policy_iteration_ref`
for the optimal action sets (dense numpy, its own certificate).
"""

import math

import numpy as np
import pytest
from conftest import examples
from hypothesis import event, given, settings
from hypothesis import strategies as st

import exactbilevel as eb
from exactbilevel.testing import reference as ref
from exactbilevel.testing import strategies as ebst

EPS = np.finfo(float).eps


def branch_mdp(gamma, scale=1.0, gap=1.0):
    """State 0 chooses between absorbing state 1 (one optimal action: the other is ``gap`` worse) and
    absorbing state 2 (two tied actions); every optimal reward is ``scale``, so Q*_0(0, .) is tied."""
    P = np.zeros((3, 2, 3))
    P[0, 0, 1] = P[0, 1, 2] = 1.0
    P[1, :, 1] = P[2, :, 2] = 1.0
    r = np.array([[0.0, 0.0], [scale, scale - gap], [scale, scale]])
    return eb.TabularMDP(P, gamma), r


@pytest.mark.parametrize("gamma", [0.0, 0.3, 0.5, 0.8])
def test_limit_weights_the_branch_with_more_downstream_ties(gamma):
    """V1(1) = 0, V1(2) = log 2 / (1 - gamma): pi(1 | 0) = 2^(g/(1-g)) / (1 + 2^(g/(1-g))), not 1/2."""
    mdp, r = branch_mdp(gamma)
    w = 2.0 ** (gamma / (1.0 - gamma))
    expect = np.array([[1 / (1 + w), w / (1 + w)], [1.0, 0.0], [0.5, 0.5]])
    np.testing.assert_allclose(eb.limit_policy(mdp, r), expect, atol=1e-12)
    uniform = np.array([[0.5, 0.5], [1.0, 0.0], [0.5, 0.5]])
    np.testing.assert_array_equal(eb.limit_policy(mdp, r, rule="uniform"), uniform)
    for tau in (1e-3, 1e-4, 1e-5):
        # off the optimal set the soft weight is exp(-1 / tau); on it the restricted soft problem
        # has pi*_tau equal to the limit for every tau
        np.testing.assert_allclose(eb.solve(mdp, r, tau, tol=1e-12).pi, expect, atol=1e-7)


@pytest.mark.parametrize("scale,gamma", [(1e-3, 0.5), (1.0, 0.9), (1e6, 0.99), (1e6, 0.5)])
def test_default_tolerance_finds_ties_computed_to_rounding_and_not_small_genuine_gaps(scale, gamma):
    mdp, r = branch_mdp(gamma, scale)
    sol = eb.solve(mdp, r, 0.0, tol=1e-9 * scale / (1 - gamma), V0=np.array([0.3, -0.7, 0.1]) * scale)
    O = eb.optimal_actions(mdp, r, solution=sol)
    np.testing.assert_array_equal(O, [[True, True], [True, False], [True, True]])
    # a genuine gap gamma 1e-6 scale / (1 - gamma), far above the default tolerance, is kept
    r2 = r.copy()
    r2[2] += 1e-6 * scale
    O2 = eb.optimal_actions(mdp, r2)
    np.testing.assert_array_equal(O2, [[False, True], [True, False], [True, True]])
    np.testing.assert_array_equal(eb.limit_policy(mdp, r2), [[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]])
    # ... unless tie_tol says it is a tie
    assert eb.optimal_actions(mdp, r2, tie_tol=1e-3 * scale)[0].all()


def test_limit_does_not_depend_on_warm_start_method_or_action_order():
    rng = np.random.default_rng(3)
    S, gamma = 7, 0.9
    P0 = rng.dirichlet(np.ones(S), size=(S, 2))
    r0 = rng.uniform(-1, 1, (S, 2))
    r0[:, 0] += 0.3  # action 0 optimal in most states
    # actions 1 and 3 are copies of 0: exact three-way ties wherever action 0 is optimal
    P, r = P0[:, [0, 0, 1, 0], :], r0[:, [0, 0, 1, 0]]
    mdp = eb.TabularMDP(P, gamma)
    base = eb.limit_policy(mdp, r)
    assert np.any(np.sum(base > 0, axis=1) == 3)
    for method in ("value_iteration", "policy_iteration", "anderson"):
        for V0 in (None, rng.normal(size=S) * 10):
            sol = eb.solve(mdp, r, 0.0, method=method, tol=1e-11, V0=V0)
            np.testing.assert_allclose(eb.limit_policy(mdp, r, solution=sol), base, atol=1e-10)
    for perm in ([3, 2, 1, 0], [1, 3, 0, 2]):
        pm = eb.TabularMDP(P[:, perm, :], gamma)
        np.testing.assert_allclose(eb.limit_policy(pm, r[:, perm]), base[:, perm], atol=1e-10)
    # a sparse copy of the model gives the same policy
    np.testing.assert_allclose(eb.limit_policy(mdp.to_sparse(), r), base, atol=1e-10)


def test_every_action_tied_gives_the_uniform_policy():
    rng = np.random.default_rng(0)
    mdp = eb.TabularMDP(rng.dirichlet(np.ones(5), size=(5, 3)), 0.95)
    np.testing.assert_allclose(eb.limit_policy(mdp, np.full((5, 3), 2.0)), np.full((5, 3), 1 / 3), atol=1e-12)


@settings(max_examples=examples(40))
@given(st.data())
def test_limit_policy_properties_on_random_mdps(data):
    """A distribution; zero outside the optimal actions of a reference solve; equal to pi*_tau at a
    tau far below the action gap (the off-optimal weight is below exp(-40) there, and restricted to
    the optimal actions pi*_tau is the limit for every tau: module docstring of exactbilevel.limits).

    Ties are built in two ways: copies of actions (exact, same successors), and a new action with
    its own random successors in some states whose reward makes its Q*_0 equal the best one (tied to
    rounding, different downstream entropy: there the limit is not uniform over the ties)."""
    mdp0 = data.draw(ebst.mdps(max_states=6, max_actions=3, gamma=(0.0, 0.9), sparse=False))
    r0 = data.draw(ebst.rewards(mdp0, scale=(1e-2, 1e3)))
    S, A0, g = mdp0.S, mdp0.A, mdp0.gamma
    P0 = ref.dense_kernel(mdp0)
    V0, _ = ref.policy_iteration_ref(P0, r0, g)
    Q0 = ref.q_values_ref(P0, r0, V0, g)
    rng = np.random.default_rng(data.draw(ebst.seeds))
    tie_states = data.draw(st.lists(st.integers(0, S - 1), unique=True))
    P_new, r_new = P0[:, 0, :].copy(), r0[:, 0] - 0.5 * np.abs(r0).max()  # elsewhere: a worse copy of 0
    for s in tie_states:
        P_new[s] = rng.dirichlet(np.ones(S))
        r_new[s] = Q0[s].max() - g * P_new[s] @ V0
    dup = data.draw(st.lists(st.integers(0, A0 - 1), max_size=2))  # copies: exact ties in Q*_0
    P = np.concatenate([P0, P_new[:, None, :], P0[:, dup, :]], axis=1)
    r = np.ascontiguousarray(np.concatenate([r0, r_new[:, None], r0[:, dup]], axis=1))
    mdp = eb.TabularMDP(P, g, mdp0.rho)
    A = r.shape[1]
    pi = eb.limit_policy(mdp, r)
    assert pi.shape == (S, A) and np.all(pi >= 0)
    np.testing.assert_allclose(pi.sum(axis=1), 1.0, atol=1e-12)
    V, err = ref.policy_iteration_ref(P, r, g)
    Q = ref.q_values_ref(P, r, V, g)
    scale = max(float(np.abs(r).max()), 1e-300) / (1 - g)
    tol = 4 * err + 1e-12 * scale
    top = Q.max(axis=1, keepdims=True)
    assert np.all(pi[Q < top - tol] == 0.0)
    assert np.all(pi[tie_states, A0] > 0.0)  # every optimal action keeps a positive weight
    # a copy of an action gets the same weight as the action
    for j, a in enumerate(dup):
        np.testing.assert_allclose(pi[:, A0 + 1 + j], pi[:, a], atol=1e-12)
    # ties to rounding (copies, the built ties) against gaps the soft solve below can resolve; a
    # genuine gap of a few 1e-13 (gamma ~ 1e-11 makes two actions differ only that much) is neither,
    # and the comparison is skipped for it
    tied = Q >= top - 1e-13 * scale
    gap = float(np.where(tied, np.inf, top - Q).min())
    event(f"gap check: {gap >= 1e-2 * scale}")
    if gap >= 1e-2 * scale:
        tau = min(gap, scale) / (40.0 + 2.0 * math.log(A) / (1 - g))
        soft = eb.solve(mdp, r, tau, tol=1e-12 * (scale + tau * math.log(A) / (1 - g)))
        np.testing.assert_allclose(soft.pi, pi, atol=1e-6)


def test_bad_arguments_name_the_argument():
    mdp, r = branch_mdp(0.5)
    with pytest.raises(ValueError, match="tie_tol"):
        eb.limit_policy(mdp, r, tie_tol=-1.0)
    with pytest.raises(TypeError, match="tie_tol"):
        eb.limit_policy(mdp, r, tie_tol="small")
    with pytest.raises(ValueError, match="rule"):
        eb.limit_policy(mdp, r, rule="first")
    with pytest.raises(ValueError, match="tau"):
        eb.limit_policy(mdp, r, solution=eb.solve(mdp, r, 0.1))
    with pytest.raises(TypeError, match="solution"):
        eb.optimal_actions(mdp, r, solution=np.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        eb.limit_policy(mdp, r[:, :1])


def test_inputs_are_not_modified():
    mdp, r = branch_mdp(0.5)
    r_copy = r.copy()
    sol = eb.solve(mdp, r, 0.0)
    pi = eb.limit_policy(mdp, r, solution=sol)
    pi[:] = 0.0  # the result is the caller's to change
    np.testing.assert_array_equal(r, r_copy)
    assert sol.pi[0, 0] == 1.0  # the solution's own (first argmax) policy untouched
