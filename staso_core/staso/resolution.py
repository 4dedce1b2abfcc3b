"""How an answered escalation becomes a decision (approved → allow, or modify with an edited
input; denied or timed out → block: the README's waiting table), and the escalation flow
that sync and async callers both drive (docs/architecture.md, flow (b))."""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import replace
from typing import Any

from .approvers import answers
from .masking import unmask
from .models import TIMEOUT_REASON, Escalation, GuardRequest, GuardResult
from .steps import Claim, Decide, Expire, GiveUp, Step, WaitAnswer


def result_from_escalation(esc: Escalation, base: GuardResult,
                           tool_input: dict[str, Any] | None = None) -> GuardResult:
    """approved → allow (modify with an edit), denied → block with the comment, timeout → block.

    ``tool_input`` is the caller's own input: secrets masked in the stored escalation are
    put back into an approved edit from it."""
    common: dict[str, Any] = {"escalation_id": esc.id, "escalation_status": esc.status,
                              "rule_name": esc.rule_name or base.rule_name,
                              "answers": answers(esc)}
    if esc.status == "approved":
        edited = esc.modified_input if esc.modified_input is not None else esc.proposed_input
        if edited is not None:
            if tool_input is not None:
                edited = unmask(edited, tool_input)
            how = "edited input" if esc.modified_input is not None else "the policy's changes"
            return replace(base, action="modify", modified_input=edited,
                           reason=f"Approved by {esc.resolved_by} with {how}",
                           modifications=base.modifications or [
                               {"field": "*", "reason": f"edited by {esc.resolved_by}"}],
                           **common)
        return replace(base, action="allow", reason="", modified_input=None, modifications=[],
                       **common)
    if esc.status == "denied":
        comment = f": {esc.comment}" if esc.comment else ""
        return replace(base, action="block", reason=f"Denied by {esc.resolved_by}{comment}",
                       modified_input=None, **common)
    return replace(base, action="block", reason=TIMEOUT_REASON, modified_input=None,
                   **{**common, "escalation_status": "timeout"})


_OWN_EXPIRY = 5.0  # seconds: an expiry this close after our deadline was set by this wait


def escalation_flow(request: GuardRequest, first: GuardResult, deadline: float,
                    poll_interval: float) -> Generator[Step, Any, GuardResult]:
    """Wait for a person's answer, yielding transport steps (``steps.py``); return the final
    decision. An approval is single use: if another identical call used it first, this call
    asks again."""
    result: GuardResult = first
    attempt = 0
    while True:
        assert result.escalation_id is not None
        esc: Escalation = yield WaitAnswer(result.escalation_id, deadline, poll_interval)
        if esc.status == "pending" and esc.expires_at - deadline < _OWN_EXPIRY:
            # this wait set the expiry, a moment after our deadline (it was stored after the
            # deadline was taken): let it pass and record the timeout, so no approval can
            # land on an escalation this call has already given up on
            esc = yield WaitAnswer(esc.id, esc.expires_at + 0.01, poll_interval)
        if esc.status == "pending":
            esc = yield Expire(esc.id, request.timeout)
        claim = Claim(esc, request.decision_id, request.timeout)
        if esc.status in ("approved", "denied") and (yield claim):
            return result_from_escalation(esc, result, request.tool_input)
        if esc.status == "pending" or time.time() >= deadline:
            # our deadline passed (a longer-lived escalation stays pending for others)
            yield GiveUp(esc.id, request.decision_id, request.timeout)
            return result_from_escalation(replace(esc, status="timeout"), result)
        attempt += 1  # timed out early or used by another call: ask again
        result = yield Decide(replace(request, decision_id=f"{request.decision_id}.{attempt}"))
        if result.action != "escalate":
            return result
