"""Empirical convergence rates: slopes of log(quantity) on log(k) (docs/theory.rst, "What is measured" and "Rates and verdicts").

Slope
-----
For logging points k_1 < ... < k_n and values v_j(k_i) of seed j, the points in
the fitting window W give per-seed least-squares slopes::

    b_j = sum_{i in W} (x_i - xbar) (y_ji - ybar_j) / sum_{i in W} (x_i - xbar)^2,
    x_i = log k_i,   y_ji = log v_j(k_i)

and the reported slope is their mean bbar, which equals the slope of the fit to
the mean over seeds of log v (the k are shared).  A quantity decaying like k^p
has slope p.

Window
------
A rate is an asymptotic statement, and over a short window a slow rate cannot be
told from noise or curvature (a true k^-0.1 changes by 7 % over 0.3 decades), so
every window must span at least ``min_decades`` (default 1.5) decades of k,
``log10(k_last / k_first) >= min_decades``; a shorter one is refused with a
``ValueError`` that says how long it is.  ``min_decades`` can be lowered
explicitly (for example for short smoke-test runs).

* default (``window=None, k_range=None``): the last ``decades`` (default 1.5)
  decades or more: the points with ``k >= k_s``, where k_s is the largest
  logging point with ``k_s <= k_n / 10^decades`` (so the window spans at least
  ``decades`` decades), or all the points when the data span less;
* ``window=(lo, hi)``: the points with 0-based index i, ``lo n <= i < hi n``
  (fractions of the logging points);
* ``k_range=(k_lo, k_hi)``: the points with ``k_lo <= k <= k_hi``.

Logging points whose log k differ by less than 1e-10 (for example k and
k (1 + 1e-15) from rounding geometric spacing) are refused: merge them first.

Interval
--------
``"seed t-interval"`` (two or more seeds): the Student-t interval of the mean of
    the per-seed slopes, ``bbar +- t_{n_s - 1, (1 + level)/2} s_b / sqrt(n_s)``
    with s_b the sample standard deviation of the b_j.  Seeds are independent
    runs, so the b_j are i.i.d.; the interval's coverage is exactly ``level``
    when they are normal, which holds whenever each seed's log-values are a
    fixed curve plus Gaussian noise, however autocorrelated along the run (b_j
    is linear in y_j).  Otherwise it is the t-interval of a mean, with its usual
    robustness.  The coverage is tested in ``tests/test_rates.py`` on synthetic
    experiments of 10 seeds with a known slope, with independent and with
    AR(1) (0.8) noise along the run: within [93 %, 97 %] at a nominal 95 %.
``"single seed: no interval"`` (one seed): ``ci = (nan, nan)``.  The residuals
    of one run are autocorrelated with an unknown correlation, and the window's
    points are few, so no interval from one run has a coverage that can be
    stated (a residual bootstrap that assumes independent residuals covers only
    about half of the time at a nominal 95 % under AR(1) 0.8 noise).  Run
    several seeds for an interval; :func:`verdict` calls such a fit
    inconclusive.
``"deterministic: no interval"`` (``deterministic=True``, one noise-free
    curve such as a penalty-bias or entropy-bias sweep): ``ci = (nan, nan)``;
    the departure from a power law is curvature, not uncertainty, and is
    reported as the fit's residual: ``max_residual = max_{i in W} |y_i - a - b x_i|``
    (natural log) and ``local_slopes = (min, max)`` of the secant slopes
    ``(y_{i+1} - y_i) / (x_{i+1} - x_i)`` between neighbouring points of W.

Verdicts
--------
:func:`verdict` applies the rule of docs/theory.rst, "Rates and verdicts" (the theory's rate is an
upper bound): "inconsistent" when the whole interval lies above the theory's
exponent; "consistent" when the whole interval lies below 0 and it is not
inconsistent, "tight" when the interval also contains the exponent;
"inconclusive" otherwise, and for a fit without an interval.

Schedules
---------
In the noise-dominated regime a last-iterate slope follows the step-size
schedules, so a fit carries the exponents of the schedules it depends on
(``schedules={"lam": 0.2, "zeta": -0.8}``, the exponents of lam_k and zeta_k as
powers of k) and prints them beside the slope.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats

from ._validation import as_float_array, check_positive, is_real

__all__ = ["RateFit", "SlopeStability", "Verdict", "fit_rate", "rate_table", "slope_stability", "verdict"]

_LOG_K_GAP = 1e-10  # smallest accepted difference of log k between neighbouring logging points
_TOL = 1e-9  # tolerance of the decade comparisons (in decades)

SEED_T = "seed t-interval"
SINGLE = "single seed: no interval"
DETERMINISTIC = "deterministic: no interval"


def _fmt(value):
    return f"{value:.3g}"


def _fmt_k(k):
    if k == int(k) and abs(k) < 1e4:
        return str(int(k))
    text = f"{k:.3g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"


def _real(name, value, expected):
    if not is_real(value):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must be {expected}, got nan")
    return value


def _check_theory(theory):
    if theory is None:
        return None
    theory = _real("theory", theory, "a real number (the theory's exponent of k) or None")
    if not math.isfinite(theory):
        raise ValueError(f"theory must be a finite exponent, got {theory}")
    return theory


def _check_schedules(schedules):
    """``None``, a mapping name -> exponent, or pairs: return a tuple of (str, float) pairs."""
    if schedules is None:
        return ()
    if isinstance(schedules, Mapping):
        items = list(schedules.items())
    elif isinstance(schedules, tuple) and all(isinstance(p, tuple) and len(p) == 2 for p in schedules):
        items = list(schedules)
    else:
        raise TypeError("schedules must be a mapping schedule name -> exponent of k "
                        f"(e.g. {{'lam': 0.2, 'zeta': -0.8}}), got {type(schedules).__name__}")
    out = []
    for name, exponent in items:
        if not isinstance(name, str) or not name:
            raise TypeError(f"schedules: names must be non-empty strings, got {name!r}")
        exponent = _real(f"schedules[{name!r}]", exponent, "a real number (the schedule's exponent of k)")
        if not math.isfinite(exponent):
            raise ValueError(f"schedules[{name!r}] must be finite, got {exponent}")
        out.append((name, exponent))
    return tuple(out)


def _fmt_schedules(pairs):
    return ", ".join(f"{name} {_fmt(e)}" for name, e in pairs)


@dataclass(frozen=True)
class RateFit:
    """Result of :func:`fit_rate` (module docstring for the formulas).

    Attributes
    ----------
    slope : mean over seeds of the per-seed slopes of log(value) on log(k).
    ci : (lo, hi) interval at ``level`` (``(nan, nan)`` for one seed or a deterministic fit).
    level : confidence level of ``ci``.
    n_seeds : number of seeds (rows of ``values``).
    n_points : logging points in the window.
    k_range : (smallest, largest) k in the window.
    method : "seed t-interval", "single seed: no interval" or "deterministic: no interval".
    intercept : intercept of the fit of the mean of log(value): value ~ exp(intercept) k^slope.
    theory : the theory's exponent, or None.
    schedules : ((name, exponent), ...) the schedule exponents the fit depends on
        (a mapping may be given; ``dict(fit.schedules)`` gives it back).
    max_residual : deterministic fits: max ``|log residual|`` over the window, else None.
    local_slopes : deterministic fits: (min, max) secant slope between neighbouring points, else None.
    """

    slope: float
    ci: tuple
    level: float
    n_seeds: int
    n_points: int
    k_range: tuple
    method: str
    intercept: float
    theory: float | None = None
    schedules: tuple = ()
    max_residual: float | None = None
    local_slopes: tuple | None = None

    def __post_init__(self):
        object.__setattr__(self, "schedules", _check_schedules(self.schedules))
        object.__setattr__(self, "theory", _check_theory(self.theory))

    @property
    def has_interval(self):
        """Whether ``ci`` is a finite interval."""
        return bool(np.all(np.isfinite(self.ci)))

    @property
    def decades(self):
        """Length of the window in decades of k, log10(k_last / k_first)."""
        return float(np.log10(self.k_range[1] / self.k_range[0]))

    @property
    def theory_in_ci(self):
        """Whether ``theory`` lies in ``ci`` (None without a theory or without an interval)."""
        if self.theory is None or not self.has_interval:
            return None
        return bool(self.ci[0] <= self.theory <= self.ci[1])

    def __str__(self):
        seeds = f"{self.n_seeds} seed" + ("s" if self.n_seeds != 1 else "")
        where = f"k in [{_fmt_k(self.k_range[0])}, {_fmt_k(self.k_range[1])}]"
        if self.method == DETERMINISTIC:
            lo, hi = self.local_slopes
            text = (f"slope {_fmt(self.slope)} (deterministic curve, max |log residual| {self.max_residual:.2g}, "
                    f"local slopes [{_fmt(lo)}, {_fmt(hi)}], {where})")
        elif not self.has_interval:
            text = f"slope {_fmt(self.slope)}, no interval ({seeds}, {where})"
        else:
            text = (f"slope {_fmt(self.slope)} [{_fmt(self.ci[0])}, {_fmt(self.ci[1])}] "
                    f"({self.level * 100:g}%, {seeds}, {where})")
        if self.theory is not None:
            text = f"{text} vs theory {_fmt(self.theory)}"
        if self.schedules:
            text = f"{text}; schedule exponents {_fmt_schedules(self.schedules)}"
        return text


# ----------------------------------------------------------------------------- validation

def _prepare(k, values, floor_ok=True):
    """Validated float64 copies: k (n,) strictly increasing, well separated, > 0; values (n_seeds, n)."""
    k = as_float_array("k", k)
    if k.ndim != 1 or k.size < 3:
        raise ValueError(f"k must be a 1-D array of at least 3 step counts, got shape {k.shape}")
    if k.min() <= 0 or np.any(np.diff(k) <= 0):
        raise ValueError("k must be strictly increasing and > 0 (log k is the regressor); "
                         "drop the k = 0 logging point")
    gaps = np.diff(np.log(k))
    if np.any(gaps < _LOG_K_GAP):
        i = int(np.argmax(gaps < _LOG_K_GAP))
        raise ValueError(f"k has nearly equal neighbours k[{i}] = {float(k[i])!r} and k[{i + 1}] = {float(k[i + 1])!r} "
                         f"(relative difference {np.expm1(gaps[i]):.2g} < {_LOG_K_GAP:g}), which would make the "
                         "slopes divide by their tiny difference; merge them (e.g. average their values) or drop one")
    v = as_float_array("values", values)
    if v.ndim not in (1, 2) or v.shape[-1] != k.shape[0] or v.size == 0:
        raise ValueError(f"values must have shape ({k.shape[0]},) or (n_seeds, {k.shape[0]}) with n_seeds >= 1 "
                         f"to match k, got {v.shape}")
    return k, np.atleast_2d(v)


def _pair(name, value, what):
    """A pair of real numbers, or a TypeError/ValueError naming ``name`` and the expected form."""
    expected = f"a pair ({what}) of real numbers"
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__len__") or not hasattr(value, "__getitem__"):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")
    if len(value) != 2:
        raise ValueError(f"{name} must be {expected}, got {len(value)} entries: {tuple(value)!r}")
    return tuple(_real(name, x, expected + " (entry)") for x in value)


def _check_level(level):
    if not is_real(level) or not 0.0 < level < 1.0:
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    return float(level)


def _check_decades(decades, min_decades):
    decades = _real("decades", decades, "a number of decades > 0")
    if not 0 < decades < math.inf:
        raise ValueError(f"decades must be a finite number of decades > 0, got {decades}")
    min_decades = _real("min_decades", min_decades, "a number of decades >= 0")
    if not 0 <= min_decades < math.inf:
        raise ValueError(f"min_decades must be a finite number of decades >= 0, got {min_decades}")
    return decades, min_decades


def _start_index(k, end, decades):
    """Index of the largest k_s <= k[end] / 10^decades (the window [k_s, k_end] spans >= decades), or -1."""
    ok = np.log10(k[end] / k[: end + 1]) >= decades - _TOL
    return int(np.flatnonzero(ok)[-1]) if ok.any() else -1


def _select(k, window, k_range, decades):
    n = k.shape[0]
    if k_range is not None:
        if window is not None:
            raise ValueError("give either window (fractions of the logging points) or k_range (step values), not both")
        lo, hi = _pair("k_range", k_range, "k_lo, k_hi")
        if not lo <= hi:
            raise ValueError(f"k_range must be (k_lo, k_hi) with k_lo <= k_hi, got {tuple(k_range)}")
        return np.flatnonzero((k >= lo) & (k <= hi)), f"k_range={(lo, hi)}"
    if window is not None:
        lo, hi = _pair("window", window, "lo, hi: fractions of the logging points")
        if not (0.0 <= lo < hi <= 1.0):
            raise ValueError(f"window must be (lo, hi) with 0 <= lo < hi <= 1 (fractions of the logging points), "
                             f"got {tuple(window)}")
        i = np.arange(n)
        return np.flatnonzero((i >= lo * n) & (i < hi * n)), f"window={(lo, hi)}"
    start = max(_start_index(k, n - 1, decades), 0)
    return np.arange(start, n), f"the last {decades:g} decades (default window)"


def _check_span(k_lo, k_hi, min_decades, how, total):
    span = math.log10(k_hi / k_lo)
    if span < min_decades - _TOL:
        short = math.floor(span * 100) / 100
        raise ValueError(
            f"the fitting window ({how}) spans {span:.2f} decades of k (k in [{_fmt_k(k_lo)}, {_fmt_k(k_hi)}]; "
            f"the data span {total:.2f}); a rate fit needs at least {min_decades:g} decades (min_decades) to tell a "
            f"rate from noise: log a longer run or widen the window, or pass min_decades={short:g} if a short "
            "window is what you want")


def _clip_positive(vw, kw, floor):
    if floor is not None:
        vw = np.maximum(vw, check_positive("floor", floor))
    bad = np.argwhere(vw <= 0)
    if bad.size:
        where = ", ".join(f"(seed {s}, k={kw[i]:g})" for s, i in bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise ValueError(f"values has {len(bad)} entries <= 0 in the window, where log is undefined: {where}; "
                         "pass floor=... to clip them")
    return vw


def _check_deterministic(deterministic, n_seeds):
    if not isinstance(deterministic, (bool, np.bool_)):
        raise TypeError(f"deterministic must be True or False, got {type(deterministic).__name__}")
    if deterministic and n_seeds != 1:
        raise ValueError(f"deterministic=True fits one noise-free curve, but values has {n_seeds} rows (seeds); "
                         "pass one row, or deterministic=False for an interval over seeds")
    return bool(deterministic)


# ----------------------------------------------------------------------------- fitting

def _fit(x, y, level, deterministic):
    """Slope, intercept, ci, method and residual information of log-values y (n_seeds, m) on x = log k (m,)."""
    xc = x - x.mean()
    sxx = float(xc @ xc)
    slopes = (y - y.mean(axis=1, keepdims=True)) @ xc / sxx
    slope = float(slopes.mean())
    intercept = float(y.mean() - slope * x.mean())
    n_seeds = y.shape[0]
    extra = {}
    if deterministic:
        method, ci = DETERMINISTIC, (math.nan, math.nan)
        resid = y[0] - (intercept + slope * x)
        local = np.diff(y[0]) / np.diff(x)
        extra = dict(max_residual=float(np.abs(resid).max()), local_slopes=(float(local.min()), float(local.max())))
    elif n_seeds == 1:
        method, ci = SINGLE, (math.nan, math.nan)
    else:
        method = SEED_T
        half = float(stats.t.ppf(0.5 + level / 2.0, n_seeds - 1)) * float(slopes.std(ddof=1)) / math.sqrt(n_seeds)
        ci = (slope - half, slope + half)
    return slope, intercept, ci, method, extra


def fit_rate(k, values, window=None, *, k_range=None, decades=1.5, min_decades=1.5, level=0.95, floor=None,
             theory=None, schedules=None, deterministic=False, n_boot=None, seed=None):
    """Slope of log(values) on log(k) over a window of at least ``min_decades`` decades, with an interval over seeds.

    ``k`` (n,) strictly increasing step counts > 0; ``values`` (n,) for one
    seed or (n_seeds, n).  The window (module docstring) is by default the last
    ``decades`` (1.5) decades or more; ``window=(lo, hi)`` (fractions of the
    logging points) or ``k_range=(k_lo, k_hi)`` select others.  A window shorter
    than ``min_decades`` (1.5) decades or with fewer than 3 points raises
    ``ValueError``.  Values in the window must be > 0 unless ``floor`` > 0 is
    given (they are then clipped at it).

    Interval: the Student-t interval over seeds at ``level`` (coverage exact for
    normal per-seed slopes, tested at 93-97 % for nominal 95 % with 10 seeds);
    none for one seed, none for ``deterministic=True`` (one noise-free curve,
    reported with its fit residual instead).  ``theory`` (the predicted
    exponent) and ``schedules`` (name -> exponent of k of the schedules the
    quantity depends on) are stored for printing and for :func:`verdict`.
    ``n_boot`` and ``seed`` are accepted for compatibility and ignored (with a
    ``FutureWarning``): the interval is no longer a bootstrap.
    """
    if n_boot is not None or seed is not None:
        warnings.warn("fit_rate: n_boot and seed have no effect any more (the interval over seeds is a Student-t "
                      "interval, not a bootstrap); drop them", FutureWarning, stacklevel=2)
    k, v = _prepare(k, values)
    level = _check_level(level)
    decades, min_decades = _check_decades(decades, min_decades)
    theory = _check_theory(theory)
    schedules = _check_schedules(schedules)
    deterministic = _check_deterministic(deterministic, v.shape[0])
    idx, how = _select(k, window, k_range, decades)
    if idx.size < 3:
        raise ValueError(f"the fit needs at least 3 logging points, {how} selects {idx.size} of {k.size}; widen it")
    _check_span(k[idx[0]], k[idx[-1]], min_decades, how, math.log10(k[-1] / k[0]))
    vw = _clip_positive(v[:, idx], k[idx], floor)
    slope, intercept, ci, method, extra = _fit(np.log(k[idx]), np.log(vw), level, deterministic)
    return RateFit(slope=slope, ci=ci, level=level, n_seeds=v.shape[0], n_points=int(idx.size),
                   k_range=(float(k[idx[0]]), float(k[idx[-1]])), method=method, intercept=intercept,
                   theory=theory, schedules=schedules, **extra)


# ----------------------------------------------------------------------------- stability

@dataclass(frozen=True, eq=False)
class SlopeStability:
    """Result of :func:`slope_stability`: the fitted slope against the window's end.

    Attributes
    ----------
    ends : (m,) k at the end of each window (logging points, increasing).
    starts : (m,) k at the start of each window, the largest logging point <= end / 10^decades.
    slopes : (m,) fitted slope over [start, end] (as :func:`fit_rate`).
    intervals : (m, 2) its interval at ``level`` (nan for one seed or a deterministic curve).
    decades : nominal window length in decades.
    level : confidence level of ``intervals``.
    n_seeds : number of seeds.
    method : the interval's method (as :attr:`RateFit.method`).
    theory : the theory's exponent, or None.
    schedules : ((name, exponent), ...) as :attr:`RateFit.schedules`.

    The arrays are read-only.
    """

    ends: np.ndarray
    starts: np.ndarray
    slopes: np.ndarray
    intervals: np.ndarray
    decades: float
    level: float
    n_seeds: int
    method: str
    theory: float | None = None
    schedules: tuple = ()

    def __post_init__(self):
        for name in ("ends", "starts", "slopes", "intervals"):
            arr = np.array(getattr(self, name), dtype=np.float64)
            arr.setflags(write=False)
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "schedules", _check_schedules(self.schedules))
        object.__setattr__(self, "theory", _check_theory(self.theory))

    def __len__(self):
        return int(self.ends.shape[0])


def slope_stability(k, values, decades=1.5, *, ends=None, level=0.95, floor=None, theory=None, schedules=None,
                    deterministic=False):
    """Refit the slope over the windows [k_end / 10^decades, k_end] for a sequence of window ends.

    For each window end k_e the window runs from the largest logging point
    k_s <= k_e / 10^decades to k_e (so it spans at least ``decades`` decades,
    the default window of :func:`fit_rate` on the data up to k_e), and the
    slope and interval are those of :func:`fit_rate` on it.  ``ends``: by
    default every logging point at least ``decades`` decades after k_1;
    otherwise step values, each replaced by the last logging point <= it, which
    must leave a full window.  A slope that has stabilized is flat against the
    window's end (draw it with :func:`exactbilevel.plots.plot_slope_stability`).

    ``k`` (n,), ``values`` (n,) or (n_seeds, n), ``level``, ``floor``,
    ``theory``, ``schedules``, ``deterministic`` as in :func:`fit_rate`.
    Returns a :class:`SlopeStability`.
    """
    k, v = _prepare(k, values)
    level = _check_level(level)
    decades, _ = _check_decades(decades, 0.0)
    theory = _check_theory(theory)
    schedules = _check_schedules(schedules)
    deterministic = _check_deterministic(deterministic, v.shape[0])
    total = math.log10(k[-1] / k[0])
    if ends is None:
        end_idx = [e for e in range(k.size) if _start_index(k, e, decades) >= 0]
        if not end_idx:
            raise ValueError(f"the data span {total:.2f} decades of k (k in [{_fmt_k(k[0])}, {_fmt_k(k[-1])}]), "
                             f"less than decades={decades:g}: no window of that length fits; log a longer run "
                             "or pass a smaller decades")
    else:
        e = as_float_array("ends", ends)
        if e.ndim != 1 or e.size == 0:
            raise ValueError(f"ends must be a non-empty 1-D array of step values, got shape {e.shape}")
        end_idx = []
        for value in e:
            i = int(np.searchsorted(k, value * (1 + 1e-12), side="right")) - 1
            if i < 0 or _start_index(k, i, decades) < 0:
                raise ValueError(f"ends: the window of {decades:g} decades ending at k = {value:g} starts before "
                                 f"the first logging point k = {_fmt_k(k[0])}; give ends >= "
                                 f"{_fmt_k(k[0] * 10**decades)}")
            end_idx.append(i)
    starts = [_start_index(k, e, decades) for e in end_idx]
    for s, e in zip(starts, end_idx):
        if e - s + 1 < 3:
            raise ValueError(f"the window [{_fmt_k(k[s])}, {_fmt_k(k[e])}] has {e - s + 1} logging points; "
                             "the fit needs at least 3: log more points per decade, or pass a larger decades")
    lo, hi = min(starts), max(end_idx)
    y = np.log(_clip_positive(v[:, lo:hi + 1], k[lo:hi + 1], floor))
    x = np.log(k[lo:hi + 1])
    slopes, intervals, method = [], [], None
    for s, e in zip(starts, end_idx):
        slope, _, ci, method, _ = _fit(x[s - lo:e - lo + 1], y[:, s - lo:e - lo + 1], level, deterministic)
        slopes.append(slope)
        intervals.append(ci)
    return SlopeStability(ends=k[end_idx], starts=k[starts], slopes=np.array(slopes),
                          intervals=np.array(intervals).reshape(-1, 2), decades=decades, level=level,
                          n_seeds=v.shape[0], method=method, theory=theory, schedules=schedules)


# ----------------------------------------------------------------------------- verdicts

@dataclass(frozen=True)
class Verdict:
    """Result of :func:`verdict`.

    Attributes
    ----------
    verdict : "consistent", "inconsistent" or "inconclusive".
    tight : True when consistent and the interval contains the theory's exponent.
    theory : the exponent the fit was judged against.
    ci : the fit's interval.
    reason : one sentence saying which part of the rule applied.
    """

    verdict: str
    tight: bool
    theory: float
    ci: tuple
    reason: str

    def __str__(self):
        return f"{self.verdict} (tight)" if self.tight else self.verdict


def verdict(fit, theory=None):
    """The verdict of docs/theory.rst, "Rates and verdicts" on a :class:`RateFit` against the theory's exponent.

    The theory's rate is an upper bound on the decay, so with the fit's
    interval [lo, hi] and the exponent p (``theory``, default ``fit.theory``):

    * "inconsistent" when lo > p (the quantity decays more slowly than the bound allows);
    * "consistent" when hi < 0 and not inconsistent (decay shown, no slower than
      the bound); ``tight`` when moreover lo <= p <= hi;
    * "inconclusive" otherwise, and always for a fit without an interval (one
      seed or a deterministic curve).
    """
    if not isinstance(fit, RateFit):
        raise TypeError(f"fit must be a RateFit (from fit_rate), got {type(fit).__name__}")
    p = fit.theory if theory is None else _check_theory(theory)
    if p is None:
        raise ValueError("verdict needs the theory's exponent: pass theory=..., or fit_rate(..., theory=...)")
    lo, hi = fit.ci
    if not fit.has_interval:
        return Verdict("inconclusive", False, p, fit.ci, f"no interval ({fit.method}); run several seeds")
    iv = f"the interval [{_fmt(lo)}, {_fmt(hi)}]"
    if lo > p:
        return Verdict("inconsistent", False, p, fit.ci,
                       f"{iv} lies above the theory's exponent {_fmt(p)}: slower decay than the bound allows")
    if hi < 0:
        tight = bool(lo <= p <= hi)
        more = f" and contains the exponent {_fmt(p)}" if tight else f", below the exponent {_fmt(p)}" if hi < p else ""
        return Verdict("consistent", tight, p, fit.ci, f"{iv} lies below 0{more}: decay shown, no slower than the bound")
    return Verdict("inconclusive", False, p, fit.ci,
                   f"{iv} reaches 0 and does not lie above the exponent {_fmt(p)}: no decay shown")


# ----------------------------------------------------------------------------- table

def rate_table(fits):
    """An aligned text table of ``{quantity: RateFit}``.

    Columns: quantity, slope, interval (or "-" without one), theory, verdict
    (:func:`verdict`; "-" without a theory or for a deterministic curve),
    seeds, k range, decades of the window, the fit residual of a deterministic
    curve (max ``|log residual|`` and the local slope range) and the schedule
    exponents.
    """
    if not isinstance(fits, dict) or not all(isinstance(f, RateFit) for f in fits.values()):
        raise TypeError("fits must be a dict quantity name -> RateFit (from fit_rate)")
    rows = [("quantity", "slope", "CI", "theory", "verdict", "seeds", "k range", "decades", "fit residual",
             "schedules")]
    for name, f in fits.items():
        ci = f"[{_fmt(f.ci[0])}, {_fmt(f.ci[1])}] ({f.level * 100:g}%)" if f.has_interval else "-"
        judged = "-" if f.theory is None or f.method == DETERMINISTIC else str(verdict(f))
        resid = "-" if f.max_residual is None else (
            f"{f.max_residual:.2g}, local [{_fmt(f.local_slopes[0])}, {_fmt(f.local_slopes[1])}]")
        rows.append((
            str(name), _fmt(f.slope), ci, "-" if f.theory is None else _fmt(f.theory), judged,
            str(f.n_seeds), f"[{_fmt_k(f.k_range[0])}, {_fmt_k(f.k_range[1])}]", f"{f.decades:.2f}", resid,
            _fmt_schedules(f.schedules) or "-",
        ))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
