"""An MCP server in front of another one, guarding every ``tools/call``.

The proxy is an ``mcp`` low-level ``Server`` that reports the upstream's own identity and
capabilities and answers every request but ``tools/call`` by sending it upstream as it came.
A ``tools/call`` asks staso first (``ToolGuard``, the adapters' one decision → outcome
mapping): allow forwards it, modify forwards the rewritten arguments, block and a pending
escalation answer an ``isError`` result the model reads (a client skips its output-schema
check only for those), and the tool never runs. The execution is recorded on the decision.

Why the low-level server: the SDK has no proxy helper, and FastMCP's decorators would
re-validate and re-shape what the upstream says.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import mcp.types as types
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.server.lowlevel import Server
from mcp.server.models import InitializationOptions
from mcp.server.stdio import stdio_server

from staso.adapters import ToolGuard

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


def _clean(message: Any) -> Any:
    """An incoming request as a new outgoing one: the SDK keeps "jsonrpc" and "id" as
    extras on incoming models, and sending them again fails."""
    return type(message).model_validate(message.model_dump(
        by_alias=True, exclude_none=True, exclude={"jsonrpc", "id"}))


class GuardedProxy:
    """The proxy for one upstream session (``init``: what the upstream answered to
    ``initialize``). ``guard`` carries the guard options (``wait_for_escalation`` …)."""

    def __init__(self, upstream: ClientSession, init: types.InitializeResult,
                 guard: ToolGuard | None = None, *, name: str | None = None,
                 upstream_timeout: float = UPSTREAM_TIMEOUT) -> None:
        self.upstream, self.init = upstream, init
        self.name = name or init.serverInfo.name  # the server, as rules see it
        self.guard = guard or ToolGuard.of()
        # a hung upstream gives the client an error after this long, never a hang
        self.timeout = timedelta(seconds=upstream_timeout)
        self.session_id = "mcp_" + secrets.token_hex(8)
        self.server: Server[Any, Any] = Server(init.serverInfo.name)
        for request_type, result_type in _PASS.items():
            self.server.request_handlers[request_type] = self._passthrough(result_type)
        self.server.request_handlers[types.CallToolRequest] = self._call_tool
        self._downstream: Any = None  # the client's session, once it has spoken
        handle = self.server._handle_message  # the session is known only inside run()

        async def remember_session(message: Any, session: Any, *args: Any, **kwargs: Any
                                   ) -> Any:
            self._downstream = session
            return await handle(message, session, *args, **kwargs)
        self.server._handle_message = remember_session  # type: ignore[method-assign]

    async def upstream_message(self, message: Any) -> None:
        """The upstream's notifications (list changed, logging, resources updated), sent on
        to the client as they came. (Progress of a call goes with the call.)"""
        if not isinstance(message, types.ServerNotification) or self._downstream is None:
            return
        if isinstance(message.root, types.ProgressNotification):
            return
        await self._downstream.send_notification(types.ServerNotification(
            _clean(message.root)))

    def options(self) -> InitializationOptions:
        """The upstream's identity and capabilities, reported as the proxy's own."""
        info = self.init.serverInfo
        return InitializationOptions(server_name=info.name, server_version=info.version,
                                     capabilities=self.init.capabilities,
                                     instructions=self.init.instructions)

    def _passthrough(self, result_type: type[Any]) -> Any:
        async def handle(request: Any) -> types.ServerResult:
            result = await self.upstream.send_request(types.ClientRequest(_clean(request)),
                                                      result_type, self.timeout)
            return types.ServerResult(result)
        return handle

    def _context(self) -> dict[str, Any]:
        """What a rule can read about where the call came from."""
        client = ""
        try:
            params = self.server.request_context.session.client_params
            client = params.clientInfo.name if params is not None else ""
        except LookupError:  # (outside a request)
            pass
        return {"framework": "mcp", "mcp_server": self.name, "mcp_client": client,
                "session_id": self.session_id}

    async def _call_tool(self, request: types.CallToolRequest) -> types.ServerResult:
        name = request.params.name
        arguments = dict(request.params.arguments or {})
        outcome = await self.guard.acheck(name, arguments, self._context())
        if not outcome.run:
            return types.ServerResult(types.CallToolResult(
                isError=True, content=[types.TextContent(type="text",
                                                         text=outcome.message or "")]))
        params = _clean(request).params.model_copy(update={"arguments": outcome.tool_input})
        started = time.perf_counter()
        try:
            result = await self.upstream.send_request(
                types.ClientRequest(types.CallToolRequest(params=params)),
                types.CallToolResult, self.timeout, progress_callback=self._progress())
        except Exception as exc:
            self.guard.record(outcome.result, "error", started, error=exc)
            raise
        self.guard.record(outcome.result, "error" if result.isError else "ok", started,
                          output=_text(result))
        return types.ServerResult(result)


    def _progress(self) -> Any:
        """A callback sending the upstream's progress on this call to the client, with the
        client's own progress token (None when the client asked for none)."""
        context = self.server.request_context
        token = context.meta.progressToken if context.meta is not None else None
        if token is None:
            return None

        async def send(progress: float, total: float | None, message: str | None) -> None:
            await context.session.send_progress_notification(
                token, progress, total, message, related_request_id=str(context.request_id))
        return send


def _text(result: types.CallToolResult) -> str:
    """A tool result's text, for the decision log."""
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


class _Forward:
    """The upstream session's message handler, pointed at the proxy once it exists (the
    session must be made first: the proxy mirrors what it answers to initialize)."""

    to: Any = None

    async def __call__(self, message: Any) -> None:
        if self.to is not None:
            await self.to(message)


async def run_stdio_proxy(command: str, args: Sequence[str], guard: ToolGuard | None = None,
                          upstream_timeout: float = UPSTREAM_TIMEOUT,
                          name: str | None = None) -> None:
    """The proxy on this process's stdio, in front of ``command args`` started as a stdio
    MCP server (with this process's environment: the SDK's default passes on only a few
    variables)."""
    params = StdioServerParameters(command=command, args=list(args), env=dict(os.environ))
    forward = _Forward()
    async with stdio_client(params) as (read, write), \
            ClientSession(read, write, message_handler=forward) as upstream:
        init = await upstream.initialize()
        proxy = GuardedProxy(upstream, init, guard, name=name,
                             upstream_timeout=upstream_timeout)
        forward.to = proxy.upstream_message
        async with stdio_server() as (down_read, down_write):
            await proxy.server.run(down_read, down_write, proxy.options())
