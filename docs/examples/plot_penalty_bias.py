r"""
The penalty bias against lambda
===============================

The actor-critic never differentiates :math:`\Phi_\tau(x) = f(x, \pi^*_\tau(x))`
itself: it descends the value-penalty function :math:`\ell_{\lambda,\tau}(x) =
\min_\theta f(x, \pi_\theta) + \lambda\, p_\tau(x, \pi_\theta)`
(:ref:`theory-penalty`).  Its gradient is a biased estimate of the hyper-gradient,
with a bias of order :math:`1/\lambda`, and the penalized policy's value penalty
:math:`p_\tau` is of order :math:`1/\lambda^2`.

Here both are computed exactly on a random problem: the hyper-gradient by implicit
differentiation (:func:`exactbilevel.hypergradient`), the penalized policy by
exact natural policy gradient (:func:`exactbilevel.penalized_policy`), for nine
values of :math:`\lambda`.  :func:`exactbilevel.fit_rate` fits the slopes of the
two noise-free curves (no interval: a deterministic curve gets its fit residual).
"""

import matplotlib.pyplot as plt
import numpy as np

import exactbilevel as eb

S, A, d = 20, 3, 3
mdp = eb.envs.random_mdp(S, A, gamma=0.9, seed=1)
rng = np.random.default_rng(1)
reward = eb.LinearReward(rng.standard_normal((S, A, d)))               # r_x = Psi x
f = eb.OccupancyObjective(mdp, rng.uniform(-1, 1, (S, A)), kappa=0.1)  # <nu^pi, c> + kappa/2 |x|^2
x, tau = rng.standard_normal(d), 0.2

g = eb.hypergradient(mdp, reward, f, x, tau)  # grad Phi_tau(x), exact
lams = np.geomspace(3.0, 300.0, 9)
bias, penalty, theta = [], [], None
for lam in lams:
    res = eb.penalized_policy(mdp, reward, f, x, lam, tau, theta0=theta)  # warm start from the last lam
    theta = res.theta
    bias.append(np.linalg.norm(res.grad_ell - g))
    penalty.append(res.penalty)
bias, penalty = np.array(bias), np.array(penalty)

curve = dict(window=(0.0, 1.0), deterministic=True, min_decades=0.0)
fit_bias = eb.fit_rate(lams, bias, theory=-1.0, **curve)
fit_pen = eb.fit_rate(lams, penalty, theory=-2.0, **curve)
print(eb.rate_table({"|grad ell - grad Phi_tau|": fit_bias, "p_tau(x, pi_theta_lam)": fit_pen}))

fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(lams, bias, "o-", label=rf"$|\nabla\ell_\lambda - \nabla\Phi_\tau|$, slope {fit_bias.slope:.2f}")
ax.loglog(lams, penalty, "s-", label=rf"$p_\tau(x, \pi_{{\theta_\lambda}})$, slope {fit_pen.slope:.2f}")
ax.loglog(lams, bias[0] * (lams / lams[0]) ** -1.0, "k--", lw=0.8, label="slope -1")
ax.loglog(lams, penalty[0] * (lams / lams[0]) ** -2.0, "k:", lw=0.8, label="slope -2")
ax.set_xlabel(r"penalty weight $\lambda$")
ax.set_ylabel("exact value")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
