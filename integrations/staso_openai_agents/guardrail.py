"""``staso_tool_guardrail()``: staso through the SDK's own tool input guardrails.

A guardrail may let a call through, reject it with a message the model reads, or stop the
run (``ToolGuardrailTripwireTriggered``). It cannot rewrite arguments, so a decision to
rewrite is refused too, with a message that says to use ``guard_tools`` / ``guard_agent``.
A tool that those already guard is left to them: one call, one decision.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from agents.tool_guardrails import (
    ToolGuardrailFunctionOutput,
    ToolInputGuardrail,
    ToolInputGuardrailData,
)

from staso.adapters import CallKwargs, OnBlock, ToolGuard

from .calls import openai_agents_context, parse_arguments

if TYPE_CHECKING:
    from typing_extensions import Unpack

    pass


def _tool_named(agent: Any, tool_name: str) -> Any:
    """The agent's tool being called (for its schema, and whether guard_tools guards it)."""
    return next((t for t in getattr(agent, "tools", None) or []
                 if getattr(t, "name", None) == tool_name), None)


def staso_tool_guardrail(*, on_block: OnBlock = "output", on_escalate: OnBlock = "output",
                         **options: Unpack[CallKwargs]) -> ToolInputGuardrail[Any]:
    """A tool input guardrail: add it to a tool's ``tool_input_guardrails``.

    allow → the tool runs; block / pending approval / rewrite → the model reads why and the
    tool does not run (``on_block="raise"`` / ``on_escalate="raise"`` stop the run instead).
    """
    guard = ToolGuard.of(**options)  # outputs: the guardrail chooses reject or raise

    async def staso_guard(data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        ctx = data.context
        tool = _tool_named(data.agent, ctx.tool_name)
        if hasattr(tool, "staso_original"):
            return ToolGuardrailFunctionOutput.allow({"staso": "guarded by guard_tools"})
        tool_input, _ = parse_arguments(ctx.tool_arguments,
                                        getattr(tool, "params_json_schema", None) or {})
        outcome = await guard.acheck(ctx.tool_name, tool_input, openai_agents_context(ctx))
        result = outcome.result
        info = {"staso": result.to_dict()}
        if result.action == "allow":
            return ToolGuardrailFunctionOutput.allow(info)
        raises = on_escalate if result.action == "escalate" else on_block
        if raises == "raise":
            return ToolGuardrailFunctionOutput.raise_exception(info)
        if outcome.run:  # a rewrite: the decision log must not say the tool ran
            guard.record(result, "not_run", time.perf_counter())
        message = outcome.message or (
            f"[staso] The call to '{ctx.tool_name}' would run with a rewritten input "
            f"({result.reason}), which a guardrail cannot pass on; the tool was not run. "
            "Guard the tool with staso_openai_agents.guard_tools to run it rewritten.")
        return ToolGuardrailFunctionOutput.reject_content(message, info)

    return ToolInputGuardrail(guardrail_function=staso_guard, name="staso")

