"""``staso demo``: a scripted refund agent guarded in-process, on a temporary store.

(The server and dashboard version arrives with ``staso serve``.)
"""

from __future__ import annotations

import tempfile
import threading
import time


def run_demo(auto_approve: bool = False, timeout: float = 120.0) -> int:
    import staso as st

    home = tempfile.mkdtemp(prefix="staso-demo-")
    st.init(agent_name="refund-agent", home=home)
    print(f"staso demo: embedded guard, store at {home}/staso.db\n")
    calls: list[tuple[str, dict[str, object]]] = [
        ("process_refund", {"customer_id": "c_17", "amount": 50}),
        ("run_sql", {"query": "DROP TABLE customers"}),
        ("send_email", {"to": "c_17@example.com",
                        "body": "Your SSN 123-45-6789 is on file."}),
    ]
    for name, args in calls:
        r = st.guard(name, args)
        shown = r.modified_input if r.action == "modify" else args
        print(f"{name}({args}) -> {r.action.upper()}"
              + (f" [{r.rule_name}] {r.reason}" if r.rule_name else ""))
        if r.action == "modify":
            print(f"    runs with {shown}")
    big = {"customer_id": "c_42", "amount": 5000}
    first = st.guard("process_refund", big)
    print(f"process_refund({big}) -> {first.action.upper()} [{first.rule_name}] "
          f"escalation {first.escalation_id}")
    escalation_id = first.escalation_id or ""
    if auto_approve:
        def approve() -> None:
            time.sleep(1.0)
            st.approve(escalation_id, by="demo-manager", comment="ok for a loyal customer")
        threading.Thread(target=approve, daemon=True).start()
        print("    --yes: approving in 1 s")
    else:
        print(f"    approve from another terminal:\n      STASO_HOME={home} staso escalations "
              f"approve {first.escalation_id} --by you\n    (or deny; no answer in "
              f"{timeout:.0f} s → denied)")
    result = st.guard("process_refund", big, wait_for_escalation=True,
                      escalation_poll_interval=3.0, escalation_timeout=timeout)
    print(f"    -> {result.action.upper()} ({result.escalation_status}) {result.reason}")
    st.shutdown()
    return 0
