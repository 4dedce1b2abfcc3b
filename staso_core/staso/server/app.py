"""The FastAPI application: routes, error mapping, body limits, lifecycle."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.requests import Request as StarletteRequest
from starlette.types import ASGIApp, Receive, Scope, Send

from .. import __version__
from ..approvers import AnswerRefused, NotAnApprover
from ..errors import (
    DecisionIdReused,
    EscalationConflict,
    EscalationNotFound,
    InvalidToolInput,
    PolicyError,
    StasoError,
    StoreUnavailable,
)
from ..plugins import http_routes
from .api import GUARD_PATH, guard, json_response
from .long_polls import LongPollingApp
from .state import ServerConfig, ServerState

_ERRORS: tuple[tuple[type[Exception], int], ...] = (
    (EscalationNotFound, 404), (EscalationConflict, 409), (DecisionIdReused, 409),
    (InvalidToolInput, 422), (NotAnApprover, 403), (AnswerRefused, 422),
    (PolicyError, 422), (StoreUnavailable, 503), (StasoError, 400))


def create_app(config: ServerConfig) -> FastAPI:
    state = ServerState(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.start()
        yield
        await state.stop()

    app = LongPollingApp(
        title="staso", version=__version__, lifespan=lifespan,
        description="Guard AI agents' tool calls: allow, block, modify or escalate.",
        docs_url="/docs", redoc_url=None)
    app.state.staso = state
    _add_error_handlers(app, state)

    @app.get("/healthz", summary="Liveness and database reachability")
    async def healthz() -> Response:
        try:
            await asyncio.to_thread(state.store.ping)
        except Exception as exc:
            return json_response({"status": "unavailable", "database": str(exc)[:200]}, 503)
        # reachable, yet the decision log's last write failed, or a write would now
        failing = state.service.log.failing or await asyncio.to_thread(state.store.unwritable)
        if failing is not None:
            return json_response({"status": "degraded", "reason": failing[:500]}, 503)
        return json_response({"status": "ok", "policy_version": state.policy_version})

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics() -> Response:
        try:
            pending: int | None = await asyncio.to_thread(state.store.count_escalations,
                                                          "pending")
        except Exception:
            pending = None
        text = state.metrics.render(pending, state.policy_version, state.service.log)
        if state.outbox is not None:
            try:
                notices: dict[str, int] | None = await asyncio.to_thread(
                    state.store.count_notices)
            except Exception:
                notices = None
            text += "\n".join(state.outbox.metrics_lines(notices)) + "\n"
        return PlainTextResponse(text, media_type="text/plain; version=0.0.4")

    _mount(app, http_routes(state.pm))  # the API and dashboard, then plugins' routes
    app.add_middleware(GuardFastPath)  # inside BodyLimit: added first
    app.add_middleware(BodyLimit, limit=config.max_input_bytes * 2 + 64 * 1024,
                       metrics=state.metrics)
    return app


def _mount(app: FastAPI, routers: list[APIRouter]) -> None:
    """Include each router, refusing a route whose method and path are taken: the first
    mounted would answer and the other would never run, silently."""
    taken = {(method, path): "staso" for method, path in _keys(app.routes)}
    for router in routers:
        owner = next((getattr(r, "endpoint", None) for r in router.routes), None)
        where = getattr(owner, "__module__", "a plugin")
        for key in _keys(router.routes):
            if key in taken:
                raise StasoError(f"{where} adds the route {' '.join(key)}, which "
                                 f"{taken[key]} already has")
            taken[key] = where
        app.include_router(router)


def _keys(routes: list[Any]) -> list[tuple[str, str]]:
    """(method, path) of each route declared directly on a router (routers included into
    it are not looked into: FastAPI keeps those as wrappers whose shape varies by version)."""
    return [(method, route.path) for route in routes
            if isinstance(getattr(route, "path", None), str)
            for method in sorted(getattr(route, "methods", None) or {"*"})]


def _add_error_handlers(app: FastAPI, state: ServerState) -> None:
    for exc_type, code in _ERRORS:
        def handler(request: Request, exc: Exception, code: int = code) -> Response:
            state.metrics.error(code)
            data: dict[str, Any] = {"detail": str(exc), "error": type(exc).__name__}
            if isinstance(exc, EscalationConflict):
                data["status"] = exc.status
            return json_response(data, code)
        app.add_exception_handler(exc_type, handler)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        state.metrics.error(422)
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg", ""),
                   "type": e.get("type", "")} for e in exc.errors()]
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
        return json_response({"detail": f"invalid request: {where}", "errors": errors}, 422)
    app.add_exception_handler(RequestValidationError, invalid)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        state.metrics.error(exc.status_code)  # 401, 403, 429 …: visible in /metrics
        return await http_exception_handler(request, exc)
    app.add_exception_handler(StarletteHTTPException, http_error)


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413 before they are read into memory."""

    def __init__(self, app: Any, *, limit: int, metrics: Any) -> None:
        self.app, self.limit, self.metrics = app, limit, metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > self.limit:
                await self._too_large(send)
                return
        seen = 0

        async def counted() -> Any:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, counted, send)
        except _TooLarge:
            await self._too_large(send)

    async def _too_large(self, send: Any) -> None:
        self.metrics.error(413)
        body = (f'{{"detail":"request body over the {self.limit:,}-byte limit",'
                f'"error":"PayloadTooLarge"}}').encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


class _TooLarge(Exception):
    pass


class GuardFastPath:
    """``POST /v1/guard`` straight to its endpoint, past FastAPI's router: matching the
    path through the included routers, solving the (empty) dependencies and the route's
    own wrappers took a third of a decision's server CPU (50-rule benchmark policy, app
    called in-process: ~370 -> ~255 µs a decision), on the one route called thousands of
    times a second. The same endpoint still serves the route through the router (the
    OpenAPI document; a request under a root path), and errors go through the app's own
    exception handlers, as Starlette's ExceptionMiddleware sends them
    (tests/test_guard_fast_path.py compares every answer with the router's)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._guard: ASGIApp | None = None  # built at the first call: every handler is in

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != GUARD_PATH \
                or scope["method"] != "POST" or scope.get("root_path"):
            await self.app(scope, receive, send)
            return
        if self._guard is None:
            app = scope["app"]
            handlers = {k: v for k, v in app.exception_handlers.items()
                        if k not in (500, Exception)}  # those are ServerErrorMiddleware's
            self._guard = ExceptionMiddleware(_guard_app, handlers=handlers, debug=app.debug)
        await self._guard(scope, receive, send)


async def _guard_app(scope: Scope, receive: Receive, send: Send) -> None:
    response = await guard(StarletteRequest(scope, receive, send))
    await response(scope, receive, send)
