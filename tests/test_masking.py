"""Secrets in tool inputs never reach the decision log, the escalations or what approvers
see (policy ``redact_in_log``), while the tool itself still gets them."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

import staso as st
from conftest import logged, use_policy
from servers import Server
from staso.errors import PolicyError
from staso.masking import MASK, Masker, unmask
from tally import tally

SECRET, KEY = "hunter2-Zq81", "sk-live-4242abcd"
POLICY = """
version: 1
rules:
  - name: deploys_need_a_person
    tools: [deploy]
    action: escalate
    reason: deploys need a person
"""
CALL = {"host": "db-1", "password": SECRET, "auth": {"api_key": KEY, "user": "ops"},
        "steps": [{"session_token": KEY}], "max_tokens": 5}


def stored_bytes(home: Path) -> bytes:
    return b"".join(p.read_bytes() for p in home.glob("staso.db*"))


def test_secrets_are_masked_in_the_log_and_escalation_and_restored_for_the_tool(
        home: Path) -> None:
    use_policy(home, POLICY)
    allowed = st.guard("lookup", {"query": "x", "password": SECRET})
    assert allowed.action == "allow"
    first = st.guard("deploy", CALL)
    esc = st.get_escalation(first.escalation_id)
    assert esc.tool_input == {"host": "db-1", "password": MASK,
                              "auth": {"api_key": MASK, "user": "ops"},
                              "steps": [{"session_token": MASK}], "max_tokens": 5}
    # the approver edits the masked input they see; the tool still gets the real secrets
    edit = {**esc.tool_input, "host": "db-2"}
    threading.Timer(0.2, lambda: st.approve(esc.id, by="alice", modified_input=edit)).start()
    waited = st.guard("deploy", CALL, wait_for_escalation=True, escalation_timeout=10,
                      escalation_poll_interval=0.5)
    assert waited.action == "modify"
    assert waited.modified_input == {**CALL, "host": "db-2"}
    rows = logged()
    assert len(rows) == 3
    for row in rows:
        text = json.dumps(row, default=str)
        assert SECRET not in text and KEY not in text, row
    assert rows[-1]["tool_input"]["password"] == MASK
    st.get_client().flush()
    on_disk = stored_bytes(home)
    assert SECRET.encode() not in on_disk and KEY.encode() not in on_disk


def test_redact_in_log_patterns_replace_the_defaults(home: Path) -> None:
    use_policy(home, POLICY + "redact_in_log: [ssh_*, pin]\n")
    st.guard("lookup", {"ssh_key": "AAAA", "PIN": "1234", "password": "visible", "pin": 7})
    (row,) = logged()
    assert row["tool_input"] == {"ssh_key": MASK, "PIN": MASK, "password": "visible",
                                 "pin": MASK}  # a PIN given as a number is a secret too
    use_policy(home, POLICY + "redact_in_log: []\n")
    st.guard("lookup", {"password": "kept"})
    assert logged()[0]["tool_input"] == {"password": "kept"}


def test_a_bad_redact_in_log_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "staso.yaml"
    path.write_text("version: 1\nrules: []\nredact_in_log: 5\n")
    with pytest.raises(PolicyError) as err:
        st.init(home=tmp_path, policy=path)
    assert "redact_in_log" in str(err.value) and ":3" in str(err.value)


def test_unmask_only_puts_back_what_was_masked() -> None:
    masker = Masker(("token",))
    original = {"token": "t-1", "items": [{"token": "t-2"}, {"token": 3}], "note": MASK}
    masked = masker.mask(original)
    assert masked == {"token": MASK, "items": [{"token": MASK}, {"token": MASK}], "note": MASK}
    assert masker.mask({"other": "x"}) == {"other": "x"}
    edited = {**masked, "items": [{"token": MASK}, {"token": 4}], "extra": MASK}
    assert unmask(edited, original) == {"token": "t-1", "items": [{"token": "t-2"},
                                        {"token": 4}], "note": MASK, "extra": MASK}
    kept = {**masked, "items": [{"token": MASK}, {"token": MASK}]}
    assert unmask(kept, original)["items"] == [{"token": "t-2"}, {"token": 3}]


# every kind of JSON value a secret-named field can hold
NON_TEXT = {"api_key": ["sk-live-list-0001", "sk-live-list-0002"],
            "authorization": {"bearer": "eyJhbGciOiJIUzI1NiJ9.nested"},
            "password": 12345678, "pin": 4242.5, "session_id": True,
            "token": [{"inner": 90210}], "secret_answer": "", "client_secret": None,
            "amount": 12345678}


def test_every_value_under_a_secret_name_is_masked(home: Path) -> None:
    assert Masker().mask(NON_TEXT) == {
        "api_key": MASK, "authorization": MASK, "password": MASK, "pin": 4242.5,
        "session_id": MASK, "token": MASK, "secret_answer": "", "client_secret": None,
        "amount": 12345678}  # nothing to hide in null or ""; pin is not a default name
    use_policy(home, POLICY + "redact_in_log: [api_key, authorization, password, pin, "
                              "session_id, token]\n")
    first = st.guard("deploy", NON_TEXT)
    esc = st.get_escalation(first.escalation_id)
    shown = esc.tool_input
    assert all(shown[k] == MASK for k in ("api_key", "authorization", "password", "pin",
                                          "session_id", "token")), shown
    assert shown["amount"] == 12345678  # the same number under a plain name stays
    threading.Timer(0.2, lambda: st.approve(esc.id, by="alice",
                                            modified_input={**shown, "amount": 1})).start()
    waited = st.guard("deploy", NON_TEXT, wait_for_escalation=True, escalation_timeout=10,
                      escalation_poll_interval=0.5)
    assert waited.modified_input == {**NON_TEXT, "amount": 1}  # the tool gets them all back
    rows = logged()
    assert rows and all(row["tool_input"]["password"] == MASK for row in rows)
    on_disk = stored_bytes(home)
    for hidden in (b"sk-live-list-0001", b"eyJhbGciOiJIUzI1NiJ9", b"4242.5", b"90210"):
        assert hidden not in on_disk, hidden


def test_remote_secrets_never_reach_the_server_log_or_approvers(remote: Server) -> None:
    result = st.guard("process_refund", {"amount": 7777, "card_token": KEY,
                                         "password": SECRET})
    assert result.action == "escalate"
    listed = remote.request("GET", "/v1/escalations?tool=process_refund",
                            role="approver").json()
    mine = [e for e in listed if e["id"] == result.escalation_id]
    assert mine and mine[0]["tool_input"]["card_token"] == MASK
    assert SECRET not in json.dumps(listed) and KEY not in json.dumps(listed)
    if remote.database_url.startswith("sqlite"):
        assert SECRET.encode() not in stored_bytes(remote.home)
    tally(f"secrets in a tool input, remote ({remote.backend})", sent=1, escalations=1,
          secrets_shown=0, lost=0)


def test_a_name_value_pair_is_masked_by_its_name() -> None:
    # Kubernetes env, AWS tags: {"name": "DB_PASSWORD", "value": ...} holds the password as
    # plainly as {"DB_PASSWORD": ...}; the log must not show it
    masked = Masker().mask({"env": [{"name": "DB_PASSWORD", "value": "S3cretPass99"},
                                    {"name": "LOG_LEVEL", "value": "debug"}],
                            "Tags": [{"Key": "api_token", "Value": "tok_1"}]})
    assert masked == {"env": [{"name": "DB_PASSWORD", "value": MASK},
                              {"name": "LOG_LEVEL", "value": "debug"}],
                      "Tags": [{"Key": "api_token", "Value": MASK}]}
