"""Logging points (linear and geometric), runs that log at them, checkpoints with geometric
logging, and the running average / minimum of a logged quantity (docs/theory.rst, "What is measured")."""

import numpy as np
import pytest

import exactbilevel as eb
from exactbilevel.actor_critic import ActorCriticConfig
from exactbilevel.problem import BilevelProblem

# constant schedules (simple and cheap) break the asymptotic conditions, which only warn
pytestmark = pytest.mark.filterwarnings("ignore::exactbilevel.actor_critic.ScheduleWarning")

STATE = ("theta", "phi", "Qtheta", "Qphi", "Qc")
#: the whole iterate as metric columns: a row equal bit for bit means the same state
STATE_METRICS = {f"state_{n}": (lambda st, n=n: np.array(getattr(st, n)).ravel()) for n in STATE}


def small_problem(objective="occupancy", S=5, A=3, seed=1):
    mdp = eb.envs.random_mdp(S, A, gamma=0.8, seed=seed, successors=3)
    rng = np.random.default_rng(seed)
    reward = eb.GaussianGoalReward(rng.uniform(0, 3, (S, 2)), A, sigma=1.0)
    if objective == "occupancy":
        obj = eb.OccupancyObjective(mdp, rng.uniform(-1, 1, (S, A)), kappa=0.3, center=[0.2, -0.1])
    else:
        obj = eb.DistributionMatchingObjective(mdp, rng.dirichlet(np.ones(S)), kappa=0.3, center=[0.2, -0.1])
    return BilevelProblem(mdp, reward, obj, np.array([0.5, 1.0]), bounds=(-2.0, 3.0))


# ---------------------------------------------------------------------------------- log_steps

@pytest.mark.parametrize("steps,every", [(1, 1), (7, 3), (1000, 100), (1050, 100), (999, 1000)])
def test_linear_logging_points_are_the_multiples_of_log_every_and_the_end(steps, every):
    expected = [k for k in range(steps + 1) if k % every == 0 or k == steps]
    got = ActorCriticConfig(steps=steps, log_every=every).log_steps()
    assert got.dtype == np.int64
    assert got.tolist() == expected


@pytest.mark.parametrize("steps,per_decade", [(1, 20), (10, 20), (3000, 5), (10**8, 20), (123_457, 7)])
def test_geometric_logging_points(steps, per_decade):
    """Sorted, distinct, 0 and steps included; every other point is an integer within 1/2 of
    some 10^(j/m); every such value <= steps is there (rounded); m points in each full
    decade where the spacing exceeds one step."""
    got = ActorCriticConfig(steps=steps, log_spacing="geometric", logs_per_decade=per_decade).log_steps()
    assert got.dtype == np.int64
    assert got[0] == 0 and got[-1] == steps
    assert np.all(np.diff(got) > 0)
    grid = [10 ** (j / per_decade) for j in range(10 * per_decade) if 10 ** (j / per_decade) <= steps]
    for k in got[1:-1]:
        assert min(abs(k - g) for g in grid) <= 0.5
    assert {int(np.floor(g + 0.5)) for g in grid} <= set(got.tolist())
    for a in range(20):
        lo, hi = 10**a, 10 ** (a + 1)
        if hi <= steps and lo * (10 ** (1 / per_decade) - 1) > 1:
            assert np.sum((got >= lo) & (got < hi)) == per_decade


def test_logging_options_are_checked():
    with pytest.raises(ValueError, match="log_spacing must be 'linear' or 'geometric'"):
        ActorCriticConfig(steps=10, log_spacing="log")
    with pytest.raises(ValueError, match="logs_per_decade must be >= 1"):
        ActorCriticConfig(steps=10, log_spacing="geometric", logs_per_decade=0)
    with pytest.raises(TypeError, match="logs_per_decade must be an int"):
        ActorCriticConfig(steps=10, logs_per_decade=2.5)


# ----------------------------------------------------------- runs log at exactly log_steps

ORACLE_METHODS = ("hypergradient", "nested_penalty")


SCHEDULES = dict(tau=0.3, lam=5.0, alpha=0.1, beta=0.3, zeta=0.005)


def _config(method, spacing, steps=None, **kw):
    """Linear: every 4, 10 or 100 steps (up to 12, 100 steps, more); geometric: 10 a decade."""
    if steps is None:
        steps = 8 if method in ORACLE_METHODS else (25 if method == "finite_differences" else 2000)
    log = dict(log_every=4 if steps <= 12 else 10 if steps < 100 else 100)
    if spacing == "geometric":
        log = dict(log_spacing="geometric", logs_per_decade=10)
    return ActorCriticConfig(**SCHEDULES, steps=steps, diagnostics=False, fd_inner=20, linearize_every=300,
                             **log, **kw)


CASES = [("actor_critic", dict(sampling="iid"), "occupancy"),
         ("actor_critic", dict(sampling="markov"), "matching"),
         ("actor_critic", dict(sampling="markov", batch=2, actor="npg"), "occupancy"),
         ("actor_critic", dict(exact=True), "occupancy"),
         ("partial_sgd", dict(sampling="iid"), "matching"),
         ("rlhf", {}, "matching"),
         ("finite_differences", {}, "occupancy"),
         ("hypergradient", {}, "occupancy"),
         ("nested_penalty", {}, "occupancy")]


@pytest.mark.parametrize("method,kw,objective", CASES)
def test_geometric_logging_gives_the_same_run_as_linear_at_the_shared_points(method, kw, objective):
    """Same seed and configuration apart from the spacing: the rows at the k logged by both
    (and the whole iterate, as metrics) are identical bit for bit, time apart.  The sampled
    loop is split into blocks at different points (linearization points too) in the two runs."""
    problem = small_problem(objective)
    steps = 40 if kw.get("exact") else None  # exact steps are costly: fewer of them (linear: every 10)
    lin_cfg = _config(method, "linear", steps=steps, **kw)
    geo_cfg = _config(method, "geometric", steps=steps, **kw)
    lin = eb.run(problem, lin_cfg, seed=11, method=method, metrics=STATE_METRICS)
    geo = eb.run(problem, geo_cfg, seed=11, method=method, metrics=STATE_METRICS)
    np.testing.assert_array_equal(lin["k"], lin_cfg.log_steps())
    np.testing.assert_array_equal(geo["k"], geo_cfg.log_steps())
    shared = np.intersect1d(lin["k"], geo["k"])
    assert shared.size >= 3 and 0 < shared[1] < lin_cfg.steps  # an interior point is compared
    li, gi = np.searchsorted(lin["k"], shared), np.searchsorted(geo["k"], shared)
    for name in lin.columns:
        if name != "time":
            np.testing.assert_array_equal(lin[name][li], geo[name][gi], err_msg=name)
    if method not in ORACLE_METHODS:
        assert not np.array_equal(lin["state_theta"][li[-1]], lin["state_theta"][0])  # the run moved


@pytest.mark.parametrize("method", ["actor_critic", "rlhf"])
def test_the_progress_display_changes_nothing_in_the_run(capsys, method):
    """progress=True splits the sampled loop into more blocks: same trace; the bar reaches steps."""
    problem = small_problem("matching")
    cfg = _config(method, "geometric", sampling="markov", steps=5000)
    plain = eb.run(problem, cfg, seed=2, method=method, metrics=STATE_METRICS)
    shown = eb.run(problem, cfg, seed=2, method=method, metrics=STATE_METRICS, progress=True)
    for name in plain.columns:
        if name != "time":
            np.testing.assert_array_equal(plain[name], shown[name], err_msg=name)
    err = capsys.readouterr().err
    assert method in err and "5.00k/5.00k" in err
    with pytest.raises(TypeError, match="progress must be True or False"):
        eb.run(problem, cfg, progress="yes")


def test_with_diagnostics_geometric_logging_agrees_with_linear_up_to_the_warm_starts():
    """The diagnostics are exact solves warm-started from the previous logging point, so
    they agree with the linear run's to the solvers' tolerance, not bit for bit."""
    problem = small_problem()
    cfg = dict(SCHEDULES, steps=1000)
    lin = eb.run(problem, ActorCriticConfig(**cfg, log_every=100), seed=5)
    geo = eb.run(problem, ActorCriticConfig(**cfg, log_spacing="geometric", logs_per_decade=10), seed=5)
    shared = np.intersect1d(lin["k"], geo["k"])
    assert shared.tolist() == [0, 100, 200, 1000]
    li, gi = np.searchsorted(lin["k"], shared), np.searchsorted(geo["k"], shared)
    for name in lin.columns:
        if name != "time":
            np.testing.assert_allclose(lin[name][li], geo[name][gi], rtol=1e-6, atol=1e-12, err_msg=name)


# -------------------------------------------------------------- checkpoints, geometric logging

@pytest.mark.parametrize("sampling,objective,stop_at", [("iid", "occupancy", 40), ("markov", "matching", 631)])
def test_an_interrupted_geometric_run_resumes_to_the_same_trace(tmp_path, sampling, objective, stop_at):
    """A metric raises at the logging point ``stop_at``; the run again with the same
    checkpoint (and a progress bar) gives the uninterrupted trace, diagnostics included."""
    problem = small_problem(objective)
    kw = dict(SCHEDULES, steps=3000, sampling=sampling, linearize_every=700)
    cfg = ActorCriticConfig(**kw, log_spacing="geometric", logs_per_decade=5)
    assert stop_at in cfg.log_steps()
    probe = {"theta00": lambda st: st.theta[0, 0]}
    full = eb.run(problem, cfg, seed=4, metrics=probe)

    class Stop(Exception):
        pass

    def flaky(st):
        if st.k == stop_at:
            raise Stop
        return st.theta[0, 0]

    ckpt = tmp_path / "geo.ckpt.npz"
    with pytest.raises(Stop):
        eb.run(problem, cfg, seed=4, checkpoint=ckpt, metrics={"theta00": flaky})
    assert ckpt.exists()
    with np.load(ckpt) as z:  # it holds the rows before the failing point
        np.testing.assert_array_equal(z["row_k"], cfg.log_steps()[cfg.log_steps() < stop_at])
    resumed = eb.run(problem, cfg, seed=4, checkpoint=ckpt, metrics=probe, progress=True)
    assert not ckpt.exists()
    assert full.columns == resumed.columns
    for name in full.columns:
        if name != "time":
            np.testing.assert_array_equal(resumed[name], full[name], err_msg=name)
    # a linear-spaced configuration is another run: its checkpoint is not taken
    with pytest.raises(Stop):
        eb.run(problem, cfg, seed=4, checkpoint=ckpt, metrics={"theta00": flaky})
    linear = ActorCriticConfig(**kw, log_every=100)
    with pytest.raises(ValueError, match="another run"):
        eb.run(problem, linear, seed=4, checkpoint=ckpt, metrics=probe)


# ------------------------------------------------------------------- running mean and minimum

def _random_points(rng, K, n):
    inner = rng.choice(np.arange(1, K), size=min(n, K - 1), replace=False)
    return np.unique(np.concatenate([[0], inner, [K]]))


def test_running_mean_is_the_mean_of_the_linear_interpolant_at_every_step():
    """Brute force: interpolate linearly at every integer step (a Python loop over the
    intervals) and average v(0..K-1) at each logging point K."""
    rng = np.random.default_rng(0)
    for trial in range(30):
        k = _random_points(rng, int(rng.integers(2, 400)), int(rng.integers(1, 30)))
        v = rng.normal(size=k.size) * 10.0 ** rng.integers(-3, 6)
        dense = []
        for i in range(k.size - 1):
            for j in range(k[i], k[i + 1]):
                dense.append(v[i] + (v[i + 1] - v[i]) * (j - k[i]) / (k[i + 1] - k[i]))
        expected = [np.nan] + [sum(dense[:K]) / K for K in k[1:]]
        np.testing.assert_allclose(eb.running_mean(k, v), expected, rtol=1e-12, atol=1e-12 * np.abs(v).max())


def test_running_mean_is_exact_for_a_v_linear_between_logging_points():
    """v known at every k, linear between the logging points (random slopes, continuous):
    running_mean equals (1/K) sum_{k<K} v(k); and the plain trapezoid rule differs from it by
    the endpoint term (v(K) - v(0)) / (2K) (sum_{j=a}^{b-1} of a line = trapezoid - (v_b - v_a)/2)."""
    rng = np.random.default_rng(1)
    k = np.unique(np.concatenate([[0], np.geomspace(1, 5000, 25).astype(int), [5000]]))
    slopes = rng.normal(size=k.size - 1)
    full = np.empty(k[-1] + 1)  # v(j) for every j, built from the slopes, not by interpolation
    full[0] = 3.0
    seg = np.searchsorted(k, np.arange(1, k[-1] + 1), side="left") - 1
    full[1:] = 3.0 + np.cumsum(slopes[seg])
    v = full[k]
    got = eb.running_mean(k, v)
    for m in range(1, k.size):
        K = k[m]
        assert got[m] == pytest.approx(full[:K].sum() / K, rel=1e-12, abs=1e-12)
        trapezoid = np.sum(np.diff(k[: m + 1]) * (v[1 : m + 1] + v[:m]) / 2)
        assert got[m] == pytest.approx((trapezoid - (v[m] - v[0]) / 2) / K, rel=1e-12, abs=1e-12)
    # logging at every step: the plain running mean of v(0), ..., v(K-1)
    every = np.arange(50)
    np.testing.assert_allclose(eb.running_mean(every, full[:50])[1:], np.cumsum(full[:49]) / every[1:], rtol=1e-13)


def test_running_mean_error_bound_for_a_smooth_v():
    """For v(k) = (k + 1)^-1/2 (|v''| <= 3/4 (k+1)^-5/2) on geometric points the error
    against the exact (1/K) sum_{k<K} v(k) is within the documented C max n_i^2 / 8."""
    cfg = ActorCriticConfig(steps=20_000, log_spacing="geometric", logs_per_decade=10)
    k = cfg.log_steps()
    f = lambda t: (t + 1.0) ** -0.5  # noqa: E731
    exact = np.cumsum(f(np.arange(k[-1])))
    got = eb.running_mean(k, f(k))
    n = np.diff(k)
    for m in range(1, k.size):
        bound = np.max(n[:m].astype(float) ** 2 * 0.75 * (k[:m] + 1.0) ** -2.5) / 8  # C on each interval
        assert abs(got[m] - exact[k[m] - 1] / k[m]) <= bound + 1e-15


def test_running_min_is_the_minimum_so_far():
    rng = np.random.default_rng(2)
    k = _random_points(rng, 1000, 40)
    v = rng.normal(size=(k.size, 3))
    expected = np.empty_like(v)
    for i in range(k.size):
        for c in range(3):
            expected[i, c] = min(v[j, c] for j in range(i + 1))
    np.testing.assert_array_equal(eb.running_min(k, v), expected)
    # seeds stacked first: the logging axis last
    np.testing.assert_array_equal(eb.running_min(k, v.T, axis=-1), expected.T)


def test_running_quantities_shapes_and_edge_cases():
    k = np.array([0, 2, 5])
    v = np.array([[1.0, 4.0, 2.0], [0.0, 0.0, 3.0]])  # (n_seeds, n)
    v_before = v.copy()
    mean = eb.running_mean(k, v, axis=1)
    assert mean.shape == (2, 3) and mean.dtype == np.float64
    np.testing.assert_allclose(mean[:, 1:], [[(1 + 2.5) / 2, (1 + 2.5 + 4 + 10 / 3 + 8 / 3) / 5], [0, (1 + 2) / 5]])
    assert np.all(np.isnan(mean[:, 0]))
    np.testing.assert_array_equal(v, v_before)  # the caller's array is not changed
    np.testing.assert_array_equal(eb.running_mean(k, v.T), mean.T)
    np.testing.assert_array_equal(eb.running_mean([0], [7.0]), [np.nan])
    np.testing.assert_array_equal(eb.running_min([0], [7.0]), [7.0])
    np.testing.assert_array_equal(eb.running_min(k, np.array([3, 1, 2])), [3.0, 1.0, 1.0])  # ints -> float64
    np.testing.assert_array_equal(eb.running_min(k, [1.0, np.nan, 0.0]), [1.0, np.nan, np.nan])
    with pytest.raises(ValueError, match="k must start at 0"):
        eb.running_mean([1, 2], [1.0, 2.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        eb.running_mean([0, 2, 2], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="len\\(k\\) = 3 entries along axis 0"):
        eb.running_min(k, v)
    with pytest.raises(ValueError, match="non-empty 1-D"):
        eb.running_mean([], [])
    with pytest.raises(TypeError, match="k must hold integers"):
        eb.running_mean([0, 1.5], [1.0, 2.0])
    with pytest.raises(TypeError, match="numeric array"):
        eb.running_min(k, ["a", "b", "c"])
    with pytest.raises(ValueError, match="axis must be an int"):
        eb.running_min(k, v, axis=2)
