"""Who may answer, quorum and standing approvals on the dashboard, against a real
`staso serve`: its form routes from logged-in sessions on SQLite and PostgreSQL, and the
pages in a real browser (Debian chromium driven by Playwright) on SQLite."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import BACKENDS, make_policy, start_server, stop_server
from servers import Server, wait_for
from staso.store import open_store
from staso.store.keys import create_key

POLICY = """version: 1
rules:
  - name: payments_team
    tools: [process_refund]
    when: tool_input.amount > 1000
    action: escalate
    approvers: [carol, "group:payments"]
  - name: two_person_wire
    tools: [wire_transfer]
    action: escalate
    approvals_required: 2
  - name: not_your_own
    tools: [delete_account]
    action: escalate
    forbid_self_approval: true
  - name: odd_tools
    tools: ["odd*"]
    action: escalate
"""

# approver keys besides the server's own (alice: no groups, listed nowhere by name)
PEOPLE = {"carol": [], "dave": ["payments"], "erin": ["support"]}


def _started(tmp: Path, backend: str) -> tuple[Server, dict[str, str]]:
    server = start_server(tmp, backend, policy=make_policy(tmp, POLICY))
    keys = {"alice": server.keys["approver"]}
    store = open_store(server.database_url)
    try:
        for name, groups in PEOPLE.items():
            keys[name] = create_key(store, role="approver", name=name, groups=groups)[1]
    finally:
        store.close()
    return server, keys


@pytest.fixture(scope="module", params=BACKENDS)
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[Server, dict[str, str]]]:
    """A staso serve with the policy above and its people's keys, once per backend."""
    server, keys = _started(tmp_path_factory.mktemp(f"approvers-{request.param}"),
                            request.param)
    yield server, keys
    stop_server(server)


class Session:
    """One person logged in to the dashboard over HTTP, posting its forms as the page
    does (session cookie, CSRF token from the page, JSON answers)."""

    def __init__(self, server: Server, key: str) -> None:
        self.http = httpx.Client(base_url=server.url, timeout=30)
        page = self.http.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        assert token is not None
        r = self.http.post("/login", data={"csrf_token": token.group(1), "api_key": key})
        assert r.status_code == 303 and r.headers["location"] == "/", r.text
        meta = re.search(r'name="csrf-token" content="([^"]+)"', self.http.get("/").text)
        assert meta is not None, "not logged in"
        self.csrf = meta.group(1)

    def post(self, path: str, **fields: str) -> httpx.Response:
        return self.http.post(path, data={"csrf_token": self.csrf, **fields},
                              headers={"Accept": "application/json"})

    def approve(self, escalation_id: str, **fields: str) -> httpx.Response:
        return self.post(f"/dashboard/escalations/{escalation_id}/approve", **fields)

    def deny(self, escalation_id: str, **fields: str) -> httpx.Response:
        return self.post(f"/dashboard/escalations/{escalation_id}/deny", **fields)

    def pending(self, escalation_id: str) -> dict[str, Any] | None:
        """The escalation as this person's pending list shows it (None: not pending)."""
        data = self.http.get("/dashboard/data").json()
        return next((e for e in data["pending"] if e["id"] == escalation_id), None)

    def history(self, escalation_id: str) -> dict[str, Any] | None:
        data = self.http.get("/dashboard/data").json()
        return next((e for e in data["history"] if e["id"] == escalation_id), None)

    def grants(self, live: bool = False) -> list[dict[str, Any]]:
        r = self.http.get("/dashboard/grants", params={"live": "1"} if live else {})
        assert r.status_code == 200, r.text
        grants: list[dict[str, Any]] = r.json()["grants"]
        return grants

    def revoke(self, grant_id: str) -> httpx.Response:
        return self.post(f"/dashboard/grants/{grant_id}/revoke")

    def close(self) -> None:
        self.http.close()


@pytest.fixture
def sessions(served: tuple[Server, dict[str, str]]) -> Iterator[dict[str, Session]]:
    server, keys = served
    opened = {name: Session(server, key) for name, key in keys.items()}
    yield opened
    for session in opened.values():
        session.close()


def escalate(server: Server, tool: str, tool_input: dict[str, Any], agent: str = "refund-agent",
             context: dict[str, Any] | None = None) -> str:
    r = server.request("POST", "/v1/guard", json={
        "tool_name": tool, "tool_input": tool_input, "agent_name": agent,
        "context": context or {}})
    assert r.status_code == 200 and r.json()["action"] == "escalate", r.text
    escalation_id: str = r.json()["escalation_id"]
    return escalation_id


def stored(server: Server, escalation_id: str) -> dict[str, Any]:
    r = server.request("GET", f"/v1/escalations/{escalation_id}", role="approver")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


# -- the form routes, on SQLite and PostgreSQL -----------------------------------------------
def test_someone_not_among_the_approvers_gets_403_and_it_stays_pending(
        served: tuple[Server, dict[str, str]], sessions: dict[str, Session]) -> None:
    server, _ = served
    esc = escalate(server, "process_refund", {"amount": 5000, "order": "o-403"})
    for name in ("alice", "erin"):  # listed neither by name nor by group
        shown = sessions[name].pending(esc)
        assert shown is not None and shown["approvers"] == ["carol", "group:payments"]
        assert shown["you"]["may_approve"] is False and shown["you"]["may_deny"] is False
        assert f"{name} may not answer" in shown["you"]["note"]
        for answer in (sessions[name].approve, sessions[name].deny):
            r = answer(esc)
            assert r.status_code == 403, r.text
            assert "group:payments" in r.json()["detail"]
        assert stored(server, esc)["status"] == "pending"
    # carol by name, dave by his group
    assert sessions["carol"].pending(esc)["you"] == {"may_approve": True, "may_deny": True,
                                                     "note": ""}
    assert sessions["dave"].pending(esc)["you"]["may_approve"] is True
    r = sessions["dave"].approve(esc, comment="checked the order")
    assert r.status_code == 200 and r.json()["escalation"]["status"] == "approved", r.text
    answered = stored(server, esc)
    assert answered["resolved_by"] == "dave" and answered["resolved_via"] == "dashboard"


def test_two_of_n_from_two_dashboard_sessions(served: tuple[Server, dict[str, str]],
                                              sessions: dict[str, Session]) -> None:
    server, _ = served
    esc = escalate(server, "wire_transfer", {"amount": 50000, "to": "acct-2of2"})
    # one of several can neither edit nor approve later calls ahead
    edit = sessions["alice"].approve(esc, modified_input='{"amount": 1}')
    ahead = sessions["alice"].approve(esc, grant="1", grant_ttl="1h")
    assert edit.status_code == 422 and ahead.status_code == 422
    assert "2 approvers" in ahead.json()["detail"]
    assert stored(server, esc)["approvals"] == []

    first = sessions["alice"].approve(esc, comment="looks right")
    assert first.status_code == 200, first.text
    assert "1 of 2" in first.json()["detail"]
    assert first.json()["escalation"]["status"] == "pending"
    mine = sessions["alice"].pending(esc)  # still pending, with the progress
    assert mine is not None
    assert [(a["name"], a["via"]) for a in mine["approvals"]] == [("alice", "dashboard")]
    assert mine["you"]["may_approve"] is False and "You have approved" in mine["you"]["note"]
    theirs = sessions["erin"].pending(esc)
    assert theirs is not None and theirs["you"]["may_approve"] is True

    again = sessions["alice"].approve(esc)
    assert again.status_code == 409 and "already approved" in again.json()["detail"]
    assert len(stored(server, esc)["approvals"]) == 1

    second = sessions["erin"].approve(esc)
    assert second.status_code == 200 and second.json()["escalation"]["status"] == "approved"
    assert sessions["alice"].pending(esc) is None
    row = sessions["alice"].history(esc)
    assert row is not None and row["status"] == "approved"
    assert [(a["name"], a["via"]) for a in row["approvals"]] == [
        ("alice", "dashboard"), ("erin", "dashboard")]
    assert isinstance(row["policy_version"], int) and row["policy_version"] >= 1
    late = sessions["carol"].approve(esc)
    assert late.status_code == 409


def test_one_cannot_approve_a_call_one_asked_for(served: tuple[Server, dict[str, str]],
                                                 sessions: dict[str, Session]) -> None:
    server, _ = served
    esc = escalate(server, "delete_account", {"account": "a-self"},
                   context={"requested_by": "alice"})
    shown = sessions["alice"].pending(esc)
    assert shown is not None and shown["requested_by"] == "alice"
    assert shown["forbid_self_approval"] is True
    assert shown["you"]["may_approve"] is False and shown["you"]["may_deny"] is True
    assert "forbids approving one's own request" in shown["you"]["note"]
    r = sessions["alice"].approve(esc)
    assert r.status_code == 403 and stored(server, esc)["status"] == "pending"
    assert sessions["carol"].approve(esc).status_code == 200
    assert stored(server, esc)["resolved_by"] == "carol"


def test_approve_with_a_standing_approval_allows_the_next_call_until_revoked(
        served: tuple[Server, dict[str, str]], sessions: dict[str, Session]) -> None:
    server, _ = served
    agent = server.agent_client("grant-agent")
    try:
        first = agent.guard("process_refund", {"amount": 1500, "order": "g-1"})
        assert first.action == "escalate"
        carol = sessions["carol"]
        # refused scopes say why, and leave the escalation pending
        for fields, words in (({"grant_when": "tool_input.amount <="}, "grant"),
                              ({"grant_ttl": "forever"}, "ttl"),
                              ({"grant_max_uses": "many"}, "whole number")):
            r = carol.approve(first.escalation_id, grant="1", **fields)
            assert r.status_code == 422 and words in r.json()["detail"], r.text
        assert stored(server, first.escalation_id)["status"] == "pending"

        r = carol.approve(first.escalation_id, grant="1", grant_ttl="1h",
                          grant_max_uses="5", grant_when="tool_input.amount <= 2000")
        assert r.status_code == 200, r.text
        assert "standing approval grant_" in r.json()["detail"]
        made = [g for g in carol.grants() if g["escalation_id"] == first.escalation_id]
        assert len(made) == 1
        grant = made[0]
        assert (grant["agent_name"], grant["tool_name"], grant["rule_name"]) == (
            "grant-agent", "process_refund", "payments_team")
        assert (grant["created_by"], grant["created_via"], grant["condition"],
                grant["max_uses"], grant["uses"], grant["state"]) == (
            "carol", "dashboard", "tool_input.amount <= 2000", 5, 0, "live")
        assert 3500 < grant["expires_at"] - grant["created_at"] <= 3600

        allowed = agent.guard("process_refund", {"amount": 1800, "order": "g-2"})
        assert allowed.action == "allow" and allowed.grant_id == grant["id"], allowed.reason
        outside = agent.guard("process_refund", {"amount": 2500, "order": "g-3"})
        assert outside.action == "escalate"  # beyond its condition
        listed = {g["id"]: g for g in sessions["alice"].grants(live=True)}
        assert listed[grant["id"]]["uses"] == 1

        assert sessions["alice"].post(f"/dashboard/grants/{grant['id']}/revoke",
                                      csrf_token="0" * 40).status_code == 403
        r = sessions["alice"].revoke(grant["id"])  # any approver may revoke
        assert r.status_code == 200, r.text
        assert r.json()["grant"]["state"] == "revoked"
        assert r.json()["grant"]["revoked_by"] == "alice"
        assert grant["id"] not in {g["id"] for g in carol.grants(live=True)}
        assert {g["id"]: g for g in carol.grants()}[grant["id"]]["state"] == "revoked"
        assert sessions["alice"].revoke(grant["id"]).status_code == 409
        assert sessions["alice"].revoke("grant_" + "0" * 20).status_code == 404

        after = agent.guard("process_refund", {"amount": 1800, "order": "g-4"})
        assert after.action == "escalate" and after.grant_id is None
    finally:
        agent.shutdown()


def test_grant_pages_need_a_session(served: tuple[Server, dict[str, str]]) -> None:
    server, _ = served
    assert httpx.get(server.url + "/dashboard/grants").status_code == 401
    assert httpx.post(server.url + "/dashboard/grants/grant_x/revoke",
                      data={"csrf_token": "x"}).status_code == 401
    r = httpx.get(server.url + "/grants", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login"


# -- in a browser, on SQLite -------------------------------------------------------------------
sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    server, keys = _started(tmp_path_factory.mktemp("approvers-browser"), "sqlite")
    yield server, keys
    stop_server(server)


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    """``open_page(server, key)``: a page of a browser context of its own, logged in."""
    contexts: list[Any] = []

    def opened(server: Server, key: str, path: str = "/") -> Any:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(server.url + "/login")
        page.fill("#api-key", key)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        assert page.url == server.url + "/", page.url
        if path != "/":
            page.goto(server.url + path)
        return page

    yield opened
    for context in contexts:
        context.close()


def card(page: Any, escalation_id: str) -> Any:
    return page.locator(f'.card[data-id="{escalation_id}"]')


def test_browser_shows_who_may_answer_and_the_quorum(
        dash: tuple[Server, dict[str, str]], open_page: Any) -> None:
    server, keys = dash
    refund = escalate(server, "process_refund", {"amount": 7000, "order": "b-who"})
    wire = escalate(server, "wire_transfer", {"amount": 90000, "to": "acct-b"})
    own = escalate(server, "delete_account", {"account": "b-own"},
                   context={"requested_by": "erin"})
    erin = open_page(server, keys["erin"])
    box = card(erin, refund)
    box.wait_for()
    assert "Who may answer: carol, group:payments" in box.text_content()
    note = box.locator(".not-yours")
    wait_for(lambda: "erin may not answer" in note.text_content(), "erin's note")
    assert box.locator("button.approve").is_disabled()
    assert box.locator("button.deny").is_disabled()
    assert box.locator("details.grant").is_hidden()
    # the server refuses her whatever the page allows: its answer shows on the card
    box.locator("button.deny").evaluate("b => { b.disabled = false; b.click(); }")
    wait_for(lambda: "may not answer" in box.locator(".card-error").text_content(),
             "the 403 on the card")
    assert stored(server, refund)["status"] == "pending"

    own_box = card(erin, own)
    assert "requested by erin · erin may not approve their own request" in \
        own_box.text_content()
    wait_for(lambda: own_box.locator("button.approve").is_disabled(), "approve disabled")
    assert own_box.locator("button.deny").is_enabled()

    wire_box = card(erin, wire)
    assert "Who may answer: any approver" in wire_box.text_content()
    wait_for(lambda: "0 of 2 approvals" in wire_box.locator(".quorum").text_content(),
             "the quorum")
    assert wire_box.locator("details.grant").count() == 0
    assert wire_box.locator("button.approve-edit").count() == 0
    wire_box.locator("button.approve").click()
    wait_for(lambda: "1 of 2 approvals" in wire_box.locator(".quorum").text_content(),
             "1 of 2 after erin")
    assert "erin (dashboard" in wire_box.locator("ul.approvals").text_content()
    assert wire_box.locator("button.approve").is_disabled()
    assert "You have approved this" in wire_box.locator(".not-yours").text_content()
    wait_for(lambda: "1 of 2" in erin.text_content("#flash"), "the answer's message")

    carol = open_page(server, keys["carol"])
    other = card(carol, wire)
    wait_for(lambda: "1 of 2 approvals" in other.locator(".quorum").text_content(),
             "carol sees 1 of 2")
    assert other.locator("button.approve").is_enabled()
    other.locator("button.approve").click()
    other.wait_for(state="detached")
    card(erin, wire).wait_for(state="detached")  # erin's page drops it on its own
    row = erin.locator(f'#history tr[data-id="{wire}"]')
    row.wait_for()
    approvals = row.locator("td.approvals").text_content()
    assert "approved by erin (dashboard" in approvals
    assert "approved by carol (dashboard" in approvals
    assert re.fullmatch(r"version \d+", row.locator("td.policy").text_content())


def test_browser_approve_with_a_standing_approval_and_revoke_it(
        dash: tuple[Server, dict[str, str]], open_page: Any) -> None:
    server, keys = dash
    agent = server.agent_client("browser-agent")
    try:
        first = agent.guard("process_refund", {"amount": 1200, "order": "bg-1"})
        assert first.action == "escalate"
        page = open_page(server, keys["carol"])
        box = card(page, first.escalation_id)
        box.wait_for()
        box.locator("details.grant summary").click()
        assert box.locator("input[name=grant_ttl]").input_value() == "1h"
        assert box.locator("input[name=grant_when]").input_value() == ""
        box.locator("input[name=grant_when]").fill("tool_input.amount <=")  # not CEL
        box.locator("button.approve-grant").click()
        wait_for(lambda: "grant" in box.locator(".card-error").text_content(),
                 "the 422 on the card")
        assert stored(server, first.escalation_id)["status"] == "pending"

        box.locator("input[name=grant_ttl]").fill("15m")
        box.locator("input[name=grant_max_uses]").fill("3")
        box.locator("input[name=grant_when]").fill("tool_input.amount <= 2000")
        box.locator("button.approve-grant").click()
        box.wait_for(state="detached")
        wait_for(lambda: "standing approval grant_" in page.text_content("#flash"),
                 "the answer's message")

        page.click("nav.tabs a[href='/grants']")
        page.wait_for_url(server.url + "/grants")
        row = page.locator("#grants tbody tr", has_text=first.escalation_id)
        row.wait_for()
        grant_id = row.get_attribute("data-id")
        assert row.locator("td.tool").text_content() == "process_refund"
        assert row.locator("td.cel").text_content() == "tool_input.amount <= 2000"
        assert "carol (dashboard)" in row.locator("td.given").text_content()
        assert row.locator("td.uses").text_content() == "0 of 3"
        assert row.locator("td.state").text_content() == "live"

        allowed = agent.guard("process_refund", {"amount": 1900, "order": "bg-2"})
        assert allowed.action == "allow" and allowed.grant_id == grant_id
        row = page.locator(f'#grants tr[data-id="{grant_id}"]')
        wait_for(lambda: row.locator("td.uses").text_content() == "1 of 3",
                 "the use counted on the page")

        row.locator("button.revoke").click()
        wait_for(lambda: row.locator("td.state").text_content().startswith("revoked"),
                 "the revoked state")
        assert "by carol" in row.locator("td.state").text_content()
        assert row.locator("button.revoke").count() == 0
        page.select_option("#grant-filter", "1")  # live only
        row.wait_for(state="detached")

        after = agent.guard("process_refund", {"amount": 1900, "order": "bg-3"})
        assert after.action == "escalate" and after.grant_id is None
    finally:
        agent.shutdown()


def test_attacker_text_in_grants_renders_as_text(dash: tuple[Server, dict[str, str]],
                                                 open_page: Any) -> None:
    server, keys = dash
    payload = '<img src=x onerror="window.__xss=1"><svg onload="window.__xss=2">'
    tool = "odd" + payload
    agent = "bot" + payload
    esc = escalate(server, tool, {"note": payload, "amount": 1}, agent=agent)
    condition = f"tool_input.note == '{payload}'"
    page = open_page(server, keys["carol"])
    box = card(page, esc)
    box.wait_for()
    assert tool in box.locator(".tool").text_content()
    assert tool in box.locator("details.grant .explain").text_content()
    answer = Session(server, keys["carol"])
    try:
        r = answer.approve(esc, grant="1", grant_when=condition, comment=payload)
        assert r.status_code == 200, r.text
    finally:
        answer.close()
    page.click("nav.tabs a[href='/grants']")
    row = page.locator("#grants tbody tr", has_text=esc)
    row.wait_for()
    assert row.locator("td.tool").text_content() == tool
    assert row.locator("td.cel").text_content() == condition
    assert payload in row.text_content()
    page.goto(server.url + "/")
    history = page.locator(f'#history tr[data-id="{esc}"]')
    history.wait_for()
    assert payload in history.text_content()
    time.sleep(0.5)  # time for an injected handler to have run, were there one
    assert page.locator("img[src=x], svg[onload]").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
    page.goto(server.url + "/grants")
    page.locator("#grants tbody tr", has_text=esc).wait_for()
    time.sleep(0.5)
    assert page.locator("img[src=x], svg[onload]").count() == 0
    assert page.evaluate("typeof window.__xss") == "undefined"
