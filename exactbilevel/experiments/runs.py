"""What every experiment does with its runs: run them in parallel, name their folders,
write results atomically."""

from __future__ import annotations

import json
import os
import re
import warnings
from pathlib import Path

import numpy as np

from .. import schedules
from ..actor_critic import ActorCriticConfig, ScheduleWarning
from ..runner import run
from ..trace import Trace

__all__ = ["run_tasks", "run_one", "load_runs", "spread", "step_sizes", "slug", "write_atomic"]


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


def run_one(setup, cfg, name, method, kw, seed, out):
    """One run of ``method`` with ``ActorCriticConfig(**kw)`` on ``setup(cfg) = (problem,
    metrics)``, written to ``out/runs/<slug(name)>/seed<k>.npz`` (+ ``.json``).

    A run already there with the same configuration is kept (a rerun of an interrupted
    experiment resumes); a sampled run interrupted midway continues from its checkpoint
    ``seed<k>.ckpt.npz``.  Schedule warnings are silenced (fixed-tau variants are meant).
    Returns ``(name, seed, path)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScheduleWarning)
        config = ActorCriticConfig(**kw)
    path = Path(out) / "runs" / slug(name) / f"seed{seed}"
    want = dict(config.as_dict(), method=method)
    if path.with_suffix(".npz").exists():
        try:
            if Trace.load(path).meta["config"] == json.loads(json.dumps(want)):
                return name, seed, str(path)
        except (OSError, ValueError, KeyError):
            pass  # unreadable or another configuration: run again
    path.parent.mkdir(parents=True, exist_ok=True)
    problem, metrics = setup(cfg)
    sampled = method in ("actor_critic", "partial_sgd")  # checkpointed; the others restart
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ScheduleWarning)
        trace = run(problem, config, seed=seed, method=method, metrics=metrics,
                    checkpoint=path.with_suffix(".ckpt.npz") if sampled else None)
    trace.save(path)
    return name, seed, str(path)


def load_runs(out, names=None):
    """``method name -> [Trace]`` (sorted by seed file, ``seed<k>.npz``; checkpoints are not
    runs) from a results folder; ``names`` None: the methods its ``summary.json`` lists.
    ValueError naming the file for a damaged summary or trace, or a method without runs."""
    out = Path(out)
    if names is None:
        summary = out / "summary.json"
        try:
            names = json.loads(summary.read_text(encoding="utf-8"))["methods"]
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{summary} is damaged: no readable list of methods ({type(exc).__name__}: {exc})") from None
    runs = {}
    for name in names:
        folder = out / "runs" / slug(name)
        runs[name] = [Trace.load(p) for p in sorted(folder.glob("seed*.npz")) if re.fullmatch(r"seed\d+\.npz", p.name)]
        if not runs[name]:
            raise ValueError(f"no runs of the method {name!r} in {folder} (no seed*.npz)")
    return runs


def spread(name, values):
    """``{name_median, name_q10, name_q90}`` of ``values`` (over seeds)."""
    v = np.asarray(values, dtype=float)
    return {f"{name}_median": float(np.median(v)), f"{name}_q10": float(np.quantile(v, 0.1)),
            f"{name}_q90": float(np.quantile(v, 0.9))}


def step_sizes(cfg):
    """The lam, alpha, beta and zeta power-law schedules of a configuration with the fields
    ``lam0, lam_growth, alpha0, alpha_decay, beta0, beta_decay, zeta0, zeta_decay``; a
    coefficient of 0 leaves that schedule to the defaults resolved from the problem
    (:mod:`exactbilevel.defaults`), and is left out of the dict."""
    out = {}
    for name, c0, p in (("lam", cfg.lam0, -cfg.lam_growth), ("alpha", cfg.alpha0, cfg.alpha_decay),
                        ("beta", cfg.beta0, cfg.beta_decay), ("zeta", cfg.zeta0, cfg.zeta_decay)):
        if c0 != 0:
            out[name] = schedules.power(c0, p)
    return out