"""Experiment configurations: frozen dataclasses read from and written to TOML.

A configuration class lists its fields with defaults (the defaults reproduce the
committed figures).  :func:`load` reads a TOML file (or text) into it and rejects,
before anything runs, an unknown key, a value of the wrong type or shape (checked
against the field's schema, see :func:`option`), or a value out of range (the
class's ``check`` method), each with a message naming the key and what is
expected.  Types follow the defaults: int, float (an int is accepted; finite),
str, bool, and tuples (TOML arrays, nested for lists of cells).
"""

from __future__ import annotations

import dataclasses
import math
import sys

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["load", "dumps", "option", "need", "check_value", "describe", "ConfigError", "tomllib"]


def option(default, doc="", *, length=None, item=None):
    """A configuration field: its default, the comment :func:`dumps` writes above it and its
    schema (the type and shape every value of the key must have, checked by :func:`load`).

    The schema follows the default: bool, int, float (an int is accepted; finite) or str;
    a tuple default is an array (TOML list) whose items have ``item``'s schema (one of
    ``bool, int, float, str`` or ``(type, n)``, an array of exactly n such values), inferred
    from the default's items when omitted, and of exactly ``length`` items if given."""
    return dataclasses.field(default=default, metadata={"doc": doc, "schema": _schema(default, length, item)})


class ConfigError(ValueError):
    """A configuration key is unknown, has the wrong type, or is out of range."""


def need(config, condition, key, what):
    """ConfigError naming ``key`` and what it must be, unless ``condition`` holds."""
    if not condition:
        raise ConfigError(f"key {key!r} must be {what}, got {getattr(config, key)!r}")


_SCALARS = (bool, int, float, str)
_NAMES = {bool: "true or false", int: "an integer", float: "a number (finite)", str: "a string"}
_PLURAL = {bool: "booleans", int: "integers", float: "finite numbers", str: "strings"}


def _kind(value):
    """The scalar schema of a default's item."""
    for kind in _SCALARS:  # bool before int: bool is a subclass of int
        if isinstance(value, kind):
            return kind
    raise TypeError(f"unsupported default item {value!r}")  # pragma: no cover - a programming error


def _schema(default, length=None, item=None):
    """``type`` for a scalar key, ``("array", item, length)`` for an array key; item is a type or
    ``("array", type, n)``."""
    if not isinstance(default, tuple):
        return _kind(default)
    if item is None:
        if not default:  # pragma: no cover - a programming error
            raise TypeError("an empty tuple default needs item=")
        first = default[0]
        item = (_kind(first[0]), len(first)) if isinstance(first, tuple) else _kind(first)
    if isinstance(item, tuple):
        item = ("array", item[0], item[1])
    return ("array", item, length)


def describe(schema):
    """What a value of ``schema`` must be, in words (for messages)."""
    if not isinstance(schema, tuple):
        return _NAMES[schema]
    _, item, length = schema
    count = f"{length} " if length is not None else ""
    if isinstance(item, tuple):
        inner = ", ".join([{bool: "bool", int: "integer", float: "number", str: "string"}[item[1]]] * item[2])
        return f"an array of {count}[{inner}] arrays"
    return f"an array of {count}{_PLURAL[item]}"


def _scalar(value, kind):
    """``value`` as ``kind``, or None when it does not fit."""
    if kind is bool:
        return value if isinstance(value, bool) else None
    if kind is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else None
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        value = float(value)
        return value if math.isfinite(value) else None
    return value if isinstance(value, str) else None


def _fit(value, schema):
    """``value`` converted to ``schema`` (arrays become tuples), or None when it does not fit."""
    if not isinstance(schema, tuple):
        return _scalar(value, schema)
    _, item, length = schema
    if not isinstance(value, list) or (length is not None and len(value) != length):
        return None
    out = tuple(_fit(v, item) for v in value)
    return None if any(v is None for v in out) else out


def check_value(key, value, schema):
    """``value`` of ``key`` converted to ``schema``; ConfigError naming the key and what is expected."""
    out = _fit(value, schema)
    if out is None:
        raise ConfigError(f"key {key!r} must be {describe(schema)}, got {value!r}")
    return out


def _convert(key, value, default):
    """``value`` converted to the type of ``default``, or ConfigError (schema inferred from the default)."""
    return check_value(key, value, _schema(default))


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
                raise ConfigError(f"cannot read configuration file {str(source)!r}: {exc.strerror or exc}") from None
            except UnicodeDecodeError:
                raise ConfigError(f"configuration file {str(source)!r} is not UTF-8 text") from None
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
        values[key] = check_value(key, value, fields[key].metadata["schema"])
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
