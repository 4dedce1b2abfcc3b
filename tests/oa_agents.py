"""Offline OpenAI Agents SDK runs for the adapter tests: a scripted model implementing the
SDK's own ``Model`` interface, real function tools, ``Runner``. Tracing export is off."""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

from ledger import BodyLedger

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

from agents import Agent, function_tool
from agents.items import ModelResponse
from agents.models.interface import Model
from agents.usage import Usage
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

_ids = itertools.count(1)


class ScriptedModel(Model):
    """Answers each turn with the next scripted output items; records what it was sent."""

    def __init__(self, turns: list[list[Any]]) -> None:
        self.turns = list(turns)
        self.inputs: list[Any] = []

    async def get_response(self, system_instructions: Any, input: Any, model_settings: Any,
                           tools: Any, output_schema: Any, handoffs: Any, tracing: Any,
                           **kwargs: Any) -> ModelResponse:
        self.inputs.append(input)
        return ModelResponse(output=self.turns.pop(0), usage=Usage(), response_id=None)

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("the tests do not stream")


def calls(*tool_calls: tuple[str, Any]) -> list[Any]:
    """A model turn calling tools; arguments are a dict (sent as JSON) or raw text."""
    items = []
    for name, args in tool_calls:
        n = next(_ids)
        items.append(ResponseFunctionToolCall(
            type="function_call", call_id=f"call_{n}", id=f"fc_{n}", name=name,
            status="completed", arguments=args if isinstance(args, str) else json.dumps(args)))
    return items


def say(text: str) -> list[Any]:
    return [ResponseOutputMessage(type="message", id=f"msg_{next(_ids)}", role="assistant",
                                  status="completed", content=[ResponseOutputText(
                                      type="output_text", text=text, annotations=[])])]


class Ledger(BodyLedger):
    """Real tools that write down every time their body runs."""

    def tools(self) -> list[Any]:
        ledger = self

        @function_tool
        def refund(order_id: str, amount: float = 10.0) -> str:
            """Refund an order, in US dollars."""
            ledger.note("refund", order_id=order_id, amount=amount)
            return f"refunded ${amount:g} on {order_id}"

        @function_tool
        def run_sql(query: str) -> str:
            """Run a SQL statement."""
            ledger.note("run_sql", query=query)
            return "ok"

        @function_tool
        async def send_email(to: str, body: str) -> str:
            """Send an e-mail (an async tool)."""
            ledger.note("send_email", to=to, body=body)
            return f"sent to {to}"

        return [refund, run_sql, send_email]


def agent(turns: list[list[Any]], tools: list[Any], **kwargs: Any) -> Agent[Any]:
    return Agent(name=kwargs.pop("name", "refund-agent"), model=ScriptedModel(turns),
                 tools=tools, **kwargs)


def tool_outputs(result: Any) -> list[str]:
    """What the model read back from each tool call, in order."""
    return [str(item.output) for item in result.new_items
            if type(item).__name__ == "ToolCallOutputItem"]
