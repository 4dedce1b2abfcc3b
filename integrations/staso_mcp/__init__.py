"""staso for the Model Context Protocol (``pip install 'staso[mcp]'``).

- ``GuardedProxy``: an MCP server in front of another one. Every request but ``tools/call``
  passes through unchanged; each ``tools/call`` asks staso first (allow forwards, modify
  forwards the rewritten arguments, block and pending answer an ``isError`` result).
- ``run_stdio_proxy(command, args)``: that proxy on stdio, in front of a stdio server (what
  ``staso mcp proxy -- COMMAND ARGS...`` runs).

Built on the official ``mcp`` SDK; each name loads on first use and names the extra to
install when ``mcp`` is missing; ``import staso`` never imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from staso.adapters import lazy_exports

_EXPORTS = {"GuardedProxy": "proxy", "run_stdio_proxy": "proxy"}
_NEEDS: dict[str, str] = {}
__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:
    from .proxy import GuardedProxy, run_stdio_proxy


__getattr__ = lazy_exports(__name__, _EXPORTS, needs=_NEEDS, default_need="mcp", extra="mcp")
