"""Shared by the framework benchmarks: time variants of one job interleaved (so drift on a
shared machine hits every variant alike) and print each beside the unguarded baseline."""

from __future__ import annotations

import statistics
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
