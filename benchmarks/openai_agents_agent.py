"""The OpenAI Agents SDK benchmark: a guarded tool call through ``Runner.run`` with a
scripted model costs at most 1.2 times the unguarded one. Embedded staso, the 50-rule policy,
the allow path. Run it in .venv (openai-agents 0.20) and .venv-agents (the newest).

Run: .venv/bin/python benchmarks/openai_agents_agent.py [--rounds N]
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")
sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1] / "tests")]

from agents import Agent, Runner, function_tool  # noqa: E402
from harness import finish, interleaved, report, start  # noqa: E402

from oa_agents import ScriptedModel, calls, say  # noqa: E402
from staso_openai_agents import guard_tools, staso_tool_guardrail  # noqa: E402

ARGS = {"customer_id": "c_17", "amount": 50, "note": "refund for a late delivery"}
LOOP = asyncio.new_event_loop()


@function_tool
def tool_3(customer_id: str, amount: int, note: str) -> str:
    """Refund a customer (tool_3 has rules in the 50-rule policy)."""
    return f"refunded {amount} to {customer_id}"


def runner(tools: list[Any]) -> Callable[[], None]:
    def run() -> None:
        model = ScriptedModel([calls(("tool_3", ARGS)), say("done")])
        result = LOOP.run_until_complete(Runner.run(
            Agent(name="bench-agent", model=model, tools=tools), "refund c_17"))
        assert result.final_output == "done"
        assert result.new_items[1].output == "refunded 50 to c_17", result.new_items[1]
    return run


def with_guardrail() -> Any:
    import copy

    tool = copy.copy(tool_3)
    tool.tool_input_guardrails = [staso_tool_guardrail()]
    return tool


def main() -> None:
    args = start(__doc__ or "")
    variants = {
        "unguarded": runner([tool_3]),
        "guard_tools": runner(guard_tools([tool_3])),
        "staso_tool_guardrail": runner([with_guardrail()]),
    }
    medians = interleaved(variants, rounds=args.rounds, per_round=args.per_round)
    version = importlib.metadata.version("openai-agents")
    ok = report(f"Runner.run (openai-agents {version}), one allowed tool call per run, "
                "scripted model", medians, "unguarded")
    finish("tool_3", ok)


if __name__ == "__main__":
    main()
