"""Experiment configurations: frozen dataclasses read from and written to TOML.

A configuration class lists its fields with defaults (the defaults reproduce the
committed figures).  :func:`load` reads a TOML file (or text) into it and rejects,
before anything runs, an unknown key, a value of the wrong type, or a value out
of range (the class's ``check`` method), each with a message naming the key and
what is expected.  Types follow the defaults: int, float (an int is accepted),
str, bool, and tuples (TOML arrays, nested for lists of cells).
"""

from __future__ import annotations

import dataclasses
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["load", "dumps", "option", "need", "ConfigError", "tomllib"]


def option(default, doc=""):
    """A configuration field: its default and the comment :func:`dumps` writes above it."""
    return dataclasses.field(default=default, metadata={"doc": doc})


class ConfigError(ValueError):
    """A configuration key is unknown, has the wrong type, or is out of range."""


def need(config, condition, key, what):
    """ConfigError naming ``key`` and what it must be, unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"key {key!r} must be {what}, got {getattr(config, key)!r}")


def _convert(key, value, default):
    """``value`` converted to the type of ``default``, or ConfigError."""
    kind = type(default)
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"key {key!r} must be true or false, got {value!r}")
        return value
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"key {key!r} must be an integer, got {value!r}")
        return value
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"key {key!r} must be a number, got {value!r}")
        return float(value)
    if kind is str:
        if not isinstance(value, str):
            raise ConfigError(f"key {key!r} must be a string, got {value!r}")
        return value
    if kind is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"key {key!r} must be an array, got {value!r}")
        return tuple(tuple(v) if isinstance(v, list) else v for v in value)
    raise TypeError(f"unsupported default type {kind.__name__} for key {key!r}")  # pragma: no cover


def load(cls, source=None, **overrides):
    """An instance of the dataclass ``cls`` from TOML (a path, TOML text, or None for the
    defaults), then ``overrides``; validated by ``cls.check``."""
    data = {}
    if source is not None:
        text = source
        if "\n" not in str(source) and not str(source).lstrip().startswith(("[", "#")):
            try:
                with open(source, "rb") as fh:
                    text = fh.read().decode()
            except OSError as exc:
                raise ConfigError(f"cannot read configuration file {source!r}: {exc}") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"configuration is not valid TOML: {exc}") from None
    data.update({k: v for k, v in overrides.items() if v is not None})
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = {}
    for key, value in data.items():
        if key not in fields:
            raise ConfigError(f"unknown key {key!r}; the keys of {cls.__name__} are: {', '.join(fields)}")
        values[key] = _convert(key, value, fields[key].default)
    config = cls(**values)
    config.check()
    return config


def _toml_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, tuple):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return repr(v)


def dumps(config):
    """TOML text of a configuration, one ``key = value`` per field with its comment."""
    lines = [f"# {type(config).__name__}: defaults reproduce the committed figures"]
    for f in dataclasses.fields(config):
        doc = f.metadata.get("doc")
        if doc:
            lines.append(f"# {doc}")
        lines.append(f"{f.name} = {_toml_value(getattr(config, f.name))}")
    return "\n".join(lines) + "\n"
