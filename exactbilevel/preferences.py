"""Sequences as a prefix-tree MDP and a Bradley-Terry objective on them (docs/theory.rst, "Happy tweets").

**The prefix tree** (a choice of this package).  Sequences ``y = (y_1, ..., y_n)``
of ``n <= H`` tokens from a vocabulary of V words.  State = prefix (the empty
prefix is the root, states ordered by depth, then lexicographically:
``sum_{h <= H} V^h`` prefixes) plus one absorbing terminal state; action a < V
appends token a, action V (END) ends the sequence.  At depth H every action ends
it.  The sequence ending at prefix s is ``y(s)``: every prefix is one complete
sequence, so sequences and prefixes share their index ``s``.  A policy pi
generates ``y(s)`` from the root with probability::

    p_pi(y(s)) = P_pi(prefix s) * pi(END | s)   (depth < H),   P_pi(prefix s)   (depth H)

with ``P_pi(prefix)`` the product of pi along the path.  A reward paid on ending
at s, scaled by ``gamma^-depth(s)``, has the return from the root
``E_{y ~ p_pi}[reward(y)]`` exactly (:meth:`PrefixTree.sequence_features`); the
entropy regularization weights the decision at depth h by ``gamma^h``.

rho (``start``): the root (``"root"``: then, since prefix s is visited only at time
``depth(s)``, ``p_pi(y(s)) = sum_{a ends at s} nu^pi(s, a) / ((1 - gamma)
gamma^depth(s))``), or uniform over all states (``"uniform"``, exploring starts:
a sampled learner then visits every prefix, while the soft-optimal policy, which
does not depend on rho, and p_pi, which is generated from the root, stay the same).

**The Bradley-Terry objective** (:class:`BradleyTerryObjective`).  A reward model
``r_x(y) = x^T psi(y)`` scores sequences; a judge scores them ``v(y)`` and
prefers y to y' with probability ``q(y, y') = sigmoid((v(y) - v(y')) / T)``
(``T = 0``: 1, 1/2, 0 by the sign).  On pairs drawn from the policy::

    f(x, pi) = sum_{y, y'} p(y) p(y') l(y, y') + kappa/2 |x|^2,
    l(y, y') = -q log sigmoid(D) - (1 - q) log sigmoid(-D),   D = r_x(y) - r_x(y')

computed exactly by enumeration.  Its derivatives, with ``g(y) = df/dp(y) = 2
sum_{y'} l(y, y') p(y')`` and ``U(s) = sum_{y in the subtree of s} g(y) p(y) /
P_pi(prefix s)`` (bottom-up: ``U(s) = g(y(s)) pi(END|s) + sum_a pi(a|s) U(child(s, a))``,
``U(s) = g(y(s))`` at depth H; no division by pi, which may underflow)::

    grad_x f = 2 sum_y psi(y) sum_{y'} p(y) p(y') (sigmoid(D) - q) + kappa x
    df/dpi(a|s) = P_pi(prefix s) U(child(s, a))   (a a token, depth < H)
                = P_pi(prefix s) g(y(s))          (a = END, depth < H; every a at depth H,
                                                   where p = P(prefix) sum_a pi(a|s))

(each pi(a|s) a free coordinate), and the occupancy cost is the one of any
objective, :func:`~exactbilevel.objectives.cost_of_policy_gradient`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from ._validation import _real_scalar, as_float_array, check_int
from .evaluation import check_policy
from .mdp import TabularMDP
from .objectives import _Quadratic, _check_x, _frozen, cost_of_policy_gradient

__all__ = ["PrefixTree", "prefix_tree", "BradleyTerryObjective", "negation_features"]


@dataclass(frozen=True, eq=False)
class PrefixTree:
    """A prefix-tree MDP (module docstring) with its bookkeeping.

    Attributes
    ----------
    mdp : TabularMDP, sparse; S = N + 1 (N prefixes and the terminal state N), A = V + 1
    vocab : tuple of the V tokens (str)
    horizon : H
    parent : (N,) int, the parent prefix (-1 for the root)
    token : (N,) int, the last token of the prefix (-1 for the root)
    depth : (N,) int
    """

    mdp: TabularMDP
    vocab: tuple
    horizon: int
    parent: np.ndarray
    token: np.ndarray
    depth: np.ndarray

    @property
    def n_sequences(self):
        """N, the number of prefixes = of complete sequences."""
        return self.parent.size

    @property
    def end(self):
        """The END action, V."""
        return len(self.vocab)

    def _levels(self):
        """``[(start, stop)]`` of the prefixes of each depth 0..H (contiguous)."""
        edges = np.searchsorted(self.depth, np.arange(self.horizon + 2))
        return list(zip(edges[:-1].tolist(), edges[1:].tolist()))

    def sequences(self):
        """The token lists ``y(s)``, s = 0..N-1."""
        out = [()] * self.n_sequences
        for s in range(1, self.n_sequences):
            out[s] = out[self.parent[s]] + (int(self.token[s]),)
        return out

    def texts(self, sep=" "):
        """``y(s)`` as strings (the root: the empty string)."""
        return [sep.join(self.vocab[t] for t in y) for y in self.sequences()]

    def _ending(self):
        """(N, A) mask of the actions that end the sequence at each prefix."""
        mask = np.zeros((self.n_sequences, self.mdp.A), dtype=bool)
        mask[:, self.end] = True
        mask[self.depth == self.horizon, :] = True
        return mask

    def _children(self):
        """(N, V) child prefix of each (prefix, token) (meaningful below depth H)."""
        N, V = self.n_sequences, len(self.vocab)
        child = np.zeros((N, V), dtype=np.int64)
        inner = np.flatnonzero(self.depth > 0)
        child[self.parent[inner], self.token[inner]] = inner
        return child

    def _reach(self, pi):
        """``(P_pi(prefix s), p_pi(y(s)))`` for s = 0..N-1; pi validated."""
        N = self.n_sequences
        reach = np.empty(N)
        reach[0] = 1.0
        for lo, hi in self._levels()[1:]:  # a level's parents are on the level before
            par = self.parent[lo:hi]
            reach[lo:hi] = reach[par] * pi[par, self.token[lo:hi]]
        return reach, reach * np.where(self.depth == self.horizon, 1.0, pi[:N, self.end])

    def sequence_probabilities(self, pi):
        """``p_pi(y(s))`` for s = 0..N-1 (sums to 1); pi (S, A) validated."""
        return self._reach(check_policy(self.mdp, pi))[1]

    def sequence_features(self, psi):
        """MDP reward features ``Psi (S, A, d)`` with return ``x^T E_{y ~ p_pi} psi(y)``:
        ``psi(y(s)) / gamma^depth(s)`` on the actions that end at s, 0 elsewhere."""
        psi = as_float_array("psi", psi, shape=(self.n_sequences, None))
        Psi = np.zeros((self.mdp.S, self.mdp.A, psi.shape[1]))
        scaled = psi / self.mdp.gamma ** self.depth[:, None]
        ending = self._ending()
        Psi[: self.n_sequences] = np.where(ending[:, :, None], scaled[:, None, :], 0.0)
        return Psi

    def kl_to_uniform(self, pi):
        """``KL(p_pi || p_uniform) = sum_y p(y) log(p(y) / p_u(y))`` over sequences, with p_u
        the law of the uniform policy (the reference policy softmax(0))."""
        p = self.sequence_probabilities(pi)
        A = self.mdp.A
        p_u = np.where(self.depth == self.horizon, 1.0, 1.0 / A) * float(A) ** (-self.depth.astype(float))
        mask = p > 0
        return float(np.sum(p[mask] * (np.log(p[mask]) - np.log(p_u[mask]))))


def prefix_tree(vocab, horizon, gamma=0.9, start="root"):
    """The prefix-tree MDP of sequences of at most ``horizon`` tokens of ``vocab``.

    ``gamma`` (a choice: the discount weights the entropy of later decisions) must lie
    in (0, 1); the number of prefixes ``sum_h V^h`` must stay below 10^6.  ``start``:
    rho, ``"root"`` or ``"uniform"`` (module docstring).
    """
    if start not in ("root", "uniform"):
        raise ValueError(f'start must be "root" or "uniform" (rho), got {start!r}')
    if isinstance(vocab, (str, bytes)) or not isinstance(vocab, Iterable):
        raise TypeError(f"vocab must be a sequence of token strings, e.g. ['good', 'bad'], got "
                        f"{type(vocab).__name__} {vocab!r:.60}")
    vocab = tuple(vocab)
    if not vocab or not all(isinstance(w, str) and w for w in vocab):
        raise ValueError(f"vocab must be a non-empty sequence of non-empty strings, got {vocab!r:.200}")
    if len(set(vocab)) != len(vocab):
        raise ValueError(f"vocab must not repeat a token, got {vocab!r:.200}")
    H = check_int("horizon", horizon, minimum=1)
    gamma = _real_scalar("gamma", gamma)
    if not 0 < gamma < 1:
        raise ValueError(f"gamma must lie in (0, 1) (rewards are scaled by gamma^-depth), got {gamma}")
    V = len(vocab)
    N, term = (H + 1, 1) if V == 1 else (0, 1)  # sum_h V^h in Python ints (no int64 overflow), stopped early
    for _ in range(0 if V == 1 else H + 1):
        N += term
        term *= V
        if N > 10**6:
            break
    if N > 10**6:
        raise ValueError(f"the tree has more than 10^6 prefixes (sum of V^h for h = 0..{H}, V = {V} tokens); "
                         f"keep it below 10^6: reduce the horizon or the vocabulary")
    counts = V ** np.arange(H + 1, dtype=np.int64)
    offset = np.concatenate([[0], np.cumsum(counts)])
    depth = np.repeat(np.arange(H + 1), counts)
    index = np.arange(N) - offset[depth]  # position within the depth
    parent = np.where(depth > 0, offset[np.maximum(depth - 1, 0)] + index // V, -1)
    token = np.where(depth > 0, index % V, -1)
    A, S = V + 1, N + 1
    nxt = np.full((S, A), N)  # default: the terminal state
    inner = depth < H
    nxt[:N][inner, :V] = (offset[depth[inner] + 1] + index[inner] * V)[:, None] + np.arange(V)
    P = sp.csr_matrix((np.ones(S * A), nxt.ravel(), np.arange(S * A + 1)), shape=(S * A, S))
    rho = np.full(S, 1.0 / S)
    if start == "root":
        rho = np.zeros(S)
        rho[0] = 1.0
    mdp = TabularMDP(P, gamma, rho=rho)
    return PrefixTree(mdp, vocab, H, parent, token, depth)


def negation_features(tree, negations=("not",)):
    """``psi(y)`` (N, 2V): counts of each token not preceded by a negation word, then counts
    of each token right after one (``"not good"`` counts once in column V + good)."""
    neg = {i for i, w in enumerate(tree.vocab) if w in set(negations)}
    V = len(tree.vocab)
    psi = np.zeros((tree.n_sequences, 2 * V))
    for s in range(1, tree.n_sequences):
        p = tree.parent[s]
        psi[s] = psi[p]
        negated = p > 0 and int(tree.token[p]) in neg
        psi[s, tree.token[s] + (V if negated else 0)] += 1.0
    return psi


@dataclass(frozen=True, eq=False)
class BradleyTerryObjective(_Quadratic):
    """Bradley-Terry loss of a judge's preferences on pairs drawn from the policy (module
    docstring), exact by enumeration, plus ``kappa/2 |x|^2``.

    Parameters
    ----------
    tree : PrefixTree
    scores : (N,) the judge's score v(y(s)) of every sequence
    features : (N, d) the reward model's features psi, r_x(y) = x^T psi(y)
    kappa : float >= 0
    temperature : T >= 0 of the judge's preference probabilities (a choice; 0: hard labels)

    Cost: O(G^2) per call, G <= N the number of distinct (features, score) pairs (such
    sequences are interchangeable); the pair matrices of the last x are cached.
    """

    tree: PrefixTree
    scores: np.ndarray
    features: np.ndarray
    kappa: float = 0.0
    temperature: float = 0.1

    def __post_init__(self):
        if not isinstance(self.tree, PrefixTree):
            raise TypeError(f"tree must be a PrefixTree (eb.preferences.prefix_tree), got {type(self.tree).__name__}")
        N = self.tree.n_sequences
        scores = _frozen(as_float_array("scores", self.scores, shape=(N,)))
        psi = _frozen(as_float_array("features", self.features, shape=(N, None)))
        if psi.shape[1] == 0:
            raise ValueError("features must have at least one column, got shape (N, 0)")
        T = _real_scalar("temperature", self.temperature)
        if T < 0:
            raise ValueError(f"temperature must be >= 0 (0: hard labels), got {T}")
        # sequences with the same features and score are interchangeable: work on the classes
        classes, group = np.unique(np.column_stack([psi, scores]), axis=0, return_inverse=True)
        diff = classes[:, -1][:, None] - classes[:, -1][None, :]
        q = 0.5 * (1.0 + (np.tanh(diff / (2.0 * T)) if T > 0 else np.sign(diff)))  # sigmoid(diff / T)
        for name, value in (("scores", scores), ("features", psi), ("temperature", T), ("_group", group.ravel()),
                            ("_class_features", _frozen(classes[:, :-1])), ("_q", _frozen(q)), ("_cache", None)):
            object.__setattr__(self, name, value)
        self._init_psi(self.kappa, None)

    @property
    def mdp(self):
        return self.tree.mdp

    def _pairs(self, x):
        """``(l, sigmoid(D))`` between classes at x (cached for the last x)."""
        x = _check_x(x)
        d = self._class_features.shape[1]
        if x.size != d:
            raise ValueError(f"x must have length d = {d} (the columns of features), got shape {x.shape}")
        cache = self._cache
        if cache is not None and np.array_equal(cache[0], x):
            return cache[1], cache[2]
        r = self._class_features @ x
        D = r[:, None] - r[None, :]
        soft = np.logaddexp(0.0, D)
        loss = soft - self._q * D  # = -q log sigmoid(D) - (1 - q) log sigmoid(-D)
        sig = np.exp(D - soft)
        object.__setattr__(self, "_cache", (x.copy(), loss, sig))
        return loss, sig

    def _class_probabilities(self, pi):
        return np.bincount(self._group, weights=self.tree.sequence_probabilities(pi),
                           minlength=self._class_features.shape[0])

    def pair_losses(self, x):
        """``l(y, y')`` (N, N) at x."""
        return self._pairs(x)[0][np.ix_(self._group, self._group)]

    def value(self, x, pi):
        loss, _ = self._pairs(x)
        P = self._class_probabilities(pi)
        return float(P @ loss @ P) + self.psi(x)

    def grad_x(self, x, pi):
        _, sig = self._pairs(x)
        P = self._class_probabilities(pi)
        w = (sig - self._q) @ P * P
        return 2.0 * self._class_features.T @ w + self.kappa * _check_x(x)

    def grad_pi(self, x, pi):
        pi = check_policy(self.mdp, pi)
        loss, _ = self._pairs(x)
        tree = self.tree
        N, V = tree.n_sequences, tree.end
        g = (2.0 * loss @ self._class_probabilities(pi))[self._group]
        reach, _ = tree._reach(pi)
        inner = tree.depth < tree.horizon
        child = tree._children()
        # U(s) = W(s) / P(prefix s), bottom-up without dividing by pi (it may underflow to 0)
        U = g * np.where(inner, pi[:N, V], 1.0)
        for lo, hi in tree._levels()[-2::-1]:
            rows = np.arange(lo, hi)
            rows = rows[inner[rows]]
            U[rows] += np.sum(pi[rows, :V] * U[child[rows]], axis=1)
        out = np.zeros((self.mdp.S, self.mdp.A))
        out[:N][inner, :V] = reach[inner, None] * U[child[inner]]
        out[:N][inner, V] = reach[inner] * g[inner]
        out[:N][~inner, :] = (g * reach)[~inner, None]
        return out

    def occupancy_cost(self, x, pi):
        """The occupancy cost c (S, A) with ``grad_pi f = d^pi Q_c^pi`` at pi
        (:func:`~exactbilevel.objectives.cost_of_policy_gradient`)."""
        pi = check_policy(self.mdp, pi)
        return cost_of_policy_gradient(self.mdp, pi, self.grad_pi(x, pi))
