"""The command line's user errors: exit status 2 and one line on stderr, never a traceback,
and nothing computed (or written) before the input is checked.

The experiments' ``run_experiment`` and the GridWorld builder are replaced by functions that
fail the test if called: every input here must be rejected before any computation.
"""

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

import exactbilevel as eb
from exactbilevel.__main__ import UserError, main
from exactbilevel.experiments import EXPERIMENTS
from exactbilevel.experiments.config import ConfigError, check_value, load
from exactbilevel.testing import strategies as ebst

ROOT = Path(__file__).resolve().parents[1]
AS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


class Computed(AssertionError):
    pass


def _refuse(*args, **kwargs):
    raise Computed("the command line started computing on an input it should have rejected")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A scratch folder as the working directory, and no experiment or GridWorld can be computed."""
    tmp = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)
        for module, _, _ in EXPERIMENTS.values():
            mp.setattr(module, "run_experiment", _refuse)
        mp.setattr(eb.envs, "gridworld", _refuse)
        yield tmp


def cli(argv):
    """``(exit status, stderr)`` of ``main(argv)`` run in-process."""
    err, out = io.StringIO(), io.StringIO()
    with redirect_stderr(err), redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = exc.code
    return code, err.getvalue()


def assert_user_error(argv, *words):
    """Exit status 2, exactly one line on stderr (no traceback) containing every one of ``words``."""
    code, err = cli(argv)
    lines = err.splitlines()
    assert code == 2, (argv, code, err)
    assert len(lines) == 1 and "Traceback" not in err, (argv, err)
    assert lines[0].startswith("exactbilevel"), lines
    for w in words:
        assert w in lines[0], (w, lines[0])
    return lines[0]


# --------------------------------------------------------------------------- configuration values


@pytest.mark.parametrize("experiment,text,key,what", [
    ("gridworld-goal", "targets = [1, 2]", "targets", "[integer, integer] arrays"),
    ("gridworld-goal", "xbar = [[1, 2], [3, 4]]", "xbar", "2 finite numbers"),
    ("gridworld-goal", 'x0 = ["a", "b"]', "x0", "2 finite numbers"),
    ("gridworld-goal", "x0 = [1.0, 2.0, 3.0]", "x0", "2 finite numbers"),
    ("gridworld-goal", 'tau_fixed = ["a"]', "tau_fixed", "finite numbers"),
    ("gridworld-goal", "gamma = nan", "gamma", "finite"),
    ("gridworld-goal", "hazards = [[1, 2.5]]", "hazards", "[integer, integer] arrays"),
    ("gridworld-goal", "n = [10]", "n", "an integer"),
    ("gridworld-goal", "[table]\nn = 1", "table", "unknown key"),
    ("happy-tweets", 'frontier_taus = ["a", "b"]', "frontier_taus", "2 finite numbers"),
    ("happy-tweets", "frontier_taus = [1.0]", "frontier_taus", "2 finite numbers"),
    ("happy-tweets", "vocab = [1, 2]", "vocab", "strings"),
    ("happy-tweets", "horizon = 1000000000000", "horizon", "len(vocab)^horizon"),
    ("rates", "S = 2.0", "S", "an integer"),
])
def test_a_wrongly_typed_configuration_value_is_one_line(workdir, experiment, text, key, what):
    (workdir / "bad.toml").write_text(text + "\n")
    assert_user_error(["run", experiment, "--config", "bad.toml", "--out", "out"], repr(key), what)
    assert not (workdir / "out").exists()


def test_the_schema_accepts_every_committed_configuration():
    """The committed TOML files and the defaults fit their schemas (load would refuse them otherwise)."""
    for name, (_, cls, _) in EXPERIMENTS.items():
        assert load(cls, ROOT / "experiments" / f"{name}.toml") == load(cls)


@pytest.mark.parametrize("value,schema,ok", [
    (3, int, True), (3.0, int, False), (True, int, False), (3, float, True), (True, float, False),
    (float("inf"), float, False), ("a", str, True), (1, str, False), (False, bool, True), (0, bool, False),
    ([1, 2], ("array", int, None), True), ([1, "a"], ("array", int, None), False), (1, ("array", int, None), False),
    ([1, 2, 3], ("array", float, 2), False), ([[1, 2]], ("array", ("array", int, 2), None), True),
    ([[1, 2, 3]], ("array", ("array", int, 2), None), False), ([1, 2], ("array", ("array", int, 2), None), False),
])
def test_check_value_against_hand_written_cases(value, schema, ok):
    if ok:
        assert check_value("k", value, schema) == (tuple(tuple(v) if isinstance(v, list) else v for v in value)
                                                   if isinstance(value, list) else value)
    else:
        with pytest.raises(ConfigError, match="key 'k' must be"):
            check_value("k", value, schema)


# --------------------------------------------------------------------------- paths


def test_out_naming_an_existing_file(workdir):
    (workdir / "afile").write_text("x")
    assert_user_error(["run", "gridworld-goal", "--out", "afile"], "--out", "not a folder")
    assert (workdir / "afile").read_text() == "x"


def test_out_under_a_regular_file_is_unwritable_even_for_root(workdir):
    (workdir / "afile").write_text("x")
    assert_user_error(["run", "gridworld-goal", "--out", "afile/sub"], "--out", "cannot create")
    assert_user_error(["sweep", "gridworld-goal", "--grid", _grid(workdir, "zeta0 = [0.1]"), "--out", "afile/sub"],
                      "--out")


def test_out_under_proc_is_unwritable_even_for_root(workdir):
    if not Path("/proc/self").is_dir():
        pytest.skip("no /proc on this system")
    assert_user_error(["run", "gridworld-goal", "--out", "/proc/self/exactbilevel-test"], "--out")


@pytest.mark.skipif(AS_ROOT, reason="root ignores permission bits: a chmod 555 folder stays writable")
def test_a_read_only_out_is_found_before_computing(workdir):
    ro = workdir / "readonly"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        assert_user_error(["run", "gridworld-goal", "--out", str(ro)], "--out", "cannot write")
        assert_user_error(["run", "gridworld-goal", "--out", str(ro / "sub")], "--out")
    finally:
        ro.chmod(0o755)


def _grid(workdir, text):
    path = workdir / "grid.toml"
    path.write_text(text + "\n")
    return str(path)


def test_sweep_grid_errors(workdir):
    assert_user_error(["sweep", "gridworld-goal", "--grid", "missing.toml", "--out", "o"], "missing.toml",
                      "No such file")
    assert_user_error(["sweep", "gridworld-goal", "--grid", _grid(workdir, "targets = [[1, 2]]"), "--out", "o"],
                      "'targets'", "[integer, integer] arrays")
    assert_user_error(["sweep", "gridworld-goal", "--grid", _grid(workdir, ""), "--out", "o"], "empty")
    assert_user_error(["sweep", "gridworld-goal", "--grid", _grid(workdir, "zeta0 = [0.1]"), "--out", "o",
                       "--config", "missing.toml"], "missing.toml")
    big = "\n".join(f"{k} = [{', '.join(str(0.1 * (i + 1)) for i in range(10))}]"
                    for k in ("zeta0", "alpha0", "beta0", "lam0", "tau0"))
    assert_user_error(["sweep", "gridworld-goal", "--grid", _grid(workdir, big), "--out", "o"], "100000 combinations")
    assert not (workdir / "o").exists()


def test_config_file_that_cannot_be_read(workdir):
    (workdir / "adir").mkdir(exist_ok=True)
    assert_user_error(["run", "gridworld-goal", "--config", "adir"], "adir")
    (workdir / "latin1.toml").write_bytes(b"steps = 3 # \xe9\n")
    assert_user_error(["run", "gridworld-goal", "--config", "latin1.toml"], "UTF-8")


# --------------------------------------------------------------------------- plot


def _results(workdir, summary):
    out = workdir / "results-folder"
    out.mkdir(exist_ok=True)
    (out / "summary.json").write_text(summary)
    return out


def test_plot_of_a_truncated_or_wrong_summary(workdir):
    good = json.dumps(dict(experiment="gridworld-goal", methods=["decaying tau"], rows=[]))
    out = _results(workdir, good[: len(good) // 2])
    assert_user_error(["plot", str(out)], "summary.json", "damaged")
    _results(workdir, "[1, 2]")
    assert_user_error(["plot", str(out)], "summary.json", "methods")
    _results(workdir, json.dumps(dict(experiment=["x"], methods=[])))
    assert_user_error(["plot", str(out)], "unknown experiment")
    (out / "summary.json").write_bytes(b'{"experiment": "\xff"}')
    assert_user_error(["plot", str(out)], "summary.json")


def test_plot_of_a_folder_with_missing_or_damaged_data(workdir):
    out = _results(workdir, json.dumps(dict(experiment="gridworld-goal", methods=["decaying tau"], rows=[])))
    assert_user_error(["plot", str(out)], "landscape.npz")
    (out / "landscape.npz").write_bytes(b"PK\x03\x04 truncated")
    assert_user_error(["plot", str(out)], "landscape.npz", "not a readable .npz")
    np.savez(out / "landscape.npz", grid=np.arange(2.0), phi0=np.zeros((2, 2)), phi_tau=np.zeros((2, 2)), tau=0.1)
    assert_user_error(["plot", str(out)], "no runs of the method 'decaying tau'")
    runs = out / "runs" / "decaying-tau"
    runs.mkdir(parents=True)
    eb.Trace({"x": np.zeros((2, 2)), "samples": [0, 1]}).save(runs / "seed0")
    data = (runs / "seed0.npz").read_bytes()
    (runs / "seed0.npz").write_bytes(data[: len(data) // 2])
    assert_user_error(["plot", str(out)], "seed0.npz")
    assert not list(out.glob("*.png"))


@pytest.mark.skipif(AS_ROOT, reason="root ignores permission bits: a chmod 555 folder stays writable")
def test_plot_on_a_read_only_folder(workdir):
    out = _results(workdir, json.dumps(dict(experiment="gridworld-goal", methods=["decaying tau"], rows=[])))
    out.chmod(0o555)
    try:
        assert_user_error(["plot", str(out)], "cannot write")
    finally:
        out.chmod(0o755)


# --------------------------------------------------------------------------- options


@pytest.mark.parametrize("argv,words", [
    (["run", "gridworld-goal", "--workers", "0"], ["--workers", ">= 1"]),
    (["sweep", "gridworld-goal", "--grid", "g.toml", "--workers", "0"], ["--workers", ">= 1"]),
    (["run", "gridworld-goal", "--seeds", "0"], ["--seeds"]),
    (["run", "rates", "--steps", "-3"], ["--steps"]),
    (["verify", "--workers", "0"], ["--workers", ">= 1"]),
    (["verify", "--quick", "--seeds", "0"], ["--seeds"]),
    (["verify", "--steps", "10"], ["steps", "10^2"]),
    (["verify", "--config", "missing.toml"], ["missing.toml"]),
    (["solve", "--n", "0"], ["--n", "[1, "]),
    (["solve", "--n", "100000"], ["--n"]),
    (["solve", "--gamma", "1.0"], ["--gamma", "[0, 1)"]),
    (["solve", "--gamma", "nan"], ["--gamma"]),
    (["solve", "--tol", "-1"], ["--tol", "> 0"]),
    (["solve", "--tol", "inf"], ["--tol"]),
    (["solve", "--n", "x"], ["--n", "invalid int"]),
    (["run", "no-such-experiment"], ["unknown experiment"]),
    (["config", "no-such-experiment"], ["unknown experiment"]),
    (["frobnicate"], ["invalid choice"]),
    ([], ["required"]),
    (["run", "gridworld-goal", "--bogus"], ["unrecognized arguments: --bogus"]),
    (["run", "gridworld-goal", "--out", "a\0b"], ["NUL"]),
    (["plot", "folder\0"], ["NUL"]),
])
def test_an_option_out_of_range_is_one_line_before_computing(workdir, argv, words):
    assert_user_error(argv, *words)


def test_user_error_is_a_system_exit_with_status_2():
    exc = UserError("exactbilevel: a\nb")
    assert isinstance(exc, SystemExit) and exc.code == 2 and str(exc) == "exactbilevel: a b"


def test_help_still_exits_0(workdir):
    code, _ = cli(["solve", "--help"])
    assert code == 0


# --------------------------------------------------------------------------- properties


_SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@_SETTINGS
@given(ebst.malformed_arguments())
def test_every_malformed_argument_list_is_one_line_and_status_2(workdir, argv):
    assert_user_error(argv)


@_SETTINGS
@given(ebst.malformed_configs())
def test_every_malformed_configuration_is_one_line_naming_the_key(workdir, case):
    name, text, key = case
    (workdir / "case.toml").write_text(text, encoding="utf-8")
    line = assert_user_error(["run", name, "--config", "case.toml", "--out", "never"])
    assert (repr(key) if key is not None else "TOML") in line
    assert not (workdir / "never").exists()


@_SETTINGS
@given(ebst.malformed_grids())
def test_every_malformed_sweep_grid_is_one_line_naming_the_key(workdir, case):
    name, text, key = case
    (workdir / "grid-case.toml").write_text(text, encoding="utf-8")
    line = assert_user_error(["sweep", name, "--grid", "grid-case.toml", "--out", "never"])
    assert (repr(key) if key is not None else "TOML") in line
    assert not (workdir / "never").exists()


@settings(max_examples=40, deadline=None)
@given(ebst.malformed_configs())
def test_the_strategy_draws_configurations_that_load_refuses(case):
    """Independent of the command line: load() itself refuses every drawn configuration."""
    name, text, key = case
    with pytest.raises(ConfigError):
        load(EXPERIMENTS[name][1], text)


# --------------------------------------------------------------------------- in a subprocess


@pytest.mark.parametrize("setup,argv", [
    (lambda d: (d / "c.toml").write_text("targets = [1, 2]\n"), ["run", "gridworld-goal", "--config", "c.toml"]),
    (lambda d: (d / "f").write_text("x"), ["run", "gridworld-goal", "--out", "f"]),
    (lambda d: (d / "r").mkdir() or (d / "r" / "summary.json").write_text('{"experim'), ["plot", "r"]),
])
def test_the_installed_command_prints_one_line_and_exits_2(tmp_path, setup, argv):
    setup(tmp_path)
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-m", "exactbilevel", *argv], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    assert len(res.stderr.splitlines()) == 1 and "Traceback" not in res.stderr, res.stderr
    assert not (tmp_path / "results").exists()
