"""What operators read: the decision log, the overview's aggregates and the stored policy
versions. Each view is one function, answered twice: under ``/v1`` for approver and admin
keys, and under ``/dashboard`` for a logged-in dashboard session (the same parameters and
JSON), so the two can never drift apart."""

from __future__ import annotations

import asyncio
import time
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response

from ..decision_filters import BadFilter, DecisionFilter, decision_json, parse_time
from ..errors import EscalationNotFound
from .api import Approver, escalation_json, json_response
from .auth import session_principal, state_of

router = APIRouter(prefix="/v1")
dashboard_router = APIRouter(prefix="/dashboard", include_in_schema=False)
_MAX_VERSION = 2**31 - 1  # the database's integer: a larger number is no version


async def _logged_in(request: Request) -> None:
    """The dashboard's session cookie, as ``/dashboard/data`` checks it (401 if none)."""
    if await session_principal(request) is None:
        raise HTTPException(401, "not logged in (or the session expired): log in again")


Session = Annotated[None, Depends(_logged_in)]


def _bad(request: Request, exc: BadFilter) -> Response:
    """422 naming the parameter, shaped like FastAPI's own validation errors."""
    state_of(request).metrics.error(422)
    return json_response({"detail": f"invalid request: query.{exc}", "errors": [
        {"loc": ["query", exc.param], "msg": str(exc).split(": ", 1)[-1],
         "type": "value_error"}]}, 422)


def _text(description: str) -> Any:
    return Query(description=description, max_length=1000)


def decision_params(
        agent: Annotated[str | None, _text("Agent name, whole, or a glob with *; any case")] = None,
        tool: Annotated[str | None, _text("Tool name, whole, or a glob with *; any case")] = None,
        rule: Annotated[str | None, _text("Rule name, whole, or a glob with *; any case")] = None,
        action: Annotated[str | None, _text(
            "allow, block, modify or escalate; several joined by commas")] = None,
        q: Annotated[str | None, _text(
            "Text in the id, tool, agent, rule, reason or escalation id; any case")] = None,
        since: Annotated[str | None, _text(
            "ISO date or date-time, epoch seconds, or a duration back: 90s, 1h, 7d")
                         ] = None,
        until: Annotated[str | None, _text("ISO date or date-time, epoch seconds, or a duration")
                         ] = None,
        limit: Annotated[str | None, Query(description="1 to 500 (default 50)",
                                           max_length=20)] = None,
        cursor: Annotated[str | None, _text("next_cursor of the page before")] = None,
) -> dict[str, str | None]:
    """The decision log's query parameters, declared once for both routers."""
    return {"agent": agent, "tool": tool, "rule": rule, "action": action, "q": q,
            "since": since, "until": until, "limit": limit, "cursor": cursor}


DecisionParams = Annotated[dict[str, str | None], Depends(decision_params)]


# -- the views ----------------------------------------------------------------------------
async def decisions_view(request: Request, params: dict[str, str | None]) -> Response:
    """``{"items": [decision], "next_cursor": str | null}``, newest first."""
    try:
        filters = DecisionFilter.parse(**params, now=time.time())
    except BadFilter as exc:
        return _bad(request, exc)
    service = state_of(request).service
    page = await asyncio.to_thread(service.store.query_decisions, filters)
    masker = service.policy.log_masker
    return json_response({"items": [decision_json(row, masker) for row in page.items],
                          "next_cursor": page.next_cursor})


async def decision_view(request: Request, decision_id: str) -> Response:
    """One decision with its escalation (as ``GET /v1/escalations/{id}`` gives it) or
    null; 404 if no decision has this id."""
    service = state_of(request).service
    row = await asyncio.to_thread(service.store.get_decision, decision_id)
    if row is None:
        raise HTTPException(404, f"no decision with id {decision_id[:100]!r}")
    data = decision_json(row, service.policy.log_masker)
    data["escalation"] = None
    if row.get("escalation_id"):
        try:
            esc = await asyncio.to_thread(service.get_escalation, row["escalation_id"])
            data["escalation"] = escalation_json(esc)
        except EscalationNotFound:
            pass
    return json_response(data)


async def overview_view(request: Request, since: str | None, until: str | None
                        ) -> Response:
    """Decisions over time by action, top rules, time to resolution, pending count."""
    now = time.time()
    try:
        given = parse_time(since, "since", now)  # (blank text gives None: the default)
        start = now - 86400 if given is None else given
        end = parse_time(until, "until", now)
        end = now if end is None else end
        if start > end:
            raise BadFilter("since", "is after until")
    except BadFilter as exc:
        return _bad(request, exc)
    store = state_of(request).service.store
    found = await asyncio.to_thread(partial(store.decision_overview, start, end, now=now))
    return json_response(found)


async def policy_versions_view(request: Request) -> Response:
    """Every stored policy version, newest first, with the one in force marked."""
    state = state_of(request)
    versions = await asyncio.to_thread(state.store.policy_versions)
    return json_response([{**v, "in_force": v["version"] == state.policy_version}
                          for v in versions])


async def policy_version_view(request: Request, version: int) -> Response:
    """One stored version's YAML source; 404 if there is none with this number."""
    state = state_of(request)
    found = None
    if 1 <= version <= _MAX_VERSION:
        found = await asyncio.to_thread(state.store.policy_version, version)
    if found is None:
        raise HTTPException(404, f"no stored policy version {version} (see "
                                 "/v1/policy/versions)")
    return json_response({"version": found["version"], "created_at": found["created_at"],
                          "created_by": found["created_by"], "source": found["source"],
                          "digest": found["digest"],
                          "in_force": found["version"] == state.policy_version})


# -- the routes: /v1 (approver or admin key) and /dashboard (session) ---------------------
_SINCE = Query(max_length=40, description=(
    "ISO date or date-time, epoch seconds or a duration back (default 24h)"))
_UNTIL = Query(max_length=40, description=(
    "ISO date or date-time, epoch seconds or a duration (default now)"))


@router.get("/decisions", summary="The decision log, newest first, filtered and paged")
async def list_decisions(request: Request, principal: Approver,
                         params: DecisionParams) -> Response:
    return await decisions_view(request, params)


@router.get("/decisions/{decision_id}", summary="One decision, with its escalation")
async def get_decision(decision_id: str, request: Request, principal: Approver) -> Response:
    return await decision_view(request, decision_id)


@router.get("/overview", summary="Decisions over time, top rules, time to resolution")
async def overview(request: Request, principal: Approver,
                   since: Annotated[str | None, _SINCE] = None,
                   until: Annotated[str | None, _UNTIL] = None) -> Response:
    return await overview_view(request, since, until)


@router.get("/policy/versions", summary="Stored policy versions, newest first")
async def policy_versions(request: Request, principal: Approver) -> Response:
    return await policy_versions_view(request)


@router.get("/policy/versions/{version}", summary="One stored policy version's source")
async def policy_version(version: int, request: Request, principal: Approver) -> Response:
    return await policy_version_view(request, version)


@dashboard_router.get("/decisions")
async def dashboard_decisions(request: Request, session: Session,
                              params: DecisionParams) -> Response:
    return await decisions_view(request, params)


@dashboard_router.get("/decisions/{decision_id}")
async def dashboard_decision(decision_id: str, request: Request, session: Session
                             ) -> Response:
    return await decision_view(request, decision_id)


@dashboard_router.get("/overview")
async def dashboard_overview(request: Request, session: Session,
                             since: Annotated[str | None, _SINCE] = None,
                             until: Annotated[str | None, _UNTIL] = None) -> Response:
    return await overview_view(request, since, until)


@dashboard_router.get("/policy/versions")
async def dashboard_policy_versions(request: Request, session: Session) -> Response:
    return await policy_versions_view(request)


@dashboard_router.get("/policy/versions/{version}")
async def dashboard_policy_version(version: int, request: Request, session: Session
                                   ) -> Response:
    return await policy_version_view(request, version)
