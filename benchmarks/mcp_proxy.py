"""What `staso mcp proxy` adds to a tools/call: the same echo tool called directly and
through the proxy (embedded, with the 50-rule policy of ``embedded_guard.py``), and through
the proxy with the guard switched off (``STASO_GUARD_ENABLED=false``: the relay alone),
all from the `mcp` SDK's client over stdio, interleaved so a busy machine slows each alike.
The target: ≤ 1 ms added at the median.

What the proxy adds is the median, over the rounds, of each round's median difference
(paired within a round, so the machine's drift cancels out).

Run: .venv/bin/python benchmarks/mcp_proxy.py [--rounds 40] [--per-round 15]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import anyio
from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

sys.path.insert(0, str(Path(__file__).parent))
from embedded_guard import fifty_rule_policy

ECHO_SERVER = '''
from mcp.server.fastmcp import FastMCP

server = FastMCP("echo-server", log_level="WARNING")

@server.tool()
def echo(text: str, amount: int = 0) -> str:
    return text

server.run()
'''
TARGET_MS = 1.0


@asynccontextmanager
async def session(command: list[str], env: dict[str, str]) -> AsyncIterator[ClientSession]:
    params = StdioServerParameters(command=command[0], args=command[1:], env=env)
    async with stdio_client(params) as (read, write), ClientSession(read, write) as client:
        await client.initialize()
        yield client


async def main(rounds: int, per_round: int) -> bool:
    work = Path(tempfile.mkdtemp(prefix="staso-bench-mcp-"))
    (work / "echo.py").write_text(ECHO_SERVER)
    (work / "staso.yaml").write_text(fifty_rule_policy())
    upstream = [sys.executable, str(work / "echo.py")]
    env = {**os.environ, "STASO_HOME": str(work), "STASO_AGENT_NAME": "bench-mcp"}
    proxy = [sys.executable, "-m", "staso.cli", "mcp", "proxy", "--policy",
             str(work / "staso.yaml"), "--", *upstream]
    variants = {"direct": (upstream, env), "through the proxy": (proxy, env),
                "the relay alone (guard off)": (proxy, {**env, "STASO_GUARD_ENABLED": "false"})}
    arguments = {"text": "refund for a late delivery", "amount": 50}
    samples: dict[str, list[float]] = {name: [] for name in variants}
    added: dict[str, list[float]] = {name: [] for name in variants if name != "direct"}
    async with AsyncExitStack() as stack:
        clients = {name: await stack.enter_async_context(session(*how))
                   for name, how in variants.items()}
        for client in clients.values():  # warm up: imports, caches, the log thread
            for _ in range(per_round):
                await client.call_tool("echo", arguments)
        for _ in range(rounds):
            this_round: dict[str, float] = {}
            for name, client in clients.items():
                taken = []
                for _ in range(per_round):
                    started = time.perf_counter_ns()
                    result = await client.call_tool("echo", arguments)
                    taken.append((time.perf_counter_ns() - started) / 1e6)
                    assert not result.isError, result
                samples[name] += taken
                this_round[name] = statistics.median(taken)
            for name in added:  # paired within the round: drift hits both sides alike
                added[name].append(this_round[name] - this_round["direct"])
    base = statistics.median(samples["direct"])
    calls = rounds * per_round
    print(f"MCP tools/call over stdio, {calls} calls each in {rounds} interleaved rounds: "
          f"direct median {base:.2f} ms (the baseline)")
    ok = True
    for name, differences in added.items():
        value = statistics.median(samples[name])
        extra = statistics.median(differences)
        low, _, high = statistics.quantiles(differences, n=4)
        verdict = ""
        if name == "through the proxy":
            ok = extra <= TARGET_MS
            verdict = f" (target ≤ {TARGET_MS:.1f} ms) | {'PASS' if ok else 'MISS'}"
        print(f"  {name:<28} median {value:6.2f} ms | added {extra:+.2f} ms, rounds' "
              f"middle half {low:+.2f} to {high:+.2f}{verdict}")
    return ok


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--per-round", type=int, default=15)
    args = parser.parse_args()
    sys.exit(0 if anyio.run(main, args.rounds, args.per_round) else 1)
