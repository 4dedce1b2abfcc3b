"""Evaluates a loaded policy against one call: the strictest action wins."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..detectors import evaluation as detector_evaluation
from ..detectors.gates import GATED_BELOW, Gate, joined
from ..jsonutil import MAX_JSON_LAYERS, inspected_texts
from ..models import STRICTNESS, GuardResult, RuleResult
from ..result_templates import ResultTemplate
from .cel_env import (
    ConditionRunner,
    cel_functions_only,
    false_for_tool,
    selected_fields,
    tool_name_conjuncts,
)
from .int_thresholds import Threshold, int_threshold
from .model import Policy, Rule, tool_matcher
from .modify import ModifyError, apply_modify

_TOOL_CACHE_LIMIT = 4096


def _unredacted(modifiers: list[Rule], modified: dict[str, Any]) -> Rule | None:
    """The first redacting rule whose detector still fires on the modified input: what a
    detector finds but redaction cannot mask blocks the call, it is never let through."""
    checks = [(r, r.detect) for r in modifiers if r.detect is not None and r.modify is not None
              and r.modify.redact]
    if not checks:
        return None
    texts = inspected_texts(modified)
    return next((r for r, detect in checks if texts.too_deep or detects_any(detect, texts)),
                None)


def _gate_of(rule: Rule) -> Gate | None:
    """The gate a rule's detector declares (``may_fire``), if it has one."""
    gate = getattr(rule.detect, "may_fire", None)
    return gate if isinstance(gate, Gate) else None


def _loud(texts: list[str], may_fire: Callable[[str], bool]) -> list[str]:
    """The texts a gated detector may fire on (``detectors/gates.py``): every text but the
    plain ASCII ones, shorter than ``GATED_BELOW``, that the gates rule out. One test a
    text instead of each pack's own first tests. Texts too deep to inspect stay as they
    are (``_matches`` treats them as a match)."""
    if getattr(texts, "too_deep", False):
        return texts
    return [t for t in texts if type(t) is not str or len(t) >= GATED_BELOW
            or not t.isascii() or may_fire(t)]


def detects_any(detect: Callable[[str], bool], texts: Sequence[str]) -> bool:
    """Whether ``detect`` fires on any text; a detector with a ``many`` method judges them
    all at once (the PII finders search many short texts joined, a chunk at a time)."""
    many = getattr(detect, "many", None)
    if many is not None:
        return bool(many(texts))
    return any(detect(text) for text in texts)


@dataclass(frozen=True, slots=True)
class _ToolPlan:
    """What evaluating one tool's calls takes, worked out once per tool name."""

    passed: tuple[RuleResult, ...]  # every rule of the tool, as reported when it passes
    # the rules that can fire, with their place, whether their detector is gated, and the
    # Python test that decides their condition where it can (``int_thresholds``)
    live: tuple[tuple[int, Rule, bool, Threshold | None], ...]
    variables: frozenset[str]  # the CEL variables those read
    fields: frozenset[str] | None  # the tool_input fields those read (None: all)
    inspects: bool  # whether one of them runs a detector on the input's texts
    gate: Callable[[str], bool] | None  # whether a gated detector may fire on a text
    # whether a rule spends the detectors' work budget whatever the texts: an ungated
    # detector, or a condition calling a function (staso's detectors, a plugin's)
    budgeted: bool
    calls: bool  # whether a condition calls a function (staso's detectors, a plugin's)
    template: ResultTemplate  # ``passed`` as the decision log stores it once


def _fields_read(rules: list[Rule]) -> frozenset[str] | None:
    """The top-level tool_input fields these rules' conditions read, or None if one of them
    uses the whole input (``cel_env.selected_fields``)."""
    fields: set[str] = set()
    for rule in rules:
        if rule.program is None or "tool_input" not in rule.program.variables():
            continue
        selected = selected_fields(rule.when or "")
        if selected is None:
            return None
        fields |= selected
    return frozenset(fields)


class Engine:
    """A policy made ready to evaluate: rules indexed by tool name, conditions compiled."""

    def __init__(self, policy: Policy, functions: dict[str, Callable[..., Any]]) -> None:
        self.policy = policy
        self._runner = ConditionRunner(functions)
        # conditions that call a function (staso's detectors, a plugin's) spend the budget
        self._calls = {id(r) for r in policy.rules if r.program is not None
                       and not cel_functions_only(r.program, functions)}
        self._by_tool: dict[str, _ToolPlan] = {}
        self._tool_matchers = [(r, tool_matcher(r.tools)) for r in policy.rules]
        # only a rule that is CEL alone may be skipped: a pack's detector (which also fails
        # closed on input too deep to inspect) or a function of a plugin or detector spends
        # the work budget the call's other rules share, so skipping one would change theirs
        self._by_name = {id(r): tool_name_conjuncts(r.when, functions) for r in policy.rules
                         if r.detect is None and r.program is not None and r.when
                         and cel_functions_only(r.program, functions)}
        # ``has(tool_input.amount) && tool_input.amount > 1000`` on an int: decided without
        # converting the input into CEL (``int_thresholds``; CEL decides every other value)
        self._thresholds = {id(r): t for r in policy.rules
                            if r.detect is None and r.program is not None
                            and cel_functions_only(r.program, functions)
                            and (t := int_threshold(r.when)) is not None}
        # a rule that did not match always reports the same thing: build that once
        self._passed = {id(r): RuleResult(r.name, True, r.action, r.mode, "", r.severity)
                        for r in policy.rules}

    def _plan_for(self, tool_name: str) -> _ToolPlan:
        plan = self._by_tool.get(tool_name)
        if plan is None:
            rules = [r for r, matches in self._tool_matchers if matches(tool_name)]
            # ``tool_name.startsWith("admin_") && ...`` scopes a rule the way ``tools:``
            # does: where the name rules it out, it is reported passed without running (in
            # the 50-rule benchmark 6 of the 12 rules a tool has; -5 µs a call)
            live = [(i, r) for i, r in enumerate(rules)
                    if not false_for_tool(self._by_name.get(id(r), []), tool_name)]
            live_rules = [r for _, r in live]
            passed = tuple(self._passed[id(r)] for r in rules)
            gates = [_gate_of(r) for r in live_rules]
            calls = any(id(r) in self._calls for r in live_rules)
            plan = _ToolPlan(
                passed=passed, template=ResultTemplate.of(passed),
                live=tuple((i, r, _gate_of(r) is not None, self._thresholds.get(id(r)))
                           for i, r in live),
                gate=joined(g for g in gates if g is not None) if any(gates) else None,
                variables=frozenset(v for r in live_rules if r.program is not None
                                    for v in r.program.variables()),
                fields=_fields_read(live_rules),
                inspects=any(r.detect is not None for r in live_rules),
                budgeted=calls or any(r.detect is not None and _gate_of(r) is None
                                      for r in live_rules),
                calls=calls)
            if len(self._by_tool) >= _TOOL_CACHE_LIMIT:
                self._by_tool.clear()  # tool names can be model-made: keep the cache bounded
            self._by_tool[tool_name] = plan
        return plan

    def template_for(self, tool_name: str) -> ResultTemplate | None:
        """The results template of a tool this engine has decided on (the decision log's
        thread asks: it never works out a plan itself)."""
        plan = self._by_tool.get(tool_name)
        return None if plan is None else plan.template

    def _cel_context(self, plan: _ToolPlan, tool_name: str, tool_input: dict[str, Any],
                     context: dict[str, Any]) -> Any:
        seen = tool_input
        if plan.fields is not None:  # only the fields read go into CEL: the 50-rule
            # benchmark's 3-field input converted in 2.0 µs instead of 4.7
            seen = {k: tool_input[k] for k in plan.fields if k in tool_input}
        values = {"tool_name": tool_name, "tool_input": seen, "context": context}
        return self._runner.context({v: values[v] for v in plan.variables if v in values},
                                    plan.calls)

    def _matches(self, rule: Rule, strings: list[str], cel_ctx: Any) -> tuple[bool, str]:
        """Return (triggered, note). A condition that cannot be evaluated counts as a match."""
        if rule.detect is not None:
            if getattr(strings, "too_deep", False):
                return True, (f"a string holds JSON nested over {MAX_JSON_LAYERS} layers deep, "
                              "too deep to inspect; treated as a match")
            if not detects_any(rule.detect, strings):
                return False, ""
        if rule.program is None:
            return True, ""
        try:
            value = rule.program.execute(cel_ctx)
        except KeyError as exc:  # a field the condition reads is absent: it does not apply
            return False, f"field {exc} not in the call"
        except Exception as exc:  # type confusion must not slip past a rule: fail closed
            first = str(exc).split(". ")[0].rstrip(".")
            return True, f"condition could not be evaluated ({first}); treated as a match"
        if not isinstance(value, bool):
            return True, f"condition returned {type(value).__name__}, not bool; treated as a match"
        return value, ""

    def evaluate(self, tool_name: str, tool_input: dict[str, Any],
                 context: dict[str, Any] | None = None, decision_id: str = "") -> GuardResult:
        plan = self._plan_for(tool_name)
        strings = inspected_texts(tool_input) if plan.inspects else []
        loud = strings if plan.gate is None else _loud(strings, plan.gate)
        if plan.budgeted or (plan.inspects and (loud or loud is strings)):
            with detector_evaluation():  # one work budget for every string of this input
                return self._evaluate(plan, tool_name, tool_input, context or {}, decision_id,
                                      strings, loud)
        # no detector and no function will run (the gates ruled out every text): no
        # budget to share, and opening one costs ~2.6 µs a call on the report machine
        return self._evaluate(plan, tool_name, tool_input, context or {}, decision_id,
                              strings, loud)

    def _evaluate(self, plan: _ToolPlan, tool_name: str, tool_input: dict[str, Any],
                  context: dict[str, Any], decision_id: str, strings: list[str],
                  loud: list[str]) -> GuardResult:
        results = list(plan.passed)  # a rule that fires (or notes something) is replaced
        triggered_names: list[str] = []
        common: dict[str, Any] = {"results": results, "rules_triggered": triggered_names,
                                  "decision_id": decision_id, "tool_name": tool_name}
        if not plan.live:
            return GuardResult.made(action="allow", **common)
        cel_ctx = None
        quiet = not loud and loud is not strings  # the gate ruled out every text
        decider: Rule | None = None
        modifiers: list[Rule] = []
        for place, rule, gated, threshold in plan.live:
            if gated and quiet:  # its detector fires on none of them: it passes
                continue
            decided = None if threshold is None else threshold(tool_input)
            if decided is not None:  # (a plain int: no CEL context needed)
                if not decided:
                    continue
                triggered, note = True, ""
            else:
                if cel_ctx is None and plan.variables:  # made once, when a rule needs it
                    # (so a value CEL cannot hold, 10**400, fails the call closed only when
                    # a rule that runs needs CEL; made first, it failed every call)
                    cel_ctx = self._cel_context(plan, tool_name, tool_input, context)
                triggered, note = self._matches(rule, loud if gated else strings, cel_ctx)
                if not triggered and not note:
                    continue
            reason = rule.reason if triggered else ""
            if note:
                reason = f"{reason} [{note}]" if reason else note
            results[place] = RuleResult(rule.name, not triggered, rule.action, rule.mode,
                                        reason, rule.severity)
            if not triggered:
                continue
            triggered_names.append(rule.name)
            if rule.mode == "audit":
                continue
            if rule.action == "modify":
                modifiers.append(rule)
            if decider is None or STRICTNESS[rule.action] > STRICTNESS[decider.action]:
                decider = rule
        if decider is None:
            return GuardResult.made(action="allow", **common)
        action, severity = decider.action, decider.severity
        rule_name: str | None = decider.name
        reason = next(r.reason for r in results if r.rule_name == decider.name)
        modified_input: dict[str, Any] | None = None
        modifications: list[dict[str, str]] = []
        if modifiers and action in ("modify", "escalate"):
            current = tool_input
            try:
                for rule in modifiers:
                    assert rule.modify is not None
                    current, changes = apply_modify(current, rule.modify, rule.name)
                    modifications.extend(changes)
            except Exception as exc:  # a modification that fails must not let the call run
                reason = str(exc) if isinstance(exc, ModifyError) else \
                    f"could not apply the modification ({type(exc).__name__}: {exc})"
                return GuardResult(action="block", reason=reason, rule_name=rule.name,
                                   severity="high", modifications=modifications, **common)
            left = _unredacted(modifiers, current)
            if left is not None:
                return GuardResult(
                    action="block", rule_name=left.name, severity="high",
                    reason=f"{left.reason} [a finding could not be redacted; blocked]",
                    modifications=modifications, **common)
            modified_input = current
            if action == "modify" and not modifications:
                # the modify rules matched but found nothing to change: the call runs as is
                action, severity, modified_input = "allow", "low", None
        if action == "allow":
            reason, rule_name = "", decider.name if decider.action == "allow" else None
        return GuardResult(action=action, reason=reason, rule_name=rule_name, severity=severity,
                           modified_input=modified_input, modifications=modifications,
                           escalation_status="pending" if action == "escalate" else None,
                           **common)
