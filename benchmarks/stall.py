"""Nothing stalls: other agents' remote ``guard()`` and ``/healthz`` while four slow guard
requests are in flight on one ``staso serve`` (target p99 <= 50 ms for each), beside the
same calls on the idle server (the baseline, same run).

Three kinds of slow request:
- a plugin's CEL function that waits ``--slow`` seconds (slow whatever the detectors
  become: it shows the evaluation pool at work);
- the same burning CPU in pure Python: printed without a verdict, since such code on
  evaluation threads shares the GIL with the event loop and slows it (a known limit);
- crafted ~1 MB inputs, each pack's worst case (the figure the README reports): large calls are
  evaluated in worker processes, so they never hold the server's GIL.

Run: .venv/bin/python benchmarks/stall.py [--slow SECONDS] [--calls N]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
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


def nap(seconds):
    time.sleep(float(seconds))
    return True


@staso.hookimpl
def staso_cel_functions():
    return {"slow": slow, "nap": nap}
'''
PACKS = """  - use: builtin/dangerous_shell
  - use: builtin/destructive_sql
  - use: builtin/protected_paths
  - use: builtin/pii
"""
POLICY = """version: 1
rules:
  - name: slow_check
    tools: [slow_tool]
    when: slow(tool_input.seconds)
    action: block
  - name: nap_check
    tools: [nap_tool]
    when: nap(tool_input.seconds)
    action: block
""" + PACKS
# each pack's worst case found so far, ~1 MB of JSON each (the limit is 1 MiB)
CRAFTED = [{"text": ",a/" * 333_000}, {"command": "curl " * 200_000},
           {"note": "4111 " * 200_000}, {"query": "DELETE '" * 125_000}]
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


def measure(url: str, agent: Any, calls: int = 10**6, seconds: float = 10**6
            ) -> tuple[list[float], list[float]]:
    """Guard calls from one agent and /healthz from another client, alternating, for
    ``calls`` pairs or ``seconds``."""
    guards, healths = [], []
    health = httpx.Client(timeout=120)
    end = time.monotonic() + seconds
    while len(guards) < calls and time.monotonic() < end:
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


def _send_forever(url: str, key: str, body: bytes, took: Any, running: Any) -> None:
    """One slow request after another, in a process of its own: encoding and reading 1 MB
    bodies must not slow the measuring process."""
    client = httpx.Client(headers={"Authorization": f"Bearer {key}",
                                   "Content-Type": "application/json"}, timeout=600)
    while running.value:
        t = time.perf_counter()
        assert client.post(url + "/v1/guard", content=body).status_code == 200
        took.put(time.perf_counter() - t)
    client.close()


class InFlight:
    """Slow requests kept in flight, each sent again as soon as it is answered, from
    processes of their own, until ``stop``."""

    def __init__(self, url: str, key: str, bodies: list[dict[str, Any]]) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.queue: Any = ctx.Queue()
        self.running: Any = ctx.Value("b", 1)
        self.took: list[float] = []
        self.procs = [ctx.Process(target=_send_forever, args=(
            url, key, json.dumps(body).encode(), self.queue, self.running), daemon=True)
            for body in bodies]
        for p in self.procs:
            p.start()
        time.sleep(2.0)  # the processes start (imports) and reach the server

    def stop(self) -> None:
        self.running.value = 0
        for p in self.procs:
            p.join(600)
        while not self.queue.empty():
            self.took.append(self.queue.get())


def figure(name: str, busy: list[float], idle: list[float], slow: list[float]) -> None:
    value, base = p99(busy), p99(idle)
    report(name, f"p99 {value:.1f} ms", f"idle p99 {base:.1f} ms", f"{value / base:.1f}x",
           ("PASS" if value <= 50 else "MISS") + " (target <= 50 ms)")
    print(f"    {len(busy)} calls while in flight; {len(slow)} slow requests answered, "
          f"each in {min(slow, default=0):.2f}-{max(slow, default=0):.2f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--slow", type=float, default=6.0)
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="how long the crafted inputs are kept in flight")
    parser.add_argument("--skip-crafted", action="store_true")
    args = parser.parse_args()

    import staso as st
    from staso.store import Store
    from staso.store.keys import create_key

    home = Path(tempfile.mkdtemp(prefix="staso-bench-stall-"))
    site = plugin_site(home)
    (home / "plugin.yaml").write_text(POLICY)
    (home / "plain.yaml").write_text("version: 1\nrules:\n" + PACKS)
    servers: list[subprocess.Popen[bytes]] = []

    def serve(name: str, plugin: bool) -> tuple[str, str]:
        """A staso serve on its own SQLite file, with or without the slow plugin."""
        db = f"sqlite:///{home / (name + '.db')}"
        store = Store(db)
        _, key = create_key(store, role="agent", name="stall-agent",
                            agents="*")
        store.close()
        port = free_port()
        env = {**os.environ, "STASO_DATABASE_URL": db, "STASO_HOME": str(home)}
        if plugin:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site),
                                                              os.environ.get("PYTHONPATH")]))
        servers.append(subprocess.Popen(
            [sys.executable, "-m", "staso.cli", "serve", "--port", str(port),
             "--policy", str(home / (name + ".yaml"))], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, servers[-1])
        return url, key

    try:
        print(f"staso serve on sqlite; four slow guard requests in flight; another agent's "
              f"guard() and /healthz, alternating; {os.cpu_count()} cores\n")
        print(f"{'figure':<46} {'staso':>14} {'baseline':>22} {'ratio':>10}  target")
        url, key = serve("plugin", plugin=True)
        agent = st.init(api_key=key, base_url=url, agent_name="other-agent")
        measure(url, agent, calls=50)  # warm up
        idle_guard, idle_health = measure(url, agent, calls=args.calls // 2)
        for tool, what in (("nap_tool", "waiting plugin"), ("slow_tool", "CPU-bound plugin")):
            plugin = InFlight(url, key, [{"tool_name": tool,
                                          "tool_input": {"seconds": args.slow, "n": i}}
                                         for i in range(4)])
            guards, healths = measure(url, agent, calls=args.calls,
                                      seconds=args.slow - 2.2)  # the first four still run
            plugin.stop()
            if tool == "nap_tool":
                figure(f"guard() p99, 4 {what} requests in flight", guards, idle_guard,
                       plugin.took)
                figure(f"/healthz p99, 4 {what} requests in flight", healths, idle_health,
                       plugin.took)
            else:  # not a reported figure: Python code in threads shares the GIL with the loop
                print(f"{'guard() p99, 4 ' + what + ' requests':<46} "
                      f"{f'p99 {p99(guards):.1f} ms':>14} {'/healthz':>22} "
                      f"{f'{p99(healths):.1f} ms':>10}  (no target: small calls to "
                      f"plugin code run on threads, which share one GIL)", flush=True)
        st.shutdown()

        if not args.skip_crafted:  # the reported case: the built-in packs, no plugin
            url, key = serve("plain", plugin=False)
            agent = st.init(api_key=key, base_url=url, agent_name="other-agent")
            measure(url, agent, calls=50)
            idle_guard, idle_health = measure(url, agent, calls=args.calls // 2)
            crafted = InFlight(url, key, [{"tool_name": "write_file", "tool_input": body}
                                          for body in CRAFTED])
            guards, healths = measure(url, agent, calls=args.calls, seconds=args.seconds)
            crafted.stop()
            figure("guard() p99, 4 crafted 1 MB inputs in flight", guards, idle_guard,
                   crafted.took)
            figure("/healthz p99, 4 crafted 1 MB inputs in flight", healths, idle_health,
                   crafted.took)
    finally:
        st.shutdown()
        for server in servers:
            server.terminate()
            server.wait(10)

if __name__ == "__main__":
    main()
