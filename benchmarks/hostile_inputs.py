"""Crafted inputs up to the 1 MiB input limit, each built to make one detector slow: repeated
separators, quotes, digit groups, JSON strings nested in JSON strings, long words, nested
parentheses and command substitutions, huge IN lists... Each goes to every detector and to
the built-in default policy through embedded ``staso.guard`` (as one tool_input string, and
split over many values). Prints one row per input (each figure the median of three runs, each
run from rest: the previous call's decision row written first) and the worst default-policy
time against the target (<= 250 ms), and the longest decision-row write the log's thread did
afterwards.

Run: .venv/bin/python benchmarks/hostile_inputs.py [--timeout 20] [--only NAME ...]

Every measurement runs in a worker process with a time limit: a detector that is still
quadratic shows as "> 20 s" instead of stalling the run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import string
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

# the default policy's PII detector list is read by the corpus helpers beside the tests
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

LIMIT = 1_048_576  # bytes of JSON-encoded tool_input
TARGET_MS = 250.0
RUNS = 3  # each measurement is the median of this many (a garbage collection or a busy
# moment of the machine lands on one run; the question is how the work grows)
DETECTORS = ("sql", "shell", "paths", "pii")
POLICY = ("policy", "policy_split")


def encoded_size(tool_input: Any) -> int:
    """Bytes of the JSON body, counted the stricter way (non-ASCII escaped as \\uXXXX)."""
    return len(json.dumps(tool_input).encode())


def fill(unit: str, head: str = "", tail: str = "") -> str:
    """``head + unit * n + tail`` with the largest n whose {"text": ...} fits the limit."""
    per = encoded_size(unit) - 2
    fixed = encoded_size({"text": head + tail})
    n = max((LIMIT - fixed) // per, 0)
    while n and encoded_size({"text": head + unit * n + tail}) > LIMIT:
        n -= max(n // 1000, 1)
    return head + unit * n + tail


def nested(unit: str, open_: str, close: str, inner: str) -> str:
    """``open_ * n + inner + close * n``, as deep as fits."""
    per = encoded_size(open_ + close) - 2
    n = (LIMIT - encoded_size({"text": inner})) // per
    return open_ * n + inner + close * n


def nested_json(payload: str) -> str:
    """A JSON string holding JSON holding JSON ... (escaping doubles each level), as deep as
    fits; padded with more nesting of the same payload in a list beside it."""
    text = payload
    while True:
        deeper = json.dumps({"q": text, "n": [payload]})
        if encoded_size({"text": deeper}) > LIMIT:
            return text
        text = deeper


def random_text(alphabet: str, seed: int = 13) -> str:
    import random

    rnd = random.Random(seed)
    text = "".join(rnd.choices(alphabet, k=LIMIT - 16))
    while (excess := encoded_size({"text": text}) - LIMIT) > 0:
        text = text[:-excess]
    return text


def in_list(prefix: str, suffix: str) -> str:
    """``prefix 1, 2, 3, ... suffix``: one huge list in one statement."""
    parts, size = [], encoded_size({"text": prefix + suffix})
    i = 0
    while size + len(str(i)) + 2 < LIMIT - 16:
        parts.append(str(i))
        size += len(str(i)) + 2
        i += 1
    return prefix + ", ".join(parts) + suffix


INPUTS: dict[str, Callable[[], str]] = {
    "semicolons ';'": lambda: fill(";"),
    "pipe signs + spaces": lambda: fill("| "),
    "ampersands '&& '": lambda: fill("&& "),
    "newlines": lambda: fill("\n"),
    "double quotes": lambda: fill('"'),
    "single quotes": lambda: fill("'"),
    "backslashes": lambda: fill("\\"),
    "backticks": lambda: fill("`"),
    "'curl ' * N": lambda: fill("curl "),
    "',a/' * N": lambda: fill(",a/"),
    "'(' * N": lambda: fill("("),
    "'$(' * N": lambda: fill("$("),
    "'$(' nested, closed": lambda: nested("", "$(echo ", ")", "rm -rf /tmp/x"),
    "'sudo ' * N + rm": lambda: fill("sudo ", tail="rm -rf /tmp/x"),
    "'env bash -c ' * N": lambda: fill("env bash -c ", tail="ls"),
    "'1 ' * N": lambda: fill("1 "),
    "'1-' * N": lambda: fill("1-"),
    "digit run": lambda: fill("4"),
    "card-like groups": lambda: fill("4242 "),
    "ssn-like groups": lambda: fill("123-45-6789 "),
    "iban-like groups": lambda: fill("DE89 3704 "),
    "'a@' * N": lambda: fill("a@"),
    "'%2F' * N": lambda: fill("%2F"),
    "'%25' * N + 2F": lambda: fill("25", head="%", tail="2Fetc%2Fpasswd"),
    "'../' * N": lambda: fill("../"),
    "'/./' * N": lambda: fill("/./"),
    "'//' * N": lambda: fill("//"),
    "'-----BEGIN ' * N": lambda: fill("-----BEGIN "),
    "'AKIA' * N": lambda: fill("AKIA"),
    "'eyJ' * N": lambda: fill("eyJ."),
    "'<pass>' * N": lambda: fill("<pass>"),
    "'password=' * N": lambda: fill("password="),
    "mysql -p / curl -u flags": lambda: fill("mysql -pabcd curl -u a:bbbb "),
    "long word": lambda: fill("a"),
    "random base64": lambda: random_text(string.ascii_letters + string.digits + "+/"),
    "random printable": lambda: random_text(string.ascii_letters + string.digits + " -./;|&$()'\""),
    "unicode 'é'": lambda: fill("é"),
    "nested JSON strings": lambda: nested_json("DELETE FROM users WHERE id = 1"),
    "JSON list of SQL": lambda: json.dumps(["DELETE FROM t WHERE id = 1"] * 30000),
    "SELECT 1; * N": lambda: fill("SELECT 1; "),
    "DELETE ... WHERE; * N": lambda: fill("DELETE FROM t WHERE id = 1; "),
    "DELETE ... IN (huge)": lambda: in_list("DELETE FROM t WHERE id IN (", ")"),
    "UPDATE ... IN (huge)": lambda: in_list("UPDATE t SET a = 1 WHERE id IN (", ")"),
    "SQL nested parens": lambda: nested("", "(", ")", "SELECT 1"),
    "SQL '/*' * N": lambda: fill("/*"),
    "SQL '--' lines": lambda: fill("-- DROP TABLE t\n"),
    "shell safe commands": lambda: fill("ls -la ./build; "),
    "shell 'rm -rf ./x ' * N": lambda: fill("rm -rf ./x "),
    "psql -c nested quotes": lambda: fill("psql -c \"SELECT 1\" ; "),
}


def build(name: str) -> str:
    return INPUTS[name]()


def split_values(text: str) -> dict[str, str]:
    """The same text over many small values (64 characters each), as many as fit."""
    out: dict[str, str] = {}
    size = 0
    for i in range(0, len(text), 64):
        key, chunk = f"k{i // 64}", text[i:i + 64]
        size += encoded_size({key: chunk})  # the item, its share of braces and ", "
        if size > LIMIT:
            break
        out[key] = chunk
    return out


def worker(conn: Connection) -> None:
    """Builds each input once and times the targets the parent asks for, one at a time."""
    import tempfile

    import staso as st
    from corpus.labelled import default_pii_detectors
    from staso import detectors
    from staso.detectors import pii as pii_findings
    from staso.policy.discovery import DEFAULT_POLICY

    pii = default_pii_detectors()
    funcs: dict[str, Callable[[str], Any]] = {
        "sql": detectors.is_destructive_sql, "shell": detectors.is_dangerous_shell,
        "paths": detectors.is_protected_path, "pii": lambda t: detectors.has_pii(t, pii)}
    client = st.init(agent_name="hostile", home=tempfile.mkdtemp(prefix="staso-hostile-"),
                     policy=DEFAULT_POLICY)
    for f in funcs.values():  # load lazy parsers before timing
        f("DELETE FROM t; rm -rf /tmp/x /etc/passwd 4242424242424242")
    st.guard("warm_up", {"text": "hello"}, timeout=60)
    cache: dict[str, str] = {}
    while True:
        name, target = conn.recv()
        text = cache.get(name)
        if text is None:
            cache.clear()
            text = cache[name] = build(name)
        if target in funcs:
            times = []
            for _ in range(RUNS):
                pii_findings.forget()
                t = time.perf_counter()
                funcs[target](text)
                times.append(time.perf_counter() - t)
            conn.send((statistics.median(times), "", 0.0))
        else:
            tool_input = {"text": text} if target == "policy" else split_values(text)
            times, failed, reason = [], False, ""
            for _ in range(RUNS):
                # each run from rest: the previous call's decision row (written off the
                # caller's path, by the log's thread) is written first, and the PII row
                # above searched this text: its remembered findings are dropped
                client.flush()
                pii_findings.forget()
                t = time.perf_counter()
                result = st.guard("hostile_tool", tool_input, timeout=600)
                times.append(time.perf_counter() - t)
                failed = failed or (result.action == "block" and not result.rules_triggered)
                reason = result.reason
            t = time.perf_counter()
            client.flush()  # the last run's decision row, written by the log's thread
            written = time.perf_counter() - t
            conn.send((statistics.median(times), f"no decision: {reason}" if failed else "",
                       written))


class Pool:
    """One worker process at a time; a measurement over the limit kills it and starts anew."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.ctx = mp.get_context("spawn")
        self.proc: Any = None
        self.conn: Connection | None = None
        self.fresh = True

    def _start(self) -> Connection:
        parent, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=worker, args=(child,), daemon=True)
        self.proc.start()
        self.conn = parent
        return parent

    def measure(self, name: str, target: str) -> tuple[float | None, str, float]:
        """Seconds (None when over the time limit or the worker died), a failure note, and
        the seconds the log's thread took to write the decision row afterwards."""
        conn = self.conn or self._start()
        conn.send((name, target))
        # the first request also pays for the worker's start and the input's build
        if conn.poll(self.timeout + (30 if self.fresh else 5)):
            try:
                seconds, note, written = conn.recv()
                self.fresh = False
                return float(seconds), note, float(written)
            except EOFError:
                pass
        self.stop()
        return None, "", 0.0

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            self.proc.join()
        self.proc, self.conn, self.fresh = None, None, True


def cell(seconds: float | None, timeout: float) -> str:
    return f"> {timeout:.0f} s" if seconds is None else f"{seconds * 1000:.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timeout", type=float, default=20.0, help="seconds per measurement")
    parser.add_argument("--only", nargs="*", help="input names (substring match)")
    args = parser.parse_args()
    names = [n for n in INPUTS if not args.only or any(o in n for o in args.only)]
    pool = Pool(args.timeout)
    head = ["input", "size", *DETECTORS, "policy 1 value", "policy split"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    worst_policy: tuple[float, str] = (0.0, "")
    worst_detector: tuple[float, str] = (0.0, "")
    worst_write: tuple[float, str] = (0.0, "")
    failures: list[str] = []
    try:
        for name in names:
            size = encoded_size({"text": build(name)})
            cells = []
            for target in (*DETECTORS, *POLICY):
                seconds, note, written = pool.measure(name, target)
                worst_write = max(worst_write, (written, f"{name}, {target}"))
                cells.append(cell(seconds, args.timeout) + (" (no decision)" if note else ""))
                if note:
                    failures.append(f"{name}, {target}: {note[:120]}")
                value = float("inf") if seconds is None else seconds
                label = f"{name}, {target}"
                if target in POLICY:
                    worst_policy = max(worst_policy, (value, label))
                else:
                    worst_detector = max(worst_detector, (value, label))
            print(f"| {name} | {size:,} B | " + " | ".join(cells) + " |", flush=True)
    finally:
        pool.stop()

    def ms(value: float) -> str:
        return f"> {args.timeout * 1000:.0f}" if value == float("inf") else f"{value * 1000:.0f}"

    print(f"worst detector time: {ms(worst_detector[0])} ms ({worst_detector[1]})")
    print(f"worst decision-row write, off the caller's path: {ms(worst_write[0])} ms "
          f"({worst_write[1]})")
    for failure in failures:  # a guard that failed closed measured nothing
        print(f"    guard gave no decision on {failure}")
    verdict = "PASS" if worst_policy[0] * 1000 <= TARGET_MS and not failures else "MISS"
    print(f"{verdict} default policy worst case: {ms(worst_policy[0])} ms ({worst_policy[1]}) "
          f"(target <= {TARGET_MS:.0f} ms)")
    sys.exit(0 if verdict == "PASS" else 1)


if __name__ == "__main__":
    main()
