"""The section 4 actor-critic: the compiled loop against its plain reference, its update
directions against their exact expectations (check_unbiased), convergence with x fixed,
reproducibility, and its configuration checks."""

import warnings

import numpy as np
import pytest

import exactbilevel as eb
from exactbilevel import _actor_critic_kernels as K
from exactbilevel.actor_critic import ActorCriticConfig, ActorCriticState, ScheduleWarning, expected_step
from exactbilevel.actor_critic import compiled_model, linearize, transition_sampler
from exactbilevel.problem import BilevelProblem
from exactbilevel.testing import check_unbiased
from exactbilevel.testing import reference as ref

FIELDS = ("x", "theta", "phi", "Qtheta", "Qphi", "Qc")


def small_problem(kind="linear", sparse=False, S=5, A=3, gamma=0.8, fixed_x=False, seed=1, objective="occupancy"):
    """A random problem; ``objective`` "occupancy" (compiled as is) or "matching" (a
    DistributionMatchingObjective: linearized)."""
    mdp = eb.envs.random_mdp(S, A, gamma=gamma, seed=seed, successors=3, sparse=sparse)
    rng = np.random.default_rng(seed)
    if kind == "linear":
        reward = eb.LinearReward(rng.uniform(-1, 1, (S, A, 2)))
    else:
        reward = eb.GaussianGoalReward(rng.uniform(0, 3, (S, 2)), A, sigma=1.0)
    obj = eb.OccupancyObjective(mdp, rng.uniform(-1, 1, (S, A)), kappa=0.3, center=[0.2, -0.1])
    if objective == "matching":
        obj = eb.DistributionMatchingObjective(mdp, rng.dirichlet(np.ones(S)), kappa=0.3, center=[0.2, -0.1])
    x0 = np.array([0.5, 1.0])
    return BilevelProblem(mdp, reward, obj, x0, bounds=(x0, x0) if fixed_x else (-2.0, 3.0))


def random_state(problem, seed):
    rng = np.random.default_rng(seed)
    S, A = problem.mdp.S, problem.mdp.A
    st = ActorCriticState.initial(problem)
    for name in FIELDS[1:]:
        setattr(st, name, rng.normal(size=(S, A)))
    return st


def schedules(n, tau=0.3, lam=5.0, alpha=0.2, beta=0.4, zeta=0.05):
    return {k: np.full(n, v) for k, v in dict(tau=tau, lam=lam, alpha=alpha, beta=beta, zeta=zeta).items()}


def kernel_steps(problem, state, sched, rng, sampling="iid", batch=1, natural=False, chains=None, prepared=None,
                 gx0=None):
    """The compiled loop called directly (steps with any step sizes, e.g. beta = 0);
    ``prepared`` = (compiled_model(problem), transition_sampler(mdp)) saves rebuilding them;
    ``gx0``: the constant part of grad_x f (the model's by default)."""
    model, sampler = prepared or (compiled_model(problem), transition_sampler(problem.mdp))
    gx0 = model["gx0"] if gx0 is None else np.asarray(gx0, dtype=np.float64)
    lse = {n: K.all_row_lse(getattr(state, n)) for n in ("phi", "theta")}
    counter = np.zeros(1, np.int64)
    chains = np.array([0, 0] if chains is None else chains, np.int64)
    K.run_steps(sched["tau"], sched["lam"], sched["alpha"], sched["beta"], sched["zeta"], state.x, problem.lo,
                problem.hi, state.theta, state.phi, state.Qphi, state.Qtheta, state.Qc, lse["phi"], lse["theta"],
                model["kind"], model["Psi"], model["coords"], model["sigma"], model["cost"], model["kappa"],
                model["center"], gx0, *sampler, problem.mdp.gamma, K.IID if sampling == "iid" else K.MARKOV, chains,
                batch, natural, False, False, rng, counter)
    return int(counter[0]), chains


@pytest.mark.parametrize("kind,sparse,sampling,batch,natural,offset", [
    ("linear", False, "iid", 1, False, False),
    ("gaussian", True, "iid", 3, False, True),
    ("linear", True, "markov", 1, True, True),
    ("gaussian", False, "markov", 2, True, False),
])
def test_compiled_loop_equals_the_plain_reference(kind, sparse, sampling, batch, natural, offset):
    problem = small_problem(kind, sparse)
    st = random_state(problem, 0)
    ref_state = {n: np.array(getattr(st, n)) for n in FIELDS}
    sched = schedules(200)
    gx0 = np.linspace(-0.3, 0.5, problem.d) if offset else np.zeros(problem.d)
    n, _ = kernel_steps(problem, st, sched, np.random.default_rng(7), sampling, batch, natural, chains=[1, 2],
                        gx0=gx0)
    P = ref.dense_kernel(problem.mdp)
    obj = problem.objective
    n_ref = ref.actor_critic_steps_ref(P, problem.mdp.rho, problem.mdp.gamma, problem.reward, obj.cost, obj.kappa,
                                       obj.center, problem.lo, problem.hi, sched, ref_state, sampling, [1, 2], batch,
                                       natural, np.random.default_rng(7), gx0=gx0)
    assert n == n_ref
    for name in FIELDS:
        np.testing.assert_allclose(getattr(st, name), ref_state[name], rtol=1e-10, atol=1e-12, err_msg=name)


def _deltas(problem, state, sched, fields, natural=False):
    model = compiled_model(problem)
    linearize(problem, model, state)  # (an occupancy objective: nothing to do)
    prepared = (model, transition_sampler(problem.mdp))

    def estimate(rng):
        st = state.copy()
        kernel_steps(problem, st, sched, rng, natural=natural, prepared=prepared)
        return np.concatenate([(getattr(st, f) - getattr(state, f)).ravel() for f in fields])
    return estimate


def _expected(problem, state, sched, fields, natural=False):
    st = state.copy()
    expected_step(problem, st, *(sched[n][0] for n in ("tau", "lam", "alpha", "beta", "zeta")), natural=natural)
    return np.concatenate([(getattr(st, f) - getattr(state, f)).ravel() for f in fields])


@pytest.mark.parametrize("kind,objective", [("linear", "occupancy"), ("gaussian", "occupancy"),
                                            ("linear", "matching")])
def test_critic_and_upper_directions_are_unbiased(kind, objective):
    """The critics and x are updated from pre-step quantities, so their mean change is the
    expected step whatever alpha (false-alarm rate 1e-3, Holm over all coordinates); for an
    objective linearized at the step's state, the expected step of the exact objective."""
    problem = small_problem(kind, S=4, A=2, objective=objective)
    state = random_state(problem, 3)
    sched = schedules(1)
    fields = ("Qphi", "Qtheta", "Qc", "x")
    report = check_unbiased(_deltas(problem, state, sched, fields), _expected(problem, state, sched, fields),
                            n_samples=20_000, alpha=1e-3, seed=11)
    assert report, report


@pytest.mark.parametrize("natural", [False, True])
def test_actor_directions_are_unbiased_with_fixed_critics(natural):
    """With beta = 0 the actors read fixed critics; their mean change is the expected step."""
    problem = small_problem(S=4, A=2)
    state = random_state(problem, 4)
    sched = schedules(1, beta=0.0)
    fields = ("phi", "theta")
    estimate = _deltas(problem, state, sched, fields, natural)
    report = check_unbiased(estimate, _expected(problem, state, sched, fields, natural=natural),
                            n_samples=20_000, alpha=1e-3, seed=12)
    assert report, report
    # and the expectation of a different step (critics off by 50%) is rejected: the check has power
    wrong = state.copy()
    wrong.Qtheta *= 1.5
    wrong.Qphi *= 1.5
    biased = _expected(problem, wrong, sched, fields, natural=natural)
    assert not check_unbiased(estimate, biased, n_samples=20_000, alpha=1e-3, seed=12)


# --------------------------------------------------------------------------- configuration


def test_bad_configurations_raise():
    with pytest.raises(ValueError, match="steps must be >= 1"):
        ActorCriticConfig(steps=0)
    with pytest.raises(ValueError, match="tau must be >= 0"):
        ActorCriticConfig(steps=10, tau=-0.1)
    with pytest.raises(ValueError, match="lam must be > 0"):
        ActorCriticConfig(steps=10, lam=0.0)
    with pytest.raises(ValueError, match="step size zeta must be > 0"):
        ActorCriticConfig(steps=10, zeta=0.0)
    with pytest.raises(TypeError, match="lam must be a number or a schedule"):
        ActorCriticConfig(steps=10, lam="big")
    with pytest.raises(ValueError, match="sampling must be one of"):
        ActorCriticConfig(steps=10, sampling="mcmc")
    with pytest.raises(ValueError, match="linearize_every must be >= 1"):
        ActorCriticConfig(steps=10, linearize_every=0)
    with pytest.raises(ValueError, match="critic_init must be a finite number"):
        ActorCriticConfig(steps=10, critic_init=float("nan"))
    with pytest.raises(ValueError, match="fd_step must be a finite number"):
        ActorCriticConfig(steps=10, fd_step=float("inf"))


def test_numpy_scalars_are_numbers():
    cfg = ActorCriticConfig(steps=np.int64(10), fd_step=np.float32(0.1), critic_init=np.int64(1), tau=np.float64(0.2))
    assert cfg.steps == 10 and cfg.critic_init == 1.0 and isinstance(cfg.fd_step, float)
    assert cfg.tau(3) == pytest.approx(0.2)


def test_broken_time_scale_ordering_is_an_error_at_resolve_that_says_what_to_change():
    """The ordering b >= a >= z of the unit-free rates (eb.defaults) is checked when the run
    starts, against the problem's scales."""
    p = small_problem()
    H = 1 / (1 - p.mdp.gamma)
    with pytest.raises(ValueError, match=r"ordering broken .*alpha H tau \(actors\).*lower alpha or raise beta"):
        ActorCriticConfig(steps=10, tau=0.3, alpha=1.0 / (0.3 * H), beta=0.5).resolve(p)
    with pytest.raises(ValueError, match=r"ordering broken .*zeta lam H G.*lower zeta"):
        ActorCriticConfig(steps=10, zeta=10.0).resolve(p)
    with pytest.raises(ValueError, match="ordering broken"):
        eb.run(p, ActorCriticConfig(steps=10, zeta=10.0))


def _rescaled_x(problem, c):
    """The same problem in the coordinates x' = c x: features Psi / c, box and x0 times c,
    kappa / c^2 and center times c (so that f and r are unchanged)."""
    obj = problem.objective
    center = None if obj.center is None else np.asarray(obj.center) * c
    return BilevelProblem(problem.mdp, eb.LinearReward(np.asarray(problem.reward.Psi) / c),
                          eb.OccupancyObjective(problem.mdp, obj.cost, kappa=obj.kappa / c**2, center=center),
                          np.asarray(problem.x0) * c, bounds=(problem.lo * c, problem.hi * c))


@pytest.mark.parametrize("c", [0.125, 8.0])
def test_ordering_check_does_not_change_when_x_is_rescaled(c):
    """A configuration accepted (or refused) on a problem is accepted (or refused) on the same
    problem in rescaled x, with its zeta rescaled by c^2 (the step of x' = c x)."""
    p = small_problem()
    q = _rescaled_x(p, c)
    for zeta, ok in ((1e-3, True), (10.0, False)):
        for problem, z in ((p, zeta), (q, zeta * c**2)):
            cfg = ActorCriticConfig(steps=1000, tau=0.3, lam=2.0, alpha=0.05, beta=0.5, zeta=z)
            if ok:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", ScheduleWarning)
                    cfg.resolve(problem)
            else:
                with pytest.raises(ValueError, match="ordering broken"):
                    cfg.resolve(problem)


@pytest.mark.parametrize("kw,condition", [
    (dict(lam=10.0), "lam_k -> infinity"),
    (dict(alpha=eb.schedules.power(0.01, 0.02)), "alpha / beta -> 0"),
    (dict(zeta=eb.schedules.power(1e-5, 0.05)), "zeta lam / alpha -> 0"),
    (dict(tau=lambda k: 0.5 * np.exp(-0.002 * np.asarray(k))), "tau decays too fast"),
])
def test_asymptotic_violations_warn_and_say_which(kw, condition):
    with pytest.warns(ScheduleWarning, match=condition):
        ActorCriticConfig(steps=1000, **kw).resolve(small_problem())


def test_default_schedules_satisfy_every_condition():
    with warnings.catch_warnings():
        warnings.simplefilter("error", ScheduleWarning)
        ActorCriticConfig(steps=10**6).resolve(small_problem())


# --------------------------------------------------------------------------- runs


@pytest.mark.parametrize("sampling", ["iid", "markov"])
def test_with_x_fixed_the_critics_and_phi_converge(sampling):
    """x fixed (a one-point box), fixed tau: residual_phi and the phi critic error fall by
    more than 100x from the start, and the theta residual too (fixed seed)."""
    problem = small_problem(fixed_x=True)
    cfg = ActorCriticConfig(steps=200_000, tau=0.3, lam=10.0, alpha=eb.schedules.power(0.3, 0.3),
                            beta=eb.schedules.power(0.5, 0.2), zeta=1e-3, sampling=sampling, log_every=50_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScheduleWarning)  # fixed tau and lam, on purpose
        tr = eb.run(problem, cfg, seed=0)
    for name in ("residual_phi", "critic_error_phi", "critic_error_theta", "residual_theta"):
        assert tr[name][-1] < tr[name][0] / 100, (name, tr[name])
    np.testing.assert_array_equal(tr["x"], np.tile(problem.x0, (len(tr), 1)))


def test_a_seed_reproduces_a_run_bit_for_bit_and_two_seeds_differ():
    problem = small_problem("gaussian")
    cfg = ActorCriticConfig(steps=3000, log_every=1000)
    a, b, c = (eb.run(problem, cfg, seed=s) for s in (5, 5, 6))
    for name in a.columns:
        if name != "time":
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    assert not np.array_equal(a["x"], c["x"])


def test_exact_mode_keeps_the_pl_ratio_above_the_mei_bound():
    problem = small_problem()
    cfg = ActorCriticConfig(steps=2000, tau=eb.schedules.power(0.5, 0.1), log_every=100, exact=True)
    tr = eb.run(problem, cfg, seed=0)
    ok = np.isfinite(tr["pl_ratio"])
    assert ok.sum() >= 10
    assert np.all(tr["pl_ratio"][ok] >= tr["pl_bound"][ok])


def test_entropy_bias_lies_within_its_bound_along_a_run():
    problem = small_problem("gaussian")
    tr = eb.run(problem, ActorCriticConfig(steps=5000, log_every=500), seed=1)
    assert np.all(tr["entropy_bias"] >= -1e-9)
    assert np.all(tr["entropy_bias"] <= tr["entropy_bound"] + 1e-9)


def test_trace_round_trip_of_a_run(tmp_path):
    tr = eb.run(small_problem(), ActorCriticConfig(steps=500, log_every=100), seed=2)
    tr.save(tmp_path / "run")
    back = eb.Trace.load(tmp_path / "run")
    for name in tr.columns:
        np.testing.assert_array_equal(back[name], tr[name])
    assert back.meta["seed"] == 2 and back.meta["config"]["method"] == "actor_critic"


def test_exact_hypergradient_descent_decreases_phi_tau():
    problem = small_problem()
    cfg = ActorCriticConfig(steps=100, tau=0.3, zeta=0.02, alpha=0.1, beta=0.2, log_every=10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScheduleWarning)
        tr = eb.run(problem, cfg, method="hypergradient")
    assert np.all(np.diff(tr["phi_tau"]) <= 1e-12)
    assert tr["phi_tau"][-1] < tr["phi_tau"][0]


class SquaredReward:
    """r_x = Psi @ x^2: a reward of the protocol that the compiled loop does not know."""

    def __init__(self, Psi):
        self.Psi = Psi

    def value(self, x):
        return self.Psi @ (np.asarray(x) ** 2)

    def jacobian(self, x):
        return self.Psi * (2 * np.asarray(x))


def test_unsupported_models_are_refused_before_running():
    p = small_problem()
    reward = SquaredReward(np.ones((5, 3, 2)))
    with pytest.raises(ValueError, match="compiled actor-critic needs a LinearReward"):
        eb.run(BilevelProblem(p.mdp, reward, p.objective, p.x0), ActorCriticConfig(steps=10))
    with pytest.raises(ValueError, match="method must be one of"):
        eb.run(p, ActorCriticConfig(steps=10), method="nested")


def test_nested_penalty_and_hypergradient_descent_reach_nearby_points():
    """Both oracle methods converge (fixed tau and lam); their limits differ by O(1/lam):
    the stationary point of ell_lam is within C/lam of that of Phi_tau."""
    problem = small_problem()
    common = dict(steps=400, tau=0.3, alpha=0.2, beta=0.5, zeta=0.5, log_every=400)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScheduleWarning)
        x_hg = eb.run(problem, ActorCriticConfig(lam=1.0, **common), method="hypergradient")["x"][-1]
        gaps = [np.linalg.norm(eb.run(problem, ActorCriticConfig(lam=lam, **common), method="nested_penalty")["x"][-1]
                               - x_hg) for lam in (10.0, 100.0)]
    assert gaps[1] < gaps[0] / 5


def test_partial_sgd_ignores_the_lower_level():
    """Its upper step is grad_x f = kappa (x - center) only: x follows the deterministic
    recursion x <- x - zeta kappa (x - center), whatever the samples."""
    problem = small_problem()
    cfg = ActorCriticConfig(steps=50, alpha=0.05, beta=0.5, zeta=0.1, log_every=50, diagnostics=False)
    x = eb.run(problem, cfg, seed=3, method="partial_sgd")["x"][-1]
    expect = problem.x0.copy()
    center = problem.objective.center
    for k in range(50):
        expect = problem.project(expect - 0.1 * 0.3 * (expect - center))
    np.testing.assert_allclose(x, expect, rtol=1e-12)


def test_exact_mode_converges_to_the_hypergradient_stationary_point_within_order_one_over_lam():
    """exact=True, fixed tau, constant steps, natural actors: the limit x is within C/lam of the
    point exact hyper-gradient descent on Phi_tau reaches (gap at lam = 100 below a third of
    the gap at lam = 10)."""
    problem = small_problem()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScheduleWarning)
        x_hg = eb.run(problem, ActorCriticConfig(steps=400, tau=0.3, lam=1.0, alpha=0.2, beta=0.5, zeta=0.5,
                                                 log_every=400), method="hypergradient")["x"][-1]
        gaps = []
        for lam in (10.0, 100.0):
            cfg = ActorCriticConfig(steps=4000, tau=0.3, lam=lam, alpha=0.6, beta=1.0, zeta=0.5 / lam, exact=True,
                                    actor="npg", log_every=4000, diagnostics=False)
            gaps.append(np.linalg.norm(eb.run(problem, cfg)["x"][-1] - x_hg))
    assert gaps[1] < gaps[0] / 3
    assert gaps[0] < 0.1


@pytest.mark.parametrize("stop_after,objective", [(1, "occupancy"), (3, "occupancy"), (2, "matching")])
def test_an_interrupted_run_resumes_from_its_checkpoint_to_the_same_trace(tmp_path, monkeypatch, stop_after,
                                                                          objective):
    """Interrupt (KeyboardInterrupt at a logging point) and run again with the same
    checkpoint: the trace equals the uninterrupted one in every column but time (for a
    linearized objective, also when the logging point falls between linearizations)."""
    from exactbilevel import diagnostics

    problem = small_problem("gaussian", objective=objective)
    cfg = ActorCriticConfig(steps=5000, log_every=1000, linearize_every=700)
    full = eb.run(problem, cfg, seed=4)
    ckpt = tmp_path / "run.ckpt.npz"
    original = diagnostics.Diagnostics.__call__
    calls = {"n": 0}

    def flaky(self, *args):
        calls["n"] += 1
        if calls["n"] == stop_after + 1:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(diagnostics.Diagnostics, "__call__", flaky)
    with pytest.raises(KeyboardInterrupt):
        eb.run(problem, cfg, seed=4, checkpoint=ckpt)
    assert ckpt.exists()
    monkeypatch.setattr(diagnostics.Diagnostics, "__call__", original)
    resumed = eb.run(problem, cfg, seed=4, checkpoint=ckpt)
    assert not ckpt.exists()
    for name in full.columns:
        if name != "time":
            np.testing.assert_array_equal(resumed[name], full[name], err_msg=name)
    with pytest.raises(ValueError, match="belongs to another run"):
        monkeypatch.setattr(diagnostics.Diagnostics, "__call__", flaky)
        calls["n"] = 0
        with pytest.raises(KeyboardInterrupt):
            eb.run(problem, cfg, seed=4, checkpoint=ckpt)
        monkeypatch.setattr(diagnostics.Diagnostics, "__call__", original)
        eb.run(problem, cfg, seed=5, checkpoint=ckpt)


def test_finite_differences_of_the_learned_phi_point_along_the_hypergradient():
    """One finite-difference step from a fresh learner: the mean direction over 16 seeds
    (x1 - x0 = -zeta g, unprojected) agrees with the exact grad Phi_tau in direction
    (cosine > 0.9) and size (within a factor 2); every learner transition is counted."""
    problem = small_problem()
    tau, zeta = 0.3, 1e-3
    cfg = ActorCriticConfig(steps=1, tau=tau, lam=10.0, alpha=0.3, beta=0.5, zeta=zeta, fd_step=0.2,
                            fd_inner=30_000, log_every=1, diagnostics=False)
    gs = []
    for seed in range(16):
        tr = eb.run(problem, cfg, seed=seed, method="finite_differences")
        gs.append((tr["x"][0] - tr["x"][-1]) / zeta)
        assert tr["samples"][-1] >= 5 * 30_000  # (2 d + 1) learner runs of fd_inner steps
    g, exact = np.mean(gs, axis=0), eb.hypergradient(problem.mdp, problem.reward, problem.objective, problem.x0, tau)
    assert g @ exact / (np.linalg.norm(g) * np.linalg.norm(exact)) > 0.9
    assert 0.5 < np.linalg.norm(g) / np.linalg.norm(exact) < 2.0


def test_finite_differences_config_is_checked():
    with pytest.raises(ValueError, match="fd_step must be a number > 0"):
        ActorCriticConfig(steps=10, fd_step=0.0)
    with pytest.raises(ValueError, match="fd_inner must be >= 1"):
        ActorCriticConfig(steps=10, fd_inner=0)


@pytest.mark.parametrize("objective", ["occupancy", "matching"])
def test_the_logging_points_do_not_change_the_run(objective):
    """The loop is split into blocks at logging points; the state it carries between
    them (log-sum-exp of the logits included) is what one unsplit run would carry."""
    problem = small_problem("gaussian", objective=objective)
    ends = [eb.run(problem, ActorCriticConfig(steps=3000, log_every=every, diagnostics=False, linearize_every=500),
                   seed=9) for every in (3000, 700)]
    for name in ("k", "samples", "x"):
        np.testing.assert_array_equal(ends[0][name][-1], ends[1][name][-1], err_msg=name)


@pytest.mark.parametrize("method", ["actor_critic", "partial_sgd"])
def test_a_linearized_objective_is_refreshed_every_linearize_every_steps(monkeypatch, method):
    """linearize is called at k = 0, L, 2L, ... (not at the logging points), at the state
    of that step, with the cost and grad_x f of the objective there (grad_x f at pi_phi for
    partial SGD); the unbiasedness test checks the step that uses them."""
    from exactbilevel import actor_critic

    problem = small_problem(objective="matching")
    seen = []
    original = actor_critic.linearize

    def spy(problem_, model, state, partial=False):
        original(problem_, model, state, partial)
        pi = eb.softmax_policy(state.phi if partial else state.theta)
        np.testing.assert_array_equal(model["gx0"], problem.objective.grad_x(state.x, pi))
        np.testing.assert_array_equal(model["cost"],
                                      problem.objective.occupancy_cost(state.x, eb.softmax_policy(state.theta)))
        seen.append(state.k)

    monkeypatch.setattr(actor_critic, "linearize", spy)
    eb.run(problem, ActorCriticConfig(steps=2000, log_every=300, linearize_every=700, diagnostics=False),
           method=method)
    assert seen == [0, 700, 1400]


def test_rlhf_fits_x_to_the_reference_policy_then_learns_the_lower_level():
    """x = argmin f(x, pi_0) (projected gradient ~ 0 there, by finite differences of f), it
    never moves again, and the learner's residual falls."""
    problem = small_problem(objective="matching")
    cfg = ActorCriticConfig(steps=20_000, tau=0.3, alpha=0.3, beta=0.5, zeta=1e-3, log_every=5000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScheduleWarning)
        tr = eb.run(problem, cfg, seed=0, method="rlhf")
    x = tr["x"][0]
    assert np.all(tr["x"] == x)
    pi0 = np.full((problem.mdp.S, problem.mdp.A), 1 / problem.mdp.A)
    h = 1e-5
    fd = np.array([(problem.objective.value(x + h * e, pi0) - problem.objective.value(x - h * e, pi0)) / (2 * h)
                   for e in np.eye(2)])
    assert np.linalg.norm(x - problem.project(x - fd)) < 1e-6
    assert tr["residual_phi"][-1] < 0.1 * tr["residual_phi"][0]


def test_metrics_are_logged_beside_the_diagnostics():
    problem = small_problem()
    cfg = ActorCriticConfig(steps=2000, log_every=500)
    tr = eb.run(problem, cfg, seed=3, metrics={"smallest": lambda st: eb.softmax_policy(st.phi).min(),
                                               "x2": lambda st: 2 * st.x})
    np.testing.assert_allclose(tr["smallest"], tr["min_pi"], rtol=1e-15)
    np.testing.assert_array_equal(tr["x2"], 2 * tr["x"])
    with pytest.raises(ValueError, match="metric name 'x'"):
        eb.run(problem, cfg, metrics={"x": lambda st: 0.0})
    with pytest.raises(TypeError, match="must be callable"):
        eb.run(problem, cfg, metrics={"m": 3})


def test_critic_init_starts_the_soft_critics_there():
    problem = small_problem()
    tr = eb.run(problem, ActorCriticConfig(steps=10, tau=0.5, log_every=10, critic_init=2.5), seed=0)
    # at k = 0 the critics are 2.5 everywhere; the exact Q of the uniform policy is not
    _, Q = eb.evaluate(problem.mdp, problem.reward.value(problem.x0), np.full((5, 3), 1 / 3), tau=0.5)
    _, nu = eb.occupancy(problem.mdp, np.full((5, 3), 1 / 3))
    assert tr["critic_error_phi"][0] == pytest.approx(float(np.sum(nu * (2.5 - Q) ** 2)), rel=1e-9)


def _not_a_checkpoint_text(path):
    path.write_text("hello")


def _not_a_checkpoint_npz(path):
    np.savez(path, other=np.zeros(3))


def _checkpoint_with_bad_meta(path):
    np.savez(path, meta=np.array("{not json"))


def _not_a_checkpoint_npy(path):
    with open(path, "wb") as fh:
        np.save(fh, np.zeros(3))


@pytest.mark.parametrize("write,reason", [
    (_not_a_checkpoint_text, "not a readable .npz archive"),
    (lambda p: p.write_bytes(b""), "not a readable .npz archive"),
    (_not_a_checkpoint_npy, "single .npy array"),
    (_not_a_checkpoint_npz, "no readable meta entry"),
    (_checkpoint_with_bad_meta, "no readable meta entry"),
])
def test_a_file_that_is_not_a_checkpoint_is_named(tmp_path, write, reason):
    problem = small_problem()
    cfg = ActorCriticConfig(steps=10, log_every=5, diagnostics=False)
    ckpt = tmp_path / "run.ckpt.npz"
    write(ckpt)
    before = ckpt.read_bytes()
    with pytest.raises(ValueError) as exc:
        eb.run(problem, cfg, seed=0, checkpoint=ckpt)
    message = str(exc.value)
    assert str(ckpt) in message and reason in message and "delete it" in message, message
    assert "pickled" not in message
    assert ckpt.read_bytes() == before  # the user's file is left as it was


@pytest.mark.parametrize("returned,error,match", [
    ("0.1", TypeError, "got str '0.1' at k = 0"),
    (None, TypeError, "got NoneType None"),
    ([0.1, 0.2], TypeError, "got list"),
    (1 + 2j, TypeError, "got complex"),
    (True, TypeError, "got bool"),
    (float("nan"), ValueError, "gave nan at step k = 0"),
])
def test_a_schedule_returning_a_non_number_is_named(returned, error, match):
    from exactbilevel import schedules

    with pytest.raises(error, match=match) as exc:
        schedules.evaluate("alpha", lambda k: returned, np.arange(4))
    assert "schedule alpha" in str(exc.value)


def test_schedule_evaluate_agrees_with_a_loop_for_scalar_and_vectorized_callables():
    from exactbilevel import schedules

    ks = np.arange(7)
    expect = np.array([0.5 * (k + 1) ** -0.3 for k in range(7)])  # a plain Python loop
    scalar_only = lambda k: 0.5 * (k + 1) ** -0.3 if isinstance(k, int) else "no arrays"  # noqa: E731
    for fn in (schedules.power(0.5, 0.3), scalar_only):
        got = schedules.evaluate("zeta", fn, ks)
        assert got.dtype == np.float64 and got.shape == ks.shape
        np.testing.assert_allclose(got, expect, rtol=1e-15)
    np.testing.assert_array_equal(schedules.evaluate("zeta", lambda k: np.float32(2.0), ks), np.full(7, 2.0))
