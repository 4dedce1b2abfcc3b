"""A bad policy fails at load with file:line, never at call time: a pack's options (builtin/pii's
``detectors``), modify values a tool input cannot hold (a NaN cap), conditions whose nested
comprehension macros would make every check and guard call run for ever, and values of any
type in any key (which ``staso policy check`` must report, never crash on)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

import staso as st
from staso.cli import app
from staso.errors import PolicyError
from staso.plugins import make_plugin_manager
from staso.policy import Engine
from staso.policy.discovery import collect_functions, collect_packs
from staso.policy.loader import check_policy_text, load_policy_text

PM = make_plugin_manager()
PACKS, FUNCTIONS = collect_packs(PM), collect_functions(PM)


def load(text: str) -> object:
    return load_policy_text(text, "staso.yaml", packs=PACKS, functions=FUNCTIONS)


def check(tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "staso.yaml"
    path.write_text(text)
    result = CliRunner().invoke(app, ["policy", "check", str(path)],
                                env={"STASO_HOME": str(tmp_path / "no-home"),
                                     "STASO_BASE_URL": ""})
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        result.exception
    return result.exit_code, result.stdout + result.stderr


PII_NOPE = "version: 1\nrules:\n  - use: builtin/pii\n    detectors: [ssn, nope]\n"


def test_an_unknown_pii_detector_fails_at_load_not_on_the_first_ssn(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"staso.yaml:4: rule 'builtin/pii': unknown "
                                          r"detector 'nope' for builtin/pii .*\(use ssn, "):
        load(PII_NOPE)
    code, text = check(tmp_path, PII_NOPE)
    assert code == 1 and "staso.yaml:4: " in text and "'nope'" in text
    # the embedded client refuses the policy when it starts, not when a call holds an SSN
    (tmp_path / "pii.yaml").write_text(PII_NOPE)
    with pytest.raises(PolicyError, match="unknown detector 'nope'"):
        st.init(home=tmp_path / "home", agent_name="a", policy=tmp_path / "pii.yaml")
    st.shutdown()
    # the names it knows still work, and still redact
    policy = load(PII_NOPE.replace(", nope", ", email"))
    assert policy.rules[0].modify.redact_detectors == ("ssn", "email")  # type: ignore[attr-defined]


@pytest.mark.parametrize(("modify", "message"), [
    ("{cap: {amount: .nan}}", r"'cap' must map field names to finite numbers.*'amount': nan"),
    ("{cap: {amount: .inf}}", r"'cap' .*finite numbers.*'amount': inf"),
    ("{cap: {amount: '100'}}", r"'cap' .*finite numbers.*'amount': '100'"),
    ("{cap: {amount: true}}", r"'cap' .*finite numbers.*'amount': True"),
    ("{cap: {1: 100}}", r"'cap' .*finite numbers.*\(not 1: 100\)"),
    ("{set: {rate: .nan}}", r"set: 'rate' is set to nan, which a tool input cannot hold"),
    ("{set: {when: 2024-01-01}}", r"set: 'when' is set to datetime.date"),
    ("{set: {a: {1: x}}}", r"set: 'a' is set to a mapping with the key 1"),
])
def test_a_modify_value_no_call_could_use_fails_at_load(modify: str, message: str) -> None:
    text = f"version: 1\nrules:\n  - name: r\n    action: modify\n    modify: {modify}\n"
    with pytest.raises(PolicyError, match=r"staso.yaml:5: rule 'r': " + message):
        load(text)


def test_a_finite_cap_still_caps() -> None:
    policy = load("rules:\n  - name: r\n    action: modify\n    modify: {cap: {amount: 100}}\n")
    decided = Engine(policy, FUNCTIONS).evaluate("t", {"amount": 5000})  # type: ignore[arg-type]
    assert (decided.action, decided.modified_input) == ("modify", {"amount": 100})


NESTED = "[1,2,3].map(a, [1,2,3].map(b, [1,2,3].map(c, 1))).size() > 0"


def test_comprehension_macros_nested_deeper_than_two_fail_at_load(tmp_path: Path) -> None:
    text = f"version: 1\nrules:\n  - name: r\n    when: \"{NESTED}\"\n    action: block\n" \
           "tests:\n  - {tool: t, expect: block}\n"
    with pytest.raises(PolicyError, match=r"staso.yaml:4: rule 'r': 'when' nests comprehension "
                                          r"macros \(all, exists, .*\) 3 deep; at most 2"):
        load(text)
    code, out = check(tmp_path, text)  # (before: it ran the condition on the test, for ever)
    assert code == 1 and "3 deep" in out
    load(text.replace("[1,2,3].map(c, 1)", "[1]"))  # two deep: allowed


@pytest.mark.parametrize(("source", "depth"), [
    ("tool_input.amount > 1", 0),
    ("tool_input.ids.all(a, tool_input.ids.exists_one(b, b == a))", 2),
    ("l.map(a, a).map(b, b).filter(c, c).size() > 0", 1),  # chained, not nested
    ("l.map(a, [m.filter(b, [n.all(c, true)])]).size() > 0", 3),
    ("l . map ( a , l.existsOne(b, true)).size() > 0", 2),
    ('"x.map(a, y.map(b, z.map(c, 1)))" == tool_name', 0),  # in a string: text
    ('r"\\\\" == "a.map(" || "\\".map(" == "b" || l.map(a, a) == []', 1),
    ("l.all(a, true) // .map(b, c.map(d, e.map(f, 1)))\n && true", 1),  # a comment
])
def test_macro_depth_reads_tokens(source: str, depth: int) -> None:
    from staso.policy.condition_types import macro_depth

    assert macro_depth(source) == depth


@pytest.mark.parametrize("text", [
    "rules: [{name: a, action: [block]}]\n",
    "rules:\n  - use: builtin/pii\n    action: [modify]\n",
    "rules: [{name: a, action: null}]\n",
    "rules: [{use: builtin/pii, action: null}]\n",
    "rules: [{name: a, action: block, severity: [high]}]\n",
    "rules: [{name: a, action: block, mode: {x: 1}}]\n",
    "rules: [{name: a, action: modify, modify: {1: x, a: y}}]\n",
    "rules: [{use: builtin/pii, name: [x]}]\n",
    "rules: [{name: a, action: block, reason: [x]}]\n",
])
def test_a_value_of_the_wrong_type_is_a_problem_not_a_crash(tmp_path: Path, text: str) -> None:
    with pytest.raises(PolicyError, match=r"staso.yaml:\d+: "):
        load(text)
    _, problems = check_policy_text(text, "staso.yaml", packs=PACKS, functions=FUNCTIONS)
    assert problems.errors
    code, out = check(tmp_path, text)
    assert code == 1 and "Traceback" not in out and "staso.yaml:" in out
