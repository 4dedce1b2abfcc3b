"""MCP servers and clients for the proxy's tests: upstream servers written with the `mcp`
SDK's FastMCP (run as real processes), the npm reference filesystem server, and
`staso mcp proxy` started as a client would start it, driven by the SDK's `ClientSession`."""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import TextContent

from servers import cli

ROOT = Path(__file__).resolve().parent.parent
FILESYSTEM_SERVER = (ROOT / ".mcp-servers" / "node_modules" / "@modelcontextprotocol"
                     / "server-filesystem" / "dist" / "index.js")

NOTES_SERVER = '''
import sys
from pathlib import Path
from mcp.server.fastmcp import FastMCP

server = FastMCP("notes-server")
ROOT = Path(sys.argv[1])

@server.tool()
def echo(text: str) -> str:
    """Say it back."""
    return text

@server.tool()
def write_note(name: str, content: str) -> str:
    """Write a note."""
    (ROOT / name).write_text(content)
    return f"wrote {len(content)} characters to {name}"

@server.resource("notes://readme")
def readme() -> str:
    return "the notes server"

if __name__ == "__main__":
    server.run()
'''
NOTES_POLICY = """version: 1
rules:
  - name: mcp_context
    tools: [echo]
    when: >-
      context.framework == "mcp" && context.mcp_server == "notes-server"
      && context.mcp_client == "mcp" && context.session_id.startsWith("mcp_")
      && tool_input.text == "forbidden"
    action: block
    reason: the proxy tells rules where a call came from
  - name: no_secret_notes
    tools: [write_note]
    when: tool_input.name.startsWith("secret")
    action: block
    reason: secret notes are not written by agents
  - name: big_note
    tools: [write_note]
    when: size(tool_input.content) > 100
    action: escalate
    reason: a long note needs a person
"""


def require_filesystem_server() -> Path:
    assert FILESYSTEM_SERVER.exists(), (
        f"{FILESYSTEM_SERVER} is missing: scripts/test installs it with npm "
        "(npm install --prefix .mcp-servers @modelcontextprotocol/server-filesystem)")
    return FILESYSTEM_SERVER


def notes_upstream(tmp_path: Path) -> list[str]:
    """The notes server's command line (its notes go to tmp_path/notes)."""
    (tmp_path / "upstream.py").write_text(NOTES_SERVER)
    (tmp_path / "notes").mkdir(exist_ok=True)
    return [sys.executable, str(tmp_path / "upstream.py"), str(tmp_path / "notes")]


def proxy_params(tmp_path: Path, proxy_args: list[str], upstream: list[str],
                 policy: str = NOTES_POLICY, env: dict[str, str] | None = None
                 ) -> StdioServerParameters:
    """``staso mcp proxy [proxy_args] -- upstream`` as an MCP client would start it."""
    (tmp_path / "staso.yaml").write_text(policy)
    env = {**os.environ, "STASO_HOME": str(tmp_path), "STASO_AGENT_NAME": "mcp-agent",
           **(env or {})}
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "staso.cli", "mcp", "proxy", "--policy", str(tmp_path / "staso.yaml"),
              *proxy_args, "--", *upstream], env=env)


@asynccontextmanager
async def proxied(tmp_path: Path, *proxy_args: str, upstream: list[str] | None = None,
                  policy: str = NOTES_POLICY, env: dict[str, str] | None = None,
                  **client: Any) -> AsyncIterator[ClientSession]:
    """A client session with the proxy in front of ``upstream`` (the notes server)."""
    params = proxy_params(tmp_path, list(proxy_args), upstream or notes_upstream(tmp_path),
                          policy, env)
    async with stdio_client(params) as (read, write), \
            ClientSession(read, write, **client) as session:
        await session.initialize()
        yield session


def text_of(result: Any) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))


def escalation_id_in(text: str) -> str:
    return text.split("Escalation id: ")[1].split(".")[0]


def escalations(home: Path, status: str = "pending") -> list[dict[str, Any]]:
    listed = cli("escalations", "list", "--status", status, "--json",
                 env={"STASO_HOME": str(home)}).stdout
    found: list[dict[str, Any]] = json.loads(listed)
    return found


async def answer_from_cli(home: Path, verb: str = "approve", by: str = "alice") -> str:
    """Wait until an escalation is pending, then answer it from the CLI; its id."""
    with anyio.fail_after(60):
        while True:
            pending = await anyio.to_thread.run_sync(escalations, home)
            if pending:
                escalation_id = str(pending[0]["id"])
                await anyio.to_thread.run_sync(functools.partial(
                    cli, "escalations", verb, escalation_id, "--by", by,
                    env={"STASO_HOME": str(home)}))
                return escalation_id
            await anyio.sleep(0.1)
