"""Hard-max solutions against QuantEcon's DiscreteDP (an independent implementation).

QuantEcon's value iteration and modified policy iteration stop on the span of
the last difference without the midrange correction, so their values can be
off by a constant; its policy iteration ends with an exact evaluation of the
final policy, so we compare with that.
"""

import numpy as np
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

import exactbilevel as eb
from exactbilevel.solvers import METHODS
from exactbilevel.testing import reference as ref
from exactbilevel.testing import strategies as ebst

quantecon = pytest.importorskip("quantecon")
from quantecon.markov import DiscreteDP  # noqa: E402


def quantecon_solution(mdp, r):
    """(v, sigma) from DiscreteDP policy iteration; sparse MDPs use the state-action-pair form."""
    S, A = mdp.S, mdp.A
    if mdp.is_sparse:
        s_idx = np.repeat(np.arange(S), A)
        a_idx = np.tile(np.arange(A), S)
        ddp = DiscreteDP(r.ravel(), mdp.P.copy(), mdp.gamma, s_idx, a_idx)
    else:
        ddp = DiscreteDP(r, np.array(mdp.P), mdp.gamma)
    res = ddp.solve(method="policy_iteration")
    return np.asarray(res.v), np.asarray(res.sigma)


@settings(max_examples=examples(40))
@given(
    st.data(),
    st.sampled_from(METHODS),
)
def test_values_and_policies_equal_quantecon(data, method):
    mdp = data.draw(ebst.mdps(min_states=1, max_states=30, max_actions=6, gamma=(0.0, 0.99)))
    r = data.draw(ebst.rewards(mdp, scale=(1e-2, 1e4)))
    P, g = ref.dense_kernel(mdp), mdp.gamma
    scale = max(1.0, np.abs(r).max()) / (1 - g)
    v_qe, sigma = quantecon_solution(mdp, r)
    res = eb.solve(mdp, r, tau=0.0, method=method, tol=1e-10 * scale)
    # values: 1e-6 relative is what the brief asks; both are far better than that
    np.testing.assert_allclose(res.V, v_qe, rtol=0, atol=1e-6 * scale)
    np.testing.assert_allclose(res.V, v_qe, rtol=0, atol=1e-9 * scale)
    # actions: equal wherever the action gap of Q* (computed from QuantEcon's v) is clear
    Q = ref.q_values_ref(P, r, v_qe, g)
    top2 = np.sort(Q, axis=1)[:, ::-1][:, :2] if mdp.A > 1 else np.hstack([Q, Q - np.inf])
    clear = top2[:, 0] - top2[:, 1] > 1e-6 * scale
    ours = np.argmax(res.pi, axis=1)
    np.testing.assert_array_equal(ours[clear], sigma[clear])
    # wherever actions differ, both are optimal: each policy's value is V*
    pi_qe = np.zeros((mdp.S, mdp.A))
    pi_qe[np.arange(mdp.S), sigma] = 1.0
    V_qe_pol, _ = ref.evaluate_ref(P, r, pi_qe, g)
    V_our_pol, _ = ref.evaluate_ref(P, r, res.pi, g)
    np.testing.assert_allclose(V_our_pol, V_qe_pol, rtol=0, atol=1e-8 * scale)


@pytest.mark.parametrize("sparse", [False, True])
@pytest.mark.parametrize("gamma", [0.5, 0.95, 0.99])
def test_larger_random_mdps_equal_quantecon(sparse, gamma):
    mdp = eb.envs.random_mdp(150, 5, gamma=gamma, successors=8 if sparse else None, seed=11, sparse=sparse)
    r = np.random.default_rng(11).normal(size=(150, 5))
    v_qe, sigma = quantecon_solution(mdp, r)
    res = eb.solve(mdp, r, tau=0.0, tol=1e-10 / (1 - gamma))
    scale = np.abs(r).max() / (1 - gamma)
    np.testing.assert_allclose(res.V, v_qe, rtol=0, atol=1e-9 * scale)
    Q = eb.q_values(mdp, r, v_qe)
    top2 = np.sort(Q, axis=1)[:, ::-1][:, :2]
    clear = top2[:, 0] - top2[:, 1] > 1e-6 * scale
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(np.argmax(res.pi, axis=1)[clear], sigma[clear])
