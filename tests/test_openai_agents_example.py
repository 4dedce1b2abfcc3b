"""examples/openai_agents_agent.py runs offline, on the SDK of whichever environment runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("agents", reason="the OpenAI Agents SDK is part of the dev extras")

import staso as st

ROOT = Path(__file__).parents[1]


def test_the_example_runs_offline_and_every_decision_is_logged(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OPENAI_API_KEY", "STASO_BASE_URL", "STASO_API_KEY", "STASO_POLICY")}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / "openai_agents_agent.py")],
                         env={**env, "STASO_HOME": str(tmp_path)}, cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "Refunded $50.00 on order A1." in text
    assert "blocked by rule 'builtin/destructive_sql'" in text
    assert "Your SSN [REDACTED:ssn] is verified." in text
    assert "needs a person's approval" in text and "manager approved esc_" in text
    assert "Refunded $5,000.00 on order A2." in text
    client = st.Client(st.Settings.resolve(home=tmp_path))
    try:
        rows = client.transport.service.store.list_decisions()
        assert sorted((r["tool_name"], r["action"]) for r in rows) == [
            ("refund", "allow"), ("refund", "allow"), ("refund", "escalate"),
            ("run_sql", "block"), ("send_email", "modify")]
        assert {r["context"]["agent_name"] for r in rows} == {"refund-agent"}
        [esc] = client.list_escalations()
        assert esc.status == "approved" and esc.consumed_at is not None
    finally:
        client.shutdown()
