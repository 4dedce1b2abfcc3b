"""Loads ``staso.yaml``: every mistake fails here with file:line and the rule's name."""

from __future__ import annotations

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
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> _Lines:
    loader.flatten_mapping(node)
    out = _Lines()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise PolicyError(f"duplicate key {key!r}", line=key_node.start_mark.line + 1)
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
        raise ValueError(f"unknown modify action {sorted(unknown)[0]!r} "
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
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in cap.values()):
            raise ValueError("'cap' must map field names to numbers, e.g. {amount: 100}")
        spec = replace(spec, cap=dict(cap))
    if "set" in raw:
        if not isinstance(raw["set"], dict) or not raw["set"]:
            raise ValueError("'set' must map field names to values, e.g. {currency: USD}")
        spec = replace(spec, set=dict(raw["set"]))
    if "drop" in raw:
        spec = replace(spec, drop=_str_list(raw["drop"], "drop"))
    return spec


def _common(raw: dict[str, Any], name: str, action: str, defaults: dict[str, Any]
            ) -> dict[str, Any]:
    if action not in ACTIONS:
        raise ValueError(f"action {action!r} is not one of allow, block, modify, escalate")
    severity = raw.get("severity", defaults.get("severity") or DEFAULT_SEVERITY[action])
    if severity not in SEVERITIES:
        raise ValueError(f"severity {severity!r} is not one of {', '.join(SEVERITIES)}")
    mode = raw.get("mode", "enforce")
    if mode not in ("enforce", "audit"):
        raise ValueError(f"mode {mode!r} is not enforce or audit")
    reason = raw.get("reason", defaults.get("reason")) or raw.get("description") or \
        f"Matched rule {name}"
    return {"severity": severity, "mode": mode, "reason": str(reason),
            "description": str(raw.get("description", defaults.get("description", ""))),
            **_answer_terms(raw, action, defaults.get("channels"))}


def _answer_terms(raw: dict[str, Any], action: str,
                  channels: dict[str, AddressCheck] | None) -> dict[str, Any]:
    """An escalating rule's routes and who may answer it (``approvers.py``)."""
    given = sorted(ANSWER_KEYS & set(raw))
    if not given:
        return {}
    if action != "escalate":
        raise ValueError(f"{given[0]!r} is about answering escalations; this rule's action "
                         f"is {action!r}")
    terms: dict[str, Any] = {}
    if "notify" in raw:
        terms["notify"] = _parse_notify(raw["notify"], action, channels)
    if "approvers" in raw:
        terms["approvers"] = approvers.check_entries(raw["approvers"])
    if "approvals_required" in raw:
        terms["approvals_required"] = approvers.check_required(raw["approvals_required"])
    if "forbid_self_approval" in raw:
        if not isinstance(raw["forbid_self_approval"], bool):
            raise ValueError("'forbid_self_approval' must be true or false")
        terms["forbid_self_approval"] = raw["forbid_self_approval"]
    names = [e for e in terms.get("approvers", ()) if ":" not in e]
    needed = terms.get("approvals_required", 1)
    if names and len(names) == len(terms["approvers"]) and len(names) < needed:
        people = "person" if len(names) == 1 else "people"
        raise ValueError(f"'approvals_required' is {needed} but 'approvers' names only "
                         f"{len(names)} {people}; no escalation by this rule could be approved")
    return terms


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
                channels: dict[str, AddressCheck] | None = None) -> Rule:
    if not isinstance(raw, dict):
        raise ValueError("each rule must be a mapping")
    when = raw.get("when")
    if when is not None and not isinstance(when, str):
        when = str(when).lower() if isinstance(when, bool) else None
        if when is None:
            raise ValueError("'when' must be a CEL expression string")
    if "use" in raw:
        unknown = set(raw) - USE_KEYS
        if unknown:
            raise ValueError(f"unknown key {sorted(unknown)[0]!r} in a 'use' entry")
        pack = packs.get(raw["use"])
        if pack is None:
            raise ValueError(f"unknown rule pack {raw['use']!r} "
                             f"(available: {', '.join(sorted(packs))})")
        name = str(raw.get("name", pack.name))
        action = raw.get("action", pack.action)
        common = _common(raw, name, action, {"severity": pack.severity if "action" not in raw
                                             else None, "reason": pack.reason,
                                             "description": pack.description,
                                             "channels": channels})
        detect, modify = pack.detect, pack.modify
        if "detectors" in raw:
            if pack.detector_factory is None:
                raise ValueError(f"pack {pack.name!r} does not take 'detectors'")
            detectors = _str_list(raw["detectors"], "detectors")
            detect = pack.detector_factory(detectors)
            if modify is not None:
                modify = replace(modify, redact_detectors=detectors)
        if action == "modify" and modify is None:
            raise ValueError(f"pack {pack.name!r} has no modification; use block or escalate")
        program = compile_condition(when, functions) if when else None
        return Rule(name=name, action=action, tools=_str_list(raw.get("tools", ["*"]), "tools"),
                    when=when, program=program, detect=detect,
                    modify=modify if action == "modify" else None, pack=pack.name, **common)
    unknown = set(raw) - RULE_KEYS
    if unknown:
        raise ValueError(f"unknown key {sorted(unknown)[0]!r} "
                         f"(rules take {', '.join(sorted(RULE_KEYS))}, or 'use' for a pack)")
    if "name" not in raw or not isinstance(raw["name"], str) or not raw["name"].strip():
        raise ValueError("every rule needs a 'name'")
    name = raw["name"]
    if "action" not in raw:
        raise ValueError("missing 'action' (allow, block, modify or escalate)")
    action = raw["action"]
    common = _common(raw, name, action, {"channels": channels})
    modify = None
    if action == "modify":
        if "modify" not in raw:
            raise ValueError("action 'modify' needs a 'modify' mapping (redact, cap, set, drop)")
        modify = _parse_modify(raw["modify"])
    elif "modify" in raw:
        raise ValueError(f"'modify' given but action is {action!r}")
    program = compile_condition(when, functions) if when else None
    return Rule(name=name, action=action, tools=_str_list(raw.get("tools", ["*"]), "tools"),
                when=when, program=program, modify=modify, **common)


def _parse_tests(raw: Any, path: str) -> list[PolicyTest]:
    if not isinstance(raw, list):
        raise PolicyError("'tests' must be a list", path=path, line=_line(raw))
    tests = []
    for i, item in enumerate(raw):
        line = _line(item)
        if not isinstance(item, dict):
            raise PolicyError(f"test #{i + 1} must be a mapping", path=path, line=line)
        unknown = set(item) - TEST_KEYS
        name = str(item.get("name", f"test #{i + 1}"))
        if unknown:
            raise PolicyError(f"test {name!r}: unknown key {sorted(unknown)[0]!r}", path=path,
                              line=_line(item, sorted(unknown)[0]))
        tool = item.get("tool", item.get("tool_name"))
        expect = item.get("expect")
        if not isinstance(tool, str) or expect is None:
            raise PolicyError(f"test {name!r} needs 'tool' and 'expect'", path=path, line=line)
        rule = None
        if isinstance(expect, dict):
            rule = expect.get("rule_name")
            expect = expect.get("action")
        if expect not in ACTIONS:
            raise PolicyError(f"test {name!r}: expected action {expect!r} is not one of "
                              "allow, block, modify, escalate", path=path, line=line)
        tool_input = item.get("input", item.get("tool_input", {}))
        if not isinstance(tool_input, dict):
            raise PolicyError(f"test {name!r}: 'input' must be a mapping", path=path, line=line)
        tests.append(PolicyTest(name, tool, _plain(tool_input), _plain(item.get("context") or {}),
                                expect, rule, path, line))
    return tests


def _plain(value: Any) -> Any:
    """Strip the line-tracking mapping type so values are ordinary JSON data."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def load_policy_text(text: str, path: str = "<policy>", *,
                     packs: dict[str, RulePack] | None = None,
                     functions: dict[str, Callable[..., Any]] | None = None,
                     known_tools: tuple[str, ...] = (),
                     channels: dict[str, AddressCheck] | None = None) -> Policy:
    """Parse and check a policy. Raises PolicyError with file:line on any problem.
    ``channels``: each approval channel's address check by scheme, for ``notify:``."""
    packs = packs if packs is not None else {}
    functions = functions if functions is not None else {}
    try:
        data = yaml.load(text, Loader=_Loader)
    except PolicyError as exc:
        raise PolicyError(exc.detail, path=path, line=exc.line) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise PolicyError(f"invalid YAML: {exc.problem or exc}", path=path,
                          line=mark.line + 1 if mark else None) from None
    except yaml.YAMLError as exc:
        raise PolicyError(f"invalid YAML: {exc}", path=path) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError("a policy must be a mapping with 'version' and 'rules'", path=path,
                          line=1)
    unknown = set(data) - TOP_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise PolicyError(f"unknown top-level key {key!r} (use {', '.join(sorted(TOP_KEYS))})",
                          path=path, line=_line(data, key))
    if data.get("version", 1) != 1:
        raise PolicyError(f"unsupported policy version {data.get('version')!r} (use 1)",
                          path=path, line=_line(data, "version"))
    try:
        ttl = parse_duration(data.get("escalation_ttl", "24h"))
    except ValueError as exc:
        raise PolicyError(f"escalation_ttl: {exc}", path=path,
                          line=_line(data, "escalation_ttl")) from None
    masker = Masker()
    if "redact_in_log" in data:  # field-name globs; [] masks nothing
        try:
            patterns = data["redact_in_log"]
            masker = Masker(() if patterns == [] else _str_list(patterns, "redact_in_log"))
        except ValueError as exc:
            raise PolicyError(str(exc), path=path, line=_line(data, "redact_in_log")) from None
    catalogue: tuple[str, ...] | None = None
    if "tools" in data or known_tools:
        try:
            catalogue = (_str_list(data["tools"], "tools") if "tools" in data else ()) + \
                tuple(known_tools)
        except ValueError as exc:
            raise PolicyError(str(exc), path=path, line=_line(data, "tools")) from None
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise PolicyError("'rules' must be a list", path=path, line=_line(data, "rules"))
    rules: list[Rule] = []
    seen: dict[str, int | None] = {}
    for i, raw in enumerate(raw_rules):
        label = raw.get("name", raw.get("use")) if isinstance(raw, dict) else None
        line = _line(raw)
        try:
            rule = _build_rule(raw, packs, functions, channels)
        except (ValueError, ConditionError) as exc:
            key_line = line
            if isinstance(raw, dict):
                # (the answer keys first: their messages also say what the action is)
                for key in ("notify", "approvers", "approvals_required",
                            "forbid_self_approval", "when", "action", "severity", "mode",
                            "modify", "tools", "use"):
                    if key in str(exc) and key in raw:
                        key_line = _line(raw, key)
                        break
            raise PolicyError(str(exc), path=path, line=key_line,
                              rule=str(label) if label else f"#{i + 1}") from None
        if rule.name in seen:
            raise PolicyError(f"duplicate rule name (first defined at line {seen[rule.name]})",
                              path=path, line=line, rule=rule.name)
        seen[rule.name] = line
        rule.line = line
        if catalogue is not None:
            for pattern in rule.tools:
                matches = tool_matcher((pattern,))
                if not any(matches(t) for t in catalogue):
                    raise PolicyError(
                        f"tool {pattern!r} matches no known tool (known: "
                        f"{', '.join(catalogue) or 'none'})", path=path,
                        line=_line(raw, "tools"), rule=rule.name)
        rules.append(rule)
    tests = _parse_tests(data["tests"], path) if "tests" in data else []
    return Policy(rules=rules, escalation_ttl=ttl, path=path, source=text, tools=catalogue,
                  tests=tests, log_masker=masker)


def load_policy(path: str | Path, **kwargs: Any) -> Policy:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy: {exc.strerror}", path=str(p)) from None
    except UnicodeDecodeError:
        raise PolicyError("policy is not UTF-8 text", path=str(p)) from None
    return load_policy_text(text, str(p), **kwargs)


def sibling_tests(path: str | Path, **kwargs: Any) -> list[PolicyTest]:
    """Tests from ``*.test.yaml`` files beside a policy (each a mapping with ``tests:``)."""
    p = Path(path)
    tests: list[PolicyTest] = []
    for test_file in sorted(p.parent.glob(f"{p.stem}*.test.yaml")):
        text = test_file.read_text(encoding="utf-8")
        try:
            data = yaml.load(text, Loader=_Loader)
        except yaml.YAMLError as exc:
            raise PolicyError(f"invalid YAML: {exc}", path=str(test_file)) from None
        if not isinstance(data, dict) or "tests" not in data:
            raise PolicyError("a test file must be a mapping with 'tests'", path=str(test_file),
                              line=1)
        tests.extend(_parse_tests(data["tests"], str(test_file)))
    return tests
