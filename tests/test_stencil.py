"""The vectorizable exp and log, and the stencil form of sparse transitions.

References: numpy's exp and log (ulp distances), the packed-CSR sweep (the
stencil sweep must give the same bits), scipy products with P and with the
policy matrix of the plain-numpy reference, and the dense kernel rebuilt from
the stencil arrays alone.
"""

import numpy as np
import scipy.sparse as sp
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st
from numba import njit

import exactbilevel as eb
from exactbilevel import _kernels, _stencil_kernels, bellman, mdp as mdp_module
from exactbilevel._vecmath import EXP_SKIP, exp_neg, log_pos
from exactbilevel.testing import reference as ref
from exactbilevel.testing import strategies as ebst


@njit  # not cached: Numba's cache would not see a change in the inlined functions
def _apply(kind, x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = exp_neg(x[i]) if kind == 0 else log_pos(x[i])
    return out


def _ulps(got, want):
    return np.abs(got - want) / np.spacing(np.abs(want))


# --------------------------------------------------------------------------- exp and log


def test_exp_neg_is_within_1_ulp_of_numpy_on_its_whole_range():
    rng = np.random.default_rng(0)
    z = np.concatenate([
        np.linspace(EXP_SKIP, 0.0, 1_000_001),
        -rng.random(200_000) * 2.0,  # the first binades, where r = z - n ln2 is near ln2 / 2
        (np.arange(-1021, 1) + 0.5) * np.log(2.0),  # the switch points of n
        [0.0, -0.0, EXP_SKIP, -1e-300, -5e-324],
    ])
    got = _apply(0, z)
    assert _ulps(got, np.exp(z)).max() <= 1.0
    assert got[z == 0.0].tolist() == [1.0] * int((z == 0.0).sum())


def test_log_pos_is_within_1_ulp_of_numpy_on_normal_numbers():
    rng = np.random.default_rng(1)
    x = np.concatenate([
        np.exp(rng.uniform(-700, 700, 300_000)),
        1.0 + rng.random(300_000) * 1e-6,  # near 1, where the result is small
        1.0 - rng.random(300_000) * 1e-6,
        np.linspace(1.0, 64.0, 300_001),  # the soft max's range: 1 <= sum <= A
        np.sqrt(2.0) * (1 + np.array([-2e-16, 0.0, 2e-16])),  # the reduction's switch point
        [1.0, 2.0, 0.5, np.finfo(float).tiny, np.finfo(float).max],
    ])
    got = _apply(1, x)
    want = np.log(x)
    assert got[x == 1.0].tolist() == [0.0] * int((x == 1.0).sum())
    far = want != 0.0
    assert _ulps(got[far], want[far]).max() <= 1.0
    assert np.abs(got - want).max() <= 5e-16 * np.maximum(1.0, np.abs(want)).max()


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=8), st.floats(1e-310, 1e3))
def test_soft_max_row_is_the_reference_log_sum_exp(q, tau):
    """One state's soft max through the sweep kernels, against scipy's logsumexp;
    tau reaches subnormal values, where 1 / tau overflows."""
    Q = np.array([q])
    _, TV = bellman.sweep(eb.TabularMDP(np.ones((1, len(q), 1)), 0.0), Q, np.zeros(1), tau)
    _, want = ref.bellman_ref(np.ones((1, len(q), 1)), Q, np.zeros(1), 0.0, tau)
    m = max(abs(v) for v in q)
    assert np.isfinite(TV[0])
    assert abs(TV[0] - want[0]) <= 4e-16 * m + 4e-16 * tau * np.log(len(q)) + 1e-300
    pi = eb.policy_from_q(Q, tau)
    np.testing.assert_allclose(pi, ref.policy_ref(Q, tau), rtol=0, atol=1e-13)


# --------------------------------------------------------------------------- the stencil form


def _kernel_from_stencil(mdp):
    """The dense (S, A, S) kernel rebuilt from the stencil arrays alone."""
    starts, off, w, uoff, umap, nu = mdp.stencil
    P = np.zeros((mdp.S, mdp.A, mdp.S))
    for c in range(starts.size - 1):
        for s in range(starts[c], starts[c + 1]):
            for a in range(mdp.A):
                for k in range(off.shape[2]):
                    P[s, a, s + off[c, a, k]] += w[c, a, k]
                    if w[c, a, k] != 0.0:  # unused slots have weight 0
                        assert uoff[c, umap[c, a, k]] == off[c, a, k]
        assert len(set(uoff[c, : nu[c]].tolist())) == nu[c]
    return P


@settings(max_examples=examples(25), deadline=None)
@given(ebst.banded_mdps())
def test_the_stencil_is_the_kernel(mdp):
    assert mdp.stencil is not None
    starts = mdp.stencil[0]
    assert starts[0] == 0 and starts[-1] == mdp.S and np.all(np.diff(starts) >= 1)
    assert np.diff(starts).max() <= mdp_module.STENCIL_CHUNK
    np.testing.assert_array_equal(_kernel_from_stencil(mdp), ref.dense_kernel(mdp))


def test_the_stencil_is_built_for_grids_and_not_for_random_mdps():
    grid = eb.envs.gridworld(n=200, actions=4, sparse=True).mdp
    assert grid.stencil is not None
    assert grid.stencil[0].size - 1 < grid.S / mdp_module.STENCIL_MIN_RUN
    assert eb.envs.random_mdp(2000, 3, successors=4, seed=0).stencil is None
    assert eb.envs.gridworld(n=20, actions=4, sparse=False).mdp.stencil is None  # dense
    for arr in grid.stencil:
        assert not arr.flags.writeable


def test_no_stencil_when_one_long_row_would_pad_every_chunk():
    """A chain whose last state moves anywhere: one row of S entries would make
    every chunk hold A x S slots, more than the CSR; the stencil is not built."""
    S = 20 * mdp_module.STENCIL_CHUNK
    rows = np.concatenate([np.arange(S - 1), np.full(S, S - 1)])
    cols = np.concatenate([np.arange(1, S), np.arange(S)])
    vals = np.concatenate([np.ones(S - 1), np.full(S, 1.0 / S)])
    mdp = eb.TabularMDP(sp.csr_matrix((vals, (rows, cols)), shape=(S, S)), 0.9)
    assert mdp.stencil is None
    chain = eb.TabularMDP(sp.csr_matrix((np.ones(S), (np.arange(S), np.minimum(np.arange(S) + 1, S - 1))),
                                        shape=(S, S)), 0.9)
    assert chain.stencil is not None  # the same chain with an absorbing end has one


def test_long_runs_are_cut_into_chunks():
    """A chain s -> s + 1 (the last state absorbing) is one run; its chunks hold
    STENCIL_CHUNK states each, so the sweep has parallel work."""
    S = 3 * mdp_module.STENCIL_CHUNK + 7
    nxt = np.minimum(np.arange(S) + 1, S - 1)
    mdp = eb.TabularMDP(sp.csr_matrix((np.ones(S), (np.arange(S), nxt)), shape=(S, S)), 0.9)
    sizes = np.diff(mdp.stencil[0])
    assert sizes.max() == mdp_module.STENCIL_CHUNK and sizes.sum() == S


@settings(max_examples=examples(40), deadline=None)
@given(st.data())
def test_stencil_sweep_gives_the_bits_of_the_csr_sweep(data):
    mdp = data.draw(ebst.banded_mdps())
    r = data.draw(ebst.rewards(mdp))
    V = data.draw(ebst.values(mdp))
    tau = data.draw(ebst.taus(1e-8, 1e3, include_zero=True))
    Q, TV = bellman.sweep(mdp, r, V, tau)  # the stencil form
    Qc, TVc = np.empty_like(Q), np.empty_like(TV)
    _kernels.sweep_csr(*mdp.packed, r, V, mdp.gamma, tau, Qc, TVc)
    np.testing.assert_array_equal(Q, Qc)
    np.testing.assert_array_equal(TV, TVc)
    # and both are the reference's, to rounding (scipy's product and logsumexp)
    Q_ref, TV_ref = ref.bellman_ref(ref.dense_kernel(mdp), r, V, mdp.gamma, tau)
    unit = np.abs(r).max() + np.abs(V).max() + tau * np.log(mdp.A) + 1e-300
    np.testing.assert_allclose(Q, Q_ref, rtol=0, atol=1e-13 * unit)
    np.testing.assert_allclose(TV, TV_ref, rtol=0, atol=1e-13 * unit)


@settings(max_examples=examples(30), deadline=None)
@given(st.data())
def test_stencil_backups_are_products_with_the_policy_matrix(data):
    mdp = data.draw(ebst.banded_mdps())
    pi = data.draw(ebst.policies(mdp))
    rng = np.random.default_rng(data.draw(ebst.seeds))
    b, V = rng.normal(size=mdp.S), rng.normal(size=mdp.S)
    M = ref.policy_matrix_ref(ref.dense_kernel(mdp), pi)
    once = b + mdp.gamma * (M @ V)
    want = b + mdp.gamma * (M @ once)
    got = bellman.stencil_backups(mdp, pi, b, V.copy(), 2)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-13 * (1 + np.abs(want).max()))


@settings(max_examples=examples(8), deadline=None)
@given(st.data())
def test_modified_policy_iteration_on_a_stencil_mdp_is_certified(data):
    """MPI with stencil backups (hard and soft), against the reference's policy iteration."""
    mdp = data.draw(ebst.banded_mdps(max_states=240, gamma=(0.5, 0.97)))
    r = data.draw(ebst.rewards(mdp, scale=(1e-2, 1e2)))
    tau = data.draw(st.sampled_from([0.0, 0.05, 1.0]))
    res = eb.solve(mdp, r, tau, method="modified_policy_iteration", tol=1e-9)
    V_ref = ref.policy_iteration_ref(ref.dense_kernel(mdp), r, mdp.gamma, tau)[0]
    assert res.converged and np.abs(res.V - V_ref).max() <= res.error_bound + 1e-12 * (1 + np.abs(V_ref).max())


@settings(max_examples=examples(30), deadline=None)
@given(st.data())
def test_stencil_policy_matrix_is_the_reference_policy_matrix(data):
    """P_pi built from the stencil (what PolicySystem uses on stencil MDPs): the
    reference's dense P_pi, increasing columns, no stored zeros; and the
    evaluation on it equals the reference's dense solve."""
    mdp = data.draw(ebst.banded_mdps())
    pi = data.draw(ebst.policies(mdp))
    starts, _, _, uoff, _, nu = mdp.stencil
    ptr, idx, val = _stencil_kernels.policy_matrix(starts, uoff, nu, bellman.stencil_policy_weights(mdp, pi))
    M = sp.csr_matrix((val, idx, ptr), shape=(mdp.S, mdp.S))
    P = ref.dense_kernel(mdp)
    np.testing.assert_allclose(M.toarray(), ref.policy_matrix_ref(P, pi), rtol=0, atol=1e-15)
    assert np.all(val != 0.0) and M.has_sorted_indices
    r = data.draw(ebst.rewards(mdp, scale=(1e-2, 1e2)))
    V, _ = eb.evaluate(mdp, r, pi, 0.1)
    V_ref, _ = ref.evaluate_ref(P, r, pi, mdp.gamma, 0.1)
    np.testing.assert_allclose(V, V_ref, rtol=0, atol=1e-10 * (1 + np.abs(V_ref).max()))
