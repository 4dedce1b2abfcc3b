"""``StasoMiddleware``: guards every tool call of a ``langchain.agents.create_agent`` agent,
with the whole decision table of docs/integrations/langchain.md, for ``invoke`` and
``ainvoke``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from langchain.agents.middleware import AgentMiddleware

from staso.adapters import GuardKwargs, Outcome, ToolGuard

from .calls import (
    already_guarded,
    guard_input,
    guarding,
    langchain_context,
    record_output,
    tool_args,
    tool_message,
)

if TYPE_CHECKING:
    from langgraph.prebuilt.tool_node import ToolCallRequest
    from typing_extensions import Unpack



class StasoMiddleware(AgentMiddleware):
    """Ask staso before each tool runs.

    allow runs the tool; modify runs it with the rewritten arguments; block and a pending
    escalation answer the model with a ``ToolMessage`` naming the rule, the reason and the
    escalation id (or raise, with ``on_block="raise"`` / ``on_escalate="raise"``);
    ``wait_for_escalation=True`` holds the call until a person answers (``ainvoke`` awaits,
    so the event loop stays free).
    """

    def __init__(self, **options: Unpack[GuardKwargs]) -> None:
        super().__init__()
        self.guard = ToolGuard.of(**options)

    @staticmethod
    def _call(request: ToolCallRequest) -> tuple[str, str | None, dict[str, Any]] | None:
        """(name, id, guard input), or None when the call is not staso's to guard here: an
        unknown tool (the tool node answers that) or one an outer staso layer guards."""
        call = request.tool_call
        name, call_id = call["name"], call.get("id")
        if request.tool is None or already_guarded(name, call_id):
            return None
        return name, call_id, guard_input(request.tool, call.get("args") or {})

    @staticmethod
    def _context(request: ToolCallRequest, call_id: str | None) -> dict[str, Any]:
        return langchain_context(getattr(request.runtime, "config", None),
                                 tool_call_id=call_id)

    @staticmethod
    def _allowed(request: ToolCallRequest, outcome: Outcome,
                 visible: dict[str, Any]) -> ToolCallRequest:
        if outcome.result.action != "modify":
            return request
        call = request.tool_call
        return request.override(tool_call={**call, "args": tool_args(call["args"], outcome,
                                                                      visible)})

    def wrap_tool_call(self, request: ToolCallRequest,
                       handler: Callable[[ToolCallRequest], Any]) -> Any:
        prepared = self._call(request)
        if prepared is None:
            return handler(request)
        name, call_id, visible = prepared
        outcome = self.guard.check(name, visible, self._context(request, call_id))
        if not outcome.run:
            return tool_message(outcome, name, call_id or "")
        with guarding(name, call_id), \
                self.guard.execution(outcome.result) as run:
            response = handler(self._allowed(request, outcome, visible))
            record_output(run, response)
        return response

    async def awrap_tool_call(self, request: ToolCallRequest,
                              handler: Callable[[ToolCallRequest], Awaitable[Any]]) -> Any:
        prepared = self._call(request)
        if prepared is None:
            return await handler(request)
        name, call_id, visible = prepared
        outcome = await self.guard.acheck(name, visible, self._context(request, call_id))
        if not outcome.run:
            return tool_message(outcome, name, call_id or "")
        with guarding(name, call_id), \
                self.guard.execution(outcome.result) as run:
            response = await handler(self._allowed(request, outcome, visible))
            record_output(run, response)
        return response
