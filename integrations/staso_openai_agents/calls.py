"""What the SDK tells us about one function-tool call: its context for rules and the
dashboard, and its arguments the way the tool will read them."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from agents.exceptions import AgentsException
from agents.tool_context import ToolContext
from agents.tracing import get_current_trace

from staso import EscalationPending, GuardBlocked, GuardResult
from staso.adapters import Outcome, ToolGuard, requested_by_in


def openai_agents_context(ctx: ToolContext[Any] | None) -> dict[str, Any]:
    """Agent name, tool call id, trace id and group (thread) id of a call, and who asked
    when the run's own context says (``Runner.run(..., context=...)``, see ``run_context``)."""
    context: dict[str, Any] = {"framework": "openai-agents"}
    if ctx is None:
        return context
    context.update(run_context(ctx))
    agent = getattr(ctx, "agent", None)
    if agent is not None and getattr(agent, "name", None):
        context["agent_name"] = str(agent.name)
    if getattr(ctx, "tool_call_id", None):
        context["tool_call_id"] = str(ctx.tool_call_id)
    trace = get_current_trace()
    trace_id = getattr(trace, "trace_id", None)
    if trace_id and trace_id != "no-op":  # "no-op" when tracing is off
        context["trace_id"] = str(trace_id)
    run_config = getattr(ctx, "run_config", None)
    if run_config is not None and getattr(run_config, "group_id", None):
        context["group_id"] = str(run_config.group_id)
    return context


def run_context(wrapper: Any) -> dict[str, Any]:
    """What the context object given to the run adds: ``requested_by``, when it is a dict
    with that key or an object (a dataclass, a pydantic model) with that attribute. The SDK
    hands that object to every tool and hook of the run; it never reaches the model."""
    return requested_by_in(getattr(wrapper, "context", None))


RAW = "arguments"  # the key under which text that is not a JSON object is guarded


def parse_arguments(arguments: str, schema: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """(the input to guard, whether it is the model's JSON object). Defaults from the schema
    are filled in: a rule on ``amount`` must see the default the tool will use. Text that is
    not a JSON object is guarded as ``{"arguments": text}``: a tool that takes raw text must
    not slip past the rules."""
    try:
        args = json.loads(arguments) if arguments else {}
    except ValueError:
        return {RAW: arguments}, False
    if not isinstance(args, dict):
        return {RAW: arguments}, False
    return with_defaults(args, schema), True


def with_defaults(args: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """``args`` with the JSON schema's defaults for the properties they leave out."""
    filled = dict(args)
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if isinstance(properties, Mapping):
        for name, spec in properties.items():
            if name not in filled and isinstance(spec, Mapping) and "default" in spec:
                filled[name] = spec["default"]
    return filled


def rewritten_arguments(tool_input: Mapping[str, Any], was_object: bool) -> str:
    """The arguments string to run the tool with, from a rewritten guard input."""
    if not was_object and isinstance(tool_input.get(RAW), str):
        return str(tool_input[RAW])
    return json.dumps(tool_input)


class GuardBlockedError(GuardBlocked, AgentsException):
    """``st.GuardBlocked`` that the SDK lets out of ``Runner.run`` as it is (it turns other
    exceptions raised by tools into ``UserError``)."""


class EscalationPendingError(EscalationPending, AgentsException):
    """``st.EscalationPending`` that the SDK lets out of ``Runner.run`` as it is."""


async def decide(guard: ToolGuard, tool_name: str, tool_input: dict[str, Any],
                 context: Mapping[str, Any], prior: GuardResult | None = None) -> Outcome:
    """``guard.acheck`` (or the mapping of a ``prior`` decision for this very call), with the
    raise options raising exceptions the SDK lets through."""
    try:
        if prior is not None:
            return guard.outcome(prior, tool_input)
        return await guard.acheck(tool_name, tool_input, context)
    except EscalationPending as exc:
        raise EscalationPendingError(exc.result) from None
    except GuardBlocked as exc:
        raise GuardBlockedError(exc.result) from None
