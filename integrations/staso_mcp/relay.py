"""The stdio proxy: a JSON-RPC relay between the client and the server it starts.

The relay reads of each message only what it must. A ``tools/call`` is held and decided
first (``CallGuard``), then passed on with what was decided (the rewritten arguments for a
modify) or answered by the relay itself (block, pending). Everything the client sends is
written anew from what the relay read (ASCII JSON, one line), so the server reads the very
message the relay read, whatever its own parser makes of stray bytes, encodings or
duplicate keys; what the server sends passes to the client as it came. Ids, progress tokens
and cancellations stay the client's own, so they need no translation; the client's own
``initialize`` (its capabilities, roots, elicitation, sampling) reaches the server, and the
server's answer reaches the client.

Why not the SDK's sessions on both sides, as the HTTP form has: a session pair validates
and rebuilds every message twice, which on a 2-core machine costs about 1.5 ms of CPU a
call, more than the 1 ms a proxy may add; this relay adds a fraction of that. The SDK's
types still build and check what the relay says itself (results, questions, progress).
The relay also answers what the SDK's server leaves unanswered: a line that is not JSON
gets a parse error, a batch an error (never a call run unguarded inside it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx
import mcp.types as types
from anyio.abc import TaskGroup
from mcp.shared.exceptions import McpError
from pydantic import ValidationError

from staso import GuardResult
from staso.adapters import Outcome, requested_by_in

from .calls import CallGuard, refusal
from .upstream import described

log = logging.getLogger("staso.mcp")

CHECK_EVERY = 0.2  # seconds between two looks for requests the server has not answered
GONE_GRACE = 0.5  # seconds between the server's exit and the proxy's (errors owed are sent)
MAX_LINE = 64 << 20  # bytes in one message from the server
NOTICE_TIMEOUT = 5.0  # seconds a cancellation notice may take
OUTBOX = 16 << 20  # bytes that may wait for a server that is slow to read
_WITHDRAWN = 1_000  # withdrawn questions whose late answers are recognised


def _key(request_id: Any) -> str:
    """A request id as a dict key: 1 and "1" are different ids."""
    return json.dumps(request_id)


def _disguised_call(method: str) -> bool:
    """A method that is not ``tools/call`` but reads like it (``Tools/Call``, ``tools.call``
    …): refused, never passed on, in case a server is lenient about names."""
    return method != "tools/call" and re.sub(r"[^a-z]", "", method.lower()) == "toolscall"


def _dump(model: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    return dumped


@dataclass
class _Pending:
    """A request of the client's, passed to the server and not answered yet."""

    request_id: Any
    method: str
    sent: float = field(default_factory=time.monotonic)
    decision: GuardResult | None = None  # a tools/call's decision, for its execution record
    started: float = field(default_factory=time.perf_counter)


@dataclass
class _Question:
    """A request of the relay's own to the client, waiting for its answer."""

    answered: anyio.Event = field(default_factory=anyio.Event)
    reply: dict[str, Any] = field(default_factory=dict)


class StdioRelay:
    """One client (on ``client_in``/``client_out``) and the server it reaches (on
    ``server_in``/``server_out``), with the calls between them guarded by ``calls``."""

    def __init__(self, client_in: Any, client_out: Any, server_in: asyncio.StreamWriter,
                 server_out: asyncio.StreamReader, calls: CallGuard, *, name: str | None = None,
                 upstream_timeout: float = 300.0) -> None:
        self.client_in, self.client_out = client_in, client_out
        self.server_in, self.server_out = server_in, server_out
        self.calls, self.guard = calls, calls.guard
        self.name, self.timeout = name, upstream_timeout
        self.server_name = name or ""  # learned from the server's answer to initialize
        self.client_name, self.client_can_elicit = "", False
        self.session_id = "mcp_" + secrets.token_hex(8)
        self.pending: dict[str, _Pending] = {}
        self.deciding: dict[str, anyio.CancelScope] = {}  # tools/call being decided
        self.questions: dict[str, _Question] = {}  # the relay's own requests to the client
        self.withdrawn: OrderedDict[str, None] = OrderedDict()  # questions answered elsewhere
        self.garbled: tuple[float, str] | None = None  # when and what, the server's last
        self.gone = False
        self._writing = anyio.Lock()
        self._group: TaskGroup | None = None

    async def run(self) -> None:
        """Relay until the client closes its side (then what is under way may finish,
        within the upstream timeout), or the server exits."""
        async with anyio.create_task_group() as group:
            self._group = group
            group.start_soon(self._from_server)
            group.start_soon(self._watch_deadlines)
            while True:
                try:
                    line = await anext(self.client_in)
                except StopAsyncIteration:
                    break
                except ValueError:  # over the reader's limit
                    await self._error(None, types.INVALID_REQUEST,
                                      f"a message over {MAX_LINE} bytes")
                    continue
                if line.strip():
                    await self._from_client(line)
            with anyio.move_on_after(self.timeout):
                while self.pending or self.deciding:
                    await anyio.sleep(CHECK_EVERY)
            group.cancel_scope.cancel()

    # -- the client's messages -------------------------------------------------------------
    async def _from_client(self, line: bytes) -> None:
        """One message of the client's. Whatever is passed on is written anew from what the
        relay read (ASCII JSON on one line): the server must read the very message the relay
        read, whatever its own parser makes of odd bytes (a bare CR ends a line for some),
        encodings or duplicate keys."""
        try:
            message = json.loads(line.decode("utf-8"))
        except (ValueError, RecursionError) as exc:  # not UTF-8 JSON, or nested past parsing
            await self._error(None, types.PARSE_ERROR, f"Parse error: {exc}")
            return
        if not isinstance(message, dict):
            await self._error(None, types.INVALID_REQUEST, "one JSON-RPC message object per "
                              "line (staso mcp proxy takes no batches)")
            return
        if "method" not in message:  # an answer, to the server's request or to the relay's
            key = _key(message.get("id"))
            question = self.questions.pop(key, None)
            if question is not None:
                question.reply = message
                question.answered.set()
            elif key not in self.withdrawn:  # (a late answer to the relay stays here)
                await self._to_server(message)
            return
        method = message["method"]
        if not isinstance(method, str) or _disguised_call(method) or (
                method == "tools/call" and "id" not in message):
            if "id" in message:  # (a call sent as a notification has no one to tell)
                await self._error(message["id"], types.METHOD_NOT_FOUND,
                                  f"Method not found: {method!r}")
            return
        if "id" not in message:  # a notification
            if method == "notifications/cancelled":
                self._cancel_deciding(message)
            await self._to_server(message)
            return
        key = _key(message["id"])
        if key in self.deciding or key in self.pending:
            await self._error(message["id"], types.INVALID_REQUEST,
                              f"request id {message['id']!r} is already in use by a request "
                              "under way")
            return
        if method == "tools/call":
            # registered now, before the next line is read: a cancellation right behind
            # the call (in the same write) must find it
            scope = self.deciding[key] = anyio.CancelScope()
            assert self._group is not None
            self._group.start_soon(self._call, message, scope)
            return
        if method == "initialize":
            self._remember_client(message.get("params"))
        self.pending[key] = _Pending(message["id"], method)
        await self._to_server(message)

    def _remember_client(self, params: Any) -> None:
        """Who the client is and whether it can show a form, from its initialize."""
        if not isinstance(params, dict):
            return
        info, capabilities = params.get("clientInfo"), params.get("capabilities")
        if isinstance(info, dict) and isinstance(info.get("name"), str):
            self.client_name = info["name"]
        self.client_can_elicit = isinstance(capabilities, dict) and \
            isinstance(capabilities.get("elicitation"), dict)

    def _cancel_deciding(self, message: dict[str, Any]) -> None:
        """The client gave up a call still being decided: it is never passed on."""
        params = message.get("params")
        if isinstance(params, dict):
            scope = self.deciding.get(_key(params.get("requestId")))
            if scope is not None:
                scope.cancel()

    async def _call(self, message: dict[str, Any], scope: anyio.CancelScope) -> None:
        """One ``tools/call``: decided, then passed on or answered here (``scope``: the
        client's cancellation)."""
        request_id, key = message["id"], _key(message["id"])
        outcome: Outcome | None = None
        try:
            with scope:
                outcome = await self._decide(message)
        finally:
            if self.deciding.get(key) is scope:
                del self.deciding[key]
        if scope.cancel_called or outcome is None:
            return  # cancelled by the client (it expects no answer), or answered already
        if not outcome.run:
            await self._to_client({"jsonrpc": "2.0", "id": request_id,
                                   "result": _dump(refusal(outcome))})
            return
        params = message["params"]
        message = {**message, "params": {**params, "arguments": outcome.tool_input}}
        self.pending[key] = _Pending(request_id, "tools/call", decision=outcome.result)
        await self._to_server(message)

    async def _decide(self, message: dict[str, Any]) -> Outcome | None:
        """The guard's outcome for a call, or None when the call was answered with an error
        (malformed, or staso could not decide)."""
        request_id, params = message["id"], message.get("params")
        if not isinstance(params, dict) or not isinstance(params.get("name"), str):
            await self._error(request_id, types.INVALID_PARAMS, "tools/call needs params.name")
            return None
        arguments = params.get("arguments")
        arguments = {} if arguments is None else arguments
        if not isinstance(arguments, dict):
            await self._error(request_id, types.INVALID_PARAMS,
                              "tools/call params.arguments must be an object")
            return None
        meta = params.get("_meta")
        link = RelayLink(self, meta.get("progressToken") if isinstance(meta, dict) else None)
        try:
            return await self.calls.decide(link, self, self.server_name, params["name"],
                                           arguments, self._context(meta))
        except Exception as exc:  # never leave the client without an answer
            log.exception("staso: tools/call %r could not be decided", params["name"])
            await self._error(request_id, types.INTERNAL_ERROR,
                              f"staso could not decide this call: {described(exc)}")
            return None

    def _context(self, meta: Any = None) -> dict[str, Any]:
        """What a rule can read about where the call came from, and who asked for it when
        the client says so in the call's ``_meta.requested_by``."""
        return {"framework": "mcp", "mcp_server": self.server_name,
                "mcp_client": self.client_name, "session_id": self.session_id,
                **requested_by_in(meta)}

    # -- the server's messages -------------------------------------------------------------
    async def _from_server(self) -> None:
        while True:
            try:
                line = await self.server_out.readline()
            except ValueError:  # over the reader's limit
                self.garbled = (time.monotonic(), f"a message over {MAX_LINE} bytes")
                break
            except OSError:
                break
            if not line:
                break
            if line.strip():
                await self._server_message(line)
        await self._server_gone()

    async def _server_message(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except (ValueError, RecursionError) as exc:  # not JSON, or nested past parsing
            self.garbled = (time.monotonic(), f"{line.rstrip()[:200]!r} ({exc})")
            return
        if not isinstance(message, dict):
            self.garbled = (time.monotonic(), f"{line.rstrip()[:200]!r} (not a message object)")
            return
        if "method" not in message and "id" in message:  # an answer to a client's request
            pending = self.pending.pop(_key(message["id"]), None)
            if pending is None:
                self.garbled = (time.monotonic(), "an answer to a request never sent "
                                f"(id {message['id']!r}), or sent after its timeout")
                return
            if pending.method == "initialize":
                self._remember_server(message.get("result"))
            if pending.method == "tools/call":
                line = self._finish_call(pending, message, line)
        await self._to_client_line(line)  # answers, and the server's requests and notices

    def _remember_server(self, result: Any) -> None:
        if self.name is None and isinstance(result, dict):
            info = result.get("serverInfo")
            if isinstance(info, dict) and isinstance(info.get("name"), str):
                self.server_name = info["name"]

    def _finish_call(self, pending: _Pending, message: dict[str, Any], line: bytes) -> bytes:
        """Record how a passed-on call went; a result of the wrong shape becomes an error
        saying so (the client would reject it less clearly)."""
        error = message.get("error")
        if error is not None:
            self._failed(pending, McpError(types.ErrorData.model_validate(
                error)) if isinstance(error, dict) and "code" in error else None)
            return line
        try:
            result = types.CallToolResult.model_validate(message.get("result"))
        except ValidationError as exc:
            why = (f"the upstream MCP server answered tools/call with a malformed result: "
                   f"{described(exc)}")
            self._failed(pending, McpError(types.ErrorData(
                code=types.INTERNAL_ERROR, message=why)))
            return json.dumps({"jsonrpc": "2.0", "id": pending.request_id, "error": {
                "code": types.INTERNAL_ERROR, "message": why}}).encode() + b"\n"
        if pending.decision is not None:
            self.calls.record_result(pending.decision, result, pending.started)
        return line

    def _failed(self, pending: _Pending, error: BaseException | None) -> None:
        """Note on a passed-on call's decision that it failed, and how."""
        if pending.decision is not None:
            self.guard.record(pending.decision, "error", pending.started, error=error)

    async def _server_gone(self) -> None:
        """The server exited: what it owed is answered with an error, then the proxy ends
        (as the server alone would: the client sees it and can start it again)."""
        self.gone = True
        unanswered = ("the upstream MCP server closed the connection before answering (it "
                      "exited or dropped it); the request may or may not have been carried out")
        for key in list(self.pending):
            pending = self.pending.pop(key)
            self._failed(pending, ConnectionError(unanswered))
            await self._error(pending.request_id, types.CONNECTION_CLOSED, unanswered)
        await anyio.sleep(GONE_GRACE)
        if self._group is not None:
            self._group.cancel_scope.cancel()

    async def _watch_deadlines(self) -> None:
        """A request the server does not answer in time gets an error (and the server a
        cancellation), never a hang."""
        while True:
            await anyio.sleep(CHECK_EVERY)
            now = time.monotonic()
            for key, pending in list(self.pending.items()):
                if now - pending.sent < self.timeout or self.pending.pop(key, None) is None:
                    continue
                message = (f"Timed out after {self.timeout:g} s waiting for the upstream "
                           f"MCP server's answer to {pending.method}.")
                garbled = self.garbled
                if garbled is not None and garbled[0] >= pending.sent:
                    message += (" The server meanwhile sent something that is not an answer "
                                f"in JSON-RPC: {garbled[1]}")
                self._failed(pending, TimeoutError(message))
                await self._error(pending.request_id, httpx.codes.REQUEST_TIMEOUT, message)
                await self._to_server({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                       "params": {"requestId": pending.request_id,
                                                  "reason": "timed out"}})

    # -- writing ---------------------------------------------------------------------------
    async def _to_server(self, message: dict[str, Any]) -> None:
        """``message`` to the server, written anew (ASCII JSON, one line). It is buffered,
        never awaited: a server that stops reading holds up no answer the relay can give
        itself, and no timeout; past ``OUTBOX`` bytes waiting, or once the server has gone,
        a request gets an error instead."""
        writer = self.server_in
        if self.gone or writer.is_closing():
            why = "the upstream MCP server has gone; nothing was sent to it"
        elif writer.transport.get_write_buffer_size() > OUTBOX:
            why = (f"the upstream MCP server is not reading its input ({OUTBOX} bytes wait "
                   "for it); nothing was sent to it")
        else:
            writer.write(json.dumps(message).encode() + b"\n")
            return
        if "id" in message and "method" in message:
            pending = self.pending.pop(_key(message["id"]), None)
            if pending is not None:
                self._failed(pending, ConnectionError(why))
            await self._error(message["id"], types.CONNECTION_CLOSED, why)

    async def _to_client(self, message: dict[str, Any]) -> None:
        await self._to_client_line(json.dumps(message).encode() + b"\n")

    async def _to_client_line(self, line: bytes) -> None:
        async with self._writing:  # one message at a time: a pipe write may be partial
            await self.client_out.write(line if line.endswith(b"\n") else line + b"\n")
            await self.client_out.flush()

    async def _error(self, request_id: Any, code: int, message: str) -> None:
        await self._to_client({"jsonrpc": "2.0", "id": request_id,
                               "error": {"code": code, "message": message}})

    async def ask(self, request: Any) -> dict[str, Any]:
        """A request of the relay's own to the client (an id no one else uses); its answer.
        Cancelled, the client is told to stop asking."""
        request_id = "staso-" + secrets.token_urlsafe(16)
        question = self.questions[_key(request_id)] = _Question()
        try:
            await self._to_client({"jsonrpc": "2.0", "id": request_id, **_dump(request)})
            await question.answered.wait()
        except anyio.get_cancelled_exc_class():
            self.withdrawn[_key(request_id)] = None  # its late answer stays here
            while len(self.withdrawn) > _WITHDRAWN:
                self.withdrawn.popitem(last=False)
            with anyio.CancelScope(shield=True), anyio.move_on_after(NOTICE_TIMEOUT):
                await self._to_client({"jsonrpc": "2.0", "method": "notifications/cancelled",
                                       "params": {"requestId": request_id,
                                                  "reason": "answered elsewhere"}})
            raise
        finally:
            self.questions.pop(_key(request_id), None)
        return question.reply


class RelayLink:
    """The client of one call, through the relay (the stdio form)."""

    def __init__(self, relay: StdioRelay, token: Any) -> None:
        self.relay, self.token = relay, token
        self.name = relay.client_name

    def can_ask(self) -> bool:
        return self.relay.client_can_elicit

    async def elicit(self, message: str, schema: dict[str, Any]) -> types.ElicitResult:
        reply = await self.relay.ask(types.ElicitRequest(params=types.ElicitRequestFormParams(
            message=message, requestedSchema=schema)))
        if "error" in reply:
            raise McpError(types.ErrorData.model_validate(reply["error"]))
        return types.ElicitResult.model_validate(reply.get("result"))

    async def progress(self, done: float, total: float | None, message: str) -> bool:
        if self.token is None:
            return False
        notice = types.ProgressNotification(params=types.ProgressNotificationParams(
            progressToken=self.token, progress=done, total=total, message=message))
        await self.relay._to_client({"jsonrpc": "2.0", **_dump(notice)})
        return True
