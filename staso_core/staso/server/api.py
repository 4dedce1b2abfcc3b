"""The JSON API under ``/v1`` (the README tables its routes, key roles and error codes).
Each route names the roles that may call it."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Awaitable
from dataclasses import fields, replace
from functools import partial
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from .. import grants as standing
from ..approvers import Approver as Person
from ..client import new_decision_id
from ..errors import (
    DecisionIdReused,
    DecisionNotRecorded,
    InvalidToolInput,
    NoFallback,
    ReusedIdNoFallback,
)
from ..jsonutil import check_json, encoded_size, wire_json
from ..models import Escalation, GuardRequest, GuardResult, results_json
from ..plugin_guard import failed
from .auth import ADMIN, AGENT, APPROVER, Principal, authenticate, require, state_of
from .long_polls import HELD, Held, NoResponse
from .schemas import (
    ApproveBody,
    ClaimBody,
    DenyBody,
    ExecutionBatch,
    ExecutionRecord,
    GuardBody,
    PolicyBody,
)
from .state import LARGE_INPUT_BYTES

router = APIRouter(prefix="/v1")
Agent = Annotated[Principal, Depends(require(AGENT, ADMIN))]
Approver = Annotated[Principal, Depends(require(APPROVER, ADMIN))]
Anyone = Annotated[Principal, Depends(require(AGENT, APPROVER, ADMIN))]
Admin = Annotated[Principal, Depends(require(ADMIN))]


def json_response(data: Any, status: int = 200) -> Response:
    return Response(encode_json(data), status_code=status, media_type="application/json")


def encode_json(data: Any) -> bytes:
    # orjson encodes a 50-rule decision several times faster than json: every answer. It
    # refuses a lone surrogate (a non-UTF-8 file name), which wire_json sends escaped.
    try:
        return orjson.dumps(data)
    except orjson.JSONEncodeError:
        return wire_json(data)


def escalation_json(esc: Escalation) -> dict[str, Any]:
    data = esc.to_dict()
    data["time_to_resolution"] = esc.time_to_resolution
    return data


def acting_for(principal: Principal, agent_name: str) -> None:
    """403 unless the key may act for ``agent_name``: identity comes from the key, and an
    agent key acts only for the agent names it is bound to."""
    if not principal.key.may_act_for(agent_name):
        raise HTTPException(403, f"this key acts only for agents matching "
                                 f"{principal.key.agents!r}, not for {agent_name!r}")


async def _own_escalation(request: Request, principal: Principal,
                          escalation_id: str) -> Escalation:
    """The escalation (404 if unknown), if the key may act for its agent (403 if not)."""
    esc = await asyncio.to_thread(state_of(request).service.get_escalation, escalation_id)
    acting_for(principal, esc.agent_name)
    return esc


def _who(principal: Principal, by: str | None) -> str:
    """The person answering: the key's name, or the name given with it ("bob via alice")."""
    by = (by or "").strip()
    return principal.name if not by or by == principal.name else f"{by} via {principal.name}"


_GUARD_DOC: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": GuardBody.model_json_schema()}}}}
GUARD_PATH = "/v1/guard"  # answered ahead of the router too (app.GuardFastPath)


@router.post("/guard", summary="Decide on one tool call", response_description="A GuardResult",
             openapi_extra=_GUARD_DOC)
async def guard(request: Request) -> Response:
    # the hot path: the body is validated by pydantic directly, without FastAPI's
    # dependency machinery (a third of the request's cost); same rules, same 401/403/422
    principal = await authenticate(request, AGENT, ADMIN)
    state = state_of(request)
    started = time.perf_counter()
    raw = await request.body()
    loop = asyncio.get_running_loop()
    # a large body is parsed, checked, evaluated and encoded on the large-input threads:
    # parsing and encoding 1 MB alone hold the loop for milliseconds
    large = len(raw) > LARGE_INPUT_BYTES
    limit = state.config.max_input_bytes
    if large:
        call, size, digest = await loop.run_in_executor(
            state.large_evaluator, _guard_request, raw, principal.name, limit)
    else:
        call, size, digest = _guard_request(raw, principal.name, limit)
    acting_for(principal, call.agent_name)
    service = state.service
    result = service.recent(call.decision_id, call, digest)
    if result is None:  # a retried decision id is answered as before, and logged once
        inline = service.may_evaluate_inline(size, state.config.inline_eval_bytes)
        result = await service.adecide(call, None if inline else partial(
            _evaluate_off_loop, request, size))
        elapsed = time.perf_counter() - started
        result = _stamped(result, call, elapsed)
        seq = service.finish(call, result, urgent=True, remember=False)
        # acknowledged only once it is on disk: DecisionNotRecorded (503) otherwise, and a
        # retry is evaluated again rather than answered from memory
        try:
            await _recorded(service.log.committed(seq), call, started)
        except (DecisionNotRecorded, DecisionIdReused) as exc:
            if result.action == "allow":
                raise
            strict = ReusedIdNoFallback if isinstance(exc, DecisionIdReused) else NoFallback
            raise strict(f"{exc}; the policy did not allow this call ({result.action}), "
                         "so it must not fall back to allow") from exc
        service.remember(call, result, digest)
        state.metrics.decided(result.action, elapsed)
    if large:
        answer = await loop.run_in_executor(state.large_evaluator, _encode, result)
        return Response(answer, media_type="application/json")
    return Response(_encode(result), media_type="application/json")


def _stamped(result: GuardResult, call: GuardRequest, elapsed: float) -> GuardResult:
    """The answer with the call's id, latency and tool name. ``stamped`` copies the
    instance's fields (~1 µs); ``dataclasses.replace`` runs the frozen ``__init__`` (6-10)."""
    if result.tool_name == call.tool_name:  # (the engine's own results always are)
        return result.stamped(call.decision_id, elapsed * 1000)
    return replace(result, decision_id=call.decision_id, latency_ms=elapsed * 1000,
                   tool_name=call.tool_name)


async def _recorded(commit: Awaitable[None], call: GuardRequest, started: float) -> None:
    """Wait for the decision's record, within the caller's timeout when it sent one (a
    locked database must not hold the answer past it): DecisionNotRecorded otherwise."""
    if call.timeout is None:
        await commit
        return
    left = call.timeout * _RECORD_SHARE - (time.perf_counter() - started)
    try:
        # (at least a moment: a commit takes milliseconds, however short the timeout)
        await asyncio.wait_for(commit, max(left, _RECORD_AT_LEAST))
    except TimeoutError:
        raise DecisionNotRecorded(f"the decision was not recorded within the call's "
                                  f"{call.timeout / _SERVER_SHARE:g} s timeout; it is not "
                                  "acknowledged") from None


def _guard_request(raw: bytes, agent_name: str, limit: int
                   ) -> tuple[GuardRequest, int, str]:
    """The call a guard body asks about, its tool input's size, and the body's digest (a
    retry is the same request again: the digest, not only the id, finds its answer);
    413/422 if bad."""
    try:
        body = _guard_body(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])}
             for e in exc.errors(include_url=False, include_context=False)]) from None
    try:
        size = encoded_size(body.tool_input, parsed=True)
        check_json(body.context, "context")
    except InvalidToolInput as exc:
        raise HTTPException(422, str(exc)) from exc
    if size > limit:
        raise HTTPException(413, f"tool_input is {size:,} bytes of JSON, over the "
                                 f"{limit:,}-byte limit")
    return GuardRequest.made(  # every field given: made skips the frozen __init__ (1.4 µs)
        tool_name=body.tool_name, tool_input=body.tool_input,
        decision_id=body.decision_id or new_decision_id(),
        agent_name=body.agent_name or agent_name, environment=body.environment,
        context=body.context, wait=body.wait, escalation_timeout=body.escalation_timeout,
        # the server's own budget: a share of the caller's timeout, so that every answer
        # (a hung plugin's block, a store that cannot take the call) reaches it in time
        timeout=None if body.timeout is None else body.timeout * _SERVER_SHARE), size, \
        hashlib.blake2b(raw, digest_size=16).hexdigest()


def _guard_body(raw: bytes) -> GuardBody:
    try:
        return GuardBody.model_validate_json(raw)
    except ValidationError as exc:
        # pydantic's parser refuses a lone surrogate's \u escape (a non-UTF-8 file name,
        # sent escaped by staso's clients); Python's json takes it, so that text is kept
        if not any(e["type"] == "json_invalid" for e in exc.errors()):
            raise
        try:  # (decoded first: json.loads would take UTF-16, UTF-32 and a BOM from bytes)
            data = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):  # not JSON for Python either: pydantic's word
            raise exc from None
        return GuardBody.model_validate(data)


async def _evaluate_off_loop(request: Request, size: int, call: GuardRequest) -> GuardResult:
    """A call too large (or a policy too foreign) to evaluate on the event loop: on the
    server's pools, so a slow evaluation delays no one else."""
    state = state_of(request)
    evaluate = state.evaluate_large if size > LARGE_INPUT_BYTES else state.service.evaluate
    begun: list[bool] = []

    def run() -> GuardResult:
        begun.append(True)
        return evaluate(call)

    evaluation = asyncio.get_running_loop().run_in_executor(state.evaluator_for(size), run)
    try:
        # a plugin still deciding near the caller's timeout (less the answer's way back)
        # blocks the call, named, whatever fail_closed says; the caller would otherwise
        # time out first, and with fail_closed=False be allowed
        result = await asyncio.wait_for(asyncio.shield(evaluation), call.timeout)
    except TimeoutError:
        plugin = state.service.plugins.blame(call.decision_id, bool(begun))
        if plugin is not None:
            evaluation.cancel()  # (a queued evaluation is not run at all)
            return _plugin_hung(call, plugin)
        result = await evaluation  # staso's own evaluation: the caller's timeout decides
    if result.action == "escalate" and await request.is_disconnected():
        return _caller_gone(result)
    return result


# the rest of the caller's timeout carries the answer back
_SERVER_SHARE = 0.8  # of the caller's timeout: the server decides (and escalates) within it
_RECORD_SHARE = 0.9 / _SERVER_SHARE  # and the decision is recorded by 90 % of it
_RECORD_AT_LEAST = 0.1  # seconds


def _plugin_hung(call: GuardRequest, plugin: str) -> GuardResult:
    """The block for a call whose plugin has not answered near the caller's timeout (the
    caller would otherwise time out, and with fail_closed=False be allowed)."""
    caller = (call.timeout or 0) / _SERVER_SHARE
    verdict = failed(plugin, f"did not answer within the {caller:g} s timeout")
    return GuardResult(action="block", reason=verdict.reason, rule_name=verdict.rule_name,
                       severity="high", results=[verdict], rules_triggered=[verdict.rule_name],
                       decision_id=call.decision_id, tool_name=call.tool_name)


def _encode(result: GuardResult) -> bytes:
    """A decision's JSON. Its rule results go in as the JSON text each one caches (the
    engine shares one passed result per rule, so a 50-rule answer's list is mostly text
    encoded once): ~14 -> ~7 µs an allow with the 50-rule benchmark policy, against
    ``to_dict`` building a dict per rule and orjson encoding them again."""
    data = {name: getattr(result, name) for name in _RESULT_FIELDS}
    data["results"] = orjson.Fragment(str(results_json(result.results)))  # (str exactly)
    try:
        return orjson.dumps(data)
    except orjson.JSONEncodeError:  # a lone surrogate: encode_json's way
        return encode_json(result.to_dict())


_RESULT_FIELDS = tuple(f.name for f in fields(GuardResult))


def _caller_gone(result: GuardResult) -> GuardResult:
    """A slow evaluation ended after its caller hung up (its timeout passed): the caller
    was told its own failure decision, so no escalation is stored for approvers to answer
    in vain. The decision log records a block that says why."""
    return replace(result, action="block", escalation_status=None, modified_input=None,
                   reason=f"not escalated: the caller disconnected before the decision was "
                          f"ready (the policy said escalate: {result.reason})")


@router.get("/escalations/{escalation_id}", summary="One escalation; ?wait= long-polls")
async def get_escalation(escalation_id: str, request: Request, principal: Anyone,
                         wait: Annotated[float, Query(ge=0, description=(
                             "Seconds to hold the request while the escalation is pending"
                         ))] = 0.0) -> Response:
    state = state_of(request)
    wait = min(wait, state.config.long_poll_limit)
    service = state.service
    if principal.key.agents is not None:  # a bound agent key reads its own agents' only
        await _own_escalation(request, principal, escalation_id)
    held: Held | None = request.scope.get(HELD)
    if wait > 0 and held is not None:
        # one try: answered now, or held by LongPollingApp (outside this call chain) until
        # the escalation changes or the hold ends, then tried again
        if held.deadline is None:
            held.deadline = time.monotonic() + wait
        token = service.notifier.token(escalation_id)
        esc = await asyncio.to_thread(service.get_escalation, escalation_id)
        left = held.deadline - time.monotonic()
        if esc.status == "pending" and left > 0:
            # until it expires at the latest: the next try then answers with the timeout
            expires = max(esc.expires_at - time.time(), 0.0)
            held.hold = service.notifier.hold(escalation_id, token, min(left, expires))
            return NoResponse()
    elif wait > 0:  # an app that does not hold long-polls itself: held here
        state.metrics.long_polls += 1
        try:
            esc = await service.await_answer(escalation_id, time.time() + wait, wait)
        finally:
            state.metrics.long_polls -= 1
    else:
        esc = await asyncio.to_thread(service.get_escalation, escalation_id)
    if esc.status == "timeout":  # past its expiry: record it, so every reader agrees
        esc = await asyncio.to_thread(service.expire, escalation_id)
    return json_response(escalation_json(esc))


@router.get("/escalations", summary="List escalations, newest first")
async def list_escalations(request: Request, principal: Approver,
                           status: str | None = None, agent: str | None = None,
                           tool: str | None = None, rule: str | None = None,
                           limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                           before: Annotated[str | None, Query(max_length=100, description=(
                               "Only escalations older than this one (the last of a page)"
                           ))] = None) -> Response:
    if status not in (None, "", "pending", "approved", "denied", "timeout"):
        raise HTTPException(422, f"status must be pending, approved, denied or timeout, "
                                 f"not {status!r}")
    items = await asyncio.to_thread(state_of(request).service.list_escalations, status=status,
                                    agent=agent, tool=tool, rule=rule, limit=limit,
                                    before=before or None)
    return json_response([escalation_json(e) for e in items])


@router.post("/escalations/{escalation_id}/approve",
             summary="Approve (optionally with edits, or with a standing approval)")
async def approve(escalation_id: str, body: ApproveBody, request: Request,
                  principal: Approver) -> Response:
    return json_response(escalation_json(await state_of(request).resolve(
        escalation_id, status="approved", by=_who(principal, body.by),
        approver=person(principal), comment=body.comment,
        modified_input=body.modified_input, via=body.via or "api", grant=body.grant)))


@router.post("/escalations/{escalation_id}/deny", summary="Deny; the comment reaches the agent")
async def deny(escalation_id: str, body: DenyBody, request: Request,
               principal: Approver) -> Response:
    return json_response(escalation_json(await state_of(request).resolve(
        escalation_id, status="denied", by=_who(principal, body.by),
        approver=person(principal), comment=body.comment, via=body.via or "api")))


def person(principal: Principal) -> Person:
    """Whom a key answers as: its name, groups and linked Slack user and address (a
    ``by`` given with the answer is shown, never trusted)."""
    return Person.of_key(principal.key)


# -- standing approvals: what approvers granted ahead, to review and end -------------------
@router.get("/grants", summary="Standing approvals, newest first; ?live=true: usable ones")
async def list_grants(request: Request, principal: Approver,
                      live: Annotated[bool, Query(description=(
                          "Only those that may still be used: not expired, revoked or "
                          "used up"))] = False,
                      limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> Response:
    store = state_of(request).service.store
    found = await asyncio.to_thread(partial(store.list_grants, live_only=live, limit=limit))
    now = time.time()
    return json_response([g.to_dict(now) for g in found])


def _known_form(grant_id: str) -> None:
    """404 at once for what cannot be a grant's id (no database round trip for it)."""
    if _GRANT_ID.fullmatch(grant_id) is None:
        raise HTTPException(404, f"no standing approval with id {grant_id!r} (see staso "
                                 "grants list)")


_GRANT_ID = re.compile(r"grant_[0-9a-f]{1,64}")


@router.get("/grants/{grant_id}", summary="One standing approval, with its state and uses")
async def get_grant(grant_id: str, request: Request, principal: Approver) -> Response:
    _known_form(grant_id)
    try:
        grant = await asyncio.to_thread(standing.lookup, state_of(request).service.store,
                                        grant_id)
    except standing.GrantNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return json_response(grant.to_dict(time.time()))


@router.delete("/grants/{grant_id}", summary="Revoke a standing approval at once")
async def revoke_grant(grant_id: str, request: Request, principal: Approver,
                       by: Annotated[str | None, Query(max_length=200, description=(
                           "Who revokes, shown with the key's name"))] = None) -> Response:
    _known_form(grant_id)
    try:
        grant = await asyncio.to_thread(partial(
            standing.revoke, state_of(request).service.store, grant_id,
            by=_who(principal, by)))
    except standing.GrantNotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except standing.GrantRevoked as exc:
        raise HTTPException(409, str(exc)) from None
    return json_response(grant.to_dict(time.time()))


@router.post("/escalations/{escalation_id}/claim",
             summary="Use up an answered escalation for one waiting call (single use)")
async def claim(escalation_id: str, body: ClaimBody, request: Request,
                principal: Agent) -> Response:
    service = state_of(request).service
    esc = await _own_escalation(request, principal, escalation_id)  # 404, 403
    await _decision_owners(request, principal, [body.decision_id])
    # the waiting call's decision row then records the person's answer (as embedded)
    claimed = await asyncio.to_thread(partial(service.claim, esc, body.decision_id,
                                              urgent=True))
    await service.log.committed(service.log.latest())
    return json_response({"claimed": claimed})


@router.post("/escalations/{escalation_id}/give-up",
             summary="A waiting call stopped waiting: its decision records the timeout")
async def give_up(escalation_id: str, body: ClaimBody, request: Request,
                  principal: Agent) -> Response:
    service = state_of(request).service
    await _own_escalation(request, principal, escalation_id)  # 404, 403
    await _decision_owners(request, principal, [body.decision_id])
    await asyncio.to_thread(partial(service.give_up, escalation_id, body.decision_id,
                                    urgent=True))
    await service.log.committed(service.log.latest())
    return json_response({"recorded": True})


async def _decision_owners(request: Request, principal: Principal, decision_ids: list[str],
                           *, always: bool = False) -> dict[str, str]:
    """The agent of each recorded decision among these, 403 unless the key may act for
    every one. Read only for a key bound to agent names (one for any agent may act for
    all), unless ``always``."""
    if not decision_ids or (principal.key.agents is None and not always):
        return {}
    owners = await asyncio.to_thread(state_of(request).service.store.decision_agents,
                                     decision_ids)
    for agent_name in owners.values():
        acting_for(principal, agent_name)
    return owners


@router.post("/executions", summary="Record tool executions (the decision log's outcome)")
async def executions(body: ExecutionBatch, request: Request, principal: Agent) -> Response:
    service = state_of(request).service
    calls: list[GuardRequest | None] = [_unguarded(record, principal)
                                        for record in body.records]
    # an update: only of a recorded decision, of the key's own agents
    owners = await _decision_owners(request, principal, [
        r.decision_id for r, call in zip(body.records, calls, strict=True) if call is None],
        always=True)
    refused, seqs = [], []
    for record, call in zip(body.records, calls, strict=True):
        if call is None and record.decision_id not in owners:  # nothing to add it to
            refused.append({"decision_id": record.decision_id, "reason": (
                "no decision is recorded under this id; send the call's tool_name and "
                "tool_input to record it as an unguarded call")})
            continue
        fields = {"execution_status": record.execution_status,
                  "execution_error": record.execution_error,
                  "execution_output": record.execution_output,
                  "execution_ms": record.execution_ms}
        seqs.append((record.decision_id, service.record_execution(
            call, record.decision_id, fields, urgent=True)))
    recorded = 0
    for decision_id, seq in seqs:
        try:  # every record's own write: one refused row does not hide behind the others
            await service.log.committed(seq)
            recorded += 1
        except (DecisionNotRecorded, DecisionIdReused) as exc:
            refused.append({"decision_id": decision_id, "reason": str(exc)})
    return json_response({"recorded": recorded, "refused": refused})


def _unguarded(record: ExecutionRecord, principal: Principal) -> GuardRequest | None:
    """An unguarded call's record (it is the decision row), or None for an update of a
    guarded call's row."""
    if record.tool_input is None or not record.tool_name:
        return None
    try:
        check_json(record.tool_input, "tool_input")
        check_json(record.context, "context")
    except InvalidToolInput as exc:
        raise HTTPException(422, str(exc)) from exc
    agent_name = record.agent_name or principal.name
    acting_for(principal, agent_name)
    return GuardRequest(tool_name=record.tool_name, tool_input=record.tool_input,
                        decision_id=record.decision_id, agent_name=agent_name,
                        environment=record.environment, context=record.context)


@router.get("/policy", summary="The policy in force")
async def get_policy(request: Request, principal: Anyone) -> Response:
    state = state_of(request)
    return json_response({"version": state.policy_version, "source": state.policy_source,
                          "rules": [r.name for r in state.service.policy.rules]})


@router.put("/policy", summary="Replace the policy (validated first; every replica follows)")
async def put_policy(body: PolicyBody, request: Request, principal: Admin) -> Response:
    state = state_of(request)
    version = await asyncio.to_thread(state.put_policy, body.source, principal.name)
    return json_response({"version": version,
                          "rules": [r.name for r in state.service.policy.rules]})
