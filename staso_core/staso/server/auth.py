"""Who is calling: bearer keys for the API, signed session cookies for the dashboard.

A live session needs no table: the cookie is ``key_id.expiry.nonce.signature``, signed with the
key's stored hash (secret to the server, shared by every replica through the database).
Revoking the key ends its sessions; logging out ends one, by storing the cookie's hash,
which every replica checks (so a copied cookie stops working too). The CSRF token is
derived from the session the same way.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request

from ..store.keys import ApiKey
from .guesses import TooManyGuesses
from .state import ServerState

SESSION_COOKIE = "staso_session"
LOGIN_CSRF_COOKIE = "staso_login_csrf"
SESSION_SECONDS = 12 * 3600
AGENT, APPROVER, ADMIN = "agent", "approver", "admin"


@dataclass(frozen=True)
class Principal:
    key: ApiKey
    key_hash: str

    @property
    def name(self) -> str:
        return self.key.name

    @property
    def role(self) -> str:
        return self.key.role


def state_of(request: Request) -> ServerState:
    state: ServerState = request.app.state.staso
    return state


def _denied(status: int, message: str) -> HTTPException:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return HTTPException(status_code=status, detail=message, headers=headers)


async def authenticate(request: Request, *roles: str) -> Principal:
    """The caller's key, which must have one of ``roles`` (401/403 if not)."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise _denied(401, "missing API key: send 'Authorization: Bearer <key>'")
    try:
        found = await state_of(request).keys.lookup(key.strip(), client_address(request))
    except TooManyGuesses as exc:
        raise HTTPException(429, str(exc), headers={
            "Retry-After": str(max(1, math.ceil(exc.retry_after)))}) from None
    if found is None:
        raise _denied(401, "unknown or revoked API key")
    principal = Principal(*found)
    if principal.role not in roles:
        raise _denied(403, f"this needs a key with role {' or '.join(sorted(roles))}; "
                           f"yours is {_article(principal.role)} key")
    return principal


def client_address(request: Request) -> str:
    """Whom wrong keys are counted against: the peer address (behind a proxy that is the
    proxy; run replicas so that the server sees clients, or accept the shared count)."""
    return request.client.host if request.client else ""


def require(*roles: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency form of ``authenticate``."""

    async def dependency(request: Request) -> Principal:
        return await authenticate(request, *roles)

    return dependency


# -- dashboard sessions -----------------------------------------------------------------
def _sign(secret: str, message: str) -> str:
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def make_session(principal: Principal, now: float | None = None) -> str:
    # a nonce makes each login's cookie its own: ending one never ends the next
    body = f"{principal.key.id}.{int((now or time.time()) + SESSION_SECONDS)}." \
           f"{secrets.token_hex(8)}"
    return f"{body}.{_sign(principal.key_hash, 'session:' + body)}"


def csrf_token(principal: Principal, session: str) -> str:
    return _sign(principal.key_hash, "csrf:" + session)[:40]


async def session_principal(request: Request) -> tuple[Principal, str] | None:
    """The dashboard user behind the session cookie, or None (expired, forged, revoked)."""
    cookie = request.cookies.get(SESSION_COOKIE, "")
    parts = cookie.split(".")
    if len(parts) != 4 or not parts[1].isdigit() or int(parts[1]) < time.time():
        return None
    found = await asyncio.to_thread(state_of(request).store.key_by_id, parts[0])
    if found is None or found[0].role not in (APPROVER, ADMIN):
        return None
    principal = Principal(*found)
    expected = _sign(principal.key_hash, "session:" + ".".join(parts[:3]))
    if not hmac.compare_digest(expected, parts[3]):
        return None
    if await asyncio.to_thread(state_of(request).store.session_ended, session_digest(cookie)):
        return None  # logged out (on any replica)
    return principal, cookie


def session_digest(session: str) -> str:
    """What the store keeps of an ended session: its hash, never the cookie."""
    return hashlib.sha256(session.encode()).hexdigest()


async def end_session(request: Request, session: str) -> None:
    """Log out for good: every replica refuses this cookie from now until it expires."""
    expires_at = float(session.split(".")[1])
    await asyncio.to_thread(state_of(request).store.end_session, session_digest(session),
                            expires_at)


def check_csrf(principal: Principal, session: str, token: str | None) -> None:
    if not token or not hmac.compare_digest(csrf_token(principal, session), token):
        raise HTTPException(status_code=403, detail="missing or wrong CSRF token; reload the "
                                                    "dashboard and try again")


def _article(role: str) -> str:
    return f"{'an' if role[:1] in 'aeiou' else 'a'} {role}"
