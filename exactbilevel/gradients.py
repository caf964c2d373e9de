"""Exact gradients and hyper-gradients (docs/theory.rst, "Gradients").

Returns and advantages, for a policy pi (S, A) and a reward table r (S, A)::

    J_tau(pi)      = rho^T V^pi                       (V^pi entropy-regularized, docs/theory.rst, "The lower level")
    Atilde^pi(s,a) = Q^pi(s, a) - tau log pi(a|s) - V^pi(s)          (sum_a pi Atilde = 0)

Softmax policy gradient and natural policy gradient, pi = softmax(theta) row by
row (Mei et al. 2020, Lemma 10 form; Kakade 2001; Cen et al. 2021)::

    dJ_tau/dtheta(s, a) = d^pi(s) pi(a|s) Atilde^pi(s, a) / (1 - gamma)
    npg(s, a)           = Atilde^pi(s, a) / (1 - gamma)

where ``npg`` solves ``F npg = dJ/dtheta`` for the per-state Fisher blocks
``F_s = d^pi(s) (diag pi_s - pi_s pi_s^T)`` (it is the solution with
``sum_a pi npg = 0``).

Reward direction (Danskin; the entropy term does not depend on x), with the
reward's Jacobian ``R_x`` (S, A, d)::

    grad_x J_tau(x, pi) = R_x^T nu^pi / (1 - gamma)
    grad_x J*_tau(x)    = R_x^T nu^{pi*_tau(x)} / (1 - gamma)

Hyper-gradient of ``Phi_tau(x) = f(x, pi*_tau(x))`` for tau > 0 by implicit
differentiation of the soft Bellman fixed point (docs/theory.rst, "The hyper-gradient"), with
``M = I - gamma P_{pi*}``::

    forward:  D_V = M^(-1) (sum_a pi* R_x)   (S, d);   D_Q = R_x + gamma P D_V
              dpi*/dx (s, a) = pi*(a|s) (D_Q(s, a) - sum_b pi*(b|s) D_Q(s, b)) / tau
              grad Phi_tau = grad_x f + sum_{s,a} grad_pi f(s, a) dpi*/dx(s, a)
    adjoint:  G = pi* grad_pi f;   w = M^(-T) (gamma P^T G - sum_a G)
              grad Phi_tau = grad_x f + R_x^T (G + pi* w) / tau

The adjoint form costs one transposed solve whatever d is; the forward form d
solves (independent: :meth:`~exactbilevel.evaluation.PolicySystem.solve_many`
runs them concurrently on large sparse MDPs), plus what the objective's
``grad_pi`` needs (for :class:`~exactbilevel.OccupancyObjective`: d^pi and
V_c^pi, two more solves, also run together).  Linear systems go through
:class:`~exactbilevel.evaluation.PolicySystem` (LU for S <= 3000, multigrid-
preconditioned BiCGSTAB for large sparse MDPs: no dense S x S matrix), one
per policy, shared.  Both forms share one lower-level solution.

Accuracy: the lower level is solved to ``|V - V*_tau|_inf <= max(1e-12 * scale,
2 * floor)`` with ``scale = (|r|_inf + tau log A) / (1 - gamma)`` (the float64
floor of :func:`~exactbilevel.solve`); linear solves to relative residual 1e-12.
The implicit term is a difference of O(1) terms divided by tau, so its rounding
error grows like ``eps |R| |grad_pi f| / ((1 - gamma) tau)``: finite, no NaN,
down to tau = 1e-8 (docs/theory.rst, "The hyper-gradient" on the small-tau behaviour).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _kernels, solvers
from ._validation import as_float_array, check_choice, check_tau
from .bellman import check_mdp, check_reward, sweep
from .evaluation import check_in_range, check_policy, policy_reward, policy_system
from .objectives import check_objective, finite_value

__all__ = [
    "softmax_policy",
    "expected_return",
    "soft_advantage",
    "policy_gradient",
    "natural_policy_gradient",
    "return_gradient",
    "optimal_return_gradient",
    "hypergradient",
    "Hypergradient",
    "action_gap",
    "HYPERGRADIENT_FORMS",
]

HYPERGRADIENT_FORMS = ("adjoint", "forward")

#: Relative accuracy of the lower-level solves made here (see the module docstring).
LOWER_RTOL = 1e-12


# -- inputs -------------------------------------------------------------------

def check_theta(mdp, theta, name="theta"):
    return as_float_array(name, theta, shape=(mdp.S, mdp.A))


#: Shifted logits below -LOGIT_FLOOR / max(1, tau) are raised to it (:func:`_shifted_logits`):
#: half the float64 range, so that tau log pi and the steps formed from it do not overflow.
LOGIT_FLOOR = 0.5 * np.finfo(np.float64).max


def _half_shifted(theta):
    """``(theta - max_a theta) / 2`` row by row, computed as ``theta/2 - max/2``: finite
    for every finite theta (a spread of logits up to 2 x 1.8e308 does not overflow)."""
    half = 0.5 * theta
    return half - half.max(axis=1, keepdims=True)


def _log_sum_exp_shifted(h):
    """``log sum_a exp(2 h_a)`` for half-shifted logits h (max 0): in [0, log A]."""
    with np.errstate(over="ignore"):  # 2 h = -inf for a spread beyond the range: exp gives 0
        return np.log(np.sum(np.exp(2.0 * h), axis=1, keepdims=True))


def log_softmax(theta):
    """Row-wise ``log softmax(theta) = (theta - m) - log sum_a exp(theta_a - m)``, m the
    row max.  The shift is formed as ``2 (theta/2 - m/2)`` so that finite logits of
    any spread give no overflow and no NaN; an entry whose log-probability lies
    below -1.8e308 (a spread beyond the float64 range) is -inf, its correct
    rounding (its probability is 0)."""
    h = _half_shifted(theta)
    lse = _log_sum_exp_shifted(h)
    with np.errstate(over="ignore"):
        return 2.0 * h - lse


def _tau_log_softmax(theta, tau):
    """``tau * log softmax(theta)`` as ``2 (tau h) - tau lse`` (h the half-shifted
    logits): finite whenever the product is within the float64 range, also when
    log softmax itself is not (tau < 1 and a spread beyond 1.8e308), and for any
    finite tau where log pi = 0 (2 tau may overflow, tau h does not)."""
    h = _half_shifted(theta)
    lse = _log_sum_exp_shifted(h)
    with np.errstate(over="ignore"):
        return 2.0 * (tau * h) - tau * lse


def _shifted_logits(theta, tau):
    """``theta - max_a theta`` row by row (formed as ``2 h`` from the half-shifted logits h,
    which is the plain difference wherever that neither overflows nor is subnormal), with every entry raised to at
    least ``-max(LOGIT_FLOOR / max(1, tau), 1000)``: rows of finite logits of any spread
    become finite logits (max 0) of the same softmax (a raised entry has probability 0
    before and after: e^-1000 underflows), for which ``tau log softmax`` stays within the
    float64 range unless tau exceeds about 1.8e305."""
    h = _half_shifted(theta)
    with np.errstate(over="ignore"):
        z = 2.0 * h
    return np.maximum(z, -max(LOGIT_FLOOR / max(1.0, tau), 1e3))


def _policy_weighted(weight, pi, values):
    """``weight * pi * values`` with 0 where pi = 0 (weight broadcast against pi).  Where a
    probability underflowed to 0 its ``values`` may carry ``-tau log pi``, beyond the float64
    range (+inf, so 0 * inf = NaN), but ``pi tau log pi -> 0``: the product is 0 there."""
    with np.errstate(over="ignore", invalid="ignore"):
        out = weight * pi * values
    return np.where(pi > 0.0, out, 0.0)


def softmax_policy(theta):
    """``pi = softmax(theta)`` row by row, shape ``(S, A)`` (max-shifted: finite logits
    of any size give a policy whose rows sum to 1 to rounding).  theta must have
    at least one state and one action (ValueError otherwise)."""
    theta = as_float_array("theta", theta, shape=(None, None))
    if 0 in theta.shape:
        raise ValueError(
            f"theta must have at least one row (state) and one column (action), got shape {theta.shape}"
        )
    return np.exp(log_softmax(theta))


def check_reward_model(reward, mdp, x, value=True, name="x"):
    """Validate a reward object at x: returns ``(x, r_x (S, A), R_x (S, A, d))``
    (r_x None without ``value``: callers that reuse a solution at x); ``name``: what
    the messages call x."""
    for m in ("value", "jacobian"):
        if not callable(getattr(reward, m, None)):
            raise TypeError(
                f"reward must have methods value(x) and jacobian(x) (e.g. eb.LinearReward); "
                f"{type(reward).__name__} lacks {m}"
            )
    x = as_float_array(name, x)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"{name} must be a non-empty vector, shape (d,), got shape {x.shape}")
    r = check_reward(mdp, reward.value(x), name="reward.value(x)") if value else None
    if r is not None and r.size:
        r_abs = float(np.abs(r).max())
        with np.errstate(over="ignore"):
            total = r_abs + r_abs / (1.0 - mdp.gamma)
        if not np.isfinite(total):  # the values' scale and the solver's float64 floor overflow
            raise ValueError(
                f"reward.value(x) at {name} = {x} has |r_x|_inf = {r_abs:.3g}, whose values |r_x|_inf / (1 - gamma) "
                f"(gamma = {mdp.gamma}) are beyond the float64 range; pass {name} (or a reward model) of a smaller "
                "scale"
            )
    R = as_float_array("reward.jacobian(x)", reward.jacobian(x), shape=(mdp.S, mdp.A, x.size))
    return x, r, R


def _check_positive_tau(tau, what):
    tau = check_tau(tau)
    if tau == 0.0:
        raise ValueError(
            f"tau must be > 0 for {what}: pi*_0 is piecewise constant in x, so its derivative is 0 "
            "or undefined; use tau > 0 (the entropy-regularized problem) or the penalty gradient"
        )
    return tau


def lower_solve(mdp, r, tau, solution=None, V0=None):
    """V*_tau to the accuracy of the module docstring, or ``solution`` after checking it:
    a SolveResult at this tau with V (S,), Q (S, A) finite and pi an (S, A) policy."""
    if solution is not None:
        if not isinstance(solution, solvers.SolveResult):
            raise TypeError(f"solution must be an eb.SolveResult from eb.solve, got {type(solution).__name__}")
        shapes = tuple(np.shape(getattr(solution, n)) for n in ("V", "Q", "pi"))
        if solution.tau != tau or shapes != ((mdp.S,), (mdp.S, mdp.A), (mdp.S, mdp.A)):
            raise ValueError(
                f"solution was computed for tau = {solution.tau} and (S, A) = {shapes[1]}, "
                f"but tau = {tau} and (S, A) = ({mdp.S}, {mdp.A}) were asked; solve again or pass solution=None"
            )
        for name in ("V", "Q"):
            as_float_array(f"solution.{name}", getattr(solution, name))
        check_policy(mdp, solution.pi, "solution.pi")
        return solution
    tol = solvers._Problem(mdp, r, tau, None).auto_tol(relative=LOWER_RTOL)
    return solvers.solve(mdp, r, tau, tol=tol, V0=V0)


# -- policy-level quantities ----------------------------------------------------

def _evaluate(mdp, r, pi, tau, tau_logpi=None, system=None):
    """``(V, Q, Atilde, system)`` for validated inputs; ``tau_logpi`` = tau log pi (S, A),
    given when tau > 0 (from the logits: :func:`_tau_log_softmax`, where it may be -inf for
    a probability 0, which makes Atilde +inf there); Atilde is None when tau > 0 without it."""
    system = policy_system(mdp, pi) if system is None else system
    V = system.solve(policy_reward(r, pi, tau))
    Q, _ = sweep(mdp, r, V, 0.0)
    with np.errstate(over="ignore", invalid="ignore"):  # values near the float64 range: callers check
        if tau == 0.0:
            A = Q - V[:, None]
        else:
            A = None if tau_logpi is None else Q - tau_logpi - V[:, None]
    return V, Q, A, system


def _state_occupancy(mdp, system):
    return (1.0 - mdp.gamma) * system.solve(mdp.rho, transpose=True)


def _logpi(pi, tau):
    """log pi, which the entropy terms need for tau > 0: pi must have full support."""
    if tau == 0.0:
        return None
    zero = np.argwhere(pi == 0.0)
    if zero.size:
        s, a = (int(i) for i in zero[0])
        raise ValueError(
            f"pi[{s}, {a}] = 0, but tau > 0 needs log pi; pass logits theta "
            "(eb.policy_gradient) or a policy with every entry > 0"
        )
    return np.log(pi)


@_kernels.serial_when_small
def expected_return(mdp, r, pi, tau=0.0):
    """``J_tau(pi) = rho^T V^pi``: the entropy-regularized expected discounted return (a float)."""
    check_mdp(mdp)
    r, pi, tau = check_reward(mdp, r), check_policy(mdp, pi), check_tau(tau)
    system = policy_system(mdp, pi)
    V = system.solve(policy_reward(r, pi, tau))
    check_in_range("V^pi", V)
    with np.errstate(over="ignore"):
        J = float(mdp.rho @ V)
    check_in_range("J_tau(pi)", J)
    return J


@_kernels.serial_when_small
def soft_advantage(mdp, r, pi, tau=0.0):
    """``Atilde^pi(s, a) = Q^pi(s, a) - tau log pi(a|s) - V^pi(s)``, shape ``(S, A)``.

    ``sum_a pi(a|s) Atilde(s, a) = 0``.  For tau > 0, pi must have every entry
    > 0 (the log); for tau = 0 this is the ordinary advantage.
    """
    check_mdp(mdp)
    r, pi, tau = check_reward(mdp, r), check_policy(mdp, pi), check_tau(tau)
    with np.errstate(over="ignore"):  # tau log pi beyond the float64 range: refused below
        tau_logpi = None if tau == 0.0 else tau * _logpi(pi, tau)
    V, Q, A, _ = _evaluate(mdp, r, pi, tau, tau_logpi)
    check_in_range("Atilde^pi = Q^pi - tau log pi - V^pi", V, Q, A)
    return A


def _policy_gradient(mdp, r, theta, tau, natural):
    logpi = log_softmax(theta)
    pi = np.exp(logpi)
    system = policy_system(mdp, pi)
    V = system.solve(policy_reward(r, pi, tau))
    Q, _ = sweep(mdp, r, V, 0.0)
    check_in_range("V^pi or Q^pi", V, Q)
    with np.errstate(over="ignore", invalid="ignore"):
        A = Q - V[:, None]
    check_in_range("Q^pi - V^pi", A)
    if tau > 0.0:  # Atilde = Q - V - tau log pi, with tau log pi formed from the logits
        with np.errstate(over="ignore"):
            A = A - _tau_log_softmax(theta, tau)
    if natural:
        with np.errstate(over="ignore"):
            npg = A / (1.0 - mdp.gamma)
        if not np.all(np.isfinite(npg)):
            s, a = (int(i) for i in np.argwhere(~np.isfinite(npg))[0])
            raise ValueError(
                f"the natural policy gradient at theta[{s}, {a}] exceeds the float64 range: "
                f"(Q - V - tau log pi) / (1 - gamma) with Q - V = {A[s, a] if tau == 0 else Q[s, a] - V[s]:g}, "
                f"tau (max_a theta[{s}, a] - theta[{s}, {a}]), tau = {tau:g}, "
                f"max {theta[s].max():g}, theta[{s}, {a}] = {theta[s, a]:g} and gamma = {mdp.gamma:g}, "
                "is beyond 1.8e308; pass theta with a smaller spread in each row "
                "(softmax(theta) is unchanged by adding a constant to a row), or r of a smaller scale"
            )
        return npg
    d = _state_occupancy(mdp, system)
    # pi * Atilde -> 0 where pi underflows to 0 (|pi Atilde| <= tau |pi log pi| + ... there)
    with np.errstate(over="ignore"):
        scaled = A / (1.0 - mdp.gamma)
    g = _policy_weighted(d[:, None], pi, scaled)
    check_in_range("the policy gradient d pi Atilde / (1 - gamma)", g)
    return g


@_kernels.serial_when_small
def policy_gradient(mdp, r, theta, tau=0.0):
    """``dJ_tau/dtheta (s, a) = d^pi(s) pi(a|s) Atilde^pi(s, a) / (1 - gamma)``, shape ``(S, A)``.

    ``pi = softmax(theta)`` (logits theta of shape ``(S, A)``); log pi is taken
    from the logits, so tiny probabilities are no problem.
    """
    check_mdp(mdp)
    return _policy_gradient(mdp, check_reward(mdp, r), check_theta(mdp, theta), check_tau(tau), False)


@_kernels.serial_when_small
def natural_policy_gradient(mdp, r, theta, tau=0.0):
    """``Atilde^pi / (1 - gamma)``, shape ``(S, A)``: the natural policy gradient of softmax logits.

    It satisfies ``d^pi(s) (diag pi_s - pi_s pi_s^T) npg(s) = dJ_tau/dtheta(s)``
    for every state (Fisher blocks; module docstring), with ``sum_a pi npg = 0``.
    ``theta += eta * npg`` is the NPG step; ``eta = (1 - gamma) / tau`` is soft
    policy iteration (Cen et al. 2021).
    """
    check_mdp(mdp)
    return _policy_gradient(mdp, check_reward(mdp, r), check_theta(mdp, theta), check_tau(tau), True)


# -- reward direction -------------------------------------------------------------

def _reward_gradient(mdp, R, pi, system=None):
    """``R^T nu^pi / (1 - gamma)`` for validated inputs."""
    system = policy_system(mdp, pi) if system is None else system
    nu = _state_occupancy(mdp, system)[:, None] * pi
    return np.einsum("sa,sad->d", nu, R) / (1.0 - mdp.gamma)


@_kernels.serial_when_small
def return_gradient(mdp, reward, x, pi):
    """``grad_x J_tau(x, pi) = R_x^T nu^pi / (1 - gamma)``, shape ``(d,)`` (any tau: the
    entropy term does not depend on x)."""
    check_mdp(mdp)
    x, _, R = check_reward_model(reward, mdp, x)
    return _reward_gradient(mdp, R, check_policy(mdp, pi))


@_kernels.serial_when_small
def optimal_return_gradient(mdp, reward, x, tau, solution=None, V0=None):
    """``grad_x J*_tau(x) = R_x^T nu^{pi*_tau(x)} / (1 - gamma)`` (Danskin), shape ``(d,)``.

    tau = 0 gives a gradient only where pi*_0(x) is unique (otherwise a
    supergradient: the first argmax policy's).  ``solution``: a SolveResult at
    this x and tau to reuse; ``V0``: a warm start for the solve.
    """
    check_mdp(mdp)
    x, r, R = check_reward_model(reward, mdp, x)
    tau = check_tau(tau)
    sol = lower_solve(mdp, r, tau, solution, V0)
    return _reward_gradient(mdp, R, sol.pi)


# -- hyper-gradient -----------------------------------------------------------------

@dataclass(frozen=True)
class Hypergradient:
    """Full output of :func:`hypergradient` (``full_output=True``); its arrays are
    read-only copies (the arrays it was built from are not frozen).

    Attributes
    ----------
    grad : (d,) grad Phi_tau(x).
    phi : Phi_tau(x) = f(x, pi*_tau(x)).
    grad_x_f : (d,) the explicit part, grad_x f(x, pi*).
    implicit : (d,) grad - grad_x_f, the part through pi*_tau(x).
    pi : (S, A) pi*_tau(x).
    dpi_dx : (S, A, d) d pi*/dx (forward form); None for the adjoint form.
    form : "adjoint" or "forward".
    solution : the lower-level SolveResult.
    """

    grad: np.ndarray
    phi: float
    grad_x_f: np.ndarray
    implicit: np.ndarray
    pi: np.ndarray
    dpi_dx: np.ndarray | None
    form: str
    solution: object

    def __post_init__(self):
        # read-only copies: an array passed in (e.g. what objective.grad_x returned)
        # stays the caller's, writeable and unchanged
        for name in ("grad", "grad_x_f", "implicit", "pi", "dpi_dx"):
            v = getattr(self, name)
            if v is not None:
                v = np.array(v, dtype=np.float64)
                v.setflags(write=False)
                object.__setattr__(self, name, v)


def _next_expectation(mdp, X):
    """``(P X)(s, a, ...) = sum_s' P(s'|s, a) X(s', ...)`` for X of shape (S, k): (S, A, k)."""
    if mdp.is_sparse:
        out = mdp.P @ X
    else:
        out = mdp.P.reshape(mdp.S * mdp.A, mdp.S) @ X
    return out.reshape(mdp.S, mdp.A, X.shape[1])


def _pull_back(mdp, G):
    """``(P^T G)(s') = sum_{s,a} P(s'|s, a) G(s, a)``, shape (S,)."""
    if mdp.is_sparse:
        return mdp.P.T @ G.ravel()
    return G.ravel() @ mdp.P.reshape(mdp.S * mdp.A, mdp.S)


@_kernels.serial_when_small
def hypergradient(mdp, reward, objective, x, tau, *, form="adjoint", solution=None, V0=None,
                  full_output=False):
    """Exact gradient of ``Phi_tau(x) = f(x, pi*_tau(x))`` by implicit differentiation.

    Parameters
    ----------
    mdp : TabularMDP (dense or sparse)
    reward : object with ``value(x)`` (S, A) and ``jacobian(x)`` (S, A, d)
    objective : object with ``value``, ``grad_x``, ``grad_pi`` (see :mod:`exactbilevel.objectives`)
    x : (d,) upper-level point
    tau : float > 0 (tau = 0 is a ValueError: pi*_0 is piecewise constant in x)
    form : "adjoint" (one transposed solve) or "forward" (d solves; gives dpi*/dx)
    solution : SolveResult of ``solve(mdp, reward.value(x), tau)`` to reuse (it is trusted to be at this x)
    V0 : (S,) warm start for the lower-level solve
    full_output : return a :class:`Hypergradient` instead of the gradient

    Returns
    -------
    grad Phi_tau(x), shape ``(d,)`` (formulas and accuracy in the module docstring).
    """
    check_mdp(mdp)
    check_objective(objective, mdp)
    x, r, R = check_reward_model(reward, mdp, x, value=solution is None)
    tau = _check_positive_tau(tau, "a hyper-gradient")
    check_choice("form", form, HYPERGRADIENT_FORMS)
    sol = lower_solve(mdp, r, tau, solution, V0)
    pi = np.array(sol.pi)
    g_pi = as_float_array("objective.grad_pi(x, pi)", objective.grad_pi(x, pi), shape=(mdp.S, mdp.A))
    g_x = as_float_array("objective.grad_x(x, pi)", objective.grad_x(x, pi), shape=(x.size,))
    system = policy_system(mdp, pi)
    dpi = None
    if form == "forward":
        R_pi = np.einsum("sa,sad->sd", pi, R)
        D_V = np.column_stack(system.solve_many([(R_pi[:, j], False) for j in range(x.size)]))
        D_Q = R + mdp.gamma * _next_expectation(mdp, D_V)
        dpi = pi[:, :, None] * (D_Q - np.einsum("sa,sad->sd", pi, D_Q)[:, None, :]) / tau
        implicit = np.einsum("sa,sad->d", g_pi, dpi)
    else:
        G = pi * g_pi
        w = system.solve(mdp.gamma * _pull_back(mdp, G) - G.sum(axis=1), transpose=True)
        implicit = np.einsum("sad,sa->d", R, G + pi * w[:, None]) / tau
    grad = g_x + implicit
    if not full_output:
        return grad
    phi = finite_value("objective.value", objective.value(x, pi))
    return Hypergradient(grad=grad, phi=phi, grad_x_f=g_x, implicit=implicit, pi=pi, dpi_dx=dpi, form=form,
                         solution=sol)


@_kernels.serial_when_small
def action_gap(mdp, reward, x, solution=None):
    """Smallest action gap of ``Q*_0(x)``: ``min_s (Q*(s, a_1) - Q*(s, a_2))`` for the best
    and second-best actions (0 when some state has tied optimal actions; inf when A = 1).

    The implicit term of the hyper-gradient peaks near tau ~ this gap
    (docs/theory.rst, "The hyper-gradient").  ``solution``: a tau = 0 SolveResult at this x to reuse.
    Accurate to ``2 gamma`` times the solve's error bound.
    """
    check_mdp(mdp)
    x, r, _ = check_reward_model(reward, mdp, x)
    if mdp.A == 1:
        return float("inf")
    Q = lower_solve(mdp, r, 0.0, solution).Q
    top2 = np.partition(Q, mdp.A - 2, axis=1)[:, -2:]
    return float(np.min(top2[:, 1] - top2[:, 0]))
