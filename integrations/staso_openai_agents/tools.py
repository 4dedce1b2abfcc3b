"""``guard_tools`` / ``guard_agent``: function tools that ask staso before they run.

The SDK calls ``FunctionTool.on_invoke_tool(ctx, arguments_json)``; a guarded copy's invoker
decides first, then runs the tool's own invoker with the decided arguments, or returns the
refusal as the tool output the model reads. An agent's MCP tools are function tools the SDK
makes every turn; ``guard_agent`` wraps them the same way as they are made (``mcp_tools``).

A tool's ``timeout_seconds`` bounds the tool's own run, not the wait for a person: the
guarded copy applies it (with the tool's ``timeout_behavior``) around the tool alone, and
``escalation_timeout`` bounds the wait. When the wait ends without an answer the call is
refused and the escalation is marked timed out, so the tool never runs after staso gave up.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from agents import Agent
from agents.tool import FunctionTool, invoke_function_tool
from agents.tool_context import ToolContext

from staso import GuardResult
from staso.adapters import GuardKwargs, ToolGuard

from .calls import decide, openai_agents_context, parse_arguments, rewritten_arguments
from .mcp_tools import mcp_identity, wrap_mcp_tools

if TYPE_CHECKING:
    from typing_extensions import Unpack

    pass

log = logging.getLogger("staso")
Invoker = Callable[[ToolContext[Any], str], Awaitable[Any]]


def _body(tool: FunctionTool) -> Invoker:
    """The tool's own invoker, under its own timeout when it has one."""
    if tool.timeout_seconds is None:
        return tool.on_invoke_tool
    timed = copy.copy(tool)

    async def run(ctx: ToolContext[Any], arguments: str) -> Any:
        return await invoke_function_tool(function_tool=timed, context=ctx, arguments=arguments)
    return run


def _guarded(tool: FunctionTool, guard: ToolGuard,
             decided: dict[str, GuardResult] | None = None, *, tool_name: str | None = None,
             context: Mapping[str, Any] | None = None) -> FunctionTool:
    """A copy whose invoker guards first. ``decided`` holds decisions already made for a
    call id (by ``StasoApprovals``' approval check), so no call is decided twice.
    ``tool_name`` (else the name the model called) and ``context`` are what rules see."""
    original: FunctionTool = getattr(tool, "staso_original", tool)  # re-guarding replaces
    body = _body(original)

    async def on_invoke_tool(ctx: ToolContext[Any], arguments: str) -> Any:
        tool_input, was_object = parse_arguments(arguments, original.params_json_schema)
        name = tool_name or getattr(ctx, "tool_name", None) or original.name
        prior = decided.pop(ctx.tool_call_id, None) if decided is not None else None
        outcome = await decide(guard, name, tool_input,
                               {**openai_agents_context(ctx), **(context or {})}, prior)
        if not outcome.run:
            return outcome.message
        if outcome.result.action == "modify" and outcome.tool_input is not None:
            arguments = rewritten_arguments(outcome.tool_input, was_object)
        with guard.execution(outcome.result) as run:
            run.output = await body(ctx, arguments)
        return run.output

    guarded = copy.copy(original)
    guarded.on_invoke_tool = on_invoke_tool
    guarded.timeout_seconds = None  # the body keeps its timeout; the wait has its own
    setattr(guarded, "staso_original", original)  # noqa: B010 - marks it for the guardrail
    return guarded


def guard_tools(tools: Iterable[Any], **options: Unpack[GuardKwargs]) -> list[Any]:
    """Guarded copies of the function tools in ``tools`` (the originals are untouched).
    Hosted tools (web search, file search, code interpreter…) run on OpenAI's side where no
    guard can reach; they are passed through, with a warning."""
    return _guard_list(tools, ToolGuard.of(**options))


def _guard_list(tools: Iterable[Any], guard: ToolGuard,
                decided: dict[str, GuardResult] | None = None) -> list[Any]:
    guarded = []
    for tool in tools:
        if isinstance(tool, FunctionTool):
            guarded.append(_guarded(tool, guard, decided))
        else:
            log.warning("staso: %s %r is not a function tool; it runs where staso cannot "
                        "guard it", type(tool).__name__, getattr(tool, "name", tool))
            guarded.append(tool)
    return guarded


def _guarded_mcp(tool: FunctionTool, guard: ToolGuard) -> FunctionTool:
    """An MCP tool guarded like a function tool. Rules see the server's own name for the
    tool, as behind ``staso mcp proxy``, and the server's name in ``context.mcp_server``."""
    server, tool_name = mcp_identity(tool)
    return _guarded(tool, guard, tool_name=tool_name,
                    context={"mcp_server": server} if server else None)


def guard_agent(agent: Agent[Any], **options: Unpack[GuardKwargs]) -> Agent[Any]:
    """A copy of ``agent`` whose function tools and MCP servers' tools are guarded, and so
    are those of every agent it can hand off to (each copied once, so handoff cycles stay
    cycles). The MCP servers themselves are shared, not copied or changed."""
    guard = ToolGuard.of(**options)
    return copy_agents(agent, lambda original: _guard_list(original.tools, guard),
                       mcp_tool=lambda tool: _guarded_mcp(tool, guard))


def copy_agents(agent: Agent[Any], tools: Callable[[Agent[Any]], list[Any]], *,
                mcp_tool: Callable[[FunctionTool], FunctionTool] | None = None
                ) -> Agent[Any]:
    """A copy of ``agent`` with ``tools(agent)`` as its tools (and each MCP tool passed
    through ``mcp_tool`` as the SDK makes it), and likewise every agent it can hand off to
    (each copied once, so handoff cycles stay cycles)."""
    copies: dict[int, Agent[Any]] = {}

    def copied(original: Agent[Any]) -> Agent[Any]:
        if id(original) in copies:
            return copies[id(original)]
        clone = copies[id(original)] = original.clone(tools=tools(original))
        if mcp_tool is not None:
            wrap_mcp_tools(clone, mcp_tool)
        clone.handoffs = [copied(h) if isinstance(h, Agent) else h for h in original.handoffs]
        return clone

    return copied(agent)
