"""``python -m exactbilevel``: solve the default 10 x 10 GridWorld exactly.

Solves the GridWorld of spec section 6.1 (goal bump at the far corner) at
tau = 0 and tau = 0.1 and prints V*, the greedy policy as arrows, the certified
error bound, the Bellman residual and the time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from . import GaussianGoalReward, envs, solve


def main(argv=None):
    parser = argparse.ArgumentParser(prog="exactbilevel", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10, help="side of the grid (default 10)")
    parser.add_argument("--gamma", type=float, default=0.95, help="discount (default 0.95)")
    parser.add_argument("--tol", type=float, default=1e-10, help="certified tolerance on V (default 1e-10)")
    args = parser.parse_args(argv)

    grid = envs.gridworld(n=args.n, gamma=args.gamma)
    goal = np.array([args.n - 1.0, args.n - 1.0])
    corner = args.n - 1
    r = GaussianGoalReward(grid.coords, grid.mdp.A, sigma=1.0).value(goal)
    print(f"GridWorld {args.n} x {args.n}, slip 0.1, gamma {args.gamma}, reward bump at cell ({corner}, {corner})")
    np.set_printoptions(precision=2, suppress=True, linewidth=120)
    for tau in (0.0, 0.1):
        t0 = time.perf_counter()
        sol = solve(grid.mdp, r, tau=tau, tol=args.tol)
        dt = time.perf_counter() - t0
        print(f"\ntau = {tau}: method {sol.method}, {sol.iterations} iterations, "
              f"residual {sol.residual:.2e}, certified |V - V*| <= {sol.error_bound:.2e}, {dt * 1e3:.1f} ms")
        print("V* =")
        print(sol.V.reshape(args.n, args.n))
        print("greedy policy:")
        print(grid.arrows(sol.pi))
    print("\n(times include Numba compilation on the first run after an install; later runs load the cache)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
