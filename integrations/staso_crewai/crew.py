"""``guard_crew(crew)``: every tool of every agent in that crew asks staso first.

Two layers, so nothing depends on one of them alone:
- each agent's tools are replaced by guarded copies (``guard_tools``). That is what scopes
  the guard to this crew (other crews keep the original tools, and crewai's own copies of
  the crew, for ``kickoff_for_each`` and the like, carry the guarded tools), and it still
  guards if the hooks below are cleared. The tools of the agents' own MCP servers
  (``Agent(mcps=[...])``), which crewai adds only when the crew runs, come guarded the same
  way: each agent's ``get_mcp_tools`` hands out guarded copies.
- one process-wide pair of crewai tool-call hooks, acting only on guarded tools, decides the
  call where crewai shows the crew, agent and task: the before-hook rewrites the input in
  place or blocks it, and the after-hook replaces crewai's reasonless "Tool execution blocked
  by hook" with staso's message. The guarded tool then uses that decision instead of
  deciding again.

crewai swallows any exception a hook raises and runs the tool anyway (fail-open), so the
hooks never raise: if staso cannot decide they block, with the reason.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from crewai import Crew
from crewai.hooks.dispatch import InterceptionPoint, get_hooks, register
from crewai.hooks.tool_hooks import ToolCallHookContext
from crewai.tools import BaseTool

from staso.adapters import CallKwargs, validated_input

from .calls import crewai_context
from .tools import call_identity, decided_calls, guard_of, guard_tools

if TYPE_CHECKING:
    from typing_extensions import Unpack

    pass

log = logging.getLogger("staso")


class _Hooks:
    """The before/after pair; state per call is keyed by the call's input dict, which crewai
    hands to both hooks of one call."""

    def __init__(self) -> None:
        self._refusals: dict[int, str] = {}

    def before(self, ctx: ToolCallHookContext) -> bool | None:
        guard = guard_of(ctx.tool)
        if guard is None:
            return None  # not a staso-guarded tool: not ours to decide
        key = id(ctx.tool_input)
        try:
            tool_input = validated_input(getattr(ctx.tool, "args_schema", None),
                                         ctx.tool_input)
            name, context = call_identity(ctx.tool, ctx.tool_name)
            outcome = guard.check(name, tool_input,
                                  {**crewai_context(ctx.agent, ctx.task, ctx.crew), **context})
        except Exception as exc:  # never raise here: crewai would run the tool
            log.exception("staso: no decision for %r", ctx.tool_name)
            self._refusals[key] = (f"[staso] The call to '{ctx.tool_name}' was blocked: "
                                   f"staso could not decide ({type(exc).__name__}: {exc}). "
                                   "The tool was not run.")
            return False
        if not outcome.run:
            self._refusals[key] = outcome.message or ""
            return False
        if outcome.result.action == "modify" and outcome.tool_input is not None:
            ctx.tool_input.clear()
            ctx.tool_input.update(outcome.tool_input)
            tool_input = dict(outcome.tool_input)
        decided_calls.put(ctx.tool, tool_input, outcome.result)  # the tool records its run
        return None

    def after(self, ctx: ToolCallHookContext) -> str | None:
        """staso's reason in place of crewai's "Tool execution blocked by hook"."""
        return self._refusals.pop(id(ctx.tool_input), None)


_hooks = _Hooks()
_installed = threading.Lock()


def _install_hooks() -> None:
    with _installed:
        if _hooks.before not in get_hooks(InterceptionPoint.PRE_TOOL_CALL):
            register(InterceptionPoint.PRE_TOOL_CALL, _hooks.before)
        if _hooks.after not in get_hooks(InterceptionPoint.POST_TOOL_CALL):
            register(InterceptionPoint.POST_TOOL_CALL, _hooks.after)


def _guard_mcp_servers(agent: Any, options: CallKwargs) -> None:
    """crewai turns an agent's own MCP servers (``Agent(mcps=[...])``) into tools only when it
    runs: a crew asks ``agent.get_mcp_tools`` for every task, ``Agent.kickoff`` for every run.
    They are never in ``agent.tools`` beforehand, so this agent's ``get_mcp_tools`` hands out
    guarded copies of them (scoped to this agent, like its other tools; the hooks above then
    decide their calls like any guarded tool's)."""
    resolve = getattr(type(agent), "get_mcp_tools", None)
    if resolve is None:  # an agent class without MCP servers
        return

    def get_mcp_tools(*args: Any, **kwargs: Any) -> list[BaseTool]:
        return guard_tools(resolve(agent, *args, **kwargs), **options)

    # on the instance, not a pydantic field (model_dump and crewai's Agent.copy ignore it)
    object.__setattr__(agent, "get_mcp_tools", get_mcp_tools)


def guard_crew(crew: Crew, **options: Unpack[CallKwargs]) -> Crew:
    """Guard every tool of every agent in ``crew`` (in place; returns the crew), including the
    tools of the agents' MCP servers that crewai adds when the crew runs. Other crews in the
    process are not affected. Refusals are what the agent reads as the tool's result (crewai
    hooks cannot raise out of a run, so there is no ``on_block="raise"`` here)."""
    agents = [*crew.agents, *([crew.manager_agent] if crew.manager_agent else [])]
    for agent in agents:
        if agent.tools:
            agent.tools = guard_tools(agent.tools, **options)
        _guard_mcp_servers(agent, options)
    for task in crew.tasks:
        if task.tools:
            task.tools = guard_tools(task.tools, **options)
    _install_hooks()
    return crew
