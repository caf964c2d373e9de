"""Rate fitting against exact power laws and synthetic experiments with a known exponent."""

import re

import numpy as np
import pytest

from exactbilevel.rates import RateFit, fit_rate, rate_table

K = np.unique(np.geomspace(10, 1e5, 40).round())


def test_exact_power_laws_recover_the_exponent():
    for p in (-1 / 3, -0.1, 0.5, -2.0):
        one = fit_rate(K, 3.0 * K**p)
        assert abs(one.slope - p) < 1e-10 and one.method == "residual bootstrap"
        assert one.ci[0] - 1e-10 <= p <= one.ci[1] + 1e-10 and one.ci[1] - one.ci[0] < 1e-10
        c = np.array([[0.5], [1.0], [7.0]])  # one constant per seed
        many = fit_rate(K, c * K**p, theory=p)
        assert abs(many.slope - p) < 1e-10 and many.method == "seed bootstrap" and many.n_seeds == 3
        assert abs(np.exp(many.intercept) - np.exp(np.log(c).mean())) < 1e-8
    # second half of the 40 logging points
    assert one.n_points == 20 and one.k_range == (K[20], K[-1])


def _noisy_runs(rng, p, n_seeds, sigma=0.3):
    """c_j k^p exp(sigma eps_jk): per-seed slopes are i.i.d., unbiased for p."""
    c = np.exp(rng.normal(size=(n_seeds, 1)))
    return c * K**p * np.exp(sigma * rng.standard_normal((n_seeds, K.size)))


def test_seed_bootstrap_coverage():
    """Over 200 independent synthetic experiments, the 90% CI contains the true slope 80% to 97% of the time.

    The experiments are independent, so the number of hits is Binomial(200, c)
    with c the true coverage.  The percentile bootstrap of a mean of 30 normal
    slopes has c = P(|t_29| < 1.645 sqrt(29/30)) ~ 0.88 (module docstring of
    exactbilevel.rates); the binomial standard deviation is sqrt(0.88 * 0.12 / 200)
    ~ 0.023, so [0.80, 0.97] is about 3.5 standard deviations wide on each side
    of 0.88 and a correct implementation fails with probability ~1e-3 (never,
    with the fixed master seed; 3000 experiments give 0.87).  A CI 1.5 times too
    narrow would cover ~0.71, one twice too wide ~0.997: both fail.
    """
    rng = np.random.default_rng(12345)
    p, hits = -1 / 3, 0
    for i in range(200):
        fit = fit_rate(K, _noisy_runs(rng, p, 30), level=0.90, n_boot=500, seed=i)
        hits += fit.ci[0] <= p <= fit.ci[1]
    assert 0.80 <= hits / 200 <= 0.97


def test_residual_bootstrap_coverage_single_seed():
    """Same binomial argument for one seed with independent noise: the leverage-corrected
    residual bootstrap over 20 points covers about P(|t_18| < 1.645) ~ 0.88."""
    rng = np.random.default_rng(54321)
    p, hits = -0.1, 0
    for i in range(200):
        fit = fit_rate(K, _noisy_runs(rng, p, 1)[0], level=0.90, n_boot=500, seed=i)
        assert fit.method == "residual bootstrap" and fit.n_seeds == 1
        hits += fit.ci[0] <= p <= fit.ci[1]
    assert 0.80 <= hits / 200 <= 0.97


def test_reproducible_and_seed_dependent():
    v = _noisy_runs(np.random.default_rng(0), -0.5, 8)
    assert fit_rate(K, v, seed=7) == fit_rate(K, v, seed=7)
    assert fit_rate(K, v, seed=7).ci != fit_rate(K, v, seed=8).ci
    # the point estimate is the slope of the fit to the mean of log(values)
    x, y = np.log(K[20:]), np.log(v[:, 20:]).mean(axis=0)
    assert abs(fit_rate(K, v).slope - np.polyfit(x, y, 1)[0]) < 1e-12


def test_window_and_k_range_select_the_points():
    # a broken power law: k^-1 up to k = 1000, then k^-0.5 (continuous)
    v = np.where(K <= 1000, 1000 / K, np.sqrt(1000 / K))
    late = fit_rate(K, v, k_range=(1000, 1e5))
    assert abs(late.slope + 0.5) < 1e-10 and late.k_range[0] >= 1000 and late.k_range[1] == K[-1]
    assert late.n_points == np.sum(K >= 1000)
    early = fit_rate(K, v, k_range=(10, 1000))
    assert abs(early.slope + 1.0) < 1e-10 and early.k_range == (10.0, K[K <= 1000][-1])
    first = fit_rate(K, v, window=(0.0, 0.25))
    assert first.n_points == 10 and first.k_range == (K[0], K[9]) and abs(first.slope + 1.0) < 1e-10


def test_str_and_table():
    fit = RateFit(slope=-0.31, ci=(-0.35, -0.27), level=0.95, n_seeds=10, n_points=20,
                  k_range=(5e4, 1e5), method="seed bootstrap", intercept=0.0, theory=-1 / 3)
    assert str(fit) == "slope -0.31 [-0.35, -0.27] (95%, 10 seeds, k in [5e4, 1e5]) vs theory -0.333"
    assert fit.theory_in_ci is True
    off = fit_rate(K, K**-0.5, theory=-1.0)
    assert off.theory_in_ci is False and "residual bootstrap" in str(off)
    table = rate_table({"residual_phi": fit, "grad_phi_norm2": off, "x": fit_rate(K, K**0.2)})
    lines = table.splitlines()
    assert len(lines) == 5 and len({len(line) for line in lines[:2]}) == 1
    cells = [re.split(r"\s{2,}", line) for line in lines]
    assert cells[0] == ["quantity", "slope", "CI", "theory", "theory in CI", "seeds", "k range"]
    assert cells[2] == ["residual_phi", "-0.31", "[-0.35, -0.27] (95%)", "-0.333", "yes", "10", "[5e4, 1e5]"]
    assert cells[3][4] == "no" and cells[4][3:5] == ["-", "-"]
    with pytest.raises(TypeError):
        rate_table({"a": 1.0})


@pytest.mark.parametrize("kwargs, match", [
    ({"values": -K**-0.5}, r"20 entries <= 0 in the window"),
    ({"values": np.r_[np.ones(30), 0.0, np.ones(9)]}, r"1 entries <= 0 .*seed 0, k="),
    ({"values": np.ones(39)}, "shape"),
    ({"values": np.ones((3, 39))}, "shape"),
    ({"values": np.ones(40), "window": (0.5, 1.5)}, "window"),
    ({"values": np.ones(40), "window": (-0.1, 0.5)}, "window"),
    ({"values": np.ones(40), "window": (0.6, 0.5)}, "window"),
    ({"values": np.ones(40), "window": (0.0, 0.05)}, "at least 3"),
    ({"values": np.ones(40), "k_range": (1e6, 1e7)}, "at least 3"),
    ({"values": np.ones(40), "k_range": (10, 100), "window": (0, 1)}, "not both"),
    ({"values": np.ones(40), "level": 1.0}, "level"),
    ({"values": np.r_[np.ones(39), np.nan]}, "NaN"),
])
def test_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fit_rate(K, **kwargs)


def test_bad_k_and_floor():
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
    with pytest.raises(TypeError, match="n_boot"):
        fit_rate(K, K**-1.0, n_boot=10.5)
