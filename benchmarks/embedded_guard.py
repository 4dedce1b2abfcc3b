"""The embedded benchmarks: guard() latency on the allow path with a 50-rule policy, and the
import time of ``staso``; each printed beside a baseline measured in the same run.

Run: .venv/bin/python benchmarks/embedded_guard.py [--calls N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path


def fifty_rule_policy() -> str:
    """50 rules like a real deployment: most name their tools, some apply to all, 4 packs."""
    rules = []
    for i in range(40):
        rules.append(f"""  - name: tool_{i}_limit
    tools: [tool_{i % 20}]
    when: has(tool_input.amount) && tool_input.amount > {1000 + i}
    action: escalate""")
    for i in range(6):
        rules.append(f"""  - name: global_{i}
    when: tool_name.startsWith("admin_") && context.environment == "prod-{i}"
    action: block""")
    for pack in ("dangerous_shell", "destructive_sql", "protected_paths", "pii"):
        rules.append(f"  - use: builtin/{pack}")
    return "version: 1\nrules:\n" + "\n".join(rules) + "\n"


def median_us(func, calls: int) -> float:
    samples = []
    for _ in range(calls):
        t = time.perf_counter_ns()
        func()
        samples.append(time.perf_counter_ns() - t)
    return statistics.median(samples) / 1000


def fifty_predicates() -> list:
    """The floor: the 50 rules' conditions as plain Python lambdas over the same dict."""
    preds = [lambda name, d, ctx, i=i: name == f"tool_{i % 20}" and "amount" in d
             and d["amount"] > 1000 + i for i in range(40)]
    preds += [lambda name, d, ctx, i=i: name.startswith("admin_")
              and ctx.get("environment") == f"prod-{i}" for i in range(6)]
    preds += [lambda name, d, ctx: any("rm -rf" in str(v) for v in d.values())] * 4
    return preds


def bench_guard(calls: int) -> dict[str, float]:
    """Median µs on the caller's thread, and µs of process CPU per decision in total (the
    decision log's thread included: measured until it has written every row)."""
    import staso as st

    home = tempfile.mkdtemp(prefix="staso-bench-")
    st.init(agent_name="bench", home=home, policy=fifty_rule_policy())
    client = st.get_client()
    tool_input = {"customer_id": "c_17", "amount": 50, "note": "refund for a late delivery"}
    for _ in range(500):  # warm up caches, the CEL context and the log thread
        st.guard("tool_3", tool_input)
    result = st.guard("tool_3", tool_input)
    assert result.action == "allow", result
    assert len(client.transport.service.policy.rules) == 50
    client.flush()

    def bare(tool_name: str, tool_input: dict) -> str:
        return "allow"

    preds, context = fifty_predicates(), {}

    def floor(tool_name: str, tool_input: dict) -> bool:
        return any([p(tool_name, tool_input, context) for p in preds])

    def fresh(n: int) -> list[dict]:  # a fresh input each call: nothing cached by identity
        return [{**tool_input, "amount": 10 + i % 900, "note": f"refund #{i}"}
                for i in range(n)]

    out = {"bare": median_us(lambda: bare("tool_3", tool_input), calls)}
    it = iter(fresh(calls))
    out["floor"] = median_us(lambda: floor("tool_3", next(it)), calls)
    inputs = fresh(calls)
    it = iter(inputs)
    cpu = time.process_time()
    out["guard"] = median_us(lambda: st.guard("tool_3", next(it)), calls)
    client.flush()  # every row written: the log's CPU is counted too
    out["cpu"] = (time.process_time() - cpu) * 1e6 / calls
    it = iter(fresh(calls))
    cpu = time.process_time()
    for _ in range(calls):
        floor("tool_3", next(it))
    out["floor_cpu"] = (time.process_time() - cpu) * 1e6 / calls
    st.shutdown()
    return out


def _approve_here(home: str, escalation_id: str, stamp: dict[str, float]) -> None:
    import staso as st

    time.sleep(0.05)
    st.approve(escalation_id, by="bench")
    stamp["t"] = time.time()


def _approve_elsewhere(home: str, escalation_id: str, stamp: dict[str, float]) -> None:
    time.sleep(0.05)
    out = subprocess.run(
        [sys.executable, "-c", "import sys, time, staso as st; st.init(home=sys.argv[1]); "
         "st.approve(sys.argv[2], by='bench'); print(time.time())", home, escalation_id],
        check=True, capture_output=True, text=True).stdout
    stamp["t"] = float(out.split()[-1])


def bench_resume(runs: int) -> tuple[float, float]:
    """Approval → waiting agent resumes, median ms: approved in-process, and by another process
    (a separate interpreter resolving on the same SQLite file, stamping the time it committed)."""
    import threading

    import staso as st

    home = tempfile.mkdtemp(prefix="staso-bench-")
    st.init(agent_name="bench", home=home)
    in_process, cross = [], []
    for i in range(runs * 2):
        tool_input = {"amount": 5000 + i}
        esc = st.guard("wire_transfer", tool_input).escalation_id
        stamp: dict[str, float] = {}
        approve = _approve_here if i % 2 == 0 else _approve_elsewhere
        t = threading.Thread(target=approve, args=(home, esc, stamp))
        t.start()
        result = st.guard("wire_transfer", tool_input, wait_for_escalation=True,
                          escalation_poll_interval=3.0, escalation_timeout=60)
        resumed = time.time()
        t.join()
        assert result.action == "allow", result
        (in_process if i % 2 == 0 else cross).append(max(resumed - stamp["t"], 0) * 1000)
    st.shutdown()
    return statistics.median(in_process), statistics.median(cross)


def import_time(python: str, module: str, runs: int = 7) -> float:
    """Median wall time of a fresh interpreter importing ``module`` minus one importing nothing."""
    def run(code: str) -> float:
        times = []
        for _ in range(runs):
            t = time.perf_counter()
            subprocess.run([python, "-c", code], check=True)
            times.append(time.perf_counter() - t)
        return statistics.median(times)
    return (run(f"import {module}") - run("pass")) * 1000


def published_python() -> str:
    """A scratch venv with the published staso 0.5.25, made by this benchmark."""
    root = Path(tempfile.gettempdir()) / "staso-0.5.25-bench-venv"
    python = root / "bin" / "python"
    if not python.exists():
        venv.create(root, with_pip=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "staso==0.5.25"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return str(python)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=20000)
    args = parser.parse_args()
    g = bench_guard(args.calls)
    guarded, baseline = g["guard"], g["bare"]
    print(f"embedded guard() allow path, 50 rules: median {guarded:.1f} µs "
          f"(target ≤ 50 µs) | bare function call: {baseline:.2f} µs | "
          f"{'PASS' if guarded <= 50 else 'MISS'}")
    floor = f"50 plain Python predicates: {g['floor']:.1f} µs median, " \
            f"{g['floor_cpu']:.1f} µs CPU | bare function call: {baseline:.2f} µs"
    print(f"embedded guard() allow path, 50 rules, caller's thread: median {guarded:.1f} µs "
          f"(target ≤ 15 µs) | {floor} | {'PASS' if guarded <= 15 else 'MISS'}")
    print(f"embedded guard() allow path, 50 rules, CPU per decision, decision log included: "
          f"{g['cpu']:.1f} µs (target ≤ 40 µs) | {floor} | "
          f"{'PASS' if g['cpu'] <= 40 else 'MISS'}")
    same, other = bench_resume(10)
    baseline = 3000 / 2  # 3 s polling: on average half an interval passes after the answer
    print(f"approval → resume, 3 s poll interval: in-process median {same:.1f} ms, "
          f"another process median {other:.1f} ms (target ≤ 100 ms) | 3 s polling baseline: "
          f"{baseline:.0f} ms on average | {'PASS' if max(same, other) <= 100 else 'MISS'}")
    ours = import_time(sys.executable, "staso")
    theirs = import_time(published_python(), "staso")
    verdict = "PASS" if ours <= 0.7 * theirs else "MISS"
    print(f"import staso: {ours:.1f} ms | published staso 0.5.25: {theirs:.1f} ms | "
          f"ratio {ours / theirs:.2f} (target ≤ 0.70) | {verdict}")


if __name__ == "__main__":
    main()
