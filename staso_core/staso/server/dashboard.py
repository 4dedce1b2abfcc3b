"""The approval dashboard: log in with an approver key, answer escalations (alone, as one
of several approvers, or with a standing approval), review and revoke standing approvals,
search the decision log, see the overview's charts and the policy's versions.

Pages are static HTML; the script renders data with ``textContent`` only, so a tool input
like ``<script>`` shows as text. A Content-Security-Policy forbids inline script as a second
line of defence. Every form carries a CSRF token bound to the session.
"""

from __future__ import annotations

import asyncio
import html
import json
import re
import secrets
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import RedirectResponse

from .. import grants as standing
from ..approvers import AnswerRefused, Approver, NotAnApprover, refusal
from ..errors import EscalationConflict, EscalationNotFound, InvalidToolInput
from ..grants import Grant
from ..models import Escalation
from .api import escalation_json, json_response, person
from .auth import (
    ADMIN,
    APPROVER,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    Principal,
    check_csrf,
    client_address,
    csrf_token,
    end_session,
    make_session,
    session_principal,
    state_of,
)
from .guesses import TooManyGuesses

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).parent / "static"
_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; script-src 'self'; style-src 'self'; "
                                "img-src 'self' data:; object-src 'none'; base-uri 'none'; "
                                "form-action 'self'; frame-ancestors 'none'"),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
_ASSETS = {name: "text/javascript" for name in (
    "common.js", "dashboard.js", "decisions.js", "overview.js", "policy.js")}
_ASSETS["dashboard.css"] = "text/css"
# the nav on every page: (path, label, the page's <main> file, its own script, its view);
# each is shown inside _layout.html, the head and header they share
PAGES = [("/", "Queue", "dashboard.html", "dashboard.js", "escalations"),
         ("/history", "History", "history.html", "dashboard.js", "history"),
         ("/decisions", "Decisions", "decisions.html", "decisions.js", "decisions"),
         ("/overview", "Overview", "overview.html", "overview.js", "overview"),
         ("/policy", "Policy", "policy.html", "policy.js", "policy"),
         ("/grants", "Standing approvals", "grants.html", "dashboard.js", "grants")]


def _page(name: str, markup: dict[str, str] | None = None, **values: str) -> Response:
    """A static page with ``{{name}}`` filled in: ``values`` as escaped text, ``markup``
    as HTML built here from escaped parts (or a page's own static <main>), after them, so
    no text given in ``values`` is read again as a placeholder."""
    text = (STATIC / name).read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", html.escape(value, quote=True))
    for key, value in (markup or {}).items():
        text = text.replace("{{" + key + "}}", value)
    return Response(text, media_type="text/html; charset=utf-8", headers=_HEADERS)


def _header(current: str, principal: Principal, csrf: str, links: list[tuple[str, str]]
            ) -> str:
    """The header every logged-in page shares: the nav (the current page marked), plugins'
    links, who is logged in and the log-out button."""
    mark = ' aria-current="page"'
    nav = "".join(f'<a href="{path}"{mark if path == current else ""}>{label}</a>'
                  for path, label, *_ in PAGES)
    return (f'<header><h1>staso</h1><nav class="tabs">{nav}</nav>{_links(links)}'
            f'<span class="who">{html.escape(principal.name)} '
            f'({html.escape(principal.role)})</span>'
            f'<form method="post" action="/logout" class="logout">'
            f'<input type="hidden" name="csrf_token" value="{html.escape(csrf, quote=True)}">'
            f'<button type="submit">Log out</button></form></header>')


async def _logged_in_page(request: Request, path: str, focus: str = "") -> Response:
    """One of the nav's pages, or the login page (keeping ``focus``) without a session."""
    found = await session_principal(request)
    if found is None:
        return RedirectResponse("/login" + focus, status_code=303)
    principal, session = found
    _, label, name, script, view = next(p for p in PAGES if p[0] == path)
    csrf = csrf_token(principal, session)
    header = _header(path, principal, csrf, state_of(request).dashboard_links)
    return _page("_layout.html", {"main": (STATIC / name).read_text(), "header": header},
                 csrf=csrf, script=script, title=label.lower(), view=view)


def _links(links: list[tuple[str, str]]) -> str:
    """Plugins' dashboard links (staso_dashboard_links) as the header's nav."""
    if not links:
        return ""
    items = "".join(f'<a href="{html.escape(href, quote=True)}">{html.escape(label)}</a>'
                    for label, href in links)
    return f'<nav class="links">{items}</nav>'


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    return {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


async def _session(request: Request) -> tuple[Principal, str]:
    found = await session_principal(request)
    if found is None:
        raise HTTPException(401, "not logged in (or the session expired): log in again")
    return found


_ESCALATION_ID = re.compile(r"esc_[0-9a-f]{1,64}")


def _focus(escalation: str) -> str:
    """The query that opens the dashboard on one escalation (a link from Slack or e-mail),
    kept through the login; anything but an escalation id is dropped."""
    return f"?escalation={escalation}" if _ESCALATION_ID.fullmatch(escalation) else ""


@router.get("/")
async def index(request: Request, escalation: str = "") -> Response:
    """The pending queue (and the latest answers); ``?escalation=`` opens on one."""
    return await _logged_in_page(request, "/", _focus(escalation))


@router.get("/history")
async def history_page(request: Request) -> Response:
    """Answered and timed-out escalations, 200 at a time."""
    return await _logged_in_page(request, "/history")


@router.get("/decisions")
async def decisions_page(request: Request) -> Response:
    """The decision log: every guarded call, searchable."""
    return await _logged_in_page(request, "/decisions")


@router.get("/overview")
async def overview_page(request: Request) -> Response:
    """Charts: decisions over time, top rules, time to resolution."""
    return await _logged_in_page(request, "/overview")


@router.get("/policy")
async def policy_page(request: Request) -> Response:
    """The policy in force, its versions and the diff between two."""
    return await _logged_in_page(request, "/policy")


@router.get("/grants")
async def grants_page(request: Request) -> Response:
    """Standing approvals: what each allows, who gave it, how much of it is left."""
    return await _logged_in_page(request, "/grants")


_LOGIN_ERRORS = {"unknown": "Unknown or revoked key.",
                 "slow": "Too many wrong keys from your address; wait a minute and retry.",
                 "agent": "An agent key cannot answer escalations; use an approver key."}


@router.get("/login")
async def login_page(request: Request, error: str = "", escalation: str = "") -> Response:
    token = secrets.token_urlsafe(24)
    # only fixed messages: a link cannot put its own words on the login page
    response = _page("login.html", csrf=token, error=_LOGIN_ERRORS.get(error, ""),
                     escalation=escalation if _focus(escalation) else "")
    response.set_cookie(LOGIN_CSRF_COOKIE, token, max_age=3600, httponly=True,
                        samesite="strict", secure=_secure(request), path="/login")
    return response


@router.post("/login")
async def login(request: Request) -> Response:
    form = await _form(request)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not secrets.compare_digest(cookie, form.get("csrf_token", "")):
        raise HTTPException(403, "missing or wrong CSRF token; reload the login page")
    key = form.get("api_key", "").strip()
    try:
        found = await state_of(request).keys.lookup(key, client_address(request)) \
            if key else None
    except TooManyGuesses:
        return RedirectResponse("/login?error=slow", status_code=303)
    if found is None:
        return RedirectResponse("/login?error=unknown", status_code=303)
    principal = Principal(*found)
    if principal.role not in (APPROVER, ADMIN):
        return RedirectResponse("/login?error=agent", status_code=303)
    response = RedirectResponse("/" + _focus(form.get("escalation", "")), status_code=303)
    response.set_cookie(SESSION_COOKIE, make_session(principal), max_age=SESSION_SECONDS,
                        httponly=True, samesite="strict", secure=_secure(request), path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    principal, session = await _session(request)
    check_csrf(principal, session, (await _form(request)).get("csrf_token"))
    await end_session(request, session)  # a copy of the cookie is refused from now on
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.get("/static/{name}")
async def asset(name: str) -> Response:
    if name not in _ASSETS:
        raise HTTPException(404, "no such file")
    return Response((STATIC / name).read_text(), media_type=_ASSETS[name],
                    headers={"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"})


def _your_part(esc: Escalation, me: Approver) -> dict[str, Any]:
    """What the person looking may do with a pending escalation, and why not: the same
    checks the store makes when they answer (which still refuses them, whatever a page
    shows)."""
    if any(a.get("name") == me.name for a in esc.approvals or ()):
        left = esc.approvals_required - len(esc.approvals)
        note = (f"You have approved this; it waits for {left} more approver"
                f"{'s' if left != 1 else ''}.")
        return {"may_approve": False, "may_deny": False, "note": note}
    approve, deny = refusal(esc, me, "approved"), refusal(esc, me, "denied")
    return {"may_approve": approve is None, "may_deny": deny is None,
            "note": approve or deny or ""}


def _matches(esc: Escalation, agent: str, tool: str, rule: str) -> bool:
    """The filters as a person types them: case-insensitive parts of the names."""
    return all(want.casefold() in (have or "").casefold() for want, have in (
        (agent, esc.agent_name), (tool, esc.tool_name), (rule, esc.rule_name)))


_HISTORY_SCAN = 20  # store pages one history page may read past pending or unmatched rows


def _history_page(service: Any, status: str | None, limit: int, before: str,
                  matches: Callable[[Escalation], bool]) -> tuple[list[Escalation], str | None]:
    """Up to ``limit`` answered escalations that ``matches`` keeps, newest first, older
    than ``before`` (an id), and the ``before`` of the next page (None: no more)."""
    found: list[Escalation] = []
    for _ in range(_HISTORY_SCAN):
        page = list(service.list_escalations(status=status, limit=limit, before=before)
                    if before else service.list_escalations(status=status, limit=limit))
        found += [e for e in page if e.status != "pending" and matches(e)]
        if len(found) > limit:
            return found[:limit], found[limit - 1].id
        if len(page) < limit:
            return found, None
        before = page[-1].id
        if len(found) == limit:
            break
    return found, before


_STATUSES = ("", "pending", "approved", "denied", "timeout")


def _invalid(param: str, value: str, allowed: tuple[str, ...]) -> Response:
    """422 for a filter a page cannot apply, shaped like the decision log's."""
    message = f"{value[:40]!r} is not one of {', '.join(allowed)}"
    return json_response({"detail": f"invalid request: query.{param}: {message}", "errors": [
        {"loc": ["query", param], "msg": message, "type": "value_error"}]}, 422)


@router.get("/dashboard/data")
async def data(request: Request, status: str = "", agent: str = "", tool: str = "",
               rule: str = "", before: str = "", limit: int = 200) -> Response:
    """The queue and the history with the filters applied; ``pending_total`` counts the
    whole queue whatever the filters hide. ``history_next``: the ``before`` that loads
    the next page (None: no more)."""
    principal, _ = await _session(request)
    if status not in _STATUSES:  # a link's filter is applied or refused, never ignored
        return _invalid("status", status, _STATUSES[1:])
    me = person(principal)
    service = state_of(request).service
    limit = max(1, min(limit, 500))
    queue = await asyncio.to_thread(service.list_escalations, status="pending", limit=1000)
    history_status = status if status in ("approved", "denied", "timeout") else None
    history: list[Escalation] = []
    after: str | None = None
    if status in ("", "approved", "denied", "timeout"):
        try:
            history, after = await asyncio.to_thread(
                _history_page, service, history_status, limit, before,
                lambda e: _matches(e, agent, tool, rule))
        except EscalationNotFound as exc:
            raise HTTPException(422, f"before: {exc}") from None
    now = time.time()
    return json_response({
        "now": now,
        "pending_total": len(queue),
        "pending": [{**escalation_json(e), "you": _your_part(e, me)} for e in queue
                    if _matches(e, agent, tool, rule)] if status in ("", "pending") else [],
        "history": [escalation_json(e) for e in history],
        "history_next": after,
    })


async def _answer(request: Request, escalation_id: str, status: str) -> Response:
    principal, session = await _session(request)
    form = await _form(request)
    check_csrf(principal, session, form.get("csrf_token"))
    comment = form.get("comment", "").strip() or None
    modified = None
    try:
        if status == "approved" and form.get("modified_input", "").strip():
            modified = json.loads(form["modified_input"])
        grant = _grant_scope(form) if status == "approved" else None
        esc = await state_of(request).resolve(escalation_id, status=status,
                                              by=principal.name, approver=person(principal),
                                              comment=comment, modified_input=modified,
                                              via="dashboard", grant=grant)
    except NotAnApprover as exc:
        return _answered(request, 403, str(exc))
    except AnswerRefused as exc:
        return _answered(request, 422, str(exc))
    except (ValueError, InvalidToolInput) as exc:
        return _answered(request, 422, f"edited input rejected: {exc}")
    except EscalationNotFound as exc:
        return _answered(request, 404, str(exc))
    except EscalationConflict as exc:
        return _answered(request, 409, str(exc))
    message = f"{esc.id} {esc.status}"
    if esc.status == "pending":
        left = esc.approvals_required - len(esc.approvals)
        message = (f"{esc.id}: your approval counted, {len(esc.approvals)} of "
                   f"{esc.approvals_required}; it waits for {left} more approver"
                   f"{'s' if left != 1 else ''}")
    elif grant is not None:
        given = await asyncio.to_thread(_grant_of, state_of(request), esc.id)
        if given is not None:
            uses = "" if given.max_uses is None else f", at most {given.max_uses} times"
            message += (f"; standing approval {given.id} allows similar calls for "
                        f"{_span(given.expires_at - given.created_at)}{uses}")
    return _answered(request, 200, message, escalation_json(esc))


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{round(seconds / size, 1):g} {unit}"
    return f"{round(seconds, 1):g} s"


def _grant_scope(form: dict[str, str]) -> dict[str, Any] | None:
    """A standing approval's scope from the card's "Approve and allow similar calls" form
    (``grant=1`` with ``grant_ttl``, ``grant_max_uses``, ``grant_when``; blank ones take
    the defaults); None without ``grant``. The service checks the rest."""
    if not form.get("grant"):
        return None
    scope: dict[str, Any] = {}
    if form.get("grant_ttl", "").strip():
        scope["ttl"] = form["grant_ttl"].strip()
    uses = form.get("grant_max_uses", "").strip()
    if uses:
        if not (uses.isascii() and uses.isdigit()):  # ("²".isdigit(), but no int)
            raise AnswerRefused(f"grant max uses must be a whole number, not {uses!r}")
        scope["max_uses"] = int(uses)
    if form.get("grant_when", "").strip():
        scope["when"] = form["grant_when"]
    return scope


def _grant_of(state: Any, escalation_id: str) -> Grant | None:
    """The standing approval just given with this escalation's answer (the newest)."""
    return next((g for g in state.store.list_grants(limit=200)
                 if g.escalation_id == escalation_id), None)


def _answered(request: Request, code: int, message: str,
              escalation: dict[str, Any] | None = None) -> Response:
    if "application/json" in request.headers.get("accept", ""):
        return json_response({"detail": message, "escalation": escalation}, code)
    return RedirectResponse("/", status_code=303)  # a plain form post: back to the list


@router.post("/dashboard/escalations/{escalation_id}/approve")
async def approve(escalation_id: str, request: Request) -> Response:
    return await _answer(request, escalation_id, "approved")


@router.post("/dashboard/escalations/{escalation_id}/deny")
async def deny(escalation_id: str, request: Request) -> Response:
    return await _answer(request, escalation_id, "denied")


# -- standing approvals -------------------------------------------------------------------
@router.get("/dashboard/grants")
async def grants_data(request: Request, live: str = "") -> Response:
    """Standing approvals, newest first, each with its state now (live, used up, expired,
    revoked); ``live=1``: only those that may still be used."""
    await _session(request)
    if live not in ("", "1", "true"):
        return _invalid("live", live, ("1", "true"))
    now = time.time()
    found = await asyncio.to_thread(state_of(request).store.list_grants,
                                    live_only=live in ("1", "true"), limit=500, now=now)
    return json_response({"now": now, "grants": [g.to_dict(now) for g in found]})


@router.post("/dashboard/grants/{grant_id}/revoke")
async def revoke_grant(grant_id: str, request: Request) -> Response:
    """End a standing approval now; any approver or admin may, and is recorded as having
    done it (the name of their key)."""
    principal, session = await _session(request)
    check_csrf(principal, session, (await _form(request)).get("csrf_token"))
    try:
        grant = await asyncio.to_thread(partial(standing.revoke, state_of(request).store,
                                                grant_id, by=principal.name))
    except standing.GrantNotFound as exc:
        return _revoked(request, 404, str(exc))
    except standing.GrantRevoked as exc:
        return _revoked(request, 409, str(exc))
    return _revoked(request, 200, f"standing approval {grant_id} revoked", grant)


def _revoked(request: Request, code: int, message: str, grant: Grant | None = None
             ) -> Response:
    if "application/json" in request.headers.get("accept", ""):
        return json_response({"detail": message,
                              "grant": None if grant is None else grant.to_dict(time.time())},
                             code)
    return RedirectResponse("/grants", status_code=303)
