"""The decision log as operators read it: ``Client.list_decisions`` / ``get_decision``,
``GET /v1/decisions``, ``/v1/overview``, ``/v1/policy/versions`` (and their dashboard-session
twins), and ``staso decisions list|show``, embedded and remote, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

import sides
from servers import Server, cli
from staso.client import Client
from staso.decision_filters import BadFilter, masked_output
from staso.masking import Masker
from staso.models import GuardResult
from staso.store import open_store

POLICY = """version: 1
redact_in_log: [password, card_number]
rules:
  - name: big_refund
    tools: [process_refund]
    when: tool_input.amount > 1000
    action: escalate
  - name: no_drop
    tools: ["run_*"]
    when: tool_input.query.contains("DROP")
    action: block
"""


class Side(sides.Side):
    def guard(self, tool: str, tool_input: dict[str, Any], agent_name: str | None = None
              ) -> GuardResult:
        return self.client(agent_name).guard(tool, tool_input)

    def reader(self) -> Client:
        """A client that may read the log: remote, an approver key's."""
        return self.answerer(f"reader-{sides.fresh_tag()}")[0]


side, remote_side, cli_side, sqlite_policy_server, postgres_policy_server = \
    sides.side_fixtures(Side, POLICY, agent_name="Ops-{tag}")


def _calls(side: Side) -> dict[str, str]:
    """One call of each kind by the side's agent; decision ids by name."""
    made = {
        "small": side.guard("process_refund", {"amount": 5, "password": "hunter2"}),
        "big": side.guard("process_refund", {"amount": 5000, "card_number": "4111"}),
        "drop": side.guard("run_sql", {"query": "DROP TABLE users"}),
        "percent": side.guard("weird%tool", {"query": "x"}),
        "percent_twin": side.guard("weirdXXtool", {"query": "x"}),
        "underscore": side.guard("under_score", {"query": "x"}),
        "underscore_twin": side.guard("underXscore", {"query": "x"}),
    }
    assert made["big"].action == "escalate" and made["drop"].action == "block"
    for client in side.clients.values():
        client.flush()
    return {name: r.decision_id for name, r in made.items()}


def _ids(reader: Client, **filters: Any) -> set[str]:
    return {d["id"] for d in reader.list_decisions(limit=500, **filters).items}


def test_filters_detail_and_masking(side: Side) -> None:
    ids = _calls(side)
    reader = side.reader()
    agent = side.agent_name
    mine = set(ids.values())
    assert _ids(reader, agent=agent.lower()) == mine  # a whole name, any case
    assert _ids(reader, agent=agent.upper().replace("OPS-", "o*-")) == mine  # a glob
    assert _ids(reader, agent="ops-") == set()  # a name is whole, not a prefix
    assert _ids(reader, agent=agent, action="block,ESCALATE") == {ids["big"], ids["drop"]}
    assert _ids(reader, agent=agent, rule="BIG_*") == {ids["big"]}
    assert _ids(reader, agent=agent, tool="Process_Refund") == {ids["small"], ids["big"]}
    # % and _ are literal, in name filters and in the text search
    assert _ids(reader, agent=agent, tool="weird%tool") == {ids["percent"]}
    assert _ids(reader, agent=agent, tool="under_score") == {ids["underscore"]}
    assert _ids(reader, agent=agent, q="d%t") == {ids["percent"]}
    assert _ids(reader, agent=agent, q="R_S") == {ids["underscore"]}
    assert _ids(reader, agent=agent, q="NO_DROP") == {ids["drop"]}  # in the reason
    assert _ids(reader, q=ids["drop"][-10:].upper()) == {ids["drop"]}  # in the id
    assert _ids(reader, agent=agent, since="1h") == mine
    assert _ids(reader, agent=agent, until=time.time() - 3600) == set()
    assert _ids(reader, agent=agent, since=time.time() + 60) == set()

    items = {d["id"]: d for d in reader.list_decisions(agent=agent, limit=500).items}
    assert items[ids["small"]]["tool_input"] == {"amount": 5, "password": "[MASKED]"}
    assert items[ids["big"]]["tool_input"] == {"amount": 5000, "card_number": "[MASKED]"}
    assert all(name in items[ids["small"]] for name in (
        "policy_digest", "latency_ms", "results", "execution_status", "answers"))

    # the tool's output is stored as it came, and masked for display
    side.client().record_execution(
        decision_id=ids["small"], tool_name="process_refund", tool_input={},
        fields={"execution_status": "ok", "execution_ms": 1.5,
                "execution_output": repr({"password": "hunter2", "refund": "r_1"})})
    side.decision(ids["small"], until=lambda row: row["execution_status"] == "ok")
    small = reader.get_decision(ids["small"])
    assert small is not None and small["escalation"] is None
    assert small["execution_output"] == "{'password': '[MASKED]', 'refund': 'r_1'}"
    assert reader.list_decisions(q=ids["small"]).items[0]["execution_output"] == \
        small["execution_output"]

    big = reader.get_decision(ids["big"])
    assert big is not None and big["escalation"] is not None
    assert big["escalation"]["id"] == big["escalation_id"]
    assert big["escalation"]["status"] == "pending"
    assert big["escalation"]["tool_input"]["card_number"] == "[MASKED]"
    assert big["rule_name"] == "big_refund" and big["results"][0]["rule_name"] == "big_refund"
    assert reader.get_decision("dec_nothing_like_it") is None

    with pytest.raises(BadFilter, match=r"^since: "):
        reader.list_decisions(since="yesterday")
    with pytest.raises(BadFilter, match=r"^action: 'allowed'"):
        reader.list_decisions(action="block,allowed")


def test_paging_returns_each_row_once_while_new_ones_arrive(side: Side) -> None:
    for i in range(7):
        side.guard("process_refund", {"amount": i})
    for client in side.clients.values():
        client.flush()
    reader = side.reader()
    agent = side.agent_name
    before = [d["id"] for d in reader.list_decisions(agent=agent, limit=500).items]
    assert len(before) == 7

    async def read_async() -> tuple[list[str], dict[str, Any] | None]:
        page = await reader.alist_decisions(agent=agent, limit=500)
        return [d["id"] for d in page.items], await reader.aget_decision(before[0])
    listed, first = asyncio.run(read_async())
    assert listed == before and first is not None and first["id"] == before[0]
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = reader.list_decisions(agent=agent, limit=3, cursor=cursor)
        seen += [d["id"] for d in page.items]
        side.guard("process_refund", {"amount": 1})  # a newer decision between pages
        side.client().flush()
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == before  # newest first, every row exactly once, none of the new ones
    with pytest.raises(BadFilter, match=r"^cursor: "):
        reader.list_decisions(cursor="not-a-cursor")


def test_ties_on_the_same_time_page_by_id(database_url: str) -> None:
    """Rows written with one timestamp (a batch) still page without loss or repeats."""
    from staso.decision_filters import DecisionFilter

    store = open_store(database_url)
    try:
        at = 1_700_000_000.25
        store.write_decisions([{"id": f"dec_t{i:03d}", "created_at": at, "agent_name": "a",
                                "environment": "", "tool_name": "t", "action": "allow"}
                               for i in range(9)])
        seen, cursor = [], None
        while True:
            page = store.query_decisions(DecisionFilter(limit=4, cursor=cursor))
            seen += [d["id"] for d in page.items]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert seen == [f"dec_t{i:03d}" for i in reversed(range(9))]
    finally:
        store.close()


def test_overview_aggregates_on_the_database(database_url: str) -> None:
    store = open_store(database_url)
    try:
        base = 1_699_999_200.0  # a multiple of 300 and 3600
        rows = [("allow", None, 10), ("allow", None, 20), ("block", "no_drop", 30),
                ("block", "no_drop", 400), ("escalate", "big_refund", 410),
                ("modify", "mask_pii", 7200), ("allow", "big_refund", 7300)]
        store.write_decisions([{"id": f"dec_o{i}", "created_at": base + t, "agent_name": "a",
                                "environment": "", "tool_name": "t", "action": a,
                                "rule_name": r}
                               for i, (a, r, t) in enumerate(rows)])
        # ten escalations answered after 10, 20, ... 100 seconds, one still pending
        for i in range(11):
            esc, _ = store.open_escalation(
                fingerprint=f"f{i}", decision_id=f"dec_e{i}", expires_at=base + 10**6,
                claim_window=60, now=base + i,
                values={"tool_name": "t", "tool_input": {}, "context": {}})
            if i < 10:
                store.resolve(esc.id, status="approved", by="alice", now=base + i + 10 * (i + 1))
        found = store.decision_overview(base, base + 3 * 3600 - 1, now=base + 1000)
        assert found["bucket_seconds"] == 300
        assert found["totals"] == {"allow": 3, "block": 2, "modify": 1, "escalate": 1}
        series = {p["t"]: p for p in found["series"]}
        assert len(series) == 36 and min(series) == base
        assert series[base] == {"t": base, "allow": 2, "block": 1, "modify": 0, "escalate": 0}
        assert series[base + 300]["block"] == 1 and series[base + 300]["escalate"] == 1
        assert series[base + 7200]["modify"] == 1 and series[base + 7200]["allow"] == 1
        assert found["top_rules"] == [
            {"rule": "big_refund", "count": 2, "actions": {"escalate": 1, "allow": 1}},
            {"rule": "no_drop", "count": 2, "actions": {"block": 2}},
            {"rule": "mask_pii", "count": 1, "actions": {"modify": 1}}]
        res = found["resolution"]
        assert (res["count"], res["p50_s"], res["p90_s"], res["max_s"]) == (10, 50, 90, 100)
        assert [b["count"] for b in res["histogram"]] == [6, 4, 0, 0, 0, 0, 0]
        assert found["pending"] == 1
        # a week: hourly buckets; beyond: days
        assert store.decision_overview(base, base + 7 * 86400)["bucket_seconds"] == 3600
        assert store.decision_overview(base, base + 30 * 86400)["bucket_seconds"] == 86400
    finally:
        store.close()


def test_execution_output_is_masked_for_display() -> None:
    masker = Masker(("password",))
    assert json.loads(masked_output('{"user": "a", "password": "x"}', masker)) == {
        "user": "a", "password": "[MASKED]"}
    assert masked_output("{'password': 'x', 'n': 1}", masker) == \
        "{'password': '[MASKED]', 'n': 1}"
    assert masked_output("password is x", masker) == "password is x"  # plain text: as is


# -- HTTP ---------------------------------------------------------------------------------
def _login(server: Server) -> httpx.Client:
    """A dashboard session (cookie) for the approver key."""
    http = httpx.Client(base_url=server.url, timeout=30)
    http.get("/login")
    token = http.cookies.get("staso_login_csrf")
    answer = http.post("/login", data={"api_key": server.keys["approver"], "csrf_token": token})
    assert answer.status_code == 303 and "staso_session" in http.cookies
    return http


def test_routes_roles_bad_input_and_the_dashboard_twins(remote_side: Side) -> None:
    server = remote_side.server
    assert server is not None
    ids = _calls(remote_side)
    agent = remote_side.agent_name
    for path in ("/v1/decisions", f"/v1/decisions/{ids['big']}", "/v1/overview",
                 "/v1/policy/versions", "/v1/policy/versions/1"):
        assert server.request("GET", path, role="agent").status_code == 403, path
        assert server.request("GET", path, role=None).status_code == 401, path
    for params, name in (({"since": "soon"}, "since"), ({"until": "-5"}, "until"),
                         ({"action": "nuke"}, "action"), ({"limit": "0"}, "limit"),
                         ({"limit": "501"}, "limit"), ({"cursor": "xyz"}, "cursor"),
                         ({"since": "1h", "until": "2h"}, "since")):
        answer = server.request("GET", "/v1/decisions", role="approver", params=params)
        assert answer.status_code == 422, params
        body = answer.json()
        assert body["errors"][0]["loc"] == ["query", name] and name in body["detail"], body
    assert server.request("GET", "/v1/overview", role="approver",
                          params={"since": "1x"}).status_code == 422
    assert server.request("GET", "/v1/decisions/dec_unknown", role="approver"
                          ).status_code == 404

    listed = server.request("GET", "/v1/decisions", role="approver",
                            params={"agent": agent, "limit": "2"}).json()
    assert len(listed["items"]) == 2 and listed["next_cursor"]
    detail = server.request("GET", f"/v1/decisions/{ids['big']}", role="admin").json()
    assert detail["escalation"]["id"] == detail["escalation_id"]

    http = _login(server)
    try:
        same = http.get("/dashboard/decisions", params={"agent": agent, "limit": "2"}).json()
        assert same == listed
        assert http.get(f"/dashboard/decisions/{ids['big']}").json() == detail
        assert http.get("/dashboard/decisions", params={"since": "x"}).status_code == 422
        assert http.get("/dashboard/overview").json()["bucket_seconds"] == 3600  # 24 h
        assert http.get("/dashboard/policy/versions").json() == server.request(
            "GET", "/v1/policy/versions", role="approver").json()
        assert http.get("/dashboard/policy/versions/1").json()["version"] == 1
    finally:
        http.close()
    for path in ("/dashboard/decisions", "/dashboard/overview", "/dashboard/policy/versions"):
        assert httpx.get(server.url + path).status_code == 401


def test_overview_counts_what_was_sent(remote_side: Side) -> None:
    server = remote_side.server
    assert server is not None
    time.sleep(0.01)
    start = time.time()
    pending_before = server.request("GET", "/v1/overview", role="approver").json()["pending"]
    ids = _calls(remote_side)
    approver, _ = remote_side.answerer(f"boss-{sides.fresh_tag()}")
    big = remote_side.store.get_decision(ids["big"])
    assert big is not None
    overview = server.request("GET", "/v1/overview", role="approver",
                              params={"since": repr(start)}).json()
    assert overview["totals"] == {"allow": 5, "block": 1, "modify": 0, "escalate": 1}
    assert overview["pending"] == pending_before + 1
    assert sum(p["allow"] for p in overview["series"]) == 5
    rules = {r["rule"]: r for r in overview["top_rules"]}
    assert rules["big_refund"]["actions"] == {"escalate": 1}
    assert rules["no_drop"]["actions"] == {"block": 1}
    approver.approve(big["escalation_id"], by="boss")
    after = server.request("GET", "/v1/overview", role="approver",
                           params={"since": repr(start)}).json()
    assert after["resolution"]["count"] == 1 and after["pending"] == pending_before
    assert sum(b["count"] for b in after["resolution"]["histogram"]) == 1
    assert after["resolution"]["p50_s"] == after["resolution"]["max_s"] >= 0


def test_escalation_history_pages_with_before(remote_side: Side) -> None:
    server = remote_side.server
    assert server is not None
    for amount in (2000, 3000, 4000):
        remote_side.guard("process_refund", {"amount": amount})
    agent = remote_side.agent_name

    def page(**params: Any) -> list[str]:
        answer = server.request("GET", "/v1/escalations", role="approver",
                                params={"agent": agent, **params})
        assert answer.status_code == 200, answer.text
        return [e["id"] for e in answer.json()]

    everything = page()
    assert len(everything) == 3
    first = page(limit=2)
    assert first + page(limit=2, before=first[-1]) == everything
    assert server.request("GET", "/v1/escalations", role="approver",
                          params={"before": "esc_unknown"}).status_code == 404


def test_policy_versions_and_their_source(remote_side: Side) -> None:
    server = remote_side.server
    assert server is not None
    versions = server.request("GET", "/v1/policy/versions", role="approver").json()
    newest = versions[0]["version"]
    assert [v["version"] for v in versions] == sorted((v["version"] for v in versions),
                                                      reverse=True)
    assert [v["in_force"] for v in versions] == [True] + [False] * (len(versions) - 1)
    source = POLICY + f"# edited {sides.fresh_tag()}\n"
    put = server.request("PUT", "/v1/policy", role="admin", json={"source": source})
    assert put.status_code == 200, put.text
    assert put.json()["version"] == newest + 1
    after = server.request("GET", "/v1/policy/versions", role="approver").json()
    assert after[0]["version"] == newest + 1 and after[0]["in_force"]
    assert after[0]["created_by"] == "root" and not after[1]["in_force"]
    one = server.request("GET", f"/v1/policy/versions/{newest + 1}", role="approver").json()
    assert one["source"] == source and one["version"] == newest + 1
    first = server.request("GET", "/v1/policy/versions/1", role="approver").json()
    assert first["source"] == POLICY  # the file staso serve --policy stored
    for missing in ("999999", "99999999999", "0"):
        assert server.request("GET", f"/v1/policy/versions/{missing}", role="approver"
                              ).status_code == 404
    # a decision made now names the version in force and its digest
    decided = remote_side.guard("process_refund", {"amount": 1})
    row = remote_side.reader().get_decision(decided.decision_id)
    assert row is not None
    assert (row["policy_version"], row["policy_digest"]) == (newest + 1, after[0]["digest"])


# -- the CLI --------------------------------------------------------------------------------
def _unique_prefix(side: Side, decision_id: str) -> str:
    for end in range(len("dec_") + 1, len(decision_id)):
        if side.store.decision_ids_starting(decision_id[:end]) == [decision_id]:
            return decision_id[:end]
    return decision_id


def test_cli_list_and_show(cli_side: Side) -> None:
    ids = _calls(cli_side)
    key = None
    if cli_side.server is not None:
        key = cli_side.server.keys["approver"]
    env = {**cli_side.cli_env(key), "COLUMNS": "80"}
    listed = cli("decisions", "list", "--agent", cli_side.agent_name, "--since", "1h",
                 env=env)
    lines = listed.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), listed.stdout
    for decision_id in ids.values():  # ids in full, never cut
        assert decision_id in listed.stdout

    runner = CliRunner()
    from staso.cli import app

    shown = runner.invoke(app, ["decisions", "show", _unique_prefix(cli_side, ids["big"])],
                          env=env)
    assert shown.exit_code == 0, shown.output
    assert ids["big"] in shown.output and '"card_number": "[MASKED]"' in shown.output
    assert "big_refund" in shown.output and "escalation: esc_" in shown.output
    assert "pending, opened 20" in shown.output  # a local ISO date, not epoch seconds
    as_json = runner.invoke(app, ["decisions", "show", ids["drop"], "--json"], env=env)
    assert json.loads(as_json.output)["action"] == "block"
    ambiguous = runner.invoke(app, ["decisions", "show", "dec_"], env=env)
    assert ambiguous.exit_code == 1 and "ambiguous" in ambiguous.output
    for args, where in ((["--since", "yesterday"], "--since"),
                        (["--action", "nuke"], "--action"), (["--limit", "0"], "--limit")):
        bad = runner.invoke(app, ["decisions", "list", *args], env=env)
        assert bad.exit_code == 2 and bad.output.startswith(where), bad.output
        assert len(bad.output.strip().splitlines()) == 1
