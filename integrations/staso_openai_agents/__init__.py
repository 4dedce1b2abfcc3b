"""staso for the OpenAI Agents SDK (``pip install 'staso[openai-agents]'``).

- ``guard_agent(agent)`` / ``guard_tools(tools)``: every function tool asks staso first,
  with the whole decision table of SPEC §8 (``on_invoke_tool`` is wrapped).
- ``staso_tool_guardrail()``: allow/block through the SDK's own tool input guardrails.
- ``StasoApprovals``: staso escalations as the approval source of the SDK's ``needs_approval``
  / ``RunState`` human-in-the-loop flow.

Each loads on first use and names the extra to install when the SDK is missing.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {"guard_tools": "tools", "guard_agent": "tools",
            "staso_tool_guardrail": "guardrail", "StasoApprovals": "approvals",
            "openai_agents_context": "calls"}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .approvals import StasoApprovals
    from .calls import openai_agents_context
    from .guardrail import staso_tool_guardrail
    from .tools import guard_agent, guard_tools


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'staso_openai_agents' has no attribute {name!r}")
    from staso.adapters import require

    require("agents", extra="openai-agents", feature=f"staso_openai_agents.{name}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
