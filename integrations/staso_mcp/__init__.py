"""staso for the Model Context Protocol (``pip install -e '.[mcp]'``).

- ``run_stdio_proxy(command, args)``: ``staso mcp proxy -- COMMAND ARGS...``, the proxy on
  stdio in front of a stdio server it starts: a JSON-RPC relay (``StdioRelay``) in which
  every message but ``tools/call`` passes through and each ``tools/call`` asks staso first
  (allow forwards, modify forwards the rewritten arguments, block and pending answer an
  ``isError`` result).
- ``run_http_proxy(url, listen)``: ``staso mcp proxy --upstream URL --listen HOST:PORT``,
  the same on streamable HTTP (``GuardedProxy``, on the SDK's sessions, one upstream
  connection per client).
- ``wrap_config(path)`` / ``unwrap_config(path)``: an MCP client's configuration
  (``mcpServers``) rewritten so every stdio server runs through the proxy, and back
  (``staso mcp wrap``).

Who asked for a call (``context.requested_by``, which ``forbid_self_approval`` rules check):
the proxy is a process of its own, so ``st.conversation`` in the agent's process does not
reach it; a client says it in the call's ``_meta`` (``{"requested_by": "alice"}``: the
``mcp`` SDK's ``call_tool(..., meta=...)``; for the OpenAI Agents SDK,
``tool_meta_resolver=staso_openai_agents.requested_by_meta``).

Built on the official ``mcp`` SDK; each name loads on first use and names the extra to
install when ``mcp`` is missing; ``import staso`` never imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from staso.adapters import lazy_exports

_EXPORTS = {"GuardedProxy": "proxy", "StdioRelay": "relay", "run_stdio_proxy": "stdio",
            "run_http_proxy": "streamable_http", "wrap_config": "wrap",
            "unwrap_config": "wrap"}
_NEEDS: dict[str, str] = {"wrap": "json"}  # rewriting a configuration needs no mcp
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .proxy import GuardedProxy
    from .relay import StdioRelay
    from .stdio import run_stdio_proxy
    from .streamable_http import run_http_proxy
    from .wrap import unwrap_config, wrap_config


__getattr__ = lazy_exports(__name__, _EXPORTS, needs=_NEEDS, default_need="mcp", extra="mcp")
