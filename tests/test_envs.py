"""Environments: random MDPs, the GridWorld against a per-cell reference, Gymnasium tables."""

import time
import warnings
from collections import defaultdict
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import exactbilevel as eb
from exactbilevel.envs import from_gymnasium, gridworld, random_mdp


def dense(mdp):
    return mdp.P.toarray().reshape(mdp.S, mdp.A, mdp.S) if mdp.is_sparse else np.asarray(mdp.P)


# --------------------------------------------------------------------------- random_mdp


@settings(max_examples=30, deadline=None)
@given(
    S=st.integers(1, 12),
    A=st.integers(1, 4),
    data=st.data(),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_mdp_rows_and_successors(S, A, data, seed):
    k = data.draw(st.none() | st.integers(1, S))
    mdp = random_mdp(S, A, successors=k, seed=seed)
    assert (mdp.S, mdp.A) == (S, A)
    assert mdp.is_sparse == (k is not None)
    P = dense(mdp)
    np.testing.assert_allclose(P.sum(axis=2), 1.0, atol=1e-12)
    assert np.all((P > 0).sum(axis=2) == (S if k is None else k))


def test_random_mdp_reproducible_and_seed_dependent():
    for kwargs in ({}, {"successors": 3}, {"successors": 9}):
        a = dense(random_mdp(10, 3, seed=7, **kwargs))
        assert np.array_equal(a, dense(random_mdp(10, 3, seed=7, **kwargs)))
        assert np.array_equal(a, dense(random_mdp(10, 3, seed=np.random.default_rng(7), **kwargs)))
        assert not np.array_equal(a, dense(random_mdp(10, 3, seed=8, **kwargs)))
    assert np.array_equal(dense(random_mdp(6, 2, seed=1)), dense(random_mdp(6, 2, seed=1, successors=6)))
    assert np.array_equal(dense(random_mdp(6, 2, seed=1)), dense(random_mdp(6, 2, seed=1, sparse=True)))
    assert np.array_equal(
        dense(random_mdp(9, 2, seed=1, successors=2)), dense(random_mdp(9, 2, seed=1, successors=2, sparse=False))
    )


def test_random_mdp_storage_and_rho():
    assert not random_mdp(5, 2, successors=2, sparse=False).is_sparse
    assert random_mdp(5, 2, sparse=True).is_sparse
    rho = np.array([0.5, 0.5, 0, 0, 0])
    np.testing.assert_array_equal(random_mdp(5, 2, rho=rho).rho, rho)
    assert random_mdp(5, 2, gamma=0.5).gamma == 0.5


@pytest.mark.parametrize("S, k", [(200, 3), (20, 10)])  # the two subset samplers (k^2 <= S and k^2 > S)
def test_random_mdp_successors_uniform_and_dirichlet_weights(S, k):
    A = 40_000 // S
    P = random_mdp(S, A, successors=k, seed=3).P
    counts = np.bincount(P.indices, minlength=S)  # how often each state is a successor
    mean = S * A * k / S
    sd = np.sqrt(S * A * (k / S) * (1 - k / S))
    assert np.all(np.abs(counts - mean) < 5 * sd)
    # Dirichlet(1) over k: each weight is Beta(1, k - 1), mean 1/k, variance (k - 1) / (k^2 (k + 1)).
    var = (k - 1) / (k**2 * (k + 1))
    assert abs(P.data.mean() - 1 / k) < 5 * np.sqrt(var / P.nnz)
    assert abs(P.data.var() - var) < 0.1 * var


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"S": 0, "A": 2}, ValueError, "S must be >= 1"),
        ({"S": 3, "A": 0}, ValueError, "A must be >= 1"),
        ({"S": 3.0, "A": 2}, TypeError, "S must be an int"),
        ({"S": 3, "A": 2, "successors": 0}, ValueError, "successors must be >= 1"),
        ({"S": 3, "A": 2, "successors": 4}, ValueError, "successors must be <= S = 3"),
        ({"S": 3, "A": 2, "seed": "x"}, TypeError, "seed must be an int or a numpy.random.Generator"),
        ({"S": 3, "A": 2, "seed": -1}, ValueError, "seed must be >= 0"),
        ({"S": 3, "A": 2, "sparse": "yes"}, TypeError, "sparse must be None"),
        ({"S": 3, "A": 2, "gamma": 1.0}, ValueError, "gamma must lie in"),
        ({"S": 3, "A": 2, "rho": [1, 0]}, ValueError, "rho must have shape"),
    ],
)
def test_random_mdp_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        random_mdp(**kwargs)


# --------------------------------------------------------------------------- gridworld

MOVES = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1), "stay": (0, 0)}


def reference_kernel(n, slip, action_names, walls):
    """P[s, a, s'] from the textual rules, one cell at a time."""
    A = len(action_names)
    S = n * n
    P = np.zeros((S, A, S))
    for r in range(n):
        for c in range(n):
            s = r * n + c
            for a in range(A):
                if (r, c) in walls:
                    P[s, a, s] = 1.0
                    continue
                for b, name in enumerate(action_names):
                    dr, dc = MOVES[name]
                    rr, cc = r + dr, c + dc
                    if not (0 <= rr < n and 0 <= cc < n) or (rr, cc) in walls:
                        rr, cc = r, c
                    P[s, a, rr * n + cc] += (1 - slip) * (a == b) + slip / A
    return P


@st.composite
def grids(draw):
    n = draw(st.integers(1, 6))
    cells = [(r, c) for r in range(n) for c in range(n)]
    walls = draw(st.lists(st.sampled_from(cells), max_size=n * n - 1, unique=True))
    slip = draw(st.sampled_from([0.0, 1.0, 0.1, 0.37]))
    actions = draw(st.sampled_from([4, 5]))
    return n, slip, actions, walls


@settings(max_examples=60, deadline=None)
@given(grids())
def test_gridworld_matches_reference(args):
    n, slip, actions, walls = args
    grid = gridworld(n=n, slip=slip, actions=actions, walls=walls)
    assert grid.actions == ("up", "down", "left", "right", "stay")[:actions]
    ref = reference_kernel(n, slip, grid.actions, set(walls))
    np.testing.assert_allclose(dense(grid.mdp), ref, atol=1e-14)
    sparse = gridworld(n=n, slip=slip, actions=actions, walls=walls, sparse=True).mdp
    assert sparse.is_sparse and sparse.P.has_sorted_indices
    assert np.all(sparse.P.data > 0)
    np.testing.assert_allclose(dense(sparse), ref, atol=1e-14)
    free = np.ones(n * n, bool)
    free[[r * n + c for r, c in walls]] = False
    np.testing.assert_allclose(grid.mdp.rho, free / free.sum())


def test_gridworld_chosen_move_probability():
    grid = gridworld(n=3, slip=0.2, actions=4)
    centre = grid.state(1, 1)
    P = dense(grid.mdp)
    assert P[centre, grid.actions.index("up"), grid.state(0, 1)] == pytest.approx(0.8 + 0.2 / 4)
    assert P[centre, grid.actions.index("up"), grid.state(1, 2)] == pytest.approx(0.2 / 4)


def test_gridworld_helpers():
    grid = gridworld(n=3, walls=[(1, 1)], targets=[(0, 2), (0, 0)], hazards=[(2, 2)], gamma=0.9)
    assert grid.mdp.gamma == 0.9 and grid.n == 3 and grid.slip == 0.1
    assert grid.targets == ((0, 0), (0, 2)) and grid.walls == ((1, 1),)
    assert [grid.cell(s) for s in range(9)] == [(r, c) for r in range(3) for c in range(3)]
    assert all(grid.state(*grid.cell(s)) == s for s in range(9))
    np.testing.assert_array_equal(grid.coords, [grid.cell(s) for s in range(9)])
    assert not grid.coords.flags.writeable
    np.testing.assert_array_equal(grid.cost(), [-1, 0, -1, 0, 0, 0, 0, 0, 1])
    np.testing.assert_array_equal(grid.cost(target=-2, hazard=3)[[0, 8]], [-2, 3])
    down = grid.actions.index("down")
    assert grid.arrows(np.full(9, down)) == "↓↓↓\n↓#↓\n↓↓↓"
    pi = np.zeros((9, 5))
    pi[:, 1] = 0.4
    pi[np.arange(9), [0, 1, 2, 3, 4, 0, 1, 2, 3]] = 0.6
    assert grid.arrows(pi) == "↑↓←\n→#↑\n↓←→"


def test_gridworld_storage_default():
    assert not gridworld(n=30, actions=4).mdp.is_sparse
    assert gridworld(n=31, actions=4).mdp.is_sparse


def test_gridworld_n1000_builds_fast():
    start = time.perf_counter()
    grid = gridworld(n=1000, actions=4, slip=0.1, walls=[(500, 500)])
    elapsed = time.perf_counter() - start
    mdp = grid.mdp
    assert mdp.is_sparse and (mdp.S, mdp.A) == (10**6, 4)
    assert np.diff(mdp.P.indptr).max() <= 5
    assert elapsed < 10.0
    # a few rows against the per-cell rules, on the border, a corner and beside the wall
    for r, c in [(0, 0), (0, 999), (999, 3), (500, 499), (400, 400), (500, 500)]:
        s = r * 1000 + c
        for a, name in enumerate(grid.actions):
            expected = defaultdict(float)
            for b, other in enumerate(grid.actions):
                rr, cc = r + MOVES[other][0], c + MOVES[other][1]
                if (r, c) == (500, 500) or not (0 <= rr < 1000 and 0 <= cc < 1000) or (rr, cc) == (500, 500):
                    rr, cc = r, c
                expected[rr * 1000 + cc] += 0.9 * (a == b) + 0.1 / 4
            row = mdp.P[s * 4 + a]
            assert dict(zip(row.indices.tolist(), row.data.tolist())) == pytest.approx(dict(expected))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n": 0}, ValueError, "n must be >= 1"),
        ({"slip": 1.5}, ValueError, r"slip must be a probability in \[0, 1\]"),
        ({"slip": "0.1"}, TypeError, "slip must be a real number"),
        ({"actions": 3}, ValueError, "actions must be 4"),
        ({"gamma": 1.0}, ValueError, "gamma must lie in"),
        ({"targets": (3, 4)}, ValueError, r"targets must be a sequence of \(row, col\) pairs"),
        ({"hazards": [(0.5, 1)]}, TypeError, "hazards must be a sequence of"),
        ({"walls": [(1, 2, 3)]}, ValueError, "walls must be a sequence of"),
        ({"walls": [(10, 0)]}, ValueError, r"walls has cell \(10, 0\) outside the 10 x 10 grid"),
        ({"walls": [(1, 1)], "targets": [(1, 1)]}, ValueError, "walls and targets must not share cells"),
        ({"targets": [(2, 1)], "hazards": [(2, 1)]}, ValueError, "targets and hazards must not share"),
        ({"n": 1, "walls": [(0, 0)]}, ValueError, "walls must leave at least one free cell"),
        ({"sparse": 1}, TypeError, "sparse must be None"),
        ({"rho": np.ones(5)}, ValueError, "rho must have shape"),
    ],
)
def test_gridworld_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        gridworld(**kwargs)


def test_gridworld_helper_errors():
    grid = gridworld(n=3)
    with pytest.raises(ValueError, match=r"\(row, col\) = \(3, 0\) is outside the 3 x 3 grid"):
        grid.state(3, 0)
    with pytest.raises(ValueError, match="col must be >= 0"):
        grid.state(0, -1)
    with pytest.raises(ValueError, match="s must be < S = 9"):
        grid.cell(9)
    with pytest.raises(TypeError, match="s must be an int"):
        grid.cell(1.0)
    with pytest.raises(ValueError, match=r"pi_or_actions must be a policy of shape \(9, 5\)"):
        grid.arrows(np.zeros(8, dtype=int))
    with pytest.raises(ValueError, match="pi_or_actions must be a policy"):
        grid.arrows(np.full(9, 5))
    with pytest.raises(ValueError, match=r"pi_or_actions must have shape \(9, 5\)"):
        grid.arrows(np.zeros((9, 4)))
    with pytest.raises(TypeError, match="pi_or_actions of shape"):
        grid.arrows(np.zeros(9))
    with pytest.raises(ValueError, match="target must be finite"):
        grid.cost(target=np.nan)


# --------------------------------------------------------------------------- from_gymnasium


@pytest.fixture
def gym():
    return pytest.importorskip("gymnasium")


def reference_from_table(env):
    """P, r and rho accumulated from env.unwrapped.P with dicts, the absorbing state last."""
    table = env.unwrapped.P
    S_env, A = len(table), len(table[0])
    P = defaultdict(float)
    r = defaultdict(float)
    duplicates = False
    for s in range(S_env):
        for a in range(A):
            seen = set()
            for prob, nxt, rew, term in table[s][a]:
                duplicates |= nxt in seen
                seen.add(nxt)
                P[s, a, S_env if term else nxt] += prob
                r[s, a] += prob * rew
    for a in range(A):
        P[S_env, a, S_env] = 1.0
    S = S_env + 1
    P_arr, r_arr = np.zeros((S, A, S)), np.zeros((S, A))
    for key, value in P.items():
        P_arr[key] = value
    for key, value in r.items():
        r_arr[key] = value
    rho = np.append(env.unwrapped.initial_state_distrib, 0.0)
    return P_arr, r_arr, rho, duplicates


ENVS = [
    ("FrozenLake-v1", {"is_slippery": True}, "TimeLimit truncation after 100 steps", True),
    ("FrozenLake-v1", {"is_slippery": False}, "TimeLimit truncation after 100 steps", False),
    ("CliffWalking-v1", {}, None, False),
    ("CliffWalkingSlippery-v1", {}, None, True),
    ("Taxi-v4", {}, "TimeLimit truncation after 200 steps", False),
    ("Taxi-v4", {"fickle_passenger": True}, "fickle passenger", False),
]


@pytest.mark.parametrize("env_id, kwargs, warning, has_duplicates", ENVS)
def test_from_gymnasium_matches_table(gym, env_id, kwargs, warning, has_duplicates):
    env = gym.make(env_id, **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = from_gymnasium(env, 0.95)
    messages = [str(w.message) for w in caught]
    if warning is None:
        assert messages == []
    else:
        assert len(messages) == 1 and warning in messages[0]
    P_ref, r_ref, rho_ref, duplicates = reference_from_table(env)
    assert duplicates == has_duplicates
    mdp = out.mdp
    assert out.name == env_id and out.absorbing == mdp.S - 1 == len(env.unwrapped.P)
    np.testing.assert_allclose(dense(mdp), P_ref, atol=1e-15)
    np.testing.assert_allclose(dense(mdp).sum(axis=2), 1.0, atol=1e-12)
    np.testing.assert_allclose(out.reward, r_ref, atol=1e-12)
    np.testing.assert_array_equal(mdp.rho, rho_ref)
    assert np.all(dense(mdp)[out.absorbing, :, out.absorbing] == 1.0)
    assert np.all(out.reward[out.absorbing] == 0.0)
    assert not out.reward.flags.writeable


def test_from_gymnasium_cliff_and_unwrapped(gym):
    env = gym.make("CliffWalking-v1")
    out = from_gymnasium(env, 0.9, sparse=True)
    assert out.mdp.is_sparse
    start, right = 36, 1  # (3, 0); the cliff is (3, 1..10): back to the start, reward -100, no termination
    row = out.mdp.P[start * 4 + right]
    assert row.indices.tolist() == [start] and row.data.tolist() == [1.0]
    assert out.reward[start, right] == -100
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        from_gymnasium(gym.make("FrozenLake-v1").unwrapped, 0.9)


def fake_env(table, **attrs):
    return SimpleNamespace(unwrapped=SimpleNamespace(P=table, **attrs))


def test_from_gymnasium_hand_made_table():
    # state 0: two outcomes to state 1 (summed), one terminating; state 1 loops forever
    table = {
        0: {0: [(0.25, 1, 2.0, False), (0.25, 1, 4.0, False), (0.5, 0, -1.0, True)]},
        1: {0: [(1.0, 1, 0.0, False)]},
    }
    out = from_gymnasium(fake_env(table, initial_state_distrib=np.array([1.0, 0.0])), 0.5)
    assert out.absorbing == 2 and out.name == "SimpleNamespace"
    np.testing.assert_allclose(dense(out.mdp)[:, 0, :], [[0, 0.5, 0.5], [0, 1, 0], [0, 0, 1]])
    np.testing.assert_allclose(out.reward[:, 0], [0.25 * 2 + 0.25 * 4 - 0.5, 0, 0])
    no_end = {0: {0: [(1.0, 0, 1.0, False)]}}
    out = from_gymnasium(fake_env(no_end), 0.5, rho=[1.0])
    assert out.absorbing is None and out.mdp.S == 1


@pytest.mark.parametrize(
    "env, kwargs, error, match",
    [
        (object(), {}, TypeError, r"transition table env.unwrapped.P"),
        (fake_env({0: {0: [(1.0, 0, 0.0, False)]}}), {}, ValueError, "has no initial_state_distrib; pass rho"),
        (fake_env({0: {0: [(1.0, 0, 0.0, False)]}}), {"rho": [0.5, 0.5]}, ValueError, r"rho must have shape \(1,\)"),
        (fake_env({1: {0: []}}), {"rho": [1.0]}, ValueError, "must have the states 0, ..., S-1"),
        (fake_env({0: {0: []}, 1: {1: []}}), {"rho": [1, 0]}, ValueError, r"P\[1\] must be a dict with the actions"),
        (fake_env({0: {0: [(1.0, 3, 0.0, False)]}}), {"rho": [1.0]}, ValueError, r"next state 3, not an int in \[0, 1\)"),
        (fake_env({0: {0: [(1.0, 0, 0.0)]}}), {"rho": [1.0]}, ValueError, "expected \\(prob, next_state"),
        (fake_env({0: {0: [(1.0, 0, np.nan, False)]}}), {"rho": [1.0]}, ValueError, "has the reward nan; rewards must be finite"),
        (fake_env({0: {0: [(0.5, 0, 0.0, False)]}}), {"rho": [1.0]}, ValueError, r"probabilities of env.unwrapped.P\[0\]\[0\] sum to 0.5"),
        (fake_env({0: {0: [(1.5, 0, 0.0, False), (-0.5, 0, 0.0, False)]}}), {"rho": [1.0]}, ValueError, r"P\[0\]\[0\] has probability -0.5"),
        (fake_env({0: {0: [(1.0, 0, 0.0, False)]}}), {"gamma": 1.5}, ValueError, "gamma must lie in"),
        (fake_env({0: {0: [(1.0, 0, 0.0, False)]}}), {"rho": [1.0], "sparse": "no"}, TypeError, "sparse must be"),
    ],
)
def test_from_gymnasium_errors(env, kwargs, error, match):
    kwargs = {"gamma": 0.9, **kwargs}
    with pytest.raises(error, match=match):
        from_gymnasium(env, **kwargs)


def test_from_gymnasium_blackjack_has_no_table(gym):
    with pytest.raises(TypeError, match="BlackjackEnv has none"):
        from_gymnasium(gym.make("Blackjack-v1"), 0.9)


def test_envs_namespace():
    assert eb.envs.random_mdp is random_mdp and eb.envs.gridworld is gridworld
    assert isinstance(gridworld(n=2), eb.envs.GridWorld)
    assert isinstance(random_mdp(2, 2, successors=1).P, sp.csr_matrix)


@pytest.mark.parametrize(
    "table, match",
    [
        ({0: {0: [("a", 0, 0.0, False)]}}, r"P\[0\]\[0\]\[0\] has the probability 'a'; it must be a real number"),
        ({0: {0: [([1.0], 0, 0.0, False)]}}, r"P\[0\]\[0\]\[0\] has the probability \[1.0\]"),
        ({0: {0: [(1.0, 0, None, False)]}}, r"P\[0\]\[0\]\[0\] has the reward None; it must be a finite real"),
        ({0: {0: [(1.0, 0, "1", False)]}}, r"has the reward '1'"),
        ({0: {0: [(1.0, 0, np.inf, False)]}}, r"P\[0\]\[0\] has the reward inf; rewards must be finite"),
        ({0: {0: [(1.0, 0, 0.0, "no")]}}, r"terminated = 'no'; it must be True or False"),
        ({0: {0: [(1.0, True, 0.0, False)]}}, r"next state True, not an int"),
        ({0: {0: 5}}, r"P\[0\]\[0\] must be a list of outcomes \(prob, next_state, reward, terminated\), got int"),
        ({0: {0: "abcd"}}, r"P\[0\]\[0\] must be a list of outcomes .* got str"),
        ({0: {0: [(1.0, 0)]}}, r"entry \(1.0, 0\) at position 0; expected \(prob"),
        ({0: {0: ["abcd"]}}, r"entry 'abcd' at position 0"),
    ],
)
def test_from_gymnasium_names_the_bad_entry_of_a_malformed_table(table, match):
    with pytest.raises(ValueError, match=match):
        from_gymnasium(fake_env(table), 0.9, rho=[1.0])


@pytest.mark.parametrize("distrib, total", [([1.0, 1.0], 2.0), ([0.25, 0.25], 0.5), ([0.0, 0.0], 0.0)])
def test_from_gymnasium_names_an_initial_distribution_that_does_not_sum_to_one(distrib, total):
    table = {0: {0: [(1.0, 1, 0.0, True)]}, 1: {0: [(1.0, 1, 0.0, False)]}}  # with an absorbing state added
    with pytest.raises(ValueError, match=rf"env.unwrapped.initial_state_distrib sums to {total!r}, not 1.*pass rho"):
        from_gymnasium(fake_env(table, initial_state_distrib=np.array(distrib)), 0.9)
    with pytest.raises(ValueError, match=rf"^rho sums to {total!r}, not 1.*over the environment's 2 states"):
        from_gymnasium(fake_env(table), 0.9, rho=distrib)


def test_from_gymnasium_accepts_numpy_scalars_in_the_table():
    table = {0: {0: [(np.float32(0.5), np.int64(0), np.float64(1.0), np.bool_(False)), (0.5, 0, 3, False)]}}
    out = from_gymnasium(fake_env(table), 0.9, rho=[1.0])
    assert out.reward[0, 0] == 0.5 * 1.0 + 0.5 * 3
