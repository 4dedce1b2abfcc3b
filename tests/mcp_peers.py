"""MCP servers and clients for the proxy's and the adapters' tests: the notes server written
with the `mcp` SDK's FastMCP (run as a real process; it records every call it receives),
the npm reference filesystem server and its policy, and `staso mcp proxy` started as a
client would start it, driven by the SDK's `ClientSession`. Importable with mcp 1.x and
2.x (the OpenAI Agents SDK's second environment)."""

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

# The notes server, written out and run by notes_upstream. FastMCP on mcp 1.x; renamed
# MCPServer on mcp 2.x (the newest OpenAI Agents SDK's environment).
NOTES_SERVER = '''
"""The notes server: echo and write_note, notes written to the folder it is given, and
every tool call it receives logged to calls.jsonl beside that folder. Over stdio, or with
--port over streamable HTTP (with --key, only for requests with "Bearer KEY")."""
import argparse
import json
from pathlib import Path
try:
    from mcp.server.mcpserver import MCPServer
except ImportError:
    from mcp.server.fastmcp import FastMCP as MCPServer

parser = argparse.ArgumentParser()
parser.add_argument("notes", type=Path)
parser.add_argument("--name", default="notes-server")
parser.add_argument("--echo-prefix", default="")
parser.add_argument("--port", type=int)
parser.add_argument("--key")
options = parser.parse_args()
ROOT = options.notes
server = MCPServer(options.name)

def received(tool, **arguments):
    with (ROOT.parent / "calls.jsonl").open("a") as calls:
        calls.write(json.dumps([tool, arguments]) + "\\n")

@server.tool()
def echo(text: str) -> str:
    """Say it back."""
    received("echo", text=text)
    return options.echo_prefix + text

@server.tool()
def write_note(name: str, content: str) -> str:
    """Write a note."""
    received("write_note", name=name, content=content)
    (ROOT / name).write_text(content)
    return f"wrote {len(content)} characters to {name}"

@server.resource("notes://readme")
def readme() -> str:
    return "the notes server"

@server.prompt()
def summarize_notes(topic: str) -> str:
    """Ask for a summary."""
    return f"Summarize the notes about {topic}."

if options.port is None:
    server.run()
else:
    import uvicorn
    from starlette.middleware.base import BaseHTTPMiddleware
    from starlette.responses import Response

    class RequireKey(BaseHTTPMiddleware):
        async def dispatch(self, request, call_next):
            if request.headers.get("authorization") != f"Bearer {options.key}":
                return Response("no key", status_code=401)
            return await call_next(request)

    app = server.streamable_http_app()
    if options.key:
        app.add_middleware(RequireKey)
    uvicorn.run(app, host="127.0.0.1", port=options.port, log_level="warning")
'''
# the notes policies' common rules: notes named secret* blocked, long notes to a person
NOTE_RULES = """  - name: no_secret_notes
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
""" + NOTE_RULES
# the reference filesystem server's policy: protected paths blocked, large writes to a person
FS_POLICY = """version: 1
rules:
  - use: builtin/protected_paths
  - name: big_write
    tools: [write_file]
    when: size(tool_input.content) > 1000
    action: escalate
    reason: a large write needs a person
"""


def require_filesystem_server() -> Path:
    assert FILESYSTEM_SERVER.exists(), (
        f"{FILESYSTEM_SERVER} is missing: scripts/test installs it with npm "
        "(npm install --prefix .mcp-servers @modelcontextprotocol/server-filesystem)")
    return FILESYSTEM_SERVER


def notes_upstream(tmp_path: Path, *options: str) -> list[str]:
    """The notes server's command line: its notes go to tmp_path/notes, its record of the
    calls it receives to tmp_path/calls.jsonl (see ``received``). ``options`` go to the
    server: --name NAME, --echo-prefix TEXT, --port PORT (streamable HTTP), --key KEY."""
    (tmp_path / "upstream.py").write_text(NOTES_SERVER)
    (tmp_path / "notes").mkdir(exist_ok=True)
    return [sys.executable, str(tmp_path / "upstream.py"), *options, str(tmp_path / "notes")]


def received(notes: Path, *, any_order: bool = False) -> list[tuple[str, dict[str, Any]]]:
    """Every tool call the notes server writing to ``notes`` received, in the order it
    received them; sorted, with ``any_order``, for calls a client may send concurrently."""
    log = notes.parent / "calls.jsonl"
    calls = [(tool, arguments) for tool, arguments in
             map(json.loads, log.read_text().splitlines())] if log.exists() else []
    return sorted(calls, key=json.dumps) if any_order else calls


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
