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

import functools

import numba
import numpy as np
from numba import njit, prange

from ._vecmath import EXP_SKIP, exp_neg, inverse_scaled, log_pos

#: Problems whose sweep reads at most this many transition entries (``S A S``
#: dense, ``nnz + S A`` sparse) run their kernels on one thread: waking the
#: thread pool of a parallel kernel costs more than such a sweep (a 2-state
#: sweep takes 1-4 us on one thread; a parallel launch about 0.5 ms on an idle
#: 2-core machine and tens of ms on a loaded one, every sweep).
SERIAL_MAX_WORK = 1 << 16


def sweep_work(mdp):
    """Transition entries read by one sweep of ``mdp``: ``S A S`` dense, ``nnz + S A`` sparse."""
    if mdp.is_sparse:
        return int(mdp.csr[0][-1]) + mdp.S * mdp.A
    return mdp.S * mdp.A * mdp.S


def serial_when_small(func):
    """Decorator of the public functions taking an MDP first (or second, after self,
    or an object with an ``mdp`` attribute, e.g. a PolicySystem): when its sweeps read at most
    ``SERIAL_MAX_WORK`` entries, the call runs with ``numba.set_num_threads(1)``
    (thread-local; restored on return), so every parallel kernel it launches,
    directly or from compiled code, runs on the calling thread (same results:
    the kernels' reductions do not depend on the thread count)."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        mdp = kwargs.get("mdp")
        for obj in args[:2]:  # mdp first, or self then mdp (PolicySystem(mdp, pi)), or self.mdp
            obj = obj if hasattr(obj, "is_sparse") else getattr(obj, "mdp", None)
            if hasattr(obj, "is_sparse"):
                mdp = obj
                break
        try:
            small = sweep_work(mdp) <= SERIAL_MAX_WORK
        except (AttributeError, TypeError, IndexError):
            small = False  # not an MDP: the function's own checks report it
        threads = numba.get_num_threads()
        if not small or threads == 1:
            return func(*args, **kwargs)
        numba.set_num_threads(1)
        try:
            return func(*args, **kwargs)
        finally:
            numba.set_num_threads(threads)

    return wrapper


@njit(cache=True, inline="always")
def _soft_max_row(q, tau):
    """m + tau * log sum_a exp((q_a - m) / tau) with m = max q; hard max for tau = 0.

    The exponents are ``(q_a - m) * (1 / tau)`` (``_vecmath.inverse_scaled``:
    also for subnormal tau; 0 for the maximal terms); terms below ``EXP_SKIP``
    are skipped (see :mod:`exactbilevel._vecmath`, whose exp and log these are)."""
    m = q[0]
    for a in range(1, q.shape[0]):
        if q[a] > m:
            m = q[a]
    if tau == 0.0:
        return m
    sc, it = inverse_scaled(tau)
    acc = 0.0
    for a in range(q.shape[0]):
        z = ((q[a] - m) * sc) * it if q[a] < m else 0.0
        if z >= EXP_SKIP:
            acc += exp_neg(z)
    return m + tau * log_pos(acc)


@njit(cache=True, parallel=True, fastmath={"reassoc", "contract"})
def sweep_dense(P, r, V, gamma, tau, Q, TV):
    """Q[s,a] = r[s,a] + gamma * sum_s' P[s,a,s'] V[s'];  TV[s] = softmax_tau(Q[s, :]).

    Compiled with ``fastmath={"reassoc", "contract"}``: the dot products are
    summed in SIMD lanes with fused multiply-adds (the error bound of a dot
    product, ``S eps sum_s' P |V|``, holds in any order), which makes the sweep
    memory-bound (9 ms for S = 2000, A = 8 in a fixed order, also with 8
    explicit accumulators).  The rows are read eight at a time
    (:func:`_rows_dot`): 5-8 ms, 0.95-0.99 times numpy's BLAS ``P @ V`` (medians
    of paired rounds), where one row at a time took 0.99-1.11 times it.  The
    summation order follows the machine's SIMD width, so the last bits (and
    with them the first argmax among exactly tied actions) may differ between
    machines, as with BLAS; on one machine they are fixed."""
    S, A = r.shape
    for s in prange(S):
        _dense_q_row(P[s], r[s], V, gamma, Q[s])
        TV[s] = _soft_max_row(Q[s], tau)


@njit(cache=True, inline="always")
def _dense_q_row(P_s, r_s, V, gamma, q):
    """q[a] = r_s[a] + gamma * sum_t P_s[a, t] V[t] for the (A, S) rows of one state."""
    _rows_dot(P_s, V, q)
    for a in range(r_s.shape[0]):
        q[a] = r_s[a] + gamma * q[a]


@njit(cache=True, inline="always")
def _rows_dot(M, x, out):
    """out = M @ x for a C-contiguous (n, m) block M: eight rows at a time in one
    pass over x (eight streams from memory at once: see :func:`sweep_dense`),
    the last n mod 8 rows one at a time."""
    n = M.shape[0]
    i = 0
    while i + 8 <= n:
        r0, r1, r2, r3 = M[i], M[i + 1], M[i + 2], M[i + 3]
        r4, r5, r6, r7 = M[i + 4], M[i + 5], M[i + 6], M[i + 7]
        c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = 0.0
        for t in range(x.shape[0]):
            v = x[t]
            c0 += r0[t] * v
            c1 += r1[t] * v
            c2 += r2[t] * v
            c3 += r3[t] * v
            c4 += r4[t] * v
            c5 += r5[t] * v
            c6 += r6[t] * v
            c7 += r7[t] * v
        out[i], out[i + 1], out[i + 2], out[i + 3] = c0, c1, c2, c3
        out[i + 4], out[i + 5], out[i + 6], out[i + 7] = c4, c5, c6, c7
        i += 8
    for j in range(i, n):
        row = M[j]
        acc = 0.0
        for t in range(x.shape[0]):
            acc += row[t] * x[t]
        out[j] = acc


@njit(cache=True, parallel=True, fastmath={"reassoc", "contract"})
def sweep_dense_policy(P, r, V, gamma, tau, Q, TV, pi, M, b):
    """:func:`sweep_dense` and, while the rows of each state are in cache, the
    greedy (softmax) policy pi of Q (:func:`policy_from_q`), its matrix
    ``M[s, s'] = sum_a pi[s, a] P[s, a, s']`` (:func:`policy_matrix_dense`) and
    ``b[s] = sum_a pi (r - tau log pi)`` (:func:`policy_reward`): one read of P
    for the sweep and the policy step of modified policy iteration (the 128 KB
    of rows of a state of the S = 2000, A = 8 benchmark MDP stay in L2).  Same
    formulas as the separate kernels; compiled with their sweep's fastmath, so
    pi, M and b may differ from theirs in the last bits."""
    S, A = r.shape
    for s in prange(S):
        _dense_q_row(P[s], r[s], V, gamma, Q[s])
        TV[s] = _soft_max_row(Q[s], tau)
        _policy_row(Q[s], tau, pi[s])
        _policy_matrix_row(P[s], pi[s], M[s])
        b[s] = _policy_reward_row(pi[s], r[s], tau)


@njit(cache=True, parallel=True, fastmath={"reassoc", "contract"})
def dense_backups(M, b, gamma, x, out, count, stop):
    """Up to ``count`` backups ``x <- b + gamma M x`` for a dense (S, S) M,
    stopping after the first whose change has a span ``max - min <= stop``;
    returns (x, backups done).  ``out`` is a work array of x's shape (the
    returned x is x or out)."""
    S = x.shape[0]
    done = 0
    while done < count:
        for k in prange((S + 7) // 8):
            lo, hi = 8 * k, min(8 * k + 8, S)
            _rows_dot(M[lo:hi], x, out[lo:hi])
            for s in range(lo, hi):
                out[s] = b[s] + gamma * out[s]
        lo, hi = np.inf, -np.inf
        for s in range(S):
            d = out[s] - x[s]
            lo = min(lo, d)
            hi = max(hi, d)
        x, out = out, x
        done += 1
        if hi - lo <= stop:
            break
    return x, done


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
def _copy_action_rows(indptr, cols, codes, table, actions, A, ptr, out_cols, out_codes, out_vals):
    S = actions.shape[0]
    coded = codes.shape[0] > 0
    for s in prange(S):
        i = np.int64(s) * A + actions[s]
        j = ptr[s]
        for k in range(indptr[i], indptr[i + 1]):
            out_cols[j] = cols[k]
            if coded:
                out_codes[j] = codes[k]
            else:
                out_vals[j] = table[k]
            j += 1


@njit(cache=True)
def action_rows(indptr, cols, relative, codes, table, actions):
    """The rows ``s*A + actions[s]`` of a packed CSR (see :func:`sweep_csr`), in the
    same packed form with one row per state: the matrix P_pi of the deterministic
    policy s -> actions[s], for :func:`state_backup`."""
    S = actions.shape[0]
    A = (indptr.shape[0] - 1) // S
    ptr = np.empty(S + 1, dtype=np.int64)
    ptr[0] = 0
    for s in range(S):
        i = np.int64(s) * A + actions[s]
        ptr[s + 1] = ptr[s] + indptr[i + 1] - indptr[i]
    coded = codes.shape[0] > 0
    out_cols = np.empty(ptr[S], dtype=cols.dtype)
    out_codes = np.empty(ptr[S] if coded else 0, dtype=codes.dtype)
    out_vals = np.empty(0 if coded else ptr[S], dtype=table.dtype)
    _copy_action_rows(indptr, cols, codes, table, actions, A, ptr, out_cols, out_codes, out_vals)
    return ptr, out_cols, relative, out_codes, table if coded else out_vals


@njit(cache=True, parallel=True)
def state_backup(ptr, cols, relative, codes, table, b, gamma, x, out):
    """out[s] = b[s] + gamma * sum_k P_k x[col_k] over row s of a packed CSR with one
    row per state (:func:`action_rows`)."""
    for s in prange(b.shape[0]):
        out[s] = b[s] + gamma * _row_dot(ptr, cols, relative, codes, table, s, s, x)


@njit(cache=True, parallel=True)
def shift_q(Q, row_sums, delta, tau, TV):
    """Q[s,a] += delta * row_sums[s,a];  TV[s] = softmax_tau(Q[s, :]).

    With ``delta = gamma c`` this turns Q(V) into Q(V + c) = r + gamma P (V + c)
    for a constant c, and TV into T_tau(V + c), without reading P."""
    S, A = Q.shape
    for s in prange(S):
        for a in range(A):
            Q[s, a] += delta * row_sums[s, a]
        TV[s] = _soft_max_row(Q[s], tau)


@njit(cache=True, parallel=True)
def policy_from_q(Q, tau, pi):
    """pi[s] = softmax(Q[s] / tau) (max-shifted as in :func:`_soft_max_row`,
    terms below ``EXP_SKIP`` set to 0); for tau = 0 the one-hot vector of the
    first maximizing action."""
    for s in prange(Q.shape[0]):
        _policy_row(Q[s], tau, pi[s])


@njit(cache=True, inline="always")
def _policy_row(q, tau, out):
    """out = softmax(q / tau), or the one-hot vector of q's first argmax for tau = 0."""
    A = q.shape[0]
    m = q[0]
    best = 0
    for a in range(1, A):
        if q[a] > m:
            m = q[a]
            best = a
    if tau == 0.0:
        for a in range(A):
            out[a] = 0.0
        out[best] = 1.0
    else:
        sc, it = inverse_scaled(tau)
        tot = 0.0
        for a in range(A):
            z = ((q[a] - m) * sc) * it if q[a] < m else 0.0
            e = exp_neg(z) if z >= EXP_SKIP else 0.0
            out[a] = e
            tot += e
        for a in range(A):
            out[a] /= tot


@njit(cache=True, parallel=True)
def policy_matrix_dense(P, pi, out):
    """out[s, s'] = sum_a pi[s, a] P[s, a, s']  (the (S, S) matrix P_pi)."""
    for s in prange(pi.shape[0]):
        _policy_matrix_row(P[s], pi[s], out[s])


@njit(cache=True, inline="always")
def _policy_matrix_row(P_s, p, out):
    """out[t] = sum_a p[a] P_s[a, t], skipping the actions with p[a] = 0."""
    for t in range(out.shape[0]):
        out[t] = 0.0
    for a in range(p.shape[0]):
        w = p[a]
        if w != 0.0:
            row = P_s[a]
            for t in range(out.shape[0]):
                out[t] += w * row[t]


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
    sorted, unique columns per row.  Actions with pi[s, a] = 0 contribute nothing.
    When no row has a repeated column (one action per state: hard policies)
    the merged rows are returned as written, without the compaction pass.
    For a sequence of policies of full support use :func:`policy_pattern`
    once and :func:`policy_refill` per policy instead."""
    S = pi.shape[0]
    bound = _policy_row_counts(indptr, pi)
    tmp_idx = np.empty(bound[S], dtype=indices.dtype)
    tmp_val = np.empty(bound[S], dtype=np.float64)
    lengths = np.empty(S, dtype=np.int64)
    _policy_rows_merge(indptr, indices, data, pi, bound, tmp_idx, tmp_val, lengths)
    merged = True
    for s in range(S):
        if lengths[s] != bound[s + 1] - bound[s]:
            merged = False
            break
    if merged:  # no column repeats (e.g. one action per state): no compaction pass
        return bound, tmp_idx, tmp_val
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
    for s in prange(pi.shape[0]):
        out[s] = _policy_reward_row(pi[s], r[s], tau)


@njit(cache=True, inline="always")
def _policy_reward_row(p, r_s, tau):
    acc = 0.0
    for a in range(p.shape[0]):
        if p[a] > 0.0:
            acc += p[a] * r_s[a]
            if tau > 0.0:
                acc -= tau * p[a] * np.log(p[a])
    return acc


@njit(cache=True)
def policy_defects(pi, tol):
    """The number of rows s of pi with an entry that is NaN, infinite or
    negative, or with ``|sum_a pi[s, a] - 1| > tol`` (a NaN or infinite entry
    makes the sum fail too): one pass, the fast path of
    ``evaluation.check_policy``, which finds and names the first such row in
    numpy when the count is not 0."""
    S, A = pi.shape
    count = 0
    for s in range(S):
        tot, lo, hi = 0.0, np.inf, -np.inf
        for a in range(A):
            p = pi[s, a]
            tot += p
            lo = min(lo, p)
            hi = max(hi, p)
        count += not (lo >= 0.0 and hi < np.inf and abs(tot - 1.0) <= tol)
    return count


_SPLITMIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


@njit(cache=True)
def fingerprint(bits):
    """A 64-bit hash of a uint64 array (the bits of a float64 array):
    ``sum_i mix(bits[i] + i g) mod 2^64`` with ``mix`` the finalizer of
    splitmix64 (a bijection of the 64-bit words) and g its golden-ratio
    increment.  Changing one word changes one term, hence the sum.  The key
    of ``evaluation.policy_system`` (1 ms for 4 10^6 words; Python's hash of
    ``tobytes()`` takes 12-23 ms)."""
    g, m1, m2 = _SPLITMIX
    h = np.uint64(0)
    for i in range(bits.shape[0]):
        z = bits[i] + np.uint64(i) * g
        z = (z ^ (z >> np.uint64(30))) * m1
        z = (z ^ (z >> np.uint64(27))) * m2
        h += z ^ (z >> np.uint64(31))
    return h


@njit(cache=True)
def policy_pattern(indptr, indices, S, A):
    """The sparsity pattern of P_pi for every policy of full support, and where
    each entry of P lands in it.

    Returns (ptr, idx, slot): row s of the pattern, idx[ptr[s]:ptr[s+1]], is the
    sorted union of the columns of the rows s*A .. s*A + A - 1 of P; entry k of
    P (CSR order) lies in column idx[slot[k]] of that row."""
    ptr = np.zeros(S + 1, dtype=np.int64)
    idx = np.empty(indptr[S * A], dtype=indices.dtype)
    slot = np.empty(indptr[S * A], dtype=np.int64)
    pos = 0
    for s in range(S):
        start = pos
        for k in range(indptr[s * A], indptr[s * A + A]):
            col = indices[k]
            # insert col into the sorted row idx[start:pos] unless present
            j = pos
            while j > start and idx[j - 1] > col:
                j -= 1
            if j > start and idx[j - 1] == col:
                continue
            for m in range(pos, j, -1):
                idx[m] = idx[m - 1]
            idx[j] = col
            pos += 1
        ptr[s + 1] = pos
        for k in range(indptr[s * A], indptr[s * A + A]):
            col = indices[k]
            lo = start
            hi = pos
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if idx[mid] <= col:
                    lo = mid
                else:
                    hi = mid
            slot[k] = lo
    return ptr, idx[:pos].copy(), slot


@njit(cache=True, parallel=True)
def policy_refill(indptr, data, pi, ptr, slot, val):
    """val <- the values of P_pi on the pattern (ptr, ., slot) of
    :func:`policy_pattern`: val[slot[k]] sums pi[s, a] P[k] over the entries k
    of the rows s*A + a, in action order (so the sums equal those of
    :func:`policy_matrix_csr`; columns all of whose actions have pi = 0 hold 0)."""
    S, A = pi.shape
    for s in prange(S):
        for j in range(ptr[s], ptr[s + 1]):
            val[j] = 0.0
        for a in range(A):
            w = pi[s, a]
            i = s * A + a
            for k in range(indptr[i], indptr[i + 1]):
                val[slot[k]] += w * data[k]


@njit(cache=True, inline="always")
def _vi_certify(V, TV, gamma, c, r_abs, ent):
    """The bound of ``solvers._Problem.certify`` for the sweep TV = T V, with the same
    operations in the same order (so the same bits)."""
    lo, hi = np.inf, -np.inf
    for s in range(V.shape[0]):
        d = TV[s] - V[s]
        lo = min(lo, d)
        hi = max(hi, d)
    mid = (c * 0.5) * (hi + lo)
    size = 0.0
    for s in range(V.shape[0]):
        size = max(size, abs(V[s]), abs(TV[s]), abs(TV[s] + mid))
    eps = np.finfo(np.float64).eps
    return 0.5 * (hi - lo) / (1.0 - gamma) + 8.0 * eps * (r_abs + size + ent) / (1.0 - gamma)


@njit(cache=True, inline="always")
def _vi_step(bound, prev, tol, count, i, max_iter, switch, switch_sweeps):
    """The stopping rule of ``solvers._value_iteration`` after sweep i:
    (0 go on, 1 stop, 2 switch; the predicted sweeps)."""
    if bound <= tol or i == max_iter - 1:
        return 1, 0.0
    if switch and prev >= 0.0 and count >= 3:
        rate = bound / prev
        needed = np.inf if rate >= 1.0 else np.log(tol / bound) / np.log(max(rate, 1e-300))
        if needed > switch_sweeps:
            return 2, needed
    return 0, 0.0


@njit(cache=True)
def value_iteration_dense(P, r, V, TV, Q, gamma, tau, tol, max_iter, count, switch, switch_sweeps, r_abs, ent):
    """``solvers._value_iteration`` on a dense P in one compiled loop (for small
    problems, whose sweeps cost less than a Python-level iteration): sweeps
    :func:`sweep_dense` until the certified bound meets tol, ``max_iter`` sweeps,
    or (``switch``) the span contraction predicts more than ``switch_sweeps``
    further sweeps.  Returns (V, TV, count, bound, status, needed): the last
    sweep read V and wrote Q and TV; status 1 stopped, 2 switch."""
    c = gamma / (1.0 - gamma)
    prev = -1.0
    bound, status, needed = np.inf, 1, 0.0
    for i in range(max_iter):
        sweep_dense(P, r, V, gamma, tau, Q, TV)
        count += 1
        bound = _vi_certify(V, TV, gamma, c, r_abs, ent)
        status, needed = _vi_step(bound, prev, tol, count, i, max_iter, switch, switch_sweeps)
        if status != 0:
            break
        prev = bound
        V, TV = TV, V
    return V, TV, count, bound, status, needed


@njit(cache=True)
def value_iteration_csr(indptr, cols, relative, codes, table, r, V, TV, Q, gamma, tau, tol, max_iter, count,
                        switch, switch_sweeps, r_abs, ent):
    """:func:`value_iteration_dense` on a packed CSR (:func:`sweep_csr`)."""
    c = gamma / (1.0 - gamma)
    prev = -1.0
    bound, status, needed = np.inf, 1, 0.0
    for i in range(max_iter):
        sweep_csr(indptr, cols, relative, codes, table, r, V, gamma, tau, Q, TV)
        count += 1
        bound = _vi_certify(V, TV, gamma, c, r_abs, ent)
        status, needed = _vi_step(bound, prev, tol, count, i, max_iter, switch, switch_sweeps)
        if status != 0:
            break
        prev = bound
        V, TV = TV, V
    return V, TV, count, bound, status, needed
