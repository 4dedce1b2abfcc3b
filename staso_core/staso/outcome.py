"""The one decision → outcome mapping; every framework adapter calls this (the decision
tables in docs/integrations/ describe it for each framework).

An outcome says whether the tool runs, with which input, or what text the model reads
instead. ``on_block="raise"`` / ``on_escalate="raise"`` turn those texts into exceptions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from .errors import EscalationPending, GuardBlocked
from .models import GuardResult

OnBlock = Literal["output", "raise"]


@dataclass(frozen=True)
class Outcome:
    run: bool
    tool_input: dict[str, Any] | None
    message: str | None
    result: GuardResult


def blocked_message(result: GuardResult) -> str:
    rule = f" by rule '{result.rule_name}'" if result.rule_name else ""
    return (f"[staso] The call to '{result.tool_name}' was blocked{rule}: {result.reason}. "
            "The tool was not run.")


def pending_message(result: GuardResult) -> str:
    rule = f" (rule '{result.rule_name}': {result.reason})" if result.rule_name else ""
    return (f"[staso] The call to '{result.tool_name}' needs a person's approval{rule}. "
            f"Escalation id: {result.escalation_id}. Nothing was done. Once it is approved, "
            "make the identical call again and it will run once.")


def decide_outcome(result: GuardResult, tool_input: dict[str, Any], *,
                   on_block: OnBlock = "output", on_escalate: OnBlock = "output") -> Outcome:
    """Map a decision to what the adapter does. Raises GuardBlocked/EscalationPending on request."""
    if result.action == "allow":
        return Outcome(True, tool_input, None, result)
    if result.action == "modify":
        return Outcome(True, result.modified_input if result.modified_input is not None
                       else tool_input, None, result)
    if result.action == "escalate":
        if on_escalate == "raise":
            raise EscalationPending(result)
        return Outcome(False, None, pending_message(result), result)
    if on_block == "raise":  # block, and anything unknown: never run
        raise GuardBlocked(result)
    return Outcome(False, None, blocked_message(result), result)
