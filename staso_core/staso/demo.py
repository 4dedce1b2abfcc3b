"""``staso demo``: the server and dashboard on a temporary SQLite store, and a scripted refund
agent guarded through them (what ``bash scripts/demo`` runs). ``--yes`` approves through the
API by itself."""

from __future__ import annotations

import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

CALLS: list[tuple[str, dict[str, Any]]] = [
    ("process_refund", {"customer_id": "c_17", "amount": 50}),
    ("run_sql", {"query": "DROP TABLE customers"}),
    ("send_email", {"to": "c_17@example.com", "body": "Your SSN 123-45-6789 is on file."}),
]
BIG_REFUND = {"customer_id": "c_42", "amount": 5000}


def _port(preferred: int) -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", preferred))
        except OSError:
            s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server(threading.Thread):
    """``staso serve`` in a background thread of this process."""

    def __init__(self, home: Path, port: int) -> None:
        super().__init__(name="staso-demo-server", daemon=True)
        import uvicorn

        from .server import ServerConfig, create_app

        app = create_app(ServerConfig(database_url=f"sqlite:///{home / 'staso.db'}"))
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                                    log_level="warning", access_log=False))

    def run(self) -> None:
        self.server.run()

    def wait_started(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.is_alive():
                raise RuntimeError("the demo server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.join(timeout=5)


def run_demo(auto_approve: bool = False, timeout: float = 120.0, port: int = 8787) -> int:
    import httpx

    import staso as st

    from .store import open_store
    from .store.keys import create_key

    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        print("staso demo needs the server extra: pip install 'staso[server]'")
        return 1
    home = Path(tempfile.mkdtemp(prefix="staso-demo-"))
    store = open_store(f"sqlite:///{home / 'staso.db'}")
    _, agent_key = create_key(store, role="agent", name="refund-agent")
    _, approver_key = create_key(store, role="approver", name="demo-manager")
    store.close()
    server = _Server(home, _port(port))
    server.start()
    server.wait_started()
    url = f"http://127.0.0.1:{server.server.config.port}"
    print(f"staso demo: server and dashboard at {url}/  (store {home / 'staso.db'})")
    print(f"    log in with the approver key: {approver_key}\n")
    st.init(api_key=agent_key, base_url=url, agent_name="refund-agent")
    try:
        for name, args in CALLS:
            r = st.guard(name, args)
            print(f"{name}({args}) -> {r.action.upper()}"
                  + (f" [{r.rule_name}] {r.reason}" if r.rule_name else ""))
            if r.action == "modify":
                print(f"    runs with {r.modified_input}")
        first = st.guard("process_refund", BIG_REFUND)
        print(f"process_refund({BIG_REFUND}) -> {first.action.upper()} [{first.rule_name}] "
              f"escalation {first.escalation_id}")
        if auto_approve:
            def approve() -> None:
                time.sleep(1.0)
                httpx.post(f"{url}/v1/escalations/{first.escalation_id}/approve",
                           headers={"Authorization": f"Bearer {approver_key}"},
                           json={"comment": "ok for a loyal customer"}, timeout=10)
            threading.Thread(target=approve, daemon=True).start()
            print("    --yes: approving through the API in 1 s")
        else:
            print(f"    waiting for a person: open {url}/ and approve or deny it\n"
                  f"    (or: staso escalations approve {first.escalation_id} --by you "
                  f"--url {url} --key {approver_key});\n"
                  f"    no answer in {timeout:.0f} s -> denied")
        result = st.guard("process_refund", BIG_REFUND, wait_for_escalation=True,
                          escalation_poll_interval=3.0, escalation_timeout=timeout)
        outcome = "DENIED (timed out)" if result.escalation_status == "timeout" \
            else result.action.upper()
        print(f"    -> {outcome} ({result.escalation_status}) {result.reason}".rstrip())
    finally:
        st.shutdown()
        server.stop()
    return 0
