"""The LangChain benchmark: a guarded tool call through ``create_agent`` with a scripted model
costs at most 1.2 times the unguarded one. Embedded staso, the 50-rule policy, the allow path.

Run: .venv/bin/python benchmarks/langchain_agent.py [--rounds N]
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1] / "tests")]

from harness import finish, interleaved, report, start  # noqa: E402
from langchain.agents import create_agent  # noqa: E402
from langchain.agents.middleware import AgentMiddleware  # noqa: E402
from langchain_core.messages import AIMessage  # noqa: E402
from langchain_core.tools import tool  # noqa: E402

from lc_agents import ScriptedModel  # noqa: E402
from staso_langchain import StasoCallbackHandler, StasoMiddleware, guard_tools  # noqa: E402


@tool
def tool_3(customer_id: str, amount: int, note: str) -> str:
    """Refund a customer (tool_3 has rules in the 50-rule policy)."""
    return f"refunded {amount} to {customer_id}"


def script() -> list[AIMessage]:
    return [AIMessage(content="", tool_calls=[{
        "name": "tool_3", "id": "call_1", "type": "tool_call",
        "args": {"customer_id": "c_17", "amount": 50, "note": "refund for a late delivery"}}]),
        AIMessage(content="done")]


LOOP = asyncio.new_event_loop()


class NoOp(AgentMiddleware):
    """What any tool-call middleware costs in LangChain, before staso does anything: with
    ``ainvoke`` LangChain wraps each middleware's hook for tracing, about 0.1x of a run."""

    def wrap_tool_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        return handler(request)

    async def awrap_tool_call(self, request: Any, handler: Callable[[Any], Any]) -> Any:
        return await handler(request)


def runner(tools: list[Any], middleware: Sequence[Any] = (), callbacks: Sequence[Any] = (),
           *, use_async: bool = False) -> Callable[[], None]:
    graph = create_agent(ScriptedModel(responses=script()), tools=tools,
                         middleware=list(middleware), name="bench-agent")
    payload = {"messages": [("user", "refund c_17")]}
    config = {"callbacks": list(callbacks)} if callbacks else None

    def run() -> None:
        if use_async:
            out = LOOP.run_until_complete(graph.ainvoke(payload, config=config))
        else:
            out = graph.invoke(payload, config=config)
        assert out["messages"][2].content == "refunded 50 to c_17", out["messages"][2]
    return run


def main() -> None:
    args = start(__doc__ or "")
    variants = {
        "unguarded": runner([tool_3]),
        "StasoMiddleware": runner([tool_3], middleware=[StasoMiddleware()]),
        "guard_tools": runner(guard_tools([tool_3])),
        "StasoCallbackHandler": runner([tool_3], callbacks=[StasoCallbackHandler()]),
    }
    async_variants = {
        "unguarded, ainvoke": runner([tool_3], use_async=True),
        "no-op middleware, ainvoke": runner([tool_3], middleware=[NoOp()], use_async=True),
        "StasoMiddleware, ainvoke": runner([tool_3], middleware=[StasoMiddleware()],
                                           use_async=True),
        "guard_tools, ainvoke": runner(guard_tools([tool_3]), use_async=True),
    }
    medians = interleaved(variants, rounds=args.rounds, per_round=args.per_round)
    async_medians = interleaved(async_variants, rounds=args.rounds, per_round=args.per_round)
    ok = report("create_agent, one allowed tool call per run, scripted model", medians,
                "unguarded")
    ok = report("the same with ainvoke", async_medians, "unguarded, ainvoke") and ok
    finish("tool_3", ok)


if __name__ == "__main__":
    main()
