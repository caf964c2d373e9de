"""Checks of estimators and derivatives against exact values, for users' tests.

:func:`check_unbiased`
    Is the mean of a stochastic estimator equal to an exact value?  Per
    coordinate, ``z = (mean - exact) / (sd / sqrt(n))`` with the sample
    standard deviation sd, a two-sided Student-t p-value with n - 1 degrees of
    freedom, and Holm's step-down correction over the coordinates, so that
    when the estimator is unbiased (and its mean is near-normal: finite
    variance, n large enough for the central limit theorem) the probability
    of a false alarm is at most ``alpha`` whatever the dependence between
    coordinates (Holm 1979).  Coordinates with zero sample variance are
    deterministic: they pass iff ``|mean - exact| <= 1e-12 max(1, |exact|)``.
    Power: a bias b in a coordinate with noise level sigma is found with
    probability about ``Phi(b sqrt(n) / sigma - z_{alpha/(2m)})``; at
    n = 10^5, a bias of 5% of sigma gives z ~ 16.

:func:`check_gradient`
    Compares a derivative with fourth-order central finite differences,
    ``(-f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h)) / (12 h)`` with
    ``h_i = eps^(1/5) max(1, |x_i|)`` (truncation O(h^4) and rounding
    O(eps/h) balance near 1e-13 relative, for f computed to rounding; f known
    only to delta adds about 1.5 delta / h).  The test passes when
    ``max |grad - fd| <= atol + rtol max |fd|``; the default atol,
    ``1000 eps (max|f| / min h + max|grad|)``, allows for f computed to 1000 eps
    relative (a linear solve with condition number up to 1000) and for the
    rounding of grad itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

from .._validation import as_float_array, check_int

__all__ = ["check_unbiased", "UnbiasedReport", "check_gradient", "GradientReport"]


@dataclass(frozen=True)
class UnbiasedReport:
    """Outcome of :func:`check_unbiased`; ``bool(report)`` is ``passed``.

    Attributes: ``passed``; ``z`` (shape of exact) the z-scores; ``p_values``
    (raw two-sided); ``rejected`` (bool, shape of exact) coordinates rejected
    after the Holm correction; ``mean``, ``stderr``; ``exact``; ``n_samples``;
    ``alpha``; ``seed``.
    """

    passed: bool
    z: np.ndarray
    p_values: np.ndarray
    rejected: np.ndarray
    mean: np.ndarray
    stderr: np.ndarray
    exact: np.ndarray
    n_samples: int
    alpha: float
    seed: object

    def __bool__(self):
        return bool(self.passed)

    def __str__(self):
        worst = np.unravel_index(int(np.argmax(np.where(np.isnan(self.z), -1, np.abs(self.z)))), self.z.shape)
        verdict = "unbiased: not rejected" if self.passed else f"BIASED: {int(self.rejected.sum())} coordinate(s) rejected"
        return (
            f"{verdict} at family-wise alpha = {self.alpha} (Holm, {self.z.size} coordinates, "
            f"n = {self.n_samples}); largest |z| = {abs(float(self.z[worst])):.3g} at index {tuple(map(int, worst))}: "
            f"mean {float(self.mean[worst]):.6g} vs exact {float(self.exact[worst]):.6g} "
            f"(stderr {float(self.stderr[worst]):.3g})"
        )


def _holm(p, alpha):
    """Holm's step-down procedure: a boolean array of rejections."""
    flat = p.ravel()
    order = np.argsort(flat, kind="stable")
    m = flat.size
    thresholds = alpha / (m - np.arange(m))
    ok = flat[order] <= thresholds
    k = m if ok.all() else int(np.argmin(ok))  # first acceptance stops the procedure
    rejected = np.zeros(m, dtype=bool)
    rejected[order[:k]] = True
    return rejected.reshape(p.shape)


def check_unbiased(estimator, exact, n_samples=10_000, alpha=1e-3, seed=0, batched=False):
    """Test that ``E[estimator] == exact`` coordinate by coordinate (module docstring).

    Parameters
    ----------
    estimator : callable
        ``estimator(rng)`` returns one sample (an array of the shape of
        ``exact``) from a ``numpy.random.Generator``; with ``batched=True``,
        ``estimator(rng, n)`` returns ``n`` samples stacked on a first axis.
    exact : array_like
        The exact expectation.
    n_samples : int >= 2
    alpha : float in (0, 1)
        Family-wise false-alarm rate.
    seed : int or numpy.random.Generator
        The same seed gives the same report.

    Returns
    -------
    UnbiasedReport (``assert report, report`` in a test prints the worst coordinate).
    """
    if not callable(estimator):
        raise TypeError(f"estimator must be callable, got {type(estimator).__name__}")
    exact = as_float_array("exact", exact)
    n = check_int("n_samples", n_samples, minimum=2)
    alpha = float(alpha)
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if batched:
        samples = np.asarray(estimator(rng, n), dtype=np.float64)
    else:
        samples = np.array([np.asarray(estimator(rng), dtype=np.float64) for _ in range(n)])
    if samples.shape != (n,) + exact.shape:
        raise ValueError(
            f"the estimator's samples must stack to shape {(n,) + exact.shape} "
            f"(n_samples, *exact.shape), got {samples.shape}"
        )
    if not np.all(np.isfinite(samples)):
        raise ValueError("the estimator returned a NaN or infinite sample")
    mean = samples.mean(axis=0)
    stderr = samples.std(axis=0, ddof=1) / np.sqrt(n)
    diff = mean - exact
    deterministic = stderr <= 1e-15 * np.maximum(1.0, np.abs(mean))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(deterministic, 0.0, diff / np.where(deterministic, 1.0, stderr))
    p = 2.0 * stats.t.sf(np.abs(z), df=n - 1)
    exact_miss = deterministic & (np.abs(diff) > 1e-12 * np.maximum(1.0, np.abs(exact)))
    p = np.where(exact_miss, 0.0, p)
    z = np.where(exact_miss, np.copysign(np.inf, diff), z)
    rejected = _holm(p, alpha)
    return UnbiasedReport(
        passed=not rejected.any(), z=z, p_values=p, rejected=rejected, mean=mean, stderr=stderr,
        exact=exact, n_samples=n, alpha=alpha, seed=seed,
    )


@dataclass(frozen=True)
class GradientReport:
    """Outcome of :func:`check_gradient`; ``bool(report)`` is ``passed``.

    ``analytic`` and ``numeric`` have shape ``f_shape + (d,)``; ``error`` is
    ``max |analytic - numeric|``; ``passed`` is ``error <= atol + rtol max |numeric|``.
    """

    passed: bool
    error: float
    analytic: np.ndarray
    numeric: np.ndarray
    step: np.ndarray
    rtol: float
    atol: float

    def __bool__(self):
        return bool(self.passed)

    def __str__(self):
        i = np.unravel_index(int(np.argmax(np.abs(self.analytic - self.numeric))), self.numeric.shape)
        return (
            f"{'gradient matches' if self.passed else 'GRADIENT MISMATCH'}: max error {self.error:.3g} "
            f"(allowed {self.atol:.3g} + {self.rtol:g} * {float(np.abs(self.numeric).max()):.3g}); worst at index {tuple(map(int, i))}: analytic {float(self.analytic[i]):.10g}, "
            f"finite differences {float(self.numeric[i]):.10g}"
        )


def check_gradient(f, grad, x, rtol=1e-6, atol=None, step=None):
    """Compare ``grad(x)`` with central finite differences of ``f`` at ``x`` (module docstring).

    Parameters
    ----------
    f : callable, ``f(x)`` a float or an array of any shape F
    grad : callable, ``grad(x)`` of shape ``F + (d,)`` (the Jacobian; ``(d,)`` for scalar f),
        or an array already evaluated at x
    x : (d,) point
    rtol, atol : the test ``max|grad - fd| <= atol + rtol max|fd|``; atol defaults to
        ``1000 eps (max|f| / min(step) + max|grad|)`` (module docstring)
    step : float or (d,) array, optional; default ``eps^(1/5) max(1, |x_i|)``

    Returns
    -------
    GradientReport
    """
    if not callable(f):
        raise TypeError(f"f must be callable, got {type(f).__name__}")
    x = as_float_array("x", x)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"x must be a non-empty vector, shape (d,), got shape {x.shape}")
    if step is None:
        h = np.finfo(np.float64).eps ** 0.2 * np.maximum(1.0, np.abs(x))
    else:
        h = np.broadcast_to(as_float_array("step", step), x.shape).astype(np.float64)
        if np.any(h <= 0):
            raise ValueError("step must be > 0")
    cols, f_max = [], 0.0
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h[i]
        fp2, fp1, fm1, fm2 = (np.asarray(f(x + k * e), dtype=np.float64) for k in (2, 1, -1, -2))
        f_max = max(f_max, *(float(np.abs(v).max(initial=0.0)) for v in (fp2, fp1, fm1, fm2)))
        cols.append((-fp2 + 8.0 * fp1 - 8.0 * fm1 + fm2) / (12.0 * h[i]))
    numeric = np.stack(cols, axis=-1)
    analytic = np.asarray(grad(x) if callable(grad) else grad, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(
            f"grad must have shape {numeric.shape} (f's shape plus (d,)), got {analytic.shape}"
        )
    if atol is None:
        atol = 1000.0 * np.finfo(np.float64).eps * (f_max / float(h.min()) + float(np.abs(analytic).max(initial=0.0)))
    err = float(np.abs(analytic - numeric).max(initial=0.0))
    passed = err <= atol + rtol * float(np.abs(numeric).max(initial=0.0))
    return GradientReport(passed=passed, error=err, analytic=analytic, numeric=numeric, step=h, rtol=rtol,
                          atol=float(atol))
