"""Numba kernels on the stencil form of a sparse transition kernel (private).

Many MDPs repeat one pattern of transitions over runs of consecutive states: on
a GridWorld every interior state of a grid row moves to ``s + {-N, -1, +1, +N}``
with the same probabilities.  The stencil form keeps one copy of the rows of P
per chunk of consecutive states whose rows are the same up to the shift by s:

- ``starts`` (C + 1,): chunk c holds the states ``starts[c] <= s < starts[c + 1]``
  (at most ``chunk`` of them: chunks are the unit of parallel work);
- ``off[c, a, k]``, ``w[c, a, k]`` (C, A, K): the next state ``s + off`` and its
  probability, in the CSR order of the row; K is the longest row, unused slots
  have offset 0 and weight 0;
- ``uoff[c, u]`` (u < ``nu[c]``; shape (C, U)) the distinct offsets of chunk c
  in increasing order and ``umap[c, a, k]`` the slot u of each entry, for
  policy matrices.

For s in chunk c, ``(P V)(s, a) = sum_k w[c, a, k] V[s + off[c, a, k]]``: a loop
over s with fixed offsets reads V contiguously and compiles to SIMD code,
where the CSR sweep gathers one index and one value per entry.  Kernels assume
what the caller checked (every ``s + off`` in range, which the construction
from a valid CSR guarantees).  Plain-numpy references: the tests compare with
the CSR kernels and with scipy products.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._vecmath import EXP_SKIP, exp_neg, inverse_scaled, log_pos


@njit(cache=True, inline="always")
def _same_rows(indptr, cols, relative, codes, table, A, s):
    """Whether the rows of state s of a packed CSR (see ``TabularMDP.packed``)
    equal those of s - 1 shifted by one state."""
    for a in range(A):
        i0 = (s - 1) * A + a
        i1 = s * A + a
        n = indptr[i0 + 1] - indptr[i0]
        if indptr[i1 + 1] - indptr[i1] != n:
            return False
        for j in range(n):
            k0 = indptr[i0] + j
            k1 = indptr[i1] + j
            if relative:
                if cols[k0] != cols[k1]:
                    return False
            elif np.int64(cols[k0]) + 1 != np.int64(cols[k1]):
                return False
            if codes.shape[0] > 0:
                if codes[k0] != codes[k1]:
                    return False
            elif table[k0] != table[k1]:
                return False
    return True


@njit(cache=True)
def stencil_starts(indptr, cols, relative, codes, table, A, chunk):
    """Chunk boundaries of a packed CSR: returns ``(starts, runs)``, a new chunk
    where a state's rows differ from its predecessor's (``runs`` counts those)
    or after ``chunk`` states."""
    S = (indptr.shape[0] - 1) // A
    starts = np.empty(S + 1, dtype=np.int64)
    n = 0
    runs = 0
    length = 0
    for s in range(S):
        same = s > 0 and _same_rows(indptr, cols, relative, codes, table, A, s)
        if not same:
            runs += 1
        if not same or length == chunk:
            starts[n] = s
            n += 1
            length = 0
        length += 1
    starts[n] = S
    return starts[: n + 1].copy(), runs


@njit(cache=True)
def stencil_fill(indptr, cols, relative, codes, table, A, starts):
    """``(off, w, uoff, umap, nu)`` of the chunks ``starts`` (module docstring),
    from the rows of each chunk's first state."""
    C = starts.shape[0] - 1
    K = 0
    for i in range(indptr.shape[0] - 1):
        K = max(K, indptr[i + 1] - indptr[i])
    off = np.zeros((C, A, K), dtype=np.int64)
    w = np.zeros((C, A, K))
    uoff = np.zeros((C, A * K), dtype=np.int64)
    umap = np.zeros((C, A, K), dtype=np.int64)
    nu = np.zeros(C, dtype=np.int64)
    U = 1
    for c in range(C):
        s = starts[c]
        n = 0
        for a in range(A):
            i = s * A + a
            for j in range(indptr[i + 1] - indptr[i]):
                k = indptr[i] + j
                o = np.int64(cols[k]) if relative else np.int64(cols[k]) - s
                off[c, a, j] = o
                w[c, a, j] = table[codes[k]] if codes.shape[0] > 0 else table[k]
                u = 0
                while u < n and uoff[c, u] != o:
                    u += 1
                if u == n:
                    uoff[c, n] = o
                    n += 1
                umap[c, a, j] = u
        nu[c] = n
        U = max(U, n)
        # increasing offsets, umap renumbered to match
        order = np.argsort(uoff[c, :n])
        rank = np.empty(n, dtype=np.int64)
        for j in range(n):
            rank[order[j]] = j
        uoff[c, :n] = uoff[c, :n][order]
        for a in range(A):
            for j in range(indptr[s * A + a + 1] - indptr[s * A + a]):
                umap[c, a, j] = rank[umap[c, a, j]]
    return off, w, uoff[:, :U].copy(), umap, nu


@njit(cache=True, parallel=True, error_model="numpy")
def sweep_stencil(starts, off, w, r, V, gamma, tau, Q, TV):
    """The stencil twin of :func:`exactbilevel._kernels.sweep_csr`:
    ``Q[s, a] = r[s, a] + gamma * sum_k w V[s + off]``, ``TV[s]`` the soft max of
    ``Q[s, :]`` as ``_kernels._soft_max_row`` computes it.  The same sums in the
    same order: the same bits as the CSR sweep."""
    S, A = r.shape
    K = off.shape[2]
    for c in prange(starts.shape[0] - 1):
        s0, s1 = starts[c], starts[c + 1]
        L = s1 - s0
        buf = np.zeros((A, L))
        mx = np.empty(L)
        for a in range(A):
            row = buf[a]
            for k in range(K):
                wk = w[c, a, k]
                if wk != 0.0:
                    Vs = V[s0 + off[c, a, k]: s1 + off[c, a, k]]
                    for i in range(L):
                        row[i] += wk * Vs[i]
        for i in range(L):
            s = s0 + i
            m = r[s, 0] + gamma * buf[0, i]
            Q[s, 0] = m
            buf[0, i] = m
            for a in range(1, A):
                q = r[s, a] + gamma * buf[a, i]
                Q[s, a] = q
                buf[a, i] = q
                if q > m:
                    m = q
            mx[i] = m
        if tau == 0.0:
            for i in range(L):
                TV[s0 + i] = mx[i]
        else:
            sc, it = inverse_scaled(tau)
            acc = np.zeros(L)
            for a in range(A):
                row = buf[a]
                for i in range(L):
                    z = ((row[i] - mx[i]) * sc) * it if row[i] < mx[i] else 0.0
                    e = exp_neg(max(z, EXP_SKIP))
                    acc[i] += e if z >= EXP_SKIP else 0.0
            for i in range(L):
                TV[s0 + i] = mx[i] + tau * log_pos(acc[i])


@njit(cache=True, parallel=True, error_model="numpy")
def policy_weights(starts, w, umap, pi, W):
    """W[u, s] = sum over (a, k) with umap[c, a, k] = u of pi[s, a] w[c, a, k]:
    row s of P_pi on the offsets ``uoff[c]`` of its chunk c.  W has shape (U, S)."""
    C, A, K = w.shape
    for c in prange(C):
        s0, s1 = starts[c], starts[c + 1]
        for u in range(W.shape[0]):
            for s in range(s0, s1):
                W[u, s] = 0.0
        for a in range(A):
            for k in range(K):
                wk = w[c, a, k]
                if wk != 0.0:
                    Wu = W[umap[c, a, k]]
                    for s in range(s0, s1):
                        Wu[s] += pi[s, a] * wk


@njit(cache=True, parallel=True, error_model="numpy")
def stencil_backup(starts, uoff, nu, W, b, gamma, x, out):
    """out[s] = b[s] + gamma * sum_u W[u, s] x[s + uoff[c, u]]: the backup
    ``b + gamma P_pi x`` with the weights of :func:`policy_weights`."""
    for c in prange(starts.shape[0] - 1):
        s0, s1 = starts[c], starts[c + 1]
        L = s1 - s0
        acc = np.zeros(L)
        for u in range(nu[c]):
            xs = x[s0 + uoff[c, u]: s1 + uoff[c, u]]
            Wu = W[u, s0:s1]
            for i in range(L):
                acc[i] += Wu[i] * xs[i]
        for i in range(L):
            out[s0 + i] = b[s0 + i] + gamma * acc[i]


@njit(cache=True, parallel=True)
def _policy_row_counts(starts, uoff, nu, W, counts):
    for c in prange(starts.shape[0] - 1):
        for s in range(starts[c], starts[c + 1]):
            n = 0
            for u in range(nu[c]):
                if W[u, s] != 0.0:
                    n += 1
            counts[s + 1] = n


@njit(cache=True, parallel=True)
def _policy_rows_fill(starts, uoff, nu, W, indptr, indices, data):
    for c in prange(starts.shape[0] - 1):
        for s in range(starts[c], starts[c + 1]):
            j = indptr[s]
            for u in range(nu[c]):
                if W[u, s] != 0.0:
                    indices[j] = s + uoff[c, u]
                    data[j] = W[u, s]
                    j += 1


@njit(cache=True)
def policy_matrix(starts, uoff, nu, W):
    """The CSR arrays ``(indptr, indices, data)`` of P_pi from the weights of
    :func:`policy_weights`: row s holds ``W[u, s]`` at column ``s + uoff[c, u]``,
    columns increasing, zero weights left out."""
    S = W.shape[1]
    indptr = np.zeros(S + 1, dtype=np.int64)
    _policy_row_counts(starts, uoff, nu, W, indptr)
    for s in range(S):
        indptr[s + 1] += indptr[s]
    indices = np.empty(indptr[S], dtype=np.int32)
    data = np.empty(indptr[S])
    _policy_rows_fill(starts, uoff, nu, W, indptr, indices, data)
    return indptr, indices, data
