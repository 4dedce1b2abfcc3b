"""Rule results are stored compactly (a template per tool's rule set, and what differed), and
read back as the full list, on SQLite and PostgreSQL: every reader of the log sees what the
call was told, rows written before the change included."""

from __future__ import annotations

import json
import pickle
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from staso.dead_letters import read_dead_letters
from staso.decision_filters import DecisionFilter
from staso.models import GuardRequest, GuardResult, RuleResult
from staso.plugins import make_plugin_manager
from staso.policy.discovery import load_any_policy
from staso.result_templates import CompactResults, ResultTemplate, compact
from staso.service import DecisionService
from staso.store import open_store
from staso.store.store import MIGRATIONS

POLICY = """version: 1
rules:
  - name: big_refund
    tools: [process_refund]
    when: tool_input.amount > 1000
    action: escalate
  - name: huge_refund
    tools: [process_refund]
    when: tool_input.amount > 100000
    action: block
  - name: audit_notes
    tools: [process_refund]
    mode: audit
    when: has(tool_input.note)
    action: block
  - name: prod_admin
    when: tool_name.startsWith("admin_") && context.environment == "prod"
    action: block
  - use: builtin/dangerous_shell
  - use: builtin/pii
"""


@pytest.fixture
def service(database_url: str, tmp_path: Path) -> Iterator[DecisionService]:
    pm = make_plugin_manager(())
    made = DecisionService(open_store(database_url), load_any_policy(POLICY, pm), pm,
                           dead_letter_file=tmp_path / "dead.jsonl")
    yield made
    made.close()


def _decide(service: DecisionService, tool: str, tool_input: dict, n: int) -> GuardResult:
    request = GuardRequest(tool_name=tool, tool_input=tool_input, decision_id=f"dec_{n}",
                           agent_name="agent")
    result = service.decide(request)
    service.finish(request, result)
    return result


def _stored(service: DecisionService, decision_id: str) -> str:
    with service.store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT CAST(results AS TEXT) FROM decisions "
                                    "WHERE id = :id"), {"id": decision_id}).scalar_one()


CALLS = [
    ("process_refund", {"amount": 5}),  # every rule passes
    ("process_refund", {"amount": 5000}),  # escalates
    ("process_refund", {"amount": 500000, "note": "x"}),  # two rules fire, one audit
    ("process_refund", {"amount": 5, "memo": "rm -rf / --no-preserve-root"}),  # a pack
    ("process_refund", {"amount": 5, "email": "ann@example.com"}),  # modify: redacted
    ("admin_reset", {"x": 1}),  # another tool's rule set
    ("shell", {"cmd": "ls"}),
]


def test_every_reader_gets_the_full_results_and_rows_hold_only_what_differs(
        service: DecisionService) -> None:
    results = [_decide(service, tool, tool_input, n)
               for n, (tool, tool_input) in enumerate(CALLS)]
    service.log.flush()
    assert service.log.dead_letters.count == 0
    expected = {f"dec_{n}": [r.to_dict() for r in result.results]
                for n, result in enumerate(results)}
    store = service.store
    for decision_id, full in expected.items():
        row = store.get_decision(decision_id)
        assert row is not None and row["results"] == full, decision_id
    listed = {row["id"]: row["results"] for row in store.list_decisions(limit=50)}
    page = store.query_decisions(DecisionFilter(limit=50))
    assert listed == expected
    assert {row["id"]: row["results"] for row in page.items} == expected
    # what a row holds: the template's key, and only the entries that differ
    allow = json.loads(_stored(service, "dec_0"))
    assert set(allow) == {"template"} and len(_stored(service, "dec_0")) < 60
    escalated = json.loads(_stored(service, "dec_1"))
    assert escalated["template"] == allow["template"]
    assert [place for place, _ in escalated["changed"]] == [0]
    assert [place for place, _ in json.loads(_stored(service, "dec_2"))["changed"]] == [0, 1, 2]
    with store.engine.connect() as conn:
        templates = dict(conn.execute(sa.text(
            "SELECT key, results FROM rule_result_templates")).all())
    # one template a rule set: process_refund's 6 rules, and the 3 every other tool has
    assert sorted(len(json.loads(t)) for t in templates.values()) == [3, 6]
    assert json.loads(templates[allow["template"]]) == expected["dec_0"]


def test_a_second_process_reads_templates_it_never_wrote(service: DecisionService,
                                                         database_url: str) -> None:
    for n, (tool, tool_input) in enumerate(CALLS):
        _decide(service, tool, tool_input, n)
    service.log.flush()
    other = open_store(database_url)
    try:
        for n in range(len(CALLS)):
            mine, theirs = service.store.get_decision(f"dec_{n}"), other.get_decision(f"dec_{n}")
            assert mine is not None and theirs is not None
            assert theirs["results"] == mine["results"] and len(theirs["results"]) >= 3
    finally:
        other.close()


def test_results_that_do_not_line_up_with_the_template_are_stored_whole(
        service: DecisionService) -> None:
    """A plugin's verdict appended, a result that came back from a worker process (equal,
    not the same object), and results of a policy swapped in before the row was written."""
    plain = _decide(service, "process_refund", {"amount": 5}, 0)
    template = service.engine.template_for("process_refund")
    assert template is not None
    verdict = RuleResult("plugin:limits", False, "block", reason="over the day's limit")
    with_plugin = compact([*plain.results, verdict], template)
    assert isinstance(with_plugin, CompactResults)
    assert json.loads(with_plugin.compact)["changed"] == [[6, verdict.to_dict()]]
    from_worker = compact(pickle.loads(pickle.dumps(plain.results)), template)
    assert isinstance(from_worker, CompactResults)
    assert from_worker.compact == template.unchanged
    other_policy = [RuleResult(f"rule_{i}", True, "block") for i in range(6)]
    whole = compact(other_policy, template)
    assert not isinstance(whole, CompactResults)
    assert json.loads(str(whole)) == [r.to_dict() for r in other_policy]
    assert not isinstance(compact(plain.results[:2], template), CompactResults)
    assert not isinstance(compact(plain.results, None), CompactResults)
    # the plugin's verdict is read back after the template's entries, in its place
    row = {"id": "dec_plugin", "created_at": time.time(), "agent_name": "a",
           "environment": "", "tool_name": "process_refund", "tool_input": {"amount": 5},
           "context": {}, "action": "block", "results": with_plugin}
    service.store.write_decisions([row], [])
    stored = service.store.get_decision("dec_plugin")
    assert stored is not None
    assert stored["results"] == [r.to_dict() for r in (*plain.results, verdict)]


def test_a_policy_swapped_before_the_row_is_written(service: DecisionService) -> None:
    """A call decided under one policy, logged once another is in force (whose passing
    rules read differently), is read back as it was decided."""
    request = GuardRequest(tool_name="process_refund", tool_input={"amount": 5},
                           decision_id="dec_0", agent_name="agent")
    decided = service.decide(request)
    pm = make_plugin_manager(())
    service.set_policy(load_any_policy(POLICY.replace("action: escalate",
                                                      "action: escalate\n    severity: low"), pm))
    after = _decide(service, "process_refund", {"amount": 5}, 1)
    assert after.results[0] != decided.results[0]  # the new template differs
    service.finish(request, decided)
    service.log.flush()
    for n, result in enumerate((decided, after)):
        row = service.store.get_decision(f"dec_{n}")
        assert row is not None and row["results"] == [r.to_dict() for r in result.results]


def test_dead_letters_keep_the_full_results(tmp_path: Path) -> None:
    passed = (RuleResult("a", True, "block"), RuleResult("b", True, "escalate"))
    fired = RuleResult("b", False, "escalate", reason="over 1,000")
    value = compact([passed[0], fired], ResultTemplate.of(passed))
    assert isinstance(value, CompactResults)
    from staso.dead_letters import DeadLetters
    letters = DeadLetters(tmp_path / "dead.jsonl")
    letters.keep([("insert", "dec_1", {"id": "dec_1", "results": value})], "refused")
    kept = read_dead_letters(tmp_path / "dead.jsonl")[0]["record"]["results"]
    assert json.loads(kept) == [passed[0].to_dict(), fired.to_dict()]


def test_rows_from_before_and_a_lost_template(service: DecisionService) -> None:
    """Rows written before templates existed hold the full list and read as they are; a
    row whose template is gone (the table emptied by hand) gives what it holds itself."""
    full = [{"rule_name": "old", "passed": True, "action": "block", "mode": "enforce",
             "reason": "", "severity": "low"}]
    service.store.write_decisions([{
        "id": "dec_old", "created_at": time.time(), "agent_name": "a", "environment": "",
        "tool_name": "t", "tool_input": {}, "context": {}, "action": "allow",
        "results": full}], [])
    escalated = _decide(service, "process_refund", {"amount": 5000}, 1)
    service.log.flush()
    assert service.store.get_decision("dec_old")["results"] == full  # type: ignore[index]
    with service.store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM rule_result_templates"))
    fresh = open_store(service.store.url)  # (this store remembers the templates it read)
    try:
        row = fresh.get_decision("dec_1")
        assert row is not None
        assert row["results"] == [escalated.results[0].to_dict()]
    finally:
        fresh.close()


def test_the_schema_goes_down_only_when_no_row_needs_its_templates(database_url: str) -> None:
    store = open_store(database_url)
    store.close()
    engine = sa.create_engine(database_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    try:
        with engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0005")  # no compact rows: it goes
            assert not sa.inspect(conn).has_table("rule_result_templates")
            command.upgrade(cfg, "head")
            conn.execute(sa.text(
                "INSERT INTO decisions (id, created_at, agent_name, environment, tool_name, "
                "results) VALUES ('dec_c', 1, '', '', 't', '{\"template\":\"k\"}')"))
        with pytest.raises(RuntimeError, match="1 decision rows hold compact rule results"), \
                engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.downgrade(cfg, "0005")
        with engine.connect() as conn:
            assert sa.inspect(conn).has_table("rule_result_templates")
    finally:
        engine.dispose()


def test_writers_meeting_the_same_new_templates_never_refuse_each_other(
        tmp_path: Path) -> None:
    """Several writers (replicas, after a policy change) meet the same new templates in
    different orders, at once: on PostgreSQL two inserting two uncommitted keys in
    opposite orders deadlocked, and one batch was refused."""
    import random
    import threading

    from servers import drop_pg_database, new_database

    url = new_database(tmp_path, "postgres")
    stores = [open_store(url) for _ in range(4)]
    failures: list[BaseException] = []
    try:
        for round_ in range(6):
            templates = [ResultTemplate.of((RuleResult(f"rule_{round_}_{i}", True, "block"),))
                         for i in range(12)]
            barrier = threading.Barrier(len(stores))

            def write(store: Any, n: int, templates: list[ResultTemplate] = templates,
                      round_: int = round_, barrier: threading.Barrier = barrier) -> None:
                order = templates[:]
                random.Random(n * 100 + round_).shuffle(order)
                rows = [{"id": f"dec_{round_}_{n}_{i}", "created_at": time.time(),
                         "agent_name": "a", "environment": "", "tool_name": "t",
                         "tool_input": {}, "action": "allow",
                         "results": compact(template.passed, template)}
                        for i, template in enumerate(order)]
                barrier.wait()
                try:
                    store.write_decisions(rows, [])
                except BaseException as exc:  # (collected: a thread's failure is the test's)
                    failures.append(exc)

            threads = [threading.Thread(target=write, args=(store, n))
                       for n, store in enumerate(stores)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        assert failures == []
        with stores[0].engine.connect() as conn:
            assert conn.execute(sa.text("SELECT COUNT(*) FROM decisions")).scalar() == 6 * 4 * 12
            assert conn.execute(sa.text(
                "SELECT COUNT(*) FROM rule_result_templates")).scalar() == 6 * 12
    finally:
        for store in stores:
            store.close()
        drop_pg_database(url)
