"""Rate fitting: exact power laws, interval coverage on synthetic experiments with a known slope,
windows of at least 1.5 decades, slope stability, deterministic curves and verdicts."""

import math
import re

import numpy as np
import pytest
from matplotlib.figure import Figure
from scipy import stats

from exactbilevel.plots import plot_slope_stability
from exactbilevel.rates import (RateFit, SlopeStability, Verdict, fit_rate, rate_table, slope_stability,
                                verdict)

K = np.unique(np.geomspace(10, 1e5, 40).round())  # 4 decades, 10 points a decade


def test_exact_power_laws_recover_the_exponent():
    for p in (-1 / 3, -0.1, 0.5, -2.0):
        one = fit_rate(K, 3.0 * K**p)
        assert abs(one.slope - p) < 1e-10 and one.method == "single seed: no interval"
        c = np.array([[0.5], [1.0], [7.0]])  # one constant per seed
        many = fit_rate(K, c * K**p, theory=p)
        assert abs(many.slope - p) < 1e-10 and many.method == "seed t-interval" and many.n_seeds == 3
        assert many.ci[0] - 1e-10 <= p <= many.ci[1] + 1e-10 and many.ci[1] - many.ci[0] < 1e-10
        assert abs(np.exp(many.intercept) - np.exp(np.log(c).mean())) < 1e-8


def test_default_window_is_the_last_decades_or_more():
    """The window starts at the largest logging point <= k_max / 10^1.5 (brute force here)."""
    fit = fit_rate(K, K**-0.5)
    start = max(k for k in K if k <= K[-1] / 10**1.5)
    assert fit.k_range == (start, K[-1]) and fit.n_points == np.sum(K >= start)
    assert fit.decades >= 1.5 and np.log10(K[-1] / K[K > start][0]) < 1.5
    two = fit_rate(K, K**-0.5, decades=2.0)
    assert two.k_range == (max(k for k in K if k <= K[-1] / 100), K[-1]) and two.decades >= 2.0
    # data spanning 1.6 decades: the window is all of it
    k = np.arange(1.0, 41.0)
    assert fit_rate(k, k**-1.0).k_range == (1.0, 40.0)


def test_short_windows_are_refused_unless_asked_for():
    k = np.geomspace(100, 1000, 21)  # one decade
    with pytest.raises(ValueError, match=r"spans 1\.00 decades .*at least 1\.5 decades \(min_decades\).*min_decades=1"):
        fit_rate(k, k**-0.5)
    assert abs(fit_rate(k, k**-0.5, min_decades=1.0).slope + 0.5) < 1e-12
    with pytest.raises(ValueError, match=r"window=\(0\.5, 1\.0\).* spans 1\.9"):
        fit_rate(K, K**-0.5, window=(0.5, 1.0), min_decades=2.0)
    inside = K[(K >= 1000) & (K <= 1e4)]
    span = f"{np.log10(inside[-1] / inside[0]):.2f}".replace(".", r"\.")
    with pytest.raises(ValueError, match=rf"k_range=\(1000\.0, 10000\.0\).* spans {span} decades"):
        fit_rate(K, K**-0.5, k_range=(1000, 10000))
    with pytest.raises(ValueError, match=r"the last 1\.2 decades \(default window\).*at least 1\.5"):
        fit_rate(K, K**-0.5, decades=1.2)
    assert fit_rate(K, K**-0.5, k_range=(1000, 10000), min_decades=0.0).n_points == np.sum((K >= 1000) & (K <= 1e4))


def test_t_interval_equals_scipy_over_per_seed_polyfits():
    rng = np.random.default_rng(0)
    v = np.exp(rng.normal(size=(8, 1))) * K**-0.5 * np.exp(0.3 * rng.standard_normal((8, K.size)))
    fit = fit_rate(K, v, level=0.9)
    w = K >= fit.k_range[0]
    slopes = [np.polyfit(np.log(K[w]), np.log(row[w]), 1)[0] for row in v]
    ci = stats.ttest_1samp(slopes, 0.0).confidence_interval(0.9)
    assert fit.slope == pytest.approx(np.mean(slopes), abs=1e-12)
    assert fit.ci == pytest.approx((ci.low, ci.high), abs=1e-12)
    # the point estimate is the slope of the fit to the mean of log(values)
    assert fit.slope == pytest.approx(np.polyfit(np.log(K[w]), np.log(v[:, w]).mean(axis=0), 1)[0], abs=1e-12)


def _experiments(rng, n_exp, n_seeds, p, sigma, rho):
    """(n_exp, n_seeds, K.size) values c_j k^p exp(e), e stationary AR(1) along k (rho, sd sigma)."""
    z = rng.standard_normal((n_exp, n_seeds, K.size))
    e = np.empty_like(z)
    e[..., 0] = sigma * z[..., 0]
    for i in range(1, K.size):
        e[..., i] = rho * e[..., i - 1] + sigma * math.sqrt(1 - rho**2) * z[..., i]
    c = np.exp(rng.normal(size=(n_exp, n_seeds, 1)))
    return c * K**p * np.exp(e)


@pytest.mark.parametrize("rho, master", [(0.0, 20261201), (0.8, 8)])
def test_seed_interval_coverage_at_95_with_10_seeds(rho, master):
    """2000 synthetic experiments of 10 seeds, known slope -1/3, independent (rho = 0) or AR(1) 0.8
    noise along each run: the 95% interval holds the slope 93% to 97% of the time.

    Each seed's slope is linear in its Gaussian noise, so the per-seed slopes are i.i.d. normal and
    the t-interval's coverage is exactly 0.95; the experiments are independent, so the number of
    hits is Binomial(2000, 0.95), sd sqrt(0.95 * 0.05 / 2000) = 0.49%, and [93%, 97%] is 4.1 sd on
    each side: a correct implementation fails with probability about 4e-5 (never, with the fixed
    master seed).  The check has power against the usual mistakes: the percentile seed bootstrap
    (about 90.7% at 10 seeds) is 3.5 sd below 93% and always caught; a normal quantile in place of
    t_9 (coverage 2 P(|t_9| < 1.96) - 1 = 91.8%, sd 0.61%) is caught about 97% of the time.
    """
    rng = np.random.default_rng(master)
    p, n_exp = -1 / 3, 2000
    data = _experiments(rng, n_exp, 10, p, 0.3, rho)
    hits = 0
    for v in data:
        fit = fit_rate(K, v)
        hits += fit.ci[0] <= p <= fit.ci[1]
    assert fit.method == "seed t-interval" and fit.level == 0.95
    assert 0.93 <= hits / n_exp <= 0.97


def test_one_seed_gives_no_interval():
    """As documented: one run gives the slope and no interval; its verdict is inconclusive."""
    v = _experiments(np.random.default_rng(1), 1, 1, -0.5, 0.3, 0.8)[0, 0]
    fit = fit_rate(K, v, theory=-0.5)
    assert fit.method == "single seed: no interval" and fit.n_seeds == 1
    assert all(math.isnan(c) for c in fit.ci) and not fit.has_interval and fit.theory_in_ci is None
    assert "no interval (1 seed" in str(fit)
    assert fit_rate(K, v[None, :]).ci == pytest.approx(fit.ci, nan_ok=True)
    judged = verdict(fit)
    assert judged.verdict == "inconclusive" and not judged.tight and "no interval" in judged.reason


def test_deterministic_curve_reports_its_residual():
    lam = np.geomspace(1, 100, 9)
    exact = fit_rate(lam, 4.0 * lam**-2.0, deterministic=True, theory=-2.0)
    assert exact.method == "deterministic: no interval" and not exact.has_interval
    assert abs(exact.slope + 2) < 1e-12 and exact.max_residual < 1e-12
    assert exact.local_slopes == pytest.approx((-2.0, -2.0), abs=1e-12)
    # v = k^-1 (1 + 100/k): d log v / d log k = -1 - 100 / (k + 100), from -1.99 (k = 1) to -1.5 (k = 100);
    # each secant slope is a value of the derivative inside its interval (mean value theorem)
    curved = fit_rate(lam, lam**-1.0 * (1 + 100 / lam), deterministic=True, window=(0.0, 1.0))
    lo, hi = curved.local_slopes
    assert -1 - 100 / 101 <= lo < hi <= -1.5 and hi - lo > 0.3
    x, y = np.log(lam), np.log(lam**-1.0 * (1 + 100 / lam))
    resid = y - np.polyval(np.polyfit(x, y, 1), x)
    assert curved.max_residual == pytest.approx(np.abs(resid).max(), rel=1e-9) and curved.max_residual > 0.05
    text = str(curved)
    assert "deterministic curve, max |log residual| " in text and "local slopes [" in text and "[" not in text[:20]
    with pytest.raises(ValueError, match="deterministic=True fits one noise-free curve.*2 rows"):
        fit_rate(lam, np.ones((2, 9)), deterministic=True)


def test_nearly_equal_k_is_refused_and_close_k_gives_finite_intervals():
    k = K.copy()
    k[5] = k[4] * (1 + 1e-15)
    with pytest.raises(ValueError, match=r"nearly equal neighbours k\[4\].*merge them"):
        fit_rate(k, np.ones((3, K.size)))
    k3 = 1000.0 * (1 + np.array([0.0, 1e-9, 2e-9, 3e-9]))
    v = np.exp(np.random.default_rng(2).normal(size=(3, 4)) * 1e-3)
    fit = fit_rate(k3, v, min_decades=0.0)
    assert np.isfinite(fit.slope) and np.all(np.isfinite(fit.ci))


def test_window_and_k_range_select_the_points():
    # a broken power law: k^-1 up to k = 1000, then k^-0.5 (continuous)
    v = np.where(K <= 1000, 1000 / K, np.sqrt(1000 / K))
    late = fit_rate(K, v, k_range=(1000, 1e5))
    assert abs(late.slope + 0.5) < 1e-10 and late.k_range[0] >= 1000 and late.k_range[1] == K[-1]
    assert late.n_points == np.sum(K >= 1000)
    early = fit_rate(K, v, k_range=(10, 1000))
    assert abs(early.slope + 1.0) < 1e-10 and early.k_range == (10.0, K[K <= 1000][-1])
    first = fit_rate(K, v, window=(0.0, 0.5))
    assert first.n_points == 20 and first.k_range == (K[0], K[19]) and abs(first.slope + 1.0) < 1e-10


def test_slope_stability_against_the_window_end():
    """Broken power law (k^-1 to 1000, then k^-0.5), 3 seeds with constant factors: windows of one
    decade inside either regime give its exponent exactly; each window is [largest k <= end/10, end]."""
    v = np.array([[1.0], [2.0], [5.0]]) * np.where(K <= 1000, 1000 / K, np.sqrt(1000 / K))
    res = slope_stability(K, v, decades=1.0, theory=-0.5, schedules={"lam": 0.2})
    assert isinstance(res, SlopeStability) and res.method == "seed t-interval" and res.n_seeds == 3
    assert list(res.ends) == [k for k in K if k >= K[0] * 10 * (1 - 1e-12)]
    assert list(res.starts) == [max(k for k in K if k <= e / 10 * (1 + 1e-12)) for e in res.ends]
    for s, e, b in zip(res.starts, res.ends, res.slopes):
        w = (K >= s) & (K <= e)
        assert b == pytest.approx(np.polyfit(np.log(K[w]), np.log(v[0, w]), 1)[0], abs=1e-10)
        if e <= 1000:
            assert b == pytest.approx(-1.0, abs=1e-10)
        if s >= 1000:
            assert b == pytest.approx(-0.5, abs=1e-10)
    assert np.all(res.intervals[:, 1] - res.intervals[:, 0] < 1e-9)
    with pytest.raises(ValueError):
        res.slopes[0] = 0.0  # read-only
    # with noise, each window's interval is fit_rate's on the same points
    rng = np.random.default_rng(3)
    noisy = v * np.exp(0.2 * rng.standard_normal(v.shape))
    some = slope_stability(K, noisy, 1.0, ends=[1e3, 3e4, 1e5])
    assert list(some.ends) == [max(k for k in K if k <= e) for e in (1e3, 3e4, 1e5)]
    for s, e, b, ci in zip(some.starts, some.ends, some.slopes, some.intervals):
        ref = fit_rate(K, noisy, k_range=(s, e), min_decades=1.0)
        assert b == pytest.approx(ref.slope, abs=1e-12) and tuple(ci) == pytest.approx(ref.ci, abs=1e-12)
    with pytest.raises(ValueError, match="ends: the window of 1 decades ending at k = 50 starts before"):
        slope_stability(K, noisy, 1.0, ends=[50.0])
    with pytest.raises(ValueError, match="less than decades=5"):
        slope_stability(K, noisy, 5.0)


def test_plot_slope_stability_draws_slopes_band_and_theory():
    rng = np.random.default_rng(4)
    v = K**-0.4 * np.exp(0.2 * rng.standard_normal((5, K.size)))
    res = slope_stability(K, v, theory=-1 / 3)
    ax = Figure().add_subplot()
    handles = plot_slope_stability(ax, res)
    assert len(handles) == 2 and ax.get_xscale() == "log" and ax.get_xlabel() == "window end k"
    np.testing.assert_allclose(handles[0].get_xdata(), res.ends)
    np.testing.assert_allclose(handles[0].get_ydata(), res.slopes)
    assert set(handles[1].get_ydata()) == {-1 / 3} and handles[1].get_linestyle() == ":"
    assert len(ax.collections) == 1  # the interval band
    ax2 = Figure().add_subplot()
    single = slope_stability(K, v[0], theory=-1 / 3)
    assert len(plot_slope_stability(ax2, single, theory=False)) == 1 and len(ax2.collections) == 0
    with pytest.raises(TypeError, match="SlopeStability"):
        plot_slope_stability(ax2, fit_rate(K, v))


def _fit(ci, theory, n_seeds=10):
    return RateFit(slope=sum(ci) / 2, ci=ci, level=0.95, n_seeds=n_seeds, n_points=30, k_range=(1e5, 1e8),
                   method="seed t-interval", intercept=0.0, theory=theory)


@pytest.mark.parametrize("ci, theory, expected, tight", [
    ((-0.05, -0.01), -0.1, "inconsistent", False),   # decays more slowly than the bound
    ((-0.2, 0.05), -0.1, "inconclusive", False),     # reaches 0, not above the exponent
    ((-0.3, -0.02), -1 / 3, "inconsistent", False),  # below 0 but all above the exponent
    ((-0.4, -0.3), -1 / 3, "consistent", True),      # contains the exponent
    ((-0.6, -0.5), -1 / 3, "consistent", False),     # faster than the bound
    ((0.01, 0.2), -0.1, "inconsistent", False),      # growing: above the exponent
])
def test_verdict_by_the_rule_of_rates_and_verdicts(ci, theory, expected, tight):
    judged = verdict(_fit(ci, theory))
    assert isinstance(judged, Verdict) and judged.verdict == expected and judged.tight is tight
    assert str(judged) == expected + (" (tight)" if tight else "")
    assert judged.theory == theory and judged.ci == ci


def test_verdict_theory_argument_and_errors():
    fit = _fit((-0.4, -0.3), None)
    assert verdict(fit, -1 / 3).tight and verdict(fit, -0.35).tight and not verdict(fit, -0.5).tight
    assert verdict(fit, -0.5).verdict == "inconsistent"
    with pytest.raises(ValueError, match="theory"):
        verdict(fit)
    with pytest.raises(TypeError, match="RateFit"):
        verdict((-0.4, -0.3), -0.1)


def test_str_and_table_show_schedules_and_verdicts():
    fit = RateFit(slope=-0.31, ci=(-0.35, -0.27), level=0.95, n_seeds=10, n_points=20,
                  k_range=(5e4, 1e5), method="seed t-interval", intercept=0.0, theory=-1 / 3,
                  schedules={"lam": 0.2, "zeta": -0.8})
    assert str(fit) == ("slope -0.31 [-0.35, -0.27] (95%, 10 seeds, k in [5e4, 1e5]) vs theory -0.333; "
                        "schedule exponents lam 0.2, zeta -0.8")
    assert fit.theory_in_ci is True and dict(fit.schedules) == {"lam": 0.2, "zeta": -0.8}
    one = fit_rate(K, K**-0.5, theory=-1.0)
    curve = fit_rate(np.geomspace(1, 100, 9), np.geomspace(1, 100, 9) ** -1.0, deterministic=True, theory=-1.0)
    table = rate_table({"residual_phi": fit, "grad_phi_norm2": one, "penalty bias": curve})
    lines = table.splitlines()
    assert len(lines) == 5 and len({len(line) for line in lines[:2]}) == 1
    cells = [re.split(r"\s{2,}", line) for line in lines]
    assert cells[0] == ["quantity", "slope", "CI", "theory", "verdict", "seeds", "k range", "decades",
                        "fit residual", "schedules"]
    assert cells[2] == ["residual_phi", "-0.31", "[-0.35, -0.27] (95%)", "-0.333", "consistent (tight)", "10",
                        "[5e4, 1e5]", "0.30", "-", "lam 0.2, zeta -0.8"]
    assert cells[3][2:5] == ["-", "-1", "inconclusive"]
    assert cells[4][2:5] == ["-", "-1", "-"]
    assert re.fullmatch(r"\S+, local \[-1, -1\]", cells[4][8])
    with pytest.raises(TypeError):
        rate_table({"a": 1.0})


@pytest.mark.parametrize("kwargs, error, match", [
    ({"values": -K**-0.5}, ValueError, r"entries <= 0 in the window"),
    ({"values": np.r_[np.ones(35), 0.0, np.ones(4)]}, ValueError, r"1 entries <= 0 .*seed 0, k="),
    ({"values": np.ones(39)}, ValueError, "shape"),
    ({"values": np.ones((3, 39))}, ValueError, "shape"),
    ({"window": (0.5, 1.5)}, ValueError, "window"),
    ({"window": (-0.1, 0.5)}, ValueError, "window"),
    ({"window": (0.6, 0.5)}, ValueError, "window"),
    ({"window": (0.5,)}, ValueError, r"window must be a pair \(lo, hi.*1 entries"),
    ({"window": "ab"}, TypeError, r"window must be a pair .* got str 'ab'"),
    ({"window": 0.5}, TypeError, r"window must be a pair .* got float 0.5"),
    ({"window": ("a", 1.0)}, TypeError, r"window must be a pair"),
    ({"k_range": 5}, TypeError, r"k_range must be a pair \(k_lo, k_hi\) .* got int 5"),
    ({"k_range": (1e4, 10)}, ValueError, "k_lo <= k_hi"),
    ({"theory": "abc"}, TypeError, r"theory must be a real number .* got str 'abc'"),
    ({"theory": math.inf}, ValueError, "theory must be a finite"),
    ({"window": (0.0, 0.05), "min_decades": 0}, ValueError, "at least 3"),
    ({"k_range": (1e6, 1e7)}, ValueError, "at least 3"),
    ({"k_range": (10, 100), "window": (0, 1)}, ValueError, "not both"),
    ({"level": 1.0}, ValueError, "level"),
    ({"decades": 0.0}, ValueError, "decades must be"),
    ({"min_decades": -1}, ValueError, "min_decades must be"),
    ({"min_decades": "1"}, TypeError, "min_decades must be"),
    ({"deterministic": "yes"}, TypeError, "deterministic must be True or False"),
    ({"schedules": [0.2]}, TypeError, "schedules must be a mapping"),
    ({"schedules": {"lam": "x"}}, TypeError, r"schedules\['lam'\]"),
    ({"values": np.r_[np.ones(39), np.nan]}, ValueError, "NaN"),
])
def test_bad_inputs(kwargs, error, match):
    kwargs = {"values": np.ones(40), **kwargs}
    with pytest.raises(error, match=match):
        fit_rate(K, **kwargs)


def test_bad_k_floor_and_the_old_bootstrap_arguments():
    with pytest.raises(ValueError, match="increasing"):
        fit_rate(np.r_[0.0, K[1:]], np.ones(40))
    with pytest.raises(ValueError, match="increasing"):
        fit_rate(K[::-1], np.ones(40))
    v = K**-1.0
    v[-5:] = 0.0  # a quantity that reached exactly zero
    fit = fit_rate(K, v, floor=1e-300)
    assert np.isfinite(fit.slope) and fit.slope < -1
    with pytest.raises(ValueError, match="floor"):
        fit_rate(K, v, floor=-1.0)
    with pytest.warns(FutureWarning, match="n_boot and seed have no effect"):
        old = fit_rate(K, np.ones((2, 40)) * K**-1.0, n_boot=500, seed=3)
    assert old == fit_rate(K, np.ones((2, 40)) * K**-1.0)


def test_rates_figure_legend_says_when_there_is_no_interval():
    from exactbilevel import plots
    from exactbilevel.trace import Trace

    k = np.geomspace(1, 1e3, 31)
    one = {"run": [Trace({"k": k, "y": k**-0.5})]}
    texts = [t.get_text() for t in plots.rates(one, "y").axes[0].get_legend().get_texts()]
    entry = [t for t in texts if t.startswith("run")]
    assert entry == ["run: slope -0.5 (no interval)"]
    curve = plots.rates(one, "y", deterministic=True)
    (fit,) = curve.rate_fits.values()
    assert fit.method == "deterministic: no interval" and fit.max_residual < 1e-12
    with pytest.raises(ValueError, match=r"groups\['run'\]: .*spans 1\.00 decades"):
        plots.rates({"run": [Trace({"k": k[:11], "y": k[:11] ** -0.5})]}, "y")
