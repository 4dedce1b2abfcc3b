"""Who may answer by e-mail, against a real ``staso serve`` (SQLite and PostgreSQL) mailing
a real SMTP server (aiosmtpd): links are made only for the answers a recipient's key may
give, the message says who may answer and how many must approve, a link whose key may no
longer give its answer is refused (403) and resolves nothing, and an approval toward a
quorum is counted once and shown as "1 of 2 approvals"."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from conftest import BACKENDS
from servers import Server, cli, drop_pg_database, new_database
from smtp_peers import Mailbox, Received, bodies, mail_to, start_smtp
from staso.channels import email_links
from staso.store import Store

POLICY = """version: 1
rules:
  - name: two_signatures
    tools: [wire_transfer]
    action: escalate
    reason: Wires need two signatures
    approvers: [dave, erin]
    approvals_required: 2
    notify: ["email:dave@example.com", "email:erin@example.com", "email:mallory@example.com"]
  - name: treasury_only
    tools: [close_account]
    action: escalate
    approvers: ["group:treasury"]
    forbid_self_approval: true
    notify: ["email:frank@example.com", "email:mallory@example.com"]
"""
# approver keys linked to addresses: name -> (address, groups)
PEOPLE = {"dave": ("dave@example.com", ""), "erin": ("erin@example.com", ""),
          "mallory": ("mallory@example.com", ""), "frank": ("frank@example.com", "treasury")}
LINK = re.compile(r"^  (Approve|Deny): +(\S+)$", re.MULTILINE)


@dataclass
class Setup:
    server: Server
    mailbox: Mailbox
    keys: dict[str, str]  # name -> key id


@pytest.fixture(scope="module", params=BACKENDS)
def mail(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Setup]:
    tmp = tmp_path_factory.mktemp(f"mail-approvers-{request.param}")
    mailbox = Mailbox()
    smtp = start_smtp(mailbox)
    policy = tmp / "staso.yaml"
    policy.write_text(POLICY)
    server = Server(home=tmp, database_url=new_database(tmp, request.param), policy=policy)
    server.extra_env = {"STASO_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
                        "STASO_EMAIL_FROM": "staso@example.com",
                        "STASO_PUBLIC_URL": server.url}
    server.create_keys()
    keys = {}
    for name, (address, group) in PEOPLE.items():
        made = cli("keys", "create", "--role", "approver", "--name", name, "--email", address,
                   *(["--group", group] if group else []), env=server.env)
        found = re.search(r"key (key_[0-9a-f]+)", made.stderr)
        assert found, made.stderr
        keys[name] = found.group(1)
    server.start()
    yield Setup(server, mailbox, keys)
    server.stop()
    if server.database_url.startswith("postgresql"):
        drop_pg_database(server.database_url)
    smtp.stop()


def escalate(server: Server, tool: str, **body: Any) -> str:
    r = server.request("POST", "/v1/guard", json={
        "tool_name": tool, "tool_input": {"amount": 25000, "nonce": uuid.uuid4().hex},
        "agent_name": "treasury-agent", **body})
    assert r.status_code == 200 and r.json()["action"] == "escalate", r.text
    escalation_id: str = r.json()["escalation_id"]
    return escalation_id


def links(received: Received) -> dict[str, str]:
    return {verb.lower(): url for verb, url in LINK.findall(bodies(received)[0])}


def post(url: str, action: str, comment: str = "") -> httpx.Response:
    return httpx.post(url, data={"action": action, "comment": comment}, timeout=30)


def stored(server: Server, escalation_id: str) -> dict[str, Any]:
    r = server.request("GET", f"/v1/escalations/{escalation_id}", role="admin")
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def link_keys(server: Server, escalation_id: str) -> set[tuple[str, str]]:
    """(key id, action) of every answer link made for one escalation, from the database."""
    engine = sa.create_engine(server.database_url)
    try:
        with engine.connect() as conn:
            return {(r[0], r[1]) for r in conn.execute(sa.text(
                "SELECT key_id, action FROM answer_links WHERE escalation_id = :e"),
                {"e": escalation_id})}
    finally:
        engine.dispose()


def test_only_the_rule_s_approvers_get_links_and_every_message_says_who(mail: Setup) -> None:
    esc = escalate(mail.server, "wire_transfer")
    to_dave, to_erin, to_mallory = (mail_to(mail.mailbox, esc, f"{name}@example.com")
                                    for name in ("dave", "erin", "mallory"))
    for received in (to_dave, to_erin, to_mallory):
        text, markup = bodies(received)
        for shown in (text, markup):
            assert "May answer: dave, erin" in shown
            assert "needs 2 approvals from different people" in shown
            assert "0 of 2 approvals" in shown
    assert set(links(to_dave)) == set(links(to_erin)) == {"approve", "deny"}
    # mallory answers as an approver key, but the rule does not name her
    text, markup = bodies(to_mallory)
    assert not links(to_mallory) and "/v1/channels/email/" not in text + markup
    assert "mallory@example.com answers as mallory, who may not answer this escalation" \
        in text
    assert "mallory may not answer" in text and "answered by dave, erin" in text
    assert "mallory may not answer" in markup
    # and no link was ever made for her key
    keys = mail.keys
    assert link_keys(mail.server, esc) == {(keys[n], a) for n in ("dave", "erin")
                                           for a in ("approve", "deny")}


def test_two_approvals_by_email_are_counted_then_resolve(mail: Setup) -> None:
    server = mail.server
    esc = escalate(server, "wire_transfer")
    dave = links(mail_to(mail.mailbox, esc, "dave@example.com"))
    erin = links(mail_to(mail.mailbox, esc, "erin@example.com"))
    page = httpx.get(dave["approve"], timeout=30)
    assert page.status_code == 200 and "needs 2 approvals" in page.text
    assert "once 2 different approvers have approved (0 so far)" in page.text

    r = post(dave["approve"], "approve", "checked the invoice")
    assert r.status_code == 200, r.text
    result = re.search(r'<h2 id="result"[^>]*>(.*?)</h2>', r.text)
    assert result and result.group(1) == \
        "Your approval is counted: 1 of 2 approvals: dave via e-mail"
    assert "waits for 1 more approval" in r.text
    after = stored(server, esc)
    assert after["status"] == "pending"
    assert [(a["name"], a["via"], a["comment"]) for a in after["approvals"]] == \
        [("dave", "email", "checked the invoice")]
    # dave again: his approve link is used; his deny link may not undo his approval
    assert post(dave["approve"], "approve").status_code == 410
    for r in (httpx.get(dave["deny"], timeout=30), post(dave["deny"], "deny", "no")):
        assert r.status_code == 409 and "dave has already approved" in r.text, r.text
    assert stored(server, esc) == after

    page = httpx.get(erin["approve"], timeout=30)
    assert "(1 so far)" in page.text and "1 of 2 approvals: dave via e-mail" in page.text
    r = post(erin["approve"], "approve")
    assert r.status_code == 200, r.text
    assert "Approved by erin via e-mail" in r.text
    assert "Approved by 2 of 2: dave via e-mail, erin via e-mail" in r.text
    done = stored(server, esc)
    assert (done["status"], done["resolved_by"], done["resolved_via"]) == \
        ("approved", "erin", "email")
    assert [a["name"] for a in done["approvals"]] == ["dave", "erin"]
    # the answered escalation's links answer nothing
    assert post(erin["deny"], "deny", "late").status_code == 409


def test_a_link_whose_key_may_no_longer_answer_is_refused(mail: Setup) -> None:
    server = mail.server
    esc = escalate(server, "close_account", context={"requested_by": "someone-else"})
    frank = links(mail_to(mail.mailbox, esc, "frank@example.com"))
    assert set(frank) == {"approve", "deny"}
    # frank leaves the treasury group after the mail was sent
    cli("keys", "groups", mail.keys["frank"], "--set", "", env=server.env)
    try:
        for r in (httpx.get(frank["approve"], timeout=30),
                  post(frank["approve"], "approve"), post(frank["deny"], "deny", "no")):
            assert r.status_code == 403, r.text
            assert "Not yours to answer" in r.text and "frank may not answer" in r.text
            assert "<script" not in r.text.lower()
        assert stored(server, esc)["status"] == "pending"
        assert stored(server, esc)["approvals"] == []
    finally:
        cli("keys", "groups", mail.keys["frank"], "--set", "treasury", env=server.env)
    # back in the group, the same link answers
    r = post(frank["deny"], "deny", "not today")
    assert r.status_code == 200 and "Denied by frank via e-mail" in r.text


def test_the_one_who_asked_gets_no_approve_link_and_one_made_anyway_is_refused(
        mail: Setup) -> None:
    server = mail.server
    esc = escalate(server, "close_account", context={"requested_by": "frank"})
    received = mail_to(mail.mailbox, esc, "frank@example.com")
    text, markup = bodies(received)
    assert set(links(received)) == {"deny"}  # he may still deny his own request
    assert "not approved by frank, who asked for it" in text
    assert "No approve link: frank asked for this call" in text
    assert "No approve link: frank asked for this call" in markup
    assert link_keys(server, esc) == {(mail.keys["frank"], "deny")}
    # an approve link made for him all the same (as by a server before the rule said so)
    store = Store(server.database_url, migrate=False)
    try:
        found = store.key_by_id(mail.keys["frank"])
        assert found is not None
        token = email_links.make(store, store.get_escalation(esc), found[0], "approve")
    finally:
        store.close()
    url = f"{server.url}/v1/channels/email/{token}"
    for r in (httpx.get(url, timeout=30), post(url, "approve")):
        assert r.status_code == 403 and "asked for this call" in r.text, r.text
    after = stored(server, esc)
    assert (after["status"], after["approvals"]) == ("pending", [])
