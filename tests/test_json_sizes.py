"""The fast JSON paths say what Python's encoder says: a parsed tool input's size (orjson,
on the server) and a decision row's JSON columns (orjson, in the log's thread)."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as hs

from staso.errors import InvalidToolInput
from staso.jsonutil import MAX_DEPTH, encoded_size
from staso.store.store import _encode_json, _python_json

_scalars = (hs.none() | hs.booleans() | hs.integers(min_value=-(2**80), max_value=2**80)
            | hs.floats() | hs.text(hs.characters(codec=None)))
_values = hs.recursive(_scalars, lambda inner: hs.lists(inner, max_size=4)
                       | hs.dictionaries(hs.text(max_size=5), inner, max_size=4), max_leaves=20)


def _python_size(value: dict) -> int | type[InvalidToolInput]:
    try:
        return encoded_size(value)
    except InvalidToolInput:
        return InvalidToolInput


@settings(max_examples=400, deadline=None)
@given(hs.dictionaries(hs.text(max_size=5), _values, max_size=4))
def test_a_parsed_size_is_pythons(tool_input: dict) -> None:
    python = _python_size(tool_input)
    try:
        parsed: int | type[InvalidToolInput] = encoded_size(tool_input, parsed=True)
    except InvalidToolInput:
        parsed = InvalidToolInput
    if python is InvalidToolInput or parsed is InvalidToolInput:
        assert parsed is python  # NaN, infinities: refused either way
        return
    assert isinstance(parsed, int) and isinstance(python, int)
    floats = _floats(tool_input)  # (written a few characters longer or shorter by orjson)
    assert abs(parsed - python) <= 4 * floats


def _floats(value: object) -> int:
    if isinstance(value, float):
        return 1
    if isinstance(value, dict):
        value = list(value.values())
    return sum(_floats(v) for v in value) if isinstance(value, list) else 0


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [1, {"x": math.nan}]])
def test_nan_and_infinities_are_refused_when_parsed(value: object) -> None:
    with pytest.raises(InvalidToolInput, match=r"NaN|Infinity|inf"):
        encoded_size({"a": value}, parsed=True)


def test_what_orjson_refuses_is_sized_by_python() -> None:
    for tool_input in ({"big": 2**70}, {"name": "caf\udce9.txt"}, {"n": None, "s": "null"}):
        assert encoded_size(tool_input, parsed=True) == encoded_size(tool_input)


def test_nesting_past_the_limit_is_refused_when_parsed() -> None:
    deep: object = "x"
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(InvalidToolInput, match=r"deep|nest"):
        encoded_size({"a": deep}, parsed=True)
    shallow: object = "x"
    for _ in range(300):  # past orjson's own limit, within staso's: Python sizes it
        shallow = [shallow]
    assert encoded_size({"a": shallow}, parsed=True) == encoded_size({"a": shallow})


@settings(max_examples=400, deadline=None)
@given(_values)
def test_a_json_column_holds_the_value_pythons_encoder_would(value: object) -> None:
    try:
        expected = json.loads(_python_json(value))
    except (TypeError, ValueError):
        return  # (a value Python cannot encode never reaches a row)
    text = _encode_json(value)
    assert _same(json.loads(text), expected)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(b):
        return True  # (orjson writes null for NaN; inputs with NaN are refused before)
    if b is None or a is None:
        return a is b or (isinstance(b, float) and not math.isfinite(b))
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b and type(a) is type(b)


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_a_guard_body_with_nan_or_an_infinity_is_422(number: bytes) -> None:
    from fastapi import HTTPException

    from staso.server.api import _guard_request

    raw = b'{"tool_name":"x","tool_input":{"a":[1,{"b":' + number + b'}]}}'
    with pytest.raises(HTTPException) as caught:
        _guard_request(raw, "agent", 1024 * 1024)
    assert caught.value.status_code == 422


def test_a_guard_body_is_sized_as_python_sizes_it() -> None:
    from staso.server.api import _guard_request

    tool_input = {"big": 2**70, "s": "caf\u00e9 \U0001f600", "n": None, "l": [1, True, "x"]}
    raw = json.dumps({"tool_name": "x", "tool_input": tool_input}).encode()
    _, size, _ = _guard_request(raw, "agent", 1024 * 1024)
    assert size == encoded_size(tool_input) == len(
        json.dumps(tool_input, separators=(",", ":"), ensure_ascii=False).encode())


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-8-sig"])
def test_a_guard_body_that_is_not_plain_utf8_is_422(encoding: str) -> None:
    from fastapi.exceptions import RequestValidationError

    from staso.server.api import _guard_request

    raw = '{"tool_name":"t","tool_input":{"a":"\\ud800"}}'.encode(encoding)
    with pytest.raises(RequestValidationError):
        _guard_request(raw, "agent", 1024 * 1024)


@pytest.mark.parametrize("value", ["caf\u00e9", "x\u2028", "\U0001f600", {"k\u00e9": [1]}])
def test_text_that_is_not_ascii_is_written_as_python_wrote_it(value: object) -> None:
    # (a database that is not UTF-8 takes \u escapes; earlier releases wrote them so)
    assert _encode_json({"a": value}) == _python_json({"a": value})
    assert _encode_json({"a": value}).isascii()


def test_a_retry_written_by_another_release_is_the_same_call(tmp_path) -> None:
    """A row an earlier release wrote (its floats and escapes spelled by Python's encoder)
    and the same call retried now: one call, not a reused id."""
    from staso.errors import DecisionIdReused
    from staso.store import open_store, sqlite_url
    from staso.store import store as store_module

    store = open_store(sqlite_url(tmp_path))
    row = {"id": "dec_retry", "created_at": 1.0, "agent_name": "a", "environment": "",
           "tool_name": "t", "context": {}, "severity": "low", "reason": "",
           "tool_input": {"x": 1e-07, "s": "plain", "y": 1e-05}, "action": "allow"}
    saved = store_module._encode_json
    store_module._encode_json = _python_json  # as written before orjson
    try:
        store.write_decisions([row])
    finally:
        store_module._encode_json = saved
    store.write_decisions([row])  # the retry, written now: no error
    assert store.get_decision("dec_retry")["tool_input"] == row["tool_input"]
    other = {**row, "tool_input": {"x": 1e-07, "s": "plain", "y": 1}}
    with pytest.raises(DecisionIdReused):
        store.write_decisions([other])
    typed = {**row, "tool_input": {"x": 1e-07, "s": "plain", "y": True}}
    with pytest.raises(DecisionIdReused):
        store.write_decisions([typed])
    store.close()
