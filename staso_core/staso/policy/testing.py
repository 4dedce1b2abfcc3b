"""Policy tests (``staso policy test``): a call plus the expected action, like ``opa test``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .discovery import collect_functions
from .engine import Engine
from .loader import sibling_tests
from .model import Policy, PolicyTest


@dataclass
class TestOutcome:
    test: PolicyTest
    passed: bool
    message: str = ""


def run_policy_tests(policy: Policy, path: str | Path | None = None,
                     functions: dict | None = None) -> list[TestOutcome]:
    from ..plugins import make_plugin_manager

    engine = Engine(policy, functions if functions is not None
                    else collect_functions(make_plugin_manager()))
    tests = list(policy.tests) + (sibling_tests(path) if path else [])
    outcomes = []
    for test in tests:
        ev = engine.evaluate(test.tool_name, test.tool_input, test.context)
        problems = []
        if ev.action != test.expect_action:
            problems.append(f"expected {test.expect_action}, got {ev.action}"
                            + (f" (rule {ev.rule_name}: {ev.reason})" if ev.rule_name else ""))
        if test.expect_rule is not None and ev.rule_name != test.expect_rule:
            problems.append(f"expected rule {test.expect_rule}, got {ev.rule_name}")
        where = f"{test.path}:{test.line}: " if test.line else ""
        outcomes.append(TestOutcome(test, not problems, where + "; ".join(problems)))
    return outcomes
