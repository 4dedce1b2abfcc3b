"""The approval channels' figures, against one ``staso serve`` with Slack configured (a local
stand-in for Slack's Web API, in this process), each beside a baseline from the same run:

- a guard call that escalates, while Slack answers at once (the baseline), is down (503),
  and takes 5 s to answer each request with people clicking meanwhile: a channel never
  delays a guard call (target: ratio ≤ 1.5 against Slack up);
- escalation → its Slack post arrives (the outbox wakes at once in the process that made
  the escalation; target median ≤ 1 s, the other replicas' poll);
- a click on Approve → the agent waiting on the escalation resumes (target median ≤ 100 ms,
  as the dashboard's approval).

Run: .venv/bin/python benchmarks/channels.py [--calls N] [--trials N]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from server import free_port, report, start, wait_healthy  # noqa: E402

from staso.channels.slack_standin import SlackStandIn, click, signed_request  # noqa: E402
from staso.client import Client  # noqa: E402
from staso.settings import Settings  # noqa: E402

SECRET = "bench-signing-secret"
POLICY = """version: 1
rules:
  - name: big_refund
    tools: [process_refund]
    when: tool_input.amount > 1000
    action: escalate
"""


def cli(env: dict[str, str], *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "staso.cli", *args], capture_output=True,
                         text=True, env={**os.environ, **env}, check=True)
    return out.stdout.strip()


class Bench:
    def __init__(self, stand_in: SlackStandIn, home: Path) -> None:
        self.stand_in = stand_in
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        policy = home / "staso.yaml"
        policy.write_text(POLICY)
        self.env = {"STASO_HOME": str(home), "STASO_DATABASE_URL": f"sqlite:///{home}/s.db",
                    "STASO_SLACK_BOT_TOKEN": stand_in.token,
                    "STASO_SLACK_SIGNING_SECRET": SECRET,
                    "STASO_SLACK_API_URL": stand_in.api_url,
                    "STASO_SLACK_CHANNEL": "#approvals", "STASO_PUBLIC_URL": self.url}
        self.agent_key = cli(self.env, "keys", "create", "--role", "agent", "--name",
                             "bench-agent", "--agent", "*")
        cli(self.env, "keys", "create", "--role", "approver", "--name", "alice",
            "--slack-user", "U0ALICE01")
        self.proc = start(["-m", "staso.cli", "serve", "--port", str(port), "--policy",
                           str(policy)], self.env)
        wait_healthy(self.url, self.proc)
        self.http = httpx.Client(base_url=self.url, timeout=30, headers={
            "Authorization": f"Bearer {self.agent_key}"})
        self.n = 0

    def escalate(self, **body: Any) -> tuple[str, float]:
        """An escalating guard call: its escalation id and its latency in ms."""
        self.n += 1
        started = time.perf_counter()
        r = self.http.post("/v1/guard", json={"tool_name": "process_refund", "tool_input": {
            "amount": 5000, "order": f"o-{self.n}-{time.time()}"}, **body})
        elapsed = (time.perf_counter() - started) * 1000
        assert r.json()["action"] == "escalate", r.text
        return str(r.json()["escalation_id"]), elapsed

    def posted(self, escalation_id: str, timeout: float = 30.0) -> tuple[str, str, dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for channel, ts, message in self.stand_in.messages():
                if escalation_id in json.dumps(message["blocks"]):
                    return channel, ts, message
            time.sleep(0.005)
        raise SystemExit(f"{escalation_id} was not posted")

    def click(self, escalation_id: str, user: str = "U0ALICE01") -> None:
        channel, ts, message = self.posted(escalation_id)
        body, headers = signed_request(SECRET, click(user, channel, ts, message,
                                                     "staso_approve"))
        httpx.post(self.url + "/v1/channels/slack/interactions", content=body,
                   headers=headers, timeout=30)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


def guard_latency(bench: Bench, calls: int) -> float:
    return statistics.median(bench.escalate()[1] for _ in range(calls))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--trials", type=int, default=15)
    args = parser.parse_args()
    ok = True
    with SlackStandIn() as stand_in:
        bench = Bench(stand_in, Path(tempfile.mkdtemp(prefix="staso-bench-channels-")))
        try:
            guard_latency(bench, 10)  # warm up
            up = guard_latency(bench, args.calls)
            report("escalating guard(), Slack up", f"{up:.2f} ms", "(the baseline)", "", "")
            stand_in.down = True
            down = guard_latency(bench, args.calls)
            ok &= down / up <= 1.5
            report("escalating guard(), Slack down (503)", f"{down:.2f} ms", f"{up:.2f} ms up",
                   f"{down / up:.2f}", "PASS" if down / up <= 1.5 else "MISS")
            stand_in.down = False
            target, _ = bench.escalate()
            bench.posted(target)
            stand_in.delay = 5.0
            with ThreadPoolExecutor(16) as clickers:  # people click while Slack is slow
                for user in ("U0NOBODY1", "U0ALICE01") * 8:
                    clickers.submit(bench.click, target, user)
                time.sleep(0.5)
                slow = guard_latency(bench, args.calls)
            ok &= slow / up <= 1.5
            report("escalating guard(), Slack 5 s slow, clicks", f"{slow:.2f} ms",
                   f"{up:.2f} ms up", f"{slow / up:.2f}", "PASS" if slow / up <= 1.5
                   else "MISS")
            stand_in.delay = 0.0
            time.sleep(6)  # the slow deliveries end

            delays = []
            for _ in range(args.trials):
                escalation_id, _ = bench.escalate()
                answered = time.perf_counter()
                bench.posted(escalation_id)
                delays.append((time.perf_counter() - answered) * 1000)
            post = statistics.median(delays)
            ok &= post <= 1000
            report("escalation -> Slack post, median", f"{post:.1f} ms", "1 s poll",
                   f"{post / 1000:.2f}", "PASS" if post <= 1000 else "MISS")

            resumes = []
            agent = Client(Settings.resolve(api_key=bench.agent_key, base_url=bench.url,
                                            agent_name="bench-agent"))
            for i in range(args.trials):
                returned: list[float] = []

                def wait(i: int = i, returned: list[float] = returned) -> None:
                    agent.guard("process_refund", {"amount": 7000, "order": f"w-{i}"},
                                wait_for_escalation=True, escalation_timeout=60)
                    returned.append(time.perf_counter())

                before = {(c, ts) for c, ts, _ in stand_in.messages()}
                waiter = threading.Thread(target=wait)
                waiter.start()
                escalation_id = _new_post(stand_in, before)
                time.sleep(0.3)  # the agent is waiting on its long-poll
                channel, ts, message = bench.posted(escalation_id)
                body, headers = signed_request(SECRET, click("U0ALICE01", channel, ts,
                                                             message, "staso_approve"))
                clicked = time.perf_counter()
                httpx.post(bench.url + "/v1/channels/slack/interactions", content=body,
                           headers=headers, timeout=30)
                waiter.join(30)
                resumes.append((returned[0] - clicked) * 1000)
            agent.shutdown()
            resume = statistics.median(resumes)
            ok &= resume <= 100
            report("Slack click -> waiting agent resumes", f"{resume:.1f} ms", "100 ms",
                   f"{resume / 100:.2f}", "PASS" if resume <= 100 else "MISS")
        finally:
            bench.stop()
    sys.exit(0 if ok else 1)


def _new_post(stand_in: SlackStandIn, before: set[tuple[str, str]],
              timeout: float = 30.0) -> str:
    """The escalation id of the first message posted since ``before``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for channel, ts, message in stand_in.messages():
            if (channel, ts) not in before:
                found = re.search(r"esc_[0-9a-f]+", json.dumps(message["blocks"]))
                if found:
                    return found.group(0)
        time.sleep(0.002)
    raise SystemExit("no new post")


if __name__ == "__main__":
    main()
