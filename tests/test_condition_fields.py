"""Conditions see only the tool_input fields they read (a cheaper CEL context): which fields a
condition reads, and that every kind of use decides as it would with the whole input."""

from __future__ import annotations

from typing import Any

import pytest

from staso.plugins import make_plugin_manager
from staso.policy.cel_env import selected_fields
from staso.policy.discovery import collect_functions, load_any_policy
from staso.policy.engine import Engine


@pytest.mark.parametrize(("condition", "fields"), [
    ("tool_input.amount > 10", {"amount"}),
    ("has(tool_input.amount) && tool_input .currency == 'EUR'", {"amount", "currency"}),
    ("tool_input.customer.tier == 'gold'", {"customer"}),
    ("tool_input.note.startsWith('x')", {"note"}),
    ("tool_name == 'a'", set()),
    ("'tool_input.secret' == tool_input.amount", {"secret", "amount"}),  # a string only adds
])
def test_the_fields_a_condition_reads(condition: str, fields: set[str]) -> None:
    assert selected_fields(condition) == frozenset(fields)


@pytest.mark.parametrize("condition", [
    "size(tool_input) > 2",
    "tool_input['amount'] > 10",
    "tool_input.all(k, k != 'x')",
    "tool_input.exists(k, k == 'admin')",
    "[tool_input].all(t, t.amount > 1)",
    "[1].map(tool_input, tool_input + 1).size() > 0",
    "'amount' in tool_input",
    "tool_input.size() > 1",
])
def test_a_condition_using_the_whole_input_gets_all_of_it(condition: str) -> None:
    assert selected_fields(condition) is None


def decide(when: str, tool_input: dict[str, Any]) -> str:
    pm = make_plugin_manager()
    policy = load_any_policy(f"""version: 1
rules:
  - name: r
    tools: [t]
    when: {when!r}
    action: block
""", pm)
    return Engine(policy, collect_functions(pm)).evaluate("t", tool_input).action


@pytest.mark.parametrize(("when", "tool_input", "action"), [
    ("size(tool_input) > 2", {"a": 1, "b": 2, "c": 3}, "block"),
    ("size(tool_input) > 2", {"a": 1, "b": 2}, "allow"),
    ("tool_input.exists(k, k == 'admin')", {"x": 1, "admin": True}, "block"),
    ("'admin' in tool_input", {"x": 1, "admin": True}, "block"),
    ("tool_input['amount'] > 10 && has(tool_input.note)", {"amount": 50, "note": ""}, "block"),
    ("has(tool_input.note)", {"amount": 50}, "allow"),
    ("tool_input.customer.tier == 'gold'", {"customer": {"tier": "gold"}, "y": 2}, "block"),
    # two rules on one tool: the fields of both are given
    ("tool_input.amount > 10 || tool_input.other == 'x'", {"other": "x", "z": 0}, "block"),
])
def test_every_kind_of_use_decides_as_with_the_whole_input(
        when: str, tool_input: dict[str, Any], action: str) -> None:
    assert decide(when, tool_input) == action


def test_a_comment_between_a_method_and_its_call_is_not_a_field() -> None:
    """``tool_input.exists // note`` + newline + ``(k, ...)`` calls ``exists`` on the whole
    input: reading it as a field of that name gave CEL an empty map, and the rule never fired."""
    condition = "tool_input.exists // any key\n (k, k == 'secret')"
    assert selected_fields(condition) is None
    assert selected_fields("tool_input.a > 1 // tool_input.b\n") == frozenset({"a"})
    assert selected_fields("tool_input.a == '// not a comment' && tool_input.b") == \
        frozenset({"a", "b"})
    pm = make_plugin_manager()
    policy = load_any_policy('version: 1\nrules:\n  - name: r\n    tools: [t]\n'
                             '    when: "tool_input.exists // any key\\n (k, k == \'secret\')"\n'
                             '    action: block\n', pm)
    assert Engine(policy, collect_functions(pm)).evaluate("t", {"secret": 1}).action == "block"
