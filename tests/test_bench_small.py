"""The peers of benchmarks/bench_small.py are correct: their answers agree with ours.

``--check-only`` runs every peer present (plain numpy soft Newton and adjoint
hyper-gradient; JAX jit + vmap when JAX is installed) at one x, with no timing,
and exits non-zero when a peer differs from exactbilevel by more than 1e-8.
About 8 s with JAX (most of it JAX's import and compilation), 2 s without.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "bench_small.py"


def run_script(*args, timeout=120):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT)


def test_every_peer_agrees_with_ours_at_one_x():
    proc = run_script("--quick", "--check-only")
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    lines = [line for line in proc.stdout.splitlines() if "agreement" in line]
    assert "DISAGREES" not in proc.stdout
    # numpy: V and pi of the solve, Phi_tau and grad of the hyper-gradient; JAX: Phi_tau and grad
    jax_skipped = "JAX peer: skipped" in proc.stdout
    assert len(lines) == (4 if jax_skipped else 6), proc.stdout
    assert all(line.rstrip().endswith("ok") for line in lines), proc.stdout
    assert "every peer agrees within 1e-08" in proc.stdout


def test_without_jax_the_numpy_peer_still_runs():
    proc = run_script("--check-only", "--no-jax")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "JAX peer: skipped: pip install jax" in proc.stdout
    assert sum("agreement" in line for line in proc.stdout.splitlines()) == 4


def test_a_disagreement_stops_the_script():
    """Agreement.check exits with status 1 above 1e-8 (in a subprocess: the script imports JAX)."""
    code = (f"import runpy; b = runpy.run_path({str(SCRIPT)!r}); a = b['Agreement'](); "
            "a.check('close', [1.0, 2.0], [1.0, 2.0 + 1e-12]); a.check('far', [1.0], [1.0 + 1e-6])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "far disagrees with ours by 1e-06" in proc.stderr
    assert proc.stdout.count("ok") == 1 and "DISAGREES" in proc.stdout
