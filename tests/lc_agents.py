"""Offline LangChain agents for the adapter tests: a scripted chat model built on
langchain-core's own fake chat model, real tools, and ``create_agent``."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.tools import BaseTool, tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

from ledger import BodyLedger

_ids = itertools.count(1)


class ScriptedModel(FakeMessagesListChatModel):
    """Answers with its scripted messages in order; tool binding is a no-op."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> ScriptedModel:
        return self


def calls(*tool_calls: tuple[str, dict[str, Any]]) -> AIMessage:
    """A model turn that calls tools: ``calls(("refund", {"amount": 50}))``."""
    return AIMessage(content="", tool_calls=[
        {"name": name, "args": args, "id": f"call_{next(_ids)}", "type": "tool_call"}
        for name, args in tool_calls])


def say(text: str) -> AIMessage:
    return AIMessage(content=text)


class Ledger(BodyLedger):
    """Real tools that write down every time their body runs."""

    def tools(self) -> list[BaseTool]:
        ledger = self

        @tool
        def refund(amount: int, order_id: str = "A1") -> str:
            """Refund an order."""
            ledger.note("refund", amount=amount, order_id=order_id)
            return f"refunded ${amount} on {order_id}"

        @tool
        def run_sql(query: str) -> str:
            """Run a SQL statement."""
            ledger.note("run_sql", query=query)
            return "ok"

        @tool
        def send_email(to: str, body: str) -> str:
            """Send an e-mail."""
            ledger.note("send_email", to=to, body=body)
            return f"sent to {to}"

        @tool
        async def slow_lookup(order_id: str) -> str:
            """Look an order up (async tool)."""
            ledger.note("slow_lookup", order_id=order_id)
            return f"order {order_id}: shipped"

        return [refund, run_sql, send_email, slow_lookup]


def agent(script: list[AIMessage], tools: Sequence[Any], *, middleware: Sequence[Any] = (),
          name: str = "refund-agent", checkpointer: Any = None) -> Any:
    return create_agent(ScriptedModel(responses=script), tools=list(tools),
                        middleware=list(middleware), name=name,
                        checkpointer=checkpointer or InMemorySaver())


def tool_node_graph(tools: list[BaseTool], script: list[AIMessage]) -> Any:
    """A hand-built LangGraph: model node → ToolNode → model node."""
    model = ScriptedModel(responses=script)

    def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def route(state: MessagesState) -> str:
        return "tools" if state["messages"][-1].tool_calls else END

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route, ["tools", END])
    graph.add_edge("tools", "model")
    return graph.compile()


def tool_messages(result: dict[str, Any]) -> list[ToolMessage]:
    return [m for m in result["messages"] if isinstance(m, ToolMessage)]


def thread(thread_id: str, **extra: Any) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id}, **extra}


def last(messages: list[BaseMessage], kind: type) -> Any:
    return [m for m in messages if isinstance(m, kind)][-1]


Check = Callable[[dict[str, Any]], None]
