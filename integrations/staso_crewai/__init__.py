"""staso for CrewAI (``pip install -e '.[crewai]'``).

- ``guard_crew(crew)``: every tool call of every agent in that crew asks staso first, through
  crewai's tool-call hooks, scoped to that crew.
- ``guard_tools(tools)``: guarded copies of crewai tools (``BaseTool`` subclasses and
  ``@tool`` functions), for agents outside a guarded crew.

Both give the whole decision table (docs/integrations/crewai.md). Each loads on first use and
names the extra to install when crewai is missing; ``import staso`` never imports crewai.

Who asked for a run (``context.requested_by``, which ``forbid_self_approval`` rules check):
``with st.conversation(..., requested_by="alice"):`` around ``kickoff`` (``kickoff_async``,
``akickoff``, ``kickoff_for_each`` too: crewai carries the context into its worker threads),
or fixed for a crew with ``guard_crew(crew, context={"requested_by": ...})``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from staso.adapters import lazy_exports

_EXPORTS = {"guard_crew": "crew", "guard_tools": "tools", "crewai_context": "calls"}
_NEEDS: dict[str, str] = {}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .calls import crewai_context
    from .crew import guard_crew
    from .tools import guard_tools


__getattr__ = lazy_exports(__name__, _EXPORTS, needs=_NEEDS, default_need="crewai.tools",
                           extra="crewai")
