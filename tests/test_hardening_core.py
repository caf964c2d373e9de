"""Hardening of the numerical core (issue 17): malformed sparse transitions, arrays
the caller owns, extreme but valid inputs, default tolerances.

Crash-prone cases (malformed sparse structures, which scipy's own conversions may
read out of bounds) run in a subprocess, so that a segmentation fault fails the
test instead of killing pytest.
"""

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings

import exactbilevel as eb
from exactbilevel.testing.strategies import SPARSE_FORMATS, sparse_kernels

from conftest import examples


def run_isolated(code, timeout=300):
    """Run ``code`` in a fresh interpreter (this worktree first on sys.path);
    return the CompletedProcess.  A crash shows as a negative return code."""
    prelude = f"import sys; sys.path.insert(0, {sys.path[0]!r})\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=timeout)


def assert_clean(proc):
    assert proc.returncode == 0, (
        f"subprocess exited with {proc.returncode} (negative: killed by a signal)\n"
        f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    )


# --------------------------------------------------------------------------- sparse P

def _valid_rows(S=3, A=2):
    rng = np.random.default_rng(5)
    P = rng.random((S * A, S)) + 0.1
    return P / P.sum(axis=1, keepdims=True)


@settings(max_examples=examples(60))
@given(sparse_kernels())
def test_every_sparse_format_stores_the_same_kernel(pair):
    """All formats, matrices and arrays, int32/int64 indices, unsorted indices and
    duplicates: the stored CSR equals the dense kernel (duplicates summed), and the
    solve equals the dense MDP's."""
    M, P = pair
    S, A, _ = P.shape
    m = eb.TabularMDP(M, 0.9)
    assert m.is_sparse and (m.S, m.A) == (S, A)
    np.testing.assert_allclose(m.P.toarray().reshape(S, A, S), P, rtol=1e-14, atol=1e-17)
    r = np.arange(S * A, dtype=float).reshape(S, A) / (S * A)
    dense = eb.TabularMDP(P, 0.9)
    np.testing.assert_allclose(eb.solve(m, r).V, eb.solve(dense, r).V, atol=1e-9)


def test_sparse_input_not_changed():
    """Validation and canonicalization work on copies: the caller's matrix (unsorted,
    with duplicates) keeps its arrays, their values and their writeability."""
    P = _valid_rows()
    rows, cols = np.nonzero(P)
    rows, cols, vals = np.repeat(rows, 2)[::-1], np.repeat(cols, 2)[::-1], np.repeat(P[rows, cols] / 2, 2)[::-1]
    for M in (sp.coo_matrix((vals, (rows, cols)), shape=P.shape),
              sp.csr_matrix((vals.copy(), cols.copy(), np.arange(0, vals.size + 1, 2 * 3)), shape=P.shape)):
        before = [a.copy() for a in ((M.row, M.col, M.data) if M.format == "coo" else (M.indices, M.indptr, M.data))]
        eb.TabularMDP(M, 0.9)
        after = (M.row, M.col, M.data) if M.format == "coo" else (M.indices, M.indptr, M.data)
        for b, a in zip(before, after):
            np.testing.assert_array_equal(a, b)
            assert a.flags.writeable


MALFORMED_CASES = {
    # the reproductions of issue 17 and their relatives, one per stored structure
    "coo col = S": "M = sp.coo_matrix(P); M.col[0] = S",
    "coo row = S*A": "M = sp.coo_matrix(P); M.row[0] = S * A",
    "coo negative col": "M = sp.coo_matrix(P); M.col[3] = -1",
    "coo_array coords": "M = sp.coo_array(P); M.coords[1][0] = S",
    "coo short row array": "M = sp.coo_matrix(P); M.row = M.row[:-1]",
    "csr col = S": "M = sp.csr_matrix(P); M.indices[0] = S",
    "csr_array int64 huge": "M = sp.csr_array(P); M.indices = M.indices.astype(np.int64); M.indices[2] = 2**40",
    "csr float indices": "M = sp.csr_matrix(P); M.indices = M.indices.astype(float)",
    "csr short indptr": "M = sp.csr_matrix(P); M.indptr = M.indptr[:-1]",
    "csc row out of range": "M = sp.csc_matrix(P); M.indices[0] = S * A + 5",
    "csc row 1e8": "M = sp.csc_matrix(P); M.indices[0] = 10**8",
    "csc negative row": "M = sp.csc_matrix(P); M.indices[0] = -7",
    "csc_array row": "M = sp.csc_array(P); M.indices[0] = 50",
    "csc indptr beyond": "M = sp.csc_matrix(P); M.indptr[1] = 100",
    "bsr block col": "M = sp.bsr_matrix(P, blocksize=(2, 1)); M.indices[0] = 50",
    "bsr negative": "M = sp.bsr_array(P, blocksize=(2, 1)); M.indices[0] = -1",
    "bsr indptr end": "M = sp.bsr_matrix(P, blocksize=(2, 1)); M.indptr[-1] = 100",
    "lil col": "M = sp.lil_matrix(P); M.rows[0][0] = 7",
    "lil negative": "M = sp.lil_array(P); M.rows[1][0] = -1",
    "dok key": "M = sp.dok_matrix(P); dict.__setitem__(getattr(M, '_dict', M), (0, 9), 0.1)",
    "dia offsets count": "M = sp.dia_matrix(P); M.offsets = np.append(M.offsets, 0)",
}


def test_malformed_sparse_refused_without_crash():
    """Each malformed structure gives a ValueError naming P (TypeError for float
    indices would also do, but the message must name P), in a subprocess."""
    code = """
    import numpy as np, scipy.sparse as sp, exactbilevel as eb
    S, A = 3, 2
    P = np.full((S * A, S), 1.0 / S)
    CASES = %r
    for name, build in CASES.items():
        print("case", name, flush=True)
        ns = dict(np=np, sp=sp, P=P.copy(), S=S, A=A)
        exec(build, ns)
        try:
            eb.TabularMDP(ns["M"], 0.9)
        except (ValueError, TypeError) as exc:
            assert "P" in str(exc).split(), (name, str(exc))
            print("refused", name, type(exc).__name__, exc, flush=True)
        else:
            raise AssertionError(f"{name}: accepted")
    print("done")
    """ % (MALFORMED_CASES,)
    proc = run_isolated(code)
    assert_clean(proc)
    assert proc.stdout.count("\nrefused ") + proc.stdout.startswith("refused ") == len(MALFORMED_CASES)
    assert "ValueError" in proc.stdout


def test_malformed_sparse_hypothesis_in_subprocess():
    """Hypothesis-drawn malformed structures of every format (the strategy of
    exactbilevel.testing): all refused with a ValueError naming P, none crashes."""
    n = examples(150)
    code = f"""
    import re
    from hypothesis import given, settings, HealthCheck
    import exactbilevel as eb
    from exactbilevel.testing.strategies import malformed_sparse_kernels

    seen = set()

    @settings(max_examples={n}, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(malformed_sparse_kernels())
    def check(pair):
        M, defect = pair
        seen.add((M.format, defect))
        try:
            eb.TabularMDP(M, 0.9)
        except ValueError as exc:
            assert re.search(r"\\bP\\b", str(exc)), str(exc)
        else:
            raise AssertionError(f"accepted a {{M.format}} with defect {{defect}}")

    check()
    print(sorted(seen))
    """
    proc = run_isolated(code)
    assert_clean(proc)
    seen = eval(proc.stdout.strip().splitlines()[-1])
    assert {f for f, _ in seen} >= set(SPARSE_FORMATS) - {"dia"}


def test_out_of_range_dia_offset_drops_entries_as_scipy_does():
    """A DIA offset beyond the shape holds no entries (scipy's semantics): here
    that leaves a row short of 1, which is reported as a row-sum error naming P."""
    P = _valid_rows(2, 1)
    M = sp.dia_matrix(P)
    M.offsets[0] = 100
    with pytest.raises(ValueError, match=r"\bP\b.*sums to"):
        eb.TabularMDP(M, 0.9)


def test_sparse_one_dimensional_refused():
    with pytest.raises(ValueError, match=r"\bP\b"):
        eb.TabularMDP(sp.coo_array(np.ones(3) / 3), 0.9)
