"""The CrewAI benchmark: a guarded tool call in a crew with a scripted LLM costs at most 1.2
times the unguarded one. Embedded staso, the 50-rule policy, the allow path.

Run: .venv/bin/python benchmarks/crewai_crew.py [--rounds N]
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1] / "tests")]

from crewai.tools import tool  # noqa: E402
from harness import finish, interleaved, report, start  # noqa: E402

from crew_agents import act, crew, done  # noqa: E402  (sets crewai's telemetry off)
from staso_crewai import guard_crew, guard_tools  # noqa: E402

ARGS = {"customer_id": "c_17", "amount": 50, "note": "refund for a late delivery"}


@tool("tool_3")
def tool_3(customer_id: str, amount: int, note: str) -> str:
    """Refund a customer (tool_3 has rules in the 50-rule policy)."""
    return f"refunded {amount} to {customer_id}"


def runner(tools: list[Any], guard: Callable[[Any], Any] = lambda c: c) -> Callable[[], None]:
    def run() -> None:
        out = guard(crew([act("tool_3", ARGS), done("done")], tools)).kickoff()
        assert out.raw == "done", out.raw
    return run


def main() -> None:
    args = start(__doc__ or "")
    variants = {
        "unguarded": runner([tool_3]),
        "guard_crew": runner([tool_3], guard_crew),
        "guard_tools": runner(guard_tools([tool_3])),
    }
    medians = interleaved(variants, rounds=args.rounds, per_round=args.per_round)
    ok = report("Crew.kickoff, one allowed tool call per run, scripted LLM", medians,
                "unguarded")
    finish("tool_3", ok)


if __name__ == "__main__":
    main()
