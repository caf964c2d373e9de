"""What eb.run takes from the caller: seeds of every kind numpy accepts, metrics callbacks
(copied, any fixed shape, checked at the first logging point), and clear errors otherwise."""

import numpy as np
import pytest

import exactbilevel as eb


def problem():
    mdp = eb.envs.random_mdp(5, 2, gamma=0.8, seed=0)
    rng = np.random.default_rng(0)
    return eb.BilevelProblem(mdp, eb.LinearReward(rng.normal(size=(5, 2, 2))),
                             eb.OccupancyObjective(mdp, rng.uniform(-1, 1, (5, 2)), kappa=0.1), [0.1, 0.2],
                             bounds=(-2, 2))


CFG = eb.ActorCriticConfig(steps=300, log_every=100, diagnostics=False)


@pytest.mark.parametrize("seed", [np.int64(3), np.uint8(3), np.int32(3)])
def test_numpy_integer_seeds_give_the_run_of_the_python_integer(seed, tmp_path):
    a, b = eb.run(problem(), CFG, seed=seed), eb.run(problem(), CFG, seed=3)
    np.testing.assert_array_equal(a["x"], b["x"])
    assert a.meta["seed"] == 3
    a.save(tmp_path / "run")
    assert eb.Trace.load(tmp_path / "run").meta["seed"] == 3


def test_a_seed_sequence_and_a_generator_are_accepted_and_recorded(tmp_path):
    ss = np.random.SeedSequence(7)
    c = eb.run(problem(), CFG, seed=ss)
    d = eb.run(problem(), CFG, seed=np.random.default_rng(np.random.SeedSequence(7)))
    np.testing.assert_array_equal(c["x"], d["x"])  # numpy: default_rng(ss) is default_rng of its entropy
    assert c.meta["seed"]["entropy"] == 7
    state = d.meta["seed"]["state"]
    assert d.meta["seed"]["generator"] == "PCG64"
    assert state["state"]["state"] == np.random.default_rng(np.random.SeedSequence(7)).bit_generator.state["state"]["state"]
    d.save(tmp_path / "gen")
    assert eb.Trace.load(tmp_path / "gen").meta["seed"]["generator"] == "PCG64"


@pytest.mark.parametrize("seed,error,match", [
    (-1, ValueError, "seed must be >= 0"), (1.5, TypeError, "seed must be an integer"),
    ("a", TypeError, "seed must be an integer"), (True, TypeError, "got bool"),
])
def test_bad_seeds_name_the_argument(seed, error, match):
    with pytest.raises(error, match=match):
        eb.run(problem(), CFG, seed=seed)


def test_a_metric_that_returns_a_view_logs_the_iterate_of_its_row():
    """The k = 0 row holds theta at k = 0 (zeros: the uniform policy), not a later theta."""
    tr = eb.run(problem(), CFG, metrics={"th": lambda st: st.theta.ravel(), "th2": lambda st: st.theta})
    np.testing.assert_array_equal(tr["th"][0], np.zeros(10))
    assert tr["th2"].shape == (4, 5, 2) and np.any(tr["th2"][-1] != 0)
    np.testing.assert_array_equal(tr["th2"].reshape(4, -1), tr["th"])


def test_a_metric_whose_shape_changes_or_that_is_no_number_is_an_error_naming_it():
    calls = []

    def growing(st):
        calls.append(st.k)
        return np.zeros(len(calls))

    with pytest.raises(ValueError, match=r"metrics\['g'\] returned shape \(2,\) at k = 100"):
        eb.run(problem(), CFG, metrics={"g": growing})
    assert calls == [0, 100]  # found at the second logging point, not after the run
    with pytest.raises(TypeError, match=r"metrics\['s'\] must return a number or a numeric array"):
        eb.run(problem(), CFG, metrics={"s": lambda st: "text"})


@pytest.mark.parametrize("bounds,match", [((np.zeros(3), np.ones(3)), r"bounds\[0\] must be a number or an array of shape \(2,\)"),
                                          (([[0, 0]], 1), r"bounds\[0\] must be .* got shape \(1, 2\)")])
def test_bounds_of_the_wrong_shape_name_the_side_and_the_shape(bounds, match):
    p = problem()
    with pytest.raises(ValueError, match=match):
        eb.BilevelProblem(p.mdp, p.reward, p.objective, p.x0, bounds=bounds)
