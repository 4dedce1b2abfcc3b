"""A tuple in a tool input is a JSON array (the size check and the log write it as one), so
every pack, redaction and the log's masking look inside it as they do inside a list; a key
that is not a string gets a clear error where the packs look at the input; a context
changed in place is judged again; ``st.conversation``'s keys are checked as ``context=`` is.

Found by outside attacks: a card number, ``rm -rf /`` or ``DROP TABLE`` inside a tuple
was allowed by every pack (the walks looked inside lists only), an int key crashed the
engine (a fail-closed "staso could not decide"), a dict inside the context changed in
place between two calls kept the first call's value in CEL, a conversation's keys were
never checked (a list 200,000 levels deep crashed the process), and a card number in an
IntEnum was not looked at."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import staso as st
from conftest import logged, use_policy

PACKS = """version: 1
rules:
  - use: builtin/dangerous_shell
  - use: builtin/destructive_sql
  - use: builtin/protected_paths
  - use: builtin/pii
"""


@pytest.mark.parametrize(("tool_input", "action", "rule"), [
    ({"cmd": ("rm", "-rf", "/")}, "block", "builtin/dangerous_shell"),
    ({"sql": ("DROP TABLE users",)}, "block", "builtin/destructive_sql"),
    ({"path": ("/etc/shadow",)}, "block", "builtin/protected_paths"),
    ({"a": ("4111 1111 1111 1111",)}, "modify", "builtin/pii"),
    ({"a": {"b": (("bob@example.com",),)}}, "modify", "builtin/pii"),
])
def test_every_pack_looks_inside_tuples(home: Path, tool_input: dict[str, Any], action: str,
                                        rule: str) -> None:
    use_policy(home, PACKS)
    result = st.guard("tool", tool_input)
    assert (result.action, result.rule_name) == (action, rule)


def test_a_finding_inside_a_tuple_is_redacted_and_the_input_left_alone(home: Path) -> None:
    use_policy(home, PACKS)
    tool_input = {"a": ("SSN 078-05-1120", "DE89 3704 0044 0532 0130 00"), "n": (1, 2)}
    result = st.guard("tool", tool_input)
    assert result.action == "modify"
    assert result.modified_input == {"a": ["SSN [REDACTED:ssn]", "[REDACTED:iban]"],
                                     "n": [1, 2]}
    assert tool_input["a"] == ("SSN 078-05-1120", "DE89 3704 0044 0532 0130 00")
    assert "078-05-1120" not in str(logged()[0]["modified_input"])


def test_secrets_inside_a_tuple_are_masked_in_the_log(home: Path) -> None:
    st.guard("lookup", {"accounts": ({"user": "ann", "password": "hunter2hunter2"},)})
    row = logged("lookup")[0]
    assert row["tool_input"] == {"accounts": [{"user": "ann", "password": "[MASKED]"}]}


@pytest.mark.parametrize("tool_input", [{1: "hello"}, {"a": {None: "x"}}, {"a": [{2.5: 1}]}])
def test_a_key_that_is_not_a_string_is_refused_clearly(home: Path,
                                                       tool_input: dict[Any, Any]) -> None:
    use_policy(home, PACKS)
    with pytest.raises(st.InvalidToolInput, match="keys must be str"):
        st.guard("tool", tool_input)


def test_a_context_changed_in_place_is_judged_again(home: Path) -> None:
    use_policy(home, """version: 1
rules:
  - name: no_guests
    when: context.meta.role == "guest"
    action: block
""")
    context = {"meta": {"role": "admin"}}
    assert st.guard("deploy", {"v": 1}, context=context).action == "allow"
    context["meta"]["role"] = "guest"  # the same inner dict, changed
    assert st.guard("deploy", {"v": 1}, context=context).action == "block"
    assert st.guard("deploy", {"v": 1}, context={"meta": {"role": "guest"}}).action == "block"
    context["meta"]["role"] = "admin"
    assert st.guard("deploy", {"v": 1}, context=context).action == "allow"


NO_GUESTS = """version: 1
rules:
  - name: no_guests
    when: context.role == "guest"
    action: block
"""


@pytest.mark.parametrize("value", [bytearray(b"guest"), {"guest"}, {"meta": {1: "x"}}])
def test_a_conversation_s_keys_are_checked_as_context_is(home: Path, value: Any) -> None:
    # (they skipped the check: a bytearray changed in place kept its first value in CEL, a
    # set's record went to the dead-letter file, and a list 200,000 levels deep crashed
    # the process in the CEL binding)
    use_policy(home, NO_GUESTS)
    with st.conversation("c-1", role=value), pytest.raises(st.InvalidToolInput,
                                                            match="conversation context"):
        st.guard("deploy", {"v": 1})


def test_a_deep_conversation_value_is_refused_not_a_crash(home: Path) -> None:
    use_policy(home, NO_GUESTS)
    deep: Any = "x"
    for _ in range(200_000):
        deep = [deep]
    with st.conversation("c-1", deep=deep), pytest.raises(st.InvalidToolInput,
                                                           match="nested deeper than 500"):
        st.guard("deploy", {"v": 1})


def test_a_context_as_deep_as_allowed_is_judged_on_every_call(tmp_path: Path) -> None:
    # comparing it with the last call's took two frames a level and ran out of stack: the
    # second call "could not decide", and with fail_closed=False the guest was let through
    st.init(agent_name="a", home=tmp_path, policy=NO_GUESTS, fail_closed=False)
    try:
        deep: Any = "x"
        for _ in range(499):
            deep = [deep]
        for _ in range(3):
            result = st.guard("deploy", {"v": 1}, context={"role": "guest", "deep": deep})
            assert (result.action, result.rule_name) == ("block", "no_guests")
    finally:
        st.shutdown()


def test_a_card_number_in_an_int_subclass_is_found(home: Path) -> None:
    import enum

    class Card(enum.IntEnum):
        TEST = 4111111111111111

    use_policy(home, PACKS)
    result = st.guard("pay", {"n": Card.TEST, "m": (Card.TEST,)})
    assert result.action == "modify"
    assert result.modified_input == {"n": "[REDACTED:credit_card]",
                                     "m": ["[REDACTED:credit_card]"]}
