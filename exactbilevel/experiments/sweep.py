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

__all__ = ["load_grid", "configurations", "sweep", "MAX_COMBINATIONS"]

#: The most combinations a grid may have (each is a full run of the experiment).
MAX_COMBINATIONS = 10_000


def load_grid(cls, text):
    """``[(label, overrides)]`` for a grid given as TOML text or a path; ConfigError for a
    missing or unreadable file, invalid TOML, an unknown key or a key without values (each
    value is checked against the key's schema by :func:`~exactbilevel.experiments.config.load`)."""
    if "\n" not in str(text):
        try:
            with open(text, "rb") as fh:
                text = fh.read().decode()
        except OSError as exc:
            raise ConfigError(f"cannot read the sweep grid {str(text)!r}: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"the sweep grid {str(text)!r} is not UTF-8 text") from None
    try:
        grid = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"sweep grid is not valid TOML: {exc}") from None
    if not grid:
        raise ConfigError("the sweep grid is empty: give at least one key = [value, ...]")
    keys = {f.name for f in dataclasses.fields(cls)}
    for key, values in grid.items():
        if key not in keys:
            raise ConfigError(f"unknown key {key!r} in the sweep grid; the keys of {cls.__name__} are: {', '.join(keys)}")
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep key {key!r} must be a non-empty array of values, got {values!r}")
    count = 1
    for values in grid.values():
        count *= len(values)
    if count > MAX_COMBINATIONS:
        raise ConfigError(f"the sweep grid has {count} combinations, more than {MAX_COMBINATIONS}: "
                          "sweep fewer keys or values at once")
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
        raise ImportError('a scheduler needs dask.distributed: pip install "exactbilevel[dask]"') from None
    from joblib import parallel_config

    if not isinstance(scheduler, str):
        raise ConfigError(f"scheduler must be the address of a Dask scheduler (tcp://host:8786), got {scheduler!r}")
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"cannot connect to the Dask scheduler {scheduler!r}: {exc}") from None
    with client, parallel_config(backend="dask"):
        yield client


def configurations(cls, grid, base=None):
    """``[(label, configuration)]`` of every combination of ``grid`` on top of ``base`` (a TOML
    path or text, or None for the defaults), each validated; ConfigError naming the combination
    and the key otherwise."""
    configs = []
    for label, overrides in load_grid(cls, grid):
        try:
            configs.append((label, load(cls, base, **overrides)))
        except ConfigError as exc:
            raise ConfigError(f"sweep combination {label}: {exc}") from None
    return configs


def sweep(module, cls, grid, out, base=None, workers=1, scheduler=None, progress=True):
    """Run ``module.run_experiment`` for every combination of ``grid``; returns ``{label: rows}``.
    Every combination is validated (:func:`configurations`) before anything runs."""
    from pathlib import Path

    configs = configurations(cls, grid, base)
    results = {}
    with backend(scheduler):
        for label, cfg in configs:
            results[label] = module.run_experiment(cfg, Path(out) / label, workers=workers, progress=progress)
    return results
