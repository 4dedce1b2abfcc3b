"""What `staso mcp proxy` adds to a tools/call: the same echo tool called directly and
through the proxy (embedded, with the 50-rule policy of ``embedded_guard.py``), and through
the proxy with the guard switched off (``STASO_GUARD_ENABLED=false``: the relay alone),
all from the `mcp` SDK's client over stdio, interleaved so a busy machine slows each alike.
The target: ≤ 1 ms added at the median.

Run: .venv/bin/python benchmarks/mcp_proxy.py [--rounds 20] [--per-round 25]
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
    async with AsyncExitStack() as stack:
        clients = {name: await stack.enter_async_context(session(*how))
                   for name, how in variants.items()}
        for client in clients.values():  # warm up: imports, caches, the log thread
            for _ in range(per_round):
                await client.call_tool("echo", arguments)
        for _ in range(rounds):
            for name, client in clients.items():
                for _ in range(per_round):
                    started = time.perf_counter_ns()
                    result = await client.call_tool("echo", arguments)
                    samples[name].append((time.perf_counter_ns() - started) / 1e6)
                    assert not result.isError, result
    medians = {name: statistics.median(values) for name, values in samples.items()}
    base = medians["direct"]
    calls = rounds * per_round
    print(f"MCP tools/call over stdio, {calls} calls each: direct median {base:.2f} ms "
          "(the baseline)")
    ok = True
    for name, value in medians.items():
        if name == "direct":
            continue
        added = value - base
        p95 = statistics.quantiles(samples[name], n=20)[-1]
        verdict = ""
        if name == "through the proxy":
            ok = added <= TARGET_MS
            verdict = f" (target ≤ {TARGET_MS:.1f} ms) | {'PASS' if ok else 'MISS'}"
        print(f"  {name:<28} median {value:6.2f} ms | p95 {p95:6.2f} ms | "
              f"added {added:+.2f} ms{verdict}")
    return ok


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--per-round", type=int, default=25)
    args = parser.parse_args()
    sys.exit(0 if anyio.run(main, args.rounds, args.per_round) else 1)
