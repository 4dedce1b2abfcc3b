"""Who may answer in Slack, against a real ``staso serve`` (SQLite and PostgreSQL) and the
Slack stand-in: a rule's approvers and its forbid_self_approval refuse a linked Slack user
it does not name (nothing resolved, told privately), a quorum is gathered from distinct
Slack users with the message updated in place after each approval, and "Approve & allow
similar" makes a standing approval from a modal whose every field is checked."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from conftest import BACKENDS, start_server, stop_server
from servers import Server, cli, wait_for
from staso.channels.slack_standin import SlackStandIn, click, signed_request, submit
from staso.store import Store

SECRET = "0b7c1e5f9a3d4c2b8e6f1a0d9c8b7a65"
TOKEN = "xoxb-20071-20072-approversStandInToken"
ALICE, BOB, CAROL, DAVE = "U0ALICE01", "U0BOB0001", "U0CAROL01", "U0DAVE001"
POLICY = """version: 1
rules:
  - name: two_managers
    tools: [process_refund]
    action: escalate
    reason: Refunds need two managers
    approvers: [alice, bob, "group:payments"]
    approvals_required: 2
    notify: ["slack:#payments"]
  - name: named_approvers
    tools: [wire_transfer]
    action: escalate
    approvers: [alice, "slack:U0BOB0001"]
    forbid_self_approval: true
    notify: ["slack:#payments"]
  - name: invoices
    tools: [send_invoice]
    when: tool_input.amount > 100
    action: escalate
    approvers: [alice, bob]
    notify: ["slack:#payments"]
"""


class Slack:
    """One server with Slack configured against the stand-in, and Slack's side of it."""

    def __init__(self, server: Server, stand_in: SlackStandIn) -> None:
        self.server, self.stand_in = server, stand_in

    def guard(self, tool: str, tool_input: dict[str, Any], **body: Any) -> dict[str, Any]:
        r = self.server.request("POST", "/v1/guard", json={
            "tool_name": tool, "tool_input": tool_input, "agent_name": "refund-agent",
            **body})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def escalate(self, tool: str, **tool_input: Any) -> str:
        context = tool_input.pop("context", None)
        result = self.guard(tool, {**tool_input, "nonce": uuid.uuid4().hex},
                            **({"context": context} if context else {}))
        assert result["action"] == "escalate", result
        return str(result["escalation_id"])

    def posted(self, escalation_id: str) -> tuple[str, str, dict[str, Any]]:
        """(channel, ts, message as first posted), once posted."""
        def find() -> tuple[str, str, dict[str, Any]] | None:
            for body in self.stand_in.sent("chat.postMessage"):
                if escalation_id in json.dumps(body.get("blocks", [])):
                    for channel, ts, message in self.stand_in.messages():
                        if escalation_id in json.dumps(message.get("blocks", [])):
                            return channel, ts, {"type": "message", "text": body["text"],
                                                 "blocks": body["blocks"]}
            return None
        return wait_for(find, f"the Slack post of {escalation_id}")  # type: ignore[no-any-return]

    def now_shown(self, escalation_id: str, wanted: str) -> dict[str, Any]:
        """The message as it stands once ``wanted`` shows in it (updated in place)."""
        channel, ts, _ = self.posted(escalation_id)

        def find() -> dict[str, Any] | None:
            message = self.stand_in.message(channel, ts) or {}
            return message if wanted in json.dumps(message.get("blocks", [])) else None
        return wait_for(find, f"{wanted!r} in {escalation_id}'s message")  # type: ignore[no-any-return]

    def send(self, payload: dict[str, Any]) -> httpx.Response:
        raw, signed = signed_request(SECRET, payload)
        assert SignatureVerifier(SECRET).is_valid_request(raw, signed)  # as Slack signs
        return httpx.post(self.server.url + "/v1/channels/slack/interactions", content=raw,
                          headers=signed, timeout=30)

    def click(self, escalation_id: str, action_id: str, user: str,
              message: dict[str, Any] | None = None) -> httpx.Response:
        channel, ts, posted = self.posted(escalation_id)
        return self.send(click(user, channel, ts, message or posted, action_id))

    def notes_since(self, before: int, user: str) -> str:
        """The private note ``user`` is sent after the first ``before`` notes."""
        def find() -> str | None:
            return next((n["text"] for n in self.stand_in.sent("chat.postEphemeral")[before:]
                         if n["user"] == user), None)
        return wait_for(find, f"a note to {user}")  # type: ignore[no-any-return]

    def escalation(self, escalation_id: str) -> dict[str, Any]:
        r = self.server.request("GET", f"/v1/escalations/{escalation_id}", role="approver")
        assert r.status_code == 200, r.text
        return dict(r.json())


def forged(escalation_id: str, *action_ids: str) -> dict[str, Any]:
    """A message with buttons staso did not offer for this escalation (an old client's,
    or made up by someone who may click)."""
    return {"type": "message", "text": "", "blocks": [{"type": "actions", "elements": [
        {"action_id": action, "value": escalation_id,
         "text": {"type": "plain_text", "text": action}} for action in action_ids]}]}


def actions(message: dict[str, Any]) -> list[str]:
    """The message's buttons: in actions blocks, and sections' accessories."""
    return [e["action_id"] for b in message["blocks"]
            for e in (b["elements"] if b["type"] == "actions" else [b.get("accessory") or {}])
            if "action_id" in e]


def terms(message: dict[str, Any]) -> str:
    """The text of the message's who-may-answer context."""
    block = next((b for b in message["blocks"] if b.get("block_id") == "staso_approvers"),
                 None)
    return " | ".join(e["text"] for e in block["elements"]) if block else ""


@pytest.fixture(scope="module", params=BACKENDS)
def slack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Slack]:
    tmp = tmp_path_factory.mktemp(f"slack-approvers-{request.param}")
    policy = tmp / "staso.yaml"
    policy.write_text(POLICY)
    with SlackStandIn(token=TOKEN) as stand_in:
        server = start_server(tmp, request.param, policy, extra_env={
            "STASO_SLACK_BOT_TOKEN": TOKEN, "STASO_SLACK_SIGNING_SECRET": SECRET,
            "STASO_SLACK_API_URL": stand_in.api_url,
            "STASO_PUBLIC_URL": "https://staso.example.com"})
        # the tests' approver key is named alice too: its name and groups are alice's
        for name, user, groups in (("alice", ALICE, []), ("bob", BOB, []),
                                   ("carol", CAROL, ["--group", "payments"]),
                                   ("dave", DAVE, [])):
            cli("keys", "create", "--role", "approver", "--name", name, "--slack-user", user,
                *groups, env=server.env)
        yield Slack(server, stand_in)
        stop_server(server)


# -- refused: not among the approvers, or the one who asked ---------------------------------
def test_a_slack_user_the_rule_does_not_name_is_refused_and_nothing_resolves(slack: Slack
                                                                             ) -> None:
    esc_id = slack.escalate("wire_transfer", amount=9000, context={"requested_by": "alice"})
    _, _, message = slack.posted(esc_id)
    shown = terms(message)
    assert "May answer: alice, slack:U0BOB0001" in shown
    assert "not approved by alice, who asked for it" in shown

    # dave is linked to a live approver key, but the rule does not name him
    told = len(slack.stand_in.sent("chat.postEphemeral"))
    r = slack.click(esc_id, "staso_approve", DAVE)
    assert r.status_code == 403 and "dave may not answer" in r.json()["detail"]
    assert "dave may not answer" in slack.notes_since(told, DAVE)
    opened = len(slack.stand_in.sent("views.open"))
    assert slack.click(esc_id, "staso_deny", DAVE).status_code == 403
    assert len(slack.stand_in.sent("views.open")) == opened  # no form for a refused answer
    # a deny form (an old one, or made up) is answered under its field
    view = {"type": "modal", "callback_id": "staso_deny", "private_metadata": esc_id}
    r = slack.send(submit(DAVE, view, {"staso_comment": {"comment": "no"}}))
    assert r.status_code == 200 and r.json()["response_action"] == "errors"
    assert "dave may not answer" in r.json()["errors"]["staso_comment"]
    # alice may answer, but asked for this call: she may not approve it
    told = len(slack.stand_in.sent("chat.postEphemeral"))
    r = slack.click(esc_id, "staso_approve", ALICE)
    assert r.status_code == 403 and "asked for this call" in r.json()["detail"]
    assert "asked for this call" in slack.notes_since(told, ALICE)
    esc = slack.escalation(esc_id)
    assert (esc["status"], esc["approvals"]) == ("pending", [])

    # bob, named by his Slack user id, approves
    assert slack.click(esc_id, "staso_approve", BOB).status_code == 200
    esc = slack.escalation(esc_id)
    assert (esc["status"], esc["resolved_by"], esc["resolved_via"]) == \
        ("approved", "bob", "slack")
    final = slack.now_shown(esc_id, "Approved by bob via Slack")
    assert actions(final) == []  # no buttons left


# -- a quorum of distinct Slack users -----------------------------------------------------
def test_two_approvals_in_slack_update_the_message_and_the_second_resolves(slack: Slack
                                                                          ) -> None:
    agent = slack.server.agent_client("refund-agent")
    outcome: dict[str, Any] = {}
    order = uuid.uuid4().hex

    def waiting_agent() -> None:
        outcome["result"] = agent.guard("process_refund", {"amount": 800, "order": order},
                                        wait_for_escalation=True, escalation_timeout=120)
    thread = threading.Thread(target=waiting_agent)
    thread.start()
    pending = wait_for(lambda: [e for e in slack.server.request(
        "GET", "/v1/escalations?status=pending&tool=process_refund", role="approver").json()
        if e["tool_input"].get("order") == order], "the waiting call's escalation")
    esc_id = pending[0]["id"]
    _, _, message = slack.posted(esc_id)
    # no Edit and no "allow similar" where several must approve: each sees what runs
    assert actions(message) == ["staso_approve", "staso_deny"]
    assert "needs 2 approvals from different people" in terms(message)
    assert "0 of 2 approvals" in terms(message)

    assert slack.click(esc_id, "staso_approve", ALICE).status_code == 200
    esc = slack.escalation(esc_id)
    assert esc["status"] == "pending"
    assert [(a["name"], a["via"]) for a in esc["approvals"]] == [("alice", "slack")]
    updated = slack.now_shown(esc_id, "1 of 2 approvals: alice via Slack")
    assert actions(updated) == ["staso_approve", "staso_deny"]  # still open to the others
    assert thread.is_alive()  # the agent waits for the final answer

    # the same person twice: told so, counted once
    told = len(slack.stand_in.sent("chat.postEphemeral"))
    r = slack.click(esc_id, "staso_approve", ALICE)
    assert r.status_code == 200 and "alice has already approved" in r.json()["detail"]
    assert "already approved" in slack.notes_since(told, ALICE)
    # one of several may not edit, nor approve similar calls ahead
    old = forged(esc_id, "staso_edit", "staso_grant")
    r = slack.click(esc_id, "staso_edit", CAROL, message=old)
    assert r.status_code == 422 and "cannot edit" in r.json()["detail"]
    r = slack.click(esc_id, "staso_grant", CAROL, message=old)
    assert r.status_code == 422
    edit = {"type": "modal", "callback_id": "staso_edit", "private_metadata": esc_id}
    r = slack.send(submit(CAROL, edit, {"staso_input": {"json": '{"amount": 1}'}}))
    assert "cannot edit" in r.json()["errors"]["staso_input"]
    grant = {"type": "modal", "callback_id": "staso_grant", "private_metadata": esc_id}
    r = slack.send(submit(CAROL, grant, {"staso_grant_ttl": {"ttl": "1h"}}))
    assert "needs 2 approvers" in r.json()["errors"]["staso_grant_ttl"]
    # someone the rule does not name counts for nothing
    assert slack.click(esc_id, "staso_approve", DAVE).status_code == 403
    esc = slack.escalation(esc_id)
    assert esc["status"] == "pending" and len(esc["approvals"]) == 1
    assert esc["tool_input"]["amount"] == 800 and esc["modified_input"] is None

    # carol answers for group:payments: the second distinct approval resolves
    assert slack.click(esc_id, "staso_approve", CAROL).status_code == 200
    thread.join(60)
    assert outcome["result"].action == "allow"
    esc = slack.escalation(esc_id)
    assert (esc["status"], esc["resolved_by"]) == ("approved", "carol")
    assert [a["name"] for a in esc["approvals"]] == ["alice", "carol"]
    final = slack.now_shown(esc_id, "Approved by carol via Slack")
    answer = final["blocks"][-1]["text"]["text"]
    assert "Approved by 2 of 2: alice via Slack, carol via Slack" in answer
    assert actions(final) == []  # no buttons left
    agent.shutdown()


def test_a_denial_after_one_approval_denies(slack: Slack) -> None:
    esc_id = slack.escalate("process_refund", amount=450)
    assert slack.click(esc_id, "staso_approve", BOB).status_code == 200
    slack.now_shown(esc_id, "1 of 2 approvals: bob via Slack")
    opened = len(slack.stand_in.sent("views.open"))
    assert slack.click(esc_id, "staso_deny", ALICE).status_code == 200
    view = wait_for(lambda: slack.stand_in.sent("views.open")[opened:], "the deny form")[0]
    r = slack.send(submit(ALICE, view["view"], {"staso_comment": {"comment": "duplicate"}}))
    assert r.status_code == 200 and not r.content
    esc = slack.escalation(esc_id)
    assert (esc["status"], esc["resolved_by"], esc["comment"]) == \
        ("denied", "alice", "duplicate")
    final = slack.now_shown(esc_id, "Denied by alice via Slack")
    assert "1 of 2 approvals before it was denied: bob via Slack" in json.dumps(final)


# -- approve & allow similar ----------------------------------------------------------------
def _grants_of(slack: Slack, escalation_id: str) -> list[Any]:
    store = Store(slack.server.database_url, migrate=False)
    try:
        return [g for g in store.list_grants(limit=1000) if g.escalation_id == escalation_id]
    finally:
        store.close()


def test_approve_and_allow_similar_makes_a_standing_approval(slack: Slack) -> None:
    esc_id = slack.escalate("send_invoice", amount=1500, vendor="acme")
    _, _, message = slack.posted(esc_id)
    assert actions(message) == ["staso_grant", "staso_approve", "staso_deny", "staso_edit"]
    opened = len(slack.stand_in.sent("views.open"))
    assert slack.click(esc_id, "staso_grant", ALICE).status_code == 200
    call = wait_for(lambda: slack.stand_in.sent("views.open")[opened:], "the form")[0]
    assert call["trigger_id"].endswith(".stand-in")
    view = call["view"]
    assert (view["type"], view["callback_id"], view["private_metadata"]) == \
        ("modal", "staso_grant", esc_id)
    by_block = {b.get("block_id"): b for b in view["blocks"]}
    ttl = by_block["staso_grant_ttl"]["element"]
    assert ttl["type"] == "static_select" and ttl["action_id"] == "ttl"
    assert [(o["value"], o["text"]["text"]) for o in ttl["options"]] == [
        ("15m", "15 minutes"), ("1h", "1 hour"), ("8h", "8 hours"), ("24h", "24 hours")]
    assert ttl["initial_option"]["value"] == "1h"
    for block, action in (("staso_grant_uses", "max_uses"), ("staso_grant_when", "when")):
        assert by_block[block]["optional"] is True
        assert by_block[block]["element"] == {**by_block[block]["element"],
                                              "type": "plain_text_input", "action_id": action}

    # each bad value is answered under its own field, and nothing is granted or resolved
    good = {"staso_grant_ttl": {"ttl": "8h"}, "staso_grant_uses": {"max_uses": "2"},
            "staso_grant_when": {"when": "tool_input.amount <= 2000"}}
    for block, action, bad, says in (
            ("staso_grant_uses", "max_uses", "lots", "whole number"),
            ("staso_grant_uses", "max_uses", "0", "whole number"),
            ("staso_grant_when", "when", "tool_input.amount <", "invalid CEL"),
            ("staso_grant_when", "when", "nope(tool_input.amount)", "unknown function"),
            ("staso_grant_ttl", "ttl", "99d", "Choose how long")):
        r = slack.send(submit(ALICE, view, {**good, block: {action: bad}}))
        assert r.status_code == 200, r.text
        assert list(r.json()["errors"]) == [block], (bad, r.json())
        assert says in r.json()["errors"][block], (bad, r.json())
    # someone the rule does not name is refused in the form, whatever the values
    for values in (good, {**good, "staso_grant_uses": {"max_uses": "lots"}}):
        r = slack.send(submit(DAVE, view, values))
        assert list(r.json()["errors"]) == ["staso_grant_ttl"]
        assert "dave may not answer" in r.json()["errors"]["staso_grant_ttl"]
    assert slack.escalation(esc_id)["status"] == "pending"
    assert _grants_of(slack, esc_id) == []

    r = slack.send(submit(ALICE, view, {**good, "staso_comment": {"comment": "acme, monthly"}}))
    assert r.status_code == 200 and not r.content  # the modal closes
    esc = slack.escalation(esc_id)
    assert (esc["status"], esc["resolved_by"], esc["resolved_via"], esc["comment"]) == \
        ("approved", "alice", "slack", "acme, monthly")
    [grant] = _grants_of(slack, esc_id)
    assert (grant.created_by, grant.created_via, grant.agent_name, grant.tool_name,
            grant.rule_name, grant.max_uses, grant.condition) == \
        ("alice", "slack", "refund-agent", "send_invoice", "invoices", 2,
         "tool_input.amount <= 2000")
    assert grant.expires_at - grant.created_at == pytest.approx(8 * 3600, abs=1)
    slack.now_shown(esc_id, "Approved by alice via Slack")

    # the next similar calls are allowed by it, twice; outside it they still escalate
    outside = slack.guard("send_invoice", {"amount": 5000, "nonce": uuid.uuid4().hex})
    assert outside["action"] == "escalate" and outside["grant_id"] is None
    for _ in range(2):
        allowed = slack.guard("send_invoice", {"amount": 1800, "nonce": uuid.uuid4().hex})
        assert (allowed["action"], allowed["grant_id"]) == ("allow", grant.id), allowed
    used_up = slack.guard("send_invoice", {"amount": 1800, "nonce": uuid.uuid4().hex})
    assert used_up["action"] == "escalate" and used_up["grant_id"] is None


def test_a_click_racing_a_second_approval_counts_each_person_once(slack: Slack) -> None:
    """Both people of a quorum click at once, each twice: two approvals, one answer."""
    esc_id = slack.escalate("process_refund", amount=620)
    channel, ts, message = slack.posted(esc_id)
    clicks = [signed_request(SECRET, click(user, channel, ts, message, "staso_approve"))
              for user in (ALICE, BOB, ALICE, BOB)]

    def send(signed: tuple[bytes, dict[str, str]]) -> int:
        return httpx.post(slack.server.url + "/v1/channels/slack/interactions",
                          content=signed[0], headers=signed[1], timeout=30).status_code
    threads = [threading.Thread(target=send, args=(c,)) for c in clicks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    esc = slack.escalation(esc_id)
    assert esc["status"] == "approved"
    assert sorted(a["name"] for a in esc["approvals"]) == ["alice", "bob"]
    slack.now_shown(esc_id, "Approved by 2 of 2")
    # once every update is delivered, the message shows the answer, whichever update
    # (the first approval's, the answer's) reached Slack last
    store = Store(slack.server.database_url, migrate=False)
    try:
        wait_for(lambda: all(n.state != "queued" for n in store.notices_for(esc_id)),
                 "every notice delivered")
        assert {n.state for n in store.notices_for(esc_id)} == {"sent"}
    finally:
        store.close()
    final = slack.stand_in.message(channel, ts) or {}
    assert "Approved by 2 of 2" in json.dumps(final)
    assert actions(final) == []  # no buttons left
