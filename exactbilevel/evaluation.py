"""Exact policy evaluation and occupancy measures (docs/theory.rst, "The lower level").

For a policy ``pi`` of shape ``(S, A)`` (rows on the simplex) let
``P_pi[s, s'] = sum_a pi(a|s) P(s'|s, a)`` and ``H_pi(s) = -sum_a pi log pi``.
Then::

    V^pi = (I - gamma P_pi)^(-1) ( sum_a pi * r  +  tau * H_pi )
    Q^pi = r + gamma * P V^pi
    d^pi = (1 - gamma) (I - gamma P_pi^T)^(-1) rho          (sums to 1)
    nu^pi(s, a) = d^pi(s) * pi(a|s)

Both systems are solved by :class:`PolicySystem`: an LU factorization when
S <= ``DENSE_LU_MAX_STATES`` (exact to rounding; dense for dense MDPs, SuperLU's
sparse LU for sparse ones); beyond, for sparse MDPs, the exact elimination of
an independent set of states where one holds a quarter of them or more
(:class:`_Elimination`: on a grid every other cell, which leaves a system of
the same kind on the other half), then a compiled BiCGSTAB preconditioned by
one V-cycle of an aggregation multigrid (:class:`_Multigrid`: states
relabelled in flow order, double pairwise aggregation, Galerkin coarse levels,
Gauss-Seidel smoothing; one hierarchy serves both systems, the cycle on its
transpose being the exact transpose of the cycle), and for dense MDPs
unpreconditioned GMRES on BLAS matvecs; either way with iterative refinement on
the true residual (the plain CSR or dense matvec) until it certifies the
answer:
``|V - V^pi|_inf <= |res|_inf / (1 - gamma) <= rtol * |b|_inf / (1 - gamma)``
and ``|d - d^pi|_1 <= rtol`` with ``rtol = 1e-12`` by default, or
:class:`~exactbilevel.ConvergenceError`.
On the 1000 x 1000 GridWorld (S = 10^6, gamma = 0.99) the soft-optimal policy
(tau = 0.1) is evaluated in 15 BiCGSTAB iterations on the 500,000 kept states
(each two V-cycles of 16-22 ms and two matvecs of 2 ms) after a 0.4 s setup
(P_pi from the stencil form, the elimination, flow order, hierarchy), 1.0-1.3 s
cold on 2 cores; its occupancy then takes 14 iterations after 0.1 s for the
transposed levels (hidden in the setup when the occupancy is asked for
first, or together with a forward solve).  Without the elimination: 19 and 18
iterations on all 10^6 states, V-cycles of 25-30 ms, 1.9-2.3 s cold (scipy's BiCGSTAB on a
Python V-cycle and a hierarchy per direction took 23 and 33 iterations, 4 s
and 9 s; GMRES(50) with one Gauss-Seidel sweep, 100-200+ iterations and 36 s).
:meth:`PolicySystem.solve_many` runs independent solves concurrently.
No dense S x S matrix is formed for sparse MDPs.
"""

from __future__ import annotations

import collections
import concurrent.futures

import numba
import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from . import _kernels, _stencil_kernels
from . import _multigrid_kernels as _mg
from ._validation import ConvergenceError, as_float_array, check_tau
from .bellman import check_mdp, check_reward, stencil_policy_weights, sweep

__all__ = ["evaluate", "occupancy", "PolicySystem", "policy_system", "clear_policy_systems", "policy_reward",
           "check_in_range", "DENSE_LU_MAX_STATES"]

#: Largest S for which policy systems are solved by an LU factorization (dense or sparse).
DENSE_LU_MAX_STATES = 3000

#: The multigrid of large sparse policy systems coarsens down to this many states.
MULTIGRID_COARSE_STATES = 400

#: Iteration cap of one BiCGSTAB run of the multigrid path (the caller refines and retries).
MULTIGRID_MAXITER = 200

#: The multigrid path first eliminates an independent set of states (:class:`_Elimination`)
#: when it holds at least this fraction of the states.
ELIMINATE_MIN_FRACTION = 0.25

#: Tolerance on |sum_a pi(a|s) - 1|.
POLICY_SUM_TOL = 1e-9


def check_policy(mdp, pi, name="pi"):
    """pi must be (S, A), finite, >= 0, rows summing to 1 within POLICY_SUM_TOL.

    One compiled pass (:func:`~exactbilevel._kernels.policy_defects`) accepts a
    valid policy (2.5 ms instead of 20 ms for S A = 4 10^6); otherwise numpy
    finds the first offending entry or row for the error message."""
    pi = as_float_array(name, pi, shape=(mdp.S, mdp.A), finite=False)
    if _kernels.policy_defects(pi, POLICY_SUM_TOL) == 0:
        return pi
    pi = as_float_array(name, pi, nonneg=True)
    with np.errstate(over="ignore"):
        sums = pi.sum(axis=1)
    bad = np.flatnonzero(np.abs(sums - 1.0) > POLICY_SUM_TOL)
    if bad.size:
        s = int(bad[0])
        raise ValueError(
            f"{name}[{s}, :] sums to {sums[s]!r}, not 1 (tolerance {POLICY_SUM_TOL}); "
            "every row of a policy must be a distribution over actions"
        )
    return pi


class PolicySystem:
    """The linear systems ``(I - gamma P_pi) x = b`` and ``(I - gamma P_pi^T) y = c``.

    Built once per policy and reused for several right-hand sides (values,
    occupancies, and later the implicit-differentiation solves).  ``solve``
    returns x with ``|b - (I - gamma P_pi) x|_inf <= rtol * |b|_inf`` (for the
    transposed system, the same in the 1-norm), or raises :class:`~exactbilevel.ConvergenceError`.
    """

    @_kernels.serial_when_small
    def __init__(self, mdp, pi, factor=True):
        self.mdp = mdp
        self.gamma = mdp.gamma
        S = mdp.S
        self._lu = None
        if mdp.is_sparse:
            if mdp.stencil is not None:  # from the stencil form (20 ms instead of 130 ms at S = 10^6)
                starts, _, _, uoff, _, nu = mdp.stencil
                ptr, idx, val = _stencil_kernels.policy_matrix(starts, uoff, nu, stencil_policy_weights(mdp, pi))
            else:
                ptr, idx, val = _kernels.policy_matrix_csr(*mdp.csr, pi)
            self._csr = (ptr, idx, val)
            self._csr_T = None
            self._mg = self._elim = None
            if factor and S <= DENSE_LU_MAX_STATES:  # sparse LU (SuperLU): no dense S x S matrix
                M = sp.csr_matrix((val, idx, ptr), shape=(S, S))
                self._lu = spla.splu((sp.identity(S, format="csc") - mdp.gamma * M).tocsc())
        else:
            M = np.empty((S, S))
            _kernels.policy_matrix_dense(mdp.P, pi, M)
            self._dense = M
            if factor and S <= DENSE_LU_MAX_STATES:
                self._lu = sla.lu_factor(np.eye(S) - mdp.gamma * M, check_finite=False)

    @classmethod
    def _from_csr(cls, mdp, csr):
        """A system of a sparse MDP on a ready CSR (indptr, indices, data) of
        P_pi (no LU factorization): the refilled matrices of policy iteration."""
        self = cls.__new__(cls)
        self.mdp, self.gamma, self._lu = mdp, mdp.gamma, None
        self._csr, self._csr_T, self._mg, self._elim = csr, None, None, None
        return self

    def _csr_of(self, transpose):
        if not transpose:
            return self._csr
        if self._csr_T is None:
            self._csr_T = _mg.transpose_split(*self._csr)
        elif isinstance(self._csr_T, concurrent.futures.Future):  # built beside the multigrid setup
            self._csr_T = self._csr_T.result()
        return self._csr_T

    @_kernels.serial_when_small
    def backup(self, b, x, sweeps):
        """``sweeps`` applications of ``x <- b + gamma P_pi x`` (each a
        gamma-contraction towards the solution) for a sparse MDP: the partial
        evaluation of modified policy iteration (dense MDPs: ``_kernels.dense_backups``)."""
        out = np.empty_like(x)
        for _ in range(sweeps):
            _kernels.csr_backup(*self._csr, b, self.gamma, x, out)
            x, out = out, x
        return x

    def matvec(self, v, transpose=False):
        """``(I - gamma P_pi) v``, or ``(I - gamma P_pi^T) v`` with ``transpose``."""
        g = self.gamma
        if self.mdp.is_sparse:
            out = np.empty_like(v)
            _kernels.csr_shifted_matvec(*self._csr_of(transpose), v, g, out)
            return out
        M = self._dense
        return v - g * (M.T @ v if transpose else M @ v)

    def _multigrid(self, transposed=False):
        """The multigrid, of the system left by :class:`_Elimination` when that applies.
        With ``transposed`` (a transposed solve is coming), the parts only the
        transposed system needs (P_pi^T and the transposed stack) are built in a
        second thread while the forward setup, which is sequential, runs, and
        while the forward solves start (the compiled setup kernels release the
        GIL); they are waited for where first used (:meth:`_csr_of`,
        :meth:`_Multigrid._stack`)."""
        if self._mg is None:
            pool = concurrent.futures.ThreadPoolExecutor(1) if transposed and _threadsafe_numba() else None
            if pool is not None and self._csr_T is None:
                self._csr_T = pool.submit(_mg.transpose_split, *self._csr)
            self._elim = _Elimination.of(*self._csr, self.gamma)
            csr = self._csr if self._elim is None else self._elim.reduced
            self._mg = _Multigrid(*csr, self.gamma, pool=pool)
            if pool is not None:
                pool.shutdown(wait=False)  # its thread ends with the last task
        return self._mg

    def _multigrid_solve(self, b, atol, transpose):
        """:meth:`_Multigrid.solve` on the eliminated system when there is one: the residual
        of the answer is that of the eliminated system on the kept states, zero (to rounding)
        on the eliminated ones, so ``atol`` carries over in either norm."""
        mg = self._multigrid(transpose)
        if self._elim is None:
            return mg.solve(b, atol, transpose)
        return self._elim.expand(b, mg.solve(self._elim.reduce(b, transpose), atol, transpose), transpose)

    def solve_many(self, jobs, rtol=1e-12):
        """Solve independent systems: ``jobs`` is a list of ``(b, transpose)``;
        returns their solutions in order, each with :meth:`solve`'s guarantee.

        On the multigrid path (large sparse MDPs) up to ``numba.get_num_threads()``
        run at once, each in a thread of its own with one Numba thread (the
        compiled BiCGSTAB releases the GIL): the sequential Gauss-Seidel sweeps
        of two solves then share the cores.  Where Numba's threading layer is not
        thread-safe (workqueue), or elsewhere, one after the other.  The answers
        are the same bits either way (every reduction sums fixed blocks).
        """
        jobs = [(np.ascontiguousarray(b, dtype=np.float64), bool(t)) for b, t in jobs]
        workers = min(len(jobs), numba.get_num_threads())
        if self._lu is not None or not self.mdp.is_sparse or workers < 2 or not _threadsafe_numba():
            return [self.solve(b, transpose=t, rtol=rtol) for b, t in jobs]
        mg = self._multigrid(any(t for _, t in jobs))

        def one(job):
            numba.set_num_threads(1)  # thread-local
            return self.solve(job[0], transpose=job[1], rtol=rtol)

        futures = [None] * len(jobs)
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers) as pool:
            for transpose in (False, True):  # the forward solves run while the transposed levels are built
                if any(t == transpose for _, t in jobs):
                    self._csr_of(transpose)  # lazy parts: built here, before the threads share them
                    mg._stack(transpose)
                for i, job in enumerate(jobs):
                    if job[1] == transpose:
                        futures[i] = pool.submit(one, job)
            return [f.result() for f in futures]

    @_kernels.serial_when_small
    def solve(self, b, transpose=False, x0=None, rtol=1e-12, maxiter=50):
        """Solve the system; see the class docstring for the guarantee.

        Large sparse systems: BiCGSTAB preconditioned by one V-cycle of the
        aggregation multigrid :class:`_Multigrid` (built on first use, shared
        by both directions), stopped in the certificate's norm, with
        iterative refinement on the true residual computed by the plain CSR
        matvec of P_pi.  Large dense systems: GMRES on BLAS
        matvecs, likewise refined.
        """
        ord_ = 1 if transpose else np.inf
        b = np.ascontiguousarray(b, dtype=np.float64)
        scale = np.linalg.norm(b, ord_)
        target = rtol * scale
        if isinstance(self._lu, spla.SuperLU):
            return self._lu.solve(b, trans="T" if transpose else "N")
        if self._lu is not None:
            return sla.lu_solve(self._lu, b, trans=1 if transpose else 0, check_finite=False)
        if scale == 0.0:
            return np.zeros_like(b)
        S = b.shape[0]
        if self.mdp.is_sparse:
            def correction(res, rnorm):
                # the compiled BiCGSTAB stops in the certificate's norm, at half the target
                return self._multigrid_solve(res, 0.5 * target, transpose)
        else:
            op = spla.LinearOperator((S, S), matvec=lambda v: self.matvec(v, transpose), dtype=np.float64)

            def correction(res, rnorm):
                # GMRES works in the 2-norm: ask for a little more than needed
                rel = max(0.1 * target / rnorm, 1e-15)
                dx, _info = spla.gmres(op, res, rtol=rel, atol=0.0, restart=50, maxiter=20)
                return dx
        if x0 is None:
            x, res = np.zeros_like(b), b.copy()
        else:
            x = np.array(x0, dtype=np.float64)
            res = b - self.matvec(x, transpose)
        rnorm = np.linalg.norm(res, ord_)
        for _ in range(maxiter):
            if rnorm <= target:
                return x
            # refine on the true residual, in the norm that certifies the answer
            x = x + correction(res, rnorm)
            res = b - self.matvec(x, transpose)
            rnorm = np.linalg.norm(res, ord_)
        if rnorm <= target:
            return x
        raise ConvergenceError(
            f"policy linear solve did not reach residual {target:.3g} after {maxiter} refinement "
            f"rounds (residual {rnorm:.3g}); gamma = {self.gamma} may be too close to 1 for the "
            "Krylov solver at this size"
        )


class _Elimination:
    """Exact elimination of an independent set of states, before the multigrid.

    With F a maximal independent set of the coupling graph of M = P_pi
    (:func:`~exactbilevel._multigrid_kernels.independent_states`) and C the
    other states, the block A_FF of A = I - gamma M is diagonal, dF = 1 -
    gamma M_ff, and ``A x = b`` is solved exactly through the smaller system
    (:func:`~exactbilevel._multigrid_kernels.eliminated_system`)::

        (I - gamma M_C) x_C = b_C + gamma M_CF (b_F / dF),
        M_C = M_CC + gamma M_CF diag(1 / dF) M_FC,
        x_F = (b_F + gamma M_FC x_C) / dF;

    ``A^T y = c`` likewise through ``(I - gamma M_C)^T`` (one cycle of
    red-black reduction on a grid).  M_C is a policy matrix of the chain
    observed every other step, with the second step discounted, so the
    eliminated system is again a diagonally dominant M-matrix for the same
    multigrid.  The residual of the expanded answer is that of the eliminated
    system on C and zero (to rounding) on F.  Used when F holds at least
    ``ELIMINATE_MIN_FRACTION`` of the states and the eliminated system is no
    more work per sweep (n_C + nnz(M_C) <= S + nnz(M)).  On the 1000 x 1000
    GridWorld (F a checkerboard, M_C of 9 entries per row on 500,000 states)
    the soft-optimal policy is evaluated in 15 BiCGSTAB iterations of 45-55 ms
    instead of 19 of 75-85 ms, its occupancy in 14 instead of 18.
    """

    def __init__(self, csr, gamma, fine, cmap, dF, reduced):
        self.csr, self.gamma, self.fine, self.cmap, self.dF = csr, gamma, fine, cmap, dF
        self.reduced = reduced  # CSR (indptr, indices, data) of M_C

    @classmethod
    def of(cls, indptr, indices, data, gamma):
        """The elimination of M's independent set, or None where it does not pay."""
        S = indptr.shape[0] - 1
        fine = _mg.independent_states(indptr, indices)
        nF = int(np.count_nonzero(fine))
        if nF < ELIMINATE_MIN_FRACTION * S or nF == S:
            return None
        cmap, cptr, cidx, cval, dF = _mg.eliminated_system(indptr, indices, data, gamma, fine)
        if (S - nF) + cidx.shape[0] > S + indices.shape[0]:
            return None
        return cls((indptr, indices, data), gamma, fine, cmap, dF, (cptr, cidx, cval))

    def reduce(self, b, transpose):
        """The right-hand side of the eliminated system (reduced labels)."""
        out = np.empty(self.reduced[0].shape[0] - 1)
        kernel = _mg.reduce_rhs_transposed if transpose else _mg.reduce_rhs
        kernel(*self.csr, self.gamma, self.fine, self.cmap, self.dF, np.ascontiguousarray(b, dtype=np.float64), out)
        return out

    def expand(self, b, xc, transpose):
        """The solution on all states from ``xc``, that of the eliminated system."""
        x = np.empty(self.fine.shape[0])
        kernel = _mg.expand_solution_transposed if transpose else _mg.expand_solution
        kernel(*self.csr, self.gamma, self.fine, self.cmap, self.dF, np.ascontiguousarray(b, dtype=np.float64),
               xc, x)
        return x


class _Multigrid:
    """Aggregation multigrid for ``A = I - gamma M`` and ``A^T`` (M a CSR
    matrix with nonnegative entries and row sums <= 1, so A is a
    row-diagonally dominant nonsingular M-matrix), the preconditioner of a
    compiled BiCGSTAB (:func:`~exactbilevel._multigrid_kernels.bicgstab`).

    Setup, once for both systems: the states are relabelled in flow order
    (:func:`~exactbilevel._multigrid_kernels.flow_order`: each after its most
    likely successor), which makes the forward Gauss-Seidel sweeps follow the
    flow of the chain and keeps their memory access local; then levels by
    double pairwise aggregation
    (:func:`~exactbilevel._multigrid_kernels.pairwise_aggregate` twice,
    aggregates of up to about 4 states) with the Galerkin coarse matrices
    ``P^T A P`` of the piecewise-constant prolongation P
    (:func:`~exactbilevel._multigrid_kernels.galerkin`; they stay diagonally
    dominant M-matrices), down to ``MULTIGRID_COARSE_STATES`` states, solved
    by a dense inverse.  Should the aggregation stall above
    ``DENSE_LU_MAX_STATES`` states, the last level is smoothed instead of
    solved.  The levels are stacked into one block-diagonal matrix, stored in
    padded rows (a fixed number of slots per row and level, the few rows much
    longer than the rest continued in overflow,
    :func:`~exactbilevel._multigrid_kernels.padded_stack`); the transposed
    system uses the transposed stack (by
    :func:`~exactbilevel._multigrid_kernels.transpose_split`: on first use, or
    in a second thread during the setup when a transposed solve is known to
    come, see :meth:`PolicySystem._multigrid`), on which the
    same cycle is the exact transpose of the cycle on A, so both systems see
    the same preconditioned spectrum.

    Cycle (:func:`~exactbilevel._multigrid_kernels.vcycle`): V(1, 1) with
    forward Gauss-Seidel pre- and post-sweeps for A (in flow order: they follow
    the chain) and backward ones for A^T (so that its cycle is the exact
    transpose).  BiCGSTAB iterations to a residual of 5e-13 |b| (A / A^T) with
    these sweeps, against a forward pre-sweep and a backward post-sweep on
    both: soft-optimal policy of the 1000 x 1000 GridWorld 19 / 16 (21 / 17);
    of the 300 x 300 one 16 / 15 (21 / 18), at gamma = 0.999 27 / 35 (36 /
    36); a 300 x 300 policy 70% deterministic 68 / 63 (75 / 67); the uniform
    policy there 15 / 12 (13 / 10); a random sparse MDP of 20000 states 5 / 5
    (6 / 6).  On the systems :class:`_Elimination` leaves (as
    :class:`PolicySystem` runs it), in the same order: 15 / 14, 13 / 11, 23 /
    21, 36 / 31, 15 / 12, and the random MDP keeps all its states.

    Measured and not taken: no pre-sweep on the finest level (V(0, 1) there)
    saves 11-18% on the 1000 x 1000 GridWorld but doubles the iterations of
    the 70%-deterministic policy (139 / 119); V(0, 2) there changes the
    GridWorld times by 0 to -16% and breaks the transpose relation;
    Gauss-Seidel in two parallel blocks (a flow-aligned split, the blocks
    coupled Jacobi-style) gives 20 instead of 18 iterations and 10%.  With
    scipy's BiCGSTAB on the 1000 x 1000 GridWorld (full system: 17 iterations
    with this cycle), the exact coarse solve of a two-grid method, or a
    W-cycle, takes 14 (the coarse levels are not what limits it; on the
    eliminated system 11 against 12); scaling the coarse correction by 1.2-2,
    15-32 on the 300 x 300 one (14); two or three sweeps on its finest level,
    13 or 10, for two or three times that level's work.
    """

    #: (pre-sweep reversed, post-sweep reversed) for A and for A^T.
    SWEEPS = {False: (False, False), True: (True, True)}

    def __init__(self, indptr, indices, data, gamma, pool=None):
        """With ``pool`` (an executor of one thread), the transposed stack is
        built there, each level transposed while the next is aggregated, and
        padded while the forward stack is; else on first use.  Either way
        :meth:`_stack` has it when first asked for it."""
        self.order = _mg.flow_order(indptr, indices, data)
        lev = _mg.permuted_split(indptr, indices, data, gamma, self.order)
        levels, aggs, coarse = [lev], [], None
        transposed = [] if pool is None else [pool.submit(_mg.transpose_split, *lev[:3])]
        while True:
            n = lev[3].shape[0]
            if n <= MULTIGRID_COARSE_STATES:
                coarse = _mg.split_dense(*lev)
                break
            agg1, n1 = _mg.pairwise_aggregate(*lev[:3])
            mid = _mg.galerkin(*lev, agg1, n1)
            agg2, nc = _mg.pairwise_aggregate(*mid[:3])
            if nc > 0.9 * n:  # the aggregation stalls
                if n <= DENSE_LU_MAX_STATES:
                    coarse = _mg.split_dense(*lev)
                break
            aggs.append(agg2[agg1])
            lev = _mg.galerkin(*mid, agg2, nc)
            levels.append(lev)
            if pool is not None:
                transposed.append(pool.submit(_mg.transpose_split, *lev[:3]))
        sizes = np.array([lv[3].shape[0] for lv in levels])
        lo = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.lo = lo
        self.diag = np.concatenate([lv[3] for lv in levels])
        self.idiag = 1.0 / self.diag
        self.agg = np.concatenate([a + lo[i + 1] for i, a in enumerate(aggs)] + [np.zeros(0, np.int64)])
        self.coarse_inv = np.linalg.inv(coarse) if coarse is not None else np.zeros((0, 0))
        self._levels = levels if pool is None else None  # kept until the transposed stack is built here
        self._padded_T = None  # the worker pads the transposed levels it made, in order
        if pool is not None:
            self._padded_T = pool.submit(lambda: _mg.padded_stack([f.result() for f in transposed], lo))
        self._padded = {False: _mg.padded_stack(levels, lo)}
        self.iterations = []  # BiCGSTAB iterations of each solve, for diagnostics

    @property
    def sizes(self):
        """States per level, finest first."""
        return np.diff(self.lo)

    def _stack(self, transpose):
        """The arguments of the solve kernels for A (or A^T, built on first use)."""
        if transpose not in self._padded:
            if self._padded_T is not None:
                self._padded[True] = self._padded_T.result()
            else:
                levels_T = [_mg.transpose_split(*lv[:3]) for lv in self._levels]
                self._padded[True] = _mg.padded_stack(levels_T, self.lo)
            self._coarse_inv_T = np.ascontiguousarray(self.coarse_inv.T)
            self._levels = self._padded_T = None
        pidx, pval, orow, optr_o, base, width = self._padded[transpose]
        cinv = self._coarse_inv_T if transpose else self.coarse_inv
        return (pidx, pval, orow, optr_o, self.diag, self.idiag, base, width, self.lo, self.agg, cinv,
                *self.SWEEPS[transpose])

    def vcycle(self, b, transpose=False):
        """One V-cycle for ``A x = b`` (``A^T`` with ``transpose``), permuted labels."""
        N = self.diag.shape[0]
        x = np.empty(self.lo[1])
        _mg.vcycle(*self._stack(transpose), np.ascontiguousarray(b, dtype=np.float64), x,
                   np.empty(N), np.empty(N), np.empty(N))
        return x

    def solve(self, b, atol, transpose=False):
        """Approximate solution of ``A x = b`` (``A^T``; original labels) with
        a residual of about ``atol`` in the sup-norm (the 1-norm for ``A^T``):
        compiled BiCGSTAB, scipy's GMRES(50) with the same cycle should
        BiCGSTAB break down.  No guarantee: the caller refines on the true
        residual."""
        stack = self._stack(transpose)
        bp = np.ascontiguousarray(b[self.order])
        xp = np.empty_like(bp)
        status, its = _mg.bicgstab(*stack, bp, atol, 1 if transpose else 0, MULTIGRID_MAXITER, xp)
        self.iterations.append(int(its))
        if status != 0 or not np.all(np.isfinite(xp)):
            n = bp.shape[0]

            def matvec(v):
                out = np.empty(n)
                pidx, pval, orow, optr_o, diag, _, base, width, lo = stack[:9]
                _mg.split_matvec(pidx, pval, orow, optr_o, diag, base, width, lo,
                                 np.ascontiguousarray(v, dtype=np.float64), out)
                return out

            op = spla.LinearOperator((n, n), matvec=matvec, dtype=np.float64)
            prec = spla.LinearOperator((n, n), matvec=lambda v: self.vcycle(v, transpose), dtype=np.float64)
            # GMRES works in the 2-norm: |r|_2 <= atol bounds both norms of the certificate only
            # up to a factor sqrt(n) (1-norm); the caller refines on the true residual.
            xp, _info = spla.gmres(op, bp, M=prec, rtol=0.0, atol=atol, restart=50, maxiter=10)
        x = np.empty_like(xp)
        x[self.order] = xp
        return x


def _threadsafe_numba():
    """Whether Numba's threading layer allows parallel kernels launched from two threads."""
    try:
        return numba.threading_layer() in ("omp", "tbb")
    except ValueError:  # no parallel kernel has run yet
        return False


#: How many policy systems :func:`policy_system` keeps.
SYSTEM_CACHE_SIZE = 4
_systems = collections.OrderedDict()


@_kernels.serial_when_small
def policy_system(mdp, pi):
    """The :class:`PolicySystem` of ``(mdp, pi)``, shared between calls on the same policy.

    Gradients, objectives and diagnostics evaluate one policy several times (its
    values, its occupancy, an objective's cost values, the adjoint); this keeps the
    last ``SYSTEM_CACHE_SIZE`` systems, keyed by the MDP object and the policy's
    contents (a copy is kept and compared, so changing ``pi`` in place is safe), so
    each policy matrix and its factorization or multigrid is built once.  Memory:
    up to ``SYSTEM_CACHE_SIZE`` systems (two S x S arrays each for S <= 3000).
    """
    pi = np.ascontiguousarray(pi, dtype=np.float64)
    key = (id(mdp), pi.shape, int(_kernels.fingerprint(pi.reshape(-1).view(np.uint64))))
    hit = _systems.get(key)
    if hit is not None and hit[0] is mdp and np.array_equal(hit[1], pi):
        _systems.move_to_end(key)
        return hit[2]
    system = PolicySystem(mdp, pi)
    _systems[key] = (mdp, np.array(pi), system)
    while len(_systems) > SYSTEM_CACHE_SIZE:
        _systems.popitem(last=False)
    return system


def clear_policy_systems():
    """Forget the systems kept by :func:`policy_system` (to free memory, or to time cold calls)."""
    _systems.clear()


@_kernels.serial_when_small
def evaluate(mdp, r, pi, tau=0.0):
    """Exact entropy-regularized evaluation of ``pi``: returns ``(V, Q)``.

    V has shape ``(S,)``, Q shape ``(S, A)``; formulas in the module docstring.
    Accuracy: ``|V - V^pi|_inf <= 1e-12 * |b|_inf / (1 - gamma)`` with
    ``b = sum_a pi r + tau H_pi`` (dense LU: to rounding).
    """
    check_mdp(mdp)
    r = check_reward(mdp, r)
    pi = check_policy(mdp, pi)
    tau = check_tau(tau)
    V, Q = evaluate_unchecked(mdp, r, pi, tau)
    check_in_range("V^pi or Q^pi", V, Q)
    return V, Q


def check_in_range(what, *values):
    """ValueError unless every entry of ``values`` is finite: ``what``, computed from r, tau
    and gamma, is beyond the float64 range."""
    for v in values:
        if not np.all(np.isfinite(v)):
            raise ValueError(
                f"{what} is beyond the float64 range (an entry is inf or NaN): the values' scale "
                "(|r|_inf + tau log A) / (1 - gamma) is too large; scale r (or tau) down"
            )


def policy_reward(r, pi, tau):
    """b(s) = sum_a pi(a|s) r(s, a) + tau H_pi(s), H_pi(s) = -sum_a pi log pi
    (0 log 0 = 0): the right-hand side of V^pi; shape (S,).  Compiled."""
    b = np.empty(pi.shape[0])
    _kernels.policy_reward(pi, r, tau, b)
    return b


def evaluate_unchecked(mdp, r, pi, tau, system=None, V0=None, rtol=1e-12):
    """:func:`evaluate` on validated inputs; reuses ``system`` when given."""
    b = policy_reward(r, pi, tau)
    system = policy_system(mdp, pi) if system is None else system
    V = system.solve(b, x0=V0, rtol=rtol)
    Q, _ = sweep(mdp, r, V, 0.0)
    return V, Q


@_kernels.serial_when_small
def occupancy(mdp, pi):
    """Discounted state and state-action occupancies of ``pi``: returns ``(d, nu)``.

    ``d = (1 - gamma) (I - gamma P_pi^T)^(-1) rho`` of shape ``(S,)`` sums to 1;
    ``nu = d[:, None] * pi`` has shape ``(S, A)`` and satisfies the flow identity
    ``sum_a nu(s', a) = (1 - gamma) rho(s') + gamma sum_{s,a} P(s'|s,a) nu(s,a)``.
    Accuracy: ``|d - d^pi|_1 <= 1e-12``.
    """
    check_mdp(mdp)
    pi = check_policy(mdp, pi)
    d = (1.0 - mdp.gamma) * policy_system(mdp, pi).solve(mdp.rho, transpose=True)
    return d, d[:, None] * pi
