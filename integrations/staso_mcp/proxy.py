"""The streamable-HTTP proxy: an MCP server in front of another one, guarding every
``tools/call``, for many clients at once.

The proxy is an ``mcp`` low-level ``Server`` that reports the upstream's own identity and
capabilities and answers every request but ``tools/call`` by sending it upstream as it came,
on the client's own upstream connection (``upstream.py``). A ``tools/call`` is decided first
(``calls.CallGuard``): allow forwards it, modify forwards the rewritten arguments, block and
a pending escalation answer an ``isError`` result the model reads (a client skips its
output-schema check only for those), and the tool never runs. The execution is recorded on
the decision. (The stdio form is a relay of its own: ``relay.py``.)

Why the SDK's sessions here: HTTP sessions, SSE streams, resumption and the transport's
security checks are the SDK's to get right; the SDK has no proxy helper, and FastMCP's
decorators would re-validate and re-shape what the upstream says, so the low-level server.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypedDict

import anyio
import mcp.types as types
from anyio.abc import TaskGroup
from mcp.server.lowlevel import Server
from mcp.server.models import InitializationOptions
from mcp.shared.context import RequestContext
from mcp.shared.exceptions import McpError

from staso import Client
from staso.adapters import ToolGuard, requested_by_in

from .calls import CallGuard, refusal
from .cancelling import cancelling
from .upstream import Upstream, clean, connected, described

if TYPE_CHECKING:
    pass

UPSTREAM_TIMEOUT = 300.0  # seconds one request may take upstream

# requests passed through unchanged, with the result type each one is read as
_PASS: dict[type[Any], type[Any]] = {
    types.PingRequest: types.EmptyResult,
    types.ListToolsRequest: types.ListToolsResult,
    types.ListResourcesRequest: types.ListResourcesResult,
    types.ListResourceTemplatesRequest: types.ListResourceTemplatesResult,
    types.ReadResourceRequest: types.ReadResourceResult,
    types.SubscribeRequest: types.EmptyResult,
    types.UnsubscribeRequest: types.EmptyResult,
    types.ListPromptsRequest: types.ListPromptsResult,
    types.GetPromptRequest: types.GetPromptResult,
    types.CompleteRequest: types.CompleteResult,
    types.SetLevelRequest: types.EmptyResult,
}

# how a new connection to the upstream is made: (read, write) streams while it is open
Connect = Callable[[], AbstractAsyncContextManager[tuple[Any, Any]]]


class ProxyOptions(TypedDict, total=False):
    """What both forms of the proxy take (``GuardedProxy``'s keywords)."""

    guard: ToolGuard | None
    name: str | None
    upstream_timeout: float
    approve_in_client: bool
    answers: Client | None


class _Client:
    """One client session of the proxy and its own upstream connection, opened on its first
    request and closed when it leaves."""

    def __init__(self, group: TaskGroup) -> None:
        self.upstream_now: Upstream | None = None
        self.group = group
        self.session: Any = None
        self.session_id = "mcp_" + secrets.token_hex(8)
        self.lock = anyio.Lock()


_current: ContextVar[_Client] = ContextVar("staso_mcp_client")


class GuardedProxy:
    """The proxy (``init``: what the upstream answered to ``initialize``, reported to each
    client as the proxy's own); ``connect`` opens an upstream connection for each client.
    The other keywords are ``CallGuard``'s (the guard, ``approve_in_client``, ``answers``)
    and the server's name for rules and the upstream timeout."""

    def __init__(self, init: types.InitializeResult, *, connect: Connect,
                 guard: ToolGuard | None = None,
                 name: str | None = None, upstream_timeout: float = UPSTREAM_TIMEOUT,
                 approve_in_client: bool = False, answers: Client | None = None) -> None:
        self.init, self._connect = init, connect
        self.name = name or init.serverInfo.name  # the server, as rules see it
        self.calls = CallGuard(guard, approve_in_client=approve_in_client, answers=answers)
        self.guard = self.calls.guard
        # a hung upstream gives the client an error after this long, never a hang
        self.timeout = timedelta(seconds=upstream_timeout)
        self.server: Server[Any, Any] = Server(init.serverInfo.name)
        for request_type, result_type in _PASS.items():
            self.server.request_handlers[request_type] = self._passthrough(result_type)
        self.server.request_handlers[types.CallToolRequest] = self._call_tool
        self.server.create_initialization_options = self.options  # type: ignore[method-assign]
        # each client's run and messages carry that client (the SDK makes its session
        # inside run(), and runs every handler in a task of that run)
        self._run, self._handle = self.server.run, self.server._handle_message
        self.server.run = self._client_run  # type: ignore[method-assign]
        self.server._handle_message = self._client_message  # type: ignore[method-assign]

    async def _client_run(self, *args: Any, **kwargs: Any) -> None:
        async with anyio.create_task_group() as group:
            token = _current.set(_Client(group))
            try:
                await self._run(*args, **kwargs)
            finally:
                _current.reset(token)
                group.cancel_scope.cancel()  # its upstream connection closes with it

    async def _client_message(self, message: Any, session: Any, *args: Any, **kwargs: Any
                              ) -> Any:
        client = _current.get()
        client.session = session
        if client.upstream_now is not None:
            client.upstream_now.client = session
        return await self._handle(message, session, *args, **kwargs)

    async def _upstream(self) -> Upstream:
        """This client's upstream connection; opened (again) here when it has none."""
        client = _current.get()
        current = client.upstream_now
        if current is not None and not current.gone:
            return current
        async with client.lock:
            if client.upstream_now is None or client.upstream_now.gone:
                client.upstream_now = await self._open(client)
        return client.upstream_now

    async def _open(self, client: _Client) -> Upstream:
        """A new upstream connection for ``client``, held by its run's task group."""
        connect, upstream = self._connect, Upstream(self.timeout)
        upstream.client = client.session
        opened, failed = anyio.Event(), []

        async def hold() -> None:
            try:
                async with connect() as (read, write), connected(read, write, upstream):
                    opened.set()
                    assert upstream.session is not None
                    await upstream.session.gone.wait()
            except Exception as exc:
                failed.append(exc)
            finally:
                opened.set()
        client.group.start_soon(hold)
        await opened.wait()
        if upstream.session is None:
            raise McpError(types.ErrorData(
                code=types.CONNECTION_CLOSED, message="could not connect to the upstream MCP "
                f"server: {described(failed[0]) if failed else 'no answer'}"))
        return upstream

    def options(self, *args: Any, **kwargs: Any) -> InitializationOptions:
        """The upstream's identity and capabilities, reported as the proxy's own."""
        info = self.init.serverInfo
        return InitializationOptions(server_name=info.name, server_version=info.version,
                                     capabilities=self.init.capabilities,
                                     instructions=self.init.instructions)

    def _passthrough(self, result_type: type[Any]) -> Any:
        async def handle(request: Any) -> types.ServerResult:
            upstream = await self._upstream()
            return types.ServerResult(await upstream.send(clean(request), result_type))
        return handle

    def _context(self, context: RequestContext[Any, Any, Any], client: str
                 ) -> dict[str, Any]:
        """What a rule can read about where the call came from, and who asked for it when
        the client says so in the call's ``_meta.requested_by``. On HTTP the session is
        named by a digest of its Mcp-Session-Id (the id itself lets its holder speak in
        that session: it is not written to the decision log)."""
        http = context.request  # a Starlette request on streamable HTTP, else None
        header = http.headers.get("mcp-session-id") if http is not None else None
        session_id = "mcp_" + hashlib.blake2b(header.encode(), digest_size=8).hexdigest() \
            if header else _current.get().session_id
        return {"framework": "mcp", "mcp_server": self.name,
                "mcp_client": client, "session_id": session_id,
                **requested_by_in(context.meta)}

    async def _call_tool(self, request: types.CallToolRequest) -> types.ServerResult:
        context = self.server.request_context
        upstream = await self._upstream()
        upstream.calling.append(context)
        try:
            return await self._guarded_call(upstream, context, request)
        finally:
            upstream.calling.remove(context)

    async def _guarded_call(self, upstream: Upstream, context: RequestContext[Any, Any, Any],
                            request: types.CallToolRequest) -> types.ServerResult:
        name = request.params.name
        arguments = dict(request.params.arguments or {})
        link = SessionLink(context)
        outcome = await self.calls.decide(link, _current.get(), self.name, name, arguments,
                                          self._context(context, link.name))
        if not outcome.run:
            return types.ServerResult(refusal(outcome))
        params = request.params.model_copy(update={"arguments": outcome.tool_input})
        started = time.perf_counter()
        try:
            result = await upstream.send(types.CallToolRequest(params=params),
                                         types.CallToolResult, self._progress(context))
        except BaseException as exc:  # an error upstream, or the client cancelled
            self.guard.record(outcome.result, "error", started, error=exc)
            raise
        self.calls.record_result(outcome.result, result, started)
        return types.ServerResult(result)

    def _progress(self, context: RequestContext[Any, Any, Any]) -> Any:
        """A callback sending the upstream's progress on this call to the client, with the
        client's own progress token (None when the client asked for none)."""
        token = context.meta.progressToken if context.meta is not None else None
        if token is None:
            return None

        async def send(progress: float, total: float | None, message: str | None) -> None:
            await context.session.send_progress_notification(
                token, progress, total, message, related_request_id=str(context.request_id))
        return send


class SessionLink:
    """The client of one request, through the SDK's session (the HTTP form)."""

    def __init__(self, context: RequestContext[Any, Any, Any]) -> None:
        self.context = context
        params = context.session.client_params
        self.name: str = params.clientInfo.name if params is not None else ""

    def can_ask(self) -> bool:
        params = self.context.session.client_params
        return params is not None and params.capabilities.elicitation is not None

    async def elicit(self, message: str, schema: dict[str, Any]) -> types.ElicitResult:
        session, related = self.context.session, self.context.request_id
        result: types.ElicitResult = await cancelling(session, lambda: session.elicit_form(
            message, schema, related_request_id=related), "answered elsewhere")
        return result

    async def progress(self, done: float, total: float | None, message: str) -> bool:
        meta = self.context.meta
        token = meta.progressToken if meta is not None else None
        if token is None:
            return False
        await self.context.session.send_progress_notification(
            token, done, total, message, related_request_id=str(self.context.request_id))
        return True

