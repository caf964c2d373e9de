"""The tau = 0 quantities of exactbilevel.diagnostics against independent computations.

References: soft-optimal policies from ``eb.solve`` at small tau (the tau -> 0 limit defines pi*_0),
hand-built tie policies, and the public evaluation functions (``eb.evaluate``, ``eb.occupancy``,
``eb.policy_gradient``, ``eb.return_gradient``, ``eb.value_penalty``, ``eb.penalty_lagrangian``).
"""

import math
import warnings

import numpy as np
import pytest

import exactbilevel as eb
from exactbilevel.actor_critic import ActorCriticState
from exactbilevel.diagnostics import QUANTITIES, Diagnostics


def tie_problem(x2, gamma=0.8, rho=None, perm=(0, 1)):
    """State 0 chooses between absorbing states 1 and 2 (reward x1 on their best actions, so Q*_0(0, .)
    is tied); state 2 has two tied actions, state 1 has a second action x2 worse (x2 = 0: tied too).
    State 3 is absorbing and never entered from 0-2.  Costs +1 on state 1, -1 on state 2, so f sees how
    pi*_0 splits state 0.  ``perm`` reorders the actions."""
    S, A = 4, 2
    P = np.zeros((S, A, S))
    P[0, 0, 1] = P[0, 1, 2] = 1.0
    for s in (1, 2, 3):
        P[s, :, s] = 1.0
    Psi = np.zeros((S, A, 2))
    Psi[1, 0] = Psi[2, 0] = Psi[2, 1] = (1.0, 0.0)
    Psi[1, 1] = (1.0, -1.0)
    Psi[3, 0], Psi[3, 1] = (0.5, 0.0), (0.0, 0.3)
    cost = np.zeros((S, A))
    cost[1], cost[2], cost[3] = 1.0, -1.0, 0.5
    perm = list(perm)
    mdp = eb.TabularMDP(P[:, perm, :], gamma, rho)
    obj = eb.OccupancyObjective(mdp, cost[:, perm], kappa=0.1)
    x0 = np.array([1.0, x2])
    return eb.BilevelProblem(mdp, eb.LinearReward(Psi[:, perm, :]), obj, x0, bounds=(-5.0, 5.0))


def iterate(problem, seed=0, perm=(0, 1)):
    rng = np.random.default_rng(seed)
    S, A = problem.mdp.S, problem.mdp.A
    arrays = [rng.normal(size=(S, A))[:, list(perm)] for _ in range(5)]
    return ActorCriticState(np.array(problem.x0), *arrays)


def phi_tau(problem, tau):
    x = problem.x0
    return problem.objective.value(x, eb.solve(problem.mdp, problem.reward.value(x), tau, tol=1e-12).pi)


def test_phi0_is_the_limit_of_phi_tau_and_not_the_uniform_tie_policy_when_branches_differ():
    """x2 = 1: the branch through state 2 keeps two optimal actions, so the tau -> 0 limit puts
    2^(g/(1-g)) : 1 on it at state 0 (exactbilevel.limits), not 1 : 1."""
    prob = tie_problem(1.0)
    out = Diagnostics(prob)(iterate(prob), 0.0, 10.0)
    limits = [phi_tau(prob, tau) for tau in (1e-4, 1e-5, 1e-6)]
    for value in limits:
        assert out["phi0"] == pytest.approx(value, abs=1e-8)
    uniform = np.array([[0.5, 0.5], [1.0, 0.0], [0.5, 0.5], [1.0, 0.0]])
    assert abs(out["phi0"] - prob.objective.value(prob.x0, uniform)) > 0.05
    first_argmax = np.array([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    assert abs(out["phi0"] - prob.objective.value(prob.x0, first_argmax)) > 0.05
    assert out["phi_tau"] == out["phi0"]


def test_phi0_at_a_symmetric_tie_is_f_at_the_uniform_tie_policy_and_the_limit():
    prob = tie_problem(0.0)  # states 0, 1, 2 all tied, equal downstream entropy: the limit is uniform
    out = Diagnostics(prob)(iterate(prob), 0.0, 10.0)
    uniform = np.array([[0.5, 0.5], [0.5, 0.5], [0.5, 0.5], [1.0, 0.0]])
    assert out["phi0"] == pytest.approx(prob.objective.value(prob.x0, uniform), abs=1e-12)
    assert out["phi0"] == pytest.approx(phi_tau(prob, 1e-6), abs=1e-8)


@pytest.mark.parametrize("x2", [0.0, 1.0])
def test_tau0_quantities_do_not_depend_on_the_warm_start_or_the_action_order(x2):
    prob = tie_problem(x2)
    state = iterate(prob)
    base = Diagnostics(prob)(state, 0.0, 10.0)
    for V0 in (np.array([5.0, -3.0, 8.0, 0.0]), np.array([0.0, 10.0, -10.0, 1.0])):
        diag = Diagnostics(prob)
        diag.set_warm_starts(dict(V_0=V0))
        out = diag(state, 0.0, 10.0)
        for name in ("phi0", "phi_tau", "kkt_residual", "entropy_bias", "residual_phi"):
            assert out[name] == pytest.approx(base[name], rel=1e-9, abs=1e-11), name
    swapped = tie_problem(x2, perm=(1, 0))
    out = Diagnostics(swapped)(iterate(prob, perm=(1, 0)), 0.0, 10.0)
    for name in QUANTITIES:
        if math.isnan(base[name]):
            assert math.isnan(out[name]), name
        else:
            assert out[name] == pytest.approx(base[name], rel=1e-9, abs=1e-11), name


def test_tau0_columns_are_finite_and_equal_their_formulas():
    prob = tie_problem(1.0)
    mdp, obj, reward, x, lam = prob.mdp, prob.objective, prob.reward, prob.x0, 7.0
    state = iterate(prob, seed=4)
    out = Diagnostics(prob)(state, 0.0, lam)
    r = reward.value(x)
    pi_phi, pi_th = eb.softmax_policy(state.phi), eb.softmax_policy(state.theta)
    J_star = float(mdp.rho @ eb.solve(mdp, r, 0.0, tol=1e-12).V)
    pi0 = eb.solve(mdp, r, 1e-6, tol=1e-12).pi  # the limit, within exp(-1e6) + rounding
    residual = J_star - eb.expected_return(mdp, r, pi_phi)
    assert out["residual_phi"] == pytest.approx(residual, rel=1e-10)
    grad = eb.policy_gradient(mdp, r, state.phi)
    assert out["pl_ratio"] == pytest.approx(float(np.sum(grad**2)) / residual, rel=1e-9)
    assert out["pl_bound"] == 0.0  # 2 tau ... with tau = 0
    assert out["phi_tau"] == pytest.approx(obj.value(x, pi0), abs=1e-8)
    assert out["entropy_bias"] == pytest.approx(J_star - eb.expected_return(mdp, r, pi0), abs=1e-9)
    assert out["entropy_bound"] == 0.0
    # KKT residual with the supergradient R^T nu^{pi*_0} / (1 - gamma) of J*_0 at the limit policy
    grad_x = obj.grad_x(x, pi_th) + lam * (eb.return_gradient(mdp, reward, x, pi0) -
                                           eb.return_gradient(mdp, reward, x, pi_th))
    L = eb.penalty_lagrangian(mdp, reward, obj, x, state.theta, lam, 0.0)
    kkt = max(float(np.linalg.norm(x - prob.project(x - grad_x))), float(np.linalg.norm(L.grad_theta)),
              eb.value_penalty(mdp, reward, x, pi_th))
    assert out["kkt_residual"] == pytest.approx(kkt, rel=1e-7)
    for name in ("residual_phi", "pl_ratio", "pl_bound", "phi0", "phi_tau", "kkt_residual", "entropy_bias",
                 "min_pi", "critic_error_phi", "critic_error_theta", "critic_error_c", "critic_bias",
                 "ghat_variance", "action_gap"):
        assert math.isfinite(out[name]), name
    # the quantities of the penalized policy and the hyper-gradient are undefined at tau = 0
    for name in ("residual_theta", "grad_phi_norm2", "grad_ell_norm2", "penalty_bias", "residual_bias"):
        assert math.isnan(out[name]), name


@pytest.mark.parametrize("tau", [0.0, 0.1])
def test_pl_bound_is_zero_when_rho_has_zeros(tau):
    """rho on state 0 only: state 3 is never visited (d^{pi_phi}(3) = d*(3) = 0, the ratio is 0/0),
    and min rho = 0 makes the bound 0."""
    prob = tie_problem(1.0, rho=np.array([1.0, 0.0, 0.0, 0.0]))
    d = eb.occupancy(prob.mdp, eb.softmax_policy(iterate(prob).phi))[0]
    assert d[3] == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = Diagnostics(prob)(iterate(prob), tau, 10.0)
    assert out["pl_bound"] == 0.0
    assert math.isfinite(out["pl_ratio"]) and out["pl_ratio"] > 0


def test_pl_bound_at_tau_positive_matches_its_formula():
    prob = tie_problem(1.0, rho=np.full(4, 0.25))
    mdp, tau = prob.mdp, 0.3
    state = iterate(prob, seed=2)
    out = Diagnostics(prob)(state, tau, 10.0)
    pi_phi = eb.softmax_policy(state.phi)
    d_phi = eb.occupancy(mdp, pi_phi)[0]
    d_star = eb.occupancy(mdp, eb.solve(mdp, prob.reward.value(prob.x0), tau).pi)[0]
    bound = 2 * tau * 0.25 * pi_phi.min() ** 2 / (mdp.S * np.max(d_star / d_phi))
    assert out["pl_bound"] == pytest.approx(bound, rel=1e-9)


def test_gridworld_phi0_is_the_limit_and_ignores_the_warm_start():
    """The GridWorld goal problem at its x0 has exact ties (9 states) and genuine gaps down to 7e-6:
    Phi_tau reaches Phi_0 once tau is well below them."""
    from exactbilevel.experiments import gridworld_goal

    prob = gridworld_goal.problem(gridworld_goal.GridworldGoal())
    state = ActorCriticState.initial(prob)
    a = Diagnostics(prob)(state, 0.0, 2.0)
    diag = Diagnostics(prob)
    diag.set_warm_starts(dict(V_0=np.random.default_rng(0).normal(size=prob.mdp.S) * 5))
    b = diag(state, 0.0, 2.0)
    assert a["phi0"] == pytest.approx(b["phi0"], abs=1e-10)
    assert a["phi0"] == pytest.approx(phi_tau(prob, 1e-7), abs=1e-6)
