"""staso for LangChain and LangGraph (``pip install -e '.[langchain]'``).

- ``StasoMiddleware`` for ``langchain.agents.create_agent``: the full decision table of
  docs/integrations/langchain.md, ``invoke`` and ``ainvoke``.
- ``guard_tools(tools)`` for any list of ``BaseTool`` (LangGraph's ``ToolNode``, custom loops).
- ``StasoCallbackHandler`` for any runnable: it can stop a call, not rewrite it.

Who asked for a run (``context.requested_by``, which ``forbid_self_approval`` rules check):
``with st.conversation(..., requested_by="alice"):`` around ``invoke`` / ``ainvoke`` /
``stream``, or per invocation ``config={"configurable": {"requested_by": "alice"}}`` (or in
``metadata``), or fixed for an agent with ``StasoMiddleware(context={"requested_by": ...})``.

Each loads on first use, and names the extra to install when LangChain is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from staso.adapters import lazy_exports

_EXPORTS = {"StasoMiddleware": "middleware", "guard_tools": "tools",
            "StasoCallbackHandler": "callbacks", "langchain_context": "calls"}
_NEEDS = {"middleware": "langchain.agents.middleware"}  # the rest needs only langchain-core
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .callbacks import StasoCallbackHandler
    from .calls import langchain_context
    from .middleware import StasoMiddleware
    from .tools import guard_tools


__getattr__ = lazy_exports(__name__, _EXPORTS, needs=_NEEDS, default_need="langchain_core.tools",
                           extra="langchain")
