"""A rule whose condition says which tools it is for (``tool_name.startsWith("admin_") &&
...``) is worked out once per tool name: where a conjunct about the name alone is false, the
rule cannot fire and does not run. Every decision must be the one running it gives."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest

import staso
from staso.plugins import make_plugin_manager
from staso.policy.cel_text import conjuncts
from staso.policy.discovery import collect_functions, load_any_policy
from staso.policy.engine import Engine


@pytest.mark.parametrize(("source", "parts"), [
    ("a && b", ["a ", " b"]),
    ("a && (b || c) && d", ["a ", " (b || c) ", " d"]),
    ('tool_name == "a&&b" && c', ['tool_name == "a&&b" ', " c"]),
    ("f(a && b) && c", ["f(a && b) ", " c"]),
    ("[a && b][0]", ["[a && b][0]"]),
    ("a // not && here\n && b", ["a // not && here\n ", " b"]),
    ("'it\\'s && x' && b", ["'it\\'s && x' ", " b"]),  # an escaped quote
    ("r'\\' && b", ["r'\\' ", " b"]),  # a raw string ends at its quote
    ('"""a && "b" """ && c', ['"""a && "b" """ ', " c"]),
])
def test_conjuncts_are_split_at_the_top_level_only(source: str, parts: list[str]) -> None:
    assert conjuncts(source) == parts


@pytest.mark.parametrize("source", [
    "a || b && c", "a && b || c", "x ? a : b && c", "a.?b && c", "a && b ? c : d"])
def test_a_looser_operator_at_the_top_level_gives_no_conjuncts(source: str) -> None:
    assert conjuncts(source) is None


CONDITIONS = [
    'tool_name.startsWith("admin_") && tool_input.amount > 5',
    'tool_input.amount > 5 && tool_name == "pay"',  # an error beside a false side: false
    'tool_name in ["a", "b"] && context.env == "prod"',
    'tool_name == "x" || tool_input.amount > 5',
    'tool_name.matches("^adm") && (tool_input.amount > 1 || tool_name == "z")',
    'size(tool_name) > 3 && tool_input.kind == "v"',
    'tool_name == "a&&b" && tool_input.amount > 1',
    'tool_name.startsWith("x") ? tool_input.amount > 1 : false',
    'tool_name != "pay" && tool_input.amount',  # not a bool where it runs: treated as a match
    'tool_name.endsWith("_prod") && !has(tool_input.approved)',
    "tool_name == 'pay' && tool_name == 'pay' && tool_input.amount > 100",
]
TOOLS = ["admin_x", "pay", "a", "b", "x", "z", "adm", "a&&b", "x_prod", "refund"]
INPUTS: list[dict[str, Any]] = [
    {"amount": 50}, {"amount": "50"}, {}, {"amount": 0.5, "kind": "v"},
    {"amount": 200, "approved": True}, {"kind": "w", "amount": True}]
CONTEXTS: list[dict[str, Any]] = [{}, {"env": "prod"}, {"env": 1}]


class _Functions:
    def __init__(self, functions: dict[str, Any]) -> None:
        self.functions = functions

    @staso.hookimpl
    def staso_cel_functions(self) -> dict[str, Any]:
        return self.functions


def _engine(policy_text: str, functions: dict[str, Any] | None = None) -> Engine:
    pm = make_plugin_manager()
    if functions:
        pm.register(_Functions(functions))
    return Engine(load_any_policy(policy_text, pm), collect_functions(pm))


def _policy(conditions: list[str]) -> str:
    rules = "".join(f"  - name: r{i}\n    when: {c!r}\n    action: {a}\n"
                    for i, (c, a) in enumerate(zip(conditions, itertools.cycle(
                        ["block", "escalate", "allow"]), strict=False)))
    return f"version: 1\nrules:\n{rules}"


def test_every_decision_is_the_one_running_every_rule_gives() -> None:
    policy = _policy(CONDITIONS)
    scoped, unscoped = _engine(policy), _engine(policy)
    unscoped._by_name = {}  # nothing worked out by tool name: every rule runs
    pruned = 0
    for tool, tool_input, context in itertools.product(TOOLS, INPUTS, CONTEXTS):
        got = scoped.evaluate(tool, tool_input, context)
        want = unscoped.evaluate(tool, tool_input, context)
        assert (got.action, got.rule_name, got.reason, got.rules_triggered, got.results) == \
            (want.action, want.rule_name, want.reason, want.rules_triggered, want.results), \
            (tool, tool_input, context)
        pruned += len(got.results) - len(scoped._plan_for(tool).live)
    assert pruned > 0  # the comparison covered rules that did not run


class _Counted:
    """A compiled condition that counts its runs."""

    def __init__(self, program: Any) -> None:
        self.program, self.runs = program, 0

    def execute(self, ctx: Any) -> Any:
        self.runs += 1
        return self.program.execute(ctx)

    def variables(self) -> Any:
        return self.program.variables()


def test_a_rule_ruled_out_by_the_tool_name_does_not_run() -> None:
    engine = _engine(_policy(['tool_input.who == "b" && tool_name.startsWith("admin_")']))
    rule = engine.policy.rules[0]
    counted = _Counted(rule.program)
    object.__setattr__(rule, "program", counted)
    assert engine.evaluate("refund", {"who": "b"}).action == "allow"
    assert counted.runs == 0 and engine._plan_for("refund").live == ()
    assert engine.evaluate("admin_reset", {"who": "b"}).action == "block"
    assert counted.runs == 1


def test_a_rule_calling_a_plugin_function_always_runs() -> None:
    calls: list[str] = []

    def seen(value: Any) -> bool:
        calls.append(value)
        return True

    engine = _engine(_policy(['seen(tool_input.who) && tool_name.startsWith("admin_")']),
                     {"seen": seen})
    assert engine.evaluate("refund", {"who": "a"}).action == "allow"
    assert calls == ["a"]  # as without scoping: a plugin's function may count or spend


def test_a_plugin_function_is_never_worked_out_ahead() -> None:
    """Only CEL's own functions are run once per tool name: a plugin's may change."""
    answers = [False, True]

    def flip(name: str) -> bool:
        return answers.pop(0) if answers else True

    engine = _engine(_policy(["flip(tool_name) && tool_input.go == true"]), {"flip": flip})
    assert engine.evaluate("t", {"go": True}).action == "allow"
    assert engine.evaluate("t", {"go": True}).action == "block"


def test_the_guard_reports_a_scoped_rule_as_passed(tmp_path: Any) -> None:
    staso.init(agent_name="scoping", home=str(tmp_path), policy=_policy(
        ['tool_name.startsWith("admin_") && context.environment == "prod"']))
    try:
        result = staso.guard("refund", {"amount": 1})
        assert result.action == "allow"
        assert [(r.rule_name, r.passed) for r in result.results] == [("r0", True)]
        result = staso.guard("admin_drop", {}, context={"environment": "prod"})
        assert result.action == "block" and result.rule_name == "r0"
    finally:
        staso.shutdown()


def test_a_plugin_function_named_like_cels_own_is_never_worked_out_ahead() -> None:
    """Should a plugin's function shadow one of CEL's (this CEL keeps its own), the rule
    runs on every call rather than be judged ahead with the other one."""
    from staso.policy.cel_env import tool_name_conjuncts

    source = 'tool_name.startsWith("admin_") && tool_input.x == 1'
    assert len(tool_name_conjuncts(source)) == 1
    assert tool_name_conjuncts(source, {"startsWith": lambda s, p: True}) == []


def _same(policy: str, tool: str, tool_input: dict[str, Any]) -> str:
    scoped, unscoped = _engine(policy), _engine(policy)
    unscoped._by_name = {}
    got, want = scoped.evaluate(tool, tool_input), unscoped.evaluate(tool, tool_input)
    assert (got.action, got.rule_name, got.reason, got.results) == \
        (want.action, want.rule_name, want.reason, want.results)
    return got.action


def test_a_tool_name_cel_cannot_hold_is_worked_out_per_call() -> None:
    policy = _policy(['tool_name == "bash" && tool_input.a == 1'])
    assert _same(policy, "run\udcff", {"a": 1}) == "allow"
    assert _same(_policy(['tool_name != "bash" && tool_input.a == 1']), "run\udcff",
                 {"a": 1}) == "block"


def test_a_pack_with_a_when_still_fails_closed_on_input_too_deep() -> None:
    deep = "x"
    for _ in range(8):
        deep = json.dumps({"k": deep})
    policy = """version: 1
rules:
  - use: builtin/dangerous_shell
    name: shell
    when: 'tool_name == "bash"'
    action: block
"""
    assert _same(policy, "other", {"q": deep}) == "block"


@pytest.mark.parametrize("first", [
    """  - use: builtin/dangerous_shell
    name: shell_for_bash
    when: 'tool_name == "bash"'
    action: block""",
    """  - name: shell_fn_for_bash
    when: 'tool_input.cmds.exists(c, is_dangerous_shell(c)) && tool_name == "bash"'
    action: block""",
])
def test_a_rule_that_spends_the_shared_detector_budget_is_never_skipped(first: str) -> None:
    """The shell detector's work budget is the call's: a rule skipped before the one that
    shares it would have left that one more budget than running every rule does."""
    policy = f"""version: 1
rules:
{first}
  - use: builtin/dangerous_shell
    name: shell_everywhere
    action: escalate
"""
    _same(policy, "run_command", {"cmds": [f"rm -r build{i}" for i in range(400)]})
    assert _engine(policy)._by_name == {}
