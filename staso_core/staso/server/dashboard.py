"""The approval dashboard: log in with an approver key, answer escalations.

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
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import RedirectResponse

from ..approvers import AnswerRefused, NotAnApprover
from ..errors import EscalationConflict, EscalationNotFound, InvalidToolInput
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
_ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}


def _page(name: str, markup: dict[str, str] | None = None, **values: str) -> Response:
    """A static page with ``{{name}}`` filled in: ``values`` as escaped text, ``markup``
    as HTML built here from escaped parts."""
    text = (STATIC / name).read_text()
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", html.escape(value, quote=True))
    for key, value in (markup or {}).items():
        text = text.replace("{{" + key + "}}", value)
    return Response(text, media_type="text/html; charset=utf-8", headers=_HEADERS)


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
    found = await session_principal(request)
    if found is None:
        return RedirectResponse("/login" + _focus(escalation), status_code=303)
    principal, session = found
    return _page("dashboard.html", {"links": _links(state_of(request).dashboard_links)},
                 csrf=csrf_token(principal, session), user=principal.name, role=principal.role)


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


@router.get("/dashboard/data")
async def data(request: Request, status: str = "", agent: str = "", tool: str = "",
               rule: str = "") -> Response:
    await _session(request)
    service = state_of(request).service
    filters = {"agent": agent or None, "tool": tool or None, "rule": rule or None}
    pending = await asyncio.to_thread(service.list_escalations, status="pending", limit=200,
                                      **filters)
    history_status = status if status in ("approved", "denied", "timeout") else None
    history: list[Any] = []
    if status in ("", "approved", "denied", "timeout"):
        history = await asyncio.to_thread(service.list_escalations, status=history_status,
                                          limit=200, **filters)
    now = time.time()
    return json_response({
        "now": now,
        "pending": [escalation_json(e) for e in pending] if status in ("", "pending") else [],
        "history": [escalation_json(e) for e in history if e.status != "pending"],
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
        esc = await state_of(request).resolve(escalation_id, status=status,
                                              by=principal.name, approver=person(principal),
                                              comment=comment, modified_input=modified,
                                              via="dashboard")
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
    return _answered(request, 200, f"{esc.id} {esc.status}", escalation_json(esc))


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
