"""``staso mcp proxy -- COMMAND ARGS``: the proxy on this process's stdio, in front of a
stdio MCP server it starts (what Claude Desktop, Cursor or VS Code run in place of the
server's own command)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mcp import StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.server.stdio import stdio_server

from . import pipes
from .proxy import ProxyOptions, guarding

if TYPE_CHECKING:
    from typing_extensions import Unpack


async def run_stdio_proxy(command: str, args: Sequence[str],
                          **options: Unpack[ProxyOptions]) -> None:
    """Run ``command args`` as a stdio MCP server (with this process's environment: the
    SDK's default passes on only a few variables) and serve it, guarded, on stdio."""
    params = StdioServerParameters(command=command, args=list(args), env=dict(os.environ))
    async with stdio_client(params) as (read, write), \
            guarding(read, write, **options) as proxy:
        fast = pipes.usable()  # stdin/stdout on the event loop, not a thread per line
        stdin: Any = pipes.PipeLines(sys.stdin.fileno()) if fast else None
        stdout: Any = pipes.PipeWriter(sys.stdout.fileno()) if fast else None
        async with stdio_server(stdin, stdout) as (down_read, down_write):
            await proxy.server.run(down_read, down_write, proxy.options())
