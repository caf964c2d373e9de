r"""
An exact hyper-gradient against finite differences
==================================================

:func:`exactbilevel.hypergradient` differentiates :math:`\Phi_\tau(x) = f(x,
\pi^*_\tau(x))` through the soft Bellman fixed point (:ref:`theory-hypergradient`),
in an adjoint form (one transposed linear solve) and a forward form (one solve per
coordinate of :math:`x`).  :func:`exactbilevel.testing.check_gradient` compares a
gradient with fourth-order central differences of the function.

The problem is a 6 x 6 GridWorld whose goal position :math:`x` is the upper-level
variable (a Gaussian reward bump at :math:`x`), with a designer cost on the
occupancy.  The plot shows the difference between the exact gradient and finite
differences with step :math:`h`: it falls like :math:`h^4` (the truncation error of
the five-point formula) until the rounding of :math:`\Phi_\tau` and the solver
tolerance, divided by :math:`h`, take over.
"""

import matplotlib.pyplot as plt
import numpy as np

import exactbilevel as eb
from exactbilevel.testing import check_gradient

grid = eb.envs.gridworld(n=6, targets=[(0, 5)], hazards=[(3, 3)], gamma=0.9)
reward = eb.GaussianGoalReward(grid.coords, grid.mdp.A, sigma=1.5)
cost = np.repeat(grid.cost()[:, None], grid.mdp.A, axis=1)  # -1 on the target, +1 on the hazard
f = eb.OccupancyObjective(grid.mdp, cost, kappa=0.1)
x, tau = np.array([2.3, 3.6]), 0.3


def phi(y):
    """Phi_tau(y), through an exact lower-level solve."""
    pi = eb.solve(grid.mdp, reward.value(y), tau=tau, tol=1e-12).pi
    return f.value(y, pi)


adjoint = eb.hypergradient(grid.mdp, reward, f, x, tau)
forward = eb.hypergradient(grid.mdp, reward, f, x, tau, form="forward")
print("adjoint:", adjoint, " forward:", forward, f" |difference| = {np.abs(adjoint - forward).max():.1e}")

report = check_gradient(phi, adjoint, x)
print(report)
assert report

steps = np.geomspace(1e-5, 0.3, 18)
errors = [check_gradient(phi, adjoint, x, step=h).error for h in steps]

fig, ax = plt.subplots(figsize=(6, 4))
ax.loglog(steps, errors, "o-", label="max |exact - finite differences|")
ref = steps[-4]
ax.loglog(steps, errors[-4] * (steps / ref) ** 4, "k--", lw=0.8, label=r"$\propto h^4$")
ax.axvline(report.step.min(), color="C3", ls=":", label="default step")
ax.set_xlabel("finite-difference step h")
ax.set_ylabel("error")
ax.set_ylim(bottom=min(errors) / 10)
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
