"""Input validation, one named test per error (in the style of QuantEcon's tests), and immutability.

Every error must be a TypeError (wrong kind of object) or a ValueError (right kind,
wrong value) whose message names the offending argument.
"""

import math

import numpy as np
import pytest
import scipy.sparse as sp

import exactbilevel as eb

EPS = np.finfo(float).eps


def kernel(S=3, A=2, seed=0):
    rng = np.random.default_rng(seed)
    P = rng.uniform(size=(S, A, S))
    return P / P.sum(axis=2, keepdims=True)


def csr(P):
    S, A, _ = P.shape
    return sp.csr_matrix(P.reshape(S * A, S))


@pytest.fixture
def mdp():
    return eb.TabularMDP(kernel(), 0.9)


@pytest.fixture
def r():
    return np.arange(6.0).reshape(3, 2)


@pytest.fixture
def pi():
    return np.full((3, 2), 0.5)


# --------------------------------------------------------------------------- P: shapes


def test_P_two_dimensional_dense():
    with pytest.raises(ValueError, match=r"\bP\b"):
        eb.TabularMDP(np.full((3, 3), 1 / 3), 0.9)


def test_P_four_dimensional_dense():
    with pytest.raises(ValueError, match=r"\bP\b"):
        eb.TabularMDP(np.ones((2, 1, 2, 1)) / 2, 0.9)


def test_P_last_axis_not_S():
    with pytest.raises(ValueError, match=r"\bP\b"):
        eb.TabularMDP(np.full((3, 2, 4), 0.25), 0.9)


def test_P_ragged_nested_list():
    with pytest.raises((TypeError, ValueError), match=r"\bP\b"):
        eb.TabularMDP([[[1.0]], [[0.5, 0.5]]], 0.9)


def test_P_zero_states():
    with pytest.raises(ValueError, match=r"\bP\b"):
        eb.TabularMDP(np.zeros((0, 2, 0)), 0.9)


def test_P_zero_actions():
    with pytest.raises(ValueError, match=r"\bP\b"):
        eb.TabularMDP(np.zeros((3, 0, 3)), 0.9)


def test_P_sparse_zero_states():
    with pytest.raises(ValueError, match=r"\bP\b"):
        eb.TabularMDP(sp.csr_matrix((0, 0)), 0.9)


def test_P_sparse_zero_actions():
    with pytest.raises(ValueError, match=r"\bP\b"):
        eb.TabularMDP(sp.csr_matrix((0, 3)), 0.9)


def test_P_sparse_rows_not_multiple_of_S():
    with pytest.raises(ValueError, match=r"\bP\b"):
        eb.TabularMDP(sp.csr_matrix(np.full((5, 2), 0.5)), 0.9)


# --------------------------------------------------------------------------- P: dtypes


def test_P_complex_dense():
    with pytest.raises(TypeError, match=r"\bP\b"):
        eb.TabularMDP(kernel().astype(complex), 0.9)


def test_P_complex_sparse():
    with pytest.raises(TypeError, match=r"\bP\b"):
        eb.TabularMDP(csr(kernel()).astype(complex), 0.9)


def test_P_object_dtype():
    with pytest.raises(TypeError, match=r"\bP\b"):
        eb.TabularMDP(kernel().astype(object), 0.9)


def test_P_string_array():
    with pytest.raises(TypeError, match=r"\bP\b"):
        eb.TabularMDP(np.array([[["1.0"]]]), 0.9)


def test_P_plain_string():
    with pytest.raises(TypeError, match=r"\bP\b"):
        eb.TabularMDP("P", 0.9)


def test_P_none():
    with pytest.raises(TypeError, match=r"\bP\b"):
        eb.TabularMDP(None, 0.9)


def test_P_integer_and_bool_accepted():
    P = np.zeros((2, 1, 2), dtype=int)
    P[0, 0, 1] = P[1, 0, 0] = 1
    assert eb.TabularMDP(P, 0.5).P.dtype == np.float64
    assert eb.TabularMDP(P.astype(bool), 0.5).P.dtype == np.float64
    assert eb.TabularMDP(sp.csr_matrix(P.reshape(2, 2)), 0.5).P.dtype == np.float64


# --------------------------------------------------------------------------- P: values


def test_P_row_not_summing_to_one_dense_names_s_a():
    P = kernel()
    P[1, 0] *= 1.01
    with pytest.raises(ValueError, match=r"P\[1, 0, :\]"):
        eb.TabularMDP(P, 0.9)


def test_P_row_not_summing_to_one_sparse_names_s_a():
    P = kernel()
    P[2, 1] *= 0.99
    with pytest.raises(ValueError, match=r"P.*s=2, a=1"):
        eb.TabularMDP(csr(P), 0.9)


def test_P_row_sum_within_tolerance_accepted():
    P = kernel()
    P[0, 0, 0] += 1e-12
    eb.TabularMDP(P, 0.9)


@pytest.mark.parametrize("form", [np.asarray, csr], ids=["dense", "sparse"])
def test_P_negative_entry(form):
    P = np.zeros((2, 1, 2))
    P[0, 0] = [1.5, -0.5]
    P[1, 0, 1] = 1.0
    with pytest.raises(ValueError, match=r"\bP\b"):
        eb.TabularMDP(form(P), 0.9)


def test_P_nan_entry_dense():
    P = kernel()
    P[0, 1, 2] = np.nan
    with pytest.raises(ValueError, match=r"\bP\b"):
        eb.TabularMDP(P, 0.9)


def test_P_nan_entry_sparse():
    P = kernel()
    M = csr(P)
    M.data[3] = np.nan
    with pytest.raises(ValueError, match=r"\bP\b"):
        eb.TabularMDP(M, 0.9)


def test_P_inf_entry_dense():
    P = kernel()
    P[2, 0, 0] = np.inf
    with pytest.raises(ValueError, match=r"\bP\b"):
        eb.TabularMDP(P, 0.9)


def test_P_inf_entry_sparse():
    M = csr(kernel())
    M.data[0] = -np.inf
    with pytest.raises(ValueError, match=r"\bP\b"):
        eb.TabularMDP(M, 0.9)


def _csr_with_index(bad):
    """A (2*1, 2) CSR kernel whose second stored entry has column index ``bad``.

    Built valid and then edited in place, so scipy's own constructor checks
    (which may or may not catch the index) are bypassed.
    """
    M = sp.csr_matrix((np.ones(2), np.array([1, 0]), np.array([0, 1, 2])), shape=(2, 2))
    M.indices[1] = bad
    return M


def test_P_sparse_column_index_too_large():
    with pytest.raises(ValueError, match=r"\bP\b"):
        eb.TabularMDP(_csr_with_index(7), 0.9)


def test_P_sparse_column_index_negative():
    with pytest.raises(ValueError, match=r"\bP\b"):
        eb.TabularMDP(_csr_with_index(-1), 0.9)


def test_P_sparse_column_index_via_constructor():
    """The (data, indices, indptr) constructor with an out-of-range index: whichever of scipy
    and exactbilevel rejects it, the error is a ValueError, and ours names P."""
    try:
        M = sp.csr_matrix((np.ones(2), np.array([1, 5]), np.array([0, 1, 2])), shape=(2, 2))
    except ValueError:
        return  # scipy rejected it itself
    with pytest.raises(ValueError, match=r"\bP\b"):
        eb.TabularMDP(M, 0.9)


def test_P_sparse_malformed_indptr():
    M = csr(kernel())
    M.indptr[2] = M.indptr[1] - 1  # decreasing
    with pytest.raises(ValueError, match=r"\bP\b"):
        eb.TabularMDP(M, 0.9)


def test_P_sparse_other_formats_and_duplicates_accepted():
    P = kernel()
    dense = eb.TabularMDP(P, 0.9)
    for M in (sp.coo_matrix(P.reshape(6, 3)), sp.csc_matrix(P.reshape(6, 3)), sp.lil_matrix(P.reshape(6, 3))):
        m = eb.TabularMDP(M, 0.9)
        assert m.is_sparse
        np.testing.assert_array_equal(m.P.toarray().reshape(3, 2, 3), dense.P)
    # duplicate (row, col) pairs in COO input are summed
    rows = np.repeat(np.arange(6), 6)
    cols = np.tile(np.repeat(np.arange(3), 2), 6)
    vals = np.repeat(P.reshape(6, 3), 2, axis=1).ravel() / 2
    m = eb.TabularMDP(sp.coo_matrix((vals, (rows, cols)), shape=(6, 3)), 0.9)
    np.testing.assert_allclose(m.P.toarray().reshape(3, 2, 3), P, rtol=1e-15)


# --------------------------------------------------------------------------- gamma


@pytest.mark.parametrize("gamma", [1.0, 1.5, -0.1, -1e-300])
def test_gamma_outside_unit_interval(gamma):
    with pytest.raises(ValueError, match=r"^gamma\b"):
        eb.TabularMDP(kernel(), gamma)


@pytest.mark.parametrize("gamma", [np.nan, np.inf, -np.inf])
def test_gamma_not_finite(gamma):
    with pytest.raises(ValueError, match=r"^gamma\b"):
        eb.TabularMDP(kernel(), gamma)


@pytest.mark.parametrize("gamma", ["0.9", None, 0.9 + 0j, True, [0.9]])
def test_gamma_not_a_real_number(gamma):
    with pytest.raises(TypeError, match=r"^gamma\b"):
        eb.TabularMDP(kernel(), gamma)


def test_gamma_numpy_scalars_and_ints_accepted():
    assert eb.TabularMDP(kernel(), np.float32(0.5)).gamma == 0.5
    assert eb.TabularMDP(kernel(), 0).gamma == 0.0
    assert isinstance(eb.TabularMDP(kernel(), np.float64(0.25)).gamma, float)


def test_gamma_in_replace():
    with pytest.raises(ValueError, match=r"^gamma\b"):
        eb.TabularMDP(kernel(), 0.9).replace(gamma=1.0)


# --------------------------------------------------------------------------- rho


def test_rho_not_summing_to_one():
    with pytest.raises(ValueError, match=r"^rho\b"):
        eb.TabularMDP(kernel(), 0.9, rho=[0.5, 0.4, 0.0])


def test_rho_wrong_length():
    with pytest.raises(ValueError, match=r"^rho\b"):
        eb.TabularMDP(kernel(), 0.9, rho=[0.5, 0.5])


def test_rho_wrong_ndim():
    with pytest.raises(ValueError, match=r"^rho\b"):
        eb.TabularMDP(kernel(), 0.9, rho=np.full((3, 1), 1 / 3))


def test_rho_negative():
    with pytest.raises(ValueError, match=r"^rho\b"):
        eb.TabularMDP(kernel(), 0.9, rho=[1.2, -0.2, 0.0])


def test_rho_nan():
    with pytest.raises(ValueError, match=r"^rho\b"):
        eb.TabularMDP(kernel(), 0.9, rho=[np.nan, 0.5, 0.5])


def test_rho_complex():
    with pytest.raises(TypeError, match=r"^rho\b"):
        eb.TabularMDP(kernel(), 0.9, rho=np.full(3, 1 / 3, dtype=complex))


def test_rho_default_uniform_and_zeros_allowed():
    assert np.array_equal(eb.TabularMDP(kernel(), 0.9).rho, np.full(3, 1 / 3))
    eb.TabularMDP(kernel(), 0.9, rho=[0.0, 1.0, 0.0])


# --------------------------------------------------------------------------- mdp argument


@pytest.mark.parametrize("fn", [eb.q_values, eb.bellman_operator])
def test_mdp_not_a_TabularMDP_bellman(fn, r):
    with pytest.raises(TypeError, match=r"^mdp\b"):
        fn(kernel(), r, np.zeros(3))


def test_mdp_not_a_TabularMDP_solve(r):
    with pytest.raises(TypeError, match=r"^mdp\b"):
        eb.solve(kernel(), r)


def test_mdp_not_a_TabularMDP_evaluate(r, pi):
    with pytest.raises(TypeError, match=r"^mdp\b"):
        eb.evaluate(kernel(), r, pi)


def test_mdp_not_a_TabularMDP_occupancy(pi):
    with pytest.raises(TypeError, match=r"^mdp\b"):
        eb.occupancy(kernel(), pi)


# --------------------------------------------------------------------------- tau


@pytest.mark.parametrize("tau", [-1e-12, -1.0, np.nan, np.inf])
def test_tau_negative_or_not_finite(mdp, r, pi, tau):
    for call in (
        lambda: eb.solve(mdp, r, tau=tau),
        lambda: eb.bellman_operator(mdp, r, np.zeros(3), tau),
        lambda: eb.evaluate(mdp, r, pi, tau=tau),
        lambda: eb.policy_from_q(r, tau),
    ):
        with pytest.raises(ValueError, match=r"^tau\b"):
            call()


@pytest.mark.parametrize("tau", ["0.1", None, 1j])
def test_tau_not_a_number(mdp, r, tau):
    with pytest.raises(TypeError, match=r"^tau\b"):
        eb.solve(mdp, r, tau=tau)
    with pytest.raises(TypeError, match=r"^tau\b"):
        eb.policy_from_q(r, tau)


# --------------------------------------------------------------------------- r, V, V0, Q


@pytest.mark.parametrize("shape", [(3,), (2, 3), (3, 3), (3, 2, 1)])
def test_r_wrong_shape(mdp, shape):
    bad = np.zeros(shape)
    for call in (
        lambda: eb.solve(mdp, bad),
        lambda: eb.q_values(mdp, bad, np.zeros(3)),
        lambda: eb.bellman_operator(mdp, bad, np.zeros(3)),
        lambda: eb.evaluate(mdp, bad, np.full((3, 2), 0.5)),
    ):
        with pytest.raises(ValueError, match=r"^r\b"):
            call()


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_r_not_finite(mdp, r, value):
    r = r.copy()
    r[1, 1] = value
    for call in (
        lambda: eb.solve(mdp, r),
        lambda: eb.q_values(mdp, r, np.zeros(3)),
        lambda: eb.evaluate(mdp, r, np.full((3, 2), 0.5)),
    ):
        with pytest.raises(ValueError, match=r"^r\b"):
            call()


def test_r_complex(mdp, r):
    with pytest.raises(TypeError, match=r"^r\b"):
        eb.solve(mdp, r.astype(complex))


def test_V_wrong_shape(mdp, r):
    with pytest.raises(ValueError, match=r"^V\b"):
        eb.bellman_operator(mdp, r, np.zeros(4))
    with pytest.raises(ValueError, match=r"^V\b"):
        eb.q_values(mdp, r, np.zeros((3, 1)))


def test_V_nan(mdp, r):
    with pytest.raises(ValueError, match=r"^V\b"):
        eb.bellman_operator(mdp, r, np.array([0.0, np.nan, 0.0]))


@pytest.mark.parametrize("V0", [np.zeros(4), np.zeros((3, 1)), np.zeros(())])
def test_V0_wrong_shape(mdp, r, V0):
    with pytest.raises(ValueError, match=r"^V0\b"):
        eb.solve(mdp, r, V0=V0)


def test_V0_nan(mdp, r):
    with pytest.raises(ValueError, match=r"^V0\b"):
        eb.solve(mdp, r, V0=[0.0, np.inf, 0.0])


def test_Q_wrong_ndim_in_policy_from_q():
    with pytest.raises(ValueError, match=r"^Q\b"):
        eb.policy_from_q(np.zeros(3), 0.1)


def test_Q_empty_in_policy_from_q():
    with pytest.raises(ValueError, match=r"^Q\b"):
        eb.policy_from_q(np.zeros((0, 2)), 0.1)
    with pytest.raises(ValueError, match=r"^Q\b"):
        eb.policy_from_q(np.zeros((2, 0)), 0.1)


def test_Q_nan_in_policy_from_q():
    with pytest.raises(ValueError, match=r"^Q\b"):
        eb.policy_from_q(np.array([[0.0, np.nan]]), 0.1)


# --------------------------------------------------------------------------- solve: method, tol, max_iter


def test_method_unknown_name(mdp, r):
    with pytest.raises(ValueError, match=r"^method\b"):
        eb.solve(mdp, r, method="simplex")


def test_method_not_a_string(mdp, r):
    with pytest.raises(TypeError, match=r"^method\b"):
        eb.solve(mdp, r, method=1)


@pytest.mark.parametrize("tol", [0.0, -1e-10, np.nan])
def test_tol_not_positive(mdp, r, tol):
    with pytest.raises(ValueError, match=r"^tol\b"):
        eb.solve(mdp, r, tol=tol)


def test_tol_not_a_number(mdp, r):
    with pytest.raises(TypeError, match=r"^tol\b"):
        eb.solve(mdp, r, tol="1e-10")


@pytest.mark.parametrize("gamma,tau", [(0.0, 0.0), (0.9, 0.0), (0.99, 1.0)])
def test_tol_below_float64_floor(r, gamma, tau):
    """The floor documented in the solvers module: 8 eps (|r| + |V| + tau log A)/(1 - gamma)
    with |V| = (|r| + tau log A)/(1 - gamma)."""
    mdp = eb.TabularMDP(kernel(), gamma)
    ent = tau * math.log(2)
    r_abs = np.abs(r).max()
    floor = 8 * EPS * (r_abs + (r_abs + ent) / (1 - gamma) + ent) / (1 - gamma)
    with pytest.raises(ValueError, match=r"^tol\b"):
        eb.solve(mdp, r, tau=tau, tol=1e-300)
    with pytest.raises(ValueError, match=r"^tol\b"):
        eb.solve(mdp, r, tau=tau, tol=0.9 * floor)
    # just above the floor is accepted (it may or may not converge)
    res = eb.solve(mdp, r, tau=tau, tol=1.1 * floor, raise_on_failure=False)
    assert isinstance(res, eb.SolveResult)


@pytest.mark.parametrize("max_iter", [0, -3])
def test_max_iter_not_positive(mdp, r, max_iter):
    with pytest.raises(ValueError, match=r"^max_iter\b"):
        eb.solve(mdp, r, max_iter=max_iter)


@pytest.mark.parametrize("max_iter", [2.5, "10", True])
def test_max_iter_not_an_int(mdp, r, max_iter):
    with pytest.raises(TypeError, match=r"^max_iter\b"):
        eb.solve(mdp, r, max_iter=max_iter)


# --------------------------------------------------------------------------- pi in evaluate / occupancy


def _both(mdp, r, pi):
    return (lambda: eb.evaluate(mdp, r, pi), lambda: eb.occupancy(mdp, pi))


def test_pi_row_not_summing_to_one(mdp, r):
    pi = np.full((3, 2), 0.5)
    pi[2] = [0.5, 0.4]
    for call in _both(mdp, r, pi):
        with pytest.raises(ValueError, match=r"pi\[2, :\]"):
            call()


def test_pi_negative_entry(mdp, r):
    pi = np.full((3, 2), 0.5)
    pi[0] = [1.5, -0.5]
    for call in _both(mdp, r, pi):
        with pytest.raises(ValueError, match=r"^pi\b"):
            call()


def test_pi_wrong_shape(mdp, r):
    for call in _both(mdp, r, np.full((2, 3), 1 / 3)):
        with pytest.raises(ValueError, match=r"^pi\b"):
            call()


def test_pi_nan(mdp, r):
    pi = np.full((3, 2), 0.5)
    pi[1, 0] = np.nan
    for call in _both(mdp, r, pi):
        with pytest.raises(ValueError, match=r"^pi\b"):
            call()


def test_pi_complex(mdp, r):
    for call in _both(mdp, r, np.full((3, 2), 0.5, dtype=complex)):
        with pytest.raises(TypeError, match=r"^pi\b"):
            call()


# --------------------------------------------------------------------------- immutability


def test_mdp_attributes_cannot_be_set(mdp):
    for name, value in [("gamma", 0.5), ("P", kernel()), ("rho", np.full(3, 1 / 3)), ("S", 4), ("new", 1)]:
        with pytest.raises(AttributeError):
            setattr(mdp, name, value)
    with pytest.raises(AttributeError):
        mdp._gamma = 0.5
    assert mdp.gamma == 0.9


def test_mdp_arrays_read_only_dense(mdp):
    with pytest.raises(ValueError):
        mdp.P[0, 0, 0] = 1.0
    with pytest.raises(ValueError):
        mdp.rho[0] = 1.0


def test_mdp_arrays_read_only_sparse():
    m = eb.TabularMDP(csr(kernel()), 0.9)
    with pytest.raises(ValueError):
        m.P.data[0] = 1.0
    for arr in m.csr:
        assert not arr.flags.writeable
    with pytest.raises(ValueError):
        m.rho[0] = 1.0


def test_mdp_sparse_structure_read_only():
    m = eb.TabularMDP(csr(kernel()), 0.9)
    assert not m.P.indices.flags.writeable
    assert not m.P.indptr.flags.writeable


def test_mdp_copies_callers_arrays():
    P = kernel()
    rho = np.full(3, 1 / 3)
    m = eb.TabularMDP(P, 0.9, rho)
    assert P.flags.writeable and rho.flags.writeable  # the caller's arrays are untouched
    assert not np.shares_memory(P, m.P) and not np.shares_memory(rho, m.rho)


def test_replace_and_conversions_keep_the_original(mdp):
    m2 = mdp.replace(gamma=0.5, rho=[1.0, 0.0, 0.0])
    assert (mdp.gamma, m2.gamma) == (0.9, 0.5)
    assert np.array_equal(mdp.rho, np.full(3, 1 / 3))
    sparse = mdp.to_sparse()
    assert sparse.is_sparse and not mdp.is_sparse
    np.testing.assert_array_equal(sparse.to_dense().P, mdp.P)
    assert sparse.to_sparse() is sparse and mdp.to_dense() is mdp
