"""Hypothesis strategies of malformed input, and the error contract they test.

The error contract of every public function of exactbilevel (and of code built on
it that wants the same):

* an argument of the wrong kind raises ``TypeError``; one of the right kind with a
  wrong value (shape, dtype, NaN or infinity, out of range, a distribution that
  does not sum to 1, a solution for another problem) raises ``ValueError``
  (:class:`~exactbilevel.ConvergenceError` where a function documents it: the
  solvers and :func:`~exactbilevel.penalized_policy`).  The message names the
  argument, says what was wrong and how to fix it;
* no other exception escapes: no IndexError, KeyError, AttributeError,
  ZeroDivisionError, OverflowError, FloatingPointError, MemoryError, no Numba
  error, no NumPy RuntimeWarning (which :func:`check_error_contract` turns into an
  error), and nothing crashes the interpreter;
* a value that turns out to be valid after all is accepted, and then the result
  holds no NaN (except where a function documents NaN);
* the caller's arrays are neither changed nor made read-only.

Strategies (each docstring says what it draws):

:func:`malformed_arrays`
    arrays of the wrong dimension, shape or dtype, with NaN, +-inf, huge or no
    entries, objects that are not arrays, and valid arrays in odd layouts;
:func:`malformed_scalars`
    numbers that are not finite, out of range for a kind of parameter
    (:data:`SCALAR_KINDS`), or not numbers at all;
:func:`malformed_probabilities`, :func:`malformed_distributions`, :func:`malformed_policies`
    transition kernels, state distributions and policies whose rows do not sum
    to 1, have negative or NaN entries, or have the wrong shape;
:func:`malformed_calls`
    a :class:`MalformedCall` ``(function_name, args, kwargs)``: a valid call of a
    public function of exactbilevel (:data:`CALLS`) on a small valid problem with
    exactly one argument replaced by a malformed value;
:func:`malformed_configs`
    configuration files the ``exactbilevel run`` command must refuse.

:func:`check_error_contract` makes one call and asserts the contract.

>>> from hypothesis import given, settings
>>> import exactbilevel as eb
>>> from exactbilevel.testing.malformed import check_error_contract, malformed_arrays
>>> @settings(max_examples=20, deadline=None)
... @given(malformed_arrays((3, 2)))
... def check(theta):  # any (S, A) is valid for softmax_policy: some draws are accepted
...     check_error_contract(eb.softmax_policy, (theta,), argument="theta")
>>> check()

Like :mod:`exactbilevel.testing.strategies`, this module imports hypothesis.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import math
import re
import warnings
from collections.abc import Mapping
from fractions import Fraction

import numpy as np
import scipy.sparse as sp
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from . import strategies as ebst
from .strategies import seeds

__all__ = [
    "SCALAR_KINDS",
    "CALLS",
    "KERNEL_CALLS",
    "MalformedCall",
    "check_error_contract",
    "malformed_arrays",
    "malformed_scalars",
    "malformed_probabilities",
    "malformed_distributions",
    "malformed_policies",
    "malformed_calls",
    "valid_calls",
    "malformed_configs",
    "malformed_gymnasium_tables",
    "resolve",
]


# --------------------------------------------------------------------------- the contract

_EXPECTED = (ValueError, TypeError)


def _arrays_in(obj, depth=0):
    """The numpy arrays the caller owns in ``obj``: arrays themselves, the arrays of scipy
    sparse matrices, and those in lists, tuples and dicts (three levels deep)."""
    if isinstance(obj, np.ndarray):
        return [obj]
    if sp.issparse(obj):
        names = ("data", "indices", "indptr", "row", "col", "offsets")
        return [a for a in (getattr(obj, n, None) for n in names) if isinstance(a, np.ndarray)]
    if depth >= 3:
        return []
    if isinstance(obj, (list, tuple)):
        return [a for v in obj for a in _arrays_in(v, depth + 1)]
    if isinstance(obj, dict):
        return [a for v in obj.values() for a in _arrays_in(v, depth + 1)]
    return []


def _same(a, b):
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    if a.dtype.kind == "O":
        return all(x is y for x, y in zip(a.ravel(), b.ravel()))
    return bool(np.array_equal(a, b))


def _nan_path(obj, depth=0):
    """Where ``obj`` (a result) holds a NaN, as a short description, or None."""
    if isinstance(obj, (float, np.floating, complex, np.complexfloating)):
        return "value" if np.isnan(obj) else None
    if isinstance(obj, np.ndarray):
        if obj.dtype.kind in "fc" and np.isnan(obj).any():
            return f"array at {tuple(int(i) for i in np.argwhere(np.isnan(obj))[0])}"
        return None
    if depth >= 3:
        return None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        items = ((f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj))
    elif isinstance(obj, Mapping):
        items = obj.items()
    elif isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    elif hasattr(obj, "columns") and hasattr(obj, "__getitem__") and hasattr(obj, "meta"):  # a Trace
        items = ((name, obj[name]) for name in obj.columns)
    else:
        return None
    for key, value in items:
        where = _nan_path(value, depth + 1)
        if where is not None:
            return f"{key}: {where}"
    return None


def _names_in(message, names):
    return any(re.search(rf"(?<![A-Za-z0-9_]){re.escape(n)}(?![A-Za-z0-9_])", message) for n in names)


def check_error_contract(function, args=(), kwargs=None, *, argument=None, names=None, convergence=False,
                         nan_ok=False):
    """Call ``function(*args, **kwargs)`` once, NumPy RuntimeWarnings turned into errors, and
    assert the error contract of the module docstring.

    Checked: the call returns, or raises ``ValueError`` or ``TypeError`` (not from Numba)
    whose message names ``argument`` or one of ``names`` (as a word: ``x`` is not named by
    ``x0``; no check when both are None), or, with ``convergence``, raises
    :class:`~exactbilevel.ConvergenceError`; a returned result holds no NaN (unless
    ``nan_ok``: functions that document NaN in their results); every array the caller
    passed (in ``args`` and ``kwargs``, also inside lists, tuples, dicts and scipy sparse
    matrices) has its values and its ``writeable`` flag unchanged.

    Returns ``("returned", result)`` or ``("raised", exception)``; an AssertionError
    describes a violation.
    """
    from .._validation import ConvergenceError

    kwargs = {} if kwargs is None else kwargs
    words = tuple(names or ()) + ((argument,) if argument is not None else ())
    owned = _arrays_in((args, kwargs))
    before = [(a.copy(), a.flags.writeable) for a in owned]
    label = getattr(function, "__qualname__", repr(function))
    outcome = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            result = function(*args, **kwargs)
        outcome = ("returned", result)
    except Exception as exc:  # noqa: BLE001 - the contract is about which exceptions escape
        numba_error = type(exc).__module__.split(".")[0] == "numba"
        if convergence and isinstance(exc, ConvergenceError):
            outcome = ("raised", exc)
        elif isinstance(exc, _EXPECTED) and not numba_error and not isinstance(exc, Warning):
            if words and not _names_in(str(exc), words):
                raise AssertionError(
                    f"{label}: {type(exc).__name__} does not name {' or '.join(map(repr, words))}: {exc}"
                ) from exc
            outcome = ("raised", exc)
        else:
            raise AssertionError(
                f"{label}: {type(exc).__module__}.{type(exc).__name__} escaped "
                f"(malformed {argument!r}): {exc}") from exc
    for a, (copy, writeable) in zip(owned, before):
        if not _same(a, copy):
            raise AssertionError(f"{label} changed an array of the caller (malformed {argument!r})")
        if a.flags.writeable != writeable:
            raise AssertionError(f"{label} changed the writeable flag of an array of the caller")
    if outcome[0] == "returned" and not nan_ok:
        where = _nan_path(outcome[1])
        if where is not None:
            raise AssertionError(f"{label} accepted the input (argument {argument!r}) but its result "
                                 f"holds a NaN ({where})")
    return outcome


# --------------------------------------------------------------------------- arrays

_ARRAY_KINDS = ("ndim", "length", "empty", "nan", "inf", "huge", "dtype", "not-array", "layout")


def _shape_of(shape):
    return tuple(2 if n is None else int(n) for n in shape)


@st.composite
def malformed_arrays(draw, shape=None, base=None, kinds=_ARRAY_KINDS):
    """Values where an array of ``shape`` is expected (a tuple of ints, None for a free
    length), or near it.  ``base``: a valid array of that shape (random values in
    [-1, 1] when None) that each draw starts from.

    ``kinds`` selects among (drawn, then shrunk towards the first):

    * ``"ndim"``: base with a dimension too few or too many, or a 0-d array / float;
    * ``"length"``: one dimension one shorter or longer (for every fixed length);
    * ``"empty"``: a dimension of length 0;
    * ``"nan"``, ``"inf"``: one entry NaN, +inf or -inf;
    * ``"huge"``: entries of size 1e300 to 1.8e308 (finite: valid where any size is);
    * ``"dtype"``: base as an object, str, bytes, complex (zero or nonzero imaginary
      part), datetime64 or timedelta64 array, or as bool, int8, uint64, float16,
      float32 or a longdouble with an entry beyond the float64 range;
    * ``"not-array"``: None, a string, a dict, a set, a ragged nested list, a scipy
      sparse matrix of the base;
    * ``"layout"`` (valid values): base as a nested list, non-contiguous, Fortran
      ordered, byte swapped, read-only or broadcast.

    The contract a function meets on them: ``TypeError`` for the wrong kind of object,
    ``ValueError`` for a wrong shape or value, or a normal return for a value that is
    valid after all (layouts, other real dtypes, sizes where any size is allowed).
    """
    if base is None:
        if shape is None:
            raise InvalidArgument("malformed_arrays needs shape or base")
        base = np.random.default_rng(draw(seeds)).uniform(-1.0, 1.0, _shape_of(shape))
    else:
        base = np.array(base)
        shape = base.shape if shape is None else shape
    if base.shape != _shape_of(shape) and any(n is not None and n != b for n, b in zip(shape, base.shape)):
        raise InvalidArgument(f"base has shape {base.shape}, not {shape}")
    rng = np.random.default_rng(draw(seeds))
    kind = draw(st.sampled_from(kinds))
    arr = np.array(base, dtype=np.float64)
    if kind == "ndim":
        how = draw(st.sampled_from(["fewer", "more", "scalar"]))
        if how == "fewer" and arr.ndim:
            return arr[..., 0] if arr.shape[-1] else np.zeros(arr.shape[:-1])
        if how == "more" or not arr.ndim:
            return np.repeat(arr[..., None], draw(st.sampled_from([1, 2])), axis=-1)
        return draw(st.sampled_from([np.array(0.5), 0.5]))
    if kind == "length":
        fixed = [i for i, n in enumerate(shape) if n is not None]
        if not fixed:
            kind = "empty"
        else:
            i = draw(st.sampled_from(fixed))
            n = arr.shape[i] + draw(st.sampled_from([1, -1] if arr.shape[i] > 1 else [1]))
            new = list(arr.shape)
            new[i] = n
            return rng.uniform(-1.0, 1.0, new)
    if kind == "empty":
        if not arr.ndim:
            return np.zeros(0)
        new = list(arr.shape)
        new[draw(st.integers(0, arr.ndim - 1))] = 0
        return np.zeros(new)
    if kind in ("nan", "inf"):
        if arr.size == 0:
            return np.array(np.nan)
        value = np.nan if kind == "nan" else draw(st.sampled_from([np.inf, -np.inf]))
        arr.ravel()[rng.integers(arr.size)] = value
        return arr
    if kind == "huge":
        big = draw(st.sampled_from([1e300, 1e308, np.finfo(np.float64).max]))
        return np.where(rng.random(arr.shape) < 0.5, big, -big) if arr.ndim else np.array(big)
    if kind == "dtype":
        how = draw(st.sampled_from(["object", "object-none", "str", "bytes", "complex", "complex-real",
                                    "datetime", "timedelta", "bool", "int8", "uint64", "float16", "float32",
                                    "longdouble"]))
        if how == "object":
            return arr.astype(object)
        if how == "object-none":
            out = arr.astype(object)
            if out.size:
                out.ravel()[0] = None
            return out
        if how == "str":
            return arr.astype(str)
        if how == "bytes":
            return arr.astype(bytes)
        if how == "complex":
            return arr + 1j
        if how == "complex-real":
            return arr.astype(np.complex128)
        if how == "datetime":
            return np.zeros(arr.shape, dtype="datetime64[s]")
        if how == "timedelta":
            return np.zeros(arr.shape, dtype="timedelta64[s]")
        if how == "bool":
            return arr > 0
        if how == "int8":
            return np.round(arr).astype(np.int8)
        if how == "uint64":
            return np.abs(np.round(arr)).astype(np.uint64)
        if how in ("float16", "float32"):
            return arr.astype(how)
        out = arr.astype(np.longdouble)
        if out.size:
            out.ravel()[0] = np.longdouble("1e4000")
        return out
    if kind == "not-array":
        how = draw(st.sampled_from(["none", "str", "dict", "set", "ragged", "sparse"]))
        if how == "none":
            return None
        if how == "str":
            return "0.5"
        if how == "dict":
            return {"values": arr.tolist()}
        if how == "set":
            return {0.5, 1.0}
        if how == "ragged":
            return [[0.5, 1.0], [0.5]]
        return sp.csr_matrix(arr.reshape(arr.shape[0], -1)) if arr.ndim else sp.csr_matrix([[0.5]])
    # layout: the base's values in another form
    how = draw(st.sampled_from(["list", "strided", "fortran", "byteswapped", "readonly", "broadcast", "int"]))
    if how == "list":
        return arr.tolist()
    if how == "strided":
        wide = np.repeat(arr[..., None], 2, axis=-1)
        return wide[..., 0]
    if how == "fortran":
        return np.asfortranarray(arr)
    if how == "byteswapped":
        return arr.astype(arr.dtype.newbyteorder(">"))
    if how == "readonly":
        arr.setflags(write=False)
        return arr
    if how == "broadcast":
        return np.broadcast_to(arr, arr.shape)
    return arr.astype(np.int64) if np.all(arr == np.round(arr)) else arr


# --------------------------------------------------------------------------- scalars

#: The kinds of parameter :func:`malformed_scalars` draws values for, with what a valid value is.
SCALAR_KINDS = {
    "real": "a finite real number",
    "nonnegative": "a finite real number >= 0",
    "positive": "a finite real number > 0",
    "discount": "a real number in [0, 1)",
    "probability": "a real number in [0, 1]",
    "fraction": "a real number in (0, 1)",
    "int": "an int",
    "count": "an int >= 1 (a number of steps, iterations or samples)",
    "size": "a small int >= 1 (a number of states or actions; huge sizes are a matter of memory, not drawn)",
    "seed": "an int >= 0 (or a numpy Generator)",
    "bool": "True or False",
    "choice": "one of a few strings",
}

_NOT_NUMBERS = (None, "0.5", b"1", [0.5], (0.5,), {0.5}, {"a": 1}, np.array([0.5]), np.array([[0.5]]), 0.5j,
                complex(0.5, 0.0), np.complex64(1.0), np.str_("0.5"), np.datetime64("2020-01-01"),
                np.timedelta64(1, "s"), True, False, np.bool_(True), object())
_NOT_FINITE = (math.nan, math.inf, -math.inf, np.float32(np.nan), np.float16(np.inf), np.longdouble("1e4000"))
_ODD_REALS = (np.float16(0.5), np.float32(0.25), np.longdouble(0.5), Fraction(1, 3), np.int8(1), np.uint8(1))
_EXTRA = {
    "real": (1e308, -1e308, 5e-324),
    "nonnegative": (-1.0, -1e-300, -5e-324, np.int8(-1), -0.0, 0, 1e308),
    "positive": (0, 0.0, -0.0, -1.0, -5e-324, 5e-324, 1e308, np.uint8(0)),
    "discount": (1, 1.0, 1.5, -1e-300, -0.1, np.nextafter(1.0, 2.0), 0.99999999999999999, np.float32(0.9999999999),
                 -0.0, 0.0, 1 - 2**-53),
    "probability": (-0.1, -1e-300, 1.0000001, 2, 0, 1),
    "fraction": (0, 0.0, 1, 1.0, -0.5, 1.5),
}
_NOT_INTS = (1.5, 2.0, np.float64(2.0), "3", None, [3], np.array(3), np.array([3]), True, False, np.bool_(True),
             np.timedelta64(2, "s"), np.datetime64("2020-01-01"),
             3 + 0j, math.nan, object())
_INT_EXTRA = {
    "int": (-1, 0, 2**63, -(2**63) - 1, 10**30, np.int8(-1), np.uint64(2**64 - 1)),
    "count": (0, -1, -(2**63), 2**63, 10**30, np.int8(-1), np.uint64(2**64 - 1), np.uint8(0), 1, np.int16(3)),
    "size": (0, -1, -(2**63), np.int8(-1), np.uint8(0), 1, np.int16(2)),
    "seed": (-1, -(2**63), np.int8(-1), 2**64, np.uint64(2**64 - 1), 0, np.int32(3)),
}
_NOT_BOOLS = (0, 1, 1.0, "True", "false", "", None, np.int64(1), [True], np.array([True]), np.array(True), object())
_NOT_CHOICES = ("", "NPG", "iid ", "none", None, 1, 0.5, True, b"iid", ["npg"], ("npg",), np.array(["npg", "pg"]),
                np.array([1, 2]), {"a": 1}, object())


def malformed_scalars(kind, choices=()):
    """Values where a scalar of ``kind`` (:data:`SCALAR_KINDS`) is expected: NaN and
    +-inf (also as float32, float16 and a longdouble beyond the float64 range), numbers
    out of the kind's range (negative where positivity is needed, 0 where > 0 is, 1 for
    a discount, huge ints for counts), strings, bytes, None, bools, complex numbers,
    lists, sets, dicts, arrays of shape (1,) and (), numpy scalars of odd dtypes
    (datetime64, timedelta64, str_) and plain objects; for ``"choice"`` (``choices`` the
    valid strings) other strings, near misses of ``choices``, and non-strings (a
    numpy array of strings included).  Some draws are valid (e.g. a float16 discount,
    -0.0 for a parameter >= 0, 5e-324 where > 0 is asked): accepted, they must give a
    result without NaN.

    The contract: ``TypeError`` for a value that is not a number (a bool is not a
    number here; for ``"int"``, ``"count"``, ``"size"`` and ``"seed"`` neither is a float),
    ``ValueError`` for a number out of range or not finite, each naming the parameter.
    """
    if kind not in SCALAR_KINDS:
        raise InvalidArgument(f"kind must be one of {sorted(SCALAR_KINDS)}, got {kind!r}")
    if kind in ("int", "count", "size", "seed"):
        values = _NOT_INTS + _INT_EXTRA[kind]
    elif kind == "bool":
        values = _NOT_BOOLS
    elif kind == "choice":
        near = tuple(c.upper() for c in choices) + tuple(c + " " for c in choices) + tuple(c[:-1] for c in choices)
        values = _NOT_CHOICES + near + tuple(np.str_(c) for c in choices)
        return st.one_of(st.sampled_from(values), st.text(alphabet="abcxyz_-", max_size=6))
    else:
        values = _NOT_NUMBERS + _NOT_FINITE + _ODD_REALS + _EXTRA.get(kind, ())
    return st.sampled_from(values)


# --------------------------------------------------------------------------- distributions


@st.composite
def malformed_probabilities(draw, S, A):
    """``(S, A, S)`` arrays that are not transition kernels, or nearly are: one row
    ``P[s, a, :]`` sums to 1 + delta (delta in +-1e-9 ... +-0.5: beyond the tolerance
    1e-10 of :class:`~exactbilevel.TabularMDP`; +-1e-11, within it, is valid), has a
    negative entry (the row still sums to 1), a NaN or an inf, or is all zeros; or the
    kernel has the shape ``(S, A, S + 1)``, ``(S, A)`` or ``(S * A, S)``, or gives
    probabilities as percentages.

    The contract: ``ValueError`` naming ``P`` (and the row), or, for the rows within
    tolerance, a valid MDP.
    """
    rng = np.random.default_rng(draw(seeds))
    P = rng.standard_exponential((S, A, S))
    P /= P.sum(axis=2, keepdims=True)
    kind = draw(st.sampled_from(["sum", "negative", "nan", "inf", "zeros", "shape", "percent", "tolerance"]))
    s, a = int(rng.integers(S)), int(rng.integers(A))
    if kind == "sum":
        P[s, a] *= 1.0 + draw(st.sampled_from([1e-9, -1e-9, 1e-6, -1e-3, 0.5, -0.5]))
    elif kind == "negative":
        P[s, a] = 0.0
        if S == 1:  # no room for a negative entry in a row summing to 1
            P[s, a, 0] = -1.0
        else:
            P[s, a, 0], P[s, a, -1] = 1.5, -0.5
    elif kind == "nan":
        P[s, a, int(rng.integers(S))] = np.nan
    elif kind == "inf":
        P[s, a, int(rng.integers(S))] = draw(st.sampled_from([np.inf, -np.inf]))
    elif kind == "zeros":
        P[s, a] = 0.0
    elif kind == "shape":
        how = draw(st.sampled_from(["extra", "two-d", "flat"]))
        if how == "extra":
            return np.concatenate([P, np.zeros((S, A, 1))], axis=2)
        if how == "two-d":
            return P[:, :, 0] if S > 1 else P[:, :, 0] * 0.5
        return P.reshape(S * A, S)
    elif kind == "percent":
        P = 100.0 * P
    else:
        P[s, a] *= 1.0 + draw(st.sampled_from([1e-11, -1e-11]))
    return P


@st.composite
def malformed_distributions(draw, S):
    """``(S,)`` arrays that are not distributions over S states (an initial
    distribution rho, a target): a sum of 1 + delta (delta from +-1e-9 to +-0.5), a
    negative entry (the sum still 1), a NaN, an inf, all zeros, the wrong length,
    percentages; or one within the tolerance 1e-10 (valid).

    The contract: ``ValueError`` naming the argument, or acceptance.
    """
    rng = np.random.default_rng(draw(seeds))
    rho = rng.standard_exponential(S)
    rho /= rho.sum()
    kind = draw(st.sampled_from(["sum", "negative", "nan", "inf", "zeros", "length", "percent", "tolerance"]))
    i = int(rng.integers(S))
    if kind == "sum":
        rho *= 1.0 + draw(st.sampled_from([1e-9, -1e-6, 0.5, -0.5]))
    elif kind == "negative":
        rho[:] = 0.0
        if S == 1:
            rho[0] = -1.0
        else:
            rho[0], rho[-1] = 1.5, -0.5
    elif kind == "nan":
        rho[i] = np.nan
    elif kind == "inf":
        rho[i] = np.inf
    elif kind == "zeros":
        rho[:] = 0.0
    elif kind == "length":
        rho = np.full(S + draw(st.sampled_from([1, -1] if S > 1 else [1])), 1.0 / max(S - 1, 1))
    elif kind == "percent":
        rho = 100.0 * rho
    else:
        rho *= 1.0 + 1e-11
    return rho


@st.composite
def malformed_policies(draw, S, A):
    """``(S, A)`` arrays that are not policies, or nearly are: a row summing to
    1 + delta (delta from +-1e-6 to +-0.5; +-1e-10, within the tolerance 1e-9, is
    valid), a negative entry (the row still sums to 1), an entry above 1, NaN or +-inf,
    an all-zero row, logits in place of probabilities, the transposed shape ``(A, S)``
    (when S != A), ``(S, A + 1)`` or ``(S * A,)``; one-hot policies as int or bool
    arrays are valid.  Arrays of other dtypes and objects come from :func:`malformed_arrays`.

    The contract: ``ValueError`` naming the policy argument (and the row), or acceptance.
    """
    rng = np.random.default_rng(draw(seeds))
    pi = rng.standard_exponential((S, A))
    pi /= pi.sum(axis=1, keepdims=True)
    kind = draw(st.sampled_from(["sum", "negative", "above-one", "nan", "inf", "zeros", "logits", "shape",
                                 "tolerance", "one-hot"]))
    s = int(rng.integers(S))
    if kind == "sum":
        pi[s] *= 1.0 + draw(st.sampled_from([1e-6, -1e-6, 0.5, -0.5]))
    elif kind in ("negative", "above-one"):
        if A == 1:
            pi[s, 0] = -1.0 if kind == "negative" else 2.0
        else:
            pi[s] = 0.0
            pi[s, 0], pi[s, -1] = 1.5, -0.5
    elif kind == "nan":
        pi[s, int(rng.integers(A))] = np.nan
    elif kind == "inf":
        pi[s, int(rng.integers(A))] = draw(st.sampled_from([np.inf, -np.inf]))
    elif kind == "zeros":
        pi[s] = 0.0
    elif kind == "logits":
        pi = rng.normal(size=(S, A)) + 2.0
    elif kind == "shape":
        how = draw(st.sampled_from(["transposed", "wider", "flat"]))
        if how == "transposed" and S != A:
            return pi.T.copy()
        if how == "flat":
            return pi.ravel()
        return np.concatenate([pi, np.zeros((S, 1))], axis=1)
    elif kind == "tolerance":
        pi[s] *= 1.0 + draw(st.sampled_from([1e-10, -1e-10]))
    else:
        hot = np.zeros((S, A), dtype=draw(st.sampled_from([np.int64, np.bool_])))
        hot[np.arange(S), rng.integers(A, size=S)] = 1
        return hot
    return pi


# --------------------------------------------------------------------------- malformed objects


class _Reward:
    """A reward model (the protocol of :mod:`exactbilevel.rewards`) whose methods return
    ``value`` and ``jacobian`` as given, whatever x is (after checking nothing)."""

    def __init__(self, value, jacobian, what):
        self._value, self._jacobian, self._what = value, jacobian, what

    def value(self, x):
        return self._value

    def jacobian(self, x):
        return self._jacobian

    def __repr__(self):
        return f"<reward whose {self._what}>"


class _Objective:
    """An objective (the protocol of :mod:`exactbilevel.objectives`) returning fixed values."""

    def __init__(self, value, grad_x, grad_pi, what):
        self._v, self._gx, self._gp, self._what = value, grad_x, grad_pi, what

    def value(self, x, pi):
        return self._v

    def grad_x(self, x, pi):
        return self._gx

    def grad_pi(self, x, pi):
        return self._gp

    def __repr__(self):
        return f"<objective whose {self._what}>"


class _NoMethods:
    def __repr__(self):
        return "<object without methods>"


class _Mismatch:
    """A value of the right kind for another problem: the message may name any argument
    it conflicts with."""

    def __init__(self, value):
        self.value = value


@functools.lru_cache(maxsize=None)
def _other_mdp(S, A, dense=True):
    from .. import envs

    mdp = envs.random_mdp(S, A, gamma=0.5, seed=1)
    return mdp if dense else mdp.to_sparse()


class _Context:
    """The valid problem the base calls of :func:`malformed_calls` are built from."""

    TAU, LAM, D = 0.5, 10.0, 2

    def __init__(self, mdp, reward, objective, x, r, pi, theta, V, rng):
        self.mdp, self.reward, self.objective, self.x = mdp, reward, objective, x
        self.S, self.A = mdp.S, mdp.A
        self.r, self.pi, self.theta, self.V = r, pi, theta, V
        self.rng = rng
        self._solutions = {}

    def P(self):
        from .reference import dense_kernel

        return dense_kernel(self.mdp)

    def solution(self, tau):
        from .. import solve

        if tau not in self._solutions:
            self._solutions[tau] = solve(self.mdp, self.reward.value(self.x), tau)
        return self._solutions[tau]

    # malformed values of the structured arguments

    def bad_mdps(self):
        from .. import envs

        return st.sampled_from([
            None, "mdp", self.P(), {"P": self.P(), "gamma": 0.9}, _NoMethods(),
            envs.gridworld(n=2, gamma=0.5),  # a GridWorld, not its .mdp
            _Mismatch(_other_mdp(self.S + 1, self.A)), _Mismatch(_other_mdp(self.S, self.A + 1, dense=False)),
        ])

    def bad_rewards(self):
        from .. import LinearReward

        S, A, d = self.S, self.A, self.D
        ok_jac = np.zeros((S, A, d))
        nan = np.zeros((S, A))
        nan.ravel()[0] = np.nan
        return st.sampled_from([
            None, _NoMethods(), self.r, "reward", lambda x: self.r,
            _Mismatch(LinearReward(np.ones((S + 1, A, d)))), _Mismatch(LinearReward(np.ones((S, A + 1, d)))),
            _Mismatch(LinearReward(np.ones((S, A, d + 1)))),
            _Reward(nan, ok_jac, "value has a NaN"), _Reward("r", ok_jac, "value is a str"),
            _Reward(np.zeros((S, A + 1)), ok_jac, "value has shape (S, A + 1)"),
            _Reward(np.zeros((S, A)), np.zeros((S, A)), "jacobian has shape (S, A)"),
            _Reward(np.zeros((S, A)), np.full((S, A, d), np.inf), "jacobian is inf"),
            _Reward(None, ok_jac, "value is None"),
        ])

    def bad_objectives(self):
        from .. import CallableObjective, OccupancyObjective

        S, A, d = self.S, self.A, self.D
        other = _other_mdp(S + 1, A)
        zx, zpi = np.zeros(d), np.zeros((S, A))
        return st.sampled_from([
            None, _NoMethods(), "objective", self.r,
            _Mismatch(OccupancyObjective(other, np.zeros((S + 1, A)))),
            CallableObjective(self.mdp, lambda x, pi: math.nan, lambda x, pi: zx, lambda x, pi: zpi),
            CallableObjective(self.mdp, lambda x, pi: "f", lambda x, pi: zx, lambda x, pi: zpi),
            CallableObjective(self.mdp, lambda x, pi: 0.0, lambda x, pi: np.zeros(d + 1), lambda x, pi: zpi),
            CallableObjective(self.mdp, lambda x, pi: 0.0, lambda x, pi: zx, lambda x, pi: np.full((S, A), np.nan)),
            CallableObjective(self.mdp, lambda x, pi: 0.0, lambda x, pi: zx, lambda x, pi: np.zeros((A, S + 1))),
            _Objective(math.nan, zx, zpi, "value is NaN"),
            _Objective(0.0, np.full(d, np.inf), zpi, "grad_x is inf"),
            _Objective(0.0, zx, np.zeros((S, A + 1)), "grad_pi has shape (S, A + 1)"),
            _Objective(0.0, zx, "g", "grad_pi is a str"),
        ])

    def bad_solutions(self, tau):
        import dataclasses as dc

        from .. import solve

        def thunks():
            sol = self.solution(tau)
            r_other = np.zeros((self.S + 1, self.A))
            yield lambda: None if tau == 0.0 else sol.V  # None is valid where tau = 0 is
            yield lambda: {"V": sol.V, "Q": sol.Q}
            yield lambda: "solution"
            yield lambda: self.solution(tau + 0.25)
            yield lambda: solve(_other_mdp(self.S + 1, self.A), r_other, tau)
            yield lambda: solve(_other_mdp(self.S, self.A + 1), np.zeros((self.S, self.A + 1)), tau)
            yield lambda: dc.replace(sol, V=np.full(self.S, np.nan))
            yield lambda: dc.replace(sol, Q=np.full((self.S, self.A), np.nan))
            yield lambda: dc.replace(sol, pi=np.zeros((self.S, self.A)))

        return st.sampled_from(list(thunks())).map(lambda f: f())


# --------------------------------------------------------------------------- the calls


@dataclasses.dataclass(frozen=True)
class _Slot:
    """An argument of a call and the malformed values drawn for it: ``values(ctx)`` a
    strategy; ``names`` words the message may use for it besides its own name."""

    name: str
    values: object
    names: tuple = ()


@dataclasses.dataclass(frozen=True)
class _Spec:
    """A public function: its valid base call ``base(ctx) -> {parameter: value}`` and its slots.
    ``kernels``: the call reaches compiled (Numba) kernels, so a missed check could crash the
    process (run such calls in a subprocess); ``convergence``: ConvergenceError is documented;
    ``nan_ok``: NaN is documented in results."""

    base: object
    slots: tuple
    kernels: bool = True
    convergence: bool = False
    nan_ok: bool = False


def _arr(name, shape_of, base_of, names=()):
    return _Slot(name, lambda c: malformed_arrays(shape_of(c), base=base_of(c)), names)


def _scalar(name, kind, names=(), choices=()):
    return _Slot(name, lambda c: malformed_scalars(kind, choices), names)


def _policy_slot(name="pi"):
    return _Slot(name, lambda c: st.one_of(malformed_policies(c.S, c.A),
                                           malformed_arrays((c.S, c.A), base=c.pi)))


def _theta_slot(name="theta"):
    return _arr(name, lambda c: (c.S, c.A), lambda c: c.theta)


def _x_slot(name="x"):
    return _arr(name, lambda c: (c.D,), lambda c: c.x)


_MDP = _Slot("mdp", lambda c: c.bad_mdps())
_REWARD = _Slot("reward", lambda c: c.bad_rewards(), ("x",))
_OBJECTIVE = _Slot("objective", lambda c: c.bad_objectives(), ("value_fn", "grad_x_fn", "grad_pi_fn"))
_R = _arr("r", lambda c: (c.S, c.A), lambda c: c.r)
_V = _arr("V", lambda c: (c.S,), lambda c: c.V)
_V0 = _arr("V0", lambda c: (c.S,), lambda c: c.V)
_TAU = _scalar("tau", "nonnegative")
_TAU_POSITIVE = _scalar("tau", "positive")
_LAM = _scalar("lam", "positive")
_X = _x_slot()
_PI = _policy_slot()
_THETA = _theta_slot()


def _solution_slot(tau):
    return _Slot("solution", lambda c: c.bad_solutions(tau))


def _rates_data(seed_count=3):
    k = np.geomspace(10.0, 1e4, 16)
    rng = np.random.default_rng(0)
    values = k[None, :] ** -0.5 * np.exp(0.05 * rng.standard_normal((seed_count, k.size)))
    return k, values


def _fit():
    from .. import fit_rate

    k, v = _rates_data()
    return fit_rate(k, v, theory=-0.5)


def _k_values():
    return st.one_of(
        malformed_arrays((None,), base=_rates_data()[0]),
        st.sampled_from([np.geomspace(10, 1e4, 16)[::-1], np.r_[0.0, np.geomspace(10, 1e4, 15)],
                         np.linspace(1, 2, 16), np.r_[np.geomspace(10, 1e4, 15), 1e4],
                         np.geomspace(10, 1e4, 16) * (1 + np.r_[np.zeros(15), 1e-12])]),
    )


def _running_k():
    base = np.arange(0, 50, 5)
    return st.one_of(
        malformed_arrays((10,), base=base),
        st.sampled_from([base[::-1], base + 1, np.r_[0, 0, base[2:]], base + 0.5, base * 1e300,
                         np.r_[0, 5, np.nan, base[3:]], base.astype(np.uint64),
                         np.array([0, 2**62, 2**63 - 1] + [0] * 7)]),
    )


_SCHEDULE_BAD = st.sampled_from([
    -1.0, math.nan, math.inf, "0.1", None, [0.1], np.array([0.1, 0.2]), lambda k: math.nan, lambda k: "a",
    lambda k: -1.0, lambda k: np.array([1.0, 2.0]), lambda k: None, lambda k: 1e308 * (k + 2), 0.0, True,
])


def _bool_or_scalar(kind):
    return lambda c: malformed_scalars(kind)


def _bounds():
    return st.sampled_from([
        (1.0, -1.0), (math.nan, 1.0), (np.zeros(3), np.ones(3)), 1.0, "box", (1, 2, 3), (None, None),
        (np.array([5.0, 5.0]), 10.0), ([[0.0, 0.0]], 1.0), (np.array(["a", "b"]), 1.0), ((0.0, 0.0j),),
        (-math.inf, math.inf), (np.full(2, -1e308), np.full(2, 1e308)),
    ])


def _cells(c):
    return st.sampled_from([
        [(2, 0)], [(0, 2)], [(-1, 0)], [(0, -1)], [(0, 2**62)], [(2**63 - 1, 0)], [(0, 2**64)], [(0.5, 1)],
        [[0, 1, 1]], [0, 1], "a", {(0, 1)}, [(0, 0), (0, 0)], [[(0, 1)]], [(None, 1)],
        np.array([[0, 1]], dtype=np.uint64),
        [(True, False)],
    ])


def _metrics():
    return st.sampled_from([
        ["x"], {1: lambda s: 0.0}, {"k": lambda s: 0.0}, {"m": 3}, {"m": lambda s: "text"},
        {"m": lambda s: None}, {"m": lambda s: [1, [2]]}, "m", {"": lambda s: 0.0}, {"a/b": lambda s: 0.0},
    ])


def _config():
    from .. import ActorCriticConfig

    return ActorCriticConfig(steps=4, log_every=2, diagnostics=False)


@functools.lru_cache(maxsize=None)
def _run_problem():
    """A fixed problem whose default schedules resolve (the drawn ones may have a reward or
    cost spread of 0, for which :func:`~exactbilevel.run` asks for explicit schedules)."""
    from .. import BilevelProblem, LinearReward, OccupancyObjective, envs

    mdp = envs.random_mdp(4, 2, gamma=0.8, seed=0)
    rng = np.random.default_rng(0)
    return BilevelProblem(mdp, LinearReward(rng.normal(size=(4, 2, 2))),
                          OccupancyObjective(mdp, rng.uniform(-1, 1, (4, 2)), kappa=0.1), [0.1, 0.2], bounds=(-2, 2))


def _base_random_mdp(c):
    return dict(S=c.S, A=c.A, gamma=0.5, successors=None, seed=0, sparse=None, rho=None)


_SPECS = {
    # -- the model -------------------------------------------------------------------
    "TabularMDP": _Spec(
        lambda c: dict(P=c.P(), gamma=c.mdp.gamma, rho=np.array(c.mdp.rho)),
        (_Slot("P", lambda c: st.one_of(malformed_probabilities(c.S, c.A), malformed_arrays((c.S, c.A, c.S),
                                                                                            base=c.P()))),
         _scalar("gamma", "discount"),
         _Slot("rho", lambda c: st.one_of(malformed_distributions(c.S),
                                          malformed_arrays((c.S,), base=np.array(c.mdp.rho))))),
        kernels=False),
    "LinearReward": _Spec(lambda c: dict(Psi=np.ones((c.S, c.A, c.D))),
                          (_arr("Psi", lambda c: (c.S, c.A, c.D), lambda c: np.ones((c.S, c.A, c.D))),),
                          kernels=False),
    "TabularReward": _Spec(lambda c: dict(S=c.S, A=c.A), (_scalar("S", "size"), _scalar("A", "size")),
                           kernels=False),
    "GaussianGoalReward": _Spec(
        lambda c: dict(coords=np.zeros((c.S, c.D)), A=c.A, sigma=1.0),
        (_arr("coords", lambda c: (c.S, c.D), lambda c: np.zeros((c.S, c.D))), _scalar("A", "size"),
         _scalar("sigma", "positive")), kernels=False),
    "OccupancyObjective": _Spec(
        lambda c: dict(mdp=c.mdp, cost=np.array(c.r), kappa=0.1, center=np.array(c.x)),
        (_MDP, _arr("cost", lambda c: (c.S, c.A), lambda c: c.r), _scalar("kappa", "nonnegative"),
         _arr("center", lambda c: (None,), lambda c: c.x)), kernels=False),
    "DistributionMatchingObjective": _Spec(
        lambda c: dict(mdp=c.mdp, target=np.full(c.S, 1.0 / c.S), kappa=0.1, center=None),
        (_MDP, _Slot("target", lambda c: st.one_of(malformed_distributions(c.S),
                                                   malformed_arrays((c.S,), base=np.full(c.S, 1.0 / c.S)))),
         _scalar("kappa", "nonnegative"), _arr("center", lambda c: (None,), lambda c: c.x)), kernels=False),
    "CallableObjective": _Spec(
        lambda c: dict(mdp=c.mdp, value_fn=lambda x, pi: 0.0, grad_x_fn=lambda x, pi: np.zeros(x.size),
                       grad_pi_fn=lambda x, pi: np.zeros_like(pi)),
        (_MDP, _Slot("value_fn", lambda c: st.sampled_from([None, 0.0, "f", np.zeros(2)])),
         _Slot("grad_x_fn", lambda c: st.sampled_from([None, np.zeros(2), "g"])),
         _Slot("grad_pi_fn", lambda c: st.sampled_from([None, c.r, {"a": 1}]))), kernels=False),
    "BilevelProblem": _Spec(
        lambda c: dict(mdp=c.mdp, reward=c.reward, objective=c.objective, x0=np.array(c.x), bounds=None),
        (_MDP, _REWARD, _OBJECTIVE,
         # the reward protocol's own messages call its argument x
         _Slot("x0", lambda c: malformed_arrays((c.D,), base=c.x), ("x",)),
         _Slot("bounds", lambda c: _bounds(), ("x0",))),
        kernels=False),
    "ActorCriticConfig": _Spec(
        lambda c: dict(steps=10),
        (_scalar("steps", "count"),
         *(_Slot(n, lambda c: _SCHEDULE_BAD) for n in ("tau", "lam", "alpha", "beta", "zeta")),
         _scalar("sampling", "choice", choices=("iid", "markov")), _scalar("batch", "count"),
         _scalar("actor", "choice", choices=("pg", "npg")), _scalar("exact", "bool"),
         _scalar("log_every", "count"), _scalar("log_spacing", "choice", choices=("linear", "geometric")),
         _scalar("logs_per_decade", "count"), _scalar("diagnostics", "bool"), _scalar("fd_step", "positive"),
         _scalar("fd_inner", "count"), _scalar("linearize_every", "count"), _scalar("critic_init", "real")),
        kernels=False),
    "Trace": _Spec(
        lambda c: dict(columns={"k": np.arange(3), "x": np.zeros((3, 2))}, meta={"a": 1}),
        (_Slot("columns", lambda c: st.sampled_from([
            [("k", np.arange(3))], None, {"k": np.arange(3), "x": np.zeros(4)}, {1: np.arange(3)},
            {"k": "abc"}, {"k": np.array(["a", "b"])}, {"k": 3}, {"k": np.arange(3).astype(object)},
            {"k": None}, {"file": np.arange(3)}, {"a/b": np.arange(3)}, {"": np.arange(3)},
            {"k": np.array([2**64 - 1], dtype=np.uint64)}, {"k": np.zeros(3) + 1j}, {"k": [[1], [2, 3]]},
        ]), ("column",)),
         _Slot("meta", lambda c: st.sampled_from([
             [1, 2], "meta", {"a": math.nan}, {"a": object()}, {"a": {1, 2}}, {"a": np.array([math.inf])},
             {1: "a"}, {"a": b"bytes"},
         ]))), kernels=False),
    "run": _Spec(
        lambda c: dict(problem=_run_problem(), config=_config(), seed=0, method="actor_critic", checkpoint=None,
                       metrics=None, progress=False),
        (_Slot("problem", lambda c: st.sampled_from([None, c.mdp, {"mdp": c.mdp}, "problem"])),
         _Slot("config", lambda c: st.sampled_from([None, {"steps": 4}, 4, "config"])),
         _scalar("seed", "seed"),
         _scalar("method", "choice", choices=("actor_critic", "partial_sgd", "finite_differences", "rlhf",
                                              "hypergradient", "nested_penalty")),
         _Slot("checkpoint", lambda c: st.sampled_from([123, 1.5, ["a"], b"\0", "/"])),
         _Slot("metrics", lambda c: _metrics()), _scalar("progress", "bool")),
        nan_ok=True, convergence=True),
    # -- rates ---------------------------------------------------------------------------
    "fit_rate": _Spec(
        lambda c: dict(zip(("k", "values"), _rates_data())),
        (_Slot("k", lambda c: _k_values()),
         _Slot("values", lambda c: st.one_of(
             malformed_arrays((3, 16), base=_rates_data()[1]),
             st.sampled_from([-_rates_data()[1], np.zeros((3, 16)), _rates_data()[1][:, :5]]))),
         _Slot("window", lambda c: st.sampled_from([(0.9, 0.1), (0.0, 2.0), (math.nan, 1.0), 0.5, "all",
                                                    (0.0, 0.5, 1.0), (0.0, 0.01), ("a", 1.0), {0: 0, 1: 1}])),
         _Slot("k_range", lambda c: st.sampled_from([(1e4, 10.0), (1.0, 2.0), (math.nan, 1e4), 10.0, "k",
                                                     (10.0,), (10.0, math.inf)])),
         _scalar("decades", "positive"), _scalar("min_decades", "nonnegative"), _scalar("level", "fraction"),
         _scalar("floor", "positive"), _scalar("theory", "real"),
         _Slot("schedules", lambda c: st.sampled_from([{"lam": "a"}, {1: 0.2}, [("lam", 0.2)], "lam",
                                                       {"lam": math.nan}, {"": 0.1}, (("lam",),)])),
         _scalar("deterministic", "bool")),
        kernels=False, nan_ok=True),
    "slope_stability": _Spec(
        lambda c: dict(zip(("k", "values"), _rates_data())),
        (_Slot("k", lambda c: _k_values()),
         _Slot("values", lambda c: malformed_arrays((3, 16), base=_rates_data()[1])),
         _scalar("decades", "positive"),
         _Slot("ends", lambda c: st.one_of(malformed_arrays((None,), base=np.array([1e4])),
                                           st.sampled_from([np.array([20.0]), np.array([]), 5.0]))),
         _scalar("level", "fraction"), _scalar("floor", "positive"), _scalar("theory", "real"),
         _scalar("deterministic", "bool")),
        kernels=False, nan_ok=True),
    "verdict": _Spec(lambda c: dict(fit=_fit(), theory=None),
                     (_Slot("fit", lambda c: st.sampled_from([None, {"slope": -0.5}, (-0.5, (-1, 0)), "fit"])),
                      _scalar("theory", "real")), kernels=False),
    "rate_table": _Spec(lambda c: dict(fits={"a": _fit()}),
                        (_Slot("fits", lambda c: st.sampled_from([[_fit()], {"a": None}, {"a": 0.5}, "fits", None])),),
                        kernels=False),
    "running_mean": _Spec(
        lambda c: dict(k=np.arange(0, 50, 5), values=np.linspace(1, 2, 10), axis=0),
        (_Slot("k", lambda c: _running_k()),
         _Slot("values", lambda c: malformed_arrays((10,), base=np.linspace(1, 2, 10))),
         _scalar("axis", "int")), kernels=False, nan_ok=True),
    "running_min": _Spec(
        lambda c: dict(k=np.arange(0, 50, 5), values=np.linspace(1, 2, 10), axis=0),
        (_Slot("k", lambda c: _running_k()),
         _Slot("values", lambda c: malformed_arrays((10,), base=np.linspace(1, 2, 10))),
         _scalar("axis", "int")), kernels=False, nan_ok=True),
    # -- Bellman operators, solvers, evaluation ---------------------------------------------
    "q_values": _Spec(lambda c: dict(mdp=c.mdp, r=c.r, V=c.V), (_MDP, _R, _V)),
    "bellman_operator": _Spec(lambda c: dict(mdp=c.mdp, r=c.r, V=c.V, tau=c.TAU), (_MDP, _R, _V, _TAU)),
    "policy_from_q": _Spec(lambda c: dict(Q=c.r, tau=c.TAU),
                           (_arr("Q", lambda c: (None, None), lambda c: c.r), _TAU)),
    "solve": _Spec(
        lambda c: dict(mdp=c.mdp, r=c.r, tau=c.TAU, method="auto", tol=None, V0=None, max_iter=None,
                       raise_on_failure=True),
        (_MDP, _R, _TAU, _scalar("method", "choice", choices=("auto", "vi", "pi", "newton", "mpi", "anderson")),
         _scalar("tol", "positive"), _V0, _scalar("max_iter", "count"), _scalar("raise_on_failure", "bool")),
        convergence=True),
    "evaluate": _Spec(lambda c: dict(mdp=c.mdp, r=c.r, pi=c.pi, tau=c.TAU), (_MDP, _R, _PI, _TAU)),
    "occupancy": _Spec(lambda c: dict(mdp=c.mdp, pi=c.pi), (_MDP, _PI)),
    # -- gradients ------------------------------------------------------------------------
    "softmax_policy": _Spec(lambda c: dict(theta=c.theta), (_arr("theta", lambda c: (None, None), lambda c: c.theta),),
                            kernels=False),
    "expected_return": _Spec(lambda c: dict(mdp=c.mdp, r=c.r, pi=c.pi, tau=c.TAU), (_MDP, _R, _PI, _TAU)),
    "soft_advantage": _Spec(lambda c: dict(mdp=c.mdp, r=c.r, pi=c.pi, tau=c.TAU), (_MDP, _R, _PI, _TAU)),
    "policy_gradient": _Spec(lambda c: dict(mdp=c.mdp, r=c.r, theta=c.theta, tau=c.TAU), (_MDP, _R, _THETA, _TAU)),
    "natural_policy_gradient": _Spec(lambda c: dict(mdp=c.mdp, r=c.r, theta=c.theta, tau=c.TAU),
                                     (_MDP, _R, _THETA, _TAU)),
    "return_gradient": _Spec(lambda c: dict(mdp=c.mdp, reward=c.reward, x=c.x, pi=c.pi), (_MDP, _REWARD, _X, _PI)),
    "optimal_return_gradient": _Spec(
        lambda c: dict(mdp=c.mdp, reward=c.reward, x=c.x, tau=c.TAU, solution=None, V0=None),
        (_MDP, _REWARD, _X, _TAU, _solution_slot(_Context.TAU), _V0), convergence=True),
    "hypergradient": _Spec(
        lambda c: dict(mdp=c.mdp, reward=c.reward, objective=c.objective, x=c.x, tau=c.TAU, form="adjoint",
                       solution=None, V0=None, full_output=False),
        (_MDP, _REWARD, _OBJECTIVE, _X, _TAU_POSITIVE,
         _scalar("form", "choice", choices=("adjoint", "forward")), _solution_slot(_Context.TAU), _V0,
         _scalar("full_output", "bool")), convergence=True),
    "action_gap": _Spec(lambda c: dict(mdp=c.mdp, reward=c.reward, x=c.x, solution=None),
                        (_MDP, _REWARD, _X, _solution_slot(0.0)), convergence=True),
    "limit_policy": _Spec(
        lambda c: dict(mdp=c.mdp, r=c.r, solution=None, tie_tol=None, rule="limit"),
        (_MDP, _R, _solution_slot(0.0), _scalar("tie_tol", "nonnegative"),
         _scalar("rule", "choice", choices=("limit", "uniform"))), convergence=True),
    "optimal_actions": _Spec(
        lambda c: dict(mdp=c.mdp, r=c.r, solution=None, tie_tol=None),
        (_MDP, _R, _solution_slot(0.0), _scalar("tie_tol", "nonnegative")), convergence=True),
    # -- penalty ----------------------------------------------------------------------------
    "value_penalty": _Spec(
        lambda c: dict(mdp=c.mdp, reward=c.reward, x=c.x, pi=c.pi, tau=c.TAU, solution=None),
        (_MDP, _REWARD, _X, _PI, _TAU, _solution_slot(_Context.TAU)), convergence=True),
    "penalty_lagrangian": _Spec(
        lambda c: dict(mdp=c.mdp, reward=c.reward, objective=c.objective, x=c.x, theta=c.theta, lam=c.LAM,
                       tau=c.TAU, solution=None),
        (_MDP, _REWARD, _OBJECTIVE, _X, _THETA, _LAM, _TAU, _solution_slot(_Context.TAU)), convergence=True),
    "penalized_policy": _Spec(
        lambda c: dict(mdp=c.mdp, reward=c.reward, objective=c.objective, x=c.x, lam=c.LAM, tau=c.TAU,
                       theta0=None, tol=1e-8, max_iter=200, solution=None),
        (_MDP, _REWARD, _OBJECTIVE, _X, _LAM, _TAU_POSITIVE, _theta_slot("theta0"), _scalar("tol", "positive"),
         _scalar("max_iter", "count"), _solution_slot(_Context.TAU)), convergence=True),
    # -- environments --------------------------------------------------------------------
    "envs.random_mdp": _Spec(
        _base_random_mdp,
        (_scalar("S", "size"), _scalar("A", "size"), _scalar("gamma", "discount"),
         _Slot("successors", lambda c: st.one_of(malformed_scalars("size"), st.just(c.S + 1))),
         _scalar("seed", "seed"), _Slot("sparse", lambda c: malformed_scalars("bool")),
         _Slot("rho", lambda c: st.one_of(malformed_distributions(c.S),
                                          malformed_arrays((c.S,), base=np.full(c.S, 1.0 / c.S)))))),
    "envs.gridworld": _Spec(
        lambda c: dict(n=2, slip=0.1, gamma=0.5, actions=5, targets=(), hazards=(), walls=(), sparse=None, rho=None),
        (_scalar("n", "size"), _scalar("slip", "probability"), _scalar("gamma", "discount"),
         _Slot("actions", lambda c: st.sampled_from([3, 6, 4.0, "5", None, True, np.int8(4), 0])),
         _Slot("targets", _cells), _Slot("hazards", _cells), _Slot("walls", _cells, ("cell",)),
         _Slot("sparse", lambda c: malformed_scalars("bool")),
         _Slot("rho", lambda c: st.one_of(malformed_distributions(4),
                                          malformed_arrays((4,), base=np.full(4, 0.25)))))),
}

#: The public callables :func:`malformed_calls` covers: every callable of ``exactbilevel.__all__``
#: that takes user input (result types such as SolveResult are not), and the environment builders.
CALLS = tuple(_SPECS)

#: The entries of :data:`CALLS` whose calls reach compiled (Numba) kernels: a check they
#: miss could crash the interpreter, so test them in a subprocess.
KERNEL_CALLS = tuple(name for name, spec in _SPECS.items() if spec.kernels)


def resolve(name):
    """The function of exactbilevel named ``name`` (an entry of :data:`CALLS`, e.g. ``"solve"``
    or ``"envs.gridworld"``)."""
    import exactbilevel

    obj = exactbilevel
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


class MalformedCall(tuple):
    """``(function_name, args, kwargs)`` drawn by :func:`malformed_calls`, with attributes
    ``argument`` (the parameter whose value is malformed), ``value`` (that value),
    ``names`` (the words an error message may name it by: the argument, aliases, and
    for a value made for another problem the arguments it conflicts with),
    ``convergence`` and ``nan_ok`` (see :func:`check_error_contract`).
    ``call.check()`` runs :func:`check_error_contract` on it."""

    def __new__(cls, name, args, kwargs, argument, value, names, convergence=False, nan_ok=False):
        self = super().__new__(cls, (name, args, kwargs))
        self.argument, self.value, self.names = argument, value, tuple(names)
        self.convergence, self.nan_ok = convergence, nan_ok
        return self

    @property
    def name(self):
        return self[0]

    def check(self):
        """:func:`check_error_contract` on this call: ``("returned", result)`` or ``("raised", exc)``."""
        name, args, kwargs = self
        return check_error_contract(resolve(name), args, kwargs, argument=self.argument, names=self.names,
                                    convergence=self.convergence, nan_ok=self.nan_ok)

    def __repr__(self):
        text = repr(self.value)
        text = text if len(text) <= 300 else text[:297] + "..."
        return f"MalformedCall({self[0]}, {self.argument}={text})"


@st.composite
def _contexts(draw, max_states=4, max_actions=3):
    from .. import LinearReward

    mdp = draw(ebst.mdps(max_states=max_states, max_actions=max_actions, gamma=(0.0, 0.95)))
    d = _Context.D
    reward = draw(st.one_of(ebst.rewards(mdp, d=d, scale=(1e-2, 10.0)),
                            st.just(LinearReward(np.ones((mdp.S, mdp.A, d))))))
    objective = draw(ebst.objectives(mdp, d=d))
    x = draw(ebst.xs(d))
    r = draw(ebst.rewards(mdp, scale=(1e-2, 10.0)))
    pi = draw(ebst.policies(mdp, min_prob=min(0.05, 1.0 / mdp.A)))
    rng = np.random.default_rng(draw(seeds))
    return _Context(mdp, reward, objective, x, r, pi, rng.normal(size=(mdp.S, mdp.A)),
                    draw(ebst.values(mdp, scale=(1e-2, 10.0))), rng)


@st.composite
def malformed_calls(draw, names=None, max_states=4, max_actions=3):
    """A :class:`MalformedCall` ``(function_name, args, kwargs)``: a valid call of a public
    function of exactbilevel (``names``: entries of :data:`CALLS`, all by default) with
    exactly one argument replaced by a malformed value.

    The valid calls are built from a small problem drawn with
    :mod:`exactbilevel.testing.strategies` (an MDP of at most ``max_states`` states and
    ``max_actions`` actions, dense or sparse, a reward model of dimension 2, an objective,
    x, a reward table, a policy with full support, logits, values; tau = 0.5, lam = 10):
    the required parameters go in ``args``, the others in ``kwargs``.  The malformed
    values come from :func:`malformed_arrays` (arrays), :func:`malformed_scalars` (numbers,
    flags and choices), :func:`malformed_probabilities`, :func:`malformed_distributions`
    and :func:`malformed_policies`, and from hand-made objects for the structured
    arguments: mdp (None, a kernel array, a GridWorld in place of its ``.mdp``, an MDP of
    another shape), reward and objective models (missing methods, values with NaN, a
    wrong shape or type, built for another MDP), a lower-level solution (not a
    SolveResult, at another tau, of another MDP, with NaN), schedules, bounds, grid cells,
    metrics, columns.

    The contract (:func:`check_error_contract`, ``call.check()``): ValueError or
    TypeError naming the argument (or ConvergenceError where documented), or a normal
    return without NaN for a value that is valid after all; the caller's arrays unchanged.
    Calls of the functions of :data:`KERNEL_CALLS` reach compiled kernels: make them in a
    subprocess, where a missed check cannot take the test process down.
    """
    name, spec, ctx, params, call = _base_call(draw, names, max_states, max_actions)
    slot = draw(st.sampled_from(spec.slots))
    value = draw(slot.values(ctx))
    extra = tuple(slot.names)
    if isinstance(value, _Mismatch):
        value = value.value
        extra += tuple(params)
    if slot.name not in params:  # pragma: no cover - a mistake in _SPECS
        raise InvalidArgument(f"{name} has no parameter {slot.name!r}")
    call[slot.name] = value
    args, kwargs = _split(params, call)
    return MalformedCall(name, args, kwargs, slot.name, value, extra, spec.convergence, spec.nan_ok)


def _base_call(draw, names, max_states, max_actions):
    """``(name, spec, ctx, parameters, {parameter: value})`` of a drawn valid base call."""
    names = CALLS if names is None else tuple(names)
    unknown = [n for n in names if n not in _SPECS]
    if not names or unknown:
        raise InvalidArgument(f"names must be entries of CALLS, got {unknown or names!r}")
    name = draw(st.sampled_from(names))
    spec = _SPECS[name]
    ctx = draw(_contexts(max_states, max_actions))
    return name, spec, ctx, inspect.signature(resolve(name)).parameters, dict(spec.base(ctx))


def _split(params, call):
    """``(args, kwargs)``: the required parameters positionally, the others by keyword."""
    required = [p for p, v in params.items() if v.default is inspect.Parameter.empty
                and v.kind in (v.POSITIONAL_ONLY, v.POSITIONAL_OR_KEYWORD)]
    return tuple(call.pop(p) for p in required), call


@st.composite
def valid_calls(draw, names=None, max_states=4, max_actions=3):
    """``(function_name, args, kwargs)``: the valid call that :func:`malformed_calls` starts from,
    unchanged (on the same kind of drawn problem).  The contract: it returns, without NaN
    where NaN is not documented (a ConvergenceError where documented; none is expected)."""
    name, _, _, params, call = _base_call(draw, names, max_states, max_actions)
    return (name, *_split(params, call))


# --------------------------------------------------------------------------- the command line

#: Candidate out-of-range values of a configuration key, by its schema; those that ``load``
#: refuses make the "range" case of :func:`malformed_configs`.
_RANGE_CANDIDATES = {
    int: (-1, 0, 1, -(2**63), 2**63 - 1, 10**9),
    float: (-1.0, 0.0, -1e300, 1e300, 1.0, 0.5, 2.0, 1e-300, 1000.0),
    str: ("", "x", "NPG", "markov "),
    bool: (),
}


def _range_candidates(schema):
    if not isinstance(schema, tuple):
        return _RANGE_CANDIDATES[schema]
    _, item, length = schema
    n = length if length is not None else 1
    if isinstance(item, tuple):
        _, kind, m = item
        bad = [-1] + [0] * (m - 1) if kind is int else [-1.0] * m
        return ([], [bad], [[10**6] * m], [[0] * m, [0] * m])
    kinds = _RANGE_CANDIDATES[item]
    pairs = (list(kinds[:2]),) if len(kinds) >= 2 and length in (None, 2) else ()
    return ([],) + tuple([v] * n for v in kinds) + pairs


@functools.lru_cache(maxsize=None)
def _range_cases(experiment):
    """``(key, toml_value)`` pairs of ``experiment`` with a value of the right type and shape
    that ``load`` refuses (a ConfigError: out of range, or in conflict with a default)."""
    from ..experiments import EXPERIMENTS
    from ..experiments.config import ConfigError, load
    from .strategies import _toml

    cls = EXPERIMENTS[experiment][1]
    cases = []
    for field in dataclasses.fields(cls):
        for value in _range_candidates(field.metadata["schema"]):
            text = f"{field.name} = {_toml(value)}\n"
            try:
                load(cls, text)
            except ConfigError:
                cases.append((field.name, _toml(value)))
    return tuple(cases)


@st.composite
def malformed_configs(draw, experiments=None):
    """``(experiment, toml_text, key)``: a configuration file that ``exactbilevel run
    EXPERIMENT --config FILE`` must refuse, with the key its message must name (None for
    text that is not TOML).  Either a case of
    :func:`exactbilevel.testing.strategies.malformed_configs` (a value of the wrong type
    or shape for a random key, a common key out of range, an unknown key, text that is
    not TOML), or a random key of the experiment with a value of the right type and
    shape out of its range (one of a few candidates per type, kept when the
    configuration's checks refuse it).

    The contract: exit status 2 and exactly one line on stderr naming the key, before
    anything is computed or written.
    """
    names, _ = ebst._experiment_names(experiments)
    if draw(st.booleans()):
        return draw(ebst.malformed_configs(names))
    name = draw(st.sampled_from(names))
    cases = _range_cases(name)
    if not cases:  # pragma: no cover - every experiment has range checks
        return draw(ebst.malformed_configs([name]))
    key, value = draw(st.sampled_from(cases))
    return name, f"{key} = {value}\n", key


# --------------------------------------------------------------------------- gymnasium tables

_TABLE_DEFECTS = ("probability", "next state", "reward", "terminated", "outcome", "outcomes", "actions", "rows",
                  "initial")


@st.composite
def malformed_gymnasium_tables(draw):
    """``(env, defect)``: an object with ``env.unwrapped.P`` (the table of a toy-text
    gymnasium environment, ``P[s][a] = [(prob, next_state, reward, terminated), ...]``) and
    ``env.unwrapped.initial_state_distrib``, valid but for one ``defect`` of
    ``_TABLE_DEFECTS``: a probability that is not a number, negative, NaN or infinite; a next
    state out of range or not an integer; a reward that is not a finite number; a
    ``terminated`` that is not a bool; an outcome that is not a 4-sequence; an outcome list
    that is empty or not a list; an action set that differs between states; outcome
    probabilities that do not sum to 1; an initial distribution of the wrong length, negative
    or not summing to 1.  For :func:`exactbilevel.envs.from_gymnasium` (the contract:
    ``ValueError`` or ``TypeError`` naming ``env`` or ``rho``)."""
    from types import SimpleNamespace

    S = draw(st.integers(2, 4))
    A = draw(st.integers(1, 3))
    table = {}
    for s in range(S):
        table[s] = {}
        for a in range(A):
            n = draw(st.integers(1, 3))
            w = np.array(draw(st.lists(st.floats(0.1, 1.0), min_size=n, max_size=n)))
            w = w / w.sum()
            table[s][a] = [(float(p), draw(st.integers(0, S - 1)), draw(st.floats(-1, 1)), draw(st.booleans()))
                           for p in w]
    rho = np.full(S, 1.0 / S)
    defect = draw(st.sampled_from(_TABLE_DEFECTS))
    s, a = draw(st.integers(0, S - 1)), draw(st.integers(0, A - 1))
    i = draw(st.integers(0, len(table[s][a]) - 1))
    p, nxt, rew, term = table[s][a][i]
    if defect == "probability":
        p = draw(st.sampled_from(["0.5", None, -0.25, math.nan, math.inf, [p], 1j]))
    elif defect == "next state":
        nxt = draw(st.sampled_from([S, -1, 10**12, 1.5, "0", None]))
    elif defect == "reward":
        rew = draw(st.sampled_from([math.nan, math.inf, -math.inf, "1", None, [1.0]]))
    elif defect == "terminated":
        term = draw(st.sampled_from(["yes", None, 2, 0.5]))
    if defect in ("probability", "next state", "reward", "terminated"):
        table[s][a][i] = (p, nxt, rew, term)
    elif defect == "outcome":
        table[s][a][i] = draw(st.sampled_from([(p, nxt, rew), (p, nxt, rew, term, 0), p, None, "abcd"]))
    elif defect == "outcomes":
        table[s][a] = draw(st.sampled_from([[], None, 5]))
    elif defect == "actions":
        table[s] = {b: table[s][b] for b in range(A - 1)} if A > 1 else {0: table[s][0], 1: table[s][0]}
    elif defect == "rows":
        table[s][a] = [(0.5 * q, n2, r2, t2) for q, n2, r2, t2 in table[s][a]]
    else:  # "initial"
        rho = draw(st.sampled_from([np.full(S + 1, 1.0 / (S + 1)), np.full(S, 2.0 / S), -rho, np.full(S, np.nan)]))
    return SimpleNamespace(unwrapped=SimpleNamespace(P=table, initial_state_distrib=rho)), defect
