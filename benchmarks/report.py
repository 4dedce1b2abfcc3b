"""The whole proof in one command: every benchmark figure (the README's tables) beside its
baseline and target, then
a table of the fault and load tests with their counts.

    .venv/bin/python benchmarks/report.py [--quick] [--database-url URL]

It runs each benchmark script in turn (their own lines are printed as they come), then the
fault, load and attack tests under pytest with ``STASO_TALLY`` set, and prints:

- a summary of every figure line marked PASS or MISS;
- one row per fault or load scenario (rows of the same scenario summed): requests sent,
  escalations, and the counts that must be zero (lost, allowed by a failure, server errors).

``--quick`` shortens the runs (fewer samples, 1,000 waiters instead of 10,000): a smoke
test of the report, not numbers to quote. Exits non-zero if any figure misses or a test fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
ROOT = HERE.parent
TESTS = ["tests/test_faults.py", "tests/test_load.py", "tests/test_remote_failures.py",
         "tests/test_hostile_input.py", "tests/test_schemathesis.py",
         "tests/test_key_guessing.py", "tests/test_masking.py", "tests/test_no_stall.py",
         "tests/test_log_integrity.py", "tests/test_locked_store.py",
         "tests/test_plugin_failures.py", "tests/test_agent_keys.py"]
COLUMNS = ["sent", "escalations", "acknowledged", "recorded", "resumed", "answered",
           "failed_closed", "refused", "dead_lettered", "rate_limited", "conflicts",
           "allowed_by_failure", "duplicates", "wrong", "server_errors", "secrets_shown", "lost"]


def benchmarks(quick: bool, database_url: str) -> list[tuple[str, list[str]]]:
    server = ["server.py"] + (["--calls", "200", "--requests", "2000", "--seconds", "5",
                               "--trials", "3"] if quick else [])
    if database_url:
        server += ["--database-url", database_url]
    return [
        ("embedded guard, import, embedded resume", ["embedded_guard.py"]),
        ("server: remote guard, decisions/s, approval -> resume", server),
        ("10,000 long-poll waiters", ["waiters.py"] + (["--waiters", "1000"] if quick else [])),
        ("LangChain", ["langchain_agent.py"]),
        ("OpenAI Agents SDK", ["openai_agents_agent.py"]),
        ("CrewAI", ["crewai_crew.py"]),
        ("detectors: recall and false positives on the labelled corpus", ["detectors.py"]),
        ("hostile inputs: crafted 1 MiB inputs, worst time", ["hostile_inputs.py"]),
        ("nothing stalls: slow requests in flight", ["stall.py"]),
        ("staso mcp proxy: time added per tools/call",
         ["mcp_proxy.py"] + (["--rounds", "10"] if quick else [])),
        ("approval channels: a slow or down Slack, post and resume",
         ["channels.py"] + (["--calls", "20", "--trials", "5"] if quick else [])),
    ]


def run_benchmark(title: str, args: list[str]) -> tuple[list[str], int]:
    print(f"\n## {title}: python benchmarks/{' '.join(args)}", flush=True)
    verdicts = []
    with tempfile.TemporaryFile(mode="w+") as errors:  # frameworks' warnings: on failure only
        proc = subprocess.Popen([sys.executable, str(HERE / args[0]), *args[1:]], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=errors, text=True)
        assert proc.stdout is not None
        for line in proc.stdout:
            print("  " + line.rstrip(), flush=True)
            if "PASS" in line or "MISS" in line:
                verdicts.append(line.strip())
        code = proc.wait()
        if code != 0:
            errors.seek(0)
            print(errors.read()[-3000:])
    return verdicts, code


def fault_table(tally_path: Path) -> list[dict[str, object]]:
    rows: dict[str, dict[str, object]] = {}
    for line in tally_path.read_text().splitlines() if tally_path.exists() else []:
        entry = json.loads(line)
        row = rows.setdefault(entry.pop("scenario"), {"runs": 0})
        row["runs"] = int(row["runs"]) + 1  # type: ignore[call-overload]
        for key, value in entry.items():
            if isinstance(value, (int, float)):
                row[key] = row.get(key, 0) + value  # type: ignore[operator]
    return [{"scenario": name, **counts} for name, counts in rows.items()]


def print_table(rows: list[dict[str, object]]) -> None:
    used = [c for c in COLUMNS if any(c in r for r in rows)]
    head = ["scenario", *used]
    lines = [head, ["---"] * len(head)]
    for r in rows:
        lines.append([str(r["scenario"])] + [
            f"{r[c]:,}" if isinstance(r.get(c), int) else str(r.get(c, "")) for c in used])
    for cells in lines:
        print("| " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--database-url", default="")
    parser.add_argument("--skip-benchmarks", action="store_true",
                        help="only the fault and load table")
    args = parser.parse_args()
    started = time.monotonic()
    print(f"staso benchmark report, {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    verdicts: list[str] = []
    failed: list[str] = []
    if not args.skip_benchmarks:
        for title, script in benchmarks(args.quick, args.database_url):
            lines, code = run_benchmark(title, script)
            verdicts += lines
            if code != 0:
                failed.append(f"{title} exited with {code}")
    tally = Path(tempfile.mkdtemp(prefix="staso-tally-")) / "tally.jsonl"
    print(f"\n## fault, load and attack tests: pytest {' '.join(TESTS)}", flush=True)
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            *TESTS], cwd=ROOT, env={**os.environ, "STASO_TALLY": str(tally)},
                           capture_output=True, text=True)
    print("  " + (tests.stdout.strip().splitlines() or ["(no output)"])[-1])
    if tests.returncode != 0:
        failed.append("fault/load tests failed:\n" + tests.stdout[-3000:])
    print("\n# Benchmark figures")
    for line in verdicts:
        print("- " + line)
    print("\n# Fault and load tests (counts summed over runs; lost must be 0)\n")
    rows = fault_table(tally)
    print_table(rows)
    lost = sum(int(r.get("lost", 0)) for r in rows)  # type: ignore[call-overload]
    misses = [v for v in verdicts if "MISS" in v]
    print(f"\n{len(verdicts) - len(misses)} of {len(verdicts)} figures PASS; "
          f"{len(rows)} fault/load scenarios, lost = {lost}; "
          f"{time.monotonic() - started:.0f} s")
    for problem in failed + [f"MISS: {m}" for m in misses]:
        print(problem)
    sys.exit(1 if failed or misses or lost else 0)


if __name__ == "__main__":
    main()
