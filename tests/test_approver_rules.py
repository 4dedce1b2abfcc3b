"""Who may approve: a rule's approvers (names, groups, Slack users, addresses), a quorum of
distinct approvers, and no approving one's own request. Each rule is tried embedded
(``st.approve``) and against a real ``staso serve`` (one key per person), on SQLite and on
PostgreSQL: the same refusals, the same records."""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import sides
import staso as st
from conftest import make_policy
from servers import cli, wait_for
from staso.approvers import AnswerRefused, NotAnApprover
from staso.client import Client
from staso.errors import EscalationConflict, PolicyError
from staso.models import Escalation, GuardResult
from staso.policy.loader import load_policy_text
from staso.store import open_store

POLICY = """version: 1
rules:
  - name: payments_team
    tools: [pay_invoice]
    action: escalate
    approvers: [carol, "group:payments", "slack:U0PAYLEAD", "email:lead@example.com"]
  - name: two_signatures
    tools: [wire_transfer]
    action: escalate
    approvers: ["group:treasury"]
    approvals_required: 2
  - name: not_your_own
    tools: [deploy]
    action: escalate
    forbid_self_approval: true
  - name: many_hands
    tools: [mass_payout]
    action: escalate
    approvers: ["group:crowd"]
    approvals_required: 3
"""


# -- the two ways of running staso, behind one face ------------------------------------------
@dataclass
class Person:
    """Someone who answers escalations: embedded, a name (with the groups of the local
    approver keys of that name); remote, their own approver key."""

    name: str
    client: Client
    key: str | None = None

    def approve(self, escalation_id: str, **extra: Any) -> Escalation:
        return self.client.approve(escalation_id, by=self.name, **extra)

    def deny(self, escalation_id: str, **extra: Any) -> Escalation:
        return self.client.deny(escalation_id, by=self.name, **extra)


class Side(sides.Side):
    """staso embedded or remote, on one database: guard calls, people, and what is stored.
    Embedded, the agent's client is ``st.init``'s (the tests answer with ``st.approve`` too,
    as an application would)."""

    def embedded_client(self, agent_name: str) -> Client:
        policy = self.home / "staso.yaml"
        return sides.on_database(st.init(agent_name=agent_name, home=self.home, policy=policy),
                                 self.database_url, policy, self.home)

    def close(self) -> None:
        if self.server is None:
            st.shutdown()
        super().close()

    def guard(self, tool: str, tool_input: dict[str, Any], **options: Any) -> GuardResult:
        return self.client().guard(tool, tool_input, **options)

    def person(self, name: str, groups: tuple[str, ...] = (), **links: Any) -> Person:
        client, key = self.answerer(name, groups, **links)
        return Person(name, client, key)

    def escalation(self, escalation_id: str) -> Escalation:
        return self.store.get_escalation(escalation_id)


side, remote_side, cli_side, sqlite_policy_server, postgres_policy_server = \
    sides.side_fixtures(Side, POLICY)


def _pending(result: GuardResult) -> str:
    assert result.action == "escalate" and result.escalation_id, result
    return result.escalation_id


# -- the policy's side: approvers are checked when the policy loads --------------------------
RULE = "version: 1\nrules:\n  - name: ok\n    tools: [t]\n    action: allow\n" \
       "  - name: r\n    tools: [t]\n    action: {action}\n{extra}"


@pytest.mark.parametrize(("extra", "line", "message"), [
    ("    approvers: alice\n", 9, "'approvers' must be a non-empty list"),
    ("    approvers: []\n", 9, "'approvers' must be a non-empty list"),
    ('    approvers: ["al ice"]\n', 9, "'al ice' is not a key name"),
    ('    approvers: ["team:ops"]\n', 9, "unknown kind 'team'"),
    ('    approvers: ["group:"]\n', 9, "'' is not a group name"),
    ('    approvers: ["slack:nobody"]\n', 9, "takes a Slack member id"),
    ('    approvers: ["email:not-an-address"]\n', 9, "takes one address"),
    ("    approvals_required: 0\n", 9, "from 1 to 20, not 0"),
    ("    approvals_required: 21\n", 9, "from 1 to 20, not 21"),
    ("    approvals_required: true\n", 9, "from 1 to 20, not True"),
    ('    approvals_required: "2"\n', 9, "from 1 to 20, not '2'"),
    ("    approvers: [ann, bob]\n    approvals_required: 3\n", 9,
     "'approvals_required' is 3 but 'approvers' names only 2 people"),
    ("    forbid_self_approval: maybe\n", 9, "'forbid_self_approval' must be true or false"),
])
def test_approver_terms_are_checked_at_load_with_file_and_line(extra: str, line: int,
                                                               message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        load_policy_text(RULE.format(action="escalate", extra=extra), "staso.yaml")
    assert str(caught.value).startswith(f"staso.yaml:{line}: rule 'r': "), caught.value
    assert message in str(caught.value)


@pytest.mark.parametrize("key", ["approvers: [ann]", "approvals_required: 2",
                                 "forbid_self_approval: true"])
@pytest.mark.parametrize("action", ["block", "allow", "modify"])
def test_only_an_escalating_rule_says_who_approves(key: str, action: str) -> None:
    text = RULE.format(action=action, extra=f"    {key}\n")
    if action == "modify":
        text = text.replace("action: modify\n", "action: modify\n    modify: {drop: [x]}\n")
    with pytest.raises(PolicyError) as caught:
        load_policy_text(text, "staso.yaml")
    assert re.match(r"staso\.yaml:\d+: rule 'r': ", str(caught.value)), caught.value
    assert f"'{key.split(':')[0]}' is about answering escalations; this rule's action is " \
           f"'{action}'" in str(caught.value)


def test_approver_terms_that_can_be_met_load() -> None:
    policy = load_policy_text(RULE.format(action="escalate", extra=(
        '    approvers: [ann, bob, "group:ops", " slack:U0ABC ", "email:Lead@Example.com"]\n'
        "    approvals_required: 3\n    forbid_self_approval: true\n")), "staso.yaml")
    rule = policy.rules[1]
    # a group may hold any number of people: three of them can be found
    assert rule.approvers == ("ann", "bob", "group:ops", "slack:U0ABC",
                              "email:lead@example.com")
    assert (rule.approvals_required, rule.forbid_self_approval) == (3, True)
    terms = policy.escalation_terms("r")
    assert terms["approvers"] == list(rule.approvers) and terms["approvals_required"] == 3
    assert load_policy_text(POLICY, "p.yaml").rules[0].approvals_required == 1


def test_policy_check_reports_a_bad_approver_on_its_line(tmp_path: Path) -> None:
    path = make_policy(tmp_path, RULE.format(action="escalate",
                                             extra='    approvers: ["group:a b"]\n'))
    checked = cli("policy", "check", str(path), check=False)
    assert checked.returncode == 1
    assert checked.stderr.strip() == (f"{path}:9: rule 'r': approvers: 'a b' is not a group "
                                      "name"), checked.stderr


# -- who may answer -------------------------------------------------------------------------
def test_only_the_rules_approvers_may_answer(side: Side) -> None:
    tag = sides.fresh_tag()
    esc_id = _pending(side.guard("pay_invoice", {"invoice": f"inv_{tag}"}))
    stranger = side.person(f"mallory{tag}")
    outsider = side.person(f"olga{tag}", groups=("marketing",))
    for who in (stranger, outsider):
        with pytest.raises(NotAnApprover, match=f"{who.name} may not answer escalation "
                                                f"{esc_id}: rule 'payments_team' is "
                                                "answered by carol, group:payments"):
            who.approve(esc_id)
        with pytest.raises(NotAnApprover):
            who.deny(esc_id, comment="no")
    esc = side.escalation(esc_id)
    assert (esc.status, esc.approvals, esc.resolved_by) == ("pending", [], None)
    assert esc.approvers == ["carol", "group:payments", "slack:U0PAYLEAD",
                             "email:lead@example.com"]
    # a member of the group is one of them
    member = side.person(f"dave{tag}", groups=("payments", "ops"))
    answered = member.approve(esc_id, comment="known supplier")
    assert (answered.status, answered.resolved_by) == ("approved", member.name)
    # and so is the person the rule names
    named = side.guard("pay_invoice", {"invoice": f"inv_{tag}_2"})
    assert side.person("carol").deny(_pending(named)).status == "denied"


def test_a_remote_approver_is_their_key_not_the_name_they_give(remote_side: Side) -> None:
    side, tag = remote_side, sides.fresh_tag()
    assert side.server is not None
    esc_id = _pending(side.guard("pay_invoice", {"invoice": f"inv_{tag}"}))
    stranger = side.person(f"mallory{tag}")
    # the key is mallory's: saying "carol" changes nothing
    r = side.server.request("POST", f"/v1/escalations/{esc_id}/approve", role=None,
                            headers={"Authorization": f"Bearer {stranger.key}"},
                            json={"by": "carol"})
    assert r.status_code == 403 and r.json()["error"] == "NotAnApprover", r.text
    assert f"mallory{tag} may not answer" in r.json()["detail"]
    # an admin key is not an approver of a rule that names its approvers either
    r = side.server.request("POST", f"/v1/escalations/{esc_id}/deny", role="admin", json={})
    assert r.status_code == 403 and "root may not answer" in r.json()["detail"]
    assert side.escalation(esc_id).status == "pending"


def test_slack_and_email_entries_admit_the_keys_linked_to_them(remote_side: Side) -> None:
    side, tag = remote_side, sides.fresh_tag()
    first = _pending(side.guard("pay_invoice", {"invoice": f"inv_{tag}_a"}))
    second = _pending(side.guard("pay_invoice", {"invoice": f"inv_{tag}_b"}))
    unlinked = side.person(f"erin{tag}", slack_user="U0SOMEONE")
    with pytest.raises(NotAnApprover):
        unlinked.approve(first)
    lead = side.person(f"erin{tag}b", slack_user="U0PAYLEAD")
    assert lead.approve(first).status == "approved"
    by_mail = side.person(f"frank{tag}", email="Lead@example.com")
    esc = by_mail.approve(second)
    assert (esc.status, esc.resolved_by, esc.resolved_via) == ("approved", f"frank{tag}",
                                                               "api")


def test_no_one_approves_their_own_request(side: Side) -> None:
    tag = sides.fresh_tag()
    asker = side.person(f"alice{tag}")
    other = side.person(f"bob{tag}")
    mine = _pending(side.guard("deploy", {"service": f"api-{tag}"},
                               context={"requested_by": asker.name}))
    stored = side.escalation(mine)
    assert (stored.requested_by, stored.forbid_self_approval) == (asker.name, True)
    with pytest.raises(NotAnApprover, match=f"{asker.name} asked for this call "
                                            r"\(context.requested_by\)"):
        asker.approve(mine)
    assert side.escalation(mine).status == "pending"
    assert other.approve(mine).status == "approved"
    # refusing one's own request stays possible: only approving it is someone else's job
    again = _pending(side.guard("deploy", {"service": f"web-{tag}"},
                                context={"requested_by": asker.name}))
    denied = asker.deny(again, comment="changed my mind")
    assert (denied.status, denied.resolved_by) == ("denied", asker.name)


def test_approving_someone_elses_request_gives_the_approver_nothing(side: Side) -> None:
    """Bob approves alice's request; his own identical call must not take that approval
    (it would be his own request, approved by himself): who asked is part of the call."""
    tag = sides.fresh_tag()
    alice, bob = side.person(f"alice{tag}"), side.person(f"bob{tag}")
    call = ("deploy", {"service": f"billing-{tag}"})
    hers = _pending(side.guard(*call, context={"requested_by": alice.name}))
    his = _pending(side.guard(*call, context={"requested_by": bob.name}))
    assert hers != his  # two requests, two escalations
    assert bob.approve(hers).status == "approved"
    retried = side.guard(*call, context={"requested_by": bob.name})
    assert (retried.action, retried.escalation_id) == ("escalate", his)
    with pytest.raises(NotAnApprover):
        bob.approve(his)
    assert side.guard(*call, context={"requested_by": alice.name}).action == "allow"


# -- a quorum of distinct approvers -----------------------------------------------------------
def test_two_signatures_wake_the_waiting_agent_only_at_the_second(side: Side) -> None:
    tag = sides.fresh_tag()
    first, second = (side.person(f"{n}{tag}", groups=("treasury",)) for n in ("tina", "tom"))
    outcome: dict[str, GuardResult] = {}
    waiting = threading.Thread(target=lambda: outcome.setdefault("result", side.guard(
        "wire_transfer", {"amount": 90_000, "ref": tag}, wait_for_escalation=True,
        escalation_timeout=120, escalation_poll_interval=0.2)))
    waiting.start()
    try:
        esc = wait_for(lambda: next((e for e in side.store.list_escalations(status="pending")
                                     if e.tool_input.get("ref") == tag), None),
                       "the waiting call's escalation")
        # one of several may not edit the call or approve its kind ahead
        with pytest.raises(AnswerRefused, match="needs 2 approvers"):
            first.approve(esc.id, modified_input={"amount": 1, "ref": tag})
        with pytest.raises(AnswerRefused, match="needs 2 approvers"):
            first.approve(esc.id, grant={"ttl": "1h"})
        assert side.escalation(esc.id).approvals == []
        half = first.approve(esc.id, comment="checked the invoice")
        assert (half.status, half.approvals_required) == ("pending", 2)
        assert [(a["name"], a["comment"]) for a in half.approvals] == [
            (first.name, "checked the invoice")]
        with pytest.raises(EscalationConflict, match=f"{first.name} has already approved"):
            first.approve(esc.id)
        waiting.join(timeout=1.0)  # an approval of two must not release the call
        assert waiting.is_alive() and "result" not in outcome
        stored = side.escalation(esc.id)
        assert (stored.status, len(stored.approvals)) == ("pending", 1)
        done = second.approve(esc.id)
        assert (done.status, done.resolved_by) == ("approved", second.name)
        assert [a["name"] for a in done.approvals] == [first.name, second.name]
    finally:
        waiting.join(timeout=60)
    result = outcome["result"]
    assert (result.action, result.escalation_id) == ("allow", esc.id)
    via = "python" if side.server is None else "api"
    assert [(a["by"], a["via"], a["answer"]) for a in result.answers or ()] == [
        (first.name, via, "approved"), (second.name, via, "approved")]
    row = side.decision(result.decision_id, lambda r: bool(r.get("answers")))
    assert row["action"] == "allow" and row["rule_name"] == "two_signatures"
    assert row["escalation_id"] == esc.id
    assert [(a["by"], a["via"]) for a in row["answers"]] == [(first.name, via),
                                                            (second.name, via)]
    assert row["policy_digest"] == stored.policy_digest and len(row["policy_digest"]) == 16
    if side.server is not None:  # a server numbers its policy versions
        version = side.server.request("GET", "/v1/policy").json()["version"]
        assert row["policy_version"] == version == stored.policy_version


def test_one_deny_denies_even_after_an_approval(side: Side) -> None:
    tag = sides.fresh_tag()
    first, second = (side.person(f"{n}{tag}", groups=("treasury",)) for n in ("uma", "ulf"))
    esc_id = _pending(side.guard("wire_transfer", {"amount": 70_000, "ref": tag}))
    assert first.approve(esc_id).status == "pending"
    denied = second.deny(esc_id, comment="wrong account")
    assert (denied.status, denied.resolved_by, denied.comment) == ("denied", second.name,
                                                                   "wrong account")
    assert [a["name"] for a in denied.approvals] == [first.name]
    with pytest.raises(EscalationConflict, match=f"already denied by {second.name}"):
        side.person(f"una{tag}", groups=("treasury",)).approve(esc_id)
    retried = side.guard("wire_transfer", {"amount": 70_000, "ref": tag})
    assert retried.action == "block" and "wrong account" in retried.reason


def test_fifty_approvers_at_once_make_exactly_one_resolution(side: Side) -> None:
    """50 distinct approvers answer one escalation that needs 3, all at once: exactly 3
    approvals are counted, one of them resolves it, and every other gets a conflict."""
    tag, needed = sides.fresh_tag(), 3
    people = [side.person(f"crowd{tag}-{i:02d}", groups=("crowd",)) for i in range(50)]
    esc_id = _pending(side.guard("mass_payout", {"batch": tag}))
    start = threading.Barrier(len(people))
    answers: list[Any] = [None] * len(people)

    def answer(i: int) -> None:
        start.wait()
        try:
            if side.server is None:  # embedded: st.approve from 50 threads
                answers[i] = st.approve(esc_id, by=people[i].name).status
            else:  # each person's own key, over HTTP
                r = httpx.post(f"{side.server.url}/v1/escalations/{esc_id}/approve",
                               headers={"Authorization": f"Bearer {people[i].key}"},
                               json={}, timeout=120)
                answers[i] = r.status_code if r.status_code != 200 else r.json()["status"]
        except EscalationConflict as exc:
            answers[i] = f"conflict:{exc.status}"
        except Exception as exc:  # counted, so the assertion below names it
            answers[i] = repr(exc)

    threads = [threading.Thread(target=answer, args=(i,)) for i in range(len(people))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    conflict = "conflict:approved" if side.server is None else 409
    counted = Counter(answers)
    assert counted == {"approved": 1, "pending": needed - 1,
                       conflict: len(people) - needed}, counted
    esc = side.escalation(esc_id)
    names = [a["name"] for a in esc.approvals]
    assert esc.status == "approved" and len(names) == needed == len(set(names))
    assert esc.resolved_by == names[-1]
    assert set(names) <= {p.name for p in people}


# -- the command line ------------------------------------------------------------------------
def test_cli_answers_and_refusals_are_one_line_each(cli_side: Side) -> None:
    side, tag = cli_side, sides.fresh_tag()
    tina, tom = (side.person(f"{n}{tag}", groups=("treasury",)) for n in ("tina", "tom"))
    mallory = side.person(f"mallory{tag}")
    esc_id = _pending(side.guard("wire_transfer", {"amount": 80_000, "ref": tag},
                                 context={"requested_by": f"ivan{tag}"}))

    def approve(who: Person, *extra: str) -> Any:
        return cli("escalations", "approve", esc_id, "--by", who.name, *extra,
                   env=side.cli_env(who.key), check=False)

    refused = approve(mallory)
    assert refused.returncode == 1 and refused.stdout == ""
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert f"mallory{tag} may not answer escalation {esc_id}" in refused.stderr
    edit = approve(tina, "--grant-ttl", "1h")
    assert edit.returncode == 1 and len(edit.stderr.strip().splitlines()) == 1
    assert "needs 2 approvers" in edit.stderr
    half = approve(tina, "--comment", "ok by me")
    assert half.returncode == 0, half.stderr
    assert half.stdout.strip() == f"{esc_id} pending: 1 of 2 approvals ({tina.name})"
    twice = approve(tina)
    assert twice.returncode == 1 and len(twice.stderr.strip().splitlines()) == 1
    assert f"{tina.name} has already approved escalation {esc_id}" in twice.stderr

    shown = cli("escalations", "show", esc_id, env=side.cli_env(tina.key)).stdout
    assert "approvers: group:treasury" in shown
    assert re.search(rf"approvals: 1 of 2 \({tina.name} via cli, \d+[smh] ago\)", shown), shown
    assert f"requested_by: ivan{tag}" in shown
    if side.server is None:
        assert re.search(r"policy: digest [0-9a-f]{16}", shown), shown
    else:
        assert re.search(r"policy: version \d+, digest [0-9a-f]{16}", shown), shown

    done = approve(tom)
    assert done.returncode == 0 and done.stdout.strip() == f"{esc_id} approved by {tom.name}"
    esc = side.escalation(esc_id)
    assert [(a["name"], a["via"]) for a in esc.approvals] == [(tina.name, "cli"),
                                                            (tom.name, "cli")]
    late = approve(side.person(f"tara{tag}", groups=("treasury",)))
    assert late.returncode == 1 and "already approved" in late.stderr


def test_cli_keys_carry_groups(database_url: str, tmp_path: Path) -> None:
    """``staso keys create --group``, ``keys groups --set`` and ``keys list``, on the
    database a server would use; a key's groups decide what its person may approve."""
    env = {"STASO_DATABASE_URL": database_url, "STASO_HOME": str(tmp_path), "COLUMNS": "200"}
    made = cli("keys", "create", "--role", "approver", "--name", "gina", "--group",
               "payments", "--group", "ops,audit", env=env)
    assert "in group(s) payments, ops, audit" in made.stderr
    key_id = re.search(r"key (key_[0-9a-f]+)", made.stderr).group(1)  # type: ignore[union-attr]
    listed = cli("keys", "list", env=env).stdout
    assert "groups" in listed and "payments, ops, audit" in listed
    wrong = cli("keys", "create", "--role", "agent", "--name", "bot", "--group", "x",
                env=env, check=False)
    assert wrong.returncode == 1
    assert "only approver and admin keys belong to approver groups" in wrong.stderr
    bad = cli("keys", "create", "--role", "approver", "--name", "h", "--group", "a b",
              env=env, check=False)
    assert bad.returncode == 1 and "not 'a b'" in bad.stderr
    cli("keys", "groups", key_id, "--set", "treasury", env=env)
    store = open_store(database_url)
    try:
        assert store.approver_named("gina") == ("treasury",)
    finally:
        store.close()
    missing = cli("keys", "groups", "key_nope", "--set", "a", env=env, check=False)
    assert missing.returncode == 1 and "no live approver or admin key" in missing.stderr
    cli("keys", "groups", key_id, "--set", "", env=env)
    assert "treasury" not in cli("keys", "list", env=env).stdout


def test_a_key_given_a_group_may_answer_at_once_remote(remote_side: Side) -> None:
    """A group given to a live key with ``staso keys groups`` reaches the server (within
    its key cache's refresh)."""
    side, tag = remote_side, sides.fresh_tag()
    assert side.server is not None
    esc_id = _pending(side.guard("pay_invoice", {"invoice": f"inv_{tag}"}))
    hana = side.person(f"hana{tag}")
    with pytest.raises(NotAnApprover):
        hana.approve(esc_id)
    key_id = next(r.id for r, _ in side.store.list_keys() if r.name == hana.name)
    cli("keys", "groups", key_id, "--set", "payments", env=side.server.env)

    def approved() -> Escalation | None:
        try:
            return hana.approve(esc_id)
        except NotAnApprover:
            return None
    assert wait_for(approved, "the new group to reach the server").status == "approved"
