"""The tabular MDP model.

A :class:`TabularMDP` holds what never depends on the upper-level variable x:
the transition kernel ``P[s, a, s'] = P(s' | s, a)``, the discount ``gamma``
and the initial distribution ``rho``.  Rewards are passed separately, as
``(S, A)`` arrays, to every solver (docs/theory.rst, "Objects and shapes").

Two storage forms are accepted and kept as given:

* dense, a float64 array of shape ``(S, A, S)``;
* sparse, a scipy.sparse CSR matrix of shape ``(S * A, S)`` whose row
  ``s * A + a`` is ``P(. | s, a)``.  Any scipy.sparse format (CSR, CSC, COO,
  BSR, DIA, LIL, DOK; sparse arrays and sparse matrices; int32 or int64
  indices; unsorted indices; duplicates, which are summed) is accepted and
  converted to a new CSR.  The conversion reads the stored index arrays
  itself and checks every one against the shape first (scipy's own
  conversions may read outside the arrays of a malformed structure, such as
  a CSC matrix with an out-of-range row index, which scipy accepts), so a
  malformed structure is a ``ValueError`` naming P.

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


_SPARSE_FORMATS = ("csr", "csc", "coo", "bsr", "dia", "lil", "dok")


def _bad_sparse(what):
    return ValueError(f"sparse P {what}; build P with scipy.sparse (e.g. scipy.sparse.csr_array) "
                      "and do not edit its index arrays in place")


def _index_array(name, arr, size=None):
    """A stored index array of a sparse P, checked to be 1-D integers (of length ``size``)."""
    arr = np.asarray(arr)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        raise _bad_sparse(f"has {name} of dtype {arr.dtype} and shape {arr.shape}, "
                          "where a 1-D integer array is needed")
    if size is not None and arr.size != size:
        raise _bad_sparse(f"has {arr.size} {name} entries where its structure needs {size}")
    return arr


def _check_range(name, idx, n):
    """Every entry of the integer array ``idx`` in ``[0, n)`` (compared in idx's own dtype)."""
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        k = int(np.flatnonzero((idx < 0) | (idx >= n))[0])
        raise _bad_sparse(f"has {name} index {int(idx[k])} out of range [0, {n}) at stored entry {k}")


def _sparse_values(data, size):
    """The stored values of a sparse P as float64, with size ``size``."""
    data = np.asarray(data)
    if data.dtype.kind not in "biuf" and data.dtype != object:
        raise TypeError(f"P must have a real numeric dtype, got stored values of dtype {data.dtype}")
    try:
        data = np.asarray(data, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise TypeError("P must have real numeric entries; a stored value is not a real number") from None
    if data.size != size:
        raise _bad_sparse(f"has {data.size} stored values where its structure needs {size}")
    return data


def _compressed_parts(indptr, indices, data, major, minor, kind):
    """``(indptr, indices, values)`` of a CSR (``kind`` "column": the indices are
    columns) or CSC (``kind`` "row") structure with ``major`` rows (columns),
    checked in full and cut to the ``indptr[-1]`` entries it uses."""
    indptr = _index_array("indptr", indptr, major + 1)
    indices = _index_array("indices", indices)
    if indptr[0] != 0 or np.any(indptr[1:] < indptr[:-1]):
        raise _bad_sparse("has a malformed indptr (it must start at 0 and never decrease)")
    nnz = int(indptr[-1])
    if nnz > indices.size or nnz > np.asarray(data).size:
        raise _bad_sparse(f"has indptr ending at {nnz}, beyond its {indices.size} stored indices "
                          f"or {np.asarray(data).size} stored values")
    indices = indices[:nnz]
    _check_range(kind, indices, minor)
    data = _sparse_values(np.asarray(data).ravel()[:nnz], nnz)
    return indptr, indices, data


def _compressed_triplets(indptr, indices, data, major, minor, kind):
    """(major index, minor index, value) arrays of a structure of :func:`_compressed_parts`."""
    indptr, indices, data = _compressed_parts(indptr, indices, data, major, minor, kind)
    majors = np.repeat(np.arange(major, dtype=np.int64), np.diff(indptr).astype(np.int64))
    return majors, indices.astype(np.int64), data


def _sparse_triplets(P):
    """``(row, col, value)`` arrays (int64, int64, float64) of the stored entries of a
    scipy.sparse P of any format, read from its raw arrays and checked in full
    against its shape (scipy's own conversions may read out of bounds on
    malformed structures, and then crash the process).  Duplicates are kept."""
    fmt = getattr(P, "format", None)
    if fmt not in _SPARSE_FORMATS:
        raise TypeError(f"sparse P has format {fmt!r}; pass one of {_SPARSE_FORMATS} or a dense array")
    M, N = P.shape
    if fmt == "csr":
        return _compressed_triplets(P.indptr, P.indices, P.data, M, N, "column")
    if fmt == "csc":
        cols, rows, data = _compressed_triplets(P.indptr, P.indices, P.data, N, M, "row")
        return rows, cols, data
    if fmt == "coo":
        coords = getattr(P, "coords", None)
        row, col = (P.row, P.col) if coords is None else coords
        data = np.asarray(P.data)
        row = _index_array("row", row, data.size)
        col = _index_array("col", col, data.size)
        _check_range("row", row, M)
        _check_range("column", col, N)
        return row.astype(np.int64), col.astype(np.int64), _sparse_values(data, data.size)
    if fmt == "bsr":
        R, C = P.blocksize
        data = np.asarray(P.data)
        if R < 1 or C < 1 or M % R or N % C or data.ndim != 3 or data.shape[1:] != (R, C):
            raise _bad_sparse(f"has blocks of shape {data.shape[1:]} (blocksize {(R, C)}) that do not tile "
                              f"its shape {P.shape}")
        brow, bcol, _ = _compressed_triplets(P.indptr, P.indices, np.empty(data.shape[0]), M // R, N // C,
                                             "column")
        nb = brow.size
        vals = _sparse_values(data[:nb], nb * R * C)
        ii, jj = np.meshgrid(np.arange(R), np.arange(C), indexing="ij")
        rows = (brow[:, None] * R + ii.ravel()[None, :]).ravel()
        cols = (bcol[:, None] * C + jj.ravel()[None, :]).ravel()
        return rows, cols, vals
    if fmt == "dia":
        data = np.asarray(P.data)
        offsets = _index_array("offsets", P.offsets)
        if data.ndim != 2 or data.shape[0] != offsets.size:
            raise _bad_sparse(f"has diagonals of shape {data.shape} for {offsets.size} offsets")
        L = min(data.shape[1], N)
        cols = np.broadcast_to(np.arange(L, dtype=np.int64), (offsets.size, L))
        rows = cols - offsets.astype(np.int64)[:, None]
        keep = (rows >= 0) & (rows < M)
        return rows[keep], cols[keep], _sparse_values(data[:, :L][keep], int(keep.sum()))
    if fmt == "lil":
        rows_list, data_list = P.rows, P.data
        if len(rows_list) != M or len(data_list) != M:
            raise _bad_sparse(f"has {len(rows_list)} row lists for {M} rows")
        rows, cols, vals = [], [], []
        for i in range(M):
            c = np.asarray(rows_list[i])
            if c.size == 0:
                continue
            c = _index_array("column", c)
            rows.append(np.full(c.size, i, dtype=np.int64))
            cols.append(c.astype(np.int64))
            vals.append(_sparse_values(data_list[i], c.size))
        if not rows:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
        cols = np.concatenate(cols)
        _check_range("column", cols, N)
        return np.concatenate(rows), cols, np.concatenate(vals)
    # dok
    items = list(P.items())
    try:
        keys = np.asarray([k for k, _ in items])
    except (TypeError, ValueError):
        raise _bad_sparse("has a key that is not a pair of integer indices") from None
    if keys.size == 0:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0)
    if keys.ndim != 2 or keys.shape[1] != 2 or keys.dtype.kind not in "iu":
        raise _bad_sparse("has a key that is not a pair of integer indices")
    _check_range("row", keys[:, 0], M)
    _check_range("column", keys[:, 1], N)
    vals = _sparse_values(np.asarray([v for _, v in items], dtype=object), len(items))
    return keys[:, 0].astype(np.int64), keys[:, 1].astype(np.int64), vals


def _canonical_csr(P):
    """A new float64 CSR copy of a scipy.sparse P of any format (sparse array or
    matrix), with sorted indices and duplicates summed, built only after every
    stored index has been checked against the shape (:func:`_sparse_triplets`;
    CSR and CSC inputs keep their compressed structure)."""
    M, N = P.shape
    if P.format == "csr":
        indptr, indices, data = _compressed_parts(P.indptr, P.indices, P.data, M, N, "column")
        out = sp.csr_matrix((data.copy(), indices.copy(), indptr.copy()), shape=(M, N))
    elif P.format == "csc":
        indptr, indices, data = _compressed_parts(P.indptr, P.indices, P.data, N, M, "row")
        out = sp.csc_matrix((data.copy(), indices.copy(), indptr.copy()), shape=(M, N)).tocsr()
    else:
        rows, cols, data = _sparse_triplets(P)
        out = sp.coo_matrix((data, (rows, cols)), shape=(M, N)).tocsr()
    out = sp.csr_matrix(out, dtype=np.float64)
    out.sum_duplicates()
    return out


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
        row must sum to 1 within ``ROW_SUM_TOL = 1e-10``.  A sparse matrix or array of
        any scipy format is converted to a new CSR with duplicate entries summed,
        after every stored index has been checked against the shape (module
        docstring); the caller's matrix is not changed.
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
            with np.errstate(over="ignore"):  # entries near the float64 range: a sum of inf, refused below
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
            with np.errstate(over="ignore"):
                total = rho.sum()
            if abs(total - 1.0) > ROW_SUM_TOL:
                raise ValueError(
                    f"rho sums to {total!r}, not 1 (tolerance {ROW_SUM_TOL}); "
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
        if len(P.shape) != 2:
            raise ValueError(f"sparse P must be 2-D of shape (S*A, S), got shape {P.shape}")
        rows, S = P.shape
        if S == 0 or rows == 0:
            raise ValueError(f"P must have at least one state and one action, got shape {P.shape}")
        if rows % S:
            raise ValueError(
                f"sparse P must have shape (S*A, S) with row s*A + a holding P(.|s, a); "
                f"got shape {P.shape}, whose row count is not a multiple of S = {S}"
            )
        A = rows // S
        if P.dtype.kind not in "biuf":
            raise TypeError(f"P must have a real numeric dtype, got {P.dtype}")
        P = _canonical_csr(P)
        data = P.data
        if not np.all(np.isfinite(data)):
            raise ValueError("sparse P has a NaN or infinite entry; every entry must be finite")
        if data.size and data.min() < 0:
            raise ValueError(f"sparse P has a negative entry {data.min()!r}; every entry must be >= 0")
        with np.errstate(over="ignore"):
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
