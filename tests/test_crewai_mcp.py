"""staso_crewai on CrewAI's MCP tools, against real MCP servers: the FastMCP notes server of
``mcp_peers`` (it notes every call it receives) and the npm reference filesystem server run
by node. Both routes CrewAI offers: tools from ``crewai_tools.MCPServerAdapter`` through
``guard_tools``, and an agent's own servers (``Agent(mcps=[...])``), which crewai turns into
tools only at kickoff, through ``guard_crew``. Scripted LLM (crewai's BaseLLM), no network,
nothing reads stdin."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("crewai", reason="crewai is part of the dev extras")
# without mcpadapt (crewai-tools[mcp], in the dev extras) MCPServerAdapter asks on stdin
pytest.importorskip("mcpadapt", reason="crewai-tools[mcp] is part of the dev extras")

from crewai import Agent, Crew, Task
from crewai.mcp import MCPServerStdio
from crewai.utilities.string_utils import sanitize_tool_name
from crewai_tools import MCPServerAdapter
from mcp import StdioServerParameters

import staso as st
from conftest import logged, use_policy
from crew_agents import ScriptedLLM, act, crew, done, llm_of
from mcp_peers import FS_POLICY, NOTE_RULES, notes_upstream, received, require_filesystem_server
from staso_crewai import guard_crew, guard_tools

NOTES_POLICY = """version: 1
rules:
  - name: which_server
    tools: [echo]
    when: >-
      tool_input.text == "forbidden" && context.framework == "crewai"
      && context.crew == "notes-crew" && has(context.mcp_server)
      && context.mcp_server.endsWith("notes")
    action: block
    reason: rules see which server a call goes to
""" + NOTE_RULES + """  - name: no_ssn_in_notes
    tools: [write_note]
    action: modify
    modify: {redact: {fields: [content], detectors: [ssn]}}
"""
BIG = {"name": "long.txt", "content": "y" * 500}
ECHO = ("--echo-prefix", "echo: ")  # what the agent reads is the server's own answer


@pytest.fixture
def notes(home: Path) -> Path:
    """The notes server's folder (its script beside it); the policy above."""
    notes_upstream(home, *ECHO)
    use_policy(home, NOTES_POLICY)
    return home / "notes"


def notes_command(notes: Path) -> tuple[str, list[str]]:
    command, *args = notes_upstream(notes.parent, *ECHO)
    return command, args


@contextmanager
def adapter_tools(command: str, args: list[str]) -> Iterator[list[Any]]:
    """crewai_tools' own route: one server process for the block, its tools guarded."""
    with MCPServerAdapter(StdioServerParameters(command=command, args=args)) as tools:
        yield guard_tools(tools)


def mcp_crew(replies: list[str], command: str, args: list[str], *, name: str = "notes-crew"
             ) -> tuple[Crew, ScriptedLLM]:
    """A crew whose agent has its own MCP server, and no tools until kickoff."""
    llm = ScriptedLLM(replies)
    agent = Agent(role="support", goal="keep notes", backstory="a careful agent", llm=llm,
                  mcps=[MCPServerStdio(command=command, args=args)], max_iter=8)
    task = Task(description="Handle the request", expected_output="a sentence", agent=agent,
                name="handle-request")
    return Crew(agents=[agent], tasks=[task], name=name), llm


def native_name(command: str, args: list[str], tool: str) -> str:
    """The name crewai gives the agent for an MCP server's tool: f"{command}_{args}_{tool}",
    sanitized, cut to 64 characters with a hash."""
    return sanitize_tool_name(f"{command}_{'_'.join(args)}_{tool}")


def seen(llm: ScriptedLLM) -> str:
    return "\n".join(llm.observations())


def pending_id() -> str:
    [escalation] = st.get_client().list_escalations(status="pending")
    return escalation.id


def approve_when_pending(timeout: float = 60.0) -> threading.Thread:
    """A person approving the first pending escalation, whenever it appears."""
    def run() -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pending = st.get_client().list_escalations(status="pending")
            if pending:
                st.approve(pending[0].id, by="manager")
                return
            time.sleep(0.05)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def run_crew(make: Callable[[list[str]], tuple[Crew, ScriptedLLM]], replies: list[str]
             ) -> ScriptedLLM:
    c, llm = make(replies)
    c.kickoff()
    return llm


def test_mcp_server_adapter_tools_through_guard_tools(notes: Path) -> None:
    """allow reaches the server and its answer the agent; block and pending never reach the
    server; modify reaches it rewritten; an approved call runs once; a direct .run() is
    guarded too."""
    with adapter_tools(*notes_command(notes)) as tools:
        assert [t.name for t in tools] == ["echo", "write_note"]

        def make(replies: list[str]) -> tuple[Crew, ScriptedLLM]:
            c = crew(replies, tools, name="notes-crew")
            return c, llm_of(c)

        llm = run_crew(make, [
            act("echo", {"text": "hello"}),
            act("write_note", {"name": "secret.txt", "content": "x"}),
            act("write_note", {"name": "ssn.txt", "content": "SSN 123-45-6789"}),
            act("write_note", BIG), done()])
        assert received(notes) == [("echo", {"text": "hello"}),
                                   ("write_note", {"name": "ssn.txt",
                                                   "content": "SSN [REDACTED:ssn]"})]
        assert (notes / "ssn.txt").read_text() == "SSN [REDACTED:ssn]"
        assert not (notes / "secret.txt").exists() and not (notes / "long.txt").exists()
        text = seen(llm)
        assert "echo: hello" in text
        assert "blocked by rule 'no_secret_notes'" in text and "not run" in text
        escalation_id = pending_id()
        assert "needs a person's approval" in text and escalation_id in text
        assert "Nothing was done" in text

        st.approve(escalation_id, by="manager")
        run_crew(make, [act("write_note", BIG), done()])
        llm = run_crew(make, [act("write_note", BIG), done()])  # the approval is used up
        assert received(notes)[2:] == [("write_note", BIG)]
        assert "needs a person's approval" in seen(llm)

        direct = tools[1].run(name="secret2.txt", content="x")  # outside any crew
        assert "blocked by rule 'no_secret_notes'" in direct
        assert len(received(notes)) == 3

    rows = logged("write_note")
    assert {r["rule_name"] for r in rows} >= {"no_secret_notes", "no_ssn_in_notes",
                                              "big_note"}
    ran = [r for r in rows if r["execution_status"] == "ok"]
    assert len(ran) == 2 and all(r["context"]["framework"] == "crewai" for r in ran)


def test_an_agents_own_mcp_servers_through_guard_crew(notes: Path) -> None:
    """``Agent(mcps=[...])``: the tools crewai adds at kickoff are guarded, rules see the MCP
    tool's own name and the server in the context; the same outcomes as above."""
    command, args = notes_command(notes)
    echo, write = native_name(command, args, "echo"), native_name(command, args, "write_note")

    def make(replies: list[str]) -> tuple[Crew, ScriptedLLM]:
        c, llm = mcp_crew(replies, command, args)
        assert c.agents[0].tools == []  # nothing to wrap before kickoff
        return guard_crew(c), llm

    llm = run_crew(make, [
        act(echo, {"text": "hello"}),
        act(echo, {"text": "forbidden"}),
        act(write, {"name": "secret.txt", "content": "x"}),
        act(write, {"name": "ssn.txt", "content": "SSN 123-45-6789"}),
        act(write, BIG), done()])
    assert received(notes) == [("echo", {"text": "hello"}),
                               ("write_note", {"name": "ssn.txt",
                                               "content": "SSN [REDACTED:ssn]"})]
    assert not (notes / "secret.txt").exists() and not (notes / "long.txt").exists()
    text = seen(llm)
    assert "echo: hello" in text
    assert "blocked by rule 'which_server'" in text
    assert "blocked by rule 'no_secret_notes'" in text
    assert "Tool execution blocked by hook" not in text
    escalation_id = pending_id()
    assert "needs a person's approval" in text and escalation_id in text

    rows = {r["tool_input"]["text"]: r for r in logged("echo")}
    allowed, refused = rows["hello"], rows["forbidden"]
    assert allowed["context"] == {
        "framework": "crewai", "crew": "notes-crew", "agent_role": "support",
        "task": "handle-request", "mcp_server": f"{command}_{'_'.join(args)}",
        "crewai_tool": echo}
    assert allowed["execution_status"] == "ok" and "echo: hello" in allowed["execution_output"]
    assert refused["rule_name"] == "which_server" and refused["execution_status"] == "not_run"

    st.approve(escalation_id, by="manager")
    run_crew(make, [act(write, BIG), done()])
    llm = run_crew(make, [act(write, BIG), done()])  # the approval is used up
    assert received(notes)[2:] == [("write_note", BIG)]
    assert (notes / "long.txt").read_text() == BIG["content"]
    assert "needs a person's approval" in seen(llm)


def test_other_crews_own_mcp_servers_are_not_guarded(notes: Path) -> None:
    command, args = notes_command(notes)
    write = native_name(command, args, "write_note")
    guard_crew(mcp_crew([done()], command, args)[0])
    other, _ = mcp_crew([act(write, {"name": "secret.txt", "content": "x"}), done()],
                        command, args, name="other-crew")
    other.kickoff()
    assert received(notes) == [("write_note", {"name": "secret.txt", "content": "x"})]
    assert logged("write_note") == []


def test_a_guarded_crews_agent_run_on_its_own(notes: Path) -> None:
    """``Agent.kickoff`` adds the agent's MCP tools itself: still guarded, without a crew."""
    command, args = notes_command(notes)
    write = native_name(command, args, "write_note")
    c, llm = mcp_crew([act(write, {"name": "secret.txt", "content": "x"}), done()], command,
                      args)
    [agent] = guard_crew(c).agents
    assert isinstance(agent, Agent)
    agent.kickoff("write a note")
    assert received(notes) == []
    assert "blocked by rule 'no_secret_notes'" in seen(llm)
    [row] = logged("write_note")
    assert row["context"]["crewai_tool"] == write and "crew" not in row["context"]


@pytest.mark.parametrize("route", ["MCPServerAdapter", "Agent(mcps=...)"])
def test_the_reference_filesystem_server(home: Path, route: str) -> None:
    """The npm reference server run by node: a read allowed, a write to .env blocked by the
    protected-paths pack and not written, a large write waiting for a person and run once
    they approve."""
    server = require_filesystem_server()
    use_policy(home, FS_POLICY)
    files = home / "files"
    files.mkdir()
    (files / "hello.txt").write_text("hello from disk")
    command, args = "node", [str(server), str(files)]
    big = {"path": str(files / "big.txt"), "content": "z" * 5000}
    options: dict[str, Any] = {"wait_for_escalation": True, "escalation_timeout": 60}

    def calls(name: Callable[[str], str]) -> list[str]:
        # read_multiple_files: crewai_tools' adapter sends None for read_text_file's optional
        # head and tail, which the server rejects (with or without staso)
        return [act(name("read_multiple_files"), {"paths": [str(files / "hello.txt")]}),
                act(name("write_file"), {"path": str(files / ".env"), "content": "API_KEY=x"}),
                act(name("write_file"), big), done()]

    approver = approve_when_pending()
    if route == "MCPServerAdapter":
        with MCPServerAdapter(StdioServerParameters(command=command, args=args)) as tools:
            c = crew(calls(lambda tool: tool), guard_tools(tools, **options),
                     name="files-crew")
            c.kickoff()
            llm = llm_of(c)
    else:
        c, llm = mcp_crew(calls(lambda tool: native_name(command, args, tool)), command,
                          args, name="files-crew")
        guard_crew(c, **options).kickoff()
    approver.join(timeout=60)

    text = seen(llm)
    assert "hello from disk" in text
    assert not (files / ".env").exists()
    assert "blocked by rule 'builtin/protected_paths'" in text
    assert (files / "big.txt").read_text() == "z" * 5000
    assert len(st.get_client().list_escalations(status="approved")) == 1
    [written] = [r for r in logged("write_file") if r["execution_status"] == "ok"]
    assert written["tool_input"]["path"] == big["path"]
    assert {r["tool_name"] for r in logged()} == {"read_multiple_files", "write_file"}
