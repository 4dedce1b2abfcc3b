"""``staso policy check``: every problem of a policy in one run. The loader's own checks
(collected, not raised), then what only a check can see: literals of the wrong type in
conditions, conditions that fail on the calls the policy will meet (its tests, recorded
calls), and tool names that match no tool anyone has seen."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PolicyError
from .cel_env import ConditionRunner
from .condition_types import ORDERING, Comparison, comparisons, field_value
from .loader import Problems, check_policy_text, did_you_mean, read_policy_text, sibling_tests
from .model import Policy, Rule, RulePack, normalize_tool_name, tool_matcher


@dataclass(frozen=True)
class Sample:
    """A call a rule's condition is tried on: a policy test or a recorded decision."""

    label: str  # test 'small refund' / decision 3f2a…
    tool_name: str
    tool_input: dict[str, Any]
    context: dict[str, Any]


@dataclass
class CheckReport:
    """Errors (exit 1) and warnings (exit 0), each ``file:line: message``, by line."""

    policy: Policy | None
    errors: list[PolicyError] = field(default_factory=list)
    warnings: list[PolicyError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def check_policy_file(path: str | Path, *, packs: dict[str, RulePack],
                      functions: dict[str, Callable[..., Any]],
                      channels: dict[str, Callable[[str], str]] | None = None,
                      recorded: Iterable[Sample] = (), tools: Iterable[str] = ()) -> CheckReport:
    """Check a policy file and its ``*.test.yaml``; ``recorded``: calls from the decision
    log; ``tools``: tool names the caller knows exist (``--tool``)."""
    try:
        text = read_policy_text(path)
    except PolicyError as exc:
        return CheckReport(None, [exc])
    policy, problems = check_policy_text(text, str(path), packs=packs, functions=functions,
                                         channels=channels)
    tests = list(policy.tests) if policy else []
    tests += sibling_tests(path, problems)
    report = CheckReport(policy)
    if policy is not None:  # (every rule that loaded on its own, whatever else is wrong)
        own = [Sample(f"test {t.name!r}", t.tool_name, t.tool_input, t.context)
               for t in tests]
        calls = list(recorded)
        _check_conditions(policy, problems, functions, own, calls, report)
        known = list(dict.fromkeys([*tools, *problems.test_tools,
                                    *(s.tool_name for s in own + calls)]))
        _check_tool_names(policy, problems, known, report)
    report.errors = problems.sorted()
    report.warnings.sort(key=lambda w: w.line or 0)
    return report


def _check_conditions(policy: Policy, problems: Problems,
                      functions: dict[str, Callable[..., Any]], samples: list[Sample],
                      recorded: list[Sample], report: CheckReport) -> None:
    """Each rule's literals against what they are compared with, and its condition run on
    every call that reaches it. Failing on one of the policy's own tests is an error (the
    policy says that call is a real one); failing on recorded calls is a warning: an agent
    can send anything, and the engine counts a condition that fails as a match."""
    runner = ConditionRunner(functions)
    seen_kinds: dict[str, dict[str, tuple[Rule, Comparison]]] = {}
    for rule, lines in problems.loaded:
        if rule.when is None or rule.program is None:
            continue
        line = lines.get("when", rule.line)
        found = comparisons(rule.when)
        hints = {c.field: c for c in found if c.op in ORDERING and c.meant_number()}
        hint = next(iter(hints.values()), None)
        failures = _failures(rule.program, rule.tools, samples, runner, first_only=True)
        if hint is not None and not failures:  # (the literal is wrong: any failure shows it)
            failures = _failures(rule.program, rule.tools, recorded, runner, first_only=True)
        if failures:
            sample, message = failures[0]
            where = _described(sample, hint)
            problems.add(f"rule {rule.name} (line {rule.line}): {rule.when} fails on "
                         f"{sample.label}{where}: {message}"
                         + (f"; did you mean {hint.meant_number()}?" if hint else ""), line)
        elif hints:
            for hint in hints.values():
                problems.add(f"rule {rule.name} (line {rule.line}): {hint.text} orders "
                             f"{hint.field} against the string {hint.literal}, which fails "
                             f"on any number; did you mean {hint.meant_number()}?", line)
        elif failures := _failures(rule.program, rule.tools, recorded, runner):
            # an agent can send anything: not the policy's fault, and the call is decided
            sample, message = failures[0]
            calls = "call" if len(failures) == 1 else "calls"
            report.warnings.append(PolicyError(
                f"rule {rule.name} (line {rule.line}): {rule.when} fails on {len(failures)} "
                f"recorded {calls} (such a call gets this rule's action, "
                f"{rule.action}: a condition that fails counts as a match), e.g. on "
                f"{sample.label}: {message}", path=policy.path, line=line))
        for c in found:
            if c.kind == "null" or c in hints.values():  # (a hint is reported above)
                continue
            kinds = seen_kinds.setdefault(c.field, {})
            others = [k for k in kinds if k != c.kind
                      and _may_share(c.field, rule.tools, kinds[k][0].tools)]
            if others and c.kind not in kinds:
                first_rule, first = kinds[others[0]]
                problems.add(f"rule {rule.name} (line {rule.line}): {c.field} is compared "
                             f"with {_plural(c.kind)} here ({c.text}) and with "
                             f"{_plural(first.kind)} in rule {first_rule.name} ({first.text}); "
                             f"one of them fails on every call", line)
            kinds.setdefault(c.kind, (rule, c))


def _may_share(field: str, tools: tuple[str, ...], other: tuple[str, ...]) -> bool:
    """Whether two rules can read one field of one call: the context always; a tool's
    input only if their tool patterns can name the same tool."""
    if not field.startswith("tool_input") or other == tools:
        return True
    if "*" in tools or "*" in other:
        return True
    return any(tool_matcher(tools)(p) for p in other) or \
        any(tool_matcher(other)(p) for p in tools)


def _failures(program: Any, tools: tuple[str, ...], samples: list[Sample],
              runner: ConditionRunner, first_only: bool = False) -> list[tuple[Sample, str]]:
    """The samples a condition reaches and fails on, with the first line of each error."""
    matches = tool_matcher(tools)
    found: list[tuple[Sample, str]] = []
    for sample in samples:
        if not matches(sample.tool_name):
            continue
        try:
            program.execute(runner.context({"tool_name": sample.tool_name,
                                            "tool_input": sample.tool_input,
                                            "context": sample.context}))
        except KeyError:  # a field the call does not have: the rule does not apply to it
            continue
        except Exception as exc:
            found.append((sample, str(exc).split(". ")[0].rstrip(".")))
            if first_only:
                break
    return found


def _described(sample: Sample, hint: Comparison | None) -> str:
    if hint is None:
        return ""
    found, value = field_value({"tool_name": sample.tool_name, "tool_input": sample.tool_input,
                                "context": sample.context}, hint.field)
    if not found:
        return ""
    kind = "a number" if isinstance(value, (int, float)) and not isinstance(value, bool) \
        else f"a {type(value).__name__}"
    return f" where {hint.field} is {value!r} ({kind})"


def _plural(kind: str) -> str:
    return {"number": "numbers", "string": "strings", "bool": "booleans"}.get(kind, kind)


def _check_tool_names(policy: Policy, problems: Problems, known: list[str],
                      report: CheckReport) -> None:
    """Warn on a ``tools:`` pattern that matches no known tool. (A policy with a ``tools:``
    catalogue has had that checked as an error already.)"""
    if policy.tools is not None:
        return
    if not known:
        report.notes.append("tool names were not checked: no tool is known (none in the "
                            "policy's tests or the decision log; name them with --tool)")
        return
    normal = {normalize_tool_name(t): t for t in known}
    for rule, lines in problems.loaded:
        for pattern in rule.tools:
            if any(tool_matcher((pattern,))(t) for t in known):
                continue
            near = did_you_mean(normalize_tool_name(pattern), normal)
            line = lines.get("tools", rule.line)
            report.warnings.append(PolicyError(
                f"tool {pattern!r} matches no tool seen yet in the policy's tests, the "
                "decision log or --tool"
                + (f"; did you mean {normal[near]!r}?" if near else
                   f" (seen: {', '.join(known[:10])}{', …' if len(known) > 10 else ''}); "
                   "fine if it has not been called yet"),
                path=policy.path, line=line, rule=rule.name))
