"""Tabular MDPs read from Gymnasium toy-text environments (FrozenLake, CliffWalking, Taxi).

Only the transition table ``env.unwrapped.P`` and the initial distribution
``env.unwrapped.initial_state_distrib`` are read; gymnasium itself is never
imported (it is an optional dependency) and the environment is never stepped
or reset.
"""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .._validation import as_float_array, check_gamma
from ..mdp import ROW_SUM_TOL, TabularMDP
from .random_mdp import _check_sparse_flag, _finish

__all__ = ["GymnasiumMDP", "from_gymnasium"]

#: Wrappers that only check call order or API use; they change no dynamics.
_PASSIVE_WRAPPERS = frozenset({"OrderEnforcing", "PassiveEnvChecker"})


@dataclass(frozen=True, eq=False, repr=False)
class GymnasiumMDP:
    """Result of :func:`from_gymnasium`.

    Attributes
    ----------
    mdp : TabularMDP
        ``S = S_env + 1`` states when some transition terminates (the last one
        absorbing), else ``S_env``.
    reward : ndarray (S, A), read-only
        Expected reward ``r(s, a) = sum_i prob_i * reward_i`` over the table's outcomes.
    absorbing : int or None
        Index ``S_env`` of the absorbing state, None when nothing terminates.
    name : str
        ``env.spec.id``, or the environment's class name.
    """

    mdp: TabularMDP
    reward: np.ndarray
    absorbing: int | None
    name: str

    def __repr__(self):
        return f"GymnasiumMDP(name={self.name!r}, absorbing={self.absorbing}, mdp={self.mdp!r})"


def _table(env):
    base = getattr(env, "unwrapped", env)
    table = getattr(base, "P", None)
    if not isinstance(table, Mapping):
        raise TypeError(
            f"env must be a Gymnasium toy-text environment with a transition table env.unwrapped.P "
            f"(dict state -> dict action -> list of (prob, next_state, reward, terminated)), such as "
            f"FrozenLake-v1, CliffWalking-v1 or Taxi-v4; {type(base).__name__} has none"
        )
    S = len(table)
    if S == 0 or set(table) != set(range(S)):
        raise ValueError(
            f"env.unwrapped.P must have the states 0, ..., S-1 as keys, got keys {list(table)[:5]}..."
        )
    A = len(table[0]) if isinstance(table[0], Mapping) else 0
    for s in range(S):
        if not isinstance(table[s], Mapping) or A == 0 or set(table[s]) != set(range(A)):
            raise ValueError(
                f"env.unwrapped.P[{s}] must be a dict with the actions 0, ..., A-1 as keys, the same A "
                f"for every state (A = {A} from state 0)"
            )
    return base, table, S, A


_ENTRY = "(prob, next_state, reward, terminated)"


def _real(value):
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _outcomes(table, S, A):
    """Flat arrays ``(row = s * A + a, next_state, prob, reward, terminated)`` over every listed outcome.

    Each ``table[s][a]`` must be a list (or tuple) of ``(prob, next_state, reward, terminated)``
    with a real prob and reward, an int next state in [0, S) and a bool terminated; anything
    else is a ValueError naming the entry and what it must be."""
    flat = []
    for s in range(S):
        for a in range(A):
            where = f"env.unwrapped.P[{s}][{a}]"
            items = table[s][a]
            if isinstance(items, (str, bytes)) or not isinstance(items, Sequence):
                raise ValueError(f"{where} must be a list of outcomes {_ENTRY}, got {type(items).__name__} {items!r:.60}")
            for i, item in enumerate(items):
                if isinstance(item, (str, bytes)) or not isinstance(item, Sequence) or len(item) != 4:
                    raise ValueError(f"{where} has the entry {item!r:.60} at position {i}; expected {_ENTRY}, a tuple of 4")
                prob, nxt, rew, term = item
                if not _real(prob):
                    raise ValueError(f"{where}[{i}] has the probability {prob!r:.60}; it must be a real number in [0, 1]")
                if not _real(rew):
                    raise ValueError(f"{where}[{i}] has the reward {rew!r:.60}; it must be a finite real number")
                if isinstance(nxt, (bool, np.bool_)) or not isinstance(nxt, numbers.Integral) or not 0 <= nxt < S:
                    raise ValueError(f"{where}[{i}] has next state {nxt!r:.60}, not an int in [0, {S})")
                if not isinstance(term, (bool, np.bool_)):
                    raise ValueError(f"{where}[{i}] has terminated = {term!r:.60}; it must be True or False")
                flat.append((s * A + a, int(nxt), float(prob), float(rew), bool(term)))
    if not flat:
        raise ValueError("env.unwrapped.P lists no outcome at all; every (s, a) needs at least one")
    row, nxt, prob, rew, term = (np.array(col) for col in zip(*flat))
    bad = ~np.isfinite(rew)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"env.unwrapped.P[{row[i] // A}][{row[i] % A}] has the reward {float(rew[i])!r}; rewards must be finite"
        )
    bad = ~(np.isfinite(prob) & (prob >= 0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"env.unwrapped.P[{row[i] // A}][{row[i] % A}] has probability {float(prob[i])!r}; "
            "probabilities must be finite and >= 0"
        )
    return row, nxt, prob, rew, term


def _dropped_dynamics(env, base):
    """Descriptions of what the table does not capture: wrappers and known extra dynamics."""
    dropped = []
    wrapper = env
    while wrapper is not base and hasattr(wrapper, "env"):
        steps = getattr(wrapper, "_max_episode_steps", None)
        if steps is not None:
            dropped.append(
                f"TimeLimit truncation after {steps} steps (the MDP is the untruncated discounted one)"
            )
        elif type(wrapper).__name__ not in _PASSIVE_WRAPPERS:
            dropped.append(f"the {type(wrapper).__name__} wrapper (only env.unwrapped.P is read)")
        wrapper = wrapper.env
    if getattr(base, "fickle_passenger", False):
        dropped.append(
            "Taxi's fickle passenger (a random change of destination applied in step(), not in the table)"
        )
    return dropped


def from_gymnasium(env, gamma, rho=None, sparse=False):
    """The discounted tabular MDP and expected reward of a Gymnasium toy-text environment.

    Reads ``table = env.unwrapped.P`` (``table[s][a]`` a list of
    ``(prob, next_state, reward, terminated)``) with ``S_env`` states and A
    actions:

    * ``P(s' | s, a) = sum of prob over the outcomes of (s, a) going to s'``
      (the table may list one next state several times; they are summed);
    * an outcome with ``terminated=True`` goes instead to one extra absorbing
      state ``S_env``, where every action self-loops with reward 0 (episodes are
      not restarted);
    * ``r(s, a) = sum of prob * reward`` over the outcomes of (s, a): the reward
      of a transition is earned on it, whether or not it terminates.  Only the
      mean is kept.

    ``rho`` is ``env.unwrapped.initial_state_distrib`` padded with 0 for the
    absorbing state.  Dynamics the table encodes are kept as listed, e.g.
    CliffWalking's fall off the cliff (reward -100 and a non-terminating move
    back to the start).  What it does not encode is dropped with a
    ``UserWarning`` saying so: ``TimeLimit`` truncation (FrozenLake-v1,
    Taxi-v4 via ``gymnasium.make``), any other non-passive wrapper, and Taxi's
    ``fickle_passenger``.

    Parameters
    ----------
    env : gymnasium.Env
        The environment object (wrapped or not), e.g. ``gymnasium.make("FrozenLake-v1")``.
    gamma : float
        Discount in [0, 1).
    rho : array_like of shape (S_env,), optional
        Initial distribution over the environment's states; required when the
        environment has no ``initial_state_distrib`` (it is never estimated by
        resetting), and overrides it otherwise.
    sparse : bool
        CSR storage if True, dense (default) if False.

    Returns
    -------
    GymnasiumMDP
    """
    gamma = check_gamma(gamma)
    sparse = _check_sparse_flag(sparse)
    base, table, S_env, A = _table(env)
    name_rho = "rho"
    if rho is None:
        rho = getattr(base, "initial_state_distrib", None)
        name_rho = "env.unwrapped.initial_state_distrib"
        if rho is None:
            raise ValueError(
                f"{type(base).__name__} has no initial_state_distrib; pass rho, an array of shape "
                f"({S_env},) with the initial distribution (it is not estimated by resetting)"
            )
    rho = as_float_array(name_rho, rho, shape=(S_env,), nonneg=True)
    total = float(rho.sum())
    if not abs(total - 1.0) <= ROW_SUM_TOL:
        raise ValueError(
            f"{name_rho} sums to {total!r}, not 1 (tolerance {ROW_SUM_TOL}); pass rho, a probability distribution "
            f"over the environment's {S_env} states (shape ({S_env},), entries >= 0 summing to 1)"
        )
    row, nxt, prob, rew, term = _outcomes(table, S_env, A)
    sums = np.bincount(row, weights=prob, minlength=S_env * A)
    if np.any(np.abs(sums - 1.0) > ROW_SUM_TOL):
        bad = int(np.flatnonzero(np.abs(sums - 1.0) > ROW_SUM_TOL)[0])
        raise ValueError(
            f"the probabilities of env.unwrapped.P[{bad // A}][{bad % A}] sum to {float(sums[bad])!r}, not 1 "
            f"(tolerance {ROW_SUM_TOL})"
        )
    reward = np.zeros(S_env * A)
    np.add.at(reward, row, prob * rew)
    absorbing = S_env if term.any() else None
    if absorbing is not None:
        nxt = np.where(term, absorbing, nxt)
        row = np.concatenate((row, absorbing * A + np.arange(A)))
        nxt = np.concatenate((nxt, np.full(A, absorbing)))
        prob = np.concatenate((prob, np.ones(A)))
        reward = np.concatenate((reward, np.zeros(A)))
        rho = np.append(rho, 0.0)
    S = S_env + (absorbing is not None)
    P = sp.coo_matrix((prob, (row, nxt)), shape=(S * A, S))
    mdp = _finish(P, gamma, rho, sparse)
    reward = reward.reshape(S, A)
    reward.setflags(write=False)
    dropped = _dropped_dynamics(env, base)
    spec = getattr(env, "spec", None)
    name = getattr(spec, "id", None) or type(base).__name__
    if dropped:
        warnings.warn(f"from_gymnasium({name}): dropped " + "; ".join(dropped), UserWarning, stacklevel=2)
    return GymnasiumMDP(mdp, reward, absorbing, name)
