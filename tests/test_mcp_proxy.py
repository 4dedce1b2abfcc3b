"""`staso mcp proxy -- COMMAND ARGS` in front of a stdio MCP server, driven by the `mcp`
SDK's own client: everything but tools/call passes through (notifications, progress,
cancellation too); each tools/call is guarded (allow forwards, block and pending answer
isError results, and an approved call, retried identically, runs once); a bad upstream
gives the client a clear error, never a hang."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import anyio
import pytest
from mcp import ClientSession, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import McpError

from mcp_peers import (
    FS_POLICY,
    answer_from_cli,
    escalation_id_in,
    escalations,
    proxied,
    require_filesystem_server,
)
from mcp_peers import text_of as _text
from servers import cli


async def test_the_proxy_passes_through_and_guards_tool_calls(tmp_path: Path) -> None:
    async with proxied(tmp_path) as session:
        assert session.get_server_capabilities() is not None
        tools = await session.list_tools()
        assert {t.name for t in tools.tools} == {"echo", "write_note"}
        resource = await session.read_resource("notes://readme")  # type: ignore[arg-type]
        assert "the notes server" in resource.contents[0].text  # type: ignore[union-attr]
        prompts = await session.list_prompts()
        assert [p.name for p in prompts.prompts] == ["summarize_notes"]
        prompt = await session.get_prompt("summarize_notes", {"topic": "mcp"})
        assert prompt.messages[0].content.text == "Summarize the notes about mcp."  # type: ignore[union-attr]
        with pytest.raises(McpError, match="Unknown resource"):  # the upstream's own error
            await session.read_resource("notes://missing")  # type: ignore[arg-type]

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
        escalation_id = escalation_id_in(_text(pending))
        env = {"STASO_HOME": str(tmp_path)}
        cli("escalations", "approve", escalation_id, "--by", "alice", env=env)
        ran = await session.call_tool("write_note", big)  # the identical call, once
        assert not ran.isError and "wrote 500 characters" in _text(ran)
        assert (tmp_path / "notes" / "long.txt").read_text() == "y" * 500
        again = await session.call_tool("write_note", big)
        assert again.isError and "needs a person's approval" in _text(again)


async def test_the_reference_filesystem_server_behind_the_proxy(tmp_path: Path) -> None:
    """The npm reference server (`@modelcontextprotocol/server-filesystem`, installed by
    scripts/test), run by node behind `staso mcp proxy --wait`: reads allowed, a write to a
    protected path blocked, a large write held until a person approves it from the CLI."""
    server = require_filesystem_server()
    files = tmp_path / "files"
    files.mkdir()
    (files / "hello.txt").write_text("hello from disk")
    (tmp_path / "staso.yaml").write_text(FS_POLICY)
    env = {**os.environ, "STASO_HOME": str(tmp_path),
           "STASO_POLICY": str(tmp_path / "staso.yaml")}
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "staso.cli", "mcp", "proxy", "--wait", "--escalation-timeout", "60", "--",
              "node", str(server), str(files)], env=env)
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

        async with anyio.create_task_group() as group:
            group.start_soon(answer_from_cli, tmp_path)
            big = await session.call_tool("write_file", {"path": str(files / "big.txt"),
                                                         "content": "z" * 5000})
        assert not big.isError, _text(big)
        assert (files / "big.txt").read_text() == "z" * 5000


BAD_UPSTREAM = '''
import os
import anyio
from mcp.server.fastmcp import FastMCP

server = FastMCP("bad-server")

@server.tool()
async def hang(seconds: float) -> str:
    await anyio.sleep(seconds)
    return "late"

@server.tool()
def crash() -> str:
    os._exit(3)

@server.tool()
def staso_settings_seen() -> str:
    return ",".join(sorted(k for k in os.environ if k.startswith("STASO_"))) or "none"

server.run()
'''


async def test_a_bad_upstream_gives_the_client_an_error_never_a_hang(tmp_path: Path) -> None:
    """A hung call times out, a server that exits mid-call says so (and the proxy ends
    with it, as the server alone would); and the server never sees staso's own settings
    (its keys among them)."""
    (tmp_path / "bad.py").write_text(BAD_UPSTREAM)
    env = {**os.environ, "STASO_HOME": str(tmp_path), "STASO_MCP_APPROVER_KEY": "sk_approve"}
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "staso.cli", "mcp", "proxy", "--upstream-timeout", "5", "--",
              sys.executable, str(tmp_path / "bad.py")], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        seen = await session.call_tool("staso_settings_seen", {})
        assert _text(seen) == "none"
        with anyio.fail_after(60):  # the proxy answers, the client is never left hanging
            with pytest.raises(McpError, match="Timed out"):
                await session.call_tool("hang", {"seconds": 120})
            with pytest.raises(McpError, match="upstream MCP server closed the connection"):
                await session.call_tool("crash", {})
            with pytest.raises(McpError):  # the proxy has ended: the client hears so
                await session.call_tool("staso_settings_seen", {})


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
        if isinstance(message, types.ServerNotification) and \
                isinstance(message.root, types.ToolListChangedNotification):
            changed.append("tools")

    async with stdio_client(params) as (read, write), ClientSession(
            read, write, logging_callback=on_log, message_handler=on_message) as session:
        await session.initialize()
        result = await session.call_tool("count", {"to": 3}, progress_callback=on_progress)
        assert not result.isError and _text(result) == "counted to 3"
        with anyio.fail_after(30):
            while not (logs and changed):
                await anyio.sleep(0.05)
    assert [p[0] for p in progress] == [1, 2, 3] and progress[-1][2] == "step 3"
    assert "counted" in logs[0] and changed == ["tools"]


SLOW_UPSTREAM = '''
import sys
import anyio
from pathlib import Path
from mcp.server.fastmcp import FastMCP

server = FastMCP("slow-server")
LOG = Path(sys.argv[1])

@server.tool()
async def slow(steps: int) -> str:
    for i in range(steps):
        with LOG.open("a") as log:
            log.write(f"{i}\\n")
        await anyio.sleep(0.2)
    return "finished"

server.run()
'''


async def test_a_cancelled_call_is_cancelled_upstream(tmp_path: Path) -> None:
    """The client cancelling a call (notifications/cancelled) stops the tool upstream: the
    proxy forwards the cancellation with the upstream's own request id."""
    (tmp_path / "slow.py").write_text(SLOW_UPSTREAM)
    steps = tmp_path / "steps.log"
    upstream = [sys.executable, str(tmp_path / "slow.py"), str(steps)]
    outcome: list[object] = []

    def done_steps() -> int:
        return len(steps.read_text().split()) if steps.exists() else 0

    async with proxied(tmp_path, upstream=upstream) as session:
        async def call() -> None:
            try:
                outcome.append(await session.call_tool("slow", {"steps": 50}))
            except McpError as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as group:
            request_id = session._request_id  # the id call_tool takes
            group.start_soon(call)
            with anyio.fail_after(30):
                while done_steps() < 2:
                    await anyio.sleep(0.05)
            await session.send_notification(types.ClientNotification(
                types.CancelledNotification(params=types.CancelledNotificationParams(
                    requestId=request_id, reason="the user pressed stop"))))
            with anyio.fail_after(30):
                while not outcome:
                    await anyio.sleep(0.05)
        stopped_at = done_steps()
        await anyio.sleep(1.5)  # 7 more steps' time: none comes
        assert done_steps() == stopped_at < 50
        assert isinstance(outcome[0], McpError), outcome  # the client hears it ended
        # and the proxy goes on serving
        assert (await session.list_tools()).tools[0].name == "slow"


BROKEN_UPSTREAM = '''
import json, sys

def send(obj):
    sys.stdout.write(json.dumps(obj) + "\\n")
    sys.stdout.flush()

for line in sys.stdin:
    msg = json.loads(line)
    method, mid = msg.get("method"), msg.get("id")
    if method == "initialize":
        send({"jsonrpc": "2.0", "id": mid, "result": {
            "protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
            "serverInfo": {"name": "broken-server", "version": "1"}}})
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": mid, "result": {"tools": [
            {"name": n, "inputSchema": {"type": "object"}}
            for n in ("garble", "malformed", "stranger", "ok")]}})
    elif method == "tools/call":
        name = msg["params"]["name"]
        if name == "garble":
            sys.stdout.write("this is not json {\\n")
            sys.stdout.flush()
        elif name == "malformed":
            send({"jsonrpc": "2.0", "id": mid, "result": {"content": "not a list"}})
        elif name == "stranger":
            send({"jsonrpc": "2.0", "id": 99999, "result": {"content": []}})
        else:
            send({"jsonrpc": "2.0", "id": mid,
                  "result": {"content": [{"type": "text", "text": "fine"}]}})
'''


async def test_an_upstream_speaking_broken_json_rpc_gives_clear_errors(tmp_path: Path
                                                                         ) -> None:
    """A line that is not JSON, a result of the wrong shape, an answer to a request never
    sent: each call ends with an error that says what the upstream did, within the
    upstream timeout, and the proxy goes on serving."""
    (tmp_path / "broken.py").write_text(BROKEN_UPSTREAM)
    upstream = [sys.executable, str(tmp_path / "broken.py")]
    async with proxied(tmp_path, "--upstream-timeout", "5", upstream=upstream) as session:
        with anyio.fail_after(90):
            assert _text(await session.call_tool("ok", {})) == "fine"
            with pytest.raises(McpError, match=r"Timed out.*not an answer in JSON-RPC: "
                                               r"b'this is not json \{'"):
                await session.call_tool("garble", {})
            with pytest.raises(McpError, match=r"malformed result: content: .*not a list"):
                await session.call_tool("malformed", {})
            with pytest.raises(McpError, match=r"Timed out.*an answer to a request never "
                                               r"sent \(id 99999\)"):
                await session.call_tool("stranger", {})
            assert _text(await session.call_tool("ok", {})) == "fine"


async def test_a_waiting_call_reports_progress_until_a_person_answers(tmp_path: Path
                                                                       ) -> None:
    """`--wait`: while the call waits, a client that asked for progress hears how long it
    has waited (of the escalation timeout) and what it waits for; the approval runs it."""
    progress: list[tuple[float, float | None, str | None]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        progress.append((done, total, message))

    big = {"name": "long.txt", "content": "y" * 500}
    async def approve_after_two_reports() -> None:
        with anyio.fail_after(60):
            while len(progress) < 2:
                await anyio.sleep(0.05)
        await answer_from_cli(tmp_path)

    async with proxied(tmp_path, "--wait", "--escalation-timeout", "120") as session, \
            anyio.create_task_group() as group:
        group.start_soon(approve_after_two_reports)
        result = await session.call_tool("write_note", big, progress_callback=on_progress)
    assert not result.isError and "wrote 500 characters" in _text(result)
    assert (tmp_path / "notes" / "long.txt").read_text() == "y" * 500
    [answered] = escalations(tmp_path, "approved")
    done = [p[0] for p in progress]
    assert done == sorted(done) and len(set(done)) == len(done)  # it only grows
    assert all(p[1] == 120 for p in progress)
    assert f"waiting for a person to approve 'write_note' (escalation {answered['id']}, " \
           "rule 'big_note')" == progress[0][2]


ASKING_UPSTREAM = '''
from pydantic import BaseModel
from mcp import types
from mcp.server.fastmcp import Context, FastMCP

server = FastMCP("asking-server", log_level="WARNING")

class Size(BaseModel):
    size: int

@server.tool()
async def pick_size(ctx: Context) -> str:
    answer = await ctx.elicit("Which size?", schema=Size)
    return f"{answer.action}: {answer.data.size if answer.action == 'accept' else '-'}"

@server.tool()
async def summarize(text: str, ctx: Context) -> str:
    result = await ctx.session.create_message(
        [types.SamplingMessage(role="user", content=types.TextContent(type="text", text=text))],
        max_tokens=20)
    return f"summary: {result.content.text}"

server.run()
'''


async def test_the_servers_own_questions_reach_the_client(tmp_path: Path) -> None:
    """Elicitation and sampling requests the upstream makes while serving a call go to the
    client making the call, and its answers back; a client that cannot answer them says
    so itself."""
    (tmp_path / "asking.py").write_text(ASKING_UPSTREAM)
    upstream = [sys.executable, str(tmp_path / "asking.py")]
    asked: list[str] = []

    async def person(context: object, params: types.ElicitRequestFormParams
                     ) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"size": 42})

    async def model(context: object, params: types.CreateMessageRequestParams
                    ) -> types.CreateMessageResult:
        said = params.messages[0].content.text  # type: ignore[union-attr]
        return types.CreateMessageResult(role="assistant", model="scripted",
                                         content=types.TextContent(type="text",
                                                                   text=said.upper()))

    async with proxied(tmp_path, upstream=upstream, elicitation_callback=person,
                       sampling_callback=model) as session:
        picked = await session.call_tool("pick_size", {})
        assert _text(picked) == "accept: 42" and asked == ["Which size?"]
        summary = await session.call_tool("summarize", {"text": "short"})
        assert _text(summary) == "summary: SHORT"
    async with proxied(tmp_path, upstream=upstream) as session:
        cannot = await session.call_tool("pick_size", {})
        # (the client's own answer: the server saw the client's own capabilities)
        assert cannot.isError and "elicitation not supported" in _text(cannot).lower()
        cannot = await session.call_tool("summarize", {"text": "short"})
        assert cannot.isError and "sampling not supported" in _text(cannot).lower()


MODIFY_POLICY = """version: 1
rules:
  - name: redact_ssn
    tools: [write_note]
    action: modify
    modify: {redact: {fields: [content], detectors: [ssn]}}
"""


async def test_a_modified_call_reaches_the_server_rewritten(tmp_path: Path) -> None:
    async with proxied(tmp_path, policy=MODIFY_POLICY) as session:
        result = await session.call_tool("write_note", {"name": "n.txt",
                                                        "content": "SSN 123-45-6789, ok"})
    assert not result.isError
    written = (tmp_path / "notes" / "n.txt").read_text()
    assert "123-45-6789" not in written and written == "SSN [REDACTED:ssn], ok"
