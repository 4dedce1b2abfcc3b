"""The server evaluates large inputs' policy in worker processes: they answer as the server
itself would, and they never outlive the server, not even one killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx

from servers import Server


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc; Linux, like CI)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_policy_workers_answer_and_leave_with_a_killed_server(tmp_path: Path) -> None:
    server = Server(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'staso.db'}")
    server.create_keys()
    server.start()
    assert server.process is not None
    try:
        big = {"padding": "x " * 40_000, "query": "DROP TABLE users"}  # over 64 KB: a worker
        answer = httpx.post(server.url + "/v1/guard", timeout=60,
                            headers={"Authorization": f"Bearer {server.keys['agent']}"},
                            json={"tool_name": "run_sql", "tool_input": big}).json()
        assert (answer["action"], answer["rule_name"]) == ("block", "builtin/destructive_sql")
        workers = [pid for child in _children(server.process.pid)
                   for pid in [child, *_children(child)]]
        assert workers, "a large input is evaluated in a worker process"
    finally:
        server.stop(signal.SIGKILL)
    deadline = time.monotonic() + 30  # they look for their parent every second
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not [pid for pid in workers if _alive(pid)], "workers outlived the killed server"
