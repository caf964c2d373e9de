"""Known answers from the literature and from closed forms.

* Sutton & Barto, *Reinforcement Learning: An Introduction* (2nd ed., 2018),
  Example 3.5 (Figure 3.2: values of the equiprobable random policy) and
  Example 3.8 (Figure 3.5: optimal values v*), both printed to one decimal.
* Puterman, *Markov Decision Processes* (1994), the two-state example of
  section 3.1 (used again in Example 6.2.1 etc.), with values in closed form.
* FrozenLake-v1 (4x4, slippery) at gamma = 0.99, against a plain-python value
  iteration written here directly on ``env.unwrapped.P``.
"""

import math

import numpy as np
import pytest
import scipy.optimize

import exactbilevel as eb
from exactbilevel.solvers import METHODS

# --------------------------------------------------------------------------- Sutton & Barto gridworld

# Figure 3.2 (right): state-value function of the equiprobable random policy, gamma = 0.9.
SB_RANDOM = np.array(
    [
        [3.3, 8.8, 4.4, 5.3, 1.5],
        [1.5, 3.0, 2.3, 1.9, 0.5],
        [0.1, 0.7, 0.7, 0.4, -0.4],
        [-1.0, -0.4, -0.4, -0.6, -1.2],
        [-1.9, -1.3, -1.2, -1.4, -2.0],
    ]
)
# Figure 3.5 (middle): optimal state-value function v*.
SB_OPTIMAL = np.array(
    [
        [22.0, 24.4, 22.0, 19.4, 17.5],
        [19.8, 22.0, 19.8, 17.8, 16.0],
        [17.8, 19.8, 17.8, 16.0, 14.4],
        [16.0, 17.8, 16.0, 14.4, 13.0],
        [14.4, 16.0, 14.4, 13.0, 11.7],
    ]
)


def sutton_barto_gridworld(sparse=False):
    """5 x 5 grid, s = 5 * row + col; actions north, south, east, west.

    From A = (0, 1) every action gives +10 and moves to A' = (4, 1); from B = (0, 3)
    every action gives +5 and moves to B' = (2, 3); a move off the grid gives -1
    and leaves the state unchanged; every other move gives 0.
    """
    n, A = 5, 4
    moves = [(-1, 0), (1, 0), (0, 1), (0, -1)]
    P = np.zeros((n * n, A, n * n))
    r = np.zeros((n * n, A))
    for row in range(n):
        for col in range(n):
            s = n * row + col
            for a, (dr, dc) in enumerate(moves):
                if (row, col) == (0, 1):
                    nxt, rew = (4, 1), 10.0
                elif (row, col) == (0, 3):
                    nxt, rew = (2, 3), 5.0
                elif 0 <= row + dr < n and 0 <= col + dc < n:
                    nxt, rew = (row + dr, col + dc), 0.0
                else:
                    nxt, rew = (row, col), -1.0
                P[s, a, n * nxt[0] + nxt[1]] = 1.0
                r[s, a] = rew
    mdp = eb.TabularMDP(P, 0.9)
    return (mdp.to_sparse() if sparse else mdp), r


@pytest.mark.parametrize("sparse", [False, True])
def test_sutton_barto_random_policy_figure_3_2(sparse):
    mdp, r = sutton_barto_gridworld(sparse)
    V, _ = eb.evaluate(mdp, r, np.full((25, 4), 0.25))
    # the figure prints one decimal: |V - printed| <= 0.05
    np.testing.assert_allclose(V.reshape(5, 5), SB_RANDOM, rtol=0, atol=0.05 + 1e-9)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("method", METHODS)
def test_sutton_barto_optimal_values_figure_3_5(sparse, method):
    mdp, r = sutton_barto_gridworld(sparse)
    res = eb.solve(mdp, r, method=method, tol=1e-10)
    V = res.V.reshape(5, 5)
    np.testing.assert_allclose(V, SB_OPTIMAL, rtol=0, atol=0.05 + 1e-9)
    # closed forms: from A the optimal loop is A -> A' -> (3 moves up) -> A, 5 steps with +10 once
    g = 0.9
    vA = 10.0 / (1.0 - g**5)  # 24.419...
    assert V[0, 1] == pytest.approx(vA, abs=1e-9)
    assert V[4, 1] == pytest.approx(g**4 * vA, abs=1e-9)  # A' is 4 moves from A
    assert V[0, 0] == pytest.approx(g * vA, abs=1e-9)  # one move from A
    assert V[2, 3] == pytest.approx(g**4 * vA, abs=1e-9)  # B' is 4 moves from A
    assert V[0, 3] == pytest.approx(5.0 + g**5 * vA, abs=1e-9)  # B: +5, then B'


# --------------------------------------------------------------------------- Puterman's two-state example


def puterman_two_state(lam):
    """s1: a11 reward 5, stay w.p. 0.5 / go to s2 w.p. 0.5; a12 reward 10, go to s2.
    s2: a21 reward -1, stay.  (s2's single action is duplicated: the MDP is rectangular.)"""
    P = np.zeros((2, 2, 2))
    P[0, 0] = [0.5, 0.5]
    P[0, 1] = [0.0, 1.0]
    P[1, 0] = P[1, 1] = [0.0, 1.0]
    r = np.array([[5.0, 10.0], [-1.0, -1.0]])
    return eb.TabularMDP(P, lam), r


def puterman_closed_form(lam):
    """v(s2) = -1 / (1 - lam);  a11: v1 = (5 + 0.5 lam v2) / (1 - 0.5 lam);  a12: v1 = 10 + lam v2."""
    v2 = -1.0 / (1.0 - lam)
    v1_a11 = (5.0 + 0.5 * lam * v2) / (1.0 - 0.5 * lam)
    v1_a12 = 10.0 + lam * v2
    return max(v1_a11, v1_a12), v2, 0 if v1_a11 >= v1_a12 else 1


def test_puterman_lambda_095_known_values():
    """Puterman's lambda = 0.95: v*(s1) = -60/7 = -8.571..., v*(s2) = -20, a11 optimal
    (a11: (5 - 9.5)/0.525 = -8.5714 > a12: 10 - 19 = -9)."""
    mdp, r = puterman_two_state(0.95)
    res = eb.solve(mdp, r, tol=1e-10)
    np.testing.assert_allclose(res.V, [-60.0 / 7.0, -20.0], rtol=0, atol=1e-10)
    assert np.argmax(res.pi[0]) == 0


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.5, 0.75, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("method", METHODS)
def test_puterman_closed_form_all_discounts(lam, method):
    v1, v2, a = puterman_closed_form(lam)
    mdp, r = puterman_two_state(lam)
    res = eb.solve(mdp, r, method=method, tol=1e-11 / (1 - lam))
    np.testing.assert_allclose(res.V, [v1, v2], rtol=0, atol=1e-11 / (1 - lam))
    assert np.argmax(res.pi[0]) == a


@pytest.mark.parametrize("lam", [0.5, 0.95])
@pytest.mark.parametrize("tau", [0.01, 1.0, 5.0])
def test_puterman_soft_values_scalar_fixed_point(lam, tau):
    """tau > 0: s2's two identical actions give V2 = (-1 + tau log 2) / (1 - lam); V1 is the
    root of V1 = tau log(exp((5 + lam (V1 + V2)/2)/tau) + exp((10 + lam V2)/tau)), found by brentq."""
    V2 = (-1.0 + tau * math.log(2.0)) / (1.0 - lam)

    def f(v1):
        q = np.array([5.0 + lam * 0.5 * (v1 + V2), 10.0 + lam * V2])
        m = q.max()
        return m + tau * math.log(np.exp((q - m) / tau).sum()) - v1

    V1 = scipy.optimize.brentq(f, -1e3, 1e3, xtol=1e-14, rtol=1e-15)
    mdp, r = puterman_two_state(lam)
    res = eb.solve(mdp, r, tau=tau, tol=1e-10)
    np.testing.assert_allclose(res.V, [V1, V2], rtol=0, atol=2e-10)
    # pi*(a|s) = exp((Q - V)/tau)
    q = np.array([5.0 + lam * 0.5 * (V1 + V2), 10.0 + lam * V2])
    np.testing.assert_allclose(res.pi[0], np.exp((q - V1) / tau), rtol=1e-8)
    np.testing.assert_allclose(res.pi[1], [0.5, 0.5], rtol=1e-12)


# --------------------------------------------------------------------------- FrozenLake


def plain_value_iteration(table, n_states, n_actions, gamma, tol=1e-13):
    """Value iteration on a Gymnasium toy-text table, in plain python (no exactbilevel).

    A terminating transition contributes its reward and nothing after it.
    Stops when gamma / (1 - gamma) * max |V_new - V| <= tol.
    """
    V = [0.0] * n_states
    while True:
        new = [
            max(
                math.fsum(p * (rew + (0.0 if term else gamma * V[nxt])) for p, nxt, rew, term in table[s][a])
                for a in range(n_actions)
            )
            for s in range(n_states)
        ]
        delta = max(abs(x - y) for x, y in zip(new, V))
        V = new
        if gamma / (1 - gamma) * delta <= tol:
            return np.array(V)


@pytest.fixture(scope="module")
def frozenlake():
    gym = pytest.importorskip("gymnasium")
    env = gym.make("FrozenLake-v1", map_name="4x4", is_slippery=True)
    yield env, plain_value_iteration(env.unwrapped.P, 16, 4, 0.99)
    env.close()


@pytest.mark.parametrize("sparse", [False, True])
def test_frozenlake_matches_plain_value_iteration(frozenlake, sparse):
    env, V_plain = frozenlake
    gamma = 0.99
    with pytest.warns(UserWarning, match="TimeLimit"):
        gm = eb.envs.from_gymnasium(env, gamma, sparse=sparse)
    res = eb.solve(gm.mdp, gm.reward, tol=1e-11)
    assert gm.mdp.S == 17 and gm.absorbing == 16
    np.testing.assert_allclose(res.V[:16], V_plain, rtol=0, atol=1e-8)
    assert res.V[16] == pytest.approx(0.0, abs=1e-11)
    # holes and the goal are terminal: value 0; the start state's value is J = rho . V
    for s in (5, 7, 11, 12, 15):
        assert res.V[s] == pytest.approx(0.0, abs=1e-11)
    assert gm.mdp.rho @ res.V == pytest.approx(V_plain[0], abs=1e-8)
