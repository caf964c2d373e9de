"""The regularized single-loop actor-critic of docs/theory.rst, "The algorithm" (Zeng, Bhatt, Ganesh, Koppel,
arXiv 2601.16399), with its variants as parameters of one configuration.

State: x; logits theta (penalized policy) and phi (tracks pi*_tau(x)); soft-Q
critics Qtheta, Qphi and the cost critic Qc.  Step k, with tau_k, lam_k and the
step sizes beta_k (critics) >= alpha_k (actors) >= zeta_k (upper)::

    (s, a, s', a') ~ d^{pi_phi} x pi_phi x P x pi_phi;  (s~, a~, s~', a~') likewise under pi_theta
    Qphi(s,a)    += beta [ r(s,a) + gamma (Qphi(s',a') - tau log pi_phi(a'|s')) - Qphi(s,a) ]
    Qtheta(s~,a~) += beta [ r(s~,a~) + gamma (Qtheta(s~',a~') - tau log pi_theta(a~'|s~')) - Qtheta(s~,a~) ]
    Qc(s~,a~)    += beta [ c(s~,a~) + gamma Qc(s~',a~') - Qc(s~,a~) ]
    phi(s, .)    += alpha / (1-gamma) (e_a - pi_phi(.|s)) Ahat_phi(s, a)
    theta(s~, .) += alpha (e_a~ - pi_theta(.|s~)) [ Ahat_theta(s~,a~) / (1-gamma) - Ahat_c(s~,a~) / lam ]
    x = Proj_X( x - zeta [ grad_x f(x) + lam / (1-gamma) (grad_x r(s,a) - grad_x r(s~,a~)) ] )

with ``Ahat(s, a) = Qhat(s, a) - tau log pi(a|s) - sum_b pi(b|s) (Qhat(s, b) - tau log pi(b|s))``.

Choices of this package (docs/theory.rst, "The algorithm"; the paper's abstract leaves them open):

* order within a step: critic TD errors at the current critics, critic updates,
  actor directions from the *updated* critics, actor updates, then the upper
  step with the reward gradients at the step's starting x;
* batches: B tuples per policy per step, every update averaged over them;
* natural actor (``actor="npg"``): the whole row moves,
  ``phi(s, .) += alpha/(1-gamma) Ahat_phi(s, .)`` and likewise for theta;
* Markov sampling: one trajectory per policy of the restart chain (next state
  s' with probability gamma, else a fresh draw from rho), whose stationary law
  is d^pi; i.i.d. sampling draws s ~ d^pi by geometric restarts;
* ``exact=True``: every update replaced by its expectation over the samples
  (:func:`expected_step`), in the same order;
* the reward must be linear, tabular or the Gaussian bump, so that the loop is
  compiled;
* the objective: for an occupancy-linear one, ``f = <nu, c> + kappa/2 |x - center|^2``
  (:class:`~exactbilevel.OccupancyObjective`), the cost critic learns ``Q_c`` and
  the upper step uses ``grad_x f = kappa (x - center)`` at every step.  Any other
  objective is linearized every ``linearize_every`` steps at the current
  (x, pi_theta): ``c = occupancy_cost(x, pi_theta)`` (:func:`~exactbilevel.objectives.occupancy_cost`:
  the objective's own, or derived from ``grad_pi``) and ``g = grad_x f(x, pi_theta)`` (pi_phi
  for partial SGD), both held until the next linearization point; the cost
  critic learns ``Q_c`` of that c, whose policy gradient equals grad_theta f at
  the linearization point (the objective itself is evaluated exactly, as in
  docs/theory.rst, "Happy tweets").  ``exact=True`` linearizes at every step.

Schedules are pure callables of k (:mod:`exactbilevel.schedules`); a number is a constant.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace

import numpy as np

from . import _actor_critic_kernels as K
from . import schedules as sch
from ._validation import _real_scalar, check_choice, check_int
from .defaults import SCHEDULE_NAMES, default_schedules, problem_scales, time_scale_rates
from .evaluation import policy_system
from .gradients import _next_expectation, log_softmax, softmax_policy
from .objectives import OccupancyObjective, occupancy_cost
from .problem import BilevelProblem
from .rewards import GaussianGoalReward, LinearReward, TabularReward

__all__ = ["ActorCriticConfig", "Resolution", "ScheduleWarning", "ActorCriticState", "expected_step", "SAMPLING", "ACTORS"]

SAMPLING = ("iid", "markov")

#: Largest steps, batch, log_every, logs_per_decade, fd_inner and linearize_every: 2^53, the
#: integers float64 holds exactly (the schedules and logging points are computed in float64,
#: the compiled loop counts in int64).
MAX_COUNT = 2**53
ACTORS = ("pg", "npg")


class ScheduleWarning(UserWarning):
    """A schedule violates an asymptotic condition of docs/theory.rst, "The algorithm" without being invalid."""


@dataclass(frozen=True)
class ActorCriticConfig:
    """Configuration of :func:`exactbilevel.run` for the section 4 algorithm.

    Schedules (numbers are constants; callables of k, e.g. ``eb.schedules.power(c0, p)``):
    ``tau`` (entropy weight, >= 0), ``lam`` (penalty, > 0), ``alpha`` (actors),
    ``beta`` (critics), ``zeta`` (upper).  Each left at None is derived from the problem's
    scales when the run starts (:mod:`exactbilevel.defaults`: formulas and reasons);
    :meth:`resolve` shows the numbers before a run, and the trace's ``meta["resolved"]``
    records them.  A schedule the user passes is used exactly as given.

    ``steps`` >= 1; ``log_every`` (default steps // 100, at least 1) sets the logging
    points; ``sampling`` "iid" or "markov"; ``batch`` >= 1; ``actor`` "npg" (natural,
    the default: a choice, see :mod:`exactbilevel.defaults`) or "pg" (softmax policy
    gradient); ``exact`` replaces sampled updates by their expectations; ``diagnostics``
    False logs only k, samples, x, tau, lam and time.  ``linearize_every`` (>= 1): steps
    between the linearizations of an objective that is not occupancy-linear (module
    docstring; a choice).  ``critic_init``: the starting value of the soft critics Qphi and
    Qtheta (a choice); None gives ``(max r_x0 + tau_0 log A) / (1 - gamma)``, an upper
    bound of every soft Q at x0 (optimistic: critics that start below the true values make
    the actions not yet sampled look bad, and the actors learn to avoid them;
    :mod:`exactbilevel.defaults`).
    ``fd_step`` (> 0) and ``fd_inner`` (>= 1) are the difference step h and the learner
    steps per estimate of the finite-difference baseline (``method="finite_differences"``).

    Logging points (:meth:`log_steps`): ``log_spacing="linear"`` (default) logs every
    ``log_every`` steps; ``"geometric"`` logs about ``logs_per_decade`` (>= 1, default 20)
    points a decade, k = round(10^(j / logs_per_decade)) deduplicated, with k = 0 and
    k = steps always included (151 points for 10^8 steps at 20 a decade); ``log_every``
    then plays no part.  The diagnostics of one logging point are one set of exact solves at
    the iterate; on one core they cost about as much as 3 * 10^3 i.i.d. (6 * 10^3 Markov)
    loop steps at S = 20, A = 4 and 5 * 10^3 (1.3 * 10^4) at S = 100, A = 5 (the 10 x 10
    GridWorld), growing with S as the exact solves do.  In a sampled run they run beside
    the loop in a background thread, so with a second core a run takes about the longer of
    the loop and all its points' diagnostics (151 points at S = 100: about 8 * 10^5 steps'
    worth); with a checkpoint every point waits for its diagnostics, which adds them.

    Invalid (ValueError, here): steps <= 0, a count above ``MAX_COUNT`` = 2^53, tau_k < 0,
    lam_k <= 0, a step size <= 0 on the run.  Checked when the run starts (:meth:`resolve`), in unit-free form
    (:func:`exactbilevel.defaults.time_scale_rates`: b = beta, a = alpha H tau,
    z = zeta lam H G sqrt(2) / L): the time-scale ordering b_k >= a_k >= z_k on the run
    (ValueError that says which schedule to change), and the conditions that hold only
    asymptotically (alpha/beta -> 0, zeta lam / alpha -> 0,
    ``|tau_{k+1} - tau_k| / (alpha_k tau_k) -> 0``, lam_k -> infinity, tau_k -> 0), checked
    numerically between k = steps/10 and k = steps (ratios, so unit-free); a violation is a
    :class:`ScheduleWarning` that names it.
    """

    steps: int
    tau: object = None
    lam: object = None
    alpha: object = None
    beta: object = None
    zeta: object = None
    sampling: str = "iid"
    batch: int = 1
    actor: str = "npg"
    exact: bool = False
    log_every: int | None = None
    log_spacing: str = "linear"
    logs_per_decade: int = 20
    diagnostics: bool = True
    fd_step: float = 0.1
    fd_inner: int = 1000
    linearize_every: int = 100
    critic_init: float | None = None

    def __post_init__(self):
        steps = check_int("steps", self.steps, minimum=1, maximum=MAX_COUNT)
        object.__setattr__(self, "steps", steps)
        for name in SCHEDULE_NAMES:
            if getattr(self, name) is not None:
                object.__setattr__(self, name, sch.as_schedule(name, getattr(self, name)))
        check_choice("sampling", self.sampling, SAMPLING)
        check_choice("actor", self.actor, ACTORS)
        object.__setattr__(self, "batch", check_int("batch", self.batch, minimum=1, maximum=MAX_COUNT))
        log_every = (max(1, steps // 100) if self.log_every is None
                     else check_int("log_every", self.log_every, minimum=1, maximum=MAX_COUNT))
        object.__setattr__(self, "log_every", log_every)
        check_choice("log_spacing", self.log_spacing, ("linear", "geometric"), "'linear' or 'geometric'")
        for name in ("logs_per_decade", "fd_inner", "linearize_every"):
            object.__setattr__(self, name, check_int(name, getattr(self, name), minimum=1, maximum=MAX_COUNT))
        object.__setattr__(self, "fd_step", _positive_number("fd_step", self.fd_step))
        if self.critic_init is not None:
            object.__setattr__(self, "critic_init", _finite_number("critic_init", self.critic_init))
        if not isinstance(self.exact, (bool, np.bool_)) or not isinstance(self.diagnostics, (bool, np.bool_)):
            raise TypeError("exact and diagnostics must be True or False")
        object.__setattr__(self, "exact", bool(self.exact))
        object.__setattr__(self, "diagnostics", bool(self.diagnostics))
        self._check_signs()

    def _check_ks(self):
        n = self.steps
        return np.unique(np.concatenate([[0], np.geomspace(1, n, 60).astype(np.int64) - 1, [n - 1]]))

    def schedule_values(self, ks):
        """``dict name -> values`` of the five schedules at the steps ``ks`` (a resolved
        configuration: see :meth:`resolve`)."""
        missing = [n for n in SCHEDULE_NAMES if getattr(self, n) is None]
        if missing:
            raise ValueError(f"schedules {missing} are not set: call config.resolve(problem).config first")
        return {n: sch.evaluate(n, getattr(self, n), ks) for n in SCHEDULE_NAMES}

    def _check_signs(self):
        ks = self._check_ks()
        given = {n: sch.evaluate(n, getattr(self, n), ks) for n in SCHEDULE_NAMES if getattr(self, n) is not None}
        if "tau" in given and np.any(given["tau"] < 0):
            v = given["tau"]
            raise ValueError(f"tau must be >= 0 at every step; tau_0 = {v[0]} (min {v.min()})")
        if "lam" in given and np.any(given["lam"] <= 0):
            v = given["lam"]
            raise ValueError(f"lam must be > 0 at every step; lam_0 = {v[0]} (min {v.min()})")
        for name in ("alpha", "beta", "zeta"):
            if name in given:
                bad = np.flatnonzero(given[name] <= 0)
                if bad.size:
                    raise ValueError(f"step size {name} must be > 0; {name}_k = {given[name][bad[0]]} "
                                     f"at k = {ks[bad[0]]}")

    def resolve(self, problem, method="actor_critic"):
        """The configuration this run would use on ``problem``: a :class:`Resolution` with every
        schedule set (the user's, or derived from :func:`exactbilevel.defaults.problem_scales`),
        after the unit-free checks of the class docstring (ValueError for a broken ordering,
        :class:`ScheduleWarning` for an asymptotic condition).  ``method``: the oracle methods
        ("hypergradient", "nested_penalty") use exact updates, hence the exact-mode zeta, and
        solve the lower level at every step, so no time-scale ordering applies to them; for
        "finite_differences" and "rlhf", whose upper step is not ghat, only b >= a is checked."""
        if not isinstance(problem, BilevelProblem):
            raise TypeError(f"problem must be an eb.BilevelProblem, got {type(problem).__name__}")
        scales = problem_scales(problem)
        given = {n: getattr(self, n) for n in SCHEDULE_NAMES + ("critic_init",)}
        exact = self.exact or method in ("hypergradient", "nested_penalty")
        values = default_schedules(scales, given, exact=exact, batch=self.batch)
        config = replace(self, **values)
        defaulted = tuple(n for n in SCHEDULE_NAMES + ("critic_init",) if getattr(self, n) is None)
        config._check_time_scales(scales, exact, oracle=method in ("hypergradient", "nested_penalty"),
                                  upper=method in ("actor_critic", "partial_sgd"))
        return Resolution(config=config, scales=scales, defaulted=defaulted, exact=exact)

    def _check_time_scales(self, scales, exact, oracle=False, upper=True):
        if oracle:  # exact lower level at every step: no critics or actors to order against
            return
        ks = self._check_ks()
        v = self.schedule_values(ks)
        rates = time_scale_rates(scales, v, exact)
        if not upper:  # finite differences, rlhf: the upper step is not ghat (or x is fixed)
            rates["z"] = np.zeros_like(rates["z"])
        what = {"b": "beta (critics)", "a": "alpha H tau (actors)", "z": "zeta lam H G sqrt(2) / L (upper)"}
        fix = {("b", "a"): "lower alpha or raise beta", ("a", "z"): "lower zeta (or lam), or raise alpha"}
        for fast, slow in (("b", "a"), ("a", "z")):
            bad = np.flatnonzero(rates[fast] < rates[slow] * (1 - 1e-12))
            if bad.size:
                i = bad[0]
                raise ValueError(
                    f"time-scale ordering broken at k = {int(ks[i])}: {what[fast]} = {rates[fast][i]:.3g} < "
                    f"{what[slow]} = {rates[slow][i]:.3g} (unit-free rates, see eb.defaults); {fix[(fast, slow)]}"
                )
        n = self.steps
        if n < 20:
            return
        a, b = max(1, n // 10) - 1, n - 1
        w = self.schedule_values(np.array([a, b, b + 1]))
        tau_a, tau_b, tau_next = w["tau"]
        checks = [
            ("alpha / beta -> 0", w["alpha"] / w["beta"], "let alpha decay faster than beta"),
            ("zeta lam / alpha -> 0", w["zeta"] * w["lam"] / w["alpha"], "let zeta decay faster"),
        ]
        for name, ratio, remedy in checks:
            if not ratio[1] < 0.999 * ratio[0]:
                warnings.warn(f"schedule condition {name} fails: the ratio does not decrease "
                              f"({ratio[0]:.3g} at k = {a}, {ratio[1]:.3g} at k = {b}); {remedy}",
                              ScheduleWarning, stacklevel=4)
        if not w["lam"][1] > 1.001 * w["lam"][0]:
            warnings.warn("schedule condition lam_k -> infinity fails (fixed lam): the penalty bias "
                          "O(1/lam) does not vanish", ScheduleWarning, stacklevel=4)
        if tau_b > 0:
            drift = abs(tau_next - tau_b) / (w["alpha"][1] * tau_b)
            drift_a = abs(sch.evaluate("tau", self.tau, [a + 1])[0] - tau_a) / (w["alpha"][0] * max(tau_a, 1e-300))
            if drift > 0 and not drift < drift_a:
                warnings.warn("schedule condition |tau_{k+1} - tau_k| / (alpha_k tau_k) -> 0 fails: tau "
                              "decays too fast for the actors to follow", ScheduleWarning, stacklevel=4)
            if not tau_b < 0.999 * tau_a:
                warnings.warn("schedule condition tau_k -> 0 fails (fixed tau): the run converges for "
                              "Phi_tau, not Phi_0", ScheduleWarning, stacklevel=4)

    def as_dict(self):
        """JSON-friendly: schedules by their repr (None: derived from the problem when the run starts)."""
        out = asdict(self)
        for name in SCHEDULE_NAMES:
            out[name] = None if getattr(self, name) is None else repr(getattr(self, name))
        return out

    def log_steps(self):
        """The logging points: the sorted int64 array of the steps k at which a row is logged.

        ``"linear"``: k = 0, log_every, 2 log_every, ... and k = steps.  ``"geometric"``:
        k = 0, k = steps and the integers ``round(10 ** (j / logs_per_decade))``, j = 0, 1,
        ..., that are <= steps, without repeats (every integer while they are closer than 1,
        then about ``logs_per_decade`` a decade)."""
        n = self.steps
        if self.log_spacing == "linear":
            inner = np.arange(0, n, self.log_every, dtype=np.int64)
        else:
            m = self.logs_per_decade
            j = np.arange(int(np.ceil(m * np.log10(n))) + 1)
            inner = np.rint(10.0 ** (j / m)).astype(np.int64)
            inner = inner[inner <= n]
        return np.unique(np.concatenate([np.zeros(1, np.int64), inner, np.array([n], np.int64)]))


@dataclass(frozen=True)
class Resolution:
    """What :meth:`ActorCriticConfig.resolve` returns: the complete ``config``, the problem's
    ``scales`` (:class:`~exactbilevel.defaults.ProblemScales`), the names ``defaulted``
    that were derived from them and whether the updates are ``exact`` (expected).  ``str()`` is a table: each schedule at k = 0 and at the last
    step, with the unit-free rates b, a, z."""

    config: ActorCriticConfig
    scales: object
    defaulted: tuple
    exact: bool = False

    def rates(self, ks):
        """Unit-free rates ``dict b, a, z -> arrays`` at the steps ``ks``."""
        return time_scale_rates(self.scales, self.config.schedule_values(np.asarray(ks)), self.exact)

    def as_dict(self):
        """JSON-friendly: schedules by repr, critic_init, actor, scales, defaulted names."""
        c = self.config
        out = {n: repr(getattr(c, n)) for n in SCHEDULE_NAMES}
        out.update(critic_init=c.critic_init, actor=c.actor, scales=self.scales.as_dict(), defaulted=list(self.defaulted))
        return out

    def __str__(self):
        ks = np.array([0, self.config.steps - 1])
        v = self.config.schedule_values(ks)
        rates = self.rates(ks)
        lines = [f"{'':12s} {'k = 0':>11s} {'k = ' + str(int(ks[1])):>11s}  source"]
        for n in SCHEDULE_NAMES:
            src = "default" if n in self.defaulted else "given"
            lines.append(f"{n:12s} {v[n][0]:11.4g} {v[n][1]:11.4g}  {src}: {getattr(self.config, n)!r}")
        for n, label in (("b", "rate b"), ("a", "rate a"), ("z", "rate z")):
            lines.append(f"{label:12s} {rates[n][0]:11.4g} {rates[n][1]:11.4g}")
        src = "default" if "critic_init" in self.defaulted else "given"
        lines.append(f"{'critic_init':12s} {self.config.critic_init:11.4g} {'':11s}  {src}")
        s = self.scales
        lines.append(f"scales: H = {s.horizon:.4g}, R0 = {s.reward_x0:.4g}, Rbox = {s.reward_box:.4g}, "
                     f"Rref = {s.reward_ref:.4g}, G = {s.feature:.4g}, L = {s.box_width:.4g}, F = {s.cost:.4g}, "
                     f"S = {s.S}, A = {s.A}")
        return "\n".join(lines)


def _finite_number(name, value):
    """:func:`~exactbilevel._validation._real_scalar`, with the message of a configuration field."""
    try:
        return _real_scalar(name, value)
    except ValueError:
        raise ValueError(f"{name} must be a finite number, got {value!r}") from None


def _positive_number(name, value):
    value = _finite_number(name, value)
    if not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")
    return value


@dataclass
class ActorCriticState:
    """Mutable iterate of the algorithm: x (d,), theta, phi, Qtheta, Qphi, Qc (S, A), k, samples."""

    x: np.ndarray
    theta: np.ndarray
    phi: np.ndarray
    Qtheta: np.ndarray
    Qphi: np.ndarray
    Qc: np.ndarray
    k: int = 0
    samples: int = 0

    @classmethod
    def initial(cls, problem, critic_init=0.0):
        """x = x0, uniform policies (theta = phi = 0), soft critics Qtheta = Qphi =
        ``critic_init``, cost critic Qc = 0."""
        S, A = problem.mdp.S, problem.mdp.A
        z = lambda: np.zeros((S, A))  # noqa: E731
        q = lambda: np.full((S, A), float(critic_init))  # noqa: E731
        return cls(np.array(problem.x0, dtype=np.float64), z(), z(), q(), q(), z())

    def copy(self):
        return ActorCriticState(*(np.array(getattr(self, f)) for f in ("x", "theta", "phi", "Qtheta", "Qphi", "Qc")),
                                self.k, self.samples)


def compiled_model(problem):
    """The reward and objective as the compiled loop reads them, or an error saying why not.

    ``linearized`` is False for an :class:`~exactbilevel.OccupancyObjective` (cost and
    quadratic term read once) and True otherwise: then ``cost`` and ``gx0`` hold the
    linearization that :func:`linearize` refreshes."""
    mdp, reward, obj = problem.mdp, problem.reward, problem.objective
    d = problem.d
    Psi, coords, sigma = np.zeros((1, 1, d)), np.zeros((1, d)), 1.0
    if isinstance(reward, LinearReward):
        kind, Psi = K.LINEAR, np.asarray(reward.Psi)
    elif isinstance(reward, TabularReward):
        kind, Psi = K.LINEAR, np.eye(d).reshape(mdp.S, mdp.A, d)
    elif isinstance(reward, GaussianGoalReward):
        kind, coords, sigma = K.GAUSSIAN, np.asarray(reward.coords), float(reward.sigma)
    else:
        raise ValueError(
            f"the compiled actor-critic needs a LinearReward, TabularReward or GaussianGoalReward, "
            f"got {type(reward).__name__}; use exact=True or a baseline for other rewards"
        )
    model = dict(kind=kind, Psi=np.ascontiguousarray(Psi), coords=np.ascontiguousarray(coords), sigma=sigma,
                 gx0=np.zeros(d), linearized=not isinstance(obj, OccupancyObjective))
    if model["linearized"]:
        model.update(kappa=0.0, center=np.zeros(d))
        uniform = np.full((mdp.S, mdp.A), 1.0 / mdp.A)
        model["cost"] = np.ascontiguousarray(occupancy_cost(obj, problem.x0, uniform, mdp))
        return model
    center = np.zeros(d) if obj.center is None else np.asarray(obj.center)
    if center.shape != (d,):
        raise ValueError(f"objective.center has length {center.size}, but x has length d = {d}")
    model.update(cost=np.ascontiguousarray(obj.cost), kappa=float(obj.kappa), center=np.ascontiguousarray(center))
    return model


def linearize(problem, model, state, partial=False):
    """Refresh a linearized model at the state's (x, pi_theta): ``cost = occupancy_cost(x,
    pi_theta)``, ``gx0 = grad_x f(x, pi)`` with pi = pi_phi for partial SGD, else pi_theta."""
    if not model["linearized"]:
        return
    obj, x = problem.objective, state.x
    pi_theta = softmax_policy(state.theta)
    model["cost"] = np.ascontiguousarray(occupancy_cost(obj, x, pi_theta, problem.mdp))
    pi = softmax_policy(state.phi) if partial else pi_theta
    model["gx0"] = np.array(obj.grad_x(x, pi), dtype=np.float64)


def transition_sampler(mdp):
    """``(indptr, indices, cdf, rho_cdf)``: CSR rows of P with per-row cumulative sums."""
    P = mdp.P if mdp.is_sparse else mdp.to_sparse().P
    indptr, indices = P.indptr.astype(np.int64), P.indices.astype(np.int64)
    cdf = np.empty(P.data.size)
    K.row_cumsum(indptr, np.asarray(P.data, dtype=np.float64), cdf)
    return indptr, indices, cdf, np.cumsum(mdp.rho)


def sampled_steps(problem, config, state, ks, rng, model, sampler, chains, counter, partial=False):
    """Run the compiled loop for the steps ``ks`` (consecutive), in place on ``state``;
    ``partial``: the upper step uses grad_x f only (partial SGD)."""
    v = config.schedule_values(ks)
    lse_phi, lse_theta = K.all_row_lse(state.phi), K.all_row_lse(state.theta)
    K.run_steps(v["tau"], v["lam"], v["alpha"], v["beta"], v["zeta"],
                state.x, problem.lo, problem.hi, state.theta, state.phi, state.Qphi, state.Qtheta, state.Qc,
                lse_phi, lse_theta, model["kind"], model["Psi"], model["coords"], model["sigma"], model["cost"],
                model["kappa"], model["center"], model["gx0"], *sampler, problem.mdp.gamma,
                K.IID if config.sampling == "iid" else K.MARKOV, chains, config.batch, config.actor == "npg",
                partial, False, rng, counter)
    state.k = int(ks[-1]) + 1
    state.samples = int(counter[0])


def learner_steps(problem, state, x, tau, alpha, beta, m, rng, model, sampler, loop):
    """m steps of the theta learner alone at the fixed point x (lam = infinity: it ascends
    J_tau; its critics Qtheta and Qc follow pi_theta), i.i.d. sampling, in place on ``state``.
    ``tau``, ``alpha``, ``beta``: numbers or arrays of length m."""
    lse_theta = K.all_row_lse(state.theta)
    tau, alpha, beta = (np.ascontiguousarray(np.broadcast_to(np.asarray(v, dtype=np.float64), (m,)))
                        for v in (tau, alpha, beta))
    full = np.ones(m)
    K.run_steps(tau, 1e300 * full, alpha, beta, 0.0 * full,
                np.array(x, dtype=np.float64), problem.lo, problem.hi, state.theta, state.phi, state.Qphi,
                state.Qtheta, state.Qc, lse_theta.copy(), lse_theta, model["kind"], model["Psi"], model["coords"],
                model["sigma"], model["cost"], model["kappa"], model["center"], model["gx0"], *sampler,
                problem.mdp.gamma, K.IID, loop["chains"], 1, False, True, True, rng, loop["counter"])
    state.samples = int(loop["counter"][0])


def expected_step(problem, state, tau, lam, alpha, beta, zeta, natural=False):
    """One step of the algorithm with every sampled update replaced by its expectation
    (same order as the sampled step; module docstring), in place on ``state``.

    With d = d^pi, nu = d pi, Vsoft(s) = sum_a pi (Q - tau log pi)::

        Q    += beta nu (r + gamma P Vsoft - Q)           (Qc: cost c, tau = 0, under pi_theta)
        phi  += alpha/(1-gamma) d pi Ahat_phi             (npg: without the factor pi)
        theta += alpha d pi (Ahat_theta/(1-gamma) - Ahat_c/lam)
        x    = Proj(x - zeta (grad_x f(x, pi_theta) + lam/(1-gamma) R^T (nu_phi - nu_theta)))

    with ``c = occupancy_cost(x, pi_theta)`` (the objective linearized at every step).
    """
    mdp, g = problem.mdp, problem.mdp.gamma
    r, R = problem.reward.value(state.x), problem.reward.jacobian(state.x)
    obj = problem.objective

    def occupancy(pi):
        return (1 - g) * policy_system(mdp, pi).solve(mdp.rho, transpose=True)

    def backup(Q, logpi, pi, reward, t):
        Vs = np.sum(pi * (Q - t * logpi), axis=1)
        return reward + g * _next_expectation(mdp, Vs[:, None])[:, :, 0] - Q

    def advantage(Q, logpi, pi, t):
        A = Q - t * logpi
        return A - np.sum(pi * A, axis=1, keepdims=True)

    lp_phi, lp_th = log_softmax(state.phi), log_softmax(state.theta)
    pi_phi, pi_th = np.exp(lp_phi), np.exp(lp_th)
    d_phi, d_th = occupancy(pi_phi), occupancy(pi_th)
    nu_phi, nu_th = d_phi[:, None] * pi_phi, d_th[:, None] * pi_th
    state.Qphi += beta * nu_phi * backup(state.Qphi, lp_phi, pi_phi, r, tau)
    state.Qtheta += beta * nu_th * backup(state.Qtheta, lp_th, pi_th, r, tau)
    state.Qc += beta * nu_th * backup(state.Qc, lp_th, pi_th, occupancy_cost(obj, state.x, pi_th, mdp), 0.0)
    A_phi = advantage(state.Qphi, lp_phi, pi_phi, tau)
    A_th = advantage(state.Qtheta, lp_th, pi_th, tau) / (1 - g) - advantage(state.Qc, lp_th, pi_th, 0.0) / lam
    w_phi, w_th = (d_phi[:, None], d_th[:, None]) if natural else (nu_phi, nu_th)
    state.phi += alpha / (1 - g) * w_phi * A_phi
    state.theta += alpha * w_th * A_th
    gx = obj.grad_x(state.x, pi_th) + lam / (1 - g) * np.einsum("sad,sa->d", R, nu_phi - nu_th)
    state.x = problem.project(state.x - zeta * gx)
    state.k += 1


def run_actor_critic(problem, config, rng, on_log, partial=False, resume=None, on_steps=None):
    """Drive the loop between logging points.

    ``on_log(state, loop)`` is called at every k of ``config.log_steps()`` (k = 0 and
    k = steps included), with ``loop`` the dict of everything else the loop needs to continue
    (``chains``, ``counter``; the Generator ``rng`` is the caller's): enough, with
    ``state``, for a checkpoint (and, for a linearized objective, the current linearization
    ``cost`` and ``gx0``).  ``resume=(state, loop)`` continues from such a point
    instead of starting (the k = 0 call is then skipped).  ``partial``: partial SGD (the
    upper step uses grad_x f only; sampled mode).  ``on_steps(k)``, if given, is called
    after every block of steps with the steps done; the sampled blocks are then at most
    steps // 1000 long, which changes no draw (the loop carries its state across blocks)."""
    if not isinstance(problem, BilevelProblem):
        raise TypeError(f"problem must be an eb.BilevelProblem, got {type(problem).__name__}")
    model = compiled_model(problem)
    if config.exact and partial:
        raise ValueError("partial SGD runs sampled only; use exact=False")
    sampler = transition_sampler(problem.mdp)
    if resume is None:
        state = ActorCriticState.initial(problem, config.critic_init)
        rho_cdf = sampler[3]
        loop = dict(chains=np.array([K.search_cdf(rho_cdf, 0, rho_cdf.size, rng.random()) for _ in range(2)],
                                    dtype=np.int64), counter=np.zeros(1, dtype=np.int64))
        on_log(state, loop)
    else:
        state, loop = resume
        model.update({n: np.ascontiguousarray(loop[n]) for n in ("cost", "gx0") if n in loop})
    logs = config.log_steps()
    k = state.k
    while k < config.steps:
        nxt = int(logs[np.searchsorted(logs, k, side="right")])
        if on_steps is not None:
            nxt = min(nxt, k + max(1, config.steps // 1000))  # splitting changes no draw (all_row_lse)
        if model["linearized"] and not config.exact:
            if k % config.linearize_every == 0:
                linearize(problem, model, state, partial)
                loop.update(cost=model["cost"], gx0=model["gx0"])  # checkpointed with the loop
            nxt = min(nxt, (k // config.linearize_every + 1) * config.linearize_every)
        if config.exact:
            for j in range(k, nxt):
                v = config.schedule_values(np.array([j]))
                expected_step(problem, state, v["tau"][0], v["lam"][0], v["alpha"][0], v["beta"][0], v["zeta"][0],
                              natural=config.actor == "npg")
        else:
            sampled_steps(problem, config, state, np.arange(k, nxt), rng, model, sampler, loop["chains"],
                          loop["counter"], partial)
        k = nxt
        if on_steps is not None:
            on_steps(k)
        if logs[np.searchsorted(logs, k)] == k:
            on_log(state, loop)
    return state
