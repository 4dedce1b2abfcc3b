"""``StasoCallbackHandler``: guards tool calls of any LangChain runnable from its callbacks.

A callback sees a call just before the tool runs and can stop it by raising; it cannot change
the input the tool receives or the output the model reads. So block and escalate raise
``GuardBlocked`` / ``EscalationPending``, and a decision to rewrite the input raises too
(``GuardBlocked``) unless the tool is guarded by ``StasoMiddleware`` or ``guard_tools``, which
can rewrite it. For the full decision table (docs/integrations/langchain.md) use those.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler

from staso import GuardBlocked, GuardResult
from staso.adapters import CallKwargs, ToolGuard

from .calls import already_guarded, langchain_context, output_text

if TYPE_CHECKING:
    from typing_extensions import Unpack

    pass


def _cannot_rewrite(result: GuardResult) -> GuardResult:
    why = f"rule '{result.rule_name}': {result.reason}" if result.rule_name else result.reason
    return replace(result, action="block", reason=(
        f"staso would run this call with a rewritten input ({why}), which a callback handler "
        "cannot hand to the tool; guard the tool with StasoMiddleware or "
        "staso_langchain.guard_tools to run it rewritten"))


class StasoCallbackHandler(BaseCallbackHandler):
    """Add to ``config={"callbacks": [StasoCallbackHandler()]}`` to guard every tool call of
    the run. The tool does not run unless staso allows it."""

    raise_error = True  # an exception in on_tool_start must stop the tool
    # only tool events: in async runs every other event would cost a thread hop
    ignore_llm = ignore_chain = ignore_retriever = True  # (tool events come under "agent")
    ignore_chat_model = ignore_retry = ignore_custom_event = True

    def __init__(self, **options: Unpack[CallKwargs]) -> None:
        # a callback cannot answer the model: a block or a pending escalation stops the tool
        self.guard = ToolGuard.of(**options, on_block="raise", on_escalate="raise")
        self._running: dict[UUID, tuple[GuardResult, float]] = {}

    def on_tool_start(self, serialized: dict[str, Any] | None, input_str: str, *,
                      run_id: UUID, parent_run_id: UUID | None = None,
                      tags: list[str] | None = None, metadata: dict[str, Any] | None = None,
                      inputs: dict[str, Any] | None = None, **kwargs: Any) -> None:
        name = (serialized or {}).get("name") or kwargs.get("name") or "unknown_tool"
        tool_call_id = kwargs.get("tool_call_id")
        if already_guarded(name, tool_call_id):
            return  # StasoMiddleware or guard_tools guards this call and may rewrite it
        tool_input = inputs if isinstance(inputs, dict) else {"input": input_str}
        context = langchain_context({"metadata": metadata}, tool_call_id=tool_call_id,
                                    parent_run_id=parent_run_id)
        outcome = self.guard.check(name, tool_input, context)  # raises on block / escalate
        if outcome.result.action == "modify":
            self.guard.record(outcome.result, "not_run", time.perf_counter())
            raise GuardBlocked(_cannot_rewrite(outcome.result))
        self._running[run_id] = (outcome.result, time.perf_counter())

    def on_tool_end(self, output: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if (running := self._running.pop(run_id, None)) is not None:
            self.guard.record(running[0], "ok", running[1], output=output_text(output))

    def on_tool_error(self, error: BaseException, *, run_id: UUID, **kwargs: Any) -> None:
        if (running := self._running.pop(run_id, None)) is not None:
            self.guard.record(running[0], "error", running[1], error=error)
