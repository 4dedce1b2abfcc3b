"""The policy format (the README's "Policies"): errors at load with file:line and rule name;
policy tests."""

from __future__ import annotations

import subprocess
import sys

import pytest

import staso as st


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "staso.cli", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd)


BAD = {
    "invalid CEL": ("rules:\n  - name: r1\n    when: tool_input.amount >\n    action: block\n",
                    ":3: rule 'r1': invalid CEL"),
    "duplicate rule name": ("rules:\n  - name: a\n    action: block\n  - name: a\n"
                            "    action: allow\n", ":4: rule 'a': duplicate rule name"),
    "unknown action": ("rules:\n  - name: r\n    action: explode\n", ":3: rule 'r': action"),
    "unknown function": ("rules:\n  - name: r\n    when: is_evil(tool_name)\n    action: block\n",
                         "unknown function 'is_evil'"),
    "unknown variable": ("rules:\n  - name: r\n    when: amount > 3\n    action: block\n",
                         "unknown variable 'amount'"),
    "unknown tool": ("tools: [process_refund]\nrules:\n  - name: r\n    tools: [procss_refund]\n"
                     "    action: block\n", ":4: rule 'r': tool 'procss_refund' matches no known"),
    "unknown key": ("rules:\n  - name: r\n    condition: x\n    action: block\n",
                    "unknown key 'condition'"),
    "unknown pack": ("rules:\n  - use: builtin/nope\n", "unknown rule pack 'builtin/nope'"),
    "bad yaml": ("rules: [\n", "invalid YAML"),
    "modify without spec": ("rules:\n  - name: r\n    action: modify\n", "needs a 'modify'"),
    "duplicate key": ("rules:\n  - name: r\n    action: block\n    action: allow\n",
                      ":4: duplicate key 'action'"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_policy_fails_at_load_with_location(tmp_path, case):
    text, expected = BAD[case]
    path = tmp_path / "staso.yaml"
    path.write_text(text)
    with pytest.raises(st.PolicyError) as info:
        st.init(home=tmp_path, policy=path)
    assert str(info.value).startswith(str(path))
    assert expected in str(info.value)
    proc = _cli("policy", "check", str(path))
    assert proc.returncode == 1 and expected in proc.stderr


def test_policy_tests_pass_and_fail(tmp_path):
    path = tmp_path / "refunds.yaml"
    path.write_text("""version: 1
rules:
  - name: refund_over_1000
    tools: [process_refund]
    when: tool_input.amount > 1000
    action: escalate
  - use: builtin/destructive_sql
tests:
  - name: small refund runs
    tool: process_refund
    input: {amount: 10}
    expect: allow
  - name: big refund escalates
    tool: process_refund
    input: {amount: 5000}
    expect: {action: escalate, rule_name: refund_over_1000}
""")
    (tmp_path / "refunds.test.yaml").write_text("""tests:
  - name: drop is blocked
    tool: run_sql
    input: {q: "DROP TABLE users"}
    expect: block
""")
    proc = _cli("policy", "test", str(path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed, 0 failed" in proc.stdout
    (tmp_path / "refunds.wrong.test.yaml").write_text("""tests:
  - name: wrong expectation
    tool: process_refund
    input: {amount: 5000}
    expect: allow
""")
    proc = _cli("policy", "test", str(path))
    assert proc.returncode == 1
    assert "FAIL wrong expectation" in proc.stdout
    assert "refunds.wrong.test.yaml:2: expected allow, got escalate" in proc.stdout


def test_pack_overrides_and_type_confusion_fails_closed(tmp_path):
    st.init(home=tmp_path, policy="""version: 1
rules:
  - use: builtin/destructive_sql
    action: escalate
    severity: medium
    tools: [run_sql]
  - name: big
    when: tool_input.amount > 1000
    tools: [pay]
    action: escalate
""")
    try:
        r = st.guard("run_sql", {"q": {"nested": ["ok", "TRUNCATE audit_log"]}})
        assert (r.action, r.severity) == ("escalate", "medium")
        assert st.guard("other_tool", {"q": "TRUNCATE audit_log"}).action == "allow"
        r = st.guard("pay", {"amount": "50000"})  # a string must not slip past a number rule
        assert r.action == "escalate" and "treated as a match" in r.reason
        assert st.guard("pay", {"to": "x"}).action == "allow"  # the field is absent
    finally:
        st.shutdown()
