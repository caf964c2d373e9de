"""Numba kernels of the aggregation multigrid (private).

The multigrid of :class:`exactbilevel.evaluation.PolicySystem` solves
``A x = b`` and ``A^T y = c`` for ``A = I - gamma M``, M the (S, S) CSR policy
matrix (nonnegative, row sums <= 1, so A is a row-diagonally dominant
nonsingular M-matrix).  Where it pays, an independent set of states is first
eliminated exactly (:func:`independent_states`, :func:`eliminated_system`,
:func:`reduce_rhs`, :func:`expand_solution` and their transposed twins;
:class:`exactbilevel.evaluation._Elimination`), and the multigrid solves the
system left, which has the same form.  Kernels assume what the caller
checked: C-contiguous arrays of consistent shapes and dtypes, column indices
in range.  Plain-numpy references live in
:mod:`exactbilevel.testing.reference`; the tests compare.

A level of the hierarchy is built "split": its diagonal ``diag`` and the CSR
arrays ``(optr, oidx, oval)`` of its off-diagonal part (entries <= 0).  The
solve kernels take all levels stacked into one block-diagonal matrix, level l
owning rows ``lo[l]:lo[l + 1]`` (global column indices), with ``agg[i]`` (for i
on every level but the last) the global row of the aggregate that i belongs
to on the next level, and its off-diagonal part in padded rows
(:func:`padded_stack`): every row of level l has ``width[l]`` slots, row s's
at ``base[l] + (s - lo[l]) * width[l] + k`` in ``(pidx, pval)``, unused slots
pointing at s itself with value 0; the entries of rows longer than their
level's width continue in overflow: the rows ``orow`` (increasing) have the
rest of their entries at ``pidx[optr_o[j]:optr_o[j + 1]]`` (after the slots;
no rows at all unless a few rows are much longer than the rest).  A fixed trip
count per level lets the compiler pipeline the sequential Gauss-Seidel
sweeps, and unsigned indices spare them negative-index tests: 5.5-7 ms
instead of 14 ms for the finest level of the 1000 x 1000 GridWorld.  The
indices are 32-bit (``pidx`` is uint32), which spares memory traffic: two
concurrent solves (:meth:`~exactbilevel.evaluation.PolicySystem.solve_many`)
took 1.04-1.09 s instead of 1.23-1.32 s there.  The stack also keeps
``diag`` and ``idiag = 1 / diag``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def independent_states(indptr, indices):
    """A maximal independent set of the coupling graph of the (S, S) CSR matrix
    M (s and t != s coupled when M[s, t] or M[t, s] is stored), greedy in index
    order: returns the boolean mask ``fine``.  No two fine states are coupled,
    so the fine block of A = I - gamma M is diagonal; every other state is
    coupled to a fine one.  On a grid whose moves go to the four neighbours
    (and back to the cell itself), a checkerboard: half the states."""
    S = indptr.shape[0] - 1
    fine = np.zeros(S, dtype=np.bool_)
    blocked = np.zeros(S, dtype=np.bool_)  # a fine state points at it
    for s in range(S):
        if blocked[s]:
            continue
        free = True
        for k in range(indptr[s], indptr[s + 1]):
            if indices[k] != s and fine[indices[k]]:
                free = False
                break
        if free:
            fine[s] = True
            for k in range(indptr[s], indptr[s + 1]):
                blocked[indices[k]] = True
    return fine


@njit(cache=True, inline="always")
def _accumulate(cidx, cval, where, start, pos, col, v):
    """Add v at column ``col`` of the row being filled from ``start``: returns the next free slot."""
    if where[col] >= start:
        cval[where[col]] += v
        return pos
    where[col] = pos
    cidx[pos] = col
    cval[pos] = v
    return pos + 1


@njit(cache=True, nogil=True)
def eliminated_system(indptr, indices, data, gamma, fine):
    """The system left on the kept states once the fine states (an independent
    set, :func:`independent_states`) are eliminated from A = I - gamma M.

    With F the fine and C the kept states, A_FF = diag(dF), dF = 1 - gamma
    M_ff, and the Schur complement is again of the form
    ``A_CC - A_CF A_FF^(-1) A_FC = I - gamma M_C`` with
    ``M_C = M_CC + gamma M_CF diag(1 / dF) M_FC``: nonnegative, row sums <= 1
    (two steps of the chain, the second discounted once more).  Returns
    ``(cmap, cptr, cidx, cval, dF)``: cmap[s] the label of kept state s in the
    reduced system (-1 for fine states), the CSR of M_C (duplicates summed,
    its diagonal kept), and dF (1 on kept states)."""
    S = indptr.shape[0] - 1
    cmap = np.full(S, -1, dtype=np.int64)
    nC = 0
    for s in range(S):
        if not fine[s]:
            cmap[s] = nC
            nC += 1
    dF = np.ones(S)
    for s in range(S):
        if fine[s]:
            for k in range(indptr[s], indptr[s + 1]):
                if indices[k] == s:
                    dF[s] -= gamma * data[k]
    # row lengths of M_C (a stamp per reduced column)
    cptr = np.zeros(nC + 1, dtype=np.int64)
    stamp = np.full(nC, -1, dtype=np.int64)
    for s in range(S):
        c = cmap[s]
        if c < 0:
            continue
        n = 0
        for k in range(indptr[s], indptr[s + 1]):
            t = indices[k]
            if not fine[t]:
                if stamp[cmap[t]] != c:
                    stamp[cmap[t]] = c
                    n += 1
                continue
            for m in range(indptr[t], indptr[t + 1]):
                u = indices[m]
                if u != t and stamp[cmap[u]] != c:
                    stamp[cmap[u]] = c
                    n += 1
        cptr[c + 1] = cptr[c] + n
    cidx = np.empty(cptr[nC], dtype=np.int64)
    cval = np.empty(cptr[nC])
    where = np.full(nC, -1, dtype=np.int64)  # slot of a column in the current row
    pos = 0
    for s in range(S):
        c = cmap[s]
        if c < 0:
            continue
        start = pos
        for k in range(indptr[s], indptr[s + 1]):
            t = indices[k]
            if not fine[t]:
                pos = _accumulate(cidx, cval, where, start, pos, cmap[t], data[k])
                continue
            w = gamma * data[k] / dF[t]
            for m in range(indptr[t], indptr[t + 1]):
                u = indices[m]
                if u != t:
                    pos = _accumulate(cidx, cval, where, start, pos, cmap[u], w * data[m])
    return cmap, cptr, cidx, cval, dF


@njit(cache=True, parallel=True)
def reduce_rhs(indptr, indices, data, gamma, fine, cmap, dF, b, out):
    """Right-hand side of the eliminated system (:func:`eliminated_system`) for
    A x = b: ``out = b_C + gamma M_CF (b_F / dF)``, in reduced labels."""
    for s in prange(indptr.shape[0] - 1):
        if fine[s]:
            continue
        acc = b[s]
        for k in range(indptr[s], indptr[s + 1]):
            t = indices[k]
            if fine[t]:
                acc += gamma * data[k] * (b[t] / dF[t])
        out[cmap[s]] = acc


@njit(cache=True)
def reduce_rhs_transposed(indptr, indices, data, gamma, fine, cmap, dF, b, out):
    """The same for A^T y = b: ``out = b_C + gamma M_FC^T (b_F / dF)``
    (a scatter over the fine rows, in order)."""
    for s in range(indptr.shape[0] - 1):
        if not fine[s]:
            out[cmap[s]] = b[s]
    for f in range(indptr.shape[0] - 1):
        if fine[f]:
            w = gamma * (b[f] / dF[f])
            for k in range(indptr[f], indptr[f + 1]):
                t = indices[k]
                if t != f:
                    out[cmap[t]] += w * data[k]


@njit(cache=True, parallel=True)
def expand_solution(indptr, indices, data, gamma, fine, cmap, dF, b, xc, x):
    """The solution of A x = b from that of the eliminated system:
    ``x_C = xc``, ``x_F = (b_F + gamma M_FC x_C) / dF``."""
    for s in prange(indptr.shape[0] - 1):
        if not fine[s]:
            x[s] = xc[cmap[s]]
            continue
        acc = b[s]
        for k in range(indptr[s], indptr[s + 1]):
            t = indices[k]
            if t != s:
                acc += gamma * data[k] * xc[cmap[t]]
        x[s] = acc / dF[s]


@njit(cache=True)
def expand_solution_transposed(indptr, indices, data, gamma, fine, cmap, dF, b, xc, x):
    """The same for A^T y = b: ``y_C = yc``, ``y_F = (b_F + gamma M_CF^T y_C) / dF``
    (a scatter over the kept rows, in order)."""
    S = indptr.shape[0] - 1
    for s in range(S):
        x[s] = b[s] if fine[s] else xc[cmap[s]]
    for s in range(S):
        if fine[s]:
            continue
        w = gamma * xc[cmap[s]]
        for k in range(indptr[s], indptr[s + 1]):
            t = indices[k]
            if fine[t]:
                x[t] += w * data[k]
    for s in range(S):
        if fine[s]:
            x[s] /= dF[s]


@njit(cache=True, nogil=True)
def flow_order(indptr, indices, data):
    """States ordered so that each comes after its most likely successor.

    For the (S, S) CSR matrix M, let m(s) = argmax_{t != s} M[s, t] (s itself for
    a row with no other entry).  States on cycles of m have depth 0; every other
    state has depth(m(s)) + 1.  Returns the states sorted by depth (stable): a
    Gauss-Seidel sweep in this order solves a deterministic chain in one pass.
    The multigrid of :mod:`exactbilevel.evaluation` relabels states in this order.
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
    # stable counting sort by depth
    start = np.zeros(S + 1, dtype=np.int64)
    for s in range(S):
        start[depth[s] + 1] += 1
    for d in range(S):
        start[d + 1] += start[d]
    order = np.empty(S, dtype=np.int64)
    for s in range(S):
        order[start[depth[s]]] = s
        start[depth[s]] += 1
    return order


@njit(cache=True, parallel=True)
def _split_counts(indptr, indices, order, counts):
    n = order.shape[0]
    for q in prange(n):
        s = order[q]
        c = 0
        for k in range(indptr[s], indptr[s + 1]):
            if indices[k] != s:
                c += 1
        counts[q + 1] = c


@njit(cache=True, parallel=True)
def _split_fill(indptr, indices, data, gamma, order, inv, optr, oidx, oval, diag):
    n = order.shape[0]
    for q in prange(n):
        s = order[q]
        d = 1.0
        j = optr[q]
        for k in range(indptr[s], indptr[s + 1]):
            t = indices[k]
            if t == s:
                d -= gamma * data[k]
            else:
                oidx[j] = inv[t]
                oval[j] = -gamma * data[k]
                j += 1
        diag[q] = d


@njit(cache=True, nogil=True)
def permuted_split(indptr, indices, data, gamma, order):
    """The matrix A = I - gamma M (M in CSR) with rows and columns permuted by
    ``order`` (new index q is old state order[q]), in split storage: returns
    (optr, oidx, oval, diag) with diag[q] = A[order[q], order[q]] and the CSR
    arrays of the off-diagonal part, oval = A[order[q], order[j]] at column j.
    Entries of M on the diagonal fold into ``diag``."""
    n = order.shape[0]
    inv = np.empty(n, dtype=np.int64)
    for q in range(n):
        inv[order[q]] = q
    counts = np.zeros(n + 1, dtype=np.int64)
    _split_counts(indptr, indices, order, counts)
    for q in range(n):
        counts[q + 1] += counts[q]
    oidx = np.empty(counts[n], dtype=np.int64)
    oval = np.empty(counts[n], dtype=np.float64)
    diag = np.empty(n, dtype=np.float64)
    _split_fill(indptr, indices, data, gamma, order, inv, counts, oidx, oval, diag)
    return counts, oidx, oval, diag


@njit(cache=True, nogil=True)
def pairwise_aggregate(optr, oidx, oval):
    """Pairwise aggregation of the states (Notay's pairwise matching, rows only).

    Visiting states in index order, an unassigned state i is paired with the
    unassigned j of most negative a_ij (its strongest outgoing coupling); a
    state whose neighbours are all taken joins the aggregate of its strongest
    neighbour when that aggregate has fewer than 3 members, else stays alone.
    Returns (agg, nc): agg[i] in [0, nc) names i's aggregate."""
    n = optr.shape[0] - 1
    agg = np.full(n, -1, dtype=np.int64)
    size = np.zeros(n, dtype=np.int64)
    nc = 0
    for i in range(n):
        if agg[i] >= 0:
            continue
        best = -1
        bval = 0.0
        strong = -1
        sval = 0.0
        for k in range(optr[i], optr[i + 1]):
            j = oidx[k]
            if j == i:
                continue
            if agg[j] < 0 and oval[k] < bval:
                bval = oval[k]
                best = j
            if oval[k] < sval:
                sval = oval[k]
                strong = j
        if best >= 0:
            agg[i] = nc
            agg[best] = nc
            size[nc] = 2
            nc += 1
        elif strong >= 0 and size[agg[strong]] < 3:
            agg[i] = agg[strong]
            size[agg[i]] += 1
        else:
            agg[i] = nc
            size[nc] = 1
            nc += 1
    return agg, nc


@njit(cache=True, nogil=True)
def galerkin(optr, oidx, oval, diag, agg, nc):
    """Coarse level (cptr, cidx, cval, cdiag) of R A P for the piecewise-constant
    prolongation P[i, agg[i]] = 1 and R = P^T: entry (I, J) sums a_ij over i in
    aggregate I, j in aggregate J (the diagonal of A included); columns of a
    coarse row in order of first appearance."""
    n = diag.shape[0]
    # members of each aggregate (counting sort)
    mptr = np.zeros(nc + 1, dtype=np.int64)
    for i in range(n):
        mptr[agg[i] + 1] += 1
    for c in range(nc):
        mptr[c + 1] += mptr[c]
    fill = mptr[:-1].copy()
    mem = np.empty(n, dtype=np.int64)
    for i in range(n):
        c = agg[i]
        mem[fill[c]] = i
        fill[c] += 1
    cptr = np.zeros(nc + 1, dtype=np.int64)
    cidx = np.empty(optr[n], dtype=np.int64)
    cval = np.empty(optr[n], dtype=np.float64)
    cdiag = np.zeros(nc, dtype=np.float64)
    marker = np.full(nc, -1, dtype=np.int64)
    pos = 0
    for c in range(nc):
        start = pos
        d = 0.0
        for m in range(mptr[c], mptr[c + 1]):
            i = mem[m]
            d += diag[i]
            for k in range(optr[i], optr[i + 1]):
                J = agg[oidx[k]]
                if J == c:
                    d += oval[k]
                elif marker[J] < start:
                    marker[J] = pos
                    cidx[pos] = J
                    cval[pos] = oval[k]
                    pos += 1
                else:
                    cval[marker[J]] += oval[k]
        cdiag[c] = d
        cptr[c + 1] = pos
    return cptr, cidx[:pos].copy(), cval[:pos].copy(), cdiag


def padded_stack(levels, lo):
    """The split CSR levels ``[(optr, oidx, oval, ...), ...]`` (local column
    indices; level l becomes rows ``lo[l]:lo[l + 1]`` of the stack) in padded
    rows: returns ``(pidx, pval, orow, optr_o, base, width)`` (module
    docstring).  A level's width is its longest row, unless that would more
    than double its storage (n_l * width > 2 (nnz_l + n_l)): then the widest
    that does not, the rest of the longer rows in overflow.  Plain Python
    around the compiled :func:`_pad_level`, one call per level (no
    concatenated copy)."""
    width = np.empty(len(levels), dtype=np.int64)
    extra = []
    for lev, lv in enumerate(levels):
        lengths = np.diff(lv[0])
        n = lengths.size
        K = int(lengths.max(initial=0))
        if n * K > 2 * (lv[1].size + n):
            K = 2 * (lv[1].size + n) // max(n, 1)
        width[lev] = K
        extra.append(np.maximum(lengths - K, 0))
    extra = np.concatenate(extra)
    base = np.concatenate([[0], np.cumsum(np.diff(lo) * width)]).astype(np.int64)
    orow = np.flatnonzero(extra).astype(np.int64)
    optr_o = np.concatenate([[0], np.cumsum(extra[orow])]).astype(np.int64) + base[-1]
    slot = np.full(extra.size, -1, dtype=np.int64)  # overflow index of each row, -1 for none
    slot[orow] = np.arange(orow.size)
    if lo[-1] > np.iinfo(np.uint32).max:
        raise ValueError(f"the multigrid stack has {lo[-1]} rows; its 32-bit column indices hold at most 2^32")
    pidx = np.empty(optr_o[-1], dtype=np.uint32)  # 12 instead of 16 bytes a slot: two concurrent solves
    pval = np.empty(optr_o[-1])
    for lev, lv in enumerate(levels):
        _pad_level(lv[0], lv[1], lv[2], lo[lev], base[lev], width[lev], slot, optr_o, pidx, pval)
    return pidx, pval, orow, optr_o, base, width


@njit(cache=True, parallel=True)
def _pad_level(optr, oidx, oval, shift, p0, K, slot, optr_o, pidx, pval):
    """Rows of one split level into padded slots p0 + s * K + k, columns
    shifted by ``shift``; unused slots (s + shift, 0); entries past K into
    the overflow ``slot[s + shift]``."""
    for s in prange(optr.shape[0] - 1):
        p = p0 + s * K
        n = optr[s + 1] - optr[s]
        for k in range(K):
            if k < n:
                pidx[p + k] = oidx[optr[s] + k] + shift
                pval[p + k] = oval[optr[s] + k]
            else:
                pidx[p + k] = s + shift
                pval[p + k] = 0.0
        if n > K:
            q = optr_o[slot[s + shift]]
            for k in range(K, n):
                pidx[q] = oidx[optr[s] + k] + shift
                pval[q] = oval[optr[s] + k]
                q += 1


@njit(cache=True, nogil=True)
def transpose_split(optr, oidx, oval):
    """The transpose of a square CSR (a split level, its diagonal apart, or
    P_pi itself): ``(tptr, tidx, tval)`` with the entries of each row in
    increasing column order (counting sort)."""
    n = optr.shape[0] - 1
    tptr = np.zeros(n + 1, dtype=np.int64)
    for k in range(optr[n]):
        tptr[oidx[k] + 1] += 1
    for i in range(n):
        tptr[i + 1] += tptr[i]
    fill = tptr[:-1].copy()
    tidx = np.empty(optr[n], dtype=np.int64)
    tval = np.empty(optr[n])
    for s in range(n):
        for k in range(optr[s], optr[s + 1]):
            t = oidx[k]
            tidx[fill[t]] = s
            tval[fill[t]] = oval[k]
            fill[t] += 1
    return tptr, tidx, tval


@njit(cache=True, inline="always")
def _dot(pidx, pval, p, e, x):
    """sum of pval[k] x[pidx[k]] for k in p..e-1 (unsigned indices)."""
    acc = 0.0
    for k in range(p, e):
        acc += pval[k] * x[np.uint64(pidx[k])]
    return acc


@njit(cache=True, inline="always")
def _overflow_rows(orow, a, e):
    """The overflow indices j0..j1-1 of the rows a..e-1."""
    return np.searchsorted(orow, a), np.searchsorted(orow, e)


@njit(cache=True)
def gauss_seidel(pidx, pval, orow, optr_o, idiag, base, width, lo, lev, reverse, b, x):
    """One in-place Gauss-Seidel sweep for A x = b over the rows of level ``lev``
    of a padded stack, in index order (reversed when ``reverse``):
    x[s] <- (b[s] - sum_t a_st x[t]) / a_ss."""
    a, n = lo[lev], lo[lev + 1] - lo[lev]
    p0, K = np.uint64(base[lev]), np.uint64(width[lev])
    j0, j1 = _overflow_rows(orow, a, a + n)
    j = j1 - 1 if reverse else j0
    step = -1 if reverse else 1
    for q in range(n):
        i = np.uint64(n - 1 - q if reverse else q)
        s = np.uint64(a) + i
        p = p0 + i * K
        acc = b[s] - _dot(pidx, pval, p, p + K, x)
        if j0 <= j < j1 and orow[j] == a + np.int64(i):
            acc -= _dot(pidx, pval, optr_o[j], optr_o[j + 1], x)
            j += step
        x[s] = acc * idiag[s]


@njit(cache=True, parallel=True)
def apply_rows(pidx, pval, orow, optr_o, diag, base, width, lo, lev, matvec, b, x, out):
    """For the rows s of level ``lev``: out[s] = (A x)[s] with ``matvec``, else
    the residual b[s] - (A x)[s]."""
    a, e = lo[lev], lo[lev + 1]
    p0, K = np.uint64(base[lev]), np.uint64(width[lev])
    sign = 1.0 if matvec else -1.0
    for s in prange(a, e):
        u = np.uint64(s)
        p = p0 + (u - np.uint64(a)) * K
        out[u] = (0.0 if matvec else b[u]) + sign * (diag[u] * x[u] + _dot(pidx, pval, p, p + K, x))
    j0, j1 = _overflow_rows(orow, a, e)
    for j in prange(j0, j1):
        out[orow[j]] += sign * _dot(pidx, pval, optr_o[j], optr_o[j + 1], x)


@njit(cache=True)
def split_matvec(pidx, pval, orow, optr_o, diag, base, width, lo, x, out):
    """out = A x for the rows of level 0 of a padded stack."""
    apply_rows(pidx, pval, orow, optr_o, diag, base, width, lo, 0, True, x, x, out)


@njit(cache=True, parallel=True)
def vcycle(pidx, pval, orow, optr_o, diag, idiag, base, width, lo, agg, coarse_inv, pre_reverse, post_reverse, b, x, B,
           X, R):
    """x = one V(1, 1) cycle from zero for A_0 x = b on a padded stack.

    Level l (rows lo[l]:lo[l+1]): a Gauss-Seidel sweep from zero (in reverse
    index order when ``pre_reverse``), the residual (in parallel, into R)
    restricted to level l + 1 by summing over aggregates (the Galerkin R = P^T
    of the piecewise-constant prolongation P); on the last level
    ``X = coarse_inv @ B`` when ``coarse_inv`` is its (n_L, n_L) inverse, else
    a forward and a backward sweep; then back up, the coarse correction
    prolonged (x_i += x_{agg[i]}) and a sweep (reversed when ``post_reverse``).
    B, X and R are work arrays with one entry per row of the stack.  The
    transpose of the cycle with sweeps (pre, post) on A is the cycle with the
    opposite sweeps (reversed post, reversed pre) on the transposed stack (the
    same diagonal and lo, every level transposed, ``coarse_inv`` transposed).
    """
    L = lo.shape[0] - 1
    n0 = lo[1]
    for s in prange(n0):
        B[s] = b[s]
    for lev in range(L - 1):
        a, e = lo[lev], lo[lev + 1]
        for s in prange(a, e):
            X[s] = 0.0
        gauss_seidel(pidx, pval, orow, optr_o, idiag, base, width, lo, lev, pre_reverse, B, X)
        apply_rows(pidx, pval, orow, optr_o, diag, base, width, lo, lev, False, B, X, R)
        for c in range(lo[lev + 1], lo[lev + 2]):
            B[c] = 0.0
        for s in range(a, e):  # restriction (sequential: scatter-add)
            u = np.uint64(s)
            B[np.uint64(agg[u])] += R[u]
    a, e = lo[L - 1], lo[L]
    if coarse_inv.shape[0] == e - a:
        for i in prange(e - a):
            acc = 0.0
            for j in range(e - a):
                acc += coarse_inv[i, j] * B[a + j]
            X[a + i] = acc
    else:
        for s in range(a, e):
            X[s] = 0.0
        gauss_seidel(pidx, pval, orow, optr_o, idiag, base, width, lo, L - 1, False, B, X)
        gauss_seidel(pidx, pval, orow, optr_o, idiag, base, width, lo, L - 1, True, B, X)
    for lev in range(L - 2, -1, -1):
        a, e = lo[lev], lo[lev + 1]
        for s in prange(a, e):
            u = np.uint64(s)
            X[u] += X[np.uint64(agg[u])]
        gauss_seidel(pidx, pval, orow, optr_o, idiag, base, width, lo, lev, post_reverse, B, X)
    for s in prange(n0):
        x[s] = X[s]


#: Block length of the partial results of :func:`reduce_blocks` (fixed, so
#: they do not depend on the thread count).
DOT_BLOCK = 4096


@njit(cache=True, parallel=True)
def reduce_blocks(u, v, kind):
    """``kind`` 0: max_i |u_i|;  1: sum_i |u_i|;  2: sum_i u_i v_i.

    Partial results over fixed blocks of DOT_BLOCK entries in parallel, then
    combined in order, so the result is the same on any number of threads."""
    n = u.shape[0]
    nb = (n + DOT_BLOCK - 1) // DOT_BLOCK
    part = np.empty(nb)
    for j in prange(nb):
        acc = 0.0
        for i in range(j * DOT_BLOCK, min(n, (j + 1) * DOT_BLOCK)):
            if kind == 0:
                acc = max(acc, abs(u[i]))
            elif kind == 1:
                acc += abs(u[i])
            else:
                acc += u[i] * v[i]
        part[j] = acc
    total = 0.0
    for j in range(nb):
        total = max(total, part[j]) if kind == 0 else total + part[j]
    return total


@njit(cache=True)
def dot(u, v):
    """sum_i u_i v_i (:func:`reduce_blocks`)."""
    return reduce_blocks(u, v, 2)


@njit(cache=True)
def norm(u, ord_):
    """|u|_inf for ``ord_ = 0``, |u|_1 for ``ord_ = 1`` (:func:`reduce_blocks`)."""
    return reduce_blocks(u, u, ord_)


@njit(cache=True, parallel=True, nogil=True)
def bicgstab(pidx, pval, orow, optr_o, diag, idiag, base, width, lo, agg, coarse_inv, pre_reverse, post_reverse, b,
             atol, ord_, maxiter, x):
    """BiCGSTAB (van der Vorst 1992) for A_0 x = b, right-preconditioned by
    :func:`vcycle`, from x = 0.

    Stops when the recursive residual r has ``norm(r, ord_) <= atol`` (:func:`norm`:
    the sup-norm or the 1-norm, those of the caller's certificate).  Writes x
    and returns ``(status, iterations)``: status 0 converged, 1 not within
    ``maxiter`` iterations, -1 breakdown (a zero inner product).  The caller
    checks the true residual.
    """
    n = lo[1]
    N = lo[lo.shape[0] - 1]
    B, X, R = np.empty(N), np.empty(N), np.empty(N)
    r, rhat, p, v = np.empty(n), np.empty(n), np.zeros(n), np.zeros(n)
    y, z, t = np.empty(n), np.empty(n), np.empty(n)
    for i in prange(n):
        x[i] = 0.0
        r[i] = b[i]
        rhat[i] = b[i]
    if norm(b, ord_) <= atol:
        return 0, 0
    rho, alpha, omega = 1.0, 1.0, 1.0
    for it in range(maxiter):
        rho1 = dot(rhat, r)
        if rho1 == 0.0:
            return -1, it
        beta = (rho1 / rho) * (alpha / omega)
        for i in prange(n):
            p[i] = r[i] + beta * (p[i] - omega * v[i])
        vcycle(pidx, pval, orow, optr_o, diag, idiag, base, width, lo, agg, coarse_inv, pre_reverse, post_reverse,
               p, y, B, X, R)
        split_matvec(pidx, pval, orow, optr_o, diag, base, width, lo, y, v)
        den = dot(rhat, v)
        if den == 0.0:
            return -1, it
        alpha = rho1 / den
        for i in prange(n):
            x[i] += alpha * y[i]
            r[i] -= alpha * v[i]  # r is now s
        if norm(r, ord_) <= atol:
            return 0, it + 1
        vcycle(pidx, pval, orow, optr_o, diag, idiag, base, width, lo, agg, coarse_inv, pre_reverse, post_reverse,
               r, z, B, X, R)
        split_matvec(pidx, pval, orow, optr_o, diag, base, width, lo, z, t)
        tt = dot(t, t)
        omega = dot(t, r) / tt if tt > 0.0 else 0.0
        if omega == 0.0:
            return -1, it
        for i in prange(n):
            x[i] += omega * z[i]
            r[i] -= omega * t[i]
        if norm(r, ord_) <= atol:
            return 0, it + 1
        rho = rho1
    return 1, maxiter


@njit(cache=True, nogil=True)
def split_dense(optr, oidx, oval, diag):
    """The split matrix as a dense (n, n) array (for the coarsest level)."""
    n = diag.shape[0]
    out = np.zeros((n, n))
    for s in range(n):
        out[s, s] += diag[s]
        for k in range(optr[s], optr[s + 1]):
            out[s, oidx[k]] += oval[k]
    return out
