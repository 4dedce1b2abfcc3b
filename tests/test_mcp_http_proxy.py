"""`staso mcp proxy --upstream URL --listen HOST:PORT`: the streamable-HTTP form, in front
of a streamable-HTTP server built with the `mcp` SDK (the notes server of ``mcp_peers``:
FastMCP under uvicorn, in its own process) that demands an API key. Clients are the SDK's
own streamable-HTTP client."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from mcp import ClientSession, types
from mcp.client.streamable_http import streamable_http_client

from mcp_peers import escalation_id_in, notes_upstream, text_of
from servers import STASO, cli, free_port

POLICY = """version: 1
rules:
  - name: http_context
    tools: [echo]
    when: >-
      context.framework == "mcp" && context.mcp_server == "http-notes"
      && context.mcp_client == "http-client" && size(context.session_id) > 8
      && tool_input.text == "forbidden"
    action: block
    reason: the proxy tells rules where a call came from
  - name: big_note
    tools: [write_note]
    when: size(tool_input.content) > 100
    action: escalate
    reason: a long note needs a person
"""
CLIENT = types.Implementation(name="http-client", version="1.0")


ASKING_SERVER = '''
import sys
import anyio
import uvicorn
from pydantic import BaseModel
from mcp.server.fastmcp import Context, FastMCP

server = FastMCP("asking-server", host="127.0.0.1", log_level="WARNING")

class Sure(BaseModel):
    sure: bool

@server.tool()
async def confirm(what: str, ctx: Context) -> str:
    answer = await ctx.elicit(f"really {what}?", schema=Sure)
    return f"{what}: {answer.action}"

@server.tool()
async def slow(seconds: float) -> str:
    await anyio.sleep(seconds)
    return "slept"

@server.tool()
async def logme(text: str, ctx: Context) -> str:
    await ctx.info(text)
    return "logged"

@server.tool()
def echo(text: str) -> str:
    return text

uvicorn.run(server.streamable_http_app(), host="127.0.0.1", port=int(sys.argv[1]),
            log_level="warning")
'''


@contextmanager
def upstream(tmp_path: Path, asking: bool = False) -> Iterator[str]:
    """The notes server over HTTP with a key (or the asking server: a tool that asks the
    client, one that sleeps, one that logs), in its own process; its URL."""
    port = free_port()
    if asking:
        (tmp_path / "asking.py").write_text(ASKING_SERVER)
        command = [sys.executable, str(tmp_path / "asking.py"), str(port)]
    else:
        command = notes_upstream(tmp_path, "--name", "http-notes", "--port", str(port),
                                 "--key", "upstream-secret")
    process = subprocess.Popen(command)
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(url, timeout=1)  # any answer (401) means it is up
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError("the upstream HTTP server did not start") from None
                time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)


@contextmanager
def http_proxy(tmp_path: Path, upstream_url: str, *options: str,
               listen: str = "127.0.0.1:0") -> Iterator[str]:
    """``staso mcp proxy --upstream URL --listen 127.0.0.1:0 ...``; its URL, read from the
    line it prints once it listens."""
    (tmp_path / "staso.yaml").write_text(POLICY)
    env = {**os.environ, "STASO_HOME": str(tmp_path)}
    process = subprocess.Popen(
        [*STASO, "mcp", "proxy", "--policy", str(tmp_path / "staso.yaml"), "--upstream",
         upstream_url, "--listen", listen, *options],
        env=env, stderr=subprocess.PIPE, text=True)
    said: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            said.append(line)
            if "listening on" in line:
                found.set()
    threading.Thread(target=read, daemon=True).start()
    try:
        if not found.wait(60):
            process.kill()
            raise AssertionError("the proxy did not listen: " + "".join(said))
        yield said[-1].split("listening on ")[1].split()[0]
    finally:
        process.terminate()
        process.wait(10)


async def test_the_http_form_guards_calls_and_passes_the_key_on(tmp_path: Path) -> None:
    with upstream(tmp_path) as upstream_url, http_proxy(
            tmp_path, upstream_url, "--header", "Authorization: Bearer upstream-secret") as url:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/mcp")
        async with streamable_http_client(url) as (read, write, session_id), \
                ClientSession(read, write, client_info=CLIENT) as session:
            init = await session.initialize()
            assert init.serverInfo.name == "http-notes"  # the upstream's identity
            assert {t.name for t in (await session.list_tools()).tools} == {"echo",
                                                                             "write_note"}
            echoed = await session.call_tool("echo", {"text": "hello"})
            assert not echoed.isError and text_of(echoed) == "hello"
            told = await session.call_tool("echo", {"text": "forbidden"})
            assert told.isError and "blocked by rule 'http_context'" in text_of(told)

            big = {"name": "long.txt", "content": "y" * 500}
            pending = await session.call_tool("write_note", big)
            assert pending.isError and "needs a person's approval" in text_of(pending)
            assert not (tmp_path / "notes" / "long.txt").exists()
            cli("escalations", "approve", escalation_id_in(text_of(pending)), "--by", "alice",
                env={"STASO_HOME": str(tmp_path)})
            ran = await session.call_tool("write_note", big)
            assert not ran.isError and "wrote 500 characters" in text_of(ran)
            assert session_id()  # the proxy's own session, given to rules as session_id
        assert (tmp_path / "notes" / "long.txt").read_text() == "y" * 500


async def test_the_http_form_asks_in_a_client_that_can_show_a_form(tmp_path: Path) -> None:
    asked: list[str] = []

    async def person(context: Any, params: Any) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={})

    with upstream(tmp_path) as upstream_url, http_proxy(
            tmp_path, upstream_url, "--header", "Authorization: Bearer upstream-secret",
            "--approve-in-client") as url:
        async with streamable_http_client(url) as (read, write, _), ClientSession(
                read, write, client_info=CLIENT, elicitation_callback=person) as session:
            await session.initialize()
            ran = await session.call_tool("write_note", {"name": "a.txt", "content": "x" * 200})
    assert not ran.isError and (tmp_path / "notes" / "a.txt").exists()
    assert "'write_note' on http-notes" in asked[0]


@pytest.mark.parametrize("listen", ["127.0.0.1:0", "localhost:0", "127.1:0"])
def test_a_web_page_cannot_reach_the_loopback_proxy(tmp_path: Path, listen: str) -> None:
    """On a loopback address, however spelled, the proxy refuses a foreign Origin or Host
    (DNS rebinding)."""
    with upstream(tmp_path) as upstream_url, http_proxy(
            tmp_path, upstream_url, "--header", "Authorization: Bearer upstream-secret",
            listen=listen) as url:
        url = url.replace("localhost", "127.0.0.1").replace("//127.1:", "//127.0.0.1:")
        body = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "page", "version": "1"}}}
        accept = {"Accept": "application/json, text/event-stream"}
        evil = httpx.post(url, json=body, headers={**accept, "Origin": "http://evil.example"})
        assert evil.status_code == 403
        rebound = httpx.post(url, json=body, headers={**accept, "Host": "evil.example"})
        assert rebound.status_code == 421


def test_a_missing_upstream_key_is_a_clear_error(tmp_path: Path) -> None:
    with upstream(tmp_path) as upstream_url:
        (tmp_path / "staso.yaml").write_text(POLICY)
        ran = subprocess.run(
            [*STASO, "mcp", "proxy", "--upstream", upstream_url, "--listen", "127.0.0.1:0"],
            env={**os.environ, "STASO_HOME": str(tmp_path)}, capture_output=True, text=True,
            timeout=60)
    assert ran.returncode == 1
    assert "the upstream MCP server (http" in ran.stderr and "could not be reached" in ran.stderr
    assert "401" in ran.stderr and "Traceback" not in ran.stderr


@pytest.mark.parametrize("args, says", [
    (["--upstream", "http://127.0.0.1:9/mcp"], "--upstream and --listen go together"),
    (["--listen", "127.0.0.1:8000"], "--upstream and --listen go together"),
    (["--upstream", "http://x/mcp", "--listen", "nowhere"], "--listen takes HOST:PORT"),
    (["--upstream", "http://x/mcp", "--listen", "127.0.0.1:1", "--header", "nocolon"],
     "a header is 'Name: value'"),
    (["--header", "A: b", "--", "true"], "--header is for --upstream"),
    ([], "name the MCP server to run"),
])
def test_proxy_options_are_checked(tmp_path: Path, args: list[str], says: str) -> None:
    ran = cli("mcp", "proxy", *args, env={"STASO_HOME": str(tmp_path)}, check=False)
    assert ran.returncode != 0 and says in ran.stderr


@asynccontextmanager
async def http_client(url: str, name: str, **callbacks: Any) -> AsyncIterator[ClientSession]:
    async with streamable_http_client(url) as (read, write, _), ClientSession(
            read, write, client_info=types.Implementation(name=name, version="1"),
            **callbacks) as session:
        await session.initialize()
        yield session


async def test_each_client_hears_only_its_own_calls(tmp_path: Path) -> None:
    """Two clients at once: the upstream's question about A's call goes to A even while B
    has a call in flight (the later one), A's open question holds up nothing of B's, and a
    log line of A's call reaches A only."""
    asked: dict[str, list[str]] = {"A": [], "B": []}
    logs: dict[str, list[str]] = {"A": [], "B": []}
    release = anyio.Event()

    def person(who: str) -> Any:
        async def answer(context: Any, params: Any) -> types.ElicitResult:
            asked[who].append(params.message)
            await release.wait()
            return types.ElicitResult(action="decline")
        return answer

    def log_to(who: str) -> Any:
        async def log(params: Any) -> None:
            logs[who].append(str(params.data))
        return log

    with upstream(tmp_path, asking=True) as upstream_url, \
            http_proxy(tmp_path, upstream_url) as url:
        async with http_client(url, "A", elicitation_callback=person("A"),
                               logging_callback=log_to("A")) as a, \
                http_client(url, "B", elicitation_callback=person("B"),
                            logging_callback=log_to("B")) as b, \
                anyio.create_task_group() as group:
            results: dict[str, str] = {}

            async def call(who: str, session: ClientSession, tool: str,
                           arguments: dict[str, Any]) -> None:
                results[who] = text_of(await session.call_tool(tool, arguments))

            group.start_soon(call, "B-slow", b, "slow", {"seconds": 3})
            await anyio.sleep(0.5)
            group.start_soon(call, "A", a, "confirm", {"what": "A-deletes-prod"})
            with anyio.fail_after(60):
                while not asked["A"]:
                    await anyio.sleep(0.05)
                # A's question stays open (released only below): B is answered all the same
                echoed = await b.call_tool("echo", {"text": "still here"})
                assert text_of(echoed) == "still here"
                release.set()  # (the SDK's client reads nothing more until A's person answers)
                await a.call_tool("logme", {"text": "about A-private-token-123"})
                await anyio.sleep(0.5)  # B would have heard it by now
    assert asked["A"] == ["really A-deletes-prod?"] and asked["B"] == []
    assert results["A"] == "A-deletes-prod: decline" and results["B-slow"] == "slept"
    assert any("A-private-token-123" in line for line in logs["A"])
    assert not any("A-private-token-123" in line for line in logs["B"])


async def test_only_the_client_whose_call_raised_an_escalation_is_asked(tmp_path: Path
                                                                         ) -> None:
    """An identical call from another client shares the escalation; with
    --approve-in-client that client is not asked about it: it cannot answer for A."""
    asked: list[str] = []

    async def person(context: Any, params: Any) -> types.ElicitResult:
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={})

    big = {"name": "shared.txt", "content": "s" * 300}
    with upstream(tmp_path) as upstream_url, http_proxy(
            tmp_path, upstream_url, "--header", "Authorization: Bearer upstream-secret",
            "--approve-in-client") as url:
        async with http_client(url, "A") as a, \
                http_client(url, "B", elicitation_callback=person) as b:
            first = await a.call_tool("write_note", big)  # A cannot show a form
            second = await b.call_tool("write_note", big)
    assert first.isError and second.isError and asked == []
    assert escalation_id_in(text_of(first)) == escalation_id_in(text_of(second))
    assert not (tmp_path / "notes" / "shared.txt").exists()
