"""The decision log is flushed at exit; an escalation is durable before its id is returned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import staso as st
from staso.store import Store, sqlite_url


def _python(code: str, home, **kwargs):
    env = {**os.environ, "STASO_HOME": str(home)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], env=env,
                            stdout=subprocess.PIPE, text=True, cwd=str(home), **kwargs)


def test_decision_log_flushed_at_exit_without_shutdown(tmp_path):
    proc = _python("""
        import staso as st
        for i in range(300):
            st.guard("lookup", {"i": i})
        print("done", flush=True)
    """, tmp_path)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "done" in out
    store = Store(sqlite_url(tmp_path))
    assert len(store.list_decisions(limit=1000)) == 300
    store.close()


def test_escalation_survives_kill_9_after_id_returned(tmp_path):
    proc = _python("""
        import staso as st, time
        r = st.guard("wire_transfer", {"amount": 50000})
        print(r.escalation_id, flush=True)
        time.sleep(60)
    """, tmp_path)
    assert proc.stdout is not None
    escalation_id = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert escalation_id.startswith("esc_")
    st.init(home=tmp_path)
    try:
        esc = st.get_escalation(escalation_id)
        assert esc.status == "pending" and esc.tool_input == {"amount": 50000}
        st.approve(escalation_id, by="after-crash")
        assert st.guard("wire_transfer", {"amount": 50000}).action == "allow"
    finally:
        st.shutdown()
