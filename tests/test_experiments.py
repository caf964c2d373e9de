"""Experiments and the command line: configurations, reduced runs of each experiment, workers."""

import json
from pathlib import Path

import numpy as np
import pytest

import exactbilevel as eb
from exactbilevel.__main__ import main
from exactbilevel.experiments import gridworld_goal as G
from exactbilevel.experiments.config import ConfigError, dumps, load

ROOT = Path(__file__).resolve().parents[1]

SMALL = """
steps = 2000
x0 = [6.0, 3.0]
seeds = 2
log_every = 1000
landscape_step = 3.0
oracle_steps = 4
tau_fixed = [0.3]
landscape_tau = 0.5
fd_inner = 200
"""


def test_committed_toml_is_the_default_configuration():
    assert load(G.GridworldGoal, ROOT / "experiments" / "gridworld-goal.toml") == load(G.GridworldGoal)
    assert load(G.GridworldGoal, dumps(load(G.GridworldGoal))) == load(G.GridworldGoal)


@pytest.mark.parametrize("text,message", [
    ("stepz = 3", "unknown key 'stepz'"),
    ('steps = "many"', "key 'steps' must be an integer"),
    ("steps = 1.5", "key 'steps' must be an integer"),
    ("gamma = true", "key 'gamma' must be a number"),
    ("gamma = 1.0", r"key 'gamma' must be in \[0, 1\)"),
    ("seeds = 0", "key 'seeds' must be an integer >= 1"),
    ("targets = [[1, 20]]", "key 'targets' must be a list of \\[row, col\\] cells"),
    ('actor = "sgd"', "key 'actor' must be \"pg\" or \"npg\""),
    ("steps = [", "not valid TOML"),
])
def test_bad_configurations_are_rejected_naming_the_key(text, message):
    with pytest.raises(ConfigError, match=message):
        load(G.GridworldGoal, text + "\n")


def test_the_command_line_rejects_a_bad_configuration_before_running(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("kappa = -1\n")
    with pytest.raises(SystemExit, match="key 'kappa' must be >= 0"):
        main(["run", "gridworld-goal", "--config", str(bad), "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("command", ["run", "sweep", "plot", "list", "config", "solve"])
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    assert "usage: exactbilevel " + command in capsys.readouterr().out


def test_list_names_the_experiments(capsys):
    main(["list"])
    assert "gridworld-goal" in capsys.readouterr().out


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gg")
    (out / "small.toml").write_text(SMALL)
    assert main(["run", "gridworld-goal", "--config", str(out / "small.toml"), "--out", str(out / "res"),
                 "--workers", "1", "--quiet"]) == 0
    return out / "res"


def test_reduced_gridworld_goal_writes_results_and_figures(small_run):
    summary = json.loads((small_run / "summary.json").read_text())
    assert summary["methods"] == ["decaying tau", "fixed tau = 0.3", "partial SGD", "finite differences",
                                  "hypergradient, decaying tau (oracle)", "hypergradient, tau = 0.3 (oracle)",
                                  "nested (oracle)"]
    for stem in ("landscape", "objective"):
        for ext in ("png", "pdf"):
            assert (small_run / f"{stem}.{ext}").stat().st_size > 1000
    runs = G.load_runs(small_run)
    assert [len(v) for v in runs.values()] == [2, 2, 2, 2, 1, 1, 1]
    land = np.load(small_run / "landscape.npz")
    assert land["phi0"].shape == (4, 4)  # x grid 0, 3, 6, 9
    # the logged Phi_tau at k = 0 (tau_0 = 0.5) is the landscape's at x0 (computed apart);
    # Phi_0 itself jumps where optimal actions tie (x0 on a cell centre), so it is not compared
    cfg = load(G.GridworldGoal, SMALL)
    i, j = (int(np.flatnonzero(np.isclose(land["grid"], v))[0]) for v in cfg.x0)
    assert runs["decaying tau"][0]["tau"][0] == cfg.landscape_tau
    assert runs["decaying tau"][0]["phi_tau"][0] == pytest.approx(land["phi_tau"][i, j], abs=1e-7)


def test_same_results_with_one_and_two_workers(small_run, tmp_path):
    (tmp_path / "small.toml").write_text(SMALL)
    main(["run", "gridworld-goal", "--config", str(tmp_path / "small.toml"), "--out", str(tmp_path / "res"),
          "--workers", "2", "--quiet"])
    for name in G.load_runs(small_run):
        for a, b in zip(G.load_runs(small_run)[name], G.load_runs(tmp_path / "res")[name]):
            for col in a.columns:
                if col != "time":
                    np.testing.assert_array_equal(a[col], b[col], err_msg=f"{name}: {col}")


def test_plot_redraws_the_figures(small_run, capsys):
    (small_run / "objective.png").unlink()
    assert main(["plot", str(small_run)]) == 0
    assert (small_run / "objective.png").exists()


TINY = """
steps = 600
seeds = 2
log_every = 300
landscape_step = 9.0
oracle_steps = 2
tau_fixed = [0.3]
fd_inner = 100
"""


def _traces(folder):
    return {name: [{c: t[c] for c in t.columns if c != "time"} for t in traces]
            for name, traces in G.load_runs(folder).items()}


def _same(a, b):
    assert a.keys() == b.keys()
    for name in a:
        for ta, tb in zip(a[name], b[name]):
            for col in ta:
                np.testing.assert_array_equal(ta[col], tb[col], err_msg=f"{name}: {col}")


def test_sweep_is_the_same_on_one_two_workers_and_a_dask_cluster(tmp_path):
    """Two grid points; results identical with 1 and 2 local workers and on a dask LocalCluster."""
    distributed = pytest.importorskip("distributed")
    (tmp_path / "base.toml").write_text(TINY)
    (tmp_path / "grid.toml").write_text("zeta0 = [0.005, 0.01]\n")
    common = ["sweep", "gridworld-goal", "--grid", str(tmp_path / "grid.toml"), "--config",
              str(tmp_path / "base.toml"), "--quiet"]
    main(common + ["--out", str(tmp_path / "w1"), "--workers", "1"])
    main(common + ["--out", str(tmp_path / "w2"), "--workers", "2"])
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        main(common + ["--out", str(tmp_path / "dask"), "--scheduler", cluster.scheduler_address])
    labels = sorted(p.name for p in (tmp_path / "w1").iterdir())
    assert labels == ["zeta0=0.005", "zeta0=0.01"]
    for label in labels:
        ref = _traces(tmp_path / "w1" / label)
        _same(ref, _traces(tmp_path / "w2" / label))
        _same(ref, _traces(tmp_path / "dask" / label))
    assert not np.array_equal(_traces(tmp_path / "w1" / labels[0])["decaying tau"][0]["x"],
                              _traces(tmp_path / "w1" / labels[1])["decaying tau"][0]["x"])


def test_sweep_rejects_a_bad_grid_before_running(tmp_path):
    (tmp_path / "grid.toml").write_text("zeta0 = [0.01, -1.0]\n")
    with pytest.raises(SystemExit, match="key 'zeta0' must be >= 0"):
        main(["sweep", "gridworld-goal", "--grid", str(tmp_path / "grid.toml"), "--out", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()
    (tmp_path / "grid.toml").write_text("zeta = [0.01]\n")
    with pytest.raises(SystemExit, match="unknown key 'zeta' in the sweep grid"):
        main(["sweep", "gridworld-goal", "--grid", str(tmp_path / "grid.toml"), "--out", str(tmp_path / "o")])


def test_committed_rates_toml_is_the_default_configuration():
    from exactbilevel.experiments import rates as R

    assert load(R.Rates, ROOT / "experiments" / "rates.toml") == load(R.Rates)


def test_reduced_rates_experiment_fits_slopes_and_draws_figures(tmp_path, capsys):
    """The penalty-bias slopes come out at -1 and -2 (as in tests/test_penalty.py, on another
    MDP), the entropy bias stays within its bound, the runs are judged over windows of
    1.5 decades or more (the verify machinery), and every figure is written."""
    (tmp_path / "r.toml").write_text('steps = 3000\nseeds = 2\nS = 6\nproblems = ["random"]\n')
    assert main(["run", "rates", "--config", str(tmp_path / "r.toml"), "--out", str(tmp_path / "res"),
                 "--workers", "1", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "penalty bias" in text and "stationarity of Phi_tau" in text
    rows = {r["quantity"]: r for r in json.loads((tmp_path / "res" / "summary.json").read_text())["rows"]}
    assert abs(rows["penalty bias"]["slope"] + 1) < 0.15
    assert abs(rows["penalty p_tau"]["slope"] + 2) < 0.2
    tau = np.load(tmp_path / "res" / "tau.npz")
    assert np.all(tau["entropy_bias"] >= -1e-9) and np.all(tau["entropy_bias"] <= tau["bound"] + 1e-9)
    claims = json.loads((tmp_path / "res" / "verdicts.json").read_text())["claims"]
    assert claims and all(c["k_range"][1] / c["k_range"][0] >= 10**1.5 * (1 - 1e-9) for c in claims
                          if c["slope"] == c["slope"])
    for stem in ("penalty-bias", "entropy-bias", "random-stationarity", "random-lower"):
        assert (tmp_path / "res" / f"{stem}.png").stat().st_size > 1000


def test_committed_happy_tweets_toml_is_the_default_configuration():
    from exactbilevel.experiments import happy_tweets as T

    assert load(T.HappyTweets, ROOT / "experiments" / "happy-tweets.toml") == load(T.HappyTweets)


@pytest.mark.parametrize("text,message", [
    ('start = "middle"', "key 'start' must be \"uniform\" or \"root\""),
    ("vocab = []", "key 'vocab' must be a list of distinct non-empty words"),
    ("horizon = 12", "key 'horizon' must be an integer >= 1 with len\\(vocab\\)\\^horizon <= 10\\^5"),
])
def test_bad_happy_tweets_configurations_are_rejected(text, message):
    from exactbilevel.experiments import happy_tweets as T

    with pytest.raises(ConfigError, match=message):
        load(T.HappyTweets, text + "\n")


def test_reduced_happy_tweets_writes_results_and_figures(tmp_path, capsys):
    """Every method runs and writes its columns and the figures; the summary's reference
    happiness and best score agree with VADER scored again here; RLHF's x is fitted once
    (away from 0) and stays there."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    from exactbilevel.experiments import happy_tweets as T

    (tmp_path / "t.toml").write_text("steps = 3000\nseeds = 2\nlog_every = 1000\nhorizon = 2\noracle_steps = 3\n"
                                     "linearize_every = 700\n")
    assert main(["run", "happy-tweets", "--config", str(tmp_path / "t.toml"), "--out", str(tmp_path / "res"),
                 "--workers", "1", "--quiet"]) == 0
    assert "RLHF" in capsys.readouterr().out
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert summary["methods"] == ["bilevel, decaying tau", "bilevel, tau = 1", "RLHF", "partial SGD",
                                  "hyper-gradient (oracle)"]
    for stem in ("happiness", "kl", "tradeoff"):
        assert (tmp_path / "res" / f"{stem}.png").stat().st_size > 1000
        assert (tmp_path / "res" / f"{stem}.pdf").exists()
    cfg = load(T.HappyTweets, tmp_path / "t.toml")
    tree = eb.preferences.prefix_tree(cfg.vocab, cfg.horizon, cfg.gamma, start=cfg.start)
    analyzer = SentimentIntensityAnalyzer()
    vader = np.array([analyzer.polarity_scores(t)["compound"] for t in tree.texts()])
    runs = T.load_runs(tmp_path / "res")
    for name, traces in runs.items():
        for tr in traces:
            assert tr["star"].shape == (len(tr["k"]), 3)
            assert np.all(tr["kl"] >= -1e-12) and np.all(np.abs(tr["happiness"]) <= 1)
    rlhf = runs["RLHF"][0]
    assert np.all(rlhf["x"] == rlhf["x"][0]) and np.any(rlhf["x"][0] != 0)
    uniform = np.full((tree.mdp.S, tree.mdp.A), 1 / tree.mdp.A)
    assert summary["reference_happiness"] == pytest.approx(float(tree.sequence_probabilities(uniform) @ vader))
    # the exact trade-off: RLHF's points are pi*_tau of the fitted x, scored here independently
    front = np.load(tmp_path / "res" / "frontier.npz")
    problem, _ = T.build(cfg)
    x = rlhf["x"][0]
    nxt = problem.mdp.P.indices.reshape(problem.mdp.S, problem.mdp.A)  # deterministic: one successor each
    for tau, (kl, happy) in zip(front["tau"], front["rlhf"]):
        pi = eb.solve(problem.mdp, problem.reward.value(x), float(tau), tol=1e-10).pi
        p = []
        for y in tree.sequences():  # the product of pi along the walk, then END unless at the horizon
            s, prob = 0, 1.0
            for t in y:
                s, prob = nxt[s, t], prob * pi[s, t]
            p.append(prob * (1.0 if len(y) == cfg.horizon else pi[s, len(cfg.vocab)]))
        assert happy == pytest.approx(float(np.array(p) @ vader), abs=1e-9)
        assert kl >= -1e-12 and np.all(np.abs(front["bilevel"][:, 1]) <= 1)
    assert summary["happiest"] == pytest.approx(vader.max())


def test_happy_tweets_without_vader_says_what_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "vaderSentiment", None)
    monkeypatch.setitem(sys.modules, "vaderSentiment.vaderSentiment", None)
    with pytest.raises(SystemExit, match=r'needs vaderSentiment: pip install "exactbilevel\[tweets\]"'):
        main(["run", "happy-tweets", "--out", str(tmp_path / "out")])
    assert not (tmp_path / "out").exists()
