"""``staso mcp proxy -- COMMAND ARGS``: the proxy on this process's stdio, in front of a
stdio MCP server it starts (what Claude Desktop, Cursor or VS Code run in place of the
server's own command)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.server.stdio import stdio_server

from staso import Client
from staso.adapters import ToolGuard

from . import pipes
from .proxy import UPSTREAM_TIMEOUT, GuardedProxy, Relay


async def run_stdio_proxy(command: str, args: Sequence[str], guard: ToolGuard | None = None,
                          upstream_timeout: float = UPSTREAM_TIMEOUT,
                          name: str | None = None, approve_in_client: bool = False,
                         answers: Client | None = None) -> None:
    """Run ``command args`` as a stdio MCP server (with this process's environment: the
    SDK's default passes on only a few variables) and serve it, guarded, on stdio."""
    params = StdioServerParameters(command=command, args=list(args), env=dict(os.environ))
    relay = Relay()
    async with stdio_client(params) as (read, write), \
            ClientSession(read, write, **relay.session_options()) as upstream:
        init = await upstream.initialize()
        proxy = GuardedProxy(upstream, init, guard, name=name,
                             upstream_timeout=upstream_timeout,
                             approve_in_client=approve_in_client, answers=answers)
        relay.proxy = proxy
        fast = pipes.usable()  # stdin/stdout on the event loop, not a thread per line
        stdin: Any = pipes.PipeLines(sys.stdin.fileno()) if fast else None
        stdout: Any = pipes.PipeWriter(sys.stdout.fileno()) if fast else None
        async with stdio_server(stdin, stdout) as (down_read, down_write):
            await proxy.server.run(down_read, down_write, proxy.options())
