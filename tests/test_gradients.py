"""Exact gradients and hyper-gradients against finite differences of independent numpy computations.

Every finite difference here differentiates a value computed by the plain-numpy
references of :mod:`exactbilevel.testing.reference` (dense solves, policy
iteration with long-double refinement), not by the code under test.
"""

import math

import numpy as np
import pytest
from conftest import examples
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import exactbilevel as eb
from exactbilevel.testing import check_gradient
from exactbilevel.testing import reference as ref
from exactbilevel.testing import strategies as ebst


# --------------------------------------------------------------------------- numpy references


def softmax_ref(theta):
    z = np.exp(theta - theta.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def return_ref(mdp, r, pi, tau):
    V, _ = ref.evaluate_ref(ref.dense_kernel(mdp), r, pi, mdp.gamma, tau, refine=1)
    return float(mdp.rho @ V)


def soft_optimal_ref(mdp, r, tau):
    """(V*_tau, pi*_tau) by numpy policy iteration."""
    P = ref.dense_kernel(mdp)
    V, _ = ref.policy_iteration_ref(P, r, mdp.gamma, tau)
    return V, ref.policy_ref(ref.q_values_ref(P, r, V, mdp.gamma), tau)


def objective_ref(obj, mdp, x, pi):
    """f(x, pi) for the two shipped objectives, from a dense occupancy solve."""
    d, nu = ref.occupancy_ref(ref.dense_kernel(mdp), pi, mdp.gamma, mdp.rho)
    z = x if obj.center is None else x - obj.center
    psi = 0.5 * obj.kappa * float(z @ z)
    if isinstance(obj, eb.OccupancyObjective):
        return float(np.sum(nu * obj.cost)) + psi
    return float(np.sum((d - obj.target) ** 2)) + psi


def phi_ref(mdp, reward, obj, tau):
    return lambda x: objective_ref(obj, mdp, x, soft_optimal_ref(mdp, reward.value(x), tau)[1])


# --------------------------------------------------------------------------- strategies


@st.composite
def policy_cases(draw, tau=ebst.taus(1e-3, 10.0, include_zero=True)):
    mdp = draw(ebst.mdps(max_states=8, max_actions=4, gamma=(0.0, 0.95)))
    r = draw(ebst.rewards(mdp, scale=(1e-2, 1e3)))
    theta = draw(ebst.rewards(mdp, scale=(1e-2, 3.0)))  # logits: any (S, A) table
    return mdp, r, theta, draw(tau)


@st.composite
def bilevel_cases(draw, tau=ebst.taus(0.05, 5.0), max_states=7, d_max=3):
    mdp = draw(ebst.mdps(max_states=max_states, max_actions=4, gamma=(0.0, 0.9), rho="dirichlet"))
    d = draw(st.integers(1, d_max))
    reward = draw(ebst.rewards(mdp, d=d, scale=(1e-1, 3.0)))
    obj = draw(ebst.objectives(mdp, d=d))
    x = draw(ebst.xs(d, scale=(0.1, 2.0)))
    return mdp, reward, obj, x, draw(tau)


# --------------------------------------------------------------------------- policy level


@settings(max_examples=examples(40))
@given(policy_cases())
def test_expected_return_and_advantage_match_reference(case):
    mdp, r, theta, tau = case
    pi = softmax_ref(theta)
    P = ref.dense_kernel(mdp)
    V, Q = ref.evaluate_ref(P, r, pi, mdp.gamma, tau, refine=1)
    scale = (np.abs(r).max() + tau * math.log(mdp.A) + 1e-300) / (1 - mdp.gamma)
    assert abs(eb.expected_return(mdp, r, pi, tau) - mdp.rho @ V) <= 1e-10 * scale
    A = eb.soft_advantage(mdp, r, pi, tau)
    np.testing.assert_allclose(A, Q - tau * np.log(pi) - V[:, None], rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(np.sum(pi * A, axis=1), 0.0, rtol=0, atol=1e-9 * scale)


@settings(max_examples=examples(30))
@given(policy_cases())
def test_policy_gradient_matches_finite_differences(case):
    mdp, r, theta, tau = case
    S, A = theta.shape
    report = check_gradient(
        lambda t: return_ref(mdp, r, softmax_ref(t.reshape(S, A)), tau),
        eb.policy_gradient(mdp, r, theta, tau).ravel(),
        theta.ravel(),
    )
    assert report, report


@settings(max_examples=examples(30))
@given(policy_cases())
def test_natural_gradient_solves_the_fisher_system(case):
    """F_s npg(s) = grad(s) with F_s = d(s) (diag pi_s - pi_s pi_s^T), and sum_a pi npg = 0."""
    mdp, r, theta, tau = case
    pi = softmax_ref(theta)
    d, _ = ref.occupancy_ref(ref.dense_kernel(mdp), pi, mdp.gamma, mdp.rho)
    g = eb.policy_gradient(mdp, r, theta, tau)
    w = eb.natural_policy_gradient(mdp, r, theta, tau)
    scale = (np.abs(r).max() + tau * math.log(mdp.A) + 1e-300) / (1 - mdp.gamma) ** 2
    for s in range(mdp.S):
        F = d[s] * (np.diag(pi[s]) - np.outer(pi[s], pi[s]))
        np.testing.assert_allclose(F @ w[s], g[s], rtol=0, atol=1e-9 * scale)
    np.testing.assert_allclose(np.sum(pi * w, axis=1), 0.0, rtol=0, atol=1e-9 * scale)


@settings(max_examples=examples(20))
@given(policy_cases(tau=ebst.taus(1e-2, 1.0)))
def test_soft_policy_iteration_is_the_npg_step_with_eta_one_minus_gamma_over_tau(case):
    """theta + (1 - gamma)/tau * npg = Q^pi/tau up to a per-state constant (Cen et al. 2021)."""
    mdp, r, theta, tau = case
    pi = softmax_ref(theta)
    _, Q = ref.evaluate_ref(ref.dense_kernel(mdp), r, pi, mdp.gamma, tau, refine=1)
    new = theta + (1 - mdp.gamma) / tau * eb.natural_policy_gradient(mdp, r, theta, tau)
    scale = (np.abs(r).max() + tau * math.log(mdp.A)) / ((1 - mdp.gamma) * tau) + np.abs(theta).max()
    np.testing.assert_allclose(softmax_ref(new), softmax_ref(Q / tau), rtol=0, atol=1e-8 * max(1.0, scale))


# --------------------------------------------------------------------------- reward direction


@settings(max_examples=examples(25))
@given(bilevel_cases(tau=ebst.taus(1e-2, 5.0, include_zero=True)), st.data())
def test_return_gradient_matches_finite_differences(case, data):
    mdp, reward, _, x, tau = case
    pi = data.draw(ebst.policies(mdp))
    report = check_gradient(lambda y: return_ref(mdp, reward.value(y), pi, tau),
                            eb.return_gradient(mdp, reward, x, pi), x)
    assert report, report


@settings(max_examples=examples(25))
@given(bilevel_cases())
def test_optimal_return_gradient_is_danskin(case):
    mdp, reward, _, x, tau = case
    report = check_gradient(lambda y: float(mdp.rho @ soft_optimal_ref(mdp, reward.value(y), tau)[0]),
                            eb.optimal_return_gradient(mdp, reward, x, tau), x)
    assert report, report


# --------------------------------------------------------------------------- hyper-gradient


@settings(max_examples=examples(30))
@given(bilevel_cases())
def test_hypergradient_matches_finite_differences_in_both_forms(case):
    mdp, reward, obj, x, tau = case
    fwd = eb.hypergradient(mdp, reward, obj, x, tau, form="forward", full_output=True)
    adj = eb.hypergradient(mdp, reward, obj, x, tau, form="adjoint")
    # the sizes of the terms both forms add up: |grad_x f| and |R| |grad_pi f|_1 / tau
    terms = np.abs(fwd.grad_x_f).max() + np.abs(reward.jacobian(x)).max() * np.abs(obj.grad_pi(x, fwd.pi)).sum() / tau
    np.testing.assert_allclose(adj, fwd.grad, rtol=0, atol=1e-10 * terms)
    report = check_gradient(phi_ref(mdp, reward, obj, tau), adj, x, atol=1e-9 * (terms + 1e-3))
    assert report, report


@settings(max_examples=examples(20))
@given(bilevel_cases(max_states=5, d_max=2))
def test_policy_jacobian_matches_finite_differences(case):
    mdp, reward, obj, x, tau = case
    dpi = eb.hypergradient(mdp, reward, obj, x, tau, form="forward", full_output=True).dpi_dx
    report = check_gradient(lambda y: soft_optimal_ref(mdp, reward.value(y), tau)[1], dpi, x)
    assert report, report
    np.testing.assert_allclose(dpi.sum(axis=1), 0.0, atol=1e-12 * (1 + np.abs(dpi).max()))


@settings(max_examples=examples(20))
@given(bilevel_cases())
def test_dense_and_sparse_hypergradients_agree(case):
    mdp, reward, obj, x, tau = case
    other = mdp.to_dense() if mdp.is_sparse else mdp.to_sparse()
    obj2 = type(obj)(other, *(getattr(obj, f) for f in ("cost" if hasattr(obj, "cost") else "target", "kappa", "center")))
    for form in ("adjoint", "forward"):
        a = eb.hypergradient(mdp, reward, obj, x, tau, form=form)
        b = eb.hypergradient(other, reward, obj2, x, tau, form=form)
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10 * (1 + np.abs(a).max()))


def test_hypergradient_is_the_same_through_the_iterative_solver():
    """A 3600-state sparse GridWorld (S > DENSE_LU_MAX_STATES: Krylov solves, no LU):
    the two forms agree, and match finite differences of certified solves."""
    grid = eb.envs.gridworld(n=60, slip=0.1, gamma=0.9, sparse=True, targets=[(5, 5)], hazards=[(50, 50)])
    mdp = grid.mdp
    reward = eb.GaussianGoalReward(grid.coords, mdp.A, sigma=3.0)
    obj = eb.OccupancyObjective(mdp, np.repeat(grid.cost()[:, None], mdp.A, axis=1), kappa=0.1)
    x, tau = np.array([20.0, 30.0]), 0.05
    adj = eb.hypergradient(mdp, reward, obj, x, tau)
    fwd = eb.hypergradient(mdp, reward, obj, x, tau, form="forward")
    np.testing.assert_allclose(adj, fwd, rtol=1e-8, atol=1e-12)

    def phi(y):
        return obj.value(y, eb.solve(mdp, reward.value(y), tau, tol=1e-11).pi)

    report = check_gradient(phi, adj, x, rtol=1e-5, step=1e-2)
    assert report, report


# --------------------------------------------------------------------------- small tau and the action gap


def _gap_problem():
    """A fixed random MDP with linear rewards whose Q*_0 has a clear action gap."""
    mdp = eb.envs.random_mdp(6, 3, gamma=0.8, seed=3)
    rng = np.random.default_rng(3)
    reward = eb.LinearReward(rng.uniform(-1, 1, (6, 3, 2)))
    obj = eb.OccupancyObjective(mdp, rng.uniform(-1, 1, (6, 3)), kappa=0.0)
    return mdp, reward, obj, np.array([0.4, -0.7])


def test_action_gap_closed_form_single_state():
    """One state, rewards r_a: Q*(a) = r_a + gamma V*, so the gap is r_(1) - r_(2)."""
    mdp = eb.TabularMDP(np.ones((1, 4, 1)), 0.9)
    reward = eb.LinearReward(np.array([[[1.0], [0.25], [0.75], [-2.0]]]))
    assert eb.action_gap(mdp, reward, np.array([2.0])) == pytest.approx(0.5, abs=1e-12)
    assert eb.action_gap(mdp, reward, np.array([0.0])) == 0.0
    assert eb.action_gap(eb.TabularMDP(np.ones((1, 1, 1)), 0.9), eb.LinearReward(np.ones((1, 1, 1))), [1.0]) == math.inf


@settings(max_examples=examples(20))
@given(bilevel_cases(tau=st.just(0.1)))
def test_action_gap_matches_reference(case):
    mdp, reward, _, x, _ = case
    assume(mdp.A > 1)
    r = reward.value(x)
    P = ref.dense_kernel(mdp)
    V, err = ref.policy_iteration_ref(P, r, mdp.gamma)
    Q = np.sort(ref.q_values_ref(P, r, V, mdp.gamma), axis=1)
    assert abs(eb.action_gap(mdp, reward, x) - np.min(Q[:, -1] - Q[:, -2])) <= 4 * err + 1e-9 * (1 + np.abs(Q).max())


@pytest.mark.parametrize("tau", [1e-8, 1e-6, 1e-4, 1e-3])
def test_small_tau_hypergradient_is_finite_and_bounded(tau):
    """For tau << gap, |implicit| <= |g_pi|_1 4 (A-1) A^(gamma/(1-gamma)) exp(-gap/tau) |R| / ((1-gamma) tau)
    (derived from pi*_tau(b)/pi*_tau(a*) <= exp((-gap + gamma tau log A/(1-gamma))/tau)), plus rounding."""
    mdp, reward, obj, x = _gap_problem()
    gap = eb.action_gap(mdp, reward, x)
    assert gap > 0.01
    res = eb.hypergradient(mdp, reward, obj, x, tau, full_output=True)
    fwd = eb.hypergradient(mdp, reward, obj, x, tau, form="forward")
    assert np.all(np.isfinite(res.grad)) and np.all(np.isfinite(fwd))
    g = np.abs(obj.grad_pi(x, res.pi)).sum()
    R = np.abs(reward.jacobian(x)).max()
    g_ = mdp.gamma
    bound = g * 4 * (mdp.A - 1) * mdp.A ** (g_ / (1 - g_)) * math.exp(-gap / tau) * R / ((1 - g_) * tau)
    rounding = 64 * np.finfo(float).eps * g * R * mdp.S * mdp.A / ((1 - g_) * tau)
    assert np.abs(res.implicit).max() <= bound + rounding
    np.testing.assert_allclose(res.grad, fwd, rtol=0, atol=2 * rounding)


def test_implicit_term_peaks_near_the_action_gap():
    """Not monotone in tau (docs/theory.rst, "The hyper-gradient"): small for tau << gap, large near the gap, ~1/tau beyond."""
    mdp, reward, obj, x = _gap_problem()
    gap = eb.action_gap(mdp, reward, x)
    size = {k: np.abs(eb.hypergradient(mdp, reward, obj, x, k * gap, full_output=True).implicit).max()
            for k in (0.02, 1.0, 1000.0)}
    assert size[1.0] > 10 * size[0.02]
    assert size[1.0] > 10 * size[1000.0]


# --------------------------------------------------------------------------- bad input


def _small():
    mdp = eb.envs.random_mdp(3, 2, seed=0)
    reward = eb.LinearReward(np.ones((3, 2, 2)))
    return mdp, reward, eb.OccupancyObjective(mdp, np.ones((3, 2))), np.zeros(2)


def test_hypergradient_rejects_tau_zero():
    mdp, reward, obj, x = _small()
    with pytest.raises(ValueError, match="tau must be > 0"):
        eb.hypergradient(mdp, reward, obj, x, 0.0)


def test_hypergradient_rejects_x_of_wrong_length():
    mdp, reward, obj, _ = _small()
    with pytest.raises(ValueError, match="x must be a vector of length d = 2"):
        eb.hypergradient(mdp, reward, obj, np.zeros(3), 0.1)


def test_hypergradient_rejects_objective_missing_a_method():
    mdp, reward, _, x = _small()

    class NoGradPi:
        def value(self, x, pi):
            return 0.0

        def grad_x(self, x, pi):
            return np.zeros_like(x)

    with pytest.raises(TypeError, match="lacks grad_pi"):
        eb.hypergradient(mdp, reward, NoGradPi(), x, 0.1)


def test_hypergradient_rejects_objective_of_another_mdp():
    mdp, reward, _, x = _small()
    other = eb.envs.random_mdp(4, 2, seed=0)
    with pytest.raises(ValueError, match=r"\(S, A\) = \(4, 2\)"):
        eb.hypergradient(mdp, reward, eb.OccupancyObjective(other, np.ones((4, 2))), x, 0.1)


def test_hypergradient_rejects_unknown_form():
    mdp, reward, obj, x = _small()
    with pytest.raises(ValueError, match="form must be one of"):
        eb.hypergradient(mdp, reward, obj, x, 0.1, form="backward")


def test_hypergradient_rejects_a_solution_at_another_tau():
    mdp, reward, obj, x = _small()
    sol = eb.solve(mdp, reward.value(x), 0.2)
    with pytest.raises(ValueError, match="solution was computed for tau = 0.2"):
        eb.hypergradient(mdp, reward, obj, x, 0.1, solution=sol)


def test_reward_without_jacobian_is_rejected():
    mdp, _, obj, x = _small()

    class ValueOnly:
        def value(self, x):
            return np.zeros((3, 2))

    with pytest.raises(TypeError, match="lacks jacobian"):
        eb.hypergradient(mdp, ValueOnly(), obj, x, 0.1)


def test_soft_advantage_rejects_a_zero_where_a_log_is_needed():
    mdp, _, _, _ = _small()
    pi = np.array([[1.0, 0.0], [0.5, 0.5], [0.5, 0.5]])
    with pytest.raises(ValueError, match=r"pi\[0, 1\] = 0, but tau > 0 needs log pi"):
        eb.soft_advantage(mdp, np.zeros((3, 2)), pi, tau=0.1)
    eb.soft_advantage(mdp, np.zeros((3, 2)), pi, tau=0.0)  # no log at tau = 0


def test_policy_gradient_rejects_theta_of_wrong_shape():
    mdp, _, _, _ = _small()
    with pytest.raises(ValueError, match=r"theta must have shape \(3, 2\)"):
        eb.policy_gradient(mdp, np.zeros((3, 2)), np.zeros((2, 3)))
