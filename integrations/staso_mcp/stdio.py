"""``staso mcp proxy -- COMMAND ARGS``: the proxy on this process's stdio, in front of a
stdio MCP server it starts (what Claude Desktop, Cursor or VS Code run in place of the
server's own command). The messages between them go through ``StdioRelay``. (asyncio's
subprocess streams, not anyio's: a write to the server is buffered, never awaited.)"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

import anyio

from . import pipes
from .calls import CallGuard
from .proxy import UPSTREAM_TIMEOUT, ProxyOptions
from .relay import MAX_LINE, StdioRelay

if TYPE_CHECKING:
    from typing_extensions import Unpack

STOP_TIMEOUT = 5.0  # seconds the server has to exit once its stdin is closed


async def run_stdio_proxy(command: str, args: Sequence[str],
                          **options: Unpack[ProxyOptions]) -> None:
    """Run ``command args`` as a stdio MCP server (with this process's environment but
    staso's own settings, keys among them) and serve it, guarded, on stdio. When the server
    exits, so does the proxy (as the server alone would); when the client closes stdin, the
    server is stopped."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STASO_")}
    calls = CallGuard(options.get("guard"), approve_in_client=options.get(
        "approve_in_client", False), answers=options.get("answers"))
    client_in, client_out = await pipes.stdio(MAX_LINE)
    process = await asyncio.create_subprocess_exec(
        command, *args, env=env, stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE, limit=MAX_LINE)
    try:
        assert process.stdin is not None and process.stdout is not None
        relay = StdioRelay(client_in, client_out, process.stdin, process.stdout, calls,
                           name=options.get("name"),
                           upstream_timeout=options.get("upstream_timeout", UPSTREAM_TIMEOUT))
        await relay.run()
    finally:
        with anyio.CancelScope(shield=True):
            await _stop(process)
    if relay.gone:
        raise ServerExited(f"it exited with status {process.returncode}")


class ServerExited(RuntimeError):
    """The server the proxy started has exited (the proxy ends with it)."""


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Close the server's stdin (an MCP server exits then), and end it if it does not."""
    if process.returncode is not None:
        return
    if process.stdin is not None:
        process.stdin.close()
    with anyio.move_on_after(STOP_TIMEOUT):
        await process.wait()
        return
    process.kill()
    await process.wait()
