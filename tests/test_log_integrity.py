"""One bad row never stops the decision log, and nothing unrecorded is acknowledged.

Text a database cannot hold as is (NUL, lone surrogates, names that were not UTF-8) is
stored escaped and read back exactly, on SQLite and PostgreSQL, embedded and remote. A row
the database still refuses goes to the dead-letter file with its reason, is counted in
/metrics and answered 503 (never 200, never from the answer cache), while the rows around
it are written. A database that cannot take writes makes /healthz say degraded, and the
log's retries end.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

import staso as st
from conftest import BACKENDS, REFUND_POLICY, start_server, stop_server
from servers import Server
from staso.dead_letters import read_dead_letters
from staso.decision_log import DecisionLog
from staso.store import open_store
from staso.store.escaping import MARKER
from tally import tally

NOT_UTF8 = b"caf\xe9-\xff.txt".decode("utf-8", "surrogateescape")  # as os.listdir gives it
ODD = ["nul\x00inside", f"file {NOT_UTF8}", "lone \ud800 high", MARKER + '"looks escaped"',
       "plain ascii", "ünïcödé ✓"]


def _odd_input() -> dict[str, object]:
    return {"texts": ODD, NOT_UTF8: "key too", "nested": {"k\x00": ["\udcff", 1, 2.5]}}


def _raw_rows(url: str, table: str, column: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.execute(sa.text(f"SELECT {column} FROM {table}"))]
    finally:
        engine.dispose()


# -- embedded -----------------------------------------------------------------------------
def test_embedded_odd_text_round_trips(tmp_path: Path) -> None:
    st.init(home=tmp_path, agent_name=f"bot {NOT_UTF8}", policy=REFUND_POLICY)
    try:
        for text in ODD:
            assert st.guard(f"tool {text}", _odd_input(), context={"c": text}).action == "allow"

        @st.tool
        def list_files(folder: str) -> str:
            return "\n".join(ODD)

        @st.tool
        def read_bytes(path: str) -> bytes:
            return b"\x00\xff\xfe not utf-8"

        assert list_files(folder="/tmp") == "\n".join(ODD)
        read_bytes(path="/x")
        escalated = st.guard("process_refund", {"amount": 5000, "note": ODD[0]})
        st.approve(escalated.escalation_id, by=f"bob {NOT_UTF8}", comment=f"ok {ODD[0]} {NOT_UTF8}")
        st.get_client().flush()
        rows = {r["tool_name"]: r for r in
                st.get_client().transport.service.store.list_decisions(limit=50)}
        for text in ODD:
            row = rows[f"tool {text}"]
            assert row["tool_input"] == _odd_input()
            assert row["context"] == {"c": text}
            assert row["agent_name"] == f"bot {NOT_UTF8}"
        assert rows["list_files"]["execution_output"] == "\n".join(ODD)
        assert "\\x00\\xff" in rows["read_bytes"]["execution_output"]  # repr of the bytes
        assert st.get_escalation(escalated.escalation_id).comment == f"ok {ODD[0]} {NOT_UTF8}"
    finally:
        st.shutdown()  # never raises
    stored = _raw_rows(f"sqlite:///{tmp_path / 'staso.db'}", "decisions", "tool_name")
    assert f'{MARKER}"tool nul\\u0000inside"' in stored  # escaped, readable, lossless
    assert "tool plain ascii" in stored  # ordinary text is stored as it is
    assert not (tmp_path / "dead-letter.jsonl").exists()
    tally("odd text (NUL, lone surrogates, non-UTF-8 names) stored and read back, embedded",
          sent=len(ODD) + 3, recorded=len(stored), wrong=0, lost=0)


def _refuse(url: str, tool: str) -> None:
    """Make the database refuse decision rows for ``tool`` (as a full disk, a constraint
    or a bad value would refuse one row)."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(sa.engine.make_url(url).database)
        conn.execute(f"CREATE TRIGGER refuse_{tool} BEFORE INSERT ON decisions "
                     f"WHEN NEW.tool_name = '{tool}' "
                     "BEGIN SELECT RAISE(ABORT, 'refused by the test'); END")
        conn.commit()
        conn.close()
        return
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f"ALTER TABLE decisions ADD CONSTRAINT refuse_{tool} "
                             f"CHECK (tool_name <> '{tool}')"))
    engine.dispose()


def test_embedded_refused_row_goes_to_the_dead_letter_file(tmp_path: Path) -> None:
    st.init(home=tmp_path, agent_name="bot")
    st.guard("warm_up", {})
    st.get_client().flush()
    _refuse(f"sqlite:///{tmp_path / 'staso.db'}", "poison")
    ids = [st.guard("before", {"i": i}).decision_id for i in range(5)]
    bad = st.guard("poison", {"why": "refused"}).decision_id
    ids += [st.guard("after", {"i": i}).decision_id for i in range(5)]
    st.shutdown()  # writes what it can; must not raise
    letters = read_dead_letters(tmp_path / "dead-letter.jsonl")
    assert [e["decision_id"] for e in letters] == [bad]
    assert "refused by the test" in letters[0]["reason"]
    assert letters[0]["record"]["tool_input"] == {"why": "refused"}
    st.init(home=tmp_path, agent_name="bot")  # must not raise either
    try:
        later = st.guard("later", {}).decision_id
        st.get_client().flush()
        store = st.get_client().transport.service.store
        missing = [i for i in [*ids, later] if store.get_decision(i) is None]
        assert not missing
        assert store.get_decision(bad) is None
        tally("embedded: a row the database refuses, among 11", sent=12,
              recorded=len(ids) + 1, dead_lettered=len(letters), lost=len(missing))
    finally:
        st.shutdown()


# -- the decision service on each backend (the path embedded mode and the server share) --
def test_service_stores_odd_text_on_each_backend(database_url: str, tmp_path: Path) -> None:
    from staso.models import GuardRequest
    from staso.plugins import make_plugin_manager
    from staso.policy.discovery import load_any_policy
    from staso.service import DecisionService

    pm = make_plugin_manager(())
    service = DecisionService(open_store(database_url), load_any_policy(REFUND_POLICY, pm), pm,
                              dead_letter_file=tmp_path / "dead.jsonl")
    try:
        ids = []
        for n, text in enumerate(ODD):
            request = GuardRequest(tool_name=f"tool {text}", tool_input=_odd_input(),
                                   decision_id=f"dec_odd{n}", agent_name=f"agent {text}",
                                   context={"c": text})
            result = service.decide(request)
            service.finish(request, result)
            service.record_execution(None, request.decision_id,
                                     {"execution_status": "error", "execution_output": text,
                                      "execution_error": f"error {text}"})
            ids.append((request.decision_id, text))
        refund = GuardRequest(tool_name=f"process_refund {NOT_UTF8}", tool_input={"amount": 1},
                              decision_id="dec_refund", agent_name=ODD[0])
        esc_request = GuardRequest(tool_name="process_refund", agent_name=ODD[0],
                                   tool_input={"amount": 5000, "memo": ODD[2]},
                                   decision_id="dec_esc")
        escalated = service.decide(esc_request)
        service.finish(esc_request, escalated)
        service.finish(refund, service.decide(refund))
        service.resolve(escalated.escalation_id, status="denied", by=f"bob {NOT_UTF8}",
                        comment=ODD[0])
        service.log.flush()  # (the log's own thread may already have written some)
        assert service.log.failing is None and service.log.dead_letters.count == 0
        for decision_id, text in ids:
            row = service.store.get_decision(decision_id)
            assert row is not None
            assert (row["tool_name"], row["agent_name"]) == (f"tool {text}", f"agent {text}")
            assert row["tool_input"] == _odd_input() and row["context"] == {"c": text}
            assert (row["execution_output"], row["execution_error"]) == (text, f"error {text}")
        esc = service.get_escalation(escalated.escalation_id)
        assert (esc.comment, esc.resolved_by, esc.agent_name) == (ODD[0], f"bob {NOT_UTF8}",
                                                                  ODD[0])
        assert esc.tool_input == {"amount": 5000, "memo": ODD[2]}
        assert service.list_escalations(agent=ODD[0])[0].id == esc.id  # filters match too
        assert service.store.list_decisions(tool=f"tool {ODD[0]}")[0]["id"] == "dec_odd0"
        backend = database_url.split(":")[0].split("+")[0]
        tally(f"odd text stored and read back, decision service ({backend})",
              sent=len(ODD) + 2, recorded=len(ids) + 2, wrong=0, lost=0)
    finally:
        service.close()


def test_log_retries_end_when_the_database_stays_away(tmp_path: Path) -> None:
    """Records the database cannot take (nothing listens at its address) are retried with
    backoff, then kept in the dead-letter file: the retries are bounded."""
    from staso.dead_letters import DeadLetters
    from staso.store.store import Store

    store = Store("postgresql+psycopg://postgres@127.0.0.1:9/none", migrate=False)
    log = DecisionLog(store, interval=0.05, retry_seconds=0.5,
                      dead_letters=DeadLetters(tmp_path / "dead.jsonl"))
    try:
        for i in range(7):
            log.update(f"dec_{i}", {"execution_status": "ok"})
        log.add(lambda n: {"id": "dec_new", "tool_name": "t", "created_at": n}, 1.0,
                urgent=True)
        deadline = time.monotonic() + 60
        while log.dead_letters.count < 8 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert log.dead_letters.count == 8 and log.pending() == 0
        assert log.failing is not None and "could not" in log.failing
        letters = read_dead_letters(tmp_path / "dead.jsonl")
        assert sorted(e["decision_id"] for e in letters) == [
            *(f"dec_{i}" for i in range(7)), "dec_new"]
        assert all("could not be reached" in e["reason"] for e in letters)
        tally("database unreachable: retries end, records dead-lettered", sent=8,
              dead_lettered=len(letters), lost=8 - len(letters))
    finally:
        log.close()
        store.close()


# -- remote -----------------------------------------------------------------------------
@pytest.fixture(scope="module", params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    home = tmp_path_factory.mktemp(f"integrity-{request.param}")
    policy = home / "staso.yaml"
    policy.write_text(REFUND_POLICY)
    running = start_server(home, request.param, policy)
    yield running
    stop_server(running)


def test_remote_odd_text_round_trips(served: Server) -> None:
    st.init(api_key=served.keys["agent"], base_url=served.url, agent_name=f"agent {NOT_UTF8}")
    try:
        results = [st.guard(f"tool {text}", _odd_input(), context={"c": text})
                   for text in ODD]
        assert [r.action for r in results] == ["allow"] * len(ODD)

        @st.tool
        def list_files(folder: str) -> str:
            return "\n".join(ODD)

        assert list_files(folder=NOT_UTF8) == "\n".join(ODD)
    finally:
        st.shutdown()  # sends the execution records
    store = open_store(served.database_url)
    try:
        for result, text in zip(results, ODD, strict=True):
            row = store.get_decision(result.decision_id)
            assert row is not None and row["tool_name"] == f"tool {text}"
            assert row["tool_input"] == _odd_input() and row["context"] == {"c": text}
            assert row["agent_name"] == f"agent {NOT_UTF8}"
        run = store.list_decisions(tool="list_files")[0]
        assert run["execution_output"] == "\n".join(ODD)
        assert run["tool_input"] == {"folder": NOT_UTF8}
    finally:
        store.close()
    # an escalation with odd text, answered with an odd comment, read back over the API
    ascii_json = {"Content-Type": "application/json"}  # \\u escapes, as any client may send
    answer = served.request("POST", "/v1/guard", headers=ascii_json, content=json.dumps({
        "tool_name": "process_refund", "tool_input": {"amount": 5000, "memo": NOT_UTF8},
        "agent_name": ODD[0]}))
    assert answer.status_code == 200, answer.text
    assert answer.json()["action"] == "escalate"
    esc_id = answer.json()["escalation_id"]
    comment = f"approved {ODD[0]} {NOT_UTF8}"
    approved = served.request("POST", f"/v1/escalations/{esc_id}/approve", role="approver",
                              headers=ascii_json, content=json.dumps({"comment": comment}))
    assert approved.status_code == 200, approved.text
    esc = served.request("GET", f"/v1/escalations/{esc_id}").json()
    assert (esc["comment"], esc["agent_name"]) == (comment, ODD[0])
    assert esc["tool_input"] == {"amount": 5000, "memo": NOT_UTF8}
    listed = served.request("GET", "/v1/escalations", role="approver",
                            params={"agent": ODD[0]}).json()
    assert [e["id"] for e in listed] == [esc_id]
    tally(f"odd text stored and read back, remote ({served.backend})", sent=len(ODD) + 3,
          recorded=len(ODD) + 1, escalations=1, wrong=0, lost=0)


def _guard(server: Server, tool: str, decision_id: str) -> httpx.Response:
    return server.request("POST", "/v1/guard", json={
        "tool_name": tool, "tool_input": {"n": decision_id}, "decision_id": decision_id})


def _metric(server: Server, name: str) -> float:
    text = server.request("GET", "/metrics", role=None).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics:\n{text}")


def test_remote_refused_row_is_dead_lettered_and_never_acknowledged(served: Server) -> None:
    tool = "poison_" + served.backend
    _refuse(served.database_url, tool)
    before = _metric(served, "staso_decision_log_dead_letters_total")
    answers: dict[str, int] = {}

    def send(decision_id: str, name: str) -> None:
        answers[decision_id] = _guard(served, name, decision_id).status_code

    threads = [threading.Thread(target=send, args=(f"dec_{served.backend}_ok{i}", "fine"))
               for i in range(12)]
    threads.insert(6, threading.Thread(target=send, args=(f"dec_{served.backend}_bad",
                                                          tool)))
    for thread in threads:  # sent together: the refused row shares batches with others
        thread.start()
    for thread in threads:
        thread.join()
    bad = f"dec_{served.backend}_bad"
    assert answers.pop(bad) == 503
    assert set(answers.values()) == {200}
    retried = _guard(served, tool, bad)  # the same decision id: not answered from memory
    assert retried.status_code == 503 and "not acknowledged" in retried.json()["detail"]
    assert _guard(served, "fine", f"dec_{served.backend}_later").status_code == 200
    assert set(answers) | {f"dec_{served.backend}_later"} <= served.stored_ids("decisions")
    assert bad not in served.stored_ids("decisions")
    letters = [e for e in read_dead_letters(served.home / "dead-letter.jsonl")
               if e["decision_id"] == bad]
    assert len(letters) == 2 and letters[0]["record"]["tool_name"] == tool
    assert "refuse" in letters[0]["reason"]
    assert _metric(served, "staso_decision_log_dead_letters_total") == before + 2
    health = served.request("GET", "/healthz", role=None)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    tally(f"a row the database refuses, among 13 concurrent guards ({served.backend})",
          sent=15, acknowledged=len(answers) + 1, recorded=len(answers) + 1, refused=2,
          dead_lettered=len(letters), allowed_by_failure=0, lost=0)


def _pg_admin(sql: str) -> None:
    engine = sa.create_engine("postgresql+psycopg://postgres@127.0.0.1:5432/test",
                              isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


def _read_only(url: str, on: bool) -> None:
    """Make the server's database refuse every write (as a full disk or a replica in
    recovery would), and drop its connections so it reconnects into that."""
    name = sa.engine.make_url(url).database
    setting = "SET default_transaction_read_only = on" if on else \
        "RESET default_transaction_read_only"
    _pg_admin(f'ALTER DATABASE "{name}" {setting}')
    _pg_admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
              f"WHERE datname = '{name}' AND pid <> pg_backend_pid()")


def test_healthz_degraded_while_decisions_cannot_be_recorded(tmp_path: Path) -> None:
    server = start_server(tmp_path, "postgres")
    try:
        assert _guard(server, "fine", "dec_ro_warm").status_code == 200
        _read_only(server.database_url, True)
        first = _guard(server, "fine", "dec_ro_1")
        assert first.status_code == 503, first.text
        health = server.request("GET", "/healthz", role=None)
        assert health.status_code == 503
        assert health.json()["status"] == "degraded"
        assert "read-only" in health.json()["reason"]
        assert _guard(server, "fine", "dec_ro_1").status_code == 503  # no cached answer
        assert _metric(server, "staso_decision_log_healthy") == 0
        _read_only(server.database_url, False)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if server.request("GET", "/healthz", role=None).status_code == 200:
                break
            time.sleep(0.2)
        assert server.request("GET", "/healthz", role=None).json()["status"] == "ok"
        assert _guard(server, "fine", "dec_ro_1").status_code == 200  # now it is recorded
        stored = server.stored_ids("decisions")
        assert "dec_ro_1" in stored
        tally("database read-only under the server (postgresql)", sent=4, refused=2,
              acknowledged=2, recorded=2, lost=len({"dec_ro_warm", "dec_ro_1"} - stored))
    finally:
        _read_only(server.database_url, False)
        stop_server(server)


def test_a_reused_decision_id_is_never_acknowledged_for_another_call(served: Server) -> None:
    """The same agent sends an old decision id with another call (after a restart, or its
    answer left the cache): the log keeps the first call, so the second is not answered as
    if recorded."""
    reused = f"dec_{served.backend}_reused"
    assert _guard(served, "read_docs", reused).status_code == 200
    again = _guard(served, "wire_money", reused)
    assert again.status_code in (409, 503), again.text
    assert "already belong" in again.json()["detail"]
    assert _guard(served, "read_docs", reused).status_code == 200  # a retry of the first
    other_input = served.request("POST", "/v1/guard", json={
        "tool_name": "read_docs", "tool_input": {"n": "rm -rf /"}, "decision_id": reused})
    assert other_input.status_code == 409, other_input.text  # not the cached answer
    store = open_store(served.database_url)
    try:
        row = store.get_decision(reused)
        assert row is not None and row["tool_name"] == "read_docs"
    finally:
        store.close()


def test_an_executions_batch_says_which_records_were_refused(served: Server) -> None:
    tool = "poison_exec_" + served.backend
    _refuse(served.database_url, tool)
    good, bad = f"dec_{served.backend}_exec_ok", f"dec_{served.backend}_exec_bad"
    records = [{"decision_id": d, "tool_name": t, "tool_input": {}, "execution_status": "ok"}
               for d, t in ((good, "fine"), (bad, tool))]
    answer = served.request("POST", "/v1/executions", json={"records": records})
    assert answer.status_code == 200, answer.text
    assert answer.json()["recorded"] == 1
    assert [r["decision_id"] for r in answer.json()["refused"]] == [bad]
    assert good in served.stored_ids("decisions") and bad not in served.stored_ids("decisions")
    nowhere = served.request("POST", "/v1/executions", json={"records": [
        {"decision_id": "dec_never_decided", "execution_status": "ok"}]}).json()
    assert nowhere["recorded"] == 0 and "no decision" in nowhere["refused"][0]["reason"]


def test_deep_inputs_within_the_limit_are_recorded(served: Server, tmp_path: Path) -> None:
    """An input nested as deep as staso accepts (500 levels) is decided and recorded, not
    dead-lettered for running out of stack."""
    nested: object = 1
    for _ in range(495):
        nested = {"k": nested}
    st.init(home=tmp_path, agent_name="bot", policy=REFUND_POLICY)
    try:
        embedded = st.guard("process_refund", {"amount": 5000, "deep": nested})
        assert embedded.action == "escalate"
    finally:
        st.shutdown()
    assert not (tmp_path / "dead-letter.jsonl").exists()
    remote = served.request("POST", "/v1/guard", json={
        "tool_name": "deep_tool", "tool_input": {"deep": nested}})
    assert remote.status_code == 200, remote.text[:300]
    assert remote.json()["decision_id"] in served.stored_ids("decisions")
    # deep, with a lone surrogate, read by a CEL rule: decided (escalate), not an error
    odd = served.request("POST", "/v1/guard", headers={"Content-Type": "application/json"},
                         content=json.dumps({"tool_name": "process_refund", "tool_input": {
                             "amount": 5000, "deep": nested, "name": NOT_UTF8}}))
    assert odd.status_code == 200 and odd.json()["action"] == "escalate", odd.text[:300]
    for path in ("/v1/escalations", f"/v1/escalations/{odd.json()['escalation_id']}"):
        view = served.request("GET", path, role="approver")  # the approvers' views hold
        assert view.status_code == 200, view.text[:300]


def test_text_stored_before_escaping_that_looks_escaped_reads_as_it_is(served: Server) -> None:
    """A row written before escaping existed (or by an older replica) whose text happens to
    start with the marker must not break the approvers' views."""
    engine = sa.create_engine(served.database_url)
    legacy = f"esc_legacy_{served.backend}"
    with engine.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO escalations (id, fingerprint, status, agent_name, environment, "
            "tool_name, tool_input, context, reason, severity, decision_id, created_at, "
            "expires_at) VALUES (:id, 'f', 'pending', 'bot', '', :tool, '{}', '{}', '', "
            "'high', :id, :now, :later)"),
            {"id": legacy, "tool": MARKER + "not json{", "now": time.time(),
             "later": time.time() + 3600})
        conn.execute(sa.text(
            "INSERT INTO escalations (id, fingerprint, status, agent_name, environment, "
            "tool_name, tool_input, context, reason, severity, decision_id, created_at, "
            "expires_at) VALUES (:id, 'f2', 'pending', 'bot', '', :tool, '{}', '{}', '', "
            "'high', :id, :now, :later)"),
            {"id": legacy + "_deep", "tool": MARKER + "[" * 100_000, "now": time.time(),
             "later": time.time() + 3600})
    engine.dispose()
    one = served.request("GET", f"/v1/escalations/{legacy}")
    assert one.status_code == 200 and one.json()["tool_name"] == MARKER + "not json{"
    listed = served.request("GET", "/v1/escalations", role="approver")
    assert listed.status_code == 200 and legacy in {e["id"] for e in listed.json()}
