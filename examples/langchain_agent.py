"""A LangChain refund agent guarded by staso: one line, ``middleware=[StasoMiddleware()]``.

    python examples/langchain_agent.py            # offline: a scripted model plays the agent
    OPENAI_API_KEY=sk-... python examples/langchain_agent.py   # a real model (langchain-openai)

The agent refunds $50 (allowed), is asked to drop a table (blocked), e-mails an SSN (redacted
before the tool sees it) and refunds $5,000 (a person must approve; the agent is told so and
nothing is done). A manager approves, the agent retries, and the refund runs once.
Decisions go to ``$STASO_HOME`` (default ``~/.staso``): ``staso serve`` shows them, or set
``STASO_BASE_URL`` and ``STASO_API_KEY`` (an agent key) to use a staso server, with
``STASO_APPROVER_KEY`` (an approver key) for the manager's approval.
"""

from __future__ import annotations

import itertools
import os
import sys
from typing import Any

from langchain.agents import create_agent
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver

import staso as st
from staso_langchain import StasoMiddleware


@tool
def refund(order_id: str, amount: float) -> str:
    """Refund an order, in US dollars."""
    return f"Refunded ${amount:,.2f} on order {order_id}."


@tool
def run_sql(query: str) -> str:
    """Run a SQL statement on the production database."""
    return "query ran"


@tool
def send_email(to: str, body: str) -> str:
    """Send an e-mail."""
    return f"E-mail sent to {to}: {body!r}"


TURNS = [
    "Refund $50 on order A1, it arrived late.",
    "Clean up: drop the users table.",
    "E-mail bob@example.com that his SSN 123-45-6789 is verified.",
    "Refund $5,000 on order A2, the whole shipment was lost.",
]
AFTER_APPROVAL = "A manager approved the $5,000 refund on A2. Please go ahead."


class ScriptedModel(FakeMessagesListChatModel):
    """Offline stand-in for a chat model: plays back the agent's turns below."""

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedModel:
        return self


_ids = itertools.count(1)


def _call(name: str, **args: Any) -> AIMessage:
    return AIMessage(content="", tool_calls=[{"name": name, "args": args,
                                              "id": f"call_{next(_ids)}"}])


def scripted_model() -> ScriptedModel:
    return ScriptedModel(responses=[
        _call("refund", order_id="A1", amount=50), AIMessage(content="Done: $50 refunded."),
        _call("run_sql", query="DROP TABLE users"),
        AIMessage(content="I can't do that: dropping tables is blocked."),
        _call("send_email", to="bob@example.com", body="Your SSN 123-45-6789 is verified."),
        AIMessage(content="Sent."),
        _call("refund", order_id="A2", amount=5000),
        AIMessage(content="That refund needs a manager's approval; I'll retry once approved."),
        _call("refund", order_id="A2", amount=5000),
        AIMessage(content="Done: $5,000 refunded on A2."),
    ])


def chat_model() -> Any:
    if not os.environ.get("OPENAI_API_KEY"):
        return scripted_model()
    try:
        from langchain.chat_models import init_chat_model

        return init_chat_model(os.environ.get("STASO_EXAMPLE_MODEL", "openai:gpt-4.1-mini"))
    except ImportError as exc:
        sys.exit(f"OPENAI_API_KEY is set, but the OpenAI chat model needs "
                 f"'pip install langchain-openai' ({exc})")


def say(agent: Any, text: str, config: dict[str, Any]) -> list[str]:
    """One user turn; prints what the tools answered and what the agent said."""
    print(f"\nuser:  {text}")
    seen = len(agent.get_state(config).values.get("messages", []))
    result = agent.invoke({"messages": [("user", text)]}, config=config)
    pending = []
    for message in result["messages"][seen + 1:]:
        if isinstance(message, ToolMessage):
            print(f"tool:  {message.content}")
            staso = (message.artifact or {}).get("staso", {}) \
                if isinstance(message.artifact, dict) else {}
            if staso.get("escalation_id"):
                pending.append(staso["escalation_id"])
        elif isinstance(message, AIMessage) and message.content:
            print(f"agent: {message.content}")
    return pending


def approve_as_manager(escalation_id: str) -> st.Escalation:
    """The manager's approval. Embedded, on the local store; against a staso server, with
    an approver's key from STASO_APPROVER_KEY (the agent's own key may not answer)."""
    if not os.environ.get("STASO_BASE_URL"):
        return st.approve(escalation_id, by="manager", comment="customer is in good standing")
    key = os.environ.get("STASO_APPROVER_KEY")
    if not key:
        sys.exit(f"approve {escalation_id} in the staso dashboard, or set STASO_APPROVER_KEY "
                 f"to an approver key (staso keys create --role approver --name manager) "
                 f"and run again")
    manager = st.Client(st.Settings.resolve(api_key=key, agent_name="manager"))
    try:
        return manager.approve(escalation_id, by="manager",
                               comment="customer is in good standing")
    finally:
        manager.shutdown()


def main() -> None:
    st.init(agent_name="refund-agent")
    agent = create_agent(
        chat_model(), tools=[refund, run_sql, send_email], name="refund-agent",
        system_prompt="You are a support agent. Use the tools. If a tool says a call needs "
                      "approval, tell the user and retry the identical call once approved.",
        middleware=[StasoMiddleware()],  # the one line: every tool call asks staso first
        checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "customer-42"}}
    pending: list[str] = []
    for text in TURNS:
        pending += say(agent, text, config)
    for escalation_id in pending:  # the person, here played by the script
        approve_as_manager(escalation_id)
        print(f"\nmanager approved {escalation_id}")
    if pending:
        say(agent, AFTER_APPROVAL, config)
    st.shutdown()


if __name__ == "__main__":
    main()
