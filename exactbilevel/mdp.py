"""The tabular MDP model.

A :class:`TabularMDP` holds what never depends on the upper-level variable x:
the transition kernel ``P[s, a, s'] = P(s' | s, a)``, the discount ``gamma``
and the initial distribution ``rho``.  Rewards are passed separately, as
``(S, A)`` arrays, to every solver (spec section 1).

Two storage forms are accepted and kept as given:

* dense, a float64 array of shape ``(S, A, S)``;
* sparse, a scipy.sparse CSR matrix of shape ``(S * A, S)`` whose row
  ``s * A + a`` is ``P(. | s, a)``.

The object is immutable: its arrays are copies marked read-only.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from . import _stencil_kernels
from ._validation import as_float_array, check_gamma

__all__ = ["TabularMDP", "ROW_SUM_TOL"]

#: Tolerance on |sum_s' P(s'|s,a) - 1| and |sum_s rho(s) - 1|.
ROW_SUM_TOL = 1e-10


def _first_bad_row(sums, A):
    bad = int(np.flatnonzero(np.abs(sums - 1.0) > ROW_SUM_TOL)[0])
    return bad // A, bad % A, float(sums[bad])


def _pack(csr, S, A):
    """Compact copy of the CSR arrays for the sweep kernel (see TabularMDP.packed)."""
    indptr, indices, data = csr
    rows_state = np.repeat(np.arange(S, dtype=np.int64), np.diff(indptr).reshape(S, A).sum(axis=1))
    offsets = indices.astype(np.int64) - rows_state
    relative = bool(offsets.size == 0 or np.abs(offsets).max() <= np.iinfo(np.int16).max)
    cols = offsets.astype(np.int16) if relative else indices
    table, codes = np.unique(data, return_inverse=True)
    if table.size <= 256:
        codes = codes.astype(np.uint8)
    else:
        table, codes = data, np.empty(0, dtype=np.uint8)
    for arr in (cols, codes, table):
        arr.setflags(write=False)
    return indptr, cols, relative, codes, table


#: States per chunk of the stencil form (the unit of parallel work of its kernels).
STENCIL_CHUNK = 512

#: The stencil form is built when runs of states with the same rows (up to the
#: shift) are this long on average: on the 1000 x 1000 GridWorld they are 333
#: long, and its sweep takes 5 ms against 15 ms on the packed CSR.
STENCIL_MIN_RUN = 16


def _stencil(packed, S, A):
    """The stencil form of a packed CSR (see TabularMDP.stencil), or None when
    the runs are short or the chunks' padded rows (A x the longest row each)
    would hold more entries than the CSR itself."""
    indptr = packed[0]
    starts, runs = _stencil_kernels.stencil_starts(*packed, A, STENCIL_CHUNK)
    longest = int(np.diff(indptr).max()) if indptr.size > 1 else 0
    if runs * STENCIL_MIN_RUN > S or (starts.size - 1) * A * longest > indptr[-1]:
        return None
    form = (starts, *_stencil_kernels.stencil_fill(*packed, A, starts))
    for arr in form:
        arr.setflags(write=False)
    return form


class TabularMDP:
    """A finite discounted MDP ``(S, A, P, gamma, rho)``.

    Parameters
    ----------
    P : array_like of shape (S, A, S), or scipy.sparse matrix of shape (S*A, S)
        ``P[s, a, s'] = P(s' | s, a)``.  Entries must be finite and >= 0 and every
        row must sum to 1 within ``ROW_SUM_TOL = 1e-10``.  A sparse matrix of any
        scipy format is converted to CSR with duplicate entries summed.
    gamma : float
        Discount factor in [0, 1).
    rho : array_like of shape (S,), optional
        Initial distribution; uniform when None.  Must be >= 0 and sum to 1.

    Attributes
    ----------
    S, A : int
        Numbers of states and actions.
    is_sparse : bool
        True when P is stored as CSR ``(S*A, S)``.
    P : ndarray (S, A, S) or scipy.sparse.csr_matrix (S*A, S)
        Read-only transition kernel.
    """

    __slots__ = ("_P", "_gamma", "_rho", "_S", "_A", "_csr", "_packed", "_stencil", "_row_sums")

    def __init__(self, P, gamma, rho=None):
        gamma = check_gamma(gamma)
        if sp.issparse(P):
            P, csr, S, A, sums = self._check_sparse(P)
        else:
            P = as_float_array("P", P, shape=(None, None, None), nonneg=True).copy()
            S, A, S2 = P.shape
            if S == 0 or A == 0:
                raise ValueError(f"P must have at least one state and one action, got shape {P.shape}")
            if S2 != S:
                raise ValueError(
                    f"P must have shape (S, A, S) with the same S first and last, got {P.shape}"
                )
            sums = P.sum(axis=2).ravel()
            if np.any(np.abs(sums - 1.0) > ROW_SUM_TOL):
                s, a, tot = _first_bad_row(sums, A)
                raise ValueError(
                    f"P[{s}, {a}, :] sums to {tot!r}, not 1 (tolerance {ROW_SUM_TOL}); "
                    "every P[s, a, :] must be a probability distribution over next states"
                )
            P.setflags(write=False)
            csr = None
        if rho is None:
            rho = np.full(S, 1.0 / S)
        else:
            rho = as_float_array("rho", rho, shape=(S,), nonneg=True).copy()
            if abs(rho.sum() - 1.0) > ROW_SUM_TOL:
                raise ValueError(
                    f"rho sums to {rho.sum()!r}, not 1 (tolerance {ROW_SUM_TOL}); "
                    "pass a probability distribution over the S states, or None for uniform"
                )
        rho.setflags(write=False)
        sums = sums.reshape(S, A)
        sums.setflags(write=False)
        self._row_sums = sums
        self._P, self._gamma, self._rho, self._S, self._A, self._csr = P, gamma, rho, S, A, csr
        self._packed = None if csr is None else _pack(csr, S, A)
        self._stencil = None if csr is None else _stencil(self._packed, S, A)

    @staticmethod
    def _check_sparse(P):
        rows, S = P.shape
        if S == 0 or rows == 0:
            raise ValueError(f"P must have at least one state and one action, got shape {P.shape}")
        if rows % S:
            raise ValueError(
                f"sparse P must have shape (S*A, S) with row s*A + a holding P(.|s, a); "
                f"got shape {P.shape}, whose row count is not a multiple of S = {S}"
            )
        A = rows // S
        if P.format == "csr":
            indptr = np.asarray(P.indptr)
            indices = np.asarray(P.indices)
            if (
                indptr.ndim != 1
                or indptr.size != rows + 1
                or indptr[0] != 0
                or np.any(np.diff(indptr) < 0)
                or indptr[-1] > indices.size
            ):
                raise ValueError("sparse P has a malformed CSR indptr; build it with scipy.sparse.csr_matrix")
            used = indices[: indptr[-1]]
            if used.size and (used.min() < 0 or used.max() >= S):
                bad = int(np.flatnonzero((used < 0) | (used >= S))[0])
                row = int(np.searchsorted(indptr, bad, side="right") - 1)
                raise ValueError(
                    f"sparse P has column index {int(used[bad])} out of range [0, {S}) in row {row} "
                    f"(s={row // A}, a={row % A}); column indices must be next states"
                )
        if P.dtype.kind not in "biuf":
            raise TypeError(f"P must have a real numeric dtype, got {P.dtype}")
        P = sp.csr_matrix(P, dtype=np.float64, copy=True)
        P.sum_duplicates()
        data = P.data
        if not np.all(np.isfinite(data)):
            raise ValueError("sparse P has a NaN or infinite entry; every entry must be finite")
        if data.size and data.min() < 0:
            raise ValueError(f"sparse P has a negative entry {data.min()!r}; every entry must be >= 0")
        sums = np.asarray(P.sum(axis=1)).ravel()
        if np.any(np.abs(sums - 1.0) > ROW_SUM_TOL):
            s, a, tot = _first_bad_row(sums, A)
            raise ValueError(
                f"row {s * A + a} of sparse P, P(.|s={s}, a={a}), sums to {tot!r}, not 1 "
                f"(tolerance {ROW_SUM_TOL}); every row must be a probability distribution"
            )
        for arr in (P.indptr, P.indices, P.data):
            arr.setflags(write=False)
        return P, (P.indptr, P.indices, P.data), S, A, sums

    # -- read-only views ------------------------------------------------------
    @property
    def P(self):
        return self._P

    @property
    def gamma(self) -> float:
        return self._gamma

    @property
    def rho(self) -> np.ndarray:
        return self._rho

    @property
    def S(self) -> int:
        return self._S

    @property
    def A(self) -> int:
        return self._A

    @property
    def is_sparse(self) -> bool:
        return self._csr is not None

    @property
    def csr(self):
        """``(indptr, indices, data)`` of the CSR form (read-only, shared with ``P``); None when dense."""
        return self._csr

    @property
    def row_sums(self):
        """``sum_s' P(s' | s, a)``, shape (S, A), read-only: each within
        ``ROW_SUM_TOL`` of 1 (the constructor checks it).  ``Q(V + c) = Q(V) +
        gamma c row_sums`` holds for a constant c; :func:`exactbilevel.solve`
        uses it to return Q at a shifted V without another sweep."""
        return self._row_sums

    @property
    def packed(self):
        """The CSR form as the sparse sweep kernel reads it (None when dense):
        ``(indptr, cols, relative, codes, table)``.  When every column lies
        within 32767 of its row's state, ``cols`` are int16 offsets from the
        state (``relative`` True), else the int32 columns.  When P has at most
        256 distinct values, ``codes`` are uint8 indices into ``table``; else
        ``codes`` is empty and ``table`` is the data array itself."""
        return self._packed

    @property
    def stencil(self):
        """The stencil form of a sparse P whose states come in runs with the same
        rows up to the shift by s (grids, chains, queues), else None:
        ``(starts, off, w, uoff, umap, nu)`` with ``P(s + off[c, a, k] | s, a) =
        w[c, a, k]`` for the states ``starts[c] <= s < starts[c + 1]`` of chunk c
        (see :mod:`exactbilevel._stencil_kernels`).  Built when the runs average
        ``STENCIL_MIN_RUN`` states or more; the sweeps and the policy backups of
        modified policy iteration then read it instead of the CSR."""
        return self._stencil

    def __setattr__(self, name, value):
        if name in TabularMDP.__slots__ and not hasattr(self, name):
            object.__setattr__(self, name, value)
        else:
            raise AttributeError("TabularMDP is immutable; build a new one (e.g. with .replace())")

    def replace(self, *, gamma=None, rho=None):
        """A copy with another ``gamma`` and/or ``rho`` (the transitions are shared)."""
        return TabularMDP(
            self._P,
            self._gamma if gamma is None else gamma,
            self._rho if rho is None else rho,
        )

    def to_dense(self) -> "TabularMDP":
        """The same MDP with a dense ``(S, A, S)`` kernel."""
        if not self.is_sparse:
            return self
        return TabularMDP(self._P.toarray().reshape(self._S, self._A, self._S), self._gamma, self._rho)

    def to_sparse(self) -> "TabularMDP":
        """The same MDP with a CSR ``(S*A, S)`` kernel."""
        if self.is_sparse:
            return self
        return TabularMDP(sp.csr_matrix(self._P.reshape(self._S * self._A, self._S)), self._gamma, self._rho)

    def __repr__(self):
        kind = f"sparse, nnz={self._P.nnz}" if self.is_sparse else "dense"
        return f"TabularMDP(S={self._S}, A={self._A}, gamma={self._gamma}, {kind})"
