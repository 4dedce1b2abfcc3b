"""`staso mcp proxy -- COMMAND ARGS` in front of a stdio MCP server, driven by the `mcp`
SDK's own client: everything but tools/call passes through; each tools/call is guarded
(allow forwards, block and pending answer isError results, and an approved call, retried
identically, runs once)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import TextContent

from servers import cli

UPSTREAM = '''
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

server.run()
'''
POLICY = """version: 1
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


@asynccontextmanager
async def proxied(tmp_path: Path) -> AsyncIterator[ClientSession]:
    (tmp_path / "upstream.py").write_text(UPSTREAM)
    (tmp_path / "staso.yaml").write_text(POLICY)
    (tmp_path / "notes").mkdir(exist_ok=True)
    env = {**os.environ, "STASO_HOME": str(tmp_path), "STASO_AGENT_NAME": "mcp-agent"}
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "staso.cli", "mcp", "proxy", "--policy", str(tmp_path / "staso.yaml"),
              "--", sys.executable,
              str(tmp_path / "upstream.py"), str(tmp_path / "notes")], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        assert init.serverInfo.name == "notes-server"  # the upstream's identity, passed on
        yield session


def _text(result: object) -> str:
    return "\n".join(c.text for c in result.content if isinstance(c, TextContent))  # type: ignore[attr-defined]


async def test_the_proxy_passes_through_and_guards_tool_calls(tmp_path: Path) -> None:
    async with proxied(tmp_path) as session:
        tools = await session.list_tools()
        assert {t.name for t in tools.tools} == {"echo", "write_note"}
        resource = await session.read_resource("notes://readme")  # type: ignore[arg-type]
        assert "the notes server" in resource.contents[0].text  # type: ignore[union-attr]

        echoed = await session.call_tool("echo", {"text": "hello"})
        assert not echoed.isError and _text(echoed) == "hello"
        told = await session.call_tool("echo", {"text": "forbidden"})
        assert told.isError and "blocked by rule 'mcp_context'" in _text(told)

        blocked = await session.call_tool("write_note", {"name": "secret.txt", "content": "x"})
        assert blocked.isError and "blocked by rule 'no_secret_notes'" in _text(blocked)
        assert not (tmp_path / "notes" / "secret.txt").exists()

        big = {"name": "long.txt", "content": "y" * 500}
        pending = await session.call_tool("write_note", big)
        assert pending.isError and "needs a person's approval" in _text(pending)
        assert not (tmp_path / "notes" / "long.txt").exists()
        escalation_id = _text(pending).split("Escalation id: ")[1].split(".")[0]
        env = {"STASO_HOME": str(tmp_path)}
        cli("escalations", "approve", escalation_id, "--by", "alice", env=env)
        ran = await session.call_tool("write_note", big)  # the identical call, once
        assert not ran.isError and "wrote 500 characters" in _text(ran)
        assert (tmp_path / "notes" / "long.txt").read_text() == "y" * 500
        again = await session.call_tool("write_note", big)
        assert again.isError and "needs a person's approval" in _text(again)


ROOT = Path(__file__).resolve().parent.parent
FILESYSTEM_SERVER = (ROOT / ".mcp-servers" / "node_modules" / "@modelcontextprotocol"
                     / "server-filesystem" / "dist" / "index.js")
FS_POLICY = """version: 1
rules:
  - use: builtin/protected_paths
  - name: big_write
    tools: [write_file]
    when: size(tool_input.content) > 1000
    action: escalate
    reason: a large write needs a person
"""


async def test_the_reference_filesystem_server_behind_the_proxy(tmp_path: Path) -> None:
    """The npm reference server (`@modelcontextprotocol/server-filesystem`, installed by
    scripts/test), run by node behind `staso mcp proxy --wait`: reads allowed, a write to a
    protected path blocked, a large write held until a person approves it from the CLI."""
    assert FILESYSTEM_SERVER.exists(), (
        f"{FILESYSTEM_SERVER} is missing: scripts/test installs it with npm "
        "(npm install --prefix .mcp-servers @modelcontextprotocol/server-filesystem)")
    files = tmp_path / "files"
    files.mkdir()
    (files / "hello.txt").write_text("hello from disk")
    (tmp_path / "staso.yaml").write_text(FS_POLICY)
    env = {**os.environ, "STASO_HOME": str(tmp_path),
           "STASO_POLICY": str(tmp_path / "staso.yaml")}
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "staso.cli", "mcp", "proxy", "--wait", "--escalation-timeout", "60", "--",
              "node", str(FILESYSTEM_SERVER), str(files)], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        init = await session.initialize()
        assert init.serverInfo.name == "secure-filesystem-server"
        names = {t.name for t in (await session.list_tools()).tools}
        assert {"read_text_file", "write_file", "list_directory"} <= names

        read_back = await session.call_tool("read_text_file", {"path": str(files / "hello.txt")})
        assert not read_back.isError and "hello from disk" in _text(read_back)

        dotenv = await session.call_tool("write_file", {"path": str(files / ".env"),
                                                        "content": "API_KEY=x"})
        assert dotenv.isError and "blocked" in _text(dotenv)
        assert not (files / ".env").exists()

        home = {"STASO_HOME": str(tmp_path)}

        def pending_ids() -> str:
            return cli("escalations", "list", "--status", "pending", "--json", env=home).stdout

        async def approve_when_pending() -> None:  # the call below waits: answer from the CLI
            for _ in range(600):
                listed = await anyio.to_thread.run_sync(pending_ids)
                if '"id"' in listed:
                    escalation_id = listed.split('"id": "')[1].split('"')[0]
                    await anyio.to_thread.run_sync(functools.partial(
                        cli, "escalations", "approve", escalation_id, "--by", "alice", env=home))
                    return
                await anyio.sleep(0.1)

        async with anyio.create_task_group() as group:
            group.start_soon(approve_when_pending)
            big = await session.call_tool("write_file", {"path": str(files / "big.txt"),
                                                         "content": "z" * 5000})
        assert not big.isError, _text(big)
        assert (files / "big.txt").read_text() == "z" * 5000


BAD_UPSTREAM = '''
import os
import time
from mcp.server.fastmcp import FastMCP

server = FastMCP("bad-server")

@server.tool()
def hang(seconds: float) -> str:
    time.sleep(seconds)
    return "late"

@server.tool()
def crash() -> str:
    os._exit(3)

server.run()
'''


async def test_a_bad_upstream_gives_the_client_an_error_never_a_hang(tmp_path: Path) -> None:
    from mcp.shared.exceptions import McpError

    (tmp_path / "bad.py").write_text(BAD_UPSTREAM)
    env = {**os.environ, "STASO_HOME": str(tmp_path)}
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "staso.cli", "mcp", "proxy", "--upstream-timeout", "1", "--",
              sys.executable, str(tmp_path / "bad.py")], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        with anyio.fail_after(30):  # the proxy answers, the client is never left hanging
            with pytest.raises(McpError, match="Timed out"):
                await session.call_tool("hang", {"seconds": 20})
            with pytest.raises(McpError):
                await session.call_tool("crash", {})


CHATTY_UPSTREAM = '''
import anyio
from mcp.server.fastmcp import Context, FastMCP

server = FastMCP("chatty-server")

@server.tool()
async def count(to: int, ctx: Context) -> str:
    for i in range(1, to + 1):
        await ctx.report_progress(i, to, f"step {i}")
    await ctx.info("counted")
    await ctx.session.send_tool_list_changed()
    return f"counted to {to}"

server.run()
'''


async def test_notifications_and_progress_reach_the_client(tmp_path: Path) -> None:
    """The upstream's log messages, list-changed notifications and a call's progress pass
    through the proxy to the client, with the client's own progress token."""
    (tmp_path / "chatty.py").write_text(CHATTY_UPSTREAM)
    env = {**os.environ, "STASO_HOME": str(tmp_path)}
    params = StdioServerParameters(command=sys.executable, args=[
        "-m", "staso.cli", "mcp", "proxy", "--", sys.executable, str(tmp_path / "chatty.py")],
        env=env)
    progress: list[tuple[float, float | None, str | None]] = []
    logs: list[str] = []
    changed: list[str] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    async def on_log(params: object) -> None:
        logs.append(str(params.data))  # type: ignore[attr-defined]

    async def on_message(message: object) -> None:
        from mcp import types

        if isinstance(message, types.ServerNotification) and \
                isinstance(message.root, types.ToolListChangedNotification):
            changed.append("tools")

    async with stdio_client(params) as (read, write), ClientSession(
            read, write, logging_callback=on_log, message_handler=on_message) as session:
        await session.initialize()
        result = await session.call_tool("count", {"to": 3}, progress_callback=on_progress)
        assert not result.isError and _text(result) == "counted to 3"
        with anyio.fail_after(10):
            while not (logs and changed):
                await anyio.sleep(0.05)
    assert [p[0] for p in progress] == [1, 2, 3] and progress[-1][2] == "step 3"
    assert "counted" in logs[0] and changed == ["tools"]
