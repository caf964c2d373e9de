"""Ground-truth diagnostics of an actor-critic iterate (docs/theory.rst, "What is measured"), computed exactly.

For the iterate (x, theta, phi, Qtheta, Qphi, Qc) at entropy weight tau and
penalty lam, with pi_phi = softmax(phi), pi_theta = softmax(theta),
pi* = pi*_tau(x), J = J_tau(x, .), nu = occupancy.  At tau = 0, pi*_0 is the
tau -> 0 limit of pi*_tau (:func:`exactbilevel.limit_policy`: supported on the
optimal actions of Q*_0, ties detected to its stated tolerance, not the first
argmax), so no quantity depends on the solver's tie-breaking or warm start:

================  ==========================================================================
residual_phi      J*_tau(x) - J(pi_phi)
residual_theta    G(theta) - min G,  G = f/lam - J  (= (L(theta) - ell) / lam; NaN at tau = 0)
                  (this and the other quantities of the penalized policy, grad_ell_norm2, penalty_bias
                  and residual_bias, are NaN where penalized_policy does not converge: L is not
                  convex in theta for a small lam)
critic_error_*    sum_{s,a} nu(s,a) (Qhat - Q^pi)^2 for Qphi (pi_phi, r, tau), Qtheta (pi_theta, r, tau),
                  Qc (pi_theta, c, 0) with c = occupancy_cost(x, pi_theta)
pl_ratio          |dJ/dtheta (phi)|^2 / (J* - J(pi_phi))  (NaN where the denominator is <= 0)
pl_bound          2 tau min_s rho(s) (min pi_phi)^2 / (S max_s d*(s)/d^{pi_phi}(s))  (Mei et al. 2020, Lemma 15);
                  0 when tau = 0 or min_s rho(s) = 0 (where the ratio d*/d^{pi_phi} may be 0/0)
min_pi            min pi_phi
grad_phi_norm2    |grad Phi_tau(x)|^2 (exact hyper-gradient; NaN at tau = 0)
grad_ell_norm2    |grad ell_{lam,tau}(x)|^2 (penalized policy solved exactly; NaN at tau = 0)
kkt_residual      max(|x - Proj(x - grad_x L_{lam,0})|, |grad_theta L_{lam,0}|, p_0(x, pi_theta)),
                  grad_x L_{lam,0} with the supergradient R^T nu^{pi*_0} / (1 - gamma) of J*_0
phi0, phi_tau     f(x, pi*_0(x)) and f(x, pi*_tau(x))  (equal at tau = 0)
penalty_bias      |grad ell - grad Phi_tau|
residual_bias     |E[ghat] - grad ell|, E[ghat] = grad_x f + lam/(1-gamma) R^T (nu_phi - nu_theta)
critic_bias       |D(Qhat) - D(Q^pi)| for the expected theta direction D(Q) = d pi (Ahat_theta/(1-gamma) - Ahat_c/lam)
ghat_variance     trace Cov(ghat) = (lam/(1-gamma))^2 (Var_{nu_phi} grad r + Var_{nu_theta} grad r) / batch
entropy_bias      J*_0 - J_0(pi*_tau)   (within [0, entropy_bound]; 0 to solver accuracy at tau = 0)
entropy_bound     tau log A / (1 - gamma)
action_gap        smallest action gap of Q*_0(x)
================  ==========================================================================

:class:`Diagnostics` keeps warm starts (V*_tau, V*_0, theta_lam) from one logging
point to the next.  Any objective of the protocol; the cost critic is judged against
the occupancy cost at pi_theta (:func:`exactbilevel.objectives.occupancy_cost`).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from . import gradients as G
from ._validation import ConvergenceError
from .bellman import sweep
from .evaluation import policy_reward, policy_system
from .limits import limit_policy
from .objectives import occupancy_cost
from .penalty import _lagrangian, penalized_policy

__all__ = ["Diagnostics", "QUANTITIES"]

QUANTITIES = (
    "residual_phi", "residual_theta", "critic_error_phi", "critic_error_theta", "critic_error_c",
    "pl_ratio", "pl_bound", "min_pi", "grad_phi_norm2", "grad_ell_norm2", "kkt_residual", "phi0", "phi_tau",
    "penalty_bias", "residual_bias", "critic_bias", "ghat_variance", "entropy_bias", "entropy_bound", "action_gap",
)


class Diagnostics:
    """``Diagnostics(problem, batch=1)``; ``diag(state, tau, lam) -> dict`` of :data:`QUANTITIES`."""

    def __init__(self, problem, batch=1):
        self.problem, self.batch = problem, batch
        self._V_tau = self._V_0 = self._theta_lam = None

    def warm_starts(self):
        """The warm starts kept between logging points (for checkpoints)."""
        return dict(V_tau=self._V_tau, V_0=self._V_0, theta_lam=self._theta_lam)

    def set_warm_starts(self, values):
        self._V_tau, self._V_0, self._theta_lam = (values.get(n) for n in ("V_tau", "V_0", "theta_lam"))

    def _solve(self, r, tau, V0):
        return G.lower_solve(self.problem.mdp, r, tau, V0=V0)

    def __call__(self, state, tau, lam):
        p = self.problem
        mdp, obj, g = p.mdp, p.objective, p.mdp.gamma
        x = state.x
        r, R = p.reward.value(x), p.reward.jacobian(x)
        out = dict.fromkeys(QUANTITIES, math.nan)

        sol0 = self._solve(r, 0.0, self._V_0)
        self._V_0 = sol0.V
        J0_star = float(mdp.rho @ sol0.V)
        # pi*_0: the tau -> 0 limit, not the solver's first argmax
        pi0 = limit_policy(mdp, r, solution=sol0)
        pi0.setflags(write=False)
        sol0 = dataclasses.replace(sol0, pi=pi0)
        out["phi0"] = obj.value(x, sol0.pi)
        out["action_gap"] = G.action_gap(mdp, p.reward, x, solution=sol0)
        out["entropy_bound"] = tau * math.log(mdp.A) / (1 - g)

        # finite logits of any spread: tau log pi from the logits, and the products with pi
        # (where pi = 0, tau log pi may be -inf) through G._policy_weighted
        pi_phi, pi_th = np.exp(G.log_softmax(state.phi)), np.exp(G.log_softmax(state.theta))
        sys_phi, sys_th = policy_system(mdp, pi_phi), policy_system(mdp, pi_th)
        d_phi, d_th = G._state_occupancy(mdp, sys_phi), G._state_occupancy(mdp, sys_th)
        nu_phi, nu_th = d_phi[:, None] * pi_phi, d_th[:, None] * pi_th
        V_phi, Q_phi, _, _ = G._evaluate(mdp, r, pi_phi, tau, system=sys_phi)
        V_th, Q_th, _, _ = G._evaluate(mdp, r, pi_th, tau, system=sys_th)
        out["critic_error_phi"] = float(np.sum(nu_phi * (state.Qphi - Q_phi) ** 2))
        out["critic_error_theta"] = float(np.sum(nu_th * (state.Qtheta - Q_th) ** 2))
        cost = np.ascontiguousarray(occupancy_cost(obj, x, pi_th, mdp))
        Vc = sys_th.solve(np.sum(pi_th * cost, axis=1))
        Qc, _ = sweep(mdp, cost, Vc, 0.0)
        out["critic_error_c"] = float(np.sum(nu_th * (state.Qc - Qc) ** 2))
        out["min_pi"] = float(pi_phi.min())

        tau_lp_th = G._tau_log_softmax(state.theta, tau)

        def direction(Qt, Qcc):
            def adv(Q, t):
                A = Q - tau_lp_th if t > 0 else Q
                return A - np.sum(G._policy_weighted(1.0, pi_th, A), axis=1, keepdims=True)
            with np.errstate(over="ignore"):
                D = adv(Qt, tau) / (1 - g) - adv(Qcc, 0.0) / lam
            return G._policy_weighted(d_th[:, None], pi_th, D)

        out["critic_bias"] = float(np.linalg.norm(direction(state.Qtheta, state.Qc) - direction(Q_th, Qc)))
        Rg_phi, Rg_th = np.einsum("sad,sa->d", R, nu_phi), np.einsum("sad,sa->d", R, nu_th)
        var = sum(float(np.einsum("sad,sa->", R**2, nu)) - float(m @ m) for nu, m in ((nu_phi, Rg_phi), (nu_th, Rg_th)))
        out["ghat_variance"] = (lam / (1 - g)) ** 2 * var / self.batch
        g_x = obj.grad_x(x, pi_th)
        e_ghat = g_x + lam / (1 - g) * (Rg_phi - Rg_th)

        # the tau = 0 penalty KKT residual at (x, theta)
        L0 = _lagrangian(mdp, r, R, obj, x, state.theta, lam, 0.0, sol0)[0]
        proj = x - p.project(x - L0.grad_x)
        out["kkt_residual"] = max(float(np.linalg.norm(proj)), float(np.linalg.norm(L0.grad_theta)), L0.penalty)

        if tau > 0:
            sol = self._solve(r, tau, self._V_tau)
            self._V_tau = sol.V
        else:
            sol = sol0
        J_star = float(mdp.rho @ sol.V)
        out["residual_phi"] = J_star - float(mdp.rho @ V_phi)
        out["phi_tau"] = obj.value(x, sol.pi) if tau > 0 else out["phi0"]
        sys_star = policy_system(mdp, sol.pi)
        out["entropy_bias"] = J0_star - float(mdp.rho @ sys_star.solve(policy_reward(r, sol.pi, 0.0)))
        grad_J = G._policy_gradient(mdp, r, state.phi, tau, False)
        if out["residual_phi"] > 0:
            out["pl_ratio"] = float(np.sum(grad_J**2)) / out["residual_phi"]
        rho_min = float(mdp.rho.min())
        if tau == 0 or rho_min == 0 or out["min_pi"] == 0:
            out["pl_bound"] = 0.0  # the formula's factor tau, min rho or (min pi)^2 is 0
        else:  # d^{pi_phi} >= (1 - gamma) rho > 0
            d_star = G._state_occupancy(mdp, sys_star)
            out["pl_bound"] = 2 * tau * rho_min * out["min_pi"] ** 2 / (mdp.S * float(np.max(d_star / d_phi)))
        if tau > 0:
            grad_phi = G.hypergradient(mdp, p.reward, obj, x, tau, solution=sol)
            out["grad_phi_norm2"] = float(grad_phi @ grad_phi)
            try:
                pen = penalized_policy(mdp, p.reward, obj, x, lam, tau, theta0=self._theta_lam, solution=sol)
            except ConvergenceError:  # L is not convex in theta: no certified minimizer here
                self._theta_lam = None
                return out
            self._theta_lam = np.array(pen.theta)
            out["grad_ell_norm2"] = float(pen.grad_ell @ pen.grad_ell)
            L = _lagrangian(mdp, r, R, obj, x, state.theta, lam, tau, sol)[0]
            out["residual_theta"] = (L.value - pen.ell) / lam
            out["penalty_bias"] = float(np.linalg.norm(pen.grad_ell - grad_phi))
            out["residual_bias"] = float(np.linalg.norm(e_ghat - pen.grad_ell))
        return out
