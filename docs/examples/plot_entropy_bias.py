r"""
The entropy bias against tau
============================

The entropy-regularized optimal policy :math:`\pi^*_\tau` gives up some of the
unregularized return, but never more than the entropy it can buy:

.. math::

    0 \le J^*_0 - J_0(\pi^*_\tau) \le \frac{\tau \log A}{1 - \gamma}

(:ref:`theory-lower-level`).  On a random MDP with a uniform random reward we solve
the soft Bellman equation exactly for 30 values of :math:`\tau`, evaluate each
:math:`\pi^*_\tau` without entropy, and draw the loss beside its bound (left).  Well
below the smallest action gap of :math:`Q^*_0` (dotted) the loss vanishes like
:math:`e^{-\text{gap}/\tau}`, far under the bound; for large :math:`\tau` it
saturates at the loss of the uniform policy while the bound keeps growing.

The right panel shows the part of the hyper-gradient that flows through the policy,
:math:`\sum_{s,a} \partial f/\partial\pi(a|s)\; \partial\pi^*_\tau(a|s)/\partial x`
(:ref:`theory-hypergradient`), for the tabular reward :math:`r_x = x` and an
occupancy cost: it is not monotone in :math:`\tau` but peaks near the action gap
and dies out below it, where :math:`\pi^*_\tau` is all but deterministic.
"""

import matplotlib.pyplot as plt
import numpy as np

import exactbilevel as eb

S, A = 15, 3
mdp = eb.envs.random_mdp(S, A, gamma=0.9, seed=2)
rng = np.random.default_rng(2)
r = rng.uniform(size=(S, A))

hard = eb.solve(mdp, r, tau=0.0)
J0_star = float(mdp.rho @ hard.V)
reward = eb.TabularReward(S, A)  # r_x = x.reshape(S, A): x is the reward table itself
x = r.ravel()
gap = eb.action_gap(mdp, reward, x)  # smallest action gap of Q*_0
f = eb.OccupancyObjective(mdp, rng.uniform(-1, 1, (S, A)))

taus = np.geomspace(1e-3, 10.0, 30)
bias, implicit = [], []
for tau in taus:
    sol = eb.solve(mdp, r, tau=tau)
    bias.append(J0_star - eb.expected_return(mdp, r, sol.pi))  # J_0: evaluated without entropy
    hg = eb.hypergradient(mdp, reward, f, x, tau, solution=sol, full_output=True)
    implicit.append(np.linalg.norm(hg.implicit))
bias, implicit = np.array(bias), np.array(implicit)
bound = taus * np.log(A) / (1 - mdp.gamma)
uniform = J0_star - eb.expected_return(mdp, r, np.full((S, A), 1 / A))

assert np.all(bias >= -1e-9) and np.all(bias <= bound + 1e-9)  # the bound holds at every tau
print(f"smallest action gap of Q*_0: {gap:.3g}")
print(f"largest bias / bound: {np.max(bias / bound):.3g}")
print(f"implicit term largest at tau = {taus[np.argmax(implicit)]:.3g}")

shown = bias > 1e-8  # below the solver's tolerance (1e-10 on V) a difference is rounding
fig, (ax, bx) = plt.subplots(1, 2, figsize=(9, 3.8))
ax.loglog(taus[shown], bias[shown], "o-", ms=4, label=r"$J^*_0 - J_0(\pi^*_\tau)$")
ax.loglog(taus, bound, "k--", label=r"$\tau \log A / (1 - \gamma)$")
ax.axhline(uniform, color="grey", lw=0.8, label=r"$J^*_0 - J_0$(uniform)")
bx.loglog(taus, implicit, "o-", ms=4, color="C1", label="implicit term")
for a in (ax, bx):
    a.axvline(gap, color="C3", ls=":", label="smallest action gap")
    a.set_xlabel(r"entropy weight $\tau$")
    a.legend(fontsize=8)
ax.set_ylabel("loss of unregularized return")
bx.set_ylabel(r"$|\nabla\Phi_\tau - \nabla_x f|$")
fig.tight_layout()
plt.show()
