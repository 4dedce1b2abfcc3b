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

import secrets
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypedDict

import anyio
import httpx
import mcp.types as types
from mcp import ClientSession
from mcp.server.lowlevel import Server
from mcp.server.models import InitializationOptions
from mcp.shared.context import RequestContext
from mcp.shared.exceptions import McpError
from mcp.shared.message import ServerMessageMetadata
from pydantic import ValidationError

from staso import Client, GuardResult
from staso.adapters import Outcome, ToolGuard, watch_pending

if TYPE_CHECKING:
    from typing_extensions import Unpack

from .asking import ask_in_client, can_ask, client_name, report_waiting
from .cancelling import cancelling

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
    """The proxy in front of one upstream session (``init``: what the upstream answered to
    ``initialize``), for one client (stdio) or many (streamable HTTP). ``guard`` carries
    the guard options (``wait_for_escalation`` …); ``approve_in_client`` asks a client
    that can show a form (elicitation) to answer the escalations of its own calls, and
    records the answers with ``answers`` (default: the guard's client; a remote agent key
    may not answer, so a remote proxy is given an approver's)."""

    def __init__(self, upstream: ClientSession, init: types.InitializeResult, *,
                 guard: ToolGuard | None = None, name: str | None = None,
                 upstream_timeout: float = UPSTREAM_TIMEOUT,
                 approve_in_client: bool = False, answers: Client | None = None) -> None:
        self.upstream, self.init = upstream, init
        self.name = name or init.serverInfo.name  # the server, as rules see it
        self.guard = guard or ToolGuard.of()
        self.approve_in_client, self._answers = approve_in_client, answers
        # a hung upstream gives the client an error after this long, never a hang
        self.timeout = timedelta(seconds=upstream_timeout)
        self.server: Server[Any, Any] = Server(init.serverInfo.name)
        for request_type, result_type in _PASS.items():
            self.server.request_handlers[request_type] = self._passthrough(result_type)
        self.server.request_handlers[types.CallToolRequest] = self._call_tool
        self.server.create_initialization_options = self.options  # type: ignore[method-assign]
        # the clients' sessions, known once they speak (the SDK makes them inside run())
        self._sessions: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()
        self._garbled: tuple[float, str] | None = None  # when and what, the last garbage
        self._calling: list[RequestContext[Any, Any, Any]] = []  # tools/call in flight
        handle = self.server._handle_message

        async def remember_session(message: Any, session: Any, *args: Any, **kwargs: Any
                                   ) -> Any:
            if session not in self._sessions:
                self._sessions[session] = "mcp_" + secrets.token_hex(8)
            return await handle(message, session, *args, **kwargs)
        self.server._handle_message = remember_session  # type: ignore[method-assign]

    async def upstream_message(self, message: Any) -> None:
        """The upstream's notifications (list changed, logging, resources updated), sent on
        to every client as they came. (Progress of a call goes with the call.)"""
        if isinstance(message, Exception):  # a line that is not JSON-RPC: noted for errors
            self._garbled = (time.monotonic(), _described(message))
            return
        if not isinstance(message, types.ServerNotification) or \
                isinstance(message.root, types.ProgressNotification):
            return
        notification = types.ServerNotification(_clean(message.root))
        for session in list(self._sessions):
            try:
                await session.send_notification(notification)
            except Exception:  # that client has gone
                self._sessions.pop(session, None)

    async def ask_client(self, request: Any, result_type: type[Any], capability: str
                         ) -> Any:
        """A request of the upstream's to a client (elicitation, sampling), sent to the
        client whose call it is serving (the latest call in flight, else the only client),
        on that call's stream; the client's error, or "not supported", comes back as the
        client would have answered it."""
        if self._calling:
            context = self._calling[-1]
            session, related = context.session, context.request_id
        elif len(self._sessions) == 1:
            session, related = next(iter(self._sessions.keys())), None
        else:
            return types.ErrorData(code=types.INVALID_REQUEST,
                                   message=f"no client to ask for {capability}")
        params = session.client_params
        if params is None or getattr(params.capabilities, capability, None) is None:
            return types.ErrorData(code=types.INVALID_REQUEST,
                                   message=f"the client does not support {capability}")
        try:
            return await cancelling(session, lambda: session.send_request(
                types.ServerRequest(request), result_type,
                metadata=ServerMessageMetadata(related_request_id=related)),
                "the server withdrew its request")
        except McpError as exc:
            return exc.error

    def options(self, *args: Any, **kwargs: Any) -> InitializationOptions:
        """The upstream's identity and capabilities, reported as the proxy's own."""
        info = self.init.serverInfo
        return InitializationOptions(server_name=info.name, server_version=info.version,
                                     capabilities=self.init.capabilities,
                                     instructions=self.init.instructions)

    def _passthrough(self, result_type: type[Any]) -> Any:
        async def handle(request: Any) -> types.ServerResult:
            return types.ServerResult(await self._send(_clean(request), result_type))
        return handle

    async def _send(self, request: Any, result_type: type[Any],
                    progress: Any = None) -> Any:
        """``request`` sent upstream; the client cancelling it cancels it upstream too. An
        upstream that answers garbage gives an error saying so."""
        sent = time.monotonic()
        try:
            return await cancelling(self.upstream, lambda: self.upstream.send_request(
                types.ClientRequest(request), result_type, self.timeout,
                progress_callback=progress), "the client cancelled the request")
        except McpError as exc:
            garbled = self._garbled
            if exc.error.code == httpx.codes.REQUEST_TIMEOUT and garbled and garbled[0] >= sent:
                raise McpError(types.ErrorData(
                    code=exc.error.code, message=f"{exc.error.message} The upstream MCP "
                    f"server meanwhile sent something that is not JSON-RPC: {garbled[1]}"
                )) from exc
            raise
        except ValidationError as exc:  # a well-formed message whose result is not
            raise McpError(types.ErrorData(
                code=types.INTERNAL_ERROR, message=f"the upstream MCP server answered "
                f"{request.method} with a malformed result: {_described(exc)}")) from exc

    def _context(self, context: RequestContext[Any, Any, Any]) -> dict[str, Any]:
        """What a rule can read about where the call came from."""
        http = context.request  # a Starlette request on streamable HTTP, else None
        session_id = http.headers.get("mcp-session-id") if http is not None else None
        return {"framework": "mcp", "mcp_server": self.name,
                "mcp_client": client_name(context),
                "session_id": session_id or self._sessions.get(context.session, "")}

    async def _call_tool(self, request: types.CallToolRequest) -> types.ServerResult:
        context = self.server.request_context
        self._calling.append(context)
        try:
            return await self._guarded_call(context, request)
        finally:
            self._calling.remove(context)

    async def _guarded_call(self, context: RequestContext[Any, Any, Any],
                            request: types.CallToolRequest) -> types.ServerResult:
        name = request.params.name
        arguments = dict(request.params.arguments or {})
        outcome = await self._decide(context, name, arguments)
        if not outcome.run:
            return types.ServerResult(types.CallToolResult(
                isError=True, content=[types.TextContent(type="text",
                                                         text=outcome.message or "")]))
        params = request.params.model_copy(update={"arguments": outcome.tool_input})
        started = time.perf_counter()
        try:
            result = await self._send(types.CallToolRequest(params=params),
                                      types.CallToolResult, self._progress(context))
        except BaseException as exc:  # an error upstream, or the client cancelled
            self.guard.record(outcome.result, "error", started, error=exc)
            raise
        self.guard.record(outcome.result, "error" if result.isError else "ok", started,
                          output=_text(result))
        return types.ServerResult(result)

    async def _decide(self, context: RequestContext[Any, Any, Any], name: str,
                      arguments: dict[str, Any]) -> Outcome:
        """The guard's outcome for this call. With ``--wait`` the call is held until a
        person answers, reporting progress (and asking in the client) meanwhile; without
        it, ``--approve-in-client`` holds it only while the client's person is asked."""
        rule_context = self._context(context)
        asking = self.approve_in_client and can_ask(context)
        options = self.guard.options
        if options.wait_for_escalation:
            async with anyio.create_task_group() as helpers:
                def waiting(pending: GuardResult) -> None:
                    helpers.start_soon(report_waiting, context, pending,
                                       options.escalation_timeout)
                    if asking:  # its answer ends the wait
                        helpers.start_soon(ask_in_client, self.answers, context, pending,
                                           self.name, options.escalation_timeout)
                with watch_pending(waiting):
                    outcome = await self.guard.acheck(name, arguments, rule_context)
                helpers.cancel_scope.cancel()
            return outcome
        outcome = await self.guard.acheck(name, arguments, rule_context)
        if not asking or outcome.result.action != "escalate":
            return outcome
        answered = await ask_in_client(self.answers, context, outcome.result, self.name,
                                       options.escalation_timeout)
        if answered is None or answered.status == "pending":
            return outcome  # a normal escalation: the dashboard, CLI or API answers it
        if answered.status == "approved":  # the identical call uses the approval, once
            return await self.guard.acheck(name, arguments, rule_context)
        return self.guard.refused(outcome.result, answered, arguments)

    @property
    def answers(self) -> Client:
        """The client the person's answers in the MCP client are recorded with."""
        return self._answers or self.guard.client_for_call()

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


def _described(error: Exception) -> str:
    """One line about what was wrong with what the upstream sent."""
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']} "
                         f"({str(e.get('input'))[:200]!r})" for e in error.errors()[:3])
    return " ".join(str(error).split())[:500] or type(error).__name__


def _text(result: types.CallToolResult) -> str:
    """A tool result's text, for the decision log."""
    return "\n".join(c.text for c in result.content if isinstance(c, types.TextContent))


class ProxyOptions(TypedDict, total=False):
    """What both forms of the proxy take (``GuardedProxy``'s keywords)."""

    guard: ToolGuard | None
    name: str | None
    upstream_timeout: float
    approve_in_client: bool
    answers: Client | None


@asynccontextmanager
async def guarding(read: Any, write: Any, **options: Unpack[ProxyOptions]
                   ) -> AsyncIterator[GuardedProxy]:
    """The proxy for the upstream MCP server on ``read``/``write``, once it has answered
    ``initialize`` (the proxy mirrors that answer)."""
    relay = Relay()
    async with ClientSession(read, write, **relay.session_options()) as upstream:
        init = await upstream.initialize()
        relay.proxy = proxy = GuardedProxy(upstream, init, **options)
        yield proxy


class Relay:
    """The upstream session's callbacks, pointed at the proxy once it exists (the session
    must be made first: the proxy mirrors what it answers to initialize). The upstream is
    told the proxy's client can answer elicitation and sampling; each such request goes to
    the client whose call it serves, and one that cannot is answered "not supported"."""

    def __init__(self) -> None:
        self.proxy: GuardedProxy | None = None

    def session_options(self) -> dict[str, Any]:
        """The keyword arguments of the upstream ``ClientSession``."""
        return {"message_handler": self.message, "elicitation_callback": self.elicit,
                "sampling_callback": self.sample}

    async def message(self, message: Any) -> None:
        if self.proxy is not None:
            await self.proxy.upstream_message(message)

    async def elicit(self, context: Any, params: Any) -> Any:
        if self.proxy is None:
            return types.ErrorData(code=types.INVALID_REQUEST, message="not ready")
        return await self.proxy.ask_client(types.ElicitRequest(params=params),
                                           types.ElicitResult, "elicitation")

    async def sample(self, context: Any, params: Any) -> Any:
        if self.proxy is None:
            return types.ErrorData(code=types.INVALID_REQUEST, message="not ready")
        return await self.proxy.ask_client(types.CreateMessageRequest(params=params),
                                           types.CreateMessageResult, "sampling")
