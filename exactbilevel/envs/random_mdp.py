"""Random MDPs with Dirichlet(1) transition rows (docs/theory.rst, "Rates and verdicts")."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._validation import check_gamma, check_int, is_integer
from ..mdp import TabularMDP

__all__ = ["random_mdp"]


def _check_sparse_flag(sparse):
    if sparse is not None and not isinstance(sparse, (bool, np.bool_)):
        raise TypeError(
            f"sparse must be None (automatic), True (CSR) or False (dense), got {type(sparse).__name__}"
        )
    return sparse


def _finish(P, gamma, rho, sparse):
    """``TabularMDP`` from a scipy sparse ``(S*A, S)`` kernel, kept CSR if ``sparse`` else densified.

    Shared by the environment builders; duplicate entries are summed.
    """
    mdp = TabularMDP(P, gamma, rho)
    return mdp if sparse else mdp.to_dense()


def _rng(seed):
    if isinstance(seed, np.random.Generator):
        return seed
    if not is_integer(seed):
        raise TypeError(f"seed must be an int or a numpy.random.Generator, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    return np.random.default_rng(int(seed))


def _subsets(rng, rows, S, k):
    """``(rows, k)`` sorted column indices, each row a uniform k-subset of ``range(S)``.

    Two exact samplers, whichever is cheaper: Floyd's algorithm, vectorized over
    rows, costs ``O(rows * k^2)``; the k smallest of S i.i.d. uniform keys costs
    ``O(rows * S)``.
    """
    if k == S:
        return np.broadcast_to(np.arange(S), (rows, S))
    if k * k > S:
        keys = rng.random((rows, S))
        return np.sort(np.argpartition(keys, k - 1, axis=1)[:, :k], axis=1)
    # Floyd: for j = S-k .. S-1 draw t uniform in [0, j]; take t, or j if t is already taken.
    chosen = np.empty((rows, k), dtype=np.int64)
    for i, j in enumerate(range(S - k, S)):
        t = rng.integers(0, j + 1, size=rows)
        taken = (chosen[:, :i] == t[:, None]).any(axis=1)
        chosen[:, i] = np.where(taken, j, t)
    return np.sort(chosen, axis=1)


def random_mdp(S, A, gamma=0.9, successors=None, seed=0, sparse=None, rho=None):
    """A random MDP whose rows ``P(. | s, a)`` are independent Dirichlet(1) draws.

    With ``successors=None`` each row is Dirichlet(1, ..., 1) over all S states.
    With ``successors=k`` each row first draws k distinct next states uniformly
    (without replacement), then Dirichlet(1) weights over them, so every row has
    exactly k candidate successors (a weight can underflow to 0 only with
    negligible probability).  Dirichlet(1) weights are drawn as normalized
    i.i.d. Exp(1) variables.  ``successors=S`` gives the same MDP as ``None``.

    Parameters
    ----------
    S, A : int
        Numbers of states and actions, >= 1.
    gamma : float
        Discount in [0, 1).
    successors : int, optional
        Number k of possible next states per (s, a), 1 <= k <= S.
    seed : int or numpy.random.Generator
        The same int gives the same MDP; a Generator is advanced.
    sparse : bool, optional
        CSR ``(S*A, S)`` storage if True, dense ``(S, A, S)`` if False; None
        means sparse exactly when ``successors`` is given.
    rho : array_like of shape (S,), optional
        Initial distribution; uniform when None.

    Returns
    -------
    TabularMDP
    """
    S = check_int("S", S, minimum=1)
    A = check_int("A", A, minimum=1)
    gamma = check_gamma(gamma)
    if successors is None:
        k = S
    else:
        k = check_int("successors", successors, minimum=1)
        if k > S:
            raise ValueError(f"successors must be <= S = {S} (distinct next states), got {k}")
    sparse = _check_sparse_flag(sparse)
    if sparse is None:
        sparse = successors is not None
    rng = _rng(seed)
    rows = S * A
    indices = _subsets(rng, rows, S, k)
    weights = rng.standard_exponential((rows, k))
    weights /= weights.sum(axis=1, keepdims=True)
    if k == S and not sparse:  # rows over all states: the weights are the dense kernel
        return TabularMDP(weights.reshape(S, A, S), gamma, rho)
    P = sp.csr_matrix(
        (weights.ravel(), indices.ravel(), np.arange(0, rows * k + 1, k)), shape=(rows, S)
    )
    return _finish(P, gamma, rho, sparse)
