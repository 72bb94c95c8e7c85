"""A small typed validator: build frozen dataclasses from YAML mappings, with one sentence per problem.

Each field may carry an `expect` wording and a `check`; `build(cls, data)` rejects unknown keys
(suggesting the closest known one), missing values, wrong types and failed checks, naming the
dotted key (`generate.models[0].steps`). `config.py` uses it for profiles.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
from dataclasses import field
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints


def spec(default=dataclasses.MISSING, *, expect: str | None = None, check=None, factory=None):
    """A dataclass field with an optional value check and its wording for error messages."""
    meta = {"expect": expect, "check": check}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def positive(v) -> bool:
    return v > 0


def non_negative(v) -> bool:
    return v >= 0


def unit_interval(v) -> bool:
    return 0 < v <= 1


def non_empty(v) -> bool:
    return len(v) > 0


class Invalid(Exception):
    """A value that does not fit: the dotted key and what is wrong with it."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key
        self.message = message

def _describe(tp) -> str:
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        parts = [_describe(a) for a in args if a is not type(None)]
        return " or ".join(parts) + (" or null" if type(None) in args else "")
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is list:
        return f"a list of {_plural(args[0])}"
    if origin is dict:
        return f"a mapping of names to {_plural(args[1])}"
    if dataclasses.is_dataclass(tp):
        return "a mapping with keys " + ", ".join(f.name for f in dataclasses.fields(tp))
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(tp, str(tp))


def _plural(tp) -> str:
    simple = {int: "integers", float: "numbers", str: "strings", bool: "true/false values", Any: "any values"}
    if tp in simple:
        return simple[tp]
    if dataclasses.is_dataclass(tp):
        return "mappings with keys " + ", ".join(f.name for f in dataclasses.fields(tp))
    return f"values that are {_describe(tp)}"


def _convert(value: Any, tp, key: str) -> Any:
    if tp is Any:  # a free-form value (a request's extra fields): YAML's own types
        return value
    origin, args = get_origin(tp), get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return _convert(value, arg, key)
            except Invalid:
                continue
        raise Invalid(key, f"must be {_describe(tp)}, got {value!r}")
    if origin is Literal:
        if value in args:
            return value
        raise Invalid(key, f"must be {_describe(tp)}, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise Invalid(key, f"must be {_describe(tp)}, got {value!r}")
        return [_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise Invalid(key, f"must be {_describe(tp)}, got {value!r}")
        return {k: _convert(v, args[1], f"{key}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(tp):
        return build(tp, value, key)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and type(value) is tp:
        return value
    raise Invalid(key, f"must be {_describe(tp)}, got {value!r}")


def build(cls, data: Any, prefix: str = ""):
    """Build dataclass `cls` from a mapping, rejecting unknown keys and missing values."""
    where = prefix or "the profile"
    if not isinstance(data, dict):
        raise Invalid(prefix, f"must be {_describe(cls)}, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = get_type_hints(cls)
    for name in data:
        if name not in fields:
            close = difflib.get_close_matches(str(name), fields, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise Invalid(join(prefix, name), f"is not a known key of {where}{hint}; known keys: {', '.join(fields)}")
    values = {}
    for name, f in fields.items():
        key = join(prefix, name)
        expect = f.metadata.get("expect") or _describe(hints[name])
        if name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise Invalid(key, f"is missing; it must be {expect}")
            continue
        try:
            value = _convert(data[name], hints[name], key)
        except Invalid as bad:
            if bad.key == key and f.metadata.get("expect"):
                raise Invalid(key, f"must be {expect}, got {data[name]!r}") from None
            raise
        check = f.metadata.get("check")
        if check is not None and value is not None and not check(value):
            raise Invalid(key, f"must be {expect}, got {data[name]!r}")
        values[name] = value
    return cls(**values)


def join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else str(name)
