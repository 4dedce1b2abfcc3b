"""Nothing stalls: a slow evaluation delays no one else's answer, and a guard call with a
timeout returns on time, failing per fail_closed.

The slow evaluation comes from a plugin's CEL function that burns CPU in pure Python for a
set time, so it stays slow whatever the detectors become. The bounds are generous (a busy
2-core CI machine), but each is far below the slow calls' own duration, and each fast call
is checked to have answered while the slow ones were still in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import staso as st
from conftest import start_server, stop_server
from servers import Server
from staso.errors import GuardFailure
from tally import tally

SLOW_SECONDS = 3.0  # how long each crafted request holds its evaluation thread
# seconds: half of SLOW_SECONDS (a call that waited for a slow one would take all of it),
# and far above the 50 ms target, which benchmarks/stall.py measures: on a busy 2-core
# machine one call in forty may lose the CPU for most of a second (seen once at 0.75 s)
FAST_BOUND = SLOW_SECONDS / 2

PLUGIN = '''
import time

import staso


def slow(seconds):
    """Burn CPU for ``seconds`` of wall time in pure Python, as a slow detector would."""
    end = time.perf_counter() + float(seconds)
    n = 0
    while time.perf_counter() < end:
        n += 1
    return True


@staso.hookimpl
def staso_cel_functions():
    return {"slow": slow}
'''

POLICY = """version: 1
rules:
  - name: slow_check
    tools: [slow_tool]
    when: slow(tool_input.seconds)
    action: block
    reason: crafted slow input
  - name: slow_review
    tools: [slow_review]
    when: slow(tool_input.seconds)
    action: escalate
    reason: needs a person
  - use: builtin/destructive_sql
"""


def plugin_site(root: Path) -> Path:
    """A directory that, on PYTHONPATH, installs the slow plugin through the ``staso``
    entry-point group (as a pip-installed plugin would be)."""
    site = root / "site"
    info = site / "staso_slowplugin-0.1.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (site / "staso_slowplugin.py").write_text(PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: staso-slowplugin\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text("[staso]\nslowplugin = staso_slowplugin\n")
    return site


@contextlib.contextmanager
def slow_server(tmp: Path, workers: int | None = None) -> Iterator[Server]:
    site = plugin_site(tmp)
    policy = tmp / "staso.yaml"
    policy.write_text(POLICY)
    with pytest.MonkeyPatch.context() as mp:  # the server process (and keys CLI) see it
        mp.setenv("PYTHONPATH", str(site))
        if workers is not None:
            mp.setenv("STASO_EVAL_WORKERS", str(workers))
        server = start_server(tmp, "sqlite", policy)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture(scope="module")
def stall_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with slow_server(tmp_path_factory.mktemp("stall")) as server:
        yield server


class SlowRequests:
    """``count`` crafted guard requests sent at once, each from its own thread."""

    def __init__(self, server: Server, count: int, seconds: float = SLOW_SECONDS,
                 pad: int = 0) -> None:
        self.pad = "x" * pad
        self.results: list[dict[str, Any]] = []
        self.finished: list[float] = []
        self.threads = [threading.Thread(target=self._send, args=(server, seconds, i))
                        for i in range(count)]
        self.started = time.monotonic()
        for t in self.threads:
            t.start()
        time.sleep(0.3)  # let them reach the server's evaluation threads

    def _send(self, server: Server, seconds: float, i: int) -> None:
        r = httpx.post(server.url + "/v1/guard", headers=server.headers("agent"), timeout=60,
                       json={"tool_name": "slow_tool", "tool_input": {
                           "seconds": seconds, "n": i, "pad": self.pad}})
        self.finished.append(time.monotonic())
        self.results.append(r.json())

    def in_flight(self) -> bool:
        return not self.finished

    def join(self) -> None:
        for t in self.threads:
            t.join(60)


def timed(func: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    value = func()
    return time.perf_counter() - t, value


def test_slow_requests_delay_no_other_agent_nor_healthz(stall_server: Server) -> None:
    agent = stall_server.agent_client("other-agent")
    health = httpx.Client(base_url=stall_server.url, timeout=10)
    try:
        for _ in range(20):  # warm the connection and the key cache
            agent.guard("refund", {"amount": 5})
        slow = SlowRequests(stall_server, 4)
        guard_times, health_times, answered_in_flight = [], [], 0
        while len(guard_times) < 40 and slow.in_flight():
            took, result = timed(lambda: agent.guard("run_sql", {"query": "DROP TABLE users"}))
            assert result.action == "block" and result.rule_name != "staso/unavailable"
            guard_times.append(took)
            took, r = timed(lambda: health.get("/healthz"))
            assert r.status_code == 200
            health_times.append(took)
            answered_in_flight += slow.in_flight()
        slow.join()
    finally:
        agent.shutdown()
        health.close()
    slow_took = min(slow.finished) - slow.started
    # the crafted requests really were slow, and really were evaluated
    assert slow_took >= SLOW_SECONDS * 0.9
    assert [r["rule_name"] for r in slow.results] == ["slow_check"] * 4
    # the fast calls were answered while the slow ones ran, each far faster than them; how
    # many fit in SLOW_SECONDS depends on the machine (CI's busy 2 cores fit 8, not 10), so
    # a few suffice: a call queued behind a slow one would have taken all SLOW_SECONDS
    assert answered_in_flight >= 3, (guard_times, health_times)
    guard_p99 = statistics.quantiles(guard_times, n=100)[98]
    health_p99 = statistics.quantiles(health_times, n=100)[98]
    assert max(guard_times) < FAST_BOUND, guard_times
    assert max(health_times) < FAST_BOUND, health_times
    tally("stall: 4 slow requests in flight", sent=len(guard_times) + len(health_times) + 4,
          answered=len(guard_times) + len(health_times),
          guard_p99_ms=round(guard_p99 * 1000, 1), healthz_p99_ms=round(health_p99 * 1000, 1))


def test_large_slow_requests_are_evaluated_in_worker_processes(stall_server: Server) -> None:
    """Over 64 KB, the policy runs in worker processes: CPU-bound work there shares no GIL
    with the server's event loop, so the bound here is tighter than for threads."""
    agent = stall_server.agent_client("large-neighbour")
    try:
        for _ in range(20):
            agent.guard("refund", {"amount": 5})
        slow = SlowRequests(stall_server, 4, pad=100_000)
        times = []
        while len(times) < 40 and slow.in_flight():
            took, result = timed(lambda: agent.guard("run_sql", {"query": "DROP TABLE t"}))
            assert result.action == "block" and result.rule_name != "staso/unavailable"
            times.append(took)
        slow.join()
    finally:
        agent.shutdown()
    # the plugin was loaded by the worker processes and decided there
    assert [r["rule_name"] for r in slow.results] == ["slow_check"] * 4
    # a few calls while they ran (how many fit depends on the machine), none held up by them
    assert len(times) >= 3 and max(times) < FAST_BOUND / 3, times


def test_a_caller_that_gave_up_gets_no_escalation_it_never_heard_of(
        stall_server: Server) -> None:
    decision_id = f"gone_{time.monotonic_ns()}"
    with pytest.raises(httpx.ReadTimeout):  # the agent's timeout: it fails per fail_closed
        httpx.post(stall_server.url + "/v1/guard", headers=stall_server.headers("agent"),
                   timeout=0.5, json={"tool_name": "slow_review", "decision_id": decision_id,
                                      "tool_input": {"seconds": 1.5}})
    deadline = time.monotonic() + 20
    while decision_id not in stall_server.stored_ids("decisions"):
        assert time.monotonic() < deadline, "the late decision was never recorded"
        time.sleep(0.1)
    pending = stall_server.request("GET", "/v1/escalations?tool=slow_review",
                                   role="approver").json()
    assert pending == []
    # the same call with time to wait is escalated as the policy says
    r = stall_server.request("POST", "/v1/guard", json={
        "tool_name": "slow_review", "tool_input": {"seconds": 0.1}}).json()
    assert r["action"] == "escalate" and r["escalation_id"]


def test_a_saturated_pool_keeps_healthz_answering(tmp_path: Path) -> None:
    """With every evaluation thread busy, routes that evaluate nothing stay on time."""
    with slow_server(tmp_path, workers=1) as server:
        slow = SlowRequests(server, 2)
        times = []
        while len(times) < 10 and slow.in_flight():
            took, r = timed(lambda: httpx.get(server.url + "/healthz", timeout=10))
            assert r.status_code == 200
            times.append(took)
            took, r = timed(lambda: server.request("GET", "/v1/policy"))
            assert r.status_code == 200
            times.append(took)
        assert slow.in_flight()
        slow.join()
        # the second slow request waited for the only thread: the pool really was full
        assert max(slow.finished) - slow.started >= 2 * SLOW_SECONDS * 0.9
        assert len(times) == 10 and max(times) < FAST_BOUND, times


# -- embedded --------------------------------------------------------------------------------
EMBEDDED_POLICY = """version: 1
rules:
  - name: slow_review
    tools: [slow_tool]
    when: "has(tool_input.pause) ? pause(tool_input.seconds) : slow(tool_input.seconds)"
    action: escalate
    reason: needs a person
"""
LATE = 1.5  # seconds the embedded slow evaluation takes: longer than every timeout below
TIMEOUT = 0.3
MARGIN = 0.5  # seconds a busy machine may add to a timeout


def burn(seconds: float) -> bool:
    """The embedded twin of the plugin's ``slow``: pure-Python CPU for ``seconds``."""
    end = time.perf_counter() + float(seconds)
    while time.perf_counter() < end:
        pass
    return True


PAUSES: list[float] = []


def pause(seconds: float) -> bool:
    """Slow plugin code that waits (on a remote service, say) and so leaves the GIL free."""
    PAUSES.append(float(seconds))
    time.sleep(float(seconds))
    return True


class SlowPlugin:
    @st.hookimpl
    def staso_cel_functions(self) -> dict[str, Any]:
        return {"slow": burn, "pause": pause}


@pytest.fixture
def slow_embedded(tmp_path: Path) -> Iterator[st.Client]:
    client = st.init(agent_name="a", home=tmp_path, policy=EMBEDDED_POLICY,
                     plugins=[SlowPlugin()])
    yield client
    st.shutdown()


def logged_row(client: st.Client, decision_id: str) -> dict[str, Any]:
    client.flush()
    rows = client.transport.service.store.list_decisions(limit=1000)  # type: ignore[attr-defined]
    return next(r for r in rows if r["id"] == decision_id)


def test_sync_guard_returns_at_its_timeout_failing_closed(slow_embedded: st.Client) -> None:
    took, result = timed(lambda: st.guard("slow_tool", {"seconds": LATE}, timeout=TIMEOUT))
    assert took < TIMEOUT + MARGIN
    # the time went in a plugin's CEL function: the call blocks naming the plugin
    assert (result.action, result.rule_name) == ("block", "plugin:SlowPlugin")
    assert "did not answer within the 0.3 s timeout" in result.reason
    # the log records what the caller was told, and the late evaluation (an escalate)
    # never stores an escalation nobody asked about
    time.sleep(LATE + 0.3)
    row = logged_row(slow_embedded, result.decision_id)
    assert (row["action"], row["rule_name"]) == ("block", "plugin:SlowPlugin")
    assert st.get_client().list_escalations() == []
    # given time, the same call is decided by the policy
    assert st.guard("slow_tool", {"seconds": 0.05}).action == "escalate"


def test_a_plugin_slow_past_the_timeout_blocks_even_failing_open(
        slow_embedded: st.Client) -> None:
    took, result = timed(lambda: st.guard("slow_tool", {"seconds": LATE}, timeout=TIMEOUT,
                                          fail_closed=False))
    assert took < TIMEOUT + MARGIN
    assert (result.action, result.rule_name) == ("block", "plugin:SlowPlugin")
    assert logged_row(slow_embedded, result.decision_id)["action"] == "block"


def test_aguard_times_out_and_never_holds_the_event_loop(slow_embedded: st.Client) -> None:
    async def main() -> tuple[float, st.GuardResult, list[float]]:
        gaps: list[float] = []
        done = asyncio.Event()

        async def ticker() -> None:
            last = time.perf_counter()
            while not done.is_set():
                await asyncio.sleep(0.01)
                now = time.perf_counter()
                gaps.append(now - last)
                last = now

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.05)
        t = time.perf_counter()
        result = await st.aguard("slow_tool", {"seconds": LATE}, timeout=TIMEOUT)
        took = time.perf_counter() - t
        # no timeout given this time: the evaluation still runs off the loop
        await st.aguard("slow_tool", {"seconds": 1.0}, timeout=None)
        done.set()
        await task
        return took, result, gaps

    took, result, gaps = asyncio.run(main())
    assert took < TIMEOUT + MARGIN
    assert result.action == "block" and "timeout" in result.reason
    # the ticker kept running through 1.3 s of slow evaluation: held, the loop would have
    # stopped for as long as each evaluation (1.5 s, then 1 s)
    assert len(gaps) >= 20 and max(gaps) < 0.5, max(gaps)


def test_a_flood_of_slow_calls_uses_a_bounded_number_of_threads(
        slow_embedded: st.Client) -> None:
    # The slow plugin code here waits rather than computes. Four threads computing in pure
    # Python share one GIL with the caller's event loop, and how CPython hands it round
    # (not staso) then decides how late a timed-out caller returns; one computing
    # evaluation is the test above.
    async def flood() -> list[tuple[float, st.GuardResult]]:
        async def one(i: int) -> tuple[float, st.GuardResult]:
            t = time.perf_counter()
            r = await st.aguard("slow_tool", {"seconds": LATE, "pause": True, "i": i},
                                timeout=TIMEOUT)
            return time.perf_counter() - t, r
        return await asyncio.gather(*(one(i) for i in range(20)))

    answers = asyncio.run(flood())
    workers = slow_embedded.transport.workers  # type: ignore[attr-defined]
    evaluating = [t for t in threading.enumerate() if t.name.startswith("staso-eval")]
    assert len(evaluating) == workers  # 20 slow calls, only this many threads
    assert all(r.action == "block" for _, r in answers)
    assert max(took for took, _ in answers) < TIMEOUT + MARGIN, sorted(t for t, _ in answers)
    time.sleep(LATE + 0.3)  # the few that ran finish; the queued ones were cancelled
    assert st.get_client().list_escalations() == []


def test_a_queued_evaluation_past_its_callers_timeout_is_never_run(tmp_path: Path) -> None:
    # A caller starved of the GIL cannot cancel its queued evaluation when it gives up; the
    # worker that reaches it later must drop it rather than run it.
    client = st.init(agent_name="a", home=tmp_path, policy=EMBEDDED_POLICY,
                     plugins=[SlowPlugin()])
    try:
        transport = client.transport
        transport.workers = 1  # type: ignore[attr-defined]
        PAUSES.clear()
        busy = st.guard("slow_tool", {"seconds": 0.6, "pause": True}, timeout=0.1)
        assert busy.action == "block"  # gave up; its evaluation holds the only thread
        request, _ = client._request("slow_tool", {"seconds": 0.01, "pause": True},
                                     None, False, 300.0, 0.1)
        queued = transport._submit(request)  # type: ignore[attr-defined]  # nobody cancels
        with pytest.raises(GuardFailure, match="timeout passed before"):
            queued.result(timeout=5)
        assert PAUSES == [0.6]  # the queued evaluation's plugin code never ran
    finally:
        st.shutdown()
