"""JSON data: conversion both ways, the canonical hash, the first difference, reading files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import pytest

from algodistill.errors import UserError
from algodistill.jsonio import ABSENT, canonical_hash, first_difference, from_jsonable, jsonable, read_json


@dataclass(frozen=True)
class Inner:
    width: int = 4
    rate: float = 0.5
    kind: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner = field(default_factory=Inner)
    sizes: tuple[int, ...] = (1, 2)
    pair: tuple[float, float] = (0.9, 0.99)
    path: Path = Path("runs")
    maybe: int | None = None
    table: dict[str, Inner] = field(default_factory=lambda: {"x": Inner()})


def test_jsonable_and_back_round_trip():
    obj = Outer("o", Inner(7, 0.25, "b"), (3,), (0.1, 0.2), Path("a/b"), 5, {"y": Inner(1)})
    data = jsonable(obj)
    assert data["inner"] == {"width": 7, "rate": 0.25, "kind": "b"}
    assert data["sizes"] == [3] and data["path"] == "a/b" and data["table"]["y"]["width"] == 1
    assert jsonable({"nested": [obj.inner]}) == {"nested": [{"width": 7, "rate": 0.25, "kind": "b"}]}
    assert from_jsonable(Outer, data) == obj
    assert from_jsonable(Outer, {"name": "o"}) == Outer("o")  # missing fields take their defaults
    assert from_jsonable(Inner, {"rate": 1}).rate == 1.0  # an int where a float is expected is fine


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "o", "inner": {"width": "4"}}, r"config field inner\.width='4' is not of type int"),
        ({"name": "o", "inner": {"widht": 4}}, r"config field inner\.widht is unknown: choose among width, rate"),
        ({"name": "o", "inner": {"kind": "c"}}, r"config field inner\.kind='c' is not one of 'a', 'b'"),
        ({"name": "o", "sizes": [1, "x"]}, r"config field sizes\[1\]='x' is not of type int"),
        ({"name": "o", "pair": [1.0]}, r"config field pair=\[1\.0\] is not of type"),
        ({"name": "o", "maybe": "x"}, r"config field maybe='x' fits none of"),
        ({"name": "o", "table": {"x": {"rate": True}}}, r"config field table\.x\.rate=True is not of type float"),
        ({"inner": {}}, r"config field name is missing"),
        ({"name": "o", "inner": 3}, r"config inner must be an object of fields, got 3"),
    ],
)
def test_from_jsonable_names_the_bad_field(data, message):
    with pytest.raises(UserError, match=message) as info:
        from_jsonable(Outer, data)
    assert "\n" not in str(info.value)


def test_canonical_hash_ignores_key_order_and_whitespace():
    assert canonical_hash({"a": 1, "b": [1, 2]}) == canonical_hash({"b": [1, 2], "a": 1})
    assert canonical_hash({"a": 1}) != canonical_hash({"a": 1.5})
    # the dataset manifests' config_hash: sha256 of '{"a":1}' (sorted keys, no whitespace)
    assert canonical_hash({"a": 1}) == "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"


def test_first_difference():
    a = {"lr": 1.0, "model": {"n_embd": 64, "n_head": 4}, "steps": 10}
    assert first_difference(a, a) is None
    assert first_difference(a, a | {"steps": 20}, ignore=["steps"]) is None
    assert first_difference(a, a | {"model": {"n_embd": 32, "n_head": 4}}) == ("model.n_embd", 64, 32)
    assert first_difference(a, a | {"new": 1}) == ("new", ABSENT, 1)
    assert first_difference({"x": [1, 2]}, {"x": [1, 3]}) == ("x", [1, 2], [1, 3])  # lists compare whole
    assert first_difference(1, 2) == ("<root>", 1, 2)


def test_read_json_errors_are_one_line(tmp_path):
    good = tmp_path / "good.json"
    good.write_text('{"a": 1}')
    assert read_json(good, "fix it") == {"a": 1}
    for name, text, message in (
        ("bad.json", "{not json", r"bad\.json is unreadable \(JSONDecodeError: .*\); fix it"),
        ("list.json", "[1, 2]", r"list\.json holds no JSON object; fix it"),
    ):
        (tmp_path / name).write_text(text)
        with pytest.raises(UserError, match=message) as info:
            read_json(tmp_path / name, "fix it")
        assert "\n" not in str(info.value)
    with pytest.raises(UserError, match=r"missing\.json is unreadable"):
        read_json(tmp_path / "missing.json", "fix it")
