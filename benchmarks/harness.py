"""Shared by the framework benchmarks: time variants of one job interleaved (so drift on a
shared machine hits every variant alike) and print each beside the unguarded baseline."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable


def interleaved(variants: dict[str, Callable[[], object]], *, rounds: int, per_round: int
                ) -> dict[str, float]:
    """Median µs of one call of each variant, over ``rounds`` rounds of ``per_round`` calls."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for run in variants.values():  # warm up: imports, caches, the log thread
        for _ in range(per_round):
            run()
    for _ in range(rounds):
        for name, run in variants.items():
            for _ in range(per_round):
                t = time.perf_counter_ns()
                run()
                samples[name].append((time.perf_counter_ns() - t) / 1000)
    return {name: statistics.median(values) for name, values in samples.items()}


def report(title: str, medians: dict[str, float], baseline: str, *, target: float = 1.2
           ) -> bool:
    """Print the ratios against ``baseline``; True when every one meets ``target``."""
    base = medians[baseline]
    print(f"{title}: {baseline} median {base:.0f} µs (the baseline)")
    ok = True
    for name, value in medians.items():
        if name == baseline:
            continue
        ratio = value / base
        ok = ok and ratio <= target
        print(f"  {name:<28} median {value:7.0f} µs | ratio {ratio:.2f} "
              f"(target ≤ {target:.2f}) | {'PASS' if ratio <= target else 'MISS'}")
    return ok


def start(description: str) -> argparse.Namespace:
    """Parse ``--rounds``/``--per-round`` and run staso embedded, on a temporary store, with
    the 50-rule policy of ``embedded_guard.py``."""
    import tempfile

    from embedded_guard import fifty_rule_policy

    import staso as st

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--per-round", type=int, default=40)
    args = parser.parse_args()
    st.init(agent_name="bench-agent", home=tempfile.mkdtemp(prefix="staso-bench-"),
            policy=fifty_rule_policy())
    return args


def finish(tool_name: str, ok: bool) -> None:
    """Check the guarded runs really decided (allow, logged), shut staso down, exit 0/1."""
    import staso as st

    client = st.get_client()
    client.flush()
    decided = client.transport.service.store.list_decisions(limit=5, tool=tool_name)
    assert decided and decided[0]["action"] == "allow", decided
    st.shutdown()
    sys.exit(0 if ok else 1)
