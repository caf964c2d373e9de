"""Exact policy evaluation and occupancy measures against dense numpy solves and identities."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

import exactbilevel as eb
from exactbilevel import evaluation
from exactbilevel.evaluation import PolicySystem
from exactbilevel.testing import reference as ref
from exactbilevel.testing import strategies as ebst

EPS = np.finfo(float).eps


@st.composite
def cases(draw, tau=ebst.taus(1e-6, 10.0, include_zero=True), min_prob=0.0, **kw):
    mdp = draw(ebst.mdps(**kw))
    r = draw(ebst.rewards(mdp))
    pi = draw(ebst.policies(mdp, min_prob=min_prob))
    return mdp, r, pi, draw(tau)


def b_scale(r, tau, A):
    return np.abs(r).max() + tau * math.log(A) + 1e-300


def entropy_terms(pi):
    """pi log pi with 0 log 0 = 0."""
    return np.where(pi > 0, pi * np.log(np.where(pi > 0, pi, 1.0)), 0.0)


@settings(max_examples=examples(80))
@given(cases())
def test_evaluate_equals_reference(case):
    mdp, r, pi, tau = case
    P, g = ref.dense_kernel(mdp), mdp.gamma
    V, Q = eb.evaluate(mdp, r, pi, tau=tau)
    Vr, Qr = ref.evaluate_ref(P, r, pi, g, tau)
    # both are dense solves of a system with inf-norm condition <= (1+g)/(1-g)
    sc = b_scale(r, tau, mdp.A) / (1 - g)
    tol = 1e-13 * sc / (1 - g)
    assert V.shape == (mdp.S,) and Q.shape == (mdp.S, mdp.A)
    np.testing.assert_allclose(V, Vr, rtol=0, atol=tol)
    np.testing.assert_allclose(Q, Qr, rtol=0, atol=tol)


@settings(max_examples=examples(60))
@given(cases())
def test_evaluation_identities(case):
    """Q = r + gamma P V, and the Bellman evaluation equation V = sum_a pi (Q - tau log pi)."""
    mdp, r, pi, tau = case
    P, g = ref.dense_kernel(mdp), mdp.gamma
    V, Q = eb.evaluate(mdp, r, pi, tau=tau)
    sc = b_scale(r, tau, mdp.A) / (1 - g)
    np.testing.assert_allclose(Q, ref.q_values_ref(P, r, V, g), rtol=0, atol=1e-13 * sc)
    bellman = (pi * Q).sum(axis=1) - tau * entropy_terms(pi).sum(axis=1)
    # residual of the linear system, relative to |b|: LU gives it to rounding
    np.testing.assert_allclose(bellman, V, rtol=0, atol=1e-12 * sc)


@settings(max_examples=examples(60))
@given(cases(tau=st.just(0.0)))
def test_occupancy_properties_and_reference(case):
    mdp, _, pi, _ = case
    P, g, rho = ref.dense_kernel(mdp), mdp.gamma, mdp.rho
    d, nu = eb.occupancy(mdp, pi)
    assert d.shape == (mdp.S,) and nu.shape == (mdp.S, mdp.A)
    tol = 1e-12 / (1 - g)
    assert np.all(d >= -tol)
    assert abs(d.sum() - 1.0) <= tol
    np.testing.assert_allclose(nu, d[:, None] * pi, rtol=0, atol=1e-15)
    # flow identity: sum_a nu(s', a) = (1 - g) rho(s') + g sum_{s,a} P(s'|s,a) nu(s,a)
    inflow = (1 - g) * rho + g * np.einsum("sat,sa->t", P, nu)
    np.testing.assert_allclose(nu.sum(axis=1), inflow, rtol=0, atol=tol)
    d_ref, nu_ref = ref.occupancy_ref(P, pi, g, rho)
    np.testing.assert_allclose(d, d_ref, rtol=0, atol=tol)
    np.testing.assert_allclose(nu, nu_ref, rtol=0, atol=tol)
    # d is a distribution; where rho > 0 it is at least (1 - g) rho
    assert np.all(d >= (1 - g) * rho - tol)


@settings(max_examples=examples(60))
@given(cases())
def test_two_formulas_for_J(case):
    """J = rho . V (forward solve) = sum nu (r - tau log pi) / (1 - gamma) (transposed solve)."""
    mdp, r, pi, tau = case
    g = mdp.gamma
    V, _ = eb.evaluate(mdp, r, pi, tau=tau)
    _, nu = eb.occupancy(mdp, pi)
    J_values = mdp.rho @ V
    log_pi = np.log(np.where(pi > 0, pi, 1.0))  # nu = 0 where pi = 0
    J_occupancy = (nu * (r - tau * log_pi)).sum() / (1 - g)
    sc = b_scale(r, tau, mdp.A) / (1 - g)
    assert J_values == pytest.approx(J_occupancy, abs=1e-12 * sc / (1 - g))


def test_evaluation_of_deterministic_chain_closed_form():
    """Two-state chain 0 -> 1 -> 1 with rewards 1 and 2: V(1) = 2/(1-g), V(0) = 1 + g V(1)."""
    P = np.zeros((2, 1, 2))
    P[0, 0, 1] = P[1, 0, 1] = 1.0
    g = 0.9
    mdp = eb.TabularMDP(P, g, rho=[1.0, 0.0])
    V, _ = eb.evaluate(mdp, [[1.0], [2.0]], [[1.0], [1.0]])
    np.testing.assert_allclose(V, [1 + g * 2 / (1 - g), 2 / (1 - g)], rtol=1e-15)
    d, _ = eb.occupancy(mdp, [[1.0], [1.0]])
    np.testing.assert_allclose(d, [1 - g, g], rtol=1e-15)


def test_uniform_policy_entropy_closed_form():
    """Uniform policy, zero reward: V = tau log A / (1 - gamma) everywhere."""
    mdp = eb.envs.random_mdp(7, 4, gamma=0.8, seed=5)
    tau = 0.3
    V, Q = eb.evaluate(mdp, np.zeros((7, 4)), np.full((7, 4), 0.25), tau=tau)
    np.testing.assert_allclose(V, tau * math.log(4) / 0.2, rtol=1e-13)
    np.testing.assert_allclose(Q, 0.8 * tau * math.log(4) / 0.2, rtol=1e-13)


# --------------------------------------------------------------------------- PolicySystem: matvec and the Krylov path


@st.composite
def systems(draw, **kw):
    mdp = draw(ebst.mdps(**kw))
    pi = draw(ebst.policies(mdp))
    rng = np.random.default_rng(draw(ebst.seeds))
    b = rng.uniform(-1, 1, mdp.S) * 10.0 ** rng.integers(-3, 7)
    return mdp, pi, b


@settings(max_examples=examples(60))
@given(systems())
def test_matvec_equals_dense_matrix(system):
    mdp, pi, v = system
    M = ref.policy_matrix_ref(ref.dense_kernel(mdp), pi)
    A = np.eye(mdp.S) - mdp.gamma * M
    ps = PolicySystem(mdp, pi)
    sc = 1e-13 * np.abs(v).max() * mdp.S
    np.testing.assert_allclose(ps.matvec(v), A @ v, rtol=0, atol=sc)
    np.testing.assert_allclose(ps.matvec(v, transpose=True), A.T @ v, rtol=0, atol=sc)
    # the matvec does not modify its input
    v2 = v.copy()
    ps.matvec(v2)
    ps.matvec(v2, transpose=True)
    assert np.array_equal(v, v2)


@settings(max_examples=examples(50))
@given(systems(min_states=2), st.integers(0, 1))
def test_krylov_path_equals_dense_solve(system, threshold):
    """With DENSE_LU_MAX_STATES below S, PolicySystem solves by Krylov iterations on the compiled
    matvec; the certified accuracy is |x - x*|_inf <= rtol |b|_inf / (1-g) (forward) and
    |y - y*|_1 <= rtol |c|_1 / (1-g) (transposed)."""
    mdp, pi, b = system
    g = mdp.gamma
    M = ref.policy_matrix_ref(ref.dense_kernel(mdp), pi)
    A = np.eye(mdp.S) - g * M
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluation, "DENSE_LU_MAX_STATES", threshold)
        ps = PolicySystem(mdp, pi)
    assert getattr(ps, "_lu", None) is None  # the Krylov path really runs (no LU factorization)
    rtol = 1e-12
    x = ps.solve(b, rtol=rtol)
    x_ref = np.linalg.solve(A, b)
    ref_err = 1e-15 * mdp.S * np.abs(x_ref).max() / (1 - g)
    assert np.abs(x - x_ref).max() <= rtol * np.abs(b).max() / (1 - g) + ref_err
    y = ps.solve(b, transpose=True, rtol=rtol)
    y_ref = np.linalg.solve(A.T, b)
    assert np.abs(y - y_ref).sum() <= rtol * np.abs(b).sum() / (1 - g) + mdp.S * ref_err
    # a zero right-hand side gives zero
    assert np.array_equal(ps.solve(np.zeros(mdp.S)), np.zeros(mdp.S))


@settings(max_examples=examples(40))
@given(cases(min_states=2))
def test_evaluate_and_occupancy_on_krylov_path(case):
    mdp, r, pi, tau = case
    P, g = ref.dense_kernel(mdp), mdp.gamma
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluation, "DENSE_LU_MAX_STATES", 1)
        V, Q = eb.evaluate(mdp, r, pi, tau=tau)
        d, nu = eb.occupancy(mdp, pi)
    Vr, Qr = ref.evaluate_ref(P, r, pi, g, tau)
    sc = b_scale(r, tau, mdp.A)
    # documented: |V - V^pi|_inf <= 1e-12 |b|_inf / (1 - g)
    np.testing.assert_allclose(V, Vr, rtol=0, atol=1e-12 * sc / (1 - g) + 1e-14 * sc / (1 - g) ** 2)
    d_ref, _ = ref.occupancy_ref(P, pi, g, mdp.rho)
    # documented: |d - d^pi|_1 <= 1e-12
    assert np.abs(d - d_ref).sum() <= 1e-12 + 1e-14 * mdp.S / (1 - g)


@settings(max_examples=examples(40))
@given(ebst.mdps(max_states=12).flatmap(lambda m: st.tuples(st.just(m), ebst.policies(m), ebst.rewards(m), ebst.taus())))
def test_policy_reward_equals_reference(case):
    mdp, pi, r, tau = case
    b = evaluation.policy_reward(r, pi, tau)
    b_ref = (pi * r).sum(axis=1) + tau * ref.entropy_ref(pi)
    np.testing.assert_allclose(b, b_ref, rtol=0, atol=1e-12 * (np.abs(r).max() + tau * np.log(mdp.A) + 1))


@st.composite
def damaged_policies(draw):
    """Policies with up to three entries replaced by NaN, +-inf, a negative number,
    -0.0, or a value that moves the row sum by about the tolerance."""
    mdp = draw(ebst.mdps(max_states=12))
    pi = draw(ebst.policies(mdp)).copy()
    for _ in range(draw(st.integers(0, 3))):
        s, a = draw(st.integers(0, mdp.S - 1)), draw(st.integers(0, mdp.A - 1))
        pi[s, a] = draw(st.sampled_from([np.nan, np.inf, -np.inf, -1e-300, -0.0, pi[s, a] + 2e-9, pi[s, a] + 5e-10]))
    return mdp, pi


@settings(max_examples=examples(60))
@given(damaged_policies())
def test_policy_defects_and_check_policy(case):
    """The compiled count equals numpy's; check_policy accepts exactly the policies
    with no defect and otherwise names a row or an entry."""
    mdp, pi = case
    n = _kernels.policy_defects(pi, evaluation.POLICY_SUM_TOL)
    assert n == ref.policy_defects_ref(pi, evaluation.POLICY_SUM_TOL)
    if n == 0:
        np.testing.assert_array_equal(evaluation.check_policy(mdp, pi), pi)
    else:
        with pytest.raises(ValueError, match=r"pi( has|\[\d+, :\] sums)"):
            evaluation.check_policy(mdp, pi)


@settings(max_examples=examples(40))
@given(st.integers(1, 300), ebst.seeds, st.data())
def test_fingerprint_equals_reference_and_sees_every_bit(n, seed, data):
    """The key of policy_system: the compiled hash equals the numpy formula, and
    flipping any one bit of any word changes it (a bijection mixes each term)."""
    bits = np.random.default_rng(seed).integers(0, 2**63, size=n, dtype=np.uint64) * np.uint64(2)
    h = _kernels.fingerprint(bits)
    assert h == ref.fingerprint_ref(bits)
    i, k = data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, 63))
    flipped = bits.copy()
    flipped[i] ^= np.uint64(1) << np.uint64(k)
    assert _kernels.fingerprint(flipped) != h


# --------------------------------------------------------------------------- the multigrid preconditioner and its kernels

from exactbilevel import _kernels  # noqa: E402
from exactbilevel import _multigrid_kernels as _mg  # noqa: E402


def split_to_dense(lev, lo=0, hi=None):
    """Rows and columns lo..hi-1 of a split matrix (a level of a stack), dense."""
    optr, oidx, oval, diag = lev
    hi = diag.shape[0] if hi is None else hi
    A = np.diag(diag[lo:hi]).astype(float)
    for s in range(lo, hi):
        cols = oidx[optr[s]:optr[s + 1]]
        assert s not in cols and np.all((cols >= lo) & (cols < hi))  # diagonal apart, block diagonal
        np.add.at(A[s - lo], cols - lo, oval[optr[s]:optr[s + 1]])
    return A


def padded_to_dense(pidx, pval, orow, optr_o, diag, base, width, lo, lev):
    """Level ``lev`` of a padded stack, dense; checks that unused slots are
    (s, 0), that no slot holds the diagonal and that only rows longer than
    the width overflow."""
    a, e, K = lo[lev], lo[lev + 1], width[lev]
    A = np.diag(diag[a:e]).astype(float)
    for s in range(a, e):
        p = base[lev] + (s - a) * K
        cols, vals = pidx[p:p + K], pval[p:p + K]
        j = np.searchsorted(orow, s)
        if j < orow.size and orow[j] == s:
            assert np.all(vals != 0.0)  # a full row
            cols = np.concatenate([cols, pidx[optr_o[j]:optr_o[j + 1]]])
            vals = np.concatenate([vals, pval[optr_o[j]:optr_o[j + 1]]])
        assert np.all((cols >= a) & (cols < e)) and np.all(vals[cols == s] == 0.0)
        np.add.at(A[s - a], cols - a, vals)
    return A


@settings(max_examples=examples(40))
@given(systems(sparse=True))
def test_multigrid_kernels_equal_references(system):
    """permuted_split, pairwise_aggregate, galerkin, split_dense, transpose_split, padded_stack,
    gauss_seidel and split_matvec against dense numpy formulas."""
    mdp, pi, b = system
    g = mdp.gamma
    M = ref.policy_matrix_ref(ref.dense_kernel(mdp), pi)
    csr = _kernels.policy_matrix_csr(*mdp.csr, pi)
    order = _mg.flow_order(*csr)
    assert np.array_equal(np.sort(order), np.arange(mdp.S))
    lev = _mg.permuted_split(*csr, g, order)
    A = split_to_dense(lev)
    np.testing.assert_allclose(A, ref.permuted_system_ref(M, g, order), rtol=0, atol=1e-15)
    agg, nc = _mg.pairwise_aggregate(*lev[:3])
    sizes = np.bincount(agg, minlength=nc)
    assert agg.min() >= 0 and agg.max() == nc - 1 and sizes.min() >= 1 and sizes.max() <= 3
    coarse = _mg.galerkin(*lev, agg, nc)
    Ac = split_to_dense(coarse)
    np.testing.assert_allclose(Ac, ref.galerkin_ref(A, agg, nc), rtol=0, atol=1e-14)
    # the coarse matrix is again a row-diagonally dominant M-matrix
    assert np.all(coarse[2] <= 0) and np.all(Ac.sum(axis=1) >= (1 - g) * sizes - 1e-12)
    np.testing.assert_array_equal(_mg.split_dense(*lev), A)
    # the transpose and the padded rows of the solve kernels
    T = _mg.transpose_split(*lev[:3])
    np.testing.assert_array_equal(split_to_dense((*T, lev[3])), A.T)
    lo = np.array([0, mdp.S])
    pidx, pval, orow, optr_o, base, width = _mg.padded_stack([lev], lo)
    np.testing.assert_array_equal(padded_to_dense(pidx, pval, orow, optr_o, lev[3], base, width, lo, 0), A)
    bp = b[order]
    x0 = np.random.default_rng(0).uniform(-1, 1, mdp.S)
    for reverse in (False, True):
        x = x0.copy()
        _mg.gauss_seidel(pidx, pval, orow, optr_o, 1.0 / lev[3], base, width, lo, 0, reverse, bp, x)
        np.testing.assert_allclose(x, ref.gauss_seidel_ref(A, bp, x0, reverse), rtol=1e-12, atol=1e-12 * np.abs(bp).max())
    out = np.empty(mdp.S)
    _mg.split_matvec(pidx, pval, orow, optr_o, lev[3], base, width, lo, x0, out)
    np.testing.assert_allclose(out, A @ x0, rtol=0, atol=1e-14)


@settings(max_examples=examples(30))
@given(systems(sparse=True))
def test_independent_states_are_independent_and_maximal(system):
    """No two fine states are coupled (in either direction) and every kept state is coupled to a
    fine one, checked on the dense policy matrix."""
    mdp, pi, _ = system
    ptr, idx, val = _kernels.policy_matrix_csr(*mdp.csr, pi)
    fine = _mg.independent_states(ptr, idx)
    G = sp.csr_matrix((np.ones_like(val), idx, ptr), shape=(mdp.S, mdp.S)).toarray() != 0
    G = (G | G.T) & ~np.eye(mdp.S, dtype=bool)
    assert fine.any() and not G[np.ix_(fine, fine)].any()
    assert G[np.ix_(~fine, fine)].any(axis=1).all()


@settings(max_examples=examples(30))
@given(systems(sparse=True), st.booleans())
def test_eliminated_system_is_the_schur_complement(system, transpose):
    """I - gamma M_C is the Schur complement of the fine block of A = I - gamma P_pi (dense
    reference), and reducing the right-hand side, solving densely and expanding gives the
    dense solution of A x = b (A^T with ``transpose``)."""
    mdp, pi, b = system
    csr = _kernels.policy_matrix_csr(*mdp.csr, pi)
    fine = _mg.independent_states(*csr[:2])
    cmap, cptr, cidx, cval, dF = _mg.eliminated_system(*csr, mdp.gamma, fine)
    nC = mdp.S - int(fine.sum())
    assert np.array_equal(cmap[~fine], np.arange(nC)) and np.all(cmap[fine] == -1)
    A = np.eye(mdp.S) - mdp.gamma * ref.policy_matrix_ref(ref.dense_kernel(mdp), pi)
    M_C = sp.csr_matrix((cval, cidx, cptr), shape=(nC, nC)).toarray()
    assert np.all(M_C >= 0) and np.all(M_C.sum(axis=1) <= 1 + 1e-12)
    np.testing.assert_allclose(np.eye(nC) - mdp.gamma * M_C, ref.schur_complement_ref(A, ~fine), rtol=0, atol=1e-14)
    elim = evaluation._Elimination(csr, mdp.gamma, fine, cmap, dF, (cptr, cidx, cval))
    S_C = np.eye(nC) - mdp.gamma * M_C
    xc = np.linalg.solve(S_C.T if transpose else S_C, elim.reduce(b, transpose))
    x_ref = np.linalg.solve(A.T if transpose else A, b)
    np.testing.assert_allclose(elim.expand(b, xc, transpose), x_ref, rtol=0,
                               atol=1e-12 * np.abs(b).max() / (1 - mdp.gamma))


def test_gridworld_eliminates_a_checkerboard():
    """On a GridWorld the independent set is every other cell, and the solve through the
    eliminated system meets the certificate in both directions against a dense solve."""
    n = 12
    mdp = eb.envs.gridworld(n=n, actions=4, gamma=0.99, sparse=True).mdp
    rng = np.random.default_rng(4)
    pi = rng.dirichlet(np.ones(mdp.A), size=mdp.S)
    A = np.eye(mdp.S) - mdp.gamma * ref.policy_matrix_ref(ref.dense_kernel(mdp), pi)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluation, "DENSE_LU_MAX_STATES", 1)
        mp.setattr(evaluation, "MULTIGRID_COARSE_STATES", 8)
        ps = PolicySystem(mdp, pi)
        for transpose, b in ((False, rng.uniform(-1, 1, mdp.S)), (True, mdp.rho)):
            x = ps.solve(b, transpose=transpose)
            ord_ = 1 if transpose else np.inf
            assert np.linalg.norm(b - (A.T if transpose else A) @ x, ord_) <= 1e-12 * np.linalg.norm(b, ord_) * 1.001
    i, j = np.divmod(np.arange(mdp.S), n)
    assert np.array_equal(ps._elim.fine, (i + j) % 2 == 0)
    assert ps._mg.lo[1] == mdp.S // 2


@st.composite
def banded_systems(draw):
    mdp = draw(ebst.banded_mdps(max_states=240, gamma=(0.5, 0.99)))
    pi = draw(ebst.policies(mdp))
    return mdp, pi, np.random.default_rng(draw(ebst.seeds)).uniform(-1, 1, mdp.S)


@settings(max_examples=examples(30))
@given(st.one_of(systems(sparse=True, min_states=6), banded_systems()), st.booleans())
def test_multigrid_path_meets_its_certificate(system, transpose):
    """PolicySystem's iterative path (the elimination where it applies, then the multigrid)
    meets its residual certificate, and its error bound, against a dense solve."""
    mdp, pi, b = system
    A = np.eye(mdp.S) - mdp.gamma * ref.policy_matrix_ref(ref.dense_kernel(mdp), pi)
    A = A.T if transpose else A
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluation, "DENSE_LU_MAX_STATES", 1)
        mp.setattr(evaluation, "MULTIGRID_COARSE_STATES", 8)
        x = PolicySystem(mdp, pi).solve(b, transpose=transpose)
    ord_ = 1 if transpose else np.inf
    bn = np.linalg.norm(b, ord_)
    assert np.linalg.norm(b - A @ x, ord_) <= 1e-12 * bn * (1 + 1e-3)
    assert np.linalg.norm(x - np.linalg.solve(A, b), ord_) <= 1e-12 * bn / (1 - mdp.gamma) * 1.01 + 1e-14 * bn


def small_multigrid(mdp, pi, coarse_states=8):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluation, "MULTIGRID_COARSE_STATES", coarse_states)
        return evaluation._Multigrid(*_kernels.policy_matrix_csr(*mdp.csr, pi), mdp.gamma)


def cycle_matrix(mg, transpose):
    n = mg.lo[1]
    return np.column_stack([mg.vcycle(e, transpose) for e in np.eye(n)])


@settings(max_examples=examples(25))
@given(systems(sparse=True, min_states=6))
def test_vcycle_equals_reference_and_its_transpose(system):
    """The compiled cycle on the stacked levels (and on the transposed ones) equals the recursive
    dense reference, and the cycle on the transposed stack is the transpose of the cycle matrix
    (so A and A^T see the same preconditioned spectrum)."""
    mdp, pi, b = system
    mg = small_multigrid(mdp, pi, coarse_states=2)
    lo = mg.lo
    pidx, pval, orow, optr_o, diag, _, base, width = mg._stack(False)[:8]
    As = [padded_to_dense(pidx, pval, orow, optr_o, diag, base, width, lo, l) for l in range(len(lo) - 1)]
    pidx, pval, orow, optr_o, diag, _, base, width = mg._stack(True)[:8]
    for l in range(len(lo) - 1):  # the transposed stack holds the transposed levels
        np.testing.assert_array_equal(padded_to_dense(pidx, pval, orow, optr_o, diag, base, width, lo, l), As[l].T)
    aggs = [mg.agg[lo[l]:lo[l + 1]] - lo[l + 1] for l in range(len(lo) - 2)]
    A = ref.permuted_system_ref(ref.policy_matrix_ref(ref.dense_kernel(mdp), pi), mdp.gamma, mg.order)
    np.testing.assert_allclose(As[0], A, rtol=0, atol=1e-15)
    bp = b[mg.order]
    scale = np.abs(bp).max() / (1 - mdp.gamma)
    coarse = mg.coarse_inv.shape[0] > 0
    for transpose in (False, True):
        A_l = [a.T for a in As] if transpose else As
        np.testing.assert_allclose(mg.vcycle(bp, transpose), ref.vcycle_ref(A_l, aggs, bp, coarse, *mg.SWEEPS[transpose]),
                                   rtol=0, atol=1e-11 * scale)
    C, CT = cycle_matrix(mg, False), cycle_matrix(mg, True)
    np.testing.assert_allclose(CT, C.T, rtol=0, atol=1e-11 / (1 - mdp.gamma))


@st.composite
def reset_systems(draw):
    """A banded MDP whose first action from every state also jumps, with
    probability 0.1, to a random one of 12 states: rows (and, transposed,
    columns) far longer than the rest, which the padded levels keep in overflow."""
    mdp = draw(ebst.banded_mdps(max_states=200, gamma=(0.5, 0.99)))
    rng = np.random.default_rng(draw(ebst.seeds))
    S, A = mdp.S, mdp.A
    P = mdp.P.tolil()
    targets = rng.choice(S, size=12, replace=False)
    jump = sp.csr_matrix((np.full(12, 1.0 / 12), (np.zeros(12, dtype=int), targets)), shape=(1, S))
    for s in rng.choice(S, size=S // 4, replace=False):
        P[s * A] = 0.9 * P[s * A] + 0.1 * jump
    mdp = eb.TabularMDP(P.tocsr(), mdp.gamma)
    pi = draw(ebst.policies(mdp))
    return mdp, pi, rng.uniform(-1, 1, S)


@settings(max_examples=examples(15))
@given(reset_systems())
def test_vcycle_with_overflowing_rows_equals_reference(system):
    """Levels where a few rows outgrow the padded width: the overflow is read by the
    sweeps and residuals (the cycle equals the dense reference, both directions)."""
    mdp, pi, b = system
    mg = small_multigrid(mdp, pi, coarse_states=2)
    lo = mg.lo
    assert mg._stack(False)[2].size + mg._stack(True)[2].size > 0  # some rows overflow
    pidx, pval, orow, optr_o, diag, _, base, width = mg._stack(False)[:8]
    As = [padded_to_dense(pidx, pval, orow, optr_o, diag, base, width, lo, l) for l in range(len(lo) - 1)]
    aggs = [mg.agg[lo[l]:lo[l + 1]] - lo[l + 1] for l in range(len(lo) - 2)]
    A = ref.permuted_system_ref(ref.policy_matrix_ref(ref.dense_kernel(mdp), pi), mdp.gamma, mg.order)
    np.testing.assert_allclose(As[0], A, rtol=0, atol=1e-15)
    bp = b[mg.order]
    coarse = mg.coarse_inv.shape[0] > 0
    for transpose in (False, True):
        A_l = [a.T for a in As] if transpose else As
        np.testing.assert_allclose(mg.vcycle(bp, transpose), ref.vcycle_ref(A_l, aggs, bp, coarse, *mg.SWEEPS[transpose]),
                                   rtol=0, atol=1e-11 / (1 - mdp.gamma))


@settings(max_examples=examples(25))
@given(systems(sparse=True, min_states=6), st.booleans())
def test_compiled_bicgstab_solves_the_permuted_system(system, transpose):
    """The compiled BiCGSTAB stops at its stated residual in the certificate's norm (sup-norm,
    1-norm for the transposed system), checked with a dense matrix and a dense solve."""
    mdp, pi, b = system
    mg = small_multigrid(mdp, pi)
    A = ref.permuted_system_ref(ref.policy_matrix_ref(ref.dense_kernel(mdp), pi), mdp.gamma, mg.order)
    A = A.T if transpose else A
    ord_ = 1 if transpose else np.inf
    bp = b[mg.order]
    atol = 1e-10 * np.linalg.norm(bp, ord_)
    x = np.empty_like(bp)
    status, its = _mg.bicgstab(*mg._stack(transpose), bp, atol, 1 if transpose else 0, 200, x)
    assert status == 0 and its <= 200
    # the recursive residual it stopped on drifts from the true one by rounding only
    res_bound = atol * (1 + 1e-3) + 1e-14 * np.linalg.norm(bp, ord_) * mdp.S
    assert np.linalg.norm(bp - A @ x, ord_) <= res_bound
    # |A^-1|_inf (|A^-T|_1) <= 1 / (1 - gamma) for this diagonally dominant M-matrix
    x_ref = np.linalg.solve(A, bp)
    assert np.linalg.norm(x - x_ref, ord_) <= res_bound / (1 - mdp.gamma) + 1e-12 * np.linalg.norm(x_ref, ord_)


def test_reductions_are_independent_of_the_thread_count():
    """The blocked dot product and norms equal long-double references to rounding and do not
    change with the number of Numba threads (their blocks are fixed)."""
    import numba
    rng = np.random.default_rng(0)
    u, v = rng.standard_normal(3 * _mg.DOT_BLOCK + 17), rng.standard_normal(3 * _mg.DOT_BLOCK + 17)
    values = []
    for threads in sorted({1, numba.config.NUMBA_NUM_THREADS}):
        numba.set_num_threads(threads)
        values.append((_mg.dot(u, v), _mg.norm(u, 0), _mg.norm(u, 1)))
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    assert len(set(values)) == 1
    dot, sup, one = values[0]
    assert abs(dot - float(np.sum(u.astype(np.longdouble) * v))) <= 1e-12 * np.abs(u * v).sum()
    assert sup == np.abs(u).max()
    assert abs(one - float(np.abs(u.astype(np.longdouble)).sum())) <= 1e-12 * np.abs(u).sum()


@settings(max_examples=examples(40))
@given(systems(sparse=True))
def test_policy_pattern_refill_equals_policy_matrix(system):
    """The refilled pattern is P_pi (dense reference); for full-support policies it is
    exactly policy_matrix_csr."""
    mdp, pi, _ = system
    ptr, idx, slot = _kernels.policy_pattern(mdp.csr[0], mdp.csr[1], mdp.S, mdp.A)
    val = np.full(idx.shape[0], np.nan)
    _kernels.policy_refill(mdp.csr[0], mdp.csr[2], pi, ptr, slot, val)
    dense = sp.csr_matrix((val, idx, ptr), shape=(mdp.S, mdp.S)).toarray()
    np.testing.assert_allclose(dense, ref.policy_matrix_ref(ref.dense_kernel(mdp), pi), rtol=0, atol=1e-15)
    for s in range(mdp.S):
        row = idx[ptr[s]:ptr[s + 1]]
        assert np.all(np.diff(row) > 0)
    if np.all(pi > 0):
        p2, i2, v2 = _kernels.policy_matrix_csr(*mdp.csr, pi)
        assert np.array_equal(p2, ptr) and np.array_equal(i2, idx) and np.array_equal(v2, val)


@pytest.mark.parametrize("lu", [False, True])
def test_solve_many_equals_one_at_a_time(lu):
    """Independent systems solved together (in threads on the multigrid path) give the same
    bits as one solve after another, and each meets its certificate against a dense solve."""
    mdp = eb.envs.gridworld(n=20, actions=4, gamma=0.99, sparse=True).mdp
    rng = np.random.default_rng(5)
    pi = rng.dirichlet(np.ones(mdp.A), size=mdp.S)
    jobs = [(mdp.rho, True), (rng.uniform(-1, 1, mdp.S), False), (rng.uniform(0, 3, mdp.S), True)]
    A = np.eye(mdp.S) - mdp.gamma * ref.policy_matrix_ref(ref.dense_kernel(mdp), pi)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluation, "DENSE_LU_MAX_STATES", 10**6 if lu else 1)
        mp.setattr(evaluation, "MULTIGRID_COARSE_STATES", 8)
        together = PolicySystem(mdp, pi).solve_many(jobs)
        alone = [PolicySystem(mdp, pi).solve(b, transpose=t) for b, t in jobs]
    for (b, t), x, y in zip(jobs, together, alone):
        assert np.array_equal(x, y)
        ord_ = 1 if t else np.inf
        assert np.linalg.norm(b - (A.T if t else A) @ x, ord_) <= 1e-12 * np.linalg.norm(b, ord_) * 1.001


def test_transposed_parts_built_beside_the_setup_equal_the_lazy_ones():
    """Asked for with a transposed solve coming, P_pi^T and the transposed stack are
    built in a second thread during the multigrid setup: they equal those built on
    first use after it, and P_pi^T equals scipy's transpose."""
    mdp = eb.envs.gridworld(n=20, actions=4, gamma=0.99, sparse=True).mdp
    pi = np.random.default_rng(2).dirichlet(np.ones(mdp.A), size=mdp.S)
    eb.bellman_operator(mdp, np.zeros((mdp.S, mdp.A)), np.zeros(mdp.S))  # starts Numba's threading layer
    if not evaluation._threadsafe_numba():
        pytest.skip("Numba's threading layer is not thread-safe here: nothing is built beside the setup")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluation, "DENSE_LU_MAX_STATES", 1)
        mp.setattr(evaluation, "MULTIGRID_COARSE_STATES", 8)
        beside, lazy = PolicySystem(mdp, pi), PolicySystem(mdp, pi)
        beside._multigrid(transposed=True)
        lazy._multigrid()
    assert len(lazy._mg.sizes) >= 3
    for a, b in zip(beside._mg._stack(True), lazy._mg._stack(True)):
        assert np.array_equal(a, b)
    ptr, idx, val = beside._csr_of(True)
    for a, b in zip((ptr, idx, val), lazy._csr_of(True)):
        assert np.array_equal(a, b)
    M = sp.csr_matrix((beside._csr[2], beside._csr[1], beside._csr[0]), shape=(mdp.S, mdp.S))
    np.testing.assert_array_equal(sp.csr_matrix((val, idx, ptr), shape=(mdp.S, mdp.S)).toarray(), M.T.toarray())


@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("kind", ["grid", "random"])
def test_multigrid_path_several_levels(kind, transpose):
    """With the coarsest level forced small, the preconditioner has several levels and the
    refined solve still meets its certificate against a dense solve."""
    if kind == "grid":
        mdp = eb.envs.gridworld(n=15, actions=4, gamma=0.99, sparse=True).mdp
    else:
        mdp = eb.envs.random_mdp(300, 3, gamma=0.99, successors=4, sparse=True, seed=3)
    rng = np.random.default_rng(1)
    pi = rng.dirichlet(np.ones(mdp.A), size=mdp.S)
    pi[rng.uniform(size=mdp.S) < 0.5] = np.eye(mdp.A)[0]  # half the states deterministic
    b = rng.uniform(-1, 1, mdp.S)
    A = np.eye(mdp.S) - mdp.gamma * ref.policy_matrix_ref(ref.dense_kernel(mdp), pi)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluation, "DENSE_LU_MAX_STATES", 1)
        mp.setattr(evaluation, "MULTIGRID_COARSE_STATES", 8)
        ps = PolicySystem(mdp, pi)
        x = ps.solve(b, transpose=transpose)
        mg = ps._mg
    assert len(mg.sizes) >= 3
    x_ref = np.linalg.solve(A.T if transpose else A, b)
    ord_ = 1 if transpose else np.inf
    assert np.linalg.norm(b - (A.T if transpose else A) @ x, ord_) <= 1e-12 * np.linalg.norm(b, ord_) * (1 + 1e-3)
    assert np.linalg.norm(x - x_ref, ord_) <= 1e-12 * np.linalg.norm(b, ord_) / (1 - mdp.gamma) * 1.01 + 1e-13


@pytest.mark.parametrize("transpose", [False, True])
def test_multigrid_when_the_aggregation_stalls(transpose):
    """Mostly absorbing states leave pairwise aggregation almost nothing to pair: above the LU
    threshold the hierarchy stops there and its last level is smoothed instead of solved; the
    refined solve still meets its certificate."""
    S, A = 60, 2
    P = np.zeros((S, A, S))
    P[np.arange(S), :, np.arange(S)] = 1.0  # absorbing ...
    for s in range(5):  # ... but for a short two-way chain
        P[s, 0, s], P[s, 0, s + 1] = 0.0, 1.0
        P[s + 1, 1, s + 1], P[s + 1, 1, s] = 0.0, 1.0
    mdp = eb.TabularMDP(sp.csr_matrix(P.reshape(S * A, S)), gamma=0.95)
    pi = np.full((S, A), 0.5)
    b = np.random.default_rng(3).uniform(-1, 1, S)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluation, "DENSE_LU_MAX_STATES", 10)
        mp.setattr(evaluation, "MULTIGRID_COARSE_STATES", 4)
        mp.setattr(evaluation, "ELIMINATE_MIN_FRACTION", 2.0)  # no elimination: the absorbing states would go
        ps = PolicySystem(mdp, pi)
        x = ps.solve(b, transpose=transpose)
    assert ps._mg.coarse_inv.shape == (0, 0) and ps._mg.sizes[-1] > 10
    A_ = np.eye(S) - mdp.gamma * ref.policy_matrix_ref(P, pi)
    A_ = A_.T if transpose else A_
    ord_ = 1 if transpose else np.inf
    assert np.linalg.norm(b - A_ @ x, ord_) <= 1e-12 * np.linalg.norm(b, ord_) * (1 + 1e-3)


@pytest.mark.parametrize("transpose", [False, True])
def test_gmres_fallback_when_bicgstab_stops_short(transpose):
    """With BiCGSTAB capped at one iteration, the multigrid path falls back to GMRES with the
    same cycle and the refined answer still meets its certificate."""
    mdp = eb.envs.gridworld(n=15, actions=4, gamma=0.99, sparse=True).mdp
    rng = np.random.default_rng(2)
    pi = rng.dirichlet(np.ones(mdp.A), size=mdp.S)
    b = rng.uniform(-1, 1, mdp.S)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(evaluation, "DENSE_LU_MAX_STATES", 1)
        mp.setattr(evaluation, "MULTIGRID_COARSE_STATES", 8)
        mp.setattr(evaluation, "MULTIGRID_MAXITER", 1)
        ps = PolicySystem(mdp, pi)
        x = ps.solve(b, transpose=transpose)
    assert ps._mg.iterations and set(ps._mg.iterations) == {1}  # every BiCGSTAB run stopped short
    A = np.eye(mdp.S) - mdp.gamma * ref.policy_matrix_ref(ref.dense_kernel(mdp), pi)
    A = A.T if transpose else A
    ord_ = 1 if transpose else np.inf
    assert np.linalg.norm(b - A @ x, ord_) <= 1e-12 * np.linalg.norm(b, ord_) * (1 + 1e-3)
