"""The n x n GridWorld of docs/theory.rst, "GridWorld goal position".

Conventions
-----------
* Cells are ``(row, col)`` pairs, row 0 at the top; state ``s = row * n + col``.
* Actions, in this order: ``up`` (row - 1), ``down`` (row + 1), ``left``
  (col - 1), ``right`` (col + 1) and, when ``actions=5``, ``stay``.
* Slip: with probability ``1 - slip`` the chosen move is made, with probability
  ``slip`` a move drawn uniformly among the ``A`` actions, so the chosen move
  has probability ``1 - slip + slip / A``:

      P(s' | s, a) = (1 - slip) [t(s, a) = s'] + (slip / A) #{b : t(s, b) = s'}

  where ``t(s, b)`` is the cell reached by move b.
* Walls reflect: a move off the grid or into a wall cell leaves the agent in
  place (``t(s, b) = s``).
* Wall cells stay in the state space (so ``s = row * n + col`` holds for every
  cell) but are never entered from a free cell; every action self-loops on a
  wall cell, and the default ``rho`` is uniform over the free cells (0 on
  walls), so walls carry zero occupancy.
* ``targets``, ``hazards`` and ``walls`` are given as ``(row, col)`` pairs and
  stored as sorted tuples of distinct pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .._validation import _real_scalar, as_float_array, check_gamma, check_int
from ..mdp import TabularMDP
from .random_mdp import _check_sparse_flag, _finish

__all__ = ["GridWorld", "gridworld"]

_NAMES = ("up", "down", "left", "right", "stay")
_DELTAS = np.array([(-1, 0), (1, 0), (0, -1), (0, 1), (0, 0)])
_ARROWS = {"up": "↑", "down": "↓", "left": "←", "right": "→", "stay": "·"}
# Every move from s lands in one of the columns s + (-n, -1, 0, +1, +n), in
# increasing order (n >= 2); _SLOT[b] is the position of move b in that list.
_SLOT = np.array([0, 4, 1, 3, 2])
_STAY_SLOT = 2


@dataclass(frozen=True, eq=False, repr=False)
class GridWorld:
    """A GridWorld built by :func:`gridworld`.

    Attributes
    ----------
    mdp : TabularMDP
        ``S = n * n`` states, ``A = len(actions)`` actions.
    coords : ndarray (S, 2), read-only
        ``coords[s] = (row, col)`` of state s, as floats (for
        :class:`~exactbilevel.GaussianGoalReward`).
    n : int
        Side of the grid.
    actions : tuple of str
        Action names, index a of the MDP is ``actions[a]``.
    targets, hazards, walls : tuple of (row, col)
        Sorted cells.
    slip : float
        Probability of a uniformly random move.
    """

    mdp: TabularMDP
    coords: np.ndarray
    n: int
    actions: tuple
    targets: tuple
    hazards: tuple
    walls: tuple
    slip: float

    def state(self, row, col) -> int:
        """``row * n + col``."""
        row = check_int("row", row, minimum=0)
        col = check_int("col", col, minimum=0)
        if row >= self.n or col >= self.n:
            raise ValueError(f"(row, col) = ({row}, {col}) is outside the {self.n} x {self.n} grid")
        return row * self.n + col

    def cell(self, s) -> tuple:
        """``(row, col) = divmod(s, n)``."""
        s = check_int("s", s, minimum=0)
        if s >= self.n * self.n:
            raise ValueError(f"s must be < S = {self.n * self.n}, got {s}")
        return divmod(s, self.n)

    def cost(self, target=-1.0, hazard=1.0) -> np.ndarray:
        """Designer cost ``u`` of docs/theory.rst, "GridWorld goal position", shape ``(S,)``.

        ``u[s] = target`` on target cells, ``hazard`` on hazard cells, 0 elsewhere.
        """
        u = np.zeros(self.n * self.n)
        u[_flat(self.targets, self.n)] = _real_scalar("target", target)
        u[_flat(self.hazards, self.n)] = _real_scalar("hazard", hazard)
        return u

    def arrows(self, pi_or_actions) -> str:
        """The action of every cell drawn on the grid, one text line per row.

        ``pi_or_actions`` is a policy ``(S, A)`` (its greedy action, first on
        ties, is drawn) or integer actions ``(S,)``.  Symbols: ↑ ↓ ← → for the
        moves, · for stay, # for walls.
        """
        S, A = self.mdp.S, self.mdp.A
        try:
            arr = np.asarray(pi_or_actions)
        except (ValueError, TypeError):  # a ragged sequence
            raise ValueError(f"pi_or_actions must be a policy of shape ({S}, {A}) or {S} integer actions, "
                             "got a ragged sequence") from None
        if arr.ndim == 2:
            greedy = np.argmax(as_float_array("pi_or_actions", arr, shape=(S, A)), axis=1)
        elif arr.ndim == 1:
            if arr.dtype.kind not in "iu":
                raise TypeError(
                    f"pi_or_actions of shape (S,) must hold integer actions, got dtype {arr.dtype}"
                )
            if arr.shape != (S,) or arr.size == 0 or arr.min() < 0 or arr.max() >= A:
                raise ValueError(
                    f"pi_or_actions must be a policy of shape ({S}, {A}) or {S} actions in [0, {A}), "
                    f"got shape {arr.shape}" + (f" with values in [{arr.min()}, {arr.max()}]" if arr.size else "")
                )
            greedy = arr
        else:
            raise ValueError(
                f"pi_or_actions must be a policy of shape ({S}, {A}) or actions of shape ({S},), "
                f"got shape {arr.shape}"
            )
        chars = np.array([_ARROWS[name] for name in self.actions])[greedy]
        chars[_flat(self.walls, self.n)] = "#"
        return "\n".join("".join(line) for line in chars.reshape(self.n, self.n))

    def __repr__(self):
        return (
            f"GridWorld(n={self.n}, actions={len(self.actions)}, slip={self.slip}, "
            f"targets={len(self.targets)}, hazards={len(self.hazards)}, walls={len(self.walls)}, "
            f"mdp={self.mdp!r})"
        )


def _flat(cells, n):
    """State indices ``row * n + col`` of ``(row, col)`` cells, int64 ``(len(cells),)``."""
    return np.array([r * n + c for r, c in cells], dtype=np.int64)


def _cells(name, value, n):
    """``value`` as a sorted tuple of distinct ``(row, col)`` int pairs inside the n x n grid."""
    try:
        arr = np.asarray(value)
    except ValueError:  # ragged
        arr = np.asarray(value, dtype=object)
    if arr.size == 0:
        return ()
    if arr.dtype.kind not in "iu":
        raise TypeError(
            f"{name} must be a sequence of (row, col) integer pairs, e.g. {name}=[(0, 1)], got {value!r}"
        )
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(
            f"{name} must be a sequence of (row, col) pairs, e.g. {name}=[(0, 1)] for one cell, "
            f"got an array of shape {arr.shape}"
        )
    bad = (arr < 0) | (arr >= n)
    if bad.any():
        cell = tuple(int(v) for v in arr[np.flatnonzero(bad.any(axis=1))[0]])
        raise ValueError(
            f"{name} has cell {cell} outside the {n} x {n} grid; rows and columns run from 0 to {n - 1}"
        )
    return tuple(sorted({(int(r), int(c)) for r, c in arr}))


def _kernel(n, A, slip, wall):
    """CSR ``(S*A, S)`` GridWorld kernel, built without a loop over states.

    ``wall`` is the ``(S,)`` boolean wall mask.  Every row of state s is stored on
    the columns ``s + (-n, -1, 0, +1, +n)`` (sorted), zeros dropped.
    """
    S = n * n
    s = np.arange(S)
    row, col = s // n, s % n
    nr = row[:, None] + _DELTAS[:A, 0]
    nc = col[:, None] + _DELTAS[:A, 1]
    inside = (nr >= 0) & (nr < n) & (nc >= 0) & (nc < n)
    target = np.where(inside, nr * n + nc, s[:, None])
    moves = inside & ~wall[target] & ~wall[:, None]
    slot = np.where(moves, _SLOT[:A], _STAY_SLOT)  # (S, A): slot of t(s, b)
    hit = slot[:, :, None] == np.arange(5)  # (S, A, 5)
    probs = hit * (1.0 - slip)
    probs += (slip / A) * hit.sum(axis=1)[:, None, :]
    keep = probs > 0
    offsets = np.array([-n, -1, 0, 1, n])
    index_dtype = np.int32 if 5 * S * A < 2**31 else np.int64
    columns = (s[:, None] + offsets).astype(index_dtype)
    indices = np.broadcast_to(columns[:, None, :], probs.shape)[keep]
    indptr = np.zeros(S * A + 1, dtype=index_dtype)
    np.cumsum(keep.sum(axis=2).ravel(), out=indptr[1:])
    return sp.csr_matrix((probs[keep], indices, indptr), shape=(S * A, S))


def gridworld(
    n=10,
    slip=0.1,
    gamma=0.95,
    actions=5,
    targets=(),
    hazards=(),
    walls=(),
    sparse=None,
    rho=None,
):
    """The n x n GridWorld of docs/theory.rst, "GridWorld goal position" (conventions in the module docstring).

    Parameters
    ----------
    n : int
        Side of the grid (>= 1); ``S = n * n``.
    slip : float
        Probability in [0, 1] of a uniformly random move instead of the chosen one.
    gamma : float
        Discount in [0, 1).
    actions : {4, 5}
        up, down, left, right, and stay when 5.
    targets, hazards, walls : sequence of (row, col)
        Cells; they must not overlap.  Walls reflect.
    sparse : bool, optional
        CSR storage if True, dense if False; None means dense for n <= 30.
    rho : array_like of shape (n * n,), optional
        Initial distribution; None means uniform over the free (non-wall) cells.

    Returns
    -------
    GridWorld
    """
    n = check_int("n", n, minimum=1)
    slip = _real_scalar("slip", slip)
    if not 0.0 <= slip <= 1.0:
        raise ValueError(f"slip must be a probability in [0, 1], got {slip}")
    gamma = check_gamma(gamma)
    A = check_int("actions", actions)
    if A not in (4, 5):
        raise ValueError(f"actions must be 4 (up, down, left, right) or 5 (with stay), got {A}")
    sparse = _check_sparse_flag(sparse)
    if sparse is None:
        sparse = n > 30
    cells = {
        "targets": _cells("targets", targets, n),
        "hazards": _cells("hazards", hazards, n),
        "walls": _cells("walls", walls, n),
    }
    for a, b in (("walls", "targets"), ("walls", "hazards"), ("targets", "hazards")):
        common = sorted(set(cells[a]) & set(cells[b]))
        if common:
            raise ValueError(f"{a} and {b} must not share cells, both contain {common[0]}")
    S = n * n
    wall = np.zeros(S, dtype=bool)
    wall[_flat(cells["walls"], n)] = True
    if wall.all():
        raise ValueError("walls must leave at least one free cell")
    if rho is None:
        rho = (~wall) / np.count_nonzero(~wall)
    mdp = _finish(_kernel(n, A, slip, wall), gamma, rho, sparse)
    s = np.arange(S)
    coords = np.stack((s // n, s % n), axis=1).astype(np.float64)
    coords.setflags(write=False)
    return GridWorld(mdp, coords, n, _NAMES[:A], cells["targets"], cells["hazards"], cells["walls"], slip)
