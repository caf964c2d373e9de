"""What every experiment does with its runs: run them in parallel, name their folders,
write results atomically."""

from __future__ import annotations

import os
import re
from pathlib import Path

__all__ = ["run_tasks", "slug", "write_atomic"]


def run_tasks(fn, tasks, workers, progress, desc):
    """``fn(*task)`` for every task, on ``workers`` joblib processes (or the Dask backend
    when one is active), with a progress bar; results in completion order."""
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    jobs = Parallel(n_jobs=workers, return_as="generator_unordered")(delayed(fn)(*t) for t in tasks)
    return list(tqdm(jobs, total=len(tasks), desc=desc, disable=not progress, unit="run"))


def slug(name):
    """A folder name for a method: 'fixed tau = 0.5' -> 'fixed-tau-0.5'."""
    return re.sub(r"[^0-9A-Za-z.]+", "-", name).strip("-")


def write_atomic(path, text):
    """Write ``text`` to ``path`` through a temporary file in the same folder (no half-written file)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
