"""Loaded policy objects. Built by the loader, read by the engine."""

from __future__ import annotations

import fnmatch
import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from ..masking import Masker

_WORD_EDGE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SEPARATORS = re.compile(r"[-_.\s]+")


def normalize_tool_name(name: str) -> str:
    """A tool name (or a glob over tool names) in one naming style: words split at camelCase
    and PascalCase edges and at ``-``, ``_``, ``.`` and spaces, joined by ``_``, lower case.

    Agents and frameworks spell one tool many ways (``processRefund``, ``ProcessRefund``,
    ``process-refund``, ``PROCESS_REFUND``); a policy's ``*refund*`` must catch them all.
    Glob characters (``*``, ``?``, ``[``, ``]``) pass through.
    """
    # (separators at either end are dropped: "process_refund " is process_refund)
    return _SEPARATORS.sub("_", _WORD_EDGE.sub("_", name)).strip("_").lower()


def tool_matcher(globs: Iterable[str]) -> Callable[[str], bool]:
    """Whether a tool name matches any of ``globs``, both normalised (``normalize_tool_name``);
    the globs are compiled once."""
    globs = tuple(globs)
    if not globs:
        return lambda tool_name: False
    pattern = re.compile("|".join(fnmatch.translate(normalize_tool_name(g)) for g in globs))
    return lambda tool_name: pattern.match(normalize_tool_name(tool_name)) is not None


DEFAULT_SEVERITY = {"allow": "low", "modify": "medium", "escalate": "high", "block": "high"}


@dataclass(frozen=True)
class ModifySpec:
    """A modify action; one rule's parts apply in the order redact, cap, set, drop."""

    redact_fields: tuple[str, ...] | None = None  # None: every string at any depth
    redact_detectors: tuple[str, ...] | None = None  # None: every PII detector
    redact: bool = False
    cap: dict[str, float] = field(default_factory=dict)
    set: dict[str, Any] = field(default_factory=dict)
    drop: tuple[str, ...] = ()


@dataclass(frozen=True)
class RulePack:
    """A named, reusable rule (``use: builtin/pii``) contributed through a plugin hook.

    ``detect`` is called with every text ``jsonutil.inspected_texts`` finds in the tool
    input: string values at any depth, integers' digit strings, and strings held as JSON
    inside strings.
    """

    name: str
    description: str
    detect: Callable[[str], bool]
    action: str = "block"
    severity: str = "high"
    reason: str = ""
    modify: ModifySpec | None = None
    detector_factory: Callable[[tuple[str, ...]], Callable[[str], bool]] | None = None


@dataclass
class Rule:
    name: str
    action: str
    severity: str
    reason: str
    tools: tuple[str, ...] = ("*",)
    mode: str = "enforce"
    description: str = ""
    when: str | None = None
    program: Any = None  # compiled CEL program
    detect: Callable[[str], bool] | None = None  # rule packs: string detector
    modify: ModifySpec | None = None
    pack: str | None = None
    line: int | None = None
    notify: tuple[str, ...] | None = None  # where its escalations go (None: the defaults)
    approvers: tuple[str, ...] | None = None  # who may answer them (None: any approver)
    approvals_required: int = 1
    forbid_self_approval: bool = False


@dataclass
class PolicyTest:
    name: str
    tool_name: str
    tool_input: dict[str, Any]
    context: dict[str, Any]
    expect_action: str
    expect_rule: str | None
    path: str
    line: int | None


@dataclass
class Policy:
    rules: list[Rule]
    escalation_ttl: float = 24 * 3600.0
    path: str = "<policy>"
    source: str = ""
    tools: tuple[str, ...] | None = None
    tests: list[PolicyTest] = field(default_factory=list)
    log_masker: Masker = field(default_factory=Masker)  # redact_in_log

    @cached_property
    def digest(self) -> str:
        """A short fingerprint of the source: which policy decided, in embedded mode too
        (where there are no stored versions)."""
        return hashlib.sha256(self.source.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    def rule_named(self, name: str | None) -> Rule | None:
        return next((r for r in self.rules if r.name == name), None)

    def rule_digest(self, name: str | None) -> str | None:
        """A fingerprint of what a rule says (which calls, what it does, who answers): a
        standing approval holds only while the rule it was given under says the same."""
        rule = self.rule_named(name)
        if rule is None:
            return None
        said = repr((rule.name, rule.action, rule.mode, rule.tools, rule.when, rule.pack,
                     rule.detect is not None, rule.approvers, rule.approvals_required,
                     rule.forbid_self_approval))
        return hashlib.sha256(said.encode("utf-8", "surrogatepass")).hexdigest()[:16]

    def escalation_terms(self, *rule_names: str | None) -> dict[str, Any]:
        """What an escalation keeps from the rules that escalated the call: where it is
        announced (every route they name; None: the default channels), who may answer and
        how many must. Several rules give the strictest of their terms together: the
        largest ``approvals_required``, ``forbid_self_approval`` if any says so, and only
        approvers that every rule naming approvers names (none in common: no one may
        approve; it can only be denied or time out). A lax rule listed first must not
        lend its terms to a call a strict one also escalates."""
        rules = [r for r in (self.rule_named(n) for n in dict.fromkeys(rule_names))
                 if r is not None]
        if not rules:
            return {"notify": None}
        routes = [r.notify for r in rules if r.notify is not None]
        lists = [r.approvers for r in rules if r.approvers is not None]
        approvers = None if not lists else [e for e in lists[0]
                                            if all(e in other for other in lists[1:])]
        return {"notify": None if not routes else list(dict.fromkeys(
                    t for route in routes for t in route)),
                "approvers": approvers,
                "approvals_required": max(r.approvals_required for r in rules),
                "forbid_self_approval": any(r.forbid_self_approval for r in rules)}
