"""``staso mcp proxy -- COMMAND ARGS``: the proxy on this process's stdio, in front of a
stdio MCP server it starts (what Claude Desktop, Cursor or VS Code run in place of the
server's own command)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import anyio
from mcp import StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.server.stdio import stdio_server

from . import pipes
from .proxy import UPSTREAM_TIMEOUT, GuardedProxy, ProxyOptions
from .upstream import Upstream, connected

if TYPE_CHECKING:
    from typing_extensions import Unpack

GONE_GRACE = 0.5  # seconds between the server's exit and the proxy's


async def run_stdio_proxy(command: str, args: Sequence[str],
                          **options: Unpack[ProxyOptions]) -> None:
    """Run ``command args`` as a stdio MCP server (with this process's environment but
    staso's own settings, keys among them: the SDK's default passes on only a few
    variables) and serve it, guarded, on stdio. When the server exits, so does the proxy
    (as the server alone would), once the errors owed to the client are sent."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STASO_")}
    params = StdioServerParameters(command=command, args=list(args), env=env)
    upstream = Upstream(timedelta(seconds=options.get("upstream_timeout", UPSTREAM_TIMEOUT)))
    async with stdio_client(params) as (read, write), \
            connected(read, write, upstream) as init:
        proxy = GuardedProxy(init, first=upstream, **options)
        fast = pipes.usable()  # stdin/stdout on the event loop, not a thread per line
        stdin: Any = pipes.PipeLines(sys.stdin.fileno()) if fast else None
        stdout: Any = pipes.PipeWriter(sys.stdout.fileno()) if fast else None
        async with stdio_server(stdin, stdout) as (down_read, down_write), \
                anyio.create_task_group() as group:
            async def end_with_the_server() -> None:
                assert upstream.session is not None
                await upstream.session.gone.wait()
                await anyio.sleep(GONE_GRACE)
                group.cancel_scope.cancel()
            group.start_soon(end_with_the_server)
            await proxy.server.run(down_read, down_write, proxy.options())
            group.cancel_scope.cancel()
