"""Numba kernels (private).

Every kernel here assumes what the public functions checked before calling it:
C-contiguous float64 arrays of consistent shapes, finite entries, CSR column
indices in ``[0, S)``, ``tau >= 0``.  A plain-numpy reference for each kernel
lives in :mod:`exactbilevel.testing.reference`; the tests compare the two.

Dense transitions are ``P[s, a, s']`` of shape ``(S, A, S)``; sparse ones are the
CSR arrays ``(indptr, indices, data)`` of the ``(S*A, S)`` matrix whose row
``s*A + a`` is ``P(. | s, a)``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

#: exp(z) underflows to zero below this; such terms are skipped, not exponentiated.
EXP_UNDERFLOW = -745.2


@njit(cache=True, inline="always")
def _soft_max_row(q, tau):
    """m + tau * log sum_a exp((q_a - m) / tau) with m = max q; hard max for tau = 0."""
    m = q[0]
    for a in range(1, q.shape[0]):
        if q[a] > m:
            m = q[a]
    if tau == 0.0:
        return m
    acc = 0.0
    for a in range(q.shape[0]):
        z = (q[a] - m) / tau
        if z > EXP_UNDERFLOW:
            acc += np.exp(z)
    return m + tau * np.log(acc)


@njit(cache=True, parallel=True)
def sweep_dense(P, r, V, gamma, tau, Q, TV):
    """Q[s,a] = r[s,a] + gamma * sum_s' P[s,a,s'] V[s'];  TV[s] = softmax_tau(Q[s, :])."""
    S, A = r.shape
    for s in prange(S):
        for a in range(A):
            row = P[s, a]
            acc0 = 0.0
            acc1 = 0.0
            acc2 = 0.0
            acc3 = 0.0
            t = 0
            while t + 4 <= S:
                acc0 += row[t] * V[t]
                acc1 += row[t + 1] * V[t + 1]
                acc2 += row[t + 2] * V[t + 2]
                acc3 += row[t + 3] * V[t + 3]
                t += 4
            while t < S:
                acc0 += row[t] * V[t]
                t += 1
            Q[s, a] = r[s, a] + gamma * ((acc0 + acc1) + (acc2 + acc3))
        TV[s] = _soft_max_row(Q[s], tau)


@njit(cache=True, inline="always")
def _row_dot(indptr, cols, relative, codes, table, i, s, V):
    """sum_k P_k V[col_k] over CSR row i (of state s) in the packed form of
    :func:`sweep_csr`."""
    base = np.int64(s) if relative else np.int64(0)
    acc = 0.0
    if codes.shape[0] > 0:
        for k in range(indptr[i], indptr[i + 1]):
            acc += table[codes[k]] * V[base + np.int64(cols[k])]
    else:
        for k in range(indptr[i], indptr[i + 1]):
            acc += table[k] * V[base + np.int64(cols[k])]
    return acc


@njit(cache=True, parallel=True)
def sweep_csr(indptr, cols, relative, codes, table, r, V, gamma, tau, Q, TV):
    """The sparse twin of :func:`sweep_dense`, on a packed CSR (see
    ``TabularMDP.packed``): column ``base + cols[k]`` with ``base = s`` when
    ``relative`` (cols are int16 offsets) else 0; value ``table[codes[k]]``
    when ``codes`` is non-empty (at most 256 distinct probabilities) else
    ``table[k]``.  Packing cuts the bytes read per entry from 12 to 3 on
    structured MDPs (grids, Gymnasium tables)."""
    S, A = r.shape
    for s in prange(S):
        for a in range(A):
            Q[s, a] = r[s, a] + gamma * _row_dot(indptr, cols, relative, codes, table, np.int64(s) * A + a, s, V)
        TV[s] = _soft_max_row(Q[s], tau)


@njit(cache=True, parallel=True)
def policy_from_q(Q, tau, pi):
    """pi[s] = softmax(Q[s] / tau) (max-shifted, underflowing terms set to 0);
    for tau = 0 the one-hot vector of the first maximizing action."""
    S, A = Q.shape
    for s in prange(S):
        m = Q[s, 0]
        best = 0
        for a in range(1, A):
            if Q[s, a] > m:
                m = Q[s, a]
                best = a
        if tau == 0.0:
            for a in range(A):
                pi[s, a] = 0.0
            pi[s, best] = 1.0
        else:
            tot = 0.0
            for a in range(A):
                z = (Q[s, a] - m) / tau
                e = np.exp(z) if z > EXP_UNDERFLOW else 0.0
                pi[s, a] = e
                tot += e
            for a in range(A):
                pi[s, a] /= tot


@njit(cache=True, parallel=True)
def policy_matrix_dense(P, pi, out):
    """out[s, s'] = sum_a pi[s, a] P[s, a, s']  (the (S, S) matrix P_pi)."""
    S, A = pi.shape
    for s in prange(S):
        for t in range(S):
            out[s, t] = 0.0
        for a in range(A):
            w = pi[s, a]
            if w != 0.0:
                for t in range(S):
                    out[s, t] += w * P[s, a, t]


@njit(cache=True)
def _policy_row_counts(indptr, pi):
    S, A = pi.shape
    counts = np.zeros(S + 1, dtype=np.int64)
    for s in range(S):
        c = 0
        for a in range(A):
            if pi[s, a] != 0.0:
                c += indptr[s * A + a + 1] - indptr[s * A + a]
        counts[s + 1] = counts[s] + c
    return counts


@njit(cache=True, parallel=True)
def _policy_rows_merge(indptr, indices, data, pi, bound, out_idx, out_val, lengths):
    """Row s of P_pi written at bound[s]: the rows of the actions with pi > 0,
    weighted, sorted by column (insertion sort; rows are short) and with equal
    columns summed.  lengths[s] receives the merged length."""
    S, A = pi.shape
    for s in prange(S):
        start = bound[s]
        n = 0
        for a in range(A):
            w = pi[s, a]
            if w == 0.0:
                continue
            i = s * A + a
            for k in range(indptr[i], indptr[i + 1]):
                col = indices[k]
                val = w * data[k]
                j = start + n
                while j > start and out_idx[j - 1] > col:
                    out_idx[j] = out_idx[j - 1]
                    out_val[j] = out_val[j - 1]
                    j -= 1
                out_idx[j] = col
                out_val[j] = val
                n += 1
        m = 0
        for j in range(start, start + n):
            if m > 0 and out_idx[start + m - 1] == out_idx[j]:
                out_val[start + m - 1] += out_val[j]
            else:
                out_idx[start + m] = out_idx[j]
                out_val[start + m] = out_val[j]
                m += 1
        lengths[s] = m


@njit(cache=True, parallel=True)
def _compact_rows(bound, lengths, src_idx, src_val, indptr_out, dst_idx, dst_val):
    S = lengths.shape[0]
    for s in prange(S):
        a = bound[s]
        b = indptr_out[s]
        for j in range(lengths[s]):
            dst_idx[b + j] = src_idx[a + j]
            dst_val[b + j] = src_val[a + j]


@njit(cache=True)
def policy_matrix_csr(indptr, indices, data, pi):
    """CSR arrays (indptr, indices, data) of P_pi = sum_a pi[s,a] P[s,a,:], with
    sorted, unique columns per row.  Actions with pi[s, a] = 0 contribute nothing."""
    S = pi.shape[0]
    bound = _policy_row_counts(indptr, pi)
    tmp_idx = np.empty(bound[S], dtype=indices.dtype)
    tmp_val = np.empty(bound[S], dtype=np.float64)
    lengths = np.empty(S, dtype=np.int64)
    _policy_rows_merge(indptr, indices, data, pi, bound, tmp_idx, tmp_val, lengths)
    out_ptr = np.zeros(S + 1, dtype=np.int64)
    for s in range(S):
        out_ptr[s + 1] = out_ptr[s] + lengths[s]
    out_idx = np.empty(out_ptr[S], dtype=indices.dtype)
    out_val = np.empty(out_ptr[S], dtype=np.float64)
    _compact_rows(bound, lengths, tmp_idx, tmp_val, out_ptr, out_idx, out_val)
    return out_ptr, out_idx, out_val


@njit(cache=True, parallel=True)
def csr_shifted_matvec(indptr, indices, data, v, gamma, out):
    """out = v - gamma * M v for the CSR matrix M = (indptr, indices, data)."""
    n = v.shape[0]
    for i in prange(n):
        acc = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            acc += data[k] * v[indices[k]]
        out[i] = v[i] - gamma * acc


@njit(cache=True)
def flow_order(indptr, indices, data):
    """States ordered so that each comes after its most likely successor.

    For the (S, S) CSR matrix M, let m(s) = argmax_{t != s} M[s, t] (s itself for
    a row with no other entry).  States on cycles of m have depth 0; every other
    state has depth(m(s)) + 1.  Returns the states sorted by depth (stable): a
    Gauss-Seidel sweep in this order solves a deterministic chain in one pass.
    """
    S = indptr.shape[0] - 1
    succ = np.empty(S, dtype=np.int64)
    for s in range(S):
        best = s
        bval = -1.0
        for k in range(indptr[s], indptr[s + 1]):
            t = indices[k]
            if t != s and data[k] > bval:
                bval = data[k]
                best = t
        succ[s] = best
    state = np.zeros(S, dtype=np.int8)  # 0 new, 1 on the current path, 2 done
    depth = np.zeros(S, dtype=np.int64)
    path = np.empty(S, dtype=np.int64)
    for s0 in range(S):
        if state[s0] != 0:
            continue
        n = 0
        s = s0
        while state[s] == 0:
            state[s] = 1
            path[n] = s
            n += 1
            s = succ[s]
        base = 0
        if state[s] == 1:  # closed a cycle: its members have depth 0
            while True:
                n -= 1
                u = path[n]
                depth[u] = 0
                state[u] = 2
                if u == s:
                    break
        else:
            base = depth[s]
        while n > 0:
            n -= 1
            u = path[n]
            base += 1
            depth[u] = base
            state[u] = 2
    return np.argsort(depth, kind="mergesort")


@njit(cache=True)
def gauss_seidel_sweep(indptr, indices, data, gamma, order, b, x):
    """One in-place Gauss-Seidel sweep for (I - gamma M) x = b, states in ``order``:
    x[s] <- (b[s] + gamma sum_{t != s} M[s, t] x[t]) / (1 - gamma M[s, s])."""
    for j in range(order.shape[0]):
        s = order[j]
        acc = 0.0
        diag = 0.0
        for k in range(indptr[s], indptr[s + 1]):
            t = indices[k]
            if t == s:
                diag += data[k]
            else:
                acc += data[k] * x[t]
        x[s] = (b[s] + gamma * acc) / (1.0 - gamma * diag)


@njit(cache=True, parallel=True)
def csr_backup(indptr, indices, data, b, gamma, x, out):
    """out = b + gamma * M x for the CSR matrix M = (indptr, indices, data)."""
    n = x.shape[0]
    for i in prange(n):
        acc = 0.0
        for k in range(indptr[i], indptr[i + 1]):
            acc += data[k] * x[indices[k]]
        out[i] = b[i] + gamma * acc


@njit(cache=True, parallel=True)
def policy_reward(pi, r, tau, out):
    """out[s] = sum_a pi[s, a] (r[s, a] - tau log pi[s, a]), with 0 log 0 = 0."""
    S, A = pi.shape
    for s in prange(S):
        acc = 0.0
        for a in range(A):
            p = pi[s, a]
            if p > 0.0:
                acc += p * r[s, a]
                if tau > 0.0:
                    acc -= tau * p * np.log(p)
        out[s] = acc
