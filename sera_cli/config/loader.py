"""Values read from files (a run's config.json, a --config file) checked against the type of the
dataclass field they set, so that a wrong one is named where it is read, not deep in the model.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from sera_cli.errors import SeraError


def coerce(value: Any, hint: Any, *, numbers_from_text: bool = False) -> Any:
    """``value`` as type ``hint`` (an annotation: int, float, str, bool, list[...], tuple[...],
    X | None), or raise ValueError. ``numbers_from_text`` reads "1e-3" as a number (YAML reads it
    as a string); an int is a float, a bool is nothing but a bool."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if isinstance(hint, types.UnionType) or origin is typing.Union:
        for arg in args:
            try:
                return coerce(value, arg, numbers_from_text=numbers_from_text)
            except ValueError:
                pass
        raise ValueError(value)
    if hint is type(None) or hint is None:
        if value is None:
            return None
        raise ValueError(value)
    if origin is list:
        if not isinstance(value, (list, tuple)):
            raise ValueError(value)
        return [coerce(v, args[0], numbers_from_text=numbers_from_text) for v in value]
    if origin is tuple:
        fixed = [a for a in args if a is not Ellipsis]
        if not isinstance(value, (list, tuple)) or (Ellipsis not in args
                                                    and len(value) != len(fixed)):
            raise ValueError(value)
        return tuple(coerce(v, fixed[min(i, len(fixed) - 1)],
                            numbers_from_text=numbers_from_text) for i, v in enumerate(value))
    if isinstance(value, bool) or hint is bool:
        if isinstance(value, bool) and hint is bool:
            return value
        raise ValueError(value)
    if hint in (int, float) and isinstance(value, str) and numbers_from_text:
        return hint(value)
    if hint is float and isinstance(value, int):
        return float(value)
    if isinstance(hint, type) and isinstance(value, hint):
        return value
    raise ValueError(value)


def describe(hint: Any) -> str:
    """'a whole number', 'a list of numbers', ... for an error message."""
    args = [a for a in typing.get_args(hint) if a is not type(None) and a is not Ellipsis]
    origin = typing.get_origin(hint)
    if origin in (list, tuple):
        return f"a list of {describe(args[0]).removeprefix('a ')}s"
    if args:
        return describe(args[0])
    return {int: "a whole number", float: "a number", bool: "true or false"}.get(hint, "a string")


def check_fields(cls: type, data: dict[str, Any], where: str, prefix: str = "") -> None:
    """Raise SeraError naming the first key of ``data`` (as ``where: 'prefix.key'``) whose value
    does not fit its field of dataclass ``cls``; nested dataclasses are checked as tables.
    Unknown keys are left to the constructor, which names them."""
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value, hint, key = data[f.name], hints[f.name], f"{prefix}{f.name}"
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            if not isinstance(value, dict):
                raise SeraError(f"{where}: '{key}' must be a table of settings, got {value!r}")
            check_fields(hint, value, where, f"{key}.")
            continue
        try:
            coerce(value, hint)
        except ValueError:
            raise SeraError(f"{where}: '{key}' must be {describe(hint)}, got {value!r}; the "
                            "file was edited or damaged") from None


def from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    """Build dataclass ``cls`` from ``data`` strictly: an unknown key is named rather than
    silently dropped, and a nested dataclass field (found from the type hints, so a new section
    needs no registration here) is built from its table the same way."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SeraError(f"unknown key(s) in {where} config: {', '.join(unknown)}; "
                        f"known: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        hint = hints[key]
        if dataclasses.is_dataclass(hint) and isinstance(hint, type) and isinstance(value, dict):
            value = from_dict(hint, value, f"{where}.{key}")
        elif typing.get_origin(hint) is tuple and isinstance(value, list):
            value = tuple(value)  # JSON has no tuples
        kwargs[key] = value
    return cls(**kwargs)
