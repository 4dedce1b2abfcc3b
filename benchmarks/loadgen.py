"""A small HTTP/1.1 load generator (asyncio, keep-alive connections), run as its own process
so the server under test keeps its core to itself.

    python benchmarks/loadgen.py URL PATH --key KEY --requests 5000 --seconds 20

Each request body is the JSON template with ``{n}`` replaced by a request counter, so every
decision is distinct. Prints one JSON line: sent, ok, errors, seconds, rps, p50/p99 in ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from urllib.parse import urlsplit

from http1 import Connection

TEMPLATE = '{"tool_name":"process_refund","tool_input":{"customer_id":"c_{n}","amount":{n}}}'


async def _worker(host: str, port: int, path: str, key: str, template: str, counter: list[int],
                  limit: int, deadline: float, latencies: list[float], errors: list[str]) -> None:
    conn = await Connection.open(host, port, key)
    try:
        while counter[0] < limit and time.monotonic() < deadline:
            counter[0] += 1
            body = template.replace("{n}", str(counter[0])).encode()
            started = time.perf_counter()
            conn.send("POST", path, body)
            status, _ = await conn.answer()
            latencies.append(time.perf_counter() - started)
            if status != 200:
                errors.append(f"HTTP {status}")
    finally:
        conn.close()


async def run(url: str, path: str, key: str, template: str, connections: int, requests: int,
              seconds: float) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    counter, latencies, errors = [0], [], []  # type: ignore[var-annotated]
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(*(_worker(host, port, path, key, template, counter, requests, deadline,
                                   latencies, errors) for _ in range(connections)))
    elapsed = time.monotonic() - started
    ordered = sorted(latencies)
    return {"sent": len(latencies), "ok": len(latencies) - len(errors), "errors": len(errors),
            "first_error": errors[0] if errors else "", "seconds": round(elapsed, 3),
            "rps": round(len(latencies) / elapsed, 1),
            "p50_ms": round(statistics.median(ordered) * 1000, 3) if ordered else 0.0,
            "p99_ms": round(ordered[int(len(ordered) * 0.99) - 1] * 1000, 3) if ordered else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("path")
    parser.add_argument("--key", default="")
    parser.add_argument("--template", default=TEMPLATE)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    result = asyncio.run(run(args.url, args.path, args.key, args.template, args.connections,
                             args.requests, args.seconds))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
