"""The proxy's connection to the upstream MCP server, one per client.

Each client of the proxy (the one client on stdio, each session on streamable HTTP) has its
own upstream connection, so what the upstream says in that connection reaches that client
only: its notifications (log messages, list changes), its questions (elicitation, sampling)
about the call it is serving. One client that stops reading, or leaves a question open,
holds up its own connection, never another client's.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import anyio
import httpx
import mcp.types as types
from mcp import ClientSession
from mcp.shared.context import RequestContext
from mcp.shared.exceptions import McpError
from mcp.shared.message import ServerMessageMetadata
from pydantic import ValidationError

from .cancelling import cancelling

log = logging.getLogger("staso.mcp")

NOTIFY_TIMEOUT = 5.0  # seconds a notification may wait for a client that does not read
_GONE = (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream)


def clean(message: Any) -> Any:
    """An incoming request or notification as a new outgoing one: the SDK keeps "jsonrpc"
    and "id" as extras on incoming models, and sending them again fails."""
    return type(message).model_validate(message.model_dump(
        by_alias=True, exclude_none=True, exclude={"jsonrpc", "id"}))


class UpstreamSession(ClientSession):
    """The SDK's client session, answering the server's requests each in a task of its own
    (the SDK answers them inside its receive loop: a question left open would hold up every
    answer the server sends meanwhile), and telling when the server has gone."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.gone = anyio.Event()

    async def _received_request(self, responder: Any) -> None:
        async def answer() -> None:
            try:
                await ClientSession._received_request(self, responder)
            except Exception:  # as the SDK's loop would: logged, the session goes on
                log.warning("staso: the upstream's request could not be answered",
                            exc_info=True)
        self._task_group.start_soon(answer)

    async def _receive_loop(self) -> None:
        try:
            await super()._receive_loop()
        finally:
            self.gone.set()


class Upstream:
    """One connection to the upstream server, serving one client: what it relays to that
    client, the client's calls in flight, and what went wrong with the server."""

    def __init__(self, timeout: timedelta) -> None:
        self.timeout = timeout
        self.session: UpstreamSession | None = None
        self.client: Any = None  # the client's ServerSession, once it has spoken
        self.calling: list[RequestContext[Any, Any, Any]] = []  # its tools/call in flight
        self.garbled: tuple[float, str] | None = None  # when and what, the last garbage

    @property
    def gone(self) -> bool:
        return self.session is None or self.session.gone.is_set()

    def session_options(self) -> dict[str, Any]:
        """The keyword arguments of the upstream ``ClientSession``: the server is told this
        client can answer elicitation and sampling; a client that cannot is said to be
        unable when the server asks."""
        return {"message_handler": self._message, "elicitation_callback": self._elicit,
                "sampling_callback": self._sample}

    async def _message(self, message: Any) -> None:
        """The server's notifications (list changed, logging, resources updated), sent on
        to the client as they came. (Progress of a call goes with the call.)"""
        if isinstance(message, Exception):  # a line that is not JSON-RPC: noted for errors
            self.garbled = (time.monotonic(), described(message))
            return
        if not isinstance(message, types.ServerNotification) or \
                isinstance(message.root, types.ProgressNotification) or self.client is None:
            return
        # a client that does not read misses it; one that has gone, too
        with anyio.move_on_after(NOTIFY_TIMEOUT), contextlib.suppress(Exception):
            await self.client.send_notification(types.ServerNotification(clean(message.root)))

    async def _elicit(self, context: Any, params: Any) -> Any:
        return await self._ask(types.ElicitRequest(params=params), types.ElicitResult,
                               "elicitation")

    async def _sample(self, context: Any, params: Any) -> Any:
        return await self._ask(types.CreateMessageRequest(params=params),
                               types.CreateMessageResult, "sampling")

    async def _ask(self, request: Any, result_type: type[Any], capability: str) -> Any:
        """The server's request to the client, on the stream of the call it serves; the
        client's answer or error, as the client gave it, within the upstream timeout."""
        client = self.client
        params = client.client_params if client is not None else None
        if params is None or getattr(params.capabilities, capability, None) is None:
            return types.ErrorData(code=types.INVALID_REQUEST,
                                   message=f"the client does not support {capability}")
        related = self.calling[-1].request_id if self.calling else None
        with anyio.move_on_after(self.timeout.total_seconds()):
            try:
                return await cancelling(client, lambda: client.send_request(
                    types.ServerRequest(request), result_type,
                    metadata=ServerMessageMetadata(related_request_id=related)),
                    "the server withdrew its request")
            except McpError as exc:
                return exc.error
        return types.ErrorData(code=httpx.codes.REQUEST_TIMEOUT,
                               message=f"the client did not answer the {capability} request "
                                       "in time")

    async def send(self, request: Any, result_type: type[Any], progress: Any = None) -> Any:
        """``request`` sent to the server; the client cancelling it cancels it there too.
        A server that answers garbage, or has gone, gives an error saying so."""
        session = self.session
        if session is None or session.gone.is_set():
            raise _gone()
        sent = time.monotonic()
        try:
            return await cancelling(session, lambda: session.send_request(
                types.ClientRequest(request), result_type, self.timeout,
                progress_callback=progress), "the client cancelled the request")
        except McpError as exc:
            garbled = self.garbled
            if exc.error.code == httpx.codes.REQUEST_TIMEOUT and garbled and garbled[0] >= sent:
                raise McpError(types.ErrorData(
                    code=exc.error.code, message=f"{exc.error.message} The upstream MCP "
                    f"server meanwhile sent something that is not JSON-RPC: {garbled[1]}"
                )) from exc
            if exc.error.code == types.CONNECTION_CLOSED:
                raise _gone() from exc
            raise
        except _GONE as exc:
            raise _gone() from exc
        except ValidationError as exc:  # a well-formed message whose result is not
            raise McpError(types.ErrorData(
                code=types.INTERNAL_ERROR, message=f"the upstream MCP server answered "
                f"{request.method} with a malformed result: {described(exc)}")) from exc


def _gone() -> McpError:
    return McpError(types.ErrorData(
        code=types.CONNECTION_CLOSED, message="the upstream MCP server closed the "
        "connection (it exited or dropped it); nothing was sent to it"))


@asynccontextmanager
async def connected(read: Any, write: Any, upstream: Upstream
                    ) -> AsyncIterator[types.InitializeResult]:
    """``upstream`` connected over ``read``/``write``: its session initialized; what the
    server answered to ``initialize``."""
    async with UpstreamSession(read, write, **upstream.session_options()) as session:
        init = await session.initialize()
        upstream.session = session
        yield init


def described(error: BaseException) -> str:
    """One line about what was wrong with what the upstream sent (or about the first error
    under task-group wrappers)."""
    while getattr(error, "exceptions", None):
        error = error.exceptions[0]  # type: ignore[attr-defined]
    if isinstance(error, ValidationError):
        return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'message'}: {e['msg']} "
                         f"({str(e.get('input'))[:200]!r})" for e in error.errors()[:3])
    return " ".join(str(error).split())[:500] or type(error).__name__
