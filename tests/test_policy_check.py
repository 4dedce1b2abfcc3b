"""``staso policy check``: every mistake in one run, each at its own line, with a did-you-mean;
literals of the wrong type and conditions that fail on the policy's tests and on recorded
calls; warnings for tool names no one has seen. Run in-process (typer's CliRunner); the
command itself runs as a real process in test_policy.py and test_policy_replay.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import staso as st
from staso.cli import app
from staso.errors import PolicyError
from staso.policy.loader import load_policy_text

# the fresh-clone trial's file: `acton:` on line 4, a string compared with a number, and a
# tool name with a typo
ISSUE = """version: 1
rules:
  - name: big_refund
    acton: escalate
    tools: [process_refund]
    when: tool_input.amount > 1000
  - name: refunds
    tools: [proces_refund]
    when: tool_input.amount > 5000
    action: block
"""


def check(tmp_path: Path, text: str, *args: str, name: str = "staso.yaml",
          home: Path | None = None) -> tuple[int, list[str], str]:
    """(exit code, stderr lines, stdout) of ``staso policy check`` on ``text``."""
    path = tmp_path / name
    path.write_text(text)
    result = CliRunner().invoke(app, ["policy", "check", str(path), *args],
                                env={"STASO_HOME": str(home or tmp_path / "no-home"),
                                     "STASO_BASE_URL": ""})
    return result.exit_code, result.stderr.splitlines(), result.stdout


def test_a_misspelt_key_is_reported_at_its_own_line_with_a_did_you_mean(tmp_path: Path) -> None:
    code, lines, _ = check(tmp_path, ISSUE)
    path = tmp_path / "staso.yaml"
    assert code == 1
    assert lines[0] == (f"{path}:4: rule 'big_refund': unknown key 'acton'; "
                        "did you mean 'action'?")
    assert not any("missing 'action'" in line for line in lines)  # one mistake, one message
    # the runtime loader still stops at the first problem, with the same message
    with pytest.raises(PolicyError, match=r"staso.yaml:4: .*did you mean 'action'\?"):
        load_policy_text(ISSUE, "staso.yaml")


def test_every_error_is_reported_in_one_run_sorted_by_line(tmp_path: Path) -> None:
    text = """version: 1
escalaton_ttl: 2h
rules:
  - name: a
    action: explode
    severity: hgh
  - name: b
    action: block
    mode: sometimes
    when: tool_input.amount >
  - use: builtin/nope
  - name: a
    action: allow
tests:
  - name: t
    tool: process_refund
    expct: allow
"""
    code, lines, _ = check(tmp_path, text)
    assert code == 1
    errors = [line for line in lines if line.startswith(str(tmp_path))]
    # nothing else is said but the CEL parser's picture of where the condition broke
    assert [line for line in lines if line not in errors] == [
        "| tool_input.amount >", "| ...................^"]
    found = [(int(line.split(":")[1]), line) for line in errors]
    assert [n for n, _ in found] == [2, 5, 6, 9, 10, 11, 12, 15, 17]
    said = "\n".join(errors)
    for expected in ("unknown top-level key 'escalaton_ttl'; did you mean 'escalation_ttl'?",
                     "action 'explode' is not one of", "severity 'hgh' is not one of",
                     "mode 'sometimes' is not enforce or audit", "invalid CEL",
                     "unknown rule pack 'builtin/nope' (available: builtin/dangerous_shell, ",
                     "duplicate rule name", "unknown key 'expct'; did you mean 'expect'?",
                     "needs 'tool' and 'expect'"):
        assert expected in said, expected


def test_duplicate_keys_do_not_hide_what_follows(tmp_path: Path) -> None:
    code, lines, _ = check(tmp_path, "rules:\n  - name: r\n    action: block\n"
                                     "    action: allow\n    mode: loud\n")
    assert code == 1
    assert ":4: duplicate key 'action'" in lines[0] and ":5: rule 'r': mode 'loud'" in lines[1]


def test_a_string_compared_with_a_number_fails_on_the_policys_tests(tmp_path: Path) -> None:
    text = """version: 1
rules:
  - name: small
    tools: [process_refund]
    when: tool_input.amount < 5
    action: allow
  - name: big_refund
    tools: [process_refund]
    when: tool_input.amount > "10"
    action: escalate
tests:
  - name: small refund
    tool: process_refund
    input: {amount: 50}
    expect: allow
"""
    code, lines, _ = check(tmp_path, text)
    assert code == 1
    assert lines[0].startswith(f"{tmp_path / 'staso.yaml'}:9: rule big_refund (line 7): "
                               "tool_input.amount > \"10\" fails on test 'small refund' where "
                               "tool_input.amount is 50 (a number): No such overload")
    assert lines[0].endswith("; did you mean 10?")
    # the runtime loader accepts it (a condition's types are only known at a call)
    load_policy_text(text, "staso.yaml")


def test_a_numeric_string_ordered_against_a_field_is_caught_without_samples(
        tmp_path: Path) -> None:
    code, lines, _ = check(tmp_path, "rules:\n  - name: big\n    action: block\n"
                                     "    when: tool_input.amount >= '2.5' && "
                                     "tool_input.name > 'm'\n")
    assert code == 1
    assert lines[0].endswith(":4: rule big (line 2): tool_input.amount >= '2.5' orders "
                             "tool_input.amount against the string '2.5', which fails on "
                             "any number; did you mean 2.5?")
    assert "tool_input.name" not in "\n".join(lines)  # ordering real strings is fine


def test_a_field_compared_with_numbers_and_strings_is_an_error(tmp_path: Path) -> None:
    text = """rules:
  - name: a
    tools: ["*refund*"]
    when: tool_input.amount == 100
    action: block
  - name: b
    tools: [process_refund]
    when: tool_input.amount == "100"
    action: block
  - name: c
    tools: [send_email]
    when: tool_input.amount == "x"
    action: block
"""
    code, lines, _ = check(tmp_path, text, "--tool", "process_refund", "--tool", "send_email")
    assert code == 1
    errors = [line for line in lines if not line.startswith(("note:", "warning:"))]
    assert len(errors) == 1, lines  # send_email's amount is another tool's field
    assert errors[0].endswith(":8: rule b (line 6): tool_input.amount is compared with "
                              "strings here (tool_input.amount == \"100\") and with numbers in "
                              "rule a (tool_input.amount == 100); one of them fails on every "
                              "call")


def test_a_tool_name_no_one_knows_is_a_warning_with_a_did_you_mean(tmp_path: Path) -> None:
    text = ISSUE.replace("acton", "action") + """tests:
  - name: refund
    tool: process_refund
    input: {amount: 5}
    expect: allow
"""
    code, lines, out = check(tmp_path, text)
    assert code == 0, lines
    assert lines == [f"warning: {tmp_path / 'staso.yaml'}:8: rule 'refunds': tool "
                     "'proces_refund' matches no tool seen yet in the policy's tests, the "
                     "decision log or --tool; did you mean 'process_refund'?"]
    assert "ok (2 rules, 1 warning)" in out


def test_tools_named_on_the_command_line_count_and_none_known_is_said_once(
        tmp_path: Path) -> None:
    fixed = ISSUE.replace("acton", "action")
    code, lines, _ = check(tmp_path, fixed)
    assert code == 0
    assert lines == ["note: tool names were not checked: no tool is known (none in the "
                     "policy's tests or the decision log; name them with --tool)"]
    code, lines, _ = check(tmp_path, fixed, "--tool", "processRefund")
    assert code == 0
    assert len(lines) == 1 and lines[0].startswith("warning: ")
    assert "'proces_refund' matches no tool seen yet in the policy's tests, the decision " \
           "log or --tool; did you mean 'processRefund'?" in lines[0]


def test_problems_in_a_sibling_test_file_are_reported_too(tmp_path: Path) -> None:
    (tmp_path / "staso.refunds.test.yaml").write_text(
        "tests:\n  - name: x\n    tool: t\n    expect: explode\n  - tool: t\n")
    code, lines, _ = check(tmp_path, "rules:\n  - name: r\n    action: block\n")
    assert code == 1
    test_file = tmp_path / "staso.refunds.test.yaml"
    assert lines[:2] == [f"{test_file}:4: test 'x': expected action 'explode' is not one of "
                         "allow, block, modify, escalate",
                         f"{test_file}:5: test 'test #2' needs 'tool' and 'expect'"]


def test_recorded_calls_give_samples_and_tool_names(tmp_path: Path) -> None:
    """The embedded decision log (STASO_HOME) is read: a condition failing on a recorded
    call is an error naming the decision; recorded tool names are known tools."""
    home = tmp_path / "home"
    st.init(home=home, agent_name="refund-agent", policy=(
        "version: 1\nrules:\n  - name: noop\n    tools: [nothing]\n    action: block\n"))
    try:
        recorded = st.guard("send_email", {"to": "a@example.com", "priority": 3})
    finally:
        st.shutdown()
    text = """rules:
  - name: urgent
    tools: [send_emial]
    when: tool_input.priority.startsWith("high")
    action: escalate
"""
    code, lines, _ = check(tmp_path, text, home=home)
    assert code == 0  # the rule reaches no recorded call: only the tool warning
    assert lines == [f"warning: {tmp_path / 'staso.yaml'}:3: rule 'urgent': tool 'send_emial' "
                     "matches no tool seen yet in the policy's tests, the decision log or "
                     "--tool; did you mean 'send_email'?"]
    code, lines, out = check(tmp_path, text.replace("send_emial", "send_email"), home=home)
    # what an agent sent is not the policy's fault (the engine escalates such a call):
    # a warning, so any agent cannot keep a valid policy from being pushed
    assert code == 0, lines
    assert len(lines) == 1
    assert lines[0].startswith(f"warning: {tmp_path / 'staso.yaml'}:4: rule urgent (line 2): "
                               "tool_input.priority.startsWith(\"high\") fails on 1 recorded "
                               "call (such a call gets this rule's action, escalate: a "
                               "condition that fails counts as a match), e.g. on decision "
                               f"{recorded.decision_id}: ")
    assert "ok (1 rule, 1 warning)" in out


def test_a_check_does_not_create_a_store(tmp_path: Path) -> None:
    code, _, _ = check(tmp_path, "rules: []\n", home=tmp_path / "home")
    assert code == 0
    assert not (tmp_path / "home").exists()


README_POLICY = """version: 1
escalation_ttl: 24h
rules:
  - name: refund_over_1000
    tools: [process_refund]
    when: tool_input.amount > 1000
    action: escalate
  - name: redact_pii_in_email
    tools: [send_email]
    action: modify
    modify: {redact: {fields: [body], detectors: [ssn, credit_card]}}
tests:
  - name: big refunds escalate
    tool: process_refund
    input: {amount: 5000}
    expect: {action: escalate, rule_name: refund_over_1000}
"""


def test_what_an_agent_sent_cannot_make_a_valid_policy_fail(tmp_path: Path) -> None:
    """Any agent could record `amount: "lots"` and so fail the README's policy (and block
    `push`): a condition failing on recorded calls is a warning (the engine escalates such a
    call); failing on the policy's own tests stays an error. Recorded names print escaped."""
    home = tmp_path / "home"
    st.init(home=home, agent_name="any-agent", policy="version: 1\nrules: []\n")
    try:
        st.guard("process_refund", {"amount": "lots"})
        st.guard("process_refund", {"amount": ["x"]})
        st.guard("process_refund", {"amount": 20})
        st.guard("\x1b[2Jrefund\x07", {"amount": 1})
    finally:
        st.shutdown()
    code, lines, out = check(tmp_path, README_POLICY, home=home)
    assert code == 0, lines
    path = tmp_path / "staso.yaml"
    assert lines[0].startswith(f"warning: {path}:6: rule refund_over_1000 (line 4): "
                               "tool_input.amount > 1000 fails on 2 recorded calls (such a "
                               "call gets this rule's action, escalate: a condition that fails "
                               "counts as a match), e.g. on decision dec_")
    assert "No such overload" in lines[0] and len(lines) == 2
    assert lines[1].startswith(f"warning: {path}:9: rule 'redact_pii_in_email': tool "
                               "'send_email' matches no tool seen yet")
    assert "\\x1b[2Jrefund\\x07" in lines[1] and "\x1b" not in "".join(lines)
    assert "ok (2 rules, 2 warnings)" in out
    # the same call as one of the policy's own tests is the policy's mistake
    own = README_POLICY + "  - {name: odd, tool: process_refund, input: {amount: lots}, " \
                          "expect: escalate}\n"
    code, lines, _ = check(tmp_path, own, home=home)
    assert code == 1
    assert lines[0].startswith(f"{path}:6: rule refund_over_1000 (line 4): tool_input.amount "
                               "> 1000 fails on test 'odd': No such overload")


# a new operator's file: ten mistakes in different rules. Three used to appear only after
# the others were fixed: a rule's duplicate name when either rule had errors of its own,
# and check's own passes (literal types, tool names) on a rule that is fine by itself but
# shares its name, or whose only test is broken
EIGHT = """version: 1
escalaton_ttl: 2h
rules:
  - name: refund_over_1000
    tools: [process_refund]
    when: tool_input.amount > 1000
    action: escalate
    severty: high
  - name: block_drop
    tools: [run_sql]
    when: tool_input.query.contains("DROP")
    action: block
  - name: refund_over_1000
    tools: [proces_refund]
    when: tool_input.amount > "1000"
    action: escalate
  - name: audit_email
    tools: [send_email]
    action: allow
    mode: audti
  - name: block_drop
    tools: [run_sql]
    acton: block
  - name: cap_it
    tools: [transfer]
    action: modify
    modify:
      capp: {amount: 10}
  - use: builtin/nope
tests:
  - name: big refund
    tool: process_refund
    input: {amount: 5000}
    expct: escalate
"""


def test_every_mistake_of_a_new_operators_file_is_reported_in_one_run(tmp_path: Path) -> None:
    code, lines, _ = check(tmp_path, EIGHT, "--tool", "run_sql", "--tool", "send_email",
                           "--tool", "transfer")
    path = tmp_path / "staso.yaml"
    assert code == 1
    errors = [line for line in lines if not line.startswith("warning: ")]
    warnings = [line for line in lines if line.startswith("warning: ")]
    assert [int(line.split(":")[1]) for line in errors] == [2, 8, 13, 15, 20, 21, 23, 27, 29,
                                                          31, 34]
    said = "\n".join(errors)
    assert f"{path}:13: rule 'refund_over_1000': duplicate rule name (first defined at " \
           "line 4)" in said  # (the first of that name has an error of its own)
    assert f"{path}:15: rule refund_over_1000 (line 13): tool_input.amount > \"1000\" orders " \
           "tool_input.amount against the string \"1000\", which fails on any number; did " \
           "you mean 1000?" in said  # (a duplicate: not in the policy, still checked)
    assert f"{path}:21: rule 'block_drop': duplicate rule name (first defined at line " \
           "9)" in said  # (the second of that name has an error of its own)
    assert f"{path}:23: rule 'block_drop': unknown key 'acton'; did you mean 'action'?" \
        in said
    for part in ("escalaton_ttl", "'severty'", "mode 'audti'", "'capp'", "'builtin/nope'",
                 "needs 'tool' and 'expect'", "'expct'"):
        assert part in said, part
    # the tool its only test names (a broken test) is a known tool
    assert warnings == [f"warning: {path}:14: rule 'refund_over_1000': tool 'proces_refund' "
                        "matches no tool seen yet in the policy's tests, the decision log or "
                        "--tool; did you mean 'process_refund'?"]
    # fixed one by one, the same file holds nothing new: each mistake was said at once
    fixed = (EIGHT.replace("escalaton_ttl", "escalation_ttl").replace("severty", "severity")
             .replace("  - name: refund_over_1000\n    tools: [proces_refund]",
                      "  - name: refund_small\n    tools: [process_refund]")
             .replace('> "1000"', "> 10").replace("audti", "audit")
             .replace("  - name: block_drop\n    tools: [run_sql]\n    acton",
                      "  - name: block_drop2\n    tools: [run_sql]\n    action")
             .replace("capp", "cap").replace("  - use: builtin/nope\n", "")
             .replace("expct", "expect"))
    code, lines, out = check(tmp_path, fixed, "--tool", "run_sql", "--tool", "send_email",
                             "--tool", "transfer")
    assert (code, lines) == (0, []), lines
    assert "ok (6 rules)" in out


def test_the_ok_line_counts_in_words(tmp_path: Path) -> None:
    code, _, out = check(tmp_path, "version: 1\nrules:\n  - name: r\n    action: block\n",
                         "--tool", "x")
    assert code == 0 and out.strip().endswith("staso.yaml: ok (1 rule)")
    code, _, out = check(tmp_path, "version: 1\nrules: []\n")
    assert code == 0 and out.strip().endswith("staso.yaml: ok (0 rules)")


@pytest.mark.parametrize("command", ["check", "replay", "push"])
@pytest.mark.parametrize("file", ["staso.yaml", "missing.yaml"])
def test_a_bad_url_is_one_line_and_nothing_else(tmp_path: Path, command: str,
                                                file: str) -> None:
    (tmp_path / "staso.yaml").write_text(EIGHT)
    result = CliRunner().invoke(app, ["policy", command, str(tmp_path / file), "--url",
                                      "127.0.0.1:9410", "--key", "k"],
                                env={"STASO_HOME": str(tmp_path / "no-home"),
                                     "STASO_BASE_URL": ""})
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "--url must look like http://host:port (got 127.0.0.1:9410)"]
    assert result.stdout == ""
    assert not (tmp_path / "no-home").exists()


def test_a_url_without_a_key_is_a_note_said_once(tmp_path: Path) -> None:
    (tmp_path / "staso.yaml").write_text("version: 1\nrules:\n  - name: r\n    action: block\n")
    result = CliRunner().invoke(app, ["policy", "check", str(tmp_path / "staso.yaml"),
                                      "--url", "http://127.0.0.1:9", "--tool", "x"],
                                env={"STASO_HOME": str(tmp_path / "no-home"),
                                     "STASO_BASE_URL": "", "STASO_API_KEY": ""})
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        "note: the decision log was not read: no key for --url (--key or STASO_API_KEY)"]
