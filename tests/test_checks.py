"""exactbilevel.testing.check_unbiased and check_gradient: their error rates, power and verdicts."""

import numpy as np
import pytest
from scipy import stats

import exactbilevel as eb
from exactbilevel.testing import check_gradient, check_unbiased

EXACT = np.array([1.0, -2.0, 0.5, 3.0])


def noisy(bias=0.0, sigma=1.0):
    """Batched estimator: exact (+ bias on coordinate 2) plus N(0, sigma^2) noise."""
    shift = EXACT + np.array([0.0, 0.0, bias, 0.0])
    return lambda rng, n: shift + sigma * rng.standard_normal((n, EXACT.size))


def test_false_alarm_rate_is_about_alpha():
    """400 unbiased checks at alpha = 0.05 (4 independent coordinates: Holm's family-wise rate
    1 - (1 - alpha/4)^4 = 0.0491 for normal means).  The number of alarms must lie in the
    central 99.9% interval of Binomial(400, 0.0491): this test's own false-alarm rate is 1e-3,
    and with the fixed seeds below its outcome is deterministic."""
    alarms = sum(not check_unbiased(noisy(), EXACT, n_samples=200, alpha=0.05, seed=s, batched=True)
                 for s in range(400))
    rate = 1 - (1 - 0.05 / 4) ** 4
    lo, hi = stats.binom.ppf([0.0005, 0.9995], 400, rate)
    assert lo <= alarms <= hi


def test_a_bias_of_five_percent_of_the_noise_is_found_with_1e5_samples():
    report = check_unbiased(noisy(bias=0.05), EXACT, n_samples=100_000, alpha=1e-3, seed=1, batched=True)
    assert not report
    assert report.rejected.tolist() == [False, False, True, False]
    assert report.z[2] == pytest.approx(0.05 * np.sqrt(1e5), rel=0.3)
    assert "BIASED" in str(report)


def test_same_seed_same_report_and_unbatched_estimators():
    def one(rng):
        return EXACT + rng.standard_normal(EXACT.size)

    a = check_unbiased(one, EXACT, n_samples=500, seed=7)
    b = check_unbiased(one, EXACT, n_samples=500, seed=7)
    np.testing.assert_array_equal(a.z, b.z)
    assert a.passed


def test_deterministic_coordinates_must_be_exact():
    exact = np.array([1.0, 2.0])
    assert check_unbiased(lambda rng: np.array([1.0, 2.0 + rng.normal()]), exact, n_samples=100)
    bad = check_unbiased(lambda rng: np.array([1.0 + 1e-6, 2.0 + rng.normal()]), exact, n_samples=100)
    assert not bad and bad.rejected[0] and np.isinf(bad.z[0])


def test_an_occupancy_sampler_is_an_unbiased_estimator_of_the_danskin_gradient():
    """The README's example: sample (s, a) ~ nu^pi by geometric restarts, return R(s, a) / (1 - gamma)."""
    mdp = eb.envs.random_mdp(5, 2, gamma=0.8, seed=0)
    rng0 = np.random.default_rng(0)
    reward = eb.LinearReward(rng0.normal(size=(5, 2, 3)))
    x = np.zeros(3)
    pi = np.full((5, 2), 0.5)
    R = reward.jacobian(x)
    P = mdp.P

    def estimate(rng, n):
        s = rng.choice(mdp.S, size=n, p=mdp.rho)
        a = (rng.random(n) < pi[s, 1]).astype(int)
        active = rng.random(n) < mdp.gamma  # continue with probability gamma
        while active.any():
            i = np.flatnonzero(active)
            cdf = np.cumsum(P[s[i], a[i]], axis=1)
            s[i] = np.minimum((rng.random(i.size)[:, None] > cdf).sum(axis=1), mdp.S - 1)
            a[i] = (rng.random(i.size) < pi[s[i], 1]).astype(int)
            active[i] = rng.random(i.size) < mdp.gamma
        return R[s, a] / (1 - mdp.gamma)

    exact = eb.return_gradient(mdp, reward, x, pi)
    assert check_unbiased(estimate, exact, n_samples=20_000, seed=3, batched=True)
    wrong = eb.return_gradient(mdp, reward, x, np.tile([0.7, 0.3], (5, 1)))
    assert not check_unbiased(estimate, wrong, n_samples=20_000, seed=3, batched=True)


def test_check_gradient_accepts_an_exact_gradient_and_rejects_a_wrong_one():
    def f(x):
        return np.sin(x).sum() + x[0] * x[1] ** 2

    def grad(x):
        return np.cos(x) + np.array([x[1] ** 2, 2 * x[0] * x[1], 0.0])

    x = np.array([0.3, -1.2, 2.0])
    good = check_gradient(f, grad, x, rtol=1e-10)
    assert good and good.error < 1e-9
    bad = check_gradient(f, lambda y: grad(y) * (1 + 1e-5), x, rtol=1e-7)
    assert not bad and "MISMATCH" in str(bad)


def test_check_gradient_of_an_array_valued_function_checks_the_jacobian():
    M = np.arange(6.0).reshape(2, 3)
    x = np.array([1.0, 2.0, 3.0])
    assert check_gradient(lambda y: M @ y ** 2, lambda y: M * 2 * y, x)
    with pytest.raises(ValueError, match=r"grad must have shape \(2, 3\)"):
        check_gradient(lambda y: M @ y, np.zeros(3), x)


def test_check_unbiased_rejects_bad_arguments():
    with pytest.raises(TypeError, match="estimator must be callable"):
        check_unbiased(3.0, EXACT)
    with pytest.raises(ValueError, match="alpha must lie in"):
        check_unbiased(noisy(), EXACT, alpha=1.5, batched=True)
    with pytest.raises(ValueError, match=r"must stack to shape \(10, 4\)"):
        check_unbiased(lambda rng, n: np.zeros((n, 3)), EXACT, n_samples=10, batched=True)
    with pytest.raises(ValueError, match="n_samples must be >= 2"):
        check_unbiased(noisy(), EXACT, n_samples=1, batched=True)
