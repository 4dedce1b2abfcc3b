"""`staso mcp proxy --approve-in-client`: the person at an MCP client that can show a form
(elicitation) answers the escalations of its own calls there; a client that cannot, or a
person who dismisses the question, leaves a normal escalation for the dashboard or CLI.
Each client is the `mcp` SDK's own `ClientSession`, with and without an elicitation
callback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
from mcp import types
from mcp.shared.context import RequestContext

from mcp_peers import answer_from_cli, escalation_id_in, escalations, proxied, text_of
from servers import cli

CLIENT = types.Implementation(name="test-client", version="1.0")
BIG = {"name": "long.txt", "content": "y" * 500}
SECRET_BIG = {"name": "creds.txt", "content": "z" * 500, "api_key": "sk-live-123456"}
POLICY = """version: 1
rules:
  - name: big_note
    tools: [write_note]
    when: size(tool_input.content) > 100
    action: escalate
    reason: a long note needs a person
"""


class Person:
    """An elicitation callback answering as told, keeping what it was asked."""

    def __init__(self, action: str, content: dict[str, Any] | None = None) -> None:
        self.action, self.content = action, content
        self.asked: list[types.ElicitRequestParams] = []
        self.hold: anyio.Event | None = None  # answers only once this is set

    async def __call__(self, context: RequestContext[Any, Any], params: Any
                       ) -> types.ElicitResult:
        self.asked.append(params)
        if self.hold is not None:
            await self.hold.wait()
        return types.ElicitResult(action=self.action, content=self.content)  # type: ignore[arg-type]


def stored(home: Path, escalation_id: str) -> dict[str, Any]:
    import json

    shown = cli("escalations", "show", escalation_id, "--json", env={"STASO_HOME": str(home)})
    found: dict[str, Any] = json.loads(shown.stdout)
    return found


async def test_accepting_in_the_client_approves_and_the_call_runs(tmp_path: Path) -> None:
    person = Person("accept", {"comment": "fine by me"})
    async with proxied(tmp_path, "--approve-in-client", policy=POLICY, client_info=CLIENT,
                       elicitation_callback=person) as session:
        result = await session.call_tool("write_note", BIG)
        assert not result.isError and "wrote 500 characters" in text_of(result)
        assert (tmp_path / "notes" / "long.txt").read_text() == "y" * 500
        again = await session.call_tool("write_note", BIG)  # the approval was used, once
        assert len(person.asked) == 2 and not again.isError
    [question, _] = person.asked
    assert isinstance(question, types.ElicitRequestFormParams)
    for shown in ("'write_note'", "notes-server", "Rule: big_note — a long note needs a person",
                  '"name": "long.txt"', "Accept to approve this call once"):
        assert shown in question.message, question.message
    assert question.requestedSchema["properties"]["comment"]["type"] == "string"
    [first, second] = escalations(tmp_path, "approved")
    for answered in (first, second):
        assert answered["resolved_by"] == "mcp-client:test-client"
        assert answered["comment"] == "fine by me" and answered["consumed_at"] is not None


async def test_declining_in_the_client_denies_and_nothing_runs(tmp_path: Path) -> None:
    person = Person("decline", {"comment": "not today"})
    async with proxied(tmp_path, "--approve-in-client", policy=POLICY, client_info=CLIENT,
                       elicitation_callback=person) as session:
        result = await session.call_tool("write_note", BIG)
    assert result.isError and not (tmp_path / "notes" / "long.txt").exists()
    assert "Denied by mcp-client:test-client: not today" in text_of(result)
    assert "The tool was not run" in text_of(result)
    [denied] = escalations(tmp_path, "denied")
    assert denied["resolved_by"] == "mcp-client:test-client"


async def test_the_question_shows_secrets_masked(tmp_path: Path) -> None:
    person = Person("accept")
    async with proxied(tmp_path, "--approve-in-client", policy=POLICY, client_info=CLIENT,
                       elicitation_callback=person) as session:
        result = await session.call_tool("write_note", SECRET_BIG)
    assert not result.isError  # the tool got its real arguments
    message = person.asked[0].message
    assert "sk-live-123456" not in message and '"api_key": "[MASKED]"' in message


async def test_a_client_without_elicitation_gets_a_normal_escalation(tmp_path: Path) -> None:
    async with proxied(tmp_path, "--approve-in-client", policy=POLICY,
                       client_info=CLIENT) as session:
        pending = await session.call_tool("write_note", BIG)
        assert pending.isError and "needs a person's approval" in text_of(pending)
        escalation_id = escalation_id_in(text_of(pending))
        cli("escalations", "approve", escalation_id, "--by", "alice",
            env={"STASO_HOME": str(tmp_path)})
        ran = await session.call_tool("write_note", BIG)
    assert not ran.isError and (tmp_path / "notes" / "long.txt").exists()
    assert stored(tmp_path, escalation_id)["resolved_by"] == "alice"


async def test_a_dismissed_question_leaves_the_escalation_to_others(tmp_path: Path) -> None:
    person = Person("cancel")
    async with proxied(tmp_path, "--approve-in-client", policy=POLICY, client_info=CLIENT,
                       elicitation_callback=person) as session:
        pending = await session.call_tool("write_note", BIG)
    assert pending.isError and "needs a person's approval" in text_of(pending)
    assert len(person.asked) == 1 and not (tmp_path / "notes" / "long.txt").exists()
    assert stored(tmp_path, escalation_id_in(text_of(pending)))["status"] == "pending"


async def test_waiting_a_decline_in_the_client_ends_the_wait(tmp_path: Path) -> None:
    person = Person("decline")
    async with proxied(tmp_path, "--wait", "--approve-in-client", policy=POLICY,
                       client_info=CLIENT, elicitation_callback=person) as session:
        with anyio.fail_after(60):
            result = await session.call_tool("write_note", BIG)
    assert result.isError and "Denied by mcp-client:test-client" in text_of(result)
    assert not (tmp_path / "notes" / "long.txt").exists()


async def test_waiting_the_first_answer_counts(tmp_path: Path) -> None:
    """Asked in the client and on the dashboard at once, the first answer counts: the CLI
    approves while the client's person is still looking; their late decline changes
    nothing. (The SDK's client runs its elicitation callback in its receive loop, so it
    reads the call's result only once its person has answered.)"""
    person = Person("decline")
    person.hold = anyio.Event()

    async def approve_then_let_the_person_answer() -> None:
        with anyio.fail_after(60):
            while not person.asked:
                await anyio.sleep(0.05)
        await answer_from_cli(tmp_path)
        person.hold.set()  # type: ignore[union-attr]

    async with proxied(tmp_path, "--wait", "--approve-in-client", policy=POLICY,
                       client_info=CLIENT, elicitation_callback=person) as session, \
            anyio.create_task_group() as group:
        group.start_soon(approve_then_let_the_person_answer)
        with anyio.fail_after(60):
            result = await session.call_tool("write_note", BIG)
    assert not result.isError and (tmp_path / "notes" / "long.txt").exists()
    [approved] = escalations(tmp_path, "approved")
    assert approved["resolved_by"] == "alice"
    assert escalations(tmp_path, "denied") == []


async def test_against_a_staso_server_answers_go_with_an_approver_key(tmp_path: Path
                                                                       ) -> None:
    """Remote mode: the proxy asks `staso serve` with its agent key; the client's answer is
    recorded with STASO_MCP_APPROVER_KEY (an agent key may not answer escalations), so the
    server names both: "mcp-client:test-client via alice"."""
    from conftest import make_policy, start_server, stop_server

    serve_home = tmp_path / "serve"
    serve_home.mkdir()
    server = start_server(serve_home, "sqlite", make_policy(serve_home, POLICY))
    remote = {"STASO_BASE_URL": server.url, "STASO_API_KEY": server.keys["agent"]}
    try:
        person = Person("accept")
        async with proxied(tmp_path, "--approve-in-client", policy="version: 1\nrules: []\n",
                           env={**remote, "STASO_MCP_APPROVER_KEY": server.keys["approver"]},
                           client_info=CLIENT, elicitation_callback=person) as session:
            ran = await session.call_tool("write_note", BIG)  # the server's policy decides
        assert not ran.isError and (tmp_path / "notes" / "long.txt").exists()
        listed = server.request("GET", "/v1/escalations", role="approver").json()
        [answered] = listed if isinstance(listed, list) else listed["escalations"]
        assert answered["resolved_by"] == "mcp-client:test-client via alice"
        assert answered["context"]["framework"] == "mcp"

        # without an approver key the proxy says so at start and does not ask in vain
        (tmp_path / "notes" / "long.txt").unlink()
        unasked = Person("accept")
        async with proxied(tmp_path, "--approve-in-client", policy="version: 1\nrules: []\n",
                           env=remote, client_info=CLIENT,
                           elicitation_callback=unasked) as session:
            pending = await session.call_tool("write_note", BIG)
        assert pending.isError and "needs a person's approval" in text_of(pending)
        assert unasked.asked == [] and not (tmp_path / "notes" / "long.txt").exists()
    finally:
        stop_server(server)


async def test_a_nonsense_answer_leaves_a_normal_escalation(tmp_path: Path) -> None:
    """An answer the protocol does not know ("ACCEPT") approves nothing and breaks nothing:
    the call gets the usual pending text, with its escalation id."""
    class Garbler(Person):
        async def __call__(self, context: RequestContext[Any, Any], params: Any
                           ) -> types.ElicitResult:
            self.asked.append(params)
            return types.ElicitResult.model_construct(action="ACCEPT", content=None)

    person = Garbler("accept")
    async with proxied(tmp_path, "--approve-in-client", policy=POLICY, client_info=CLIENT,
                       elicitation_callback=person) as session:
        pending = await session.call_tool("write_note", BIG)
    assert len(person.asked) == 1
    assert pending.isError and "needs a person's approval" in text_of(pending)
    assert stored(tmp_path, escalation_id_in(text_of(pending)))["status"] == "pending"
    assert not (tmp_path / "notes" / "long.txt").exists()
