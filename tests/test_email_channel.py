"""The e-mail approval channel, end to end: a real ``staso serve`` (SQLite and PostgreSQL)
mailing escalations to a real SMTP server (aiosmtpd), the links in the messages it
received followed as a mail scanner and as a person would (httpx, and Debian's chromium
driven by Playwright), and every kind of bad link and form refused with nothing resolved.
"""

from __future__ import annotations

import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import BACKENDS
from servers import Server, cli, drop_pg_database, new_database, wait_for
from smtp_peers import (
    Mailbox,
    Received,
    bodies,
    mail_to,
    make_cert,
    password_check,
    server_tls,
    start_smtp,
)
from staso.channels import email_links, email_message
from staso.channels.base import ChannelContext, DeliveryError
from staso.channels.email import EmailChannel, SmtpServer
from staso.channels.email_message import ESCALATION_HEADER
from staso.errors import StasoError
from staso.models import Escalation
from staso.store import Store

POLICY = """version: 1
rules:
  - name: big_refund
    tools: [process_refund]
    when: tool_input.amount > 1000
    action: escalate
    severity: high
    reason: Refunds over $1,000 need a person
  - name: wire_out
    tools: [wire_transfer]
    action: escalate
    severity: critical
    reason: Wires leave the bank
    notify: ["email:Treasury@Example.com", "email:stranger@example.com"]
  - name: close_account
    tools: [close_account]
    action: escalate
    notify: ["email:dave@example.com", "email:erin@example.com"]
  - name: flaky_route
    tools: [flaky_tool]
    action: escalate
    notify: ["email:flaky@example.com", "email:bounce@example.com"]
"""
DEFAULT_TO = "carol@example.com, ops@example.com"
# approver keys linked to addresses: name -> address
APPROVERS = {"carol": "carol@example.com", "treasurer": "treasury@example.com",
             "dave": "dave@example.com", "erin": "erin@example.com"}
EVIL = {"note": "<script>window.__xss = 1</script>",
        "to": '"><img src=x onerror="window.__xss = 2">'}
LINK = re.compile(r"^  (Approve|Deny): +(\S+)$", re.MULTILINE)
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


# -- servers ----------------------------------------------------------------------------------
@dataclass
class Setup:
    server: Server
    mailbox: Mailbox
    keys: dict[str, tuple[str, str]]  # name -> (key id, key)


def new_server(tmp: Path, backend: str, smtp_url: str | None, **env: str) -> Server:
    """A server (not started) whose e-mails go to ``smtp_url``; keys for each role."""
    policy = tmp / "staso.yaml"
    policy.write_text(POLICY)
    server = Server(home=tmp, database_url=new_database(tmp, backend), policy=policy)
    if smtp_url is not None:
        server.extra_env = {"STASO_SMTP_URL": smtp_url,
                            "STASO_EMAIL_FROM": "staso <staso@example.com>",
                            "STASO_EMAIL_TO": DEFAULT_TO, "STASO_PUBLIC_URL": server.url}
    server.extra_env.update(env)
    server.create_keys()
    return server


def approver(server: Server, name: str, address: str) -> tuple[str, str]:
    """An approver key linked to ``address``: (its id, the key)."""
    made = cli("keys", "create", "--role", "approver", "--name", name, "--email", address,
               env=server.env)
    found = re.search(r"key (key_[0-9a-f]+)", made.stderr)
    assert found, made.stderr
    return found.group(1), made.stdout.strip()


def stop(server: Server) -> None:
    server.stop()
    if server.database_url.startswith("postgresql"):
        drop_pg_database(server.database_url)


@pytest.fixture(scope="module", params=BACKENDS)
def mail(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
         ) -> Iterator[Setup]:
    """A mailing server on each backend, and the SMTP server it sends to (which refuses
    bounce@ for good, and answers flaky@'s first message "try again later")."""
    mailbox = Mailbox(refuse={"bounce@example.com"}, busy={"flaky@example.com": 1})
    smtp = start_smtp(mailbox)
    server = new_server(tmp_path_factory.mktemp(f"mail-{request.param}"), request.param,
                        f"smtp://127.0.0.1:{smtp.port}")
    keys = {name: approver(server, name, address) for name, address in APPROVERS.items()}
    server.start()
    yield Setup(server, mailbox, keys)
    stop(server)
    smtp.stop()


# -- helpers ----------------------------------------------------------------------------------
def escalate(server: Server, tool: str, tool_input: dict[str, Any], **extra: Any) -> str:
    """A new escalation (a nonce keeps it from matching an earlier one's call)."""
    r = server.request("POST", "/v1/guard", json={
        "tool_name": tool, "tool_input": {**tool_input, "nonce": uuid.uuid4().hex},
        "agent_name": "refund-agent", **extra})
    assert r.status_code == 200 and r.json()["action"] == "escalate", r.text
    escalation_id: str = r.json()["escalation_id"]
    return escalation_id


def recipients(mailbox: Mailbox, escalation_id: str) -> set[str]:
    """Everyone mailed about one escalation so far."""
    sent = mailbox.matching(lambda r: r.message[ESCALATION_HEADER] == escalation_id)
    return {address for r in sent for address in r.rcpt_tos}


_ACTION_OF: dict[str, str] = {}  # each link seen in a message, and what it answers


def links(received: Received) -> dict[str, str]:
    """The message's answer links by action: {"approve": url, "deny": url} or {}."""
    found = {verb.lower(): url for verb, url in LINK.findall(bodies(received)[0])}
    _ACTION_OF.update((url, verb) for verb, url in found.items())
    return found


def stored(server: Server, escalation_id: str) -> dict[str, Any]:
    r = server.request("GET", f"/v1/escalations/{escalation_id}", role="admin")
    assert r.status_code == 200, r.text
    data: dict[str, Any] = r.json()
    return data


def post(url: str, comment: str = "", action: str | None = None, **kwargs: Any
         ) -> httpx.Response:
    """The confirmation page's form, as a browser sends it."""
    verb = action or _ACTION_OF.get(url, "approve")
    return httpx.post(url, data={"action": verb, "comment": comment}, timeout=30, **kwargs)


def metric(server: Server, name: str) -> float:
    text = httpx.get(server.url + "/metrics", timeout=30).text
    found = re.search(rf'^{re.escape(name)} (\S+)$', text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


def is_page(r: httpx.Response) -> None:
    """An answer page with every protection the contract names."""
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert "script-src" not in csp  # so default-src 'none' forbids every script
    assert "frame-ancestors 'none'" in csp
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers["cache-control"] == "no-store"
    assert "<script" not in r.text.lower()


# -- configuration ----------------------------------------------------------------------------
CONTEXT = ChannelContext(public_url="https://staso.example.com", store=None)  # type: ignore[arg-type]
GOOD = {"STASO_SMTP_URL": "smtp://mail.example.com", "STASO_EMAIL_FROM": "staso@example.com"}


def test_configuration_from_the_environment() -> None:
    assert EmailChannel.from_env({}, CONTEXT) is None
    channel = EmailChannel.from_env({
        "STASO_SMTP_URL": "smtp+starttls://ops%40example.com:p%40ss%3Aw%2Frd@mail.example.com",
        "STASO_EMAIL_FROM": "staso <Staso@Example.com>",
        "STASO_EMAIL_TO": " Ops@Example.com, ,alice@example.com,ops@example.com,"}, CONTEXT)
    assert channel is not None
    assert channel.smtp == SmtpServer("smtp+starttls", "mail.example.com", 587,
                                      "ops@example.com", "p@ss:w/rd")
    assert "p@ss" not in repr(channel.smtp) and "w/rd" not in repr(channel.smtp)
    assert channel.envelope_from == "staso@example.com"
    assert channel.sender == "staso <staso@example.com>"
    assert channel.defaults() == ["ops@example.com", "alice@example.com"]
    for url, port in (("smtps://m.example.com", 465), ("smtp://m.example.com", 25),
                      ("SMTP://m.example.com:2525", 2525)):
        found = EmailChannel.from_env({**GOOD, "STASO_SMTP_URL": url}, CONTEXT)
        assert found is not None and found.smtp.port == port and found.defaults() == []
    local = EmailChannel.from_env({**GOOD, "STASO_SMTP_URL": "smtp://relay:pw@127.0.0.1:25"},
                                  CONTEXT)  # a password in the clear, but not off the machine
    assert local is not None and (local.smtp.user, local.smtp.password) == ("relay", "pw")


@pytest.mark.parametrize(("env", "public", "message"), [
    ({"STASO_SMTP_URL": "smtp://m.example.com"}, True, "not STASO_EMAIL_FROM"),
    (GOOD, False, "not STASO_PUBLIC_URL"),
    ({**GOOD, "STASO_SMTP_URL": "http://m.example.com"}, True, "must start with smtp://"),
    ({**GOOD, "STASO_SMTP_URL": "m.example.com:25"}, True, "must start with smtp://"),
    ({**GOOD, "STASO_SMTP_URL": "smtp://m.example.com:smtp"}, True, "port"),
    ({**GOOD, "STASO_SMTP_URL": "smtp://:25"}, True, "names no host"),
    ({**GOOD, "STASO_SMTP_URL": "smtp://:secret@m.example.com"}, True, "no user name"),
    ({**GOOD, "STASO_SMTP_URL": "smtp://u:secret@m.example.com"}, True, "unencrypted"),
    ({**GOOD, "STASO_EMAIL_FROM": "staso"}, True, "STASO_EMAIL_FROM='staso'"),
    ({**GOOD, "STASO_EMAIL_TO": "ops@example.com;bob@example.com"}, True, "STASO_EMAIL_TO"),
    ({**GOOD, "STASO_EMAIL_TO": "ops@example.com, bob"}, True, "'bob'"),
    ({"STASO_EMAIL_TO": "ops@example.com"}, True, "not STASO_SMTP_URL"),
])
def test_half_or_wrongly_configured_email_is_refused(env: dict[str, str], public: bool,
                                                     message: str) -> None:
    context = CONTEXT if public else ChannelContext(public_url=None, store=None)  # type: ignore[arg-type]
    with pytest.raises(StasoError, match=re.escape(message)) as caught:
        EmailChannel.from_env(env, context)
    assert "secret" not in str(caught.value)  # a URL's password is never repeated


def test_check_address() -> None:
    assert EmailChannel.check_address(" Ops@Example.COM ") == "ops@example.com"
    for bad in ("ops", "ops@example", "a@example.com,b@example.com", "<ops@example.com>",
                "ops@example.com bob@example.com", "@example.com", "",
                # what mail libraries read as something else: a literal, a comment, a
                # group, an empty host label, an encoded word
                "ops@[example.com", "ops(@example.com", "ops:x@example.com",
                "ops@example.com.", "=?utf-8?q?ops?=@example.com"):
        with pytest.raises(ValueError, match="is not one e-mail address"):
            EmailChannel.check_address(bad)


def test_half_configured_server_refuses_to_start(tmp_path: Path) -> None:
    server = new_server(tmp_path, "sqlite", None, STASO_SMTP_URL="smtp://127.0.0.1:25")
    with pytest.raises(AssertionError, match="not STASO_EMAIL_FROM"):
        server.start()


def test_links_are_404_where_email_is_not_configured(sqlite_server: Server) -> None:
    url = f"{sqlite_server.url}/v1/channels/email/esc_1.key_1.approve.{'A' * 43}"
    for r in (httpx.get(url), post(url)):
        assert r.status_code == 404 and "not configured" in r.text
        is_page(r)


# -- the message ------------------------------------------------------------------------------
def test_message_carries_the_facts_and_links(mail: Setup) -> None:
    server = mail.server
    esc = escalate(server, "process_refund", {"customer": "c_1", "amount": 5000, **EVIL})
    to_carol = mail_to(mail.mailbox, esc, "carol@example.com")
    to_ops = mail_to(mail.mailbox, esc, "ops@example.com")
    msg = to_carol.message
    assert msg["From"] == "staso <staso@example.com>" and msg["To"] == "carol@example.com"
    assert to_carol.mail_from == "staso@example.com"
    # (Python folds a header that fits on a line of its own after "Subject:", legally;
    # its parser keeps that fold's space)
    assert msg["Subject"].strip() == "Approval needed (high, rule big_refund): " \
                                     "process_refund by refund-agent"
    assert re.fullmatch(r"<\S+@example\.com>", msg["Message-ID"])
    assert msg["Message-ID"] != to_ops.message["Message-ID"]
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    text, markup = bodies(to_carol)
    for fact in ("Tool:", "process_refund", "Agent:", "refund-agent", "Rule:", "big_refund",
                 "Severity:", "high", "Reason:", "Refunds over $1,000 need a person",
                 "Expires:", " UTC (in ", esc, '  "amount": 5000,', '  "customer": "c_1",'):
        assert fact in text, fact
    assert "<script>window.__xss = 1</script>" in text  # plain text shows it as it is
    # the HTML part escapes every attacker-controlled character
    assert "<script" not in markup.lower() and "<img" not in markup.lower()
    assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in markup
    assert "&quot;&gt;&lt;img src=x onerror=\\&quot;window.__xss = 2\\&quot;&gt;" in markup
    assert "big_refund" in markup and "refund-agent" in markup and esc in markup
    answer = links(to_carol)
    assert set(answer) == {"approve", "deny"}
    for url in answer.values():
        assert re.fullmatch(rf"{server.url}/v1/channels/email/[A-Za-z0-9_\-]{{43}}", url)
        assert f'href="{url}"' in markup
    assert answer["approve"] != answer["deny"]
    assert "answer as carol" in text
    assert f"{server.url}/?escalation={esc}" in text
    # an address that answers as no key: the facts, no links, the dashboard
    ops_text, ops_markup = bodies(to_ops)
    assert "process_refund" in ops_text and '"amount": 5000' in ops_text
    assert "/v1/channels/email/" not in ops_text + ops_markup and not links(to_ops)
    assert "answers as no approver key" in ops_text
    assert f"{server.url}/?escalation={esc}" in ops_text
    # a rule's notify: targets replace the defaults; long arguments are cut, with a pointer
    wire = escalate(server, "wire_transfer", {"amount": 1, "memo": "y" * 6000})
    to_treasury = mail_to(mail.mailbox, wire, "treasury@example.com")
    to_stranger = mail_to(mail.mailbox, wire, "stranger@example.com")
    assert to_treasury.message["Subject"].strip().startswith(
        "Approval needed (critical, rule wire_out): wire_transfer")
    assert set(links(to_treasury)) == {"approve", "deny"} and not links(to_stranger)
    bound = link_row(server, links(to_treasury)["approve"])
    assert (bound.key_id, bound.action, bound.escalation_id, bound.email) == \
        (mail.keys["treasurer"][0], "approve", wire, "treasury@example.com")
    treasury_text = bodies(to_treasury)[0]
    assert "y" * 3000 in treasury_text and "y" * 6000 not in treasury_text
    assert f"[cut to fit: see them all in the dashboard, {server.url}/?escalation={wire}]" \
        in treasury_text
    for esc_id, wanted in ((esc, {"carol@example.com", "ops@example.com"}),
                           (wire, {"treasury@example.com", "stranger@example.com"})):
        assert recipients(mail.mailbox, esc_id) == wanted


# -- answering --------------------------------------------------------------------------------
def test_following_a_link_resolves_nothing_and_the_form_approves_once(mail: Setup) -> None:
    server = mail.server
    esc = escalate(server, "process_refund", {"customer": "c_2", "amount": 6000, **EVIL})
    urls = links(mail_to(mail.mailbox, esc, "carol@example.com"))
    # what a mail scanner does: follow every link, more than once, and HEAD them
    for _ in range(2):
        for url in urls.values():
            r = httpx.get(url, timeout=30)
            assert r.status_code == 200, r.text
            is_page(r)
            assert 'method="post"' in r.text and r.text.count("<button") == 1
            assert "&lt;script&gt;window.__xss = 1&lt;/script&gt;" in r.text
            assert "<img" not in r.text
        head = httpx.head(urls["approve"], timeout=30)
        assert head.status_code == 200 and head.content == b""
    assert "Approve this call?" in httpx.get(urls["approve"]).text
    assert "Deny this call?" in httpx.get(urls["deny"]).text
    assert stored(server, esc)["status"] == "pending"
    # the form approves
    r = post(urls["approve"])
    assert r.status_code == 200, r.text
    is_page(r)
    assert "Approved by carol via e-mail" in r.text
    after = stored(server, esc)
    assert after["status"] == "approved" and after["resolved_by"] == "carol"
    assert after["resolved_via"] == "email" and after["comment"] is None
    # once: the same form again is refused as used, and nothing changes
    again = post(urls["approve"], comment="again")
    assert again.status_code == 410 and "used already" in again.text
    is_page(again)
    # the escalation's other link died with it
    for r in (httpx.get(urls["deny"]), post(urls["deny"], comment="too late")):
        assert r.status_code == 409 and "Approved by carol via e-mail" in r.text
    assert stored(server, esc) == after


def test_deny_with_a_comment(mail: Setup) -> None:
    server = mail.server
    esc = escalate(server, "process_refund", {"customer": "c_3", "amount": 7000})
    urls = links(mail_to(mail.mailbox, esc, "carol@example.com"))
    comment = "customer already refunded <b>twice</b>"
    r = post(urls["deny"], comment=f"  {comment}\n")
    assert r.status_code == 200, r.text
    assert "Denied by carol via e-mail" in r.text
    assert "customer already refunded &lt;b&gt;twice&lt;/b&gt;" in r.text
    after = stored(server, esc)
    assert after["status"] == "denied" and after["comment"] == comment
    assert after["resolved_by"] == "carol" and after["resolved_via"] == "email"
    for _ in range(2):  # a link that never answered stays "answered already", not "used"
        assert post(urls["approve"]).status_code == 409
    assert stored(server, esc)["status"] == "denied"


def link_row(server: Server, url: str) -> Any:
    """What the server's database holds of a link: what it answers, under its hash."""
    store = Store(server.database_url)
    try:
        found = store.answer_link(email_links.digest(url.rsplit("/", 1)[1]))
    finally:
        store.close()
    assert found is not None, url
    return found


def _answer_links(store: Store) -> list[Any]:
    import sqlalchemy as sa

    from staso.store.schema import answer_links

    with store.engine.connect() as conn:
        return list(conn.execute(sa.select(answer_links)))


def test_bad_links_and_forms_are_refused_and_resolve_nothing(mail: Setup) -> None:
    server = mail.server
    first = escalate(server, "process_refund", {"customer": "c_4", "amount": 8000})
    second = escalate(server, "process_refund", {"customer": "c_5", "amount": 8000})
    urls = links(mail_to(mail.mailbox, first, "carol@example.com"))
    other = links(mail_to(mail.mailbox, second, "carol@example.com"))
    base = f"{server.url}/v1/channels/email/"
    token = urls["approve"][len(base):]
    assert other["approve"] != urls["approve"]
    store = Store(server.database_url)
    try:  # what the database holds of the link: its hash, which is no link
        stored_hashes = [row.id for row in _answer_links(store)]
        assert email_links.digest(token) in stored_hashes and token not in stored_hashes
        forged = {
            "a random token": "A" * 43,
            "cut short": token[:-1],
            "one character more": token + "x",
            "case changed": token.swapcase(),
            "the stored hash": email_links.digest(token),
            "the stored hash, cut to a token's length": email_links.digest(token)[:43],
            "not a link": "nonsense",
        }
        for what, forged_token in forged.items():
            for r in (httpx.get(base + forged_token), post(base + forged_token,
                                                            action="approve")):
                assert r.status_code == 404, (what, r.status_code, r.text)
                assert "This link is not valid" in r.text, what
                assert first not in r.text and second not in r.text  # shows nothing of them
                is_page(r)
        # a link for an escalation that does not exist
        carol = store.key_for_person(email="carol@example.com")
        assert carol is not None
        ghost = email_links.make(store, Escalation(
            id="esc_" + "0" * 24, status="pending", tool_name="x", tool_input={},
            fingerprint="", expires_at=time.time() + 60), carol[0], "approve")
    finally:
        store.close()
    for r in (httpx.get(base + ghost), post(base + ghost)):
        assert r.status_code == 404 and "no escalation esc_000" in r.text
    # forms that are not the page's own, on a good link
    url = urls["approve"]
    malformed: list[tuple[int, dict[str, Any]]] = [
        (400, {"content": b"", "headers": FORM}),
        (400, {"content": b"comment=ok", "headers": FORM}),
        (400, {"content": b"action=deny&comment=ok", "headers": FORM}),
        (400, {"content": b"action=approve&action=approve", "headers": FORM}),
        (400, {"content": b"action=approve&comment=caf\xe9", "headers": FORM}),
        (400, {"content": b"action=approve&comment=" + b"x" * 2001, "headers": FORM}),
        (413, {"content": b"action=approve&comment=" + b"x" * 20000, "headers": FORM}),
        (415, {"json": {"action": "approve"}}),
        (415, {"content": b"action=approve", "headers": {"Content-Type": "text/plain"}}),
    ]
    for status, kwargs in malformed:
        r = httpx.post(url, timeout=30, **kwargs)
        assert r.status_code == status, (kwargs, r.text)
        is_page(r)
    assert stored(server, first)["status"] == "pending"
    assert stored(server, second)["status"] == "pending"
    # none of it used the link up
    r = post(url, comment="checked")
    assert r.status_code == 200, r.text
    assert stored(server, first)["status"] == "approved"
    assert stored(server, second)["status"] == "pending"


def test_links_die_with_the_escalation(mail: Setup) -> None:
    server = mail.server
    # answered elsewhere (the API), before the link was used
    esc = escalate(server, "process_refund", {"customer": "c_6", "amount": 9000})
    urls = links(mail_to(mail.mailbox, esc, "carol@example.com"))
    r = server.request("POST", f"/v1/escalations/{esc}/deny", role="admin",
                       json={"comment": "handled by phone"})
    assert r.status_code == 200, r.text
    for r in (httpx.get(urls["approve"]), post(urls["approve"]), post(urls["deny"])):
        assert r.status_code == 409 and "Denied by root via the API" in r.text, r.text
    assert stored(server, esc)["resolved_by"] == "root"
    # expired: a call that waits 8 s for an answer, then gives up (time enough for the mail
    # to arrive with its links first, on a busy machine too)
    waited: list[httpx.Response] = []
    agent = {"Authorization": f"Bearer {server.keys['agent']}"}
    nonce = uuid.uuid4().hex
    waiter = threading.Thread(target=lambda: waited.append(httpx.post(
        server.url + "/v1/guard", headers=agent, timeout=60, json={
            "tool_name": "process_refund", "agent_name": "refund-agent",
            "tool_input": {"customer": "c_7", "amount": 9100, "nonce": nonce},
            "wait": True, "escalation_timeout": 8})))
    waiter.start()
    try:
        received = mail.mailbox.wait_for(lambda r: nonce in bodies(r)[0]
                                         and "carol@example.com" in r.rcpt_tos, timeout=60)
        expiring = received.message[ESCALATION_HEADER]
        expiring_urls = links(received)
        assert httpx.get(expiring_urls["approve"]).status_code in (200, 409)
        gone = wait_for(lambda: (r := httpx.get(expiring_urls["approve"])).status_code == 409
                    and r, what="the link to show the escalation expired")
        assert "This escalation expired" in gone.text
        r = post(expiring_urls["approve"])
        assert r.status_code == 409 and "expired" in r.text
    finally:
        waiter.join(60)
    answer = waited[0].json() if waited else {}
    assert answer.get("action") == "escalate", answer  # the call did not run
    assert stored(server, expiring)["status"] == "timeout"


def test_revoked_or_relinked_keys_links_answer_nothing(mail: Setup) -> None:
    server = mail.server
    esc = escalate(server, "close_account", {"account": "acct_9"})
    dave = links(mail_to(mail.mailbox, esc, "dave@example.com"))
    erin = links(mail_to(mail.mailbox, esc, "erin@example.com"))
    assert httpx.get(dave["approve"]).status_code == 200
    assert httpx.get(erin["approve"]).status_code == 200
    cli("keys", "revoke", mail.keys["dave"][0], env=server.env)
    cli("keys", "link", mail.keys["erin"][0], "--email", "erin.new@example.com",
        env=server.env)
    for url in (dave["approve"], dave["deny"], erin["approve"]):
        for r in (httpx.get(url), post(url)):
            assert r.status_code == 404 and "This link is not valid" in r.text
    # linked back to the old address: the old links stay dead (they were withdrawn)
    cli("keys", "link", mail.keys["erin"][0], "--email", "erin@example.com", env=server.env)
    for r in (httpx.get(erin["approve"]), post(erin["approve"])):
        assert r.status_code == 410, r.text
    assert stored(server, esc)["status"] == "pending"


def test_smtp_refusals_are_retried_or_given_up(mail: Setup) -> None:
    """A 451 (try later) is retried and delivered; a 550 (no such mailbox) is given up."""
    server = mail.server
    failures = 'staso_channel_delivery_failures_total{channel="email"}'
    given_up = 'staso_channel_notices_given_up_total{channel="email"}'
    failed_before, given_up_before = metric(server, failures), metric(server, given_up)
    esc = escalate(server, "flaky_tool", {"x": 1})
    received = mail_to(mail.mailbox, esc, "flaky@example.com")  # on the second attempt
    assert mail.mailbox.busy_answers >= 1 and not links(received)  # flaky@ is no approver
    wait_for(lambda: metric(server, given_up) == given_up_before + 1, what="bounce given up")
    assert metric(server, failures) >= failed_before + 2  # flaky's 451 and bounce's 550
    assert not mail.mailbox.matching(lambda r: "bounce@example.com" in r.rcpt_tos)
    assert len(mail.mailbox.matching(lambda r: r.message[ESCALATION_HEADER] == esc)) == 1


# -- in a browser -----------------------------------------------------------------------------
def test_a_person_approves_from_the_email_in_a_browser(mail: Setup, browser: Any) -> None:
    server = mail.server
    esc = escalate(server, "process_refund", {"customer": "c_8", "amount": 5500, **EVIL})
    url = links(mail_to(mail.mailbox, esc, "carol@example.com"))["approve"]
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        response = page.goto(url)
        assert response is not None and response.status == 200
        assert page.text_content("h2") == "Approve this call?"
        assert "<script>window.__xss = 1</script>" in page.text_content("pre.input")
        assert page.locator("#escalation img").count() == 0
        assert page.evaluate("typeof window.__xss") == "undefined"
        assert page.evaluate("getComputedStyle(document.body).maxWidth") == "1200px"  # CSS
        assert stored(server, esc)["status"] == "pending"  # the page alone answers nothing
        page.fill("#comment", "checked the invoice")
        with page.expect_navigation():
            page.click("#submit")
        assert page.text_content("#result").startswith("Approved by carol via e-mail")
        assert page.evaluate("typeof window.__xss") == "undefined"
    finally:
        context.close()
    after = stored(server, esc)
    assert after["status"] == "approved" and after["comment"] == "checked the invoice"
    assert after["resolved_by"] == "carol" and after["resolved_via"] == "email"


# -- transport ------------------------------------------------------------------------------
def test_starttls_required_with_a_password(tmp_path: Path) -> None:
    cert, key = make_cert(tmp_path)
    mailbox = Mailbox()
    smtp = start_smtp(mailbox, tls_context=server_tls(cert, key), require_starttls=True,
                      auth_required=True,
                      authenticator=password_check("staso@example.com", "p@ss:w/rd"))
    server = new_server(tmp_path, "sqlite",
                        f"smtp+starttls://staso%40example.com:p%40ss%3Aw%2Frd@127.0.0.1:"
                        f"{smtp.port}", SSL_CERT_FILE=str(cert))
    approver(server, "carol", "carol@example.com")
    server.start()
    try:
        esc = escalate(server, "process_refund", {"customer": "c_9", "amount": 5000})
        received = mail_to(mailbox, esc, "carol@example.com")
        assert received.tls and received.login == "staso@example.com"
        assert set(links(received)) == {"approve", "deny"}
        assert post(links(received)["approve"]).status_code == 200
        assert stored(server, esc)["status"] == "approved"
    finally:
        stop(server)
        smtp.stop()


def test_smtp_down_at_first_delays_no_call_and_delivers_later(tmp_path: Path) -> None:
    # "down": a port that accepts connections but never answers (each attempt waits out
    # the channel's 10 s timeout); then a real SMTP server on that port
    silent = socket.socket()
    silent.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    silent.bind(("127.0.0.1", 0))
    silent.listen(64)
    port = silent.getsockname()[1]
    server = new_server(tmp_path, "sqlite", f"smtp://127.0.0.1:{port}")
    approver(server, "carol", "carol@example.com")
    server.start()
    mailbox, smtp = Mailbox(), None
    failures = 'staso_channel_delivery_failures_total{channel="email"}'
    try:
        started = time.monotonic()
        esc = escalate(server, "process_refund", {"customer": "c_10", "amount": 5000})
        assert time.monotonic() - started < 5.0  # the guard call never waits for SMTP
        time.sleep(0.5)  # the outbox is now stuck on the silent port
        started = time.monotonic()
        second = escalate(server, "process_refund", {"customer": "c_11", "amount": 5000})
        assert time.monotonic() - started < 5.0
        assert stored(server, esc)["status"] == "pending"
        wait_for(lambda: metric(server, failures) > 0, what="a failed delivery in /metrics")
        silent.close()
        smtp = start_smtp(mailbox, port=port)
        for esc_id in (esc, second):
            for address in ("carol@example.com", "ops@example.com"):
                mail_to(mailbox, esc_id, address)
        received = mail_to(mailbox, esc, "carol@example.com")
        assert post(links(received)["approve"]).status_code == 200
        assert stored(server, esc)["status"] == "approved"
        assert metric(server, 'staso_channel_notices_sent_total{channel="email",kind="post"}'
                      ) >= 4
        assert len(mailbox.matching(lambda r: r.message[ESCALATION_HEADER] == esc)) == 2
    finally:
        silent.close()
        stop(server)
        if smtp is not None:
            smtp.stop()


# -- found by an outside attack -------------------------------------------------------------
ENCODED_WORD = ("=?utf-8?q?=0D=0AMIME-Version:_1.0=0D=0AContent-Type:_text/html=0D=0A=0D=0A"
                "<h3>Refund_=2412_-_low</h3><a_href=3D//evil.example/a>Approve</a><!--?=")


def test_an_agent_cannot_write_the_mail_s_headers_or_body(mail: Setup) -> None:
    """An agent name holding an RFC 2047 encoded word of line breaks (decoded by Python's
    email package when set as a Subject, and written raw by some versions) neither ends
    the headers nor replaces the body."""
    r = mail.server.request("POST", "/v1/guard", json={
        "tool_name": "process_refund", "agent_name": ENCODED_WORD,
        "tool_input": {"amount": 5000, "nonce": uuid.uuid4().hex}})
    assert r.json()["action"] == "escalate", r.text
    esc = r.json()["escalation_id"]
    got = mail_to(mail.mailbox, esc, "carol@example.com")
    msg = got.message
    assert msg.get_content_type() == "multipart/alternative"
    assert msg["Reply-To"] is None and "\n" not in str(msg["Subject"]).strip()
    assert "=?utf-8?q?" not in str(msg["Subject"]) and "=\\u003futf-8" in str(msg["Subject"])
    assert set(links(got)) == {"approve", "deny"}  # staso's own body, links and all
    assert "evil.example" not in bodies(got)[1].split("</h2>")[0]


def test_a_message_refused_for_its_content_goes_again_without_the_arguments(mail: Setup
                                                                           ) -> None:
    mail.mailbox.refuse_content = {"EICAR-TEST-SIGNATURE"}
    try:
        esc = escalate(mail.server, "process_refund", {
            "amount": 9000, "note": "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-TEST-SIGNATURE"})
        got = mail_to(mail.mailbox, esc, "carol@example.com")
    finally:
        mail.mailbox.refuse_content = set()
    text = got.message.get_body(("plain",)).get_content()
    assert "EICAR" not in text and "leaves them out" in text
    assert f"/?escalation={esc}" in text


def test_a_refused_goodbye_after_the_message_sends_it_once(mail: Setup) -> None:
    mail.mailbox.goodbye = "421 4.3.2 closing now"
    try:
        esc = escalate(mail.server, "process_refund", {"amount": 9100})
        mail_to(mail.mailbox, esc, "carol@example.com")
        time.sleep(5)  # past the first retry's backoff (2 s): nothing more is sent
    finally:
        mail.mailbox.goodbye = "221 Bye"
    sent = mail.mailbox.matching(lambda r: r.message[ESCALATION_HEADER] == esc and
                                 "carol@example.com" in r.rcpt_tos)
    assert len(sent) == 1


def test_a_form_from_another_site_is_refused(mail: Setup) -> None:
    esc = escalate(mail.server, "process_refund", {"amount": 9200})
    url = links(mail_to(mail.mailbox, esc, "carol@example.com"))["approve"]
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "https://evil.example"}):
        r = post(url, headers=headers)
        assert r.status_code == 403 and "another site" in r.text, r.text
    assert stored(mail.server, esc)["status"] == "pending"
    same = post(url, headers={"Origin": mail.server.url, "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 200 and stored(mail.server, esc)["status"] == "approved"


def test_arguments_too_large_to_show_are_approved_only_in_the_dashboard(mail: Setup
                                                                        ) -> None:
    esc = escalate(mail.server, "process_refund", {"amount": 9300, "pad": "p" * 25_000,
                                                   "to_iban": "XX00ATTACKER0000"})
    urls = links(mail_to(mail.mailbox, esc, "carol@example.com"))
    page = httpx.get(urls["approve"])
    assert page.status_code == 200 and "Answer in the dashboard" in page.text
    assert 'id="answer"' not in page.text and "XX00ATTACKER0000" not in page.text
    r = post(urls["approve"])
    assert r.status_code == 409 and "approve in the dashboard" in r.text
    assert stored(mail.server, esc)["status"] == "pending"
    assert post(urls["deny"], comment="too big to review").status_code == 200
    assert stored(mail.server, esc)["status"] == "denied"


def test_a_mail_server_that_answers_a_byte_at_a_time_is_cut_off(monkeypatch: Any) -> None:
    """smtplib's timeout is per read: a server trickling its greeting would hold the
    delivery (and its lease) without end. The whole message has a deadline."""
    import socket as socketlib

    from staso.channels import email as email_channel

    listener = socketlib.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop_trickle = threading.Event()

    def trickle() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(b"220 mail.example ESMTP\r\n")
            while not stop_trickle.is_set():
                conn.recv(4096)  # the EHLO; then answer one byte every half second
                for byte in b"250-mail.example\r\n" * 1000:
                    if stop_trickle.wait(0.5):
                        return
                    conn.sendall(bytes([byte]))

    threading.Thread(target=trickle, daemon=True).start()
    monkeypatch.setattr(email_channel, "DEADLINE", 2.0)
    channel = EmailChannel.from_env({
        "STASO_SMTP_URL": f"smtp://127.0.0.1:{listener.getsockname()[1]}",
        "STASO_EMAIL_FROM": "staso@example.com"},
        ChannelContext(public_url="https://staso.example.com", store=None))  # type: ignore[arg-type]
    assert channel is not None
    started = time.monotonic()
    try:
        with pytest.raises(DeliveryError, match="could not be reached") as failed:
            channel.send(email_message.brief(Escalation(
                id="esc_1", status="pending", tool_name="t", tool_input={}, fingerprint="",
                expires_at=time.time() + 60), sender="staso@example.com",
                recipient="ops@example.com", domain="example.com", dashboard=None),
                "ops@example.com")
        assert failed.value.retry
        assert time.monotonic() - started < 30  # the trickle alone would take ~10 min
    finally:
        stop_trickle.set()
        listener.close()
