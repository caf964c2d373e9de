"""What every benchmark records beside its table: the machine, and the JSON report."""

from __future__ import annotations

import json
import os
import platform

import numba
import numpy as np
import scipy

import exactbilevel as eb


def machine(**versions):
    """CPU, core counts, Numba threads and threading layer, load average, platform, BLAS and the
    versions of numpy, scipy, numba and exactbilevel; ``versions``: more entries (a peer's version)."""
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor()) if os.path.exists("/proc/cpuinfo") else platform.processor()
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    except Exception:  # older numpy
        blas = None
    return {
        "cpu": cpu, "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "numba_threads": numba.config.NUMBA_NUM_THREADS, "numba_threading_layer": numba.threading_layer(),
        "load_average_at_end": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(), "python": platform.python_version(),
        "numpy": np.__version__, "scipy": scipy.__version__, "numba": numba.__version__,
        "exactbilevel": eb.__version__, "blas": blas, **versions,
    }


def write_report(path, report):
    """Write ``report`` as indented JSON to ``path`` (its folder created), and say so."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"wrote {path}")
