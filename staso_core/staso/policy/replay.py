"""``staso policy replay``: the recorded calls evaluated again under a candidate policy, to
see what it would change before it is in force. Evaluation only: the policy engine is run
on each recorded call; no escalation is made, no standing approval used, nothing written."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .engine import Engine
from .model import Policy
from .recorded import masked

EXAMPLES = 3
EXCERPT = 80


@dataclass
class Change:
    """Calls whose action changes the same way, by the rule that decides it now (or, for
    calls now allowed, the rule that decided them before)."""

    before: str
    after: str
    rule: str | None
    count: int = 0
    examples: list[dict[str, str]] = field(default_factory=list)


@dataclass
class ReplayReport:
    replayed: int = 0
    changed: int = 0
    masked: int = 0  # calls whose recorded input holds a field redact_in_log masked
    # executions recorded without a guard decision (POST /v1/executions): nothing to compare
    unguarded: int = 0
    changes: list[Change] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"replayed": self.replayed, "changed": self.changed, "masked": self.masked,
                "unguarded": self.unguarded, "changes": [c.__dict__ for c in self.changes]}


def replay(policy: Policy, functions: dict[str, Callable[..., Any]],
           decisions: Iterable[dict[str, Any]]) -> ReplayReport:
    """Each recorded decision's call (tool, input, context as recorded) under ``policy``."""
    engine = Engine(policy, functions)
    report = ReplayReport()
    groups: dict[tuple[str, str, str | None], Change] = {}
    for decision in decisions:
        before = decided(decision)
        if before is None:  # no decision was made: none changes
            report.unguarded += 1
            continue
        tool_input = decision.get("tool_input")
        context = decision.get("context")
        tool_input = tool_input if isinstance(tool_input, dict) else {}
        context = context if isinstance(context, dict) else {}
        report.replayed += 1
        if masked(tool_input) or masked(context):
            report.masked += 1
        tool = str(decision.get("tool_name") or "")
        after = engine.evaluate(tool, tool_input, context)
        if after.action == before:
            continue
        report.changed += 1
        rule = after.rule_name if after.action != "allow" else decision.get("rule_name")
        key = (before, after.action, rule)
        change = groups.get(key)
        if change is None:
            change = groups[key] = Change(before, after.action, rule)
        change.count += 1
        if len(change.examples) < EXAMPLES:
            change.examples.append({"id": str(decision.get("id")), "tool": tool,
                                    "input": excerpt(tool_input)})
    report.changes = sorted(groups.values(), key=lambda c: (-c.count, c.before, c.after,
                                                            c.rule or ""))
    return report


def decided(decision: dict[str, Any]) -> str | None:
    """What the policy in force decided for a recorded call (None: no guard decision).

    Not always the recorded action, which is what the agent finally got: a call the policy
    escalated is recorded as a person answered it (allow, ``modify`` with an edit, block when
    denied or unanswered) with its ``escalation_id``, and one a standing approval allowed as
    ``allow`` with its ``grant_id``. By the policy, both were "escalate"."""
    action = decision.get("action")
    if not isinstance(action, str) or not action:
        return None
    if (decision.get("escalation_id") or decision.get("grant_id")) and _escalated(decision):
        return "escalate"
    return action


def _escalated(decision: dict[str, Any]) -> bool:
    """Whether a rule escalated the call, by its recorded rule results (an enforced rule
    whose condition matched); a row without results is taken at its escalation's word."""
    results = decision.get("results")
    if not isinstance(results, list) or not results:
        return True
    return any(isinstance(r, dict) and r.get("action") == "escalate" and not r.get("passed")
               and r.get("mode", "enforce") == "enforce" for r in results)


def excerpt(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    return text if len(text) <= EXCERPT else text[:EXCERPT - 1] + "…"
