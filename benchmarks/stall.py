"""Nothing stalls: other agents' remote ``guard()`` and ``/healthz`` while four slow guard
requests are in flight on one ``staso serve`` (target p99 <= 50 ms for each), beside the
same calls on the idle server (the baseline, same run).

Two kinds of slow request:
- a plugin's CEL function that burns CPU in pure Python for ``--slow`` seconds (slow
  whatever the detectors become: it shows the evaluation pool at work);
- crafted inputs for the built-in detectors (repeated separators for the path check, a
  repeated command for the shell check): slow only while a detector is super-linear.

Run: .venv/bin/python benchmarks/stall.py [--slow SECONDS] [--calls N]
"""

from __future__ import annotations

import argparse
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
from server import free_port, report, wait_healthy  # noqa: E402

PLUGIN = '''
import time

import staso


def slow(seconds):
    end = time.perf_counter() + float(seconds)
    while time.perf_counter() < end:
        pass
    return True


@staso.hookimpl
def staso_cel_functions():
    return {"slow": slow}
'''
POLICY = """version: 1
rules:
  - name: slow_check
    tools: [slow_tool]
    when: slow(tool_input.seconds)
    action: block
  - use: builtin/dangerous_shell
  - use: builtin/destructive_sql
  - use: builtin/protected_paths
  - use: builtin/pii
"""
CRAFTED = [{"text": ",a/" * 16000}, {"command": "curl " * 32000}] * 2
FAST_INPUT = {"query": "DROP TABLE users"}


def plugin_site(root: Path) -> Path:
    """On PYTHONPATH, this directory installs the slow plugin as an entry point."""
    site = root / "site"
    info = site / "staso_stallplugin-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "staso_stallplugin.py").write_text(PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: staso-stallplugin\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text("[staso]\nstallplugin = staso_stallplugin\n")
    return site


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100)[98] * 1000 if len(samples) > 1 \
        else samples[0] * 1000


def measure(url: str, agent: Any, calls: int, busy: threading.Event | None
            ) -> tuple[list[float], list[float]]:
    """Guard calls from one agent and /healthz from another client, alternating; with
    ``busy``, only while it is set (the slow requests are in flight)."""
    guards, healths = [], []
    health = httpx.Client(timeout=120)
    for _ in range(calls):
        if busy is not None and not busy.is_set():
            break
        t = time.perf_counter()
        result = agent.guard("run_sql", FAST_INPUT)
        guards.append(time.perf_counter() - t)
        assert result.action == "block" and result.rule_name != "staso/unavailable", result
        t = time.perf_counter()
        assert health.get(url + "/healthz").status_code == 200
        healths.append(time.perf_counter() - t)
        time.sleep(0.005)
    health.close()
    return guards, healths


def in_flight(url: str, key: str, bodies: list[dict[str, Any]]) -> tuple[threading.Event,
                                                                        list[float]]:
    """Send ``bodies`` at once; the event is set until the first of them is answered."""
    busy, took = threading.Event(), []
    busy.set()

    def send(body: dict[str, Any]) -> None:
        t = time.perf_counter()
        httpx.post(url + "/v1/guard", headers={"Authorization": f"Bearer {key}"}, json=body,
                   timeout=600)
        took.append(time.perf_counter() - t)
        busy.clear()

    for body in bodies:
        threading.Thread(target=send, args=(body,), daemon=True).start()
    time.sleep(0.3)  # let them reach the evaluation threads
    return busy, took


def figure(name: str, busy: list[float], idle: list[float], slow: list[float]) -> None:
    value, base = p99(busy), p99(idle)
    report(name, f"p99 {value:.1f} ms", f"idle p99 {base:.1f} ms", f"{value / base:.1f}x",
           ("PASS" if value <= 50 else "MISS") + " (target <= 50 ms)")
    print(f"    {len(busy)} calls while in flight; the slow requests took "
          f"{min(slow, default=0):.1f}-{max(slow, default=0):.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow", type=float, default=3.0)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--skip-crafted", action="store_true")
    args = parser.parse_args()

    import staso as st
    from staso.store import Store
    from staso.store.keys import create_key

    home = Path(tempfile.mkdtemp(prefix="staso-bench-stall-"))
    site = plugin_site(home)
    (home / "staso.yaml").write_text(POLICY)
    db = f"sqlite:///{home / 'staso.db'}"
    store = Store(db)
    _, key = create_key(store, role="agent", name="stall-agent")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**os.environ, "STASO_DATABASE_URL": db, "STASO_HOME": str(home),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(site),
                                                       os.environ.get("PYTHONPATH")]))}
    server = subprocess.Popen([sys.executable, "-m", "staso.cli", "serve", "--port", str(port),
                               "--policy", str(home / "staso.yaml")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_healthy(url, server)
        agent = st.init(api_key=key, base_url=url, agent_name="other-agent")
        print(f"staso serve on sqlite; four slow guard requests in flight; another agent's "
              f"guard() and /healthz, alternating; {os.cpu_count()} cores\n")
        print(f"{'figure':<46} {'staso':>14} {'baseline':>22} {'ratio':>10}  target")
        measure(url, agent, 50, None)  # warm up
        idle_guard, idle_health = measure(url, agent, args.calls // 2, None)

        slow_bodies = [{"tool_name": "slow_tool", "tool_input": {"seconds": args.slow, "n": i}}
                       for i in range(4)]
        busy, took = in_flight(url, key, slow_bodies)
        guards, healths = measure(url, agent, args.calls, busy)
        while len(took) < 4:
            time.sleep(0.05)
        figure("guard() p99, 4 slow plugin requests in flight", guards, idle_guard, took)
        figure("/healthz p99, 4 slow plugin requests in flight", healths, idle_health, took)

        if not args.skip_crafted:
            bodies = [{"tool_name": "write_file", "tool_input": body} for body in CRAFTED]
            busy, took = in_flight(url, key, bodies)
            guards, healths = measure(url, agent, args.calls, busy)
            while len(took) < 4:
                time.sleep(0.05)
            if not guards:
                print("    (the crafted requests finished before the first fast call)")
                guards, healths = idle_guard, idle_health
            figure("guard() p99, 4 crafted detector inputs", guards, idle_guard, took)
            figure("/healthz p99, 4 crafted detector inputs", healths, idle_health, took)
    finally:
        st.shutdown()
        server.terminate()
        server.wait(10)
        store.close()


if __name__ == "__main__":
    main()
