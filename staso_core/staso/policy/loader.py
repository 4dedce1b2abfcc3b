"""Loads ``staso.yaml``: every mistake fails here with file:line and the rule's name.

One set of checks serves both uses: at run time the first problem raises; ``staso policy
check`` collects them all (``check_policy_text``)."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from .. import approvers
from ..errors import PolicyError
from ..masking import Masker
from ..models import ACTIONS, SEVERITIES
from .cel_env import ConditionError, compile_condition
from .condition_types import MACROS, MAX_MACRO_DEPTH, macro_depth
from .model import DEFAULT_SEVERITY, ModifySpec, Policy, PolicyTest, Rule, RulePack, tool_matcher

TOP_KEYS = {"version", "escalation_ttl", "rules", "tests", "tools", "description",
            "redact_in_log"}
# what only an escalating rule may say: where it is announced and who answers it
ANSWER_KEYS = {"notify", "approvers", "approvals_required", "forbid_self_approval"}
RULE_KEYS = {"name", "description", "tools", "when", "action", "severity", "reason", "mode",
             "modify"} | ANSWER_KEYS
USE_KEYS = {"use", "name", "tools", "when", "action", "severity", "reason", "mode",
            "detectors", "description"} | ANSWER_KEYS
MODIFY_KEYS = {"redact", "cap", "set", "drop"}
TEST_KEYS = {"name", "tool", "tool_name", "input", "tool_input", "context", "expect"}
_TARGET = re.compile(r"([a-z][a-z0-9_-]*):(\S.*)", re.DOTALL)
AddressCheck = Callable[[str], str]
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}


class _Lines(dict):
    """A mapping that remembers the line of itself and of each key."""

    line: int = 0
    key_lines: dict[str, int]


class _Loader(yaml.SafeLoader):
    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[str, int]] = []


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> _Lines:
    loader.flatten_mapping(node)
    out = _Lines()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            seen = key in out
        except TypeError:  # an unhashable key ([a]: 1) is not a policy's
            raise PolicyError(f"key {key!r} is not a name", line=key_node.start_mark.line + 1
                              ) from None
        if seen:  # noted, not raised: a check reports every one, and the rest of the file
            loader.duplicates.append((f"duplicate key {key!r}", key_node.start_mark.line + 1))
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[str(key)] = key_node.start_mark.line + 1
    return out


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def parse_duration(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
        return float(value)
    m = _DURATION.match(str(value))
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"{value!r} is not a duration (examples: 90s, 30m, 24h, 7d)")
    return float(m.group(1)) * _UNIT[m.group(2)]


def _line(data: Any, key: str | None = None) -> int | None:
    if isinstance(data, _Lines):
        return data.key_lines.get(key, data.line) if key else data.line
    return None


def _str_list(value: Any, what: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v
                                                             for v in value):
        raise ValueError(f"'{what}' must be a non-empty list of strings")
    return tuple(value)


def _parse_modify(raw: Any) -> ModifySpec:
    if not isinstance(raw, dict) or not raw:
        raise ValueError("'modify' must be a mapping with redact, cap, set and/or drop")
    unknown = set(raw) - MODIFY_KEYS
    if unknown:
        raise ValueError(f"unknown modify action {sorted(unknown, key=str)[0]!r} "
                         f"(use {', '.join(sorted(MODIFY_KEYS))})")
    from ..detectors import PII_DETECTORS

    spec = ModifySpec()
    if "redact" in raw:
        red = raw["redact"] or {}
        if not isinstance(red, dict) or set(red) - {"fields", "detectors"}:
            raise ValueError("'redact' takes 'fields' and 'detectors'")
        fields = _str_list(red["fields"], "redact.fields") if "fields" in red else None
        detectors = _str_list(red["detectors"], "redact.detectors") if "detectors" in red else None
        for d in detectors or ():
            if d not in PII_DETECTORS:
                raise ValueError(f"unknown detector {d!r} (use {', '.join(PII_DETECTORS)})")
        spec = replace(spec, redact=True, redact_fields=fields, redact_detectors=detectors)
    if "cap" in raw:
        cap = raw["cap"]
        if not isinstance(cap, dict) or not cap or not all(
                isinstance(k, str) and _finite_number(v) for k, v in cap.items()):
            raise ValueError("'cap' must map field names to finite numbers, e.g. "
                             "{amount: 100}" + _cap_culprit(cap))
        spec = replace(spec, cap=_plain(cap))
    if "set" in raw:
        values = raw["set"]
        if not isinstance(values, dict) or not values or not all(
                isinstance(k, str) for k in values):  # ("" is a key a tool input may have)
            raise ValueError("'set' must map field names to values, e.g. {currency: USD}")
        for key, value in values.items():
            bad = _not_json(value)
            if bad is not None:
                raise ValueError(f"set: {key!r} is set to {bad}, which a tool input cannot "
                                 "hold (use a string, a finite number, true/false, null, a "
                                 "list or a mapping)")
        spec = replace(spec, set=_plain(values))
    if "drop" in raw:
        spec = replace(spec, drop=_str_list(raw["drop"], "drop"))
    return spec


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and \
        math.isfinite(value)


def _cap_culprit(cap: Any) -> str:
    """`` (not amount: nan)``: the first entry of a ``cap`` mapping that is not a limit."""
    if not isinstance(cap, dict):
        return ""
    for key, value in cap.items():
        if not (isinstance(key, str) and _finite_number(value)):
            return f" (not {key!r}: {value!r})"
    return ""


def _not_json(value: Any) -> str | None:
    """What in ``value`` a JSON tool input cannot hold (NaN, infinity, a date, a mapping
    key that is not a string), or None. (A walk, not recursion: YAML nests deep cheaply.)"""
    todo = [value]
    while todo:
        item = todo.pop()
        if isinstance(item, dict):
            for key in item:
                if not isinstance(key, str):
                    return f"a mapping with the key {key!r}"
            todo.extend(item.values())
        elif isinstance(item, list):
            todo.extend(item)
        elif isinstance(item, float) and not math.isfinite(item):
            return repr(item)
        elif item is not None and not isinstance(item, (str, int, float, bool)):
            return f"{item!r} (a {type(item).__name__})"
    return None


class Problems:
    """Where the checks put what is wrong with a policy: raised at the first (``collect``
    false, as at run time) or collected, every one, for ``staso policy check``."""

    def __init__(self, path: str, collect: bool = False) -> None:
        self.path, self.collect = path, collect
        self.errors: list[PolicyError] = []
        # each rule's key lines by rule name, for checks that run after loading
        self.rule_lines: dict[str, dict[str, int]] = {}
        # every rule that loaded on its own, with its key lines: the policy's rules and any
        # that share a name with an earlier one (not in the policy; a check still tries them)
        self.loaded: list[tuple[Rule, dict[str, int]]] = []
        # the tool of every test that names one, each test well formed or not
        self.test_tools: list[str] = []

    def add(self, message: str, line: int | None = None, rule: str | None = None) -> None:
        error = PolicyError(message, path=self.path, line=line, rule=rule)
        if not self.collect:
            raise error
        self.errors.append(error)

    def sorted(self) -> list[PolicyError]:
        return sorted(self.errors, key=lambda e: e.line or 0)


def did_you_mean(word: Any, choices: Any) -> str | None:
    """The closest of ``choices`` to a misspelt ``word`` (difflib), if one is close."""
    found = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return found[0] if found else None


class _RuleCheck:
    """One rule's checks: each problem is reported at the line of the key it is about."""

    def __init__(self, raw: Any, problems: Problems, label: str, line: int | None) -> None:
        self.raw, self.problems, self.label, self.line = raw, problems, label, line
        self.ok = True

    def report(self, message: str, key: str | None = None) -> None:
        self.ok = False
        line = _line(self.raw, key) if key and isinstance(self.raw, dict) and key in self.raw \
            else self.line
        self.problems.add(message, line, self.label)

    def attempt(self, key: str | None, check: Callable[[], Any]) -> Any:
        """``check()``'s value, or None with its ValueError reported at ``key``'s line."""
        try:
            return check()
        except (ValueError, ConditionError) as exc:
            self.report(str(exc), key)
            return None

    def unknown_keys(self, allowed: set[str], where: str) -> set[str]:
        """Report each key not in ``allowed`` (with the allowed key it is closest to);
        returns the allowed keys suggested, so a typo is not also reported as missing."""
        suggested = set()
        for key in sorted(set(self.raw) - allowed, key=str):
            near = did_you_mean(key, allowed)
            if near is not None:
                suggested.add(near)
                self.report(f"unknown key {key!r}; did you mean {near!r}?", str(key))
            else:
                self.report(f"unknown key {key!r} {where}", str(key))
        return suggested


def _severity(raw: dict[str, Any], action: Any, default: str | None) -> str:
    implied = DEFAULT_SEVERITY.get(action, "high") if isinstance(action, str) else "high"
    severity = raw.get("severity", default or implied)
    if not isinstance(severity, str) or severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    return str(severity)


def _mode(raw: dict[str, Any]) -> str:
    mode = raw.get("mode", "enforce")
    if not isinstance(mode, str) or mode not in ("enforce", "audit"):
        raise ValueError(f"mode {mode!r} is not enforce or audit")
    return str(mode)


def _condition(when: Any, functions: dict[str, Callable[..., Any]]) -> tuple[str | None, Any]:
    """A rule's ``when``: its text and compiled program (None, None when absent)."""
    if when is None:
        return None, None
    if isinstance(when, bool):
        when = str(when).lower()
    elif not isinstance(when, str):
        raise ValueError("'when' must be a CEL expression string")
    program = compile_condition(when, functions)
    depth = macro_depth(when)
    if depth > MAX_MACRO_DEPTH:
        raise ConditionError(
            f"'when' nests comprehension macros ({', '.join(MACROS)}) {depth} deep; at most "
            f"{MAX_MACRO_DEPTH} may nest: each level multiplies the work by a list's size, "
            "on every call")
    return when, program


def _answer_terms(raw: dict[str, Any], action: Any, channels: dict[str, AddressCheck] | None,
                  check: _RuleCheck) -> dict[str, Any]:
    """An escalating rule's routes and who may answer it (``approvers.py``)."""
    given = sorted(ANSWER_KEYS & set(raw))
    if not given:
        return {}
    if action != "escalate":
        if action in ACTIONS:  # (an unknown action is reported once, on its own line)
            for key in given:
                check.report(f"{key!r} is about answering escalations; this rule's action "
                             f"is {action!r}", key)
        return {}
    terms: dict[str, Any] = {}
    parsers: dict[str, Callable[[Any], Any]] = {
        "notify": lambda v: _parse_notify(v, action, channels),
        "approvers": approvers.check_entries, "approvals_required": approvers.check_required,
        "forbid_self_approval": _flag}
    for key in given:
        value = check.attempt(key, lambda key=key: parsers[key](raw[key]))  # type: ignore[misc]
        if value is not None:
            terms[key] = value
    names = [e for e in terms.get("approvers", ()) if ":" not in e]
    needed = terms.get("approvals_required", 1)
    if names and len(names) == len(terms["approvers"]) and len(names) < needed:
        people = "person" if len(names) == 1 else "people"
        check.report(f"'approvals_required' is {needed} but 'approvers' names only "
                     f"{len(names)} {people}; no escalation by this rule could be approved",
                     "approvers")
    return terms


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("'forbid_self_approval' must be true or false")
    return value


def _parse_notify(raw: Any, action: str, channels: dict[str, AddressCheck] | None
                  ) -> tuple[str, ...]:
    """A rule's escalation routes (``slack:#payments``, ``email:ops@example.com``), each
    checked by its channel: a typo fails at load, not when a $50,000 refund escalates."""
    if action != "escalate":
        raise ValueError(f"'notify' routes escalations; this rule's action is {action!r}")
    targets = _str_list(raw, "notify")
    checked = []
    for target in targets:
        found = _TARGET.fullmatch(target.strip())
        if found is None:
            raise ValueError(f"notify: {target!r} is not channel:address, such as "
                             "slack:#payments or email:ops@example.com")
        scheme, address = found.groups()
        if channels is not None:
            if scheme not in channels:
                raise ValueError(f"notify: unknown channel {scheme!r} in {target!r} "
                                 f"(available: {', '.join(sorted(channels)) or 'none'})")
            address = channels[scheme](address.strip())
        checked.append(f"{scheme}:{address}")
    return tuple(dict.fromkeys(checked))


def _build_rule(raw: Any, packs: dict[str, RulePack],
                functions: dict[str, Callable[..., Any]],
                channels: dict[str, AddressCheck] | None, check: _RuleCheck) -> Rule | None:
    """A rule from its mapping, every problem reported through ``check``; None if any."""
    if not isinstance(raw, dict):
        check.report("each rule must be a mapping")
        return None
    pack: RulePack | None = None
    action: Any
    name: Any
    if "use" in raw:
        check.unknown_keys(USE_KEYS, "in a 'use' entry")
        pack = packs.get(raw["use"]) if isinstance(raw["use"], str) else None
        if pack is None:
            check.report(f"unknown rule pack {raw['use']!r} "
                         f"(available: {', '.join(sorted(packs))})", "use")
        if "name" in raw and (not isinstance(raw["name"], str) or not raw["name"].strip()):
            check.report("a 'use' entry's 'name' must be text", "name")
        name = str(raw.get("name", pack.name if pack else raw["use"]))
        action = raw.get("action", pack.action if pack else None)
        default_severity = pack.severity if pack and "action" not in raw else None
    else:
        suggested = check.unknown_keys(RULE_KEYS, f"(rules take {', '.join(sorted(RULE_KEYS))}"
                                                  ", or 'use' for a pack)")
        name = raw.get("name")
        if not isinstance(name, str) or not name.strip():
            check.report("every rule needs a 'name'", "name")
        if "action" not in raw and "action" not in suggested:
            check.report("missing 'action' (allow, block, modify or escalate)")
        action, default_severity = raw.get("action"), None
    for key in ("reason", "description"):
        if raw.get(key) is not None and not isinstance(raw[key], str):
            check.report(f"'{key}' must be text", key)
    known_action = isinstance(action, str) and action in ACTIONS
    if "action" in raw and not known_action:  # (null too: no action is not a default)
        check.report(f"action {action!r} is not one of allow, block, modify, escalate", "action")
    severity = check.attempt("severity", lambda: _severity(raw, action, default_severity))
    mode = check.attempt("mode", lambda: _mode(raw))
    terms = _answer_terms(raw, action if known_action else None, channels, check)
    detect, modify = (pack.detect, pack.modify) if pack else (None, None)
    if pack is not None and "detectors" in raw:
        if pack.detector_factory is None:
            check.report(f"pack {pack.name!r} does not take 'detectors'", "detectors")
        else:
            detectors = check.attempt("detectors",
                                      lambda: _str_list(raw["detectors"], "detectors"))
            factory = pack.detector_factory
            made = None if detectors is None else check.attempt(
                "detectors", lambda: factory(detectors))  # (it refuses a name it lacks)
            if made is not None:
                detect = made
                if modify is not None:
                    modify = replace(modify, redact_detectors=detectors)
    if pack is not None and action == "modify" and modify is None:
        check.report(f"pack {pack.name!r} has no modification; use block or escalate", "action")
    if pack is None and action == "modify":
        if "modify" not in raw:
            check.report("action 'modify' needs a 'modify' mapping (redact, cap, set, drop)",
                         "action")
        else:
            modify = check.attempt("modify", lambda: _parse_modify(raw["modify"]))
    elif pack is None and "modify" in raw and known_action:
        check.report(f"'modify' given but action is {action!r}", "modify")
    tools = check.attempt("tools", lambda: _str_list(raw.get("tools", ["*"]), "tools"))
    when, program = check.attempt("when", lambda: _condition(raw.get("when"), functions)) \
        or (None, None)
    if not check.ok:
        return None
    assert isinstance(name, str) and isinstance(action, str)
    reason = raw.get("reason", pack.reason if pack else None) or raw.get("description") or \
        f"Matched rule {name}"
    description = raw.get("description", pack.description if pack else "")
    return Rule(name=name, action=action, tools=tools, when=when, program=program,
                detect=detect, modify=modify if action == "modify" else None,
                pack=pack.name if pack else None, severity=severity, mode=mode,
                reason=str(reason), description=str(description), **terms)


def _parse_tests(raw: Any, problems: Problems) -> list[PolicyTest]:
    if not isinstance(raw, list):
        problems.add("'tests' must be a list", _line(raw))
        return []
    tests = []
    for i, item in enumerate(raw):
        line = _line(item)
        if not isinstance(item, dict):
            problems.add(f"test #{i + 1} must be a mapping", line)
            continue
        name = str(item.get("name", f"test #{i + 1}"))
        for key in sorted(set(item) - TEST_KEYS, key=str):
            near = did_you_mean(key, TEST_KEYS)
            problems.add(f"test {name!r}: unknown key {key!r}"
                         + (f"; did you mean {near!r}?" if near else ""), _line(item, str(key)))
        tool = item.get("tool", item.get("tool_name"))
        if isinstance(tool, str):  # (a known tool, whatever else the test gets wrong)
            problems.test_tools.append(tool)
        expect = item.get("expect")
        if not isinstance(tool, str) or expect is None:
            problems.add(f"test {name!r} needs 'tool' and 'expect'", line)
            continue
        rule = None
        if isinstance(expect, dict):
            rule = expect.get("rule_name")
            expect = expect.get("action")
        if not isinstance(expect, str) or expect not in ACTIONS:
            problems.add(f"test {name!r}: expected action {expect!r} is not one of "
                         "allow, block, modify, escalate", _line(item, "expect"))
            continue
        tool_input = item.get("input", item.get("tool_input", {}))
        if not isinstance(tool_input, dict):
            problems.add(f"test {name!r}: 'input' must be a mapping", line)
            continue
        tests.append(PolicyTest(name, tool, _plain(tool_input), _plain(item.get("context") or {}),
                                expect, rule, problems.path, line))
    return tests


def _plain(value: Any) -> Any:
    """Strip the line-tracking mapping type so values are ordinary JSON data."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _parse_yaml(text: str, problems: Problems) -> Any:
    """The YAML document with line numbers, or None after reporting why it cannot be read
    (nothing more can be checked then). Duplicate keys are reported; the last one counts."""
    loader = None
    try:
        loader = _Loader(text)  # (its reader already refuses some characters)
        data = loader.get_single_data()
    except PolicyError as exc:
        problems.add(exc.detail, exc.line)
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problems.add(f"invalid YAML: {exc.problem or exc}", mark.line + 1 if mark else None)
        return None
    except yaml.YAMLError as exc:
        problems.add(f"invalid YAML: {exc}")
        return None
    finally:
        if loader is not None:
            loader.dispose()
    for message, line in loader.duplicates:
        problems.add(message, line)
    return {} if data is None else data


def _top_level(data: dict[str, Any], problems: Problems, known_tools: tuple[str, ...]
               ) -> tuple[float, Masker, tuple[str, ...] | None]:
    """The top-level settings: escalation TTL, log masking and the tool catalogue."""
    for key in sorted(set(data) - TOP_KEYS, key=str):
        near = did_you_mean(key, TOP_KEYS)
        problems.add(f"unknown top-level key {key!r}"
                     + (f"; did you mean {near!r}?" if near
                        else f" (use {', '.join(sorted(TOP_KEYS))})"), _line(data, str(key)))
    if data.get("version", 1) != 1:
        problems.add(f"unsupported policy version {data.get('version')!r} (use 1)",
                     _line(data, "version"))
    ttl = 24 * 3600.0
    try:
        ttl = parse_duration(data.get("escalation_ttl", "24h"))
    except ValueError as exc:
        problems.add(f"escalation_ttl: {exc}", _line(data, "escalation_ttl"))
    masker = Masker()
    if "redact_in_log" in data:  # field-name globs; [] masks nothing
        try:
            patterns = data["redact_in_log"]
            masker = Masker(() if patterns == [] else _str_list(patterns, "redact_in_log"))
        except ValueError as exc:
            problems.add(str(exc), _line(data, "redact_in_log"))
    catalogue: tuple[str, ...] | None = None
    if "tools" in data or known_tools:
        try:
            catalogue = (_str_list(data["tools"], "tools") if "tools" in data else ()) + \
                tuple(known_tools)
        except ValueError as exc:
            problems.add(str(exc), _line(data, "tools"))
    return ttl, masker, catalogue


def _rules(raw_rules: Any, problems: Problems, catalogue: tuple[str, ...] | None,
           build: Callable[[Any, _RuleCheck], Rule | None]) -> list[Rule]:
    rules: list[Rule] = []
    seen: dict[str, int | None] = {}
    for i, raw in enumerate(raw_rules):
        label = raw.get("name", raw.get("use")) if isinstance(raw, dict) else None
        line = _line(raw)
        rule = build(raw, _RuleCheck(raw, problems, str(label) if label else f"#{i + 1}", line))
        # a name is taken by a rule with errors too: a second rule of that name is an error,
        # reported with the rest whether either of them has errors of its own
        name: str | None = rule.name if rule is not None else None
        if rule is None and isinstance(raw, dict) and isinstance(raw.get("name"), str):
            name = raw["name"]
        duplicate = name is not None and name in seen
        if name is not None and duplicate:
            problems.add(f"duplicate rule name (first defined at line {seen[name]})",
                         line, name)
        elif name is not None:
            seen[name] = line
        if rule is None:
            continue
        rule.line = line
        lines = dict(raw.key_lines) if isinstance(raw, _Lines) else {}
        problems.loaded.append((rule, lines))
        if not duplicate:
            problems.rule_lines[rule.name] = lines
        if catalogue is not None:
            for pattern in rule.tools:
                if not any(tool_matcher((pattern,))(t) for t in catalogue):
                    near = did_you_mean(pattern, catalogue)
                    problems.add(
                        f"tool {pattern!r} matches no known tool (known: "
                        f"{', '.join(catalogue) or 'none'})"
                        + (f"; did you mean {near!r}?" if near else ""),
                        _line(raw, "tools"), rule.name)
        if not duplicate:  # (the first rule of a name is the one in the policy)
            rules.append(rule)
    return rules


def _load(text: str, problems: Problems, packs: dict[str, RulePack] | None,
          functions: dict[str, Callable[..., Any]] | None, known_tools: tuple[str, ...],
          channels: dict[str, AddressCheck] | None) -> Policy | None:
    """Every check of a policy text, each problem given to ``problems``; the policy of
    its good rules (None if the text is no policy at all)."""
    packs = packs if packs is not None else {}
    functions = functions if functions is not None else {}
    data = _parse_yaml(text, problems)
    if data is None:
        return None
    if not isinstance(data, dict):
        problems.add("a policy must be a mapping with 'version' and 'rules'", 1)
        return None
    ttl, masker, catalogue = _top_level(data, problems, known_tools)
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        problems.add("'rules' must be a list", _line(data, "rules"))
        raw_rules = []
    rules = _rules(raw_rules, problems, catalogue,
                   lambda raw, check: _build_rule(raw, packs, functions, channels, check))
    tests = _parse_tests(data["tests"], problems) if "tests" in data else []
    return Policy(rules=rules, escalation_ttl=ttl, path=problems.path, source=text,
                  tools=catalogue, tests=tests, log_masker=masker)


def load_policy_text(text: str, path: str = "<policy>", *,
                     packs: dict[str, RulePack] | None = None,
                     functions: dict[str, Callable[..., Any]] | None = None,
                     known_tools: tuple[str, ...] = (),
                     channels: dict[str, AddressCheck] | None = None) -> Policy:
    """Parse and check a policy. Raises PolicyError with file:line on the first problem.
    ``channels``: each approval channel's address check by scheme, for ``notify:``."""
    policy = _load(text, Problems(path), packs, functions, known_tools, channels)
    assert policy is not None  # (each way to None reports, and so raises, first)
    return policy


def check_policy_text(text: str, path: str = "<policy>", *,
                      packs: dict[str, RulePack] | None = None,
                      functions: dict[str, Callable[..., Any]] | None = None,
                      known_tools: tuple[str, ...] = (),
                      channels: dict[str, AddressCheck] | None = None
                      ) -> tuple[Policy | None, Problems]:
    """Every problem of a policy at once (``staso policy check``), and the policy of its
    good rules for the checks that evaluate them."""
    problems = Problems(path, collect=True)
    return _load(text, problems, packs, functions, known_tools, channels), problems


def read_policy_text(path: str | Path) -> str:
    p = Path(path)
    try:
        return p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy: {exc.strerror}", path=str(p)) from None
    except UnicodeDecodeError:
        raise PolicyError("policy is not UTF-8 text", path=str(p)) from None


def load_policy(path: str | Path, **kwargs: Any) -> Policy:
    return load_policy_text(read_policy_text(path), str(path), **kwargs)


def sibling_tests(path: str | Path, problems: Problems | None = None) -> list[PolicyTest]:
    """Tests from ``*.test.yaml`` files beside a policy (each a mapping with ``tests:``).
    ``problems``: collect what is wrong in them (default: raise at the first)."""
    p = Path(path)
    tests: list[PolicyTest] = []
    for test_file in sorted(p.parent.glob(f"{p.stem}*.test.yaml")):
        found = Problems(str(test_file), collect=problems is not None)
        text = test_file.read_text(encoding="utf-8")
        data = _parse_yaml(text, found)
        if data is not None and (not isinstance(data, dict) or "tests" not in data):
            found.add("a test file must be a mapping with 'tests'", 1)
        elif data is not None:
            tests.extend(_parse_tests(data["tests"], found))
        if problems is not None:
            problems.errors.extend(found.errors)
            problems.test_tools.extend(found.test_tools)
    return tests
