"""Tool inputs that carry a command as a list of words (argv) are judged as the line a shell
or a database would read; lists that are data are not joined."""

from __future__ import annotations

from pathlib import Path

import pytest

import staso as st
from staso.jsonutil import command_line, inspected_texts


@pytest.fixture
def client(tmp_path: Path) -> st.Client:
    return st.init(agent_name="argv", home=tmp_path)


@pytest.mark.parametrize(("tool_input", "rule"), [
    ({"cmd": ["rm", "-rf", "/"]}, "builtin/dangerous_shell"),
    ({"argv": ["sudo", "-u", "root", "rm", "-rf", "/"]}, "builtin/dangerous_shell"),
    ({"sql": ["DROP", "TABLE", "users"]}, "builtin/destructive_sql"),
    ({"cmd": ["psql", "-c", "DROP TABLE users"]}, "builtin/dangerous_shell"),
])
def test_a_command_split_into_words_is_judged_whole(client: st.Client, tool_input: dict,
                                                   rule: str) -> None:
    result = client.guard("run", tool_input)
    assert (result.action, result.rule_name) == ("block", rule)


@pytest.mark.parametrize("tool_input", [
    {"cmd": ["ls", "-la", "/tmp"]}, {"tags": ["delete", "update"]},
    {"years": ["2019", "2020", "2021", "2022"]}, {"mixed": ["rm", 1, "/"]},
])
def test_lists_that_are_no_dangerous_command_pass(client: st.Client, tool_input: dict) -> None:
    assert client.guard("run", tool_input).action == "allow"


def test_only_word_lists_are_joined() -> None:
    assert command_line(["rm", "-rf", "/"]) == "rm -rf /"
    assert command_line(["echo", "a b"]) == "echo 'a b'"  # quoted as the shell would need
    assert command_line(["4111", "1111"]) is None  # numbers are data, not a command
    assert command_line(["rm"]) is None and command_line([]) is None
    assert command_line(["rm", None]) is None
    assert "rm -rf /" in inspected_texts({"a": {"b": ["rm", "-rf", "/"]}})
