"""Who asked for a call, said once, reaches every guarded tool call of every adapter: ``with
st.conversation(..., requested_by="alice")`` around a LangChain / LangGraph run (middleware,
guarded tools, callback handler; sync, async, parallel tool calls in LangGraph's thread
pool), an OpenAI Agents SDK run (run_sync, run, run_streamed; guard_agent, the guardrail,
StasoApprovals) and a CrewAI crew (kickoff, kickoff_async, akickoff, kickoff_for_each,
Agent.kickoff); each framework's own way too (LangGraph's runtime context, configurable or
metadata; the SDK's run context; an MCP call's ``_meta`` through ``staso mcp proxy``, also
sent by the SDK's ``tool_meta_resolver``) and the adapters' ``context=``.

Each escalation keeps ``requested_by``; the rule's ``forbid_self_approval: true`` refuses
alice's approval (NotAnApprover; embedded, and 403 from a real ``staso serve`` on SQLite and
PostgreSQL) and leaves it pending, and bob's approval approves it.

The frameworks live in two environments (the newest openai-agents SDK needs an openai that
crewai does not take), so each test imports its framework itself and the file runs in both:
the OpenAI Agents tests on either SDK, the others where their framework is.
"""

from __future__ import annotations

import asyncio
import importlib.metadata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import staso as st
from conftest import BACKENDS, make_policy, start_server, stop_server, use_policy
from servers import Server, cli
from staso.approvers import NotAnApprover

POLICY = """version: 1
rules:
  - name: big_refund
    tools: [refund]
    when: tool_input.amount > 1000
    action: escalate
    reason: a big refund needs someone other than the person who asked
    forbid_self_approval: true
"""


@pytest.fixture
def policy(home: Path) -> Path:
    use_policy(home, POLICY)
    return home


def pending() -> list[Any]:
    return st.get_client().list_escalations(status="pending")


def only_someone_else_approves(count: int, asker: str = "alice") -> list[str]:
    """``count`` escalations are pending, each asked for by ``asker``, who may not approve
    them (each stays pending); bob may. Their ids."""
    escalations = pending()
    assert len(escalations) == count
    assert [e.requested_by for e in escalations] == [asker] * count
    assert all(e.forbid_self_approval for e in escalations)
    for esc in escalations:
        with pytest.raises(NotAnApprover, match="forbids approving one's own request"):
            st.approve(esc.id, by=asker)
        assert st.get_client().get_escalation(esc.id).status == "pending"
        assert st.approve(esc.id, by="bob").status == "approved"
    return [e.id for e in escalations]


def test_a_conversation_says_who_asked_and_nests(home: Path) -> None:
    with st.conversation("conv-1", requested_by=" alice "), \
            st.conversation("conv-2", topic="refunds") as inner:
        assert inner == {"conversation_id": "conv-2", "requested_by": "alice",
                         "topic": "refunds"}
    with pytest.raises(ValueError, match="blank"), st.conversation("c", requested_by="  "):
        pass
    with pytest.raises(TypeError, match="a name"), \
            st.conversation("c", requested_by=42):  # type: ignore[arg-type]
        pass


# -- LangChain / LangGraph ---------------------------------------------------------------------
def needs_langchain() -> Any:
    pytest.importorskip("langchain", reason="LangChain is part of the dev extras")
    import lc_agents

    return lc_agents


def two_refunds(lc: Any, first: int = 5000) -> list[Any]:
    """A model turn with two refund calls (LangGraph runs them at once, in its thread pool
    for a sync run), then a last word."""
    return [lc.calls(("refund", {"amount": first, "order_id": "A1"}),
                    ("refund", {"amount": first + 1, "order_id": "A2"})), lc.say("asked")]


@pytest.mark.parametrize("mode", ["invoke", "ainvoke", "stream"])
def test_langchain_middleware_in_a_conversation(policy: Path, mode: str) -> None:
    lc = needs_langchain()
    from staso_langchain import StasoMiddleware

    ledger = lc.Ledger()
    agent = lc.agent(two_refunds(lc), ledger.tools(), middleware=[StasoMiddleware()])
    with st.conversation("conv-1", requested_by="alice"):
        if mode == "ainvoke":
            asyncio.run(agent.ainvoke({"messages": [("user", "refund")]}, lc.thread("t1")))
        elif mode == "stream":
            list(agent.stream({"messages": [("user", "refund")]}, lc.thread("t1")))
        else:
            agent.invoke({"messages": [("user", "refund")]}, lc.thread("t1"))
    assert ledger.ran == []
    only_someone_else_approves(2)
    assert {e.context["conversation_id"] for e in st.get_client().list_escalations()} == {
        "conv-1"}


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_langchain_guarded_tools_in_a_tool_node(policy: Path, mode: str) -> None:
    lc = needs_langchain()
    from staso_langchain import guard_tools

    ledger = lc.Ledger()
    graph = lc.tool_node_graph(guard_tools(ledger.tools()), two_refunds(lc))
    with st.conversation("conv-1", requested_by="alice"):
        if mode == "ainvoke":
            asyncio.run(graph.ainvoke({"messages": [("user", "refund")]}))
        else:
            graph.invoke({"messages": [("user", "refund")]})
    assert ledger.ran == []
    only_someone_else_approves(2)


@pytest.mark.parametrize("mode", ["invoke", "ainvoke"])
def test_langchain_callback_handler_in_a_conversation(policy: Path, mode: str) -> None:
    lc = needs_langchain()
    from staso_langchain import StasoCallbackHandler

    ledger = lc.Ledger()
    agent = lc.agent([lc.calls(("refund", {"amount": 5000, "order_id": "A1"})), lc.say("x")],
                    ledger.tools())
    config = {"callbacks": [StasoCallbackHandler()], **lc.thread("t1")}
    with st.conversation("conv-1", requested_by="alice"), \
            pytest.raises(st.EscalationPending):
        if mode == "ainvoke":
            asyncio.run(agent.ainvoke({"messages": [("user", "refund")]}, config))
        else:
            agent.invoke({"messages": [("user", "refund")]}, config)
    assert ledger.ran == []
    only_someone_else_approves(1)


@dataclass
class Asker:
    """A LangGraph runtime context (``create_agent(context_schema=...)``) or an OpenAI
    Agents SDK run context, as apps give them: their own object, never shown to the model."""

    user_id: str
    requested_by: str


def test_langchain_invocation_says_who_asked(policy: Path) -> None:
    """Per invocation: the runtime context (``invoke(..., context=...)``), ``configurable``
    or ``metadata``, for each entry point; it wins over a conversation's, as the more
    specific; ``context=`` of the middleware fixes it per agent."""
    lc = needs_langchain()
    from staso_langchain import StasoCallbackHandler, StasoMiddleware, guard_tools

    ledger, ask = lc.Ledger(), {"messages": [("user", "refund")]}

    def one_refund(amount: int) -> list[Any]:
        return [lc.calls(("refund", {"amount": amount, "order_id": "A1"})), lc.say("x")]

    def guarded_agent(amount: int, **options: Any) -> Any:
        return lc.agent(one_refund(amount), ledger.tools(),
                       middleware=[StasoMiddleware(**options)])

    configurable = {"configurable": {"thread_id": "t1", "requested_by": "carol"}}
    guarded_agent(5001).invoke(ask, configurable)
    lc.tool_node_graph(guard_tools(ledger.tools()), one_refund(5002)).invoke(ask, configurable)
    with pytest.raises(st.EscalationPending):
        lc.agent(one_refund(5003), ledger.tools()).invoke(ask, lc.thread(
            "t2", metadata={"requested_by": "carol"}, callbacks=[StasoCallbackHandler()]))
    with pytest.raises(st.EscalationPending):
        lc.agent(one_refund(5004), ledger.tools()).invoke(
            ask, lc.thread("t3", callbacks=[StasoCallbackHandler()]),
            context={"requested_by": "carol"})
    with st.conversation("conv-1", requested_by="alice"):
        guarded_agent(5005).invoke(ask, lc.thread("t4"), context=Asker("u-7", "carol"))
    guarded_agent(5006, context={"requested_by": "carol"}).invoke(ask, lc.thread("t5"))
    assert ledger.ran == []
    only_someone_else_approves(6, asker="carol")


# -- OpenAI Agents SDK ---------------------------------------------------------------------------
def needs_openai_agents() -> Any:
    pytest.importorskip("agents", reason="the OpenAI Agents SDK is part of the dev extras")
    import oa_agents

    return oa_agents


def run_agent(guarded: Any, mode: str, **kwargs: Any) -> Any:
    from agents import Runner

    if mode == "run_sync":
        return Runner.run_sync(guarded, "refund", **kwargs)
    if mode == "run":
        return asyncio.run(Runner.run(guarded, "refund", **kwargs))

    async def streamed() -> Any:
        result = Runner.run_streamed(guarded, "refund", **kwargs)
        async for _ in result.stream_events():
            pass
        return result
    guarded.model = streaming(guarded.model)
    return asyncio.run(streamed())


def streaming(model: Any) -> Any:
    """The scripted model, streaming each turn as the one event the SDK builds a turn from
    (``response.completed``)."""
    from openai.types.responses import Response, ResponseCompletedEvent

    class Streaming(type(model)):  # type: ignore[misc]
        async def stream_response(self, *args: Any, **kwargs: Any) -> Any:
            response = Response.model_construct(
                id="resp_1", object="response", created_at=0, model="scripted",
                output=self.turns.pop(0), usage=None, parallel_tool_calls=True,
                tool_choice="auto", tools=[])
            yield ResponseCompletedEvent.model_construct(
                type="response.completed", sequence_number=0, response=response)

    return Streaming(model.turns)


@pytest.mark.parametrize("mode", ["run_sync", "run", "run_streamed"])
def test_openai_agents_run_in_a_conversation(policy: Path, mode: str) -> None:
    oa = needs_openai_agents()
    from staso_openai_agents import guard_agent

    ledger = oa.Ledger()
    guarded = guard_agent(oa.agent([oa.calls(("refund", {"order_id": "A1", "amount": 5000}),
                                           ("refund", {"order_id": "A2", "amount": 5001})),
                                   oa.say("asked")], ledger.tools()))
    with st.conversation("conv-1", requested_by="alice"):
        result = run_agent(guarded, mode)
    assert ledger.ran == [] and result.final_output == "asked"
    only_someone_else_approves(2)


def test_openai_agents_guardrail_in_a_conversation(policy: Path) -> None:
    oa = needs_openai_agents()
    from staso_openai_agents import staso_tool_guardrail

    ledger = oa.Ledger()
    tools = ledger.tools()
    for tool in tools:
        tool.tool_input_guardrails = [staso_tool_guardrail()]
    with st.conversation("conv-1", requested_by="alice"):
        run_agent(oa.agent([oa.calls(("refund", {"order_id": "A1", "amount": 5000})),
                           oa.say("x")], tools), "run")
    assert ledger.ran == []
    only_someone_else_approves(1)


@pytest.mark.parametrize("context", [{"requested_by": "alice"}, Asker("u-1", "alice")],
                         ids=["dict", "dataclass"])
def test_openai_agents_run_context_says_who_asked(policy: Path, context: Any) -> None:
    oa = needs_openai_agents()
    from staso_openai_agents import guard_agent

    ledger = oa.Ledger()
    guarded = guard_agent(oa.agent([oa.calls(("refund", {"order_id": "A1", "amount": 5000})),
                                   oa.say("asked")], ledger.tools()))
    run_agent(guarded, "run_sync", context=context)
    assert ledger.ran == []
    only_someone_else_approves(1)


def test_openai_agents_approvals_carry_who_asked_through_the_interruption(policy: Path
                                                                          ) -> None:
    """StasoApprovals decides in the SDK's ``needs_approval``: the escalation there keeps
    who asked (the run context's), alice cannot approve it, bob's approval resumes the run
    and the tool runs once."""
    oa = needs_openai_agents()
    from agents import Runner

    from staso_openai_agents import StasoApprovals

    ledger = oa.Ledger()
    approvals = StasoApprovals(answer_timeout=20, poll_interval=0.05)
    guarded = approvals.agent(oa.agent([oa.calls(("refund", {"order_id": "A2",
                                                           "amount": 5000})),
                                       oa.say("refunded")], ledger.tools()))

    async def run() -> Any:
        result = await Runner.run(guarded, "refund", context=Asker("u-1", "alice"))
        assert len(result.interruptions) == 1 and ledger.ran == []
        await asyncio.to_thread(only_someone_else_approves, 1)
        state = await approvals.settle(result)
        return await Runner.run(guarded, state)

    result = asyncio.run(run())
    assert ledger.ran == [("refund", {"order_id": "A2", "amount": 5000.0})]
    assert result.final_output == "refunded"


# -- CrewAI ------------------------------------------------------------------------------------
def needs_crewai() -> Any:
    pytest.importorskip("crewai", reason="crewai is part of the dev extras")
    import crew_agents

    return crew_agents


@pytest.mark.parametrize("mode", ["kickoff", "kickoff_async", "akickoff", "kickoff_for_each"])
def test_crewai_kickoff_in_a_conversation(policy: Path, mode: str) -> None:
    cr = needs_crewai()
    from staso_crewai import guard_crew

    ledger = cr.Ledger()
    crew = guard_crew(cr.crew([cr.act("refund", {"order_id": "A1", "amount": 5000}),
                              cr.done()], ledger.tools()))
    with st.conversation("conv-1", requested_by="alice"):
        if mode == "kickoff_async":
            asyncio.run(crew.kickoff_async())
        elif mode == "akickoff":
            asyncio.run(crew.akickoff())
        elif mode == "kickoff_for_each":
            crew.kickoff_for_each([{}])
        else:
            crew.kickoff()
    assert ledger.ran == []
    only_someone_else_approves(1)


@pytest.mark.parametrize("mode", ["kickoff", "akickoff"])
def test_crewai_agent_with_guarded_tools_in_a_conversation(policy: Path, mode: str) -> None:
    """An agent outside a crew, with guard_tools alone (no hooks): the tool asks itself."""
    cr = needs_crewai()
    from crewai import Agent

    from staso_crewai import guard_tools

    ledger = cr.Ledger()
    agent = Agent(role="support", goal="help customers", backstory="careful",
                  llm=cr.ScriptedLLM([cr.act("refund", {"order_id": "A1", "amount": 5000}),
                                     cr.done()]),
                  tools=guard_tools(ledger.tools()), verbose=False, max_iter=5)
    with st.conversation("conv-1", requested_by="alice"):
        if mode == "akickoff":
            asyncio.run(agent.akickoff("refund A1"))
        else:
            agent.kickoff("refund A1")
    assert ledger.ran == []
    only_someone_else_approves(1)


def test_crewai_context_fixes_who_asked_for_a_crew(policy: Path) -> None:
    cr = needs_crewai()
    from staso_crewai import guard_crew

    ledger = cr.Ledger()
    guard_crew(cr.crew([cr.act("refund", {"order_id": "A1", "amount": 5000}), cr.done()],
                      ledger.tools()), context={"requested_by": "alice"}).kickoff()
    assert ledger.ran == []
    only_someone_else_approves(1)


# -- staso mcp proxy: the call's _meta ----------------------------------------------------------
MCP_POLICY = """version: 1
rules:
  - name: big_note
    tools: [write_note]
    when: size(tool_input.content) > 100
    action: escalate
    reason: a long note needs someone other than the person who asked
    forbid_self_approval: true
"""


def needs_mcp() -> None:
    """The proxy is built on the ``mcp`` SDK 1.x (the OpenAI Agents environment has 2.x)."""
    pytest.importorskip("mcp", reason="mcp is part of the dev extras")
    if not importlib.metadata.version("mcp").startswith("1."):
        pytest.skip("staso mcp proxy is built on mcp 1.x")


def test_mcp_stdio_proxy_reads_who_asked_from_the_calls_meta(tmp_path: Path) -> None:
    needs_mcp()
    from mcp_peers import escalation_id_in, escalations, proxied, text_of

    big = {"name": "long.txt", "content": "y" * 500}
    home = {"STASO_HOME": str(tmp_path)}

    async def scenario() -> None:
        async with proxied(tmp_path, policy=MCP_POLICY) as session:
            asked = await session.call_tool("write_note", big, meta={"requested_by": "alice"})
            assert asked.isError and "needs a person's approval" in text_of(asked)
            escalation_id = escalation_id_in(text_of(asked))
            [esc] = escalations(tmp_path)
            assert esc["id"] == escalation_id and esc["requested_by"] == "alice"
            refused = cli("escalations", "approve", escalation_id, "--by", "alice", env=home,
                          check=False)
            assert refused.returncode != 0
            assert "forbids approving one's own request" in refused.stderr
            assert [e["id"] for e in escalations(tmp_path)] == [escalation_id]  # pending
            cli("escalations", "approve", escalation_id, "--by", "bob", env=home)
            ran = await session.call_tool("write_note", big, meta={"requested_by": "alice"})
            assert not ran.isError and "wrote 500 characters" in text_of(ran)
            # a call without _meta says nobody
            await session.call_tool("write_note", {**big, "name": "other.txt"})
        [nobody] = escalations(tmp_path)
        assert nobody["requested_by"] is None

    asyncio.run(scenario())
    assert (tmp_path / "notes" / "long.txt").read_text() == "y" * 500


def test_mcp_http_proxy_reads_who_asked_from_the_calls_meta(tmp_path: Path) -> None:
    needs_mcp()
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    from mcp_peers import escalation_id_in, escalations, text_of
    from test_mcp_http_proxy import CLIENT, http_proxy, upstream

    async def scenario(url: str) -> str:
        async with streamable_http_client(url) as (read, write, _), \
                ClientSession(read, write, client_info=CLIENT) as session:
            await session.initialize()
            asked = await session.call_tool("write_note", {"name": "a.txt", "content": "y" * 200},
                                            meta={"requested_by": "alice"})
            assert asked.isError
            return escalation_id_in(text_of(asked))

    with upstream(tmp_path) as upstream_url, http_proxy(
            tmp_path, upstream_url, "--header", "Authorization: Bearer upstream-secret") as url:
        escalation_id = asyncio.run(scenario(url))
    [esc] = escalations(tmp_path)
    assert esc["id"] == escalation_id and esc["requested_by"] == "alice"


@pytest.mark.parametrize("asker", ["conversation", "run context"])
def test_openai_agents_tell_the_mcp_proxy_who_asked(tmp_path: Path, asker: str) -> None:
    """An agent whose MCP server runs behind ``staso mcp proxy`` (and is not guarded in the
    agent): ``requested_by_meta`` sends who asked in each call's ``_meta``."""
    oa = needs_openai_agents()
    needs_mcp()
    from agents import Runner
    from agents.mcp import MCPServerStdio

    from mcp_peers import escalations, notes_upstream, proxy_params
    from staso_openai_agents import requested_by_meta

    proxy = proxy_params(tmp_path, [], notes_upstream(tmp_path), policy=MCP_POLICY)
    turns = [oa.calls(("write_note", {"name": "a.txt", "content": "y" * 200})),
             oa.say("asked")]

    async def run() -> Any:
        async with MCPServerStdio(
                params={"command": proxy.command, "args": proxy.args, "env": proxy.env},
                name="notes", tool_meta_resolver=requested_by_meta,
                client_session_timeout_seconds=60) as server:
            agent = oa.agent(turns, [], mcp_servers=[server])
            if asker == "conversation":
                with st.conversation("conv-1", requested_by="alice"):
                    return await Runner.run(agent, "write it")
            return await Runner.run(agent, "write it", context=Asker("u-1", "alice"))

    result = asyncio.run(run())
    assert "needs a person's approval" in oa.tool_outputs(result)[0]
    [esc] = escalations(tmp_path)
    assert esc["requested_by"] == "alice" and esc["context"]["framework"] == "mcp"
    assert not (tmp_path / "notes" / "a.txt").exists()


# -- remote: a real staso serve ---------------------------------------------------------------
@pytest.fixture(scope="module", params=BACKENDS)
def forbidding_server(request: pytest.FixtureRequest,
                      tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A staso serve with the forbid_self_approval policy and two approvers' keys: alice's
    (made by ``create_keys``) and bob's."""
    tmp = tmp_path_factory.mktemp(f"requested-by-{request.param}")
    running = start_server(tmp, request.param, make_policy(tmp, POLICY))
    running.keys["bob"] = cli("keys", "create", "--role", "approver", "--name", "bob",
                              env=running.env).stdout.strip()
    yield running
    stop_server(running)


def test_remote_langchain_run_in_a_conversation(forbidding_server: Server) -> None:
    lc = needs_langchain()
    from staso_langchain import StasoMiddleware

    server, ledger = forbidding_server, lc.Ledger()
    st.init(api_key=server.keys["agent"], base_url=server.url, agent_name="refund-agent")
    try:
        script = [lc.calls(("refund", {"amount": 7000, "order_id": "R1"})), lc.say("asked")]
        with st.conversation("conv-remote", requested_by="alice"):
            lc.agent(script, ledger.tools(), middleware=[StasoMiddleware()]).invoke(
                {"messages": [("user", "refund")]}, lc.thread("t-remote"))
        assert ledger.ran == []
        listed = server.request("GET", "/v1/escalations", role="admin",
                                params={"status": "pending"}).json()
        [esc] = [e for e in listed if e["tool_input"] == {"amount": 7000, "order_id": "R1"}]
        assert esc["requested_by"] == "alice" and esc["forbid_self_approval"] is True
        path = f"/v1/escalations/{esc['id']}"
        refused = server.request("POST", path + "/approve", role="approver", json={})
        assert refused.status_code == 403, refused.text  # the approver key named alice
        assert "forbids approving one's own request" in refused.text
        assert server.request("GET", path, role="admin").json()["status"] == "pending"
        approved = server.request("POST", path + "/approve", role=None, json={},
                                  headers={"Authorization": f"Bearer {server.keys['bob']}"})
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "approved"
        # the identical call, asked again, runs on bob's approval
        with st.conversation("conv-remote", requested_by="alice"):
            lc.agent(script, ledger.tools(), middleware=[StasoMiddleware()]).invoke(
                {"messages": [("user", "refund")]}, lc.thread("t-remote"))
        assert ledger.ran == [("refund", {"amount": 7000, "order_id": "R1"})]
    finally:
        st.shutdown()
