"""Sweeps: an experiment over the cartesian product of configuration values.

A grid is a TOML table ``key = [value, value, ...]`` over the experiment's
configuration keys; every combination (applied on top of a base configuration)
is validated before anything runs and written to its own results folder
``OUT/key1=v1,key2=v2``.  Runs go through joblib: on this machine with
``workers`` processes, or on a Dask cluster with ``scheduler`` (an address such
as ``tcp://host:8786``; needs ``pip install "exactbilevel[dask]"``).  Every run
is seeded by its seed index alone, so the same grid gives the same numbers on
every backend and worker count.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools

from .config import ConfigError, load, tomllib

__all__ = ["load_grid", "sweep"]


def load_grid(cls, text):
    """``[(label, overrides)]`` for a grid given as TOML text or a path."""
    if "\n" not in str(text):
        with open(text, "rb") as fh:
            text = fh.read().decode()
    try:
        grid = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"sweep grid is not valid TOML: {exc}") from None
    keys = {f.name for f in dataclasses.fields(cls)}
    for key, values in grid.items():
        if key not in keys:
            raise ConfigError(f"unknown key {key!r} in the sweep grid; the keys of {cls.__name__} are: {', '.join(keys)}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep key {key!r} must be a non-empty array of values, got {values!r}")
    combos = []
    for values in itertools.product(*grid.values()):
        overrides = dict(zip(grid, values))
        combos.append((",".join(f"{k}={v}" for k, v in overrides.items()), overrides))
    return combos


@contextlib.contextmanager
def backend(scheduler):
    """joblib's default backend, or Dask's on the cluster at ``scheduler``."""
    if scheduler is None:
        yield
        return
    try:
        from distributed import Client
    except ImportError:  # pragma: no cover - depends on the install
        raise SystemExit('exactbilevel: --scheduler needs dask.distributed: pip install "exactbilevel[dask]"') from None
    from joblib import parallel_config

    with Client(scheduler) as client, parallel_config(backend="dask"):
        yield client


def sweep(module, cls, grid, out, base=None, workers=1, scheduler=None, progress=True):
    """Run ``module.run_experiment`` for every combination of ``grid``; returns ``{label: rows}``."""
    from pathlib import Path

    combos = load_grid(cls, grid)
    configs = [(label, load(cls, base, **overrides)) for label, overrides in combos]  # all checked first
    results = {}
    with backend(scheduler):
        for label, cfg in configs:
            results[label] = module.run_experiment(cfg, Path(out) / label, workers=workers, progress=progress)
    return results
