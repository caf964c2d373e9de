"""Empirical convergence rates: slopes of log(quantity) on log(k) (spec section 5).

For logging points k_1 < ... < k_n and values v_j(k_i) of seed j, the points in
the fitting window W give per-seed least-squares slopes::

    b_j = sum_{i in W} (x_i - xbar) (y_ji - ybar_j) / sum_{i in W} (x_i - xbar)^2,
    x_i = log k_i,   y_ji = log v_j(k_i)

and the reported slope is their mean, which equals the slope of the fit to the
mean over seeds of log v (the k are shared).  A quantity decaying like k^p has
slope p.

Window: by default ``window=(lo, hi) = (0.5, 1.0)``, the logging points with
0-based index i, ``lo n <= i < hi n``: the second half of the logging points
(of a run logged every ``log_every`` steps, the second half of the run).
``k_range=(k_lo, k_hi)`` instead selects the points with ``k_lo <= k <= k_hi``.

Confidence interval (percentile bootstrap, ``n_boot`` replicates from
``numpy.random.default_rng(seed)``, so the same seed gives the same interval):

``"seed bootstrap"`` (several seeds)  resample the seeds with replacement and
    average their slopes.  The seeds are independent runs, so this is the
    bootstrap of a mean of i.i.d. slopes; like every percentile interval of a
    mean it is a little narrow for few seeds (nominal 90% covers about 85% at
    10 seeds, 88% at 30, when the slopes are normal).
``"residual bootstrap"`` (one seed)  refit ``yhat + e*``, e* drawn from the
    centred, leverage-corrected residuals ``e_i / sqrt(1 - h_ii)`` of the fit
    (Davison and Hinkley 1997, Algorithm 6.1).  It assumes independent
    residuals; the logging points of one run are correlated, so this interval
    is optimistic: prefer several seeds.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from ._validation import as_float_array, check_int, check_positive

__all__ = ["RateFit", "fit_rate", "rate_table"]


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


@dataclass(frozen=True)
class RateFit:
    """Result of :func:`fit_rate`.

    Attributes
    ----------
    slope : mean over seeds of the per-seed slopes of log(value) on log(k).
    ci : (lo, hi) percentile bootstrap interval at ``level``.
    level : confidence level of ``ci``.
    n_seeds : number of seeds (rows of ``values``).
    n_points : logging points in the window.
    k_range : (smallest, largest) k in the window.
    method : "seed bootstrap" or "residual bootstrap" (module docstring).
    intercept : intercept of the fit of the mean of log(value): value ~ exp(intercept) k^slope.
    theory : the theory's exponent, or None.
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

    @property
    def theory_in_ci(self):
        """Whether ``theory`` lies in ``ci`` (None without a theory)."""
        return None if self.theory is None else bool(self.ci[0] <= self.theory <= self.ci[1])

    def __str__(self):
        seeds = f"{self.n_seeds} seed" + ("s" if self.n_seeds != 1 else "")
        extra = ", residual bootstrap" if self.method == "residual bootstrap" else ""
        text = (f"slope {_fmt(self.slope)} [{_fmt(self.ci[0])}, {_fmt(self.ci[1])}] "
                f"({self.level * 100:g}%, {seeds}{extra}, k in [{_fmt_k(self.k_range[0])}, {_fmt_k(self.k_range[1])}])")
        return text if self.theory is None else f"{text} vs theory {_fmt(self.theory)}"


def _select(k, window, k_range):
    n = k.shape[0]
    if k_range is not None:
        if window is not None:
            raise ValueError("give either window (fractions of the logging points) or k_range (step values), not both")
        if len(k_range) != 2 or not k_range[0] <= k_range[1]:
            raise ValueError(f"k_range must be (k_lo, k_hi) with k_lo <= k_hi, got {k_range}")
        return np.flatnonzero((k >= k_range[0]) & (k <= k_range[1])), f"k_range={tuple(k_range)}"
    lo, hi = (0.5, 1.0) if window is None else window
    if not (0.0 <= lo < hi <= 1.0):
        raise ValueError(f"window must be (lo, hi) with 0 <= lo < hi <= 1 (fractions of the logging points), got {window}")
    i = np.arange(n)
    return np.flatnonzero((i >= lo * n) & (i < hi * n)), f"window={(lo, hi)}"


def fit_rate(k, values, window=None, *, k_range=None, n_boot=2000, level=0.95, seed=0, floor=None, theory=None):
    """Slope of log(values) on log(k) over a window, with a bootstrap confidence interval.

    ``k`` (n,) strictly increasing step counts > 0; ``values`` (n,) for one
    seed or (n_seeds, n).  ``window`` (default (0.5, 1.0)) or ``k_range`` selects
    the points (module docstring); at least 3 are needed.  Values in the window
    must be > 0 unless ``floor`` > 0 is given (they are then clipped at it).
    ``theory`` (the predicted exponent) is stored for printing.
    """
    k = as_float_array("k", k)
    if k.ndim != 1 or k.size < 3:
        raise ValueError(f"k must be a 1-D array of at least 3 step counts, got shape {k.shape}")
    if k.min() <= 0 or np.any(np.diff(k) <= 0):
        raise ValueError("k must be strictly increasing and > 0 (log k is the regressor); "
                         "drop the k = 0 logging point")
    v = as_float_array("values", values)
    if v.ndim not in (1, 2) or v.shape[-1] != k.shape[0]:
        raise ValueError(f"values must have shape ({k.shape[0]},) or (n_seeds, {k.shape[0]}) to match k, got {v.shape}")
    v = np.atleast_2d(v)
    n_boot = check_int("n_boot", n_boot, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    if isinstance(level, bool) or not isinstance(level, numbers.Real) or not 0.0 < level < 1.0:
        raise ValueError(f"level must be a number in (0, 1), got {level!r}")
    if theory is not None:
        theory = float(theory)
    idx, how = _select(k, window, k_range)
    if idx.size < 3:
        raise ValueError(f"the fit needs at least 3 logging points, {how} selects {idx.size} of {k.size}; widen it")
    vw = v[:, idx]
    if floor is not None:
        vw = np.maximum(vw, check_positive("floor", floor))
    bad = np.argwhere(vw <= 0)
    if bad.size:
        where = ", ".join(f"(seed {s}, k={k[idx[i]]:g})" for s, i in bad[:5]) + (", ..." if len(bad) > 5 else "")
        raise ValueError(f"values has {len(bad)} entries <= 0 in the window, where log is undefined: {where}; "
                         "pass floor=... to clip them")

    x, y = np.log(k[idx]), np.log(vw)
    xc = x - x.mean()
    sxx = float(xc @ xc)
    slopes = (y - y.mean(axis=1, keepdims=True)) @ xc / sxx
    slope = float(slopes.mean())
    intercept = float(y.mean() - slope * x.mean())
    rng = np.random.default_rng(seed)
    n_seeds = v.shape[0]
    if n_seeds > 1:
        method = "seed bootstrap"
        boot = slopes[rng.integers(0, n_seeds, size=(n_boot, n_seeds))].mean(axis=1)
    else:
        method = "residual bootstrap"
        resid = y[0] - (intercept + slope * x)
        leverage = 1.0 / x.size + xc**2 / sxx
        modified = resid / np.sqrt(1.0 - leverage)
        modified -= modified.mean()
        draws = modified[rng.integers(0, x.size, size=(n_boot, x.size))]
        boot = slope + draws @ xc / sxx
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(boot, [alpha, 1.0 - alpha])
    return RateFit(slope=slope, ci=(float(lo), float(hi)), level=float(level),
                   n_seeds=n_seeds, n_points=int(idx.size), k_range=(float(k[idx[0]]), float(k[idx[-1]])),
                   method=method, intercept=intercept, theory=theory)


def rate_table(fits):
    """An aligned text table of ``{quantity: RateFit}``: slope, CI, theory and whether it lies in the CI."""
    if not isinstance(fits, dict) or not all(isinstance(f, RateFit) for f in fits.values()):
        raise TypeError("fits must be a dict quantity name -> RateFit (from fit_rate)")
    rows = [("quantity", "slope", "CI", "theory", "theory in CI", "seeds", "k range")]
    for name, f in fits.items():
        rows.append((
            str(name), _fmt(f.slope), f"[{_fmt(f.ci[0])}, {_fmt(f.ci[1])}] ({f.level * 100:g}%)",
            "-" if f.theory is None else _fmt(f.theory),
            {None: "-", True: "yes", False: "no"}[f.theory_in_ci],
            str(f.n_seeds), f"[{_fmt_k(f.k_range[0])}, {_fmt_k(f.k_range[1])}]",
        ))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(r, widths))).rstrip()
             for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)
