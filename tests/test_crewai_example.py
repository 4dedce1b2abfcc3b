"""examples/crewai_crew.py runs offline, as the README and the docs say."""

from __future__ import annotations

import pytest

pytest.importorskip("crewai", reason="crewai is part of the dev extras")

from example_runs import run_example


def test_the_example_runs_offline_and_every_decision_is_logged(tmp_path):
    text, rows, escalations = run_example("crewai_crew.py", tmp_path)
    assert "refund → allow; the tool ran with" in text
    assert "run_sql → block: Destructive SQL" in text
    assert '"body": "Your SSN [REDACTED:ssn] is verified."' in text
    assert "refund → escalate" in text and "manager approved esc_" in text
    assert "Refunded $5,000 on A2 after approval." in text
    assert sorted((r["tool_name"], r["action"]) for r in rows) == [
        ("refund", "allow"), ("refund", "allow"), ("refund", "escalate"),
        ("run_sql", "block"), ("send_email", "modify")]
    assert {r["context"]["crew"] for r in rows} == {"support-crew"}
    [esc] = escalations
    assert esc.status == "approved" and esc.consumed_at is not None
