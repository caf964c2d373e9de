"""Upper-level objectives: values against dense references, grad_pi through the softmax
chain rule against finite differences, and their input checks."""

import numpy as np
import pytest
from conftest import examples
from hypothesis import given, settings
from hypothesis import strategies as st

import exactbilevel as eb
from exactbilevel.objectives import grad_theta
from exactbilevel.testing import check_gradient
from exactbilevel.testing import strategies as ebst
from test_gradients import objective_ref, softmax_ref


@st.composite
def cases(draw):
    mdp = draw(ebst.mdps(max_states=8, max_actions=4, gamma=(0.0, 0.95)))
    d = draw(st.integers(1, 3))
    obj = draw(ebst.objectives(mdp, d=d))
    theta = draw(ebst.rewards(mdp, scale=(1e-2, 3.0)))
    return mdp, obj, draw(ebst.xs(d)), theta


@settings(max_examples=examples(40))
@given(cases())
def test_value_and_gradients_match_references(case):
    mdp, obj, x, theta = case
    pi = softmax_ref(theta)
    assert obj.value(x, pi) == pytest.approx(objective_ref(obj, mdp, x, pi), rel=1e-10, abs=1e-12)
    S, A = theta.shape
    g = grad_theta(pi, obj.grad_pi(x, pi))
    # f can vanish to rounding (d = target); allow noise on the scale of its terms
    noise = 1e-9 * (1.0 + np.abs(getattr(obj, "cost", 0.0)).max())
    rt = check_gradient(lambda t: objective_ref(obj, mdp, x, softmax_ref(t.reshape(S, A))), g.ravel(), theta.ravel(),
                        atol=noise)
    assert rt, rt
    rx = check_gradient(lambda y: objective_ref(obj, mdp, y, pi), obj.grad_x(x, pi), x)
    assert rx, rx


def test_callable_objective_passes_values_through_and_checks_shapes():
    mdp = eb.envs.random_mdp(3, 2, seed=0)
    pi = np.full((3, 2), 0.5)
    obj = eb.CallableObjective(mdp, lambda x, p: float(x @ x + p[0, 0]), lambda x, p: 2 * x, lambda x, p: np.ones((3, 2)))
    assert obj.value(np.ones(2), pi) == 2.5
    np.testing.assert_array_equal(obj.grad_x(np.ones(2), pi), [2.0, 2.0])
    bad = eb.CallableObjective(mdp, lambda x, p: [1.0, 2.0], lambda x, p: np.zeros(3), lambda x, p: np.zeros((2, 3)))
    with pytest.raises(ValueError, match="value_fn must return a finite scalar"):
        bad.value(np.ones(2), pi)
    with pytest.raises(ValueError, match=r"grad_x_fn\(x, pi\) must have shape \(2,\)"):
        bad.grad_x(np.ones(2), pi)
    with pytest.raises(ValueError, match=r"grad_pi_fn\(x, pi\) must have shape \(3, 2\)"):
        bad.grad_pi(np.ones(2), pi)
    with pytest.raises(TypeError, match="grad_pi_fn must be callable"):
        eb.CallableObjective(mdp, len, len, None)


def test_objectives_validate_their_inputs():
    mdp = eb.envs.random_mdp(3, 2, seed=0)
    with pytest.raises(ValueError, match=r"cost must have shape \(3, 2\)"):
        eb.OccupancyObjective(mdp, np.ones(3))
    with pytest.raises(ValueError, match="kappa must be >= 0"):
        eb.OccupancyObjective(mdp, np.ones((3, 2)), kappa=-1.0)
    with pytest.raises(ValueError, match="target must sum to 1"):
        eb.DistributionMatchingObjective(mdp, np.ones(3))
    obj = eb.OccupancyObjective(mdp, np.ones((3, 2)), center=[1.0, 2.0])
    with pytest.raises(ValueError, match="x must have the length of center, d = 2"):
        obj.value(np.ones(3), np.full((3, 2), 0.5))
    with pytest.raises(ValueError, match=r"pi\[0, :\] sums to"):
        obj.grad_pi(np.ones(2), np.ones((3, 2)))


@pytest.mark.parametrize("returned,error,match", [
    ("1.0", TypeError, "got str '1.0'"),
    (None, TypeError, "got NoneType"),
    ({"a": 1}, TypeError, "got dict"),
    (1 + 2j, TypeError, "got complex"),
    (True, TypeError, "got bool"),
    ([[1.0], [1.0, 2.0]], TypeError, "got list"),
    ([1.0, 2.0], ValueError, r"of shape \(2,\)"),
    (np.nan, ValueError, "got nan"),
    (np.inf, ValueError, "got inf"),
])
def test_callable_objective_names_a_value_that_is_not_a_number(returned, error, match):
    mdp = eb.envs.random_mdp(3, 2, seed=0)
    obj = eb.CallableObjective(mdp, lambda x, p: returned, lambda x, p: 2 * x, lambda x, p: np.ones((3, 2)))
    with pytest.raises(error, match="value_fn must return a finite scalar") as exc:
        obj.value(np.ones(2), np.full((3, 2), 0.5))
    assert exc.match(match)


@pytest.mark.parametrize("returned", [np.float32(1.5), np.int64(3), np.array(2.5), 7])
def test_callable_objective_accepts_numpy_and_python_real_scalars(returned):
    mdp = eb.envs.random_mdp(3, 2, seed=0)
    obj = eb.CallableObjective(mdp, lambda x, p: returned, lambda x, p: 2 * x, lambda x, p: np.ones((3, 2)))
    value = obj.value(np.ones(2), np.full((3, 2), 0.5))
    assert type(value) is float and value == float(returned)
