"""One decision path: the same calls, answered the same way, leave the same decision rows
in embedded mode (the service in the agent's process) and in remote mode (the service behind
a real ``staso serve``), field by field. Only what cannot be equal is left out: ids, times,
the measured latency and the escalation's own id."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import staso as st
from conftest import make_policy, start_server, stop_server
from servers import Server
from staso.store import open_store

POLICY = """version: 1
rules:
  - name: no_drops
    tools: [drop_table]
    action: block
    reason: tables stay
  - use: builtin/pii
    tools: [send_email]
  - name: big_refunds
    tools: [refund]
    when: tool_input.amount > 1000
    action: escalate
    reason: big refund
"""
# (a server numbers its policy versions; embedded has only the policy's digest, compared)
VOLATILE = {"id", "created_at", "latency_ms", "escalation_id", "policy_version"}
APPROVER = "alice"  # the test server's approver key is named so: "by" names the same person

# (name, tool, input, options, what a person does with the escalation: None, approve, deny)
SCENARIOS: list[tuple[str, str, dict[str, Any], dict[str, Any], str | None]] = [
    ("allow", "lookup", {"q": "order 17"}, {}, None),
    ("block", "drop_table", {"table": "users"}, {}, None),
    ("modify", "send_email", {"body": "my ssn is 123-45-6789"}, {}, None),
    ("escalate", "refund", {"amount": 5000}, {}, None),
    ("approved after a wait", "refund", {"amount": 6000},
     {"wait_for_escalation": True, "escalation_poll_interval": 0.2, "escalation_timeout": 30},
     "approve"),
    ("denied after a wait", "refund", {"amount": 7000},
     {"wait_for_escalation": True, "escalation_poll_interval": 0.2, "escalation_timeout": 30},
     "deny"),
    ("timed out", "refund", {"amount": 8000},
     {"wait_for_escalation": True, "escalation_poll_interval": 0.2, "escalation_timeout": 1.0},
     None),
]


Person = tuple[Callable[[], list[str]], Callable[[str, str], None]]  # (pending ids, answer)


def answer_when_pending(answer: str | None, person: Person,
                        before: set[str]) -> threading.Thread | None:
    """A person who answers the new pending escalation as soon as it appears."""
    if answer is None:
        return None
    pending, resolve = person

    def act() -> None:
        deadline = time.time() + 20
        while time.time() < deadline:
            new = [i for i in pending() if i not in before]
            if new:
                resolve(new[0], answer)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=act, daemon=True)
    thread.start()
    return thread


def run_scenarios(client: st.Client, person: Person) -> dict[str, str]:
    """Each scenario's call; returns scenario name -> decision id."""
    ids = {}
    for name, tool, tool_input, options, answer in SCENARIOS:
        helper = answer_when_pending(answer, person, set(person[0]()))
        result = client.guard(tool, tool_input, **options)
        if helper is not None:
            helper.join(timeout=30)
        ids[name] = result.decision_id
    client.flush()
    return ids


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """A row without what differs by nature; its answers as who said what (their times
    differ, and so does the channel: python embedded, the API remote)."""
    kept = {k: v for k, v in row.items() if k not in VOLATILE}
    answers = kept.get("answers")
    kept["answers"] = None if answers is None else [(a["by"], a["answer"]) for a in answers]
    return kept


@pytest.fixture
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("one-path")
    running = start_server(tmp, "sqlite", policy=make_policy(tmp, POLICY))
    yield running
    stop_server(running)


def test_embedded_and_remote_rows_are_the_same(tmp_path: Path, server: Server) -> None:
    embedded = st.Client(st.Settings.resolve(agent_name="refund-agent", home=tmp_path,
                                             policy=make_policy(tmp_path, POLICY)))
    try:
        def pending_here() -> list[str]:
            return [e.id for e in embedded.list_escalations(status="pending")]

        def resolve_here(escalation_id: str, answer: str) -> None:
            getattr(embedded, answer)(escalation_id, by=APPROVER)

        here_ids = run_scenarios(embedded, (pending_here, resolve_here))
        store = embedded.transport.service.store  # type: ignore[attr-defined]
        here = {name: store.get_decision(i) for name, i in here_ids.items()}
    finally:
        embedded.shutdown()

    remote = server.agent_client("refund-agent")
    try:
        def pending_there() -> list[str]:
            listed = server.request("GET", "/v1/escalations", role="approver",
                                    params={"status": "pending"})
            return [e["id"] for e in listed.json()]

        def resolve_there(escalation_id: str, answer: str) -> None:
            server.request("POST", f"/v1/escalations/{escalation_id}/{answer}",
                           role="approver", json={"by": APPROVER}).raise_for_status()

        there_ids = run_scenarios(remote, (pending_there, resolve_there))
    finally:
        remote.shutdown()
    server_store = open_store(server.database_url)  # (read as every reader of the log does)
    try:
        there = {name: server_store.get_decision(i) for name, i in there_ids.items()}
    finally:
        server_store.close()

    for name, *_ in SCENARIOS:
        assert here[name] is not None and there[name] is not None, name
        mine, theirs = comparable(here[name]), comparable(there[name])
        differing = {k: (mine.get(k), theirs.get(k)) for k in mine.keys() | theirs.keys()
                     if mine.get(k) != theirs.get(k)}
        assert not differing, f"{name}: {differing}"
    # and the rows say what happened
    assert here["approved after a wait"]["action"] == "allow"
    assert here["denied after a wait"]["action"] == "block"
    assert here["timed out"]["escalation_status"] == "timeout"

