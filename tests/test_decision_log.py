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
from staso.decision_filters import BadFilter, DecisionFilter
from staso.masking import Masker
from staso.models import GuardResult
from staso.output_masking import mask_text
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
    assert json.loads(mask_text('{"user": "a", "password": "x"}', masker)) == {
        "user": "a", "password": "[MASKED]"}
    assert mask_text("{'password': 'x', 'n': 1}", masker) == \
        "{'password': '[MASKED]', 'n': 1}"
    assert mask_text("password is x", masker) == "password is x"  # plain text: as is


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
    for blank in ("\r", " ", ""):  # nothing given: the last 24 hours (was: 500 on "\r")
        answer = server.request("GET", "/v1/overview", role="approver", params={"since": blank})
        assert answer.status_code == 200, (blank, answer.text)
        assert 86000 < answer.json()["until"] - answer.json()["since"] <= 86400
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
        found = side.store.query_decisions(DecisionFilter.parse(q=decision_id[:end], limit=500))
        if [r["id"] for r in found.items if r["id"].startswith(decision_id[:end])] \
                == [decision_id]:
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


# -- an outside reviewer's findings ---------------------------------------------------------
SECRET = "HUNTER2SECRET"
# (what a tool may say) -> each holds SECRET under a field redact_in_log names
SECRET_OUTPUTS = {
    "json": json.dumps({"password": SECRET, "n": 1}),
    "leading_space": " " + json.dumps({"password": SECRET}),
    "leading_newline": "\n" + json.dumps({"password": SECRET}),
    "repr_with_datetime": f"{{'password': '{SECRET}', "
                          "'at': datetime.datetime(2024, 1, 1, 0, 0)}",
    "prefix": "result: " + json.dumps({"password": SECRET}) + " (done)",
    "json_in_a_string": json.dumps({"data": json.dumps({"password": SECRET})}),
    "truncated": json.dumps({"password": SECRET + "x" * 9000, "pad": 1})[:8000]
                 + "… [1015 more chars]",
    "truncated_in_a_string": json.dumps({"d": json.dumps({"password": SECRET + "x" * 9000})}
                                        )[:8000],
    "pairs": f"login password={SECRET} user=bob",
    "line": f"HTTP 401\nPASSWORD: {SECRET}\n",
    "object_value": json.dumps({"card_number": {"pan": SECRET}}),
    "case": f"{{'PassWord': '{SECRET}'}}",
}


def test_output_and_error_are_masked_before_they_are_stored(side: Side) -> None:
    """F1: the raw secret never reaches the database, whatever shape the output has, and
    the error is masked too."""
    ids = {}
    for name, output in SECRET_OUTPUTS.items():
        ids[name] = side.guard("process_refund", {"amount": 1}).decision_id
        side.client().record_execution(
            decision_id=ids[name], tool_name="process_refund", tool_input={},
            fields={"execution_status": "error", "execution_ms": 1.0,
                    "execution_output": output,
                    "execution_error": f"KeyError: {{'password': '{SECRET}'}}"})
    reader = side.reader()
    for name, decision_id in ids.items():
        row = side.decision(decision_id, until=lambda r: r["execution_status"] == "error")
        assert SECRET not in json.dumps(row), (name, row["execution_output"][:200])
        assert "[MASKED]" in row["execution_output"] and "[MASKED]" in row["execution_error"]
        shown = reader.get_decision(decision_id)
        assert shown is not None and SECRET not in json.dumps(shown), name
    assert row["execution_error"] == "KeyError: {'password': '[MASKED]'}"
    listed = reader.list_decisions(agent=side.agent_name, limit=500)
    assert SECRET not in json.dumps(listed.to_dict())


def test_mask_text_shapes_and_display_of_old_rows() -> None:
    from staso.decision_filters import decision_json
    from staso.output_masking import mask_text

    masker = Masker(("password", "card_number", "authorization"))
    for name, text in {**SECRET_OUTPUTS,
                       "long": json.dumps({"pad": "x" * 30_000, "password": SECRET})}.items():
        masked = mask_text(text, masker)
        assert SECRET not in masked and "[MASKED]" in masked, (name, masked[:200])
    assert mask_text("{'password': 'x', 'n': 1}", masker) == "{'password': '[MASKED]', 'n': 1}"
    assert mask_text(f"401\nAuthorization: Bearer {SECRET}\nnext", masker) == \
        "401\nAuthorization: [MASKED]\nnext"
    assert mask_text('result: {"password": "x"} ok', masker) == \
        'result: {"password": "[MASKED]"} ok'
    for kept in ("password is x", '{"password": null, "n": 1}', "no secrets here",
                 "[" * 3000 + "]" * 3000):
        assert mask_text(kept, masker) == kept
    # rows recorded before masking on write: masked when shown, error and output alike;
    # and JSON inside a string of a tool's input
    old = {"execution_output": " " + json.dumps({"password": SECRET}),
           "execution_error": f"ValueError: password={SECRET}",
           "tool_input": {"payload": json.dumps({"password": SECRET})}}
    shown = decision_json(old, masker)
    assert SECRET not in json.dumps(shown)
    assert json.loads(shown["tool_input"]["payload"]) == {"password": "[MASKED]"}


def _cursor(raw: str) -> str:
    import base64

    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


TAMPERED_CURSORS = {
    "huge int": _cursor("[1" + "0" * 400 + ',"d"]'),
    "lone surrogate": _cursor('[1e9,"\\ud800"]'),
    "nul": _cursor('[1e9,"a\\u0000b"]'),
    "nan": _cursor('[NaN,"d"]'),
    "infinity": _cursor('[Infinity,"d"]'),
    "far future": _cursor('[1e18,"d"]'),
    "negative": _cursor('[-1,"d"]'),
    "three": _cursor('[1,"a",3]'),
    "object": _cursor('{"a":1}'),
    "deep": _cursor("[" * 300 + "]" * 300),
    "bool": _cursor('[true,"x"]'),
    "padding": _cursor('[1,"d"]') + "==",
    "junk": "!!!",
}


def test_tampered_cursors_are_422_on_both_databases(remote_side: Side) -> None:
    """F2: never a 500, never every row: a cursor the server did not give is a 422."""
    from staso.decision_filters import decode_cursor, encode_cursor

    assert decode_cursor(encode_cursor(1_700_000_000.5, "dec_x")) == (1_700_000_000.5, "dec_x")
    server = remote_side.server
    assert server is not None
    http = _login(server)
    try:
        for name, cursor in TAMPERED_CURSORS.items():
            with pytest.raises(BadFilter, match=r"^cursor: not a cursor this server gave"):
                decode_cursor(cursor)
            for answer in (server.request("GET", "/v1/decisions", role="approver",
                                          params={"cursor": cursor}),
                           http.get("/dashboard/decisions", params={"cursor": cursor})):
                assert answer.status_code == 422, (name, answer.text)
                assert answer.json()["errors"][0]["loc"] == ["query", "cursor"]
    finally:
        http.close()


def test_names_with_a_nul_are_found_by_globs_and_exact_names(side: Side) -> None:
    """F9: a tool named with a NUL (stored escaped) cannot hide from the name filters."""
    hidden = side.guard("drop_db\x00", {"query": "x"}).decision_id
    ctrl = side.guard("drop\x07table", {"query": "x"}).decision_id
    side.client().flush()
    reader = side.reader()
    agent = side.agent_name
    for tool in ("drop_db*", "DROP_DB*", "drop_db\x00", "Drop_Db\x00", "*db\x00", "*drop*"):
        assert hidden in _ids(reader, agent=agent, tool=tool), tool
    assert _ids(reader, agent=agent, tool="drop_db") == set()  # a name is whole
    assert _ids(reader, agent=agent, tool="drop\x07table") == {ctrl}
    assert _ids(reader, agent=agent, tool="drop*table") == {ctrl}
    assert _ids(reader, agent=agent, q="db\x00") == {hidden}
    assert _ids(reader, agent=agent, q="drop_db") == {hidden}


def test_ids_in_paths_and_huge_durations(remote_side: Side) -> None:
    """F11: ids are one path segment (never another route); a duration reaching before
    1970 is a 422, in the API as in the CLI."""
    from staso.errors import EscalationNotFound
    from staso.grants import GrantNotFound
    from staso.transports.http import segment

    with pytest.raises(EscalationNotFound):
        segment("../../v1/decisions")
    assert segment("a?b#c%d") == "a%3Fb%23c%25d"
    reader = remote_side.reader()
    for odd in ("", ".", "..", "../../v1/decisions", "../escalations", "x?limit=1"):
        assert reader.get_decision(odd) is None, odd
        with pytest.raises(EscalationNotFound):
            reader.get_escalation(odd)
        with pytest.raises(GrantNotFound):
            reader.get_grant(odd)
    server = remote_side.server
    assert server is not None
    for path in ("/v1/decisions", "/v1/overview"):
        for since in ("9999999999999999999d", "9" * 30 + "w", "1e20", "99999999999999"):
            answer = server.request("GET", path, role="approver", params={"since": since})
            assert answer.status_code == 422, (path, since, answer.text)
            assert answer.json()["errors"][0]["loc"] == ["query", "since"]
        assert server.request("GET", path, role="approver",
                              params={"until": "1e20"}).status_code == 422


def test_cli_ids_and_a_missing_store(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """F11: an empty or huge id says so; a read-only command never creates a store."""
    from staso.cli import app

    monkeypatch.delenv("STASO_BASE_URL", raising=False)
    monkeypatch.delenv("STASO_API_KEY", raising=False)
    missing = tmp_path / "nowhere"
    runner = CliRunner()
    env = {"STASO_HOME": str(missing)}
    for args in (["decisions", "list"], ["decisions", "show", "dec_x"],
                 ["escalations", "list"], ["escalations", "show", "esc_x"],
                 ["grants", "list"]):
        result = runner.invoke(app, args, env=env)
        assert result.exit_code == 1, (args, result.output)
        assert result.output.strip() == f"no embedded store at {missing / 'staso.db'} " \
                                         "(set STASO_HOME or --url)", result.output
    assert not missing.exists()
    for given, said in (("", "id: empty"), ("d" * 20_000, "id: longer than 1000")):
        result = runner.invoke(app, ["decisions", "show", given], env=env)
        assert result.exit_code == 1 and result.output.startswith(said), result.output


def test_cli_prints_recorded_names_as_escapes(cli_side: Side) -> None:
    """F6: escape sequences and Rich markup in names reach the terminal as text."""
    from staso.cli import app

    tool, agent = "[red]RED[/red]\x1b[2Jclear", f"[blink]ag\x1b[31m{sides.fresh_tag()}"
    made = cli_side.guard(tool, {"query": "x"}, agent_name=agent)
    esc = cli_side.guard("process_refund", {"amount": 5000}, agent_name=agent)
    for client in cli_side.clients.values():
        client.flush()
    key = cli_side.server.keys["approver"] if cli_side.server is not None else None
    env = {**cli_side.cli_env(key), "COLUMNS": "200"}
    runner = CliRunner()
    outputs = [runner.invoke(app, args, env=env) for args in (
        ["decisions", "list", "--agent", agent], ["decisions", "show", made.decision_id],
        ["decisions", "show", esc.decision_id], ["escalations", "list"],
        ["escalations", "show", str(esc.escalation_id)])]
    for result in outputs:
        assert result.exit_code == 0, result.output
        assert "\x1b" not in result.output and "\\x1b" in result.output, result.output
    assert "[red]RED[/red]\\x1b[2Jclear" in outputs[1].output
    assert "[blink]ag\\x1b[31m" in outputs[0].output


# -- a new operator's findings: ids by their end, whole names, ISO times -------------------
def test_cli_show_takes_an_end_hints_whole_names_and_reads_iso_times(cli_side: Side) -> None:
    import re
    from datetime import date

    from staso.cli import app

    ids = _calls(cli_side)
    key = cli_side.server.keys["approver"] if cli_side.server is not None else None
    env = {**cli_side.cli_env(key), "COLUMNS": "80"}
    runner = CliRunner()
    big = ids["big"]
    assert big[:20] == ids["small"][:20]  # one process: one long shared start
    shown = runner.invoke(app, ["decisions", "show", big[-8:]], env=env)
    assert shown.exit_code == 0, shown.output
    assert f"id: {big}" in shown.output
    # the one time format of every command: local date and time, offset, age
    assert re.search(r"time: \d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d \(\d+s ago\)",
                     shown.output), shown.output
    assert re.search(r"opened \d{4}-\d\d-\d\d \d\d:\d\d:\d\d.* \(\d+s ago\)", shown.output)
    starts = runner.invoke(app, ["decisions", "show", big[:20]], env=env)
    assert starts.exit_code == 1 and "ambiguous: it starts" in starts.output, starts.output
    agent = cli_side.agent_name
    for option, name in (("--tool", "process"), ("--agent", agent[1:]), ("--rule", "big")):
        none = runner.invoke(app, ["decisions", "list", option, name]
                             + (["--agent", agent + "*"] if option != "--agent" else []),
                             env=env)
        assert none.exit_code == 0, none.output
        assert none.output.strip() == (f"no decisions match; names are matched whole — try "
                                       f"{option} '*{name}*'"), none.output
    globbed = runner.invoke(app, ["decisions", "list", "--agent", agent, "--tool", "*rocess*"],
                            env=env)
    assert big in globbed.output
    nothing = runner.invoke(app, ["decisions", "list", "--agent", agent + "*",
                                  "--tool", "*zzz*"], env=env)
    assert nothing.output.strip() == "no decisions match", nothing.output
    # ISO dates and date-times, local time without an offset
    today = date.today().isoformat()
    for since in (today, today + "T00:00", today + "T00:00:00+14:00"):
        listed = runner.invoke(app, ["decisions", "list", "--agent", agent, "--since", since],
                               env=env)
        assert listed.exit_code == 0 and big in listed.output, (since, listed.output)
    later = runner.invoke(app, ["decisions", "list", "--agent", agent + "*",
                                "--since", "2099-01-01"], env=env)
    assert later.output.strip() == "no decisions match", later.output
    bad = runner.invoke(app, ["decisions", "list", "--since", "2026-13-01"], env=env)
    assert bad.exit_code == 2 and bad.output.startswith("--since '2026-13-01' is not a time")


def test_show_says_whether_an_ambiguous_part_ends_or_starts_ids() -> None:
    from staso.cli.decisions import _find
    from staso.decision_filters import DecisionPage

    ids = ["dec_aaaa000000000000000000beef", "dec_beef00000000000000000000c1",
           "dec_1111000000000000000000beef"]

    class Reader:
        def get_decision(self, decision_id: str) -> dict[str, Any] | None:
            return {"id": decision_id} if decision_id in ids else None

        def list_decisions(self, q: str, limit: int, cursor: str | None) -> DecisionPage:
            return DecisionPage([{"id": i} for i in ids if q.lower() in i], None)

    import typer

    assert _find(Reader(), "00c1")["id"] == ids[1]
    assert _find(Reader(), "DEC_AAAA")["id"] == ids[0]
    assert _find(Reader(), "beef00")["id"] == ids[1]  # a start without its dec_
    with pytest.raises(typer.Exit):
        _find(Reader(), "beef")
    runner = CliRunner()
    from staso.cli import app
    from staso.cli import decisions as module

    original = module.on_reader
    try:
        module.on_reader = lambda url, key, action: action(Reader())  # type: ignore[assignment]
        for given, said in (("beef", "it ends 2 and starts 1 decision ids"),
                            ("0beef", "it ends 2 decision ids")):
            result = runner.invoke(app, ["decisions", "show", given])
            assert result.exit_code == 1 and said in result.output, result.output
    finally:
        module.on_reader = original  # type: ignore[assignment]


@pytest.mark.parametrize(("given", "want"), [
    ("2026-12-01", (2026, 12, 1, 0, 0, None)),
    ("2026-12-01T09:00", (2026, 12, 1, 9, 0, None)),
    ("2026-12-01 09:00:30", (2026, 12, 1, 9, 0, None)),
    ("2026-12-01T09:00+01:00", (2026, 12, 1, 8, 0, "UTC")),
    ("2026-12-01T09:00Z", (2026, 12, 1, 9, 0, "UTC")),
])
def test_parse_time_reads_iso_dates_and_date_times(given: str, want: tuple[Any, ...]) -> None:
    from datetime import datetime, timezone

    from staso.decision_filters import parse_time

    at = parse_time(given, "since")
    assert at is not None
    shown = datetime.fromtimestamp(at, timezone.utc if want[5] else None)
    assert (shown.year, shown.month, shown.day, shown.hour, shown.minute) == want[:5]
    assert parse_time("2099", "since") == 2099.0  # a plain number: epoch seconds, as before
    assert parse_time("1h", "since", now=7200.0) == 3600.0
    for bad in ("2026-13-01", "2026-12-01T25:00", "yesterday", "1969-12-31"):
        with pytest.raises(BadFilter, match="since"):
            parse_time(bad, "since")
