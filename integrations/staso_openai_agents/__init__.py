"""staso for the OpenAI Agents SDK (``pip install -e '.[openai-agents]'``).

- ``guard_agent(agent)`` / ``guard_tools(tools)``: every function tool asks staso first,
  with the whole decision table of docs/integrations/openai-agents.md (``on_invoke_tool``
  is wrapped); ``guard_agent`` wraps the agent's MCP server tools too, as the SDK makes them.
- ``staso_tool_guardrail()``: allow/block through the SDK's own tool input guardrails.
- ``StasoApprovals``: staso escalations as the approval source of the SDK's ``needs_approval``
  / ``RunState`` human-in-the-loop flow.

Who asked for a run (``context.requested_by``, which ``forbid_self_approval`` rules check):
``with st.conversation(..., requested_by="alice"):`` around ``Runner.run`` / ``run_sync`` /
``run_streamed``, or the run's own context object, ``Runner.run(agent, input,
context={"requested_by": "alice"})`` (a dict key, or an attribute of your dataclass), or
fixed with ``guard_agent(agent, context={"requested_by": ...})``. An MCP server behind
``staso mcp proxy`` gets it in each call's ``_meta`` with
``MCPServerStdio(..., tool_meta_resolver=requested_by_meta)``.

Each loads on first use and names the extra to install when the SDK is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from staso.adapters import lazy_exports

_EXPORTS = {"guard_tools": "tools", "guard_agent": "tools",
            "staso_tool_guardrail": "guardrail", "StasoApprovals": "approvals",
            "openai_agents_context": "calls", "requested_by_meta": "mcp_tools"}
_NEEDS: dict[str, str] = {}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .approvals import StasoApprovals
    from .calls import openai_agents_context
    from .guardrail import staso_tool_guardrail
    from .mcp_tools import requested_by_meta
    from .tools import guard_agent, guard_tools


__getattr__ = lazy_exports(__name__, _EXPORTS, needs=_NEEDS, default_need="agents",
                           extra="openai-agents")
