"""Concurrency on one real ``staso serve`` (exactly-once resolution, one escalation per
fingerprint, over the HTTP API): 50 approvers answering one escalation at once, and 1,000
agents guarding at once."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from servers import Server
from staso.client import Client
from staso.models import GuardResult
from staso.store import Store
from staso.store.keys import create_key
from tally import tally


def test_fifty_approvers_at_once_exactly_one_wins(server: Server) -> None:
    store = Store(server.database_url)
    keys = {f"approver-{i}": create_key(store, role="approver", name=f"approver-{i}")[1]
            for i in range(50)}
    store.close()
    escalated = server.request("POST", "/v1/guard", json={
        "tool_name": "process_refund", "tool_input": {"amount": 50_000, "case": "fifty"}}).json()
    path = f"{server.url}/v1/escalations/{escalated['escalation_id']}"
    start = threading.Barrier(len(keys))
    answers: dict[str, httpx.Response] = {}

    def approver(i: int, name: str, key: str) -> None:
        verb = "approve" if i % 2 else "deny"
        with httpx.Client(headers={"Authorization": f"Bearer {key}"}, timeout=30) as client:
            client.get(server.url + "/healthz")  # connected before the race starts
            start.wait()
            answers[name] = client.post(f"{path}/{verb}", json={"comment": f"{name} says"})

    threads = [threading.Thread(target=approver, args=(i, name, key))
               for i, (name, key) in enumerate(keys.items())]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = Counter(a.status_code for a in answers.values())
    assert statuses == {200: 1, 409: 49}, statuses
    (winner,) = [name for name, a in answers.items() if a.status_code == 200]
    final = server.request("GET", f"/v1/escalations/{escalated['escalation_id']}").json()
    assert final["resolved_by"] == winner and final["comment"] == f"{winner} says"
    assert final["status"] == answers[winner].json()["status"]
    for name, answer in answers.items():  # every loser is told who won, not a generic error
        if name != winner:
            assert answer.json()["status"] == final["status"]
    tally(f"50 approvers answer one escalation at once ({server.backend})", sent=50,
          escalations=1, won=1, conflicts=49, lost=0)


def test_a_thousand_agents_guarding_at_once(server: Server) -> None:
    """1,000 agents, each with its own client, make four calls at once: an allow, a block,
    a modify, and the refund every agent of its fleet of 100 wants (one escalation a fleet,
    however many ask at the same moment)."""
    agents, fleets = 1000, 10
    clients = [server.agent_client(f"fleet-{i % fleets}", guard_timeout=60)
               for i in range(agents)]
    refund = {"amount": 9000, "case": f"thousand-{time.time_ns()}"}

    async def agent(i: int, client: Client, start: asyncio.Event) -> list[GuardResult]:
        await start.wait()
        return list(await asyncio.gather(
            client.aguard("lookup_order", {"order_id": f"o_{i}"}),
            client.aguard("run_sql", {"query": "DROP TABLE customers"}),
            client.aguard("send_email", {"body": f"SSN 123-45-{6789 - i % 1000:04d}"}),
            client.aguard("process_refund", refund)))

    async def run() -> tuple[list[list[GuardResult]], float]:
        start = asyncio.Event()
        tasks = [asyncio.create_task(agent(i, c, start)) for i, c in enumerate(clients)]
        await asyncio.sleep(0)
        began = time.perf_counter()
        start.set()
        done = await asyncio.gather(*tasks)
        return done, time.perf_counter() - began

    try:
        results, elapsed = asyncio.run(run())
    finally:
        for c in clients:
            c.shutdown()
    flat = [r for rs in results for r in rs]
    assert len(flat) == 4 * agents
    assert not [r.reason for r in flat if r.rule_name == "staso/unavailable"]
    by_tool = {tool: Counter(r.action for rs in results for r in rs if r.tool_name == tool)
               for tool in ("lookup_order", "run_sql", "send_email", "process_refund")}
    assert by_tool == {"lookup_order": {"allow": agents}, "run_sql": {"block": agents},
                       "send_email": {"modify": agents},
                       "process_refund": {"escalate": agents}}
    escalation_ids = {r.escalation_id for rs in results for r in rs if r.escalation_id}
    assert len(escalation_ids) == fleets  # one per fleet, not one per agent
    stored = {r.decision_id for r in flat} & server.stored_ids("decisions")
    assert len(stored) == 4 * agents  # every decision recorded
    tally(f"1,000 agents guard at once ({server.backend})", sent=4 * agents,
          escalations=len(escalation_ids), recorded=len(stored), errors=0,
          seconds=round(elapsed, 2), lost=0)


if __name__ == "__main__":  # pragma: no cover
    pytest.main([str(Path(__file__))])


def test_a_thousand_long_poll_waiters_all_get_their_answer() -> None:
    """benchmarks/waiters.py at a tenth of its size (the report runs 10,000): every waiter
    sees its own answer, and the server stays far inside its memory bound."""
    import json
    import subprocess
    import sys

    script = Path(__file__).parents[1] / "benchmarks" / "waiters.py"
    out = subprocess.run([sys.executable, str(script), "--waiters", "1000", "--json"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout)
    assert result["held_at_once"] == 1000 and result["correct"] == 1000, result
    assert result["rss_peak_mb"] < 250, result  # ~0.03 MB a waiter over an idle server
    tally("1,000 long-poll waiters (SQLite)", sent=1000, escalations=1000,
          answered=result["correct"], wrong=result["wrong"], lost=result["wrong"])
