"""The value-penalty landscape (docs/theory.rst, "The value penalty") against closed forms, finite differences and the hyper-gradient."""

import math

import numpy as np
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

import exactbilevel as eb
from exactbilevel.testing import check_gradient
from exactbilevel.testing import strategies as ebst
from test_gradients import bilevel_cases, objective_ref, return_ref, soft_optimal_ref, softmax_ref


def lagrangian_ref(mdp, reward, obj, x, theta, lam, tau):
    """f + lam (J* - J) from numpy references."""
    r = reward.value(x)
    pi = softmax_ref(theta)
    V, _ = soft_optimal_ref(mdp, r, tau)
    return objective_ref(obj, mdp, x, pi) + lam * (float(mdp.rho @ V) - return_ref(mdp, r, pi, tau))


@st.composite
def penalty_cases(draw, tau=ebst.taus(0.05, 5.0)):
    mdp, reward, obj, x, tau = draw(bilevel_cases(tau=tau))
    theta = draw(ebst.rewards(mdp, scale=(1e-2, 3.0)))
    lam = draw(st.floats(0.5, 100.0))
    return mdp, reward, obj, x, theta, lam, tau


@settings(max_examples=examples(25))
@given(bilevel_cases(tau=ebst.taus(1e-3, 5.0, include_zero=True)), st.data())
def test_value_penalty_is_nonnegative_and_zero_at_the_optimum(case, data):
    mdp, reward, _, x, tau = case
    r = reward.value(x)
    pi = data.draw(ebst.policies(mdp))
    V, pi_star = soft_optimal_ref(mdp, r, tau)
    scale = (np.abs(r).max() + tau * math.log(mdp.A) + 1e-300) / (1 - mdp.gamma)
    p = eb.value_penalty(mdp, reward, x, pi, tau)
    assert p == pytest.approx(float(mdp.rho @ V) - return_ref(mdp, r, pi, tau), abs=1e-9 * scale)
    assert p >= -1e-9 * scale
    assert abs(eb.value_penalty(mdp, reward, x, pi_star, tau)) <= 1e-9 * scale


@settings(max_examples=examples(25))
@given(penalty_cases())
def test_lagrangian_and_its_gradients_match_finite_differences(case):
    mdp, reward, obj, x, theta, lam, tau = case
    L = eb.penalty_lagrangian(mdp, reward, obj, x, theta, lam, tau)
    assert L.value == pytest.approx(lagrangian_ref(mdp, reward, obj, x, theta, lam, tau), rel=1e-9, abs=1e-9 * lam)
    assert L.value == pytest.approx(L.f + lam * L.penalty, rel=1e-12, abs=1e-12)
    # L = f + lam (J* - J) cancels terms of size lam |J*|: rounding noise scales with them
    noise = 1e-9 * (abs(L.f) + lam * (np.abs(reward.value(x)).max() + tau * np.log(mdp.A)) / (1 - mdp.gamma))
    rx = check_gradient(lambda y: lagrangian_ref(mdp, reward, obj, y, theta, lam, tau), L.grad_x, x, atol=noise)
    assert rx, rx
    S, A = theta.shape
    rt = check_gradient(lambda t: lagrangian_ref(mdp, reward, obj, x, t.reshape(S, A), lam, tau),
                        L.grad_theta.ravel(), theta.ravel(), atol=noise)
    assert rt, rt


@settings(max_examples=examples(20))
@given(bilevel_cases(tau=ebst.taus(0.05, 2.0)), st.floats(0.5, 100.0))
def test_penalized_policy_of_an_occupancy_objective_is_a_soft_optimal_policy(case, lam):
    """For f = <nu, c> + psi, L / lam = -(J_tau for the reward r - (1 - gamma) c / lam) + const,
    so theta_lam is the soft-optimal policy of that reward: a closed form."""
    mdp, reward, _, x, tau = case
    c = np.cos(np.arange(mdp.S * mdp.A)).reshape(mdp.S, mdp.A)
    obj = eb.OccupancyObjective(mdp, c, kappa=0.3)
    res = eb.penalized_policy(mdp, reward, obj, x, lam, tau)
    _, pi = soft_optimal_ref(mdp, reward.value(x) - (1 - mdp.gamma) * c / lam, tau)
    np.testing.assert_allclose(res.pi, pi, rtol=0, atol=1e-9)
    assert res.step <= 1e-11


@settings(max_examples=examples(12))
@given(bilevel_cases(max_states=5, d_max=2, tau=ebst.taus(0.1, 2.0)), st.floats(2.0, 50.0))
def test_ell_gradient_matches_finite_differences(case, lam):
    """grad ell(x) = grad_x L(x, theta_lam(x)) (Danskin), against differences of ell itself."""
    mdp, reward, obj, x, tau = case
    res = eb.penalized_policy(mdp, reward, obj, x, lam, tau)
    np.testing.assert_allclose(eb.penalty_lagrangian(mdp, reward, obj, x, res.theta, lam, tau).grad_theta, 0.0,
                               atol=1e-8 * lam * (1 + np.abs(reward.value(x)).max()))
    noise = 1e-9 * (abs(res.f) + lam * (np.abs(reward.value(x)).max() + tau * np.log(mdp.A)) / (1 - mdp.gamma))
    report = check_gradient(lambda y: eb.penalized_policy(mdp, reward, obj, y, lam, tau, theta0=res.theta).ell,
                            res.grad_ell, x, rtol=1e-5, atol=noise)
    assert report, report


def _slope(lams, values):
    return np.polyfit(np.log(lams), np.log(values), 1)[0]


@pytest.mark.parametrize("kind", ["occupancy", "matching"])
def test_penalty_bias_falls_like_one_over_lambda(kind):
    """|grad ell - grad Phi_tau| = O(1/lam) and p_tau(theta_lam) = O(1/lam^2), lam in [1, 100]
    on a fixed random MDP: fitted log-log slopes within 0.15 of -1 and 0.2 of -2."""
    mdp = eb.envs.random_mdp(10, 3, gamma=0.9, seed=11)
    rng = np.random.default_rng(11)
    reward = eb.LinearReward(rng.uniform(-1, 1, (10, 3, 2)))
    if kind == "occupancy":
        obj = eb.OccupancyObjective(mdp, rng.uniform(-1, 1, (10, 3)), kappa=0.5)
    else:
        target = rng.dirichlet(np.ones(10))
        obj = eb.DistributionMatchingObjective(mdp, target, kappa=0.5)
    x, tau = np.array([0.5, -0.3]), 0.2
    g_phi = eb.hypergradient(mdp, reward, obj, x, tau)
    lams = np.geomspace(1.0, 100.0, 9)
    bias, pen = [], []
    for lam in lams:
        res = eb.penalized_policy(mdp, reward, obj, x, lam, tau)
        bias.append(np.linalg.norm(res.grad_ell - g_phi))
        pen.append(res.penalty)
    assert abs(_slope(lams, bias) + 1) <= 0.15
    assert abs(_slope(lams, pen) + 2) <= 0.2


# --------------------------------------------------------------------------- bad input


def _small():
    mdp = eb.envs.random_mdp(3, 2, seed=0)
    return mdp, eb.LinearReward(np.ones((3, 2, 1))), eb.OccupancyObjective(mdp, np.ones((3, 2))), np.zeros(1)


@pytest.mark.parametrize("lam", [0.0, -1.0])
def test_lam_must_be_positive(lam):
    mdp, reward, obj, x = _small()
    with pytest.raises(ValueError, match="lam must be > 0"):
        eb.penalized_policy(mdp, reward, obj, x, lam, 0.1)
    with pytest.raises(ValueError, match="lam must be > 0"):
        eb.penalty_lagrangian(mdp, reward, obj, x, np.zeros((3, 2)), lam, 0.1)


def test_penalized_policy_needs_positive_tau():
    mdp, reward, obj, x = _small()
    with pytest.raises(ValueError, match="tau must be > 0 for penalized_policy"):
        eb.penalized_policy(mdp, reward, obj, x, 10.0, 0.0)


def test_penalized_policy_reports_non_convergence():
    mdp, reward, obj, x = _small()
    with pytest.raises(eb.ConvergenceError, match="after 1 updates"):
        eb.penalized_policy(mdp, reward, obj, x, 10.0, 0.1, theta0=np.array([[5.0, -5], [0, 0], [3, 1]]),
                            tol=1e-14, max_iter=1)


def test_penalty_lagrangian_rejects_theta_of_wrong_shape():
    mdp, reward, obj, x = _small()
    with pytest.raises(ValueError, match=r"theta must have shape \(3, 2\)"):
        eb.penalty_lagrangian(mdp, reward, obj, x, np.zeros(6), 1.0, 0.1)
