"""examples/openai_agents_agent.py runs offline, on the SDK of whichever environment runs it."""

from __future__ import annotations

import pytest

pytest.importorskip("agents", reason="the OpenAI Agents SDK is part of the dev extras")

from example_runs import REFUND_DECISIONS, REFUND_STORY, run_example


def test_the_example_runs_offline_and_every_decision_is_logged(tmp_path):
    text, rows, escalations = run_example("openai_agents_agent.py", tmp_path)
    for line in REFUND_STORY:
        assert line in text
    assert sorted((r["tool_name"], r["action"]) for r in rows) == REFUND_DECISIONS
    assert {r["context"]["agent_name"] for r in rows} == {"refund-agent"}
    [esc] = escalations
    assert esc.status == "approved" and esc.consumed_at is not None
