"""Identity comes from the key, not the request body: an agent key acts only for the agent
names it is bound to (its own name by default, or ``--agent PATTERN``). Naming another
agent gets 403; another agent's approval cannot be used up, nor its escalation read,
claimed or given up, nor its decisions' executions recorded. Keys made before keys were
bound keep working, for any agent name, until ``staso keys bind`` narrows them."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from conftest import BACKENDS, REFUND_POLICY, start_server, stop_server
from servers import Server, cli
from staso.store import open_store
from staso.store.keys import hash_key
from tally import tally

REFUND = {"tool_name": "process_refund", "tool_input": {"amount": 5000, "order": "A-1"}}


@pytest.fixture(scope="module", params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[Server]:
    home = tmp_path_factory.mktemp(f"agent-keys-{request.param}")
    (home / "staso.yaml").write_text(REFUND_POLICY)
    running = start_server(home, request.param, home / "staso.yaml")
    for name, extra in (("bot", []), ("otherbot", []), ("fleet", ["--agent", "billing-*"])):
        running.keys[name] = cli("keys", "create", "--role", "agent", "--name", name, *extra,
                                 env=running.env).stdout.strip()
    yield running
    stop_server(running)


def _as(server: Server, key: str, method: str, path: str, **kwargs: object) -> httpx.Response:
    return httpx.request(method, server.url + path, timeout=30,
                         headers={"Authorization": f"Bearer {server.keys[key]}"},
                         **kwargs)  # type: ignore[arg-type]


def _guard(server: Server, key: str, **body: object) -> httpx.Response:
    return _as(server, key, "POST", "/v1/guard", json={**REFUND, **body})


def test_a_key_cannot_name_another_agent(served: Server) -> None:
    forged = _guard(served, "otherbot", agent_name="bot")
    assert forged.status_code == 403
    assert "acts only for agents matching 'otherbot'" in forged.json()["detail"]
    own = _guard(served, "otherbot", tool_input={"amount": 1})  # no name: the key's own
    assert own.status_code == 200 and own.json()["action"] == "allow"
    assert _guard(served, "bot", agent_name="bot", tool_input={"amount": 2}).status_code == 200
    for name, status in (("billing-eu", 200), ("billing-", 200), ("billingX", 403),
                         ("BILLING-eu", 403), ("billing-eu\nbot", 200)):
        answer = _guard(served, "fleet", agent_name=name, tool_input={"amount": 3})
        assert answer.status_code == status, (name, answer.text)
    # an admin key acts for any agent; the tests' own agent key was made with --agent '*'
    assert _guard(served, "admin", agent_name="bot", tool_input={"amount": 4}
                  ).status_code == 200


def test_an_approval_is_used_up_only_by_its_own_agent(served: Server) -> None:
    order = {"amount": 5000, "order": secrets.token_hex(4)}
    first = _guard(served, "bot", tool_input=order).json()
    assert first["action"] == "escalate"
    esc = first["escalation_id"]
    assert _as(served, "approver", "POST", f"/v1/escalations/{esc}/approve",
               json={"comment": "ok"}).status_code == 200
    # the attack: otherbot's key sends bot's call to use bot's approval
    stolen = _guard(served, "otherbot", agent_name="bot", tool_input=order)
    assert stolen.status_code == 403
    as_itself = _guard(served, "otherbot", tool_input=order).json()
    assert as_itself["action"] == "escalate" and as_itself["escalation_id"] != esc
    for path in (f"/v1/escalations/{esc}", f"/v1/escalations/{esc}?wait=0.1"):
        assert _as(served, "otherbot", "GET", path).status_code == 403
    for route in ("claim", "give-up"):
        answer = _as(served, "otherbot", "POST", f"/v1/escalations/{esc}/{route}",
                     json={"decision_id": "dec_thief"})
        assert answer.status_code == 403, answer.text
    assert _as(served, "bot", "GET", f"/v1/escalations/{esc}").json()["consumed_at"] is None
    retried = _guard(served, "bot", tool_input=order).json()  # bot's retry runs, once
    assert retried["action"] == "allow" and retried["escalation_id"] == esc
    assert _guard(served, "bot", tool_input=order).json()["action"] == "escalate"
    tally(f"another agent's key tries to use up an approval ({served.backend})", sent=8,
          escalations=2, refused=5, allowed_by_failure=0, duplicates=0)


def test_executions_are_recorded_only_for_the_keys_own_agents(served: Server) -> None:
    decided = _guard(served, "bot", tool_input={"amount": 7}).json()
    record = {"decision_id": decided["decision_id"], "execution_status": "ok",
              "execution_output": "refunded"}
    assert _as(served, "otherbot", "POST", "/v1/executions",
               json={"records": [record]}).status_code == 403
    unguarded = {"decision_id": "dec_unguarded_" + secrets.token_hex(4), "tool_name": "t",
                 "tool_input": {}, "agent_name": "bot", "execution_status": "ok"}
    assert _as(served, "otherbot", "POST", "/v1/executions",
               json={"records": [unguarded]}).status_code == 403
    assert _as(served, "bot", "POST", "/v1/executions",
               json={"records": [record, unguarded]}).status_code == 200
    store = open_store(served.database_url)
    try:
        row = store.get_decision(decided["decision_id"])
        assert row is not None and row["execution_output"] == "refunded"
    finally:
        store.close()


def test_keys_made_before_binding_keep_working_until_bound(tmp_path: Path) -> None:
    """A database from before agent keys were bound (revision 0002), with an agent key in
    it, is migrated by the server; that key still acts for any agent name, as it did, and
    ``staso keys bind`` narrows it."""
    from alembic import command
    from alembic.config import Config

    from staso.store.store import MIGRATIONS

    url = f"sqlite:///{tmp_path / 'staso.db'}"
    engine = sa.create_engine(url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0002")
        old_key = "staso_agent_" + secrets.token_urlsafe(32)
        conn.execute(sa.text("INSERT INTO api_keys (id, name, role, key_hash, created_at) "
                             "VALUES ('key_old', 'ci', 'agent', :h, :t)"),
                     {"h": hash_key(old_key), "t": time.time()})
    engine.dispose()
    server = Server(home=tmp_path, database_url=url)
    server.create_keys()  # runs the migration (any staso command does)
    server.keys["old"] = old_key
    listed = cli("keys", "list", env=server.env).stdout
    assert "any (unbound)" in listed
    server.start()
    try:
        for name in ("billing-bot", "refund-agent"):
            assert _guard(server, "old", agent_name=name).status_code == 200
        cli("keys", "bind", "key_old", "--agent", "billing-*", env=server.env)
        deadline = time.monotonic() + 30  # servers follow within their key cache's second
        while time.monotonic() < deadline:
            if _guard(server, "old", agent_name="refund-agent").status_code == 403:
                break
            time.sleep(0.2)
        assert _guard(server, "old", agent_name="refund-agent").status_code == 403
        assert _guard(server, "old", agent_name="billing-bot").status_code == 200
    finally:
        server.stop()
    refused = cli("keys", "bind", "key_nope", "--agent", "x", env=server.env, check=False)
    assert refused.returncode != 0 and "no live agent key" in refused.stderr
    not_agent = cli("keys", "create", "--role", "approver", "--name", "a", "--agent", "x",
                    env=server.env, check=False)
    assert not_agent.returncode != 0 and "only agent keys" in not_agent.stderr


def test_another_agents_decision_ids_neither_leak_nor_poison(served: Server) -> None:
    """Decision ids are guessable; knowing one must give nothing: not another agent's
    cached answer or escalation, not a way to pre-empt its next call."""
    tag = secrets.token_hex(4)
    bot_id, planted_id = f"dec_bot_{tag}", f"dec_next_{tag}"
    first = _guard(served, "bot", decision_id=bot_id,
                   tool_input={"amount": 5000, "o": tag}).json()
    assert first["action"] == "escalate"
    for amount in (1, 6000):  # eve's own call (allowed, or escalated) under bot's id
        stolen = _guard(served, "otherbot", decision_id=bot_id,
                        tool_input={"amount": amount, "o": tag})
        assert stolen.status_code in (409, 503), stolen.text
        assert first["escalation_id"] not in stolen.text
    # eve plants a harmless call under the id bot will use next
    assert _guard(served, "otherbot", decision_id=planted_id,
                  tool_input={"amount": 1}).status_code == 200
    poisoned = _guard(served, "bot", decision_id=planted_id,
                      tool_input={"amount": 9000, "o": tag})
    assert poisoned.status_code in (409, 503), poisoned.text  # never the planted allow
    assert poisoned.json()["error"] in ("NoFallback", "ReusedIdNoFallback")
    # nor can eve touch bot's decision row through her own escalation
    own = _guard(served, "otherbot", tool_input={"amount": 7000, "o": tag}).json()
    for route in ("claim", "give-up"):
        answer = _as(served, "otherbot", "POST",
                     f"/v1/escalations/{own['escalation_id']}/{route}",
                     json={"decision_id": bot_id})
        assert answer.status_code == 403, answer.text
    disguised = {"decision_id": bot_id, "tool_input": {}, "execution_status": "error",
                 "execution_error": "forged by eve"}  # an update dressed as a new record
    assert _as(served, "otherbot", "POST", "/v1/executions",
               json={"records": [disguised]}).status_code == 403
    store = open_store(served.database_url)
    try:
        row = store.get_decision(bot_id)
        assert row is not None and row["action"] == "escalate"
        assert row["execution_error"] is None and row["agent_name"] == "bot"
    finally:
        store.close()
    tally(f"another agent's decision ids: read, reused, planted ({served.backend})", sent=9,
          escalations=2, refused=7, allowed_by_failure=0, lost=0)
