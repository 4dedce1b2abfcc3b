"""Standing approvals: "allow calls like this one for the next hour", given with an answer.

Approval fatigue makes people click Approve without reading; a grant lets an approver say
once what they would approve again, scoped so that it never reaches further than what they
saw: the escalation's own agent, tool and rule (and environment), an optional CEL condition
on the input, a time to live and a number of uses. A grant only ever turns an *escalate*
into an allow: a call some rule blocks stays blocked, and a call escalated by any other
rule still goes to a person. Its uses are counted in the database, one at a time, so
``max_uses`` holds however many agents call at once.
"""

from __future__ import annotations

import functools
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .approvers import AnswerRefused, same_person
from .errors import StasoError
from .models import Escalation, GuardRequest, GuardResult
from .policy.cel_env import ConditionError, ConditionRunner, compile_condition
from .policy.condition_types import macro_depth

DEFAULT_TTL = 3600.0  # seconds
MAX_TTL = 30 * 86400.0
MAX_USES = 1_000_000
MAX_CONDITION = 2000  # characters
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, None: 1}
SCOPE_KEYS = {"agent", "tool", "when", "ttl", "max_uses"}
# CEL's comprehension macros (condition_types.macro_depth) are refused in a grant: their
# cost grows with the input, by its square when nested (a 59-character "no duplicate ids"
# condition took 8 s on 4,000 ids, holding the GIL), and a grant's condition is written by
# an approver, runs in the server on every covered call


@dataclass(frozen=True)
class Grant:
    id: str
    created_at: float
    created_by: str
    agent_name: str
    tool_name: str
    rule_name: str
    expires_at: float
    created_via: str | None = None
    escalation_id: str | None = None
    environment: str | None = None
    condition: str | None = None
    max_uses: int | None = None
    uses: int = 0
    last_used_at: float | None = None
    forbid_self_approval: bool = False
    revoked_at: float | None = None
    revoked_by: str | None = None
    policy_version: int | None = None
    rule_digest: str | None = None  # what its rule said when it was given (policy.rule_digest)

    def state(self, now: float) -> str:
        """live, used up, expired or revoked."""
        if self.revoked_at is not None:
            return "revoked"
        if self.max_uses is not None and self.uses >= self.max_uses:
            return "used up"
        return "expired" if self.expires_at <= now else "live"

    def to_dict(self, now: float | None = None) -> dict[str, Any]:
        data = dict(self.__dict__)
        if now is not None:
            data["state"] = self.state(now)
        return data


class GrantNotFound(StasoError, LookupError):
    """No standing approval has that id (HTTP 404)."""


class GrantRevoked(StasoError):
    """The standing approval was revoked already (HTTP 409)."""


def lookup(store: Any, grant_id: str) -> Grant:
    """One grant of a store (``StoreBackend``); GrantNotFound if there is none."""
    grant: Grant | None = store.get_grant(grant_id)
    if grant is None:
        raise GrantNotFound(f"no standing approval with id {grant_id!r} (see staso grants "
                            "list)")
    return grant


def revoke(store: Any, grant_id: str, *, by: str) -> Grant:
    """End a grant at once, as ``by``; the grant as it now stands. The API, the CLI and
    the client all come here, so an unknown id (GrantNotFound) and a second revocation
    (GrantRevoked, the first one's author named) read alike everywhere."""
    if not store.revoke_grant(grant_id, by=by):
        grant = lookup(store, grant_id)
        raise GrantRevoked(f"standing approval {grant_id} was already revoked by "
                           f"{grant.revoked_by}")
    return lookup(store, grant_id)


def new_grant_id() -> str:
    return "grant_" + secrets.token_hex(10)


def seconds(value: Any) -> float:
    """A ttl (``90``, ``"30m"``, ``"1h"``, ``"7d"``) in seconds (AnswerRefused if not)."""
    if isinstance(value, bool):
        raise AnswerRefused(f"grant ttl must be a duration such as 30m, 1h or 7d, not {value!r}")
    if isinstance(value, (int, float)):
        ttl = float(value)
    else:
        found = _DURATION.match(str(value))
        if found is None:
            raise AnswerRefused(f"grant ttl must be a duration such as 30m, 1h or 7d, "
                                f"not {value!r}")
        ttl = float(found.group(1)) * _UNIT[found.group(2)]
    if not 0 < ttl <= MAX_TTL:
        raise AnswerRefused(f"grant ttl must be more than 0 and at most 30 days, not {value!r}")
    return ttl


def scope_from(raw: Any, esc: Escalation, functions: dict[str, Callable[..., Any]]
               ) -> dict[str, Any]:
    """A grant's scope from an approve body's ``grant``, checked against the escalation it
    answers: a grant covers that escalation's agent, tool and rule, never others
    (AnswerRefused, 422, says why)."""
    if not isinstance(raw, dict):
        raise AnswerRefused("'grant' must be an object such as {\"ttl\": \"1h\", "
                            "\"max_uses\": 20, \"when\": \"tool_input.amount <= 2000\"}")
    unknown = set(raw) - SCOPE_KEYS
    if unknown:
        raise AnswerRefused(f"unknown key {sorted(unknown)[0]!r} in 'grant' "
                            f"(it takes {', '.join(sorted(SCOPE_KEYS))})")
    for key, own in (("agent", esc.agent_name), ("tool", esc.tool_name)):
        if key in raw and raw[key] != own:
            raise AnswerRefused(f"a grant covers the escalation's own {key} ({own!r}), not "
                                f"{raw[key]!r}: approve that one's calls from its escalation")
    if esc.approvals_required > 1:
        raise AnswerRefused(f"rule {esc.rule_name!r} needs {esc.approvals_required} "
                            "approvers for each call; one person cannot approve its calls "
                            "ahead of time")
    if esc.rule_name is None or esc.rule_name.startswith("staso/"):
        raise AnswerRefused("only an escalation by a policy rule can be granted ahead")
    condition = raw.get("when")
    if condition is not None:
        if not isinstance(condition, str) or not condition.strip():
            raise AnswerRefused("grant 'when' must be a CEL expression string, such as "
                                "tool_input.amount <= 2000")
        if len(condition) > MAX_CONDITION:
            raise AnswerRefused(f"grant 'when' is over {MAX_CONDITION} characters")
        if macro_depth(condition) > 0:
            raise AnswerRefused("grant 'when' may not use all, exists, exists_one, map or "
                                "filter: a condition run on every call must stay cheap "
                                "whatever the input (a rule in the policy can use them)")
        try:
            compile_condition(condition, functions)
        except ConditionError as exc:
            raise AnswerRefused(f"grant {exc}") from None
    max_uses = raw.get("max_uses")
    if max_uses is not None and (isinstance(max_uses, bool) or not isinstance(max_uses, int)
                                 or not 1 <= max_uses <= MAX_USES):
        raise AnswerRefused(f"grant max_uses must be a whole number from 1 to {MAX_USES:,}, "
                            f"not {max_uses!r}")
    return {"agent_name": esc.agent_name, "tool_name": esc.tool_name,
            "rule_name": esc.rule_name, "environment": esc.environment,
            "condition": condition.strip() if condition else None,
            "ttl": seconds(raw.get("ttl", DEFAULT_TTL)), "max_uses": max_uses,
            "forbid_self_approval": esc.forbid_self_approval,
            "escalation_id": esc.id, "policy_version": esc.policy_version,
            # bound to the rule as it was when the call escalated, whatever policy the
            # answering process holds (the CLI answers without loading one)
            "rule_digest": esc.rule_digest}


class GrantConditions:
    """Runs grants' CEL conditions, each compiled once (grants are few, calls many)."""

    def __init__(self, functions: dict[str, Callable[..., Any]]) -> None:
        self._functions = functions
        self._runner = ConditionRunner(functions)
        self.compiled = functools.lru_cache(maxsize=512)(self._compile)

    def _compile(self, source: str) -> Any:
        return compile_condition(source, self._functions)

    def holds(self, source: str, request: GuardRequest) -> bool:
        """Whether the condition is true of the call; anything else (false, a missing
        field, an error, not a bool) leaves the call to a person."""
        try:
            program = self.compiled(source)
            ctx = self._runner.context({"tool_name": request.tool_name,
                                        "tool_input": request.tool_input,
                                        "context": request.context})
            return program.execute(ctx) is True
        except Exception:  # a grant that cannot be judged grants nothing
            return False


def escalating_rules(result: GuardResult) -> set[str]:
    """The rules (and plugins) whose enforced verdict on this call was escalate."""
    return {r.rule_name for r in result.results
            if not r.passed and r.mode == "enforce" and r.action == "escalate"}


def covers(grant: Grant, request: GuardRequest, result: GuardResult,
           conditions: GrantConditions) -> bool:
    """Whether the grant reaches this call: same agent, tool, rule (and the only rule that
    escalated it), environment, condition; and, where the rule forbids approving one's own
    request, not a call the grant's maker asked for."""
    if (grant.agent_name != request.agent_name or grant.tool_name != request.tool_name
            or grant.rule_name != result.rule_name
            or escalating_rules(result) != {grant.rule_name}):
        return False
    if grant.environment is not None and grant.environment != request.environment:
        return False
    asker = requested_by(request.context)
    if grant.forbid_self_approval and asker is not None and same_person(asker,
                                                                         grant.created_by):
        return False
    return grant.condition is None or conditions.holds(grant.condition, request)


def allowed_by(grant: Grant, result: GuardResult) -> GuardResult:
    """The escalate decision, turned into the allow (or the policy's modify) the grant
    gives; the reason names the grant and what the policy said."""
    left = "" if grant.max_uses is None else f", use {grant.uses + 1} of {grant.max_uses}"
    return replace(result, action="allow" if result.modified_input is None else "modify",
                   reason=f"allowed by standing approval {grant.id} (granted by "
                          f"{grant.created_by}{left}); the policy said: {result.reason}",
                   escalation_status=None, grant_id=grant.id)


def requested_by(context: dict[str, Any] | None) -> str | None:
    """Who asked for the call, as the caller said (``context.requested_by``)."""
    value = (context or {}).get("requested_by")
    return value.strip() or None if isinstance(value, str) else None
