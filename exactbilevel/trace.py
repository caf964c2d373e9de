"""The record of one run: one row per logging point (docs/theory.rst, "What is measured").

A :class:`Trace` holds named columns that share their first dimension n_logs
(``trace["residual_phi"]`` is (n_logs,), ``trace["x"]`` is (n_logs, d)) and a
JSON-serializable ``meta`` mapping (configuration, seed, versions, commit; see
:func:`run_metadata`).  Columns are read-only copies in float64 (floats) or
int64 (bools and integers); :data:`COLUMNS` documents the known names, and
any other name is allowed as a user column.

On disk a trace is two files with one stem: ``run.npz`` (the columns, by name,
uncompressed, bit for bit) and ``run.json`` (format, column order, meta and the
SHA-256 of the ``.npz``).  Each file is written to a temporary file in the same
directory and moved into place with ``os.replace``, so a crash never leaves a
half-written file; a crash between the two moves leaves a new ``.npz`` beside an
old ``.json``, which :meth:`Trace.load` detects by the hash and refuses.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import platform
import subprocess
import tempfile
import types
import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = ["COLUMNS", "Trace", "TraceBuilder", "run_metadata"]

#: Known column names and their meaning (docs/theory.rst, "What is measured"; exactbilevel.diagnostics).
COLUMNS = {
    "k": "step index k of the run",
    "samples": "environment transitions sampled so far",
    "x": "upper-level variable x_k, shape (n_logs, d)",
    "tau": "entropy weight tau_k",
    "lam": "penalty weight lam_k",
    "residual_phi": "lower-level residual J*_tau(x) - J_tau(x, pi_phi)",
    "residual_theta": "penalized residual G(x, theta) - min_theta G(x, theta), G = f/lam - J_tau",
    "critic_error_phi": "critic error sum_{s,a} nu(s,a) (Qhat_phi - Q^pi)^2, pi = pi_phi, nu = nu^pi, reward r, tau",
    "critic_error_theta": "critic error sum_{s,a} nu(s,a) (Qhat_theta - Q^pi)^2, pi = pi_theta, nu = nu^pi, reward r, tau",
    "critic_error_c": "critic error sum_{s,a} nu(s,a) (Qhat_c - Q_c^pi)^2, pi = pi_theta, nu = nu^pi, cost c, tau = 0",
    "pl_ratio": "PL ratio |grad_theta J_tau(pi_phi)|^2 / (J*_tau - J_tau(pi_phi))",
    "pl_bound": "PL bound 2 tau min_s rho(s) (min pi_phi)^2 / (S max_s d*(s)/d^pi_phi(s)) (Mei et al. 2020, Lemma 15)",
    "min_pi": "smallest probability min_{s,a} pi_phi(a|s)",
    "grad_phi_norm2": "stationarity |grad Phi_tau(x)|^2 (exact hyper-gradient)",
    "grad_ell_norm2": "stationarity |grad ell_{lam,tau}(x)|^2 (penalized policy solved exactly)",
    "kkt_residual": "penalty-KKT residual at tau = 0: max(|projected grad_x L|, |grad_theta L|, p_0)",
    "phi0": "objective Phi_0(x) = f(x, pi*_0(x)), pi*_0 the tau -> 0 limit of pi*_tau (eb.limit_policy), not a first argmax",
    "phi_tau": "objective Phi_tau(x) = f(x, pi*_tau(x))",
    "penalty_bias": "penalty bias |grad ell_{lam,tau}(x) - grad Phi_tau(x)| (part of E[ghat] - grad Phi_tau)",
    "residual_bias": "lower-level residual bias |E[ghat] - grad ell_{lam,tau}(x)| at exact critics",
    "critic_bias": "critic bias |D(Qhat) - D(Q^pi)| of the expected theta direction",
    "ghat_variance": "variance trace Cov(ghat) of the upper-level gradient estimate",
    "entropy_bias": "entropy bias J*_0 - J_0(pi*_tau) (within [0, entropy_bound])",
    "entropy_bound": "entropy bias bound tau log A / (1 - gamma)",
    "action_gap": "smallest action gap of Q*_0(x)",
    "time": "wall-clock seconds since the start of the run",
}

_FORMAT = "exactbilevel.trace"
# Names np.savez takes as its own arguments: they cannot be passed as array names.
_RESERVED = frozenset({"file", "args", "kwds", "allow_pickle"})


def _column(name, value):
    if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in _RESERVED:
        raise ValueError(f"column name {name!r} is not allowed: use a non-empty str without '/' or '\\', "
                         f"not one of {sorted(_RESERVED)}")
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"column {name!r} must be a numeric array, got {type(value).__name__}")
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested lists and the like
        raise TypeError(f"column {name!r} must be a numeric array: {exc}") from None
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"column {name!r} must have a bool, int or float dtype, got {arr.dtype}")
    if arr.ndim == 0:
        raise ValueError(f"column {name!r} must have at least one dimension (n_logs, ...), got a scalar")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"column {name!r} has an unsigned entry above the int64 range; convert it to float")
    arr = np.array(arr, dtype=np.int64 if arr.dtype.kind in "biu" else np.float64, order="C", copy=True)
    arr.flags.writeable = False
    return arr


def _json_default(obj):  # numpy scalars and arrays become JSON numbers and lists
    if isinstance(obj, (np.generic, np.ndarray)):
        return obj.tolist()
    raise TypeError(f"meta must be JSON-serializable: {type(obj).__name__} object {obj!r} is not")


def _freeze(obj):  # the JSON image made read-only: dicts -> mapping proxies, lists -> tuples
    if isinstance(obj, dict):
        return types.MappingProxyType({k: _freeze(v) for k, v in obj.items()})
    return tuple(_freeze(v) for v in obj) if isinstance(obj, list) else obj


def _thaw(obj):
    if isinstance(obj, Mapping):
        return {k: _thaw(v) for k, v in obj.items()}
    return [_thaw(v) for v in obj] if isinstance(obj, (tuple, list)) else obj


def _json_image(meta):
    meta = {} if meta is None else meta
    if not isinstance(meta, Mapping):
        raise TypeError(f"meta must be a dict (JSON-serializable), got {type(meta).__name__}")
    try:
        text = json.dumps(_thaw(meta), default=_json_default, allow_nan=False)
    except ValueError as exc:
        raise ValueError(f"meta must be JSON-serializable without NaN or infinity: {exc}") from None
    return json.loads(text)


def _paths(path):
    path = os.fspath(path)
    npz = path if path.endswith(".npz") else path + ".npz"
    return npz, npz[: -len(".npz")] + ".json"


def _atomic_write(target, write):
    """Call ``write(fh)`` on a temporary file beside ``target``; return the temporary path."""
    directory, base = os.path.split(os.path.abspath(target))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{base}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
    except BaseException:
        os.unlink(tmp)
        raise
    return tmp


class Trace:
    """``Trace(columns, meta)``: named columns with a common first dimension n_logs, and metadata.

    ``trace[name]`` is a read-only column (KeyError listing the names if
    unknown); ``trace.columns`` the names in order; ``len(trace)`` n_logs;
    ``trace.meta`` a read-only mapping holding the JSON image of ``meta``
    (nested dicts are read-only mappings, lists are tuples); ``trace.describe(name)``
    the meaning of a column (:data:`COLUMNS`).
    """

    def __init__(self, columns, meta=None):
        if not isinstance(columns, Mapping):
            raise TypeError(f"columns must be a dict name -> array, got {type(columns).__name__}")
        cols = {name: _column(name, value) for name, value in columns.items()}
        lengths = {name: arr.shape[0] for name, arr in cols.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"every column must have the same first dimension n_logs, got {lengths}")
        self._columns = cols
        self._n = next(iter(lengths.values()), 0)
        self._meta = _freeze(_json_image(meta))

    columns = property(lambda self: tuple(self._columns), doc="the column names, in order")
    meta = property(lambda self: self._meta, doc="read-only metadata (JSON image)")

    def __len__(self):
        return self._n

    def __contains__(self, name):
        return name in self._columns

    def __getitem__(self, name):
        if isinstance(name, str) and name in self._columns:
            return self._columns[name]
        raise KeyError(f"no column {name!r} in this trace; available: {', '.join(self._columns) or '(none)'}")

    def __repr__(self):
        return f"Trace(n_logs={self._n}, columns=({', '.join(self._columns)}))"

    def describe(self, name):
        """The documented meaning of column ``name``, or "no description" for a user column."""
        if name in COLUMNS:
            return COLUMNS[name]
        if name in self._columns:
            return "no description"
        self[name]  # raises the KeyError listing the available names

    def to_pandas(self, **labels):
        """The trace as a long ("tidy") ``pandas.DataFrame``: one row per logging point,
        column and component, ready for seaborn or a groupby.

        Columns: ``k`` (the step of the logging point; the row number ``0 .. n_logs - 1``
        when the trace has no ``k`` column), ``column`` (the trace column's name),
        ``component`` (the flat index into a column of shape (n_logs, ...); 0 for a scalar
        column), ``value`` (float64), then one constant column per keyword of ``labels``
        (for example ``trace.to_pandas(seed=3, method="decaying tau")``, so that the frames
        of several runs concatenate into one).  Every column but ``k`` is a variable.
        Needs pandas (``pip install "exactbilevel[pandas]"``)."""
        try:
            import pandas as pd
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError('Trace.to_pandas needs pandas: pip install "exactbilevel[pandas]"') from None
        reserved = {"k", "column", "component", "value"} & set(labels)
        if reserved:
            raise ValueError(f"labels may not be named {sorted(reserved)}: those are the frame's own columns")
        k = np.asarray(self._columns["k"], dtype=np.int64) if "k" in self._columns else np.arange(self._n)
        parts = []
        for name, arr in self._columns.items():
            if name == "k":
                continue
            flat = np.asarray(arr, dtype=np.float64).reshape(self._n, -1)
            m = flat.shape[1]
            parts.append(pd.DataFrame({"k": np.repeat(k, m), "column": name,
                                       "component": np.tile(np.arange(m), self._n), "value": flat.ravel()}))
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            {"k": np.array([], dtype=np.int64), "column": [], "component": np.array([], dtype=np.int64),
             "value": np.array([], dtype=np.float64)})
        frame["column"] = frame["column"].astype("category")
        for key, value in labels.items():
            frame[key] = value
        return frame

    def save(self, path):
        """Write ``path`` (``.npz`` appended unless present) and the sibling ``.json``, atomically."""
        npz_path, json_path = _paths(path)
        cols = self._columns
        tmp_npz = _atomic_write(npz_path, lambda fh: np.savez(fh, **cols))
        tmp_json = None
        try:
            with open(tmp_npz, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
            doc = {"format": _FORMAT, "version": 1, "columns": list(cols), "npz_sha256": digest,
                   "meta": _thaw(self._meta)}
            text = json.dumps(doc, indent=1, allow_nan=False).encode()
            tmp_json = _atomic_write(json_path, lambda fh: fh.write(text))
            os.replace(tmp_npz, npz_path)
            os.replace(tmp_json, json_path)
        except BaseException:
            for tmp in (t for t in (tmp_npz, tmp_json) if t is not None and os.path.exists(t)):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path):
        """Read a trace written by :meth:`save` (``path`` with or without ``.npz``).

        OSError (FileNotFoundError, ...) if a file cannot be opened; ValueError naming the
        file and what is wrong if either file is damaged, not a trace, or the two files do
        not belong together."""
        npz_path, json_path = _paths(path)
        with open(json_path, "rb") as fh:
            raw = fh.read()
        try:
            doc = json.loads(raw.decode("utf-8"))
        except ValueError as exc:  # UnicodeDecodeError, JSONDecodeError
            raise ValueError(f"{json_path} is damaged: not valid UTF-8 JSON ({exc}); save the trace again") from None
        if not isinstance(doc, dict) or doc.get("format") != _FORMAT:
            raise ValueError(f"{json_path} is not an exactbilevel trace description")
        digest, names, meta = doc.get("npz_sha256"), doc.get("columns"), doc.get("meta", {})
        if not isinstance(digest, str):
            raise ValueError(f"{json_path} is damaged: no 'npz_sha256' string; save the trace again")
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise ValueError(f"{json_path} is damaged: 'columns' is not a list of column names; save the trace again")
        if not isinstance(meta, dict):
            raise ValueError(f"{json_path} is damaged: 'meta' is not a JSON object; save the trace again")
        with open(npz_path, "rb") as fh:
            if hashlib.sha256(fh.read()).hexdigest() != digest:
                raise ValueError(f"{npz_path} does not match {json_path} (an interrupted save, or files "
                                 "from different saves); save the trace again")
        columns = read_npz(npz_path, names)
        try:
            return cls(columns, meta)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{npz_path} is not a valid trace: {exc}") from None


def read_npz(path, names=None):
    """``{name: array}`` of the ``.npz`` file ``path``, read in full (without pickles).

    ``names``: the arrays that must be there, in this order (None: all of them).  OSError
    if the file cannot be opened; ValueError naming the file if it is not an ``.npz``
    archive, is damaged (truncated, a bad checksum) or lacks one of ``names``."""
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if magic == b"\x93NUMPY":
        raise ValueError(f"{os.fspath(path)} is a single .npy array, not an .npz archive")
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        what = "empty" if not magic else "not a zip archive"
        raise ValueError(f"{os.fspath(path)} is not a readable .npz archive (the file is {what})")
    try:
        z = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
        raise ValueError(f"{os.fspath(path)} is not a readable .npz archive ({type(exc).__name__}: {exc})") from None
    if not isinstance(z, np.lib.npyio.NpzFile):  # pragma: no cover - the magic bytes were a zip archive's
        raise ValueError(f"{os.fspath(path)} is not an .npz archive")
    with z:
        names = list(z.files) if names is None else list(names)
        missing = [n for n in names if n not in z.files]
        if missing:
            raise ValueError(f"{os.fspath(path)} lacks the arrays {missing} (it has {z.files})")
        try:
            return {n: np.array(z[n]) for n in names}
        except (ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise ValueError(f"{os.fspath(path)} is damaged ({type(exc).__name__}: {exc})") from None


class TraceBuilder:
    """``TraceBuilder(names)``: collect rows with ``.add(**row)``, then ``.build(meta) -> Trace``.

    Every row must give exactly ``names``; each value is a scalar or a 1-D
    array whose shape is fixed by the first row.
    """

    def __init__(self, names):
        self._names = (names,) if isinstance(names, str) else tuple(names)
        if not self._names or len(set(self._names)) != len(self._names):
            raise ValueError(f"names must be a non-empty sequence of distinct names, got {self._names}")
        self._rows = {name: [] for name in self._names if _column(name, [0]) is not None}  # checks names
        self._shapes = None

    def __len__(self):
        return len(self._rows[self._names[0]])

    def add(self, **row):
        if set(row) != set(self._names):
            missing, extra = set(self._names) - set(row), set(row) - set(self._names)
            raise ValueError(f"row must give exactly the names {self._names}; missing {sorted(missing)}, "
                             f"unexpected {sorted(extra)}")
        values = {name: np.array(_column(name, np.atleast_1d(row[name]))) for name in self._names}  # copies
        values = {n: v if np.ndim(row[n]) >= 1 else v[0] for n, v in values.items()}
        shapes = {name: np.shape(v) for name, v in values.items()}
        if self._shapes is not None and shapes != self._shapes:
            bad = [n for n in self._names if shapes[n] != self._shapes[n]]
            raise ValueError(f"row {len(self)} changes the shape of {bad}: first row had "
                             f"{[self._shapes[n] for n in bad]}, this one {[shapes[n] for n in bad]}")
        self._shapes = shapes
        for name in self._names:
            self._rows[name].append(values[name])

    def build(self, meta=None):
        cols = {n: np.array(v) if v else np.zeros(0) for n, v in self._rows.items()}
        return Trace(cols, meta)


def _git_commit():
    here = Path(__file__).resolve().parent
    if not (here.parent / "pyproject.toml").is_file():  # an installed copy, not the source tree
        return None
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError, ValueError):  # no git, not a checkout, timeout
        return None
    return out if len(out) in (40, 64) and all(c in "0123456789abcdef" for c in out) else None


def run_metadata(config, seed):
    """``meta`` for a :class:`Trace`: config, seed, versions, git commit (or None), UTC timestamp."""
    from . import __version__

    config = _json_image(config)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, (int, np.integer))):
        raise TypeError(f"seed must be an int or None, got {type(seed).__name__}")
    return {"config": config, "seed": None if seed is None else int(seed), "exactbilevel_version": __version__,
            "numpy_version": np.__version__, "python_version": platform.python_version(), "git_commit": _git_commit(),
            "timestamp": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
