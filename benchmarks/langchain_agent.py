"""SPEC §13 for LangChain: a guarded tool call through ``create_agent`` with a scripted model
costs at most 1.2 times the unguarded one. Embedded staso, the 50-rule policy, the allow path.

Run: .venv/bin/python benchmarks/langchain_agent.py [--rounds N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1] / "tests")]

from embedded_guard import fifty_rule_policy  # noqa: E402
from harness import interleaved, report  # noqa: E402
from langchain.agents import create_agent  # noqa: E402
from langchain_core.messages import AIMessage  # noqa: E402
from langchain_core.tools import tool  # noqa: E402

import staso as st  # noqa: E402
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


def runner(tools: list[Any], middleware: list[Any] = (), callbacks: list[Any] = ()) -> Any:
    graph = create_agent(ScriptedModel(responses=script()), tools=tools,
                         middleware=list(middleware), name="bench-agent")
    payload = {"messages": [("user", "refund c_17")]}
    config = {"callbacks": list(callbacks)} if callbacks else None

    def run() -> None:
        out = graph.invoke(payload, config=config)
        assert out["messages"][2].content == "refunded 50 to c_17", out["messages"][2]
    return run


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=40)
    args = parser.parse_args()
    st.init(agent_name="bench-agent", home=tempfile.mkdtemp(prefix="staso-bench-"),
            policy=fifty_rule_policy())
    variants = {
        "unguarded": runner([tool_3]),
        "StasoMiddleware": runner([tool_3], middleware=[StasoMiddleware()]),
        "guard_tools": runner(guard_tools([tool_3])),
        "StasoCallbackHandler": runner([tool_3], callbacks=[StasoCallbackHandler()]),
    }
    medians = interleaved(variants, rounds=args.rounds, per_round=args.per_round)
    client = st.get_client()
    client.flush()
    decided = client.transport.service.store.list_decisions(limit=5, tool="tool_3")
    assert decided and decided[0]["action"] == "allow"  # the guarded runs really decided
    ok = report("create_agent, one allowed tool call per run, scripted model", medians,
                "unguarded")
    st.shutdown()
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
