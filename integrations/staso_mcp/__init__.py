"""staso for the Model Context Protocol (``pip install 'staso[mcp]'``).

- ``GuardedProxy``: an MCP server in front of another one. Every request but ``tools/call``
  passes through unchanged; each ``tools/call`` asks staso first (allow forwards, modify
  forwards the rewritten arguments, block and pending answer an ``isError`` result).
- ``run_stdio_proxy(command, args)``: that proxy on stdio, in front of a stdio server (what
  ``staso mcp proxy -- COMMAND ARGS...`` runs).
- ``run_http_proxy(url, listen)``: on streamable HTTP, in front of a streamable-HTTP server
  (``staso mcp proxy --upstream URL --listen HOST:PORT``).
- ``wrap_config(path)`` / ``unwrap_config(path)``: an MCP client's configuration
  (``mcpServers``) rewritten so every stdio server runs through the proxy, and back
  (``staso mcp wrap``).

Built on the official ``mcp`` SDK; each name loads on first use and names the extra to
install when ``mcp`` is missing; ``import staso`` never imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from staso.adapters import lazy_exports

_EXPORTS = {"GuardedProxy": "proxy", "run_stdio_proxy": "stdio",
            "run_http_proxy": "streamable_http", "wrap_config": "wrap",
            "unwrap_config": "wrap"}
_NEEDS: dict[str, str] = {"wrap": "json"}  # rewriting a configuration needs no mcp
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .proxy import GuardedProxy
    from .stdio import run_stdio_proxy
    from .streamable_http import run_http_proxy
    from .wrap import unwrap_config, wrap_config


__getattr__ = lazy_exports(__name__, _EXPORTS, needs=_NEEDS, default_need="mcp", extra="mcp")
