"""Redaction works on locations, not on dotted path strings: a value is redacted whatever its
key is called; a finding is never dropped to allow; strings that hold JSON are judged and
redacted inside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import staso as st
from staso.jsonutil import (
    JSON_DECODE_FACTOR,
    MAX_JSON_LAYERS,
    NOT_JSON,
    DecodeBudget,
    decode_embedded_json,
    format_location,
    inspected_texts,
    locate,
    parse_field,
)
from staso.plugins import make_plugin_manager
from staso.policy.discovery import collect_functions, load_any_policy
from staso.policy.engine import Engine
from staso.policy.model import ModifySpec, Policy, Rule

SSN, CARD = "123-45-6789", "4111 1111 1111 1111"


def engine(policy: Any = None) -> Engine:
    pm = make_plugin_manager()
    return Engine(load_any_policy(policy, pm), collect_functions(pm))


def in_clear(value: Any) -> bool:
    text = json.dumps(value, ensure_ascii=False)
    return "6789" in text or "1111" in text


@pytest.mark.parametrize("key", ["customer.ssn", "billing.card", "x[0]", "", "a]b[", "$",
                                 "it's", "naïve ключ 日本", "k" * 10_000, " ", "a\nb"])
@pytest.mark.parametrize("fail_closed", [True, False])
def test_any_key_is_redacted(key: str, fail_closed: bool, tmp_path: Path) -> None:
    st.init(agent_name="a", home=tmp_path, fail_closed=fail_closed)
    try:
        for tool_input in ({key: f"ssn {SSN}"}, {"outer": {key: [{key: CARD}]}}):
            result = st.guard("send_email", tool_input)
            assert result.action == "modify", result
            assert result.modified_input is not None and not in_clear(result.modified_input)
            assert "[REDACTED:" in json.dumps(result.modified_input)
            (change,) = result.modifications
            assert locate(result.modified_input, change["field"]) is not None
            assert in_clear(tool_input)  # the caller's input is untouched
    finally:
        st.shutdown()


def test_field_names_stay_readable() -> None:
    guard = engine()
    result = guard.evaluate("send_email", {"customer": {"ssn": SSN}, "items": [{"card": CARD}],
                                           "customer.ssn": SSN, "": SSN})
    assert sorted(m["field"] for m in result.modifications) == [
        "$['']", "$['customer.ssn']", "customer.ssn", "items[0].card"]
    assert result.modified_input == {
        "customer": {"ssn": "[REDACTED:ssn]"}, "items": [{"card": "[REDACTED:credit_card]"}],
        "customer.ssn": "[REDACTED:ssn]", "": "[REDACTED:ssn]"}


@pytest.mark.parametrize("location", [
    (), ("a",), ("a", "b", 0), ("a.b",), ("",), ("x[0]",), ("it's", 3), ("back\\slash",),
    ("$",), ("a b", "c"), (0,), ("naïve",)])
def test_printed_fields_read_back(location: tuple[str | int, ...]) -> None:
    assert parse_field(format_location(location)) == location


def test_integers_holding_card_numbers_are_redacted() -> None:
    result = engine().evaluate("charge", {"card": 4111111111111111, "amount": 50,
                                          "cards": [5555555555554444, 42]})
    assert result.action == "modify"
    assert result.modified_input == {"card": "[REDACTED:credit_card]", "amount": 50,
                                     "cards": ["[REDACTED:credit_card]", 42]}
    # an integer that is no card number (Luhn fails) stays an integer
    assert engine().evaluate("charge", {"order": 4111111111111112}).action == "allow"


def test_strings_holding_json_are_judged_inside() -> None:
    guard = engine()
    sql = json.dumps({"query": "DROP TABLE users"})
    assert guard.evaluate("run", {"payload": sql}).action == "block"
    twice = json.dumps({"payload": json.dumps(["x", {"q": "DROP TABLE users"}])})
    assert guard.evaluate("run", {"body": twice}).action == "block"
    assert guard.evaluate("run", {"s": json.dumps("DROP TABLE users")}).action == "block"
    # ... and only there: the same words as data in a JSON string are no statement
    assert guard.evaluate("run", {"payload": json.dumps({"note": "hello"})}).action == "allow"


def test_pii_inside_a_json_string_is_redacted_and_re_encoded() -> None:
    inner = {"customer": {"ssn": SSN}, "cards": [4111111111111111], "n": 1}
    result = engine().evaluate("send", {"payload": json.dumps(inner),
                                        "escaped": json.dumps({"s": SSN}, ensure_ascii=True)
                                        .replace("1", "\\u0031")})
    assert result.action == "modify" and result.modified_input is not None
    assert json.loads(result.modified_input["payload"]) == {
        "customer": {"ssn": "[REDACTED:ssn]"}, "cards": ["[REDACTED:credit_card]"], "n": 1}
    assert json.loads(result.modified_input["escaped"]) == {"s": "[REDACTED:ssn]"}
    assert {m["field"] for m in result.modifications} == {"payload", "escaped"}


def test_padding_cannot_spend_the_decoding_budget() -> None:
    padding = [json.dumps([json.dumps([json.dumps(["x" * 50])])])] * 200
    tool_input = {"pad": padding, "payload": json.dumps({"query": "DROP TABLE users"})}
    assert "DROP TABLE users" in inspected_texts(tool_input)
    assert engine().evaluate("run", tool_input).action == "block"


def test_decoding_is_bounded() -> None:
    deep = "DROP TABLE users"
    for _ in range(MAX_JSON_LAYERS + 2):
        deep = json.dumps([deep])
    texts = inspected_texts({"x": deep})
    assert len(texts) == MAX_JSON_LAYERS + 1  # the raw string and the decoded layers, no more
    assert "DROP TABLE users" not in texts
    assert texts.too_deep  # ... and it says so
    budget = DecodeBudget({"x": "[1]" * 4})  # 12 characters: 12 x JSON_DECODE_FACTOR
    assert budget.left == 12 * JSON_DECODE_FACTOR
    budget.left = 90
    long = '["' + "1," * 30 + '1"]'  # 65 characters
    assert decode_embedded_json(long, budget) == ["1," * 30 + "1"]
    assert decode_embedded_json(' \n {"a": [2]}', budget) == {"a": [2]}
    assert budget.left == 90 - 65 - 13
    assert decode_embedded_json(long, budget) is NOT_JSON  # over the budget: not decoded
    assert decode_embedded_json('["1"]', budget) == ["1"]
    assert decode_embedded_json("[1]", budget) is NOT_JSON  # no string inside: as it is
    assert decode_embedded_json("hello {}", DecodeBudget({"x": "y" * 99})) is NOT_JSON
    assert decode_embedded_json("{broken", DecodeBudget({"x": "y" * 99})) is NOT_JSON


@pytest.mark.parametrize("payload", ["DROP TABLE users", "hello"])
def test_json_nested_too_deep_to_inspect_is_blocked_not_let_through(payload: str) -> None:
    """Wrapping a payload in more layers of JSON than are decoded never gets it through:
    what cannot be inspected counts as a finding (the benign one too: nobody sends that)."""
    for layers in range(1, MAX_JSON_LAYERS + 4):
        payload = json.dumps({"q": payload})
        result = engine().evaluate("send", {"payload": payload})
        deep = layers > MAX_JSON_LAYERS
        assert result.action == ("block" if deep or "DROP" in payload else "allow"), layers
        notes = " ".join(r.reason for r in result.results)
        assert ("too deep to inspect" in notes) == deep, layers


def test_a_finding_that_cannot_be_redacted_blocks() -> None:
    """A pack's detector fired but redaction could not mask it: the call is blocked."""
    rule = Rule(name="keys_in_clear", action="modify", severity="medium",
                reason="Secret found", detect=lambda text: "hunter2" in text,
                modify=ModifySpec(redact=True), pack="test/secrets")
    guard = Engine(Policy(rules=[rule]), {})
    result = guard.evaluate("send", {"a.b": {"": "password hunter2"}})
    assert result.action == "block" and result.rule_name == "keys_in_clear"
    assert "could not be redacted" in result.reason
    assert guard.evaluate("send", {"a.b": "nothing"}).action == "allow"


def test_explicit_redact_fields_keep_working() -> None:
    guard = engine("""
version: 1
rules:
  - name: redact_mail
    tools: [send_email]
    action: modify
    modify: {redact: {fields: [body, customer.email, "items[0]", "odd.key"],
                      detectors: [ssn, email]}}
""")
    tool_input = {"body": f"ssn {SSN}", "subject": f"ssn {SSN}",
                  "customer": {"email": "a@example.com", "ssn": SSN},
                  "items": [f"ssn {SSN}", f"ssn {SSN}"], "odd.key": SSN}
    result = guard.evaluate("send_email", tool_input)
    assert result.action == "modify" and result.modified_input is not None
    out = result.modified_input
    assert out["body"] == "ssn [REDACTED:ssn]" and out["subject"] == tool_input["subject"]
    assert out["customer"] == {"email": "[REDACTED:email]", "ssn": SSN}
    assert out["items"] == ["ssn [REDACTED:ssn]", f"ssn {SSN}"]
    assert out["odd.key"] == "[REDACTED:ssn]"
    assert [m["field"] for m in result.modifications] == [
        "body", "customer.email", "items[0]", "$['odd.key']"]


def test_cap_set_drop_take_any_key_without_crashing() -> None:
    guard = engine("""
version: 1
rules:
  - name: tidy
    action: modify
    modify: {cap: {amount: 100, "": 1}, set: {currency: USD}, drop: ["x.y"]}
""")
    result = guard.evaluate("pay", {"amount": 500, "": 7, "x.y": 1, "x": {"y": 2}})
    assert result.action == "modify"
    assert result.modified_input == {"amount": 100, "": 1, "currency": "USD", "x": {"y": 2}}


KEYED_SECRETS = [
    ({"password": "hunter2hunter2"}, ("password",)),
    ({"api_key": "AbC123dEf456GhI789"}, ("api_key",)),
    ({"aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
     ("aws_secret_access_key",)),
    ({"env": {"DB_PASSWORD": "abc123xyz"}}, ("env", "DB_PASSWORD")),
    ({"headers": {"x-api-key": "0123456789abcdef"}}, ("headers", "x-api-key")),
    ({"apiKey": "letmein99"}, ("apiKey",)),
    ({"PGPASSWORD": "abc123xyz"}, ("PGPASSWORD",)),
    ({"cookie": "sessionid=abc123def456"}, ("cookie",)),
    ({"ssn": 123456789}, ("ssn",)),
    ({"customer": {"SSN": "123456789"}}, ("customer", "SSN")),
    ({"social_security_number": "123 45 6789"}, ("social_security_number",)),
]


@pytest.mark.parametrize(("tool_input", "where"), KEYED_SECRETS)
def test_values_are_judged_with_their_key(tool_input: dict[str, Any],
                                          where: tuple[str, ...]) -> None:
    """The same secret written ``password=...`` in text is caught; in structured input the key
    says what the value is. Redaction masks the value; nothing of it stays."""
    result = engine().evaluate("send_email", tool_input)
    assert result.action == "modify", result
    node: Any = result.modified_input
    for part in where:
        node = node[part]
    assert isinstance(node, str) and node.startswith("[REDACTED:"), node
    assert [m["field"] for m in result.modifications] == [format_location(where)]


@pytest.mark.parametrize("tool_input", [
    {"password_hash": "bcrypt12rounds"}, {"secret_arn": "arn:aws:secretsmanager:x"},
    {"max_tokens": "1000"}, {"token_type": "bearer"}, {"passenger": "Alice Smith"},
    {"password": "required"}, {"password": "********"}, {"token": "YOUR_TOKEN"},
    {"api_key": "${API_KEY}"}, {"ssn_verified": "123456789"}, {"note": "123456789"},
    {"keyboard": "qwerty12345"}, {"compass": "north123"}, {"password": True},
])
def test_key_near_misses_are_left_alone(tool_input: dict[str, Any]) -> None:
    assert engine().evaluate("send_email", tool_input).action == "allow"


@pytest.mark.parametrize("tool_input", [
    {"4111111111111111": "x"}, {"files": {"ssn 123-45-6789": "x"}},
    {"sk-abcdefghijklmnopqrstuvwxyz0123": 1},
])
def test_pii_in_a_key_blocks(tool_input: dict[str, Any]) -> None:
    """A key cannot be masked in place without changing the call's shape: blocked."""
    assert engine().evaluate("send_email", tool_input).action == "block"


def test_plain_keys_are_not_texts() -> None:
    texts = inspected_texts({"customer_id": "c_17", "amount": 50, "x-api-key": "k"})
    assert sorted(texts) == ["c_17", "k"]
    assert "4111111111111111" in inspected_texts({"4111111111111111": "x"})


PEM_LINES = ["-----BEGIN RSA PRIVATE KEY-----",
             "MIIEpAIBAAKCAQEA1c7+9z5Pad7OejecsQ0bu3aozN3tihPmljnnudb9G3HECdnH",
             "lWu2/a1gB9JW5TBQ+AVpum9Okx7KfqkfBKL9mcHgSVwYBDS/VTGGUC+8wpNH4Ukq",
             "-----END RSA PRIVATE KEY-----"]


@pytest.mark.parametrize("tool_input", [
    {"lines": [*PEM_LINES, "after"]},
    {"a": PEM_LINES[0], "b": PEM_LINES[1], "c": PEM_LINES[2], "d": PEM_LINES[3], "e": "after"},
])
def test_a_private_key_split_across_values_is_masked_whole(tool_input: dict[str, Any]) -> None:
    result = engine().evaluate("send_email", tool_input)
    assert result.action == "modify" and result.modified_input is not None
    text = json.dumps(result.modified_input)
    assert "MIIE" not in text and "lWu2" not in text and "after" in text, text


def test_lines_beside_a_whole_private_key_stay() -> None:
    tool_input = {"lines": ["\n".join(PEM_LINES), "MIIE is a prefix people grep for"]}
    result = engine().evaluate("send_email", tool_input)
    assert result.modified_input is not None
    assert result.modified_input["lines"][1] == tool_input["lines"][1]
