"""examples/langchain_agent.py runs offline, as the README and the docs say."""

from __future__ import annotations

from example_runs import REFUND_DECISIONS, REFUND_STORY, run_example


def test_the_example_runs_offline_and_every_decision_is_logged(tmp_path):
    text, rows, escalations = run_example("langchain_agent.py", tmp_path)
    for line in REFUND_STORY:
        assert line in text
    assert "123-45-6789'" not in text
    assert sorted((r["tool_name"], r["action"]) for r in rows) == REFUND_DECISIONS
    assert {r["context"]["thread_id"] for r in rows} == {"customer-42"}
    [esc] = escalations
    assert esc.status == "approved" and esc.resolved_by == "manager"
