"""The data that crosses every boundary: requests, results, escalations.

Plain frozen dataclasses with ``to_dict``/``from_dict`` so the embedded store, the HTTP
transport and the dashboard share one shape.
"""

from __future__ import annotations

import json
import time
from dataclasses import MISSING, dataclass, field, fields
from functools import cached_property
from typing import Any, Literal, TypeVar

Action = Literal["allow", "block", "modify", "escalate"]
Severity = Literal["low", "medium", "high", "critical"]
EscalationStatus = Literal["pending", "approved", "denied", "timeout"]

ACTIONS: tuple[str, ...] = ("allow", "modify", "escalate", "block")  # weakest → strictest
# the longest tool name decided on, in every mode (a server answers 422, a client raises):
# a policy's globs match names in time that grows faster than their length
TOOL_NAME_LIMIT = 200
SEVERITIES: tuple[str, ...] = ("low", "medium", "high", "critical")
STRICTNESS = {a: i for i, a in enumerate(ACTIONS)}
TIMEOUT_REASON = "Escalation poll timeout"


_Made = TypeVar("_Made", bound="_Dictable")


class _Dictable:
    def to_dict(self) -> dict[str, Any]:
        # a shallow copy: the values are JSON already, and asdict's deep copy recurses once
        # per level of a tool input (500 levels deep ran out of stack)
        return {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def made(cls: type[_Made], **values: Any) -> _Made:
        """``cls(**values)`` for the guard's hot path, where every field is known right:
        a frozen dataclass's ``__init__`` sets each field through ``object.__setattr__``
        (a GuardResult 1.9 µs, a GuardRequest 1.9 µs); filling ``__dict__`` costs ~0.5.
        Nothing is checked: required fields must be given."""
        made = object.__new__(cls)
        state = made.__dict__
        defaults, factories, count = _defaults(cls)
        if len(values) < count:  # (a request is made with every field: -0.3 µs)
            state.update(defaults)
            for name, factory in factories:
                state[name] = factory()
        state.update(values)
        return made


_Defaults = tuple[dict[str, Any], tuple[tuple[str, Any], ...], int]
_DEFAULTS: dict[type, _Defaults] = {}


def _defaults(cls: type) -> _Defaults:
    """A dataclass's plain defaults, its fields made by a factory, and how many fields."""
    known = _DEFAULTS.get(cls)
    if known is None:
        known = _DEFAULTS[cls] = (
            {f.name: f.default for f in fields(cls) if f.default is not MISSING},
            tuple((f.name, f.default_factory) for f in fields(cls)
                  if f.default_factory is not MISSING), len(fields(cls)))
    return known


@dataclass(frozen=True)
class RuleResult(_Dictable):
    """What one rule said about one call (audit rules included)."""

    rule_name: str
    passed: bool
    action: str
    mode: str = "enforce"
    reason: str = ""
    severity: str = "low"

    def to_dict(self) -> dict[str, Any]:
        # written for every decision: asdict's deep copy is ten times slower
        return {"rule_name": self.rule_name, "passed": self.passed, "action": self.action,
                "mode": self.mode, "reason": self.reason, "severity": self.severity}

    @cached_property
    def json(self) -> str:
        """This result as JSON text, encoded once: the engine reuses one passed result per
        rule, so a 50-rule decision's log row is joined from cached text, not 50 new dicts."""
        return json.dumps(self.to_dict(), separators=(",", ":"))


class RawJSON(str):
    """Text that is already JSON: stored as it is, not encoded again."""


def results_json(results: list[RuleResult]) -> RawJSON:
    return RawJSON("[" + ",".join(r.json for r in results) + "]")


@dataclass(frozen=True)
class GuardRequest(_Dictable):
    """One tool call to decide on. ``decision_id`` makes retries idempotent."""

    tool_name: str
    tool_input: dict[str, Any]
    decision_id: str
    agent_name: str = ""
    environment: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    wait: bool = False
    escalation_timeout: float = 300.0
    timeout: float | None = None  # remote mode: the longest a decision may take

    def to_wire(self) -> dict[str, Any]:
        """The JSON body of ``POST /v1/guard``."""
        return {"tool_name": self.tool_name, "tool_input": self.tool_input,
                "decision_id": self.decision_id, "agent_name": self.agent_name,
                "environment": self.environment, "context": self.context, "wait": self.wait,
                "escalation_timeout": self.escalation_timeout, "timeout": self.timeout}


@dataclass(frozen=True)
class GuardResult(_Dictable):
    """The decision on one tool call."""

    action: str
    reason: str = ""
    rule_name: str | None = None
    severity: str = "low"
    results: list[RuleResult] = field(default_factory=list)
    rules_triggered: list[str] = field(default_factory=list)
    modified_input: dict[str, Any] | None = None
    modifications: list[dict[str, str]] = field(default_factory=list)
    escalation_id: str | None = None
    escalation_status: str | None = None
    decision_id: str = ""
    latency_ms: float = 0.0
    tool_name: str = ""
    grant_id: str | None = None  # the standing approval that allowed an escalating call
    answers: list[dict[str, Any]] | None = None  # who answered its escalation, and how

    def to_dict(self) -> dict[str, Any]:
        # built for every decision a server answers: asdict's deep copy costs ~10x more
        return {"action": self.action, "reason": self.reason, "rule_name": self.rule_name,
                "severity": self.severity, "results": [r.to_dict() for r in self.results],
                "rules_triggered": list(self.rules_triggered),
                "modified_input": self.modified_input, "modifications": self.modifications,
                "escalation_id": self.escalation_id, "escalation_status": self.escalation_status,
                "decision_id": self.decision_id, "latency_ms": self.latency_ms,
                "tool_name": self.tool_name, "grant_id": self.grant_id,
                "answers": self.answers}

    def stamped(self, decision_id: str, latency_ms: float) -> GuardResult:
        """A copy with the call's id and latency: on every decision, where
        ``dataclasses.replace`` (a full ``__init__``) cost more than the copy."""
        copy = object.__new__(GuardResult)  # copy.copy's reduce protocol costs 3x this
        copy.__dict__.update(self.__dict__, decision_id=decision_id, latency_ms=latency_ms)
        return copy

    @property
    def allowed(self) -> bool:
        """True when the tool may run (allow or modify)."""
        return self.action in ("allow", "modify")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GuardResult:
        data = dict(data)
        data["results"] = [r if isinstance(r, RuleResult) else RuleResult.from_dict(r)
                           for r in data.get("results") or []]
        return super().from_dict(data)


@dataclass(frozen=True)
class Escalation(_Dictable):
    """A call waiting for (or answered by) a person."""

    id: str
    status: str
    tool_name: str
    tool_input: dict[str, Any]
    fingerprint: str
    agent_name: str = ""
    environment: str = ""
    context: dict[str, Any] = field(default_factory=dict)
    rule_name: str | None = None
    reason: str = ""
    severity: str = "high"
    decision_id: str = ""
    proposed_input: dict[str, Any] | None = None
    created_at: float = 0.0
    expires_at: float = 0.0
    resolved_at: float | None = None
    resolved_by: str | None = None
    comment: str | None = None
    modified_input: dict[str, Any] | None = None
    consumed_at: float | None = None
    resolved_via: str | None = None  # api, dashboard, slack, email
    notify: list[str] | None = None  # where it is announced (None: the default channels)
    # who may answer (the rule's ``approvers``; None: any approver) and how many must
    approvers: list[str] | None = None
    approvals_required: int = 1
    forbid_self_approval: bool = False
    requested_by: str | None = None  # context.requested_by of the call
    approvals: list[dict[str, Any]] = field(default_factory=list)  # {name, by, via, at, comment}
    policy_version: int | None = None  # the server's policy version that escalated it
    policy_digest: str | None = None  # and the policy's own fingerprint (embedded too)
    rule_digest: str | None = None  # what its rule said then (``Policy.rule_digest``)

    @property
    def is_resolved(self) -> bool:
        return self.status != "pending"

    @property
    def time_to_resolution(self) -> float | None:
        """Seconds from creation to the person's answer (None while pending or timed out)."""
        if self.resolved_at is None or self.status == "timeout":
            return None
        return self.resolved_at - self.created_at

    def effective_status(self, now: float | None = None) -> str:
        """Status with expiry applied: a pending escalation past ``expires_at`` is a timeout."""
        if self.status == "pending" and (now or time.time()) >= self.expires_at:
            return "timeout"
        return self.status
