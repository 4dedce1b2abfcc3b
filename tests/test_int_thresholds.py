"""A condition comparing one field with a whole number is decided in Python only where CEL
would decide it the same way (``policy/int_thresholds.py``): checked against the CEL
binding itself on generated sources and values, and through the engine, whose results
(notes included) must be the same as with every condition run in CEL."""

from __future__ import annotations

import dataclasses
from typing import Any

import cel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine_pairs import with_and_without
from staso.policy import Engine
from staso.policy.int_thresholds import int_threshold

INT64 = 2 ** 63
FIELDS = ["amount", "n", "_x", "count2", "in", "true", "amount_"]
OPS = ["<", "<=", ">", ">=", "==", "!="]
SPACE = st.sampled_from(["", " ", "  ", "\n", "\t", " \r\n "])
NUMBERS = st.one_of(st.integers(-1100, 1100), st.sampled_from(
    [0, -1, INT64 - 1, -INT64, INT64, -INT64 - 1, 2 ** 64]))
VALUES = st.one_of(
    st.integers(-2000, 2000), st.integers(-(2 ** 70), 2 ** 70),
    st.sampled_from([INT64 - 1, -INT64, INT64, -INT64 - 1, True, False, None, 0.0, 1e3,
                     1000.5, float("inf"), "1000", "", [], {}, [1], {"a": 1}]),
    st.floats(allow_nan=False), st.text(max_size=5))


@st.composite
def sources(draw: Any) -> str:
    field = draw(st.sampled_from(FIELDS))
    s = [draw(SPACE) for _ in range(8)]
    compared = f"tool_input{s[0]}.{s[1]}{field}{s[2]}{draw(st.sampled_from(OPS))}{s[3]}" \
               f"{draw(NUMBERS)}{s[4]}"
    kind = draw(st.sampled_from(["plain", "has", "has other", "has first", "odd"]))
    if kind == "plain":
        return s[5] + compared
    tested = draw(st.sampled_from(FIELDS)) if kind == "has other" else field
    has = f"has({s[5]}tool_input{s[6]}.{tested}{s[7]})"
    if kind == "has first":
        return f"{compared} && {has}"  # (not the shape: CEL decides)
    if kind == "odd":
        return draw(st.sampled_from([f"{has} || {compared}", f"!{has} && {compared}",
                                     f"({compared})", f"{has} && ({compared})",
                                     f"{has} && {compared} // note",
                                     f"{has} && tool_input.{field} > 0x10"]))
    return f"{has}{s[0]}&&{s[1]}{compared}"


def _cel(source: str, tool_input: dict[str, Any]) -> Any:
    """What CEL says: a bool, or the exception it raised."""
    ctx = cel.Context()
    try:
        ctx.add_variable("tool_input", tool_input)
        return cel.compile(source).execute(ctx)
    except Exception as exc:  # (any failure is an answer here)
        return exc


def _compiles(source: str) -> bool:
    try:
        cel.compile(source)
    except Exception:
        return False
    return True


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sources(), st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=3))
def test_a_threshold_answers_only_as_cel_does(source: str, tool_input: dict[str, Any]) -> None:
    threshold = int_threshold(source)
    if threshold is None:
        return
    assert _compiles(source), source  # the shape is CEL: the rule loaded
    answer = threshold(tool_input)
    if answer is not None:
        assert _cel(source, tool_input) is answer, (source, tool_input)


@pytest.mark.parametrize("source, tool_input, answer", [
    ("has(tool_input.amount) && tool_input.amount > 1000", {"amount": 1001}, True),
    ("has(tool_input.amount) && tool_input.amount > 1000", {"amount": 1000}, False),
    ("has(tool_input.amount) && tool_input.amount > 1000", {}, False),
    ("tool_input.amount > 1000", {}, None),  # CEL's error names the missing field
    ("tool_input.amount >= -5", {"amount": -5}, True),
    ("tool_input.amount == 3", {"amount": True}, None),  # a bool is not an int in CEL
    ("tool_input.amount > 1000", {"amount": 1000.5}, None),
    ("tool_input.amount > 1000", {"amount": "5000"}, None),  # an error: fails closed
    ("tool_input.amount > 1000", {"amount": 2 ** 63}, None),  # past int64: CEL's uint
    ("has(tool_input.other) && tool_input.amount > 1", {"amount": 5}, "not the shape"),
    ("tool_input.amount > 1 || true", {"amount": 5}, "not the shape"),
    ("tool_input.amount > 0x10", {"amount": 5}, "not the shape"),
    ("tool_input.amount > 1u", {"amount": 5}, "not the shape"),
    ("tool_input.amount > 1 // note", {"amount": 5}, "not the shape"),
])
def test_what_a_threshold_decides(source: str, tool_input: dict[str, Any],
                                  answer: Any) -> None:
    threshold = int_threshold(source)
    if answer == "not the shape":
        assert threshold is None
        return
    assert threshold is not None
    assert threshold(tool_input) is answer
    if answer is not None:
        assert _cel(source, tool_input) is answer


POLICY = """version: 1
rules:
  - name: big
    when: has(tool_input.amount) && tool_input.amount > 1000
    action: escalate
  - name: bare
    when: tool_input.amount <= -1
    action: block
  - name: other
    when: has(tool_input.n) && tool_input.n != 7
    action: block
    mode: audit
  - use: builtin/pii
"""


def _engines() -> tuple[Engine, Engine]:
    quick, plain, plan = with_and_without(POLICY, "refund", lambda plan: dataclasses.replace(
        plan, live=tuple((i, r, g, None) for i, r, g, _ in plan.live)))
    assert sum(t is not None for *_, t in plan.live) == 3
    return quick, plain


@settings(max_examples=1500, deadline=None)
@given(st.dictionaries(st.sampled_from(["amount", "n", "note"]), VALUES, max_size=3))
def test_the_engine_decides_as_with_every_condition_in_cel(tool_input: dict[str, Any]) -> None:
    quick, plain = _engines()
    a, b = quick.evaluate("refund", tool_input), plain.evaluate("refund", tool_input)
    assert (a.action, a.rule_name, a.reason, a.results, a.rules_triggered) == \
        (b.action, b.rule_name, b.reason, b.results, b.rules_triggered), tool_input


def test_no_cel_context_is_made_when_every_condition_is_decided() -> None:
    quick, _ = _engines()
    made: list[object] = []
    real = quick._cel_context
    quick._cel_context = lambda *a: made.append(a) or real(*a)  # type: ignore[method-assign]
    assert quick.evaluate("refund", {"amount": 5000, "n": 7}).action == "escalate"
    assert made == []
    assert quick.evaluate("refund", {"amount": 5000.0}).action == "escalate"  # CEL decides
    assert len(made) == 1


class _LyingGet(dict):  # type: ignore[type-arg]
    def get(self, key: Any, default: Any = None) -> Any:
        return default


class _ScaledItems(dict):  # type: ignore[type-arg]
    def __getitem__(self, key: Any) -> Any:
        return dict.__getitem__(self, key) * 1000


@pytest.mark.parametrize("tool_input", [_LyingGet(amount=5000), _ScaledItems(amount=5)])
def test_an_input_of_a_dict_subclass_is_judged_by_cel(tool_input: dict[str, Any]) -> None:
    """A subclass's own ``get`` or ``[]`` may answer otherwise than the binding reads it
    (found by an outside attack: the rule was skipped): CEL decides, as without the
    shortcut."""
    assert int_threshold("has(tool_input.amount) && tool_input.amount > 1000")(
        tool_input) is None  # type: ignore[misc]
    quick, plain = _engines()
    a, b = quick.evaluate("refund", tool_input), plain.evaluate("refund", tool_input)
    assert (a.action, a.rule_name) == (b.action, b.rule_name)


def test_a_literal_past_int64_is_left_to_cel() -> None:
    assert int_threshold("tool_input.amount > " + "9" * 5000) is None
    assert int_threshold(f"tool_input.amount > {2 ** 63}") is None
    assert int_threshold(f"tool_input.amount > {2 ** 63 - 1}") is not None
