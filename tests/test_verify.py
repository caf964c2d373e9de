"""`exactbilevel verify`: the reduced run end to end, resuming, the scale check, and the
claim pipeline on synthetic traces with known slopes."""

import json
import math

import numpy as np
import pytest

from exactbilevel.__main__ import main
from exactbilevel.experiments import verify as V
from exactbilevel.experiments.config import ConfigError, load
from exactbilevel.trace import Trace


def _rule(lo, hi, p):
    """The rule of docs/theory.rst, "Rates and verdicts", written out here independently of exactbilevel.rates.verdict."""
    if lo > p:
        return "inconsistent"
    if hi < 0:
        return "consistent (tight)" if lo <= p <= hi else "consistent"
    return "inconclusive"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("verify") / "res"
    assert main(["verify", "--quick", "--out", str(out), "--workers", "2", "--quiet"]) == 0
    return out


def test_quick_verify_judges_every_claim_by_the_rule(quick):
    doc = json.loads((quick / "verdicts.json").read_text())
    expected = {(s, q, f) for s, claims in V.CLAIMS.items() for _, q in claims for f in V.FORMS}
    got = {(c["setting"], c["quantity"], c["form"]) for c in doc["claims"]}
    assert got == expected
    for c in doc["claims"]:
        assert c["n_seeds"] == V.QUICK["seeds"]
        if not math.isfinite(c["slope"]):  # a quantity not defined somewhere: inconclusive, with its reason
            assert c["label"] == "inconclusive" and c["diagnostic"]
            continue
        assert math.log10(c["k_range"][1] / c["k_range"][0]) >= 1.5 - 1e-9  # the window
        assert c["k_range"][1] == V.QUICK["steps"]
        assert c["label"] == _rule(c["ci"][0], c["ci"][1], c["theory"])
        assert c["theory"] == V.THEORY[c["setting"]]
        transient = c["form"] == "average" and c["slope"] < V.TRANSIENT_SLOPE
        assert transient == ("dominated by its early excess" in c["diagnostic"])
        assert c["stable"] == ("has not stabilized" not in c["diagnostic"])
        if not transient and c["stable"]:
            assert c["label"].startswith("consistent") == (c["diagnostic"] == "")
    assert doc["scales"][0]["ok"] and doc["scales"][0]["problem"] == "random"
    assert [r["zeta_decay"] for r in doc["sweep"]] == V.QUICK["sweep_zeta_decay"]
    for r in doc["sweep"]:
        assert r["exact"]["ci"] is None and r["batch 1"]["ci"] is not None  # deterministic: no interval
        assert r["noise_exponent"] == pytest.approx(-r["zeta_decay"] + 0.2)  # lam_k ~ k^0.1 (eb.defaults)
    for stem in ("random-stationarity", "random-lower", "sweep"):
        assert (quick / f"{stem}.png").stat().st_size > 10_000


def test_quick_verify_resumes_without_running_again(quick, capsys):
    runs = sorted((quick / "runs").rglob("seed*.npz"))
    stamps = [p.stat().st_mtime_ns for p in runs]
    before = json.loads((quick / "verdicts.json").read_text())["claims"]
    assert main(["verify", "--quick", "--out", str(quick), "--workers", "1", "--quiet"]) == 0
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    assert json.loads((quick / "verdicts.json").read_text())["claims"] == before
    text = capsys.readouterr().out
    assert "stationarity of Phi_tau" in text and "schedule sweep" in text


def test_a_problem_that_is_not_well_scaled_is_refused_before_any_run(tmp_path, capsys):
    (tmp_path / "v.toml").write_text('problems = ["random"]\nmargin = 0.49\n')
    with pytest.raises(SystemExit) as err:
        main(["verify", "--config", str(tmp_path / "v.toml"), "--out", str(tmp_path / "o"), "--quiet"])
    assert err.value.code == 2
    message = capsys.readouterr().err
    assert "not well scaled" in message and "margin" in message and "\n" not in message.strip()
    assert not (tmp_path / "o" / "runs").exists()


@pytest.mark.parametrize("text,key", [("decades = 1.0", "decades"), ('problems = ["maze"]', "problems"),
                                      ("steps = 10", "steps"), ('sampling = "mcmc"', "sampling")])
def test_bad_verify_configurations_are_rejected(text, key):
    with pytest.raises(ConfigError, match=f"key '{key}'"):
        load(V.Verify, text + "\n")


def test_committed_verify_toml_is_the_default_configuration():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    assert load(V.Verify, root / "experiments" / "verify.toml") == load(V.Verify)


def _synthetic(slope, noise, seeds=10, n_dec=6, per=10, seed=0):
    """Traces whose quantities are k^slope times log-normal noise, independent over seeds."""
    rng = np.random.default_rng(seed)
    k = np.unique(np.rint(10 ** (np.arange(n_dec * per + 1) / per)).astype(np.int64))
    k = np.concatenate([[0], k])
    out = []
    for _ in range(seeds):
        cols = {"k": k, "x": np.zeros((k.size, 3)), "tau": np.full(k.size, 0.5), "lam": (k + 1.0) ** 0.1}
        base = (k + 1.0) ** slope
        for q in ("grad_phi_norm2", "residual_phi", "residual_theta", "critic_error_phi", "critic_error_theta",
                  "pl_bound", "min_pi", "entropy_bias", "kkt_residual"):
            cols[q] = base * np.exp(noise * rng.standard_normal(k.size))
        out.append(Trace(cols, {"resolved": {"zeta": "Power(c0=0.1, p=0.3)"}}))
    return out


@pytest.mark.parametrize("slope,noise,expected", [
    (-0.6, 0.05, "consistent"),      # faster than the bound k^-1/3, clearly decaying
    (-0.05, 0.02, "inconsistent"),   # slower than the bound, with a tight interval
    (-0.1, 3.0, "inconclusive"),     # noise so large that the interval reaches 0 and covers -1/3
])
def test_the_last_iterate_verdict_of_synthetic_power_laws(slope, noise, expected):
    """The three verdicts of docs/theory.rst, "Rates and verdicts" on synthetic runs with a known slope (fixed tau: -1/3)."""
    rows = V.judge(_synthetic(slope, noise), "synthetic", "fixed tau", prob=_box_problem())
    last = [r for r in rows if r.quantity == "grad_phi_norm2" and r.form == "last iterate"][0]
    assert last.verdict == expected
    assert last.k_range[1] == 1e6
    assert math.log10(last.k_range[1] / last.k_range[0]) >= 1.5
    if expected != "inconclusive":
        assert abs(last.slope - slope) < 0.05
    assert (last.diagnostic == "") == (expected == "consistent")  # the last iterate: no transient note
    assert last.stable or expected == "inconclusive"  # a straight line in log-log
    # the running average of a k^slope curve (slope > -1) decays at the same rate, asymptotically
    avg = [r for r in rows if r.quantity == "grad_phi_norm2" and r.form == "average"][0]
    if expected == "consistent":
        assert abs(avg.slope - slope) < 0.1


def _box_problem():
    return V.problem(load(V.Verify), "random")


def test_an_average_dominated_by_its_start_is_flagged():
    """v = 1 + 10^6 [k < 100]: the last iterate is flat, the average falls like 1/K (slope
    about -1 while the excess dominates), so the claim is 'consistent' only through the start,
    and the note says so with the last iterate's slope (0 here)."""
    traces = _synthetic(0.0, 0.01)
    cols = {name: np.array(traces[0][name]) for name in traces[0].columns}
    bump = 1.0 + 1e6 * (cols["k"] < 100)
    traces = [Trace({**{n: np.array(t[n]) for n in t.columns}, "grad_phi_norm2": bump * np.array(t["grad_phi_norm2"])},
                    dict(t.meta)) for t in traces]
    rows = V.judge(traces, "synthetic", "fixed tau", prob=_box_problem())
    avg = [r for r in rows if r.quantity == "grad_phi_norm2" and r.form == "average"][0]
    assert avg.slope < -0.95 and avg.verdict == "consistent"
    assert "dominated by its early excess" in avg.diagnostic
    last = float(avg.diagnostic.rsplit("slope is ", 1)[1].rstrip(")"))
    assert abs(last) < 0.01


def test_a_bending_curve_is_not_stable():
    """k^-0.6 up to k = 10^5, then flat: over [10^4.5, 10^6] the fitted slope is still moving
    as the window's end advances, and the claim says so."""
    traces = _synthetic(0.0, 0.01)
    out = []
    for t in traces:
        k = np.array(t["k"], dtype=float)
        bend = np.minimum(k + 1.0, 1e5) ** -0.6
        out.append(Trace({**{n: np.array(t[n]) for n in t.columns}, "grad_phi_norm2": bend * np.array(t["grad_phi_norm2"])},
                         dict(t.meta)))
    rows = V.judge(out, "synthetic", "fixed tau", prob=_box_problem())
    last = [r for r in rows if r.quantity == "grad_phi_norm2" and r.form == "last iterate"][0]
    assert not last.stable and "has not stabilized" in last.diagnostic
    assert last.stability[1] - last.stability[0] > 0.3


def test_the_fast_steps_configuration_loads_and_changes_only_the_exponents():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    cfg = load(V.Verify, root / "experiments" / "verify-fast-steps.toml")
    prob = V.problem(cfg, "random")
    fast, base = V.settings(cfg, prob)["fixed tau"], V.settings(load(V.Verify, 'problems = ["random"]\n'), prob)["fixed tau"]
    assert set(fast) - set(base) == {"alpha", "beta", "zeta", "lam"}
    resolved = V.resolved_tau0(cfg, prob)[1].config
    for name, p in (("alpha", 0.5), ("beta", 0.4), ("zeta", 0.8), ("lam", -0.2)):
        assert fast[name].p == p and fast[name].c0 == getattr(resolved, name).c0  # coefficient as resolved


def test_fewer_seeds_in_a_used_folder_judge_only_their_own_runs(quick, tmp_path):
    """A rerun with 3 seeds in the folder of the 10-seed quick run: the verdicts use those 3
    (the other 7 files stay on disk but belong to another configuration)."""
    import shutil

    out = tmp_path / "res"
    shutil.copytree(quick, out)
    assert main(["verify", "--quick", "--seeds", "3", "--out", str(out), "--workers", "1", "--quiet"]) == 0
    doc = json.loads((out / "verdicts.json").read_text())
    assert {c["n_seeds"] for c in doc["claims"]} == {3}
    assert doc["seeds"] == 3 and [len(v) for g, v in doc["runs"].items() if "/" in g] == [3, 3]
    from exactbilevel.experiments.verify import _load
    assert all(len(traces) == 3 for g, traces in _load(out)[1].items() if "/" in g)  # the figures' runs too
