"""Benchmark: 10,000 escalations waiting at once on one ``staso serve`` (async long-polls):
all resolve correctly, the server's memory stays ≤ 500 MB (round 1), and each waiter costs
≤ 15 KB of it: 10,000 held ≤ 150 MB above the idle server (round 2).

The agents are one client process holding 10,000 keep-alive connections, each long-polling
its own escalation (re-asking when a 25 s hold ends). Once every long-poll is held (the
server's ``staso_long_polls`` gauge says so), approvers answer: even escalations approved,
odd ones denied. Every waiter must see its own answer. The server's resident memory is read
from /proc: at start (the baseline), with every waiter held, and its peak.

Run: .venv/bin/python benchmarks/waiters.py [--waiters N] [--database-url URL] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from http1 import Connection  # noqa: E402
from server import free_port, start, wait_healthy  # noqa: E402

TARGET_MB = 500
PER_WAITER_KB = 15  # resident memory above the idle server, per held long-poll
JUDGED_FROM = 5_000  # waiters: below that the server's fixed costs (~10 MB) blur the figure


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/{pid}/status")


async def create(port: int, key: str, count: int, connections: int = 16) -> list[str]:
    ids: list[str] = [""] * count
    todo = iter(range(count))

    async def worker() -> None:
        conn = await Connection.open("127.0.0.1", port, key)
        for i in todo:
            status, body = await conn.request("POST", "/v1/guard", {
                "tool_name": "process_refund",
                "tool_input": {"amount": 5000, "customer": f"c_{i}"}})
            assert status == 200 and body["action"] == "escalate", body
            ids[i] = body["escalation_id"]
        conn.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return ids


async def held(port: int) -> int:
    conn = await Connection.open("127.0.0.1", port)
    conn.send("GET", "/metrics")
    _, text = await conn.answer()
    conn.close()
    for line in text.decode().splitlines():
        if line.startswith("staso_long_polls "):
            return int(float(line.split()[1]))
    return 0


async def wait(port: int, key: str, escalation_id: str, opened: asyncio.Semaphore,
               answers: dict[str, str]) -> None:
    async with opened:  # connect in waves: a listen backlog holds only so many at once
        conn = await Connection.open("127.0.0.1", port, key)
    try:
        while True:
            status, body = await conn.request("GET", f"/v1/escalations/{escalation_id}?wait=25")
            if status != 200 or body["status"] != "pending":
                answers[escalation_id] = body["status"] if status == 200 else f"HTTP {status}"
                return
    finally:
        conn.close()


async def resolve(port: int, key: str, ids: list[str], connections: int = 16) -> None:
    todo = iter(enumerate(ids))

    async def worker() -> None:
        conn = await Connection.open("127.0.0.1", port, key)
        for i, escalation_id in todo:
            verb = "approve" if i % 2 == 0 else "deny"
            status, body = await conn.request(
                "POST", f"/v1/escalations/{escalation_id}/{verb}", {"comment": "bench"})
            assert status == 200, body
        conn.close()

    await asyncio.gather(*(worker() for _ in range(connections)))


async def run(port: int, agent_key: str, approver_key: str, count: int, pid: int
              ) -> dict[str, Any]:
    began = time.perf_counter()
    ids = await create(port, agent_key, count)
    created = time.perf_counter() - began
    answers: dict[str, str] = {}
    opened = asyncio.Semaphore(500)
    waiters = [asyncio.create_task(wait(port, agent_key, i, opened, answers)) for i in ids]
    deadline = time.monotonic() + 120
    while (holding := await held(port)) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    memory_held = rss_mb(pid)
    began = time.perf_counter()
    await resolve(port, approver_key, ids)
    resolved = time.perf_counter() - began
    await asyncio.wait_for(asyncio.gather(*waiters), 120)
    all_back = time.perf_counter() - began
    expected = {i: "approved" if n % 2 == 0 else "denied" for n, i in enumerate(ids)}
    wrong = sum(1 for i in ids if answers.get(i) != expected[i])
    return {"waiters": count, "held_at_once": holding, "correct": count - wrong,
            "wrong": wrong, "create_seconds": round(created, 1),
            "resolve_seconds": round(resolved, 1), "all_answered_seconds": round(all_back, 1),
            "rss_held_mb": round(memory_held, 1), "rss_peak_mb": round(rss_mb(pid, "VmHWM"), 1)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--waiters", type=int, default=10_000)
    parser.add_argument("--json", action="store_true", help="print one JSON line only")
    parser.add_argument("--database-url", default="", help="default: a new SQLite file")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, args.waiters + 1000)), hard))

    from staso.store import Store
    from staso.store.keys import create_key

    home = Path(tempfile.mkdtemp(prefix="staso-bench-waiters-"))
    db = args.database_url or f"sqlite:///{home / 'staso.db'}"
    store = Store(db)
    _, agent_key = create_key(store, role="agent", name="bench-agent")
    _, approver_key = create_key(store, role="approver", name="bench-approver")
    store.close()
    port = free_port()
    server = start(["-m", "staso.cli", "serve", "--port", str(port)],
                   {"STASO_DATABASE_URL": db, "STASO_HOME": str(home)})
    try:
        wait_healthy(f"http://127.0.0.1:{port}", server)
        idle = rss_mb(server.pid)
        result = asyncio.run(run(port, agent_key, approver_key, args.waiters, server.pid))
    finally:
        server.terminate()
        server.wait(10)
    result["rss_idle_mb"] = round(idle, 1)
    result["pass"] = result["wrong"] == 0 and result["rss_peak_mb"] <= TARGET_MB
    # (escalations created and long-polls held, over the idle server: all a waiter costs)
    result["per_waiter_kb"] = round((result["rss_held_mb"] - idle) * 1024 / args.waiters, 1)
    result["pass_per_waiter"] = result["wrong"] == 0 and \
        result["held_at_once"] == args.waiters and result["per_waiter_kb"] <= PER_WAITER_KB
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['waiters']:,} escalations long-polled at once on one staso serve "
          f"({db.split(':')[0]})")
    print(f"  held at once: {result['held_at_once']:,}; answered correctly: "
          f"{result['correct']:,}; wrong or lost: {result['wrong']}")
    print(f"  created in {result['create_seconds']} s; all resolved in "
          f"{result['resolve_seconds']} s; every waiter had its answer "
          f"{result['all_answered_seconds']} s after the first resolution")
    print(f"  server memory: idle {idle:.0f} MB (baseline), with every waiter held "
          f"{result['rss_held_mb']:.0f} MB, peak {result['rss_peak_mb']:.0f} MB "
          f"(target <= {TARGET_MB} MB): {'PASS' if result['pass'] else 'MISS'}")
    verdict = ("PASS" if result["pass_per_waiter"] else "MISS") \
        if args.waiters >= JUDGED_FROM else f"not judged below {JUDGED_FROM:,} waiters"
    print(f"  per waiter {result['per_waiter_kb']:.1f} KB held above idle "
          f"({result['rss_held_mb'] - idle:.0f} MB for {result['waiters']:,}; target <= "
          f"{PER_WAITER_KB} KB, 10,000 waiters <= {PER_WAITER_KB * 10} MB above idle) | "
          f"{verdict}")


if __name__ == "__main__":
    main()
