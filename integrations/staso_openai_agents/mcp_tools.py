"""The MCP tools of a guarded agent.

The SDK makes an agent's MCP tools afresh every turn (``Agent.get_mcp_tools`` lists each
server's tools and turns them into ``FunctionTool``s that call ``server.call_tool``), so they
cannot be wrapped up front like ``agent.tools``. A guarded agent copy gets a subclass of its
own class whose ``get_mcp_tools`` wraps each tool as it is made: the user's agent and MCP
servers stay untouched, and a subclass (unlike a method set on the instance) survives the
SDK's own ``agent.clone()``.

An MCP server guarded by ``staso mcp proxy`` instead, in a process of its own, learns who
asked for a call only from the call itself: ``requested_by_meta`` puts it in the ``_meta``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from agents import Agent
from agents.run_context import RunContextWrapper
from agents.tool import FunctionTool, Tool, get_function_tool_origin

from staso import StasoError
from staso.adapters import current_context, guarded_class, requested_by_in

WrapMCPTool = Callable[[FunctionTool], FunctionTool]


class _WrapsMCPTools(Agent[Any]):
    """Runs ``staso_wrap_mcp`` over the MCP tools of the class it is mixed into."""

    staso_wrap_mcp: WrapMCPTool | None = None  # set on the instance by ``wrap_mcp_tools``

    async def get_mcp_tools(self, run_context: RunContextWrapper[Any]) -> list[Tool]:
        tools = await super().get_mcp_tools(run_context)
        wrap = self.staso_wrap_mcp
        if wrap is None:  # made by hand (dataclasses.replace): fail closed, not unguarded
            raise StasoError(f"agent {self.name!r} lost its staso MCP guard; make guarded "
                             "copies with guard_agent() or agent.clone()")
        return [wrap(t) if isinstance(t, FunctionTool) else t for t in tools]

    def clone(self, **kwargs: Any) -> Agent[Any]:
        clone = super().clone(**kwargs)  # dataclasses.replace: same class, fields only
        object.__setattr__(clone, "staso_wrap_mcp", self.staso_wrap_mcp)
        return clone


def wrap_mcp_tools(agent: Agent[Any], wrap: WrapMCPTool) -> None:
    """Make ``agent`` (a copy the caller owns) pass each MCP tool through ``wrap``; wrapping
    again replaces ``wrap``."""
    object.__setattr__(agent, "__class__", guarded_class(_WrapsMCPTools, type(agent)))
    object.__setattr__(agent, "staso_wrap_mcp", wrap)


def mcp_identity(tool: FunctionTool) -> tuple[str | None, str | None]:
    """(the MCP server's name, the server's own name for the tool) of an MCP tool. Newer SDKs
    record both (``_mcp_tool_binding``); older ones only the server, and then the tool name
    is the one the model calls, which differs only with ``include_server_in_tool_names``."""
    binding = getattr(tool, "_mcp_tool_binding", None)
    if isinstance(binding, tuple) and len(binding) >= 2:
        return str(binding[0]), str(binding[1])
    origin = get_function_tool_origin(tool)
    return getattr(origin, "mcp_server_name", None), None


def requested_by_meta(meta: Any) -> dict[str, Any] | None:
    """A ``tool_meta_resolver`` for an MCP server behind ``staso mcp proxy``: sends who
    asked for the run (the run context's ``requested_by``, else the ``st.conversation``'s)
    in each tool call's ``_meta``, where the proxy, a process of its own, reads it."""
    wrapper = getattr(meta, "run_context", None)
    return requested_by_in(getattr(wrapper, "context", None), current_context()) or None
