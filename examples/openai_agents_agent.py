"""An OpenAI Agents SDK refund agent guarded by staso: one line, ``guard_agent(agent)``.

    python examples/openai_agents_agent.py          # offline: a scripted model plays the agent
    OPENAI_API_KEY=sk-... python examples/openai_agents_agent.py    # a real model

The agent refunds $50 (allowed), is asked to drop a table (blocked), e-mails an SSN (redacted
before the tool sees it) and refunds $5,000 (a person must approve; the agent is told so and
nothing is done). A manager approves, the agent retries, and the refund runs once.
Decisions go to ``$STASO_HOME`` (default ``~/.staso``), or to a staso server with
``STASO_BASE_URL`` and ``STASO_API_KEY`` (an agent key), with ``STASO_APPROVER_KEY`` (an
approver key) for the manager's approval.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import sys
from typing import Any

if not os.environ.get("OPENAI_API_KEY"):
    os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")  # offline: nothing to export

from agents import Agent, Runner, function_tool
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

import staso as st
from staso_openai_agents import guard_agent


@function_tool
def refund(order_id: str, amount: float) -> str:
    """Refund an order, in US dollars."""
    return f"Refunded ${amount:,.2f} on order {order_id}."


@function_tool
def run_sql(query: str) -> str:
    """Run a SQL statement on the production database."""
    return "query ran"


@function_tool
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
_ids = itertools.count(1)


def _call(name: str, **args: Any) -> list[Any]:
    n = next(_ids)
    return [ResponseFunctionToolCall(type="function_call", call_id=f"call_{n}", id=f"fc_{n}",
                                     name=name, arguments=json.dumps(args),
                                     status="completed")]


def _say(text: str) -> list[Any]:
    return [ResponseOutputMessage(type="message", id=f"msg_{next(_ids)}", role="assistant",
                                  status="completed", content=[ResponseOutputText(
                                      type="output_text", text=text, annotations=[])])]


class ScriptedModel(Model):
    """Offline stand-in for a model (the SDK's own Model interface): plays the turns below."""

    def __init__(self) -> None:
        self.turns = [
            _call("refund", order_id="A1", amount=50), _say("Done: $50 refunded."),
            _call("run_sql", query="DROP TABLE users"),
            _say("I can't do that: dropping tables is blocked."),
            _call("send_email", to="bob@example.com",
                  body="Your SSN 123-45-6789 is verified."), _say("Sent."),
            _call("refund", order_id="A2", amount=5000),
            _say("That refund needs a manager's approval; I'll retry once approved."),
            _call("refund", order_id="A2", amount=5000), _say("Done: $5,000 refunded on A2."),
        ]

    async def get_response(self, *args: Any, **kwargs: Any) -> ModelResponse:
        return ModelResponse(output=self.turns.pop(0), usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


def say(agent: Agent[Any], history: list[Any], text: str) -> list[str]:
    """One user turn; prints what the tools answered and what the agent said."""
    print(f"\nuser:  {text}")
    result = Runner.run_sync(agent, [*history, {"role": "user", "content": text}])
    history[:] = result.to_input_list()
    pending = []
    for item in result.new_items:
        if type(item).__name__ == "ToolCallOutputItem":
            print(f"tool:  {item.output}")
            pending += re.findall(r"Escalation id: (esc_\w+)", str(item.output))
    print(f"agent: {result.final_output}")
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
    model: Any = os.environ.get("STASO_EXAMPLE_MODEL", "gpt-4.1-mini") \
        if os.environ.get("OPENAI_API_KEY") else ScriptedModel()
    agent = guard_agent(Agent(  # the one line: every function tool asks staso first
        name="refund-agent", model=model, tools=[refund, run_sql, send_email],
        instructions="You are a support agent. Use the tools. If a tool says a call needs "
                     "approval, tell the user and retry the identical call once approved."))
    history: list[Any] = []
    pending: list[str] = []
    for text in TURNS:
        pending += say(agent, history, text)
    for escalation_id in pending:  # the person, here played by the script
        approve_as_manager(escalation_id)
        print(f"\nmanager approved {escalation_id}")
    if pending:
        say(agent, history, AFTER_APPROVAL)
    st.shutdown()


if __name__ == "__main__":
    main()
