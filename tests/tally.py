"""Counts from the fault and load tests, for the benchmark report's table.

A test calls ``tally(scenario, sent=..., escalations=..., lost=...)`` after its assertions
hold; when ``STASO_TALLY`` names a file, one JSON line per call is appended to it
(benchmarks/report.py sets it). Without it nothing is written.
"""

from __future__ import annotations

import json
import os


def tally(scenario: str, **counts: int | float | str) -> None:
    path = os.environ.get("STASO_TALLY")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"scenario": scenario, **counts}) + "\n")
