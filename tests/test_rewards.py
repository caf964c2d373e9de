"""Rewards: values against direct loops, Jacobians against central finite differences."""

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import exactbilevel as eb

SETTINGS = settings(max_examples=40, deadline=None)
sizes = st.integers(1, 4)
seeds = st.integers(0, 2**32 - 1)


def central_difference(f, x, h):
    """``(f(x + h e_i) - f(x - h e_i)) / (2h)`` stacked on a last axis."""
    cols = []
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        cols.append((f(x + e) - f(x - e)) / (2 * h))
    return np.stack(cols, axis=-1)


@SETTINGS
@given(S=sizes, A=sizes, d=sizes, seed=seeds)
def test_linear_value_and_jacobian(S, A, d, seed):
    rng = np.random.default_rng(seed)
    Psi = rng.normal(size=(S, A, d))
    x = rng.normal(size=d)
    reward = eb.LinearReward(Psi)
    assert (reward.S, reward.A, reward.d) == (S, A, d)
    r = reward.value(x)
    assert r.shape == (S, A) and r.dtype == np.float64
    for s in range(S):
        for a in range(A):
            assert r[s, a] == pytest.approx(sum(Psi[s, a, i] * x[i] for i in range(d)), abs=1e-12)
    J = reward.jacobian(x)
    assert J.shape == (S, A, d)
    np.testing.assert_allclose(J, central_difference(reward.value, x, 1e-3), atol=1e-9)


def test_linear_reward_is_immutable_and_owns_its_features():
    Psi = np.ones((2, 3, 2))
    reward = eb.LinearReward(Psi)
    Psi[0, 0, 0] = 5.0  # the caller's array stays writable and is not shared
    assert reward.value(np.array([1.0, 0.0]))[0, 0] == 1.0
    with pytest.raises(ValueError):
        reward.jacobian(np.zeros(2))[0, 0, 0] = 2.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        reward.Psi = Psi


@SETTINGS
@given(S=sizes, A=sizes, seed=seeds)
def test_tabular_value_and_jacobian(S, A, seed):
    x = np.random.default_rng(seed).normal(size=S * A)
    reward = eb.TabularReward(S, A)
    assert reward.d == S * A
    r = reward.value(x)
    for s in range(S):
        for a in range(A):
            assert r[s, a] == x[s * A + a]
    J = reward.jacobian(x)
    assert J.shape == (S, A, S * A)
    np.testing.assert_allclose(J, central_difference(reward.value, x, 1e-3), atol=1e-9)


@SETTINGS
@given(S=sizes, A=sizes, k=st.integers(1, 3), sigma=st.floats(0.5, 3.0), seed=seeds)
def test_gaussian_value_and_jacobian(S, A, k, sigma, seed):
    rng = np.random.default_rng(seed)
    coords = rng.uniform(0, 4, size=(S, k))
    x = rng.uniform(0, 4, size=k)
    reward = eb.GaussianGoalReward(coords, A, sigma=sigma)
    assert (reward.S, reward.A, reward.d) == (S, A, k)
    r = reward.value(x)
    assert r.shape == (S, A)
    for s in range(S):
        dist2 = sum((coords[s, i] - x[i]) ** 2 for i in range(k))
        for a in range(A):
            assert r[s, a] == pytest.approx(math.exp(-dist2 / (2 * sigma**2)), rel=1e-12)
    J = reward.jacobian(x)
    assert J.shape == (S, A, k)
    np.testing.assert_allclose(J, central_difference(reward.value, x, 1e-5), atol=1e-8)


def test_gaussian_default_sigma_on_a_grid():
    grid = eb.envs.gridworld(n=3)
    reward = eb.GaussianGoalReward(grid.coords, grid.mdp.A)
    r = reward.value(np.array([1.0, 2.0]))
    assert r[grid.state(1, 2)].tolist() == [1.0] * 5
    assert r[grid.state(0, 0), 0] == pytest.approx(math.exp(-5 / 2))


REWARDS = [
    (lambda: eb.LinearReward(np.ones((2, 2, 3))), 3),
    (lambda: eb.TabularReward(2, 2), 4),
    (lambda: eb.GaussianGoalReward(np.zeros((4, 2)), 3), 2),
]


@pytest.mark.parametrize("make, d", REWARDS)
@pytest.mark.parametrize("method", ["value", "jacobian"])
def test_x_is_validated(make, d, method):
    f = getattr(make(), method)
    with pytest.raises(ValueError, match=rf"x must be a vector of length d = {d}, shape \({d},\), got shape \({d + 1},\)"):
        f(np.zeros(d + 1))
    with pytest.raises(ValueError, match=rf"x must be a vector of length d = {d}"):
        f(np.zeros((d, 1)))
    bad = np.zeros(d)
    bad[-1] = np.nan
    with pytest.raises(ValueError, match="x has a NaN or infinite entry"):
        f(bad)
    with pytest.raises(TypeError, match="x must have a real numeric dtype"):
        f(np.zeros(d, dtype=complex))


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: eb.LinearReward(np.ones((2, 3))), ValueError, r"Psi must have shape \(\*, \*, \*\)"),
        (lambda: eb.LinearReward(np.ones((2, 0, 3))), ValueError, "Psi must have no empty dimension"),
        (lambda: eb.LinearReward(np.full((1, 1, 1), np.inf)), ValueError, "Psi has a NaN or infinite"),
        (lambda: eb.LinearReward("features"), TypeError, "Psi must be a real numeric array"),
        (lambda: eb.TabularReward(0, 2), ValueError, "S must be >= 1"),
        (lambda: eb.TabularReward(2, 1.5), TypeError, "A must be an int"),
        (lambda: eb.GaussianGoalReward(np.zeros(4), 2), ValueError, r"coords must have shape \(\*, \*\)"),
        (lambda: eb.GaussianGoalReward(np.zeros((4, 2)), 0), ValueError, "A must be >= 1"),
        (lambda: eb.GaussianGoalReward(np.zeros((4, 2)), 2, sigma=0.0), ValueError, "sigma must be > 0"),
        (lambda: eb.GaussianGoalReward(np.zeros((4, 2)), 2, sigma=np.nan), ValueError, "sigma must be finite"),
    ],
)
def test_constructor_errors(make, error, match):
    with pytest.raises(error, match=match):
        make()
