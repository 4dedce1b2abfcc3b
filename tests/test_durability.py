"""The decision log is flushed at exit; an escalation is durable before its id is returned."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import staso as st
from staso.dead_letters import DEAD_LETTER_FILE
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


def test_calls_deciding_while_st_init_swaps_the_client_are_all_recorded(tmp_path):
    """Agents' threads keep calling st.guard while the main thread calls st.init again (a
    new policy, say): a call that was deciding on the old client when it shut down used to
    leave its record in a queue that no thread wrote any more (~2 % of them were lost)."""
    import threading

    policies = [f"version: 1\nrules:\n  - name: big\n    when: tool_input.amount > 1000\n"
                f"    action: escalate\n    severity: {severity}\n  - use: builtin/pii\n"
                for severity in ("low", "high")]
    st.init(agent_name="a", home=tmp_path, policy=policies[0])
    told: list[str] = []
    errors: list[str] = []
    stop = threading.Event()

    def agent(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                told.append(st.guard("pay", {"amount": (n * 7 + i) % 3000}).decision_id)
            except Exception as exc:  # a call on a client already shut down: told so
                errors.append(repr(exc))

    threads = [threading.Thread(target=agent, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    try:
        for i in range(20):
            stop.wait(0.03)
            st.init(agent_name="a", home=tmp_path, policy=policies[i % 2])
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    try:
        transport = st.get_client().transport
        missing = [d for d in told if transport.get_decision(d) is None]
        assert len(told) > 100 and missing == [], (len(told), len(missing), errors[:3])
        assert not (tmp_path / DEAD_LETTER_FILE).exists()
    finally:
        st.shutdown()
