"""Run a file from examples/ as a user would: a fresh interpreter, offline, its own store."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import staso as st

ROOT = Path(__file__).parents[1]
OFFLINE = ("OPENAI_API_KEY", "STASO_BASE_URL", "STASO_API_KEY", "STASO_POLICY")


def run_example(name: str, home: Path) -> tuple[str, list[dict[str, Any]], list[Any]]:
    """(what it printed, the decision rows it left, its escalations)."""
    env = {k: v for k, v in os.environ.items() if k not in OFFLINE}
    out = subprocess.run([sys.executable, str(ROOT / "examples" / name)],
                         env={**env, "STASO_HOME": str(home)}, cwd=home,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    client = st.Client(st.Settings.resolve(home=home))
    try:
        return out.stdout, client.transport.service.store.list_decisions(), \
            client.list_escalations()
    finally:
        client.shutdown()


REFUND_STORY = ["Refunded $50.00 on order A1.", "blocked by rule 'builtin/destructive_sql'",
                "Your SSN [REDACTED:ssn] is verified.", "needs a person's approval",
                "manager approved esc_", "Refunded $5,000.00 on order A2."]
REFUND_DECISIONS = [("refund", "allow"), ("refund", "allow"), ("refund", "escalate"),
                    ("run_sql", "block"), ("send_email", "modify")]
