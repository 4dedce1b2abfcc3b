"""Offline CrewAI crews for the adapter tests: a scripted LLM built on crewai's own BaseLLM
(ReAct text, no function calling), real tools, real Crew/Agent/Task. Telemetry off."""

from __future__ import annotations

import json
import os
from typing import Any

from ledger import BodyLedger

os.environ.update(CREWAI_DISABLE_TELEMETRY="true", OTEL_SDK_DISABLED="true",
                  CREWAI_TRACING_ENABLED="false")

from crewai import Agent, Crew, Task
from crewai.llms.base_llm import BaseLLM
from crewai.tools import tool


class ScriptedLLM(BaseLLM):
    """Answers each call with the next scripted ReAct text; keeps what it was sent."""

    def __init__(self, replies: list[str]) -> None:
        super().__init__(model="scripted")
        self._replies = list(replies)
        self.seen: list[Any] = []

    def call(self, messages: Any, tools: Any = None, callbacks: Any = None,
             available_functions: Any = None, from_task: Any = None, from_agent: Any = None,
             response_model: Any = None, **kwargs: Any) -> str:
        self.seen.append(messages)
        return self._replies.pop(0)

    def supports_function_calling(self) -> bool:
        return False

    def observations(self) -> list[str]:
        """The tool results the agent read back ("Observation: ..."), in order."""
        if not self.seen:
            return []
        messages = self.seen[-1] if isinstance(self.seen[-1], list) else [self.seen[-1]]
        texts = []
        for message in messages:
            content = message.get("content", "") if isinstance(message, dict) else message
            if "Observation:" in str(content):
                texts.append(str(content).split("Observation:", 1)[1].strip())
        return texts


def act(tool_name: str, args: dict[str, Any]) -> str:
    return (f"Thought: I should use {tool_name}\nAction: {tool_name}\n"
            f"Action Input: {json.dumps(args)}")


def done(text: str = "done") -> str:
    return f"Thought: I now know the final answer\nFinal Answer: {text}"


class Ledger(BodyLedger):
    """Real tools that write down every time their body runs."""

    def tools(self) -> list[Any]:
        ledger = self

        @tool("refund")
        def refund(order_id: str, amount: float = 10.0) -> str:
            """Refund an order, in US dollars."""
            ledger.note("refund", order_id=order_id, amount=amount)
            return f"refunded ${amount:g} on {order_id}"

        @tool("run_sql")
        def run_sql(query: str) -> str:
            """Run a SQL statement."""
            ledger.note("run_sql", query=query)
            return "ok"

        @tool("send_email")
        def send_email(to: str, body: str) -> str:
            """Send an e-mail."""
            ledger.note("send_email", to=to, body=body)
            return f"sent to {to}"

        return [refund, run_sql, send_email]


def crew(replies: list[str], tools: list[Any], *, name: str = "refund-crew",
         role: str = "support") -> Crew:
    llm = ScriptedLLM(replies)
    agent = Agent(role=role, goal="help customers", backstory="a careful agent", llm=llm,
                  tools=tools, verbose=False, max_iter=5)
    task = Task(description="Handle the customer's request", expected_output="a sentence",
                agent=agent, name="handle-request")
    return Crew(agents=[agent], tasks=[task], name=name, verbose=False)


def llm_of(c: Crew) -> ScriptedLLM:
    llm = c.agents[0].llm
    assert isinstance(llm, ScriptedLLM)
    return llm
