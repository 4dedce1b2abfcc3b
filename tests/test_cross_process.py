"""A person answers from another process (the CLI) while the agent waits."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import staso as st


def _cli(home, *args):
    env = {**os.environ, "STASO_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "staso.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_approval_wakes_waiting_agent_quickly(home):
    first = st.guard("wire_transfer", {"amount": 50000})
    approved_at = {}

    def approve():
        time.sleep(0.5)
        proc = _cli(home, "escalations", "approve", first.escalation_id, "--by", "alice",
                    "--comment", "fine")
        approved_at["t"] = time.monotonic()
        approved_at["proc"] = proc

    t = threading.Thread(target=approve)
    t.start()
    result = st.guard("wire_transfer", {"amount": 50000}, wait_for_escalation=True,
                      escalation_poll_interval=3.0, escalation_timeout=60)
    resumed = time.monotonic()
    t.join()
    proc = approved_at["proc"]
    assert proc.returncode == 0, proc.stderr
    assert result.action == "allow" and result.escalation_id == first.escalation_id
    lag = resumed - approved_at["t"]
    # the CLI process exits after its commit; the agent must not sleep out its 3 s poll
    assert lag < 1.0, f"agent resumed {lag:.3f}s after the CLI finished"


def test_cli_deny_and_errors(home):
    first = st.guard("wire_transfer", {"amount": 50000})
    proc = _cli(home, "escalations", "deny", first.escalation_id, "--by", "bob",
                "--comment", "nope")
    assert proc.returncode == 0, proc.stderr
    again = _cli(home, "escalations", "approve", first.escalation_id, "--by", "carol")
    assert again.returncode == 1 and "already denied by bob" in again.stderr
    missing = _cli(home, "escalations", "show", "esc_nope")
    assert missing.returncode == 1 and "no escalation with id 'esc_nope'" in missing.stderr
    listed = _cli(home, "escalations", "list", "--json")
    assert first.escalation_id in listed.stdout
