"""Approvals in Slack, against a real ``staso serve`` and a local stand-in for Slack's Web
API that records each request exactly as ``slack_sdk`` sends it. Interactions are built
in Slack's documented shapes and signed per Slack's scheme; each signature is first
checked with ``slack_sdk``'s own ``SignatureVerifier``, so the tests sign as Slack does."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from conftest import BACKENDS, start_server, stop_server
from servers import Server, cli, wait_for
from staso.channels.slack_standin import SlackStandIn, click, signed_request, submit

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-17653672481-19874698323-pdFZKVeTuE8sk7oOcBrzbqgy"
ALICE, BOB, EVE = "U0ALICE01", "U0BOB0001", "U0EVE0001"
POLICY = """version: 1
rules:
  - name: big_refund
    tools: [process_refund]
    when: tool_input.amount > 1000
    action: escalate
    reason: Refunds over $1,000 need a manager
    notify: ["slack:#payments"]
  - name: drop_table
    tools: [run_sql]
    action: escalate
    severity: critical
"""


class Slack:
    """One server with Slack configured against a stand-in; helpers to act as Slack."""

    def __init__(self, server: Server, stand_in: SlackStandIn) -> None:
        self.server, self.stand_in = server, stand_in

    def guard(self, tool: str, tool_input: dict[str, Any], **body: Any) -> dict[str, Any]:
        r = self.server.request("POST", "/v1/guard", json={
            "tool_name": tool, "tool_input": tool_input, "agent_name": "refund-agent", **body})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def escalate(self, amount: int = 5000, **extra: Any) -> str:
        result = self.guard("process_refund", {"amount": amount, "order": f"o-{time.time()}",
                                               **extra})
        assert result["action"] == "escalate", result
        return str(result["escalation_id"])

    def posted(self, escalation_id: str) -> tuple[str, str, dict[str, Any]]:
        """(channel id, ts, message) of the escalation's post, once it arrives."""
        def find() -> tuple[str, str, dict[str, Any]] | None:
            for channel, ts, message in self.stand_in.messages():
                if escalation_id in json.dumps(message["blocks"]):
                    return channel, ts, message
            return None
        return wait_for(find, f"the Slack post of {escalation_id}")  # type: ignore[no-any-return]

    def answer_shown(self, escalation_id: str) -> str:
        """The answer line of the escalation's message, once it is updated in place."""
        channel, ts, _ = self.posted(escalation_id)

        def find() -> str | None:
            message = self.stand_in.message(channel, ts) or {}
            last = message.get("blocks", [{}])[-1]
            return str(last["text"]["text"]) if last.get("type") == "section" else None
        return wait_for(find, f"the update of {escalation_id}'s message")  # type: ignore[no-any-return]

    def send(self, payload: dict[str, Any], *, secret: str = SECRET,
             timestamp: int | None = None, headers: dict[str, str] | None = None,
             body: bytes | None = None) -> httpx.Response:
        raw, signed = signed_request(secret, payload, timestamp=timestamp)
        if secret == SECRET and timestamp is None:  # as Slack would have signed it
            assert SignatureVerifier(SECRET).is_valid_request(raw, signed)
        return httpx.post(self.server.url + "/v1/channels/slack/interactions",
                          content=body if body is not None else raw,
                          headers={**signed, **(headers or {})}, timeout=30)

    def click(self, escalation_id: str, action_id: str, user: str = ALICE) -> httpx.Response:
        """``user`` clicks a button of the message as first posted (a Slack client that
        has not shown the update yet still has the buttons)."""
        channel, ts, _ = self.posted(escalation_id)
        return self.send(click(user, channel, ts, self.original(escalation_id), action_id))

    def original(self, escalation_id: str) -> dict[str, Any]:
        body = next(b for b in self.stand_in.sent("chat.postMessage")
                    if escalation_id in json.dumps(b.get("blocks", [])))
        return {"type": "message", "text": body["text"], "blocks": body["blocks"]}

    def opened_view(self, before: int) -> dict[str, Any]:
        views = wait_for(lambda: self.stand_in.sent("views.open")[before:], "a modal")
        return dict(views[0]["view"])

    def escalation(self, escalation_id: str) -> dict[str, Any]:
        r = self.server.request("GET", f"/v1/escalations/{escalation_id}", role="approver")
        return dict(r.json())


def slack_server(tmp: Path, backend: str, stand_in: SlackStandIn) -> Server:
    """A running server with Slack configured against ``stand_in``; alice (the tests'
    approver key's name too) and bob answer in Slack."""
    tmp.mkdir(parents=True, exist_ok=True)
    policy = tmp / "staso.yaml"
    policy.write_text(POLICY)
    server = start_server(tmp, backend, policy, extra_env={
        "STASO_SLACK_BOT_TOKEN": TOKEN, "STASO_SLACK_SIGNING_SECRET": SECRET,
        "STASO_SLACK_API_URL": stand_in.api_url, "STASO_SLACK_CHANNEL": "#approvals",
        "STASO_PUBLIC_URL": "https://staso.example.com"})
    for name, user in (("alice", ALICE), ("bob", BOB)):
        cli("keys", "create", "--role", "approver", "--name", name, "--slack-user", user,
            env=server.env)
    return server


@pytest.fixture(scope="module", params=BACKENDS)
def slack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[Slack]:
    with SlackStandIn(token=TOKEN) as stand_in:
        server = slack_server(tmp_path_factory.mktemp(f"slack-{request.param}"),
                              request.param, stand_in)
        yield Slack(server, stand_in)
        stop_server(server)


# -- the message --------------------------------------------------------------------------
def test_an_escalation_is_posted_with_its_facts_and_buttons(slack: Slack) -> None:
    hostile = "<!channel> <https://evil.example|Approve here> *urgent* ```done```"
    esc_id = slack.escalate(4200, note=hostile, api_token="tok-123-secret")
    channel, _, message = slack.posted(esc_id)
    assert channel == "C0PAYMENTS"  # the rule's notify: target
    call = next(c for c in slack.stand_in.calls if c.method == "chat.postMessage"
                and esc_id in json.dumps(c.body))
    # exactly as slack_sdk sends it: JSON, the bot token, blocks as a JSON array
    assert call.content_type.startswith("application/json")
    assert call.authorization == f"Bearer {TOKEN}"
    assert call.body["channel"] == "#payments" and isinstance(call.body["blocks"], list)
    text = json.dumps(message["blocks"])
    for fact in ("process_refund", "refund-agent", "big_refund", "Severity: high",
                 "Refunds over $1,000 need a manager", "Expires: ", "4200"):
        assert fact in text, fact
    assert "tok-123-secret" not in text and "[MASKED]" in text  # masked per redact_in_log
    assert f"https://staso.example.com/?escalation={esc_id}" in text
    buttons = next(b for b in message["blocks"] if b["type"] == "actions")["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("staso_approve", esc_id), ("staso_deny", esc_id), ("staso_edit", esc_id)]
    # attacker-controlled text is never mrkdwn: no mention, link or formatting gets through
    for block in message["blocks"]:
        for part in _texts(block):
            if part.get("type") == "mrkdwn":
                assert "evil.example" not in part["text"] and "<!channel>" not in part["text"]
    assert "<!channel>" not in call.body["text"]


def _texts(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if node.get("type") in ("mrkdwn", "plain_text", "text"):
            yield node
        for value in node.values():
            yield from _texts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _texts(item)


def test_a_rule_without_notify_goes_to_the_default_channel(slack: Slack) -> None:
    result = slack.guard("run_sql", {"query": "DROP TABLE users"})
    channel, _, message = slack.posted(result["escalation_id"])
    assert channel == "C0APPROVAL" and "Severity: critical" in json.dumps(message)


def test_a_large_input_is_cut_and_approved_only_in_the_dashboard(slack: Slack) -> None:
    """An approval runs all of the arguments: where Slack cannot show them whole, it
    offers Deny and a link to the dashboard, and an Approve or Edit click (from a message
    posted before, or forged by someone who may click) approves nothing."""
    esc_id = slack.escalate(7000, memo="x" * 6000, to_iban="XX00ATTACKER0000")
    channel, ts, message = slack.posted(esc_id)
    text = json.dumps(message["blocks"])
    assert "x" * 6000 not in text and "input cut to fit" in text
    assert "XX00ATTACKER0000" not in text  # past the cut
    buttons = next(b for b in message["blocks"] if b["type"] == "actions")["elements"]
    assert [b["action_id"] for b in buttons] == ["staso_deny", "staso_open"]
    assert buttons[1]["url"] == f"https://staso.example.com/?escalation={esc_id}"
    assert slack.send(click(ALICE, channel, ts, message, "staso_open")).status_code == 200
    old_style = {"blocks": [{"type": "actions", "elements": [
        {"action_id": action, "value": esc_id, "text": {"type": "plain_text", "text": action}}
        for action in ("staso_approve", "staso_edit")]}]}
    told = len(slack.stand_in.sent("chat.postEphemeral"))
    r = slack.send(click(ALICE, channel, ts, old_style, "staso_approve"))
    assert r.status_code == 200
    note = wait_for(lambda: slack.stand_in.sent("chat.postEphemeral")[told:], "a note")[0]
    assert "too large to show whole in Slack" in note["text"]
    before = len(slack.stand_in.sent("views.open"))
    assert slack.send(click(ALICE, channel, ts, old_style, "staso_edit")).status_code == 200
    view = slack.opened_view(before)
    assert "3,000-character" in json.dumps(view) and "dashboard" in json.dumps(view)
    assert slack.escalation(esc_id)["status"] == "pending"


# -- answering ----------------------------------------------------------------------------
def test_approve_resolves_once_updates_the_message_and_wakes_the_agent(slack: Slack) -> None:
    agent = slack.server.agent_client("refund-agent")
    outcome: dict[str, Any] = {}

    def waiting_agent() -> None:
        outcome["result"] = agent.guard("process_refund", {"amount": 9100, "order": "w-1"},
                                        wait_for_escalation=True, escalation_timeout=60)
    thread = threading.Thread(target=waiting_agent)
    thread.start()
    pending = wait_for(lambda: [e for e in slack.server.request(
        "GET", "/v1/escalations?status=pending&tool=process_refund", role="approver").json()
        if e["tool_input"].get("order") == "w-1"], "the waiting call's escalation")
    esc_id = pending[0]["id"]
    assert slack.click(esc_id, "staso_approve").status_code == 200
    thread.join(30)
    assert outcome["result"].action == "allow"
    esc = slack.escalation(esc_id)
    assert (esc["status"], esc["resolved_by"], esc["resolved_via"]) == \
        ("approved", "alice", "slack")
    shown = slack.answer_shown(esc_id)
    assert "Approved by alice via Slack" in shown and "UTC" in shown
    _, _, message = slack.posted(esc_id)
    assert not any(b["type"] == "actions" for b in message["blocks"])  # no buttons left
    # a second click (a double click, another approver) changes nothing and is told why
    told = len(slack.stand_in.sent("chat.postEphemeral"))
    assert slack.click(esc_id, "staso_deny", user=BOB).status_code == 200
    note = wait_for(lambda: slack.stand_in.sent("chat.postEphemeral")[told:], "a note")[0]
    assert note["user"] == BOB and "already approved by alice" in note["text"]
    assert slack.escalation(esc_id)["status"] == "approved"
    agent.shutdown()


def test_deny_asks_for_a_comment_that_reaches_the_agent(slack: Slack) -> None:
    esc_id = slack.escalate(3000)
    before = len(slack.stand_in.sent("views.open"))
    assert slack.click(esc_id, "staso_deny", user=BOB).status_code == 200
    view = slack.opened_view(before)
    assert view["callback_id"] == "staso_deny" and view["private_metadata"] == esc_id
    empty = slack.send(submit(BOB, view, {"staso_comment": {"comment": "  "}}))
    assert empty.json()["response_action"] == "errors"
    assert slack.escalation(esc_id)["status"] == "pending"
    r = slack.send(submit(BOB, view, {"staso_comment": {"comment": "Customer is a fraud risk"}}))
    assert r.status_code == 200 and not r.content  # an empty answer closes the modal
    esc = slack.escalation(esc_id)
    assert (esc["status"], esc["resolved_by"], esc["comment"]) == \
        ("denied", "bob", "Customer is a fraud risk")
    shown = slack.answer_shown(esc_id)
    assert "Denied by bob via Slack" in shown and "Customer is a fraud risk" in shown
    # the agent's next identical call is told the person's answer, with the comment
    again = slack.guard("process_refund", slack.escalation(esc_id)["tool_input"])
    assert again["action"] == "block" and "Customer is a fraud risk" in again["reason"]


def test_edit_opens_the_input_and_approves_with_the_edit(slack: Slack) -> None:
    esc_id = slack.escalate(90000)
    before = len(slack.stand_in.sent("views.open"))
    assert slack.click(esc_id, "staso_edit").status_code == 200
    view = slack.opened_view(before)
    field = view["blocks"][0]["element"]
    assert json.loads(field["initial_value"])["amount"] == 90000
    for bad, says in (("{not json", "Not valid JSON"), ("[1, 2]", "JSON object"),
                      ("", "empty")):
        r = slack.send(submit(ALICE, view, {"staso_input": {"json": bad}}))
        assert r.status_code == 200 and says in r.json()["errors"]["staso_input"]
        assert slack.escalation(esc_id)["status"] == "pending"  # nothing resolved
    edited = {**json.loads(field["initial_value"]), "amount": 900}
    r = slack.send(submit(ALICE, view, {"staso_input": {"json": json.dumps(edited)},
                                        "staso_comment": {"comment": "capped at 900"}}))
    assert r.status_code == 200 and not r.content
    esc = slack.escalation(esc_id)
    assert esc["status"] == "approved" and esc["modified_input"]["amount"] == 900
    assert esc["comment"] == "capped at 900"
    shown = slack.answer_shown(esc_id)
    assert "Approved with edits by alice" in shown and "edited" in shown
    # the agent's next identical call runs with the approved edit
    again = slack.guard("process_refund", {**esc["tool_input"]})
    assert again["action"] == "modify" and again["modified_input"]["amount"] == 900
    # the modal submitted again after the answer: told in the modal, nothing changes
    late = slack.send(submit(BOB, view, {"staso_input": {"json": json.dumps(edited)}}))
    assert "already approved by alice" in late.json()["errors"]["staso_input"]


def test_an_answer_elsewhere_updates_the_message_and_a_late_click_is_told(slack: Slack
                                                                          ) -> None:
    esc_id = slack.escalate(2500)
    slack.posted(esc_id)
    r = slack.server.request("POST", f"/v1/escalations/{esc_id}/approve", role="approver",
                             json={"comment": "fine, known customer"})
    assert r.status_code == 200
    shown = slack.answer_shown(esc_id)
    assert "Approved by alice via the API" in shown and "fine, known customer" in shown
    told = len(slack.stand_in.sent("chat.postEphemeral"))
    assert slack.click(esc_id, "staso_approve", user=BOB).status_code == 200
    note = wait_for(lambda: slack.stand_in.sent("chat.postEphemeral")[told:], "a note")[0]
    assert "already approved" in note["text"]
    assert slack.escalation(esc_id)["resolved_by"] == "alice"


def test_clicks_racing_the_api_resolve_exactly_once(slack: Slack) -> None:
    esc_id = slack.escalate(6600)
    channel, ts, message = slack.posted(esc_id)
    clicks = [signed_request(SECRET, click(user, channel, ts, message, "staso_approve"))
              for user in (ALICE, BOB) * 5]

    def send_click(signed: tuple[bytes, dict[str, str]]) -> int:
        return httpx.post(slack.server.url + "/v1/channels/slack/interactions",
                          content=signed[0], headers=signed[1], timeout=30).status_code

    def api_deny(_: int) -> int:
        return slack.server.request("POST", f"/v1/escalations/{esc_id}/deny",
                                    role="approver", json={"comment": "no"}).status_code

    with ThreadPoolExecutor(16) as pool:
        clicked = list(pool.map(send_click, clicks))
        denied = list(pool.map(api_deny, range(6)))
    assert set(clicked) == {200} and set(denied) <= {200, 409}
    esc = slack.escalation(esc_id)
    winners = denied.count(200) + (esc["resolved_via"] == "slack")
    assert winners == 1, (esc, denied)  # one answer, whoever won
    shown = slack.answer_shown(esc_id)
    assert esc["status"].capitalize() in shown or "Approved" in shown


def test_expiry_updates_the_message(slack: Slack) -> None:
    agent = slack.server.agent_client("refund-agent")
    result = agent.guard("process_refund", {"amount": 1500, "order": "expiring"},
                         wait_for_escalation=True,
                         escalation_timeout=1.5)
    assert result.action == "block"
    esc_id = result.escalation_id
    assert "Timed out" in slack.answer_shown(esc_id)
    agent.shutdown()


# -- refused requests -----------------------------------------------------------------------
def test_requests_slack_did_not_sign_are_refused_and_resolve_nothing(slack: Slack) -> None:
    esc_id = slack.escalate(4400)
    channel, ts, message = slack.posted(esc_id)
    payload = click(ALICE, channel, ts, message, "staso_approve")
    now = int(time.time())
    raw, signed = signed_request(SECRET, payload)
    cases = {
        "forged (another secret)": slack.send(payload, secret="not-the-secret"),
        "stale (330 s old)": slack.send(payload, timestamp=now - 330),
        "from the future (330 s ahead)": slack.send(payload, timestamp=now + 330),
        "no signature": httpx.post(slack.server.url + "/v1/channels/slack/interactions",
                                   content=raw, headers={"Content-Type": signed["Content-Type"]}),
        "timestamp not a number": slack.send(payload, headers={
            "X-Slack-Request-Timestamp": "1.5e9"}),
        "tampered body": slack.send(payload, body=raw.replace(b"staso_approve",
                                                              b"staso_deny")),
    }
    for what, r in cases.items():
        assert r.status_code == 401, (what, r.text)
    first = slack.send(click(BOB, channel, ts, message, "staso_edit"))
    assert first.status_code == 200
    replay = httpx.post(slack.server.url + "/v1/channels/slack/interactions",
                        content=first.request.content, headers=dict(first.request.headers))
    assert replay.status_code == 401 and "replay" in replay.json()["detail"]
    assert slack.escalation(esc_id)["status"] == "pending"


def test_only_linked_approvers_answer_in_slack(slack: Slack) -> None:
    esc_id = slack.escalate(4500)
    told = len(slack.stand_in.sent("chat.postEphemeral"))
    r = slack.click(esc_id, "staso_approve", user=EVE)
    assert r.status_code == 403 and "not linked to an approver key" in r.json()["detail"]
    note = wait_for(lambda: slack.stand_in.sent("chat.postEphemeral")[told:], "a note")[0]
    assert note["user"] == EVE and "not linked" in note["text"]
    # a modal submitted by someone who may not approve is refused the same way
    view = {"type": "modal", "callback_id": "staso_deny", "private_metadata": esc_id}
    r = slack.send(submit(EVE, view, {"staso_comment": {"comment": "no"}}))
    assert r.status_code == 403
    # a revoked key's Slack user may no longer answer
    keys = cli("keys", "create", "--role", "approver", "--name", "carol", "--slack-user",
               "U0CAROL01", env=slack.server.env)
    key_id = next(line.split()[3] for line in keys.stderr.splitlines() if "created" in line)
    cli("keys", "revoke", key_id, env=slack.server.env)
    assert slack.click(esc_id, "staso_approve", user="U0CAROL01").status_code == 403
    assert slack.escalation(esc_id)["status"] == "pending"


def test_malformed_payloads_are_refused(slack: Slack) -> None:
    esc_id = slack.escalate(4600)
    channel, ts, message = slack.posted(esc_id)
    good = click(ALICE, channel, ts, message, "staso_approve")

    def raw_form(body: str) -> httpx.Response:
        ts_ = str(int(time.time()))
        sig = SignatureVerifier(SECRET).generate_signature(timestamp=ts_, body=body)
        return httpx.post(slack.server.url + "/v1/channels/slack/interactions",
                          content=body.encode(), headers={
                              "X-Slack-Request-Timestamp": ts_, "X-Slack-Signature": sig,
                              "Content-Type": "application/x-www-form-urlencoded"})

    refused = {
        "not a form": raw_form("{\"type\": \"block_actions\"}"),
        "no payload": raw_form("other=1"),
        "payload not JSON": raw_form("payload=%7Bnope"),
        "payload a list": raw_form("payload=%5B1%5D"),
        "odd bytes": raw_form("payload=%FF%FE"),
        "no user": slack.send({**good, "user": None}),
        "unknown action": slack.send({**good, "actions": [{**good["actions"][0],
                                                           "action_id": "staso_delete"}]}),
        "no actions": slack.send({**good, "actions": []}),
        "unknown type": slack.send({**good, "type": "shortcut"}),
        "a form not ours": slack.send(submit(ALICE, {"callback_id": "other"}, {})),
    }
    for what, r in refused.items():
        assert r.status_code == 400, (what, r.status_code, r.text)
    unknown = slack.send({**good, "actions": [{**good["actions"][0], "value": "esc_nope"}]})
    assert unknown.status_code == 404
    assert slack.escalation(esc_id)["status"] == "pending"


# -- delivery -----------------------------------------------------------------------------------
def metric(server: Server, name: str) -> float:
    text = server.request("GET", "/metrics", role=None).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name))


def test_slack_down_never_holds_a_guard_and_the_post_comes_later(slack: Slack) -> None:
    failures = metric(slack.server, 'staso_channel_delivery_failures_total{channel="slack"}')
    slack.stand_in.down = True
    try:
        esc_id = slack.escalate(5100)  # answered at once: nothing waits for Slack
        wait_for(lambda: metric(slack.server, "staso_channel_delivery_failures_total"
                                '{channel="slack"}') > failures, "a counted failure")
    finally:
        slack.stand_in.down = False
    slack.posted(esc_id)  # retried with backoff, then delivered
    assert "failed (attempt 1" in (slack.server.log_path or Path()).read_text()
    slack.stand_in.rate_limited = 1  # a 429 is waited out as Slack asks
    esc_2 = slack.escalate(5200)
    slack.posted(esc_2)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_queued_notices_survive_a_restart_and_embedded_escalations_are_posted(
        tmp_path: Path, backend: str) -> None:
    import staso as st

    with SlackStandIn(token=TOKEN) as stand_in:
        stand_in.down = True
        server = slack_server(tmp_path, backend, stand_in)
        slack = Slack(server, stand_in)
        esc_id = slack.escalate(8000)
        wait_for(lambda: stand_in.calls, "a first attempt")
        server.stop()
        stand_in.down = False
        # an agent in embedded mode on the server's own database escalates while it is down
        st.init(agent_name="embedded-agent", home=tmp_path, policy=tmp_path / "staso.yaml")
        try:
            embedded = st.guard("process_refund", {"amount": 7777})
        finally:
            st.shutdown()
        assert embedded.action == "escalate"
        server.start()
        try:
            slack.posted(esc_id)
            slack.posted(embedded.escalation_id)
            time.sleep(2)  # (the outbox has polled again: nothing is posted twice)
            assert sum(esc_id in json.dumps(m) for _, _, m in stand_in.messages()) == 1
        finally:
            stop_server(server)


def test_replicas_post_once_and_update_each_others_posts(tmp_path: Path) -> None:
    with SlackStandIn(token=TOKEN) as stand_in:
        first = slack_server(tmp_path / "a", "postgres", stand_in)
        second = Server(home=tmp_path / "b", database_url=first.database_url,
                        policy=first.policy, extra_env=first.extra_env)
        (tmp_path / "b").mkdir()
        second.keys = first.keys
        second.start()
        try:
            ids = [Slack(first if i % 2 else second, stand_in).escalate(2000 + i)
                   for i in range(12)]
            slack = Slack(second, stand_in)
            for esc_id in ids:
                slack.posted(esc_id)
            time.sleep(2)  # both replicas' outboxes have polled again meanwhile
            posts = [json.dumps(m) for _, _, m in stand_in.messages()]
            assert all(sum(i in p for p in posts) == 1 for i in ids)
            assert len(stand_in.sent("chat.postMessage")) == len(ids)  # none tried twice
            assert slack.click(ids[0], "staso_approve").status_code == 200  # on replica b
            assert "Approved by alice via Slack" in Slack(first, stand_in).answer_shown(ids[0])
        finally:
            second.stop()
            stop_server(first)


# -- configuration ------------------------------------------------------------------------
@pytest.mark.parametrize(("env", "says"), [
    ({"STASO_SLACK_BOT_TOKEN": TOKEN}, "STASO_SLACK_SIGNING_SECRET"),
    ({"STASO_SLACK_SIGNING_SECRET": SECRET}, "STASO_SLACK_BOT_TOKEN"),
    ({"STASO_SLACK_BOT_TOKEN": TOKEN, "STASO_SLACK_SIGNING_SECRET": SECRET,
      "STASO_SLACK_CHANNEL": "payments"}, "STASO_SLACK_CHANNEL"),
    ({"STASO_PUBLIC_URL": "staso.example.com"}, "STASO_PUBLIC_URL"),
])
def test_a_half_configured_channel_stops_the_server(tmp_path: Path, env: dict[str, str],
                                                    says: str) -> None:
    server = Server(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'x.db'}",
                    extra_env=env)
    with pytest.raises(AssertionError, match=says):
        server.start(timeout=30)


def test_a_notify_target_is_checked_when_the_policy_loads(tmp_path: Path) -> None:
    policy = tmp_path / "staso.yaml"
    policy.write_text(POLICY.replace('notify: ["slack:#payments"]',
                                     'notify: ["slack:payments"]'))
    r = cli("policy", "check", str(policy), check=False)
    assert r.returncode != 0 and ":8:" in r.stderr + r.stdout and "#name" in r.stderr + r.stdout
    policy.write_text(POLICY.replace('notify: ["slack:#payments"]', 'notify: ["teams:x"]'))
    r = cli("policy", "check", str(policy), check=False)
    assert "unknown channel 'teams'" in r.stderr + r.stdout


def test_the_documented_slack_manifest_matches_the_server() -> None:
    """The manifest docs/channels.md tells users to paste into Slack's app settings points
    interactivity at the route the server mounts and asks for the scopes staso uses."""
    import re
    from urllib.parse import urlparse

    import yaml

    from staso.channels import slack_routes

    text = (Path(__file__).parent.parent / "docs" / "channels.md").read_text()
    block = re.search(r"```yaml\n(\s*_metadata:.*?)```", text, re.DOTALL)
    assert block is not None
    lines = block.group(1).splitlines()
    indent = len(lines[0]) - len(lines[0].lstrip())
    manifest = yaml.safe_load("\n".join(line[indent:] for line in lines))
    interactivity = manifest["settings"]["interactivity"]
    assert interactivity["is_enabled"] is True
    path = urlparse(interactivity["request_url"]).path
    assert path in {r.path for r in slack_routes.router.routes}  # type: ignore[attr-defined]
    assert {"chat:write", "chat:write.public", "im:write"} <= \
        set(manifest["oauth_config"]["scopes"]["bot"])
    assert manifest["settings"]["socket_mode_enabled"] is False


# -- found by an outside attack ---------------------------------------------------------------
MODIFY_POLICY = """version: 1
rules:
  - name: cap_refunds
    tools: [process_refund]
    action: modify
    modify: {cap: {amount: 10000}, drop: [debug_token]}
  - use: builtin/pii
  - name: big_refund
    tools: [process_refund]
    when: tool_input.amount > 1000
    action: escalate
"""


def test_slack_shows_and_edits_the_input_as_the_policy_rewrote_it(tmp_path: Path) -> None:
    """Approving runs the policy's rewrite (capped, redacted, a field dropped): the message
    and the Edit modal show that version, and an edit starts from it, never from what the
    agent sent."""
    with SlackStandIn(token=TOKEN) as stand_in:
        server = slack_server(tmp_path, "sqlite", stand_in)
        try:
            (tmp_path / "staso.yaml").write_text(MODIFY_POLICY)
            policy = server.request("PUT", "/v1/policy", role="admin",
                                    json={"source": MODIFY_POLICY})
            assert policy.status_code == 200, policy.text
            slack = Slack(server, stand_in)
            sent = {"amount": 250000, "debug_token": "dbg-1",
                    "note": "SSN 078-05-1120, card 4111 1111 1111 1111"}
            esc_id = wait_for(lambda: slack.guard("process_refund", sent).get(
                "escalation_id"), "the new policy to escalate")
            _, _, message = slack.posted(esc_id)
            text = json.dumps(message["blocks"])
            assert "10000" in text and "250000" not in text and "dbg-1" not in text
            assert "078-05-1120" not in text and "4111 1111" not in text
            assert "the policy rewrote what the agent sent" in text
            before = len(stand_in.sent("views.open"))
            assert slack.click(esc_id, "staso_edit").status_code == 200
            view = slack.opened_view(before)
            shown = json.loads(view["blocks"][0]["element"]["initial_value"])
            assert shown["amount"] == 10000 and "debug_token" not in shown
            assert "078-05-1120" not in json.dumps(shown)
            r = slack.send(submit(ALICE, view, {"staso_input": {"json": json.dumps(
                {**shown, "memo": "ok"})}}))
            assert r.status_code == 200 and not r.content
            edited = slack.escalation(esc_id)["modified_input"]
            assert edited["amount"] == 10000 and "debug_token" not in edited
        finally:
            stop_server(server)


def test_a_slow_slack_holds_no_guard_call(tmp_path: Path) -> None:
    """While Slack takes 20 s to answer, clicks that make staso call Slack (notes to
    people who may not answer, modals) never hold the threads guard calls and /healthz
    use: each call is answered as usual, well within its own 8 s timeout."""
    with SlackStandIn(token=TOKEN) as stand_in:
        server = slack_server(tmp_path, "sqlite", stand_in)
        slack = Slack(server, stand_in)
        try:
            esc_id = slack.escalate(3100)
            slack.posted(esc_id)
            stand_in.delay = 20.0
            with ThreadPoolExecutor(24) as pool:
                clicks = [pool.submit(slack.click, esc_id, "staso_approve", EVE)
                          for _ in range(12)]
                clicks += [pool.submit(slack.click, esc_id, "staso_deny", BOB)
                           for _ in range(4)]
                time.sleep(1.0)  # the clicks are in flight
                agent = server.agent_client("refund-agent", guard_timeout=8.0,
                                            fail_closed=True)
                try:
                    for i in range(5):
                        result = agent.guard("process_refund", {"amount": 4000 + i})
                        assert result.action == "escalate", result.reason
                    assert agent.guard("lookup_order", {"id": 1}).action == "allow"
                finally:
                    agent.shutdown()
                health = httpx.get(server.url + "/healthz", timeout=8.0)
                assert health.status_code == 200
                assert all(c.result().status_code in (200, 403) for c in clicks)
            assert slack.escalation(esc_id)["status"] == "pending"
        finally:
            stand_in.delay = 0.0
            stop_server(server)


def test_a_message_slack_refuses_is_posted_as_text_with_a_link(slack: Slack) -> None:
    slack.stand_in.refuse_blocks = True
    try:
        esc_id = slack.escalate(5300)
        text = wait_for(lambda: next((m["text"] for _, _, m in slack.stand_in.messages()
                                      if esc_id in m["text"]), None), "the text post")
    finally:
        slack.stand_in.refuse_blocks = False
    assert "Approval needed (high, rule big_refund): process_refund by refund-agent" in text
    assert f"https://staso.example.com/?escalation={esc_id}" in text


def test_long_and_hidden_text_stays_inside_slacks_limits_and_shows(slack: Slack) -> None:
    """Names Slack would refuse (a header over 150 UTF-16 units, emoji counting twice) are
    cut; bidirectional overrides, zero-width and control characters show as escapes and a
    newline in a name starts no line of its own."""
    r = slack.server.request("POST", "/v1/guard", json={
        "tool_name": "process_refund", "agent_name": "ops\n✅ Pre-approved by finance",
        "tool_input": {"amount": 4700, "iban": "DE89\u202e3704\u200b0044", "x": "😀" * 190}})
    esc_id = r.json()["escalation_id"]
    _, _, message = slack.posted(esc_id)
    header = message["blocks"][0]["text"]["text"]
    assert len(header.encode("utf-16-le")) // 2 <= 150
    text = json.dumps(message["blocks"], ensure_ascii=False)
    assert "\u202e" not in text and "\u200b" not in text and "\\\\u202e" in text
    agent_field = message["blocks"][1]["fields"][0]["text"]
    assert "\n" not in agent_field and agent_field.startswith("Agent: ops ✅")
    confirm = next(b for b in message["blocks"] if b["type"] == "actions")["elements"][0]
    assert len(confirm["confirm"]["text"]["text"]) <= 300


def test_odd_signatures_and_nested_edits_are_answered_not_crashed(slack: Slack) -> None:
    esc_id = slack.escalate(4800)
    channel, ts, _ = slack.posted(esc_id)
    payload = click(ALICE, channel, ts, slack.original(esc_id), "staso_approve")
    raw, headers = signed_request(SECRET, payload)
    for odd in ("v0=é" + "0" * 63, "v0=\u00ff", "v1=" + "0" * 64):
        r = httpx.post(slack.server.url + "/v1/channels/slack/interactions", content=raw,
                       headers={**headers, "X-Slack-Signature": odd.encode()})
        assert r.status_code == 401, (odd, r.status_code)
    before = len(slack.stand_in.sent("views.open"))
    assert slack.click(esc_id, "staso_edit").status_code == 200
    view = slack.opened_view(before)
    r = slack.send(submit(ALICE, view, {"staso_input": {"json": "[" * 1500 + "]" * 1500}}))
    assert r.status_code == 200 and "Nested too deeply" in r.json()["errors"]["staso_input"]
    assert slack.escalation(esc_id)["status"] == "pending"


def test_one_person_answers_as_one_key(slack: Slack) -> None:
    taken = cli("keys", "create", "--role", "approver", "--name", "mallory", "--slack-user",
                ALICE, env=slack.server.env, check=False)
    assert taken.returncode != 0 and "already answers as key" in taken.stderr
    made = cli("keys", "create", "--role", "approver", "--name", "dave", env=slack.server.env)
    key_id = next(line.split()[3] for line in made.stderr.splitlines() if "created" in line)
    linked = cli("keys", "link", key_id, "--slack-user", BOB, env=slack.server.env,
                 check=False)
    assert linked.returncode != 0 and "already answers as key" in linked.stderr


def test_a_replica_without_slack_leaves_slack_notices_to_one_with_it(tmp_path: Path
                                                                     ) -> None:
    """A rolling deploy: replica b has no Slack settings yet. Escalations it takes are
    still posted, by replica a; b never gives up a notice for a channel it lacks, and its
    log says the notices wait for a replica that has the channel."""
    with SlackStandIn(token=TOKEN) as stand_in:
        first = slack_server(tmp_path / "a", "postgres", stand_in)
        (tmp_path / "b").mkdir()
        second = Server(home=tmp_path / "b", database_url=first.database_url,
                        policy=first.policy, extra_env={
                            "STASO_SMTP_URL": "smtp://127.0.0.1:9",
                            "STASO_EMAIL_FROM": "staso@example.com",
                            "STASO_PUBLIC_URL": "https://staso.example.com"})
        second.keys = first.keys
        second.start()
        try:
            ids = [Slack(second, stand_in).escalate(2100 + i) for i in range(8)]
            slack = Slack(first, stand_in)
            for esc_id in ids:
                slack.posted(esc_id)
            wait_for(lambda: "this server has not configured it" in
                     (second.log_path or Path()).read_text(), "replica b's warning")
            assert "gave up" not in (second.log_path or Path()).read_text()
        finally:
            second.stop()
            stop_server(first)
