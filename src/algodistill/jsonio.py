"""Configs and records as JSON data: conversion both ways, a canonical hash, the first difference, reads.

Every file algodistill writes besides tensors and HDF5 is JSON (manifests, configs, stage records,
reports), and every comparison of two configs (resume, re-run, dataset reuse) is of their JSON data,
so these few functions are the one place where that conversion and comparison happen:

- `jsonable(obj)`: dataclasses, tuples, paths -> plain dicts, lists, strings (what a file stores).
- `from_jsonable(cls, data)`: the inverse for (nested) frozen config dataclasses, type-checked, with a
  one-line `UserError` naming the dotted field.
- `canonical_hash(data)`: sha256 of the sorted, compact JSON text.
- `first_difference(a, b)`: the first dotted field where two JSON values differ.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from hashlib import sha256
from pathlib import Path
from typing import Any, Literal, TypeVar, Union

from algodistill.errors import UserError

T = TypeVar("T")
ABSENT = "<absent>"
"""What `first_difference` reports for a field that one side does not have."""


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return str(obj)


def jsonable(obj: Any) -> Any:
    """`obj` as JSON data: dataclasses (at any depth) become dicts, tuples lists, paths and other objects strings."""
    return json.loads(json.dumps(obj, default=_plain))


def canonical_hash(data: Any) -> str:
    """sha256 of the canonical JSON text of `data` (sorted keys, no whitespace)."""
    return sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def first_difference(
    a: Any, b: Any, ignore: typing.Iterable[str] = (), prefix: str = ""
) -> tuple[str, Any, Any] | None:
    """(dotted field, value in a, value in b) of the first field, in sorted order, where two JSON values
    differ; `ABSENT` stands for a field one side lacks. Top-level fields named in `ignore` are skipped."""
    if isinstance(a, dict) and isinstance(b, dict):
        skip = set(ignore)
        for key in sorted(set(a) | set(b), key=str):
            if key in skip:
                continue
            if key not in a or key not in b:
                return f"{prefix}{key}", a.get(key, ABSENT), b.get(key, ABSENT)
            if (d := first_difference(a[key], b[key], prefix=f"{prefix}{key}.")) is not None:
                return d
        return None
    return None if a == b else (prefix.rstrip(".") or "<root>", a, b)


def read_json(path: Path, fix: str) -> dict[str, Any]:
    """The JSON object in `path`; a one-line UserError ending with `fix` if it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise UserError(f"{path} is unreadable ({type(e).__name__}: {str(e)[:120]}); {fix}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} holds no JSON object; {fix}")
    return data


def from_jsonable(cls: type[T], data: Any, where: str = "") -> T:
    """The dataclass `cls` built from JSON data (as `jsonable` wrote it), nested dataclasses included.

    Missing fields take their defaults; an unknown field or a value of the wrong type is a UserError
    naming the dotted field (`where` is the prefix of the names), and `__post_init__` checks run.
    """
    if not isinstance(data, dict):
        raise UserError(f"config {where.rstrip('.') or '<root>'} must be an object of fields, got {_short(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    if unknown := sorted(set(data) - set(fields)):
        raise UserError(f"config field {where}{unknown[0]} is unknown: choose among {', '.join(fields)} (see --help)")
    kwargs = {name: _value(hints[name], data[name], f"{where}{name}") for name in fields if name in data}
    missing = [n for n, f in fields.items() if n not in data and f.default is f.default_factory is dataclasses.MISSING]
    if missing:
        raise UserError(f"config field {where}{missing[0]} is missing: give it a value")
    return cls(**kwargs)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _value(tp: Any, value: Any, where: str) -> Any:
    """`value` converted to the annotated type `tp`, or a UserError naming `where`."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        for option in args:  # the first type the value fits; None only for null
            try:
                return _value(option, value, where)
            except UserError:
                continue
        raise UserError(f"config field {where}={_short(value)} fits none of {_type_name(tp)}")
    if origin is Literal:
        if value in args:
            return value
        raise UserError(f"config field {where}={_short(value)} is not one of {', '.join(map(repr, args))}")
    if tp is type(None):
        if value is None:
            return None
    elif dataclasses.is_dataclass(tp):
        return from_jsonable(typing.cast(type, tp), value, f"{where}.")
    elif origin is tuple and isinstance(value, list):
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_value(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) == len(value):
            return tuple(_value(t, v, f"{where}[{i}]") for i, (t, v) in enumerate(zip(args, value, strict=True)))
    elif origin is dict and isinstance(value, dict):
        return {str(k): _value(args[1], v, f"{where}.{k}") for k, v in value.items()}
    elif tp is Path and isinstance(value, str):
        return Path(value)
    elif tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    elif tp in (int, str, bool) and type(value) is tp:
        return value
    raise UserError(f"config field {where}={_short(value)} is not of type {_type_name(tp)}: give a {_type_name(tp)}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
