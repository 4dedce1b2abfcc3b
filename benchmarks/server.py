"""The server benchmarks, each figure beside a baseline measured in the same run:

- remote ``guard()`` latency on loopback (target median ≤ 2 ms), against the same httpx
  client calling a bare FastAPI endpoint that returns the same JSON;
- decisions/s of one ``staso serve`` process with every decision recorded, and the p99
  latency at that load (targets ≥ 4,000/s, round 2, and ≥ 2,000/s, round 1: one line each),
  load from a second process (benchmarks/loadgen.py, 32 connections), against the bare
  endpoint under the same load;
- approval → waiting agent resumes, remote and embedded (target median ≤ 100 ms with the
  default 3 s poll interval), against plain 3 s polling.

Run: .venv/bin/python benchmarks/server.py [--calls N] [--requests N] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from embedded_guard import fifty_rule_policy  # noqa: E402

ALLOW_INPUT = {"customer_id": "c_17", "amount": 50, "note": "refund for a late delivery"}
LOAD_TEMPLATE = ('{"tool_name":"tool_3","tool_input":{"customer_id":"c_{n}","amount":50,'
                 '"note":"refund for a late delivery"}}')
rows: list[tuple[str, str, str, str, str]] = []


def report(figure: str, value: str, baseline: str, ratio: str, verdict: str) -> None:
    rows.append((figure, value, baseline, ratio, verdict))
    print(f"{figure:<38} {value:>20} {baseline:>34} {ratio:>16}  {verdict}", flush=True)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{url} did not start")


def start(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, *args], env={**os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def median_ms(func: Any, calls: int) -> float:
    samples = []
    for _ in range(calls):
        t = time.perf_counter()
        func()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples) * 1000


def load(url: str, key: str, requests: int, seconds: float) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, str(HERE / "loadgen.py"), url, "/v1/guard", "--key", key,
         "--template", LOAD_TEMPLATE, "--requests", str(requests), "--seconds", str(seconds),
         "--connections", "32"], capture_output=True, text=True, timeout=seconds + 60)
    if out.returncode != 0:
        raise SystemExit(f"loadgen failed: {out.stderr}")
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def resume_latency(guard_wait: Any, approve: Any, trials: int) -> float:
    """Median seconds from an approval to the waiting call's return."""
    samples = []
    for i in range(trials):
        returned: list[float] = []

        def wait(i: int = i, returned: list[float] = returned) -> None:
            guard_wait(i)
            returned.append(time.perf_counter())

        waiter = threading.Thread(target=wait)
        waiter.start()
        time.sleep(0.3)
        approved = time.perf_counter()
        approve(i)
        waiter.join(30)
        samples.append(returned[0] - approved)
    return statistics.median(samples)


def polling_baseline(url: str, agent_key: str, approver_key: str, poll: float,
                     trials: int) -> float:
    """Median delay with plain polling: GET the escalation every ``poll`` seconds (no
    long-poll) while a person answers at a random moment."""
    import random

    agent = httpx.Client(headers={"Authorization": f"Bearer {agent_key}"})
    approver = httpx.Client(headers={"Authorization": f"Bearer {approver_key}"})
    samples = []
    for i in range(trials):
        esc = agent.post(url + "/v1/guard", json={"tool_name": "tool_3", "tool_input": {
            "amount": 9000 + i, "trial": "polling"}}).json()["escalation_id"]
        approved: list[float] = []

        def answer(esc: str = esc, approved: list[float] = approved) -> None:
            approved.append(time.perf_counter())
            approver.post(f"{url}/v1/escalations/{esc}/approve", json={})

        threading.Timer(random.uniform(0.1, poll), answer).start()
        while agent.get(f"{url}/v1/escalations/{esc}").json()["status"] == "pending":
            time.sleep(poll)
        samples.append(time.perf_counter() - approved[0])
    return statistics.median(samples)


def count_decisions(store: Any) -> int:
    import sqlalchemy as sa

    with store.engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM decisions")).scalar() or 0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=8000)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    import staso as st
    from staso.store import Store
    from staso.store.keys import create_key

    home = Path(tempfile.mkdtemp(prefix="staso-bench-server-"))
    policy = home / "staso.yaml"
    policy.write_text(fifty_rule_policy())
    db = args.database_url or f"sqlite:///{home / 'staso.db'}"
    store = Store(db)
    _, agent_key = create_key(store, role="agent", name="bench-agent")
    _, approver_key = create_key(store, role="approver", name="bench-approver")
    port, bare_port = free_port(), free_port()
    url, bare_url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{bare_port}"
    server = start(["-m", "staso.cli", "serve", "--port", str(port), "--policy", str(policy)],
                   {"STASO_DATABASE_URL": db, "STASO_HOME": str(home)})
    wait_healthy(url, server)
    headers = {"Authorization": f"Bearer {agent_key}"}
    sample = httpx.post(url + "/v1/guard", headers=headers,
                        json={"tool_name": "tool_3", "tool_input": ALLOW_INPUT}).content
    (home / "answer.json").write_bytes(sample)
    bare = start([str(HERE / "bare_server.py"), str(bare_port), str(home / "answer.json")])
    wait_healthy(bare_url, bare)
    print(f"staso serve on {db.split('://')[0]}, 50-rule policy; load from a second process; "
          f"{os.cpu_count()} cores\n")
    print(f"{'figure':<38} {'staso':>20} {'baseline':>34} {'ratio':>16}  target")
    try:
        # -- remote guard() latency --------------------------------------------------------
        st.init(api_key=agent_key, base_url=url, agent_name="bench-agent")
        for _ in range(200):
            st.guard("tool_3", ALLOW_INPUT)
        assert st.guard("tool_3", ALLOW_INPUT).action == "allow"
        client = httpx.Client()
        for _ in range(200):
            client.post(bare_url + "/v1/guard", json={"tool_name": "tool_3",
                                                       "tool_input": ALLOW_INPUT})
        remote = median_ms(lambda: st.guard("tool_3", ALLOW_INPUT), args.calls)
        baseline = median_ms(lambda: client.post(bare_url + "/v1/guard", json={
            "tool_name": "tool_3", "tool_input": ALLOW_INPUT}), args.calls)
        report("remote guard() median, loopback", f"{remote:.2f} ms",
               f"bare FastAPI {baseline:.2f} ms", f"{remote / baseline:.2f}x",
               ("PASS" if remote <= 2.0 else "MISS") + " (<= 2 ms)")

        # -- decisions per second -----------------------------------------------------------
        before = count_decisions(store)
        staso_load = load(url, agent_key, args.requests, args.seconds)
        recorded = count_decisions(store) - before  # read at once: acknowledged = written
        bare_load = load(bare_url, agent_key, args.requests, args.seconds)
        expected = staso_load["ok"]
        # one line per target (round 2's, then round 1's), each with the p99 at that load
        for round_, target in ((2, 4000), (1, 2000)):
            met = staso_load["rps"] >= target and staso_load["errors"] == 0
            report(f"decisions/s, one staso serve, round {round_}",
                   f"{staso_load['rps']:,.0f}/s p99 {staso_load['p99_ms']:.1f} ms",
                   f"bare FastAPI {bare_load['rps']:,.0f}/s p99 {bare_load['p99_ms']:.1f} ms",
                   f"{staso_load['rps'] / bare_load['rps']:.2f}x",
                   ("PASS" if met else "MISS") + f" (>= {target:,}/s)")
        print(f"    load: {staso_load['sent']:,} requests in {staso_load['seconds']} s, "
              f"{staso_load['errors']} errors {staso_load['first_error']}, "
              f"p50 {staso_load['p50_ms']} ms, p99 {staso_load['p99_ms']} ms; "
              f"decisions recorded {recorded:,} of {expected:,} acknowledged "
              f"({'all' if recorded >= expected else 'MISSING SOME'})")

        # -- approval -> resume ---------------------------------------------------------------
        approver = httpx.Client(headers={"Authorization": f"Bearer {approver_key}"})
        pending: dict[int, str] = {}

        def waiting_call(trial: str) -> Any:
            """An agent that asks, gets an escalation id, then waits for the answer."""
            def call(i: int) -> None:
                tool_input = {"amount": 5000 + i, "trial": trial}
                pending[i] = st.guard("tool_3", tool_input).escalation_id or ""
                st.guard("tool_3", tool_input, wait_for_escalation=True,
                         escalation_poll_interval=3.0, escalation_timeout=60)
            return call

        remote_resume = resume_latency(waiting_call("remote"), lambda i: approver.post(
            f"{url}/v1/escalations/{pending[i]}/approve", json={}), args.trials)
        st.shutdown()
        st.init(agent_name="bench-agent", home=home / "embedded", policy=policy)
        embedded_resume = resume_latency(
            waiting_call("embedded"), lambda i: st.approve(pending[i], by="bench"), args.trials)
        st.shutdown()
        polling = polling_baseline(url, agent_key, approver_key, 3.0, 3)
        for name, value in (("approval -> resume median, remote", remote_resume),
                            ("approval -> resume median, embedded", embedded_resume)):
            report(name, f"{value * 1000:.1f} ms", f"3 s polling {polling * 1000:,.0f} ms",
                   f"{polling / value:,.0f}x faster",
                   ("PASS" if value <= 0.1 else "MISS") + " (<= 100 ms)")
    finally:
        st.shutdown()
        for proc in (server, bare):
            proc.terminate()
            proc.wait(10)
        store.close()


if __name__ == "__main__":
    main()
