"""Trace: exact save/load round trip, atomic writes, read-only storage, documented columns."""

import json
import os
import subprocess

import numpy as np
import pytest

import exactbilevel as eb
from exactbilevel import trace as tr
from exactbilevel.trace import COLUMNS, Trace, TraceBuilder, run_metadata

# The quantities of docs/theory.rst, "What is measured" plus the bookkeeping columns, listed independently of COLUMNS.
SPEC_NAMES = ["k", "samples", "x", "tau", "lam", "residual_phi", "residual_theta",
    "critic_error_phi", "critic_error_theta", "critic_error_c", "pl_ratio", "pl_bound", "min_pi",
    "grad_phi_norm2", "grad_ell_norm2", "kkt_residual", "phi0", "phi_tau", "penalty_bias",
    "residual_bias", "critic_bias", "ghat_variance", "entropy_bias", "entropy_bound", "action_gap",
    "time"]


def awkward_trace(n=7, seed=0):
    """Columns whose bits are easy to lose: NaN payloads, -0.0, subnormals, int64 extremes, a 2-D column."""
    rng = np.random.default_rng(seed)
    resid = rng.standard_normal(n) * 10.0 ** rng.integers(-300, 300, n)
    resid[:4] = [np.nan, -0.0, 5e-324, np.inf]
    k = np.array([0, 1, 2**62, -(2**63), 2**63 - 1, 17, 3][:n], dtype=np.int64)
    meta = {"config": {"S": 10, "tau": 0.1, "name": "grid \u00e9", "sizes": [1, 2, 3], "nested": {"a": None}},
            "seed": 3, "ratio": 1 / 3}
    return Trace({"k": k, "residual_phi": resid, "x": rng.standard_normal((n, 2)), "flag": np.arange(n) % 2 == 0}, meta)


def same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_round_trip_is_bit_for_bit(tmp_path):
    t = awkward_trace()
    t.save(tmp_path / "run")
    assert sorted(os.listdir(tmp_path)) == ["run.json", "run.npz"]
    back = Trace.load(tmp_path / "run.npz")
    assert back.columns == t.columns and len(back) == len(t) == 7
    for name in t.columns:
        assert same_bits(back[name], t[name]), name
    assert back.meta == t.meta
    assert back.meta["config"]["name"] == "grid \u00e9" and back.meta["ratio"] == 1 / 3
    # the .npz alone is readable by numpy, by column name
    with np.load(tmp_path / "run.npz") as npz:
        assert same_bits(npz["x"], t["x"])
    # and the JSON describes the columns
    doc = json.loads((tmp_path / "run.json").read_text())
    assert doc["columns"] == list(t.columns) and doc["meta"]["seed"] == 3


def test_dtypes_copies_and_read_only():
    src = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    k = [1, 2, 3]
    t = Trace({"tau": src, "k": k, "flag": [True, False, True]}, {"a": [1, {"b": 2}]})
    assert t["tau"].dtype == np.float64 and t["k"].dtype == np.int64 and t["flag"].dtype == np.int64
    src[0] = 99.0
    assert t["tau"][0] == 1.0
    with pytest.raises(ValueError):
        t["tau"][0] = 5.0
    with pytest.raises(TypeError):
        t.meta["a"] = 1
    with pytest.raises(TypeError):
        t.meta["a"][1]["b"] = 3


def test_failed_savez_leaves_old_files_intact_and_no_partial_file(tmp_path, monkeypatch):
    old = awkward_trace(seed=1)
    old.save(tmp_path / "run")
    before = {p: (tmp_path / p).read_bytes() for p in os.listdir(tmp_path)}

    def failing_savez(file, **arrays):
        file.write(b"PK\x03\x04 half an archive")  # something reaches the temporary file
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError, match="disk full"):
        awkward_trace(seed=2).save(tmp_path / "run")
    assert {p: (tmp_path / p).read_bytes() for p in os.listdir(tmp_path)} == before
    monkeypatch.undo()
    back = Trace.load(tmp_path / "run")
    assert all(same_bits(back[n], old[n]) for n in old.columns) and back.meta == old.meta

    # in an empty directory a failed save leaves nothing at all
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    monkeypatch.setattr(np, "savez", failing_savez)
    with pytest.raises(OSError):
        old.save(fresh / "run")
    assert os.listdir(fresh) == []


def test_crash_between_the_two_moves_is_detected(tmp_path, monkeypatch):
    awkward_trace(seed=1).save(tmp_path / "run")
    real_replace = os.replace

    def replace_npz_only(src, dst):
        if str(dst).endswith(".json"):
            raise OSError("killed")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_npz_only)
    with pytest.raises(OSError, match="killed"):
        awkward_trace(seed=2).save(tmp_path / "run")
    monkeypatch.undo()
    assert sorted(os.listdir(tmp_path)) == ["run.json", "run.npz"]  # no temporary files left behind
    with pytest.raises(ValueError, match="does not match"):
        Trace.load(tmp_path / "run")


def test_paths_with_other_suffixes(tmp_path):
    t = Trace({"k": [1, 2]}, None)
    t.save(tmp_path / "a.trace")
    assert sorted(os.listdir(tmp_path)) == ["a.trace.json", "a.trace.npz"]
    assert same_bits(Trace.load(str(tmp_path / "a.trace"))["k"], t["k"])
    assert Trace.load(tmp_path / "a.trace").meta == {}


def test_key_error_lists_the_columns_and_describe():
    t = awkward_trace()
    with pytest.raises(KeyError) as info:
        t["residual_ph"]
    msg = str(info.value)
    assert "residual_ph" in msg and all(n in msg for n in t.columns)
    assert t.describe("residual_phi") == COLUMNS["residual_phi"] and "J*_tau" in t.describe("residual_phi")
    assert t.describe("flag") == "no description"
    with pytest.raises(KeyError):
        t.describe("nonexistent")
    assert set(SPEC_NAMES) <= set(COLUMNS)
    assert all(isinstance(v, str) and v and "\n" not in v for v in COLUMNS.values())


@pytest.mark.parametrize("columns, error", [
    ({"k": [1, 2], "x": np.zeros((3, 2))}, ValueError),   # different n_logs
    ({"k": 3.0}, ValueError),                            # a scalar
    ({"k": ["a", "b"]}, TypeError),                      # not numeric
    ({"file": [1.0]}, ValueError),                       # a name np.savez reserves
    ({"a/b": [1.0]}, ValueError),
])
def test_bad_columns(columns, error):
    with pytest.raises(error):
        Trace(columns, {})


def test_bad_meta():
    with pytest.raises(TypeError, match="JSON"):
        Trace({"k": [1]}, {"f": object()})
    with pytest.raises(ValueError, match="NaN"):
        Trace({"k": [1]}, {"f": float("nan")})
    t = Trace({"k": [1]}, {"n": np.int64(3), "v": np.arange(2)})  # numpy values become JSON numbers
    assert t.meta["n"] == 3 and t.meta["v"] == (0, 1)


def test_builder_matches_direct_construction():
    b = TraceBuilder(["k", "x", "residual_phi"])
    rows = [(k, np.array([k, -k]) / 10, 1.0 / (k + 1)) for k in range(5)]
    for k, x, res in rows:
        b.add(k=k, x=x, residual_phi=res)
    t = b.build({"seed": 1})
    direct = Trace({"k": [r[0] for r in rows], "x": np.stack([r[1] for r in rows]),
                    "residual_phi": [r[2] for r in rows]}, {"seed": 1})
    assert len(b) == 5 and t.columns == direct.columns
    assert all(same_bits(t[n], direct[n]) for n in t.columns)
    with pytest.raises(ValueError, match="missing"):
        b.add(k=5, x=np.zeros(2))
    with pytest.raises(ValueError, match="shape"):
        b.add(k=5, x=np.zeros(3), residual_phi=0.0)
    with pytest.raises(ValueError, match=r"changes the shape of \['x'\]"):
        b.add(k=5, x=np.zeros((2, 1)), residual_phi=0.0)
    assert len(b) == 5  # rejected rows are not recorded


def test_run_metadata(monkeypatch):
    commit = "0123456789abcdef0123456789abcdef01234567"
    calls = []

    def fake_run(cmd, **kwargs):
        calls.append((cmd, kwargs))
        return subprocess.CompletedProcess(cmd, 0, stdout=commit + "\n", stderr="")

    monkeypatch.setattr(subprocess, "run", fake_run)
    meta = run_metadata({"steps": 10, "tau": 0.1}, seed=4)
    assert meta["config"] == {"steps": 10, "tau": 0.1} and meta["seed"] == 4
    assert meta["exactbilevel_version"] == eb.__version__ and meta["numpy_version"] == np.__version__
    assert meta["git_commit"] == commit and meta["timestamp"].endswith("+00:00")
    assert calls[0][0] == ["git", "rev-parse", "HEAD"] and calls[0][1]["timeout"] > 0
    json.dumps(meta)
    assert Trace({"k": [1]}, meta).meta["seed"] == 4

    def timeout(cmd, **kwargs):
        raise subprocess.TimeoutExpired(cmd, kwargs["timeout"])

    for failing in (timeout, lambda cmd, **kw: subprocess.CompletedProcess(cmd, 0, stdout="fatal: not a repo")):
        monkeypatch.setattr(subprocess, "run", failing)
        assert run_metadata({}, None)["git_commit"] is None
    with pytest.raises(TypeError, match="seed"):
        run_metadata({}, seed=1.5)
    assert tr.__all__ == ["COLUMNS", "Trace", "TraceBuilder", "run_metadata"]


# --------------------------------------------------------------------------- damaged files


def _rehash(tmp_path, stem="run", **changes):
    """Rewrite the .json of ``stem`` with ``changes`` and the SHA-256 of the current .npz."""
    import hashlib

    doc = json.loads((tmp_path / f"{stem}.json").read_text())
    doc["npz_sha256"] = hashlib.sha256((tmp_path / f"{stem}.npz").read_bytes()).hexdigest()
    doc.update(changes)
    (tmp_path / f"{stem}.json").write_text(json.dumps(doc))


def _truncate(path, keep=0.5):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("damage,match", [
    (lambda d: _truncate(d / "run.json"), r"run\.json is damaged: not valid UTF-8 JSON"),
    (lambda d: (d / "run.json").write_bytes(b'{"format": "\xff"}'), r"run\.json is damaged: not valid UTF-8"),
    (lambda d: (d / "run.json").write_text("[1, 2]"), r"run\.json is not an exactbilevel trace"),
    (lambda d: _rehash(d, npz_sha256=None), r"run\.json is damaged: no 'npz_sha256'"),
    (lambda d: _rehash(d, columns="k"), r"run\.json is damaged: 'columns' is not a list"),
    (lambda d: _rehash(d, meta=[1]), r"run\.json is damaged: 'meta' is not a JSON object"),
    (lambda d: _truncate(d / "run.npz"), r"run\.npz does not match .*run\.json"),
    (lambda d: (_truncate(d / "run.npz"), _rehash(d)), r"run\.npz is not a readable \.npz archive"),
    (lambda d: ((d / "run.npz").write_bytes(b""), _rehash(d)), r"run\.npz is not a readable \.npz archive"),
    (lambda d: (np.save(d / "run.npz", np.zeros(3)), os.replace(d / "run.npz.npy", d / "run.npz"), _rehash(d)),
     r"run\.npz is a single \.npy array"),
    (lambda d: _rehash(d, columns=["k", "nope"]), r"run\.npz lacks the arrays \['nope'\]"),
    (lambda d: (np.savez(d / "run.npz", k=np.zeros(2), x=np.zeros(3)), _rehash(d, columns=["k", "x"])),
     r"run\.npz is not a valid trace: every column must have the same first dimension"),
    (lambda d: (np.savez(d / "run.npz", k=np.array(["a"])), _rehash(d, columns=["k"])),
     r"run\.npz is not a valid trace: column 'k' must have a bool, int or float dtype"),
])
def test_damaged_files_raise_value_error_naming_the_file(tmp_path, damage, match):
    Trace({"k": [1, 2, 3], "x": np.zeros((3, 2))}, {"a": 1}).save(tmp_path / "run")
    damage(tmp_path)
    with pytest.raises(ValueError, match=match):
        Trace.load(tmp_path / "run")


def test_a_missing_file_is_an_os_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.json"):
        Trace.load(tmp_path / "nothing")
    Trace({"k": [1]}).save(tmp_path / "run")
    os.remove(tmp_path / "run.npz")
    with pytest.raises(FileNotFoundError, match="run.npz"):
        Trace.load(tmp_path / "run")


def test_a_corrupted_member_of_the_archive_is_a_value_error(tmp_path):
    """A flipped byte inside the compressed-free member: zipfile's CRC check catches it."""
    Trace({"k": np.arange(1000)}).save(tmp_path / "run")
    data = bytearray((tmp_path / "run.npz").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "run.npz").write_bytes(bytes(data))
    _rehash(tmp_path)
    with pytest.raises(ValueError, match=r"run\.npz is (damaged|not a readable)"):
        Trace.load(tmp_path / "run")


def test_to_pandas_is_the_long_form_of_every_column():
    """Built here from the columns by hand (an independent loop), and pivoted back."""
    pytest.importorskip("pandas")
    k = np.array([0, 3, 10])
    x = np.arange(6.0).reshape(3, 2)
    t = Trace({"k": k, "x": x, "phi0": np.array([1.0, 0.5, 0.25])}, {"seed": 1})
    df = t.to_pandas(seed=7, method="m")
    rows = []
    for i in range(3):
        rows += [(int(k[i]), "x", j, float(x[i, j])) for j in range(2)]
    rows += [(int(k[i]), "phi0", 0, [1.0, 0.5, 0.25][i]) for i in range(3)]
    got = sorted(zip(df["k"].tolist(), df["column"].astype(str).tolist(), df["component"].tolist(),
                     df["value"].tolist()))
    assert got == sorted(rows)
    assert set(df.columns) == {"k", "column", "component", "value", "seed", "method"}
    assert (df["seed"] == 7).all() and (df["method"] == "m").all()
    wide = df[df["column"] == "x"].pivot(index="k", columns="component", values="value")
    np.testing.assert_array_equal(wide.to_numpy(), x)
    # no k column: the row number stands in for it
    assert Trace({"y": np.array([2.0, 3.0])}).to_pandas()["k"].tolist() == [0, 1]
    with pytest.raises(ValueError, match="labels may not be named"):
        t.to_pandas(value=1)
