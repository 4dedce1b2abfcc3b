"""A tuple in a tool input is a JSON array (the size check and the log write it as one), so
every pack, redaction and the log's masking look inside it as they do inside a list; a key
that is not a string gets a clear error where the packs look at the input; a context
changed in place is judged again.

Found by an outside attack: a card number, ``rm -rf /`` or ``DROP TABLE`` inside a tuple
was allowed by every pack (the walks looked inside lists only), an int key crashed the
engine (a fail-closed "staso could not decide"), and a dict inside the context changed in
place between two calls kept the first call's value in CEL."""

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
